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
    /// New on AArch64 (Palacios has no ready state, §4.10): an HRT core finished booting and
    /// takes upcalls. HRT EL1 only.
    HrtReady = 0x61,
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
            0x61 => HrtReady,
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
    /// A defined sub-operation this hypervisor does not implement yet.
    NotImplemented = -9,
    /// The caller's exception level may not issue this sub-operation (e.g. a merge from the
    /// ROS kernel rather than a process, or any call from ROS code running in the HRT).
    WrongLevel = -10,
}

impl HvmError {
    /// The value placed in x0.
    pub const fn code(self) -> u64 {
        self as i64 as u64
    }
}

/// `compatible` of the ROS device-tree node that gives the doorbell page; its `reg` is one
/// 64-bit address and one 64-bit size. A ROS process maps it from `/dev/mem` and makes a call
/// with one plain single-register `str` or `ldr` to its first word, x0..x7 holding the call.
pub const DOORBELL_COMPATIBLE: &str = "hvm-ros,doorbell";

/// SMCCC function id of the HRT console (HRT EL1 only; not a 0xf00d sub-operation): x1 = IPA of
/// the bytes, x2 = their length (at most [`HRT_CONSOLE_MAX`]). The hypervisor prints every
/// complete line with the prefix `(HRT) `. Returns 0 in x0, or an [`HvmError`] code.
pub const HRT_CONSOLE_ID: u64 = SMCCC_FAST_CALL | SMCCC_64BIT | (SMCCC_OWNER_VENDOR_HYP << 24) | 0xF00E;
/// Most bytes one [`HRT_CONSOLE_ID`] call may pass.
pub const HRT_CONSOLE_MAX: u64 = 256;

/// The HRT's boot protocol (DESIGN.md §7, palacios-hvm.md §7.12).
///
/// Every HRT core enters the image's ELF entry point at EL1h with D, A, I, F masked and the MMU
/// on: the hypervisor builds the first translation tables (TTBR1_EL1 only; TTBR0 is disabled
/// with TCR_EL1.EPD0 until a merge):
/// - [`hrt_boot::LINEAR_MAP_BASE`] + IPA maps guest-physical addresses: the first GiB (the
///   device space: GIC, UART) as Device-nGnRE, ROS and HRT RAM as Normal write-back memory;
/// - [`hrt_boot::IMAGE_BASE`] maps HRT RAM from its first byte (the image is linked there; its
///   `PT_LOAD` segments are placed at `hrt_mem_start + (p_vaddr - IMAGE_BASE)`).
///
/// MAIR_EL1 attribute 0 is Normal write-back, attribute 4 Device-nGnRE: the indexes Linux (the
/// ROS) uses for the same memory types, so a merge can take over the ROS's MAIR_EL1 without
/// changing the meaning of the HRT's own mappings. SP_EL1 is the core's
/// stack top ([`hrt_boot::STACK_SIZE`] bytes), x0 the boot info's virtual address
/// ([`HrtBootInfo`]), x1 the HRT core index (0 for the first HRT core), x2 the vCPU id.
pub mod hrt_boot {
    /// Virtual address of guest-physical address 0 in the HRT.
    pub const LINEAR_MAP_BASE: u64 = 0xffff_8000_0000_0000;
    /// Virtual address of the first byte of HRT RAM, where the HRT image is linked.
    pub const IMAGE_BASE: u64 = 0xffff_ff80_0000_0000;
    /// Each HRT core's boot stack.
    pub const STACK_SIZE: u64 = 64 << 10;
    /// [`super::HrtBootInfo::magic`].
    pub const MAGIC: u64 = u64::from_le_bytes(*b"HRTBOOT1");
    /// Bytes of the HRT command line kept in the boot info (NUL-terminated).
    pub const CMDLINE_MAX: usize = 256;
    /// MAIR_EL1 attribute indexes.
    pub const ATTR_NORMAL: u64 = 0;
    pub const ATTR_DEVICE: u64 = 4;
}

