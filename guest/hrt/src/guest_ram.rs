//! Bounds-checked access to a range of guest RAM through the linear map: the only way this
//! kernel touches memory it does not own (the ROS's page tables, buffers and invocation
//! blocks). Every access is checked against the range first, so a bad guest address is an
//! error, never a fault and never a device register.
//!
//! The other side (a ROS process, the ROS's kernel) may be writing the same memory meanwhile:
//! plain reads and writes are volatile, and the words both sides synchronise on are atomics.

use core::sync::atomic::AtomicU64;

use crate::boot::RamRange;

const WORD_BYTES: u64 = 8;
const U32_BYTES: u64 = 4;

/// A range of guest RAM and where the linear map maps it (guest-physical address P at
/// `linear_base + P`).
#[derive(Clone, Copy, Debug)]
pub struct GuestRam {
    range: RamRange,
    linear_base: u64,
}

impl GuestRam {
    /// `range` must be RAM the linear map maps as normal memory (ROS or HRT RAM from the boot
    /// info): every accessor below relies on it.
    pub fn new(range: RamRange, linear_base: u64) -> Self {
        Self { range, linear_base }
    }

    pub fn range(&self) -> RamRange {
        self.range
    }

    fn va(&self, ipa: u64) -> u64 {
        self.linear_base.wrapping_add(ipa)
    }

    /// `[ipa, ipa + len)` as a [`Chunk`], if it lies inside this RAM.
    pub fn chunk(&self, ipa: u64, len: u64) -> Option<Chunk> {
        self.range.contains(ipa, len).then(|| Chunk { va: self.va(ipa), len })
    }

    /// The linear-map address of the aligned word at `ipa`, if it lies inside this RAM.
    fn word_va(&self, ipa: u64) -> Option<u64> {
        (ipa.is_multiple_of(WORD_BYTES) && self.range.contains(ipa, WORD_BYTES)).then(|| self.va(ipa))
    }

    /// The 64-bit word at `ipa` (8-byte aligned, inside this RAM; else None).
    pub fn read_u64(&self, ipa: u64) -> Option<u64> {
        let va = self.word_va(ipa)?;
        // SAFETY: aligned and inside RAM that the linear map maps as normal memory (checked;
        // see `new`); a volatile read of memory another agent may be writing is well defined.
        Some(unsafe { core::ptr::read_volatile(va as *const u64) })
    }

    /// Writes the 64-bit word at `ipa` (8-byte aligned, inside this RAM; else None).
    pub fn write_u64(&self, ipa: u64, value: u64) -> Option<()> {
        let va = self.word_va(ipa)?;
        // SAFETY: as in read_u64. The word belongs to a block the other side handed us for
        // this write (an invocation's result); nothing of this kernel lives in that RAM.
        unsafe { core::ptr::write_volatile(va as *mut u64, value) };
        Some(())
    }

    /// The word at `ipa` (8-byte aligned, inside this RAM; else None) as an atomic: for the
    /// words both sides synchronise on (an invocation's `done`, a sync channel's counters).
    pub fn atomic_u64(&self, ipa: u64) -> Option<&'static AtomicU64> {
        let va = self.word_va(ipa)?;
        // SAFETY: aligned, inside RAM the linear map maps as normal (inner-shareable,
        // write-back) memory for good, so exclusives and acquire/release work on it and the
        // reference never dangles. The other side is required to access this word atomically.
        Some(unsafe { AtomicU64::from_ptr(va as *mut u64) })
    }
}

/// A run of guest RAM checked to lie inside a [`GuestRam`] (only [`GuestRam::chunk`] makes
/// one), read with volatile loads.
#[derive(Clone, Copy, Debug)]
pub struct Chunk {
    /// Where the linear map maps the first byte.
    va: u64,
    len: u64,
}

impl Chunk {
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The first `len` bytes (all of them if `len` is larger).
    pub fn prefix(&self, len: u64) -> Chunk {
        Chunk { len: len.min(self.len), ..*self }
    }

    /// The byte at `offset` (< `len`).
    pub fn byte(&self, offset: u64) -> u8 {
        assert!(offset < self.len, "chunk offset {offset} out of {}", self.len);
        // SAFETY: inside the checked range (the assert), which the linear map maps as normal
        // memory; a volatile read of memory another agent may be writing is well defined.
        unsafe { core::ptr::read_volatile((self.va + offset) as *const u8) }
    }

    /// The little-endian 32-bit word at `offset` (`offset + 4 <= len`): one load when it is
    /// aligned, four otherwise.
    pub fn u32_le(&self, offset: u64) -> u32 {
        assert!(offset + U32_BYTES <= self.len, "chunk word at {offset} out of {}", self.len);
        let va = self.va + offset;
        if va.is_multiple_of(U32_BYTES) {
            // SAFETY: as in byte(), and aligned. AArch64 here is little-endian.
            unsafe { core::ptr::read_volatile(va as *const u32) }
        } else {
            u32::from_le_bytes(core::array::from_fn(|index| self.byte(offset + index as u64)))
        }
    }

    /// Every byte, in order.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + Clone {
        let chunk = *self;
        (0..chunk.len).map(move |offset| chunk.byte(offset))
    }

    /// The offset of the first NUL byte, if any.
    pub fn find_nul(&self) -> Option<u64> {
        (0..self.len).find(|&offset| self.byte(offset) == 0)
    }
}
