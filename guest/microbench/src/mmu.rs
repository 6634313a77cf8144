//! The identity map the kernel runs on, so that memory is cacheable and timings representative:
//! one level-1 table of 1 GiB blocks, 4 KiB granule, 32-bit input addresses.
//!
//! ```text
//! 0x0000_0000 - 0x3fff_ffff  device nGnRnE, never executable (GIC, PL011, ...)
//! 0x4000_0000 - 0xbfff_ffff  normal memory, write-back cacheable, inner shareable (RAM)
//! 0xc000_0000 -              unmapped
//! ```
//!
//! boot.S programs MAIR_EL1, TCR_EL1, TTBR0_EL1 and SCTLR_EL1 from these values on every CPU
//! before any Rust code runs. The table is a constant in the image: the loader has written it
//! to memory before we start, so the walker sees it with the MMU and caches off or on.

/// MAIR_EL1 attribute indices.
const ATTR_DEVICE: u64 = 0;
const ATTR_NORMAL: u64 = 1;
/// MAIR_EL1: Attr0 = Device-nGnRnE (0x00), Attr1 = Normal, inner and outer write-back
/// read/write-allocate (0xff).
const MAIR_DEVICE_NGNRNE: u64 = 0x00;
const MAIR_NORMAL_WB: u64 = 0xff;
pub const MAIR: u64 = (MAIR_DEVICE_NGNRNE << (8 * ATTR_DEVICE)) | (MAIR_NORMAL_WB << (8 * ATTR_NORMAL));

/// TCR_EL1 fields.
const TCR_T0SZ_32BIT: u64 = 32; // T0SZ [5:0]: 2^(64 - 32) bytes, walks start at level 1
const TCR_IRGN0_WBWA: u64 = 0b01 << 8;
const TCR_ORGN0_WBWA: u64 = 0b01 << 10;
const TCR_SH0_INNER: u64 = 0b11 << 12;
const TCR_TG0_4K: u64 = 0b00 << 14;
const TCR_EPD1: u64 = 1 << 23; // no TTBR1 walks
const TCR_IPS_4G: u64 = 0b000 << 32;
pub const TCR: u64 =
    TCR_T0SZ_32BIT | TCR_IRGN0_WBWA | TCR_ORGN0_WBWA | TCR_SH0_INNER | TCR_TG0_4K | TCR_EPD1 | TCR_IPS_4G;

/// SCTLR_EL1: the RES1 bits of ARMv8.0 (29, 28, 23, 22, 20, 11), MMU, data and instruction
/// caches on; alignment checks off.
const SCTLR_RES1: u64 = (1 << 29) | (1 << 28) | (1 << 23) | (1 << 22) | (1 << 20) | (1 << 11);
const SCTLR_M: u64 = 1 << 0;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;
pub const SCTLR: u64 = SCTLR_RES1 | SCTLR_M | SCTLR_C | SCTLR_I;

/// Level-1 block descriptor fields.
const DESC_BLOCK: u64 = 0b01;
const DESC_ATTR_INDEX_SHIFT: u32 = 2;
const DESC_SH_INNER: u64 = 0b11 << 8;
const DESC_AF: u64 = 1 << 10;
const DESC_PXN: u64 = 1 << 53;
const DESC_UXN: u64 = 1 << 54;
const BLOCK_SIZE: u64 = 1 << 30;

const fn device_block(index: u64) -> u64 {
    (index * BLOCK_SIZE) | DESC_BLOCK | (ATTR_DEVICE << DESC_ATTR_INDEX_SHIFT) | DESC_AF | DESC_PXN | DESC_UXN
}

const fn normal_block(index: u64) -> u64 {
    (index * BLOCK_SIZE) | DESC_BLOCK | (ATTR_NORMAL << DESC_ATTR_INDEX_SHIFT) | DESC_SH_INNER | DESC_AF
}

/// Entries of a 4 KiB translation table; with T0SZ = 32 only the first 4 are used.
const ENTRIES: usize = 512;

#[repr(C, align(4096))]
pub struct PageTable([u64; ENTRIES]);

const fn identity_map() -> PageTable {
    let mut table = [0; ENTRIES];
    table[0] = device_block(0);
    table[1] = normal_block(1);
    table[2] = normal_block(2);
    PageTable(table)
}

/// TTBR0_EL1's table (boot.S takes its address, a `sym` operand of main.rs's global_asm!).
pub static PAGE_TABLE: PageTable = identity_map();
