//! The EL2 physical timer (CNTHP): the scheduler's preemption tick and idle wake-up. Only EL2
//! can program it, so nothing a guest does can stop the tick.

use aarch64_cpu::registers::{Writeable, CNTHP_CTL_EL2};

/// Fires the tick when the counter reaches `deadline`.
pub fn arm_at(deadline: u64) {
    // SAFETY: CNTHP_CVAL_EL2 is the hypervisor's own timer.
    unsafe { core::arch::asm!("msr cnthp_cval_el2, {}", in(reg) deadline) };
    CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::SET + CNTHP_CTL_EL2::IMASK::CLEAR);
}

/// Stops the tick (its interrupt line drops).
pub fn disarm() {
    CNTHP_CTL_EL2.write(CNTHP_CTL_EL2::ENABLE::CLEAR);
}
