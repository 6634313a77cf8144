//! The hypervisor's own (EL2 stage-1) address space: an identity map built from 1 GiB blocks.
//!
//! Written by hand rather than with aarch64-paging because it must exist before the heap (the
//! crate allocates its tables) and it is a single static table of at most 512 block entries:
//! the first GiB (QEMU virt's devices) as Device-nGnRnE, every GiB holding RAM as Normal
//! write-back memory. Secondary pCPUs reuse the same table.

use core::cell::UnsafeCell;

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    ReadWriteable, Readable, Writeable, ID_AA64MMFR0_EL1, MAIR_EL2, SCTLR_EL2, TCR_EL2, TTBR0_EL2,
};

use crate::mm::MemRange;

const ENTRIES: usize = 512;
const GIB: u64 = 1 << 30;
/// 39-bit virtual addresses: translation starts at level 1, one entry per GiB.
const VA_BITS: u64 = 39;

// Level-1 block descriptor fields.
const DESC_BLOCK: u64 = 0b01;
const DESC_ATTR_INDEX_SHIFT: u64 = 2;
const DESC_SH_INNER: u64 = 0b11 << 8;
const DESC_AF: u64 = 1 << 10;
const DESC_XN: u64 = 1 << 54;

// MAIR_EL2 slots.
const MAIR_DEVICE_INDEX: u64 = 0;
const MAIR_NORMAL_INDEX: u64 = 1;

/// SCTLR_EL2 bits that are RES1 when HCR_EL2.E2H == 0 (Arm ARM D19.2).
const SCTLR_EL2_RES1: u64 =
    (1 << 4) | (1 << 5) | (1 << 11) | (1 << 16) | (1 << 18) | (1 << 22) | (1 << 23) | (1 << 28) | (1 << 29);

#[repr(C, align(4096))]
struct Level1Table(UnsafeCell<[u64; ENTRIES]>);

// SAFETY: the boot CPU fills the table in `build` before any other pCPU runs; afterwards it is
// only read (by the MMU).
unsafe impl Sync for Level1Table {}

static ROOT: Level1Table = Level1Table(UnsafeCell::new([0; ENTRIES]));

/// Fills the identity map: GiB 0 as device memory, every GiB that holds RAM as normal memory.
/// Must run on the boot CPU before secondaries start and before `enable`.
pub fn build(ram: &[MemRange]) {
    // SAFETY: single-threaded boot (see `Level1Table`); the MMU is not using the table yet.
    let table = unsafe { &mut *ROOT.0.get() };
    table[0] = DESC_BLOCK | DESC_AF | DESC_XN | (MAIR_DEVICE_INDEX << DESC_ATTR_INDEX_SHIFT);
    for bank in ram {
        let first = bank.start / GIB;
        let last = (bank.end() - 1) / GIB;
        for gib in first..=last.min(ENTRIES as u64 - 1) {
            table[gib as usize] =
                (gib * GIB) | DESC_BLOCK | DESC_AF | DESC_SH_INNER | (MAIR_NORMAL_INDEX << DESC_ATTR_INDEX_SHIFT);
        }
    }
}

/// Turns on the EL2 MMU and caches with the table from `build`, on the calling pCPU.
pub fn enable() {
    MAIR_EL2.write(
        MAIR_EL2::Attr0_Device::nonGathering_nonReordering_noEarlyWriteAck
            + MAIR_EL2::Attr1_Normal_Outer::WriteBack_NonTransient_ReadWriteAlloc
            + MAIR_EL2::Attr1_Normal_Inner::WriteBack_NonTransient_ReadWriteAlloc,
    );
    let pa_range = ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange).min(0b101);
    TCR_EL2.write(
        TCR_EL2::T0SZ.val(64 - VA_BITS)
            + TCR_EL2::TG0::KiB_4
            + TCR_EL2::SH0::Inner
            + TCR_EL2::ORGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::IRGN0::WriteBack_ReadAlloc_WriteAlloc_Cacheable
            + TCR_EL2::PS.val(pa_range),
    );
    TTBR0_EL2.set_baddr(ROOT.0.get() as u64);
    barrier::dsb(barrier::ISH);
    barrier::isb(barrier::SY);
    // SAFETY: invalidating EL2 TLB entries has no memory-safety effect.
    unsafe { core::arch::asm!("tlbi alle2", "dsb ish", "isb") };
    SCTLR_EL2.set(SCTLR_EL2_RES1);
    SCTLR_EL2.modify(SCTLR_EL2::M::Enable + SCTLR_EL2::C::Cacheable + SCTLR_EL2::I::Cacheable + SCTLR_EL2::SA::Enable);
    barrier::isb(barrier::SY);
}
