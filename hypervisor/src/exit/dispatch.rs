//! What to do about an exit: one table keyed by exception class turns a trapped ESR_EL2 (plus
//! FAR_EL2/HPFAR_EL2) into an [`Action`]. Pure, so the policy is unit-tested on the host; the
//! VM code carries the action out.

use super::mmio::fault_ipa;
use super::syndrome::{decode, exception_class, Exit};
use super::sysreg::SysReg;
use super::MmioAccess;

/// The registers an exit is decoded from.
#[derive(Clone, Copy, Debug)]
pub struct ExitInfo {
    pub esr: u64,
    pub far: u64,
    pub hpfar: u64,
}

/// Why an exit ends in an UNDEFINED exception for the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UndefReason {
    /// A system register (or system instruction) the hypervisor does not emulate.
    UnknownSysReg(SysReg),
    /// An exception class the hypervisor does not handle.
    UnhandledClass(u8),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// WFI: deschedule until the vCPU has an interrupt, then step past it.
    WaitForInterrupt,
    /// WFE: step past it (nothing to wait for under this scheduler).
    StepOver,
    /// HVC: a PSCI/SMCCC or hypervisor call in x0..x7; ELR already points past it.
    Hvc,
    /// SMC trapped by HCR_EL2.TSC: handled like HVC, then step past it.
    Smc,
    /// A write to ICC_SGI1R_EL1 (or ASGI1R) from register `rt`.
    SendSgi { rt: u8 },
    /// A read of a feature ID register (HCR_EL2.TID3) into register `rt`.
    ReadIdRegister { reg: SysReg, rt: u8 },
    /// An access to the EL1 physical timer (CNTP_CTL/CVAL/TVAL_EL0, trapped through
    /// CNTHCTL_EL2.EL1PCEN = 0) from or to register `rt`.
    PhysicalTimer { reg: SysReg, rt: u8, is_read: bool },
    /// A data abort with a usable syndrome at guest-physical `ipa`: emulate the access.
    Mmio { ipa: u64, access: MmioAccess },
    /// A data abort without a syndrome (ISV = 0) at `ipa`: cannot be emulated.
    MmioWithoutSyndrome { ipa: u64, is_write: bool },
    /// An instruction fetch from `ipa` that stage 2 does not allow.
    InstructionFetchFault { ipa: u64 },
    /// A register that reads as zero and ignores writes (`hidden_regs`): from or to `rt`.
    ReadsAsZero { rt: u8, is_read: bool },
    /// A TLB maintenance instruction (`TLBI`, trapped by HCR_EL2.TTLB while a hybrid VM's
    /// HRT runs a merged process) with its operand in register `rt`.
    TlbMaintenance { op: TlbiOp, rt: u8 },
    /// A synchronous external abort on a guest access or on the stage-2 walk for it: the
    /// memory behind the guest failed. Nothing to emulate, and not a fault of the guest's
    /// making: it gets a virtual SError (as KVM does), the architecture's report of a memory
    /// error the guest cannot attribute to one instruction.
    VirtualSError,
    /// Inject UNDEFINED into the guest.
    Undefined(UndefReason),
}

/// The EL1 TLB maintenance operations (`TLBI <op>`, op0 = 1, op1 = 0, CRn = 8) Linux issues;
/// any other encoding is [`TlbiOp::Other`], performed as the strongest (all of the VM, all CPUs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlbiOp {
    /// By VA and ASID / by ASID / all / by VA all ASIDs; `last` = last level only;
    /// `broadcast` = inner shareable (all CPUs).
    Va {
        last: bool,
        broadcast: bool,
    },
    Asid {
        broadcast: bool,
    },
    All {
        broadcast: bool,
    },
    VaAllAsids {
        last: bool,
        broadcast: bool,
    },
    Other,
}

/// CRm of the EL1 TLBI encodings: inner shareable, or this PE only.
const TLBI_CRM_INNER_SHAREABLE: u8 = 3;
const TLBI_CRM_LOCAL: u8 = 7;
/// CRn of the TLB maintenance instructions.
const TLBI_CRN: u8 = 8;

