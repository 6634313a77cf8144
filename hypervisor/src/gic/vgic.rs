//! The virtual GIC of one VM and its locks: each vCPU's interrupt state under its own lock,
//! the distributor's (SPIs) under another.
//!
//! The common exits touch one vCPU's interrupts only: its timer (a PPI), an SGI it sends (the
//! target's SGI), a WFI, a kick, a null HVC. None of them takes a lock that all vCPUs share;
//! on QEMU, where 4 vCPU threads share 2 host cores, a holder of such a lock that the host
//! preempted used to stall every other vCPU.
//!
//! # Lock order
//!
//! A vCPU's lock before the distributor's; never two vCPUs' at once. A vCPU takes the
//! distributor's lock only while it holds an SPI in a list register, or while an SPI may wait
//! for it. Which vCPUs SPIs may wait for is an atomic bitmask (`Vgic::spis_waiting`), only
//! changed under the distributor's lock: an operation on the distributor adds the vCPUs it
//! kicks (every change to an SPI reports the vCPUs concerned as a [`Kick`]); a vCPU's exit
//! path, which may also make SPIs pending again (a completed level interrupt whose line is
//! still high), recomputes the whole mask from the state it leaves when it lets the
//! distributor go, which also clears stale bits. A bit set just after a vCPU looked comes with
//! that vCPU's kick, so its next exit looks again.

use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicU32, AtomicU8, Ordering};

use alloc::vec::Vec;
use spin::{Mutex, MutexGuard};

use super::irq;
use super::lr_sync::FlushResult;
use super::mailbox::Mailboxes;
use super::sgi::{sgi_targets, SgiRequest};
use super::view::{Config, Distributor, Groups, VcpuState, View};
use super::Kick;
use crate::guest_map::SPI_BASE;
use crate::options::MAX_VCPUS;

/// Priority bits the list registers implement unless told otherwise (ICH_VTR_EL2.PRIbits + 1
/// on QEMU's cortex-a57).
const DEFAULT_LR_PRIORITY_BITS: u8 = 5;
const PRIORITY_BITS: u8 = 8;
/// Bits of [`Vgic::groups`]: GICD_CTLR.EnableGrp0 and EnableGrp1.
const GROUP0_ENABLED: u8 = 1 << 0;
const GROUP1_ENABLED: u8 = 1 << 1;

/// How a pCPU passes the time while another holds one of the vGIC's locks. The host tests
/// spin; the hypervisor naps so that QEMU gives the holder the host core (see
/// `vm::contended`), and counts the wait in the exit profile.
#[derive(Clone, Copy)]
pub struct Waiter {
    /// Called once when a wait starts; its value is handed to `pause` and `end`.
    pub begin: fn() -> u64,
    /// Called over and over until the lock is free.
    pub pause: fn(started: u64),
    /// Called once the lock is taken.
    pub end: fn(started: u64),
}

impl Waiter {
    /// Busy-waits, and remembers nothing.
    pub const SPIN: Waiter = Waiter { begin: || 0, pause: |_| core::hint::spin_loop(), end: |_| {} };

    /// Locks `mutex`: at once if it is free, else after pausing as this waiter does.
    fn lock<'a, T>(&self, mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
        if let Some(guard) = mutex.try_lock() {
            return guard;
        }
        let started = (self.begin)();
        loop {
            (self.pause)(started);
            if let Some(guard) = mutex.try_lock() {
                (self.end)(started);
                return guard;
            }
        }
    }
}

/// The virtual GICv3 of one VM (see the module docs of `gic`).
pub struct Vgic {
    pub(super) cfg: Config,
    /// GICD_CTLR's group enables ([`GROUP0_ENABLED`], [`GROUP1_ENABLED`]): read by anyone,
    /// written under the distributor's lock.
    groups: AtomicU8,
    /// Bit n: an SPI may wait for vCPU n (see the module docs).
    spis_waiting: AtomicU32,
    pub(super) dist: Mutex<Distributor>,
    pub(super) vcpus: Vec<Mutex<VcpuState>>,
    waiter: Waiter,
}

