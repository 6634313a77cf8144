//! CPU affinity paths (Aff3.Aff2.Aff1.Aff0): how GIC registers name target CPUs.
//!
//! Three encodings meet in the virtual GIC: MPIDR_EL1 and GICD_IROUTER<n> share one layout,
//! GICR_TYPER packs the four levels into 32 bits, and ICC_SGI1R_EL1 spreads them around its own
//! fields (decoded in `sgi.rs`).

/// Aff0, bits [7:0] of MPIDR_EL1 / GICD_IROUTER<n>.
const MPIDR_AFF0_SHIFT: u32 = 0;
/// Aff1, bits [15:8].
const MPIDR_AFF1_SHIFT: u32 = 8;
/// Aff2, bits [23:16].
const MPIDR_AFF2_SHIFT: u32 = 16;
/// Aff3, bits [39:32].
const MPIDR_AFF3_SHIFT: u32 = 32;
const AFF_LEVEL_MASK: u64 = 0xFF;

/// One CPU's affinity path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Affinity {
    pub aff3: u8,
    pub aff2: u8,
    pub aff1: u8,
    pub aff0: u8,
}

impl Affinity {
    /// From an MPIDR_EL1 or GICD_IROUTER<n> value (other bits are ignored).
    pub const fn from_mpidr(mpidr: u64) -> Self {
        const fn level(value: u64, shift: u32) -> u8 {
            ((value >> shift) & AFF_LEVEL_MASK) as u8
        }
        Self {
            aff3: level(mpidr, MPIDR_AFF3_SHIFT),
            aff2: level(mpidr, MPIDR_AFF2_SHIFT),
            aff1: level(mpidr, MPIDR_AFF1_SHIFT),
            aff0: level(mpidr, MPIDR_AFF0_SHIFT),
        }
    }

    /// Back to the MPIDR_EL1 / GICD_IROUTER<n> layout.
    pub const fn to_mpidr(self) -> u64 {
        (self.aff3 as u64) << MPIDR_AFF3_SHIFT
            | (self.aff2 as u64) << MPIDR_AFF2_SHIFT
            | (self.aff1 as u64) << MPIDR_AFF1_SHIFT
            | (self.aff0 as u64) << MPIDR_AFF0_SHIFT
    }

    /// Aff3:Aff2:Aff1:Aff0 as one 32-bit value, the form of GICR_TYPER.Affinity_Value.
    pub const fn packed(self) -> u32 {
        u32::from_be_bytes([self.aff3, self.aff2, self.aff1, self.aff0])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_convert() {
        let aff = Affinity { aff3: 4, aff2: 3, aff1: 2, aff0: 1 };
        assert_eq!(aff.to_mpidr(), 0x04_0003_0201);
        assert_eq!(Affinity::from_mpidr(0x04_8003_0201), aff, "MPIDR bit 31 (RES1) is ignored");
        assert_eq!(aff.packed(), 0x0403_0201);
    }
}
