//! Booting the HRT: its ELF image checked and placed in HRT RAM, the boot state at the top of
//! HRT RAM (boot info, comm page, first translation tables, stacks) and each core's first EL1
//! register values. The boot protocol is defined in `hvm_ros_lib::abi::hrt_boot`.
//!
//! Everything here is pure (it produces bytes and values); `vm::hvm` writes them into guest RAM
//! and starts the cores. As in Palacios (palacios-hvm.md §1.5), the hypervisor builds the HRT's
//! first page tables, so the HRT starts in Rust with the MMU on.
//!
//! HRT RAM, from the bottom: the image, free memory (the HRT's heap), the cores' stacks, the
//! translation tables, the boot info page and the comm page.

use alloc::vec;
use alloc::vec::Vec;

use hvm_ros_lib::abi::hrt_boot::{self, ATTR_DEVICE, ATTR_NORMAL, IMAGE_BASE, LINEAR_MAP_BASE, STACK_SIZE};
use hvm_ros_lib::abi::HrtBootInfo;
use object::elf::{FileHeader64, ProgramHeader64, EM_AARCH64, ET_EXEC, PF_X, PT_LOAD};
use object::read::elf::{FileHeader, ProgramHeader};
use object::LittleEndian;

use crate::mm::MemRange;

/// Translation granule and table size of the HRT's tables.
pub const PAGE_SIZE: u64 = 4096;
const ENTRIES_PER_TABLE: usize = 512;
/// Sizes mapped by one level-1 / level-2 block entry (4 KiB granule).
const L1_BLOCK: u64 = 1 << 30;
const L2_BLOCK: u64 = 2 << 20;
/// Bit positions of the level-0/1/2 table indexes in a virtual address.
const L0_SHIFT: u32 = 39;
const L1_SHIFT: u32 = 30;
const L2_SHIFT: u32 = 21;
const INDEX_MASK: u64 = ENTRIES_PER_TABLE as u64 - 1;

// Stage-1 descriptor fields (Arm ARM D8.3, VMSAv8-64 descriptor formats).
const DESC_TABLE: u64 = 0b11;
const DESC_BLOCK: u64 = 0b01;
const ATTR_INDEX_SHIFT: u32 = 2;
const SH_INNER: u64 = 0b11 << 8;
const ACCESS_FLAG: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

// TCR_EL1 fields.
const TCR_T0SZ_SHIFT: u32 = 0;
const TCR_EPD0: u64 = 1 << 7;
const TCR_T1SZ_SHIFT: u32 = 16;
const TCR_IRGN1_WBWA: u64 = 0b01 << 24;
const TCR_ORGN1_WBWA: u64 = 0b01 << 26;
const TCR_SH1_INNER: u64 = 0b11 << 28;
const TCR_TG1_4K: u64 = 0b10 << 30;
const TCR_IPS_SHIFT: u32 = 32;
/// IPS = 0b010: 40-bit intermediate physical addresses (the guest IPA space is 39 bits).
const TCR_IPS_40_BITS: u64 = 0b010;
/// 48-bit virtual addresses in both halves.
const VA_BITS: u64 = 48;

/// MAIR_EL1 attribute encodings.
const MAIR_NORMAL_WB: u64 = 0xff;
const MAIR_DEVICE_NGNRE: u64 = 0x04;
const MAIR_ATTR_BITS: u64 = 8;

// SCTLR_EL1: RES1 bits of ARMv8.0 (with SPAN = 1: taking an exception leaves PAN alone), and
// MMU, data cache, stack alignment check, instruction cache.
const SCTLR_RES1: u64 = 0x30d0_0800;
const SCTLR_M: u64 = 1 << 0;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_SA: u64 = 1 << 3;
const SCTLR_I: u64 = 1 << 12;

/// The guest-physical device space the HRT maps as device memory: the first GiB (GIC, UART).
const DEVICE_SPACE: MemRange = MemRange::new(0, L1_BLOCK);

/// Why an HRT image cannot be booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HrtImageError {
    /// Not a little-endian 64-bit AArch64 executable ELF, or its headers are malformed.
    NotAarch64Elf(&'static str),
    /// A loadable segment lies outside the image window, overlaps another, or its file bytes
    /// lie outside the file.
    BadSegment { vaddr: u64, memsz: u64 },
    /// No loadable segments.
    Empty,
    /// The entry point is not inside an executable segment.
    BadEntry(u64),
    /// The image and the boot state need more than the HRT's RAM.
    TooBig { needed: u64, available: u64 },
}

