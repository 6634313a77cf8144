//! The virtual GIC of one VM: its distributor and redistributor state, interrupt routing, and
//! the injection API devices and the hypervisor use.
//!
//! SGIs and PPIs (INTIDs 0..32) are banked per vCPU, SPIs are per VM. Routing follows the
//! guest's GICD_IROUTER<n> (affinity routing is always on). Every change that could make an
//! interrupt deliverable, or could require editing a list register, reports the vCPU concerned
//! as a [`Kick`].

use alloc::vec;
use alloc::vec::Vec;

use super::affinity::Affinity;
use super::irq::{self, IrqState, LrSlot, NUM_PRIVATE};
use super::lr::LrState;
use super::sgi::{sgi_targets, SgiRequest};
use super::{Kick, MAX_LRS};
use crate::guest_map::{vcpu_mpidr, NUM_SPIS, SPI_BASE};
use crate::options::MAX_VCPUS;

/// GICD_IROUTER<n>.Interrupt_Routing_Mode, bit [31]: 1 = "any participating PE".
pub(super) const IROUTER_MODE_ANY: u64 = 1 << 31;
/// The GICD_IROUTER<n> bits we keep: Aff0..Aff2 [23:0], Interrupt_Routing_Mode [31] and
/// Aff3 [39:32]; the rest are RES0.
pub(super) const IROUTER_WRITABLE: u64 = 0xFF_80FF_FFFF;
/// Priority bits the list registers implement unless told otherwise (ICH_VTR_EL2.PRIbits + 1
/// on QEMU's cortex-a57).
const DEFAULT_LR_PRIORITY_BITS: u8 = 5;
const PRIORITY_BITS: u8 = 8;

/// What one list register of a vCPU holds, as of the last flush or sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LrEntry {
    pub intid: u32,
    pub state: LrState,
}

/// Per-vCPU state: the redistributor and the record of its list registers.
#[derive(Clone, Debug)]
pub(super) struct VcpuState {
    /// SGIs and PPIs.
    pub private: [IrqState; NUM_PRIVATE as usize],
    /// GICR_WAKER.ProcessorSleep: the guest has not (yet) woken this redistributor.
    pub asleep: bool,
    pub lrs: [Option<LrEntry>; MAX_LRS],
}

impl VcpuState {
    pub(super) fn new() -> Self {
        Self {
            private: core::array::from_fn(|intid| IrqState::reset(intid as u32)),
            asleep: true,
            lrs: [None; MAX_LRS],
        }
    }
}

/// The virtual GICv3 of one VM (see the module docs of `gic`).
#[derive(Clone, Debug)]
pub struct Vgic {
    pub(super) num_vcpus: usize,
    /// vCPUs `[0, ros_vcpus)` own the distributor (see `gic::partition`); all of them
    /// unless this is a hybrid VM.
    pub(super) ros_vcpus: usize,
    /// GICD_CTLR.EnableGrp0 / EnableGrp1.
    pub(super) enable_grp0: bool,
    pub(super) enable_grp1: bool,
    pub(super) spis: Vec<IrqState>,
    /// GICD_IROUTER<n> of each SPI, masked to [`IROUTER_WRITABLE`].
    pub(super) routes: Vec<u64>,
    pub(super) vcpus: Vec<VcpuState>,
    /// Priority bits a list register keeps, e.g. 0xF8 for 5 bits.
    pub(super) lr_priority_mask: u8,
}

impl Vgic {
    /// A GIC in its reset state for `num_vcpus` vCPUs (clamped to 1..=MAX_VCPUS): everything
    /// disabled, every SPI routed to vCPU 0, every redistributor asleep.
    pub fn new(num_vcpus: usize) -> Self {
        let num_vcpus = num_vcpus.clamp(1, MAX_VCPUS);
        let mut vgic = Self {
            num_vcpus,
            ros_vcpus: num_vcpus,
            enable_grp0: false,
            enable_grp1: false,
            spis: (0..NUM_SPIS).map(|spi| IrqState::reset(SPI_BASE + spi)).collect(),
            routes: vec![0; NUM_SPIS as usize],
            vcpus: (0..num_vcpus).map(|_| VcpuState::new()).collect(),
            lr_priority_mask: 0,
        };
        vgic.set_lr_priority_bits(DEFAULT_LR_PRIORITY_BITS);
        vgic
    }

