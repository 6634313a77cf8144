//! ROS code at HRT EL0 (DESIGN.md §7, palacios-hvm.md §7.5, §7.9): `function::CALL_ROS` runs a
//! function of the merged process (merge.rs) on this core. Linux marks every user page PXN, so
//! the process's code cannot run at EL1 over its tables: it runs at EL0, and this kernel, at
//! EL1, handles what it traps on.
//!
//! [`call_ros`] enters EL0 through asm/el0.S (a setjmp: the kernel context stays on this core's
//! stack) with ELR = the function, SP_EL0 = the stack the process gave, x0..x3 = its arguments,
//! x30 = `ROS_RETURN_ADDRESS`, TPIDR_EL0 / TPIDRRO_EL0 = the mirrored ones (tls.rs), every
//! other general register 0, IRQs unmasked. The lower-EL vectors save the EL0 frame and call
//! [`hrt_el0_exception`]:
//!
//! | from EL0 | what happens | then |
//! |---|---|---|
//! | IRQ (heartbeat tick, upcall SGI) | handled as at EL1: only noted | EL0 resumes |
//! | `svc` | forwarded as a system call (events.rs), its result in x0 | EL0 resumes after the `svc` |
//! | instruction abort at `ROS_RETURN_ADDRESS` | the function returned: x0 is the result | the call ends, status 0 |
//! | translation, access-flag or permission fault in the TTBR0 half | forwarded as a page fault (read, write or exec) | the instruction is retried |
//! | the same address faulting again more than [`FAULT_RETRIES`] times in a row, anything else | an HRT exception event (ESR, pc, FAR or 0), answered and acknowledged | the call ends: `Failed`, result = ESR |
//!
//! Ending a call pops the kernel context (a longjmp) and the invocation is answered as usual:
//! the HRT stays healthy and the next call works. While an event waits for the process, IRQs
//! are unmasked, so the heartbeat and upcalls are still taken.

use core::ffi::c_void;
use core::fmt;
use core::mem::{offset_of, size_of};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    ReadWriteable, Readable, Writeable, CNTKCTL_EL1, CPACR_EL1, DAIF, ESR_EL1, FAR_EL1, SCTLR_EL1, TPIDRRO_EL0,
    TPIDR_EL0,
};
use hvm_ros_lib::abi::invoke::ROS_RETURN_ADDRESS;
use hvm_ros_lib::abi::{HvmError, PageFaultAction};

use crate::events::{self, Event, ForwardError};
use crate::{cpu, exceptions, merge, tls};

/// The kinds of exception from EL0 (vectors.S `from_el0`).
pub const EL0_SYNC: u64 = 0;
pub const EL0_IRQ: u64 = 1;

/// What [`hrt_el0_exception`] tells asm/el0.S: resume EL0 from the frame, or end the call.
pub const RESUME: u64 = 0;
const END: u64 = 1;

/// The stack each core of a CALL_ROS gets below the one stack top the invocation passes: HRT
/// core n runs on `args[1] - n * CORE_STACK_STRIDE`, so the cores of a parallel invocation
/// (0x21, the same arguments for all) do not share a stack. A single-core call runs on core 0,
/// on `args[1]` itself. The process reserves that much per core: hvm-ros-lib's
/// `ros::merged::CALL_ROS_STACK_SIZE` (the ABI does not name it yet).
pub const CORE_STACK_STRIDE: u64 = hvm_ros_lib::abi::invoke::CALL_ROS_STACK_STRIDE;

/// How many times in a row the same address may fault again, each fault forwarded and
/// answered, before the fault counts as one the process cannot resolve.
pub const FAULT_RETRIES: u32 = 3;

