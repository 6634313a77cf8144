//! The guest's virtual GICv3: all of its logic, none of its register access.
//!
//! The guest sees a GICv3 with the system-register CPU interface. The real ICH_* virtual CPU
//! interface serves its ICC_* accesses (acknowledge, EOI, priority mask) from the list
//! registers; everything else is emulated here from shadow state:
//!
//! - the distributor (GICD) and redistributor (GICR) MMIO frames, which trap
//!   ([`Vgic::gicd_read`], [`Vgic::gicd_write`], [`Vgic::gicr_read`], [`Vgic::gicr_write`]);
//! - the trapped SGI-generation registers ([`Vgic::send_sgi`], [`Vgic::send_sgi_group0`]);
//! - interrupt injection by devices and the hypervisor ([`Vgic::set_pending`],
//!   [`Vgic::set_level`], [`Vgic::set_hw_mapping`]);
//! - moving interrupts between the shadow state and a vCPU's list registers
//!   ([`VcpuGic::sync_lrs`] after an exit, [`VcpuGic::flush_lrs`] before an entry).
//!
//! Nothing in here touches hardware, so it all runs in host unit tests. The integrator owns the
//! ICH_* accessors, the MMIO trap decoding and the cross-CPU kicks.
//!
//! # Integrator contract
//!
//! - One [`Vgic`] per VM, shared by every pCPU; it locks what each call touches (see
//!   `vgic.rs`: each vCPU's interrupts have their own lock, the distributor its own).
//! - After a guest exit on vCPU `v`: lock its state with [`Vgic::vcpu`], read its list
//!   registers into a slice and call [`VcpuGic::sync_lrs`]; before re-entering: call
//!   [`VcpuGic::flush_lrs`] on the same slice and write *every* element back (freed entries are
//!   zeroed, which also clears pending EOI maintenance status). The slice length is the number
//!   of list registers (ICH_VTR_EL2.ListRegs + 1); tell [`Vgic::set_lr_priority_bits`]
//!   ICH_VTR_EL2.PRIbits + 1. Do not call other [`Vgic`] methods for `v` while holding its
//!   [`VcpuGic`]: its lock is not re-entrant.
//! - Set ICH_HCR_EL2.UIE when [`FlushResult::overflow`] is set and clear it otherwise; kick the
//!   vCPUs in [`FlushResult::kick`].
//! - Every method returning a [`Kick`] names vCPUs whose deliverable interrupts may have changed:
//!   a running one must be made to exit (so its next flush sees the change), a vCPU waiting in
//!   WFI must re-check [`Vgic::has_deliverable`]. Kicking the calling vCPU itself is a no-op.
//! - The maintenance interrupt must cause an exit: level-triggered interrupts are put in list
//!   registers with EOI maintenance, so their completion is noticed and a still-high line
//!   re-pends.

mod affinity;
mod distributor;
mod irq;
pub mod loaded;
pub mod lr;
mod lr_sync;
pub mod mailbox;
mod partition;
mod redistributor;
mod regs;
pub mod sgi;
mod vgic;
mod view;

pub use affinity::Affinity;
pub use lr::{ListRegister, LrState};
pub use lr_sync::FlushResult;
pub use vgic::{VcpuGic, Vgic, Waiter};

use core::ops::{BitOr, BitOrAssign};

use crate::options::MAX_VCPUS;

/// Most list registers a GICv3 implementation can have (ICH_VTR_EL2.ListRegs is 4 bits).
pub const MAX_LRS: usize = 16;

/// A set of vCPUs that must re-evaluate their interrupts (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kick(u32);

// One bit per vCPU.
const _: () = assert!(MAX_VCPUS <= u32::BITS as usize);

impl Kick {
    /// Nobody needs kicking.
    pub const NONE: Kick = Kick(0);

    /// Just vCPU `index` (nobody if the index cannot be a vCPU).
    pub const fn vcpu(index: usize) -> Kick {
        if index < MAX_VCPUS {
            Kick(1 << index)
        } else {
            Kick::NONE
        }
    }

    /// vCPUs `0..count`.
    pub const fn first(count: usize) -> Kick {
        let count = if count < MAX_VCPUS { count } else { MAX_VCPUS };
        Kick(((1u64 << count) - 1) as u32)
    }

    /// The set minus vCPU `index`.
    pub const fn without(self, index: usize) -> Kick {
        Kick(self.0 & !Kick::vcpu(index).0)
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn contains(self, index: usize) -> bool {
        index < MAX_VCPUS && self.0 & (1 << index) != 0
    }

    /// The set as a bitmask, bit n = vCPU n.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The vCPU indices in the set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..MAX_VCPUS).filter(move |&index| self.contains(index))
    }
}

impl BitOr for Kick {
    type Output = Kick;
    fn bitor(self, other: Kick) -> Kick {
        Kick(self.0 | other.0)
    }
}