/// What the hypervisor tells every HRT core at boot (x0 points at it; the AArch64 counterpart of
/// Palacios' `mb_info_hrt_t`). Addresses are guest-physical (IPA) unless named `_va`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct HrtBootInfo {
    /// [`hrt_boot::MAGIC`].
    pub magic: u64,
    /// Number of HRT cores.
    pub hrt_cores: u64,
    /// vCPU id of the first HRT core (= the number of ROS vCPUs).
    pub first_hrt_vcpu: u64,
    pub hrt_mem_start: u64,
    pub hrt_mem_size: u64,
    pub ros_mem_start: u64,
    pub ros_mem_size: u64,
    /// Virtual address of IPA 0 ([`hrt_boot::LINEAR_MAP_BASE`]).
    pub linear_map_va: u64,
    /// Virtual address of `hrt_mem_start` ([`hrt_boot::IMAGE_BASE`]).
    pub image_va: u64,
    /// HRT RAM free for the HRT's own use (heap): after the image, below the boot state.
    pub free_start: u64,
    pub free_end: u64,
    /// The comm page (4 KiB, in HRT RAM): upcall requests, palacios-hvm.md §1.8.
    pub comm_page: u64,
    /// CNTFRQ_EL0, Hz.
    pub counter_frequency: u64,
    /// CNTVCT_EL0 when the hypervisor started this HRT boot (the HRT's boot time counts from
    /// here).
    pub boot_start_counter: u64,
    /// The virtual GIC: distributor, first redistributor frame and the stride between frames
    /// (an HRT core's frame is `gicr_base + vcpu * gicr_stride`).
    pub gicd_base: u64,
    pub gicr_base: u64,
    pub gicr_stride: u64,
    /// The SGI the hypervisor raises to signal an upcall (Palacios' `hrt_int_vector`).
    pub upcall_intid: u64,
    /// The HRT's command line (the guest-loader bootargs after the word `hrt`), NUL-terminated.
    pub cmdline: [u8; hrt_boot::CMDLINE_MAX],
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
///
/// Forwarding (palacios-hvm.md §4.5): one event at a time, VM-wide.
/// 1. The HRT posts it: [`SubOp::PostRosEvent`] (0x10), x2 = the virtual address (at HRT EL1)
///    of a `RosEvent`; refused with [`HvmError::Busy`] unless no event is pending.
/// 2. The ROS process, waiting for its call, polls [`SubOp::GetStateAndEvent`] (0xf) with x2 =
///    its own `RosEvent` buffer and finds the event: a system call (`syscall[0]` = arm64
///    number, `[1..7]` = x0..x5), a page fault (touch the page: read, or write for
///    [`PageFaultAction::Write`]) or an HRT exception (report it).
/// 3. It answers [`SubOp::EventComplete`] (0x1f), x2 = the result (a system call's x0, 0 for
///    a fault): the event becomes `Done` with `last_ros_event_result` = x2.
/// 4. The HRT polls 0xf (x2 = its buffer) until the event is `Done`, takes the result and
///    acknowledges with [`SubOp::AckEventResult`] (0x1e): the event is `None` again.
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

/// `HRT_EXCEPTION`: on AArch64 `vector` is the ESR_EL1 of the exception (or [`HRT_FAIL_VEC`]
/// for one in the HRT itself), and `far` its FAR_EL1 (new: Palacios had no room for CR2 here).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExceptionEvent {
    pub pc: u64,
    pub vector: u64,
    pub far: u64,
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

/// Invocations (0x20 / 0x21 / 0x28 / 0x29 / 0x2f): the comm page, the invocation buffer and
/// the synchronous channel (palacios-hvm.md §2.4, §3.4, §4.3, §4.4).
///
/// A ROS process passes the *virtual address* of an [`invoke::Invocation`] (or of a
/// [`invoke::SyncChannel`]) in x2; it must not cross a page boundary. The hypervisor translates
/// it through the caller's stage-1 tables, writes a request into the comm page and raises the
/// upcall SGI on the HRT core(s). The HRT reads the buffer in ROS RAM through its linear map,
/// reaches the process's other memory (string and buffer arguments) by walking the process's
/// tables (`ros_ttbr0` in the comm page), runs the function, writes its status and result into
/// the buffer and answers `CallDone` (0x2f). A buffer whose first word is not
/// [`invoke::INVOCATION_MAGIC`] is a NUL-terminated string, which the HRT prints (what
/// Palacios' test program passes, as Nautilus does).
pub mod invoke {
    /// Most HRT cores a hybrid VM has (one status and result slot each).
    pub const MAX_HRT_CORES: usize = 8;
    /// [`Invocation::magic`].
    pub const INVOCATION_MAGIC: u64 = u64::from_le_bytes(*b"HVMCALL1");
    /// [`SyncChannel::magic`].
    pub const SYNC_MAGIC: u64 = u64::from_le_bytes(*b"HVMSYNC1");

