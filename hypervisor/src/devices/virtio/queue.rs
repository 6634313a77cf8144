//! The split virtqueue (virtio 1.1, section 2.6) as the device sees it, walked over guest RAM.
//!
//! The driver owns three areas in guest memory: the descriptor table (buffers), the available
//! ring (chains it offers) and the used ring (chains the device has finished with). Everything in
//! them is guest-controlled, so every read goes through [`GuestMemory`]'s bounds checks and every
//! chain walk is bounded: a malformed ring yields an error, never a fault or a hang.
//!
//! `VIRTIO_F_EVENT_IDX` is not offered, so the only notification hint honoured is the avail
//! ring's `VIRTQ_AVAIL_F_NO_INTERRUPT` flag.

use alloc::vec::Vec;
use core::sync::atomic::{fence, Ordering};

use crate::mm::addr::Ipa;
use crate::mm::guest_memory::{GuestMemory, GuestSegment, OutsideGuestRam};

/// Descriptor flag: the chain continues at `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable (otherwise device-readable).
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Descriptor flag: the buffer holds a table of indirect descriptors.
pub const VIRTQ_DESC_F_INDIRECT: u16 = 4;
/// Avail ring flag: the driver does not want an interrupt when buffers are used.
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;

/// Bytes in one descriptor: `addr: u64, len: u32, flags: u16, next: u16`.
const DESC_SIZE: u64 = 16;
/// Offsets inside both rings: `flags: u16` then `idx: u16`, then the entries.
const RING_FLAGS: u64 = 0;
const RING_IDX: u64 = 2;
const RING_ENTRIES: u64 = 4;
/// Bytes per avail ring entry (a descriptor index) and per used ring entry (`id: u32, len: u32`).
const AVAIL_ENTRY_SIZE: u64 = 2;
const USED_ENTRY_SIZE: u64 = 8;
/// The event-index word after each ring; unused without `VIRTIO_F_EVENT_IDX` but part of the
/// area the driver allocates, so it is included when checking the rings lie in guest RAM.
const RING_TRAILER: u64 = 2;
/// Alignment the spec requires of each area (section 2.6).
const DESC_ALIGN: u64 = 16;
const AVAIL_ALIGN: u64 = 2;
const USED_ALIGN: u64 = 4;
/// The largest queue the split layout allows.
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// Why a queue could not be set up or used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The size is zero, not a power of two, or above the limit.
    BadSize { size: u32 },
    /// A ring address is not aligned as the spec requires.
    Misaligned { addr: u64 },
    /// A ring lies (partly) outside guest RAM.
    RingOutsideRam(OutsideGuestRam),
    /// The driver's avail index ran further ahead than the queue holds.
    AvailIndexJump { last_seen: u16, published: u16 },
    /// The avail ring named a descriptor past the end of the table.
    HeadOutOfRange { head: u16 },
    /// The chain starting at `head` is malformed; it was consumed and should be completed with
    /// used length 0. The queue itself is still usable.
    BadChain { head: u16, error: ChainError },
}

impl QueueError {
    /// Whether the queue can no longer be trusted (as opposed to one bad request).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, QueueError::BadChain { .. })
    }
}

/// What is wrong with one descriptor chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// A `next` (or indirect) index points past the end of its table.
    IndexOutOfRange { index: u16 },
    /// More descriptors than the table holds were followed: the chain loops.
    Loop,
    /// More buffers than the queue size.
    TooLong,
    /// A descriptor (or indirect table) lies outside guest RAM.
    DescriptorOutsideRam(OutsideGuestRam),
    /// An indirect descriptor inside an indirect table.
    NestedIndirect,
    /// An indirect descriptor that also has `NEXT` set (forbidden by the spec).
    IndirectWithNext,
    /// An indirect table whose length is zero or not a whole number of descriptors.
    BadIndirectLength { len: u32 },
}

/// One guest buffer of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Buffer {
    /// Guest physical address.
    pub addr: u64,
    pub len: u32,
    /// Device-writable (the device fills it) rather than device-readable.
    pub writable: bool,
}

/// A request taken from the avail ring: the head index to complete it with, and its buffers in
/// order (indirect tables already flattened).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorChain {
    pub head: u16,
    pub buffers: Vec<Buffer>,
    /// The first buffer that is not entirely inside guest RAM, if any. The walk still succeeds
    /// so that the device can report an error status in the buffers that are usable.
    pub outside_ram: Option<OutsideGuestRam>,
}

