//! What an MMIO data abort needs: the guest-physical address it hit and, from the syndrome,
//! the single load or store the guest was doing, so a device model can emulate it.

use super::syndrome::ISS_WNR;

/// HPFAR_EL2.FIPA, bits [43:4]: bits [51:12] of the faulting IPA (the page, not the offset).
/// Enough for any 52-bit IPA; this hypervisor's guests use far fewer bits.
const HPFAR_FIPA_MASK: u64 = 0x0000_0FFF_FFFF_FFF0;
/// FIPA sits at bit 4 but describes IPA bits from 12 up: shifting left by 8 lines them up.
const HPFAR_FIPA_TO_IPA_SHIFT: u32 = 8;
/// FAR_EL2 supplies the byte offset within the 4 KiB page, which HPFAR_EL2 does not hold.
const PAGE_OFFSET_MASK: u64 = 0xFFF;

/// The intermediate physical address of a stage 2 data abort.
///
/// HPFAR_EL2 gives the page and FAR_EL2 (a guest *virtual* address) the offset within it,
/// which is the same in both address spaces. When the abort reports FnV, the offset bits
/// from FAR_EL2 are meaningless.
pub fn fault_ipa(hpfar: u64, far: u64) -> u64 {
    ((hpfar & HPFAR_FIPA_MASK) << HPFAR_FIPA_TO_IPA_SHIFT) | (far & PAGE_OFFSET_MASK)
}

/// Data abort ISS, valid instruction syndrome fields (Arm ARM, ESR_EL2 ISS for a data abort).
/// ISV, bit [24]: bits [23:14] describe the access.
const ISS_ISV: u32 = 1 << 24;
/// SAS, bits [23:22]: log2 of the access size in bytes.
const ISS_SAS_SHIFT: u32 = 22;
const ISS_SAS_MASK: u32 = 0b11;
/// SSE, bit [21]: the load sign-extends.
const ISS_SSE: u32 = 1 << 21;
/// SRT, bits [20:16]: the transfer register number.
const ISS_SRT_SHIFT: u32 = 16;
const ISS_SRT_MASK: u32 = 0b1_1111;
/// SF, bit [15]: the register is 64-bit (Xn) rather than 32-bit (Wn).
const ISS_SF: u32 = 1 << 15;
/// AR, bit [14]: the instruction has acquire/release semantics.
const ISS_AR: u32 = 1 << 14;

const BITS_PER_BYTE: u32 = 8;
const REGISTER_BITS: u32 = u64::BITS;
/// What a write to a Wn register keeps: the upper 32 bits of Xn become zero.
const W_REGISTER_MASK: u64 = u32::MAX as u64;

/// One load or store of a general-purpose register, as described by the syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAccess {
    /// Access size in bytes: 1, 2, 4 or 8.
    pub size: u8,
    pub is_write: bool,
    /// Transfer register: 0..=30 is x0..x30, and 31 is XZR (reads as zero, writes ignored),
    /// never SP. See [`super::read_gpr`] and [`super::write_gpr`].
    pub reg: u8,
    /// SSE: a load sign-extends the value it reads.
    pub sign_extend: bool,
    /// SF: the register is Xn; otherwise Wn, whose upper half a load clears.
    pub sixty_four: bool,
    /// AR: load-acquire or store-release. Trapping already orders the access, so a device
    /// model may ignore it.
    pub acquire_release: bool,
}

impl MmioAccess {
    /// The access described by a data abort ISS, or `None` when ISV = 0 (the hardware did
    /// not describe it, e.g. a load pair or a writeback addressing mode).
    pub fn from_iss(iss: u32) -> Option<Self> {
        if iss & ISS_ISV == 0 {
            return None;
        }
        let size_log2 = (iss >> ISS_SAS_SHIFT) & ISS_SAS_MASK;
        Some(Self {
            size: 1 << size_log2,
            is_write: iss & ISS_WNR != 0,
            // Five bits after masking: the narrowing is lossless.
            reg: ((iss >> ISS_SRT_SHIFT) & ISS_SRT_MASK) as u8,
            sign_extend: iss & ISS_SSE != 0,
            sixty_four: iss & ISS_SF != 0,
            acquire_release: iss & ISS_AR != 0,
        })
    }

