//! The guest's stage-2 translation table: how guest-physical addresses (IPAs) become host
//! physical addresses.
//!
//! Only guest RAM is mapped. Everything below [`RAM_BASE`] is the guest's device space (GIC,
//! UART, virtio-mmio), left unmapped so every access traps to EL2 as a stage-2 data abort for the
//! device emulation.
//!
//! The tables are built with the `aarch64-paging` crate (4 KiB granule, 39-bit IPA space, walk
//! starting at level 1; see [`vtcr_value`]). The crate's `LinearMap` assumes a table's PA is its
//! VA plus the same offset as the mapped memory, which is not our case, so [`HeapTables`] tells it
//! the truth: tables live on the hypervisor heap, and EL2 identity-maps host RAM, so a table's
//! pointer is its physical address.
//!
//! # TLB maintenance and break-before-make
//!
//! The crate only does TLB maintenance for a `Mapping` marked active, and then refuses to split a
//! live block (the architecture requires break-before-make (BBM) to change a block into a table)
//! and invalidates only by IPA, which leaves combined stage 1+2 TLB entries behind. We never mark
//! the mapping active; this module does the maintenance itself, for tables that may be live:
//!
//! - [`GuestStage2::map_ram`] only fills unmapped IPAs (invalid to valid needs no invalidation),
//!   then issues a barrier so other CPUs' table walks see the new entries.
//! - [`GuestStage2::unmap`] breaks every leaf the range touches (writes it invalid, whole), then
//!   invalidates the VM's TLB entries (`tlbi vmalls12e1is`, stage 1 and 2, all CPUs), then makes
//!   again the parts of split blocks outside the range. Between break and make, a vCPU touching
//!   the rest of a split block takes a stage-2 fault; the fault handler must retry an access
//!   whose IPA [`GuestStage2::translate`] maps (with the table behind a lock, it sees the result).
//! - Tables emptied by an unmap are kept, not freed: freeing one safely would need a second
//!   invalidation after unlinking it. They are reused if the range is mapped again.

use alloc::alloc::{dealloc, Layout};
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;

use aarch64_paging::descriptor::{PhysicalAddress, Stage2Attributes};
use aarch64_paging::paging::{Constraints, MemoryRegion, PageTable, Stage2, Translation, PAGE_SIZE};
use aarch64_paging::{MapError, Mapping};

use super::addr::{HostPhys, Ipa};
use super::MemRange;
use crate::guest_map::RAM_BASE;

// Addresses are u64 in this crate and usize in aarch64-paging; the casts between them are
// lossless because both targets we build for are 64-bit.
const _: () = assert!(usize::BITS == u64::BITS);

/// Bits of guest-physical address: a 512 GiB IPA space, translated from level 1.
pub const IPA_BITS: u32 = 39;
/// Size of the IPA space.
pub const IPA_SPACE_SIZE: u64 = 1 << IPA_BITS;
/// Level of the root table: with a 4 KiB granule, one level-1 table covers 39 bits.
const ROOT_LEVEL: usize = 1;
/// The translation granule, and the smallest mapping.
const GRANULE: u64 = PAGE_SIZE as u64;
/// Bits of IPA each table level resolves (512 eight-byte entries per 4 KiB table).
const BITS_PER_LEVEL: u32 = 9;
/// The level whose entries are pages.
const PAGE_LEVEL: usize = 3;
/// Output addresses are limited to 48 bits (no FEAT_LPA; [`vtcr_value`] caps PS there).
const MAX_PA_BITS: u32 = 48;
/// VTTBR_EL2.VMID is bits [63:48] (the top 8 are RES0 unless VTCR_EL2.VS selects 16-bit VMIDs).
const VTTBR_VMID_SHIFT: u32 = 48;

/// Guest RAM: Normal memory, inner and outer write-back cacheable, inner shareable, read-write,
/// executable, access flag set (no access-flag faults).
const GUEST_RAM_ATTRIBUTES: Stage2Attributes = Stage2Attributes::VALID
    .union(Stage2Attributes::MEMATTR_NORMAL_INNER_WB)
    .union(Stage2Attributes::MEMATTR_NORMAL_OUTER_WB)
    .union(Stage2Attributes::SH_INNER)
    .union(Stage2Attributes::S2AP_ACCESS_RW)
    .union(Stage2Attributes::ACCESS_FLAG);

