//! Private interrupts in flight: a vCPU sending an SGI posts it into each target's mailbox with
//! one atomic OR, without the vGIC lock, and so does the exit path when the guest's timer fires
//! (a PPI). Posted SGIs are taken into the state ([`Vgic::take_all_posted_sgis`]) the next time
//! anyone holds the lock (the integrator does it whenever it takes the lock, so every reader of
//! the vGIC sees them); posted PPIs only by the vCPU's own pCPU once its list registers are
//! synced ([`Vgic::take_posted_ppis`]).
//!
//! An SGI is the commonest cross-vCPU event (every IPI of the guest, every HVM kick), the timer
//! the commonest interrupt: with lock-free posts, neither exit takes a lock that other vCPUs
//! contend for just to make an interrupt pending.

use core::sync::atomic::{AtomicU64, Ordering};

use super::affinity::Affinity;
use super::irq::NUM_SGIS;
use super::sgi::{SgiRequest, SgiTargets};
use super::vgic::Vgic;
use super::Kick;
use crate::guest_map::vcpu_mpidr;
use crate::options::MAX_VCPUS;

/// Posted interrupts of one vCPU: bits 0..16 for Group 1 SGIs (ICC_SGI1R_EL1), 16..32 for
/// Group 0 SGIs (ICC_SGI0R_EL1), 32..48 for PPIs 16..31.
#[derive(Debug, Default)]
pub struct Mailbox(AtomicU64);

const GROUP0_SHIFT: u32 = NUM_SGIS;
const PPI_SHIFT: u32 = 2 * NUM_SGIS;
/// The bits of both SGI groups.
const SGI_BITS: u64 = (1 << PPI_SHIFT) - 1;

/// Interrupts taken out of a mailbox: one bit per SGI or PPI (bit n = SGI n, or PPI 16 + n).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Posted {
    pub group1: u16,
    pub group0: u16,
    pub ppis: u16,
}

impl Mailbox {
    pub const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Posts SGI `intid` (0..15) for the given group.
    pub fn post_sgi(&self, intid: u32, group1: bool) {
        let bit = 1u64 << (intid % NUM_SGIS);
        self.post(if group1 { bit } else { bit << GROUP0_SHIFT });
    }

    /// Posts PPI `intid` (16..31) as pending, as its (hardware-linked) source fired.
    pub fn post_ppi(&self, intid: u32) {
        self.post(1u64 << (PPI_SHIFT + intid % NUM_SGIS));
    }

    fn post(&self, bits: u64) {
        // Release: whoever takes the interrupt also sees what the poster wrote before it.
        self.0.fetch_or(bits, Ordering::Release);
    }

    /// Takes every posted interrupt out of the mailbox.
    pub fn take(&self) -> Posted {
        Self::split(self.0.swap(0, Ordering::Acquire))
    }

    /// Takes the posted SGIs out, leaving PPIs.
    pub fn take_sgis(&self) -> Posted {
        Self::split(self.0.fetch_and(!SGI_BITS, Ordering::Acquire) & SGI_BITS)
    }

    /// Takes the posted PPIs out, leaving SGIs.
    pub fn take_ppis(&self) -> Posted {
        Self::split(self.0.fetch_and(SGI_BITS, Ordering::Acquire) & !SGI_BITS)
    }

    fn split(bits: u64) -> Posted {
        Posted { group1: bits as u16, group0: (bits >> GROUP0_SHIFT) as u16, ppis: (bits >> PPI_SHIFT) as u16 }
    }

    /// Whether SGIs are posted.
    pub fn has_sgis(&self) -> bool {
        self.0.load(Ordering::Relaxed) & SGI_BITS != 0
    }

    /// Whether anything is posted (a cheap check before taking a lock).
    pub fn is_empty(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
    }
}

/// One mailbox per possible vCPU.
pub struct Mailboxes([Mailbox; MAX_VCPUS]);

impl Default for Mailboxes {
    fn default() -> Self {
        Self::new()
    }
}

impl Mailboxes {
    pub const fn new() -> Self {
        Self([const { Mailbox::new() }; MAX_VCPUS])
    }

    /// Emulates `sender`'s write of `value` to ICC_SGI1R_EL1 (`group1`) or ICC_SGI0R_EL1 in a
    /// VM of `num_vcpus` vCPUs: posts the SGI to every target; returns the targets to kick.
    pub fn send(&self, sender: usize, value: u64, group1: bool, num_vcpus: usize) -> Kick {
        let request = SgiRequest::decode(value);
        let targets = sgi_targets(sender, &request, num_vcpus);
        for target in targets.iter() {
            self.0[target].post_sgi(request.intid, group1);
        }
        targets
    }

    pub fn get(&self, vcpu: usize) -> Option<&Mailbox> {
        self.0.get(vcpu)
    }

    /// Whether any mailbox of the first `num_vcpus` holds something.
    pub fn any_posted(&self, num_vcpus: usize) -> bool {
        self.0.iter().take(num_vcpus).any(|mailbox| !mailbox.is_empty())
    }

    /// Whether any mailbox of the first `num_vcpus` holds an SGI.
    pub fn any_sgis(&self, num_vcpus: usize) -> bool {
        self.0.iter().take(num_vcpus).any(Mailbox::has_sgis)
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
    /// Takes the interrupts posted to `vcpu` into its state: an SGI becomes pending if the vCPU
    /// has it in the group it was sent for (others are dropped, as the architecture does); a PPI
    /// becomes pending as [`Vgic::set_pending`] makes it. Returns the vCPU if it now has
    /// something to look at.
    pub fn take_posted(&mut self, vcpu: usize, posted: Posted) -> Kick {
        let mut kick = Kick::NONE;
        for n in 0..NUM_SGIS {
            let bit = 1u16 << n;
            for (sent, group1) in [(posted.group1, true), (posted.group0, false)] {
                if sent & bit != 0 {
                    kick |= self.latch_sgi(vcpu, n, group1);
                }
            }
            if posted.ppis & bit != 0 {
                kick |= self.set_pending(NUM_SGIS + n, vcpu);
            }
        }
        kick
    }

    /// Takes the SGIs posted to every vCPU into the state: whoever holds the lock may (an SGI
    /// is an edge, which a list register's completion does not use up).
    pub fn take_all_posted_sgis(&mut self, mailboxes: &Mailboxes) -> Kick {
        let mut kick = Kick::NONE;
        for vcpu in 0..self.num_vcpus() {
            if let Some(mailbox) = mailboxes.get(vcpu).filter(|m| m.has_sgis()) {
                kick |= self.take_posted(vcpu, mailbox.take_sgis());
            }
        }
        kick
    }

    /// Takes the PPIs posted to `vcpu` into its state. Only once the vCPU's list registers are
    /// synced: a completed list register uses up its level interrupt's pending latch, and a
    /// timer that fired after the completion must not be used up with it. So only the pCPU
    /// the vCPU is loaded on does this, after its sync.
    pub fn take_posted_ppis(&mut self, vcpu: usize, mailboxes: &Mailboxes) -> Kick {
        match mailboxes.get(vcpu).filter(|m| !m.is_empty()) {
            Some(mailbox) => self.take_posted(vcpu, mailbox.take_ppis()),
            None => Kick::NONE,
        }
    }
}

#[cfg(test)]
mod tests;
