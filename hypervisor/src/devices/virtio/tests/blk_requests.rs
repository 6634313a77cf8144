//! Block requests end to end: chains built in guest RAM, served through a queue notify.

use super::*;
use crate::devices::virtio::blk::*;
use crate::devices::virtio::queue::{ChainError, QueueError};
use crate::devices::virtio::VirtioError;

const SECTOR: u32 = SECTOR_SIZE as u32;

/// Bytes unlike the disk's pattern, for writes.
fn fresh_data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8 ^ 0xa5).collect()
}

/// Splits `total` bytes at `DATA` into buffers of the given lengths (the last takes the rest).
fn split_buffers(lengths: &[u32], total: u32, make: fn(u64, u32) -> Buf) -> Vec<Buf> {
    let mut buffers = Vec::new();
    let mut offset = 0;
    for &len in lengths {
        buffers.push(make(DATA + u64::from(offset), len));
        offset += len;
    }
    buffers.push(make(DATA + u64::from(offset), total - offset));
    buffers
}

#[test]
fn reads_sectors_into_guest_memory() {
    let mut guest = Guest::ready();
    assert_eq!(guest.read_sectors(3, 2), (VIRTIO_BLK_S_OK, 2 * SECTOR + 1));
    assert_eq!(guest.ram.read(DATA, 1024), &Guest::expected(3, 1024)[..]);
    assert_eq!(guest.dev.take_error(), None);
}

#[test]
fn written_sectors_read_back() {
    let mut guest = Guest::ready();
    let data = fresh_data(3 * 512);
    guest.ram.write(DATA, &data);
    let header = guest.header(VIRTIO_BLK_T_OUT, 10);
    let status = guest.status();
    assert_eq!(guest.submit(&[header, readable(DATA, 3 * SECTOR), status]), 1, "only the status is written");
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_OK);
    assert_eq!(&guest.disk()[10 * 512..13 * 512], &data[..]);
    assert_eq!(&guest.disk()[9 * 512..10 * 512], &Guest::expected(9, 512)[..], "neighbours untouched");

    guest.ram.write(DATA, &[0; 3 * 512]);
    assert_eq!(guest.read_sectors(10, 3), (VIRTIO_BLK_S_OK, 3 * SECTOR + 1));
    assert_eq!(guest.ram.read(DATA, 3 * 512), &data[..]);
}

#[test]
fn flush_reaches_the_backend() {
    let mut guest = Guest::ready();
    let header = guest.header(VIRTIO_BLK_T_FLUSH, 0);
    let status = guest.status();
    assert_eq!(guest.submit(&[header, status]), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_OK);
    assert_eq!(guest.dev.device().backend().flushes, 1);
}

#[test]
fn get_id_returns_the_backend_id() {
    let mut guest = Guest::ready();
    let header = guest.header(VIRTIO_BLK_T_GET_ID, 0);
    let status = guest.status();
    assert_eq!(guest.submit(&[header, writable(DATA, 20), status]), 21);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_OK);
    assert_eq!(guest.ram.read(DATA, 20), DISK_ID);
}

#[test]
fn unknown_request_types_are_unsupported() {
    let mut guest = Guest::ready();
    let header = guest.header(11, 0); // DISCARD, not offered
    let status = guest.status();
    assert_eq!(guest.submit(&[header, status]), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_UNSUPP);
    assert!(matches!(
        guest.dev.take_error(),
        Some(VirtioError::Block { error: RequestError::Unsupported { request_type: 11 }, .. })
    ));
}

#[test]
fn a_single_descriptor_chain_gets_an_error() {
    let mut guest = Guest::ready();
    // Writable only: a status byte but no header.
    guest.ram.write(DATA, &[0xff; 16]);
    assert_eq!(guest.submit(&[writable(DATA, 16)]), 1);
    assert_eq!(guest.ram.read(DATA + 15, 1), [VIRTIO_BLK_S_IOERR]);
    assert!(matches!(
        guest.dev.take_error(),
        Some(VirtioError::Block { error: RequestError::HeaderTooShort { len: 0 }, .. })
    ));
    // Readable only: a header but nowhere to put the status.
    let header = guest.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(guest.submit(&[header]), 0);
    assert!(matches!(guest.dev.take_error(), Some(VirtioError::Block { error: RequestError::NoStatus, .. })));
}

