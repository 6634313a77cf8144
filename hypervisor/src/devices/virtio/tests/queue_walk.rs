//! The virtqueue walker on its own: chain shapes, hostile rings, the used ring.

use super::*;
use crate::devices::virtio::queue::*;
use crate::mm::addr::Ipa;
use crate::mm::guest_memory::OutsideGuestRam;

const SIZE: u16 = 8;

fn queue(ram: &Ram) -> Virtqueue {
    Virtqueue::new(&ram.mem, SIZE, SIZE, DESC, AVAIL, USED).unwrap()
}

/// Offers the chain at `head` as the next avail entry (index `idx`) and pops it.
fn pop(ram: &mut Ram, queue: &mut Virtqueue, idx: u16, head: u16) -> Result<Option<DescriptorChain>, QueueError> {
    ram.offer(SIZE, idx, head);
    let mem = ram.mem;
    queue.pop(&mem)
}

fn buffers(chain: &DescriptorChain) -> Vec<(u64, u32, bool)> {
    chain.buffers.iter().map(|b| (b.addr, b.len, b.writable)).collect()
}

#[test]
fn new_checks_size_alignment_and_placement() {
    let ram = Ram::new();
    let mem = &ram.mem;
    for size in [0, 3, 12] {
        assert_eq!(Virtqueue::new(mem, size, 16, DESC, AVAIL, USED), Err(QueueError::BadSize { size: size.into() }));
    }
    assert_eq!(Virtqueue::new(mem, 32, 16, DESC, AVAIL, USED), Err(QueueError::BadSize { size: 32 }), "above max");
    assert_eq!(Virtqueue::new(mem, 8, 8, DESC + 8, AVAIL, USED), Err(QueueError::Misaligned { addr: DESC + 8 }));
    assert_eq!(Virtqueue::new(mem, 8, 8, DESC, AVAIL + 1, USED), Err(QueueError::Misaligned { addr: AVAIL + 1 }));
    assert_eq!(Virtqueue::new(mem, 8, 8, DESC, AVAIL, USED + 2), Err(QueueError::Misaligned { addr: USED + 2 }));
    // The used ring of 8 entries needs 6 + 64 bytes; 64 bytes before the end is too little.
    let err = Virtqueue::new(mem, 8, 8, DESC, AVAIL, OUTSIDE - 64);
    assert!(matches!(err, Err(QueueError::RingOutsideRam(_))));
    assert_eq!(Virtqueue::new(mem, 8, 8, DESC, AVAIL, OUTSIDE - 72).map(|q| q.size()), Ok(8));
}

#[test]
fn empty_ring_pops_nothing() {
    let ram = Ram::new();
    assert_eq!(queue(&ram).pop(&ram.mem), Ok(None));
}

#[test]
fn chains_of_one_three_and_all_descriptors() {
    let mut ram = Ram::new();
    let mut q = queue(&ram);
    let head = ram.chain(DESC, SIZE, 2, &[readable(DATA, 10)]);
    let chain = pop(&mut ram, &mut q, 0, head).unwrap().unwrap();
    assert_eq!((chain.head, buffers(&chain)), (2, vec![(DATA, 10, false)]));

    // Wraps around the end of the table: indices 6, 7, 0.
    let three = [readable(DATA, 16), writable(DATA + 16, 512), writable(DATA + 528, 1)];
    let head = ram.chain(DESC, SIZE, 6, &three);
    let chain = pop(&mut ram, &mut q, 1, head).unwrap().unwrap();
    assert_eq!(buffers(&chain), vec![(DATA, 16, false), (DATA + 16, 512, true), (DATA + 528, 1, true)]);
    assert_eq!(chain.outside_ram, None);

    let all: Vec<Buf> = (0..u64::from(SIZE)).map(|i| writable(DATA + i, 1)).collect();
    let head = ram.chain(DESC, SIZE, 0, &all);
    assert_eq!(pop(&mut ram, &mut q, 2, head).unwrap().unwrap().buffers.len(), 8);
}

#[test]
fn loops_are_detected() {
    let mut ram = Ram::new();
    let mut q = queue(&ram);
    // A descriptor that names itself.
    ram.descriptor(DESC, 0, DATA, 1, VIRTQ_DESC_F_NEXT, 0);
    let err = pop(&mut ram, &mut q, 0, 0);
    assert_eq!(err, Err(QueueError::BadChain { head: 0, error: ChainError::Loop }));
    // 3 -> 4 -> 5 -> 3 ...
    for i in 3..6 {
        ram.descriptor(DESC, i, DATA, 1, VIRTQ_DESC_F_NEXT, if i == 5 { 3 } else { i + 1 });
    }
    let err = pop(&mut ram, &mut q, 1, 3);
    assert_eq!(err, Err(QueueError::BadChain { head: 3, error: ChainError::Loop }));
    // A loop inside an indirect table.
    ram.descriptor(INDIRECT, 0, DATA, 1, VIRTQ_DESC_F_NEXT, 1);
    ram.descriptor(INDIRECT, 1, DATA, 1, VIRTQ_DESC_F_NEXT, 0);
    ram.chain(DESC, SIZE, 0, &[indirect(INDIRECT, 2)]);
    let err = pop(&mut ram, &mut q, 2, 0);
    assert_eq!(err, Err(QueueError::BadChain { head: 0, error: ChainError::Loop }));
}

