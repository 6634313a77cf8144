//! Host tests for the virtio modules: a fake guest (a Vec as its RAM) acting as the driver,
//! building descriptor tables and rings by hand and talking to the device through its registers.

mod blk_requests;
mod budget;
mod queue_walk;
mod transport;

use alloc::vec;
use alloc::vec::Vec;

use super::blk::{
    transfer_each, BackendError, BlockBackend, SegmentTransfer, Started, TransferDirection, VirtioBlk, DEVICE_ID_LEN,
    SECTOR_SIZE, SEG_MAX, VIRTIO_BLK_S_OK,
};
use super::mmio::*;
use super::queue::{VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE};
use crate::devices::MmioDevice;
use crate::mm::addr::HostPhys;
use crate::mm::guest_memory::{GuestMemory, GuestSegment};
use crate::mm::MemRange;

/// The fake guest's RAM and where things live in it.
const RAM_BASE: u64 = 0x4000_0000;
/// Big enough for a whole bounce buffer of data plus the rings and headers.
const RAM_SIZE: u64 = 0x40_0000;
const DESC: u64 = RAM_BASE;
const AVAIL: u64 = RAM_BASE + 0x1000;
const USED: u64 = RAM_BASE + 0x2000;
/// Scratch for indirect tables.
const INDIRECT: u64 = RAM_BASE + 0x3000;
/// Request headers and status bytes.
const HEADER: u64 = RAM_BASE + 0x4000;
const STATUS_BYTE: u64 = RAM_BASE + 0x4800;
/// Data buffers.
const DATA: u64 = RAM_BASE + 0x1_0000;
/// Somewhere that is not guest RAM.
const OUTSIDE: u64 = RAM_BASE + RAM_SIZE;

/// Disk size used unless a test says otherwise.
const DISK_SECTORS: u64 = 64;
const DISK_ID: &[u8; DEVICE_ID_LEN] = b"hyp-test-disk-000001";

/// Queue size the tests' driver sets up.
const QUEUE_SIZE: u16 = 16;

/// Guest RAM backed by a Vec.
pub struct Ram {
    backing: Vec<u8>,
    mem: GuestMemory,
}

impl Ram {
    pub fn new() -> Self {
        let mut backing = vec![0u8; RAM_SIZE as usize];
        // SAFETY: the Vec's heap buffer is never reallocated (its length never changes) and
        // lives as long as `Ram`, which is what uses `mem`.
        let mem = unsafe { GuestMemory::new(MemRange::new(RAM_BASE, RAM_SIZE), HostPhys(backing.as_mut_ptr() as u64)) };
        Self { backing, mem }
    }

    pub fn write(&mut self, ipa: u64, bytes: &[u8]) {
        let at = (ipa - RAM_BASE) as usize;
        self.backing[at..at + bytes.len()].copy_from_slice(bytes);
    }

    pub fn read(&self, ipa: u64, len: usize) -> &[u8] {
        let at = (ipa - RAM_BASE) as usize;
        &self.backing[at..at + len]
    }

    pub fn u16_at(&self, ipa: u64) -> u16 {
        u16::from_le_bytes(self.read(ipa, 2).try_into().unwrap())
    }

    pub fn u32_at(&self, ipa: u64) -> u32 {
        u32::from_le_bytes(self.read(ipa, 4).try_into().unwrap())
    }

    /// Writes descriptor `index` of the table at `table`.
    pub fn descriptor(&mut self, table: u64, index: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let mut raw = [0u8; 16];
        raw[0..8].copy_from_slice(&addr.to_le_bytes());
        raw[8..12].copy_from_slice(&len.to_le_bytes());
        raw[12..14].copy_from_slice(&flags.to_le_bytes());
        raw[14..16].copy_from_slice(&next.to_le_bytes());
        self.write(table + 16 * u64::from(index), &raw);
    }

