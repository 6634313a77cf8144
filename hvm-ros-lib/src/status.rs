//! Decoding what the hypervisor and the HRT answer (kept out of [`crate::abi`], which only
//! defines the numbers and layouts): the transaction state of `GetStateAndEvent` and the
//! completion record of an [`Invocation`]. Pure functions, tested on the host.

use core::fmt;

use crate::abi::invoke::{Invocation, INVOCATION_MAGIC, MAX_HRT_CORES};
use crate::abi::{HvmError, SubOp, TransState};

impl TransState {
    /// Every transaction state the protocol defines, in code order.
    pub const ALL: &'static [TransState] = &[
        TransState::Idle,
        TransState::Call,
        TransState::ParCall,
        TransState::SyncSetup,
        TransState::Sync,
        TransState::SyncTeardown,
        TransState::Merge,
        TransState::TlsSync,
    ];

    /// Decodes the x0 of a successful `GetStateAndEvent`; `None` for a value the protocol does
    /// not define.
    pub fn from_code(code: u64) -> Option<TransState> {
        Self::ALL.iter().copied().find(|s| *s as u64 == code)
    }
}

/// What `GetStateAndEvent` (0xf) answers: the transaction state and whether the HRT is ready.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmStatus {
    /// The VM-wide transaction state (x0).
    pub trans: TransState,
    /// x1 = 1: every HRT core booted and takes upcalls; 0: the HRT is (re)booting.
    pub hrt_ready: bool,
}

impl HvmStatus {
    /// Decodes x0..x3 of a `GetStateAndEvent` call: `Err` with the [`HvmError`] x0 names for a
    /// negative x0 (or [`HvmError::Failed`] for an unknown code), and [`HvmError::Failed`] for a
    /// non-negative x0 that is no [`TransState`].
    pub fn from_regs(regs: [u64; 4]) -> Result<HvmStatus, HvmError> {
        let [x0, x1, ..] = regs;
        if (x0 as i64) < 0 {
            return Err(HvmError::from_code(x0).unwrap_or(HvmError::Failed));
        }
        let trans = TransState::from_code(x0).ok_or(HvmError::Failed)?;
        Ok(HvmStatus { trans, hrt_ready: x1 == 1 })
    }

    /// Whether an invocation or a sync setup would be accepted now (Idle and the HRT ready).
    pub fn accepts_calls(self) -> bool {
        self.trans == TransState::Idle && self.hrt_ready
    }
}

impl fmt::Display for HvmStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrt = if self.hrt_ready { "ready" } else { "booting" };
        write!(f, "{:?} ({}), HRT {hrt}", self.trans, self.trans as u64)
    }
}

/// Why a completed invocation is not a success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// The set of HRT cores that reported (`done`) is not the one expected: none, a hole, a
    /// core beyond the status slots, or (sequential call) another core than the first. Happens
    /// when the HRT was reset while the call ran.
    UnexpectedDone { done: u64, expected: Option<u64> },
    /// The function failed on HRT core `core`: `status` is a negative [`HvmError`] code.
    Failed { core: usize, status: i64 },
}

impl CallError {
    /// The [`HvmError`] a failed function reported, if it is one.
    pub fn hvm_error(self) -> Option<HvmError> {
        match self {
            CallError::Failed { status, .. } => HvmError::from_code(status as u64),
            CallError::UnexpectedDone { .. } => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CallError::UnexpectedDone { done, expected: Some(expected) } => {
                write!(f, "HRT cores {done:#x} reported, expected {expected:#x} (was the HRT reset?)")
            }
            CallError::UnexpectedDone { done, expected: None } => {
                write!(f, "HRT cores {done:#x} reported: not the first n cores (was the HRT reset?)")
            }
            CallError::Failed { core, status } => match HvmError::from_code(status as u64) {
                Some(e) => write!(f, "the function failed on HRT core {core}: {e}"),
                None => write!(f, "the function failed on HRT core {core}: status {status}"),
            },
        }
    }
}

/// Bit mask of the status slots an [`Invocation`] has.
pub const ALL_SLOTS: u64 = (1 << MAX_HRT_CORES) - 1;

