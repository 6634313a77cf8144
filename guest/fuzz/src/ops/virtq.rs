//! Split virtqueues in the fuzzer's zones (scratch.rs): random layouts, and descriptor chains
//! that are valid virtio-blk requests or broken on purpose (loops, huge lengths, addresses
//! outside RAM, indirect tables pointing at themselves, readable after writable, no status).
//!
//! Every descriptor written here obeys one rule: a device-writable buffer lies in DATA or
//! outside RAM (or runs past the end of RAM and must be refused whole). Tables live in DESC,
//! avail rings in AVAIL, used rings in USED; the device never writes anything it later reads as
//! a descriptor.

use crate::rng::Rng;
use crate::scratch::{self, Zone};

/// Descriptor flags and layout (virtio 1.1, 2.6.5).
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;
pub const DESC_SIZE: u64 = 16;
/// Ring offsets: flags, idx, entries.
const RING_IDX: u64 = 2;
const RING_ENTRIES: u64 = 4;
const USED_ENTRY: u64 = 8;
/// virtio-blk requests: header {type, reserved, sector}, status byte; types.
const BLK_HEADER: u64 = 16;
const BLK_TYPES: [u32; 6] = [0, 1, 4, 8, 2, 0x1234_5678]; // IN OUT FLUSH GET_ID, unsupported
pub const SECTOR: u64 = 512;
/// The largest queue the device offers, and the largest data buffer the fuzzer builds.
pub const QUEUE_MAX: u64 = 256;
const DATA_MAX: u64 = 1 << 20;

/// Where a queue's three areas are and how large it is (as written to the device).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub size: u64,
    pub desc: u64,
    pub avail: u64,
    pub used: u64,
}

fn write<T: Copy>(address: u64, value: T) {
    debug_assert!([scratch::desc(), scratch::avail(), scratch::data()].iter().any(|z| z.contains(address)));
    // SAFETY: callers only pass addresses in the DESC, AVAIL or DATA zones (checked above in
    // debug builds), RAM the fuzzer owns; nothing else lives there.
    unsafe { core::ptr::write_volatile(address as *mut T, value) };
}

fn read_u16(address: u64) -> u16 {
    // SAFETY: an address in the AVAIL zone (fuzzer-owned RAM).
    unsafe { core::ptr::read_volatile(address as *const u16) }
}

/// A queue area inside `zone` with room for `len` bytes, aligned to `align` (sometimes
/// misaligned, sometimes outside RAM altogether).
fn area(rng: &mut Rng, zone: Zone, len: u64, align: u64) -> u64 {
    match rng.below(40) {
        0 => scratch::not_ram(rng),
        1 => zone.pick(rng, len + align, 1) | 1,
        _ => zone.pick(rng, len, align),
    }
}

pub fn random_layout(rng: &mut Rng) -> Layout {
    let size = match rng.below(20) {
        0 => rng.value() & u64::from(u32::MAX),
        1 | 2 => QUEUE_MAX,
        3 => rng.below(QUEUE_MAX * 2),
        _ => 1 << rng.below(8),
    };
    let n = size.min(QUEUE_MAX);
    Layout {
        size,
        desc: area(rng, scratch::desc(), DESC_SIZE * n, 16),
        avail: area(rng, scratch::avail(), RING_ENTRIES + 2 * n + 2, 2),
        used: area(rng, scratch::used(), RING_ENTRIES + USED_ENTRY * n + 2, 4),
    }
}

/// A buffer for a descriptor: (address, length). Writable ones only in DATA or outside RAM.
fn buffer(rng: &mut Rng, writable: bool, len_hint: u64) -> (u64, u32) {
    match rng.below(12) {
        0 => (scratch::not_ram(rng), rng.value() as u32),
        1 if !writable => (scratch::desc().pick(rng, 0, 1), rng.value() as u32),
        2 | 3 => {
            let address = scratch::data().pick(rng, 0, 1);
            (address, scratch::buffer_len(rng, address, scratch::data()))
        }
        _ => (scratch::data().pick(rng, len_hint, 8), len_hint as u32),
    }
}

/// Writes descriptor `index` of the table at `table` (entries beyond a table in DESC would
/// leave it: such writes are skipped, the device reads what is there).
fn put(table: u64, index: u64, desc: (u64, u32, u16, u16)) {
    let address = table + DESC_SIZE * index;
    if !scratch::desc().contains(address) || !scratch::desc().contains(address + DESC_SIZE - 1) {
        return;
    }
    let (addr, len, flags, next) = desc;
    write(address, addr);
    write(address + 8, len);
    write(address + 12, flags);
    write(address + 14, next);
}

/// A block request header in DATA: its address.
fn header(rng: &mut Rng, capacity: u64) -> u64 {
    let address = scratch::data().pick(rng, BLK_HEADER, 8);
    let sector = match rng.below(8) {
        0 => capacity.saturating_sub(rng.below(4)),
        1 => rng.value(),
        _ => rng.below(capacity.max(1)),
    };
    write(address, rng.pick(&BLK_TYPES));
    write(address + 4, rng.next() as u32);
    write(address + 8, sector);
    address
}

