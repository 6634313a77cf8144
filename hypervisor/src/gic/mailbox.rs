//! SGIs in flight: a vCPU sending an SGI posts it into each target's mailbox with one atomic OR,
//! without the vGIC lock; the target's state takes it in ([`Vgic::take_posted_sgis`]) the next
//! time anyone holds the lock (the integrator does it whenever it takes the lock, so every
//! reader of the vGIC sees posted SGIs).
//!
//! An SGI is the commonest cross-vCPU event (every IPI of the guest, every HVM kick): with the
//! lock-free post, the sender's exit takes no lock that other vCPUs contend for.

use core::sync::atomic::{AtomicU32, Ordering};

use super::affinity::Affinity;
use super::irq::NUM_SGIS;
use super::sgi::{SgiRequest, SgiTargets};
use super::vgic::Vgic;
use super::Kick;
use crate::guest_map::vcpu_mpidr;
use crate::options::MAX_VCPUS;

/// Posted SGIs of one vCPU: bits 0..16 for Group 1 (ICC_SGI1R_EL1), 16..32 for Group 0
/// (ICC_SGI0R_EL1).
#[derive(Debug, Default)]
pub struct SgiMailbox(AtomicU32);

const GROUP0_SHIFT: u32 = NUM_SGIS;

/// SGIs taken out of a mailbox.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PostedSgis {
    pub group1: u16,
    pub group0: u16,
}

impl SgiMailbox {
    pub const fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    /// Posts SGI `intid` (0..15) for the given group.
    pub fn post(&self, intid: u32, group1: bool) {
        let bit = 1u32 << (intid % NUM_SGIS);
        let bit = if group1 { bit } else { bit << GROUP0_SHIFT };
        // Release: whoever takes the SGI also sees what the sender wrote before sending it.
        self.0.fetch_or(bit, Ordering::Release);
    }

    /// Takes every posted SGI out of the mailbox.
    pub fn take(&self) -> PostedSgis {
        let bits = self.0.swap(0, Ordering::Acquire);
        PostedSgis { group1: bits as u16, group0: (bits >> GROUP0_SHIFT) as u16 }
    }

    /// Whether anything is posted (a cheap check before taking a lock).
    pub fn is_empty(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
    }
}

/// One mailbox per possible vCPU.
pub struct SgiMailboxes([SgiMailbox; MAX_VCPUS]);

impl Default for SgiMailboxes {
    fn default() -> Self {
        Self::new()
    }
}

impl SgiMailboxes {
    pub const fn new() -> Self {
        Self([const { SgiMailbox::new() }; MAX_VCPUS])
    }

    /// Emulates `sender`'s write of `value` to ICC_SGI1R_EL1 (`group1`) or ICC_SGI0R_EL1 in a
    /// VM of `num_vcpus` vCPUs: posts the SGI to every target; returns the targets to kick.
    pub fn send(&self, sender: usize, value: u64, group1: bool, num_vcpus: usize) -> Kick {
        let request = SgiRequest::decode(value);
        let targets = sgi_targets(sender, &request, num_vcpus);
        for target in targets.iter() {
            self.0[target].post(request.intid, group1);
        }
        targets
    }

    pub fn get(&self, vcpu: usize) -> Option<&SgiMailbox> {
        self.0.get(vcpu)
    }

    /// Whether any mailbox of the first `num_vcpus` holds something.
    pub fn any_posted(&self, num_vcpus: usize) -> bool {
        self.0.iter().take(num_vcpus).any(|mailbox| !mailbox.is_empty())
    }
}

/// The vCPUs an SGI request reaches.
pub fn sgi_targets(sender: usize, request: &SgiRequest, num_vcpus: usize) -> Kick {
    let num_vcpus = num_vcpus.min(MAX_VCPUS);
    let mut targets = Kick::NONE;
    for target in 0..num_vcpus {
        let targeted = match request.targets {
            SgiTargets::AllButSelf => target != sender,
            SgiTargets::List(list) => list.includes(Affinity::from_mpidr(vcpu_mpidr(target))),
        };
        if targeted {
            targets |= Kick::vcpu(target);
        }
    }
    targets
}

impl Vgic {
    /// Takes the SGIs posted to `vcpu` into its state: each becomes pending if the vCPU has it
    /// in the group it was sent for (others are dropped, as the architecture does). Returns the
    /// vCPU if it now has something to look at.
    pub fn take_posted_sgis(&mut self, vcpu: usize, posted: PostedSgis) -> Kick {
        let mut kick = Kick::NONE;
        for intid in 0..NUM_SGIS {
            let bit = 1u16 << intid;
            for (sent, group1) in [(posted.group1, true), (posted.group0, false)] {
                if sent & bit != 0 {
                    kick |= self.latch_sgi(vcpu, intid, group1);
                }
            }
        }
        kick
    }

    /// Takes every posted SGI of every vCPU into the state (whoever holds the lock does this).
    pub fn take_all_posted_sgis(&mut self, mailboxes: &SgiMailboxes) -> Kick {
        let mut kick = Kick::NONE;
        for vcpu in 0..self.num_vcpus() {
            if let Some(mailbox) = mailboxes.get(vcpu).filter(|m| !m.is_empty()) {
                kick |= self.take_posted_sgis(vcpu, mailbox.take());
            }
        }
        kick
    }
}

#[cfg(test)]
mod tests;