/// The result of a sequential invocation (0x20) that completed: HRT core 0 alone must have
/// reported, with status 0.
pub fn single_result(inv: &Invocation) -> Result<u64, CallError> {
    if inv.done != 1 {
        return Err(CallError::UnexpectedDone { done: inv.done, expected: Some(1) });
    }
    match inv.status[0] {
        0 => Ok(inv.result[0]),
        status => Err(CallError::Failed { core: 0, status }),
    }
}

/// The results of a parallel invocation (0x21) that completed, one per HRT core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParallelResults {
    cores: usize,
    results: [u64; MAX_HRT_CORES],
}

impl ParallelResults {
    /// HRT core n's result at index n.
    pub fn as_slice(&self) -> &[u64] {
        &self.results[..self.cores]
    }
}

/// The results of a parallel invocation (0x21) that completed. Every HRT core runs it, so the
/// cores that reported must be HRT cores 0..n for some n >= 1 (the ROS is not told how many HRT
/// cores there are: pass `expected_cores` to check n too), all with status 0.
pub fn parallel_results(inv: &Invocation, expected_cores: Option<usize>) -> Result<ParallelResults, CallError> {
    let done = inv.done;
    let expected = expected_cores.map(|n| if n >= 64 { u64::MAX } else { (1u64 << n) - 1 });
    let contiguous = done != 0 && done & done.wrapping_add(1) == 0;
    if !contiguous || done & !ALL_SLOTS != 0 || expected.is_some_and(|e| e != done) {
        return Err(CallError::UnexpectedDone { done, expected });
    }
    let cores = done.count_ones() as usize;
    if let Some(core) = (0..cores).find(|&core| inv.status[core] != 0) {
        return Err(CallError::Failed { core, status: inv.status[core] });
    }
    let mut results = [0; MAX_HRT_CORES];
    results[..cores].copy_from_slice(&inv.result[..cores]);
    Ok(ParallelResults { cores, results })
}

/// How the HRT reads a buffer passed to 0x20 / 0x21: an [`Invocation`] when it starts with
/// [`INVOCATION_MAGIC`], otherwise a NUL-terminated string. Looks at no byte after the first
/// one that differs from the magic (so never past a string's NUL: the magic holds none).
pub fn starts_with_invocation_magic(mut byte_at: impl FnMut(usize) -> u8) -> bool {
    INVOCATION_MAGIC.to_le_bytes().iter().enumerate().all(|(i, &m)| byte_at(i) == m)
}