    /// Writes `buffers` as one chain into consecutive entries of the table at `table` from
    /// `first` (wrapping at `table_size`); returns the head index.
    pub fn chain(&mut self, table: u64, table_size: u16, first: u16, buffers: &[Buf]) -> u16 {
        for (i, buf) in buffers.iter().enumerate() {
            let index = (first + i as u16) % table_size;
            let last = i + 1 == buffers.len();
            let mut flags = if buf.writable { VIRTQ_DESC_F_WRITE } else { 0 };
            flags |= buf.extra_flags;
            if !last {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            self.descriptor(table, index, buf.addr, buf.len, flags, (index + 1) % table_size);
        }
        first % table_size
    }

    /// Puts `head` into avail ring entry `idx` and publishes it by setting avail.idx = idx + 1.
    pub fn offer(&mut self, queue_size: u16, idx: u16, head: u16) {
        let slot = u64::from(idx % queue_size);
        self.write(AVAIL + 4 + 2 * slot, &head.to_le_bytes());
        self.write(AVAIL + 2, &idx.wrapping_add(1).to_le_bytes());
    }

    /// Used ring entry `idx`: (id, len).
    pub fn used_entry(&self, queue_size: u16, idx: u16) -> (u32, u32) {
        let at = USED + 4 + 8 * u64::from(idx % queue_size);
        (self.u32_at(at), self.u32_at(at + 4))
    }

    pub fn used_idx(&self) -> u16 {
        self.u16_at(USED + 2)
    }
}

/// One buffer of a chain the test builds.
#[derive(Clone, Copy)]
pub struct Buf {
    addr: u64,
    len: u32,
    writable: bool,
    extra_flags: u16,
}

pub fn readable(addr: u64, len: u32) -> Buf {
    Buf { addr, len, writable: false, extra_flags: 0 }
}

pub fn writable(addr: u64, len: u32) -> Buf {
    Buf { addr, len, writable: true, extra_flags: 0 }
}

/// A descriptor pointing at an indirect table of `entries` descriptors at `addr`.
pub fn indirect(addr: u64, entries: u32) -> Buf {
    Buf { addr, len: entries * 16, writable: false, extra_flags: super::queue::VIRTQ_DESC_F_INDIRECT }
}

/// A disk in a Vec, counting flushes and transfers and able to fail on demand.
pub struct VecDisk {
    pub data: Vec<u8>,
    pub flushes: u32,
    pub fail: bool,
    /// What `max_segments` answers (0: every transfer goes through the bounce buffer).
    pub max_segments: usize,
    /// Calls to `read_segments` / `write_segments` (data moved without the bounce buffer).
    pub direct_transfers: u32,
    /// Calls to `read` / `write` (one bounce-buffer chunk each).
    pub bounced_transfers: u32,
    /// Batches and flushes, in the order the device asked for them.
    pub calls: Vec<BackendCall>,
    /// `Some(room)`: transfers run in the background, at most `room` at a time, each carried out
    /// when the device takes the finished ones (`take_completed`).
    pub background: Option<usize>,
    /// Background transfers started and not yet taken back: tag, direction, sector, segments.
    pub started: Vec<(u16, TransferDirection, u64, Vec<GuestSegment>)>,
    /// How many of `started` (the first ones) were submitted: only those can finish.
    pub submitted: usize,
}

/// What the device asked of the backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendCall {
    /// `transfer_batch` with this many transfers.
    Batch(usize),
    /// `start_transfer` with this tag (the request's head).
    Start(u16),
    Flush,
}

impl VecDisk {
    /// A disk whose every byte is a function of its position, so misplaced data shows. It takes
    /// as many segments per transfer as the real backend does with QEMU's default queue.
    pub fn patterned(sectors: u64) -> Self {
        let data = (0..sectors * SECTOR_SIZE).map(pattern).collect();
        Self {
            data,
            flushes: 0,
            fail: false,
            max_segments: SEG_MAX as usize,
            direct_transfers: 0,
            bounced_transfers: 0,
            calls: Vec::new(),
            background: None,
            started: Vec::new(),
            submitted: 0,
        }
    }

    fn range(&self, sector: u64, len: usize) -> Result<core::ops::Range<usize>, BackendError> {
        let start = (sector * SECTOR_SIZE) as usize;
        let end = start + len;
        if self.fail {
            Err(BackendError::Io)
        } else if end > self.data.len() {
            Err(BackendError::OutOfRange)
        } else {
            Ok(start..end)
        }
    }
}

impl VecDisk {
    /// Counts a direct transfer and pairs each of `segments` with the disk bytes it covers,
    /// in order from `sector`.
    fn segment_ranges(
        &mut self,
        sector: u64,
        segments: &[GuestSegment],
    ) -> Result<Vec<(core::ops::Range<usize>, GuestSegment)>, BackendError> {
        self.direct_transfers += 1;
        assert!(segments.len() <= self.max_segments, "more segments than max_segments");
        let total = segments.iter().map(GuestSegment::len).sum();
        let mut at = self.range(sector, total)?.start;
        Ok(segments
            .iter()
            .map(|segment| {
                let range = at..at + segment.len();
                at = range.end;
                (range, *segment)
            })
            .collect())
    }
}

/// The initial content of disk byte `offset`.
pub fn pattern(offset: u64) -> u8 {
    (offset ^ ((offset / SECTOR_SIZE) * 13)) as u8
}

