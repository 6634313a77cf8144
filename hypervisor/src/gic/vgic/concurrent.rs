//! The vGIC shared by threads that play pCPUs: which locks each path takes, and that no
//! interrupt is lost or delivered twice when senders race the vCPUs' exit paths.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use super::*;
use crate::gic::{ListRegister, LrState};
use crate::guest_map::{PPI_VIRT_TIMER, SPI_BASE};

/// What QEMU's cortex-a57 has.
const NUM_LRS: usize = 4;
/// How long a test waits for a delivery before calling it lost.
const PATIENCE: Duration = Duration::from_secs(20);

/// A waiter that fails the test instead of waiting: any lock found held is a lock the path
/// was not supposed to take.
const NO_WAITING: Waiter =
    Waiter { begin: || 0, pause: |_| panic!("waited for a lock another pCPU holds"), end: |_| {} };

/// Threads share 2 host cores with the test harness's others: a waiter gives its core up.
const YIELDING: Waiter = Waiter { begin: || 0, pause: |_| thread::yield_now(), end: |_| {} };

/// `vcpus` vCPUs, Group 1 enabled, every SGI and PPI enabled, redistributors awake, and the
/// SPIs `spis` enabled, edge-triggered and routed to vCPU 0.
fn shared_vgic(vcpus: usize, spis: &[u32]) -> Vgic {
    let mut vgic = Vgic::new(vcpus);
    vgic.set_waiter(YIELDING);
    vgic.set_groups(false, true);
    for vcpu in 0..vcpus {
        vgic.gicr_write(vcpu as u64 * 0x2_0000 + 0x14, 4, 0); // GICR_WAKER: awake
        vgic.gicr_write(vcpu as u64 * 0x2_0000 + 0x1_0100, 4, 0xFFFF_FFFF); // GICR_ISENABLER0
    }
    for &intid in spis {
        vgic.edit_irq(0, intid, |irq| {
            irq.enabled = true;
            irq.trigger = crate::gic::irq::Trigger::Edge;
        });
    }
    // The set-up's register writes kicked every vCPU, which leaves them all flagged as maybe
    // having SPIs; a vCPU's first exit looks and settles the flags, as a guest's boot does.
    vgic.flush_lrs(0, &mut [0; NUM_LRS]);
    vgic
}

/// The guest on one vCPU: acknowledges and completes every pending interrupt in `lrs`,
/// returning their INTIDs.
fn guest_takes_all(lrs: &mut [u64]) -> Vec<u32> {
    let mut taken = Vec::new();
    for raw in lrs.iter_mut() {
        let lr = ListRegister::decode(*raw);
        if lr.state.is_pending() {
            taken.push(lr.vintid);
            *raw = ListRegister { state: LrState::Invalid, ..lr }.encode();
        }
    }
    taken
}

/// One exit of `vcpu`: sync and flush its list registers under its own lock. Then the guest
/// runs a little (the thread lets the others in).
fn exit_and_enter(vgic: &Vgic, vcpu: usize, lrs: &mut [u64]) {
    let mut gic = vgic.vcpu(vcpu).unwrap();
    gic.sync_lrs(lrs);
    gic.flush_lrs(lrs);
    drop(gic);
    thread::yield_now();
}

#[test]
fn the_common_exits_take_no_lock_all_vcpus_share() {
    let mut vgic = shared_vgic(4, &[]);
    vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER);
    vgic.set_waiter(NO_WAITING);
    let distributor = vgic.dist.lock();

    // An SGI from vCPU 0 to vCPU 1, taken and completed by vCPU 1's guest.
    assert_eq!(vgic.send_sgi(0, 1 << 24 | 0b10), Kick::vcpu(1));
    assert!(vgic.has_deliverable(1));
    let mut lrs = [0u64; NUM_LRS];
    exit_and_enter(&vgic, 1, &mut lrs);
    assert_eq!(guest_takes_all(&mut lrs), [1]);
    exit_and_enter(&vgic, 1, &mut lrs);
    assert!(!vgic.has_deliverable(1));

    // vCPU 2's timer fires, is posted, taken in and then withdrawn as its line drops.
    let mailboxes = crate::gic::mailbox::Mailboxes::new();
    mailboxes.get(2).unwrap().post_ppi(PPI_VIRT_TIMER);
    let mut gic = vgic.vcpu(2).unwrap();
    assert_eq!(gic.take_posted_ppis(&mailboxes), Kick::vcpu(2));
    let mut lrs = [0u64; NUM_LRS];
    gic.flush_lrs(&mut lrs);
    assert_eq!(ListRegister::decode(lrs[0]).vintid, PPI_VIRT_TIMER);
    assert_eq!(gic.hw_line_dropped(PPI_VIRT_TIMER), (Kick::vcpu(2), true));
    assert!(!gic.has_deliverable());
    drop(gic);

    // The probe works: an SPI does need the distributor.
    let spi = catch_unwind(AssertUnwindSafe(|| vgic.set_pending(SPI_BASE, 0)));
    assert!(spi.is_err(), "an SPI must have waited for the distributor's lock");
    drop(distributor);
}

