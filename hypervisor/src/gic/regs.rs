//! The per-interrupt register arrays (IGROUPR, ISENABLER, ..., ICFGR, NSACR) shared by the
//! distributor and the redistributor's SGI frame: both use the same offsets and layouts, and
//! differ only in which INTIDs stand behind them (SPIs in GICD, one vCPU's SGIs and PPIs in the
//! SGI frame).

use super::irq::{self, IrqState, Trigger};
use super::view::{active_view, pending_view, View};
use super::{Kick, RegAccess};

/// Offsets of the arrays, from GICD_base or SGI_base.
pub(super) const IGROUPR: u64 = 0x0080;
pub(super) const ISENABLER: u64 = 0x0100;
pub(super) const ICENABLER: u64 = 0x0180;
pub(super) const ISPENDR: u64 = 0x0200;
pub(super) const ICPENDR: u64 = 0x0280;
pub(super) const ISACTIVER: u64 = 0x0300;
pub(super) const ICACTIVER: u64 = 0x0380;
pub(super) const IPRIORITYR: u64 = 0x0400;
pub(super) const ITARGETSR: u64 = 0x0800;
pub(super) const ICFGR: u64 = 0x0C00;
pub(super) const IGRPMODR: u64 = 0x0D00;
pub(super) const NSACR: u64 = 0x0E00;
const NSACR_END: u64 = 0x0F00;

/// ICFGR field value of an edge-triggered interrupt (bit 0 of each 2-bit field is RES0).
pub(super) const ICFGR_EDGE: u64 = 0b10;
const WORD: u8 = 4;

/// Which register array an access hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArrayReg {
    Group,
    SetEnable,
    ClearEnable,
    SetPending,
    ClearPending,
    SetActive,
    ClearActive,
    Priority,
    /// ITARGETSR: RES0 with affinity routing.
    Targets,
    Config,
    /// IGRPMODR: RAZ/WI without two security states.
    GroupModifier,
    /// NSACR: RAZ/WI without two security states.
    Nsacr,
}

/// One array: where it starts and how many bits each interrupt has in it.
struct Layout {
    start: u64,
    reg: ArrayReg,
    bits_per_intid: u32,
}

/// In offset order; each array ends where the next begins (NSACR at [`NSACR_END`]).
const LAYOUTS: [Layout; 12] = [
    Layout { start: IGROUPR, reg: ArrayReg::Group, bits_per_intid: 1 },
    Layout { start: ISENABLER, reg: ArrayReg::SetEnable, bits_per_intid: 1 },
    Layout { start: ICENABLER, reg: ArrayReg::ClearEnable, bits_per_intid: 1 },
    Layout { start: ISPENDR, reg: ArrayReg::SetPending, bits_per_intid: 1 },
    Layout { start: ICPENDR, reg: ArrayReg::ClearPending, bits_per_intid: 1 },
    Layout { start: ISACTIVER, reg: ArrayReg::SetActive, bits_per_intid: 1 },
    Layout { start: ICACTIVER, reg: ArrayReg::ClearActive, bits_per_intid: 1 },
    Layout { start: IPRIORITYR, reg: ArrayReg::Priority, bits_per_intid: 8 },
    Layout { start: ITARGETSR, reg: ArrayReg::Targets, bits_per_intid: 8 },
    Layout { start: ICFGR, reg: ArrayReg::Config, bits_per_intid: 2 },
    Layout { start: IGRPMODR, reg: ArrayReg::GroupModifier, bits_per_intid: 1 },
    Layout { start: NSACR, reg: ArrayReg::Nsacr, bits_per_intid: 2 },
];

/// A decoded access to a register array: `count` interrupts from `first_intid` on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct ArrayAccess {
    pub reg: ArrayReg,
    pub first_intid: u32,
    pub count: u32,
    pub bits_per_intid: u32,
}

impl ArrayAccess {
    /// Decodes an access of `size` bytes at `offset`: `Err(Unknown)` outside the arrays,
    /// `Err(WrongSize)` for a size or alignment the register does not support (32-bit
    /// everywhere; also 8-bit for the byte-per-interrupt arrays).
    pub fn decode(offset: u64, size: u8) -> Result<Self, RegAccess> {
        if !(IGROUPR..NSACR_END).contains(&offset) {
            return Err(RegAccess::Unknown);
        }
        let layout = LAYOUTS.iter().rev().find(|layout| offset >= layout.start);
        let Some(layout) = layout else {
            return Err(RegAccess::Unknown);
        };
        let byte_sized = layout.bits_per_intid == u8::BITS;
        let size_ok = size == WORD || (byte_sized && size == 1);
        if !size_ok || !offset.is_multiple_of(u64::from(size)) {
            return Err(RegAccess::WrongSize);
        }
        let bit_offset = (offset - layout.start) * u64::from(u8::BITS);
        Ok(Self {
            reg: layout.reg,
            // The arrays are at most 0x400 bytes: far below u32::MAX interrupts.
            first_intid: (bit_offset / u64::from(layout.bits_per_intid)) as u32,
            count: u32::from(size) * u8::BITS / layout.bits_per_intid,
            bits_per_intid: layout.bits_per_intid,
        })
    }

