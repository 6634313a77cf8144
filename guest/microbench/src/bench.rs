//! The measurements, and their report lines:
//!
//! ```text
//! MICROBENCH: <name> median_ns=<x> min_ns=<y> n=<samples>[ max_ns=<z>]
//! MICROBENCH: <name> unavailable reason=<why>
//! ```
//!
//! Cheap operations (a hypercall, an MMIO read) are timed in batches of [`BATCH`] back to back,
//! so the counter's resolution (16 ns at QEMU's 62.5 MHz) does not dominate; a sample is the
//! batch's time divided by [`BATCH`], and `n` counts samples.

use core::fmt::Display;

use smccc::{Hvc, Smc};

use crate::dtb::{Conduit, Platform};
use crate::gic::{self, Redistributor};
use crate::timer::{self, Deadline, PPI_VIRTUAL_TIMER};
use crate::uart::{self, println};
use crate::{arch, exceptions, ipi, psci};

/// Samples per measurement, and operations per sample for the batched ones.
pub const SAMPLES: usize = 1000;
pub const BATCH: u64 = 8;
/// Untimed batches before the timed ones.
const WARM_UP_BATCHES: u64 = 100;
/// The batch size of a measurement that times one operation per sample.
const UNBATCHED: u64 = 1;
/// The SGI a CPU sends itself.
const SGI_SELF: u32 = 1;
/// The measurements that need the GIC set up.
const GIC_MEASUREMENTS: [&str; 5] = ["eoi", "sgi_self", "ipi_round_trip", "timer_latency", "timer_latency_wfi"];
/// Timer latency: samples, and how far ahead the timer is armed.
const TIMER_SAMPLES: usize = 20;
const TIMER_DELAY_MS: u64 = 1;
/// How long an interrupt we wait for may take before we call it lost.
const DELIVERY_MS: u64 = 100;

/// Runs every measurement on the boot CPU (IRQs masked on entry) and prints the results.
pub fn run_all(platform: &Platform) {
    let mut samples = [0u64; SAMPLES];

    match psci::conduit() {
        Conduit::Hvc => time_batches(&mut samples, psci::raw_version::<Hvc>),
        Conduit::Smc => time_batches(&mut samples, psci::raw_version::<Smc>),
    }
    report("null_hvc", &mut samples, BATCH, false);
    time_batches(&mut samples, || uart::read(uart::UARTFR));
    report("mmio_uart", &mut samples, BATCH, false);
    time_batches(&mut samples, || gic::gicd_read(gic::GICD_TYPER));
    report("mmio_gicd", &mut samples, BATCH, false);

    let redistributor = match gic::init_distributor().and_then(|()| Redistributor::this_cpu()) {
        Ok(redistributor) => redistributor,
        Err(err) => {
            for name in GIC_MEASUREMENTS {
                unavailable(name, format_args!("GIC setup failed: {err}"));
            }
            return;
        }
    };
    redistributor.enable(SGI_SELF);
    redistributor.enable(PPI_VIRTUAL_TIMER);
    gic::init_cpu_interface();

    match eoi(&mut samples) {
        Ok(()) => report("eoi", &mut samples, UNBATCHED, false),
        Err(reason) => unavailable("eoi", reason),
    }
    match sgi_self(&mut samples) {
        Ok(()) => report("sgi_self", &mut samples, UNBATCHED, false),
        Err(reason) => unavailable("sgi_self", reason),
    }
    match ipi::round_trips(platform, &mut samples) {
        Ok(()) => report("ipi_round_trip", &mut samples, UNBATCHED, false),
        Err(reason) => unavailable("ipi_round_trip", reason),
    }

    let mut latencies = [0u64; TIMER_SAMPLES];
    match timer_latency(&mut latencies, false) {
        Ok(()) => {
            report("timer_latency", &mut latencies, UNBATCHED, true);
            match timer_latency(&mut latencies, true) {
                Ok(()) => report("timer_latency_wfi", &mut latencies, UNBATCHED, true),
                Err(reason) => unavailable("timer_latency_wfi", reason),
            }
        }
        Err(reason) => {
            unavailable("timer_latency", &reason);
            // A timer interrupt that never comes would leave WFI asleep for good.
            unavailable("timer_latency_wfi", format_args!("not tried: the busy-loop variant failed ({reason})"));
        }
    }
    if let Some(intid) = exceptions::take_unexpected_interrupt() {
        println!("MICROBENCH: warning: unexpected interrupt INTID {intid} was taken (and ended)");
    }
}

/// Fills `samples` with the time of [`BATCH`] calls of `op` each, in counter ticks, after
/// [`WARM_UP_BATCHES`] untimed batches (QEMU translates the code on first use).
fn time_batches<T>(samples: &mut [u64], mut op: impl FnMut() -> T) {
    for _ in 0..WARM_UP_BATCHES * BATCH {
        core::hint::black_box(op());
    }
    for sample in samples.iter_mut() {
        let start = timer::now();
        for _ in 0..BATCH {
            core::hint::black_box(op());
        }
        *sample = timer::now() - start;
    }
}