impl TlbiOp {
    /// Decodes `SYS #op1, C8, C<crm>, #op2`.
    pub const fn decode(op1: u8, crm: u8, op2: u8) -> Self {
        let broadcast = match (op1, crm) {
            (0, TLBI_CRM_INNER_SHAREABLE) => true,
            (0, TLBI_CRM_LOCAL) => false,
            _ => return Self::Other,
        };
        match op2 {
            0 => Self::All { broadcast },
            1 => Self::Va { last: false, broadcast },
            2 => Self::Asid { broadcast },
            3 => Self::VaAllAsids { last: false, broadcast },
            5 => Self::Va { last: true, broadcast },
            7 => Self::VaAllAsids { last: true, broadcast },
            _ => Self::Other,
        }
    }
}

type Route = fn(&ExitInfo, Exit) -> Action;

/// ESR_EL2.EC is 6 bits.
const EXCEPTION_CLASSES: usize = 64;

/// The exit table: every exception class has an entry; unknown ones become UNDEF.
static ROUTES: [Route; EXCEPTION_CLASSES] = build_routes();

const fn build_routes() -> [Route; EXCEPTION_CLASSES] {
    use super::syndrome::ExceptionClass as Ec;
    let mut table: [Route; EXCEPTION_CLASSES] = [unhandled; EXCEPTION_CLASSES];
    table[Ec::WfxTrap.bits() as usize] = wfx;
    table[Ec::Hvc64.bits() as usize] = hvc;
    table[Ec::Smc64.bits() as usize] = smc;
    table[Ec::SysReg64.bits() as usize] = sysreg;
    table[Ec::DataAbortLower.bits() as usize] = data_abort;
    table[Ec::InstructionAbortLower.bits() as usize] = instruction_abort;
    table
}

/// Decides what to do about an exit.
pub fn route(info: &ExitInfo) -> Action {
    let ec = exception_class(info.esr).bits() as usize % EXCEPTION_CLASSES;
    ROUTES[ec](info, decode(info.esr))
}

fn unhandled(info: &ExitInfo, _: Exit) -> Action {
    Action::Undefined(UndefReason::UnhandledClass(exception_class(info.esr).bits()))
}

fn wfx(info: &ExitInfo, exit: Exit) -> Action {
    match exit {
        Exit::Wfx { is_wfe: false } => Action::WaitForInterrupt,
        Exit::Wfx { is_wfe: true } => Action::StepOver,
        _ => unhandled(info, exit),
    }
}

fn hvc(_: &ExitInfo, _: Exit) -> Action {
    Action::Hvc
}

fn smc(_: &ExitInfo, _: Exit) -> Action {
    Action::Smc
}

fn sysreg(info: &ExitInfo, exit: Exit) -> Action {
    match exit {
        Exit::SysReg(access)
            if !access.is_read && (access.reg == SysReg::ICC_SGI1R_EL1 || access.reg == SysReg::ICC_ASGI1R_EL1) =>
        {
            Action::SendSgi { rt: access.rt }
        }
        Exit::SysReg(access) if access.is_read && super::id_regs::is_id_register(access.reg) => {
            Action::ReadIdRegister { reg: access.reg, rt: access.rt }
        }
        Exit::SysReg(access)
            if [SysReg::CNTP_CTL_EL0, SysReg::CNTP_CVAL_EL0, SysReg::CNTP_TVAL_EL0].contains(&access.reg) =>
        {
            Action::PhysicalTimer { reg: access.reg, rt: access.rt, is_read: access.is_read }
        }
        Exit::SysReg(access) if super::hidden_regs::reads_as_zero(access.reg) => {
            Action::ReadsAsZero { rt: access.rt, is_read: access.is_read }
        }
        Exit::SysReg(access) if access.reg.op0 == 1 && access.reg.crn == TLBI_CRN && !access.is_read => {
            Action::TlbMaintenance { op: TlbiOp::decode(access.reg.op1, access.reg.crm, access.reg.op2), rt: access.rt }
        }
        Exit::SysReg(access) => Action::Undefined(UndefReason::UnknownSysReg(access.reg)),
        _ => unhandled(info, exit),
    }
}

fn data_abort(info: &ExitInfo, exit: Exit) -> Action {
    let ipa = fault_ipa(info.hpfar, info.far);
    match exit {
        Exit::DataAbort(abort) if abort.fault.is_external() => Action::VirtualSError,
        Exit::DataAbort(abort) => match abort.access {
            Some(access) => Action::Mmio { ipa, access },
            None => Action::MmioWithoutSyndrome { ipa, is_write: abort.is_write },
        },
        _ => unhandled(info, exit),
    }
}