    fn field_mask(&self) -> u64 {
        (1 << self.bits_per_intid) - 1
    }

    /// The INTIDs covered, with each one's bit position in the register value.
    fn intids(&self) -> impl Iterator<Item = (u32, u32)> {
        let (first, width) = (self.first_intid, self.bits_per_intid);
        (0..self.count).map(move |i| (first + i, i * width))
    }
}

/// Which interrupts stand behind a register array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Bank {
    /// The distributor: SPIs only (SGIs and PPIs are RAZ/WI there with affinity routing).
    Spis,
    /// A redistributor's SGI frame: one vCPU's SGIs and PPIs.
    Private(usize),
}

impl Bank {
    fn owns(self, intid: u32) -> bool {
        match self {
            Bank::Spis => irq::spi_index(intid).is_some(),
            Bank::Private(_) => irq::is_private(intid),
        }
    }

    /// The vCPU whose private interrupts this bank holds (any index does for SPIs).
    fn vcpu(self) -> usize {
        match self {
            Bank::Spis => 0,
            Bank::Private(vcpu) => vcpu,
        }
    }
}

impl View<'_> {
    /// Reads a register array; interrupts outside `bank` read as zero.
    pub(super) fn array_read(&self, bank: Bank, access: ArrayAccess) -> u64 {
        let mut value = 0;
        for (intid, shift) in access.intids() {
            if let Some(irq) = self.irq(bank.vcpu(), intid).filter(|_| bank.owns(intid)) {
                value |= (Self::field_read(access.reg, irq, intid) & access.field_mask()) << shift;
            }
        }
        value
    }

    /// Writes a register array; interrupts outside `bank` ignore the write.
    pub(super) fn array_write(&mut self, bank: Bank, access: ArrayAccess, value: u64) -> Kick {
        let mut kick = Kick::NONE;
        for (intid, shift) in access.intids() {
            if !bank.owns(intid) {
                continue;
            }
            let field = (value >> shift) & access.field_mask();
            let Some(irq) = self.irq_mut(bank.vcpu(), intid) else {
                continue;
            };
            if field_write(access.reg, irq, intid, field) {
                kick |= self.attention(bank.vcpu(), intid);
            }
        }
        kick
    }

    fn field_read(reg: ArrayReg, irq: &IrqState, intid: u32) -> u64 {
        match reg {
            ArrayReg::Group => irq.group1.into(),
            ArrayReg::SetEnable | ArrayReg::ClearEnable => irq.enabled.into(),
            ArrayReg::SetPending | ArrayReg::ClearPending => pending_view(irq).into(),
            ArrayReg::SetActive | ArrayReg::ClearActive => active_view(irq).into(),
            ArrayReg::Priority => irq.priority.into(),
            ArrayReg::Config if irq.is_edge() || irq::is_sgi(intid) => ICFGR_EDGE,
            ArrayReg::Config | ArrayReg::Targets | ArrayReg::GroupModifier | ArrayReg::Nsacr => 0,
        }
    }
}

