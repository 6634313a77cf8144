//! GICD and GICR accesses with random offsets, sizes and values: mostly a real register of
//! the distributor or of any vCPU's redistributor (or one past the last) with a size it
//! accepts, sometimes any offset and size. Read-modify-write of enables, pends, actives,
//! priorities, configuration, routing, SGI generation, LPI tables (pointers confined to DATA).

use super::access::{run_form, PLAIN_LOADS, PLAIN_STORES};
use super::Ctx;
use crate::gic::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_SGI_FRAME, GICR_STRIDE};
use crate::mmu::ALIAS_VA;
use crate::rng::Rng;
use crate::{scratch, uart};

/// A register block: first offset, bytes, access size.
#[derive(Clone, Copy)]
struct Block {
    offset: u64,
    len: u64,
    size: u64,
}

const fn block(offset: u64, len: u64, size: u64) -> Block {
    Block { offset, len, size }
}

/// Distributor registers (GICv3 architecture specification, 12.9).
const GICD_REGS: [Block; 22] = [
    block(0x0000, 4, 4),      // CTLR
    block(0x0004, 12, 4),     // TYPER, IIDR, TYPER2
    block(0x0010, 4, 4),      // STATUSR
    block(0x0040, 0x20, 4),   // SETSPI/CLRSPI (NS and S)
    block(0x0080, 0x80, 4),   // IGROUPR
    block(0x0100, 0x80, 4),   // ISENABLER
    block(0x0180, 0x80, 4),   // ICENABLER
    block(0x0200, 0x80, 4),   // ISPENDR
    block(0x0280, 0x80, 4),   // ICPENDR
    block(0x0300, 0x80, 4),   // ISACTIVER
    block(0x0380, 0x80, 4),   // ICACTIVER
    block(0x0400, 0x400, 1),  // IPRIORITYR (byte accessible)
    block(0x0400, 0x400, 4),  // IPRIORITYR
    block(0x0800, 0x400, 1),  // ITARGETSR
    block(0x0c00, 0x100, 4),  // ICFGR
    block(0x0d00, 0x80, 4),   // IGRPMODR
    block(0x0e00, 0x100, 4),  // NSACR
    block(0x0f00, 0x30, 4),   // SGIR, CPENDSGIR, SPENDSGIR
    block(0x0f80, 0x80, 4),   // INMIR
    block(0x6100, 0x1f00, 8), // IROUTER (SPIs)
    block(0x6000, 0x100, 8),  // IROUTER of SGIs/PPIs (reserved)
    block(0xffd0, 0x30, 4),   // ID registers
];
/// Redistributor registers: RD_base (offsets below 64 KiB) and SGI_base.
const GICR_REGS: [Block; 20] = [
    block(0x0000, 8, 4),                    // CTLR, IIDR
    block(0x0008, 8, 8),                    // TYPER
    block(0x0010, 0x10, 4),                 // STATUSR, WAKER, MPAMIDR, PARTIDR
    block(0x0040, 0x10, 8),                 // SETLPIR, CLRLPIR
    block(0x0070, 0x10, 8),                 // PROPBASER, PENDBASER
    block(0x00a0, 0x30, 8),                 // INVLPIR, INVALLR, SYNCR
    block(0xffd0, 0x30, 4),                 // ID registers
    block(GICR_SGI_FRAME + 0x080, 4, 4),    // IGROUPR0
    block(GICR_SGI_FRAME + 0x100, 4, 4),    // ISENABLER0
    block(GICR_SGI_FRAME + 0x180, 4, 4),    // ICENABLER0
    block(GICR_SGI_FRAME + 0x200, 4, 4),    // ISPENDR0
    block(GICR_SGI_FRAME + 0x280, 4, 4),    // ICPENDR0
    block(GICR_SGI_FRAME + 0x300, 4, 4),    // ISACTIVER0
    block(GICR_SGI_FRAME + 0x380, 4, 4),    // ICACTIVER0
    block(GICR_SGI_FRAME + 0x400, 0x20, 1), // IPRIORITYR (bytes)
    block(GICR_SGI_FRAME + 0x400, 0x20, 4), // IPRIORITYR
    block(GICR_SGI_FRAME + 0xc00, 8, 4),    // ICFGR0, ICFGR1
    block(GICR_SGI_FRAME + 0xd00, 4, 4),    // IGRPMODR0
    block(GICR_SGI_FRAME + 0xe00, 4, 4),    // NSACR
    block(GICR_SGI_FRAME + 0xf80, 4, 4),    // INMIR0
];
/// GICR_PROPBASER / GICR_PENDBASER: the table address, bits [51:12].
const LPI_TABLE_REGS: [u64; 2] = [0x70, 0x78];
const LPI_ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