    /// The value to put in the register after a device returned `raw` for this load:
    /// truncated to the access size, sign-extended if the instruction asks for it, and with
    /// the upper half cleared for a Wn destination.
    pub fn load_value(&self, raw: u64) -> u64 {
        let mut value = raw & self.size_mask();
        let bits = self.size_bits();
        if self.sign_extend && bits > 0 && bits < REGISTER_BITS {
            let unused = REGISTER_BITS - bits;
            value = (((value << unused) as i64) >> unused) as u64;
        }
        if !self.sixty_four {
            value &= W_REGISTER_MASK;
        }
        value
    }

    /// The bytes a store writes to the device, from the value of the source register.
    pub fn store_value(&self, reg_value: u64) -> u64 {
        reg_value & self.size_mask()
    }

    fn size_bits(&self) -> u32 {
        u32::from(self.size) * BITS_PER_BYTE
    }

    /// Ones in the low `size` bytes; all ones for 8 bytes (or a larger, impossible size).
    fn size_mask(&self) -> u64 {
        1u64.checked_shl(self.size_bits()).map_or(u64::MAX, |bit| bit - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(size: u8, sign_extend: bool, sixty_four: bool) -> MmioAccess {
        MmioAccess { size, is_write: false, reg: 0, sign_extend, sixty_four, acquire_release: false }
    }

    #[test]
    fn fault_ipa_joins_page_and_offset() {
        // IPA 0x0A00_01F0 (virtio-mmio slot 0, offset 0x1F0): HPFAR holds IPA >> 12 at bit 4,
        // i.e. IPA >> 8 with the low nibble clear, and FAR's low 12 bits give the offset.
        let hpfar = 0x0A00_0000 >> 8;
        assert_eq!(hpfar, 0x000A_0000);
        assert_eq!(fault_ipa(hpfar, 0xFFFF_8000_1234_51F0), 0x0A00_01F0);
    }

    #[test]
    fn fault_ipa_ignores_bits_outside_fipa() {
        // HPFAR_EL2.NS (bit 63) and the RES0 low nibble are not address bits.
        assert_eq!(fault_ipa((1 << 63) | 0x000A_000F, 0x1F0), 0x0A00_01F0);
        // The largest IPA FIPA can describe (52 bits).
        assert_eq!(fault_ipa(u64::MAX, u64::MAX), 0x000F_FFFF_FFFF_FFFF);
    }

    #[test]
    fn isv_clear_gives_no_access() {
        assert_eq!(MmioAccess::from_iss(0), None);
        assert_eq!(MmioAccess::from_iss(ISS_ISV - 1), None);
    }

    #[test]
    fn loads_truncate_to_the_access_size() {
        let raw = 0x1122_3344_5566_7788;
        assert_eq!(access(1, false, false).load_value(raw), 0x88);
        assert_eq!(access(2, false, false).load_value(raw), 0x7788);
        assert_eq!(access(4, false, false).load_value(raw), 0x5566_7788);
        assert_eq!(access(8, false, true).load_value(raw), raw);
    }

    #[test]
    fn sign_extension_follows_the_register_width() {
        // ldrsb/ldrsh into Wn: sign-extend to 32 bits, upper half zero.
        assert_eq!(access(1, true, false).load_value(0xFF), 0xFFFF_FFFF);
        assert_eq!(access(2, true, false).load_value(0x8001), 0xFFFF_8001);
        // ldrsb/ldrsh/ldrsw into Xn: sign-extend to 64 bits.
        assert_eq!(access(1, true, true).load_value(0x80), 0xFFFF_FFFF_FFFF_FF80);
        assert_eq!(access(2, true, true).load_value(0x8001), 0xFFFF_FFFF_FFFF_8001);
        assert_eq!(access(4, true, true).load_value(0x8000_0000), 0xFFFF_FFFF_8000_0000);
        // Positive values stay as they are; bits above the access size never leak in.
        assert_eq!(access(1, true, true).load_value(0xAB7F), 0x7F);
    }

    #[test]
    fn stores_truncate_to_the_access_size() {
        let reg = 0x1122_3344_5566_7788;
        let store = |size| MmioAccess { is_write: true, ..access(size, false, true) };
        assert_eq!(store(1).store_value(reg), 0x88);
        assert_eq!(store(2).store_value(reg), 0x7788);
        assert_eq!(store(4).store_value(reg), 0x5566_7788);
        assert_eq!(store(8).store_value(reg), reg);
    }

    #[test]
    fn impossible_sizes_do_not_panic() {
        // Sizes other than 1, 2, 4, 8 cannot come from `from_iss`, but the fields are public.
        for size in [0, 3, 16, u8::MAX] {
            let a = access(size, true, true);
            let _ = a.load_value(u64::MAX);
            let _ = a.store_value(u64::MAX);
        }
    }
}
