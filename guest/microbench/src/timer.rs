//! The generic timer: the virtual counter as our clock, and the EL1 virtual timer (CNTV, PPI 27)
//! whose interrupt latency we measure.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::{self, sysreg_read, sysreg_write};

/// The virtual timer's interrupt, a PPI.
pub const PPI_VIRTUAL_TIMER: u32 = 27;

/// CNTV_CTL_EL0: ENABLE [0], IMASK [1].
const CNTV_CTL_ENABLE: u64 = 1 << 0;
const CNTV_CTL_IMASK: u64 = 1 << 1;
const NS_PER_SECOND: u128 = 1_000_000_000;
const MS_PER_SECOND: u64 = 1000;

sysreg_read!(fn cntfrq = "cntfrq_el0");
sysreg_read!(fn cntvct = "cntvct_el0");
sysreg_write!(fn set_cntv_cval = "cntv_cval_el0");
sysreg_write!(fn set_cntv_ctl = "cntv_ctl_el0");

/// The counter's frequency in Hz.
pub fn frequency() -> u64 {
    cntfrq()
}

/// The virtual count now, read after all earlier instructions completed.
#[inline(always)]
pub fn now() -> u64 {
    arch::isb();
    cntvct()
}

/// `ticks` of the counter in nanoseconds.
pub fn ticks_to_ns(ticks: u64) -> u64 {
    (u128::from(ticks) * NS_PER_SECOND / u128::from(frequency().max(1))) as u64
}

/// Counter ticks in `ms` milliseconds.
pub fn ms_to_ticks(ms: u64) -> u64 {
    frequency() * ms / MS_PER_SECOND
}

/// A point in counter time to give up waiting at.
#[derive(Clone, Copy)]
pub struct Deadline(u64);

impl Deadline {
    pub fn after_ms(ms: u64) -> Self {
        Self(now() + ms_to_ticks(ms))
    }

    pub fn passed(self) -> bool {
        now() >= self.0
    }
}

/// Set by the interrupt handler when the virtual timer fired, with the counter at IRQ entry.
static FIRED: AtomicBool = AtomicBool::new(false);
static ENTRY_TICKS: AtomicU64 = AtomicU64::new(0);

/// Arms the virtual timer to fire when the virtual count reaches `cval`.
pub fn arm(cval: u64) {
    FIRED.store(false, Ordering::Relaxed);
    set_cntv_cval(cval);
    set_cntv_ctl(CNTV_CTL_ENABLE);
    arch::isb();
}

/// Stops the virtual timer from asserting its interrupt.
pub fn disarm() {
    set_cntv_ctl(CNTV_CTL_IMASK);
    arch::isb();
}

/// The interrupt handler's part: `entry_ticks` is CNTVCT_EL0 read first thing in the vector.
pub fn on_interrupt(entry_ticks: u64) {
    disarm();
    ENTRY_TICKS.store(entry_ticks, Ordering::Relaxed);
    FIRED.store(true, Ordering::Release);
}

/// The entry time of the interrupt since the last [`arm`], if it fired.
pub fn fired_at() -> Option<u64> {
    FIRED.load(Ordering::Acquire).then(|| ENTRY_TICKS.load(Ordering::Relaxed))
}