// VTCR_EL2 fields (Arm ARM D23.2, "VTCR_EL2").
const VTCR_T0SZ_SHIFT: u32 = 0;
const VTCR_SL0_SHIFT: u32 = 6;
/// With a 4 KiB granule, SL0 = 1 starts the walk at level 1.
const VTCR_SL0_LEVEL1: u64 = 1;
const VTCR_IRGN0_SHIFT: u32 = 8;
const VTCR_ORGN0_SHIFT: u32 = 10;
/// IRGN0/ORGN0: table walks use write-back, read- and write-allocate cacheable memory.
const VTCR_CACHE_WB_RA_WA: u64 = 1;
const VTCR_SH0_SHIFT: u32 = 12;
const VTCR_SH0_INNER: u64 = 3;
const VTCR_TG0_SHIFT: u32 = 14;
const VTCR_TG0_4K: u64 = 0;
const VTCR_PS_SHIFT: u32 = 16;
/// Bit 31 of VTCR_EL2 is RES1.
const VTCR_RES1: u64 = 1 << 31;
/// ID_AA64MMFR0_EL1.PARange is a 4-bit field.
const PARANGE_MASK: u64 = 0xf;
/// PARange / VTCR_EL2.PS encoding of 48 bits, the most we use.
const PARANGE_48_BITS: u64 = 0b101;

/// VTCR_EL2 for [`GuestStage2`] tables: 39-bit IPA space, walk from level 1, 4 KiB granule,
/// write-back inner-shareable walks, and PS = `pa_range` (ID_AA64MMFR0_EL1.PARange) capped at
/// 48 bits.
///
/// The host must implement at least 40 physical address bits (PARange >= 0b010, true of every
/// ARMv8-A CPU QEMU models) for the 39-bit IPA space to be within the PA size.
pub fn vtcr_value(pa_range: u64) -> u64 {
    let ps = (pa_range & PARANGE_MASK).min(PARANGE_48_BITS);
    VTCR_RES1
        | (u64::from(64 - IPA_BITS) << VTCR_T0SZ_SHIFT)
        | (VTCR_SL0_LEVEL1 << VTCR_SL0_SHIFT)
        | (VTCR_CACHE_WB_RA_WA << VTCR_IRGN0_SHIFT)
        | (VTCR_CACHE_WB_RA_WA << VTCR_ORGN0_SHIFT)
        | (VTCR_SH0_INNER << VTCR_SH0_SHIFT)
        | (VTCR_TG0_4K << VTCR_TG0_SHIFT)
        | (ps << VTCR_PS_SHIFT)
}

/// Why a stage-2 update was refused. The table is unchanged unless noted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage2Error {
    /// The IPA or size is not a multiple of 4 KiB, or the size is 0.
    BadRange { ipa: u64, size: u64 },
    /// The IPA range goes beyond the 39-bit IPA space.
    OutOfRange { ipa: u64, size: u64 },
    /// The IPA range reaches below the guest's RAM base, into its device space.
    DeviceSpace { ipa: u64, size: u64 },
    /// The physical address is not 4 KiB-aligned or the range goes beyond 48 bits.
    BadPhysicalAddress { pa: u64, size: u64 },
    /// `ipa` is already mapped; remapping it needs an unmap first.
    AlreadyMapped { ipa: u64 },
    /// aarch64-paging refused an update (a bug: the checks above should prevent it). If this
    /// comes from `unmap`, part of the range may have been left unmapped.
    Table(MapError),
}

