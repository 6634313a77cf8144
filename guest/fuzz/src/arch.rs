//! The few AArch64 instructions the fuzzer needs beyond plain Rust: fixed system registers that
//! can never fault (MPIDR, ESR, the counter...), barriers, interrupt masks, and system
//! registers that a random write may have made UNDEFINED (the GIC CPU interface, the timers),
//! reached through the generated jump tables so that a fault is stepped over.

use crate::sysregs::{self, Encoding};

/// Defines `fn $name() -> u64`, reading the system register `$reg` (one that cannot fault).
macro_rules! sysreg_read {
    ($(#[$meta:meta])* $vis:vis fn $name:ident = $reg:literal) => {
        $(#[$meta])*
        #[inline(always)]
        $vis fn $name() -> u64 {
            let value: u64;
            // SAFETY: `mrs` of a register chosen at definition; it reads no memory.
            unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nostack)) };
            value
        }
    };
}

sysreg_read!(pub fn mpidr = "mpidr_el1");
sysreg_read!(pub fn esr = "esr_el1");
sysreg_read!(pub fn far = "far_el1");
sysreg_read!(pub fn current_el = "CurrentEL");
sysreg_read!(fn cntvct = "cntvct_el0");
sysreg_read!(fn cntfrq = "cntfrq_el0");

/// MPIDR_EL1 affinity fields: Aff0 [7:0], Aff1 [15:8], Aff2 [23:16], Aff3 [39:32].
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;
const MPIDR_AFF0_MASK: u64 = 0xff;
/// CurrentEL.EL, bits [3:2].
const CURRENT_EL_SHIFT: u32 = 2;

/// This CPU's index: MPIDR_EL1.Aff0 (the hypervisor numbers vCPUs 0, 1, ... in Aff0; boot.S
/// parks CPUs whose Aff0 is too large).
#[inline(always)]
pub fn cpu_index() -> usize {
    (mpidr() & MPIDR_AFF0_MASK) as usize
}

pub fn exception_level() -> u64 {
    (current_el() >> CURRENT_EL_SHIFT) & 0b11
}

/// The virtual count, read after all earlier instructions completed.
#[inline(always)]
pub fn now() -> u64 {
    isb();
    cntvct()
}

/// The counter's frequency in Hz (never zero).
pub fn counter_hz() -> u64 {
    cntfrq().max(1)
}

/// Counter ticks in `us` microseconds.
pub fn us_to_ticks(us: u64) -> u64 {
    (counter_hz() * us / 1_000_000).max(1)
}

pub fn ticks_to_us(ticks: u64) -> u64 {
    ticks * 1_000_000 / counter_hz()
}

/// Busy-waits for `us` microseconds.
pub fn delay_us(us: u64) {
    let end = now() + us_to_ticks(us);
    while now() < end {
        core::hint::spin_loop();
    }
}

#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier; no memory or register effects.
    unsafe { core::arch::asm!("isb", options(nostack)) };
}

#[inline(always)]
pub fn dsb_sy() {
    // SAFETY: a barrier; no memory or register effects.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// Masks IRQs (PSTATE.I = 1).
#[inline(always)]
pub fn mask_irqs() {
    // SAFETY: changes PSTATE.I only.
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack)) };
}

/// Unmasks IRQs and SErrors (PSTATE.I = PSTATE.A = 0): both are taken through exceptions.rs,
/// which saves and restores the interrupted state. Debug exceptions and FIQs stay masked.
#[inline(always)]
pub fn unmask_irqs_and_serrors() {
    // SAFETY: changes PSTATE.I and PSTATE.A only.
    unsafe { core::arch::asm!("msr daifclr, #6", "isb", options(nostack)) };
}

/// Whether PSTATE.I is clear.
pub fn irqs_unmasked() -> bool {
    let daif: u64;
    // SAFETY: reads PSTATE.DAIF.
    unsafe { core::arch::asm!("mrs {}, daif", out(reg) daif, options(nostack)) };
    daif & (1 << 7) == 0
}

/// Stops this CPU for good.
pub fn park() -> ! {
    loop {
        // SAFETY: waits for an event; no other effect.
        unsafe { core::arch::asm!("wfe", options(nostack)) };
    }
}

/// Reads the system register `reg` through the read table; `default` if the read faulted.
pub fn read_sysreg(reg: Encoding, default: u64) -> u64 {
    match sysregs::read_index(reg) {
        Some(index) => sysregs::read(index, default),
        None => default,
    }
}

/// Writes the system register `reg` through the write table (a fault is counted and skipped).
pub fn write_sysreg(reg: Encoding, value: u64) {
    if let Some(index) = sysregs::write_index(reg) {
        sysregs::write(index, value);
    }
    isb();
}
