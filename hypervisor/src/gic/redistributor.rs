//! GICR MMIO emulation: one redistributor per vCPU, each a 128 KiB pair of 64 KiB frames
//! (RD_base for control and identification, SGI_base for the SGI/PPI configuration), laid out
//! back to back from GICR_BASE in vCPU order.
//!
//! Linux finds its redistributor by walking the frames and comparing GICR_TYPER's affinity with
//! its MPIDR until it meets GICR_TYPER.Last, then wakes it through GICR_WAKER. There are no
//! LPIs, so the LPI registers read as zero.

use super::affinity::Affinity;
use super::irq::NUM_PRIVATE;
use super::regs::{ArrayAccess, ArrayReg, Bank};
use super::vgic::Vgic;
use super::{
    is_valid_size, reg64_shift, size_mask, Kick, MmioRead, MmioWrite, RegAccess, IIDR, PIDR2_ARCH_GICV3, PIDR2_OFFSET,
};
use crate::guest_map::{vcpu_mpidr, GICR_STRIDE};

/// The SGI_base frame's offset within a redistributor.
const SGI_FRAME: u64 = 0x1_0000;

/// RD_base frame registers.
const GICR_CTLR: u64 = 0x0000;
const GICR_IIDR: u64 = 0x0004;
const GICR_TYPER: u64 = 0x0008;
const GICR_TYPER_HIGH: u64 = GICR_TYPER + 4;
const GICR_STATUSR: u64 = 0x0010;
const GICR_WAKER: u64 = 0x0014;
const GICR_PROPBASER: u64 = 0x0070;
const GICR_PENDBASER: u64 = 0x0078;

/// GICR_TYPER.Affinity_Value, bits [63:32].
const TYPER_AFFINITY_SHIFT: u32 = 32;
/// GICR_TYPER.Processor_Number, bits [23:8].
const TYPER_PROCESSOR_NUMBER_SHIFT: u32 = 8;
/// GICR_TYPER.Last, bit [4]: the last redistributor of the region.
const TYPER_LAST: u64 = 1 << 4;

/// GICR_WAKER.ProcessorSleep, bit [1]: written by the guest to wake or park the redistributor.
const WAKER_PROCESSOR_SLEEP: u64 = 1 << 1;
/// GICR_WAKER.ChildrenAsleep, bit [2]: follows ProcessorSleep at once.
const WAKER_CHILDREN_ASLEEP: u64 = 1 << 2;

const WORD: u8 = 4;

impl Vgic {
    /// Emulates a guest read of `size` bytes at `offset` from GICR_BASE.
    pub fn gicr_read(&self, offset: u64, size: u8) -> MmioRead {
        let Some((vcpu, frame_offset)) = self.locate(offset) else {
            return MmioRead::refused(RegAccess::Unknown);
        };
        if !is_valid_size(size) {
            return MmioRead::refused(RegAccess::WrongSize);
        }
        if frame_offset >= SGI_FRAME {
            return match sgi_frame_access(frame_offset - SGI_FRAME, size) {
                Ok(access) => MmioRead::ok(self.on_vcpu(vcpu, |view| view.array_read(Bank::Private(vcpu), access))),
                Err(refusal) => MmioRead::refused(refusal),
            };
        }
        let (value, allowed) = match frame_offset {
            GICR_TYPER | GICR_TYPER_HIGH => {
                return match reg64_shift(frame_offset - GICR_TYPER, size) {
                    Some(shift) => MmioRead::ok((self.gicr_typer(vcpu) >> shift) & size_mask(size)),
                    None => MmioRead::refused(RegAccess::WrongSize),
                };
            }
            // No LPIs: the LPI tables' base registers are RAZ/WI, 64-bit or 32-bit accessible.
            GICR_PROPBASER | GICR_PENDBASER => (0, size == WORD || size == 8),
            // EnableLPIs stays 0 and RWP/UWP never need polling.
            GICR_CTLR | GICR_STATUSR => (0, size == WORD),
            GICR_IIDR => (IIDR.into(), size == WORD),
            GICR_WAKER => (self.waker(vcpu), size == WORD),
            PIDR2_OFFSET => (PIDR2_ARCH_GICV3.into(), size == WORD),
            _ => return MmioRead::refused(RegAccess::Unknown),
        };
        if allowed {
            MmioRead::ok(value)
        } else {
            MmioRead::refused(RegAccess::WrongSize)
        }
    }

