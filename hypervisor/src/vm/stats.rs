//! Collecting the exit profile (see `crate::profile`) on the exit path, and printing it.

use core::sync::atomic::{AtomicU64, Ordering};

use spin::Mutex;

use crate::arch::aarch64::cpu;
use crate::console::{CONSOLE, LOG_PREFIX};
use crate::options::MAX_VCPUS;
use crate::profile::rate_limit::RateLimit;
use crate::profile::{write_profile, ExitKind, VcpuProfile, VgicStats};

/// Each vCPU's profile; only its own pCPU writes it, so the locks are uncontended.
static PROFILES: [Mutex<VcpuProfile>; MAX_VCPUS] = [const { Mutex::new(VcpuProfile::new()) }; MAX_VCPUS];
/// Counter value when each vCPU last entered the guest.
static LAST_ENTRY: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
/// Ticks the vCPU slept in WFI during the current exit (not hypervisor work).
static IDLE: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
/// How many vCPUs the profile covers.
static VCPUS: AtomicU64 = AtomicU64::new(0);

/// A vCPU (re)starts on this pCPU.
pub fn vcpu_started(vcpu: usize) {
    VCPUS.fetch_max(vcpu as u64 + 1, Ordering::Relaxed);
    PROFILES[vcpu].lock().switches += 1;
    LAST_ENTRY[vcpu].store(cpu::counter(), Ordering::Relaxed);
}

/// A saved vCPU is loaded again (a context switch).
pub fn vcpu_switched_in(vcpu: usize) {
    PROFILES[vcpu].lock().switches += 1;
    LAST_ENTRY[vcpu].store(cpu::counter(), Ordering::Relaxed);
}

/// Time the vCPU spent idle in WFI, to leave out of the exit's cost.
pub fn add_idle(vcpu: usize, ticks: u64) {
    IDLE[vcpu].fetch_add(ticks, Ordering::Relaxed);
}

/// Each vCPU's allowance of log lines it can cause.
static LOG_LIMITS: [Mutex<RateLimit>; MAX_VCPUS] = [const { Mutex::new(RateLimit::new()) }; MAX_VCPUS];

/// Whether a log line vCPU `vcpu` caused may be printed now (see `profile::rate_limit`); the
/// profile counts both outcomes.
pub fn guest_log_allowed(vcpu: usize) -> bool {
    let (Some(limit), Some(profile)) = (LOG_LIMITS.get(vcpu), PROFILES.get(vcpu)) else {
        return true;
    };
    let allowed = limit.lock().allow(cpu::counter(), cpu::counter_frequency());
    let mut profile = profile.lock();
    if allowed {
        profile.guest_logs += 1;
    } else {
        profile.guest_logs_suppressed += 1;
    }
    allowed
}

/// vGIC work of the exit in progress on each pCPU (lock waits are counted where they happen).
static PCPU_VGIC: [Mutex<VgicStats>; MAX_VCPUS] = [const { Mutex::new(VgicStats::new()) }; MAX_VCPUS];

/// Adds vGIC work to the exit in progress on this pCPU.
pub fn add_vgic(work: VgicStats) {
    if let Some(stats) = PCPU_VGIC.get(cpu::current_index()) {
        stats.lock().add(&work);
    }
}

/// One exit handled: it began at `exit_start` and ends now, just before re-entering the guest.
pub fn record_exit(vcpu: usize, kind: ExitKind, exit_start: u64, injected: u64) {
    let now = cpu::counter();
    let idle = IDLE[vcpu].swap(0, Ordering::Relaxed);
    let guest = exit_start.saturating_sub(LAST_ENTRY[vcpu].load(Ordering::Relaxed));
    let handling = now.saturating_sub(exit_start).saturating_sub(idle);
    let mut profile = PROFILES[vcpu].lock();
    profile.record_exit(kind, guest, handling);
    profile.injected += injected;
    if let Some(stats) = PCPU_VGIC.get(cpu::current_index()) {
        profile.vgic.add(&core::mem::take(&mut *stats.lock()));
    }
    LAST_ENTRY[vcpu].store(now, Ordering::Relaxed);
}

/// Prints every vCPU's profile on the console.
pub fn print_profile() {
    let count = (VCPUS.load(Ordering::Relaxed) as usize).min(MAX_VCPUS);
    let mut snapshot = [VcpuProfile::new(); MAX_VCPUS];
    for (copy, live) in snapshot.iter_mut().zip(PROFILES.iter()).take(count) {
        *copy = *live.lock();
    }
    write_profile(cpu::counter_frequency(), &snapshot[..count], |line| {
        CONSOLE.write_text(format_args!("{LOG_PREFIX}{line}\n"));
    });
}
