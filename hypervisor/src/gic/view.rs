//! The vGIC's state, split by who may change it, and the logic that works on the part one
//! caller has locked.
//!
//! - [`Distributor`]: the SPIs, their routes, and which redistributors the guest has woken.
//!   One per VM.
//! - [`VcpuState`]: one vCPU's SGIs and PPIs, and the record of its list registers.
//! - [`Config`]: fixed once the VM is built; the group enables live in an atomic (see
//!   `vgic.rs`), read by everyone, written under the distributor's lock.
//!
//! A [`View`] is what one operation sees: the distributor if it locked it, and at most one
//! vCPU's state. An interrupt outside the view does not exist for the operation, so each
//! caller must lock what the operation touches (`vgic.rs` decides that).

use alloc::vec;
use alloc::vec::Vec;

use super::affinity::Affinity;
use super::irq::{self, IrqState, LrSlot, NUM_PRIVATE};
use super::lr::LrState;
use super::{Kick, MAX_LRS};
use crate::guest_map::{vcpu_mpidr, NUM_SPIS, SPI_BASE};

/// GICD_IROUTER<n>.Interrupt_Routing_Mode, bit [31]: 1 = "any participating PE".
pub(super) const IROUTER_MODE_ANY: u64 = 1 << 31;
/// The GICD_IROUTER<n> bits we keep: Aff0..Aff2 [23:0], Interrupt_Routing_Mode [31] and
/// Aff3 [39:32]; the rest are RES0.
pub(super) const IROUTER_WRITABLE: u64 = 0xFF_80FF_FFFF;

/// What does not change once the VM is built.
#[derive(Clone, Copy, Debug)]
pub(super) struct Config {
    pub num_vcpus: usize,
    /// vCPUs `[0, ros_vcpus)` own the distributor (see `gic::partition`); all of them
    /// unless this is a hybrid VM.
    pub ros_vcpus: usize,
    /// Priority bits a list register keeps, e.g. 0xF8 for 5 bits.
    pub lr_priority_mask: u8,
}

/// GICD_CTLR.EnableGrp0 / EnableGrp1, as one operation saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Groups {
    pub grp0: bool,
    pub grp1: bool,
}

/// The distributor's state: everything shared by the vCPUs.
#[derive(Clone, Debug)]
pub(super) struct Distributor {
    pub spis: Vec<IrqState>,
    /// GICD_IROUTER<n> of each SPI, masked to [`IROUTER_WRITABLE`].
    pub routes: Vec<u64>,
    /// Bit n: the guest has woken vCPU n's redistributor (GICR_WAKER.ProcessorSleep = 0).
    /// Kept here because "any" routing picks among the awake ones.
    pub awake: u32,
}

impl Distributor {
    pub fn new() -> Self {
        Self {
            spis: (0..NUM_SPIS).map(|spi| IrqState::reset(SPI_BASE + spi)).collect(),
            routes: vec![0; NUM_SPIS as usize],
            awake: 0,
        }
    }
}

/// One vCPU's own interrupts and the record of its list registers.
#[derive(Clone, Debug)]
pub(super) struct VcpuState {
    /// SGIs and PPIs.
    pub private: [IrqState; NUM_PRIVATE as usize],
    /// The INTID each list register holds, as of the last flush or sync (its state is in the
    /// interrupt's [`LrSlot`]).
    pub lrs: [Option<u32>; MAX_LRS],
}

impl VcpuState {
    pub fn new() -> Self {
        Self { private: core::array::from_fn(|intid| IrqState::reset(intid as u32)), lrs: [None; MAX_LRS] }
    }

    /// Whether one of its list registers holds an SPI (whose state is the distributor's).
    pub fn holds_spis(&self) -> bool {
        self.lrs.iter().flatten().any(|&intid| !irq::is_private(intid))
    }
}

/// The part of the vGIC one operation has locked (see the module docs).
pub(super) struct View<'a> {
    pub cfg: &'a Config,
    pub groups: Groups,
    pub dist: Option<&'a mut Distributor>,
    pub cpu: Option<(usize, &'a mut VcpuState)>,
}

