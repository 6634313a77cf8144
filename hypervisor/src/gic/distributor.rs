//! GICD MMIO emulation: the guest's distributor registers, served from the shadow state.
//!
//! The distributor is a single-security-state GICv3 (GICD_CTLR.DS = 1, as the guest runs at
//! non-secure EL1 with nothing to hide from it) with affinity routing always on
//! (GICD_CTLR.ARE = 1): SGIs and PPIs are configured in the redistributors, and SPIs are routed
//! with GICD_IROUTER<n>. There are no LPIs, no message-based SPIs and no extended ranges.

use super::irq::{INTID_END, MAX_PINTID};
use super::regs::{ArrayAccess, Bank};
use super::vgic::Vgic;
use super::view::{Groups, View, IROUTER_WRITABLE};
use super::{
    is_valid_size, merge_window, reg64_shift, size_mask, Kick, MmioRead, MmioWrite, RegAccess, IIDR, PIDR2_ARCH_GICV3,
    PIDR2_OFFSET,
};
use crate::guest_map::GICD_SIZE;

const GICD_CTLR: u64 = 0x0000;
const GICD_TYPER: u64 = 0x0004;
const GICD_IIDR: u64 = 0x0008;
const GICD_TYPER2: u64 = 0x000C;
const GICD_STATUSR: u64 = 0x0010;
/// GICD_IROUTER<n> at 0x6000 + 8n, for n = 32..=1019 (lower n are reserved).
const GICD_IROUTER: u64 = 0x6000;
const GICD_IROUTER_END: u64 = GICD_IROUTER + 8 * (MAX_PINTID as u64 + 1);
const IROUTER_SIZE: u64 = 8;

/// GICD_CTLR.EnableGrp0, bit [0], and EnableGrp1, bit [1] (single security state names).
const CTLR_ENABLE_GRP0: u64 = 1 << 0;
const CTLR_ENABLE_GRP1: u64 = 1 << 1;
/// GICD_CTLR.ARE, bit [4]: affinity routing, always on.
const CTLR_ARE: u64 = 1 << 4;
/// GICD_CTLR.DS, bit [6]: one security state, always.
const CTLR_DS: u64 = 1 << 6;
// GICD_CTLR.RWP, bit [31], always reads 0: register writes take effect at once.

/// GICD_TYPER.ITLinesNumber, bits [4:0]: implemented INTIDs are 0..32 * (N + 1).
const TYPER_IT_LINES: u64 = (INTID_END as u64).div_ceil(32) - 1;
/// GICD_TYPER.IDbits, bits [23:19]: INTID bits minus one; 10 bits cover 0..1023 (no LPIs).
const TYPER_ID_BITS_SHIFT: u32 = 19;
const TYPER_ID_BITS: u64 = 10 - 1;
/// The whole GICD_TYPER. Zero fields: CPUNumber (ignored with ARE), SecurityExtn (one
/// security state), MBIS, LPIS, RSS (SGI targets only Aff0 0..15), ESPI.
const TYPER: u64 = TYPER_ID_BITS << TYPER_ID_BITS_SHIFT | TYPER_IT_LINES;

const WORD: u8 = 4;

impl Vgic {
    /// Emulates a guest read of `size` bytes at `offset` in the GICD frame.
    pub fn gicd_read(&self, offset: u64, size: u8) -> MmioRead {
        if offset >= GICD_SIZE {
            return MmioRead::refused(RegAccess::Unknown);
        }
        if !is_valid_size(size) {
            return MmioRead::refused(RegAccess::WrongSize);
        }
        if (GICD_IROUTER..GICD_IROUTER_END).contains(&offset) {
            return self.read_distributor(|view| view.irouter_read(offset, size));
        }
        let value = match offset {
            GICD_CTLR => self.ctlr(),
            GICD_TYPER => TYPER,
            GICD_IIDR => IIDR.into(),
            GICD_TYPER2 | GICD_STATUSR => 0,
            PIDR2_OFFSET => PIDR2_ARCH_GICV3.into(),
            _ => {
                return match ArrayAccess::decode(offset, size) {
                    Ok(access) => self.read_distributor(|view| MmioRead::ok(view.array_read(Bank::Spis, access))),
                    Err(refusal) => MmioRead::refused(refusal),
                };
            }
        };
        if size != WORD {
            return MmioRead::refused(RegAccess::WrongSize);
        }
        MmioRead::ok(value)
    }