/// The ways data can move, as `VecDisk::max_segments` values: directly, through the bounce
/// buffer because the backend takes no segments, and through it because the request has more
/// buffers than the backend takes at once.
const DATA_PATHS: [usize; 3] = [SEG_MAX as usize, 0, 3];

/// A ready guest whose disk takes up to `max_segments` segments per transfer.
fn guest_with_path(max_segments: usize) -> Guest {
    let mut guest = Guest::ready();
    guest.disk_mut().max_segments = max_segments;
    guest
}

#[test]
fn data_may_be_split_across_many_descriptors_at_any_byte() {
    for path in DATA_PATHS {
        split_data_read_and_write(guest_with_path(path));
    }
}

fn split_data_read_and_write(mut guest: Guest) {
    // Uneven pieces, including empty ones: 14 data buffers for 4 sectors.
    let lengths = [100, 412, 0, 1, 511, 256, 3, 253, 7, 9, 300, 1, 50];
    let header = guest.header(VIRTIO_BLK_T_IN, 5);
    let status = guest.status();
    let mut chain = vec![header];
    chain.extend(split_buffers(&lengths, 4 * SECTOR, writable));
    chain.push(status);
    assert_eq!(chain.len(), 16, "fills the queue");
    assert_eq!(guest.submit(&chain), 4 * SECTOR + 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_OK);
    assert_eq!(guest.ram.read(DATA, 2048), &Guest::expected(5, 2048)[..]);

    let data = fresh_data(2048);
    guest.ram.write(DATA, &data);
    let header = guest.header(VIRTIO_BLK_T_OUT, 40);
    let status = guest.status();
    let mut chain = vec![header];
    chain.extend(split_buffers(&lengths, 4 * SECTOR, readable));
    chain.push(status);
    assert_eq!(guest.submit(&chain), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_OK);
    assert_eq!(&guest.disk()[40 * 512..44 * 512], &data[..]);
}

#[test]
fn header_may_be_split_and_share_descriptors_with_data_and_status() {
    for path in DATA_PATHS {
        split_header_and_status(guest_with_path(path));
    }
}

fn split_header_and_status(mut guest: Guest) {
    let data = fresh_data(512);
    // Header in two pieces (5 + 11 bytes), the second followed by the data in one buffer.
    guest.header_at(DATA - 16, VIRTIO_BLK_T_OUT, 7);
    guest.ram.write(DATA, &data);
    guest.ram.write(HEADER, guest.ram.read(DATA - 16, 5).to_vec().as_slice());
    let status = guest.status();
    let chain = [readable(HEADER, 5), readable(DATA - 11, 11 + 512), status];
    assert_eq!(guest.submit(&chain), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_OK);
    assert_eq!(&guest.disk()[7 * 512..8 * 512], &data[..]);

    // A read whose status byte is the last byte of the data buffer.
    let header = guest.header(VIRTIO_BLK_T_IN, 7);
    guest.ram.write(DATA, &[0; 513]);
    guest.ram.write(DATA + 512, &[0xff]);
    assert_eq!(guest.submit(&[header, writable(DATA, 513)]), 513);
    assert_eq!(guest.ram.read(DATA, 512), &data[..]);
    assert_eq!(guest.ram.read(DATA + 512, 1), [VIRTIO_BLK_S_OK]);
}

#[test]
fn indirect_tables_are_followed() {
    let mut guest = Guest::ready();
    let header = guest.header(VIRTIO_BLK_T_IN, 20);
    let status = guest.status();
    let table = [header, writable(DATA, 512), writable(DATA + 512, 512), status];
    guest.ram.chain(INDIRECT, table.len() as u16, 0, &table);
    assert_eq!(guest.submit(&[indirect(INDIRECT, 4)]), 2 * SECTOR + 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_OK);
    assert_eq!(guest.ram.read(DATA, 1024), &Guest::expected(20, 1024)[..]);

    // Direct descriptors may precede the indirect one.
    let header = guest.header(VIRTIO_BLK_T_IN, 30);
    let status = guest.status();
    guest.ram.chain(INDIRECT, 2, 0, &[writable(DATA, 512), status]);
    assert_eq!(guest.submit(&[header, indirect(INDIRECT, 2)]), SECTOR + 1);
    assert_eq!(guest.ram.read(DATA, 512), &Guest::expected(30, 512)[..]);
}

