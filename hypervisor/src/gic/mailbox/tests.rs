//! Timer PPI mailboxes: a posted PPI becomes pending when taken in, only its own vCPU's, and
//! nothing is lost or duplicated when posts race with takes.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use super::*;
use crate::gic::lr::{LrState, LR_STATE_MASK, LR_STATE_SHIFT};
use crate::gic::Vgic;
use crate::guest_map::{PPI_NONSECURE_PHYS_TIMER, PPI_VIRT_TIMER};

fn vgic_with_ppis_enabled(vcpus: usize) -> Vgic {
    let vgic = Vgic::new(vcpus);
    vgic.set_groups(false, true);
    for state in &vgic.vcpus {
        for irq in state.lock().private.iter_mut().skip(NUM_SGIS as usize) {
            irq.enabled = true;
        }
    }
    vgic
}

#[test]
fn a_posted_timer_ppi_becomes_pending_for_its_vcpu_only() {
    let vgic = vgic_with_ppis_enabled(2);
    let mailboxes = Mailboxes::new();
    mailboxes.get(1).unwrap().post_ppi(PPI_VIRT_TIMER);
    mailboxes.get(1).unwrap().post_ppi(PPI_NONSECURE_PHYS_TIMER);
    assert_eq!(vgic.vcpu(0).unwrap().take_posted_ppis(&mailboxes), Kick::NONE, "vCPU 0 has nothing posted");
    assert!(!vgic.has_deliverable(1), "not yet taken in");
    assert_eq!(vgic.vcpu(1).unwrap().take_posted_ppis(&mailboxes), Kick::vcpu(1));
    assert!(vgic.has_deliverable(1) && !vgic.has_deliverable(0));
    assert!(vgic.vcpus[1].lock().private[PPI_NONSECURE_PHYS_TIMER as usize].latch);
    assert!(mailboxes.get(1).unwrap().is_empty());
}

/// The ordering rule: the guest completed one timer interrupt and the timer fired again
/// before the exit path synced. Taken in after the sync, the new one is pending; taken in
/// before, the sync's "completed, so the level latch is used up" would swallow it (which is
/// what happened when any pCPU took any vCPU's posted PPIs in).
#[test]
fn a_timer_posted_after_a_completion_survives_the_sync() {
    for take_first in [false, true] {
        let vgic = vgic_with_ppis_enabled(1);
        vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER);
        vgic.set_pending(PPI_VIRT_TIMER, 0);
        let mut lrs = [0u64; 4];
        vgic.flush_lrs(0, &mut lrs);
        lrs[0] &= !(LR_STATE_MASK << LR_STATE_SHIFT); // the guest completes it
        assert_eq!(crate::gic::ListRegister::decode(lrs[0]).state, LrState::Invalid);
        let mailboxes = Mailboxes::new();
        mailboxes.get(0).unwrap().post_ppi(PPI_VIRT_TIMER); // and the timer fires again
        if take_first {
            vgic.vcpu(0).unwrap().take_posted_ppis(&mailboxes);
            vgic.sync_lrs(0, &mut lrs);
            assert!(!vgic.has_deliverable(0), "taken in before the sync, it is swallowed");
        } else {
            vgic.sync_lrs(0, &mut lrs);
            vgic.vcpu(0).unwrap().take_posted_ppis(&mailboxes);
            assert!(vgic.has_deliverable(0), "taken in after the sync, it is pending");
        }
    }
}

/// Posters race a taker that keeps taking posted PPIs in and "handling" them (clearing the
/// latch, as an acknowledge would). Each poster owns PPIs of its own and posts again only once
/// its last post was handled, so no two posts can merge: every post must be delivered exactly
/// once however it races with the takes.
#[test]
fn racing_posts_and_takes_lose_nothing() {
    const ROUNDS: usize = 3000;
    const POSTERS: usize = 3;
    let mailboxes = Arc::new(Mailboxes::new());
    let vgic = Arc::new(vgic_with_ppis_enabled(1));
    let handled: Arc<[AtomicUsize; NUM_SGIS as usize]> = Arc::new(std::array::from_fn(|_| AtomicUsize::new(0)));
    let done = Arc::new(AtomicBool::new(false));
    let taker = {
        let (mailboxes, vgic, handled, done) = (mailboxes.clone(), vgic.clone(), handled.clone(), done.clone());
        thread::spawn(move || loop {
            let finished = done.load(Ordering::Acquire);
            vgic.vcpu(0).unwrap().take_posted_ppis(&mailboxes);
            let mut state = vgic.vcpus[0].lock();
            for (n, count) in handled.iter().enumerate() {
                let irq = &mut state.private[NUM_SGIS as usize + n];
                if irq.latch {
                    irq.latch = false;
                    count.fetch_add(1, Ordering::AcqRel);
                }
            }
            if finished {
                return;
            }
        })
    };
    let posters: Vec<_> = (0..POSTERS)
        .map(|poster| {
            let (mailboxes, handled) = (mailboxes.clone(), handled.clone());
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    // Poster p owns PPIs 16 + p, 16 + p + 4, 16 + p + 8, 16 + p + 12.
                    let n = poster + 4 * (round % 4);
                    let before = handled[n].load(Ordering::Acquire);
                    mailboxes.get(0).unwrap().post_ppi(NUM_SGIS + n as u32);
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while handled[n].load(Ordering::Acquire) == before {
                        assert!(std::time::Instant::now() < deadline, "poster {poster}: PPI {} lost", 16 + n);
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for poster in posters {
        poster.join().unwrap();
    }
    done.store(true, Ordering::Release);
    taker.join().unwrap();
    for poster in 0..POSTERS {
        let total: usize = (0..4).map(|k| handled[poster + 4 * k].load(Ordering::Acquire)).sum();
        assert_eq!(total, ROUNDS, "poster {poster}: every post delivered exactly once");
    }
    assert!(mailboxes.get(0).unwrap().is_empty());
}