    /// The HRT's built-in functions ([`Invocation::function`]). Addresses are the calling
    /// process's virtual addresses.
    pub mod function {
        /// Print the NUL-terminated string at `args[0]` (at most 255 bytes).
        pub const PRINT: u64 = 0;
        /// `args[0] + args[1]` (wrapping) as the result.
        pub const ADD: u64 = 1;
        /// Fletcher-64 of the `args[1]` bytes at `args[0]` as the result.
        pub const CHECKSUM: u64 = 2;
        /// Spin for `args[0]` microseconds (at most one second).
        pub const SPIN_US: u64 = 3;
        /// Call a function of the calling process at HRT EL0, in the merged address space
        /// (after [`super::super::SubOp::Merge`]): `args[0]` = its address, `args[1]` = the top
        /// of a stack in the process's memory (16-byte aligned), `args[2..6]` = its x0..x3.
        /// Its x0 at return is the result. Its system calls and page faults are performed by
        /// the process (events), any other exception fails the call with an HRT exception event.
        pub const CALL_ROS: u64 = 4;
        /// Raise signal `args[1]` (non-zero) into the calling process `args[0]` times, each
        /// once the previous one was delivered (one signal is pending at a time); the result
        /// is the number raised. For tests of signal delivery (`abi::signal`).
        pub const RAISE_SIGNALS: u64 = 5;
    }

    /// A parallel [`function::CALL_ROS`] gives every HRT core the same stack argument: HRT
    /// core n runs on `args[1] - n * CALL_ROS_STACK_STRIDE` (the caller provides that many
    /// bytes per HRT core below the top).
    pub const CALL_ROS_STACK_STRIDE: u64 = 256 << 10;

    /// The return address (x30) a [`function::CALL_ROS`] function starts with: in page 0,
    /// which Linux never maps, so its `ret` takes an instruction abort that the HRT reads as
    /// the return.
    pub const ROS_RETURN_ADDRESS: u64 = 0x8;

    /// One call of a built-in function: written by the process, read and answered by the HRT.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Invocation {
        pub magic: u64,
        pub function: u64,
        pub args: [u64; 6],
        /// Bit n set: HRT core n finished (its status and result are valid).
        pub done: u64,
        /// Per HRT core: 0, or a negative [`super::HvmError`] code.
        pub status: [i64; MAX_HRT_CORES],
        /// Per HRT core: the function's result.
        pub result: [u64; MAX_HRT_CORES],
    }

    impl Invocation {
        pub const fn new(function: u64, args: [u64; 6]) -> Self {
            Self {
                magic: INVOCATION_MAGIC,
                function,
                args,
                done: 0,
                status: [0; MAX_HRT_CORES],
                result: [0; MAX_HRT_CORES],
            }
        }
    }

    /// The synchronous channel (`0x28` sets it up, `0x29` tears it down): while it is up, the
    /// first HRT core polls it, and a call is pure shared memory: the process fills
    /// `invocation` and increments `issued`; the HRT runs it and sets `completed` to `issued`.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SyncChannel {
        pub magic: u64,
        pub issued: u64,
        pub completed: u64,
        pub invocation: Invocation,
    }

    impl SyncChannel {
        pub const fn new() -> Self {
            Self { magic: SYNC_MAGIC, issued: 0, completed: 0, invocation: Invocation::new(function::ADD, [0; 6]) }
        }
    }

    impl Default for SyncChannel {
        fn default() -> Self {
            Self::new()
        }
    }

    /// The comm page (4 KiB in HRT RAM, `HrtBootInfo::comm_page`): the request of the last
    /// upcall. Written by the hypervisor only, read by the HRT.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct CommPage {
        /// Incremented for every request: an HRT core that sees a new value has a new request.
        pub seq: u64,
        /// The sub-operation that caused the upcall (Palacios' `page[0]`).
        pub op: u64,
        /// Guest-physical address of the [`Invocation`] or [`SyncChannel`] (Palacios'
        /// `page[1]`, which was a ROS address).
        pub arg: u64,
        /// The calling process's TTBR0_EL1 translation table base (ASID and CnP cleared),
        /// TCR_EL1 and MAIR_EL1: enough to walk its page tables.
        pub ros_ttbr0: u64,
        pub ros_tcr: u64,
        pub ros_mair: u64,
        /// The ASID the process runs with at EL0 (TTBR1_EL1 bits 63:48 at the call; Linux sets
        /// TCR_EL1.A1): a merge tags the HRT's TTBR0 with it, so the process's by-ASID TLB
        /// invalidations, replayed for the HRT, hit the HRT's entries.
        pub ros_asid: u64,
        /// For [`super::SubOp::MirrorTls`]: the calling thread's TPIDR_EL0 and TPIDRRO_EL0.
        pub tpidr_el0: u64,
        pub tpidrro_el0: u64,
    }
}

