//! Loads and stores of every size and form (asm/ops.S's access table) to random addresses in
//! and around every emulated device, in unassigned device space, above RAM and in the fuzzer's
//! DATA zone; loads anywhere in RAM; instruction fetches from addresses outside RAM.
//!
//! Device IPAs are reached through the device mapping (an unaligned access faults at stage 1,
//! inside the guest) or through the normal non-cacheable alias (mmu.rs), where unaligned
//! accesses, pairs and fetches reach the hypervisor.

use super::Ctx;
use crate::exceptions::{expect_access, IFETCH_TARGET};
use crate::gic::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_STRIDE};
use crate::mmu::{ALIAS_VA, FAR_END_ADDRESS, NORMAL_END_ADDRESS, TOP_PA, TOP_VA};
use crate::rng::Rng;
use crate::scratch;
use crate::uart::{UART_BASE, UART_SIZE};
use core::sync::atomic::Ordering;

/// One access form: its mnemonic, bytes touched, whether it stores, and the offset the
/// instruction adds to its base register (pre-index and offset forms).
#[derive(Clone, Copy)]
struct Form {
    name: &'static str,
    size: u64,
    store: bool,
    offset: i64,
}

const fn load(name: &'static str, size: u64, offset: i64) -> Form {
    Form { name, size, store: false, offset }
}

const fn store(name: &'static str, size: u64, offset: i64) -> Form {
    Form { name, size, store: true, offset }
}

/// The access table's slots, in asm/ops.S order. Cache maintenance counts as a store (it may
/// discard or zero data), with the 64 bytes of a `dc zva` block.
#[rustfmt::skip]
const FORMS: [Form; 57] = [
    load("ldrb", 1, 0), load("ldrh", 2, 0), load("ldr w", 4, 0), load("ldr x", 8, 0),
    load("ldrsb x", 1, 0), load("ldrsh x", 2, 0), load("ldrsw", 4, 0), load("ldrsb w", 1, 0),
    load("ldp w", 8, 0), load("ldp x", 16, 0), load("ldpsw", 8, 0), load("ldr x post", 8, 0),
    load("ldr x pre", 8, 8), load("ldar w", 4, 0), load("ldar x", 8, 0), load("ldxr", 8, 0),
    load("ldnp", 16, 0), load("ldur w", 4, 1), load("ldr x regoff", 8, 0), load("ldr q", 16, 0),
    load("ld1 16b", 16, 0), load("ldtr", 8, 0), load("ldaxp", 16, 0), load("prfm", 1, 0),
    load("ldr w post", 4, 0), load("ldrh pre", 2, 2),
    store("strb", 1, 0), store("strh", 2, 0), store("str w", 4, 0), store("str x", 8, 0),
    store("stp w", 8, 0), store("stp x", 16, 0), store("str x post", 8, 0), store("str x pre", 8, 8),
    store("stlr w", 4, 0), store("stlr x", 8, 0), store("stxr", 8, 0), store("stnp", 16, 0),
    store("stur w", 4, 1), store("str q", 16, 0), store("st1 16b", 16, 0), store("sttr w", 4, 0),
    store("strb post", 1, 0), store("stlrb", 1, 0), store("stlrh", 2, 0), store("str x regoff", 8, 0),
    store("swp", 8, 0), store("ldadd", 4, 0), store("stp w pre", 8, -4), store("strh post", 2, 0),
    store("stxp", 16, 0),
    store("dc civac", 64, 0), store("dc cvac", 64, 0), store("dc ivac", 64, 0), store("dc zva", 64, 0),
    store("dc cvau", 64, 0), store("ic ivau", 64, 0),
];
/// The loads come first in FORMS.
pub const LOAD_FORMS: u64 = 26;
/// Bytes per slot of the access table.
const SLOT_SIZE: usize = 16;
/// Forms whose fault reports the aligned block rather than the address.
const CACHE_BLOCK: u64 = 64;
/// How far around a window the fuzzer strays.
const AROUND: u64 = 0x1000;
/// virtio-mmio transports (as the DTB lists them; these are QEMU virt's).
const VIRTIO_BASE: u64 = 0x0A00_0000;
const VIRTIO_STRIDE: u64 = 0x200;
const VIRTIO_SLOTS: u64 = 32;
/// Device space with nothing the guest platform assigns.
const UNASSIGNED: (u64, u64) = (0x0C00_0000, 0x1000_0000);
const DEVICE_GIB_END: u64 = 0x4000_0000;
/// Printable ASCII, what a store to the UART's data register sends (a raw control byte on the
/// console would only test the terminal).
const PRINTABLE_FIRST: u64 = 0x20;
const PRINTABLE_COUNT: u64 = 95;