fn value_for(rng: &mut Rng, offset_in_frame: u64) -> u64 {
    let value = rng.value();
    if LPI_TABLE_REGS.contains(&offset_in_frame) {
        let table = scratch::confine(value & LPI_ADDRESS_MASK, scratch::data()) & LPI_ADDRESS_MASK;
        return (value & !LPI_ADDRESS_MASK) | table;
    }
    value
}

/// With `spare=vtimer`: the bits a redistributor write at `offset` (`size` bytes) must leave
/// alone, or `None` if the write must not happen at all.
fn spared(offset: u64, size: u64) -> Option<u64> {
    const ONE_BIT_REGS: [u64; 7] = [0x080, 0x100, 0x180, 0x200, 0x280, 0x300, 0x380];
    const ICFGR1: u64 = 0xc04;
    const IGRPMODR0: u64 = 0xd00;
    const VTIMER_BIT: u64 = 1 << 27;
    const VTIMER_CFG_BITS: u64 = 0b11 << 22;
    let Some(sgi_offset) = offset.checked_sub(GICR_SGI_FRAME) else {
        return Some(0);
    };
    let touches = |reg: u64| (reg..reg + 4).contains(&sgi_offset) || (sgi_offset..sgi_offset + size).contains(&reg);
    let reg = ONE_BIT_REGS.iter().chain([&ICFGR1, &IGRPMODR0]).copied().find(|&reg| touches(reg));
    match reg {
        None => Some(0),
        Some(reg) if size != 4 || sgi_offset != reg => None,
        Some(ICFGR1) => Some(VTIMER_CFG_BITS),
        Some(_) => Some(VTIMER_BIT),
    }
}

pub fn access(rng: &mut Rng, ctx: &Ctx) {
    let distributor = rng.percent(50);
    let (base, frame) = if distributor {
        (GICD_BASE, GICD_SIZE)
    } else {
        // Any vCPU's frames, or the pair after the last one.
        (GICR_BASE + GICR_STRIDE * rng.below(ctx.cpu_count as u64 + 1), GICR_STRIDE)
    };
    let (offset, size) = if rng.percent(85) {
        let block = if distributor { rng.pick(&GICD_REGS) } else { rng.pick(&GICR_REGS) };
        let offset = block.offset + (rng.below(block.len) & !(block.size - 1));
        (offset, block.size)
    } else {
        (rng.below(frame), 1 << rng.below(4))
    };
    let ipa = base + offset;
    let mut store = rng.percent(70);
    let mut value = value_for(rng, offset);
    if ctx.spare_vtimer && !distributor && store {
        match spared(offset, size) {
            Some(mask) => value &= !mask,
            None => store = false,
        }
    }
    let aligned = ipa.is_multiple_of(size);
    let va = if aligned && rng.percent(80) { ipa } else { ALIAS_VA + ipa };
    if ctx.trace {
        uart::println!(
            "FUZZ: op cpu={} #{} gic {} {size} bytes at {ipa:#x} value={value:#x}",
            ctx.cpu,
            ctx.index,
            if store { "write" } else { "read" }
        );
    }
    let form = size.trailing_zeros() as usize;
    if store {
        run_form(PLAIN_STORES[form], va, value, 0);
    } else {
        run_form(PLAIN_LOADS[form], va, 0, 0);
    }
}
