//! The timers' interrupt lines as the guest sees them through the GIC.
//!
//! `<timer>_disable_before_take_<variant>[_ispendr_clear]`: a timer interrupt that fired while
//! IRQs were masked and that the timer stopped asserting before IRQs were unmasked (CTL.ENABLE
//! cleared, CTL.IMASK set, or CVAL moved into the future) is no longer pending: GICR_ISPENDR0
//! shows it clear, and unmasking takes nothing. The timer interrupts are level-sensitive, so
//! this is what a GIC does; Linux relies on it when it reprograms a timer with IRQs off.
//!
//! `vtimer_latency_busy`: the virtual timer armed 10 ms ahead interrupts a busy loop promptly
//! (median below 2 ms).

use core::fmt;

use crate::gic::{self, Redistributor};
use crate::timer::{self, Deadline, Timer, CTL_ENABLE, CTL_IMASK, CTL_ISTATUS};
use crate::{arch, exceptions};

use super::Report;

/// How long a timer armed in the past may take to show ISTATUS.
const ISTATUS_MS: u64 = 100;
/// After ISTATUS, how long to wait so that the interrupt has certainly been signalled.
const SIGNAL_US: u64 = 100;
/// How far into the future the `cval_future` variant moves CVAL.
const FUTURE_MS: u64 = 1000;
/// How long IRQs stay unmasked for a stale interrupt to be taken.
const UNMASKED_US: u64 = 1000;

/// Latency: samples per round, rounds at most, how far ahead the timer is armed, how long an
/// interrupt may take before it counts as lost, and the bound on a round's median.
const LATENCY_SAMPLES: usize = 20;
const LATENCY_ROUNDS: usize = 3;
const LATENCY_DELAY_MS: u64 = 10;
const LATENCY_LOST_MS: u64 = 100;
const LATENCY_MEDIAN_MAX_US: u64 = 2000;
const NS_PER_US: u64 = 1000;
/// The latency check's interrupt.
const PPI: u32 = timer::PPI_VIRTUAL_TIMER;

/// How the timer stops asserting its interrupt.
#[derive(Clone, Copy)]
enum Disable {
    /// CTL.ENABLE = 0.
    Enable0,
    /// CTL.IMASK = 1, still enabled.
    Imask,
    /// CVAL a second ahead, still enabled and unmasked.
    CvalFuture,
}

impl Disable {
    const ALL: [Self; 3] = [Self::Enable0, Self::Imask, Self::CvalFuture];

    fn name(self) -> &'static str {
        match self {
            Self::Enable0 => "enable0",
            Self::Imask => "imask",
            Self::CvalFuture => "cval_future",
        }
    }

    fn apply(self, timer: Timer) {
        match self {
            Self::Enable0 => timer.set_ctl(0),
            Self::Imask => timer.set_ctl(CTL_ENABLE | CTL_IMASK),
            Self::CvalFuture => timer.set_cval(timer.count() + timer::ms_to_ticks(FUTURE_MS)),
        }
    }
}

/// The check names' prefix for `timer`.
fn prefix(timer: Timer) -> &'static str {
    match timer {
        Timer::Virtual => "vtimer",
        Timer::Physical => "ptimer",
    }
}

/// Per variant, two checks, each on a fresh firing of the timer:
/// * `<timer>_disable_before_take_<variant>`: disable, unmask IRQs without touching the GIC
///   (what Linux does when it reprograms a timer), nothing must be taken;
/// * `..._ispendr_clear`: disable, GICR_ISPENDR0 must show the PPI clear, then unmask: nothing
///   must be taken either (a hypervisor may resample the line on that GIC access; the first
///   check shows whether it also does without one).
pub fn disable_before_take(report: &mut Report, redistributor: &Redistributor, timer: Timer) {
    for variant in Disable::ALL {
        let name = format_args!("{}_disable_before_take_{}", prefix(timer), variant.name());
        match fire_and_disable(timer, variant) {
            Ok(signalled) => {
                let taken = unmask_and_count(timer);
                report.record(name, taken == 0, Taken { ppi: timer.ppi(), taken, signalled });
            }
            Err(why) => report.record(name, false, why),
        }
        let name = format_args!("{name}_ispendr_clear");
        match fire_and_disable(timer, variant) {
            Ok(signalled) => {
                let pending = redistributor.is_pending(timer.ppi());
                let taken = unmask_and_count(timer);
                let ppi = timer.ppi();
                report.record(
                    name,
                    !pending && taken == 0,
                    format_args!(
                        "GICR_ISPENDR0 bit {ppi} read {}; {}",
                        u8::from(pending),
                        Taken { ppi, taken, signalled }
                    ),
                );
            }
            Err(why) => report.record(name, false, why),
        }
    }
}

/// With IRQs masked: fires `timer` (CVAL in the past, enabled, unmasked), waits until the
/// interrupt is certainly signalled, and stops it the `variant` way. Returns whether ISR_EL1
/// showed the IRQ pending before the disable; IRQs stay masked.
fn fire_and_disable(timer: Timer, variant: Disable) -> Result<bool, NeverFired> {
    arch::mask_irqs();
    clean_up(timer);
    timer.program(timer.count().wrapping_sub(1), CTL_ENABLE);
    let deadline = Deadline::after_ms(ISTATUS_MS);
    while timer.ctl() & CTL_ISTATUS == 0 {
        if deadline.passed() {
            clean_up(timer);
            return Err(NeverFired);
        }
    }
    timer::delay_us(SIGNAL_US);
    let signalled = arch::isr() & arch::ISR_IRQ != 0;
    variant.apply(timer);
    Ok(signalled)
}