/// The sub-operation of an asynchronous invocation: parallel (0x21) or on the first HRT core
/// (0x20).
pub fn invoke_sub_op(parallel: bool) -> SubOp {
    if parallel {
        SubOp::ParallelInvoke
    } else {
        SubOp::Invoke
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::invoke::function;
    use std::string::ToString;

    /// Exhaustive on purpose: a new state fails to compile here until it is listed in
    /// [`TransState::ALL`] (then the test below checks the order).
    fn position(s: TransState) -> usize {
        match s {
            TransState::Idle => 0,
            TransState::Call => 1,
            TransState::ParCall => 2,
            TransState::SyncSetup => 3,
            TransState::Sync => 4,
            TransState::SyncTeardown => 5,
            TransState::Merge => 6,
            TransState::TlsSync => 7,
        }
    }

    #[test]
    fn every_state_round_trips() {
        for (i, &s) in TransState::ALL.iter().enumerate() {
            assert_eq!(position(s), i);
            assert_eq!(s as u64, i as u64);
            assert_eq!(TransState::from_code(s as u64), Some(s));
        }
        assert_eq!(TransState::from_code(8), None);
    }

    #[test]
    fn status_decodes_state_readiness_and_errors() {
        assert_eq!(HvmStatus::from_regs([0, 1, 0, 0]), Ok(HvmStatus { trans: TransState::Idle, hrt_ready: true }));
        assert_eq!(HvmStatus::from_regs([4, 0, 0, 0]), Ok(HvmStatus { trans: TransState::Sync, hrt_ready: false }));
        assert_eq!(HvmStatus::from_regs([HvmError::WrongLevel.code(), 0, 0, 0]), Err(HvmError::WrongLevel));
        assert_eq!(HvmStatus::from_regs([-77i64 as u64, 0, 0, 0]), Err(HvmError::Failed));
        assert_eq!(HvmStatus::from_regs([99, 1, 0, 0]), Err(HvmError::Failed), "no such state");
        assert!(HvmStatus::from_regs([0, 1, 0, 0]).unwrap().accepts_calls());
        assert!(!HvmStatus::from_regs([0, 0, 0, 0]).unwrap().accepts_calls());
        assert!(!HvmStatus::from_regs([1, 1, 0, 0]).unwrap().accepts_calls());
        assert_eq!(HvmStatus::from_regs([2, 1, 0, 0]).unwrap().to_string(), "ParCall (2), HRT ready");
    }

    fn completed(done: u64, status: [i64; MAX_HRT_CORES], result: [u64; MAX_HRT_CORES]) -> Invocation {
        Invocation { done, status, result, ..Invocation::new(function::ADD, [1, 2, 0, 0, 0, 0]) }
    }

    #[test]
    fn a_sequential_call_needs_core_0_alone_and_status_0() {
        let mut result = [0; MAX_HRT_CORES];
        result[0] = 3;
        assert_eq!(single_result(&completed(1, [0; 8], result)), Ok(3));
        assert_eq!(
            single_result(&completed(0, [0; 8], result)),
            Err(CallError::UnexpectedDone { done: 0, expected: Some(1) }),
            "never ran (HRT reset)"
        );
        assert!(single_result(&completed(2, [0; 8], result)).is_err(), "ran on another core");
        assert!(single_result(&completed(3, [0; 8], result)).is_err(), "ran twice");
        let mut status = [0; MAX_HRT_CORES];
        status[0] = HvmError::BadAddress.code() as i64;
        let err = single_result(&completed(1, status, result)).unwrap_err();
        assert_eq!(err, CallError::Failed { core: 0, status: -5 });
        assert_eq!(err.hvm_error(), Some(HvmError::BadAddress));
        assert!(err.to_string().contains("BadAddress"), "{err}");
    }

    #[test]
    fn a_parallel_call_needs_the_first_n_cores_and_every_status_0() {
        let result = [5, 5, 5, 5, 0, 0, 0, 0];
        let ok = parallel_results(&completed(0b1111, [0; 8], result), None).unwrap();
        assert_eq!(ok.as_slice(), &[5, 5, 5, 5]);
        assert_eq!(parallel_results(&completed(0b1111, [0; 8], result), Some(4)).unwrap(), ok);
        assert_eq!(
            parallel_results(&completed(0b0111, [0; 8], result), Some(4)),
            Err(CallError::UnexpectedDone { done: 0b0111, expected: Some(0b1111) })
        );
        for done in [0, 0b1011, 0b0110, 1 << 8, 0x1ff] {
            assert!(parallel_results(&completed(done, [0; 8], result), None).is_err(), "{done:#b}");
        }
        assert_eq!(parallel_results(&completed(1, [0; 8], result), None).unwrap().as_slice(), &[5]);
        assert_eq!(parallel_results(&completed(ALL_SLOTS, [0; 8], [7; 8]), Some(8)).unwrap().as_slice(), &[7; 8]);
        let status = [0, 0, -6, 0, 0, 0, 0, 0];
        assert_eq!(
            parallel_results(&completed(0b1111, status, result), None),
            Err(CallError::Failed { core: 2, status: -6 })
        );
        // A status beyond the cores that ran is not looked at.
        let status = [0, 0, 0, 0, -1, 0, 0, 0];
        assert!(parallel_results(&completed(0b1111, status, result), None).is_ok());
    }

    #[test]
    fn buffers_are_told_apart_by_the_magic_without_reading_past_a_mismatch() {
        let inv = Invocation::new(function::PRINT, [0; 6]);
        let bytes = inv.magic.to_le_bytes();
        assert!(starts_with_invocation_magic(|i| bytes[i]));
        let text = b"hello world\n\0";
        let mut furthest = 0;
        assert!(!starts_with_invocation_magic(|i| {
            furthest = furthest.max(i);
            text[i]
        }));
        assert_eq!(furthest, 0, "'h' is not 'H': stops at once");
        let short = b"HVM\0";
        assert!(!starts_with_invocation_magic(|i| short[i]), "a prefix of the magic ends at its NUL");
        assert_eq!(invoke_sub_op(true), SubOp::ParallelInvoke);
        assert_eq!(invoke_sub_op(false), SubOp::Invoke);
    }
}