    pub fn num_vcpus(&self) -> usize {
        self.num_vcpus
    }

    /// Tells the flush how many priority bits the list registers implement
    /// (ICH_VTR_EL2.PRIbits + 1, clamped to 1..=8); lower bits are written as zero.
    pub fn set_lr_priority_bits(&mut self, bits: u8) {
        let bits = bits.clamp(1, PRIORITY_BITS);
        self.lr_priority_mask = u8::MAX << (PRIORITY_BITS - bits);
    }

    /// Latches an edge on `intid` (for SGIs/PPIs, `vcpu`'s copy; ignored for SPIs), as a
    /// device's edge or a hardware-linked interrupt firing does.
    pub fn set_pending(&mut self, intid: u32, vcpu: usize) -> Kick {
        match self.irq_mut(vcpu, intid) {
            Some(irq) => irq.latch = true,
            None => return Kick::NONE,
        }
        self.attention(vcpu, intid)
    }

    /// Sets the input line of `intid` (for SGIs/PPIs, `vcpu`'s copy). A level-triggered
    /// interrupt is pending while the line is high; an edge-triggered one latches on a rising
    /// edge.
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

    /// The source of hardware-linked level interrupt `intid` (`vcpu`'s copy for a PPI) is low
    /// now, e.g. the guest disabled its timer before taking the interrupt: as on hardware, it is
    /// no longer pending, wherever it waits (shadow state, or a list register the next flush
    /// withdraws). Returns the vCPU whose list registers must be refreshed, and whether the
    /// physical interrupt must be deactivated: true unless the guest has acknowledged it, in
    /// which case its deactivation does that through the list register. Edge-triggered and
    /// software interrupts are left alone (an edge stays latched).
    pub fn hw_line_dropped(&mut self, intid: u32, vcpu: usize) -> (Kick, bool) {
        let Some(irq) = self.irq(vcpu, intid) else {
            return (Kick::NONE, false);
        };
        if irq.is_edge() || irq.hw_pintid.is_none() {
            return (Kick::NONE, false);
        }
        let taken = irq.active || self.lr_view(irq).is_active();
        let was_pending = self.pending_view(irq);
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return (Kick::NONE, false);
        };
        irq.latch = false;
        irq.line = false;
        let kick = if was_pending { self.attention_to_holder(vcpu, intid) } else { Kick::NONE };
        (kick, !taken)
    }

    /// The vCPU holding `intid` in a list register, if any.
    fn attention_to_holder(&self, vcpu: usize, intid: u32) -> Kick {
        match self.irq(vcpu, intid).and_then(|irq| irq.lr) {
            Some(slot) => Kick::vcpu(slot.vcpu),
            None => Kick::NONE,
        }
    }

    /// Links virtual `intid` to physical `pintid` (on every vCPU, for an SGI/PPI): the flush
    /// puts it in hardware list registers, so the guest's deactivation deactivates `pintid`.
    /// Inject it with [`Vgic::set_pending`] each time the physical interrupt fires. Returns
    /// false, changing nothing, for an SGI, an unimplemented INTID or a special pINTID.
    pub fn set_hw_mapping(&mut self, intid: u32, pintid: u32) -> bool {
        let valid = !irq::is_sgi(intid) && (irq::NUM_SGIS..=irq::MAX_PINTID).contains(&pintid);
        valid && self.set_mapping(intid, Some(pintid))
    }

    /// Undoes [`Vgic::set_hw_mapping`]. Returns false for an unimplemented INTID.
    pub fn clear_hw_mapping(&mut self, intid: u32) -> bool {
        self.set_mapping(intid, None)
    }

    fn set_mapping(&mut self, intid: u32, pintid: Option<u32>) -> bool {
        if let Some(spi) = irq::spi_index(intid) {
            self.spis[spi].hw_pintid = pintid;
        } else if irq::is_private(intid) {
            for vcpu in &mut self.vcpus {
                vcpu.private[intid as usize].hw_pintid = pintid;
            }
        } else {
            return false;
        }
        true
    }

    /// Emulates `sender`'s write of `value` to ICC_SGI1R_EL1 (or ICC_ASGI1R_EL1): sets the SGI
    /// pending on each targeted vCPU that has it in Group 1.
    pub fn send_sgi(&mut self, sender: usize, value: u64) -> Kick {
        self.raise_sgi(sender, SgiRequest::decode(value), true)
    }

    /// Emulates a write to ICC_SGI0R_EL1: like [`Vgic::send_sgi`], for SGIs in Group 0.
    pub fn send_sgi_group0(&mut self, sender: usize, value: u64) -> Kick {
        self.raise_sgi(sender, SgiRequest::decode(value), false)
    }

    fn raise_sgi(&mut self, sender: usize, request: SgiRequest, group1: bool) -> Kick {
        let mut kick = Kick::NONE;
        for target in sgi_targets(sender, &request, self.sgi_reach(sender)).iter() {
            kick |= self.latch_sgi(target, request.intid, group1);
        }
        kick
    }

    /// Makes SGI `intid` pending on `target` if the target has it in the group it was sent
    /// for; returns the vCPU to tell.
    pub(super) fn latch_sgi(&mut self, target: usize, intid: u32, group1: bool) -> Kick {
        let Some(irq) = self.vcpus.get_mut(target).and_then(|state| state.private.get_mut(intid as usize)) else {
            return Kick::NONE;
        };
        if irq.group1 != group1 {
            return Kick::NONE;
        }
        irq.latch = true;
        self.attention(target, intid)
    }

    /// Whether `vcpu` has an interrupt to take: one in a list register that is pending, or one
    /// the next flush would put there. Used to end a trapped WFI.
    pub fn has_deliverable(&self, vcpu: usize) -> bool {
        let Some(state) = self.vcpus.get(vcpu) else {
            return false;
        };
        let in_lr = state.lrs.iter().flatten().any(|entry| {
            self.irq(vcpu, entry.intid).is_some_and(|irq| self.lr_view(irq).is_pending() && self.deliverable(vcpu, irq))
        });
        in_lr || (0..irq::INTID_END).any(|intid| self.deliverable_to(vcpu, intid))
    }

    /// The shadow state of `intid` as `vcpu` sees it (`vcpu` is ignored for SPIs).
    pub(super) fn irq(&self, vcpu: usize, intid: u32) -> Option<&IrqState> {
        match irq::spi_index(intid) {
            Some(spi) => self.spis.get(spi),
            None if irq::is_private(intid) => Some(&self.vcpus.get(vcpu)?.private[intid as usize]),
            None => None,
        }
    }

    pub(super) fn irq_mut(&mut self, vcpu: usize, intid: u32) -> Option<&mut IrqState> {
        match irq::spi_index(intid) {
            Some(spi) => self.spis.get_mut(spi),
            None if irq::is_private(intid) => Some(&mut self.vcpus.get_mut(vcpu)?.private[intid as usize]),
            None => None,
        }
    }

    /// The vCPU `intid` is currently delivered to, if any.
    pub(super) fn target(&self, vcpu: usize, intid: u32) -> Option<usize> {
        match irq::spi_index(intid) {
            Some(spi) => self.route_target(self.routes[spi]),
            None if irq::is_private(intid) && vcpu < self.num_vcpus => Some(vcpu),
            None => None,
        }
    }

    /// Resolves a GICD_IROUTER<n> value among the vCPUs that own the distributor. "Any"
    /// routing picks the first of them whose redistributor the guest has woken (vCPU 0 before
    /// any is); a specific affinity that names none of them delivers nowhere, as on hardware.
    fn route_target(&self, route: u64) -> Option<usize> {
        let owners = &self.vcpus[..self.ros_vcpus];
        if route & IROUTER_MODE_ANY != 0 {
            return Some(owners.iter().position(|vcpu| !vcpu.asleep).unwrap_or(0));
        }
        self.vcpu_with_affinity(Affinity::from_mpidr(route)).filter(|&vcpu| vcpu < self.ros_vcpus)
    }

    pub(super) fn vcpu_with_affinity(&self, affinity: Affinity) -> Option<usize> {
        (0..self.num_vcpus).find(|&index| Affinity::from_mpidr(vcpu_mpidr(index)) == affinity)
    }

    /// Whether the distributor forwards interrupts of this group (GICD_CTLR.EnableGrp0/1).
    pub(super) fn group_enabled(&self, group1: bool) -> bool {
        if group1 {
            self.enable_grp1
        } else {
            self.enable_grp0
        }
    }

    /// Whether the distributor would forward this interrupt of `vcpu` if it were pending. The
    /// interrupts of an HRT vCPU (its own SGIs and PPIs: SPIs never reach it) do not depend on
    /// the ROS's distributor (see `gic::partition`).
    pub(super) fn deliverable(&self, vcpu: usize, irq: &IrqState) -> bool {
        irq.enabled && (self.group_enabled(irq.group1) || self.is_hrt_vcpu(vcpu))
    }

    /// Whether `intid` waits, outside any list register, for `vcpu` to take it.
    pub(super) fn deliverable_to(&self, vcpu: usize, intid: u32) -> bool {
        self.irq(vcpu, intid).is_some_and(|irq| {
            irq.lr.is_none() && irq.pending() && self.deliverable(vcpu, irq) && self.target(vcpu, intid) == Some(vcpu)
        })
    }

    /// The vCPU that must look at `intid` after a change to it: the one holding it in a list
    /// register, or else the one it is deliverable to.
    pub(super) fn attention(&self, vcpu: usize, intid: u32) -> Kick {
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

    /// The list register state of `irq` as the guest would see it once pending MMIO edits are
    /// applied ([`LrState::Invalid`] when it is in no list register).
    pub(super) fn lr_view(&self, irq: &IrqState) -> LrState {
        let Some(slot) = irq.lr else {
            return LrState::Invalid;
        };
        let state = self.vcpus[slot.vcpu].lrs[slot.index].map_or(LrState::Invalid, |e| e.state);
        effective_lr_state(irq, state)
    }

    /// Pending as GICD_ISPENDR<n> reports it: in the shadow state or in a list register.
    pub(super) fn pending_view(&self, irq: &IrqState) -> bool {
        irq.pending() || self.lr_view(irq).is_pending()
    }

    /// Active as GICD_ISACTIVER<n> reports it.
    pub(super) fn active_view(&self, irq: &IrqState) -> bool {
        irq.active || self.lr_view(irq).is_active()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_map::{PPI_VIRT_TIMER, UART_SPI};

    const UART: u32 = SPI_BASE + UART_SPI;

    fn enabled_vgic(vcpus: usize) -> Vgic {
        let mut vgic = Vgic::new(vcpus);
        vgic.enable_grp1 = true;
        vgic
    }

    #[test]
    fn reset_state() {
        let vgic = Vgic::new(0);
        assert_eq!(vgic.num_vcpus(), 1, "clamped to at least one vCPU");
        assert_eq!(Vgic::new(100).num_vcpus(), MAX_VCPUS);
        assert_eq!(vgic.lr_priority_mask, 0xF8);
        assert!(vgic.vcpus[0].asleep);
        assert_eq!(vgic.irq(0, 3).unwrap().trigger, irq::Trigger::Edge);
        assert!(vgic.irq(0, UART).unwrap().group1);
        assert!(vgic.irq(0, irq::INTID_END).is_none());
        assert!(vgic.irq(1, 5).is_none(), "no vCPU 1");
    }

    #[test]
    fn injection_kicks_only_when_deliverable() {
        let mut vgic = enabled_vgic(2);
        assert_eq!(vgic.set_pending(UART, 0), Kick::NONE, "disabled: nobody to tell");
        vgic.spis[UART_SPI as usize].enabled = true;
        assert_eq!(vgic.set_pending(UART, 0), Kick::vcpu(0));
        assert!(vgic.has_deliverable(0) && !vgic.has_deliverable(1));

        vgic.vcpus[1].private[PPI_VIRT_TIMER as usize].enabled = true;
        assert_eq!(vgic.set_pending(PPI_VIRT_TIMER, 1), Kick::vcpu(1));
        assert_eq!(vgic.set_pending(PPI_VIRT_TIMER, 7), Kick::NONE, "no such vCPU");
        assert_eq!(vgic.set_pending(5000, 0), Kick::NONE);
    }

    #[test]
    fn group_enable_gates_delivery() {
        let mut vgic = Vgic::new(1);
        vgic.spis[0].enabled = true;
        vgic.set_pending(SPI_BASE, 0);
        assert!(!vgic.has_deliverable(0));
        vgic.enable_grp1 = true;
        assert!(vgic.has_deliverable(0));
        vgic.spis[0].group1 = false;
        assert!(!vgic.has_deliverable(0));
    }

    #[test]
    fn level_lines_pend_while_high_and_edges_latch_on_rising() {
        let mut vgic = enabled_vgic(1);
        vgic.spis[0].enabled = true;
        assert_eq!(vgic.set_level(SPI_BASE, 0, true), Kick::vcpu(0));
        assert!(vgic.has_deliverable(0));
        vgic.set_level(SPI_BASE, 0, false);
        assert!(!vgic.has_deliverable(0));

        vgic.spis[0].trigger = irq::Trigger::Edge;
        assert_eq!(vgic.set_level(SPI_BASE, 0, true), Kick::vcpu(0));
        assert_eq!(vgic.set_level(SPI_BASE, 0, true), Kick::NONE, "no new edge");
        vgic.set_level(SPI_BASE, 0, false);
        assert!(vgic.has_deliverable(0), "the edge stays latched after the line drops");
    }

    #[test]
    fn routing_follows_irouter() {
        let mut vgic = enabled_vgic(4);
        vgic.spis[0].enabled = true;
        vgic.routes[0] = 2;
        assert_eq!(vgic.set_pending(SPI_BASE, 0), Kick::vcpu(2));
        vgic.routes[0] = 1 << 8; // Aff1 = 1: no such vCPU.
        assert_eq!(vgic.target(0, SPI_BASE), None);
        vgic.routes[0] = IROUTER_MODE_ANY | 3;
        assert_eq!(vgic.target(0, SPI_BASE), Some(0), "nobody awake: vCPU 0");
        vgic.vcpus[3].asleep = false;
        assert_eq!(vgic.target(0, SPI_BASE), Some(3));
    }

    #[test]
    fn sgis_reach_listed_vcpus_or_everyone_but_the_sender() {
        let mut vgic = enabled_vgic(4);
        for vcpu in &mut vgic.vcpus {
            vcpu.private[1].enabled = true;
            vcpu.private[2].enabled = true;
        }
        assert_eq!(vgic.send_sgi(0, 1 << 24 | 0b1010), Kick::vcpu(1) | Kick::vcpu(3));
        assert!(vgic.vcpus[1].private[1].latch && !vgic.vcpus[2].private[1].latch);

        let kick = vgic.send_sgi(2, 1 << 40 | 2 << 24);
        assert_eq!(kick, Kick::vcpu(0) | Kick::vcpu(1) | Kick::vcpu(3));
        assert!(!vgic.vcpus[2].private[2].latch, "not the sender");

        // Targets that name no vCPU are ignored: Aff0 8..15, or Aff1 = 1.
        assert_eq!(vgic.send_sgi(0, 0xFF00), Kick::NONE);
        assert_eq!(vgic.send_sgi(0, 1 << 16 | 0b1), Kick::NONE);
    }

    #[test]
    fn sgis_respect_the_target_group() {
        let mut vgic = enabled_vgic(2);
        vgic.enable_grp0 = true;
        vgic.vcpus[1].private[4].enabled = true;
        vgic.vcpus[1].private[4].group1 = false;
        assert_eq!(vgic.send_sgi(0, 4 << 24 | 0b10), Kick::NONE);
        assert!(!vgic.vcpus[1].private[4].latch);
        assert_eq!(vgic.send_sgi_group0(0, 4 << 24 | 0b10), Kick::vcpu(1));
    }

    #[test]
    fn hw_mappings_are_validated() {
        let mut vgic = Vgic::new(2);
        assert!(vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER));
        assert_eq!(vgic.vcpus[1].private[PPI_VIRT_TIMER as usize].hw_pintid, Some(27));
        assert!(!vgic.set_hw_mapping(1, 1), "SGIs cannot be hardware-linked");
        assert!(!vgic.set_hw_mapping(PPI_VIRT_TIMER, 1023), "special INTID");
        assert!(!vgic.set_hw_mapping(irq::INTID_END, 40));
        assert!(vgic.clear_hw_mapping(PPI_VIRT_TIMER));
        assert_eq!(vgic.vcpus[0].private[PPI_VIRT_TIMER as usize].hw_pintid, None);
    }

    #[test]
    fn lower_lr_priority_precision() {
        let mut vgic = Vgic::new(1);
        vgic.set_lr_priority_bits(4);
        assert_eq!(vgic.lr_priority_mask, 0xF0);
        vgic.set_lr_priority_bits(0);
        assert_eq!(vgic.lr_priority_mask, 0x80);
        vgic.set_lr_priority_bits(200);
        assert_eq!(vgic.lr_priority_mask, 0xFF);
    }
}
