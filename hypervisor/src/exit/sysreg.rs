//! Trapped MSR and MRS (exception class 0x18): which system register, which general-purpose
//! register, and which direction.

use core::fmt;

/// System register trap ISS fields (Arm ARM, ESR_EL2 ISS for EC 0x18).
const ISS_OP0_SHIFT: u32 = 20;
const ISS_OP0_MASK: u32 = 0b11;
const ISS_OP2_SHIFT: u32 = 17;
const ISS_OP2_MASK: u32 = 0b111;
const ISS_OP1_SHIFT: u32 = 14;
const ISS_OP1_MASK: u32 = 0b111;
const ISS_CRN_SHIFT: u32 = 10;
const ISS_CRN_MASK: u32 = 0b1111;
const ISS_RT_SHIFT: u32 = 5;
const ISS_RT_MASK: u32 = 0b1_1111;
const ISS_CRM_SHIFT: u32 = 1;
const ISS_CRM_MASK: u32 = 0b1111;
/// Direction, bit [0]: 1 for a read (MRS), 0 for a write (MSR).
const ISS_DIRECTION_READ: u32 = 1 << 0;

/// A system register, named by its encoding as in `S<op0>_<op1>_C<crn>_C<crm>_<op2>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SysReg {
    pub op0: u8,
    pub op1: u8,
    pub crn: u8,
    pub crm: u8,
    pub op2: u8,
}

impl SysReg {
    pub const fn new(op0: u8, op1: u8, crn: u8, crm: u8, op2: u8) -> Self {
        Self { op0, op1, crn, crm, op2 }
    }

    /// GICv3 SGI generation: written by the guest to send IPIs, trapped because the
    /// hypervisor has to deliver them to the target vCPUs.
    pub const ICC_SGI1R_EL1: Self = Self::new(3, 0, 12, 11, 5);
    pub const ICC_ASGI1R_EL1: Self = Self::new(3, 0, 12, 11, 6);
    pub const ICC_SGI0R_EL1: Self = Self::new(3, 0, 12, 11, 7);
    /// EL1 physical timer, trapped when CNTHCTL_EL2 withholds it from the guest.
    pub const CNTP_TVAL_EL0: Self = Self::new(3, 3, 14, 2, 0);
    pub const CNTP_CTL_EL0: Self = Self::new(3, 3, 14, 2, 1);
    pub const CNTP_CVAL_EL0: Self = Self::new(3, 3, 14, 2, 2);

    /// The architectural name, for registers this module names.
    pub fn name(self) -> Option<&'static str> {
        KNOWN.iter().find(|(reg, _)| *reg == self).map(|&(_, name)| name)
    }
}

/// Names for [`SysReg::name`].
const KNOWN: [(SysReg, &str); 6] = [
    (SysReg::ICC_SGI1R_EL1, "ICC_SGI1R_EL1"),
    (SysReg::ICC_ASGI1R_EL1, "ICC_ASGI1R_EL1"),
    (SysReg::ICC_SGI0R_EL1, "ICC_SGI0R_EL1"),
    (SysReg::CNTP_TVAL_EL0, "CNTP_TVAL_EL0"),
    (SysReg::CNTP_CTL_EL0, "CNTP_CTL_EL0"),
    (SysReg::CNTP_CVAL_EL0, "CNTP_CVAL_EL0"),
];

/// The generic encoding name, which assemblers accept for any register.
impl fmt::Display for SysReg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S{}_{}_C{}_C{}_{}", self.op0, self.op1, self.crn, self.crm, self.op2)
    }
}

/// One trapped MSR or MRS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SysRegAccess {
    pub reg: SysReg,
    /// The general-purpose register read (MSR) or written (MRS); 31 is XZR.
    /// See [`super::read_gpr`] and [`super::write_gpr`].
    pub rt: u8,
    /// MRS (read the system register into `rt`) rather than MSR.
    pub is_read: bool,
}

impl SysRegAccess {
    /// Decodes the ISS of an EC 0x18 trap.
    pub fn from_iss(iss: u32) -> Self {
        Self {
            reg: SysReg::new(
                field(iss, ISS_OP0_SHIFT, ISS_OP0_MASK),
                field(iss, ISS_OP1_SHIFT, ISS_OP1_MASK),
                field(iss, ISS_CRN_SHIFT, ISS_CRN_MASK),
                field(iss, ISS_CRM_SHIFT, ISS_CRM_MASK),
                field(iss, ISS_OP2_SHIFT, ISS_OP2_MASK),
            ),
            rt: field(iss, ISS_RT_SHIFT, ISS_RT_MASK),
            is_read: iss & ISS_DIRECTION_READ != 0,
        }
    }
}

/// Extracts a field of at most five bits, so it always fits in a `u8`.
fn field(iss: u32, shift: u32, mask: u32) -> u8 {
    ((iss >> shift) & mask) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_uses_the_generic_encoding() {
        assert_eq!(SysReg::ICC_SGI1R_EL1.to_string(), "S3_0_C12_C11_5");
        assert_eq!(SysReg::new(3, 1, 15, 2, 0).to_string(), "S3_1_C15_C2_0");
    }

    #[test]
    fn known_registers_have_names() {
        assert_eq!(SysReg::ICC_SGI1R_EL1.name(), Some("ICC_SGI1R_EL1"));
        assert_eq!(SysReg::ICC_ASGI1R_EL1.name(), Some("ICC_ASGI1R_EL1"));
        assert_eq!(SysReg::ICC_SGI0R_EL1.name(), Some("ICC_SGI0R_EL1"));
        assert_eq!(SysReg::new(3, 3, 14, 2, 1).name(), Some("CNTP_CTL_EL0"));
        assert_eq!(SysReg::new(3, 0, 1, 0, 0).name(), None);
    }

    #[test]
    fn every_field_decodes_independently() {
        // All ones in the ISS: each field takes its maximum value.
        let all = SysRegAccess::from_iss(0x01FF_FFFF);
        assert_eq!(all.reg, SysReg::new(3, 7, 15, 15, 7));
        assert_eq!((all.rt, all.is_read), (31, true));
        // msr ICC_SGI0R_EL1, xzr: Op0 3 | Op2 7 (0xE_0000) | CRn 12 (0x3000) | Rt 31 (0x3E0)
        // | CRm 11 (0x16) | write.
        let access = SysRegAccess::from_iss(0x30_0000 | 0xE_0000 | 0x3000 | 0x3E0 | 0x16);
        assert_eq!(access.reg, SysReg::ICC_SGI0R_EL1);
        assert_eq!((access.rt, access.is_read), (31, false));
    }
}