extern "C" {
    fn fuzz_access_table();
    fn fuzz_ifetch(target: u64);
}

/// A target: the guest-physical address and the virtual address that reaches it.
struct Target {
    ipa: u64,
    va: u64,
    /// Stores allowed (the fuzzer's DATA zone, or not RAM).
    writable: bool,
}

/// Where a device IPA is reached from: the device mapping, or the normal alias.
fn device(rng: &mut Rng, ipa: u64) -> Target {
    let va = if rng.percent(50) { ipa } else { ALIAS_VA + ipa };
    Target { ipa, va, writable: true }
}

fn around(rng: &mut Rng, base: u64, size: u64) -> u64 {
    (base - AROUND) + rng.below(size + 2 * AROUND)
}

fn pick_target(rng: &mut Rng, ctx: &Ctx) -> Target {
    let ram = scratch::ram();
    let device_ipa = match rng.below(12) {
        0 | 1 => around(rng, GICD_BASE, GICD_SIZE),
        2 | 3 => around(rng, GICR_BASE, GICR_STRIDE * (ctx.cpu_count as u64 + 1)),
        4 => around(rng, UART_BASE as u64, UART_SIZE),
        5 | 6 => around(rng, VIRTIO_BASE, VIRTIO_STRIDE * (VIRTIO_SLOTS + 2)),
        7 => rng.range(UNASSIGNED.0, UNASSIGNED.1),
        8 => rng.below(DEVICE_GIB_END),
        9 => {
            let ipa = match rng.below(4) {
                0 => ram.end + rng.below(1 << 20),
                1 => rng.range(ram.end, NORMAL_END_ADDRESS),
                2 => rng.range(NORMAL_END_ADDRESS, FAR_END_ADDRESS),
                _ => TOP_PA + rng.below(1 << 30),
            };
            let va = if ipa >= TOP_PA { TOP_VA + (ipa - TOP_PA) } else { ipa };
            return Target { ipa, va, writable: true };
        }
        10 => {
            let address = scratch::data().pick(rng, 64, 1);
            return Target { ipa: address, va: address, writable: true };
        }
        _ => {
            let address = rng.range(ram.start, ram.end);
            return Target { ipa: address, va: address, writable: false };
        }
    };
    device(rng, device_ipa)
}

/// Aligns most addresses to the access size.
fn maybe_align(rng: &mut Rng, address: u64, size: u64) -> u64 {
    if rng.percent(70) {
        address & !(size.min(8) - 1)
    } else {
        address
    }
}

/// Makes a stored value harmless where it would reach something outside the fuzz: printable
/// bytes to the UART's data register, and queue addresses inside their zones.
fn sanitize(ipa: u64, size: u64, value: u64) -> u64 {
    let uart = UART_BASE as u64;
    if ipa < uart + 4 && ipa + size > uart {
        let bytes = value.to_le_bytes().map(|b| (PRINTABLE_FIRST + u64::from(b) % PRINTABLE_COUNT) as u8);
        return u64::from_le_bytes(bytes);
    }
    if !(VIRTIO_BASE..VIRTIO_BASE + VIRTIO_STRIDE * VIRTIO_SLOTS).contains(&ipa) {
        return value;
    }
    match scratch::queue_register_zone((ipa - VIRTIO_BASE) % VIRTIO_STRIDE) {
        Some(zone) => {
            let low = u64::from(u32::MAX);
            (value & !low) | (scratch::confine(value & low, zone) & low)
        }
        None => value,
    }
}

/// One random load, store or cache maintenance operation.
pub fn access(rng: &mut Rng, ctx: &Ctx) {
    let target = pick_target(rng, ctx);
    let mut index = rng.below(FORMS.len() as u64) as usize;
    let gicr_end = GICR_BASE + GICR_STRIDE * (ctx.cpu_count as u64 + 1);
    let spared = ctx.spare_vtimer && (GICR_BASE - AROUND..gicr_end + AROUND).contains(&target.ipa);
    if (!target.writable || spared) && FORMS[index].store {
        index = rng.below(LOAD_FORMS) as usize;
    }
    let form = FORMS[index];
    let mut va = maybe_align(rng, target.va, form.size);
    let mut ipa = target.ipa.wrapping_add(va.wrapping_sub(target.va));
    if form.store && !scratch::store_allowed(ipa, form.size.max(CACHE_BLOCK)) {
        // A target near the end of DATA: take the start of DATA instead.
        va = scratch::data().start;
        ipa = va;
    }
    let (value, value2) = (sanitize(ipa, form.size, rng.value()), sanitize(ipa + 8, 8, rng.value()));
    if ctx.trace {
        crate::uart::println!(
            "FUZZ: op cpu={} #{} access {} ipa={ipa:#x} va={va:#x} value={value:#x}",
            ctx.cpu,
            ctx.index,
            form.name
        );
    }
    run_form(index, va, value, value2);
}

