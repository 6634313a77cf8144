//! A ROS process's memory, by its virtual addresses: the built-in functions take pointers from
//! the calling process, and the HRT runs without the process's address space (no merge), so it
//! walks the process's stage-1 tables in software, through the linear map, and reads the pages
//! they name (palacios-hvm.md §7.5).
//!
//! The walk follows the architecture for a 4 KiB granule (TCR_EL1.TG0 = 0b00; the other
//! granules are refused): T0SZ gives the VA size and so the start level (48-bit: level 0,
//! 39-bit: level 1), each level resolves 9 bits, levels 1 and 2 may hold blocks, level 3 holds
//! pages, output addresses are bits [47:12]. With TCR_EL1.TBI0 (Linux sets it) the top byte of
//! a pointer is a tag and is dropped. Permissions, the access flag and memory attributes are
//! ignored: a valid descriptor is enough (Linux user pages; a page Linux has swapped out or made
//! PROT_NONE is invalid and fails the walk).
//!
//! Every table and every byte read must lie inside the [`GuestRam`] given (ROS RAM), or the walk
//! fails: the process (or a bug) cannot make the HRT read anything else. The ROS may change its
//! tables while we walk; that can only make us read the wrong bytes of its own RAM.

use core::convert::Infallible;
use core::fmt;
use core::ops::{ControlFlow, RangeInclusive};

use crate::fletcher::Fletcher64;
use crate::guest_ram::{Chunk, GuestRam};

/// TCR_EL1.T0SZ [5:0]: the TTBR0 region spans 2^(64 - T0SZ) bytes.
const TCR_T0SZ_MASK: u64 = 0x3f;
/// TCR_EL1.TG0 [15:14]; 0b00 is the 4 KiB granule.
const TCR_TG0_SHIFT: u32 = 14;
const TCR_TG0_MASK: u64 = 0b11;
const TG0_4K: u64 = 0b00;
/// TCR_EL1.TBI0 [37]: the top byte of a TTBR0 address is ignored by translation.
const TCR_TBI0: u64 = 1 << 37;
/// The top byte, which TBI ignores.
const TAG_MASK: u64 = 0xff << 56;
/// The T0SZ values walked: 48-bit VAs (start level 0) down to 25-bit ones (start level 2).
/// Below 16 are 52-bit VAs, which with 4 KiB pages need LPA2 (start level -1, another
/// descriptor format); above 39 needs FEAT_TTST. Linux uses 16 (48-bit) or 25 (39-bit).
const T0SZ_MIN: u64 = 16;
const T0SZ_MAX: u64 = 39;
const ADDRESS_BITS: u64 = 64;

/// The 4 KiB granule: a page, and the offset bits within it.
pub const PAGE_SIZE: u64 = 1 << PAGE_SHIFT;
const PAGE_SHIFT: u32 = 12;
/// Each level resolves 9 VA bits: 512 8-byte descriptors per table.
const BITS_PER_LEVEL: u32 = 9;
const INDEX_MASK: u64 = (1 << BITS_PER_LEVEL) - 1;
const DESCRIPTOR_BYTES: u64 = 8;
const LAST_LEVEL: u32 = 3;
/// Levels that may hold a block with a 4 KiB granule (1 GiB, 2 MiB).
const BLOCK_LEVELS: RangeInclusive<u32> = 1..=2;

/// TTBR0_EL1.BADDR [47:1] (the hypervisor has cleared the ASID [63:48] and CnP [0]).
const TTBR_BADDR_MASK: u64 = 0x0000_ffff_ffff_fffe;
/// Descriptor bit 0: valid. Bit 1: at levels 0-2 a table (else a block), at level 3 a page
/// (else reserved, i.e. invalid).
const DESC_VALID: u64 = 1 << 0;
const DESC_TABLE_OR_PAGE: u64 = 1 << 1;
/// The output address of a table, block or page descriptor: bits [47:12] (a block's low bits
/// below its size are RES0 and masked off). With TCR_EL1.DS (LPA2) bits [9:8] would hold
/// OA[51:50]: ignoring them is right for any address inside ROS RAM.
const DESC_OA_MASK: u64 = 0x0000_ffff_ffff_f000;

/// Longest string [`AddressSpace::read_c_string`] reads, without its NUL.
pub const STRING_MAX: usize = 255;
/// A buffer for [`AddressSpace::read_c_string`]: the string and its NUL.
pub type StringBuffer = [u8; STRING_MAX + 1];