impl Vgic {
    /// A GIC in its reset state for `num_vcpus` vCPUs (clamped to 1..=MAX_VCPUS): everything
    /// disabled, every SPI routed to vCPU 0, every redistributor asleep. Its locks spin.
    pub fn new(num_vcpus: usize) -> Self {
        let num_vcpus = num_vcpus.clamp(1, MAX_VCPUS);
        let mut vgic = Self {
            cfg: Config { num_vcpus, ros_vcpus: num_vcpus, lr_priority_mask: 0 },
            groups: AtomicU8::new(0),
            spis_waiting: AtomicU32::new(0),
            dist: Mutex::new(Distributor::new()),
            vcpus: (0..num_vcpus).map(|_| Mutex::new(VcpuState::new())).collect(),
            waiter: Waiter::SPIN,
        };
        vgic.set_lr_priority_bits(DEFAULT_LR_PRIORITY_BITS);
        vgic
    }

    /// Waits for its locks with `waiter` instead of spinning.
    pub fn set_waiter(&mut self, waiter: Waiter) {
        self.waiter = waiter;
    }

    pub fn num_vcpus(&self) -> usize {
        self.cfg.num_vcpus
    }

    /// Tells the flush how many priority bits the list registers implement
    /// (ICH_VTR_EL2.PRIbits + 1, clamped to 1..=8); lower bits are written as zero.
    pub fn set_lr_priority_bits(&mut self, bits: u8) {
        let bits = bits.clamp(1, PRIORITY_BITS);
        self.cfg.lr_priority_mask = u8::MAX << (PRIORITY_BITS - bits);
    }

