//! The EL2 physical timer (CNTHP): the scheduler's preemption tick and idle wake-up. Only EL2
//! can program it, so nothing a guest does can stop the tick.

use aarch64_cpu::registers::{Readable, Writeable, CNTHP_CTL_EL2};

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

/// Sleeps this pCPU until the counter reaches `deadline` or an interrupt is pending, whichever
/// comes first, and leaves the tick as it found it. Returns at once if an interrupt is pending
/// already, or if this pCPU is handling one (inside the IRQ path, before its priority drop):
/// then the nap's own timer interrupt would not be signalled, and the WFI might never end.
/// On QEMU a WFI with nothing pending stops the CPU's host thread, so its host core goes to
/// another thread, e.g. the holder of a lock this pCPU waits for.
pub fn nap_until(deadline: u64) {
    if super::cpu::physical_irq_pending() || super::gic::handling_interrupt() {
        return;
    }
    let saved_ctl = CNTHP_CTL_EL2.get();
    let saved_deadline = deadline_register();
    let tick_armed = CNTHP_CTL_EL2.matches_all(CNTHP_CTL_EL2::ENABLE::SET + CNTHP_CTL_EL2::IMASK::CLEAR);
    arm_at(if tick_armed { deadline.min(saved_deadline) } else { deadline });
    aarch64_cpu::asm::wfi();
    // SAFETY: as in `arm_at`; the deadline goes back before the control, so a re-enabled tick
    // never compares against the nap's deadline.
    unsafe { core::arch::asm!("msr cnthp_cval_el2, {}", in(reg) saved_deadline) };
    CNTHP_CTL_EL2.set(saved_ctl);
}

/// [`nap_until`] `micros` microseconds from now.
pub fn nap_for_us(micros: u64) {
    nap_until(super::cpu::counter() + super::cpu::counter_frequency() * micros / 1_000_000);
}

/// CNTHP_CVAL_EL2 (aarch64-cpu has no accessor for it).
fn deadline_register() -> u64 {
    let value: u64;
    // SAFETY: reading the hypervisor's own timer deadline has no side effect.
    unsafe { core::arch::asm!("mrs {}, cnthp_cval_el2", out(reg) value) };
    value
}
