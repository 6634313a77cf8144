//! System registers the guest may access but gets nothing of: reads return zero, writes are
//! ignored (issue 13, hole 6). They trap because the pCPU's own state must not reach a guest:
//!
//! - the PMU (MDCR_EL2.TPM and TPMCR): its counters can count at EL2, so a guest could watch the
//!   hypervisor (and other vCPUs sharing the pCPU); the ID registers say there is no PMU, so
//!   Linux never probes it;
//! - ACTLR_EL1 (HCR_EL2.TACR): IMPLEMENTATION DEFINED controls of the pCPU itself.

use super::sysreg::SysReg;

/// The PMU's EL0 registers: op0 = 3, op1 = 3, CRn = 9, CRm = 12 (PMCR, PMCNTENSET/CLR, PMOVSCLR,
/// PMSWINC, PMSELR, PMCEID0/1), 13 (PMCCNTR, PMXEVTYPER, PMXEVCNTR), 14 (PMUSERENR, PMOVSSET).
const PMU_CRN: u8 = 9;
const PMU_EL0_CRMS: core::ops::RangeInclusive<u8> = 12..=14;
/// PMINTENSET_EL1 and PMINTENCLR_EL1: op0 = 3, op1 = 0, CRn = 9, CRm = 14, op2 = 1 or 2.
const PMINTEN_CRM: u8 = 14;
const PMINTEN_OP2S: core::ops::RangeInclusive<u8> = 1..=2;
/// PMEVCNTR<n>_EL0, PMEVTYPER<n>_EL0 and PMCCFILTR_EL0: op0 = 3, op1 = 3, CRn = 14, CRm = 8..15.
const PMEV_CRN: u8 = 14;
const PMEV_CRMS: core::ops::RangeInclusive<u8> = 8..=15;
const OP1_EL0: u8 = 3;
const OP1_EL1: u8 = 0;
const OP0_SYSREG: u8 = 3;

/// ACTLR_EL1.
pub const ACTLR_EL1: SysReg = SysReg::new(3, 0, 1, 0, 1);

/// Whether `reg` is a PMU register.
pub fn is_pmu_register(reg: SysReg) -> bool {
    if reg.op0 != OP0_SYSREG {
        return false;
    }
    let el0_block = reg.op1 == OP1_EL0 && reg.crn == PMU_CRN && PMU_EL0_CRMS.contains(&reg.crm);
    let interrupt_enables =
        reg.op1 == OP1_EL1 && reg.crn == PMU_CRN && reg.crm == PMINTEN_CRM && PMINTEN_OP2S.contains(&reg.op2);
    let event_counters = reg.op1 == OP1_EL0 && reg.crn == PMEV_CRN && PMEV_CRMS.contains(&reg.crm);
    el0_block || interrupt_enables || event_counters
}

/// Whether an access to `reg` reads as zero and ignores writes.
pub fn reads_as_zero(reg: SysReg) -> bool {
    reg == ACTLR_EL1 || is_pmu_register(reg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmu_registers_are_recognised() {
        for (name, reg) in [
            ("PMCR_EL0", SysReg::new(3, 3, 9, 12, 0)),
            ("PMCNTENSET_EL0", SysReg::new(3, 3, 9, 12, 1)),
            ("PMCCNTR_EL0", SysReg::new(3, 3, 9, 13, 0)),
            ("PMXEVCNTR_EL0", SysReg::new(3, 3, 9, 13, 2)),
            ("PMUSERENR_EL0", SysReg::new(3, 3, 9, 14, 0)),
            ("PMOVSSET_EL0", SysReg::new(3, 3, 9, 14, 3)),
            ("PMINTENSET_EL1", SysReg::new(3, 0, 9, 14, 1)),
            ("PMINTENCLR_EL1", SysReg::new(3, 0, 9, 14, 2)),
            ("PMEVCNTR0_EL0", SysReg::new(3, 3, 14, 8, 0)),
            ("PMEVTYPER30_EL0", SysReg::new(3, 3, 14, 15, 6)),
            ("PMCCFILTR_EL0", SysReg::new(3, 3, 14, 15, 7)),
        ] {
            assert!(is_pmu_register(reg), "{name}");
            assert!(reads_as_zero(reg), "{name}");
        }
        assert!(reads_as_zero(ACTLR_EL1));
    }

    #[test]
    fn neighbours_are_not() {
        for (name, reg) in [
            ("CNTFRQ_EL0", SysReg::new(3, 3, 14, 0, 0)),
            ("CNTV_CTL_EL0", SysReg::new(3, 3, 14, 3, 1)),
            ("SCTLR_EL1", SysReg::new(3, 0, 1, 0, 0)),
            ("CPACR_EL1", SysReg::new(3, 0, 1, 0, 2)),
            ("PMSCR_EL1 (SPE, own trap)", SysReg::new(3, 0, 9, 9, 0)),
            ("MAIR_EL1", SysReg::new(3, 0, 10, 2, 0)),
            ("debug register DBGBVR0_EL1", SysReg::new(2, 0, 0, 0, 4)),
        ] {
            assert!(!reads_as_zero(reg), "{name}");
        }
    }
}
