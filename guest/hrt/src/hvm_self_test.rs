//! Boot self-test of the hypervisor's permission checks (hypervisor/src/hvm/permissions.rs), on
//! core 0 every boot: 0xf00d calls the HRT kernel may not make must be refused with the exact
//! code.
//!
//! Only calls whose refusal leaves every state alone are made: a hypervisor that wrongly
//! accepted one would act on it (reset the ROS, start an invocation), which is what this test is
//! there to catch. A second `HrtReady` is not tested: it is the HRT kernel's own call, and an
//! accepted one would change the ready state.

use core::fmt;

use hvm_ros_lib::abi::{HvmError, SubOp};

use crate::hvc::{self, CallError};

/// A sub-operation code the ABI does not define (abi.rs `SubOp::from_code` maps it to None).
const UNDEFINED_SUB_OP: u64 = 0x99;

/// One call and the refusal it must get.
struct Case {
    name: &'static str,
    code: u64,
    expected: HvmError,
}

const CASES: [Case; 3] = [
    // A ROS process's call: the partition is checked before the level.
    Case { name: "invoke", code: SubOp::Invoke as u64, expected: HvmError::WrongPartition },
    // The ROS's own call (its kernel's or a process's).
    Case { name: "reset-ros", code: SubOp::ResetRos as u64, expected: HvmError::WrongPartition },
    // Decoded before any permission check.
    Case { name: "unknown sub-op", code: UNDEFINED_SUB_OP, expected: HvmError::UnknownSubOp },
];

/// What the test prints when every case got its refusal (it names [`CASES`]).
pub const PASSED: &str = "refused invoke, reset-ros and unknown sub-op ok";

/// A case that got something else.
#[derive(Clone, Copy)]
struct Mismatch {
    case: &'static Case,
    got: Result<(), CallError>,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let Case { name, code, expected } = self.case;
        write!(f, "{name} (sub-op {code:#x}) returned ")?;
        match self.got {
            Ok(()) => write!(f, "ok (0)")?,
            Err(CallError(got)) => match HvmError::from_code(got) {
                Some(error) => write!(f, "{error:?} ({})", got as i64)?,
                None => write!(f, "unknown code {got:#x}")?,
            },
        }
        write!(f, ", expected {expected:?} ({})", expected.code() as i64)
    }
}

/// The cases that failed, in [`CASES`] order.
pub struct Failures([Option<Mismatch>; CASES.len()]);

impl fmt::Display for Failures {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (index, mismatch) in self.0.iter().flatten().enumerate() {
            if index > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{mismatch}")?;
        }
        Ok(())
    }
}

/// Makes every call of [`CASES`]; all of them, so one line names every wrong answer.
pub fn run() -> Result<(), Failures> {
    let mut failures = Failures([None; CASES.len()]);
    for (case, failure) in CASES.iter().zip(failures.0.iter_mut()) {
        let got = hvc::hvm_call(case.code);
        if got.map_err(|CallError(code)| code) != Err(case.expected.code()) {
            *failure = Some(Mismatch { case, got });
        }
    }
    if failures.0.iter().all(Option::is_none) {
        Ok(())
    } else {
        Err(failures)
    }
}