#[test]
fn transfers_past_the_end_of_the_disk_fail() {
    let mut guest = Guest::ready();
    assert_eq!(guest.read_sectors(DISK_SECTORS - 1, 1), (VIRTIO_BLK_S_OK, 513), "last sector");
    assert_eq!(guest.read_sectors(DISK_SECTORS - 1, 2), (VIRTIO_BLK_S_IOERR, 1), "straddles the end");
    assert_eq!(guest.read_sectors(DISK_SECTORS, 1), (VIRTIO_BLK_S_IOERR, 1));
    assert_eq!(guest.read_sectors(u64::MAX, 1), (VIRTIO_BLK_S_IOERR, 1), "wraps");
    assert!(matches!(
        guest.dev.take_error(),
        Some(VirtioError::Block { error: RequestError::BeyondCapacity { sector: u64::MAX, len: 512 }, .. })
    ));

    let header = guest.header(VIRTIO_BLK_T_OUT, DISK_SECTORS);
    let status = guest.status();
    assert_eq!(guest.submit(&[header, readable(DATA, 512), status]), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_IOERR);
}

#[test]
fn partial_sectors_fail() {
    let mut guest = Guest::ready();
    let header = guest.header(VIRTIO_BLK_T_IN, 0);
    let status = guest.status();
    assert_eq!(guest.submit(&[header, writable(DATA, 100), status]), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_IOERR);

    let header = guest.header(VIRTIO_BLK_T_OUT, 0);
    let status = guest.status();
    assert_eq!(guest.submit(&[header, readable(DATA, 513), status]), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_IOERR);
    assert!(matches!(
        guest.dev.take_error(),
        Some(VirtioError::Block { error: RequestError::PartialSector { len: 513 }, .. })
    ));
    assert_eq!(&guest.disk()[..512], &Guest::expected(0, 512)[..], "nothing written");
}

#[test]
fn buffers_outside_guest_ram_fail_without_side_effects() {
    // A whole bounce buffer of good data, then a buffer outside RAM: IOERR, and none of the
    // good data may reach the disk.
    let good = BOUNCE_SIZE as u32;
    let sectors = u64::from(good / SECTOR + 1);
    let mut guest = Guest::ready_with(sectors, QUEUE_SIZE);
    guest.ram.write(DATA, &fresh_data(BOUNCE_SIZE));
    let header = guest.header(VIRTIO_BLK_T_OUT, 0);
    let status = guest.status();
    let chain = [header, readable(DATA, good), readable(OUTSIDE, 512), status];
    assert_eq!(guest.submit(&chain), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_IOERR);
    assert_eq!(guest.disk(), &Guest::expected(0, guest.disk().len())[..]);
    assert!(matches!(
        guest.dev.take_error(),
        Some(VirtioError::Block { error: RequestError::BufferOutsideRam(_), .. })
    ));

    // A buffer running off the end of RAM, and one at an address that wraps.
    for bad in [writable(OUTSIDE - 256, 512), writable(u64::MAX - 100, 512)] {
        let header = guest.header(VIRTIO_BLK_T_IN, 0);
        let status = guest.status();
        assert_eq!(guest.submit(&[header, bad, status]), 1);
        assert_eq!(guest.status_byte(), VIRTIO_BLK_S_IOERR);
    }

    // Header outside RAM.
    let status = guest.status();
    assert_eq!(guest.submit(&[readable(OUTSIDE, 16), writable(DATA, 512), status]), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_IOERR);

    // Status outside RAM: nothing can be reported, the request completes empty.
    let header = guest.header(VIRTIO_BLK_T_IN, 0);
    assert_eq!(guest.submit(&[header, writable(DATA, 512), writable(OUTSIDE, 1)]), 0);
    assert!(matches!(guest.dev.take_error(), Some(VirtioError::Block { error: RequestError::NoStatus, .. })));
}

