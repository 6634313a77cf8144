//! The exit path's work on the loaded vCPU's list registers: syncing them into the vGIC,
//! resampling the guest's timer lines, refilling them before the entry.
//!
//! Each step reads the hardware (ICH_LR<n>_EL2, the timer controls) before it locks the
//! vCPU's interrupt state and writes the hardware after releasing it; under the lock it only
//! computes. Why: on QEMU every ICH_* and timer register access takes QEMU's global lock, and a
//! lock holder that waits for that lock, or that the host deschedules meanwhile, leaves every
//! other pCPU that wants the lock waiting (when the vGIC had one lock for the whole VM, with 4
//! vCPU threads on 2 host cores, the exit profile showed a quarter of the hypervisor's time in
//! such waits). Only this pCPU touches its list registers and its guest does not run in
//! between, so the vGIC's record may run ahead of the hardware for that short while.

use super::cpus::vcpu_record;
use super::Vm;
use crate::arch::aarch64::context::TimerRegisters;
use crate::arch::aarch64::gic as pgic;
use crate::gic::loaded::LoadedLrs;
use crate::gic::{Kick, VcpuGic, MAX_LRS};
use crate::guest_map::{PPI_NONSECURE_PHYS_TIMER, PPI_VIRT_TIMER};
use crate::profile::VgicStats;

/// The loaded list registers' values as the hardware holds them now (only those in use, or
/// all when the record is stale, are read).
pub fn read_hardware(loaded: &LoadedLrs, work: &mut VgicStats) -> [u64; MAX_LRS] {
    loaded.current(|n| {
        work.lr_reads += 1;
        pgic::read_lr(n)
    })
}

/// Writes the list registers whose value changes from `hardware` to `new`, and records them.
pub fn write_hardware(loaded: &mut LoadedLrs, hardware: &[u64; MAX_LRS], new: &[u64; MAX_LRS], work: &mut VgicStats) {
    loaded.update(hardware, new, |n, value| {
        work.lr_writes += 1;
        pgic::write_lr(n, value);
    });
}

/// Syncs the loaded vCPU's list registers into the vGIC if `needs_sync`, takes its posted timer
/// PPIs in (after the sync) and resamples its timer lines: for an exit whose handling reads its
/// interrupt state, and before the vCPU is switched out. Says whether it synced. Completed
/// entries leave the hardware at once, not at the next entry: an EOI'd entry keeps the
/// maintenance interrupt asserted, which would wake a WFI wait over and over.
pub fn sync_and_resample(vm: &Vm, loaded: &mut LoadedLrs, vcpu: usize, needs_sync: bool, work: &mut VgicStats) -> bool {
    let hardware = needs_sync.then(|| read_hardware(loaded, work));
    let lines = TimerLines::read_if_injected(vcpu);
    let mut lrs = hardware;
    let Some(mut gic) = vm.vgic.vcpu(vcpu) else {
        return false;
    };
    if let Some(lrs) = lrs.as_mut() {
        gic.sync_lrs(&mut lrs[..loaded.count()]);
    }
    vm.take_posted(&mut gic);
    let resampled = resample_timer_lines(&mut gic, vcpu, lines);
    drop(gic);
    if let (Some(hardware), Some(lrs)) = (hardware, lrs) {
        write_hardware(loaded, &hardware, &lrs, work);
        work.syncs += 1;
    }
    resampled.apply(vm);
    needs_sync
}

/// What a refill did.
pub struct Refill {
    /// List registers that were empty and now hold an interrupt.
    pub injected: u64,
    /// The list registers as written (for debuggers).
    pub lrs: [u64; MAX_LRS],
}