/// Signals from the HRT into a ROS process (0x40 register, 0x41 raise, 0x60 return;
/// palacios-hvm.md §4.6, §7.7).
///
/// A process registers a handler entry point (x2) and the top of a stack (x3, in its memory;
/// the hypervisor checks it can write a frame there, and refuses the registration otherwise).
/// A raised signal (x2 = code, non-zero; one pending at a time, Busy otherwise) is delivered
/// when a ROS vCPU next enters that process at EL0, never lost: the hypervisor writes a
/// [`signal::SignalFrame`] at `(stack top - size) & !15` and enters the handler with SP = the
/// frame, x0 = the code, x1 = the frame's address. The handler saves what else it uses
/// (FP/SIMD) and returns with SignalReturn (0x60) through the doorbell, x2 = the frame's
/// address: the hypervisor restores x0..x30, SP, PC and the condition flags from it; the
/// process stays at EL0 with its interrupt masks whatever the (user-writable) frame says.
pub mod signal {
    /// The interrupted context, as the hypervisor saves it.
    #[repr(C)]
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct SignalFrame {
        pub code: u64,
        pub x: [u64; 31],
        pub sp: u64,
        pub pc: u64,
        pub pstate: u64,
        /// Keeps the size a multiple of 16 (the frame is the handler's stack pointer).
        pub reserved: u64,
    }

    /// Bytes of a [`SignalFrame`].
    pub const FRAME_SIZE: usize = core::mem::size_of::<SignalFrame>();
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
    fn hrt_boot_info_is_plain_u64_fields_then_the_command_line() {
        assert_eq!(offset_of!(HrtBootInfo, cmdline), 18 * 8);
        assert_eq!(size_of::<HrtBootInfo>(), 18 * 8 + hrt_boot::CMDLINE_MAX);
        assert_eq!(HRT_CONSOLE_ID, 0xC600_F00E);
    }

    #[test]
    fn invocation_layouts_are_fixed() {
        use core::mem::size_of;
        assert_eq!(size_of::<invoke::Invocation>(), 200);
        assert_eq!(offset_of!(invoke::Invocation, done), 64);
        assert_eq!(offset_of!(invoke::Invocation, status), 72);
        assert_eq!(offset_of!(invoke::Invocation, result), 136);
        assert_eq!(size_of::<invoke::SyncChannel>(), 224);
        assert_eq!(offset_of!(invoke::SyncChannel, invocation), 24);
        assert_eq!(size_of::<invoke::CommPage>(), 72);
        assert_eq!(offset_of!(invoke::CommPage, ros_asid), 48);
        assert_eq!(offset_of!(ExceptionEvent, far), 16);
        assert_eq!(size_of::<RosEvent>(), 80, "the union still fits");
    }

    #[test]
    fn the_signal_frame_is_288_bytes_in_its_documented_order() {
        assert_eq!(signal::FRAME_SIZE, 288);
        assert_eq!(offset_of!(signal::SignalFrame, x), 8);
        assert_eq!(offset_of!(signal::SignalFrame, sp), 256);
        assert_eq!(offset_of!(signal::SignalFrame, pc), 264);
        assert_eq!(offset_of!(signal::SignalFrame, pstate), 272);
    }

    #[test]
    fn error_codes_are_negative_and_distinct_from_ok() {
        assert_eq!(HvmError::Failed.code(), u64::MAX);
        assert_ne!(HvmError::BadAddress.code(), HVM_OK);
    }
}