/// Applies one interrupt's field of a register write; returns whether its delivery may have
/// changed (so the vCPU concerned must be kicked).
fn field_write(reg: ArrayReg, irq: &mut IrqState, intid: u32, field: u64) -> bool {
    let set = field != 0;
    let in_lr = irq.lr.is_some();
    match reg {
        ArrayReg::Group => return replace(&mut irq.group1, set),
        ArrayReg::SetEnable if set => return replace(&mut irq.enabled, true),
        ArrayReg::ClearEnable if set => return replace(&mut irq.enabled, false),
        ArrayReg::SetPending if set => irq.latch = true,
        ArrayReg::ClearPending if set => {
            irq.latch = false;
            irq.fix.clear_pending |= in_lr;
        }
        // While in a list register, the active state is the list register's: edit it there.
        ArrayReg::SetActive | ArrayReg::ClearActive if set => {
            let active = reg == ArrayReg::SetActive;
            if in_lr {
                irq.fix.active = Some(active);
            } else {
                irq.active = active;
            }
        }
        ArrayReg::Priority => irq.priority = field as u8,
        // SGIs are always edge-triggered. A hardware-linked interrupt (the guest's timers) keeps
        // its level configuration: its source is a level line, and the physical interrupt stays
        // active until the guest deactivates the virtual one, which an edge that was never
        // taken would never do (found by guest/fuzz, seed 3). Whether a PPI's configuration is
        // programmable is IMPLEMENTATION DEFINED (GICv3, GICR_ICFGR1).
        ArrayReg::Config if !irq::is_sgi(intid) && irq.hw_pintid.is_none() => {
            let trigger = if field & ICFGR_EDGE != 0 { Trigger::Edge } else { Trigger::Level };
            return replace(&mut irq.trigger, trigger);
        }
        _ => return false,
    }
    let cleared = matches!(reg, ArrayReg::ClearPending | ArrayReg::ClearActive);
    if cleared && !in_lr && irq.hw_pintid.is_some() && !irq.pending() && !irq.active {
        irq.physical_owed = true;
    }
    // Pending and active edits always need a look from the vCPU concerned.
    !matches!(reg, ArrayReg::Priority)
}

/// Stores `new` and reports whether it differed.
fn replace<T: PartialEq + Copy>(slot: &mut T, new: T) -> bool {
    core::mem::replace(slot, new) != new
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_finds_array_and_first_intid() {
        let access = ArrayAccess::decode(ISENABLER + 4, 4).unwrap();
        assert_eq!((access.reg, access.first_intid, access.count), (ArrayReg::SetEnable, 32, 32));
        let access = ArrayAccess::decode(IPRIORITYR + 0x21, 1).unwrap();
        assert_eq!((access.reg, access.first_intid, access.count), (ArrayReg::Priority, 33, 1));
        let access = ArrayAccess::decode(ICFGR + 8, 4).unwrap();
        assert_eq!((access.reg, access.first_intid, access.count), (ArrayReg::Config, 32, 16));
        assert_eq!(ArrayAccess::decode(NSACR + 0xFC, 4).unwrap().reg, ArrayReg::Nsacr);
    }

    #[test]
    fn decode_refuses_bad_sizes_and_foreign_offsets() {
        assert_eq!(ArrayAccess::decode(ISENABLER, 1), Err(RegAccess::WrongSize));
        assert_eq!(ArrayAccess::decode(ISENABLER, 8), Err(RegAccess::WrongSize));
        assert_eq!(ArrayAccess::decode(ISENABLER + 2, 4), Err(RegAccess::WrongSize));
        assert_eq!(ArrayAccess::decode(IPRIORITYR + 2, 2), Err(RegAccess::WrongSize));
        assert_eq!(ArrayAccess::decode(IPRIORITYR + 1, 4), Err(RegAccess::WrongSize));
        assert_eq!(ArrayAccess::decode(0x7C, 4), Err(RegAccess::Unknown));
        assert_eq!(ArrayAccess::decode(NSACR_END, 4), Err(RegAccess::Unknown));
    }

    #[test]
    fn config_writes_keep_sgis_edge() {
        let mut sgi = IrqState::reset(3);
        assert!(!field_write(ArrayReg::Config, &mut sgi, 3, 0));
        assert_eq!(sgi.trigger, Trigger::Edge);
        let mut ppi = IrqState::reset(23);
        assert!(field_write(ArrayReg::Config, &mut ppi, 23, ICFGR_EDGE));
        assert_eq!(ppi.trigger, Trigger::Edge);
        // The guest's timer, hardware-linked, stays level.
        let mut timer = IrqState::reset(27);
        timer.hw_pintid = Some(27);
        assert!(!field_write(ArrayReg::Config, &mut timer, 27, ICFGR_EDGE));
        assert_eq!(timer.trigger, Trigger::Level);
    }

    #[test]
    fn clearing_pending_in_a_list_register_leaves_a_fixup() {
        let mut irq = IrqState::reset(40);
        irq.latch = true;
        irq.lr = Some(irq::LrSlot { vcpu: 0, index: 1, state: crate::gic::LrState::Pending });
        assert!(field_write(ArrayReg::ClearPending, &mut irq, 40, 1));
        assert!(!irq.latch && irq.fix.clear_pending);
        assert!(field_write(ArrayReg::ClearActive, &mut irq, 40, 1));
        assert_eq!(irq.fix.active, Some(false));
        assert!(!field_write(ArrayReg::ClearActive, &mut irq, 40, 0), "zero bits do nothing");
    }
}