impl fmt::Display for Stage2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadRange { ipa, size } => {
                write!(f, "IPA range {ipa:#x}+{size:#x} is empty or not 4 KiB-aligned")
            }
            Self::OutOfRange { ipa, size } => {
                write!(f, "IPA range {ipa:#x}+{size:#x} exceeds the {IPA_BITS}-bit IPA space")
            }
            Self::DeviceSpace { ipa, size } => write!(
                f,
                "IPA range {ipa:#x}+{size:#x} reaches below guest RAM ({RAM_BASE:#x}), \
                 which is emulated device space"
            ),
            Self::BadPhysicalAddress { pa, size } => {
                write!(f, "physical range {pa:#x}+{size:#x} is not 4 KiB-aligned or exceeds {MAX_PA_BITS} bits")
            }
            Self::AlreadyMapped { ipa } => write!(f, "IPA {ipa:#x} is already mapped"),
            Self::Table(err) => write!(f, "stage-2 table update failed: {err}"),
        }
    }
}

/// One VM's stage-2 translation table.
///
/// Must not be dropped while a CPU may still use it (VTTBR_EL2 holding [`vttbr`](Self::vttbr)),
/// and its VMID's TLB entries must be invalidated before the VMID is reused.
pub struct GuestStage2 {
    mapping: Mapping<HeapTables, Stage2>,
    vmid: u16,
}

impl GuestStage2 {
    /// An empty table (every IPA faults) for the VM with this VMID. VMIDs above 255 need
    /// VTCR_EL2.VS (16-bit VMIDs), which [`vtcr_value`] does not set.
    pub fn new(vmid: u16) -> Self {
        Self { mapping: Mapping::new(HeapTables, ROOT_LEVEL, Stage2), vmid }
    }

    /// Maps `size` bytes of guest RAM at `ipa` to host memory at `pa`: normal write-back memory,
    /// read-write and executable. Uses 1 GiB and 2 MiB blocks where `ipa` and `pa` are aligned
    /// alike, 4 KiB pages elsewhere. The range must be unmapped and at or above [`RAM_BASE`].
    pub fn map_ram(&mut self, ipa: Ipa, pa: HostPhys, size: u64) -> Result<(), Stage2Error> {
        let (Ipa(ipa), HostPhys(pa)) = (ipa, pa);
        let range = checked_ipa_range(ipa, size)?;
        if ipa < RAM_BASE {
            return Err(Stage2Error::DeviceSpace { ipa, size });
        }
        let pa_end = pa.checked_add(size);
        if !pa.is_multiple_of(GRANULE) || pa_end.is_none_or(|end| end > 1 << MAX_PA_BITS) {
            return Err(Stage2Error::BadPhysicalAddress { pa, size });
        }
        if let Some(leaf) = self.leaves(range)?.first() {
            return Err(Stage2Error::AlreadyMapped { ipa: leaf.ipa.max(ipa) });
        }
        // Only invalid entries change (to valid), so there is nothing stale to invalidate.
        self.mapping
            .map_range(&region(range), PhysicalAddress(pa as usize), GUEST_RAM_ATTRIBUTES, Constraints::empty())
            .map_err(Stage2Error::Table)?;
        tlb::publish_table_writes();
        Ok(())
    }

    /// Unmaps `size` bytes at `ipa`, splitting blocks that extend beyond the range, with
    /// break-before-make and TLB invalidation on all CPUs (see the module docs). Unmapped parts
    /// of the range are skipped.
    pub fn unmap(&mut self, ipa: Ipa, size: u64) -> Result<(), Stage2Error> {
        let Ipa(ipa) = ipa;
        let range = checked_ipa_range(ipa, size)?;
        let leaves = self.leaves(range)?;
        if leaves.is_empty() {
            return Ok(());
        }

        // Break: write every touched leaf invalid, whole. Each run covers whole leaves, so the
        // crate never has to split an entry here, and it frees no table (modify_range never
        // does), so no walker can be left holding a freed table.
        for run in merge_adjacent(&leaves) {
            self.mapping
                .modify_range(&region(run), &|_, descriptor| {
                    descriptor.set(PhysicalAddress(0), Stage2Attributes::empty())
                })
                .map_err(Stage2Error::Table)?;
        }
        tlb::invalidate_vm(self.vttbr());

        // Make: map again what the split blocks covered outside the range.
        for leaf in &leaves {
            let leaf_range = MemRange::new(leaf.ipa, leaf.size);
            let keep_below = MemRange::new(leaf.ipa, range.start.saturating_sub(leaf.ipa));
            let keep_above = MemRange::new(range.end(), leaf_range.end().saturating_sub(range.end()));
            for keep in [keep_below, keep_above] {
                if keep.size > 0 {
                    let pa = leaf.pa + (keep.start - leaf.ipa);
                    // Attributes as they were; TABLE_OR_PAGE is the page-descriptor marker,
                    // which the crate adds itself where it writes pages.
                    let attributes = leaf.attributes - Stage2Attributes::TABLE_OR_PAGE;
                    self.mapping
                        .map_range(&region(keep), PhysicalAddress(pa as usize), attributes, Constraints::empty())
                        .map_err(Stage2Error::Table)?;
                }
            }
        }
        tlb::publish_table_writes();
        Ok(())
    }