/// Why a process's memory could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RosMemError {
    /// TCR_EL1.TG0 names a granule other than 4 KiB.
    Granule { tg0: u64 },
    /// TCR_EL1.T0SZ outside [`T0SZ_MIN`]..=[`T0SZ_MAX`].
    VaSize { t0sz: u64 },
    /// The address (after dropping a tag) lies beyond the TTBR0 region.
    OutsideVaRange { va: u64 },
    /// A translation table (or the descriptor in it) is not inside the RAM we may read.
    BadTable { va: u64, level: u32, table: u64 },
    /// An invalid descriptor (or a block where none may be).
    NotMapped { va: u64, level: u32 },
    /// The address translates to memory outside the RAM we may read.
    OutsideRam { va: u64, ipa: u64 },
    /// `va + len` overflows.
    RangeWraps { va: u64, len: u64 },
    /// No NUL within [`STRING_MAX`] + 1 bytes.
    Unterminated { va: u64 },
}

impl fmt::Display for RosMemError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Self::Granule { tg0 } => write!(f, "TCR_EL1.TG0 is {tg0:#04b}: only the 4 KiB granule is supported"),
            Self::VaSize { t0sz } => {
                write!(f, "TCR_EL1.T0SZ is {t0sz}: only {T0SZ_MIN}..={T0SZ_MAX} (48- to 25-bit VAs) is supported")
            }
            Self::OutsideVaRange { va } => write!(f, "VA {va:#x} lies outside the process's TTBR0 region"),
            Self::BadTable { va, level, table } => {
                write!(f, "VA {va:#x}: level {level} table at IPA {table:#x} lies outside ROS RAM")
            }
            Self::NotMapped { va, level } => write!(f, "VA {va:#x} is not mapped (level {level} descriptor)"),
            Self::OutsideRam { va, ipa } => write!(f, "VA {va:#x} maps IPA {ipa:#x}, outside ROS RAM"),
            Self::RangeWraps { va, len } => write!(f, "{len} bytes at VA {va:#x} wrap around"),
            Self::Unterminated { va } => write!(f, "no NUL within {} bytes at VA {va:#x}", STRING_MAX + 1),
        }
    }
}

/// The translation regime a TCR_EL1 / TTBR0_EL1 pair describes, checked.
#[derive(Clone, Copy, Debug)]
struct Regime {
    /// IPA of the start level's table.
    root: u64,
    va_bits: u32,
    start_level: u32,
    tagged: bool,
}

impl Regime {
    fn new(ttbr0: u64, tcr: u64) -> Result<Self, RosMemError> {
        let tg0 = (tcr >> TCR_TG0_SHIFT) & TCR_TG0_MASK;
        if tg0 != TG0_4K {
            return Err(RosMemError::Granule { tg0 });
        }
        let t0sz = tcr & TCR_T0SZ_MASK;
        if !(T0SZ_MIN..=T0SZ_MAX).contains(&t0sz) {
            return Err(RosMemError::VaSize { t0sz });
        }
        let va_bits = (ADDRESS_BITS - t0sz) as u32;
        // As many levels as it takes to resolve the bits above the page offset, 9 at a time;
        // the walk ends at level 3.
        let levels = (va_bits - PAGE_SHIFT).div_ceil(BITS_PER_LEVEL);
        Ok(Self {
            root: ttbr0 & TTBR_BADDR_MASK,
            va_bits,
            start_level: LAST_LEVEL + 1 - levels,
            tagged: tcr & TCR_TBI0 != 0,
        })
    }

    /// `va` without its tag (when TBI0 is on), or an error if it lies beyond the region.
    fn untag(&self, va: u64) -> Result<u64, RosMemError> {
        let untagged = if self.tagged { va & !TAG_MASK } else { va };
        if untagged >> self.va_bits != 0 {
            return Err(RosMemError::OutsideVaRange { va });
        }
        Ok(untagged)
    }
}

/// The VA bits below level `level`'s index: 39, 30, 21, 12 for levels 0..=3.
fn level_shift(level: u32) -> u32 {
    PAGE_SHIFT + BITS_PER_LEVEL * (LAST_LEVEL - level)
}

/// A process's address space: its TTBR0_EL1 and TCR_EL1 (from the comm page), and the RAM its
/// tables and pages must lie in.
#[derive(Clone, Copy, Debug)]
pub struct AddressSpace {
    ram: GuestRam,
    /// Checked once; an unsupported regime fails every access (but not the functions that make
    /// none).
    regime: Result<Regime, RosMemError>,
}

impl AddressSpace {
    pub fn new(ram: GuestRam, ttbr0: u64, tcr: u64) -> Self {
        Self { ram, regime: Regime::new(ttbr0, tcr) }
    }

