//! The 0xf00d hypercall ABI, ported from Palacios to AArch64 (see `palacios-hvm.md` §2, §3, §7).
//!
//! Calling convention: `x0` = [`HVM_HCALL_ID`], `x1` = sub-operation ([`SubOp`]), `x2..x7` =
//! arguments. On return `x0` is [`HVM_OK`] or an [`HvmError`] code (or the transaction state
//! for [`SubOp::GetStateAndEvent`]); it is never the caller's own id.

/// SMCCC function id of the HVM hypercall: fast call (bit 31), SMC64 (bit 30), owner 6
/// "vendor specific hypervisor service" (bits 29:24), function number 0xF00D (bits 15:0).
pub const HVM_HCALL_ID: u64 = SMCCC_FAST_CALL | SMCCC_64BIT | (SMCCC_OWNER_VENDOR_HYP << 24) | 0xF00D;

const SMCCC_FAST_CALL: u64 = 1 << 31;
const SMCCC_64BIT: u64 = 1 << 30;
const SMCCC_OWNER_VENDOR_HYP: u64 = 6;

/// Success.
pub const HVM_OK: u64 = 0;

/// Sub-operation codes (x1). Values are Palacios' except where AArch64 needs its own.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubOp {
    Null = 0x0,
    ResetRos = 0x1,
    ResetHrt = 0x2,
    ResetBoth = 0x3,
    InstallHrtImage = 0x8,
    GetStateAndEvent = 0xf,
    PostRosEvent = 0x10,
    AckEventResult = 0x1e,
    EventComplete = 0x1f,
    Invoke = 0x20,
    ParallelInvoke = 0x21,
    SyncSetup = 0x28,
    SyncTeardown = 0x29,
    CallDone = 0x2f,
    Merge = 0x30,
    Unmerge = 0x31,
    MergeDone = 0x3f,
    SetSignalHandler = 0x40,
    RaiseSignal = 0x41,
    /// AArch64 replacement for 0x51 (mirror GDT + FS base): mirror TPIDR_EL0 / TPIDRRO_EL0.
    MirrorTls = 0x51,
    /// AArch64 replacement for 0x53 (restore GDT): drop the mirrored TLS registers.
    UnmirrorTls = 0x53,
    /// HRT acknowledges a TLS mirror request (Palacios 0x5f).
    TlsSyncDone = 0x5f,
    /// New on AArch64: return from a signal handler (EL0 cannot ERET).
    SignalReturn = 0x60,
}

impl SubOp {
    /// Decodes x1; `None` for codes the protocol does not define.
    pub fn from_code(code: u64) -> Option<Self> {
        use SubOp::*;
        Some(match code {
            0x0 => Null,
            0x1 => ResetRos,
            0x2 => ResetHrt,
            0x3 => ResetBoth,
            0x8 => InstallHrtImage,
            0xf => GetStateAndEvent,
            0x10 => PostRosEvent,
            0x1e => AckEventResult,
            0x1f => EventComplete,
            0x20 => Invoke,
            0x21 => ParallelInvoke,
            0x28 => SyncSetup,
            0x29 => SyncTeardown,
            0x2f => CallDone,
            0x30 => Merge,
            0x31 => Unmerge,
            0x3f => MergeDone,
            0x40 => SetSignalHandler,
            0x41 => RaiseSignal,
            0x51 => MirrorTls,
            0x53 => UnmirrorTls,
            0x5f => TlsSyncDone,
            0x60 => SignalReturn,
            _ => return None,
        })
    }
}