/// ESR_EL1.EC [31:26] and the classes handled.
const ESR_EC_SHIFT: u32 = 26;
const ESR_EC_MASK: u64 = 0x3f;
const EC_SVC64: u64 = 0x15;
const EC_IABT_LOWER: u64 = 0x20;
const EC_PC_ALIGNMENT: u64 = 0x22;
const EC_DABT_LOWER: u64 = 0x24;
/// ISS of an abort: WnR [6] (a data abort's write) and the fault status code [5:0], whose
/// bits [5:2] give the kind and [1:0] the level.
const ISS_WNR: u64 = 1 << 6;
/// ISS.FnV [10] of a data abort: FAR_EL1 is not valid.
const ISS_FNV: u64 = 1 << 10;
const ISS_FSC_KIND_MASK: u64 = 0b11_1100;
const FSC_TRANSLATION: u64 = 0b00_0100;
const FSC_ACCESS_FLAG: u64 = 0b00_1000;
const FSC_PERMISSION: u64 = 0b00_1100;
/// VA bit 55 selects the half (with or without a tag in the top byte): 0 is TTBR0's, the
/// process's; 1 is TTBR1's, this kernel's.
const VA_TTBR1_BIT: u64 = 1 << 55;

/// SPSR_EL1 for the entry: M [3:0] = EL0t (AArch64 EL0), D, A, I, F [9:6] clear (unmasked).
const SPSR_EL0T: u64 = 0b0000;

/// The general registers of the AArch64 calling conventions involved: a function's first
/// arguments (x0..x3 here) and its result (x0), the link register, and a system call's number
/// (x8) and arguments (x0..x5).
const CALL_ARGS: usize = 4;
const RESULT_REG: usize = 0;
const LINK_REG: usize = 30;
const SYSCALL_NUMBER_REG: usize = 8;
const SYSCALL_ARGS: usize = 6;

/// The EL0 state an exception saves (asm/el0.S; the offsets below are its operands).
#[repr(C)]
pub struct El0Frame {
    pub x: [u64; 31],
    pub sp: u64,
    pub elr: u64,
    pub spsr: u64,
}

pub const FRAME_SIZE: usize = size_of::<El0Frame>();
pub const FRAME_X30: usize = offset_of!(El0Frame, x) + 30 * size_of::<u64>();
pub const FRAME_SP: usize = offset_of!(El0Frame, sp);
pub const FRAME_ELR: usize = offset_of!(El0Frame, elr);
/// hrt_el0_call's kernel context: x19..x30 (12 words), the `RosCall`, one word of padding.
pub const KERNEL_CONTEXT: usize = 14 * size_of::<u64>();
pub const KERNEL_CONTEXT_CALL: usize = 12 * size_of::<u64>();

// What asm/el0.S relies on: x0..x30 from offset 0 (it spells out x2..x29), SP_EL0 right after
// x30 and SPSR_EL1 right after ELR_EL1 (paired loads and stores), 16-byte multiples (the stack).
const _: () = assert!(offset_of!(El0Frame, x) == 0);
const _: () = assert!(FRAME_SP == FRAME_X30 + size_of::<u64>());
const _: () = assert!(offset_of!(El0Frame, spsr) == FRAME_ELR + size_of::<u64>());
const _: () = assert!(FRAME_SIZE.is_multiple_of(16) && KERNEL_CONTEXT.is_multiple_of(16));

impl El0Frame {
    /// The entry into the function of a CALL_ROS on HRT core `core`: `args[0]` = its address,
    /// `args[1]` = the top of the stack area (see [`CORE_STACK_STRIDE`]), `args[2..6]` = x0..x3.
    fn entry(args: &[u64; 6], core: usize) -> Self {
        let mut x = [0; 31];
        x[..CALL_ARGS].copy_from_slice(&args[2..2 + CALL_ARGS]);
        // Its `ret` lands in page 0, which Linux never maps: the instruction abort there is
        // the return.
        x[LINK_REG] = ROS_RETURN_ADDRESS;
        let sp = args[1].wrapping_sub(core as u64 * CORE_STACK_STRIDE);
        Self { x, sp, elr: args[0], spsr: SPSR_EL0T }
    }
}

