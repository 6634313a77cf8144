//! `scenario=virtio_flood` (issue 13, hole 1): a guest that keeps the disk's avail index moving
//! must not keep a pCPU in the hypervisor. vCPU 1 republishes one 64 KiB read (every avail
//! entry names the same chain, into the same buffer) as fast as the device takes them, for
//! `FLOOD_US`; vCPU 0 writes QueueNotify once; vCPU 2, which shares vCPU 0's pCPU when three
//! vCPUs run on two, counts (and prints) a tick every `TICK_US` meanwhile. A hypervisor that
//! serves a notification until the ring is empty stays in EL2 for the whole flood and vCPU 2
//! never runs; one that bounds its work per pass lets it tick. Afterwards every request
//! published must complete with status OK.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{start, Role};
use crate::checks::disk::{
    self, Device, QueueLayout, DESC_SIZE, F_NEXT, F_WRITE, HEADER_LEN, RING_ENTRIES, RING_IDX, STATUS_UNWRITTEN, S_OK,
    T_IN,
};
use crate::dma_area::DmaArea;
use crate::dtb::Platform;
use crate::uart::println;
use crate::{arch, ops};

/// The queue: as large as the device allows; the publisher stays as far ahead as the device
/// accepts (an avail index no more than a queue ahead), so that the device does not catch up
/// even when the host does not run the publisher's vCPU for a while.
const QUEUE_SIZE: u16 = 256;
const MAX_AHEAD: u16 = QUEUE_SIZE - 1;
/// Each request reads this much (the same sectors into the same buffer every time).
const DATA_LEN: u32 = 64 << 10;
const FLOOD_US: u64 = 3_000_000;
const TICK_US: u64 = 100_000;
/// Ticks vCPU 2 must see: half of those the flood lasts (it shares its pCPU).
const MIN_TICK_SHARE: u64 = 2;
/// How long the requests left after the flood may take to complete.
const DRAIN_US: u64 = 20_000_000;
/// The vCPUs: the notifier is the boot CPU.
const PUBLISHER: usize = 1;
const TICKER: usize = 2;

/// The queue's memory, one page per part.
const PAGE: usize = 4096;
const DESC_AT: usize = 0;
const AVAIL_AT: usize = PAGE;
const USED_AT: usize = 2 * PAGE;
const HEADER_AT: usize = 3 * PAGE;
const STATUS_AT: usize = HEADER_AT + 64;
const DATA_AT: usize = 4 * PAGE;
const AREA_SIZE: usize = DATA_AT + DATA_LEN as usize;

/// Only this scenario and the device touch it.
static AREA: DmaArea<AREA_SIZE> = DmaArea::new();

static GO: AtomicBool = AtomicBool::new(false);
static DISK_BASE: AtomicU64 = AtomicU64::new(0);
static FLOOD_END: AtomicU64 = AtomicU64::new(0);
static PUBLISHED: AtomicU64 = AtomicU64::new(0);
static PUBLISHER_DONE: AtomicBool = AtomicBool::new(false);
static TICKS: AtomicU64 = AtomicU64::new(0);
static TICKER_DONE: AtomicBool = AtomicBool::new(false);

fn descriptor(index: usize, at: usize, len: u32, flags: u16, next: u16) {
    let base = DESC_AT + index * DESC_SIZE;
    AREA.put(base, AREA.address() + at as u64);
    AREA.put(base + 8, len);
    AREA.put(base + 12, flags);
    AREA.put(base + 14, next);
}

