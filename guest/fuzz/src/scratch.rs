//! The fuzzer's RAM, and the addresses it hands out.
//!
//! Stores (and everything the hypervisor may write on the fuzzer's behalf: virtio used rings
//! and data buffers) must never reach the fuzzer's own image, stacks or page tables. So the
//! top of guest RAM is split into zones, each only ever holding one kind of data:
//!
//! ```text
//! ram_end - 256K   DESC   descriptor tables and indirect tables, written only by the fuzzer
//!                         with addresses from this module (never by the device)
//!         - 64K    AVAIL  avail rings (fuzzer-written, device-read)
//!         - 64K    USED   used rings (device-written)
//!         - 2M     DATA   random loads and stores, virtio data buffers, 0xf00d pointers
//!         - 64K    CANARY a known pattern, checked after the random phase
//! ```
//!
//! DESC is last in RAM: a descriptor or indirect table of any length that starts in DESC either
//! stays in DESC or runs past the end of RAM (and is refused as a whole by the device). Buffer
//! lengths in DATA are chosen the same way: inside DATA, or past the end of RAM. The device
//! only ever writes used rings (USED) and writable buffers (DATA), so nothing it writes is ever
//! read back as a descriptor. The zones are zeroed after the DTB (which lies there) is read.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::rng::Rng;

pub const DESC_SIZE: u64 = 256 << 10;
pub const AVAIL_SIZE: u64 = 64 << 10;
pub const USED_SIZE: u64 = 64 << 10;
pub const DATA_SIZE: u64 = 2 << 20;
pub const CANARY_SIZE: u64 = 64 << 10;
const ZONES_SIZE: u64 = DESC_SIZE + AVAIL_SIZE + USED_SIZE + DATA_SIZE + CANARY_SIZE;
/// The canary's pattern (per 8 bytes, xor the offset).
const CANARY_PATTERN: u64 = 0xca5a_f00d_dead_beef;
/// Addresses above this are beyond any IPA space (a "wild" pointer).
const WILD_BASE: u64 = 1 << 48;
/// The lowest address that is not RAM but looks plausible (the device GiB).
const DEVICE_SPACE_END: u64 = 0x4000_0000;

/// The zones, set once by the boot CPU before any other CPU starts.
static RAM_START: AtomicU64 = AtomicU64::new(0);
static RAM_END: AtomicU64 = AtomicU64::new(0);
static ZONES_START: AtomicU64 = AtomicU64::new(0);

/// A zone: [start, end).
#[derive(Clone, Copy, Debug)]
pub struct Zone {
    pub start: u64,
    pub end: u64,
}

impl Zone {
    pub fn size(self) -> u64 {
        self.end - self.start
    }

    pub fn contains(self, address: u64) -> bool {
        (self.start..self.end).contains(&address)
    }

    /// An address with `len` bytes after it inside the zone, aligned to `align` (a power of two).
    pub fn pick(self, rng: &mut Rng, len: u64, align: u64) -> u64 {
        let room = self.size().saturating_sub(len);
        (self.start + rng.below(room + 1)) & !(align - 1)
    }
}

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

fn image() -> (u64, u64) {
    // SAFETY: linker symbols; only their addresses are taken.
    unsafe { (&__image_start as *const u8 as u64, &__image_end as *const u8 as u64) }
}

/// Sets the zones for RAM [start, start + size), zeroes them and writes the canary. Refuses a
/// RAM too small to hold the image and the zones apart.
pub fn init(start: u64, size: u64) -> Result<(), &'static str> {
    let end = start.checked_add(size).ok_or("RAM range overflows")?;
    let zones = end.checked_sub(ZONES_SIZE).ok_or("RAM too small")?;
    if zones < image().1 || end > crate::mmu::NORMAL_END_ADDRESS {
        return Err("RAM must hold the image and 2.5 MiB of scratch, and end below 4 GiB");
    }
    RAM_START.store(start, Ordering::Relaxed);
    RAM_END.store(end, Ordering::Relaxed);
    ZONES_START.store(zones, Ordering::Relaxed);
    for address in (zones..end).step_by(8) {
        let value = if canary().contains(address) { CANARY_PATTERN ^ address } else { 0 };
        // SAFETY: the zones lie in RAM above the image (checked), mapped normal memory; nothing
        // else uses them yet (the DTB there has been read).
        unsafe { core::ptr::write_volatile(address as *mut u64, value) };
    }
    Ok(())
}

