//! Decoding of ICC_SGI1R_EL1 (and its twins ICC_ASGI1R_EL1 and ICC_SGI0R_EL1, which share the
//! layout): the system registers a guest writes to send an SGI (an inter-processor interrupt).
//! These writes trap to the hypervisor, which turns them into pending SGIs on the targets.
//!
//! | bits    | field        | meaning                                                  |
//! |---------|--------------|----------------------------------------------------------|
//! | [15:0]  | TargetList   | bit n targets the PE with Aff0 = RS * 16 + n             |
//! | [23:16] | Aff1         | of the targets                                           |
//! | [27:24] | INTID        | the SGI, 0..15                                           |
//! | [39:32] | Aff2         | of the targets                                           |
//! | [40]    | IRM          | 1: every PE except the sender; TargetList/Aff* ignored   |
//! | [47:44] | RS           | range selector for TargetList                            |
//! | [55:48] | Aff3         | of the targets                                           |

use super::affinity::Affinity;
use super::Kick;
use crate::guest_map::vcpu_mpidr;
use crate::options::MAX_VCPUS;

const SGIR_TARGET_LIST_MASK: u64 = 0xFFFF;
const SGIR_AFF1_SHIFT: u32 = 16;
const SGIR_INTID_SHIFT: u32 = 24;
const SGIR_INTID_MASK: u64 = 0xF;
const SGIR_AFF2_SHIFT: u32 = 32;
const SGIR_IRM: u64 = 1 << 40;
const SGIR_RS_SHIFT: u32 = 44;
const SGIR_RS_MASK: u64 = 0xF;
const SGIR_AFF3_SHIFT: u32 = 48;
const SGIR_AFF_MASK: u64 = 0xFF;
/// PEs one TargetList covers: Aff0 values RS * 16 .. RS * 16 + 15.
const TARGETS_PER_RANGE: u16 = 16;

/// One SGI request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgiRequest {
    /// The SGI, 0..15.
    pub intid: u32,
    pub targets: SgiTargets,
}

/// Whom an SGI request is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SgiTargets {
    /// IRM = 1: every PE except the sender.
    AllButSelf,
    List(TargetList),
}

/// IRM = 0: up to 16 PEs sharing Aff3.Aff2.Aff1, picked by Aff0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetList {
    pub aff3: u8,
    pub aff2: u8,
    pub aff1: u8,
    /// Aff0 of the PE bit 0 names (RS * 16).
    pub aff0_base: u8,
    /// Bit n set: the PE with Aff0 = `aff0_base` + n is targeted.
    pub bits: u16,
}

impl SgiRequest {
    /// Decodes a written ICC_SGI1R_EL1 value; every value decodes to something.
    pub const fn decode(value: u64) -> Self {
        const fn field(value: u64, shift: u32, mask: u64) -> u64 {
            (value >> shift) & mask
        }
        let intid = field(value, SGIR_INTID_SHIFT, SGIR_INTID_MASK) as u32;
        if value & SGIR_IRM != 0 {
            return Self { intid, targets: SgiTargets::AllButSelf };
        }
        let range = field(value, SGIR_RS_SHIFT, SGIR_RS_MASK) as u16;
        let list = TargetList {
            aff3: field(value, SGIR_AFF3_SHIFT, SGIR_AFF_MASK) as u8,
            aff2: field(value, SGIR_AFF2_SHIFT, SGIR_AFF_MASK) as u8,
            aff1: field(value, SGIR_AFF1_SHIFT, SGIR_AFF_MASK) as u8,
            // At most 15 * 16 = 240: fits.
            aff0_base: (range * TARGETS_PER_RANGE) as u8,
            bits: (value & SGIR_TARGET_LIST_MASK) as u16,
        };
        Self { intid, targets: SgiTargets::List(list) }
    }
}

impl TargetList {
    /// Whether the PE with affinity `target` is in the list.
    pub const fn includes(&self, target: Affinity) -> bool {
        let same_group = target.aff3 == self.aff3 && target.aff2 == self.aff2 && target.aff1 == self.aff1;
        // Aff0 below the range's base wraps to a large offset, and misses the list.
        let offset = target.aff0.wrapping_sub(self.aff0_base) as u16;
        same_group && offset < TARGETS_PER_RANGE && self.bits & (1 << offset) != 0
    }
}

/// The vCPUs (of `num_vcpus`) an SGI request from `sender` reaches.
pub fn sgi_targets(sender: usize, request: &SgiRequest, num_vcpus: usize) -> Kick {
    let mut targets = Kick::NONE;
    for target in 0..num_vcpus.min(MAX_VCPUS) {
        let targeted = match request.targets {
            SgiTargets::AllButSelf => target != sender,
            SgiTargets::List(list) => list.includes(Affinity::from_mpidr(vcpu_mpidr(target))),
        };
        if targeted {
            targets |= Kick::vcpu(target);
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn aff0(aff0: u8) -> Affinity {
        Affinity { aff0, ..Affinity::default() }
    }

    #[test]
    fn target_list_picks_aff0_values() {
        let request = SgiRequest::decode(1 << 24 | 0b1010);
        assert_eq!(request.intid, 1);
        let SgiTargets::List(list) = request.targets else { panic!("IRM is clear") };
        let picked: Vec<u8> = (0..=255).filter(|&n| list.includes(aff0(n))).collect();
        assert_eq!(picked, [1, 3]);
    }

    #[test]
    fn upper_affinity_levels_must_match() {
        let value = 15 << 24 | 0x12 << 16 | 0x34 << 32 | 0x56 << 48 | 1;
        let request = SgiRequest::decode(value);
        assert_eq!(request.intid, 15);
        let SgiTargets::List(list) = request.targets else { panic!("IRM is clear") };
        assert_eq!((list.aff1, list.aff2, list.aff3), (0x12, 0x34, 0x56));
        assert!(!list.includes(aff0(0)));
        assert!(list.includes(Affinity { aff3: 0x56, aff2: 0x34, aff1: 0x12, aff0: 0 }));
    }

    #[test]
    fn range_selector_shifts_the_list() {
        let request = SgiRequest::decode(2 << 44 | 1 << 3);
        let SgiTargets::List(list) = request.targets else { panic!("IRM is clear") };
        assert!(list.includes(aff0(35)));
        assert!(!list.includes(aff0(3)));
    }

    #[test]
    fn irm_means_everyone_else() {
        let request = SgiRequest::decode(1 << 40 | 7 << 24 | 0xFFFF);
        assert_eq!(request, SgiRequest { intid: 7, targets: SgiTargets::AllButSelf });
    }
}
