//! SGI mailboxes: the same outcome as sending under the lock, and nothing lost or duplicated
//! when several vCPUs post at once while the target takes them in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use super::*;

const SGI1R_IRM: u64 = 1 << 40;
const INTID_SHIFT: u32 = 24;

fn vgic_with_sgis_enabled(vcpus: usize) -> Vgic {
    let mut vgic = Vgic::new(vcpus);
    vgic.enable_grp0 = true;
    vgic.enable_grp1 = true;
    for state in &mut vgic.vcpus {
        for irq in state.private.iter_mut().take(NUM_SGIS as usize) {
            irq.enabled = true;
        }
    }
    vgic
}

#[test]
fn posting_then_taking_matches_sending_under_the_lock() {
    let values = [1 << INTID_SHIFT | 0b1010, SGI1R_IRM | 3 << INTID_SHIFT, 0xFF00, 1 << 16 | 1];
    for value in values {
        let mut locked = vgic_with_sgis_enabled(4);
        let mut posted = vgic_with_sgis_enabled(4);
        let expected = locked.send_sgi(2, value);
        let mailboxes = Mailboxes::new();
        let targets = mailboxes.send(2, value, true, 4);
        let kick = posted.take_all_posted_sgis(&mailboxes);
        assert_eq!(kick, expected, "value {value:#x}");
        assert!(kick == Kick::NONE || targets == kick, "value {value:#x}");
        for vcpu in 0..4 {
            assert_eq!(posted.has_deliverable(vcpu), locked.has_deliverable(vcpu), "vcpu {vcpu}, {value:#x}");
        }
        assert!(!mailboxes.any_posted(4), "taking empties the mailboxes");
    }
}

#[test]
fn a_posted_timer_ppi_becomes_pending() {
    use crate::guest_map::PPI_VIRT_TIMER;
    let mut vgic = vgic_with_sgis_enabled(2);
    vgic.vcpus[1].private[PPI_VIRT_TIMER as usize].enabled = true;
    let mailboxes = Mailboxes::new();
    mailboxes.get(1).unwrap().post_ppi(PPI_VIRT_TIMER);
    assert_eq!(mailboxes.get(1).unwrap().take(), Posted { ppis: 1 << (PPI_VIRT_TIMER - 16), ..Posted::default() });
    mailboxes.get(1).unwrap().post_ppi(PPI_VIRT_TIMER);
    mailboxes.send(0, 2 << INTID_SHIFT | 0b10, true, 2);
    assert_eq!(vgic.take_all_posted_sgis(&mailboxes), Kick::vcpu(1), "the SGI");
    assert!(!vgic.vcpus[1].private[PPI_VIRT_TIMER as usize].latch, "PPIs wait for their own pCPU");
    assert_eq!(vgic.take_posted_ppis(1, &mailboxes), Kick::vcpu(1));
    assert!(vgic.vcpus[1].private[PPI_VIRT_TIMER as usize].latch);
    assert!(mailboxes.get(1).unwrap().is_empty());
}

#[test]
fn the_group_is_checked_when_taken() {
    let mut vgic = vgic_with_sgis_enabled(2);
    vgic.vcpus[1].private[4].group1 = false;
    let mailboxes = Mailboxes::new();
    mailboxes.send(0, 4 << INTID_SHIFT | 0b10, true, 2);
    assert_eq!(vgic.take_all_posted_sgis(&mailboxes), Kick::NONE, "Group 1 SGI for a Group 0 interrupt");
    assert!(!vgic.has_deliverable(1));
    mailboxes.send(0, 4 << INTID_SHIFT | 0b10, false, 2);
    assert_eq!(vgic.take_all_posted_sgis(&mailboxes), Kick::vcpu(1));
    assert!(vgic.has_deliverable(1));
}

#[test]
fn targets_beyond_the_vm_get_nothing() {
    let mailboxes = Mailboxes::new();
    assert_eq!(mailboxes.send(0, 1 << INTID_SHIFT | 0b1110, true, 2), Kick::vcpu(1));
    assert!(mailboxes.get(2).unwrap().is_empty() && mailboxes.get(3).unwrap().is_empty());
    assert_eq!(mailboxes.send(0, SGI1R_IRM, true, 1), Kick::NONE, "alone: nobody else");
}

