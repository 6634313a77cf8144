//! The EL1 virtual timer (CNTV, PPI 27): armed by the timer check and by the fuzzer before a
//! wait (WFI, CPU_SUSPEND) so that the wait ends. Its registers go through the generated
//! tables: a random write may have made them fault.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{self, write_sysreg};
use crate::dtb::MAX_CPUS;
use crate::sysregs as regs;

/// The virtual and the non-secure physical timer's interrupts (PPIs).
pub const PPI_VIRTUAL: u32 = 27;
pub const PPI_PHYSICAL: u32 = 30;
/// CNT*_CTL_EL0: ENABLE [0], IMASK [1].
pub const CTL_ENABLE: u64 = 1 << 0;
pub const CTL_IMASK: u64 = 1 << 1;

/// Per CPU: the counter value when the virtual timer's interrupt was taken (0: not since the
/// last `arm`).
static FIRED_AT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Arms this CPU's virtual timer to fire `us` microseconds from now; returns the deadline.
pub fn arm_in_us(us: u64) -> u64 {
    let deadline = arch::now() + arch::us_to_ticks(us);
    FIRED_AT[arch::cpu_index()].store(0, Ordering::Relaxed);
    write_sysreg(regs::CNTV_CVAL_EL0, deadline);
    write_sysreg(regs::CNTV_CTL_EL0, CTL_ENABLE);
    deadline
}

/// Stops the virtual timer from asserting its interrupt.
pub fn disarm() {
    write_sysreg(regs::CNTV_CTL_EL0, CTL_IMASK);
}

/// The IRQ handler's part.
pub fn on_interrupt() {
    disarm();
    FIRED_AT[arch::cpu_index()].store(arch::now().max(1), Ordering::Relaxed);
}

/// When the interrupt was taken since the last `arm_in_us` on this CPU, if it was.
pub fn fired_at() -> Option<u64> {
    let at = FIRED_AT[arch::cpu_index()].load(Ordering::Relaxed);
    (at != 0).then_some(at)
}