impl core::fmt::Display for HrtImageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotAarch64Elf(why) => write!(f, "not an AArch64 ELF executable ({why})"),
            Self::BadSegment { vaddr, memsz } => write!(
                f,
                "segment at {vaddr:#x} ({memsz:#x} bytes) is not inside the HRT image window at {IMAGE_BASE:#x} or its file data is truncated"
            ),
            Self::Empty => write!(f, "no loadable segments"),
            Self::BadEntry(entry) => write!(f, "entry point {entry:#x} is not in an executable segment"),
            Self::TooBig { needed, available } => {
                write!(f, "needs {needed:#x} bytes of HRT memory with its boot state, hrt_mem gives {available:#x}: raise hrt_mem=")
            }
        }
    }
}

/// One loadable segment: its bytes go to `offset` from the start of HRT RAM, followed by
/// zeroes up to `mem_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment<'a> {
    pub offset: u64,
    pub bytes: &'a [u8],
    pub mem_size: u64,
}

/// A checked HRT image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HrtImage<'a> {
    pub segments: Vec<Segment<'a>>,
    /// Virtual address of the entry point.
    pub entry: u64,
    /// Bytes of HRT RAM from its start to the end of the last segment.
    pub span: u64,
}

/// Checks an HRT ELF image: AArch64 executable, loadable segments inside the image window and
/// the file, not overlapping, entry point in an executable segment.
pub fn parse_image(elf: &[u8]) -> Result<HrtImage<'_>, HrtImageError> {
    let header =
        FileHeader64::<LittleEndian>::parse(elf).map_err(|_| HrtImageError::NotAarch64Elf("no ELF64 header"))?;
    let endian = header.endian().map_err(|_| HrtImageError::NotAarch64Elf("not little-endian"))?;
    if header.e_machine(endian) != EM_AARCH64 || header.e_type(endian) != ET_EXEC {
        return Err(HrtImageError::NotAarch64Elf("not an AArch64 executable"));
    }
    let headers: &[ProgramHeader64<LittleEndian>] =
        header.program_headers(endian, elf).map_err(|_| HrtImageError::NotAarch64Elf("malformed program headers"))?;
    let entry = header.e_entry(endian);
    let mut segments = Vec::new();
    let mut entry_ok = false;
    for ph in headers.iter().filter(|ph| ph.p_type(endian) == PT_LOAD) {
        let vaddr = ph.p_vaddr(endian);
        let memsz = ph.p_memsz(endian);
        let bad = HrtImageError::BadSegment { vaddr, memsz };
        let end = vaddr.checked_add(memsz).ok_or(bad)?;
        if vaddr < IMAGE_BASE || ph.p_filesz(endian) > memsz {
            return Err(bad);
        }
        let bytes = ph.data(endian, elf).map_err(|()| bad)?;
        let segment = Segment { offset: vaddr - IMAGE_BASE, bytes, mem_size: memsz };
        let overlaps = segments.iter().any(|s: &Segment<'_>| {
            segment.offset < s.offset + s.mem_size && s.offset < segment.offset + segment.mem_size
        });
        if overlaps {
            return Err(bad);
        }
        if ph.p_flags(endian) & PF_X != 0 && (vaddr..end).contains(&entry) {
            entry_ok = true;
        }
        segments.push(segment);
    }
    if segments.is_empty() {
        return Err(HrtImageError::Empty);
    }
    if !entry_ok {
        return Err(HrtImageError::BadEntry(entry));
    }
    let span = segments.iter().map(|s| s.offset + s.mem_size).max().unwrap_or(0);
    Ok(HrtImage { segments, entry, span })
}

/// Where the boot state lies in HRT RAM (guest-physical addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootLayout {
    pub hrt_ram: MemRange,
    pub ros_ram: MemRange,
    pub cores: usize,
    /// Free for the HRT: after the image, below the stacks.
    pub free: MemRange,
    /// Stack `n` ends at `stacks.start + (n + 1) * STACK_SIZE`.
    pub stacks: MemRange,
    pub tables: MemRange,
    pub boot_info: u64,
    pub comm_page: u64,
}

/// Number of translation table pages [`build_tables`] needs.
fn table_pages(ros_ram: MemRange, hrt_ram: MemRange) -> u64 {
    let gibs = |range: MemRange| range.end().div_ceil(L1_BLOCK) - range.start / L1_BLOCK;
    let ram = MemRange::new(ros_ram.start, hrt_ram.end() - ros_ram.start);
    // Root, the linear map's level 1, its level 2 tables, the image window's level 1 and level 2s.
    1 + 1 + gibs(ram) + 1 + hrt_ram.size.div_ceil(L1_BLOCK)
}

