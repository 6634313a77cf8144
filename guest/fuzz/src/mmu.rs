//! The fuzzer's stage-1 map: one level-1 table of 1 GiB blocks, 4 KiB granule, 39-bit input
//! addresses, 40-bit output addresses.
//!
//! ```text
//! VA                          PA                          attributes
//! 0x00_0000_0000 - 0x00_3fff_ffff  identity                  device nGnRnE (GIC, PL011, virtio...)
//! 0x00_4000_0000 - 0x00_ffff_ffff  identity                  normal write-back (RAM, and above it)
//! 0x01_0000_0000 - 0x3f_ffff_ffff  identity                  device nGnRnE (far above RAM)
//! 0x40_0000_0000 - 0x40_3fff_ffff  0x00_0000_0000 (alias)    normal non-cacheable, executable
//! 0x40_4000_0000 - 0x40_7fff_ffff  0xff_c000_0000            device nGnRnE (top of the 40-bit space)
//! ```
//!
//! The normal alias of the device GiB lets unaligned accesses, pairs and instruction fetches
//! reach the emulated devices' IPAs (on a device mapping they would fault at stage 1, inside the
//! guest). boot.S programs MAIR_EL1, TCR_EL1, TTBR0_EL1 and SCTLR_EL1 from these values on every
//! CPU; the table is a constant in the image, written to memory by the loader.

/// MAIR_EL1 attribute indices and values: device nGnRnE, normal write-back RW-allocate,
/// normal non-cacheable.
const ATTR_DEVICE: u64 = 0;
const ATTR_NORMAL: u64 = 1;
const ATTR_NORMAL_NC: u64 = 2;
const MAIR_DEVICE_NGNRNE: u64 = 0x00;
const MAIR_NORMAL_WB: u64 = 0xff;
const MAIR_NORMAL_NC: u64 = 0x44;
pub const MAIR: u64 = (MAIR_DEVICE_NGNRNE << (8 * ATTR_DEVICE))
    | (MAIR_NORMAL_WB << (8 * ATTR_NORMAL))
    | (MAIR_NORMAL_NC << (8 * ATTR_NORMAL_NC));

/// TCR_EL1 fields.
const TCR_T0SZ_39BIT: u64 = 25; // 2^39 bytes, walks start at level 1
const TCR_IRGN0_WBWA: u64 = 0b01 << 8;
const TCR_ORGN0_WBWA: u64 = 0b01 << 10;
const TCR_SH0_INNER: u64 = 0b11 << 12;
const TCR_TG0_4K: u64 = 0b00 << 14;
const TCR_EPD1: u64 = 1 << 23; // no TTBR1 walks
const TCR_IPS_40BIT: u64 = 0b010 << 32;
pub const TCR: u64 =
    TCR_T0SZ_39BIT | TCR_IRGN0_WBWA | TCR_ORGN0_WBWA | TCR_SH0_INNER | TCR_TG0_4K | TCR_EPD1 | TCR_IPS_40BIT;

/// SCTLR_EL1: the RES1 bits of ARMv8.0 (29, 28, 23, 22, 20, 11), MMU, data and instruction
/// caches on; alignment checks off (SA, SA0, A clear).
const SCTLR_RES1: u64 = (1 << 29) | (1 << 28) | (1 << 23) | (1 << 22) | (1 << 20) | (1 << 11);
const SCTLR_M: u64 = 1 << 0;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;
pub const SCTLR: u64 = SCTLR_RES1 | SCTLR_M | SCTLR_C | SCTLR_I;
/// CPACR_EL1.FPEN = 0b11: FP/SIMD instructions do not trap at EL1.
pub const CPACR_FPEN: u64 = 0b11 << 20;

/// Level-1 block descriptor fields.
const DESC_BLOCK: u64 = 0b01;
const DESC_ATTR_INDEX_SHIFT: u32 = 2;
const DESC_SH_INNER: u64 = 0b11 << 8;
const DESC_AF: u64 = 1 << 10;
const DESC_PXN: u64 = 1 << 53;
const DESC_UXN: u64 = 1 << 54;
pub const BLOCK_SIZE: u64 = 1 << 30;
const ENTRIES: usize = 512;

/// The map's windows, as level-1 indices (VA = index * 1 GiB).
const DEVICE_GIB: usize = 0;
const NORMAL_FIRST: usize = 1;
const NORMAL_END: usize = 4;
const FAR_DEVICE_END: usize = 256;
const ALIAS_INDEX: usize = 256;
const TOP_INDEX: usize = 257;
/// Where the normal alias of the device GiB, and the top-of-PA window, start.
pub const ALIAS_VA: u64 = ALIAS_INDEX as u64 * BLOCK_SIZE;
pub const TOP_VA: u64 = TOP_INDEX as u64 * BLOCK_SIZE;
pub const TOP_PA: u64 = 0xff_c000_0000;
/// The end of the normal (cacheable) identity window.
pub const NORMAL_END_ADDRESS: u64 = NORMAL_END as u64 * BLOCK_SIZE;
/// The end of the far device identity window.
pub const FAR_END_ADDRESS: u64 = FAR_DEVICE_END as u64 * BLOCK_SIZE;

const fn block(pa: u64, attr: u64, executable: bool) -> u64 {
    let shareable = if attr == ATTR_DEVICE { 0 } else { DESC_SH_INNER };
    let never_execute = if executable { 0 } else { DESC_PXN | DESC_UXN };
    pa | DESC_BLOCK | (attr << DESC_ATTR_INDEX_SHIFT) | shareable | DESC_AF | never_execute
}

#[repr(C, align(4096))]
pub struct PageTable(pub [u64; ENTRIES]);

const fn map() -> PageTable {
    let mut table = [0; ENTRIES];
    table[DEVICE_GIB] = block(0, ATTR_DEVICE, false);
    let mut i = NORMAL_FIRST;
    while i < NORMAL_END {
        table[i] = block(i as u64 * BLOCK_SIZE, ATTR_NORMAL, true);
        i += 1;
    }
    while i < FAR_DEVICE_END {
        table[i] = block(i as u64 * BLOCK_SIZE, ATTR_DEVICE, false);
        i += 1;
    }
    table[ALIAS_INDEX] = block(0, ATTR_NORMAL_NC, true);
    table[TOP_INDEX] = block(TOP_PA, ATTR_DEVICE, false);
    PageTable(table)
}

/// TTBR0_EL1's table (boot.S takes its address, a `sym` operand of main.rs's global_asm!).
pub static PAGE_TABLE: PageTable = map();
