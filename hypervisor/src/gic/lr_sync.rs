//! Moving interrupts between the shadow state and a vCPU's list registers.
//!
//! [`Vgic::sync_lrs`] runs after a guest exit and learns what the guest did with its list
//! registers: an Invalid one was completed (acknowledged, EOI'd and deactivated).
//! [`Vgic::flush_lrs`] runs before entry: it applies what happened meanwhile to the occupied
//! list registers (new edges, guest MMIO edits, disabling, re-routing), then fills free ones
//! with the highest-priority waiting interrupts, evicting lower-priority pending ones if
//! needed. Both work on plain `u64` values; the integrator reads and writes ICH_LR<n>_EL2.
//!
//! Each vCPU keeps a record of which INTID sits in which list register, and each interrupt
//! knows its list register, so an interrupt is never in two list registers at once.

use super::irq::{IrqState, LrFixup, LrSlot, NUM_INTIDS, NUM_PRIVATE};
use super::lr::{ListRegister, LrState};
use super::view::{effective_lr_state, View};
use super::{Kick, MAX_LRS};

/// What the integrator must do after [`Vgic::flush_lrs`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushResult {
    /// More interrupts wait than fit, and every list register is in use: set ICH_HCR_EL2.UIE
    /// (maintenance interrupt once at most one list register is valid) so the rest are
    /// flushed as the guest completes interrupts. Not NPIE: with every list register active
    /// and none pending it would fire at once, over and over.
    pub overflow: bool,
    /// Other vCPUs to kick: interrupts withdrawn from this vCPU that are now theirs.
    pub kick: Kick,
    /// Physical interrupts to deactivate (ICC_DIR_EL1): hardware-linked interrupts the flush
    /// withdrew from a list register (the guest cleared their pending or active state through
    /// the distributor, disabled or re-routed them), which the guest will therefore never
    /// deactivate, and those it cleared while no list register held them
    /// (`IrqState::physical_owed`). Left active, such a physical interrupt (the guest's timer)
    /// never fires again.
    pub deactivate: [Option<u32>; MAX_DEACTIVATIONS],
}

/// Deactivations one flush may ask for: one per list register, and one per private interrupt
/// that no list register holds (hardware-linked interrupts are private: the guest's timers).
pub const MAX_DEACTIVATIONS: usize = MAX_LRS + 2;