#[test]
fn malformed_layouts_fail() {
    let mut guest = Guest::ready();
    // Readable data after the writable status.
    let header = guest.header(VIRTIO_BLK_T_OUT, 0);
    let status = guest.status();
    assert_eq!(guest.submit(&[header, status, readable(DATA, 512), writable(DATA + 512, 1)]), 1);
    assert_eq!(guest.ram.read(DATA + 512, 1), [VIRTIO_BLK_S_IOERR]);
    // A header one byte short.
    guest.header(VIRTIO_BLK_T_IN, 0);
    let status = guest.status();
    assert_eq!(guest.submit(&[readable(HEADER, 15), status]), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_IOERR);
    // An empty last buffer cannot hold the status.
    let header = guest.header(VIRTIO_BLK_T_FLUSH, 0);
    assert_eq!(guest.submit(&[header, writable(STATUS_BYTE, 0)]), 0);
}

#[test]
fn a_descriptor_loop_is_completed_empty_and_the_queue_goes_on() {
    let mut guest = Guest::ready();
    let header = guest.header(VIRTIO_BLK_T_IN, 0);
    let status = guest.status();
    let head = guest.offer(&[header, writable(DATA, 512), status]);
    // Point the status descriptor back at the head instead of ending the chain.
    let status_index = head + 2;
    guest.ram.descriptor(DESC, status_index, STATUS_BYTE, 1, 2 | 1, head);
    guest.notify();
    assert_eq!(guest.ram.used_idx(), 1);
    assert_eq!(guest.ram.used_entry(QUEUE_SIZE, 0), (u32::from(head), 0));
    assert_eq!(
        guest.dev.take_error(),
        Some(VirtioError::Queue(QueueError::BadChain { head, error: ChainError::Loop }))
    );
    assert_eq!(guest.reg(STATUS) & STATUS_DEVICE_NEEDS_RESET, 0, "one bad chain is not fatal");
    assert_eq!(guest.read_sectors(1, 1), (VIRTIO_BLK_S_OK, 513));
}

#[test]
fn chains_longer_than_the_queue_are_refused() {
    let mut guest = Guest::ready();
    let header = guest.header(VIRTIO_BLK_T_IN, 0);
    let status = guest.status();
    // 17 buffers through an indirect table, on a 16-entry queue.
    let mut table = vec![header];
    table.extend((0..15).map(|i| writable(DATA + i * 512, 512)));
    table.push(status);
    guest.ram.chain(INDIRECT, table.len() as u16, 0, &table);
    assert_eq!(guest.submit(&[indirect(INDIRECT, table.len() as u32)]), 0);
    assert!(matches!(
        guest.dev.take_error(),
        Some(VirtioError::Queue(QueueError::BadChain { error: ChainError::TooLong, .. }))
    ));
}

#[test]
fn backend_failures_become_io_errors() {
    for path in DATA_PATHS {
        let mut guest = guest_with_path(path);
        guest.disk_mut().fail = true;
        assert_eq!(guest.read_sectors(0, 1), (VIRTIO_BLK_S_IOERR, 1));
        assert!(matches!(
            guest.dev.take_error(),
            Some(VirtioError::Block { error: RequestError::Backend(BackendError::Io), .. })
        ));
        let header = guest.header(VIRTIO_BLK_T_OUT, 0);
        let status = guest.status();
        assert_eq!(guest.submit(&[header, readable(DATA, 512), status]), 1);
        assert_eq!(guest.status_byte(), VIRTIO_BLK_S_IOERR);
    }
    let mut guest = Guest::ready();
    guest.disk_mut().fail = true;
    let header = guest.header(VIRTIO_BLK_T_FLUSH, 0);
    let status = guest.status();
    assert_eq!(guest.submit(&[header, status]), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_IOERR);
}

#[test]
fn several_requests_complete_on_one_notify() {
    let mut guest = Guest::ready();
    // Three reads into separate buffers with separate headers and status bytes.
    let mut heads = Vec::new();
    for i in 0..3u64 {
        guest.header_at(HEADER + 16 * i, VIRTIO_BLK_T_IN, i);
        let chain = [readable(HEADER + 16 * i, 16), writable(DATA + 512 * i, 512), writable(STATUS_BYTE + i, 1)];
        heads.push(guest.offer(&chain));
    }
    guest.notify();
    assert_eq!(guest.ram.used_idx(), 3);
    for (i, head) in heads.into_iter().enumerate() {
        assert_eq!(guest.ram.used_entry(QUEUE_SIZE, i as u16), (u32::from(head), 513));
        assert_eq!(guest.ram.read(STATUS_BYTE + i as u64, 1), [VIRTIO_BLK_S_OK]);
    }
    assert_eq!(guest.ram.read(DATA, 1536), &Guest::expected(0, 1536)[..]);
}

