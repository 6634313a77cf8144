//! HVC and SMC from the HRT: the 0xf00d hypercall with random sub-operations, arguments and
//! pointers (what the HRT mode is for: the real HVM state machine, driven from the HRT side),
//! every other SMCCC id (PSCI included, SYSTEM_OFF and SYSTEM_RESET too: the HRT has no PSCI),
//! and the HRT console with good and bad text buffers. x0-x17 go in random (pointer arguments
//! by hrt/memory.rs's rules) through every call instruction.
//!
//! Where the protocol fixes the answer it is checked (an "unexpected answer" fails the run):
//! a 0xf00d call never returns its own id; from the HRT, an undefined sub-operation answers
//! UnknownSubOp, one the ROS owns (resets, invocations, merges, signals, TLS, image install)
//! WrongPartition, Null answers OK; any other SMCCC id answers NOT_SUPPORTED; the console
//! answers InvalidArgument above 256 bytes and BadAddress for text outside RAM. As in the Linux
//! build, x4-x17 must come back unchanged (SMCCC 1.1), or a clobber is counted.

use core::sync::atomic::{AtomicU64, Ordering};

use hvm_ros_lib::abi::{HvmError, SubOp, HRT_CONSOLE_ID, HRT_CONSOLE_MAX, HVM_HCALL_ID, HVM_OK};

use super::memory::{DEVICE_GIB_END, PAGE_SIZE};
use super::ops::Ctx;
use crate::exceptions::fault_count;
use crate::ops::{CLOBBERS, FIRST_CLOBBER};
use crate::psci::{self, Instruction, Regs, CALL_REGS};
use crate::rng::Rng;
use crate::uart::println;

/// SMCCC NOT_SUPPORTED (-1): what the hypervisor answers the HRT for any id but 0xf00d and the
/// console.
const NOT_SUPPORTED: u64 = u64::MAX;
/// Every sub-operation the ABI defines.
const SUB_OPS: [SubOp; 24] = [
    SubOp::Null,
    SubOp::ResetRos,
    SubOp::ResetHrt,
    SubOp::ResetBoth,
    SubOp::InstallHrtImage,
    SubOp::GetStateAndEvent,
    SubOp::PostRosEvent,
    SubOp::AckEventResult,
    SubOp::EventComplete,
    SubOp::Invoke,
    SubOp::ParallelInvoke,
    SubOp::SyncSetup,
    SubOp::SyncTeardown,
    SubOp::CallDone,
    SubOp::Merge,
    SubOp::Unmerge,
    SubOp::MergeDone,
    SubOp::SetSignalHandler,
    SubOp::RaiseSignal,
    SubOp::MirrorTls,
    SubOp::UnmirrorTls,
    SubOp::TlsSyncDone,
    SubOp::SignalReturn,
    SubOp::HrtReady,
];
/// The sub-operations only the ROS (kernel or process) may issue (hypervisor hvm::permissions).
const ROS_ONLY: [SubOp; 15] = [
    SubOp::ResetRos,
    SubOp::ResetHrt,
    SubOp::ResetBoth,
    SubOp::EventComplete,
    SubOp::InstallHrtImage,
    SubOp::Invoke,
    SubOp::ParallelInvoke,
    SubOp::SyncSetup,
    SubOp::SyncTeardown,
    SubOp::Merge,
    SubOp::Unmerge,
    SubOp::SetSignalHandler,
    SubOp::SignalReturn,
    SubOp::MirrorTls,
    SubOp::UnmirrorTls,
];
/// The call instructions, the conduit (hvc #0) most often.
const INSTRUCTIONS: [Instruction; 7] = [
    Instruction::Hvc0,
    Instruction::Hvc0,
    Instruction::Hvc0,
    Instruction::Hvc1,
    Instruction::HvcFfff,
    Instruction::Smc0,
    Instruction::Smc1234,
];
/// Function-id ranges of ops/calls.rs: PSCI (SMC32 / SMC64), SMCCC architecture, TRNG, and
/// the vendor-hypervisor service (owner 6) that holds 0xf00d and the console.
const PSCI32: u64 = 0x8400_0000;
const PSCI64: u64 = 0xC400_0000;
const PSCI_FUNCTIONS: u64 = 0x20;
const SMCCC_ARCH: u64 = 0x8000_0000;
const TRNG_FIRST: u64 = 0x8400_0050;
const TRNG_FUNCTIONS: u64 = 8;
const VENDOR_HYP64: u64 = 0xC600_0000;
const VENDOR_HYP32: u64 = 0x8600_0000;
const FUNCTION_NUMBERS: u64 = 0x1_0000;
/// The first register SMCCC 1.1 makes the callee preserve.
const FIRST_PRESERVED: usize = 4;
/// A RosEvent's bytes (abi.rs): what PostRosEvent reads; its type is the first u32. Types 1-4
/// are the ones an HRT may forward.
const EVENT_SIZE: u64 = 80;
const EVENT_TYPES: u64 = 7;
/// Console text the fuzzer offers: newlines only (the hypervisor prints nothing for empty
/// lines), and one visible line, printed rarely.
static CONSOLE_NEWLINES: [u8; HRT_CONSOLE_MAX as usize] = [b'\n'; HRT_CONSOLE_MAX as usize];
static CONSOLE_PROBE: &[u8] = b"FUZZ: console probe\n";
const PROBE_ONE_IN: u64 = 200;