    /// Emulates a guest write of the low `size` bytes of `value` at `offset` in the GICD frame.
    pub fn gicd_write(&self, offset: u64, size: u8, value: u64) -> MmioWrite {
        if offset >= GICD_SIZE {
            return MmioWrite::refused(RegAccess::Unknown);
        }
        if !is_valid_size(size) {
            return MmioWrite::refused(RegAccess::WrongSize);
        }
        let value = value & size_mask(size);
        if (GICD_IROUTER..GICD_IROUTER_END).contains(&offset) {
            return self.on_distributor(|view| view.irouter_write(offset, size, value));
        }
        match offset {
            GICD_CTLR | GICD_TYPER | GICD_IIDR | GICD_TYPER2 | GICD_STATUSR | PIDR2_OFFSET if size != WORD => {
                MmioWrite::refused(RegAccess::WrongSize)
            }
            GICD_CTLR => MmioWrite::ok(self.set_ctlr(value)),
            // Read-only identification, and a status register with nothing to report.
            GICD_TYPER | GICD_IIDR | GICD_TYPER2 | GICD_STATUSR | PIDR2_OFFSET => MmioWrite::ok(Kick::NONE),
            _ => match ArrayAccess::decode(offset, size) {
                Ok(access) => self.on_distributor(|view| MmioWrite::ok(view.array_write(Bank::Spis, access, value))),
                Err(refusal) => MmioWrite::refused(refusal),
            },
        }
    }

    fn ctlr(&self) -> u64 {
        let groups = self.groups();
        let mut ctlr = CTLR_ARE | CTLR_DS;
        if groups.grp0 {
            ctlr |= CTLR_ENABLE_GRP0;
        }
        if groups.grp1 {
            ctlr |= CTLR_ENABLE_GRP1;
        }
        ctlr
    }

    /// Only the group enables are writable. Changing one can change what every vCPU may take.
    fn set_ctlr(&self, value: u64) -> Kick {
        let groups = Groups { grp0: value & CTLR_ENABLE_GRP0 != 0, grp1: value & CTLR_ENABLE_GRP1 != 0 };
        self.on_distributor(|view| match view.dist.as_deref_mut() {
            Some(dist) if groups != view.groups => {
                self.store_groups(dist, groups);
                Kick::first(self.cfg.num_vcpus)
            }
            _ => Kick::NONE,
        })
    }
}

