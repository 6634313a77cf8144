//! ICH_LR<n>_EL2, the list registers: each one hands one virtual interrupt to the guest's virtual
//! CPU interface, which acknowledges and completes it without trapping.
//!
//! Layout (GICv3 architecture specification, ICH_LR<n>_EL2):
//!
//! | bits    | field    | meaning                                                        |
//! |---------|----------|----------------------------------------------------------------|
//! | [63:62] | State    | Invalid, Pending, Active, Pending and active                   |
//! | [61]    | HW       | linked to a physical interrupt that the guest's deactivation   |
//! |         |          | also deactivates                                               |
//! | [60]    | Group    | 0 = Group 0 (vFIQ), 1 = Group 1 (vIRQ)                         |
//! | [55:48] | Priority | only the top ICH_VTR_EL2.PRIbits bits are implemented          |
//! | [44:32] | pINTID   | with HW = 1: the physical INTID                                |
//! | [41]    | EOI      | with HW = 0: maintenance interrupt when the guest deactivates  |
//! | [31:0]  | vINTID   | the INTID the guest sees                                       |

/// State, bits [63:62].
pub const LR_STATE_SHIFT: u32 = 62;
pub const LR_STATE_MASK: u64 = 0b11;
/// HW, bit [61].
pub const LR_HW: u64 = 1 << 61;
/// Group, bit [60].
pub const LR_GROUP1: u64 = 1 << 60;
/// Priority, bits [55:48].
pub const LR_PRIORITY_SHIFT: u32 = 48;
pub const LR_PRIORITY_MASK: u64 = 0xFF;
/// pINTID, bits [44:32] (meaningful only with HW = 1).
pub const LR_PINTID_SHIFT: u32 = 32;
pub const LR_PINTID_MASK: u64 = 0x1FFF;
/// EOI, bit [41] (meaningful only with HW = 0; it overlaps pINTID).
pub const LR_EOI: u64 = 1 << 41;
/// vINTID, bits [31:0].
pub const LR_VINTID_MASK: u64 = 0xFFFF_FFFF;

/// The State field of a list register.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LrState {
    /// Free: no interrupt, or the guest has completed the one it held.
    #[default]
    Invalid = 0b00,
    Pending = 0b01,
    Active = 0b10,
    PendingActive = 0b11,
}

impl LrState {
    /// The state holding exactly the given pending and active bits.
    pub const fn new(pending: bool, active: bool) -> Self {
        match (pending, active) {
            (false, false) => Self::Invalid,
            (true, false) => Self::Pending,
            (false, true) => Self::Active,
            (true, true) => Self::PendingActive,
        }
    }

    pub const fn is_pending(self) -> bool {
        matches!(self, Self::Pending | Self::PendingActive)
    }

    pub const fn is_active(self) -> bool {
        matches!(self, Self::Active | Self::PendingActive)
    }

    const fn from_bits(bits: u64) -> Self {
        Self::new(bits & 0b01 != 0, bits & 0b10 != 0)
    }
}

/// One list register, decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListRegister {
    pub state: LrState,
    /// `Some(pINTID)`: a hardware-linked interrupt (HW = 1).
    pub pintid: Option<u32>,
    pub group1: bool,
    pub priority: u8,
    /// EOI maintenance on deactivation; only honoured (and only encoded) when `pintid` is `None`,
    /// because in a HW list register this bit belongs to pINTID.
    pub eoi_maintenance: bool,
    pub vintid: u32,
}

impl ListRegister {
    /// A pending, software-only interrupt.
    pub const fn pending(vintid: u32, priority: u8, group1: bool) -> Self {
        Self { state: LrState::Pending, pintid: None, group1, priority, eoi_maintenance: false, vintid }
    }