    /// The host physical address `ipa` maps to, if any (a software walk of the table).
    pub fn translate(&self, ipa: Ipa) -> Option<HostPhys> {
        let leaf = self.leaf_at(ipa.0)?;
        Some(HostPhys(leaf.pa + (ipa.0 - leaf.ipa)))
    }

    /// Drops every TLB entry of this VMID (stage 1 and 2, all CPUs): for a partition that
    /// reboots with new stage-1 tables at the same addresses.
    pub fn invalidate_tlbs(&self) {
        tlb::invalidate_vm(self.vttbr());
    }

    /// VTTBR_EL2 for this VM: the root table's physical address and the VMID.
    pub fn vttbr(&self) -> u64 {
        self.mapping.root_address().0 as u64 | (u64::from(self.vmid) << VTTBR_VMID_SHIFT)
    }

    /// The VMID given to [`new`](Self::new).
    pub fn vmid(&self) -> u16 {
        self.vmid
    }

    /// The valid leaf (block or page descriptor) mapping `ipa`.
    fn leaf_at(&self, ipa: u64) -> Option<Leaf> {
        let page = MemRange::new(ipa - ipa % GRANULE, GRANULE);
        if page.end() > IPA_SPACE_SIZE {
            return None;
        }
        self.leaves(page).ok()?.first().copied()
    }

    /// Every valid leaf overlapping `range`, in IPA order, each with its whole extent.
    fn leaves(&self, range: MemRange) -> Result<Vec<Leaf>, Stage2Error> {
        let mut leaves = Vec::new();
        self.mapping
            .walk_range(&region(range), &mut |chunk, descriptor, level| {
                if descriptor.is_valid() {
                    let size = level_size(level);
                    leaves.push(Leaf {
                        ipa: chunk.start().0 as u64 / size * size,
                        size,
                        pa: descriptor.output_address().0 as u64,
                        attributes: descriptor.flags(),
                    });
                }
                Ok(())
            })
            .map_err(Stage2Error::Table)?;
        Ok(leaves)
    }
}

/// A valid block or page descriptor: the whole IPA range it maps, where to, and how.
#[derive(Clone, Copy, Debug)]
struct Leaf {
    ipa: u64,
    size: u64,
    pa: u64,
    attributes: Stage2Attributes,
}

/// Bytes one entry of a table at `level` maps: 4 KiB at level 3, 2 MiB at 2, 1 GiB at 1.
fn level_size(level: usize) -> u64 {
    GRANULE << (BITS_PER_LEVEL * (PAGE_LEVEL - level) as u32)
}

/// Checks that `ipa`/`size` is a non-empty, 4 KiB-aligned range inside the IPA space.
fn checked_ipa_range(ipa: u64, size: u64) -> Result<MemRange, Stage2Error> {
    if size == 0 || !ipa.is_multiple_of(GRANULE) || !size.is_multiple_of(GRANULE) {
        return Err(Stage2Error::BadRange { ipa, size });
    }
    match ipa.checked_add(size) {
        Some(end) if end <= IPA_SPACE_SIZE => Ok(MemRange::new(ipa, size)),
        _ => Err(Stage2Error::OutOfRange { ipa, size }),
    }
}

/// Joins the extents of consecutive leaves that touch into runs.
fn merge_adjacent(leaves: &[Leaf]) -> Vec<MemRange> {
    let mut runs: Vec<MemRange> = Vec::new();
    for leaf in leaves {
        match runs.last_mut() {
            Some(run) if run.end() == leaf.ipa => run.size += leaf.size,
            _ => runs.push(MemRange::new(leaf.ipa, leaf.size)),
        }
    }
    runs
}