impl View<'_> {
    /// The INTID a GICD_IROUTER<n> offset belongs to, and the byte offset within the register.
    fn irouter_at(offset: u64) -> (u32, u64) {
        let relative = offset - GICD_IROUTER;
        // Below GICD_IROUTER_END, so at most 1019: fits.
        ((relative / IROUTER_SIZE) as u32, relative % IROUTER_SIZE)
    }

    fn irouter_read(&self, offset: u64, size: u8) -> MmioRead {
        let (intid, offset_in_reg) = Self::irouter_at(offset);
        let Some(shift) = reg64_shift(offset_in_reg, size) else {
            return MmioRead::refused(RegAccess::WrongSize);
        };
        // Reserved (n < 32) and unimplemented SPIs read as zero.
        let routes = self.dist.as_deref().map(|dist| &dist.routes);
        let route = super::irq::spi_index(intid).and_then(|spi| routes?.get(spi).copied()).unwrap_or(0);
        MmioRead::ok((route >> shift) & size_mask(size))
    }

    fn irouter_write(&mut self, offset: u64, size: u8, value: u64) -> MmioWrite {
        let (intid, offset_in_reg) = Self::irouter_at(offset);
        let Some(shift) = reg64_shift(offset_in_reg, size) else {
            return MmioWrite::refused(RegAccess::WrongSize);
        };
        let routes = self.dist.as_deref_mut().map(|dist| &mut dist.routes);
        let Some(current) = super::irq::spi_index(intid).and_then(|spi| routes?.get_mut(spi)) else {
            return MmioWrite::ok(Kick::NONE);
        };
        let route = merge_window(*current, shift, size, value) & IROUTER_WRITABLE;
        if route == *current {
            return MmioWrite::ok(Kick::NONE);
        }
        *current = route;
        // A new target may now have it; a list register on the old one may need withdrawing.
        MmioWrite::ok(self.attention(0, intid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gic::regs::{ICENABLER, ICFGR, IGROUPR, IPRIORITYR, ISENABLER, ISPENDR};
    use crate::guest_map::{SPI_BASE, UART_SPI};

    const UART: u32 = SPI_BASE + UART_SPI;

    fn read32(vgic: &Vgic, offset: u64) -> u64 {
        let read = vgic.gicd_read(offset, 4);
        assert_eq!(read.access, RegAccess::Ok, "read at {offset:#x}");
        read.value
    }

    fn write32(vgic: &Vgic, offset: u64, value: u64) -> Kick {
        let write = vgic.gicd_write(offset, 4, value);
        assert_eq!(write.access, RegAccess::Ok, "write at {offset:#x}");
        write.kick
    }

    fn irouter(intid: u32) -> u64 {
        GICD_IROUTER + IROUTER_SIZE * u64::from(intid)
    }

    #[test]
    fn identification_registers() {
        let vgic = Vgic::new(2);
        let typer = read32(&vgic, GICD_TYPER);
        assert_eq!(typer & 0x1F, 3, "ITLinesNumber: INTIDs up to 127");
        assert_eq!((typer >> 19) & 0x1F, 9, "IDbits: 10 bits");
        assert_eq!(typer & (1 << 16 | 1 << 17), 0, "no MBIS, no LPIs");
        assert_eq!((read32(&vgic, PIDR2_OFFSET) >> 4) & 0xF, 3, "ArchRev: GICv3");
        assert_eq!(read32(&vgic, GICD_TYPER2), 0);
        assert_ne!(read32(&vgic, GICD_IIDR), 0);
    }

    #[test]
    fn linux_dist_init_sequence() {
        let vgic = Vgic::new(2);
        write32(&vgic, GICD_CTLR, 0);
        assert_eq!(read32(&vgic, GICD_CTLR) & 1 << 31, 0, "RWP never set");
        for word in 1..4 {
            write32(&vgic, IGROUPR + 4 * word, !0);
            write32(&vgic, ICFGR + 4 * 2 * word, 0);
            write32(&vgic, ICFGR + 4 * 2 * word + 4, 0);
            for prio in 0..8 {
                write32(&vgic, IPRIORITYR + 32 * word + 4 * prio, 0xA0A0_A0A0);
            }
            write32(&vgic, ICENABLER + 4 * word, !0);
        }
        // ARE_NS | EnableGrp1A | EnableGrp1 as Linux writes them.
        write32(&vgic, GICD_CTLR, 1 << 4 | 1 << 1 | 1);
        let ctlr = read32(&vgic, GICD_CTLR);
        assert_eq!(ctlr & (CTLR_ARE | CTLR_ENABLE_GRP1), CTLR_ARE | CTLR_ENABLE_GRP1);
        for intid in SPI_BASE..INTID_END {
            let write = vgic.gicd_write(irouter(intid), 8, 0);
            assert_eq!(write.access, RegAccess::Ok);
        }
        assert_eq!(read32(&vgic, IGROUPR + 4), 0xFFFF_FFFF);
        assert_eq!(read32(&vgic, IPRIORITYR + 0x7C), 0xA0A0_A0A0);
        assert_eq!(read32(&vgic, IGROUPR), 0, "SGIs/PPIs live in the redistributors");
    }

    #[test]
    fn enabling_a_pending_spi_kicks_its_target() {
        let vgic = Vgic::new(4);
        write32(&vgic, GICD_CTLR, CTLR_ENABLE_GRP1);
        assert_eq!(vgic.gicd_write(irouter(UART), 8, 2).kick, Kick::NONE, "nothing pending");
        assert_eq!(vgic.set_pending(UART, 0), Kick::NONE, "still disabled");
        let word = ISENABLER + 4 * u64::from(UART / 32);
        assert_eq!(write32(&vgic, word, 1 << (UART % 32)), Kick::vcpu(2));
        assert_eq!(read32(&vgic, word), 1 << (UART % 32));
        assert_eq!(read32(&vgic, ISPENDR + 4), 1 << (UART % 32));
        assert!(vgic.has_deliverable(2) && !vgic.has_deliverable(0));

        // Re-routing to vCPU 3 with the 32-bit low half moves the kick there.
        let route = vgic.gicd_write(irouter(UART), 4, 3);
        assert_eq!((route.access, route.kick), (RegAccess::Ok, Kick::vcpu(3)));
        assert_eq!(vgic.gicd_read(irouter(UART), 8).value, 3);
    }

    #[test]
    fn irouter_keeps_only_defined_bits_and_splits_into_halves() {
        let vgic = Vgic::new(1);
        vgic.gicd_write(irouter(40), 8, u64::MAX);
        assert_eq!(vgic.gicd_read(irouter(40), 8).value, IROUTER_WRITABLE);
        assert_eq!(vgic.gicd_read(irouter(40) + 4, 4).value, 0xFF);
        vgic.gicd_write(irouter(40) + 4, 4, 0);
        assert_eq!(vgic.gicd_read(irouter(40), 8).value, IROUTER_WRITABLE & 0xFFFF_FFFF);
        assert_eq!(vgic.gicd_read(irouter(40) + 2, 2).access, RegAccess::WrongSize);
        assert_eq!(vgic.gicd_read(irouter(5), 8), MmioRead::ok(0), "reserved: RAZ");
        assert_eq!(vgic.gicd_write(irouter(1000), 8, 1).access, RegAccess::Ok, "WI");
    }

    #[test]
    fn priorities_are_byte_accessible() {
        let vgic = Vgic::new(1);
        let base = IPRIORITYR + u64::from(UART);
        assert_eq!(vgic.gicd_write(base, 1, 0x1234).access, RegAccess::Ok);
        assert_eq!(vgic.gicd_read(base, 1).value, 0x34);
        assert_eq!((read32(&vgic, base & !3) >> (8 * (base & 3))) & 0xFF, 0x34);
        assert_eq!(vgic.gicd_read(base & !3, 2).access, RegAccess::WrongSize);
    }

    #[test]
    fn wrong_sizes_and_unknown_offsets_are_reported() {
        let vgic = Vgic::new(1);
        assert_eq!(vgic.gicd_read(GICD_CTLR, 8).access, RegAccess::WrongSize);
        assert_eq!(vgic.gicd_write(GICD_CTLR, 1, 3).access, RegAccess::WrongSize);
        assert_eq!(read32(&vgic, GICD_CTLR) & CTLR_ENABLE_GRP1, 0, "ignored");
        assert_eq!(vgic.gicd_read(0x20, 4).access, RegAccess::Unknown);
        assert_eq!(vgic.gicd_write(0xF00, 4, 1).access, RegAccess::Unknown);
        assert_eq!(vgic.gicd_read(GICD_SIZE, 4).access, RegAccess::Unknown);
        assert_eq!(vgic.gicd_read(GICD_CTLR, 3).access, RegAccess::WrongSize);
    }

    #[test]
    fn no_access_panics() {
        let vgic = Vgic::new(2);
        for offset in (0..GICD_SIZE + 0x10).step_by(2).chain([u64::MAX - 7, 1 << 63]) {
            for size in [0, 1, 2, 3, 4, 8, 16, u8::MAX] {
                vgic.gicd_read(offset, size);
                vgic.gicd_write(offset, size, u64::MAX);
                vgic.gicd_write(offset, size, 0);
            }
        }
    }
}
