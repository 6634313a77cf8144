//! The HRT build's TTBR0: the Linux build's identity map (mmu.rs) next to the hypervisor's
//! TTBR1 tables, so every operation of the Linux build reaches the same addresses here.
//!
//! The hypervisor starts the HRT with TTBR1 only (TCR_EL1.EPD0 set) and a MAIR_EL1 whose
//! attribute indexes 0 (normal) and 4 (device) its tables use. The identity map's indexes 0, 1
//! and 2 move to 1, 2 and 3, so one MAIR_EL1 serves both halves. One extra level-1 block maps
//! the first GiB of ROS RAM read-only: a pointer there is one the hypervisor must refuse to
//! write through (hrt/memory.rs).

use core::cell::UnsafeCell;

use hvm_ros_lib::abi::hrt_boot::{ATTR_DEVICE, ATTR_NORMAL};

use super::memory::Layout;
use crate::mmu::{BLOCK_SIZE, MAIR, PAGE_TABLE, TCR, TOP_VA};

/// Level-1 entries of the identity map (4 KiB granule, 39-bit VAs).
const ENTRIES: usize = 512;
/// Descriptor fields: valid block, AttrIndx [4:2], inner shareable, access flag, AP[2]
/// (read-only), PXN, UXN.
const DESC_VALID: u64 = 0b01;
const ATTR_INDEX_SHIFT: u32 = 2;
const ATTR_INDEX_MASK: u64 = 0b111 << ATTR_INDEX_SHIFT;
const DESC_SH_INNER: u64 = 0b11 << 8;
const DESC_AF: u64 = 1 << 10;
const DESC_READ_ONLY: u64 = 1 << 7;
const DESC_PXN: u64 = 1 << 53;
const DESC_UXN: u64 = 1 << 54;
/// Where the identity map's attribute index n goes (mmu.rs uses 0 to 2).
const ATTR_MOVED_TO: [u64; 3] = [1, 2, 3];
const _: () = {
    let mut n = 0;
    while n < ATTR_MOVED_TO.len() {
        assert!(ATTR_MOVED_TO[n] != ATTR_NORMAL && ATTR_MOVED_TO[n] != ATTR_DEVICE);
        n += 1;
    }
};
const MAIR_ATTR_BITS: u64 = 8;
const MAIR_ATTR_MASK: u64 = 0xff;
/// TCR_EL1 bits [15:0]: T0SZ, EPD0, IRGN0, ORGN0, SH0, TG0 (everything about TTBR0 walks).
const TCR_TTBR0_FIELDS: u64 = 0xffff;
/// The read-only alias of ROS RAM: the level-1 slot after mmu.rs's top-of-PA window.
pub const RO_ALIAS_VA: u64 = TOP_VA + BLOCK_SIZE;
const RO_ALIAS_INDEX: usize = (RO_ALIAS_VA / BLOCK_SIZE) as usize;
pub const RO_ALIAS_SIZE: u64 = BLOCK_SIZE;

#[repr(C, align(4096))]
struct Table(UnsafeCell<[u64; ENTRIES]>);

// SAFETY: the main core writes the table (build) before it publishes the configuration with
// Release ordering; afterwards only the MMUs read it.
unsafe impl Sync for Table {}

static TTBR0_TABLE: Table = Table(UnsafeCell::new([0; ENTRIES]));

/// The virtual address of ROS RAM byte `offset` (< RO_ALIAS_SIZE) in the read-only alias.
pub fn ro_alias_va(layout: &Layout, offset: u64) -> u64 {
    RO_ALIAS_VA + (layout.ros.start % BLOCK_SIZE) + offset
}

/// Fills the table (main core, once, before any core enables it). Fails if mmu.rs uses an
/// attribute index this module does not move.
pub fn build(layout: &Layout) -> Result<(), &'static str> {
    let mut table = [0u64; ENTRIES];
    for (slot, &entry) in table.iter_mut().zip(PAGE_TABLE.0.iter()) {
        if entry & DESC_VALID == 0 {
            continue;
        }
        let index = (entry & ATTR_INDEX_MASK) >> ATTR_INDEX_SHIFT;
        let moved =
            *ATTR_MOVED_TO.get(index as usize).ok_or("mmu.rs uses an attribute index hrt/mmu.rs does not move")?;
        *slot = (entry & !ATTR_INDEX_MASK) | (moved << ATTR_INDEX_SHIFT);
    }
    let ros_gib = layout.ros.start - layout.ros.start % BLOCK_SIZE;
    table[RO_ALIAS_INDEX] = ros_gib
        | DESC_VALID
        | (ATTR_NORMAL << ATTR_INDEX_SHIFT)
        | DESC_SH_INNER
        | DESC_AF
        | DESC_READ_ONLY
        | DESC_PXN
        | DESC_UXN;
    // SAFETY: no core has enabled the table yet (the caller runs before publishing), so nothing
    // reads it while it is written.
    unsafe { *TTBR0_TABLE.0.get() = table };
    // SAFETY: a barrier: the table writes complete before any core's walk can see them.
    unsafe { core::arch::asm!("dsb ish", options(nostack)) };
    Ok(())
}

/// This core's MAIR_EL1 and TCR_EL1 with the identity map added; TTBR0_EL1 = the table.
pub fn enable(layout: &Layout) -> Result<(), &'static str> {
    let table_va = TTBR0_TABLE.0.get() as u64;
    let table_ipa = layout.va_to_ipa(table_va).ok_or("the TTBR0 table is not in the image window")?;
    let (mut mair, mut tcr): (u64, u64);
    // SAFETY: reads of two system registers, no other effect.
    unsafe { core::arch::asm!("mrs {}, mair_el1", "mrs {}, tcr_el1", out(reg) mair, out(reg) tcr, options(nostack)) };
    let keep = (MAIR_ATTR_MASK << (ATTR_NORMAL * MAIR_ATTR_BITS)) | (MAIR_ATTR_MASK << (ATTR_DEVICE * MAIR_ATTR_BITS));
    mair &= keep;
    for (from, &to) in ATTR_MOVED_TO.iter().enumerate() {
        let attr = (MAIR >> (from as u64 * MAIR_ATTR_BITS)) & MAIR_ATTR_MASK;
        mair |= attr << (to * MAIR_ATTR_BITS);
    }
    tcr = (tcr & !TCR_TTBR0_FIELDS) | (TCR & TCR_TTBR0_FIELDS);
    // SAFETY: MAIR_EL1 keeps the two attributes the running TTBR1 tables use; TTBR0_EL1 points
    // at a complete table (build ran, published with Release); TCR_EL1 changes only its TTBR0
    // fields, enabling walks there last. Nothing used TTBR0 before, so no stale TLB entry can
    // exist; the invalidation is for certainty.
    unsafe {
        core::arch::asm!(
            "msr mair_el1, {mair}",
            "msr ttbr0_el1, {ttbr0}",
            "isb",
            "msr tcr_el1, {tcr}",
            "isb",
            "tlbi vmalle1",
            "dsb nsh",
            "isb",
            mair = in(reg) mair,
            ttbr0 = in(reg) table_ipa,
            tcr = in(reg) tcr,
            options(nostack),
        );
    }
    Ok(())
}