fn region(range: MemRange) -> MemoryRegion {
    MemoryRegion::new(range.start as usize, range.end() as usize)
}

/// Translation tables on the hypervisor heap. EL2 identity-maps all host RAM and the heap is in
/// host RAM, so a table's pointer is its physical address and the other way round.
#[derive(Debug)]
struct HeapTables;

impl Translation<Stage2Attributes> for HeapTables {
    fn allocate_table(&mut self) -> (NonNull<PageTable<Stage2Attributes>>, PhysicalAddress) {
        // A zeroed (all-invalid) table from the global allocator, aligned to 4 KiB by its type.
        let table = PageTable::new();
        (table, PhysicalAddress(table.as_ptr() as usize))
    }

    unsafe fn deallocate_table(&mut self, table: NonNull<PageTable<Stage2Attributes>>) {
        // SAFETY: the crate only passes tables from allocate_table, i.e. PageTable::new, which
        // allocated them with the global allocator and this layout; each is freed once.
        unsafe { dealloc(table.as_ptr().cast(), Layout::new::<PageTable<Stage2Attributes>>()) }
    }

    fn physical_to_virtual(&self, pa: PhysicalAddress) -> NonNull<PageTable<Stage2Attributes>> {
        NonNull::new(pa.0 as *mut PageTable<Stage2Attributes>)
            .expect("table descriptors hold addresses from allocate_table, never 0")
    }
}

/// TLB maintenance and barriers for stage-2 updates. No-ops off target (unit tests).
mod tlb {
    /// Makes table writes visible to every CPU's table walker before the caller goes on (e.g.
    /// enters a guest). For invalid-to-valid changes, which need no invalidation.
    pub fn publish_table_writes() {
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        // SAFETY: barriers only order memory accesses; they touch no memory or registers.
        unsafe {
            core::arch::asm!("dsb ish", "isb", options(nostack, preserves_flags));
        }
    }

