//! virtio-mmio register sequences in random orders: resets, status handshakes with random
//! deviations, feature negotiation, queue setup with random sizes and addresses (virtq.rs),
//! descriptor chains offered on the avail ring, notifications, interrupt acknowledgements,
//! config space accesses and random register writes. Mostly on the disk's slot (found at
//! boot), sometimes on empty slots or beside them.

use core::sync::atomic::{AtomicU64, Ordering};

use super::access::{run_form, PLAIN_LOADS, PLAIN_STORES};
use super::virtq::{self, Layout};
use super::Ctx;
use crate::dtb::MAX_CPUS;
use crate::mmu::ALIAS_VA;
use crate::rng::Rng;
use crate::{scratch, uart};

/// virtio-mmio registers (virtio 1.1, 4.2.2).
pub const DEVICE_ID: u64 = 0x008;
pub const DEVICE_FEATURES: u64 = 0x010;
pub const DEVICE_FEATURES_SEL: u64 = 0x014;
pub const DRIVER_FEATURES: u64 = 0x020;
pub const DRIVER_FEATURES_SEL: u64 = 0x024;
pub const QUEUE_SEL: u64 = 0x030;
pub const QUEUE_NUM_MAX: u64 = 0x034;
pub const QUEUE_NUM: u64 = 0x038;
pub const QUEUE_READY: u64 = 0x044;
pub const QUEUE_NOTIFY: u64 = 0x050;
pub const INTERRUPT_STATUS: u64 = 0x060;
pub const INTERRUPT_ACK: u64 = 0x064;
pub const STATUS: u64 = 0x070;
pub const QUEUE_DESC: u64 = 0x080;
pub const QUEUE_DRIVER: u64 = 0x090;
pub const QUEUE_DEVICE: u64 = 0x0a0;
pub const CONFIG: u64 = 0x100;
pub const WINDOW: u64 = 0x200;
/// QEMU virt's first virtio-mmio slot (the slots are WINDOW apart from here).
const SLOTS_BASE: u64 = 0x0A00_0000;
/// Status bits and the feature bits a driver of this device takes.
pub const STATUS_ACKNOWLEDGE: u32 = 1;
pub const STATUS_DRIVER: u32 = 2;
pub const STATUS_DRIVER_OK: u32 = 4;
pub const STATUS_FEATURES_OK: u32 = 8;
pub const FEATURE_VERSION_1_HIGH: u32 = 1; // bit 32
const FEATURE_INDIRECT: u32 = 1 << 28;
/// The virtio-blk config: capacity (u64) first.
pub const DEVICE_ID_BLOCK: u32 = 2;

/// A register window: `base` is a slot's base (or, on purpose, an address beside one), reached
/// through the device mapping or (sometimes) the normal alias.
struct Window {
    base: u64,
    alias: bool,
}

impl Window {
    fn va(&self, offset: u64) -> u64 {
        self.base + offset + if self.alias { ALIAS_VA } else { 0 }
    }

    /// Writes a register; a value reaching a queue address register (of whatever slot the
    /// address really is in) is confined to that queue area's zone.
    fn write(&self, offset: u64, value: u32) {
        let real = (self.base + offset).wrapping_sub(SLOTS_BASE) % WINDOW;
        let value = match scratch::queue_register_zone(real) {
            Some(zone) => scratch::confine(value.into(), zone) as u32,
            None => value,
        };
        run_form(PLAIN_STORES[2], self.va(offset), value.into(), 0);
    }

    fn read(&self, offset: u64) -> u32 {
        run_form(PLAIN_LOADS[2], self.va(offset), 0, 0) as u32
    }

    /// A 64-bit address into a low/high register pair.
    fn write_pair(&self, offset: u64, value: u64) {
        self.write(offset, value as u32);
        self.write(offset + 4, (value >> 32) as u32);
    }
}