#[test]
fn out_of_range_indices_are_refused() {
    let mut ram = Ram::new();
    let mut q = queue(&ram);
    ram.descriptor(DESC, 0, DATA, 1, VIRTQ_DESC_F_NEXT, SIZE);
    let err = pop(&mut ram, &mut q, 0, 0);
    assert_eq!(err, Err(QueueError::BadChain { head: 0, error: ChainError::IndexOutOfRange { index: SIZE } }));
    assert_eq!(pop(&mut ram, &mut q, 1, SIZE), Err(QueueError::HeadOutOfRange { head: SIZE }));
    assert!(QueueError::HeadOutOfRange { head: SIZE }.is_fatal());
    // A `next` past the end of a 2-entry indirect table.
    ram.descriptor(INDIRECT, 0, DATA, 1, VIRTQ_DESC_F_NEXT, 2);
    ram.chain(DESC, SIZE, 0, &[indirect(INDIRECT, 2)]);
    let err = pop(&mut ram, &mut q, 2, 0);
    assert_eq!(err, Err(QueueError::BadChain { head: 0, error: ChainError::IndexOutOfRange { index: 2 } }));
}

#[test]
fn indirect_tables_are_flattened_once() {
    let mut ram = Ram::new();
    let mut q = queue(&ram);
    ram.chain(INDIRECT, 3, 0, &[readable(DATA, 16), writable(DATA + 16, 512), writable(DATA + 528, 1)]);
    let head = ram.chain(DESC, SIZE, 4, &[readable(DATA + 0x1000, 4), indirect(INDIRECT, 3)]);
    let chain = pop(&mut ram, &mut q, 0, head).unwrap().unwrap();
    assert_eq!(chain.head, 4);
    assert_eq!(
        buffers(&chain),
        vec![(DATA + 0x1000, 4, false), (DATA, 16, false), (DATA + 16, 512, true), (DATA + 528, 1, true)]
    );
}

#[test]
fn malformed_indirect_descriptors_are_refused() {
    let mut ram = Ram::new();
    let mut q = queue(&ram);
    let cases: [(Buf, ChainError); 4] = [
        (indirect(INDIRECT, 0), ChainError::BadIndirectLength { len: 0 }),
        (Buf { len: 24, ..indirect(INDIRECT, 0) }, ChainError::BadIndirectLength { len: 24 }),
        (
            indirect(OUTSIDE - 16, 2),
            ChainError::DescriptorOutsideRam(OutsideGuestRam { ipa: Ipa(OUTSIDE - 16), len: 32 }),
        ),
        (
            Buf { extra_flags: VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, ..indirect(INDIRECT, 1) },
            ChainError::IndirectWithNext,
        ),
    ];
    ram.chain(INDIRECT, 1, 0, &[readable(DATA, 1)]);
    for (idx, (descriptor, error)) in cases.into_iter().enumerate() {
        ram.chain(DESC, SIZE, 0, &[descriptor]);
        assert_eq!(pop(&mut ram, &mut q, idx as u16, 0), Err(QueueError::BadChain { head: 0, error }));
    }
    // An indirect table that points at another.
    ram.chain(INDIRECT + 0x100, 1, 0, &[indirect(INDIRECT, 1)]);
    ram.chain(DESC, SIZE, 0, &[indirect(INDIRECT + 0x100, 1)]);
    let err = pop(&mut ram, &mut q, 4, 0);
    assert_eq!(err, Err(QueueError::BadChain { head: 0, error: ChainError::NestedIndirect }));
}

#[test]
fn buffers_outside_ram_are_flagged_but_walked() {
    let mut ram = Ram::new();
    let mut q = queue(&ram);
    let head = ram.chain(DESC, SIZE, 0, &[readable(DATA, 16), writable(OUTSIDE - 4, 8), writable(DATA, 1)]);
    let chain = pop(&mut ram, &mut q, 0, head).unwrap().unwrap();
    assert_eq!(chain.buffers.len(), 3);
    assert_eq!(chain.outside_ram, Some(OutsideGuestRam { ipa: Ipa(OUTSIDE - 4), len: 8 }));
}

