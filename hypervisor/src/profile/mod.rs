//! The exit profile: per vCPU, how often each kind of exit happened and how long the
//! hypervisor spent on it, time in the guest versus in the hypervisor, interrupts injected and
//! vCPU switches. Counted in generic-timer ticks; printed in a stable text format that
//! `scripts/hyp-prof.py` turns into a table and a chart:
//!
//! ```text
//! profile begin version=1 counter_hz=62500000 vcpus=1
//! profile vcpu=0 guest_ticks=.. hyp_ticks=.. exits=.. injected=.. switches=..
//! profile vcpu=0 vgic_syncs=.. vgic_flushes=.. lr_reads=.. lr_writes=.. lock_waits=.. lock_wait_ticks=..
//! profile vcpu=0 guest_logs=.. guest_logs_suppressed=..
//! profile vcpu=0 exit=wfi count=.. total_ticks=.. max_ticks=..
//! profile end
//! ```

pub mod rate_limit;

use core::fmt::{self, Write};

/// What an exit was, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum ExitKind {
    Wfi,
    Wfe,
    Hvc,
    Smc,
    Sgi,
    IdRegister,
    Mmio,
    MmioNoSyndrome,
    InstructionAbort,
    Undef,
    Irq,
    Other,
    PhysicalTimer,
    /// A trapped TLB maintenance instruction (replayed for the HRT while a merge is active).
    TlbMaintenance,
    /// An SError or external abort reflected to the guest as a virtual SError.
    SError,
}

impl ExitKind {
    pub const ALL: [ExitKind; 15] = [
        Self::Wfi,
        Self::Wfe,
        Self::Hvc,
        Self::Smc,
        Self::Sgi,
        Self::IdRegister,
        Self::Mmio,
        Self::MmioNoSyndrome,
        Self::InstructionAbort,
        Self::Undef,
        Self::Irq,
        Self::Other,
        Self::PhysicalTimer,
        Self::TlbMaintenance,
        Self::SError,
    ];

    /// The word used in the profile text.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Wfi => "wfi",
            Self::Wfe => "wfe",
            Self::Hvc => "hvc",
            Self::Smc => "smc",
            Self::Sgi => "sgi",
            Self::IdRegister => "id_register",
            Self::Mmio => "mmio",
            Self::MmioNoSyndrome => "mmio_no_syndrome",
            Self::InstructionAbort => "instruction_abort",
            Self::Undef => "undef",
            Self::Irq => "irq",
            Self::Other => "other",
            Self::PhysicalTimer => "physical_timer",
            Self::TlbMaintenance => "tlb_maintenance",
            Self::SError => "serror",
        }
    }
}

const KINDS: usize = ExitKind::ALL.len();

/// Counters for one kind of exit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitStats {
    pub count: u64,
    pub total_ticks: u64,
    pub max_ticks: u64,
}

/// What the exit path did with the virtual GIC: how often it synced and flushed the list
/// registers, the ICH_* list-register accesses that took, and time spent waiting for a vGIC
/// lock (a vCPU's or the distributor's) held by another pCPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VgicStats {
    pub syncs: u64,
    pub flushes: u64,
    pub lr_reads: u64,
    pub lr_writes: u64,
    pub lock_waits: u64,
    pub lock_wait_ticks: u64,
}

impl VgicStats {
    pub const fn new() -> Self {
        Self { syncs: 0, flushes: 0, lr_reads: 0, lr_writes: 0, lock_waits: 0, lock_wait_ticks: 0 }
    }

    pub fn add(&mut self, other: &VgicStats) {
        self.syncs += other.syncs;
        self.flushes += other.flushes;
        self.lr_reads += other.lr_reads;
        self.lr_writes += other.lr_writes;
        self.lock_waits += other.lock_waits;
        self.lock_wait_ticks += other.lock_wait_ticks;
    }
}

/// One vCPU's profile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuProfile {
    pub exits: [ExitStats; KINDS],
    pub guest_ticks: u64,
    pub hyp_ticks: u64,
    pub injected: u64,
    pub switches: u64,
    pub vgic: VgicStats,
    /// Log lines this vCPU's behaviour caused, printed and suppressed by the rate limit.
    pub guest_logs: u64,
    pub guest_logs_suppressed: u64,
}

impl VcpuProfile {
    pub const fn new() -> Self {
        Self {
            exits: [ExitStats { count: 0, total_ticks: 0, max_ticks: 0 }; KINDS],
            guest_ticks: 0,
            hyp_ticks: 0,
            injected: 0,
            switches: 0,
            vgic: VgicStats::new(),
            guest_logs: 0,
            guest_logs_suppressed: 0,
        }
    }