/// Offers a read or write of one sector at `sector` into or from its own buffer (slot `i`), and
/// returns its head; `notify` serves it with the others offered.
fn offer_one_sector(guest: &mut Guest, i: u64, request_type: u32, sector: u64) -> u16 {
    guest.header_at(HEADER + 16 * i, request_type, sector);
    let data =
        if request_type == VIRTIO_BLK_T_OUT { readable(DATA + 512 * i, 512) } else { writable(DATA + 512 * i, 512) };
    guest.offer(&[readable(HEADER + 16 * i, 16), data, writable(STATUS_BYTE + i, 1)])
}

#[test]
fn reads_and_writes_one_notify_finds_go_to_the_backend_as_one_batch() {
    let mut guest = Guest::ready();
    let data = fresh_data(512);
    guest.ram.write(DATA + 512, &data);
    offer_one_sector(&mut guest, 0, VIRTIO_BLK_T_IN, 4);
    offer_one_sector(&mut guest, 1, VIRTIO_BLK_T_OUT, 30);
    offer_one_sector(&mut guest, 2, VIRTIO_BLK_T_IN, 5);
    guest.notify();
    assert_eq!(guest.disk_mut().calls, [BackendCall::Batch(3)]);
    assert_eq!(guest.ram.used_idx(), 3);
    // Each keeps its own used length and status: 513 for the reads, 1 for the write.
    let used: Vec<u32> = (0..3).map(|i| guest.ram.used_entry(QUEUE_SIZE, i).1).collect();
    assert_eq!(used, [513, 1, 513]);
    assert_eq!(guest.ram.read(STATUS_BYTE, 3), [VIRTIO_BLK_S_OK; 3]);
    assert_eq!(guest.ram.read(DATA, 512), &Guest::expected(4, 512)[..]);
    assert_eq!(guest.ram.read(DATA + 1024, 512), &Guest::expected(5, 512)[..]);
    assert_eq!(&guest.disk()[30 * 512..31 * 512], &data[..]);
}

#[test]
fn a_flush_waits_for_the_writes_before_it_and_splits_the_batch() {
    let mut guest = Guest::ready();
    offer_one_sector(&mut guest, 0, VIRTIO_BLK_T_OUT, 1);
    offer_one_sector(&mut guest, 1, VIRTIO_BLK_T_OUT, 2);
    guest.header_at(HEADER + 16 * 2, VIRTIO_BLK_T_FLUSH, 0);
    guest.offer(&[readable(HEADER + 16 * 2, 16), writable(STATUS_BYTE + 2, 1)]);
    offer_one_sector(&mut guest, 3, VIRTIO_BLK_T_OUT, 3);
    guest.notify();
    assert_eq!(guest.disk_mut().calls, [BackendCall::Batch(2), BackendCall::Flush, BackendCall::Batch(1)]);
    assert_eq!(guest.ram.used_idx(), 4);
    assert_eq!(guest.ram.read(STATUS_BYTE, 4), [VIRTIO_BLK_S_OK; 4]);
}

#[test]
fn a_batch_failure_reaches_every_request_of_it() {
    let mut guest = Guest::ready();
    guest.disk_mut().fail = true;
    offer_one_sector(&mut guest, 0, VIRTIO_BLK_T_IN, 0);
    offer_one_sector(&mut guest, 1, VIRTIO_BLK_T_OUT, 1);
    guest.notify();
    assert_eq!(guest.disk_mut().calls, [BackendCall::Batch(2)]);
    // No data reached the guest: the used lengths count the status byte only.
    let used: Vec<u32> = (0..2).map(|i| guest.ram.used_entry(QUEUE_SIZE, i).1).collect();
    assert_eq!(used, [1, 1]);
    assert_eq!(guest.ram.read(STATUS_BYTE, 2), [VIRTIO_BLK_S_IOERR; 2]);
    assert!(matches!(
        guest.dev.take_error(),
        Some(VirtioError::Block { error: RequestError::Backend(BackendError::Io), .. })
    ));
}

/// A guest whose disk runs transfers in the background, `room` at a time.
fn guest_with_background(room: usize) -> Guest {
    let mut guest = Guest::ready();
    guest.disk_mut().background = Some(room);
    guest
}