impl BootLayout {
    /// The layout for `cores` HRT cores and an image spanning `image_span` bytes. HRT RAM must
    /// lie directly above ROS RAM, both 2 MiB aligned.
    pub fn new(ros_ram: MemRange, hrt_ram: MemRange, cores: usize, image_span: u64) -> Result<Self, HrtImageError> {
        let tables = table_pages(ros_ram, hrt_ram) * PAGE_SIZE;
        let stacks = cores as u64 * STACK_SIZE;
        let boot_state = stacks + tables + 2 * PAGE_SIZE;
        let image_end = image_span.next_multiple_of(PAGE_SIZE);
        let needed = image_end + boot_state;
        if needed > hrt_ram.size {
            return Err(HrtImageError::TooBig { needed, available: hrt_ram.size });
        }
        let comm_page = hrt_ram.end() - PAGE_SIZE;
        let boot_info = comm_page - PAGE_SIZE;
        let tables = MemRange::new(boot_info - tables, tables);
        let stacks = MemRange::new(tables.start - stacks, stacks);
        let free = MemRange::new(hrt_ram.start + image_end, stacks.start - (hrt_ram.start + image_end));
        Ok(Self { hrt_ram, ros_ram, cores, free, stacks, tables, boot_info, comm_page })
    }

    /// Virtual address of a guest-physical address in the HRT's linear map.
    pub const fn linear_va(ipa: u64) -> u64 {
        LINEAR_MAP_BASE + ipa
    }

    /// Top of HRT core `core`'s stack, as a virtual address.
    pub fn stack_top_va(&self, core: usize) -> u64 {
        Self::linear_va(self.stacks.start + (core as u64 + 1) * STACK_SIZE)
    }

    /// Virtual address of the image's `entry`: the same (the image is linked at IMAGE_BASE).
    pub fn root_table(&self) -> u64 {
        self.tables.start
    }

    /// The boot info every core gets.
    pub fn boot_info(
        &self,
        first_hrt_vcpu: usize,
        counter_frequency: u64,
        now: u64,
        cmdline: &str,
        gic: GicFrames,
    ) -> HrtBootInfo {
        let mut line = [0u8; hrt_boot::CMDLINE_MAX];
        let kept = cmdline.len().min(hrt_boot::CMDLINE_MAX - 1);
        line[..kept].copy_from_slice(&cmdline.as_bytes()[..kept]);
        HrtBootInfo {
            magic: hrt_boot::MAGIC,
            hrt_cores: self.cores as u64,
            first_hrt_vcpu: first_hrt_vcpu as u64,
            hrt_mem_start: self.hrt_ram.start,
            hrt_mem_size: self.hrt_ram.size,
            ros_mem_start: self.ros_ram.start,
            ros_mem_size: self.ros_ram.size,
            linear_map_va: LINEAR_MAP_BASE,
            image_va: IMAGE_BASE,
            free_start: self.free.start,
            free_end: self.free.end(),
            comm_page: self.comm_page,
            counter_frequency,
            boot_start_counter: now,
            gicd_base: gic.gicd_base,
            gicr_base: gic.gicr_base,
            gicr_stride: gic.gicr_stride,
            upcall_intid: u64::from(gic.upcall_intid),
            cmdline: line,
        }
    }
}

/// The virtual GIC as the HRT finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicFrames {
    pub gicd_base: u64,
    pub gicr_base: u64,
    pub gicr_stride: u64,
    pub upcall_intid: u32,
}

/// One translation table page to write at guest-physical `ipa`.
pub struct TablePage {
    pub ipa: u64,
    pub entries: [u64; ENTRIES_PER_TABLE],
}

/// Allocates table pages, in order, from the layout's table area.
struct Tables {
    pages: Vec<TablePage>,
    next: u64,
}

impl Tables {
    fn alloc(&mut self) -> usize {
        self.pages.push(TablePage { ipa: self.next, entries: [0; ENTRIES_PER_TABLE] });
        self.next += PAGE_SIZE;
        self.pages.len() - 1
    }

    /// The table the level-`shift` entry for `va` under table `parent` points to, made if absent.
    fn child(&mut self, parent: usize, va: u64, shift: u32) -> usize {
        let index = ((va >> shift) & INDEX_MASK) as usize;
        let entry = self.pages[parent].entries[index];
        if entry & DESC_TABLE == DESC_TABLE {
            let ipa = entry & !(PAGE_SIZE - 1) & !(0xffff << 48);
            return self.pages.iter().position(|p| p.ipa == ipa).expect("tables point at our own pages");
        }
        let child = self.alloc();
        self.pages[parent].entries[index] = self.pages[child].ipa | DESC_TABLE;
        child
    }

