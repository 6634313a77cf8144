//! The disk check: after a device reset, a clean virtio-blk driver negotiates VERSION_1, sets
//! up queue 0 (8 entries) in a page of the fuzzer's own .bss, and asks for the device ID
//! (GET_ID) and sector 0 (IN). Each must complete (the used index moves) with status OK.
//! Then, with a queue of the largest size, sector 0 once more in as many pieces as a chain can
//! have: more data buffers than the host device takes in one request, which makes the
//! hypervisor move the data through its bounce buffer instead of handing the buffers over.

use crate::arch;
use crate::dma_area::DmaArea;
use crate::ops::{self, checked_read32, checked_write32};

/// The queue: size, and where each part lives in `AREA`.
const QUEUE_SIZE: u32 = 8;
const DESC_AT: usize = 0x000;
const AVAIL_AT: usize = 0x200;
const USED_AT: usize = 0x400;
const HEADER_AT: usize = 0x800;
const ID_AT: usize = 0x900;
const SECTOR_AT: usize = 0xa00;
const STATUS_AT: usize = 0xe00;
const AREA_SIZE: usize = 0x1000;
/// Ring offsets and descriptor layout (virtio 1.1, 2.6).
pub const RING_IDX: usize = 2;
pub const RING_ENTRIES: usize = 4;
pub const USED_ENTRY: usize = 8;
pub const DESC_SIZE: usize = 16;
pub const F_NEXT: u16 = 1;
pub const F_WRITE: u16 = 2;
/// virtio-blk: request types, header and ID sizes, the OK status, a sector.
pub const T_IN: u32 = 0;
const T_GET_ID: u32 = 8;
pub const HEADER_LEN: u32 = 16;
const ID_LEN: u32 = 20;
pub const SECTOR_LEN: u32 = 512;
pub const S_OK: u8 = 0;
pub const STATUS_UNWRITTEN: u8 = 0xff;
/// How long a request may take.
const REQUEST_US: u64 = 200_000;

/// The queue's memory: only this check and the device touch it.
static AREA: DmaArea<AREA_SIZE> = DmaArea::new();

/// A virtio-mmio transport at this address, reached with fault-checked accesses.
pub struct Device(pub u64);

/// Where a driver put queue 0 (guest physical addresses; the fuzzer runs identity-mapped).
pub struct QueueLayout {
    pub size: u32,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
}

impl Device {
    pub fn read(&self, offset: u64) -> Result<u32, &'static str> {
        checked_read32(self.0 + offset).ok_or("a register read faulted")
    }

    pub fn write(&self, offset: u64, value: u32) -> Result<(), &'static str> {
        checked_write32(self.0 + offset, value).ok_or("a register write faulted")
    }

    fn write_pair(&self, offset: u64, value: u64) -> Result<(), &'static str> {
        self.write(offset, value as u32)?;
        self.write(offset + 4, (value >> 32) as u32)
    }
}

/// Resets the device, negotiates VERSION_1 and enables queue 0 at `queue` (zeroed by the
/// caller), then sets DRIVER_OK.
pub fn start(dev: &Device, queue: &QueueLayout) -> Result<(), &'static str> {
    dev.write(ops::STATUS, 0)?;
    if dev.read(ops::STATUS)? != 0 {
        return Err("Status does not read 0 after a reset");
    }
    dev.write(ops::STATUS, ops::STATUS_ACKNOWLEDGE)?;
    dev.write(ops::STATUS, ops::STATUS_ACKNOWLEDGE | ops::STATUS_DRIVER)?;
    dev.write(ops::DRIVER_FEATURES_SEL, 1)?;
    dev.write(ops::DRIVER_FEATURES, ops::FEATURE_VERSION_1_HIGH)?;
    dev.write(ops::DRIVER_FEATURES_SEL, 0)?;
    dev.write(ops::DRIVER_FEATURES, 0)?;
    let features_ok = ops::STATUS_ACKNOWLEDGE | ops::STATUS_DRIVER | ops::STATUS_FEATURES_OK;
    dev.write(ops::STATUS, features_ok)?;
    if dev.read(ops::STATUS)? & ops::STATUS_FEATURES_OK == 0 {
        return Err("FEATURES_OK refused for VERSION_1");
    }
    dev.write(ops::QUEUE_SEL, 0)?;
    dev.write(ops::QUEUE_NUM, queue.size)?;
    dev.write_pair(ops::QUEUE_DESC, queue.desc)?;
    dev.write_pair(ops::QUEUE_DRIVER, queue.avail)?;
    dev.write_pair(ops::QUEUE_DEVICE, queue.used)?;
    dev.write(ops::QUEUE_READY, 1)?;
    if dev.read(ops::QUEUE_READY)? != 1 {
        return Err("QueueReady does not read 1");
    }
    dev.write(ops::STATUS, features_ok | ops::STATUS_DRIVER_OK)
}