fn pick_window(rng: &mut Rng, ctx: &Ctx) -> Window {
    let slots = ctx.slots();
    let base = match rng.below(20) {
        0..=15 if ctx.disk_slot.is_some() => ctx.disk_slot.unwrap_or(0),
        16 => slots.last().copied().unwrap_or(0) + WINDOW * (1 + rng.below(4)),
        17 => (rng.pick(slots) + rng.below(WINDOW)) & !3,
        _ => rng.pick(slots),
    };
    Window { base, alias: rng.percent(10) }
}

/// The disk's capacity in sectors, as its config space says (0 for another device).
fn capacity(window: &Window) -> u64 {
    u64::from(window.read(CONFIG)) | u64::from(window.read(CONFIG + 4)) << 32
}

/// The handshake up to DRIVER_OK, each step sometimes skipped or garbled.
fn handshake(rng: &mut Rng, window: &Window) {
    let mut status = 0;
    if rng.percent(70) {
        window.write(STATUS, 0);
    }
    for bit in [STATUS_ACKNOWLEDGE, STATUS_DRIVER] {
        status |= bit;
        window.write(STATUS, if rng.percent(90) { status } else { rng.next() as u32 });
    }
    for sel in 0..2 {
        window.write(DRIVER_FEATURES_SEL, if rng.percent(90) { sel } else { rng.next() as u32 });
        let wanted = if sel == 0 { FEATURE_INDIRECT } else { FEATURE_VERSION_1_HIGH };
        window.write(DRIVER_FEATURES, if rng.percent(80) { wanted } else { rng.value() as u32 });
    }
    status |= STATUS_FEATURES_OK;
    window.write(STATUS, status);
    let _ = window.read(STATUS);
}

fn queue_setup(rng: &mut Rng, window: &Window, layout: &Layout) {
    window.write(QUEUE_SEL, if rng.percent(90) { 0 } else { rng.value() as u32 });
    let _ = window.read(QUEUE_NUM_MAX);
    if rng.percent(70) {
        window.write(QUEUE_READY, 0);
    }
    window.write(QUEUE_NUM, layout.size as u32);
    window.write_pair(QUEUE_DESC, layout.desc);
    window.write_pair(QUEUE_DRIVER, layout.avail);
    window.write_pair(QUEUE_DEVICE, layout.used);
    window.write(QUEUE_READY, if rng.percent(90) { 1 } else { rng.value() as u32 });
    let _ = window.read(QUEUE_READY);
}

/// Builds 1..8 chains (up to a whole queue's worth) and offers them.
fn offer(rng: &mut Rng, layout: &Layout, capacity: u64) {
    let n = layout.size.clamp(1, virtq::QUEUE_MAX);
    let count = if rng.percent(10) { n } else { 1 + rng.below(8.min(n)) } as usize;
    let mut heads = [0u16; virtq::QUEUE_MAX as usize];
    for head in heads.iter_mut().take(count) {
        let index = if rng.percent(95) { rng.below(n) } else { rng.below(0x1_0000) };
        *head = index as u16;
        if rng.percent(90) || count < 8 {
            virtq::build_chain(rng, layout.desc, n, index % n, capacity);
        }
    }
    let _ = virtq::publish(rng, layout, &heads[..count]);
}

/// A register write the other steps do not make: any offset in the window, any value (queue
/// addresses confined to their zones by `Window::write`).
fn random_write(rng: &mut Rng, window: &Window) {
    window.write(rng.below(CONFIG) & !3, rng.value() as u32);
}

/// Config space: any offset, size 1/2/4/8, read or written.
fn config_access(rng: &mut Rng, window: &Window) {
    let size_log2 = rng.below(4) as usize;
    let va = window.va(CONFIG + rng.below(WINDOW - CONFIG));
    if rng.percent(50) {
        run_form(PLAIN_LOADS[size_log2], va, 0, 0);
    } else {
        run_form(PLAIN_STORES[size_log2], va, rng.value(), 0);
    }
}