impl View<'_> {
    /// Learns from `lrs` (ICH_LR<n>_EL2 of `vcpu`, as read after an exit) what the guest did.
    /// Completed interrupts leave the record and their list register is zeroed; for a
    /// level-triggered one whose line is still high that makes it pending again.
    pub fn sync_lrs(&mut self, vcpu: usize, lrs: &mut [u64]) {
        if self.cpu(vcpu).is_none() {
            return;
        }
        for (index, raw) in lrs.iter_mut().enumerate().take(MAX_LRS) {
            let Some(intid) = self.record(vcpu, index) else {
                continue;
            };
            let lr = ListRegister::decode(*raw);
            // A list register holding something else than we put there is treated as
            // completed too: our record must never point at a stranger.
            if lr.state == LrState::Invalid || lr.vintid != intid {
                self.release(vcpu, index);
                if let Some(irq) = self.irq_mut(vcpu, intid) {
                    acknowledged(irq);
                }
                *raw = 0;
                continue;
            }
            if let Some(irq) = self.irq_mut(vcpu, intid) {
                irq.lr = Some(LrSlot { vcpu, index, state: lr.state });
                if !lr.state.is_pending() {
                    acknowledged(irq);
                }
            }
        }
    }

    /// The INTID list register `index` of `vcpu` holds, by the record.
    fn record(&self, vcpu: usize, index: usize) -> Option<u32> {
        *self.cpu(vcpu)?.lrs.get(index)?
    }

    /// Prepares `lrs` (ICH_LR<n>_EL2 of `vcpu`; its length is the number of list registers)
    /// for entering the guest. Syncs first, so a preceding [`Vgic::sync_lrs`] is optional.
    /// Every element may change and must be written back.
    pub fn flush_lrs(&mut self, vcpu: usize, lrs: &mut [u64]) -> FlushResult {
        if self.cpu(vcpu).is_none() {
            return FlushResult::default();
        }
        self.sync_lrs(vcpu, lrs);
        let usable = lrs.len().min(MAX_LRS);
        let lrs = &mut lrs[..usable];

        let mut kick = Kick::NONE;
        let mut deactivate = [None; MAX_DEACTIVATIONS];
        for (index, raw) in lrs.iter_mut().enumerate() {
            if self.record(vcpu, index).is_some() {
                let (refresh_kick, withdrawn_pintid) = self.refresh(vcpu, index, raw);
                kick |= refresh_kick;
                deactivate[index] = withdrawn_pintid;
            } else {
                // Not ours: never let a stale value reach the guest.
                *raw = 0;
            }
        }

        // Waiting interrupts, best first: lower priority value, then lower INTID.
        let mut waiting = [(0u8, 0u32); NUM_INTIDS];
        let mut count = 0;
        for intid in self.visible_intids() {
            if self.deliverable_to(vcpu, intid) {
                if let Some(irq) = self.irq(vcpu, intid) {
                    waiting[count] = (irq.priority & self.cfg.lr_priority_mask, intid);
                    count += 1;
                }
            }
        }
        let waiting = &mut waiting[..count];
        waiting.sort_unstable();

        let mut overflow = false;
        for &(priority, intid) in waiting.iter() {
            let free = (0..lrs.len()).find(|&index| self.record(vcpu, index).is_none());
            let Some(index) = free.or_else(|| self.evict_below(vcpu, priority, lrs)) else {
                // The rest rank no higher: they wait for a maintenance interrupt.
                overflow = true;
                break;
            };
            // An eviction leaves the evicted interrupt waiting.
            overflow |= free.is_none();
            self.place(vcpu, index, intid, &mut lrs[index]);
        }
        self.settle_owed_deactivations(vcpu, &mut deactivate[MAX_LRS..]);
        FlushResult { overflow, kick: kick.without(vcpu), deactivate }
    }

    /// The physical interrupts `vcpu` owes a deactivation (`IrqState::physical_owed`) into
    /// `out`. One pending or active again meanwhile is the list register's business again.
    fn settle_owed_deactivations(&mut self, vcpu: usize, out: &mut [Option<u32>]) {
        let mut free = out.iter_mut().peekable();
        for intid in 0..NUM_PRIVATE {
            if free.peek().is_none() {
                // The rest stay owed until the next flush.
                break;
            }
            let Some(irq) = self.irq_mut(vcpu, intid).filter(|irq| irq.physical_owed) else {
                continue;
            };
            irq.physical_owed = false;
            let settled = irq.pending() || irq.active || irq.lr.is_some();
            if let (Some(pintid), false, Some(slot)) = (irq.hw_pintid, settled, free.next()) {
                *slot = Some(pintid);
            }
        }
    }

    /// Applies what happened since the last sync to the interrupt in list register `index`.
    /// Returns the vCPU that should take over an interrupt withdrawn from here, and the
    /// physical INTID to deactivate if a hardware-linked interrupt was withdrawn.
    fn refresh(&mut self, vcpu: usize, index: usize, raw: &mut u64) -> (Kick, Option<u32>) {
        let Some(intid) = self.record(vcpu, index) else {
            return (Kick::NONE, None);
        };
        let forwarded_here = self.irq(vcpu, intid).is_some_and(|irq| self.deliverable(vcpu, irq))
            && self.target(vcpu, intid) == Some(vcpu);
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return (Kick::NONE, None);
        };

        let mut lr = ListRegister::decode(*raw);
        let state = effective_lr_state(irq, lr.state);
        irq.fix = LrFixup::default();
        let (mut pending, active) = (state.is_pending(), state.is_active());
        // A new edge merges into the list register, even one the guest has active (it becomes
        // pending and active). Not for a hardware-linked interrupt: its physical source stays
        // active until the guest deactivates, so the edge waits for the list register to empty.
        if irq.is_edge() && irq.latch && !(active && irq.hw_pintid.is_some()) {
            pending = true;
            irq.latch = false;
        }
        // Pending state the distributor no longer forwards here goes back to the distributor.
        if pending && !forwarded_here {
            pending = false;
            irq.latch |= irq.is_edge();
        }

        lr.state = LrState::new(pending, active);
        if lr.state == LrState::Invalid {
            // The list register held it (sync releases completed ones first), so a linked
            // physical interrupt is still active and only we can deactivate it now.
            let withdrawn = irq.hw_pintid;
            self.release(vcpu, index);
            *raw = 0;
            return (self.attention(vcpu, intid), withdrawn);
        }
        irq.lr = Some(LrSlot { vcpu, index, state: lr.state });
        *raw = lr.encode();
        (Kick::NONE, None)
    }

    /// Frees the pending-only list register with the lowest priority below `priority`, if any,
    /// returning its interrupt to the distributor.
    fn evict_below(&mut self, vcpu: usize, priority: u8, lrs: &mut [u64]) -> Option<usize> {
        let (index, _) = lrs
            .iter()
            .enumerate()
            .map(|(index, &raw)| (index, ListRegister::decode(raw)))
            .filter(|(index, lr)| {
                self.record(vcpu, *index).is_some() && lr.state == LrState::Pending && lr.priority > priority
            })
            .max_by_key(|(_, lr)| lr.priority)?;
        let intid = self.record(vcpu, index)?;
        self.release(vcpu, index);
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            irq.latch |= irq.is_edge();
        }
        lrs[index] = 0;
        Some(index)
    }

    /// Puts pending `intid` into free list register `index`.
    fn place(&mut self, vcpu: usize, index: usize, intid: u32, raw: &mut u64) {
        let priority_mask = self.cfg.lr_priority_mask;
        let Some(irq) = self.irq_mut(vcpu, intid) else {
            return;
        };
        // The active state moves into the list register. A hardware-linked interrupt is never
        // made pending and active (see `refresh`): it goes in active, its edge still latched.
        let pending = !(irq.active && irq.hw_pintid.is_some());
        let lr = ListRegister {
            state: LrState::new(pending, irq.active),
            pintid: irq.hw_pintid,
            group1: irq.group1,
            priority: irq.priority & priority_mask,
            // Level-triggered: learn when the guest is done, to re-pend if the line is high.
            eoi_maintenance: !irq.is_edge() && irq.hw_pintid.is_none(),
            vintid: intid,
        };
        if irq.is_edge() && pending {
            irq.latch = false;
        }
        irq.active = false;
        irq.fix = LrFixup::default();
        irq.lr = Some(LrSlot { vcpu, index, state: lr.state });
        *raw = lr.encode();
        if let Some(record) = self.cpu_mut(vcpu).and_then(|state| state.lrs.get_mut(index)) {
            *record = Some(intid);
        }
    }

    /// Forgets list register `index` of `vcpu` (both sides of the record).
    fn release(&mut self, vcpu: usize, index: usize) {
        let Some(intid) = self.cpu_mut(vcpu).and_then(|state| state.lrs.get_mut(index)?.take()) else {
            return;
        };
        if let Some(irq) = self.irq_mut(vcpu, intid) {
            irq.leave_lr(vcpu, index);
        }
    }
}

/// The guest has acknowledged the interrupt: a level-triggered one's software pending latch
/// is used up (its line, if still high, keeps it pending).
fn acknowledged(irq: &mut IrqState) {
    if !irq.is_edge() {
        irq.latch = false;
    }
}

#[cfg(test)]
mod tests;