    /// Emulates a guest write of the low `size` bytes of `value` at `offset` from GICR_BASE.
    pub fn gicr_write(&self, offset: u64, size: u8, value: u64) -> MmioWrite {
        let Some((vcpu, frame_offset)) = self.locate(offset) else {
            return MmioWrite::refused(RegAccess::Unknown);
        };
        if !is_valid_size(size) {
            return MmioWrite::refused(RegAccess::WrongSize);
        }
        let value = value & size_mask(size);
        if frame_offset >= SGI_FRAME {
            return match sgi_frame_access(frame_offset - SGI_FRAME, size) {
                Ok(access) => {
                    MmioWrite::ok(self.on_vcpu(vcpu, |view| view.array_write(Bank::Private(vcpu), access, value)))
                }
                Err(refusal) => MmioWrite::refused(refusal),
            };
        }
        let allowed = match frame_offset {
            GICR_TYPER | GICR_TYPER_HIGH => reg64_shift(frame_offset - GICR_TYPER, size).is_some(),
            GICR_PROPBASER | GICR_PENDBASER => size == WORD || size == 8,
            GICR_CTLR | GICR_STATUSR | GICR_IIDR | GICR_WAKER | PIDR2_OFFSET => size == WORD,
            _ => return MmioWrite::refused(RegAccess::Unknown),
        };
        if !allowed {
            return MmioWrite::refused(RegAccess::WrongSize);
        }
        let kick = if frame_offset == GICR_WAKER { self.set_waker(vcpu, value) } else { Kick::NONE };
        MmioWrite::ok(kick)
    }

    /// The vCPU whose redistributor `offset` falls in, and the offset within it.
    fn locate(&self, offset: u64) -> Option<(usize, u64)> {
        let vcpu = usize::try_from(offset / GICR_STRIDE).ok()?;
        (vcpu < self.cfg.num_vcpus).then_some((vcpu, offset % GICR_STRIDE))
    }

    fn gicr_typer(&self, vcpu: usize) -> u64 {
        let affinity = Affinity::from_mpidr(vcpu_mpidr(vcpu)).packed();
        let mut typer = u64::from(affinity) << TYPER_AFFINITY_SHIFT | (vcpu as u64) << TYPER_PROCESSOR_NUMBER_SHIFT;
        // The ROS walks the frames until Last and must stop at its own (see `gic::partition`).
        if vcpu + 1 == self.cfg.num_vcpus || vcpu + 1 == self.cfg.ros_vcpus {
            typer |= TYPER_LAST;
        }
        typer
    }

    fn waker(&self, vcpu: usize) -> u64 {
        let awake = self.read_distributor(|view| view.dist.as_deref().is_some_and(|dist| dist.awake & 1 << vcpu != 0));
        if awake {
            0
        } else {
            WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP
        }
    }

    /// Only ProcessorSleep is writable. Waking or parking a redistributor can move SPIs routed
    /// to "any" vCPU, so every vCPU takes a look. The awake set is the distributor's: "any"
    /// routing reads it.
    fn set_waker(&self, vcpu: usize, value: u64) -> Kick {
        let asleep = value & WAKER_PROCESSOR_SLEEP != 0;
        let everyone = Kick::first(self.cfg.num_vcpus);
        self.on_distributor(|view| {
            let Some(dist) = view.dist.as_deref_mut() else {
                return Kick::NONE;
            };
            let before = dist.awake;
            if asleep {
                dist.awake &= !(1 << vcpu);
            } else {
                dist.awake |= 1 << vcpu;
            }
            if dist.awake == before {
                Kick::NONE
            } else {
                everyone
            }
        })
    }
}

