//! The guest's timer interrupts in flight: when a vCPU's timer fires, the IRQ path posts its
//! PPI into the vCPU's mailbox with one atomic OR, without taking the vCPU's lock (which its
//! own exit path may hold on another pCPU while the vCPU moves); the vCPU's own pCPU takes it
//! into the state ([`VcpuGic::take_posted_ppis`]) under the lock it holds anyway for the
//! vCPU's list registers, once they are synced.
//!
//! Why only the owner takes a PPI in, and only after syncing: a completed list register uses
//! up its level interrupt's pending latch; a timer that fired after that completion must not
//! be used up with it.
//!
//! SGIs are not posted this way: a lock-free post taken in later lost an IPI in a 4-vCPU
//! cross-CPU pipe ping-pong (the guest hung with two vCPUs spinning on a lock). Sent under the
//! target's own lock (`Vgic::send_sgi`), the state changes at once, and no lock shared by all
//! vCPUs is involved.

use core::sync::atomic::{AtomicU32, Ordering};

use super::irq::NUM_SGIS;
#[cfg(doc)]
use super::vgic::{VcpuGic, Vgic};
use super::view::View;
use super::Kick;
use crate::options::MAX_VCPUS;

/// Posted PPIs of one vCPU: bit n for PPI 16 + n.
#[derive(Debug, Default)]
pub struct Mailbox(AtomicU32);

impl Mailbox {
    pub const fn new() -> Self {
        Self(AtomicU32::new(0))
    }

    /// Posts PPI `intid` (16..31) as pending, as its (hardware-linked) source fired.
    pub fn post_ppi(&self, intid: u32) {
        // Release: whoever takes the interrupt also sees what the poster wrote before it.
        self.0.fetch_or(1 << (intid % NUM_SGIS), Ordering::Release);
    }

    /// Takes the posted PPIs out (bit n: PPI 16 + n).
    pub fn take(&self) -> u16 {
        self.0.swap(0, Ordering::Acquire) as u16
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

    pub fn get(&self, vcpu: usize) -> Option<&Mailbox> {
        self.0.get(vcpu)
    }
}

impl View<'_> {
    /// Takes the PPIs posted to `vcpu` into its state, each made pending as
    /// [`Vgic::set_pending`] makes it. Only once the vCPU's list registers are synced (see the
    /// module docs): so only on the pCPU the vCPU is loaded on, after its sync. Returns the vCPU
    /// if it now has something to look at.
    pub(super) fn take_posted_ppis(&mut self, vcpu: usize, mailboxes: &Mailboxes) -> Kick {
        let Some(posted) = mailboxes.get(vcpu).filter(|m| !m.is_empty()).map(Mailbox::take) else {
            return Kick::NONE;
        };
        let mut kick = Kick::NONE;
        for n in 0..NUM_SGIS {
            if posted & 1 << n != 0 {
                kick |= self.set_pending(NUM_SGIS + n, vcpu);
            }
        }
        kick
    }
}

#[cfg(test)]
mod tests;