unsafe extern "C" {
    /// asm/el0.S: enters EL0 through `frame`, returns when [`hrt_el0_exception`] ends the call.
    /// `call` (a [`RosCall`]) is only handed on to it: opaque to the assembly.
    fn hrt_el0_call(frame: *const El0Frame, call: *mut c_void);
}

/// Prepares this core for ROS code at EL0, once at boot: FP/SIMD untrapped (ROS code uses it
/// freely; this kernel is soft-float and never touches it), and the EL0 controls Linux gives its
/// processes, so their code behaves here as on a ROS core: CTR_EL0 readable and `DC ZVA`
/// allowed (glibc's string functions pick their variants on the ROS from them), cache
/// maintenance by VA allowed (JITs, `__clear_cache`), WFE and WFI not trapped to EL1 (spinning
/// locks), and the virtual counter readable (the vDSO's `clock_gettime`).
pub fn init_core() {
    CPACR_EL1.write(CPACR_EL1::FPEN::TrapNothing);
    SCTLR_EL1.modify(
        SCTLR_EL1::UCI::DontTrap
            + SCTLR_EL1::UCT::DontTrap
            + SCTLR_EL1::DZE::DontTrap
            + SCTLR_EL1::NTWE::DontTrap
            + SCTLR_EL1::NTWI::DontTrap,
    );
    CNTKCTL_EL1.modify(CNTKCTL_EL1::EL0VCTEN::TrappedNone);
    barrier::isb(barrier::SY);
}

/// The system call or page fault a failed forwarding was for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forwarded {
    Syscall { number: u64 },
    PageFault { far: u64 },
}

/// Why a CALL_ROS failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RosCallError {
    /// No process is merged (or the last merge was refused): nothing ran.
    NotMerged,
    /// The calling process is not the merged one: nothing ran.
    OtherProcess { merged: u64, caller: u64 },
    /// The ROS code took an exception the process cannot resolve (`unresolved_fault`: a page
    /// fault that kept coming back, or one outside the process's half); `report` is how
    /// forwarding the HRT exception event went.
    Exception { esr: u64, pc: u64, far: u64, unresolved_fault: bool, report: Result<(), ForwardError> },
    /// The hypervisor refused to forward an event: the call cannot go on.
    Forwarding { what: Forwarded, esr: u64, pc: u64, error: ForwardError },
}

impl RosCallError {
    /// The invocation's status: `WrongState` when nothing ran, `Failed` after an exception, the
    /// hypervisor's code when it refused an event.
    pub fn status(&self) -> i64 {
        match self {
            Self::NotMerged | Self::OtherProcess { .. } => HvmError::WrongState as i64,
            Self::Exception { .. } => HvmError::Failed as i64,
            Self::Forwarding { error, .. } => error.error.status(),
        }
    }

    /// The invocation's result: the ESR_EL1 of the exception that ended the call, else 0.
    pub fn result(&self) -> u64 {
        match *self {
            Self::NotMerged | Self::OtherProcess { .. } => 0,
            Self::Exception { esr, .. } | Self::Forwarding { esr, .. } => esr,
        }
    }
}

impl fmt::Display for RosCallError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Self::NotMerged => write!(f, "no process is merged"),
            Self::OtherProcess { merged, caller } => {
                write!(f, "process {caller:#x} is not the merged one ({merged:#x})")
            }
            Self::Exception { esr, pc, far, unresolved_fault, report } => {
                let what = if unresolved_fault { "a page fault the process did not resolve" } else { "an exception" };
                let ec = (esr >> ESR_EC_SHIFT) & ESR_EC_MASK;
                write!(
                    f,
                    "ROS code took {what} at EL0: ESR_EL1 {esr:#x} (EC {ec:#x}) at pc {pc:#x}, FAR_EL1 {far:#x}"
                )?;
                if let Err(error) = report {
                    write!(f, "; reporting it to the process: {error}")?;
                }
                Ok(())
            }
            Self::Forwarding { what, pc, error, .. } => {
                match what {
                    Forwarded::Syscall { number } => write!(f, "forwarding system call {number}")?,
                    Forwarded::PageFault { far } => write!(f, "forwarding a page fault at {far:#x}")?,
                }
                write!(f, " (pc {pc:#x}): {error}")
            }
        }
    }
}