impl View<'_> {
    pub fn cpu(&self, vcpu: usize) -> Option<&VcpuState> {
        match &self.cpu {
            Some((index, state)) if *index == vcpu => Some(state),
            _ => None,
        }
    }

    pub fn cpu_mut(&mut self, vcpu: usize) -> Option<&mut VcpuState> {
        match &mut self.cpu {
            Some((index, state)) if *index == vcpu => Some(state),
            _ => None,
        }
    }

    /// The shadow state of `intid` as `vcpu` sees it (`vcpu` is ignored for SPIs).
    pub fn irq(&self, vcpu: usize, intid: u32) -> Option<&IrqState> {
        match irq::spi_index(intid) {
            Some(spi) => self.dist.as_deref()?.spis.get(spi),
            None if irq::is_private(intid) => self.cpu(vcpu)?.private.get(intid as usize),
            None => None,
        }
    }

    pub fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut IrqState> {
        match irq::spi_index(intid) {
            Some(spi) => self.dist.as_deref_mut()?.spis.get_mut(spi),
            None if irq::is_private(intid) => self.cpu_mut(vcpu)?.private.get_mut(intid as usize),
            None => None,
        }
    }

    /// The INTIDs this view can see: SGIs and PPIs, and the SPIs if it holds the distributor.
    /// (Scanning only what is visible matters: QEMU emulates EL2's instructions too.)
    pub fn visible_intids(&self) -> core::ops::Range<u32> {
        0..if self.dist.is_some() { irq::INTID_END } else { NUM_PRIVATE }
    }

    /// Whether `vcpu` belongs to the HRT partition.
    pub fn is_hrt_vcpu(&self, vcpu: usize) -> bool {
        vcpu >= self.cfg.ros_vcpus
    }

    /// The vCPU `intid` is currently delivered to, if any.
    pub fn target(&self, vcpu: usize, intid: u32) -> Option<usize> {
        match irq::spi_index(intid) {
            Some(spi) => self.route_target(*self.dist.as_deref()?.routes.get(spi)?),
            None if irq::is_private(intid) && vcpu < self.cfg.num_vcpus => Some(vcpu),
            None => None,
        }
    }

    /// Resolves a GICD_IROUTER<n> value among the vCPUs that own the distributor. "Any"
    /// routing picks the first of them whose redistributor the guest has woken (vCPU 0 before
    /// any is); a specific affinity that names none of them delivers nowhere, as on hardware.
    fn route_target(&self, route: u64) -> Option<usize> {
        let owners = self.cfg.ros_vcpus;
        if route & IROUTER_MODE_ANY != 0 {
            let awake = self.dist.as_deref().map_or(0, |dist| dist.awake);
            return Some((0..owners).find(|&vcpu| awake & 1 << vcpu != 0).unwrap_or(0));
        }
        vcpu_with_affinity(self.cfg.num_vcpus, Affinity::from_mpidr(route)).filter(|&vcpu| vcpu < owners)
    }

    /// Whether the distributor forwards interrupts of this group (GICD_CTLR.EnableGrp0/1).
    pub fn group_enabled(&self, group1: bool) -> bool {
        if group1 {
            self.groups.grp1
        } else {
            self.groups.grp0
        }
    }

    /// Whether the distributor would forward this interrupt of `vcpu` if it were pending. The
    /// interrupts of an HRT vCPU (its own SGIs and PPIs: SPIs never reach it) do not depend on
    /// the ROS's distributor (see `gic::partition`).
    pub fn deliverable(&self, vcpu: usize, irq: &IrqState) -> bool {
        irq.enabled && (self.group_enabled(irq.group1) || self.is_hrt_vcpu(vcpu))
    }

    /// Whether `intid` waits, outside any list register, for `vcpu` to take it.
    pub fn deliverable_to(&self, vcpu: usize, intid: u32) -> bool {
        self.irq(vcpu, intid).is_some_and(|irq| {
            irq.lr.is_none() && irq.pending() && self.deliverable(vcpu, irq) && self.target(vcpu, intid) == Some(vcpu)
        })
    }

    /// The vCPU that must look at `intid` after a change to it: the one holding it in a list
    /// register, or else the one it is deliverable to.
    pub fn attention(&self, vcpu: usize, intid: u32) -> Kick {
        let Some(irq) = self.irq(vcpu, intid) else {
            return Kick::NONE;
        };
        if let Some(LrSlot { vcpu: holder, .. }) = irq.lr {
            return Kick::vcpu(holder);
        }
        match self.target(vcpu, intid) {
            Some(target) if self.deliverable_to(target, intid) => Kick::vcpu(target),
            _ => Kick::NONE,
        }
    }

    /// Latches an edge on `intid` (see `Vgic::set_pending`).
    pub fn set_pending(&mut self, intid: u32, vcpu: usize) -> Kick {
        match self.irq_mut(vcpu, intid) {
            Some(irq) => irq.latch = true,
            None => return Kick::NONE,
        }
        self.attention(vcpu, intid)
    }

    /// Sets the input line of `intid` (see `Vgic::set_level`).
    pub fn set_level(&mut self, intid: u32, vcpu: usize, level: bool) -> Kick {
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return Kick::NONE;
        };
        let rising = level && !irq.line;
        irq.line = level;
        if irq.is_edge() {
            if !rising {
                return Kick::NONE;
            }
            irq.latch = true;
        }
        // A falling level may have to be withdrawn from a list register, hence the attention
        // in both directions.
        self.attention(vcpu, intid)
    }

    /// The source of hardware-linked level interrupt `intid` is low now (see
    /// `Vgic::hw_line_dropped`).
    pub fn hw_line_dropped(&mut self, intid: u32, vcpu: usize) -> (Kick, bool) {
        let Some(irq) = self.irq(vcpu, intid) else {
            return (Kick::NONE, false);
        };
        if irq.is_edge() || irq.hw_pintid.is_none() {
            return (Kick::NONE, false);
        }
        let taken = active_view(irq);
        let was_pending = pending_view(irq);
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return (Kick::NONE, false);
        };
        irq.latch = false;
        irq.line = false;
        let holder = irq.lr.map_or(Kick::NONE, |slot| Kick::vcpu(slot.vcpu));
        (if was_pending { holder } else { Kick::NONE }, !taken)
    }

    /// Makes SGI `intid` pending on `target` if the target has it in the group it was sent
    /// for; returns the vCPU to tell.
    pub fn latch_sgi(&mut self, target: usize, intid: u32, group1: bool) -> Kick {
        let Some(irq) = self.cpu_mut(target).and_then(|state| state.private.get_mut(intid as usize)) else {
            return Kick::NONE;
        };
        if irq.group1 != group1 {
            return Kick::NONE;
        }
        irq.latch = true;
        self.attention(target, intid)
    }

    /// Whether `vcpu` has an interrupt to take: one in a list register that is pending, or one
    /// the next flush would put there.
    pub fn has_deliverable(&self, vcpu: usize) -> bool {
        let Some(state) = self.cpu(vcpu) else {
            return false;
        };
        let in_lr = state.lrs.iter().flatten().any(|&intid| {
            self.irq(vcpu, intid).is_some_and(|irq| lr_view(irq).is_pending() && self.deliverable(vcpu, irq))
        });
        in_lr || self.visible_intids().any(|intid| self.deliverable_to(vcpu, intid))
    }
}