#[test]
fn a_vcpu_holding_an_spi_takes_the_distributor_until_it_is_done() {
    let vgic = shared_vgic(2, &[SPI_BASE]);
    assert_eq!(vgic.spis_waiting_bits(), 0, "settled: no SPI waits");
    assert_eq!(vgic.set_pending(SPI_BASE, 0), Kick::vcpu(0));
    assert_eq!(vgic.spis_waiting_bits(), 0b01, "an SPI waits for vCPU 0");
    let mut lrs = [0u64; NUM_LRS];
    exit_and_enter(&vgic, 0, &mut lrs);
    assert_eq!(vgic.spis_waiting_bits(), 0, "in a list register, it waits no more");
    assert_eq!(guest_takes_all(&mut lrs), [SPI_BASE]);
    exit_and_enter(&vgic, 0, &mut lrs);
    assert_eq!(lrs, [0; NUM_LRS]);
    // Done with SPIs: vCPU 0's exits no longer need the distributor.
    let mut vgic = vgic;
    vgic.set_waiter(NO_WAITING);
    let _distributor = vgic.dist.lock();
    exit_and_enter(&vgic, 0, &mut lrs);
    assert!(!vgic.has_deliverable(0));
}

/// Two pairs of vCPU threads play SGI ping-pong, as a cross-CPU pipe does: each answers the
/// SGI it takes with one to its partner. A single lost SGI stops a pair for good.
#[test]
fn sgi_ping_pong_between_vcpu_threads_loses_nothing() {
    const ROUNDS: usize = 2000;
    const PING: u32 = 1;
    let vgic = shared_vgic(4, &[]);
    let partner = |vcpu: usize| vcpu ^ 1;
    let sgi_to = |target: usize| u64::from(PING) << 24 | 1 << target;
    thread::scope(|scope| {
        for vcpu in 0..4 {
            let vgic = &vgic;
            scope.spawn(move || {
                let mut lrs = [0u64; NUM_LRS];
                let mut taken = 0;
                if vcpu % 2 == 0 {
                    vgic.send_sgi(vcpu, sgi_to(partner(vcpu)));
                }
                let deadline = Instant::now() + PATIENCE;
                while taken < ROUNDS {
                    assert!(Instant::now() < deadline, "vCPU {vcpu}: SGI lost after {taken} rounds");
                    exit_and_enter(vgic, vcpu, &mut lrs);
                    for intid in guest_takes_all(&mut lrs) {
                        assert_eq!(intid, PING);
                        taken += 1;
                        // The last answer of the starting side would go unanswered: skip it.
                        if vcpu % 2 == 1 || taken < ROUNDS {
                            vgic.send_sgi(vcpu, sgi_to(partner(vcpu)));
                        }
                    }
                }
                assert_eq!(taken, ROUNDS, "vCPU {vcpu}: each SGI taken once");
            });
        }
    });
}

/// Three senders, each with an SGI of its own, and a device with an edge SPI, all aim at
/// vCPU 0 while its thread keeps exiting and taking interrupts. Each sender sends again only
/// once its last one was taken, so none can merge with another: every one must arrive once.
#[test]
fn concurrent_senders_to_one_vcpu_are_each_delivered_once() {
    const ROUNDS: usize = 500;
    const SENDERS: usize = 3;
    const SPI: u32 = SPI_BASE + 7;
    let vgic = shared_vgic(4, &[SPI]);
    // Index n counts SGI n + 1 (sent by vCPU n + 1); the last one counts the SPI.
    let taken: [AtomicUsize; SENDERS + 1] = std::array::from_fn(|_| AtomicUsize::new(0));
    let done = AtomicBool::new(false);
    let wait_for = |counter: &AtomicUsize, before: usize, what: &str| {
        let deadline = Instant::now() + PATIENCE;
        while counter.load(Ordering::Acquire) == before {
            assert!(Instant::now() < deadline, "{what} lost");
            thread::yield_now();
        }
    };
    thread::scope(|scope| {
        scope.spawn(|| {
            let mut lrs = [0u64; NUM_LRS];
            while !done.load(Ordering::Acquire) {
                exit_and_enter(&vgic, 0, &mut lrs);
                for intid in guest_takes_all(&mut lrs) {
                    let counter = if intid == SPI { SENDERS } else { intid as usize - 1 };
                    taken[counter].fetch_add(1, Ordering::AcqRel);
                }
            }
        });
        let senders: Vec<_> = (1..=SENDERS)
            .map(|sender| {
                let (vgic, taken) = (&vgic, &taken);
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        let before = taken[sender - 1].load(Ordering::Acquire);
                        vgic.send_sgi(sender, (sender as u64) << 24 | 0b1);
                        wait_for(&taken[sender - 1], before, &format!("SGI {sender}, round {round}"));
                    }
                })
            })
            .collect();
        let device = scope.spawn(|| {
            for round in 0..ROUNDS {
                let before = taken[SENDERS].load(Ordering::Acquire);
                vgic.set_pending(SPI, 0);
                wait_for(&taken[SENDERS], before, &format!("SPI, round {round}"));
            }
        });
        for sender in senders {
            sender.join().unwrap();
        }
        device.join().unwrap();
        done.store(true, Ordering::Release);
    });
    for (n, counter) in taken.iter().enumerate() {
        assert_eq!(counter.load(Ordering::Acquire), ROUNDS, "source {n}: each delivered exactly once");
    }
}