impl DescriptorChain {
    /// The bytes all its buffers hold (what serving it may move, at most).
    pub fn buffer_bytes(&self) -> u64 {
        self.buffers.iter().map(|b| u64::from(b.len)).sum()
    }

    /// Splits the buffers into the device-readable ones and the device-writable ones that follow
    /// them; `None` if a readable buffer comes after a writable one (the spec forbids it).
    pub fn split(&self) -> Option<(&[Buffer], &[Buffer])> {
        let first_writable = self.buffers.iter().position(|b| b.writable).unwrap_or(self.buffers.len());
        let (readable, writable) = self.buffers.split_at(first_writable);
        writable.iter().all(|b| b.writable).then_some((readable, writable))
    }
}

/// One descriptor as stored in guest memory.
struct Descriptor {
    addr: u64,
    len: u32,
    flags: u16,
    next: u16,
}

/// The table a chain walk is currently in: the queue's own, or an indirect one.
struct Table {
    addr: u64,
    entries: u32,
    indirect: bool,
}

/// A split virtqueue the driver has set up and enabled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Virtqueue {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
    /// The next avail ring entry to take.
    last_avail_idx: u16,
    /// The next used ring entry to fill (the device's copy of `used.idx`).
    next_used_idx: u16,
}

impl Virtqueue {
    /// A queue of `size` entries with its descriptor table at `desc`, avail ring at `avail` and
    /// used ring at `used` (guest physical addresses). Refused unless the size is a power of two
    /// no larger than `max_size` and all three areas are aligned and inside guest RAM.
    pub fn new(
        mem: &GuestMemory,
        size: u16,
        max_size: u16,
        desc: u64,
        avail: u64,
        used: u64,
    ) -> Result<Self, QueueError> {
        if size == 0 || !size.is_power_of_two() || size > max_size.min(MAX_QUEUE_SIZE) {
            return Err(QueueError::BadSize { size: size.into() });
        }
        let n = u64::from(size);
        let areas = [
            (desc, DESC_ALIGN, DESC_SIZE * n),
            (avail, AVAIL_ALIGN, RING_ENTRIES + AVAIL_ENTRY_SIZE * n + RING_TRAILER),
            (used, USED_ALIGN, RING_ENTRIES + USED_ENTRY_SIZE * n + RING_TRAILER),
        ];
        for (addr, align, len) in areas {
            if !addr.is_multiple_of(align) {
                return Err(QueueError::Misaligned { addr });
            }
            mem.host_address(Ipa(addr), len).map_err(QueueError::RingOutsideRam)?;
        }
        Ok(Self { size, desc, avail, used, last_avail_idx: 0, next_used_idx: 0 })
    }

    pub fn size(&self) -> u16 {
        self.size
    }

    /// Takes the next chain the driver made available, `Ok(None)` if there is none.
    ///
    /// On [`QueueError::BadChain`] the entry has been consumed and the caller should complete
    /// `head` with [`push_used`](Self::push_used) and length 0. Other errors mean the queue is
    /// broken.
    pub fn pop(&mut self, mem: &GuestMemory) -> Result<Option<DescriptorChain>, QueueError> {
        let published = read_u16(mem, self.avail + RING_IDX)?;
        if published == self.last_avail_idx {
            return Ok(None);
        }
        if published.wrapping_sub(self.last_avail_idx) > self.size {
            return Err(QueueError::AvailIndexJump { last_seen: self.last_avail_idx, published });
        }
        // Pairs with the driver's barrier between filling ring entries and bumping `idx`: the
        // entry and its descriptors must be read after the index that published them.
        fence(Ordering::Acquire);
        // The size is a power of two, so a free-running u16 index maps onto the ring this way.
        let slot = u64::from(self.last_avail_idx % self.size);
        let head = read_u16(mem, self.avail + RING_ENTRIES + AVAIL_ENTRY_SIZE * slot)?;
        self.last_avail_idx = self.last_avail_idx.wrapping_add(1);
        if head >= self.size {
            return Err(QueueError::HeadOutOfRange { head });
        }
        self.walk(mem, head).map(Some).map_err(|error| QueueError::BadChain { head, error })
    }