    /// Records one exit that spent `ticks` in the hypervisor after `guest_ticks` in the guest.
    pub fn record_exit(&mut self, kind: ExitKind, guest_ticks: u64, ticks: u64) {
        let stats = &mut self.exits[kind as usize];
        stats.count += 1;
        stats.total_ticks += ticks;
        stats.max_ticks = stats.max_ticks.max(ticks);
        self.guest_ticks += guest_ticks;
        self.hyp_ticks += ticks;
    }

    pub fn total_exits(&self) -> u64 {
        self.exits.iter().map(|e| e.count).sum()
    }
}

/// Writes the profile of every vCPU in the stable text format, each line through `line`.
pub fn write_profile(counter_hz: u64, vcpus: &[VcpuProfile], mut line: impl FnMut(fmt::Arguments<'_>)) {
    line(format_args!("profile begin version=1 counter_hz={counter_hz} vcpus={}", vcpus.len()));
    for (index, p) in vcpus.iter().enumerate() {
        line(format_args!(
            "profile vcpu={index} guest_ticks={} hyp_ticks={} exits={} injected={} switches={}",
            p.guest_ticks,
            p.hyp_ticks,
            p.total_exits(),
            p.injected,
            p.switches
        ));
        let v = &p.vgic;
        line(format_args!(
            "profile vcpu={index} vgic_syncs={} vgic_flushes={} lr_reads={} lr_writes={} lock_waits={} lock_wait_ticks={}",
            v.syncs, v.flushes, v.lr_reads, v.lr_writes, v.lock_waits, v.lock_wait_ticks
        ));
        line(format_args!(
            "profile vcpu={index} guest_logs={} guest_logs_suppressed={}",
            p.guest_logs, p.guest_logs_suppressed
        ));
        for kind in ExitKind::ALL {
            let e = p.exits[kind as usize];
            if e.count > 0 {
                line(format_args!(
                    "profile vcpu={index} exit={} count={} total_ticks={} max_ticks={}",
                    kind.name(),
                    e.count,
                    e.total_ticks,
                    e.max_ticks
                ));
            }
        }
    }
    line(format_args!("profile end"));
}

/// The profile as one string (for tests and callers that want to buffer it).
pub fn profile_text(counter_hz: u64, vcpus: &[VcpuProfile]) -> alloc::string::String {
    let mut out = alloc::string::String::new();
    write_profile(counter_hz, vcpus, |args| {
        let _ = out.write_fmt(args);
        out.push('\n');
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_counts_totals_and_maxima() {
        let mut p = VcpuProfile::new();
        p.record_exit(ExitKind::Mmio, 100, 10);
        p.record_exit(ExitKind::Mmio, 50, 30);
        p.record_exit(ExitKind::Wfi, 7, 5);
        let mmio = p.exits[ExitKind::Mmio as usize];
        assert_eq!((mmio.count, mmio.total_ticks, mmio.max_ticks), (2, 40, 30));
        assert_eq!(p.total_exits(), 3);
        assert_eq!((p.guest_ticks, p.hyp_ticks), (157, 45));
    }

    #[test]
    fn text_format_is_stable() {
        let mut p = VcpuProfile::new();
        p.record_exit(ExitKind::Hvc, 1000, 20);
        p.injected = 4;
        p.vgic.add(&VgicStats { syncs: 2, flushes: 3, lr_reads: 4, lr_writes: 5, lock_waits: 6, lock_wait_ticks: 7 });
        (p.guest_logs, p.guest_logs_suppressed) = (8, 9);
        let text = profile_text(62_500_000, &[p, VcpuProfile::new()]);
        assert_eq!(
            text,
            "profile begin version=1 counter_hz=62500000 vcpus=2\n\
             profile vcpu=0 guest_ticks=1000 hyp_ticks=20 exits=1 injected=4 switches=0\n\
             profile vcpu=0 vgic_syncs=2 vgic_flushes=3 lr_reads=4 lr_writes=5 lock_waits=6 lock_wait_ticks=7\n\
             profile vcpu=0 guest_logs=8 guest_logs_suppressed=9\n\
             profile vcpu=0 exit=hvc count=1 total_ticks=20 max_ticks=20\n\
             profile vcpu=1 guest_ticks=0 hyp_ticks=0 exits=0 injected=0 switches=0\n\
             profile vcpu=1 vgic_syncs=0 vgic_flushes=0 lr_reads=0 lr_writes=0 lock_waits=0 lock_wait_ticks=0\n\
             profile vcpu=1 guest_logs=0 guest_logs_suppressed=0\n\
             profile end\n"
        );
    }

    #[test]
    fn kind_names_are_unique_words() {
        for (i, a) in ExitKind::ALL.iter().enumerate() {
            assert_eq!(ExitKind::ALL[i] as usize, i, "ALL is in discriminant order");
            assert!(a.name().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            for b in &ExitKind::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }
}