/// Unmasks IRQs for [`UNMASKED_US`], masks them again, cleans up; how often the timer's PPI
/// was taken meanwhile.
fn unmask_and_count(timer: Timer) -> u32 {
    arch::unmask_irqs();
    timer::delay_us(UNMASKED_US);
    arch::mask_irqs();
    let taken = exceptions::take_count(timer.ppi());
    clean_up(timer);
    taken
}

/// CTL.ISTATUS stayed 0 after arming the timer in the past.
struct NeverFired;

impl fmt::Display for NeverFired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CTL.ISTATUS did not read 1 within {ISTATUS_MS} ms of arming the timer in the past")
    }
}

/// The details of a disable-before-take line.
struct Taken {
    ppi: u32,
    taken: u32,
    /// ISR_EL1.I before the disable.
    signalled: bool,
}

impl fmt::Display for Taken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "INTID {} taken {} time(s) in {UNMASKED_US} us with IRQs unmasked after the disable (ISR_EL1.I before it: {})",
            self.ppi,
            self.taken,
            u8::from(self.signalled)
        )
    }
}

/// With IRQs masked: the timer disarmed, whatever is pending acknowledged and ended, the
/// timer's take count zeroed.
fn clean_up(timer: Timer) {
    timer.disarm();
    gic::drain();
    exceptions::take_count(timer.ppi());
}

/// `vtimer_latency_busy`: from CVAL to the IRQ vector, busy-looping with IRQs unmasked. The
/// guest's clock runs on while the host deschedules QEMU, so a loaded host shows up as
/// latency: a round whose median is too high is repeated, up to [`LATENCY_ROUNDS`] rounds (a
/// hypervisor that delivers late does so in every round). A lost interrupt fails at once.
pub fn latency_busy(report: &mut Report, redistributor: &Redistributor) {
    const NAME: &str = "vtimer_latency_busy";
    let mut earlier = [0u64; LATENCY_ROUNDS];
    for round in 0..LATENCY_ROUNDS {
        let (median, max) = match latency_round(redistributor) {
            Ok(result) => result,
            Err(Lost { iteration, ctl, isr_irq, pending, active }) => {
                let why = format_args!(
                    "round {}, sample {iteration}: no interrupt within {LATENCY_LOST_MS} ms of CVAL \
                     ({LATENCY_DELAY_MS} ms ahead); then CNTV_CTL={ctl:#x} ISR_EL1.I={} GICR_ISPENDR0.{PPI}={} \
                     GICR_ISACTIVER0.{PPI}={}",
                    round + 1,
                    u8::from(isr_irq),
                    u8::from(pending),
                    u8::from(active)
                );
                return report.record(NAME, false, why);
            }
        };
        earlier[round] = median;
        if median < LATENCY_MEDIAN_MAX_US || round + 1 == LATENCY_ROUNDS {
            let details = format_args!(
                "median_us={median} max_us={max} n={LATENCY_SAMPLES} rounds={} medians_us={:?} (a median below \
                 {LATENCY_MEDIAN_MAX_US} in one of up to {LATENCY_ROUNDS} rounds)",
                round + 1,
                &earlier[..=round]
            );
            return report.record(NAME, median < LATENCY_MEDIAN_MAX_US, details);
        }
    }
}

/// A latency sample whose interrupt never came, and what the timer and the GIC showed then
/// (read in this order; the GIC reads may make a hypervisor resample the line).
struct Lost {
    iteration: usize,
    ctl: u64,
    isr_irq: bool,
    pending: bool,
    active: bool,
}

/// One round of [`LATENCY_SAMPLES`]: the median and maximum latency in microseconds, or the
/// sample whose interrupt was lost.
fn latency_round(redistributor: &Redistributor) -> Result<(u64, u64), Lost> {
    let mut samples = [0u64; LATENCY_SAMPLES];
    for (iteration, sample) in samples.iter_mut().enumerate() {
        let cval = timer::now() + timer::ms_to_ticks(LATENCY_DELAY_MS);
        let deadline = Deadline::after_ms(LATENCY_DELAY_MS + LATENCY_LOST_MS);
        timer::arm(cval);
        arch::unmask_irqs();
        let entry = loop {
            if let Some(entry) = timer::fired_at() {
                break Some(entry);
            }
            if deadline.passed() {
                break None;
            }
        };
        arch::mask_irqs();
        let Some(entry) = entry else {
            let (ctl, isr_irq) = (Timer::Virtual.ctl(), arch::isr() & arch::ISR_IRQ != 0);
            let (pending, active) = (redistributor.is_pending(PPI), redistributor.is_active(PPI));
            timer::disarm();
            gic::drain();
            return Err(Lost { iteration, ctl, isr_irq, pending, active });
        };
        *sample = entry.saturating_sub(cval);
    }
    samples.sort_unstable();
    let us = |ticks| timer::ticks_to_ns(ticks) / NS_PER_US;
    Ok((us(samples[LATENCY_SAMPLES / 2]), us(samples[LATENCY_SAMPLES - 1])))
}