/// Answers of 0xf00d calls that reached the dispatcher: [0] OK or a state (non-negative),
/// [n] HvmError code -n (1 Failed .. 10 WrongLevel), [11] anything else.
pub static HVM_ANSWERS: [AtomicU64; 12] = [const { AtomicU64::new(0) }; 12];
/// Answers that broke a rule of the module doc, and the first: class (1 hvm, 2 smccc,
/// 3 console), x0 and x1 given, x0 returned.
pub static UNEXPECTED: AtomicU64 = AtomicU64::new(0);
pub static FIRST_UNEXPECTED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
const CLASS_HVM: u64 = 1;
const CLASS_SMCCC: u64 = 2;
const CLASS_CONSOLE: u64 = 3;

/// Makes the call and checks x4-x17; `None` if the call instruction itself faulted (then there
/// is no answer to judge).
fn call(rng: &mut Rng, ctx: &Ctx, regs: &mut Regs) -> Option<u64> {
    let instruction = rng.pick(&INSTRUCTIONS);
    if ctx.trace {
        println!(
            "FUZZ: op cpu={} #{} call {instruction:?} x0={:#x} x1={:#x} x2={:#x} x3={:#x}",
            ctx.cpu, ctx.index, regs[0], regs[1], regs[2], regs[3]
        );
    }
    let before = *regs;
    let faults = fault_count();
    psci::call(instruction, regs);
    if let Some(reg) = (FIRST_PRESERVED..CALL_REGS).find(|&r| regs[r] != before[r]) {
        if CLOBBERS[ctx.cpu].fetch_add(1, Ordering::Relaxed) == 0 {
            FIRST_CLOBBER.store(((before[0] & u64::from(u32::MAX)) << 8) | reg as u64, Ordering::Relaxed);
        }
    }
    (fault_count() == faults).then_some(regs[0])
}

/// Counts an answer that is not `expected` (if the protocol fixes one).
fn judge(class: u64, given: (u64, u64), answer: u64, expected: Option<u64>, ctx: &Ctx) {
    if expected.is_none_or(|expected| expected == answer) && answer != HVM_HCALL_ID {
        return;
    }
    if UNEXPECTED.fetch_add(1, Ordering::Relaxed) == 0 {
        for (slot, value) in FIRST_UNEXPECTED.iter().zip([class, given.0, given.1, answer]) {
            slot.store(value, Ordering::Relaxed);
        }
        println!(
            "FUZZ: unexpected answer cpu={} op={} class={class} x0={:#x} x1={:#x} returned {answer:#x} expected {:#x}",
            ctx.cpu,
            ctx.index,
            given.0,
            given.1,
            expected.unwrap_or(u64::MAX)
        );
    }
}

fn sub_op(rng: &mut Rng) -> u64 {
    match rng.below(20) {
        0..=11 => rng.pick(&SUB_OPS) as u64,
        12..=15 => rng.below(0x80),
        16 | 17 => rng.value(),
        // A defined code with a high bit set: not that sub-operation.
        _ => rng.pick(&SUB_OPS) as u64 | (1 << (32 + rng.below(32))),
    }
}

/// What the dispatcher must answer the HRT, where the protocol says.
fn expected_hvm(x0: u64, x1: u64) -> Option<u64> {
    if x0 != HVM_HCALL_ID {
        return Some(NOT_SUPPORTED);
    }
    match SubOp::from_code(x1) {
        None => Some(HvmError::UnknownSubOp.code()),
        Some(op) if ROS_ONLY.contains(&op) => Some(HvmError::WrongPartition.code()),
        Some(SubOp::Null) => Some(HVM_OK),
        Some(_) => None,
    }
}

/// One 0xf00d call with a random sub-operation and arguments.
pub fn hvm(rng: &mut Rng, ctx: &Ctx) {
    let mut regs: Regs = core::array::from_fn(|_| rng.value());
    regs[0] = if rng.percent(95) { HVM_HCALL_ID } else { HVM_HCALL_ID | (rng.next() | 1) << 32 };
    regs[1] = sub_op(rng);
    // Every argument may be a pointer: confined so the hypervisor can only write DATA.
    for reg in regs[2..8].iter_mut() {
        *reg = if rng.percent(60) {
            ctx.layout.pointer(rng)
        } else {
            let value = rng.value();
            ctx.layout.confine(rng, value)
        };
    }
    if regs[1] == SubOp::PostRosEvent as u64 && rng.percent(50) {
        offer_event(rng, ctx, regs[2]);
    }
    let given = (regs[0], regs[1]);
    if let Some(answer) = call(rng, ctx, &mut regs) {
        if given.0 == HVM_HCALL_ID {
            let bucket = match answer as i64 {
                0.. => 0,
                code @ -10..=-1 => code.unsigned_abs() as usize,
                _ => HVM_ANSWERS.len() - 1,
            };
            HVM_ANSWERS[bucket].fetch_add(1, Ordering::Relaxed);
        }
        judge(CLASS_HVM, given, answer, expected_hvm(given.0, given.1), ctx);
    }
}