impl BitOrAssign for Kick {
    fn bitor_assign(&mut self, other: Kick) {
        self.0 |= other.0;
    }
}

/// How an MMIO access was handled, so the integrator can log guest accesses we do not model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegAccess {
    /// A register we emulate (including architecturally RAZ/WI ones).
    Ok,
    /// No register at this offset: read as zero, write ignored.
    Unknown,
    /// A register accessed with a size or alignment it does not support: read as zero, write
    /// ignored.
    WrongSize,
}

/// The result of an emulated MMIO read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioRead {
    /// The value to return to the guest, zero-extended from the access size.
    pub value: u64,
    pub access: RegAccess,
}

/// The result of an emulated MMIO write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioWrite {
    /// vCPUs to kick because of the write.
    pub kick: Kick,
    pub access: RegAccess,
}

impl MmioRead {
    const fn ok(value: u64) -> Self {
        Self { value, access: RegAccess::Ok }
    }

    const fn refused(access: RegAccess) -> Self {
        Self { value: 0, access }
    }
}

impl MmioWrite {
    const fn ok(kick: Kick) -> Self {
        Self { kick, access: RegAccess::Ok }
    }

    const fn refused(access: RegAccess) -> Self {
        Self { kick: Kick::NONE, access }
    }
}

/// Bits of `value` an access of `size` bytes carries (all of them for sizes of 8 or more).
const fn size_mask(size: u8) -> u64 {
    if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size as u32 * 8)) - 1
    }
}

/// Whether `size` is an access size the CPU can produce.
const fn is_valid_size(size: u8) -> bool {
    matches!(size, 1 | 2 | 4 | 8)
}

/// For a 64-bit register that allows 64-bit access and 32-bit access to either half: the bit
/// position within the register of an access of `size` bytes at byte `offset_in_reg`, or `None`
/// if the access is not allowed.
const fn reg64_shift(offset_in_reg: u64, size: u8) -> Option<u32> {
    match (offset_in_reg, size) {
        (0, 8) | (0, 4) => Some(0),
        (4, 4) => Some(32),
        _ => None,
    }
}

/// `register` with the `size`-byte window at bit `shift` replaced by `value`.
const fn merge_window(register: u64, shift: u32, size: u8, value: u64) -> u64 {
    let mask = size_mask(size) << shift;
    (register & !mask) | ((value << shift) & mask)
}

/// GICD_IIDR and GICR_IIDR: ProductID [31:24] = 'H', Implementer [11:0] = 0x43B (Arm's JEP106
/// code, as the GIC architecture's owner). Deliberately not 0: Linux applies a HiSilicon
/// erratum workaround to a GIC whose IIDR reads as 0.
const IIDR: u32 = (b'H' as u32) << 24 | 0x43B;
/// PIDR2 (both frames): ArchRev [7:4] = 3, i.e. GICv3.
const PIDR2_ARCH_GICV3: u32 = 3 << 4;
/// Offset of PIDR2 in the GICD frame and in each GICR RD_base frame.
const PIDR2_OFFSET: u64 = 0xFFE8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kick_sets_combine_and_iterate() {
        let kick = Kick::vcpu(1) | Kick::vcpu(3);
        assert_eq!(kick.bits(), 0b1010);
        assert!(kick.contains(3) && !kick.contains(0));
        assert_eq!(kick.iter().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(Kick::first(3).bits(), 0b111);
        assert_eq!(Kick::first(100).bits(), (1 << MAX_VCPUS) - 1);
        assert!(Kick::vcpu(MAX_VCPUS).is_empty());
        let mut acc = Kick::NONE;
        acc |= Kick::vcpu(0);
        assert_eq!(acc, Kick::vcpu(0));
        assert_eq!(kick.without(1), Kick::vcpu(3));
        assert_eq!(kick.without(99), kick);
    }

    #[test]
    fn size_masks() {
        assert_eq!(size_mask(1), 0xFF);
        assert_eq!(size_mask(4), 0xFFFF_FFFF);
        assert_eq!(size_mask(8), u64::MAX);
        assert!(is_valid_size(2) && !is_valid_size(3) && !is_valid_size(16));
    }

    #[test]
    fn sixty_four_bit_registers_split_into_halves() {
        assert_eq!(reg64_shift(0, 8), Some(0));
        assert_eq!(reg64_shift(4, 4), Some(32));
        assert_eq!(reg64_shift(4, 8), None);
        assert_eq!(reg64_shift(2, 2), None);
        assert_eq!(merge_window(0x1111_2222_3333_4444, 32, 4, 0xAAAA_BBBB), 0xAAAA_BBBB_3333_4444);
        assert_eq!(merge_window(0x1111_2222_3333_4444, 0, 4, !0), 0x1111_2222_FFFF_FFFF);
        assert_eq!(merge_window(1, 0, 8, 7), 7);
    }
}
