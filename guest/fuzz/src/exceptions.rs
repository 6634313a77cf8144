//! The Rust side of the exception vectors (asm/vectors.S): every exception the fuzzer gets
//! back is counted by class, per CPU.
//!
//! * Synchronous exceptions on an instruction in `.fuzz_code` (an access, a system register,
//!   a hypercall of the fuzzer) are counted and stepped over (ELR += 4). An instruction abort
//!   at the target of `fuzz_ifetch` resumes after the branch. Anything else is unexpected: the
//!   fuzzer reports it and fails.
//! * IRQs are acknowledged and ended; a source other than the timers or an SGI is disabled
//!   after its first interrupt (a level that stays high would otherwise storm).
//! * SErrors and FIQs are counted and return.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::dtb::MAX_CPUS;
use crate::sysregs::{self as regs};
use crate::uart;
use crate::{arch, gic, psci, timer};

/// ESR_ELx.EC [31:26] and the classes counted.
const ESR_EC_SHIFT: u32 = 26;
const ESR_EC_MASK: u64 = 0x3f;
const EC_UNKNOWN: u64 = 0x00;
const EC_FP: u64 = 0x07;
const EC_INSN_ABORT_SAME_EL: u64 = 0x21;
const EC_DATA_ABORT_SAME_EL: u64 = 0x25;
/// Data abort ISS: DFSC [5:0]; a synchronous external abort is 0x10; FnV [10]: FAR not valid.
const ESR_DFSC_MASK: u64 = 0x3f;
const DFSC_SYNC_EXTERNAL: u64 = 0x10;
const ESR_FNV: u64 = 1 << 10;
/// A64 instructions are 4 bytes.
const INSTRUCTION_SIZE: u64 = 4;
/// The vector KINDs of vectors.S, for the report.
#[rustfmt::skip]
const VECTOR_NAMES: [&str; 16] = [
    "sync (EL1, SP0)", "irq (EL1, SP0)", "fiq (EL1, SP0)", "serror (EL1, SP0)",
    "sync", "irq", "fiq", "serror",
    "sync (lower EL, AArch64)", "irq (lower EL, AArch64)", "fiq (lower EL, AArch64)", "serror (lower EL, AArch64)",
    "sync (lower EL, AArch32)", "irq (lower EL, AArch32)", "fiq (lower EL, AArch32)", "serror (lower EL, AArch32)",
];

/// The registers vectors.S saves, which the handlers may change.
#[repr(C)]
pub struct Frame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

/// What a CPU has been given back, by class.
pub struct Counters {
    pub undef: AtomicU64,
    pub ext_aborts: AtomicU64,
    pub other_aborts: AtomicU64,
    pub insn_aborts: AtomicU64,
    pub fp_traps: AtomicU64,
    pub other_sync: AtomicU64,
    pub serrors: AtomicU64,
    pub irqs: AtomicU64,
    pub fiqs: AtomicU64,
    /// Data aborts whose FAR_EL1 lies outside the access that faulted.
    pub far_bad: AtomicU64,
    /// Bit n: a data abort with DFSC n was seen.
    pub dfsc_seen: AtomicU64,
    /// Bit n: a synchronous exception with EC n was seen.
    pub ec_seen: AtomicU64,
    /// The first bad FAR: (ESR, FAR, ELR, expected address).
    pub first_far_bad: [AtomicU64; 4],
}

impl Counters {
    const fn new() -> Self {
        Self {
            undef: AtomicU64::new(0),
            ext_aborts: AtomicU64::new(0),
            other_aborts: AtomicU64::new(0),
            insn_aborts: AtomicU64::new(0),
            fp_traps: AtomicU64::new(0),
            other_sync: AtomicU64::new(0),
            serrors: AtomicU64::new(0),
            irqs: AtomicU64::new(0),
            fiqs: AtomicU64::new(0),
            far_bad: AtomicU64::new(0),
            dfsc_seen: AtomicU64::new(0),
            ec_seen: AtomicU64::new(0),
            first_far_bad: [const { AtomicU64::new(0) }; 4],
        }
    }
}

pub static COUNTERS: [Counters; MAX_CPUS] = [const { Counters::new() }; MAX_CPUS];
/// Per CPU: the address range [lo, hi) an access op is touching (hi = 0: none), for the FAR
/// check, and the target of an instruction fetch op (0: none).
pub static ACCESS_LO: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
pub static ACCESS_HI: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
pub static IFETCH_TARGET: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per CPU: the operation running (for the report of an unexpected exception).
pub static CURRENT_OP: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(u64::MAX) }; MAX_CPUS];
/// The seed, for the last words.
pub static SEED: AtomicU64 = AtomicU64::new(0);

extern "C" {
    static __fuzz_text_start: u8;
    static __fuzz_text_end: u8;
    fn fuzz_ifetch_return();
}

fn in_fuzz_code(address: u64) -> bool {
    // SAFETY: linker symbols; only their addresses are taken.
    let (start, end) = unsafe { (&__fuzz_text_start as *const u8 as u64, &__fuzz_text_end as *const u8 as u64) };
    (start..end).contains(&address)
}

/// Synchronous exceptions this CPU has had, of any class (to tell whether an access faulted).
pub fn fault_count() -> u64 {
    let c = &COUNTERS[arch::cpu_index()];
    [&c.undef, &c.ext_aborts, &c.other_aborts, &c.insn_aborts, &c.fp_traps, &c.other_sync]
        .iter()
        .map(|counter| counter.load(Ordering::Relaxed))
        .sum()
}

