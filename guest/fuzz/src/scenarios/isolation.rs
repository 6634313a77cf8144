//! `scenario=isolation` (issue 13, hole 6): what a guest can see of the pCPU beyond its own
//! state. (1) The PMU: the guest enables the cycle counter to count at EL2 only, makes
//! `HYPERCALLS` hypercalls, and reads it again: it must not have seen the hypervisor's cycles.
//! (2) The debug registers: vCPUs 0 and 1 share one pCPU; each writes its own DBGBVR0_EL1
//! value and reads it back for `SHARE_US` across hundreds of switches: it must never read the
//! other's (breakpoints are switched with their vCPU).

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{start, Role};
use crate::dtb::Platform;
use crate::uart::println;
use crate::{arch, psci};

const HYPERCALLS: u32 = 200;
const SHARE_US: u64 = 300_000;
const PEER: usize = 1;
/// PMCR_EL0: E (enable) and C (reset the cycle counter); PMCNTENSET_EL0.C (cycle counter on);
/// PMCCFILTR_EL0: P (not at EL1), U (not at EL0), NSH (at EL2).
const PMCR_E: u64 = 1 << 0;
const PMCR_C: u64 = 1 << 2;
const PMCNTEN_CYCLES: u64 = 1 << 31;
const PMCCFILTR_EL2_ONLY: u64 = (1 << 31) | (1 << 30) | (1 << 27);
/// Breakpoint value of vCPU n: an address-like value (bits [1:0] are RES0).
const BREAKPOINT_BASE: u64 = 0x4020_0000;
const BREAKPOINT_STRIDE: u64 = 0x1000;

static PEER_GO: AtomicBool = AtomicBool::new(false);
static PEER_DONE: AtomicBool = AtomicBool::new(false);
static PEER_MISMATCHES: AtomicU64 = AtomicU64::new(0);

/// Cycles the PMU's cycle counter counted at EL2 over `HYPERCALLS` hypercalls (zero where the
/// PMU reads as zero).
fn el2_cycles_seen() -> u64 {
    // SAFETY: PMU register writes only change the PMU's counting (the guest's own, or ignored
    // by the hypervisor); reads have no side effect.
    unsafe {
        core::arch::asm!("msr pmccfiltr_el0, {}", in(reg) PMCCFILTR_EL2_ONLY, options(nostack));
        core::arch::asm!("msr pmcntenset_el0, {}", in(reg) PMCNTEN_CYCLES, options(nostack));
        core::arch::asm!("msr pmcr_el0, {}", "isb", in(reg) PMCR_E | PMCR_C, options(nostack));
    }
    let read = || {
        let value: u64;
        // SAFETY: reading the cycle counter has no side effect.
        unsafe { core::arch::asm!("isb", "mrs {}, pmccntr_el0", out(reg) value, options(nostack)) };
        value
    };
    let before = read();
    for _ in 0..HYPERCALLS {
        psci::psci(psci::PSCI_VERSION, [0; 3]);
    }
    read().wrapping_sub(before)
}

fn own_breakpoint(cpu: usize) -> u64 {
    BREAKPOINT_BASE + BREAKPOINT_STRIDE * (cpu as u64 + 1)
}

fn write_breakpoint_value(value: u64) {
    // SAFETY: DBGBVR0_EL1 with DBGBCR0_EL1 left disabled (reset value): no breakpoint fires.
    unsafe { core::arch::asm!("msr dbgbvr0_el1, {}", "isb", in(reg) value, options(nostack)) };
}

fn read_breakpoint_value() -> u64 {
    let value: u64;
    // SAFETY: reading a debug register has no side effect.
    unsafe { core::arch::asm!("mrs {}, dbgbvr0_el1", out(reg) value, options(nostack)) };
    value
}

/// Keeps this vCPU's breakpoint value for `SHARE_US`; how often it read another.
fn hold_breakpoint(cpu: usize) -> u64 {
    let own = own_breakpoint(cpu);
    write_breakpoint_value(own);
    let end = arch::now() + arch::us_to_ticks(SHARE_US);
    let mut mismatches = 0;
    while arch::now() < end {
        if read_breakpoint_value() != own {
            mismatches += 1;
            write_breakpoint_value(own);
        }
    }
    mismatches
}

pub fn run(platform: &Platform, entry: u64) -> Result<&'static str, &'static str> {
    if platform.cpu_count < 2 {
        return Err("needs two vCPUs (sharing one pCPU)");
    }
    let cycles = el2_cycles_seen();
    start(platform, entry, PEER, Role::IsolationPeer, 0)?;
    PEER_GO.store(true, Ordering::Release);
    let mismatches = hold_breakpoint(0);
    let give_up = arch::now() + arch::us_to_ticks(10 * SHARE_US);
    while !PEER_DONE.load(Ordering::Acquire) {
        if arch::now() > give_up {
            return Err("vCPU 1 never finished");
        }
        core::hint::spin_loop();
    }
    let peer = PEER_MISMATCHES.load(Ordering::Acquire);
    println!(
        "FUZZ: scenario isolation el2_cycles_seen={cycles} breakpoint_mismatches: vcpu0={mismatches} vcpu1={peer}"
    );
    if cycles != 0 {
        return Err("the PMU let the guest count the hypervisor's cycles");
    }
    if mismatches + peer != 0 {
        return Err("a vCPU read the breakpoint of another vCPU sharing its pCPU");
    }
    Ok("no EL2 cycles visible; each vCPU kept its own breakpoint registers")
}

/// vCPU 1: holds its own breakpoint value while vCPU 0 holds its.
pub fn peer() {
    while !PEER_GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    PEER_MISMATCHES.store(hold_breakpoint(PEER), Ordering::Release);
    PEER_DONE.store(true, Ordering::Release);
}