/// Three senders post SGIs to vCPU 0 in many rounds while vCPU 0 keeps taking them in and
/// handling them (clearing the latch, as an acknowledge would). Each sender uses its own SGI
/// numbers and posts the next only once the last was handled, so no two posts can merge: every
/// single post must be delivered exactly once, however the posts race with the takes.
#[test]
fn concurrent_senders_lose_nothing() {
    use std::sync::atomic::AtomicUsize;
    const ROUNDS: usize = 3000;
    const SENDERS: usize = 3;
    let mailboxes = Arc::new(Mailboxes::new());
    let vgic = Arc::new(Mutex::new(vgic_with_sgis_enabled(SENDERS + 1)));
    let handled: Arc<[AtomicUsize; NUM_SGIS as usize]> = Arc::new(std::array::from_fn(|_| AtomicUsize::new(0)));
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let (mailboxes, vgic, handled, done) = (mailboxes.clone(), vgic.clone(), handled.clone(), done.clone());
        thread::spawn(move || loop {
            let finished = done.load(Ordering::Acquire);
            let mut vgic = vgic.lock().unwrap();
            vgic.take_all_posted_sgis(&mailboxes);
            for (intid, count) in handled.iter().enumerate() {
                let irq = &mut vgic.vcpus[0].private[intid];
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
    let senders: Vec<_> = (1..=SENDERS)
        .map(|sender| {
            let (mailboxes, handled) = (mailboxes.clone(), handled.clone());
            thread::spawn(move || {
                for round in 0..ROUNDS {
                    // Sender s owns SGIs s, s + 4, s + 8, s + 12.
                    let intid = sender + 4 * (round % 4);
                    let before = handled[intid].load(Ordering::Acquire);
                    mailboxes.send(sender, (intid as u64) << INTID_SHIFT | 0b1, true, SENDERS + 1);
                    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                    while handled[intid].load(Ordering::Acquire) == before {
                        assert!(std::time::Instant::now() < deadline, "sender {sender}: SGI {intid} lost");
                        thread::yield_now();
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
    done.store(true, Ordering::Release);
    receiver.join().unwrap();
    for sender in 1..=SENDERS {
        let total: usize = (0..4).map(|k| handled[sender + 4 * k].load(Ordering::Acquire)).sum();
        assert_eq!(total, ROUNDS, "sender {sender}: every post delivered exactly once");
    }
    assert!(!mailboxes.any_posted(SENDERS + 1));
}

/// The ordering rule of `take_posted_ppis`: the guest completed one timer interrupt and the
/// timer fired again before the exit path synced. Taken after the sync, the new one is pending;
/// taken before, the sync's "completed, so the level latch is used up" would swallow it (which
/// is what happened when any pCPU took any vCPU's posted PPIs).
#[test]
fn a_timer_posted_after_a_completion_survives_the_sync() {
    use crate::gic::lr::{LrState, LR_STATE_MASK, LR_STATE_SHIFT};
    use crate::guest_map::PPI_VIRT_TIMER;
    for take_first in [false, true] {
        let mut vgic = vgic_with_sgis_enabled(1);
        vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER);
        vgic.vcpus[0].private[PPI_VIRT_TIMER as usize].enabled = true;
        vgic.set_pending(PPI_VIRT_TIMER, 0);
        let mut lrs = [0u64; 4];
        vgic.flush_lrs(0, &mut lrs);
        lrs[0] &= !(LR_STATE_MASK << LR_STATE_SHIFT); // the guest completes it
        assert_eq!(crate::gic::ListRegister::decode(lrs[0]).state, LrState::Invalid);
        let mailboxes = Mailboxes::new();
        mailboxes.get(0).unwrap().post_ppi(PPI_VIRT_TIMER); // and the timer fires again
        if take_first {
            vgic.take_posted_ppis(0, &mailboxes);
            vgic.sync_lrs(0, &mut lrs);
            assert!(!vgic.has_deliverable(0), "taken before the sync, it is swallowed");
        } else {
            vgic.sync_lrs(0, &mut lrs);
            vgic.take_posted_ppis(0, &mailboxes);
            assert!(vgic.has_deliverable(0), "taken after the sync, it is pending");
        }
    }
}