    /// Invalidates every stage 1 and stage 2 TLB entry of the VM whose VTTBR_EL2 value is
    /// `vttbr`, on all CPUs in the inner-shareable domain, after publishing table writes.
    ///
    /// TLBI by VMID acts on the VMID in VTTBR_EL2, so this loads the VM's VTTBR for the
    /// invalidation and restores the previous one: it works whichever VM (if any) this CPU was
    /// running. Must run at EL2 without VHE, where VTTBR_EL2 only affects the EL1&0 regime.
    pub fn invalidate_vm(#[allow(unused_variables)] vttbr: u64) {
        #[cfg(all(target_arch = "aarch64", target_os = "none"))]
        // SAFETY: at EL2 (non-VHE) VTTBR_EL2 does not affect the code running here, and it is
        // restored before returning; TLBI and barriers touch no memory.
        unsafe {
            core::arch::asm!(
                "mrs {saved}, vttbr_el2",
                "msr vttbr_el2, {vttbr}",
                "isb",
                "dsb ishst",
                "tlbi vmalls12e1is",
                "dsb ish",
                "msr vttbr_el2, {saved}",
                "isb",
                saved = out(reg) _,
                vttbr = in(reg) vttbr,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tests use plain numbers: IPAs first, host addresses second, as in the API.
    trait Untyped {
        fn map_ram_u(&mut self, ipa: u64, pa: u64, size: u64) -> Result<(), Stage2Error>;
        fn unmap_u(&mut self, ipa: u64, size: u64) -> Result<(), Stage2Error>;
        fn translate_u(&self, ipa: u64) -> Option<u64>;
    }

    impl Untyped for GuestStage2 {
        fn map_ram_u(&mut self, ipa: u64, pa: u64, size: u64) -> Result<(), Stage2Error> {
            self.map_ram(Ipa(ipa), HostPhys(pa), size)
        }
        fn unmap_u(&mut self, ipa: u64, size: u64) -> Result<(), Stage2Error> {
            self.unmap(Ipa(ipa), size)
        }
        fn translate_u(&self, ipa: u64) -> Option<u64> {
            self.translate(Ipa(ipa)).map(|HostPhys(pa)| pa)
        }
    }

    const GIB: u64 = 1 << 30;
    const MIB_2: u64 = 2 << 20;
    const PAGE: u64 = GRANULE;

    /// Level of the leaf mapping `ipa` (1 = 1 GiB block, 2 = 2 MiB block, 3 = page).
    fn level_of(s2: &GuestStage2, ipa: u64) -> Option<u64> {
        let leaf = s2.leaf_at(ipa)?;
        Some(match leaf.size {
            GIB => 1,
            MIB_2 => 2,
            _ => 3,
        })
    }

    #[test]
    fn gib_aligned_range_maps_as_a_block() {
        let mut s2 = GuestStage2::new(1);
        s2.map_ram_u(RAM_BASE, 0x1_0000_0000, GIB).unwrap();
        assert_eq!(level_of(&s2, RAM_BASE), Some(1));
        assert_eq!(level_of(&s2, RAM_BASE + GIB - 1), Some(1));
        assert_eq!(s2.translate_u(RAM_BASE + 0x1234_5678), Some(0x1_1234_5678));
        let leaf = s2.leaf_at(RAM_BASE).unwrap();
        assert_eq!(leaf.attributes - Stage2Attributes::TABLE_OR_PAGE, GUEST_RAM_ATTRIBUTES);
        assert!(!leaf.attributes.contains(Stage2Attributes::XN));
    }

    #[test]
    fn two_mib_aligned_range_maps_as_2mib_blocks() {
        let mut s2 = GuestStage2::new(1);
        // PA only 2 MiB-aligned: no 1 GiB block possible even though the IPA is.
        s2.map_ram_u(RAM_BASE, 0x8020_0000, GIB).unwrap();
        for ipa in [RAM_BASE, RAM_BASE + MIB_2, RAM_BASE + GIB - PAGE] {
            assert_eq!(level_of(&s2, ipa), Some(2), "{ipa:#x}");
        }
        assert_eq!(s2.translate_u(RAM_BASE + GIB - 1), Some(0x8020_0000 + GIB - 1));
    }

    #[test]
    fn page_granular_range_maps_as_pages() {
        let mut s2 = GuestStage2::new(1);
        s2.map_ram_u(RAM_BASE + PAGE, 0x9000_3000, 3 * PAGE).unwrap();
        for i in 1..4 {
            assert_eq!(level_of(&s2, RAM_BASE + i * PAGE), Some(3));
        }
        assert_eq!(s2.translate_u(RAM_BASE + PAGE + 0x10), Some(0x9000_3010));
        assert_eq!(s2.translate_u(RAM_BASE + 3 * PAGE + 0xfff), Some(0x9000_5fff));
        assert_eq!(s2.translate_u(RAM_BASE), None);
        assert_eq!(s2.translate_u(RAM_BASE + 4 * PAGE), None);
    }

    #[test]
    fn mixed_alignment_uses_the_largest_possible_mappings() {
        let mut s2 = GuestStage2::new(1);
        // Starts one page before a 2 MiB boundary and ends one page after the next one.
        s2.map_ram_u(RAM_BASE + MIB_2 - PAGE, 0x8020_0000 - PAGE, MIB_2 + 2 * PAGE).unwrap();
        assert_eq!(level_of(&s2, RAM_BASE + MIB_2 - PAGE), Some(3));
        assert_eq!(level_of(&s2, RAM_BASE + MIB_2), Some(2));
        assert_eq!(level_of(&s2, RAM_BASE + 2 * MIB_2), Some(3));
        assert_eq!(s2.translate_u(RAM_BASE + 2 * MIB_2 + 8), Some(0x8040_0008));
    }

    #[test]
    fn device_space_and_beyond_are_unmapped() {
        let mut s2 = GuestStage2::new(1);
        s2.map_ram_u(RAM_BASE, 0x1_0000_0000, GIB).unwrap();
        for ipa in [0, 0x0800_0000, 0x0900_0000, RAM_BASE - 1, RAM_BASE + GIB] {
            assert_eq!(s2.translate_u(ipa), None, "{ipa:#x}");
        }
        assert_eq!(s2.translate_u(IPA_SPACE_SIZE), None);
        assert_eq!(s2.translate_u(u64::MAX), None);
    }

    #[test]
    fn unmapping_a_page_inside_a_block_keeps_the_rest() {
        let mut s2 = GuestStage2::new(1);
        s2.map_ram_u(RAM_BASE, 0x1_0000_0000, GIB).unwrap();
        let hole = RAM_BASE + 3 * MIB_2 + 5 * PAGE;
        s2.unmap_u(hole, PAGE).unwrap();
        assert_eq!(s2.translate_u(hole), None);
        assert_eq!(s2.translate_u(hole + PAGE - 1), None);
        assert_eq!(s2.translate_u(hole - 1), Some(0x1_0000_0000 + (hole - 1 - RAM_BASE)));
        assert_eq!(s2.translate_u(hole + PAGE), Some(0x1_0000_0000 + (hole + PAGE - RAM_BASE)));
        // Only the 2 MiB around the hole is in pages; the rest went back to 2 MiB blocks.
        assert_eq!(level_of(&s2, hole - PAGE), Some(3));
        assert_eq!(level_of(&s2, RAM_BASE), Some(2));
        assert_eq!(level_of(&s2, RAM_BASE + GIB - PAGE), Some(2));
        assert_eq!(s2.translate_u(RAM_BASE + GIB - 1), Some(0x1_0000_0000 + GIB - 1));
    }

    #[test]
    fn unmapping_across_blocks_and_remapping() {
        let mut s2 = GuestStage2::new(1);
        s2.map_ram_u(RAM_BASE, 0x8000_0000, 4 * MIB_2).unwrap();
        // From the middle of block 1 to the middle of block 2.
        let start = RAM_BASE + MIB_2 + MIB_2 / 2;
        s2.unmap_u(start, MIB_2).unwrap();
        assert_eq!(s2.translate_u(start - PAGE), Some(0x8000_0000 + MIB_2 + MIB_2 / 2 - PAGE));
        assert_eq!(s2.translate_u(start), None);
        assert_eq!(s2.translate_u(start + MIB_2 - PAGE), None);
        assert_eq!(s2.translate_u(start + MIB_2), Some(0x8000_0000 + 3 * MIB_2 - MIB_2 / 2));
        assert_eq!(level_of(&s2, RAM_BASE), Some(2));
        assert_eq!(level_of(&s2, RAM_BASE + 3 * MIB_2), Some(2));
        // Unmapping what is already unmapped is fine; the hole can be mapped again.
        s2.unmap_u(start, MIB_2).unwrap();
        s2.map_ram_u(start, 0x9000_0000, MIB_2).unwrap();
        assert_eq!(s2.translate_u(start + 0x10), Some(0x9000_0010));
        assert_eq!(s2.map_ram_u(start, 0x9000_0000, PAGE), Err(Stage2Error::AlreadyMapped { ipa: start }));
    }

    #[test]
    fn unmapping_everything_leaves_nothing() {
        let mut s2 = GuestStage2::new(1);
        s2.map_ram_u(RAM_BASE, 0x1_0000_0000, GIB + MIB_2 + PAGE).unwrap();
        s2.unmap_u(RAM_BASE, GIB + MIB_2 + PAGE).unwrap();
        for ipa in [RAM_BASE, RAM_BASE + GIB, RAM_BASE + GIB + MIB_2] {
            assert_eq!(s2.translate_u(ipa), None);
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        let mut s2 = GuestStage2::new(1);
        let bad_range = |ipa, size| Err(Stage2Error::BadRange { ipa, size });
        assert_eq!(s2.map_ram_u(RAM_BASE + 1, 0x8000_0000, PAGE), bad_range(RAM_BASE + 1, PAGE));
        assert_eq!(s2.map_ram_u(RAM_BASE, 0x8000_0000, 100), bad_range(RAM_BASE, 100));
        assert_eq!(s2.map_ram_u(RAM_BASE, 0x8000_0000, 0), bad_range(RAM_BASE, 0));
        assert_eq!(s2.unmap_u(RAM_BASE, 0), bad_range(RAM_BASE, 0));
        assert_eq!(
            s2.map_ram_u(0x0900_0000, 0x8000_0000, PAGE),
            Err(Stage2Error::DeviceSpace { ipa: 0x0900_0000, size: PAGE })
        );
        assert_eq!(
            s2.map_ram_u(RAM_BASE - PAGE, 0x8000_0000, 2 * PAGE),
            Err(Stage2Error::DeviceSpace { ipa: RAM_BASE - PAGE, size: 2 * PAGE })
        );
        let top = IPA_SPACE_SIZE - PAGE;
        assert_eq!(s2.map_ram_u(top, 0x8000_0000, 2 * PAGE), Err(Stage2Error::OutOfRange { ipa: top, size: 2 * PAGE }));
        let wraps = u64::MAX - PAGE + 1;
        assert!(matches!(s2.map_ram_u(wraps, 0, 2 * PAGE), Err(Stage2Error::OutOfRange { .. })));
        assert!(matches!(s2.unmap_u(wraps, 2 * PAGE), Err(Stage2Error::OutOfRange { .. })));
        for pa in [0x8000_0001, (1 << MAX_PA_BITS) - PAGE, u64::MAX - PAGE + 1] {
            assert_eq!(
                s2.map_ram_u(RAM_BASE, pa, 2 * PAGE),
                Err(Stage2Error::BadPhysicalAddress { pa, size: 2 * PAGE })
            );
        }
        assert_eq!(s2.translate_u(RAM_BASE), None, "refused requests map nothing");
        s2.map_ram_u(RAM_BASE, 0x8000_0000, MIB_2).unwrap();
        let overlap = RAM_BASE + MIB_2 - PAGE;
        assert_eq!(s2.map_ram_u(overlap, 0x9000_0000, 2 * PAGE), Err(Stage2Error::AlreadyMapped { ipa: overlap }));
        assert_eq!(s2.translate_u(overlap + PAGE), None, "a refused map changes nothing");
    }

    #[test]
    fn vttbr_holds_the_root_table_and_vmid() {
        let s2 = GuestStage2::new(0x2a);
        let vttbr = s2.vttbr();
        assert_eq!(vttbr >> VTTBR_VMID_SHIFT, 0x2a);
        let root = vttbr & ((1 << VTTBR_VMID_SHIFT) - 1);
        assert_eq!(root, s2.mapping.root_address().0 as u64);
        assert_ne!(root, 0);
        assert_eq!(root % GRANULE, 0, "the root table is 4 KiB-aligned; CnP (bit 0) is clear");
        assert_eq!(s2.vmid(), 0x2a);
    }

    #[test]
    fn vtcr_fields() {
        let vtcr = vtcr_value(0b0010); // 40-bit PA, as on a Cortex-A53
        let field = |shift: u32, bits: u32| (vtcr >> shift) & ((1 << bits) - 1);
        assert_eq!(field(0, 6), 25, "T0SZ: 39-bit IPA");
        assert_eq!(field(6, 2), 1, "SL0: start at level 1");
        assert_eq!(field(8, 2), 1, "IRGN0: write-back");
        assert_eq!(field(10, 2), 1, "ORGN0: write-back");
        assert_eq!(field(12, 2), 3, "SH0: inner shareable");
        assert_eq!(field(14, 2), 0, "TG0: 4 KiB");
        assert_eq!(field(16, 3), 0b010, "PS: as given");
        assert_eq!(field(19, 1), 0, "VS: 8-bit VMID");
        assert_eq!(field(31, 1), 1, "RES1");
        assert_eq!(vtcr >> 32, 0);
        assert_eq!(vtcr & (0xfff << 19) & !(1 << 31), 0, "nothing else set");
        let ps = |pa_range| (vtcr_value(pa_range) >> 16) & 0b111;
        assert_eq!(ps(0b0101), 0b101);
        assert_eq!(ps(0b0110), 0b101, "52-bit PA is capped at 48");
        assert_eq!(ps(0xffff), 0b101, "only the 4-bit field is used");
    }

    #[test]
    fn tables_can_be_shared_between_cpus() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<GuestStage2>();
    }
}