/// Access forms in the table.
#[cfg(feature = "hrt")]
pub const FORM_COUNT: usize = FORMS.len();

/// Access form `index`: its mnemonic, the bytes it touches and whether it stores (cache
/// maintenance counts as one), for the HRT build, which picks its targets by its own rules.
#[cfg(feature = "hrt")]
pub fn form(index: usize) -> (&'static str, u64, bool) {
    let form = FORMS[index % FORMS.len()];
    (form.name, form.size, form.store)
}

/// The forms of a plain load / store of 1, 2, 4 or 8 bytes (`size.trailing_zeros()`).
pub const PLAIN_LOADS: [usize; 4] = [0, 1, 2, 3];
pub const PLAIN_STORES: [usize; 4] = [26, 27, 28, 29];

/// Runs access form `index` on virtual address `va`; returns x0 afterwards (a load's value,
/// or `value` if it faulted).
///
/// The caller guarantees that a store form only goes to the DATA zone or outside RAM
/// (`scratch::store_allowed` of the guest-physical address `va` reaches).
pub fn run_form(index: usize, va: u64, value: u64, value2: u64) -> u64 {
    let form = FORMS[index % FORMS.len()];
    let base = va.wrapping_sub(form.offset as u64);
    let block = va & !(CACHE_BLOCK - 1);
    expect_access(block.wrapping_sub(16), va.wrapping_add(form.size + 16));
    let entry = fuzz_access_table as *const () as usize + (index % FORMS.len()) * SLOT_SIZE;
    let result: u64;
    // SAFETY: `entry` is a slot of the access table: at most three instructions and `ret`,
    // touching x0-x3, v0 and the memory at `va` (the base plus the form's offset). Stores go
    // only where the caller says the fuzzer may write (never its image, stacks or page tables).
    // A fault is stepped over by the exception handler.
    unsafe {
        core::arch::asm!(
            "blr {entry}",
            entry = in(reg) entry,
            inout("x0") value => result,
            in("x1") base,
            in("x2") value2,
            clobber_abi("C"),
        );
    }
    expect_access(0, 0);
    result
}

/// Reads 32 bits at `va` through the access table: `None` if the read faulted.
pub fn checked_read32(va: u64) -> Option<u32> {
    let before = crate::exceptions::fault_count();
    let value = run_form(PLAIN_LOADS[2], va, 0, 0) as u32;
    (crate::exceptions::fault_count() == before).then_some(value)
}

/// Writes 32 bits at `va` (device memory, not RAM) through the access table: `None` if the
/// write faulted.
pub fn checked_write32(va: u64, value: u32) -> Option<()> {
    let before = crate::exceptions::fault_count();
    run_form(PLAIN_STORES[2], va, value.into(), 0);
    (crate::exceptions::fault_count() == before).then_some(())
}

/// An instruction fetch from an address outside RAM (above it, or a device through the
/// executable normal alias): the hypervisor must answer with an instruction abort.
pub fn fetch(rng: &mut Rng, ctx: &Ctx) {
    let ram = scratch::ram();
    let target = match rng.below(3) {
        0 if ram.end < NORMAL_END_ADDRESS => rng.range(ram.end, NORMAL_END_ADDRESS),
        1 => ALIAS_VA + around(rng, VIRTIO_BASE, VIRTIO_STRIDE * 4),
        _ => ALIAS_VA + rng.range(UNASSIGNED.0, UNASSIGNED.1),
    } & !3;
    if ctx.trace {
        crate::uart::println!("FUZZ: op cpu={} #{} fetch va={target:#x}", ctx.cpu, ctx.index);
    }
    IFETCH_TARGET[ctx.cpu].store(target, Ordering::Relaxed);
    // SAFETY: the target is outside RAM (above it, or device space through the alias), where
    // the hypervisor maps nothing: the fetch aborts and the handler resumes after the branch.
    // Should something be mapped there, running it is the finding.
    unsafe { fuzz_ifetch(target) };
    IFETCH_TARGET[ctx.cpu].store(0, Ordering::Relaxed);
}