    /// Follows the chain starting at `head`, flattening at most one level of indirection.
    fn walk(&self, mem: &GuestMemory, head: u16) -> Result<DescriptorChain, ChainError> {
        let mut chain = DescriptorChain { head, buffers: Vec::new(), outside_ram: None };
        let mut table = Table { addr: self.desc, entries: u32::from(self.size), indirect: false };
        let mut index = head;
        // A chain that visits more descriptors than its table holds must revisit one: a loop.
        let mut visited: u32 = 0;
        loop {
            if u32::from(index) >= table.entries {
                return Err(ChainError::IndexOutOfRange { index });
            }
            visited += 1;
            if visited > table.entries {
                return Err(ChainError::Loop);
            }
            let desc = read_descriptor(mem, table.addr + DESC_SIZE * u64::from(index))?;
            if desc.flags & VIRTQ_DESC_F_INDIRECT != 0 {
                table = indirect_table(mem, &table, &desc)?;
                index = 0;
                visited = 0;
                continue;
            }
            if chain.buffers.len() >= usize::from(self.size) {
                return Err(ChainError::TooLong);
            }
            if chain.outside_ram.is_none() {
                chain.outside_ram = mem.host_address(Ipa(desc.addr), u64::from(desc.len)).err();
            }
            let writable = desc.flags & VIRTQ_DESC_F_WRITE != 0;
            chain.buffers.push(Buffer { addr: desc.addr, len: desc.len, writable });
            if desc.flags & VIRTQ_DESC_F_NEXT == 0 {
                return Ok(chain);
            }
            index = desc.next;
        }
    }

    /// Returns chain `head` to the driver, `len` being the bytes the device wrote into it.
    pub fn push_used(&mut self, mem: &GuestMemory, head: u16, len: u32) -> Result<(), QueueError> {
        let slot = u64::from(self.next_used_idx % self.size);
        let mut entry = [0u8; USED_ENTRY_SIZE as usize];
        entry[..4].copy_from_slice(&u32::from(head).to_le_bytes());
        entry[4..].copy_from_slice(&len.to_le_bytes());
        let entry_addr = self.used + RING_ENTRIES + USED_ENTRY_SIZE * slot;
        mem.write(Ipa(entry_addr), &entry).map_err(QueueError::RingOutsideRam)?;
        // The entry (and the data the device wrote into the buffers) must be visible before
        // the index that tells the driver to look at it.
        fence(Ordering::Release);
        self.next_used_idx = self.next_used_idx.wrapping_add(1);
        mem.write(Ipa(self.used + RING_IDX), &self.next_used_idx.to_le_bytes()).map_err(QueueError::RingOutsideRam)
    }

    /// Whether the driver wants an interrupt for the buffers just used. Call after
    /// [`push_used`](Self::push_used); if the flags cannot be read, interrupt anyway.
    pub fn needs_interrupt(&self, mem: &GuestMemory) -> bool {
        // The used index store must be ordered before the flags load, or a driver re-enabling
        // interrupts could miss this completion.
        fence(Ordering::SeqCst);
        read_u16(mem, self.avail + RING_FLAGS).map_or(true, |flags| flags & VIRTQ_AVAIL_F_NO_INTERRUPT == 0)
    }
}

/// Checks an indirect descriptor and returns the table it points to.
fn indirect_table(mem: &GuestMemory, current: &Table, desc: &Descriptor) -> Result<Table, ChainError> {
    if current.indirect {
        return Err(ChainError::NestedIndirect);
    }
    if desc.flags & VIRTQ_DESC_F_NEXT != 0 {
        return Err(ChainError::IndirectWithNext);
    }
    if desc.len == 0 || !u64::from(desc.len).is_multiple_of(DESC_SIZE) {
        return Err(ChainError::BadIndirectLength { len: desc.len });
    }
    mem.host_address(Ipa(desc.addr), u64::from(desc.len)).map_err(ChainError::DescriptorOutsideRam)?;
    // `next` fields are u16, so entries past 65536 can never be reached; the cap keeps the
    // count within the type used for indices.
    let entries = (u64::from(desc.len) / DESC_SIZE).min(1 << 16) as u32;
    Ok(Table { addr: desc.addr, entries, indirect: true })
}