#[test]
fn a_runaway_avail_index_is_fatal() {
    let mut ram = Ram::new();
    let mut q = queue(&ram);
    ram.write(AVAIL + 2, &(SIZE + 1).to_le_bytes());
    let err = q.pop(&ram.mem).unwrap_err();
    assert_eq!(err, QueueError::AvailIndexJump { last_seen: 0, published: SIZE + 1 });
    assert!(err.is_fatal());
    assert!(!QueueError::BadChain { head: 0, error: ChainError::Loop }.is_fatal());
}

#[test]
fn used_entries_are_published_in_order_and_wrap() {
    let ram = Ram::new();
    let mut q = queue(&ram);
    for i in 0..u32::from(SIZE) + 3 {
        q.push_used(&ram.mem, (i % 8) as u16, 100 + i).unwrap();
    }
    assert_eq!(ram.used_idx(), SIZE + 3);
    assert_eq!(ram.used_entry(SIZE, 0), (0, 108), "overwritten by entry 8");
    assert_eq!(ram.used_entry(SIZE, 3), (3, 103));
    assert_eq!(ram.used_entry(SIZE, 10), (2, 110));
}

#[test]
fn interrupts_follow_the_no_interrupt_flag() {
    let mut ram = Ram::new();
    let q = queue(&ram);
    assert!(q.needs_interrupt(&ram.mem));
    ram.write(AVAIL, &VIRTQ_AVAIL_F_NO_INTERRUPT.to_le_bytes());
    assert!(!q.needs_interrupt(&ram.mem));
}

#[test]
fn split_separates_readable_from_writable() {
    let chain = |bufs: &[Buf]| DescriptorChain {
        head: 0,
        buffers: bufs.iter().map(|b| Buffer { addr: b.addr, len: b.len, writable: b.writable }).collect(),
        outside_ram: None,
    };
    let good = chain(&[readable(DATA, 1), readable(DATA, 2), writable(DATA, 3)]);
    let (r, w) = good.split().unwrap();
    assert_eq!((r.len(), w.len()), (2, 1));
    assert_eq!(chain(&[writable(DATA, 1)]).split().map(|(r, w)| (r.len(), w.len())), Some((0, 1)));
    assert_eq!(chain(&[writable(DATA, 1), readable(DATA, 1)]).split(), None);
}

#[test]
fn cursors_stream_across_buffers() {
    let mut ram = Ram::new();
    ram.write(DATA, b"abcdefgh");
    let pieces = [
        Buffer { addr: DATA, len: 3, writable: false },
        Buffer { addr: DATA + 100, len: 0, writable: false },
        Buffer { addr: DATA + 3, len: 5, writable: false },
    ];
    let mut cursor = BufferCursor::new(&pieces);
    cursor.truncate_end(1);
    assert_eq!(cursor.remaining(), 7);
    let mut out = [0u8; 4];
    assert_eq!(cursor.read(&ram.mem, &mut out), Ok(4));
    assert_eq!(&out, b"abcd");
    assert_eq!(cursor.read(&ram.mem, &mut out), Ok(3), "stops at the truncated end");
    assert_eq!(&out[..3], b"efg");
    assert_eq!(cursor.read(&ram.mem, &mut out), Ok(0));

    let mut cursor = BufferCursor::new(&pieces);
    assert_eq!(cursor.write(&ram.mem, b"12345678xx"), Ok(8));
    assert_eq!(ram.read(DATA, 8), b"12345678");
    let outside = [Buffer { addr: OUTSIDE, len: 4, writable: true }];
    assert!(BufferCursor::new(&outside).write(&ram.mem, b"zz").is_err());
}

#[test]
fn cursor_segments_cover_the_rest_of_the_stream_without_moving_it() {
    let mut ram = Ram::new();
    ram.write(DATA, b"abcdefgh");
    let pieces = [
        Buffer { addr: DATA, len: 3, writable: true },
        Buffer { addr: DATA + 100, len: 0, writable: true },
        Buffer { addr: DATA + 3, len: 5, writable: true },
    ];
    let mut cursor = BufferCursor::new(&pieces);
    let mut header = [0u8; 2];
    assert_eq!(cursor.read(&ram.mem, &mut header), Ok(2));
    cursor.truncate_end(1);
    let mut segments = Vec::new();
    assert_eq!(cursor.segments(&ram.mem, 2, &mut segments), Ok(true));
    // "c" from the first buffer, the empty one skipped, then "defg" (the last byte held back).
    let lengths: Vec<usize> = segments.iter().map(|s| s.len()).collect();
    assert_eq!(lengths, [1, 4]);
    let mut bytes = [0u8; 4];
    segments[1].copy_to(&mut bytes);
    assert_eq!(&bytes, b"defg");
    assert_eq!(cursor.remaining(), 5, "the cursor did not move");

    assert_eq!(cursor.segments(&ram.mem, 1, &mut segments), Ok(false), "more pieces than allowed");
    let outside = [Buffer { addr: OUTSIDE - 2, len: 4, writable: true }];
    assert!(BufferCursor::new(&outside).segments(&ram.mem, 4, &mut segments).is_err());
}