/// A driver that mostly does the right thing: reset, handshake, DRIVER_OK, queue setup,
/// chains (valid and broken), notification, acknowledgement. Returns whether QueueReady read 1.
fn driver(rng: &mut Rng, window: &Window, layout: &Layout, capacity: u64) -> bool {
    handshake(rng, window);
    queue_setup(rng, window, layout);
    let ready = window.read(QUEUE_READY) == 1;
    window.write(STATUS, window.read(STATUS) | STATUS_DRIVER_OK);
    for _ in 0..1 + rng.below(3) {
        offer(rng, layout, capacity);
        notify(rng, window, layout);
    }
    window.write(INTERRUPT_ACK, window.read(INTERRUPT_STATUS));
    ready
}

/// QueueNotify (queue 0 mostly), counting the used entries the device added meanwhile.
fn notify(rng: &mut Rng, window: &Window, layout: &Layout) {
    let before = virtq::used_index(layout);
    window.write(QUEUE_NOTIFY, if rng.percent(90) { 0 } else { rng.value() as u32 });
    if let (Some(before), Some(after)) = (before, virtq::used_index(layout)) {
        USED_ENTRIES.fetch_add(u64::from(after.wrapping_sub(before)), Ordering::Relaxed);
    }
}

/// Used ring entries the device added during the fuzzer's notifications (all CPUs).
pub static USED_ENTRIES: AtomicU64 = AtomicU64::new(0);
/// Per CPU: the last queue layout the device accepted (QueueReady read 1), which later
/// sequences offer chains on.
static ACCEPTED: [[AtomicU64; 4]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; 4] }; MAX_CPUS];

fn remember(cpu: usize, layout: &Layout) {
    for (slot, value) in ACCEPTED[cpu].iter().zip([layout.size, layout.desc, layout.avail, layout.used]) {
        slot.store(value, Ordering::Relaxed);
    }
}

fn accepted(cpu: usize) -> Option<Layout> {
    let [size, desc, avail, used] = ACCEPTED[cpu].each_ref().map(|v| v.load(Ordering::Relaxed));
    (size != 0).then_some(Layout { size, desc, avail, used })
}

pub fn sequence(rng: &mut Rng, ctx: &Ctx) {
    let window = pick_window(rng, ctx);
    let fresh = virtq::random_layout(rng);
    let layout = match accepted(ctx.cpu) {
        Some(old) if rng.percent(50) => old,
        _ => fresh,
    };
    let as_driver = rng.percent(40);
    let steps = 1 + rng.below(10);
    if ctx.trace {
        uart::println!(
            "FUZZ: op cpu={} #{} virtio at {:#x} {} queue={layout:x?}",
            ctx.cpu,
            ctx.index,
            window.base,
            if as_driver { "driver" } else { "random steps" }
        );
    }
    let capacity = capacity(&window);
    if as_driver {
        if driver(rng, &window, &layout, capacity) {
            remember(ctx.cpu, &layout);
        }
        return;
    }
    for _ in 0..steps {
        match rng.below(16) {
            0 => window.write(STATUS, 0),
            1 | 2 => handshake(rng, &window),
            3 => window.write(STATUS, window.read(STATUS) | STATUS_DRIVER_OK),
            4 => window.write(STATUS, rng.value() as u32),
            5 | 6 => queue_setup(rng, &window, &layout),
            7 | 8 => offer(rng, &layout, capacity),
            9 | 10 => notify(rng, &window, &layout),
            11 => window.write(INTERRUPT_ACK, window.read(INTERRUPT_STATUS) | rng.below(4) as u32),
            12 => config_access(rng, &window),
            13 => random_write(rng, &window),
            14 => {
                window.write(DEVICE_FEATURES_SEL, rng.below(3) as u32);
                let _ = window.read(DEVICE_FEATURES);
            }
            _ => {
                let _ = window.read(rng.below(WINDOW) & !3);
            }
        }
    }
}