fn wait_until(what: &AtomicBool, deadline: u64) -> bool {
    while !what.load(Ordering::Acquire) {
        if arch::now() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

pub fn run(platform: &Platform, disk: Option<u64>, entry: u64) -> Result<&'static str, &'static str> {
    let base = disk.ok_or("no disk")?;
    if platform.cpu_count <= TICKER {
        return Err("needs three vCPUs (notifier, publisher, ticker)");
    }
    AREA.clear();
    let dev = Device(base);
    DISK_BASE.store(base, Ordering::Relaxed);
    let queue = QueueLayout {
        size: u32::from(QUEUE_SIZE),
        desc: AREA.address() + DESC_AT as u64,
        avail: AREA.address() + AVAIL_AT as u64,
        used: AREA.address() + USED_AT as u64,
    };
    disk::start(&dev, &queue)?;
    // One chain, 0 -> 1 -> 2; every avail entry (all zero) names it.
    AREA.put(HEADER_AT, T_IN);
    AREA.put(HEADER_AT + 8, 0u64);
    AREA.put(STATUS_AT, STATUS_UNWRITTEN);
    descriptor(0, HEADER_AT, HEADER_LEN, F_NEXT, 1);
    descriptor(1, DATA_AT, DATA_LEN, F_WRITE | F_NEXT, 2);
    descriptor(2, STATUS_AT, 1, F_WRITE, 0);
    arch::dsb_sy();

    start(platform, entry, PUBLISHER, Role::FloodPublisher, 0)?;
    start(platform, entry, TICKER, Role::FloodTicker, 0)?;
    FLOOD_END.store(arch::now() + arch::us_to_ticks(FLOOD_US), Ordering::Release);
    GO.store(true, Ordering::Release);
    let notified = arch::now();
    dev.write(ops::QUEUE_NOTIFY, 0)?;
    let notify_us = arch::ticks_to_us(arch::now() - notified);

    let late = FLOOD_END.load(Ordering::Acquire) + arch::us_to_ticks(DRAIN_US);
    if !wait_until(&PUBLISHER_DONE, late) || !wait_until(&TICKER_DONE, late) {
        return Err("the publisher or the ticker never finished");
    }
    let published = PUBLISHED.load(Ordering::Acquire) as u16;
    let ticks = TICKS.load(Ordering::Acquire);
    let expected = FLOOD_US / TICK_US;
    println!("FUZZ: scenario virtio_flood notify_us={notify_us} ticks={ticks}/{expected}");
    while AREA.get::<u16>(USED_AT + RING_IDX) != published {
        if arch::now() > late {
            println!(
                "FUZZ: scenario virtio_flood stuck: published={published} completed={} (mod 2^16)",
                AREA.get::<u16>(USED_AT + RING_IDX)
            );
            return Err("the published requests were not all completed");
        }
        core::hint::spin_loop();
    }
    let status = AREA.get::<u8>(STATUS_AT);
    let interrupts = dev.read(ops::INTERRUPT_STATUS)?;
    dev.write(ops::INTERRUPT_ACK, interrupts)?;
    dev.write(ops::STATUS, 0)?;
    if status != S_OK {
        return Err("a request did not end with status OK");
    }
    if ticks * MIN_TICK_SHARE < expected {
        return Err("the vCPU sharing the notifier's pCPU starved while the device was flooded");
    }
    Ok("every published request completed; the other vCPU kept ticking")
}

/// vCPU 1: keeps the avail index moving until the flood ends, then notifies once, as a driver
/// does after adding buffers (the flood itself is never notified: the device keeps finding
/// new requests on its own).
pub fn publisher() {
    while !GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let end = FLOOD_END.load(Ordering::Acquire);
    let mut published: u16 = 0;
    let mut total: u64 = 0;
    while arch::now() < end {
        if published.wrapping_sub(AREA.get::<u16>(USED_AT + RING_IDX)) < MAX_AHEAD {
            AREA.put(AVAIL_AT + RING_ENTRIES + 2 * usize::from(published % QUEUE_SIZE), 0u16);
            published = published.wrapping_add(1);
            total += 1;
            arch::dsb_sy();
            AREA.put(AVAIL_AT + RING_IDX, published);
        }
    }
    println!("FUZZ: scenario virtio_flood publisher published={total}");
    PUBLISHED.store(u64::from(published), Ordering::Release);
    if Device(DISK_BASE.load(Ordering::Relaxed)).write(ops::QUEUE_NOTIFY, 0).is_err() {
        println!("FUZZ: error: the publisher's notification faulted");
    }
    PUBLISHER_DONE.store(true, Ordering::Release);
}

/// vCPU 2: a tick each `TICK_US` it gets to run, until the flood ends.
pub fn ticker() {
    while !GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    let end = FLOOD_END.load(Ordering::Acquire);
    let period = arch::us_to_ticks(TICK_US);
    let mut next = arch::now() + period;
    let mut ticks = 0;
    while arch::now() < end {
        if arch::now() >= next {
            ticks += 1;
            println!("FUZZ: flood tick {ticks}");
            next = arch::now() + period;
        }
    }
    TICKS.store(ticks, Ordering::Release);
    TICKER_DONE.store(true, Ordering::Release);
}