    /// A pending interrupt linked to physical interrupt `pintid`: the guest's deactivation of
    /// `vintid` deactivates `pintid` too.
    pub const fn hw(vintid: u32, pintid: u32, priority: u8, group1: bool) -> Self {
        Self { pintid: Some(pintid), ..Self::pending(vintid, priority, group1) }
    }

    /// The raw ICH_LR<n>_EL2 value.
    pub const fn encode(&self) -> u64 {
        let mut value = (self.state as u64) << LR_STATE_SHIFT
            | (self.priority as u64) << LR_PRIORITY_SHIFT
            | (self.vintid as u64 & LR_VINTID_MASK);
        if self.group1 {
            value |= LR_GROUP1;
        }
        match self.pintid {
            Some(pintid) => value |= LR_HW | (pintid as u64 & LR_PINTID_MASK) << LR_PINTID_SHIFT,
            None if self.eoi_maintenance => value |= LR_EOI,
            None => {}
        }
        value
    }

    /// Decodes a raw ICH_LR<n>_EL2 value; every value decodes to something.
    pub const fn decode(value: u64) -> Self {
        let hw = value & LR_HW != 0;
        Self {
            state: LrState::from_bits((value >> LR_STATE_SHIFT) & LR_STATE_MASK),
            pintid: if hw { Some(((value >> LR_PINTID_SHIFT) & LR_PINTID_MASK) as u32) } else { None },
            group1: value & LR_GROUP1 != 0,
            priority: ((value >> LR_PRIORITY_SHIFT) & LR_PRIORITY_MASK) as u8,
            eoi_maintenance: !hw && value & LR_EOI != 0,
            vintid: (value & LR_VINTID_MASK) as u32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_sit_where_the_architecture_puts_them() {
        let lr = ListRegister::pending(33, 0xA0, true).encode();
        assert_eq!(lr, 0b01 << 62 | 1 << 60 | 0xA0 << 48 | 33);

        let timer = ListRegister::hw(27, 27, 0x80, true).encode();
        assert_eq!(timer, 0b01 << 62 | 1 << 61 | 1 << 60 | 0x80 << 48 | 27 << 32 | 27);

        let mut level = ListRegister::pending(40, 0, false);
        level.eoi_maintenance = true;
        level.state = LrState::PendingActive;
        assert_eq!(level.encode(), 0b11 << 62 | 1 << 41 | 40);
    }

    #[test]
    fn encode_decode_round_trips() {
        let states = [LrState::Invalid, LrState::Pending, LrState::Active, LrState::PendingActive];
        for state in states {
            for pintid in [None, Some(16), Some(1019)] {
                for eoi_maintenance in [false, true] {
                    let lr = ListRegister {
                        state,
                        pintid,
                        group1: eoi_maintenance,
                        priority: 0xF8,
                        eoi_maintenance: eoi_maintenance && pintid.is_none(),
                        vintid: 1020,
                    };
                    assert_eq!(ListRegister::decode(lr.encode()), lr);
                }
            }
        }
        let raw = 0b10 << 62 | 1 << 61 | 0x1234 << 32 | 0xFFFF_FFFF;
        assert_eq!(ListRegister::decode(raw).encode(), raw);
    }

    #[test]
    fn hw_list_registers_never_carry_eoi_maintenance() {
        let mut lr = ListRegister::hw(27, 27, 0, true);
        lr.eoi_maintenance = true;
        // Bit 41 is pINTID bit 9 here, and pINTID 27 has it clear.
        assert_eq!(lr.encode() & LR_EOI, 0);
        assert!(!ListRegister::decode(LR_HW | LR_EOI).eoi_maintenance);
    }

    #[test]
    fn state_helpers() {
        assert_eq!(LrState::new(true, true), LrState::PendingActive);
        assert!(LrState::PendingActive.is_pending() && LrState::PendingActive.is_active());
        assert!(!LrState::Active.is_pending() && !LrState::Invalid.is_active());
        assert_eq!(ListRegister::decode(0).state, LrState::Invalid);
    }
}