fn read_descriptor(mem: &GuestMemory, addr: u64) -> Result<Descriptor, ChainError> {
    let mut raw = [0u8; DESC_SIZE as usize];
    mem.read(Ipa(addr), &mut raw).map_err(ChainError::DescriptorOutsideRam)?;
    let field = |range: core::ops::Range<usize>| {
        let mut bytes = [0u8; 8];
        bytes[..range.len()].copy_from_slice(&raw[range]);
        u64::from_le_bytes(bytes)
    };
    Ok(Descriptor {
        addr: field(0..8),
        len: field(8..12) as u32,
        flags: field(12..14) as u16,
        next: field(14..16) as u16,
    })
}

fn read_u16(mem: &GuestMemory, addr: u64) -> Result<u16, QueueError> {
    let mut bytes = [0u8; 2];
    mem.read(Ipa(addr), &mut bytes).map_err(QueueError::RingOutsideRam)?;
    Ok(u16::from_le_bytes(bytes))
}

/// A position in a run of buffers seen as one byte stream, for requests whose fields may be
/// split across descriptors at any byte.
#[derive(Clone)]
pub struct BufferCursor<'a> {
    buffers: &'a [Buffer],
    /// Index of the current buffer and the offset inside it.
    index: usize,
    offset: u32,
    /// Bytes left before the stream ends (may be less than the buffers hold).
    remaining: u64,
}

impl<'a> BufferCursor<'a> {
    /// A stream over all of `buffers`.
    pub fn new(buffers: &'a [Buffer]) -> Self {
        let total = buffers.iter().map(|b| u64::from(b.len)).sum();
        Self { buffers, index: 0, offset: 0, remaining: total }
    }

    /// Bytes left in the stream.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Ends the stream `len` bytes before its current end (e.g. to keep back a trailing status
    /// byte). Saturates at an empty stream.
    pub fn truncate_end(&mut self, len: u64) {
        self.remaining = self.remaining.saturating_sub(len);
    }

    /// Copies the next `out.len()` bytes of the stream into `out`; returns how many were copied
    /// (fewer only at the end of the stream).
    pub fn read(&mut self, mem: &GuestMemory, out: &mut [u8]) -> Result<usize, OutsideGuestRam> {
        let mut done = 0;
        while done < out.len() {
            let Some((addr, n)) = self.next_piece((out.len() - done) as u64) else {
                break;
            };
            mem.read(Ipa(addr), &mut out[done..done + n])?;
            done += n;
        }
        Ok(done)
    }

    /// Copies `data` into the next bytes of the stream; returns how many were copied (fewer only
    /// at the end of the stream).
    pub fn write(&mut self, mem: &GuestMemory, data: &[u8]) -> Result<usize, OutsideGuestRam> {
        let mut done = 0;
        while done < data.len() {
            let Some((addr, n)) = self.next_piece((data.len() - done) as u64) else {
                break;
            };
            mem.write(Ipa(addr), &data[done..done + n])?;
            done += n;
        }
        Ok(done)
    }

    /// The rest of the stream as segments of guest RAM, in order, into `out` (cleared first),
    /// without moving the cursor. `Ok(false)` (and `out` partly filled) if there are more than
    /// `max` of them.
    pub fn segments(
        &self,
        mem: &GuestMemory,
        max: usize,
        out: &mut Vec<GuestSegment>,
    ) -> Result<bool, OutsideGuestRam> {
        out.clear();
        let mut rest = self.clone();
        while let Some((addr, n)) = rest.next_piece(u64::MAX) {
            if out.len() == max {
                return Ok(false);
            }
            out.push(mem.segment(Ipa(addr), n as u64)?);
        }
        Ok(true)
    }

    /// The guest address and length of the next contiguous piece of at most `max` bytes, and
    /// advances past it.
    fn next_piece(&mut self, max: u64) -> Option<(u64, usize)> {
        loop {
            if self.remaining == 0 {
                return None;
            }
            let buffer = self.buffers.get(self.index)?;
            let left_in_buffer = u64::from(buffer.len - self.offset);
            if left_in_buffer == 0 {
                self.index += 1;
                self.offset = 0;
                continue;
            }
            let n = left_in_buffer.min(max).min(self.remaining);
            // Buffer addresses were bounds-checked when used; wrapping here just avoids an
            // overflow panic on a hostile address, which the access check then refuses.
            let addr = buffer.addr.wrapping_add(u64::from(self.offset));
            self.offset += n as u32;
            self.remaining -= n;
            return Some((addr, n as usize));
        }
    }
}
