//! The generic timer's virtual counter, the AArch64 replacement for `rdtsc` (palacios-hvm.md
//! §7.10): `CNTVCT_EL0` ticks at `CNTFRQ_EL0` Hz, readable at EL0 (Linux sets
//! `CNTKCTL_EL1.EL0VCTEN`), and the hypervisor keeps it identical for ROS and HRT vCPUs.
//!
//! On other architectures (host builds and tests) the same functions count nanoseconds of
//! `CLOCK_MONOTONIC`, at a "frequency" of 1 GHz.

/// The counter now (an `isb` first, so earlier instructions are not timed after it).
#[cfg(target_arch = "aarch64")]
pub fn now() -> u64 {
    let ticks: u64;
    // SAFETY: reads a system register EL0 may read; no memory, no stack.
    unsafe { core::arch::asm!("isb", "mrs {}, cntvct_el0", out(reg) ticks, options(nomem, nostack)) };
    ticks
}

/// The counter frequency in Hz.
#[cfg(target_arch = "aarch64")]
pub fn frequency() -> u64 {
    let hz: u64;
    // SAFETY: reads a system register EL0 may read; no memory, no stack.
    unsafe { core::arch::asm!("mrs {}, cntfrq_el0", out(reg) hz, options(nomem, nostack)) };
    hz.max(1)
}

/// Nanoseconds of `CLOCK_MONOTONIC` (stands in for the counter off aarch64).
#[cfg(not(target_arch = "aarch64"))]
pub fn now() -> u64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// 1 GHz: [`now`] counts nanoseconds off aarch64.
#[cfg(not(target_arch = "aarch64"))]
pub fn frequency() -> u64 {
    1_000_000_000
}

/// `ticks` at `hz` in nanoseconds (no overflow for any u64 inputs).
pub fn ticks_to_ns(ticks: u64, hz: u64) -> u64 {
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz.max(1))).min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_and_monotonic_reads() {
        assert_eq!(ticks_to_ns(62_500_000, 62_500_000), 1_000_000_000);
        assert_eq!(ticks_to_ns(1, 62_500_000), 16);
        assert_eq!(ticks_to_ns(u64::MAX, 1), u64::MAX);
        assert_eq!(ticks_to_ns(5, 0), 5_000_000_000, "a zero frequency counts as 1 Hz");
        let (a, b) = (now(), now());
        assert!(b >= a);
        assert!(frequency() > 0);
    }
}