    /// vCPU `index`'s interrupt state, locked, for its exit path (see [`VcpuGic`]); `None` if
    /// there is no such vCPU.
    pub fn vcpu(&self, index: usize) -> Option<VcpuGic<'_>> {
        let cpu = self.lock(self.vcpus.get(index)?);
        Some(VcpuGic { vgic: self, index, cpu, dist: None })
    }

    /// Locks one of the vGIC's locks, waiting as the integrator asked.
    pub(super) fn lock<'a, T>(&'a self, mutex: &'a Mutex<T>) -> MutexGuard<'a, T> {
        self.waiter.lock(mutex)
    }

    /// Latches an edge on `intid` (for SGIs/PPIs, `vcpu`'s copy; ignored for SPIs), as a
    /// device's edge or a hardware-linked interrupt firing does.
    pub fn set_pending(&self, intid: u32, vcpu: usize) -> Kick {
        self.on_intid(vcpu, intid, |view| view.set_pending(intid, vcpu))
    }

    /// Sets the input line of `intid` (for SGIs/PPIs, `vcpu`'s copy). A level-triggered
    /// interrupt is pending while the line is high; an edge-triggered one latches on a rising
    /// edge.
    pub fn set_level(&self, intid: u32, vcpu: usize, level: bool) -> Kick {
        self.on_intid(vcpu, intid, |view| view.set_level(intid, vcpu, level))
    }

    /// The source of hardware-linked level interrupt `intid` (`vcpu`'s copy for a PPI) is low
    /// now, e.g. the guest disabled its timer before taking the interrupt: as on hardware, it is
    /// no longer pending, wherever it waits (shadow state, or a list register the next flush
    /// withdraws). Returns the vCPU whose list registers must be refreshed, and whether the
    /// physical interrupt must be deactivated: true unless the guest has acknowledged it, in
    /// which case its deactivation does that through the list register. Edge-triggered and
    /// software interrupts are left alone (an edge stays latched).
    /// The loaded vCPU's exit path uses [`VcpuGic::hw_line_dropped`] instead.
    pub fn hw_line_dropped(&self, intid: u32, vcpu: usize) -> (Kick, bool) {
        let mut deactivate = false;
        let kick = self.on_intid(vcpu, intid, |view| {
            let (kick, physical) = view.hw_line_dropped(intid, vcpu);
            deactivate = physical;
            kick
        });
        (kick, deactivate)
    }

    /// Links virtual `intid` to physical `pintid` (on every vCPU, for an SGI/PPI): the flush
    /// puts it in hardware list registers, so the guest's deactivation deactivates `pintid`.
    /// Inject it with [`Vgic::set_pending`] each time the physical interrupt fires. Returns
    /// false, changing nothing, for an SGI, an unimplemented INTID or a special pINTID.
    pub fn set_hw_mapping(&self, intid: u32, pintid: u32) -> bool {
        let valid = !irq::is_sgi(intid) && (irq::NUM_SGIS..=irq::MAX_PINTID).contains(&pintid);
        valid && self.set_mapping(intid, Some(pintid))
    }

    /// Undoes [`Vgic::set_hw_mapping`]. Returns false for an unimplemented INTID.
    pub fn clear_hw_mapping(&self, intid: u32) -> bool {
        self.set_mapping(intid, None)
    }

    fn set_mapping(&self, intid: u32, pintid: Option<u32>) -> bool {
        if let Some(spi) = irq::spi_index(intid) {
            self.lock_distributor().spis[spi].hw_pintid = pintid;
        } else if irq::is_private(intid) {
            for vcpu in &self.vcpus {
                self.lock(vcpu).private[intid as usize].hw_pintid = pintid;
            }
        } else {
            return false;
        }
        true
    }

    /// Emulates `sender`'s write of `value` to ICC_SGI1R_EL1 (or ICC_ASGI1R_EL1): sets the SGI
    /// pending on each targeted vCPU that has it in Group 1. Takes each target's lock in turn,
    /// and no other.
    pub fn send_sgi(&self, sender: usize, value: u64) -> Kick {
        self.raise_sgi(sender, SgiRequest::decode(value), true)
    }

    /// Emulates a write to ICC_SGI0R_EL1: like [`Vgic::send_sgi`], for SGIs in Group 0.
    pub fn send_sgi_group0(&self, sender: usize, value: u64) -> Kick {
        self.raise_sgi(sender, SgiRequest::decode(value), false)
    }

    fn raise_sgi(&self, sender: usize, request: SgiRequest, group1: bool) -> Kick {
        let mut kick = Kick::NONE;
        for target in sgi_targets(sender, &request, self.sgi_reach(sender)).iter() {
            kick |= self.on_vcpu(target, |view| view.latch_sgi(target, request.intid, group1));
        }
        kick
    }

    /// Whether `vcpu` has an interrupt to take: one in a list register that is pending, or one
    /// the next flush would put there. Used to end a trapped WFI.
    pub fn has_deliverable(&self, vcpu: usize) -> bool {
        self.vcpu(vcpu).is_some_and(|mut gic| gic.has_deliverable())
    }

    /// [`VcpuGic::sync_lrs`] of `vcpu`.
    pub fn sync_lrs(&self, vcpu: usize, lrs: &mut [u64]) {
        if let Some(mut gic) = self.vcpu(vcpu) {
            gic.sync_lrs(lrs);
        }
    }

    /// [`VcpuGic::flush_lrs`] of `vcpu`.
    pub fn flush_lrs(&self, vcpu: usize, lrs: &mut [u64]) -> FlushResult {
        self.vcpu(vcpu).map(|mut gic| gic.flush_lrs(lrs)).unwrap_or_default()
    }

    /// The group enables as they are now.
    pub(super) fn groups(&self) -> Groups {
        let bits = self.groups.load(Ordering::Acquire);
        Groups { grp0: bits & GROUP0_ENABLED != 0, grp1: bits & GROUP1_ENABLED != 0 }
    }

    /// Sets the group enables; the caller holds the distributor's lock (so that writers are
    /// ordered with the SPI changes they gate).
    pub(super) fn store_groups(&self, _dist: &mut Distributor, groups: Groups) {
        let bits = if groups.grp0 { GROUP0_ENABLED } else { 0 } | if groups.grp1 { GROUP1_ENABLED } else { 0 };
        self.groups.store(bits, Ordering::Release);
    }

    /// The distributor, locked (see [`LockedDistributor`]).
    pub(super) fn lock_distributor(&self) -> LockedDistributor<'_> {
        LockedDistributor { vgic: self, state: self.lock(&self.dist) }
    }

    /// Runs `op` on the distributor, locked. The vCPUs its outcome kicks may have SPIs
    /// waiting now (a cheap record: this is the path of every device interrupt and GICD write).
    pub(super) fn on_distributor<R: Outcome>(&self, op: impl FnOnce(&mut View) -> R) -> R {
        let mut dist = self.lock(&self.dist);
        let result = op(&mut View { cfg: &self.cfg, groups: self.groups(), dist: Some(&mut dist), cpu: None });
        let kick = result.kick();
        if !kick.is_empty() {
            // Under the distributor's lock, like every change to the bits.
            self.spis_waiting.fetch_or(kick.bits(), Ordering::Release);
        }
        result
    }

    /// Runs `op`, which changes nothing, on the distributor, locked (so there is nothing to
    /// publish at the release).
    pub(super) fn read_distributor<R>(&self, op: impl FnOnce(&View) -> R) -> R {
        let mut dist = self.lock(&self.dist);
        op(&View { cfg: &self.cfg, groups: self.groups(), dist: Some(&mut dist), cpu: None })
    }

    /// Runs `op` on vCPU `vcpu`'s state, locked (and no other); nothing if there is no such
    /// vCPU.
    pub(super) fn on_vcpu<R: Default>(&self, vcpu: usize, op: impl FnOnce(&mut View) -> R) -> R {
        let Some(mutex) = self.vcpus.get(vcpu) else {
            return R::default();
        };
        let mut cpu = self.lock(mutex);
        op(&mut View { cfg: &self.cfg, groups: self.groups(), dist: None, cpu: Some((vcpu, &mut cpu)) })
    }

    /// Runs `op` under the lock that guards `intid`: the distributor's for an SPI, `vcpu`'s
    /// for an SGI or PPI.
    fn on_intid(&self, vcpu: usize, intid: u32, op: impl FnOnce(&mut View) -> Kick) -> Kick {
        if irq::spi_index(intid).is_some() {
            self.on_distributor(op)
        } else {
            self.on_vcpu(vcpu, op)
        }
    }

    /// Recomputes which vCPUs SPIs wait for, exactly, from `dist`, which the caller has locked
    /// and is about to release.
    fn publish_spis_waiting(&self, dist: &mut Distributor) {
        let view = View { cfg: &self.cfg, groups: self.groups(), dist: Some(dist), cpu: None };
        let mut waiting = Kick::NONE;
        for intid in SPI_BASE..irq::INTID_END {
            // Most SPIs wait for nobody: rule them out before resolving their routes (this
            // runs at every release, and QEMU emulates EL2's instructions too).
            if !view.irq(0, intid).is_some_and(|irq| irq.lr.is_none() && irq.pending()) {
                continue;
            }
            if let Some(target) = view.target(0, intid).filter(|&target| view.deliverable_to(target, intid)) {
                waiting |= Kick::vcpu(target);
            }
        }
        self.spis_waiting.store(waiting.bits(), Ordering::Release);
    }

    /// Whether an SPI may wait for `vcpu` (see the module docs).
    fn may_have_spis(&self, vcpu: usize) -> bool {
        self.spis_waiting.load(Ordering::Acquire) & Kick::vcpu(vcpu).bits() != 0
    }
}