/// Why a GIC measurement failed.
enum GicError {
    Lost { what: &'static str, iteration: usize },
    WrongIntid { expected: u32, got: u32 },
}

impl Display for GicError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Lost { what, iteration } => {
                write!(f, "{what} did not arrive within {DELIVERY_MS} ms (iteration {iteration})")
            }
            Self::WrongIntid { expected, got } => {
                write!(f, "ICC_IAR1_EL1 returned INTID {got}, expected {expected}")
            }
        }
    }
}

/// Acknowledge + end of an SGI already pending: ICC_IAR1_EL1 then ICC_EOIR1_EL1.
fn eoi(samples: &mut [u64]) -> Result<(), GicError> {
    let me = arch::mpidr() & arch::MPIDR_AFFINITY_MASK;
    for (iteration, sample) in samples.iter_mut().enumerate() {
        gic::send_sgi(SGI_SELF, me);
        let deadline = Deadline::after_ms(DELIVERY_MS);
        while arch::isr() & arch::ISR_IRQ == 0 {
            if deadline.passed() {
                return Err(GicError::Lost { what: "self-SGI (ISR_EL1.I)", iteration });
            }
        }
        let start = timer::now();
        let intid = gic::ack();
        gic::end(intid);
        *sample = timer::now() - start;
        check_intid(SGI_SELF, intid)?;
    }
    Ok(())
}

/// From the ICC_SGI1R_EL1 write to an SGI for ourselves until ICC_IAR1_EL1 returns it.
fn sgi_self(samples: &mut [u64]) -> Result<(), GicError> {
    let me = arch::mpidr() & arch::MPIDR_AFFINITY_MASK;
    for (iteration, sample) in samples.iter_mut().enumerate() {
        let deadline = Deadline::after_ms(DELIVERY_MS);
        let start = timer::now();
        gic::send_sgi(SGI_SELF, me);
        let intid = loop {
            let intid = gic::ack();
            if !gic::is_special(intid) {
                break intid;
            }
            if deadline.passed() {
                return Err(GicError::Lost { what: "self-SGI (ICC_IAR1_EL1)", iteration });
            }
        };
        *sample = timer::now() - start;
        gic::end(intid);
        check_intid(SGI_SELF, intid)?;
    }
    Ok(())
}

fn check_intid(expected: u32, got: u32) -> Result<(), GicError> {
    if got == expected {
        Ok(())
    } else {
        Err(GicError::WrongIntid { expected, got })
    }
}

/// The virtual timer's interrupt latency: from CNTV_CVAL_EL0 to the IRQ vector, in ticks,
/// busy-looping with IRQs unmasked or (`wfi`) waiting in WFI.
fn timer_latency(samples: &mut [u64], wfi: bool) -> Result<(), GicError> {
    for (iteration, sample) in samples.iter_mut().enumerate() {
        let cval = timer::now() + timer::ms_to_ticks(TIMER_DELAY_MS);
        let deadline = Deadline::after_ms(TIMER_DELAY_MS + DELIVERY_MS);
        timer::arm(cval);
        let entry = if wfi { wait_in_wfi(deadline) } else { wait_busy(deadline) };
        let Some(entry) = entry else {
            timer::disarm();
            return Err(GicError::Lost { what: "virtual timer interrupt (PPI 27)", iteration });
        };
        *sample = entry.saturating_sub(cval);
    }
    Ok(())
}

/// Spins with IRQs unmasked until the timer interrupt was taken; IRQs masked again on return.
fn wait_busy(deadline: Deadline) -> Option<u64> {
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
    entry
}

/// Sleeps in WFI until the timer interrupt was taken. IRQs stay masked around the check and the
/// WFI (a masked pending IRQ still wakes it), and are unmasked only to take the interrupt.
/// The deadline is checked after each wake-up: an interrupt that never comes hangs here.
fn wait_in_wfi(deadline: Deadline) -> Option<u64> {
    loop {
        if let Some(entry) = timer::fired_at() {
            return Some(entry);
        }
        if deadline.passed() {
            return None;
        }
        arch::wfi();
        arch::unmask_irqs();
        arch::mask_irqs();
    }
}

/// Prints a result line: median and min of `samples` (counter ticks per `batch` operations).
fn report(name: &str, samples: &mut [u64], batch: u64, with_max: bool) {
    samples.sort_unstable();
    let ns = |ticks: u64| timer::ticks_to_ns(ticks) / batch;
    let (min, median, max) = (samples[0], samples[samples.len() / 2], samples[samples.len() - 1]);
    if with_max {
        println!(
            "MICROBENCH: {name} median_ns={} min_ns={} n={} max_ns={}",
            ns(median),
            ns(min),
            samples.len(),
            ns(max)
        );
    } else {
        println!("MICROBENCH: {name} median_ns={} min_ns={} n={}", ns(median), ns(min), samples.len());
    }
}

fn unavailable(name: &str, reason: impl Display) {
    println!("MICROBENCH: {name} unavailable reason={reason}");
}
