//! The guest's view of the CPU's ID registers (trapped with HCR_EL2.TID3): the hardware values
//! with the features the hypervisor does not virtualize hidden, so a guest never tries them.
//!
//! Hidden: SVE and SME (their register state is not switched between time-sliced vCPUs, so
//! CPTR_EL2 traps them), MTE (stage 2 does not give the guest tagged memory), and the PMU and
//! the statistical profiling extension (MDCR_EL2 traps them: counters that can count at EL2
//! would let a guest watch the hypervisor). Everything else (e.g. pointer authentication,
//! whose keys are switched) is shown as the hardware has it.

use super::sysreg::SysReg;

/// ID_AA64PFR0_EL1, ID_AA64PFR1_EL1, ID_AA64ZFR0_EL1, ID_AA64SMFR0_EL1.
pub const ID_AA64PFR0_EL1: SysReg = SysReg::new(3, 0, 0, 4, 0);
pub const ID_AA64PFR1_EL1: SysReg = SysReg::new(3, 0, 0, 4, 1);
pub const ID_AA64ZFR0_EL1: SysReg = SysReg::new(3, 0, 0, 4, 4);
pub const ID_AA64SMFR0_EL1: SysReg = SysReg::new(3, 0, 0, 4, 5);
/// ID_AA64DFR0_EL1 and the AArch32 ID_DFR0_EL1.
pub const ID_AA64DFR0_EL1: SysReg = SysReg::new(3, 0, 0, 5, 0);
pub const ID_DFR0_EL1: SysReg = SysReg::new(3, 0, 0, 1, 2);

/// ID_AA64PFR0_EL1.SVE [35:32].
const PFR0_SVE: u64 = 0xf << 32;
/// ID_AA64PFR1_EL1.MTE [11:8] and .SME [27:24].
const PFR1_MTE: u64 = 0xf << 8;
const PFR1_SME: u64 = 0xf << 24;
/// ID_AA64DFR0_EL1.PMUVer [11:8] and .PMSVer [35:32]; ID_DFR0_EL1.PerfMon [27:24].
const DFR0_PMUVER: u64 = 0xf << 8;
const DFR0_PMSVER: u64 = 0xf << 32;
const AARCH32_DFR0_PERFMON: u64 = 0xf << 24;

/// The feature-ID space TID3 traps: op0 = 3, op1 = 0, CRn = 0, CRm = 1..7.
pub fn is_id_register(reg: SysReg) -> bool {
    reg.op0 == 3 && reg.op1 == 0 && reg.crn == 0 && (1..=7).contains(&reg.crm)
}

/// What the guest reads for `reg` when the hardware says `hardware`.
pub fn guest_value(reg: SysReg, hardware: u64) -> u64 {
    match reg {
        r if r == ID_AA64PFR0_EL1 => hardware & !PFR0_SVE,
        r if r == ID_AA64PFR1_EL1 => hardware & !(PFR1_MTE | PFR1_SME),
        r if r == ID_AA64ZFR0_EL1 || r == ID_AA64SMFR0_EL1 => 0,
        r if r == ID_AA64DFR0_EL1 => hardware & !(DFR0_PMUVER | DFR0_PMSVER),
        r if r == ID_DFR0_EL1 => hardware & !AARCH32_DFR0_PERFMON,
        _ => hardware,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sve_sme_and_mte_are_hidden() {
        // A -cpu max like value: SVE = 1, everything else kept.
        let pfr0 = 0x1201_1111_0011_1122u64 | (1 << 32);
        assert_eq!(guest_value(ID_AA64PFR0_EL1, pfr0) & PFR0_SVE, 0);
        assert_eq!(guest_value(ID_AA64PFR0_EL1, pfr0) | PFR0_SVE, pfr0 | PFR0_SVE, "other fields kept");
        let pfr1 = (2 << 24) | (2 << 8) | 1;
        assert_eq!(guest_value(ID_AA64PFR1_EL1, pfr1), 1);
        assert_eq!(guest_value(ID_AA64ZFR0_EL1, u64::MAX), 0);
        assert_eq!(guest_value(ID_AA64SMFR0_EL1, u64::MAX), 0);
    }

    #[test]
    fn the_pmu_and_spe_are_hidden() {
        // cortex-a57: PMUVer 1 (PMUv3), 6 breakpoints, 4 watchpoints, DebugVer 6.
        let dfr0 = 0x1012_4106u64 | (1 << 32);
        assert_eq!(guest_value(ID_AA64DFR0_EL1, dfr0), 0x1012_4006, "breakpoint counts and DebugVer kept");
        assert_eq!(guest_value(ID_DFR0_EL1, 0x0301_0066), 0x0001_0066);
    }

    #[test]
    fn other_id_registers_pass_through() {
        let isar1 = SysReg::new(3, 0, 0, 6, 1);
        assert!(is_id_register(isar1));
        assert_eq!(guest_value(isar1, 0x1234), 0x1234);
        assert!(!is_id_register(SysReg::ICC_SGI1R_EL1));
        assert!(!is_id_register(SysReg::new(3, 0, 0, 0, 5)), "MPIDR-style CRm 0 registers are not TID3");
    }
}