/// Decodes an access to the SGI frame, which holds only the first word(s) of each register
/// array: those for INTIDs 0..32. It has no ITARGETSR.
fn sgi_frame_access(offset: u64, size: u8) -> Result<ArrayAccess, RegAccess> {
    let access = ArrayAccess::decode(offset, size)?;
    if access.first_intid >= NUM_PRIVATE || access.reg == ArrayReg::Targets {
        return Err(RegAccess::Unknown);
    }
    Ok(access)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gic::regs::{
        ICACTIVER, ICENABLER, ICFGR, IGROUPR, IGRPMODR, IPRIORITYR, ISACTIVER, ISENABLER, ISPENDR, ITARGETSR, NSACR,
    };
    use crate::guest_map::PPI_VIRT_TIMER;

    fn rd(vcpu: usize, register: u64) -> u64 {
        vcpu as u64 * GICR_STRIDE + register
    }

    fn sgi(vcpu: usize, register: u64) -> u64 {
        rd(vcpu, SGI_FRAME + register)
    }

    fn read32(vgic: &Vgic, offset: u64) -> u64 {
        let read = vgic.gicr_read(offset, 4);
        assert_eq!(read.access, RegAccess::Ok, "read at {offset:#x}");
        read.value
    }

    fn write32(vgic: &Vgic, offset: u64, value: u64) -> Kick {
        let write = vgic.gicr_write(offset, 4, value);
        assert_eq!(write.access, RegAccess::Ok, "write at {offset:#x}");
        write.kick
    }

    #[test]
    fn linux_finds_each_redistributor_by_affinity() {
        let vgic = Vgic::new(3);
        for vcpu in 0..3 {
            assert_eq!((read32(&vgic, rd(vcpu, PIDR2_OFFSET)) >> 4) & 0xF, 3);
            let typer = vgic.gicr_read(rd(vcpu, GICR_TYPER), 8).value;
            assert_eq!(typer >> 32, vcpu_mpidr(vcpu));
            assert_eq!((typer >> 8) & 0xFFFF, vcpu as u64);
            assert_eq!(typer & TYPER_LAST != 0, vcpu == 2, "Last only on the last frame");
            assert_eq!(typer & 0b11, 0, "no (v)LPIs");
            assert_eq!(read32(&vgic, rd(vcpu, GICR_TYPER_HIGH)), typer >> 32);
        }
        assert_eq!(vgic.gicr_read(rd(3, PIDR2_OFFSET), 4).access, RegAccess::Unknown);
    }

    #[test]
    fn waker_handshake() {
        let vgic = Vgic::new(2);
        let waker = rd(1, GICR_WAKER);
        assert_eq!(read32(&vgic, waker), WAKER_PROCESSOR_SLEEP | WAKER_CHILDREN_ASLEEP);
        assert_eq!(write32(&vgic, waker, 0), Kick::first(2));
        assert_eq!(read32(&vgic, waker) & WAKER_CHILDREN_ASLEEP, 0);
        assert_eq!(read32(&vgic, rd(0, GICR_WAKER)), 0b110, "vCPU 0 is untouched");
        write32(&vgic, waker, WAKER_PROCESSOR_SLEEP);
        assert_eq!(read32(&vgic, waker), 0b110);
    }

    #[test]
    fn linux_cpu_init_sequence() {
        let vgic = Vgic::new(2);
        write32(&vgic, sgi(1, IGROUPR), !0);
        write32(&vgic, sgi(1, ICACTIVER), !0);
        write32(&vgic, sgi(1, ICENABLER), !0);
        for word in 0..8 {
            write32(&vgic, sgi(1, IPRIORITYR + 4 * word), 0xA0A0_A0A0);
        }
        assert_eq!(read32(&vgic, sgi(1, IGROUPR)), 0xFFFF_FFFF);
        assert_eq!(read32(&vgic, sgi(1, ISENABLER)), 0);
        assert_eq!(read32(&vgic, sgi(1, ICFGR)), 0xAAAA_AAAA, "SGIs are edge");
        assert_eq!(read32(&vgic, sgi(0, IPRIORITYR)), 0, "banked per vCPU");

        // The timer PPI: level-triggered, priority by byte, then enabled.
        let timer_cfg_shift = 2 * (PPI_VIRT_TIMER - 16);
        write32(&vgic, sgi(1, ICFGR + 4), 0);
        assert_eq!((read32(&vgic, sgi(1, ICFGR + 4)) >> timer_cfg_shift) & 0b11, 0);
        vgic.gicr_write(sgi(1, IPRIORITYR + u64::from(PPI_VIRT_TIMER)), 1, 0x80);
        write32(&vgic, sgi(1, ISENABLER), 1 << PPI_VIRT_TIMER);
        let irq = vgic.irq(1, PPI_VIRT_TIMER).unwrap();
        assert!(irq.enabled && irq.priority == 0x80 && !irq.is_edge());
        assert!(!vgic.irq(0, PPI_VIRT_TIMER).unwrap().enabled);
    }

    #[test]
    fn sgi_config_is_read_only() {
        let vgic = Vgic::new(1);
        write32(&vgic, sgi(0, ICFGR), 0);
        assert_eq!(read32(&vgic, sgi(0, ICFGR)), 0xAAAA_AAAA);
    }

    #[test]
    fn pending_and_active_bits() {
        let vgic = Vgic::new(1);
        vgic.set_groups(false, true);
        write32(&vgic, sgi(0, ISENABLER), 1 << 20);
        assert_eq!(write32(&vgic, sgi(0, ISPENDR), 1 << 20), Kick::vcpu(0));
        assert_eq!(read32(&vgic, sgi(0, ISPENDR)), 1 << 20);
        write32(&vgic, sgi(0, ISACTIVER), 1 << 5);
        assert_eq!(read32(&vgic, sgi(0, ICACTIVER)), 1 << 5);
        write32(&vgic, sgi(0, ICACTIVER), 1 << 5);
        assert_eq!(read32(&vgic, sgi(0, ISACTIVER)), 0);
    }

    #[test]
    fn raz_wi_and_unknown_registers() {
        let vgic = Vgic::new(1);
        for register in [GICR_CTLR, GICR_STATUSR, GICR_PROPBASER, GICR_PENDBASER] {
            write32(&vgic, rd(0, register), !0);
            assert_eq!(read32(&vgic, rd(0, register)), 0);
        }
        assert_eq!(vgic.gicr_read(rd(0, GICR_PROPBASER), 8), MmioRead::ok(0));
        for register in [IGRPMODR, NSACR] {
            write32(&vgic, sgi(0, register), !0);
            assert_eq!(read32(&vgic, sgi(0, register)), 0);
        }
        assert_eq!(vgic.gicr_read(sgi(0, ISENABLER + 4), 4).access, RegAccess::Unknown);
        assert_eq!(vgic.gicr_read(sgi(0, ITARGETSR), 4).access, RegAccess::Unknown);
        assert_eq!(vgic.gicr_read(sgi(0, IPRIORITYR + 0x20), 4).access, RegAccess::Unknown);
        assert_eq!(vgic.gicr_read(rd(0, 0x40), 8).access, RegAccess::Unknown);
        assert_eq!(vgic.gicr_read(rd(0, GICR_WAKER), 8).access, RegAccess::WrongSize);
        assert_eq!(vgic.gicr_write(rd(0, GICR_WAKER), 2, 0).access, RegAccess::WrongSize);
        assert_eq!(read32(&vgic, rd(0, GICR_WAKER)), 0b110, "wrong-size write ignored");
    }

    #[test]
    fn no_access_panics() {
        let vgic = Vgic::new(2);
        let end = 3 * GICR_STRIDE;
        for offset in (0..end).step_by(4).chain([u64::MAX - 3, 1 << 63]) {
            for size in [0, 1, 2, 4, 8, 255] {
                vgic.gicr_read(offset, size);
                vgic.gicr_write(offset, size, u64::MAX);
                vgic.gicr_write(offset, size, 0);
            }
        }
    }
}