/// Writes an event of a random type at `va` if the whole event lies in DATA, so PostRosEvent
/// sometimes finds one it may forward.
fn offer_event(rng: &mut Rng, ctx: &Ctx, va: u64) {
    let in_data = ctx.layout.va_to_ipa(va).is_some_and(|ipa| ctx.layout.data.holds(ipa, EVENT_SIZE));
    if in_data && va.is_multiple_of(4) {
        // SAFETY: [va, va + 80) maps DATA (checked), the fuzzer's scratch RAM, through the
        // identity or the linear map; 4-byte aligned.
        unsafe { core::ptr::write_volatile(va as *mut u32, rng.below(EVENT_TYPES) as u32) };
    }
}

/// A random SMCCC id of any owner (never 0xf00d or the console): the HRT has none of them.
pub fn smccc(rng: &mut Rng, ctx: &Ctx) {
    let mut regs: Regs = core::array::from_fn(|_| rng.value());
    let id = match rng.below(6) {
        0 => PSCI32 | rng.below(PSCI_FUNCTIONS),
        1 => PSCI64 | rng.below(PSCI_FUNCTIONS),
        2 => SMCCC_ARCH | rng.below(FUNCTION_NUMBERS),
        3 => rng.pick(&[VENDOR_HYP64, VENDOR_HYP32]) | rng.below(FUNCTION_NUMBERS),
        4 => TRNG_FIRST + rng.below(TRNG_FUNCTIONS),
        _ => rng.next(),
    };
    regs[0] = if id == HVM_HCALL_ID || id == HRT_CONSOLE_ID { id ^ 1 } else { id };
    for reg in regs[1..8].iter_mut() {
        *reg = ctx.layout.confine(rng, *reg);
    }
    let given = (regs[0], regs[1]);
    if let Some(answer) = call(rng, ctx, &mut regs) {
        judge(CLASS_SMCCC, given, answer, Some(NOT_SUPPORTED), ctx);
    }
}

/// The console call with text that prints nothing (newlines), rarely a visible line, or text
/// that is too long, outside RAM, past its end or wrapping around: never ROS memory, which
/// could print anything.
pub fn console(rng: &mut Rng, ctx: &Ctx) {
    let layout = &ctx.layout;
    let newlines = layout.va_to_ipa(CONSOLE_NEWLINES.as_ptr() as u64).unwrap_or(0);
    let probe = layout.va_to_ipa(CONSOLE_PROBE.as_ptr() as u64).unwrap_or(0);
    let max = HRT_CONSOLE_MAX;
    let (ipa, len) = match rng.below(10) {
        0..=2 => {
            let offset = rng.below(max);
            (newlines + offset, rng.below(max - offset + 1))
        }
        3 if rng.below(PROBE_ONE_IN) == 0 => (probe, CONSOLE_PROBE.len() as u64),
        3 | 4 => {
            let inside = 1 + rng.below(max - 1);
            (layout.hrt.end() - inside, inside + 1 + rng.below(max - inside))
        }
        5 => (layout.ros.start - 1 - rng.below(max), 1 + rng.below(max)),
        6 => (rng.below(DEVICE_GIB_END), 1 + rng.below(max)),
        7 => (rng.range(layout.ram().end(), layout.ram().end() + (1 << 40)), 1 + rng.below(max)),
        8 => (newlines, rng.pick(&[max + 1, max + PAGE_SIZE, u64::MAX, 1 << 63])),
        _ => (u64::MAX - rng.below(max), 1 + rng.below(max)),
    };
    let in_ram = layout.ram().holds(ipa, len) && ipa.checked_add(len).is_some();
    let expected = match (len, in_ram) {
        (0, _) => None,
        (len, _) if len > max => Some(HvmError::InvalidArgument.code()),
        (_, true) => Some(HVM_OK),
        (_, false) => Some(HvmError::BadAddress.code()),
    };
    let mut regs: Regs = core::array::from_fn(|_| rng.value());
    regs[..3].copy_from_slice(&[HRT_CONSOLE_ID, ipa, len]);
    if let Some(answer) = call(rng, ctx, &mut regs) {
        judge(CLASS_CONSOLE, (ipa, len), answer, expected, ctx);
    }
}