fn instruction_abort(info: &ExitInfo, exit: Exit) -> Action {
    match exit {
        Exit::InstructionAbort { fault, .. } if fault.is_external() => Action::VirtualSError,
        _ => Action::InstructionFetchFault { ipa: fault_ipa(info.hpfar, info.far) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC_SHIFT: u64 = 26;
    const IL: u64 = 1 << 25;

    fn esr(ec: u64, iss: u64) -> u64 {
        (ec << EC_SHIFT) | IL | iss
    }

    fn info(esr: u64) -> ExitInfo {
        ExitInfo { esr, far: 0xffff_0000_0000_0abc, hpfar: 0x0900_0000 >> 8 }
    }

    /// ISS of a system-register trap (EC 0x18) for (op0, op1, crn, crm, op2), Rt, direction.
    fn sysreg_iss(op0: u64, op1: u64, crn: u64, crm: u64, op2: u64, rt: u64, read: bool) -> u64 {
        (op0 << 20) | (op2 << 17) | (op1 << 14) | (crn << 10) | (rt << 5) | (crm << 1) | read as u64
    }

    #[test]
    fn unknown_system_register_becomes_undef() {
        // MRS x3, S3_0_C15_C2_0 (an IMPLEMENTATION DEFINED register we do not emulate).
        let action = route(&info(esr(0x18, sysreg_iss(3, 0, 15, 2, 0, 3, true))));
        assert_eq!(action, Action::Undefined(UndefReason::UnknownSysReg(SysReg::new(3, 0, 15, 2, 0))));
    }

    #[test]
    fn sgi1r_write_is_an_sgi_and_its_read_is_undef() {
        assert_eq!(route(&info(esr(0x18, sysreg_iss(3, 0, 12, 11, 5, 7, false)))), Action::SendSgi { rt: 7 });
        assert!(matches!(route(&info(esr(0x18, sysreg_iss(3, 0, 12, 11, 5, 7, true)))), Action::Undefined(_)));
    }

    #[test]
    fn id_register_reads_are_emulated() {
        // MRS x5, ID_AA64PFR0_EL1
        assert_eq!(
            route(&info(esr(0x18, sysreg_iss(3, 0, 0, 4, 0, 5, true)))),
            Action::ReadIdRegister { reg: SysReg::new(3, 0, 0, 4, 0), rt: 5 }
        );
    }

    #[test]
    fn physical_timer_accesses_are_emulated() {
        // MSR CNTP_CTL_EL0, x2; MRS x9, CNTP_CVAL_EL0; MSR CNTP_TVAL_EL0, x30.
        assert_eq!(
            route(&info(esr(0x18, sysreg_iss(3, 3, 14, 2, 1, 2, false)))),
            Action::PhysicalTimer { reg: SysReg::CNTP_CTL_EL0, rt: 2, is_read: false }
        );
        assert_eq!(
            route(&info(esr(0x18, sysreg_iss(3, 3, 14, 2, 2, 9, true)))),
            Action::PhysicalTimer { reg: SysReg::CNTP_CVAL_EL0, rt: 9, is_read: true }
        );
        assert_eq!(
            route(&info(esr(0x18, sysreg_iss(3, 3, 14, 2, 0, 30, false)))),
            Action::PhysicalTimer { reg: SysReg::CNTP_TVAL_EL0, rt: 30, is_read: false }
        );
        // The virtual timer's CNTV_CTL_EL0 (3, 3, 14, 3, 1) never traps here: not ours.
        assert!(matches!(route(&info(esr(0x18, sysreg_iss(3, 3, 14, 3, 1, 0, false)))), Action::Undefined(_)));
    }

    #[test]
    fn tlb_maintenance_is_decoded_by_operation() {
        // TLBI VALE1IS, x4; TLBI ASIDE1, x9; TLBI VMALLE1IS; TLBI VAAE1IS, x1.
        let tlbi = |op1, crm, op2, rt| route(&info(esr(0x18, sysreg_iss(1, op1, 8, crm, op2, rt, false))));
        assert_eq!(tlbi(0, 3, 5, 4), Action::TlbMaintenance { op: TlbiOp::Va { last: true, broadcast: true }, rt: 4 });
        assert_eq!(tlbi(0, 7, 2, 9), Action::TlbMaintenance { op: TlbiOp::Asid { broadcast: false }, rt: 9 });
        assert_eq!(tlbi(0, 3, 0, 31), Action::TlbMaintenance { op: TlbiOp::All { broadcast: true }, rt: 31 });
        assert_eq!(
            tlbi(0, 3, 3, 1),
            Action::TlbMaintenance { op: TlbiOp::VaAllAsids { last: false, broadcast: true }, rt: 1 }
        );
        // Range and outer-shareable forms (ARMv8.4) and EL2 ones: the strongest invalidation.
        assert_eq!(tlbi(0, 2, 1, 0), Action::TlbMaintenance { op: TlbiOp::Other, rt: 0 });
        assert_eq!(tlbi(4, 3, 0, 0), Action::TlbMaintenance { op: TlbiOp::Other, rt: 0 });
        // Data cache maintenance (CRn 7) is not TLB maintenance.
        assert!(matches!(route(&info(esr(0x18, sysreg_iss(1, 3, 7, 11, 1, 0, false)))), Action::Undefined(_)));
    }

    #[test]
    fn wfi_wfe_hvc_smc() {
        assert_eq!(route(&info(esr(0x01, 0))), Action::WaitForInterrupt);
        assert_eq!(route(&info(esr(0x01, 1))), Action::StepOver);
        assert_eq!(route(&info(esr(0x16, 0))), Action::Hvc);
        assert_eq!(route(&info(esr(0x17, 0))), Action::Smc);
    }

    #[test]
    fn data_abort_uses_hpfar_for_the_ipa() {
        // ISV=1, SAS=word (2), SRT=1, WnR=1, DFSC=translation fault level 3.
        let iss = (1 << 24) | (2 << 22) | (1 << 16) | (1 << 6) | 0x07;
        match route(&info(esr(0x24, iss))) {
            Action::Mmio { ipa, access } => {
                assert_eq!(ipa, 0x0900_0abc, "IPA from HPFAR_EL2 and FAR_EL2[11:0], not the VA");
                assert!(access.is_write);
                assert_eq!((access.size, access.reg), (4, 1));
            }
            other => panic!("{other:?}"),
        }
        let no_isv = (1 << 6) | 0x07;
        assert_eq!(route(&info(esr(0x24, no_isv))), Action::MmioWithoutSyndrome { ipa: 0x0900_0abc, is_write: true });
    }

    #[test]
    fn pmu_and_actlr_accesses_read_as_zero() {
        // MRS x2, PMCCNTR_EL0 and MSR PMCR_EL0, x9.
        assert_eq!(
            route(&info(esr(0x18, sysreg_iss(3, 3, 9, 13, 0, 2, true)))),
            Action::ReadsAsZero { rt: 2, is_read: true }
        );
        assert_eq!(
            route(&info(esr(0x18, sysreg_iss(3, 3, 9, 12, 0, 9, false)))),
            Action::ReadsAsZero { rt: 9, is_read: false }
        );
        // MRS x0, ACTLR_EL1.
        assert_eq!(
            route(&info(esr(0x18, sysreg_iss(3, 0, 1, 0, 1, 0, true)))),
            Action::ReadsAsZero { rt: 0, is_read: true }
        );
    }

    #[test]
    fn external_aborts_become_a_virtual_serror() {
        // DFSC 0x10: synchronous external abort on the access, even with a valid syndrome
        // (ISV=1): there is nothing to emulate.
        let isv_word_write = (1 << 24) | (2 << 22) | (1 << 6);
        assert_eq!(route(&info(esr(0x24, isv_word_write | 0x10))), Action::VirtualSError);
        // DFSC 0x14..0x17: on the stage-2 walk, levels 0-3.
        for level in 0..4 {
            assert_eq!(route(&info(esr(0x24, 0x14 | level))), Action::VirtualSError, "level {level}");
        }
        // IFSC 0x10: an instruction fetch.
        assert_eq!(route(&info(esr(0x20, 0x10))), Action::VirtualSError);
        // Translation and permission faults stay what they were.
        assert!(matches!(route(&info(esr(0x24, isv_word_write | 0x07))), Action::Mmio { .. }));
        assert!(matches!(route(&info(esr(0x20, 0x0f))), Action::InstructionFetchFault { .. }));
    }

    #[test]
    fn unhandled_classes_become_undef() {
        // EC 0x07 (FP trap) and 0x3f (unallocated).
        assert_eq!(route(&info(esr(0x07, 0))), Action::Undefined(UndefReason::UnhandledClass(0x07)));
        assert_eq!(route(&info(esr(0x3f, 0))), Action::Undefined(UndefReason::UnhandledClass(0x3f)));
        assert!(matches!(route(&info(esr(0x20, 0x07))), Action::InstructionFetchFault { .. }));
    }
}
