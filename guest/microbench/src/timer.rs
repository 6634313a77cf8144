//! The generic timer: the virtual counter as our clock, the EL1 virtual timer (CNTV, PPI 27)
//! whose interrupt latency we measure, and both EL1 timers (virtual and non-secure physical,
//! CNTP, PPI 30) as [`Timer`] for the conformance checks.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::{self, sysreg_read, sysreg_write};

/// The virtual timer's interrupt, a PPI.
pub const PPI_VIRTUAL_TIMER: u32 = 27;
/// The non-secure EL1 physical timer's interrupt, a PPI.
pub const PPI_PHYSICAL_TIMER: u32 = 30;

/// CNT{V,P}_CTL_EL0: ENABLE [0], IMASK [1], ISTATUS [2] (read-only: the condition is met).
pub const CTL_ENABLE: u64 = 1 << 0;
pub const CTL_IMASK: u64 = 1 << 1;
pub const CTL_ISTATUS: u64 = 1 << 2;
const NS_PER_SECOND: u128 = 1_000_000_000;
const MS_PER_SECOND: u64 = 1000;
const US_PER_SECOND: u64 = 1_000_000;

sysreg_read!(fn cntfrq = "cntfrq_el0");
sysreg_read!(fn cntvct = "cntvct_el0");
sysreg_read!(fn cntpct = "cntpct_el0");
sysreg_read!(fn cntv_ctl = "cntv_ctl_el0");
sysreg_read!(fn cntp_ctl = "cntp_ctl_el0");
sysreg_write!(fn set_cntv_cval = "cntv_cval_el0");
sysreg_write!(fn set_cntv_ctl = "cntv_ctl_el0");
sysreg_write!(fn set_cntp_cval = "cntp_cval_el0");
sysreg_write!(fn set_cntp_ctl = "cntp_ctl_el0");

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

/// Counter ticks in `us` microseconds (at least one).
pub fn us_to_ticks(us: u64) -> u64 {
    (frequency() * us / US_PER_SECOND).max(1)
}

/// A point in counter time to give up waiting at.
#[derive(Clone, Copy)]
pub struct Deadline(u64);

impl Deadline {
    pub fn after_ms(ms: u64) -> Self {
        Self(now() + ms_to_ticks(ms))
    }

    pub fn after_us(us: u64) -> Self {
        Self(now() + us_to_ticks(us))
    }

    pub fn passed(self) -> bool {
        now() >= self.0
    }
}

/// Busy-waits for `us` microseconds.
pub fn delay_us(us: u64) {
    let deadline = Deadline::after_us(us);
    while !deadline.passed() {
        core::hint::spin_loop();
    }
}

/// Set by the interrupt handler when the virtual timer fired, with the counter at IRQ entry.
static FIRED: AtomicBool = AtomicBool::new(false);
static ENTRY_TICKS: AtomicU64 = AtomicU64::new(0);

/// Arms the virtual timer to fire when the virtual count reaches `cval`.
pub fn arm(cval: u64) {
    FIRED.store(false, Ordering::Relaxed);
    Timer::Virtual.program(cval, CTL_ENABLE);
}

/// Stops the virtual timer from asserting its interrupt.
pub fn disarm() {
    Timer::Virtual.disarm();
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

/// One of the two EL1 timers, each compared against its own count (CNTVCT or CNTPCT: they
/// differ by CNTVOFF_EL2 under a hypervisor).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    Virtual,
    Physical,
}

impl Timer {
    /// The timer's PPI.
    pub fn ppi(self) -> u32 {
        match self {
            Self::Virtual => PPI_VIRTUAL_TIMER,
            Self::Physical => PPI_PHYSICAL_TIMER,
        }
    }

    /// The count this timer compares CVAL with, read after earlier instructions completed.
    pub fn count(self) -> u64 {
        arch::isb();
        match self {
            Self::Virtual => cntvct(),
            Self::Physical => cntpct(),
        }
    }

    pub fn ctl(self) -> u64 {
        match self {
            Self::Virtual => cntv_ctl(),
            Self::Physical => cntp_ctl(),
        }
    }

    /// Writes CTL (ISTATUS is read-only and ignored) and synchronizes the write.
    pub fn set_ctl(self, ctl: u64) {
        match self {
            Self::Virtual => set_cntv_ctl(ctl),
            Self::Physical => set_cntp_ctl(ctl),
        }
        arch::isb();
    }

    /// Writes CVAL and synchronizes the write.
    pub fn set_cval(self, cval: u64) {
        match self {
            Self::Virtual => set_cntv_cval(cval),
            Self::Physical => set_cntp_cval(cval),
        }
        arch::isb();
    }

    /// Sets the compare value, then CTL.
    pub fn program(self, cval: u64, ctl: u64) {
        self.set_cval(cval);
        self.set_ctl(ctl);
    }

    /// Stops the timer from asserting its interrupt: disabled and masked.
    pub fn disarm(self) {
        self.set_ctl(CTL_IMASK);
    }
}