/// The vCPU (among the first `num_vcpus`) whose MPIDR has `affinity`.
pub(super) fn vcpu_with_affinity(num_vcpus: usize, affinity: Affinity) -> Option<usize> {
    (0..num_vcpus).find(|&index| Affinity::from_mpidr(vcpu_mpidr(index)) == affinity)
}

/// Pending as GICD_ISPENDR<n> reports it: in the shadow state or in a list register.
pub(super) fn pending_view(irq: &IrqState) -> bool {
    irq.pending() || lr_view(irq).is_pending()
}

/// Active as GICD_ISACTIVER<n> reports it.
pub(super) fn active_view(irq: &IrqState) -> bool {
    irq.active || lr_view(irq).is_active()
}

/// The list register state of `irq` as the guest would see it once pending MMIO edits are
/// applied ([`LrState::Invalid`] when it is in no list register).
pub(super) fn lr_view(irq: &IrqState) -> LrState {
    irq.lr.map_or(LrState::Invalid, |slot| effective_lr_state(irq, slot.state))
}

/// A list register's `state` once the guest's pending MMIO edits to `irq` (its fixup) and the
/// line level are taken into account.
pub(super) fn effective_lr_state(irq: &IrqState, state: LrState) -> LrState {
    let mut pending = state.is_pending();
    let mut active = state.is_active();
    if irq.is_edge() {
        pending &= !irq.fix.clear_pending;
    } else {
        // A level interrupt not yet acknowledged stays pending only while something still
        // asserts it; GICD_ICPENDR clears the latch, not the line.
        pending &= irq.line || irq.latch;
    }
    if let Some(forced) = irq.fix.active {
        active = forced;
    }
    LrState::new(pending, active)
}
