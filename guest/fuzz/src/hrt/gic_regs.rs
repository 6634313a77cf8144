//! GIC register accesses from the HRT: this vCPU's own redistributor frames read and written
//! at random (PPI 27's included: the waits re-arm it, ops.rs), every other frame and the
//! distributor only read (they are the ROS's, or another HRT core's), written only where writes
//! are ignored or nothing is (read-only distributor registers, the frame after the last vCPU's).
//! With `spare=vtimer` (a hunting aid, as in the Linux build) the own frames are only read.

use super::ops::Ctx;
use crate::gic::{GICD_BASE, GICR_BASE, GICR_SGI_FRAME, GICR_STRIDE};
use crate::mmu::ALIAS_VA;
use crate::ops;
use crate::rng::Rng;
use crate::uart::println;

/// Redistributor and distributor registers worth hitting (offsets, 4-byte unless 8 below).
const GICR_OFFSETS: [u64; 17] = [
    0x0, 0x4, 0x8, 0x10, 0x14, 0x70, 0x78, 0xffe8, 0x1_0080, 0x1_0100, 0x1_0180, 0x1_0200, 0x1_0280, 0x1_0300,
    0x1_0380, 0x1_0400, 0x1_0c00,
];
/// GICR_PROPBASER and GICR_PENDBASER (LPI table addresses) and GICR_TYPER: 8 bytes.
const GICR_LPI_TABLES: [u64; 2] = [0x70, 0x78];
const GICR_TYPER: u64 = 0x8;
/// How many registers after a listed one an access may land on.
const NEIGHBOURS: u64 = 4;
const GICD_OFFSETS: [u64; 12] = [0x0, 0x4, 0x8, 0xc, 0x40, 0x80, 0x100, 0x200, 0x400, 0xc00, 0x6100, 0xffe8];
/// GICD registers that are read-only: TYPER, IIDR, TYPER2, PIDR2 (writes are ignored).
const GICD_READ_ONLY: [u64; 4] = [0x4, 0x8, 0xc, 0xffe8];
/// The table address bits [51:12] of GICR_PROPBASER / GICR_PENDBASER.
const LPI_ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
const LPI_TABLE_ALIGN: u64 = 1 << 12;

/// One GIC register access (see the module doc).
pub fn access(rng: &mut Rng, ctx: &Ctx) {
    let own = GICR_BASE + GICR_STRIDE * ctx.cpu as u64;
    let (base, offsets, writable): (u64, &[u64], bool) = match rng.below(10) {
        0..=5 => (own, &GICR_OFFSETS, !ctx.spare_vtimer),
        6 | 7 => {
            let frame = rng.below(ctx.layout.vcpus() as u64 + 1);
            (GICR_BASE + GICR_STRIDE * frame, &GICR_OFFSETS, frame == ctx.layout.vcpus() as u64)
        }
        _ => (GICD_BASE, &GICD_OFFSETS, false),
    };
    let (offset, size) = if rng.percent(85) {
        let offset = rng.pick(offsets);
        let wide = base != GICD_BASE && (offset == GICR_TYPER || GICR_LPI_TABLES.contains(&offset));
        let size = if wide { 8 } else { 4 };
        // The register or one of the next few of its kind.
        (offset + rng.below(NEIGHBOURS) * size, size)
    } else {
        (rng.below(GICR_SGI_FRAME * 2), 1 << rng.below(4))
    };
    let ipa = base + offset;
    let read_only_reg = base == GICD_BASE && size == 4 && GICD_READ_ONLY.contains(&offset);
    let store = (writable || read_only_reg) && rng.percent(70);
    let mut value = rng.value();
    if GICR_LPI_TABLES.contains(&offset) && base != GICD_BASE {
        // The table addresses point into DATA: the hypervisor may one day read or write there.
        value = (value & !LPI_ADDRESS_MASK) | (ctx.layout.data.pick(rng, 0, LPI_TABLE_ALIGN) & LPI_ADDRESS_MASK);
    }
    let va = if ipa.is_multiple_of(size) && rng.percent(80) { ipa } else { ALIAS_VA + ipa };
    if ctx.trace {
        let what = if store { "write" } else { "read" };
        println!("FUZZ: op cpu={} #{} gic {what} {size} bytes at {ipa:#x} value={value:#x}", ctx.cpu, ctx.index);
    }
    let form = size.trailing_zeros() as usize;
    if store {
        ops::run_form(ops::PLAIN_STORES[form], va, value, 0);
    } else {
        ops::run_form(ops::PLAIN_LOADS[form], va, 0, 0);
    }
}