/// What an operation on the distributor reports: the vCPUs it kicks.
pub(super) trait Outcome {
    fn kick(&self) -> Kick;
}

impl Outcome for Kick {
    fn kick(&self) -> Kick {
        *self
    }
}

impl Outcome for super::MmioWrite {
    fn kick(&self) -> Kick {
        self.kick
    }
}

/// One vCPU's interrupt state, locked: what its exit path works with between reading and
/// writing its list registers. Takes the distributor's lock too, later and only when the vCPU
/// has SPIs to deal with (see the module docs); both are released when this is dropped.
pub struct VcpuGic<'a> {
    vgic: &'a Vgic,
    index: usize,
    cpu: MutexGuard<'a, VcpuState>,
    dist: Option<LockedDistributor<'a>>,
}

impl VcpuGic<'_> {
    /// Whether the next look at this vCPU's interrupts involves SPIs.
    fn involves_spis(&self) -> bool {
        self.cpu.holds_spis() || self.vgic.may_have_spis(self.index)
    }

    /// The view of this vCPU, with the distributor locked as well if `spis`.
    fn view(&mut self, spis: bool) -> View<'_> {
        if spis && self.dist.is_none() {
            self.dist = Some(self.vgic.lock_distributor());
        }
        View {
            cfg: &self.vgic.cfg,
            groups: self.vgic.groups(),
            dist: self.dist.as_deref_mut(),
            cpu: Some((self.index, &mut self.cpu)),
        }
    }

    /// Learns from `lrs` (ICH_LR<n>_EL2 of this vCPU, as read after an exit) what the guest
    /// did. Completed interrupts leave the record and their list register is zeroed; for a
    /// level-triggered one whose line is still high that makes it pending again.
    pub fn sync_lrs(&mut self, lrs: &mut [u64]) {
        let (index, spis) = (self.index, self.cpu.holds_spis());
        self.view(spis).sync_lrs(index, lrs);
    }

    /// Prepares `lrs` (ICH_LR<n>_EL2 of this vCPU; its length is the number of list
    /// registers) for entering the guest. Syncs first, so a preceding [`VcpuGic::sync_lrs`]
    /// is optional. Every element may change and must be written back.
    pub fn flush_lrs(&mut self, lrs: &mut [u64]) -> FlushResult {
        let (index, spis) = (self.index, self.involves_spis());
        self.view(spis).flush_lrs(index, lrs)
    }

    /// Whether this vCPU has an interrupt to take (see [`Vgic::has_deliverable`]).
    pub fn has_deliverable(&mut self) -> bool {
        let (index, spis) = (self.index, self.involves_spis());
        self.view(spis).has_deliverable(index)
    }

    /// [`Vgic::hw_line_dropped`] for this vCPU.
    pub fn hw_line_dropped(&mut self, intid: u32) -> (Kick, bool) {
        let index = self.index;
        self.view(!irq::is_private(intid)).hw_line_dropped(intid, index)
    }

    /// Takes the PPIs posted to this vCPU into its state (see `gic::mailbox`).
    pub fn take_posted_ppis(&mut self, mailboxes: &Mailboxes) -> Kick {
        let index = self.index;
        self.view(false).take_posted_ppis(index, mailboxes)
    }
}