    /// The IPA `va` translates to, inside the RAM.
    pub fn translate(&self, va: u64) -> Result<u64, RosMemError> {
        let regime = self.regime?;
        let untagged = regime.untag(va)?;
        let mut table = regime.root;
        for level in regime.start_level..=LAST_LEVEL {
            let shift = level_shift(level);
            let entry = table + ((untagged >> shift) & INDEX_MASK) * DESCRIPTOR_BYTES;
            let descriptor = self.ram.read_u64(entry).ok_or(RosMemError::BadTable { va, level, table })?;
            if descriptor & DESC_VALID == 0 {
                return Err(RosMemError::NotMapped { va, level });
            }
            let table_or_page = descriptor & DESC_TABLE_OR_PAGE != 0;
            let output = descriptor & DESC_OA_MASK;
            if level < LAST_LEVEL && table_or_page {
                table = output;
                continue;
            }
            // A page (level 3) or a block: what is left of the VA is the offset in it.
            let page = level == LAST_LEVEL && table_or_page;
            if !page && !BLOCK_LEVELS.contains(&level) {
                return Err(RosMemError::NotMapped { va, level });
            }
            let offset_mask = (1u64 << shift) - 1;
            let ipa = (output & !offset_mask) | (untagged & offset_mask);
            if !self.ram.range().contains(ipa, 1) {
                return Err(RosMemError::OutsideRam { va, ipa });
            }
            return Ok(ipa);
        }
        unreachable!("the walk returns at level {LAST_LEVEL}")
    }

    /// Hands `f` the bytes of `[va, va + len)` in order, one page (or less) at a time, each page
    /// translated on its own and only when reached: `f` breaking stops the walk (a string's NUL
    /// before an unmapped page). Touches nothing for `len` 0.
    pub fn for_each_chunk<B>(
        &self,
        va: u64,
        len: u64,
        mut f: impl FnMut(Chunk) -> ControlFlow<B>,
    ) -> Result<ControlFlow<B>, RosMemError> {
        if len == 0 {
            return Ok(ControlFlow::Continue(()));
        }
        let start = self.regime?.untag(va)?;
        let end = start.checked_add(len).ok_or(RosMemError::RangeWraps { va, len })?;
        let mut at = start;
        while at < end {
            let ipa = self.translate(at)?;
            // `at` lies in the TTBR0 region (translated): its page end does not overflow.
            let page_end = (at & !(PAGE_SIZE - 1)) + PAGE_SIZE;
            let run = end.min(page_end) - at;
            let chunk = self.ram.chunk(ipa, run).ok_or(RosMemError::OutsideRam { va: at, ipa })?;
            if let ControlFlow::Break(value) = f(chunk) {
                return Ok(ControlFlow::Break(value));
            }
            at += run;
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Copies `out.len()` bytes from `va`.
    pub fn read(&self, va: u64, out: &mut [u8]) -> Result<(), RosMemError> {
        let mut copied = 0;
        let ControlFlow::Continue(()) = self.for_each_chunk(va, out.len() as u64, |chunk| {
            for (slot, byte) in out[copied..].iter_mut().zip(chunk.bytes()) {
                *slot = byte;
            }
            copied += chunk.len() as usize;
            ControlFlow::<Infallible>::Continue(())
        })?;
        Ok(())
    }

    /// The Fletcher-64 (fletcher.rs) of `len` bytes at `va`.
    pub fn checksum(&self, va: u64, len: u64) -> Result<u64, RosMemError> {
        let mut sum = Fletcher64::new();
        let ControlFlow::Continue(()) = self.for_each_chunk(va, len, |chunk| {
            sum.add_chunk(&chunk);
            ControlFlow::<Infallible>::Continue(())
        })?;
        Ok(sum.finish())
    }

    /// The NUL-terminated string at `va` (at most [`STRING_MAX`] bytes before the NUL), copied
    /// into `buffer`; without the NUL. Reads no page past the NUL's.
    pub fn read_c_string<'b>(&self, va: u64, buffer: &'b mut StringBuffer) -> Result<&'b [u8], RosMemError> {
        let mut len = 0;
        let scanned = self.for_each_chunk(va, buffer.len() as u64, |chunk| {
            for byte in chunk.bytes() {
                if byte == 0 {
                    return ControlFlow::Break(());
                }
                buffer[len] = byte;
                len += 1;
            }
            ControlFlow::Continue(())
        })?;
        match scanned {
            ControlFlow::Break(()) => Ok(&buffer[..len]),
            ControlFlow::Continue(()) => Err(RosMemError::Unterminated { va }),
        }
    }
}