/// Error codes returned in x0. Palacios returns -1 for every failure; we keep -1 as the
/// generic code and add distinct negative values so a caller can tell why.
#[repr(i64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HvmError {
    /// Generic failure (Palacios' -1).
    Failed = -1,
    /// x1 is not a known sub-operation.
    UnknownSubOp = -2,
    /// The caller's partition may not issue this sub-operation.
    WrongPartition = -3,
    /// The transaction state machine is not in the state this sub-operation needs.
    WrongState = -4,
    /// A guest pointer or size argument is invalid (unmapped, out of RAM, too large).
    BadAddress = -5,
    /// The argument values are invalid (e.g. signal code 0).
    InvalidArgument = -6,
    /// The VM has no HVM configured.
    NotHvm = -7,
    /// Something is already pending (event, signal).
    Busy = -8,
}

impl HvmError {
    /// The value placed in x0.
    pub const fn code(self) -> u64 {
        self as i64 as u64
    }
}

/// Transaction state (`trans_state`, Palacios §4.1) returned by [`SubOp::GetStateAndEvent`].
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransState {
    Idle = 0,
    Call = 1,
    ParCall = 2,
    SyncSetup = 3,
    Sync = 4,
    SyncTeardown = 5,
    Merge = 6,
    TlsSync = 7,
}

/// Event types of [`RosEvent::event_type`] (Palacios enum values).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RosEventType {
    None = 0,
    PageFault = 1,
    Syscall = 2,
    HrtException = 3,
    HrtThreadExit = 4,
    Done = 5,
}

/// Page-fault access kinds (`page_fault.action`); AArch64 adds execute.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageFaultAction {
    Read = 0,
    Write = 1,
    Exec = 2,
}

/// Vector value meaning "exception in the HRT itself" (Palacios `HRT_FAIL_VEC`).
pub const HRT_FAIL_VEC: u64 = 0x1d;

/// `struct v3_ros_event`: 80 bytes, Palacios field order, AArch64 names (pc for rip, far for cr2).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct RosEvent {
    pub event_type: u32,
    _pad: u32,
    pub last_ros_event_result: u64,
    pub payload: RosEventPayload,
}

/// The union at offset 16 of [`RosEvent`].
#[repr(C)]
#[derive(Clone, Copy)]
pub union RosEventPayload {
    pub page_fault: PageFaultEvent,
    /// `args[0]` = aarch64 syscall number (x8), `args[1..7]` = x0..x5, `args[7]` unused.
    pub syscall: [u64; 8],
    pub exception: ExceptionEvent,
    pub thread_exit_id: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFaultEvent {
    pub pc: u64,
    pub far: u64,
    pub action: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionEvent {
    pub pc: u64,
    pub vector: u64,
}

impl RosEvent {
    /// An empty event (`ROS_NONE`).
    pub const fn none() -> Self {
        Self {
            event_type: RosEventType::None as u32,
            _pad: 0,
            last_ros_event_result: 0,
            payload: RosEventPayload { syscall: [0; 8] },
        }
    }
}

impl Default for RosEvent {
    fn default() -> Self {
        Self::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn hcall_id_is_the_smccc_vendor_hyp_fast_call() {
        assert_eq!(HVM_HCALL_ID, 0xC600_F00D);
    }

    #[test]
    fn ros_event_layout_matches_palacios() {
        assert_eq!(size_of::<RosEvent>(), 80);
        assert_eq!(offset_of!(RosEvent, last_ros_event_result), 8);
        assert_eq!(offset_of!(RosEvent, payload), 16);
        assert_eq!(offset_of!(PageFaultEvent, far), 8);
        assert_eq!(offset_of!(PageFaultEvent, action), 16);
        assert_eq!(offset_of!(ExceptionEvent, vector), 8);
    }

    #[test]
    fn every_sub_op_round_trips_through_its_code() {
        for code in 0..0x100u64 {
            if let Some(op) = SubOp::from_code(code) {
                assert_eq!(op as u64, code);
            }
        }
        assert_eq!(SubOp::from_code(0x42), None);
    }

    #[test]
    fn error_codes_are_negative_and_distinct_from_ok() {
        assert_eq!(HvmError::Failed.code(), u64::MAX);
        assert_ne!(HvmError::BadAddress.code(), HVM_OK);
    }
}