/// Runs the function `args` describes (see [`El0Frame::entry`]) at EL0 on this core (HRT core
/// `core`) in the merged address space, for process `process` (the caller's TTBR0 table base);
/// its x0 at return. Not bounded in time: the function runs as long as it runs.
pub fn call_ros(args: &[u64; 6], process: u64, core: usize, counter_frequency: u64) -> Result<u64, RosCallError> {
    let merged = merge::apply_on_this_core().ok_or(RosCallError::NotMerged)?;
    if merged.base != process {
        return Err(RosCallError::OtherProcess { merged: merged.base, caller: process });
    }
    let thread = tls::mirrored();
    TPIDR_EL0.set(thread.tpidr_el0);
    TPIDRRO_EL0.set(thread.tpidrro_el0);
    let frame = El0Frame::entry(args, core);
    let mut call = RosCall { counter_frequency, last_fault: None, repeats: 0, outcome: None };
    // The exit comes from an exception handler, with its masks: the caller's come back.
    let daif = DAIF.get();
    // SAFETY: el0.S saves the callee-saved registers and returns here with them, on this stack
    // above everything EL0's exceptions push, so to the compiler this is an ordinary call. The
    // EL0 code runs in the TTBR0 half only: this kernel's mappings are EL1-only (and EL0 can
    // never execute them), and every exception it takes comes back to this kernel's vectors.
    // `call` outlives the call and is reached only through the pointer meanwhile.
    unsafe { hrt_el0_call(&frame, core::ptr::from_mut(&mut call).cast()) };
    DAIF.set(daif);
    call.outcome.expect("an EL0 call ends only through RosCall::end")
}

/// The state of one CALL_ROS, shared by [`call_ros`] and the handler of its exceptions.
pub struct RosCall {
    counter_frequency: u64,
    /// The address of the last page fault forwarded, and how many times in a row it came back.
    last_fault: Option<u64>,
    repeats: u32,
    /// Set when the call ends.
    outcome: Option<Result<u64, RosCallError>>,
}

/// An exception from EL0 (asm/el0.S, all of DAIF masked): `frame` is the interrupted EL0 state,
/// `kind` [`EL0_SYNC`] or [`EL0_IRQ`], `call` the call being run. [`RESUME`] to return to EL0
/// through the (possibly changed) frame, [`END`] when the call is over.
pub extern "C" fn hrt_el0_exception(frame: *mut El0Frame, kind: u64, call: *mut RosCall) -> u64 {
    // SAFETY: el0.S passes the frame it just saved on this stack and the `call` that
    // hrt_el0_call was given: call_ros's, alive (call_ros is suspended in hrt_el0_call) and
    // touched by nothing else until the call ends. Neither is used after this returns.
    let (frame, call) = unsafe { (&mut *frame, &mut *call) };
    if kind == EL0_IRQ {
        exceptions::hrt_irq();
        return RESUME;
    }
    call.synchronous(frame)
}