impl BlockBackend for VecDisk {
    fn capacity_sectors(&self) -> u64 {
        self.data.len() as u64 / SECTOR_SIZE
    }

    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BackendError> {
        self.bounced_transfers += 1;
        let range = self.range(sector, buf.len())?;
        buf.copy_from_slice(&self.data[range]);
        Ok(())
    }

    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BackendError> {
        self.bounced_transfers += 1;
        let range = self.range(sector, buf.len())?;
        self.data[range].copy_from_slice(buf);
        Ok(())
    }

    fn max_segments(&self) -> usize {
        self.max_segments
    }

    fn read_segments(&mut self, sector: u64, segments: &[GuestSegment]) -> Result<(), BackendError> {
        for (range, segment) in self.segment_ranges(sector, segments)? {
            segment.fill_from(&self.data[range]);
        }
        Ok(())
    }

    fn write_segments(&mut self, sector: u64, segments: &[GuestSegment]) -> Result<(), BackendError> {
        for (range, segment) in self.segment_ranges(sector, segments)? {
            segment.copy_to(&mut self.data[range]);
        }
        Ok(())
    }

    fn transfer_batch(&mut self, transfers: &[SegmentTransfer<'_>], results: &mut [Result<(), BackendError>]) {
        self.calls.push(BackendCall::Batch(transfers.len()));
        transfer_each(self, transfers, results);
    }

    fn start_transfer(&mut self, tag: u16, transfer: &SegmentTransfer<'_>) -> Started {
        match self.background {
            None => Started::OnTheSpotOnly,
            Some(room) if self.started.len() >= room => Started::Full,
            Some(_) => {
                self.calls.push(BackendCall::Start(tag));
                self.started.push((tag, transfer.direction, transfer.sector, transfer.segments.to_vec()));
                Started::InBackground
            }
        }
    }

    fn submit_started(&mut self) {
        self.submitted = self.started.len();
    }

    fn take_completed(&mut self, done: &mut Vec<(u16, Result<(), BackendError>)>) {
        // A device waiting for transfers it never submitted would wait forever.
        assert!(self.submitted > 0 || self.started.is_empty(), "waiting for transfers never submitted");
        let submitted = core::mem::take(&mut self.submitted);
        for (tag, direction, sector, segments) in self.started.drain(..submitted).collect::<Vec<_>>() {
            let transfer = SegmentTransfer { direction, sector, segments: &segments };
            let mut result = [Ok(())];
            transfer_each(self, &[transfer], &mut result);
            done.push((tag, result[0]));
        }
    }

    fn transfers_in_flight(&self) -> usize {
        self.started.len()
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        self.calls.push(BackendCall::Flush);
        if self.fail {
            return Err(BackendError::Io);
        }
        self.flushes += 1;
        Ok(())
    }

    fn device_id(&self) -> [u8; DEVICE_ID_LEN] {
        *DISK_ID
    }
}

/// A guest with one virtio-blk device, acting as its driver.
pub struct Guest {
    pub dev: VirtioMmio<VirtioBlk<VecDisk>>,
    pub ram: Ram,
    queue_size: u16,
    /// Next free descriptor and next avail ring entry.
    next_desc: u16,
    avail_idx: u16,
}

impl Guest {
    /// A guest whose device has not been initialised yet.
    pub fn new(sectors: u64) -> Self {
        let ram = Ram::new();
        let dev = VirtioMmio::new(VirtioBlk::new(VecDisk::patterned(sectors)), ram.mem);
        Self { dev, ram, queue_size: QUEUE_SIZE, next_desc: 0, avail_idx: 0 }
    }

    /// A guest whose driver has brought the device up with a queue of `queue_size`.
    pub fn ready_with(sectors: u64, queue_size: u16) -> Self {
        let mut guest = Self::new(sectors);
        guest.init(queue_size);
        guest
    }

    pub fn ready() -> Self {
        Self::ready_with(DISK_SECTORS, QUEUE_SIZE)
    }

    pub fn reg(&mut self, offset: u64) -> u32 {
        self.dev.read(offset, 4) as u32
    }

    pub fn set(&mut self, offset: u64, value: u32) {
        self.dev.write(offset, 4, u64::from(value));
    }