fn descriptor(index: usize, address: u64, len: u32, flags: u16, next: u16) {
    let at = DESC_AT + index * DESC_SIZE;
    AREA.put(at, address);
    AREA.put(at + 8, len);
    AREA.put(at + 12, flags);
    AREA.put(at + 14, next);
}

/// One request of `kind` into a writable buffer at `buffer_at` of `len` bytes; `seq` is the
/// request's number (0, 1, ...). Returns the used length.
fn request(dev: &Device, seq: u16, kind: u32, buffer_at: usize, len: u32) -> Result<u32, &'static str> {
    AREA.put(HEADER_AT, kind);
    AREA.put(HEADER_AT + 4, 0u32);
    AREA.put(HEADER_AT + 8, 0u64); // sector 0
    AREA.put(STATUS_AT, STATUS_UNWRITTEN);
    descriptor(0, AREA.address() + HEADER_AT as u64, HEADER_LEN, F_NEXT, 1);
    descriptor(1, AREA.address() + buffer_at as u64, len, F_WRITE | F_NEXT, 2);
    descriptor(2, AREA.address() + STATUS_AT as u64, 1, F_WRITE, 0);
    AREA.put(AVAIL_AT + RING_ENTRIES + 2 * usize::from(seq % QUEUE_SIZE as u16), 0u16);
    arch::dsb_sy();
    AREA.put(AVAIL_AT + RING_IDX, seq + 1);
    arch::dsb_sy();
    dev.write(ops::QUEUE_NOTIFY, 0)?;
    let deadline = arch::now() + arch::us_to_ticks(REQUEST_US);
    while AREA.get::<u16>(USED_AT + RING_IDX) != seq + 1 {
        if arch::now() > deadline {
            return Err("the request was not completed (used index did not move)");
        }
        core::hint::spin_loop();
    }
    let entry = USED_AT + RING_ENTRIES + USED_ENTRY * usize::from(seq % QUEUE_SIZE as u16);
    if AREA.get::<u32>(entry) != 0 {
        return Err("the used ring names another head");
    }
    match AREA.get::<u8>(STATUS_AT) {
        S_OK => Ok(AREA.get::<u32>(entry + 4)),
        STATUS_UNWRITTEN => Err("no status byte written"),
        _ => Err("the request failed (status not OK)"),
    }
}

/// The split read's queue: the largest size, and where each part lives in `SPLIT_AREA`.
const SPLIT_QUEUE_SIZE: u32 = 256;
const SPLIT_DESC_AT: usize = 0x0000;
const SPLIT_AVAIL_AT: usize = 0x1000;
const SPLIT_USED_AT: usize = 0x1400;
const SPLIT_HEADER_AT: usize = 0x2000;
const SPLIT_DATA_AT: usize = 0x2100;
const SPLIT_AREA_SIZE: usize = 0x3000;
/// The split read's data buffers: all but the last hold `SPLIT_PIECE` bytes; the last holds
/// the rest of the sector and then the status byte. With the header that fills the queue.
const SPLIT_BUFFERS: usize = SPLIT_QUEUE_SIZE as usize - 1;
const SPLIT_PIECE: u32 = 2;
const SPLIT_LAST: u32 = SECTOR_LEN - SPLIT_PIECE * (SPLIT_BUFFERS as u32 - 1);

static SPLIT_AREA: DmaArea<SPLIT_AREA_SIZE> = DmaArea::new();

fn split_descriptor(index: usize, address: u64, len: u32, flags: u16) {
    let at = SPLIT_DESC_AT + index * DESC_SIZE;
    SPLIT_AREA.put(at, address);
    SPLIT_AREA.put(at + 8, len);
    SPLIT_AREA.put(at + 12, flags);
    SPLIT_AREA.put(at + 14, (index + 1) as u16);
}

