//! `bench` (cmdline.rs): the cost of the cheapest hypercall from HRT EL1, the null call, timed
//! with the counter over [`NULL_CALLS`] calls before core 0 reports ready.

use core::fmt;

use crate::cpu::IrqsMasked;
use crate::{hvc, timer};

/// Calls timed: enough that the counter's resolution (16 ns at QEMU's 62.5 MHz) is lost in the
/// average, few enough to take a fraction of a second even under emulation.
pub const NULL_CALLS: u64 = 10_000;
const NANOS_PER_SECOND: u128 = 1_000_000_000;
/// The result is kept in tenths of a nanosecond (one decimal place, integer math).
const TENTHS_PER_NANO: u64 = 10;

/// The average cost of one null call.
#[derive(Clone, Copy, Debug)]
pub struct NullCallCost {
    tenths_of_ns: u64,
}

impl fmt::Display for NullCallCost {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let (whole, tenths) = (self.tenths_of_ns / TENTHS_PER_NANO, self.tenths_of_ns % TENTHS_PER_NANO);
        write!(f, "null hypercall from EL1: {whole}.{tenths} ns/call over {NULL_CALLS} calls")
    }
}

/// A null call failed during the bench: which one (from 0) and how.
#[derive(Clone, Copy, Debug)]
pub struct BenchError {
    call: u64,
    error: hvc::CallError,
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "null call {} of {NULL_CALLS} failed: {}", self.call, self.error)
    }
}

/// Times [`NULL_CALLS`] null calls; `frequency` is the counter's (boot info).
pub fn null_calls(frequency: u64) -> Result<NullCallCost, BenchError> {
    // No interrupt handler of ours runs inside the measurement (the boot check disarmed the
    // timer, but an early upcall or a stray interrupt would otherwise count as call time).
    let _masked = IrqsMasked::new();
    let start = timer::now();
    for call in 0..NULL_CALLS {
        hvc::null().map_err(|error| BenchError { call, error })?;
    }
    let elapsed = timer::now() - start;
    // ticks / frequency seconds over NULL_CALLS calls, in tenths of a ns, rounded to nearest.
    let numerator = u128::from(elapsed) * NANOS_PER_SECOND * u128::from(TENTHS_PER_NANO);
    let denominator = u128::from(frequency.max(1)) * u128::from(NULL_CALLS);
    let tenths_of_ns = ((numerator + denominator / 2) / denominator).try_into().unwrap_or(u64::MAX);
    Ok(NullCallCost { tenths_of_ns })
}