/// Sets the address range the next access touches (`hi` = 0: no check).
pub fn expect_access(lo: u64, hi: u64) {
    let cpu = arch::cpu_index();
    ACCESS_LO[cpu].store(lo, Ordering::Relaxed);
    ACCESS_HI[cpu].store(hi, Ordering::Relaxed);
}

#[no_mangle]
extern "C" fn sync_handler(frame: &mut Frame) {
    let (esr, far, cpu) = (arch::esr(), arch::far(), arch::cpu_index());
    let counters = &COUNTERS[cpu];
    let ec = (esr >> ESR_EC_SHIFT) & ESR_EC_MASK;
    let target = IFETCH_TARGET[cpu].load(Ordering::Relaxed);
    if ec == EC_INSN_ABORT_SAME_EL && target != 0 && frame.elr == target {
        counters.insn_aborts.fetch_add(1, Ordering::Relaxed);
        frame.elr = fuzz_ifetch_return as *const () as u64;
        return;
    }
    if !in_fuzz_code(frame.elr) {
        report_unexpected(format_args!("sync exception outside the fuzz code"), frame, esr, far);
    }
    counters.ec_seen.fetch_or(1 << ec, Ordering::Relaxed);
    match ec {
        EC_UNKNOWN => counters.undef.fetch_add(1, Ordering::Relaxed),
        EC_FP => counters.fp_traps.fetch_add(1, Ordering::Relaxed),
        EC_DATA_ABORT_SAME_EL => {
            data_abort(counters, cpu, esr, far, frame.elr);
            0
        }
        _ => counters.other_sync.fetch_add(1, Ordering::Relaxed),
    };
    frame.elr += INSTRUCTION_SIZE;
}

fn data_abort(counters: &Counters, cpu: usize, esr: u64, far: u64, elr: u64) {
    let dfsc = esr & ESR_DFSC_MASK;
    counters.dfsc_seen.fetch_or(1 << dfsc, Ordering::Relaxed);
    if dfsc == DFSC_SYNC_EXTERNAL {
        counters.ext_aborts.fetch_add(1, Ordering::Relaxed);
    } else {
        counters.other_aborts.fetch_add(1, Ordering::Relaxed);
    }
    let (lo, hi) = (ACCESS_LO[cpu].load(Ordering::Relaxed), ACCESS_HI[cpu].load(Ordering::Relaxed));
    let far_outside = hi != 0 && esr & ESR_FNV == 0 && !(lo..hi).contains(&far);
    if far_outside && counters.far_bad.fetch_add(1, Ordering::Relaxed) == 0 {
        for (slot, value) in counters.first_far_bad.iter().zip([esr, far, elr, lo]) {
            slot.store(value, Ordering::Relaxed);
        }
    }
}

#[no_mangle]
extern "C" fn irq_handler(_frame: &mut Frame) {
    let cpu = arch::cpu_index();
    let intid = gic::acknowledge();
    if gic::is_special(intid) {
        return;
    }
    COUNTERS[cpu].irqs.fetch_add(1, Ordering::Relaxed);
    match intid {
        timer::PPI_VIRTUAL => timer::on_interrupt(),
        timer::PPI_PHYSICAL => arch::write_sysreg(regs::CNTP_CTL_EL0, timer::CTL_IMASK),
        id if id < gic::NUM_SGIS => gic::note_sgi(cpu, id),
        id => gic::disable(cpu, id),
    }
    gic::end(intid);
}

#[no_mangle]
extern "C" fn fiq_handler(_frame: &mut Frame) {
    COUNTERS[arch::cpu_index()].fiqs.fetch_add(1, Ordering::Relaxed);
    let intid = arch::read_sysreg(regs::ICC_IAR0_EL1, u64::from(gic::SPURIOUS));
    if !gic::is_special(intid as u32) {
        arch::write_sysreg(regs::ICC_EOIR0_EL1, intid);
    }
}

#[no_mangle]
extern "C" fn serror_handler(_frame: &mut Frame) {
    COUNTERS[arch::cpu_index()].serrors.fetch_add(1, Ordering::Relaxed);
}

/// Any other vector: report and power off.
#[no_mangle]
extern "C" fn exception_unexpected(kind: u64) -> ! {
    let name = VECTOR_NAMES.get(kind as usize).copied().unwrap_or("?");
    let frame = Frame { x: [0; 31], elr: 0, spsr: 0, _pad: 0 };
    report_unexpected(format_args!("vector {name}"), &frame, arch::esr(), arch::far())
}

fn report_unexpected(what: core::fmt::Arguments, frame: &Frame, esr: u64, far: u64) -> ! {
    let cpu = arch::cpu_index();
    let op = CURRENT_OP[cpu].load(Ordering::Relaxed) as i64;
    uart::print_line(
        format_args!(
            "FUZZ: error: unexpected exception ({what}) cpu={cpu} op={op} ESR={esr:#x} FAR={far:#x} ELR={:#x} \
             SPSR={:#x} x30={:#x}",
            frame.elr, frame.spsr, frame.x[30]
        ),
        true,
    );
    uart::print_line(format_args!("FUZZ: done seed={} FAILED", SEED.load(Ordering::Relaxed)), true);
    psci::system_off()
}