/// The distributor, locked for a vCPU's exit path or a reset, which recompute which vCPUs
/// SPIs wait for when they let it go (see the module docs).
pub(super) struct LockedDistributor<'a> {
    vgic: &'a Vgic,
    state: MutexGuard<'a, Distributor>,
}

impl Deref for LockedDistributor<'_> {
    type Target = Distributor;
    fn deref(&self) -> &Distributor {
        &self.state
    }
}

impl DerefMut for LockedDistributor<'_> {
    fn deref_mut(&mut self) -> &mut Distributor {
        &mut self.state
    }
}

impl Drop for LockedDistributor<'_> {
    fn drop(&mut self) {
        self.vgic.publish_spis_waiting(&mut self.state);
    }
}

/// Windows on the state for the host tests.
#[cfg(test)]
impl Vgic {
    /// A copy of `intid`'s shadow state as `vcpu` sees it.
    pub(super) fn irq(&self, vcpu: usize, intid: u32) -> Option<super::irq::IrqState> {
        if irq::spi_index(intid).is_some() {
            self.read_distributor(|view| view.irq(vcpu, intid).copied())
        } else {
            self.on_vcpu(vcpu, |view| view.irq(vcpu, intid).copied())
        }
    }

    /// Edits `intid`'s shadow state as `vcpu` sees it.
    pub(super) fn edit_irq(&self, vcpu: usize, intid: u32, edit: impl FnOnce(&mut super::irq::IrqState)) {
        self.on_intid(vcpu, intid, |view| {
            if let Some(irq) = view.irq_mut(vcpu, intid) {
                edit(irq);
            }
            Kick::NONE
        });
    }

    /// Sets GICD_CTLR's group enables.
    pub(super) fn set_groups(&self, grp0: bool, grp1: bool) {
        self.store_groups(&mut self.lock_distributor(), Groups { grp0, grp1 });
    }

    /// The INTID in list register `index` of `vcpu`, by its record.
    pub(super) fn record(&self, vcpu: usize, index: usize) -> Option<u32> {
        self.vcpus[vcpu].lock().lrs[index]
    }

    pub(super) fn spis_waiting_bits(&self) -> u32 {
        self.spis_waiting.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod concurrent;
#[cfg(test)]
mod tests;