/// Writes one chain starting at `head` into the table at `table` of `entries` descriptors;
/// `entries` bounds the indices used. Returns a short name of what was built.
pub fn build_chain(rng: &mut Rng, table: u64, entries: u64, head: u64, capacity: u64) -> &'static str {
    let n = entries.clamp(1, QUEUE_MAX);
    let other = |rng: &mut Rng| rng.below(n);
    match rng.below(10) {
        0..=3 => {
            // A well-formed request: header, data, status (sometimes an odd size or count).
            let data_len = match rng.below(6) {
                0 => rng.below(DATA_MAX),
                1 => 0,
                _ => SECTOR * (1 + rng.below(8)),
            };
            let (d1, d2) = (other(rng), other(rng));
            let writes_data = rng.percent(50);
            let (data_addr, data_len) = buffer(rng, writes_data, data_len);
            let status = buffer(rng, true, 1);
            let data_flags = F_NEXT | if writes_data { F_WRITE } else { 0 };
            put(table, head, (header(rng, capacity), BLK_HEADER as u32, F_NEXT, d1 as u16));
            put(table, d1, (data_addr, data_len, data_flags, d2 as u16));
            put(table, d2, (status.0, status.1, F_WRITE, 0));
            "request"
        }
        4 => {
            // A loop: head -> x -> head (or head -> head).
            let x = other(rng);
            let (a, l) = buffer(rng, false, BLK_HEADER);
            put(table, head, (a, l, F_NEXT, x as u16));
            put(table, x, (a, l, F_NEXT, head as u16));
            "loop"
        }
        5 => {
            // An indirect table in DESC: a request, itself, or a copy of the queue's table.
            let len = match rng.below(5) {
                0 => 0,
                1 => 17,
                2 => scratch::buffer_len(rng, table, scratch::desc()) & !15,
                _ => DESC_SIZE as u32 * (1 + rng.below(8) as u32),
            };
            let indirect = if rng.percent(30) { table } else { scratch::desc().pick(rng, 8 * DESC_SIZE, 16) };
            let flags = F_INDIRECT | if rng.percent(15) { F_NEXT } else { 0 };
            put(table, head, (indirect, len, flags, other(rng) as u16));
            if rng.percent(40) {
                put(indirect, 0, (indirect, len, F_INDIRECT, 0)); // points at itself
                "indirect-self"
            } else if indirect != table {
                build_chain(rng, indirect, 8, 0, capacity);
                "indirect"
            } else {
                "indirect-own-table"
            }
        }
        6 => {
            // Readable after writable.
            let (w, r) = (buffer(rng, true, SECTOR), buffer(rng, false, BLK_HEADER));
            let x = other(rng);
            put(table, head, (w.0, w.1, F_WRITE | F_NEXT, x as u16));
            put(table, x, (r.0, r.1, 0, 0));
            "readable-after-writable"
        }
        7 => {
            // A next index past the table.
            let (a, l) = buffer(rng, false, BLK_HEADER);
            put(table, head, (a, l, F_NEXT, (n + rng.below(0x1_0000 - n)) as u16));
            "next-out-of-range"
        }
        _ => {
            // Random descriptors along a random path.
            let mut index = head;
            for _ in 0..1 + rng.below(6) {
                let flags = rng.next() as u16 & (F_NEXT | F_WRITE | F_INDIRECT);
                let (a, l) = if flags & F_INDIRECT != 0 {
                    (scratch::desc().pick(rng, 0, 16), rng.value() as u32)
                } else {
                    let hint = rng.below(4096);
                    buffer(rng, flags & F_WRITE != 0, hint)
                };
                let next = if rng.percent(90) { other(rng) } else { rng.next() & 0xffff };
                put(table, index, (a, l, flags, next as u16));
                index = next;
            }
            "random"
        }
    }
}

/// The used ring's index, if the ring lies in USED (where the fuzzer may read it).
pub fn used_index(layout: &Layout) -> Option<u16> {
    let at = layout.used.checked_add(RING_IDX)?;
    let used = scratch::used();
    (used.contains(at) && used.contains(at + 1)).then(|| {
        // SAFETY: an address in the USED zone (fuzzer-owned RAM, written only by the device).
        unsafe { core::ptr::read_volatile(at as *const u16) }
    })
}

/// Offers `count` heads on the avail ring (when it lies in AVAIL): the entries, then the
/// index, moved by `count` or, sometimes, by an impossible jump. Returns the new index.
pub fn publish(rng: &mut Rng, layout: &Layout, heads: &[u16]) -> Option<u16> {
    let avail = scratch::avail();
    let n = layout.size.clamp(1, QUEUE_MAX);
    let end = layout.avail + RING_ENTRIES + 2 * n + 2;
    if !avail.contains(layout.avail) || !avail.contains(end) || !layout.avail.is_multiple_of(2) {
        return None;
    }
    let idx = read_u16(layout.avail + RING_IDX);
    for (i, &head) in heads.iter().enumerate() {
        let slot = (u64::from(idx) + i as u64) % n;
        write(layout.avail + RING_ENTRIES + 2 * slot, head);
    }
    let next = match rng.below(12) {
        0 => rng.next() as u16,
        1 => idx.wrapping_add(n as u16).wrapping_add(1),
        _ => idx.wrapping_add(heads.len() as u16),
    };
    write(layout.avail, if rng.percent(20) { 1u16 } else { 0 }); // flags: NO_INTERRUPT
    crate::arch::dsb_sy();
    write(layout.avail + RING_IDX, next);
    crate::arch::dsb_sy();
    Some(next)
}