/// Refills the list registers of `vcpu`, loaded on this pCPU, before the entry. With
/// `late_sync` (the vCPU that exited stays), it is synced first, in the same lock hold;
/// `synced` says the record of the hardware is exact already (a sync in this exit, not
/// followed by a switch).
pub fn refill(
    vm: &Vm,
    loaded: &mut LoadedLrs,
    vcpu: usize,
    late_sync: bool,
    synced: bool,
    work: &mut VgicStats,
) -> Refill {
    // Without a sync in this exit the guest may have acknowledged entries since they were
    // written: the flush must start from what the hardware holds now.
    let hardware = if synced { *loaded.values() } else { read_hardware(loaded, work) };
    let lines = if late_sync { TimerLines::read_if_injected(vcpu) } else { None };
    let count = loaded.count();
    let mut lrs = hardware;

    let Some(mut gic) = vm.vgic.vcpu(vcpu) else {
        return Refill { injected: 0, lrs };
    };
    let mut resampled = Resampled::default();
    if late_sync {
        gic.sync_lrs(&mut lrs[..count]);
        work.syncs += 1;
    }
    // After the sync if there was one to do; a vCPU just loaded was synced when it left.
    vm.take_posted(&mut gic);
    if late_sync {
        resampled = resample_timer_lines(&mut gic, vcpu, lines);
    }
    let before_flush = lrs;
    let result = gic.flush_lrs(&mut lrs[..count]);
    drop(gic);

    write_hardware(loaded, &hardware, &lrs, work);
    work.flushes += 1;
    let injected = (0..count).filter(|&n| before_flush[n] == 0 && lrs[n] != 0).count() as u64;
    // Hardware-linked interrupts the flush withdrew: the guest will never deactivate them.
    for pintid in result.deactivate.iter().flatten() {
        pgic::deactivate(*pintid);
    }
    if loaded.set_overflow(result.overflow) {
        pgic::set_virtual_interface(result.overflow);
    }
    resampled.apply(vm);
    vm.kick(result.kick);
    Refill { injected, lrs }
}

/// The guest's timer lines, read outside the vGIC's locks.
#[derive(Clone, Copy)]
pub struct TimerLines {
    virtual_high: bool,
    physical_high: bool,
}

impl TimerLines {
    /// The lines of the loaded vCPU's timers, if one of them was injected since its last
    /// resample (otherwise there is nothing to resample, and no register is read).
    fn read_if_injected(vcpu: usize) -> Option<Self> {
        vcpu_record(vcpu).timers_injected().then(|| {
            let (virtual_high, physical_high) = TimerRegisters::read_lines();
            Self { virtual_high, physical_high }
        })
    }
}

/// What a resample asks of the hardware and the other vCPUs, done once the vCPU's interrupt
/// state is unlocked.
#[derive(Default)]
pub struct Resampled {
    kick: Kick,
    /// Physical timer PPIs to deactivate.
    deactivate: [Option<u32>; 2],
}

impl Resampled {
    fn apply(self, vm: &Vm) {
        for pintid in self.deactivate.iter().flatten() {
            pgic::deactivate(*pintid);
        }
        vm.kick(self.kick);
    }
}

/// The guest's timer interrupts are level-triggered and hardware-linked: one the guest has not
/// taken yet must stop being pending once its timer no longer asserts it (disabled, masked,
/// or moved into the future), as on hardware. The guest's timer writes do not trap, so this
/// resamples the lines where the guest can look (its vGIC accesses, WFI) and on physical IRQs,
/// after the list registers were synced (KVM does the same).
/// Only timers injected since their last resample are looked at (`VcpuRecord::timers_injected`).
fn resample_timer_lines(gic: &mut VcpuGic, vcpu: usize, lines: Option<TimerLines>) -> Resampled {
    let mut resampled = Resampled::default();
    let Some(lines) = lines else {
        return resampled;
    };
    let timers = [(PPI_VIRT_TIMER, lines.virtual_high), (PPI_NONSECURE_PHYS_TIMER, lines.physical_high)];
    for ((intid, high), slot) in timers.into_iter().zip(resampled.deactivate.iter_mut()) {
        if high || !vcpu_record(vcpu).take_timer_injected(intid) {
            continue;
        }
        let (holder, deactivate) = gic.hw_line_dropped(intid);
        if deactivate {
            *slot = Some(intid);
        }
        resampled.kick |= holder;
    }
    resampled
}