#[test]
fn background_transfers_complete_when_polled() {
    let mut guest = guest_with_background(8);
    let data = fresh_data(512);
    guest.ram.write(DATA + 512, &data);
    let read = offer_one_sector(&mut guest, 0, VIRTIO_BLK_T_IN, 7);
    let write = offer_one_sector(&mut guest, 1, VIRTIO_BLK_T_OUT, 40);
    guest.notify();
    // Started, not completed: nothing in the used ring, no interrupt.
    assert_eq!(guest.disk_mut().calls, [BackendCall::Start(read), BackendCall::Start(write)]);
    assert_eq!(guest.ram.used_idx(), 0);
    assert!(!guest.dev.irq_asserted());
    guest.dev.poll_completions();
    assert_eq!(guest.ram.used_idx(), 2);
    assert!(guest.dev.irq_asserted());
    assert_eq!(guest.ram.used_entry(QUEUE_SIZE, 0), (u32::from(read), 513));
    assert_eq!(guest.ram.used_entry(QUEUE_SIZE, 1), (u32::from(write), 1));
    assert_eq!(guest.ram.read(STATUS_BYTE, 2), [VIRTIO_BLK_S_OK; 2]);
    assert_eq!(guest.ram.read(DATA, 512), &Guest::expected(7, 512)[..]);
    assert_eq!(&guest.disk()[40 * 512..41 * 512], &data[..]);
    // Nothing more to take.
    guest.dev.poll_completions();
    assert_eq!(guest.ram.used_idx(), 2);
}

#[test]
fn a_flush_waits_for_the_transfers_in_flight() {
    let mut guest = guest_with_background(8);
    let write = offer_one_sector(&mut guest, 0, VIRTIO_BLK_T_OUT, 1);
    guest.notify();
    assert_eq!(guest.ram.used_idx(), 0);
    guest.header_at(HEADER + 16, VIRTIO_BLK_T_FLUSH, 0);
    guest.offer(&[readable(HEADER + 16, 16), writable(STATUS_BYTE + 1, 1)]);
    guest.notify();
    // The write completed before the flush reached the backend, and both are returned.
    assert_eq!(guest.disk_mut().calls, [BackendCall::Start(write), BackendCall::Flush]);
    assert_eq!(guest.disk_mut().started.len(), 0);
    assert_eq!(guest.ram.used_idx(), 2);
    assert_eq!(guest.ram.used_entry(QUEUE_SIZE, 0), (u32::from(write), 1));
}

#[test]
fn a_full_backend_finishes_what_it_has_before_taking_more() {
    let mut guest = guest_with_background(1);
    let first = offer_one_sector(&mut guest, 0, VIRTIO_BLK_T_IN, 1);
    let second = offer_one_sector(&mut guest, 1, VIRTIO_BLK_T_IN, 2);
    guest.notify();
    assert_eq!(guest.disk_mut().calls, [BackendCall::Start(first), BackendCall::Start(second)]);
    // The first completed to make room; the second is in flight.
    assert_eq!(guest.ram.used_idx(), 1);
    assert_eq!(guest.ram.used_entry(QUEUE_SIZE, 0).0, u32::from(first));
    guest.dev.poll_completions();
    assert_eq!(guest.ram.used_idx(), 2);
    assert_eq!(guest.ram.read(DATA + 512, 512), &Guest::expected(2, 512)[..]);
}

#[test]
fn a_reset_waits_for_the_transfers_in_flight_and_drops_them() {
    let mut guest = guest_with_background(8);
    offer_one_sector(&mut guest, 0, VIRTIO_BLK_T_IN, 3);
    guest.notify();
    assert_eq!(guest.disk_mut().started.len(), 1);
    guest.set(STATUS, 0);
    // The data moved (the backend finished before the reset returned); the queue is gone, so
    // nothing was returned to the guest.
    assert_eq!(guest.disk_mut().started.len(), 0);
    assert_eq!(guest.ram.read(DATA, 512), &Guest::expected(3, 512)[..]);
    assert_eq!(guest.ram.used_idx(), 0);
    guest.dev.poll_completions();
    assert_eq!(guest.ram.used_idx(), 0);
}

