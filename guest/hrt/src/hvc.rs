//! Calls to the hypervisor: `hvc #0`, x0 = function id, x1..x7 = arguments; x0 returns
//! [`HVM_OK`] or a negative [`HvmError`] code, x1.. may carry results, and the hypervisor may
//! clobber x0..x17 (hvm-ros-lib abi.rs).

use core::fmt;
use core::sync::atomic::{fence, Ordering};

use hvm_ros_lib::abi::{HvmError, SubOp, HRT_CONSOLE_ID, HVM_HCALL_ID, HVM_OK};

/// x0, x1 after a call (no call used here returns more).
struct Returned {
    x0: u64,
    x1: u64,
}

/// `hvc #0` with x0..x3 = `args`, x4..x7 = 0.
fn hvc(args: [u64; 4]) -> Returned {
    let [mut x0, mut x1, x2, x3] = args;
    // SAFETY: the hypervisor's calls read guest memory only where an argument points (the
    // console's bytes, which the caller owns) and write none of ours; every register it may
    // clobber is declared. No `nomem`: the console reads the buffer we just filled.
    unsafe {
        core::arch::asm!(
            "hvc #0",
            inout("x0") x0, inout("x1") x1, inout("x2") x2 => _, inout("x3") x3 => _,
            inout("x4") 0u64 => _, inout("x5") 0u64 => _, inout("x6") 0u64 => _, inout("x7") 0u64 => _,
            out("x8") _, out("x9") _, out("x10") _, out("x11") _,
            out("x12") _, out("x13") _, out("x14") _, out("x15") _, out("x16") _, out("x17") _,
            options(nostack),
        );
    }
    Returned { x0, x1 }
}

/// A failed call: the code the hypervisor returned in x0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallError(pub u64);

impl CallError {
    /// Whether the hypervisor answered `error`.
    pub fn is(self, error: HvmError) -> bool {
        self.0 == error.code()
    }

    /// The code as an invocation's status (a negative `HvmError` code).
    pub fn status(self) -> i64 {
        self.0 as i64
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match HvmError::from_code(self.0) {
            Some(error) => write!(f, "{error}"),
            None => write!(f, "unknown code {:#x}", self.0),
        }
    }
}

fn status(x0: u64) -> Result<(), CallError> {
    if x0 == HVM_OK {
        Ok(())
    } else {
        Err(CallError(x0))
    }
}

/// The HRT console: prints `len` bytes at guest-physical address `ipa` (at most
/// `HRT_CONSOLE_MAX`; the hypervisor prefixes each line with "(HRT) ").
pub fn console(ipa: u64, len: u64) -> Result<(), CallError> {
    status(hvc([HRT_CONSOLE_ID, ipa, len, 0]).x0)
}

/// What the null call returns: time since the hypervisor started this HRT boot (x1; x2 has
/// the same in counter ticks).
#[derive(Clone, Copy, Debug)]
pub struct SinceBoot {
    pub nanoseconds: u64,
}

/// The null sub-operation (Palacios' "booted" ping).
pub fn null() -> Result<SinceBoot, CallError> {
    let returned = hvc([HVM_HCALL_ID, SubOp::Null as u64, 0, 0]);
    status(returned.x0)?;
    Ok(SinceBoot { nanoseconds: returned.x1 })
}

/// A 0xf00d call by raw sub-operation code, x2.. = 0: for the permission self-test
/// (hvm_self_test.rs), which also sends codes the ABI does not define.
pub fn hvm_call(code: u64) -> Result<(), CallError> {
    status(hvc([HVM_HCALL_ID, code, 0, 0]).x0)
}

/// Raises signal `code` into the process that registered a handler (0x41).
pub fn raise_signal(code: u64) -> Result<(), CallError> {
    status(hvc([HVM_HCALL_ID, SubOp::RaiseSignal as u64, code, 0]).x0)
}

/// Tells the hypervisor this core finished booting and takes upcalls (once per core).
pub fn ready() -> Result<(), CallError> {
    status(hvc([HVM_HCALL_ID, SubOp::HrtReady as u64, 0, 0]).x0)
}

/// Answers the upcall request this core was handling with `answer`: `CallDone` (0x2f: an
/// invocation ran, its answer is in the block; sync mode is up; sync mode was left),
/// `MergeDone` (0x3f) or `TlsSyncDone` (0x5f).
pub fn answer_upcall(answer: SubOp) -> Result<(), CallError> {
    // The answer written to ROS memory (status, result, `done`, `completed`) and the state the
    // request changed are visible before the hypervisor acts on the call (and the ROS learns of
    // it from the hypervisor), whatever barriers the hypervisor's side uses.
    fence(Ordering::SeqCst);
    status(hvc([HVM_HCALL_ID, answer as u64, 0, 0]).x0)
}

/// Posts the `RosEvent` at `va` (an EL1 virtual address: the hypervisor translates it with
/// `AT S1E1R` and copies the event). `Busy` while another event is pending.
pub fn post_ros_event(va: u64) -> Result<(), CallError> {
    status(hvc([HVM_HCALL_ID, SubOp::PostRosEvent as u64, va, 0]).x0)
}

/// Copies the pending event into the `RosEvent` buffer at `va` (an EL1 virtual address); the
/// transaction state (abi.rs `TransState`) or an error.
pub fn get_state_and_event(va: u64) -> Result<u64, CallError> {
    let x0 = hvc([HVM_HCALL_ID, SubOp::GetStateAndEvent as u64, va, 0]).x0;
    // A state is a small non-negative number, an error a negative code.
    if (x0 as i64) < 0 {
        Err(CallError(x0))
    } else {
        Ok(x0)
    }
}

/// Acknowledges the result of the event this core posted: the event slot is free again.
pub fn ack_event_result() -> Result<(), CallError> {
    status(hvc([HVM_HCALL_ID, SubOp::AckEventResult as u64, 0, 0]).x0)
}