/// Reads sector 0 in `SPLIT_BUFFERS` pieces (the device was reset and started again with the
/// largest queue) and checks it against `expected`.
fn split_read(dev: &Device, expected: &[u8]) -> Result<(), &'static str> {
    SPLIT_AREA.clear();
    let base = SPLIT_AREA.address();
    start(
        dev,
        &QueueLayout {
            size: SPLIT_QUEUE_SIZE,
            desc: base + SPLIT_DESC_AT as u64,
            avail: base + SPLIT_AVAIL_AT as u64,
            used: base + SPLIT_USED_AT as u64,
        },
    )?;
    SPLIT_AREA.put(SPLIT_HEADER_AT, T_IN);
    split_descriptor(0, base + SPLIT_HEADER_AT as u64, HEADER_LEN, F_NEXT);
    for piece in 0..SPLIT_BUFFERS {
        let address = base + (SPLIT_DATA_AT + piece * SPLIT_PIECE as usize) as u64;
        let last = piece + 1 == SPLIT_BUFFERS;
        let (len, flags) = if last { (SPLIT_LAST + 1, F_WRITE) } else { (SPLIT_PIECE, F_WRITE | F_NEXT) };
        split_descriptor(piece + 1, address, len, flags);
    }
    let status_at = SPLIT_DATA_AT + SECTOR_LEN as usize;
    SPLIT_AREA.put(status_at, STATUS_UNWRITTEN);
    arch::dsb_sy();
    SPLIT_AREA.put(SPLIT_AVAIL_AT + RING_IDX, 1u16);
    arch::dsb_sy();
    dev.write(ops::QUEUE_NOTIFY, 0)?;
    let deadline = arch::now() + arch::us_to_ticks(REQUEST_US);
    while SPLIT_AREA.get::<u16>(SPLIT_USED_AT + RING_IDX) != 1 {
        if arch::now() > deadline {
            return Err("the split read was not completed (used index did not move)");
        }
        core::hint::spin_loop();
    }
    match SPLIT_AREA.get::<u8>(status_at) {
        S_OK => {}
        STATUS_UNWRITTEN => return Err("the split read wrote no status byte"),
        _ => return Err("the split read failed (status not OK)"),
    }
    if SPLIT_AREA.get::<u32>(SPLIT_USED_AT + RING_ENTRIES + 4) != SECTOR_LEN + 1 {
        return Err("the split read's used length is wrong");
    }
    let same = expected.iter().enumerate().all(|(i, &byte)| SPLIT_AREA.get::<u8>(SPLIT_DATA_AT + i) == byte);
    if !same {
        return Err("the split read's data differs from the plain read's");
    }
    Ok(())
}

/// Runs the check on the transport at `base`; `Ok` carries the ID's first bytes.
pub fn check(base: u64) -> Result<[u8; 8], &'static str> {
    let dev = Device(base);
    if dev.read(ops::VIRTIO_DEVICE_ID)? != ops::DEVICE_ID_BLOCK {
        return Err("the slot is no longer a block device");
    }
    AREA.clear();
    let queue = QueueLayout {
        size: QUEUE_SIZE,
        desc: AREA.address() + DESC_AT as u64,
        avail: AREA.address() + AVAIL_AT as u64,
        used: AREA.address() + USED_AT as u64,
    };
    start(&dev, &queue)?;
    let id_len = request(&dev, 0, T_GET_ID, ID_AT, ID_LEN)?;
    let read_len = request(&dev, 1, T_IN, SECTOR_AT, SECTOR_LEN)?;
    if read_len != SECTOR_LEN + 1 || id_len == 0 {
        return Err("wrong used lengths");
    }
    let status = dev.read(ops::INTERRUPT_STATUS)?;
    dev.write(ops::INTERRUPT_ACK, status)?;
    let mut sector = [0u8; SECTOR_LEN as usize];
    for (i, byte) in sector.iter_mut().enumerate() {
        *byte = AREA.get::<u8>(SECTOR_AT + i);
    }
    split_read(&dev, &sector)?;
    let status = dev.read(ops::INTERRUPT_STATUS)?;
    dev.write(ops::INTERRUPT_ACK, status)?;
    dev.write(ops::STATUS, 0)?;
    Ok(core::array::from_fn(|i| AREA.get::<u8>(ID_AT + i)))
}