    /// The driver initialisation sequence of virtio 1.1 section 3.1.1, asserting that the
    /// device accepts each step.
    pub fn init(&mut self, queue_size: u16) {
        self.set(STATUS, 0);
        self.set(STATUS, STATUS_ACKNOWLEDGE);
        self.set(STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
        for sel in 0..2 {
            self.set(DEVICE_FEATURES_SEL, sel);
            let offered = self.reg(DEVICE_FEATURES);
            self.set(DRIVER_FEATURES_SEL, sel);
            self.set(DRIVER_FEATURES, offered);
        }
        self.set(STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
        assert_ne!(self.reg(STATUS) & STATUS_FEATURES_OK, 0, "features refused");
        self.setup_queue(queue_size);
        assert_eq!(self.reg(QUEUE_READY), 1, "queue refused");
        self.set(STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK);
        self.queue_size = queue_size;
        self.next_desc = 0;
        self.avail_idx = 0;
    }

    /// Programs queue 0 at the standard addresses and asks for it to be enabled.
    pub fn setup_queue(&mut self, queue_size: u16) {
        self.set(QUEUE_SEL, 0);
        assert!(self.reg(QUEUE_NUM_MAX) >= u32::from(queue_size));
        self.set(QUEUE_NUM, u32::from(queue_size));
        for (low, high, addr) in [
            (QUEUE_DESC_LOW, QUEUE_DESC_HIGH, DESC),
            (QUEUE_DRIVER_LOW, QUEUE_DRIVER_HIGH, AVAIL),
            (QUEUE_DEVICE_LOW, QUEUE_DEVICE_HIGH, USED),
        ] {
            self.set(low, addr as u32);
            self.set(high, (addr >> 32) as u32);
        }
        self.set(QUEUE_READY, 1);
    }

    /// Writes `buffers` as a chain in the queue's table and offers it, without notifying.
    pub fn offer(&mut self, buffers: &[Buf]) -> u16 {
        let head = self.ram.chain(DESC, self.queue_size, self.next_desc, buffers);
        self.next_desc = (self.next_desc + buffers.len() as u16) % self.queue_size;
        self.ram.offer(self.queue_size, self.avail_idx, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        head
    }

    pub fn notify(&mut self) {
        self.set(QUEUE_NOTIFY, 0);
    }

    /// Offers one chain, notifies, and returns its used length, checking it completed.
    pub fn submit(&mut self, buffers: &[Buf]) -> u32 {
        let head = self.offer(buffers);
        self.notify();
        assert_eq!(self.ram.used_idx(), self.avail_idx, "request not completed");
        let (id, len) = self.ram.used_entry(self.queue_size, self.avail_idx.wrapping_sub(1));
        assert_eq!(id, u32::from(head));
        len
    }

    /// Writes a request header for `request_type` at `sector` to `addr`.
    pub fn header_at(&mut self, addr: u64, request_type: u32, sector: u64) {
        let mut raw = [0u8; 16];
        raw[0..4].copy_from_slice(&request_type.to_le_bytes());
        raw[8..16].copy_from_slice(&sector.to_le_bytes());
        self.ram.write(addr, &raw);
    }

    /// A header at the standard place, as a buffer.
    pub fn header(&mut self, request_type: u32, sector: u64) -> Buf {
        self.header_at(HEADER, request_type, sector);
        readable(HEADER, 16)
    }

    /// The standard status buffer, poisoned so a missing write shows.
    pub fn status(&mut self) -> Buf {
        self.ram.write(STATUS_BYTE, &[0xff]);
        writable(STATUS_BYTE, 1)
    }

    pub fn status_byte(&self) -> u8 {
        self.ram.read(STATUS_BYTE, 1)[0]
    }

    pub fn disk(&self) -> &[u8] {
        &self.dev.device().backend().data
    }

    pub fn disk_mut(&mut self) -> &mut VecDisk {
        self.dev.device_mut().backend_mut()
    }

    /// The expected content of `len` bytes of the untouched disk from `sector`.
    pub fn expected(sector: u64, len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| pattern(sector * SECTOR_SIZE + i)).collect()
    }

    /// Reads `sectors` from `sector` with one data buffer; returns (status, used len).
    pub fn read_sectors(&mut self, sector: u64, sectors: u32) -> (u8, u32) {
        let header = self.header(super::blk::VIRTIO_BLK_T_IN, sector);
        let status = self.status();
        let len = self.submit(&[header, writable(DATA, sectors * SECTOR_SIZE as u32), status]);
        (self.status_byte(), len)
    }
}

#[test]
fn harness_reads_sector_zero() {
    let mut guest = Guest::ready();
    assert_eq!(guest.read_sectors(0, 1), (VIRTIO_BLK_S_OK, 513));
    assert_eq!(guest.ram.read(DATA, 512), &Guest::expected(0, 512)[..]);
}