#[test]
fn a_head_offered_again_while_in_flight_completes_first() {
    // A driver bug (or a hostile one): the same chain offered again before it was returned,
    // in a later notification or in the same one.
    for notify_between in [true, false] {
        let mut guest = guest_with_background(8);
        let head = offer_one_sector(&mut guest, 0, VIRTIO_BLK_T_IN, 5);
        if notify_between {
            guest.notify();
        }
        guest.ram.offer(QUEUE_SIZE, 1, head);
        guest.notify();
        // The first was submitted and finished before the second started.
        assert_eq!(guest.disk_mut().calls, [BackendCall::Start(head), BackendCall::Start(head)]);
        assert_eq!(guest.ram.used_idx(), 1);
        guest.dev.poll_completions();
        assert_eq!(guest.ram.used_idx(), 2);
    }
}

#[test]
fn ring_indices_wrap_around_a_small_queue() {
    let mut guest = Guest::ready_with(DISK_SECTORS, 4);
    for sector in 0..11 {
        assert_eq!(guest.read_sectors(sector, 1), (VIRTIO_BLK_S_OK, 513));
        assert_eq!(guest.ram.read(DATA, 512), &Guest::expected(sector, 512)[..]);
    }
    assert_eq!(guest.ram.used_idx(), 11);
}

#[test]
fn data_moves_directly_when_the_backend_takes_all_the_buffers() {
    let mut guest = Guest::ready();
    let (header, status) = (guest.header(VIRTIO_BLK_T_IN, 9), guest.status());
    let mut chain = vec![header];
    chain.extend(split_buffers(&[100, 700], 3 * SECTOR, writable));
    chain.push(status);
    assert_eq!(guest.submit(&chain), 3 * SECTOR + 1);
    assert_eq!(guest.ram.read(DATA, 1536), &Guest::expected(9, 1536)[..]);
    assert_eq!((guest.disk_mut().direct_transfers, guest.disk_mut().bounced_transfers), (1, 0));

    // Three buffers for a disk that takes two: the bounce buffer, in one chunk.
    guest.disk_mut().max_segments = 2;
    let data = fresh_data(1536);
    guest.ram.write(DATA, &data);
    let (header, status) = (guest.header(VIRTIO_BLK_T_OUT, 20), guest.status());
    let mut chain = vec![header];
    chain.extend(split_buffers(&[100, 700], 3 * SECTOR, readable));
    chain.push(status);
    assert_eq!(guest.submit(&chain), 1);
    assert_eq!(&guest.disk()[20 * 512..23 * 512], &data[..]);
    assert_eq!((guest.disk_mut().direct_transfers, guest.disk_mut().bounced_transfers), (1, 1));
}

#[test]
fn a_buffer_outside_ram_never_reaches_a_direct_backend() {
    let mut guest = Guest::ready();
    let (header, status) = (guest.header(VIRTIO_BLK_T_IN, 0), guest.status());
    assert_eq!(guest.submit(&[header, writable(DATA, 512), writable(OUTSIDE, 512), status]), 1);
    assert_eq!(guest.status_byte(), VIRTIO_BLK_S_IOERR);
    assert_eq!((guest.disk_mut().direct_transfers, guest.disk_mut().bounced_transfers), (0, 0));
}

#[test]
fn large_transfers_pass_through_the_bounce_buffer_in_chunks() {
    // 1.5 MiB through a backend without segments: two bounce-buffer chunks, the second partial.
    let sectors = 3 * BOUNCE_SIZE / 2 / 512;
    let mut guest = Guest::ready_with(2 * sectors as u64, QUEUE_SIZE);
    guest.disk_mut().max_segments = 0;
    let data = fresh_data(sectors * 512);
    guest.ram.write(DATA, &data);
    let header = guest.header(VIRTIO_BLK_T_OUT, 100);
    let status = guest.status();
    assert_eq!(guest.submit(&[header, readable(DATA, (sectors * 512) as u32), status]), 1);
    assert_eq!(&guest.disk()[100 * 512..(100 + sectors) * 512], &data[..]);
    guest.ram.write(DATA, &vec![0; sectors * 512]);
    assert_eq!(guest.read_sectors(100, sectors as u32), (VIRTIO_BLK_S_OK, sectors as u32 * SECTOR + 1));
    assert_eq!(guest.ram.read(DATA, sectors * 512), &data[..]);
    assert_eq!(guest.disk_mut().bounced_transfers, 4, "two chunks each way");
}