pub fn ram() -> Zone {
    Zone { start: RAM_START.load(Ordering::Relaxed), end: RAM_END.load(Ordering::Relaxed) }
}

fn zone(offset_from_end: u64, size: u64) -> Zone {
    let end = RAM_END.load(Ordering::Relaxed) - offset_from_end;
    Zone { start: end - size, end }
}

pub fn desc() -> Zone {
    zone(0, DESC_SIZE)
}

pub fn avail() -> Zone {
    zone(DESC_SIZE, AVAIL_SIZE)
}

pub fn used() -> Zone {
    zone(DESC_SIZE + AVAIL_SIZE, USED_SIZE)
}

pub fn data() -> Zone {
    zone(DESC_SIZE + AVAIL_SIZE + USED_SIZE, DATA_SIZE)
}

pub fn canary() -> Zone {
    zone(DESC_SIZE + AVAIL_SIZE + USED_SIZE + DATA_SIZE, CANARY_SIZE)
}

/// The first canary word that changed, if any.
pub fn check_canary() -> Option<(u64, u64)> {
    let zone = canary();
    (zone.start..zone.end).step_by(8).find_map(|address| {
        // SAFETY: the canary zone is RAM owned by the fuzzer (init).
        let value = unsafe { core::ptr::read_volatile(address as *const u64) };
        (value != CANARY_PATTERN ^ address).then_some((address, value))
    })
}

/// An address that is certainly not guest RAM: device space, just above RAM, far above, or
/// beyond any IPA space.
pub fn not_ram(rng: &mut Rng) -> u64 {
    let end = ram().end;
    match rng.below(6) {
        0 => rng.below(DEVICE_SPACE_END),
        1 => end + rng.below(1 << 20),
        2 => end + rng.below(crate::mmu::NORMAL_END_ADDRESS.saturating_sub(end).max(1)),
        3 => rng.range(crate::mmu::NORMAL_END_ADDRESS, 1 << 44),
        4 => WILD_BASE | rng.next(),
        _ => RAM_START.load(Ordering::Relaxed).wrapping_sub(1 + rng.below(4096)),
    }
}

/// A length for a buffer at `address` in `zone`: inside the zone, or so long that it runs past
/// the end of RAM (then the device must refuse it as a whole), or zero.
pub fn buffer_len(rng: &mut Rng, address: u64, zone: Zone) -> u32 {
    let inside = zone.end.saturating_sub(address);
    let past_ram = ram().end.saturating_sub(address) + 1;
    match rng.below(10) {
        0 => 0,
        1 if past_ram <= u64::from(u32::MAX) => rng.range(past_ram, u64::from(u32::MAX) + 1) as u32,
        2 => u32::MAX,
        _ => rng.below(inside.min(u64::from(u32::MAX)) + 1) as u32,
    }
}

/// Whether [address, address + len) may be written by the fuzzer (DATA), or lies entirely
/// outside RAM (where a store can only fault).
pub fn store_allowed(address: u64, len: u64) -> bool {
    let last = address.saturating_add(len.max(1) - 1);
    let data = data();
    let ram = ram();
    (data.contains(address) && data.contains(last)) || last < ram.start || address >= ram.end
}

/// Replaces a guest-physical pointer that lands in RAM outside `zone` by one inside it (for
/// values the device or the GIC may one day read or write through).
pub fn confine(pointer: u64, zone: Zone) -> u64 {
    if ram().contains(pointer) && !zone.contains(pointer) {
        zone.start + pointer % zone.size()
    } else {
        pointer
    }
}

/// The zone a value written to virtio-mmio register `offset` must point into, if the register
/// holds (the low half of) a queue address.
pub fn queue_register_zone(offset: u64) -> Option<Zone> {
    const QUEUE_DESC_LOW: u64 = 0x080;
    const QUEUE_DRIVER_LOW: u64 = 0x090;
    const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    match offset {
        QUEUE_DESC_LOW => Some(desc()),
        QUEUE_DRIVER_LOW => Some(avail()),
        QUEUE_DEVICE_LOW => Some(used()),
        _ => None,
    }
}
