//! The counter and the EL1 virtual timer (CNTV, PPI 27): time conversions, the boot check that
//! interrupts reach this core (arm the timer 1 ms ahead, wait for its interrupt), and arming it
//! for others (the heartbeat).

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, Writeable, CNTVCT_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0};

use crate::cpu::{self, MAX_CORES};

const MICROS_PER_SECOND: u128 = 1_000_000;
/// The boot check arms the timer this far ahead...
const CHECK_DELAY_US: u64 = 1_000;
/// ...and gives up on its interrupt after this long.
const CHECK_TIMEOUT_US: u64 = 100_000;

/// Virtual timer interrupts taken, per core.
static TICKS: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];

/// CNTVCT_EL0, not read early (the ISB keeps it after the preceding instructions).
pub fn now() -> u64 {
    barrier::isb(barrier::SY);
    CNTVCT_EL0.get()
}

pub fn us_to_ticks(us: u64, frequency: u64) -> u64 {
    (u128::from(us) * u128::from(frequency) / MICROS_PER_SECOND).try_into().unwrap_or(u64::MAX)
}

pub fn ticks_to_us(ticks: u64, frequency: u64) -> u64 {
    (u128::from(ticks) * MICROS_PER_SECOND / u128::from(frequency.max(1))).try_into().unwrap_or(u64::MAX)
}

/// Spins for `us` microseconds on the counter.
pub fn busy_wait_us(us: u64, frequency: u64) {
    let deadline = now().saturating_add(us_to_ticks(us, frequency));
    while now() < deadline {
        core::hint::spin_loop();
    }
}

/// Raises PPI 27 when CNTVCT reaches `deadline` (once: the IRQ handler disarms it).
pub fn arm_at(deadline: u64) {
    CNTV_CVAL_EL0.set(deadline);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
    barrier::isb(barrier::SY);
}

/// Stops the timer (and with it a level interrupt that would otherwise come straight back).
fn disarm() {
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR);
    barrier::isb(barrier::SY);
}

/// Whether the armed timer has expired (ISTATUS; meaningful while ENABLE is set).
fn expired() -> bool {
    CNTV_CTL_EL0.matches_all(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::ISTATUS::SET)
}

/// The IRQ handler's part: count the tick, stop the timer.
pub fn on_interrupt(core: usize) {
    disarm();
    if let Some(ticks) = TICKS.get(core) {
        ticks.fetch_add(1, Ordering::Relaxed);
    }
}

/// Virtual timer interrupts this core has taken so far: a waiter compares it with an earlier
/// value to learn that its deadline passed.
pub fn interrupts_taken() -> u64 {
    TICKS.get(cpu::core_index()).map_or(0, |ticks| ticks.load(Ordering::Relaxed))
}

/// The timer's interrupt did not come.
#[derive(Clone, Copy, Debug)]
pub struct NoTick {
    /// Whether the timer had expired (the interrupt was lost, not the timer).
    pub expired: bool,
}

impl fmt::Display for NoTick {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let state = if self.expired { "expired" } else { "never expired" };
        write!(f, "no virtual timer interrupt within {CHECK_TIMEOUT_US} us (timer {state})")
    }
}

/// Proves interrupts reach this core: arms the virtual timer 1 ms ahead and sleeps in WFI
/// until its interrupt is taken. Returns the microseconds from arming to the tick.
///
/// IRQs are masked around each check-and-WFI (WFI still wakes on a pending interrupt) and
/// unmasked after it, where the interrupt is taken: an interrupt that arrives between the check
/// and the WFI cannot leave the core asleep. WFI only while the timer has yet to expire; after
/// that the core polls, so a lost interrupt costs at most the timeout, never a hang.
pub fn check_interrupts(frequency: u64) -> Result<u64, NoTick> {
    let core = cpu::core_index();
    let counter = &TICKS[core];
    let before = counter.load(Ordering::Relaxed);
    let start = now();
    let give_up = start.saturating_add(us_to_ticks(CHECK_TIMEOUT_US, frequency));
    arm_at(start + us_to_ticks(CHECK_DELAY_US, frequency));
    cpu::enable_interrupts();
    loop {
        cpu::disable_irqs();
        if counter.load(Ordering::Relaxed) != before {
            cpu::enable_irqs();
            return Ok(ticks_to_us(now() - start, frequency));
        }
        if now() >= give_up {
            let expired = expired();
            disarm();
            cpu::enable_irqs();
            return Err(NoTick { expired });
        }
        if !expired() {
            cpu::wait_for_interrupt();
        }
        cpu::enable_irqs();
    }
}