/// vCPU threads exit and take interrupts while other threads inject SPIs, send SGIs and write
/// distributor and redistributor registers at random. Nothing may deadlock, and afterwards
/// every list register record must agree with the interrupts' side of it.
#[test]
fn random_concurrent_activity_keeps_the_records_consistent() {
    const VCPUS: usize = 3;
    const OPERATIONS: usize = 5_000;
    let vgic = shared_vgic(VCPUS, &[]);
    vgic.gicd_write(0x100 + 4, 4, 0xFFFF_FFFF); // GICD_ISENABLER1: SPIs 32..63
    let done = AtomicBool::new(false);
    let mut final_lrs = [[0u64; NUM_LRS]; VCPUS];
    thread::scope(|scope| {
        let vcpus: Vec<_> = (0..VCPUS)
            .map(|vcpu| {
                let (vgic, done) = (&vgic, &done);
                scope.spawn(move || {
                    let mut lrs = [0u64; NUM_LRS];
                    while !done.load(Ordering::Acquire) {
                        exit_and_enter(vgic, vcpu, &mut lrs);
                        guest_takes_all(&mut lrs);
                    }
                    exit_and_enter(vgic, vcpu, &mut lrs);
                    lrs
                })
            })
            .collect();
        let injectors: Vec<_> = (0..2u64)
            .map(|seed| {
                let vgic = &vgic;
                scope.spawn(move || {
                    let mut state = 0x2545_F491_4F6C_DD1D_u64 ^ seed;
                    let mut next = move || {
                        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                        state >> 16
                    };
                    for _ in 0..OPERATIONS {
                        let vcpu = next() as usize % VCPUS;
                        let intid = next() as u32 % crate::gic::irq::INTID_END;
                        match next() % 6 {
                            0 => _ = vgic.set_pending(intid, vcpu),
                            1 => _ = vgic.set_level(intid, vcpu, next() % 2 == 0),
                            2 => _ = vgic.send_sgi(vcpu, next()),
                            3 => _ = vgic.gicd_write(0x6000 + 8 * u64::from(intid), 8, next() % 4),
                            4 => _ = vgic.gicd_write((0x100 + next() % 0x400) & !3, 4, next()),
                            _ => {
                                _ = vgic.gicr_write(
                                    (vcpu as u64 * 0x2_0000 + 0x1_0100 + next() % 0x300) & !3,
                                    4,
                                    next(),
                                )
                            }
                        }
                    }
                })
            })
            .collect();
        for injector in injectors {
            injector.join().unwrap();
        }
        done.store(true, Ordering::Release);
        for (vcpu, handle) in vcpus.into_iter().enumerate() {
            final_lrs[vcpu] = handle.join().unwrap();
        }
    });
    for (vcpu, lrs) in final_lrs.iter().enumerate() {
        for (index, &raw) in lrs.iter().enumerate() {
            let lr = ListRegister::decode(raw);
            match vgic.record(vcpu, index) {
                Some(intid) => {
                    assert_eq!(lr.vintid, intid);
                    let slot = vgic.irq(vcpu, intid).unwrap().lr.unwrap();
                    assert_eq!((slot.vcpu, slot.index, slot.state), (vcpu, index, lr.state));
                }
                None => assert_eq!(raw, 0),
            }
        }
    }
    for intid in SPI_BASE..crate::gic::irq::INTID_END {
        if let Some(slot) = vgic.irq(0, intid).unwrap().lr {
            assert_eq!(vgic.record(slot.vcpu, slot.index), Some(intid), "SPI {intid}'s slot");
        }
    }
}
