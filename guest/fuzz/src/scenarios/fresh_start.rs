//! `scenario=fresh_start` (issue 13, hole 4): a vCPU started by CPU_ON on a pCPU that another
//! vCPU used before must not inherit that vCPU's registers. vCPU 1 fills its FP/SIMD registers,
//! thread pointers, CONTEXTIDR_EL1 and a breakpoint value register with a marker, starts vCPU 2
//! and powers off, so that vCPU 2 is the next to run on their shared pCPU (three vCPUs on one,
//! round-robin); vCPU 2 reads them all: none may hold the marker.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{start, Role};
use crate::dtb::Platform;
use crate::uart::println;
use crate::{arch, psci};

/// What vCPU 1 leaves in its registers (an address-like value, valid in every one of them).
const MARKER: u64 = 0x0000_7eed_bee0_0000;
const DIRTIER: usize = 1;
const INSPECTOR: usize = 2;
const FP_REGISTERS: usize = 32;
/// How long vCPU 2 may take to report.
const OFF_US: u64 = 2_000_000;

extern "C" {
    /// Sets d0..d31 to x0.
    fn fuzz_fp_fill(value: u64);
    /// Stores d0..d31 at x0 (32 words).
    fn fuzz_fp_dump(out: *mut [u64; FP_REGISTERS]);
}

core::arch::global_asm!(
    ".arch_extension fp",
    ".global fuzz_fp_fill",
    "fuzz_fp_fill:",
    ".irp n,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "fmov d\\n, x0",
    ".endr",
    "ret",
    ".global fuzz_fp_dump",
    "fuzz_fp_dump:",
    ".irp n,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31",
    "fmov x1, d\\n",
    "str x1, [x0, #(\\n * 8)]",
    ".endr",
    "ret",
);

static DIRTIED: AtomicBool = AtomicBool::new(false);
/// What vCPU 1 needs to start vCPU 2.
pub static INSPECTOR_MPIDR: AtomicU64 = AtomicU64::new(0);
pub static ENTRY: AtomicU64 = AtomicU64::new(0);
static INSPECTED: AtomicBool = AtomicBool::new(false);
/// Registers vCPU 2 found holding the marker (bit per register: d0..d31, then the others).
static LEAKED: AtomicU64 = AtomicU64::new(0);
const OTHERS: [&str; 5] = ["tpidr_el0", "tpidrro_el0", "tpidr_el1", "contextidr_el1", "dbgbvr0_el1"];

/// vCPU 1: leaves the marker everywhere, starts vCPU 2, then powers off (the caller's CPU_OFF).
pub fn dirty(inspector_mpidr: u64, entry: u64) {
    // SAFETY: fills this vCPU's own FP/SIMD registers (the fuzzer is soft-float: nothing else
    // uses them).
    unsafe { fuzz_fp_fill(MARKER) };
    // SAFETY: this vCPU's own thread pointers, context id and a disabled breakpoint's value;
    // nothing else on it reads them.
    unsafe {
        core::arch::asm!(
            "msr tpidr_el0, {m}", "msr tpidrro_el0, {m}", "msr tpidr_el1, {m}",
            "msr contextidr_el1, {c}", "msr dbgbvr0_el1, {m}", "isb",
            m = in(reg) MARKER, c = in(reg) MARKER & u64::from(u32::MAX), options(nostack)
        )
    };
    DIRTIED.store(true, Ordering::Release);
    if psci::psci(psci::CPU_ON_64, [inspector_mpidr, entry, Role::FreshInspector.context(0)]) != 0 {
        println!("FUZZ: error: vCPU 1 could not start vCPU 2");
    }
}

/// vCPU 2: reads what it started with.
pub fn inspect() {
    let mut fp = [0u64; FP_REGISTERS];
    // SAFETY: writes 32 words into `fp`.
    unsafe { fuzz_fp_dump(&mut fp) };
    let read = |name: &str| -> u64 {
        let value: u64;
        // SAFETY: reading this vCPU's own registers has no side effect.
        unsafe {
            match name {
                "tpidr_el0" => core::arch::asm!("mrs {}, tpidr_el0", out(reg) value),
                "tpidrro_el0" => core::arch::asm!("mrs {}, tpidrro_el0", out(reg) value),
                "tpidr_el1" => core::arch::asm!("mrs {}, tpidr_el1", out(reg) value),
                "contextidr_el1" => core::arch::asm!("mrs {}, contextidr_el1", out(reg) value),
                _ => core::arch::asm!("mrs {}, dbgbvr0_el1", out(reg) value),
            }
        }
        value
    };
    let mut leaked = 0u64;
    for (n, value) in fp.iter().enumerate() {
        if *value == MARKER {
            leaked |= 1 << n;
        }
    }
    for (n, name) in OTHERS.iter().enumerate() {
        let value = read(name);
        if value == MARKER || value == MARKER & u64::from(u32::MAX) {
            leaked |= 1 << (FP_REGISTERS + n);
        }
    }
    LEAKED.store(leaked, Ordering::Release);
    INSPECTED.store(true, Ordering::Release);
}

pub fn run(platform: &Platform, entry: u64) -> Result<&'static str, &'static str> {
    if platform.cpu_count <= INSPECTOR {
        return Err("needs three vCPUs (on one pCPU)");
    }
    INSPECTOR_MPIDR.store(platform.cpus[INSPECTOR], Ordering::Relaxed);
    ENTRY.store(entry, Ordering::Relaxed);
    start(platform, entry, DIRTIER, Role::FreshDirtier, 0)?;
    let give_up = arch::now() + arch::us_to_ticks(OFF_US);
    while !INSPECTED.load(Ordering::Acquire) {
        if arch::now() > give_up {
            return Err("vCPU 2 did not report");
        }
        core::hint::spin_loop();
    }
    let leaked = LEAKED.load(Ordering::Acquire);
    let fp_leaked = (leaked & ((1 << FP_REGISTERS) - 1)).count_ones();
    println!("FUZZ: scenario fresh_start fp_registers_leaked={fp_leaked}/{FP_REGISTERS} leaked_mask={leaked:#x}");
    for (n, name) in OTHERS.iter().enumerate() {
        if leaked & (1 << (FP_REGISTERS + n)) != 0 {
            println!("FUZZ: scenario fresh_start {name} leaked");
        }
    }
    if leaked != 0 {
        return Err("a vCPU started on a used pCPU saw another vCPU's registers");
    }
    Ok("a vCPU started by CPU_ON saw none of the previous vCPU's registers")
}
