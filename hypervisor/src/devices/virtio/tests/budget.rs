//! A notification serves a bounded amount of work (issue 13, hole 1): a guest that offers a
//! full queue of requests, or keeps its avail index moving, gets the rest served in later
//! passes instead of holding the pCPU (interrupts masked, device locked) without bound.

use super::*;
use crate::devices::virtio::blk::VIRTIO_BLK_T_IN;
use crate::devices::virtio::WorkBudget;

/// Offers `count` one-sector reads of sector 0, all into the same buffer (as a guest that
/// reuses one buffer would), without notifying.
fn offer_reads(guest: &mut Guest, count: u16, data_len: u32) {
    for _ in 0..count {
        let header = guest.header(VIRTIO_BLK_T_IN, 0);
        let status = guest.status();
        guest.offer(&[header, writable(DATA, data_len), status]);
    }
}

#[test]
fn one_notification_serves_one_pass_and_the_rest_waits() {
    // The rest fits in the next pass.
    let requests = 2 * WorkBudget::REQUESTS_PER_PASS as u16 - 1;
    let mut guest = Guest::ready_with(DISK_SECTORS, 128);
    offer_reads(&mut guest, requests, 512);
    guest.notify();
    assert_eq!(u32::from(guest.ram.used_idx()), WorkBudget::REQUESTS_PER_PASS, "one pass's worth");
    assert!(guest.dev.has_unserved());
    assert!(guest.dev.irq_asserted(), "what was served is signalled at once");
    guest.dev.serve_unserved();
    assert_eq!(guest.ram.used_idx(), requests, "the next pass serves the rest");
    assert!(!guest.dev.has_unserved(), "a pass that found the queue empty ends it");
    guest.dev.serve_unserved();
    assert_eq!(guest.ram.used_idx(), requests, "nothing is served twice");
}

#[test]
fn a_pass_stops_after_its_bytes() {
    // Three 512 KiB reads reusing one buffer: two fill a pass's bytes.
    let half = (WorkBudget::BYTES_PER_PASS / 2) as u32;
    let mut guest = Guest::ready_with(2048, QUEUE_SIZE);
    offer_reads(&mut guest, 3, half);
    guest.notify();
    assert_eq!(guest.ram.used_idx(), 2);
    guest.dev.serve_unserved();
    assert_eq!(guest.ram.used_idx(), 3);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_OK);
    assert_eq!(guest.ram.read(DATA, half as usize), &Guest::expected(0, half as usize)[..]);
}

#[test]
fn requests_offered_while_unserved_are_served_without_a_new_notification() {
    let mut guest = Guest::ready_with(DISK_SECTORS, 128);
    offer_reads(&mut guest, WorkBudget::REQUESTS_PER_PASS as u16 + 1, 512);
    guest.notify();
    // The driver keeps going, as Linux does when it sees the device busy.
    let more = WorkBudget::REQUESTS_PER_PASS as u16 - 1;
    offer_reads(&mut guest, more, 512);
    guest.dev.serve_unserved();
    assert_eq!(guest.ram.used_idx(), WorkBudget::REQUESTS_PER_PASS as u16 + 1 + more);
}

#[test]
fn a_reset_forgets_unserved_work() {
    let mut guest = Guest::ready_with(DISK_SECTORS, 128);
    offer_reads(&mut guest, WorkBudget::REQUESTS_PER_PASS as u16 + 1, 512);
    guest.notify();
    assert!(guest.dev.has_unserved());
    guest.set(STATUS, 0);
    assert!(!guest.dev.has_unserved());
    guest.dev.serve_unserved();
    assert_eq!(u32::from(guest.ram.used_idx()), WorkBudget::REQUESTS_PER_PASS, "nothing served after the reset");
}

#[test]
fn notifying_a_queue_that_does_not_exist_leaves_nothing_unserved() {
    let mut guest = Guest::ready();
    guest.set(QUEUE_NOTIFY, 7);
    guest.set(QUEUE_NOTIFY, u32::MAX);
    assert!(!guest.dev.has_unserved());
}