impl RosCall {
    fn synchronous(&mut self, frame: &mut El0Frame) -> u64 {
        let (esr, far, pc) = (ESR_EL1.get(), FAR_EL1.get(), frame.elr);
        // The exception's registers are read and EL0's ELR and SPSR are in the frame: IRQs may
        // come while an event waits for the process.
        cpu::enable_interrupts();
        let ec = (esr >> ESR_EC_SHIFT) & ESR_EC_MASK;
        match ec {
            EC_SVC64 => self.syscall(frame, esr),
            EC_IABT_LOWER if far == ROS_RETURN_ADDRESS => self.end(Ok(frame.x[RESULT_REG])),
            EC_IABT_LOWER | EC_DABT_LOWER if is_resolvable_fault(esr, far) => {
                let action = if ec == EC_IABT_LOWER {
                    PageFaultAction::Exec
                } else if esr & ISS_WNR != 0 {
                    // A write to a present read-only page is a copy-on-write: a write too.
                    PageFaultAction::Write
                } else {
                    PageFaultAction::Read
                };
                self.page_fault(pc, esr, far, action)
            }
            _ => self.exception(pc, esr, far_if_valid(esr, far), false),
        }
    }

    /// `svc`: the process makes the system call; its result goes to x0 and EL0 resumes after
    /// the `svc` (ELR_EL1 already points there).
    fn syscall(&mut self, frame: &mut El0Frame, esr: u64) -> u64 {
        self.last_fault = None;
        let number = frame.x[SYSCALL_NUMBER_REG];
        let args: [u64; SYSCALL_ARGS] = core::array::from_fn(|index| frame.x[index]);
        match events::forward(Event::Syscall { number, args }, self.counter_frequency) {
            Ok(result) => {
                frame.x[RESULT_REG] = result;
                RESUME
            }
            Err(error) => self.end(Err(RosCallError::Forwarding {
                what: Forwarded::Syscall { number },
                esr,
                pc: frame.elr,
                error,
            })),
        }
    }

    /// A fault the process may resolve by touching the page: forwarded, then the instruction
    /// is retried (ELR_EL1 points at it). One that keeps coming back is an exception.
    fn page_fault(&mut self, pc: u64, esr: u64, far: u64, action: PageFaultAction) -> u64 {
        self.repeats = if self.last_fault == Some(far) { self.repeats + 1 } else { 0 };
        self.last_fault = Some(far);
        if self.repeats > FAULT_RETRIES {
            return self.exception(pc, esr, far, true);
        }
        match events::forward(Event::PageFault { pc, far, action }, self.counter_frequency) {
            Ok(_) => RESUME,
            Err(error) => {
                self.end(Err(RosCallError::Forwarding { what: Forwarded::PageFault { far }, esr, pc, error }))
            }
        }
    }

    /// Reports the exception to the process (an HRT exception event, waited for and
    /// acknowledged) and ends the call.
    fn exception(&mut self, pc: u64, esr: u64, far: u64, unresolved_fault: bool) -> u64 {
        let report = events::forward(Event::Exception { pc, esr, far }, self.counter_frequency).map(|_| ());
        self.end(Err(RosCallError::Exception { esr, pc, far, unresolved_fault, report }))
    }

    fn end(&mut self, outcome: Result<u64, RosCallError>) -> u64 {
        self.outcome = Some(outcome);
        END
    }
}

/// `far` if the exception with syndrome `esr` sets FAR_EL1 (an abort or a PC alignment fault
/// with a valid address), else 0: FAR_EL1 would hold a stale address.
fn far_if_valid(esr: u64, far: u64) -> u64 {
    let valid = match (esr >> ESR_EC_SHIFT) & ESR_EC_MASK {
        EC_IABT_LOWER | EC_PC_ALIGNMENT => true,
        EC_DABT_LOWER => esr & ISS_FNV == 0,
        _ => false,
    };
    if valid {
        far
    } else {
        0
    }
}

/// Whether the abort with syndrome `esr` at `far` is one the process may resolve: a
/// translation, access-flag or permission fault in the process's half of the address space.
fn is_resolvable_fault(esr: u64, far: u64) -> bool {
    let kind = esr & ISS_FSC_KIND_MASK;
    let page_fault = matches!(kind, FSC_TRANSLATION | FSC_ACCESS_FLAG | FSC_PERMISSION);
    page_fault && far & VA_TTBR1_BIT == 0
}