    /// Maps `size` bytes at `va` to `ipa` with 2 MiB blocks (all three 2 MiB aligned).
    fn map_2m(&mut self, root: usize, va: u64, ipa: u64, size: u64, attributes: u64) {
        for offset in (0..size).step_by(L2_BLOCK as usize) {
            let l1 = self.child(root, va + offset, L0_SHIFT);
            let l2 = self.child(l1, va + offset, L1_SHIFT);
            let index = (((va + offset) >> L2_SHIFT) & INDEX_MASK) as usize;
            self.pages[l2].entries[index] = (ipa + offset) | attributes | DESC_BLOCK;
        }
    }
}

/// Normal write-back memory, EL1 read-write, never executable at EL0.
const fn normal(executable_at_el1: bool) -> u64 {
    let xn = if executable_at_el1 { UXN } else { UXN | PXN };
    (ATTR_NORMAL << ATTR_INDEX_SHIFT) | SH_INNER | ACCESS_FLAG | xn
}

/// The HRT's first translation tables (TTBR1 half): the linear map of the device space and of
/// ROS and HRT RAM, and the image window over HRT RAM. Returns the pages; the first is the root.
pub fn build_tables(layout: &BootLayout) -> Vec<TablePage> {
    let mut tables = Tables { pages: Vec::new(), next: layout.tables.start };
    let root = tables.alloc();
    // The device space: one level-1 block.
    let l1 = tables.child(root, BootLayout::linear_va(DEVICE_SPACE.start), L0_SHIFT);
    let index = ((BootLayout::linear_va(DEVICE_SPACE.start) >> L1_SHIFT) & INDEX_MASK) as usize;
    tables.pages[l1].entries[index] =
        DEVICE_SPACE.start | (ATTR_DEVICE << ATTR_INDEX_SHIFT) | ACCESS_FLAG | PXN | UXN | DESC_BLOCK;
    // ROS and HRT RAM (contiguous), not executable: code runs from the image window.
    let ram = MemRange::new(layout.ros_ram.start, layout.hrt_ram.end() - layout.ros_ram.start);
    tables.map_2m(root, BootLayout::linear_va(ram.start), ram.start, ram.size, normal(false));
    tables.map_2m(root, IMAGE_BASE, layout.hrt_ram.start, layout.hrt_ram.size, normal(true));
    debug_assert!(tables.pages.len() as u64 * PAGE_SIZE <= layout.tables.size);
    tables.pages
}

/// The EL1 registers an HRT core starts with (besides the general registers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct El1Boot {
    pub sctlr: u64,
    pub tcr: u64,
    pub mair: u64,
    pub ttbr1: u64,
    pub sp_el1: u64,
}

/// EL1 state for HRT core `core`: MMU on with the tables of [`build_tables`].
pub fn el1_boot(layout: &BootLayout, core: usize) -> El1Boot {
    let t_sz = 64 - VA_BITS;
    El1Boot {
        sctlr: SCTLR_RES1 | SCTLR_M | SCTLR_C | SCTLR_SA | SCTLR_I,
        tcr: (t_sz << TCR_T0SZ_SHIFT)
            | TCR_EPD0
            | (t_sz << TCR_T1SZ_SHIFT)
            | TCR_IRGN1_WBWA
            | TCR_ORGN1_WBWA
            | TCR_SH1_INNER
            | TCR_TG1_4K
            | (TCR_IPS_40_BITS << TCR_IPS_SHIFT),
        mair: (MAIR_NORMAL_WB << (ATTR_NORMAL * MAIR_ATTR_BITS))
            | (MAIR_DEVICE_NGNRE << (ATTR_DEVICE * MAIR_ATTR_BITS)),
        ttbr1: layout.root_table(),
        sp_el1: layout.stack_top_va(core),
    }
}

/// The boot info as the bytes written at [`BootLayout::boot_info`].
pub fn boot_info_bytes(info: &HrtBootInfo) -> Vec<u8> {
    let mut bytes = vec![0u8; core::mem::size_of::<HrtBootInfo>()];
    let words = [
        info.magic,
        info.hrt_cores,
        info.first_hrt_vcpu,
        info.hrt_mem_start,
        info.hrt_mem_size,
        info.ros_mem_start,
        info.ros_mem_size,
        info.linear_map_va,
        info.image_va,
        info.free_start,
        info.free_end,
        info.comm_page,
        info.counter_frequency,
        info.boot_start_counter,
        info.gicd_base,
        info.gicr_base,
        info.gicr_stride,
        info.upcall_intid,
    ];
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let cmdline_at = words.len() * 8;
    bytes[cmdline_at..].copy_from_slice(&info.cmdline);
    bytes
}
