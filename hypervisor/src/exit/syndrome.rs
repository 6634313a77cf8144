//! ESR_EL2, the syndrome register: why a guest left, decoded into an [`Exit`].
//!
//! Layout (Arm ARM, ESR_EL2): EC, bits 31:26, is the exception class; IL, bit 25, the length
//! of the trapped instruction; ISS, bits 24:0, the class-specific details. Bits 63:32 (ISS2
//! and RES0) carry nothing the hypervisor uses and are ignored.

use core::fmt;

use super::mmio::MmioAccess;
use super::sysreg::SysRegAccess;

/// ESR_EL2.EC, bits [31:26].
const EC_SHIFT: u32 = 26;
const EC_MASK: u64 = 0x3F;
/// ESR_EL2.IL, bit [25]: set when the trapped instruction is 32 bits long (every A64 one).
const IL_BIT: u64 = 1 << 25;
/// ESR_EL2.ISS, bits [24:0].
const ISS_MASK: u64 = (1 << 25) - 1;

/// Bytes in an A64 (or 32-bit T32) instruction, reported with IL = 1.
const LONG_INSTRUCTION_BYTES: u64 = 4;
/// Bytes in a 16-bit T32 instruction, reported with IL = 0.
const SHORT_INSTRUCTION_BYTES: u64 = 2;

/// WFx ISS: TI [1:0] is WFI 0b00, WFE 0b01, WFIT 0b10, WFET 0b11, so bit 0 means "an event
/// wait" and the timeout variants behave like their plain forms.
const ISS_WFX_TI_WFE: u32 = 1 << 0;

/// HVC and SMC ISS: the 16-bit immediate of the instruction, bits [15:0].
const ISS_IMM16_MASK: u32 = 0xFFFF;

/// Abort ISS (data and instruction): the fault status code, bits [5:0].
const ISS_FSC_MASK: u32 = 0x3F;
/// Data abort ISS: WnR, bit [6]: the access was a write (also set by cache maintenance).
pub(super) const ISS_WNR: u32 = 1 << 6;
/// Abort ISS: S1PTW, bit [7]: stage 2 faulted on a stage 1 page-table walk, not the access.
const ISS_S1PTW: u32 = 1 << 7;
/// Data abort ISS: CM, bit [8]: caused by a cache maintenance or address translation insn.
const ISS_CM: u32 = 1 << 8;
/// Abort ISS: EA, bit [9]: implementation-defined external abort type.
const ISS_EA: u32 = 1 << 9;
/// Abort ISS: FnV, bit [10]: FAR_EL2 is not valid (its contents are UNKNOWN).
const ISS_FNV: u32 = 1 << 10;

/// Fault status codes (DFSC/IFSC). Most come in groups of four whose low two bits give the
/// translation table level of the fault.
const FSC_LEVEL_MASK: u8 = 0b00_0011;
const FSC_GROUP_MASK: u8 = 0b11_1100;
const FSC_ADDRESS_SIZE: u8 = 0b00_0000;
const FSC_TRANSLATION: u8 = 0b00_0100;
const FSC_ACCESS_FLAG: u8 = 0b00_1000;
const FSC_PERMISSION: u8 = 0b00_1100;
const FSC_SYNC_EXTERNAL_ON_WALK: u8 = 0b01_0100;
/// Single codes (no level).
const FSC_SYNC_EXTERNAL: u8 = 0b01_0000;
const FSC_ALIGNMENT: u8 = 0b10_0001;

/// Lists every named exception class once, generating the enum and both conversions so the
/// name-to-number table cannot drift between them.
macro_rules! exception_classes {
    ($($(#[doc = $doc:literal])* $name:ident = $value:literal,)*) => {
        /// ESR_EL2.EC: the broad reason an exception was taken to EL2.
        ///
        /// Values the hypervisor has no name for are kept as read in [`Self::Other`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum ExceptionClass {
            $($(#[doc = $doc])* $name,)*
            /// An EC value without a name here.
            Other(u8),
        }

        impl ExceptionClass {
            /// The class for a raw EC value.
            pub const fn from_bits(ec: u8) -> Self {
                match ec {
                    $($value => Self::$name,)*
                    other => Self::Other(other),
                }
            }

            /// The raw EC value, usable as a dispatch-table index (always below 64 when the
            /// class came from [`exception_class`]).
            pub const fn bits(self) -> u8 {
                match self {
                    $(Self::$name => $value,)*
                    Self::Other(ec) => ec,
                }
            }
        }
    };
}

exception_classes! {
    /// Anything else (e.g. an undefined instruction trapped by configuration).
    Unknown = 0x00,
    /// WFI, WFE, WFIT or WFET trapped by HCR_EL2.TWI/TWE.
    WfxTrap = 0x01,
    /// FP or Advanced SIMD access trapped by CPTR_EL2.
    FpAsimdTrap = 0x07,
    /// Illegal exception return (PSTATE.IL set).
    IllegalExecutionState = 0x0E,
    /// SVC from AArch32.
    Svc32 = 0x11,
    /// HVC from AArch32.
    Hvc32 = 0x12,
    /// SMC from AArch32 trapped by HCR_EL2.TSC.
    Smc32 = 0x13,
    /// SVC from AArch64.
    Svc64 = 0x15,
    /// HVC from AArch64: a hypercall (PSCI, SMCCC, the hypervisor's own).
    Hvc64 = 0x16,
    /// SMC from AArch64 trapped by HCR_EL2.TSC.
    Smc64 = 0x17,
    /// MSR, MRS or system instruction from AArch64.
    SysReg64 = 0x18,
    /// SVE access trapped by CPTR_EL2.
    SveTrap = 0x19,
    /// ERET family trapped (nested virtualization, fine-grained traps).
    EretTrap = 0x1A,
    /// Pointer authentication failure.
    PacFailure = 0x1C,
    /// Instruction abort from a lower EL (stage 1 or stage 2).
    InstructionAbortLower = 0x20,
    /// Instruction abort taken without a change of EL: a hypervisor bug.
    InstructionAbortSameEl = 0x21,
    /// Misaligned PC.
    PcAlignment = 0x22,
    /// Data abort from a lower EL: for a guest, usually an MMIO access to an unmapped IPA.
    DataAbortLower = 0x24,
    /// Data abort taken without a change of EL: a hypervisor bug.
    DataAbortSameEl = 0x25,
    /// Misaligned SP.
    SpAlignment = 0x26,
    /// Trapped floating-point exception from AArch64.
    FpException64 = 0x2C,
    /// SError interrupt.
    SError = 0x2F,
    /// Hardware breakpoint from a lower EL.
    BreakpointLower = 0x30,
    /// Software step from a lower EL.
    SoftwareStepLower = 0x32,
    /// Watchpoint from a lower EL.
    WatchpointLower = 0x34,
    /// BRK from AArch64.
    Brk64 = 0x3C,
}

impl fmt::Display for ExceptionClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(ec) => write!(f, "unnamed exception class {ec:#04x}"),
            named => write!(f, "{named:?} (EC {:#04x})", named.bits()),
        }
    }
}

/// The exception class of a syndrome.
pub fn exception_class(esr: u64) -> ExceptionClass {
    // The mask keeps the value within six bits, so the narrowing cannot lose anything.
    ExceptionClass::from_bits(((esr >> EC_SHIFT) & EC_MASK) as u8)
}

/// The instruction-specific syndrome, ESR_EL2 bits 24:0.
pub fn iss(esr: u64) -> u32 {
    (esr & ISS_MASK) as u32
}

/// Bytes to add to ELR_EL2 to step over the trapped instruction once it has been emulated.
pub fn instruction_length(esr: u64) -> u64 {
    if esr & IL_BIT != 0 {
        LONG_INSTRUCTION_BYTES
    } else {
        SHORT_INSTRUCTION_BYTES
    }
}

/// A decoded DFSC or IFSC: what kind of fault, and at which translation table level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultStatus {
    /// The address was out of the configured input or output range.
    AddressSize { level: u8 },
    /// No valid descriptor: for stage 2, the IPA is not mapped (an MMIO candidate).
    Translation { level: u8 },
    /// The descriptor's access flag was clear.
    AccessFlag { level: u8 },
    /// The mapping does not allow the access (e.g. a write to read-only memory).
    Permission { level: u8 },
    /// Synchronous external abort on the access itself.
    SyncExternal,
    /// Synchronous external abort while walking the translation tables.
    SyncExternalOnWalk { level: u8 },
    /// Misaligned access.
    Alignment,
    /// A code without a name here (TLB conflict, parity error, level -1 faults, ...).
    Other(u8),
}

impl FaultStatus {
    /// Decodes the six-bit fault status code (DFSC or IFSC).
    pub fn from_fsc(fsc: u8) -> Self {
        let level = fsc & FSC_LEVEL_MASK;
        match fsc {
            FSC_SYNC_EXTERNAL => Self::SyncExternal,
            FSC_ALIGNMENT => Self::Alignment,
            _ => match fsc & FSC_GROUP_MASK {
                FSC_ADDRESS_SIZE => Self::AddressSize { level },
                FSC_TRANSLATION => Self::Translation { level },
                FSC_ACCESS_FLAG => Self::AccessFlag { level },
                FSC_PERMISSION => Self::Permission { level },
                FSC_SYNC_EXTERNAL_ON_WALK => Self::SyncExternalOnWalk { level },
                _ => Self::Other(fsc),
            },
        }
    }

    /// A synchronous external abort (on the access or on a table walk).
    pub fn is_external(self) -> bool {
        matches!(self, Self::SyncExternal | Self::SyncExternalOnWalk { .. })
    }

    fn from_iss(iss: u32) -> Self {
        // Six bits after masking: the narrowing is lossless.
        Self::from_fsc((iss & ISS_FSC_MASK) as u8)
    }
}

/// A data abort from the guest, as reported in the ISS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataAbort {
    /// The single-register load or store, when the hardware described it (ISV = 1). Without
    /// it (pair, writeback, SIMD accesses...) an MMIO access cannot be emulated from the
    /// syndrome alone.
    pub access: Option<MmioAccess>,
    /// WnR: a write. Also set for cache maintenance, so check `cache_maintenance` first.
    pub is_write: bool,
    /// Stage 2 faulted while the guest's own page-table walk read its tables.
    pub s1ptw: bool,
    /// FnV: FAR_EL2 does not hold the faulting virtual address, so the page offset of
    /// [`super::mmio::fault_ipa`] is unknown.
    pub far_not_valid: bool,
    /// EA: implementation-defined classification of an external abort.
    pub external: bool,
    /// CM: caused by a cache maintenance or address translation instruction, not a load/store.
    pub cache_maintenance: bool,
    pub fault: FaultStatus,
}

impl DataAbort {
    /// Decodes the ISS of a data abort (EC 0x24 or 0x25).
    pub fn from_iss(iss: u32) -> Self {
        Self {
            access: MmioAccess::from_iss(iss),
            is_write: iss & ISS_WNR != 0,
            s1ptw: iss & ISS_S1PTW != 0,
            far_not_valid: iss & ISS_FNV != 0,
            external: iss & ISS_EA != 0,
            cache_maintenance: iss & ISS_CM != 0,
            fault: FaultStatus::from_iss(iss),
        }
    }
}

/// Why the guest left, in the terms the hypervisor acts on.
///
/// Where ELR_EL2 points differs: for `Hvc` it is already past the HVC; for every other
/// variant it is the trapping instruction itself, so the handler adds
/// [`instruction_length`] after emulating it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// WFI or WFE (or their timeout forms): the guest has nothing to do.
    Wfx { is_wfe: bool },
    /// HVC from AArch64 with its immediate; the call itself is in x0..x7.
    Hvc { imm: u16 },
    /// SMC from AArch64 trapped by HCR_EL2.TSC, with its immediate.
    Smc { imm: u16 },
    /// MSR, MRS or system instruction from AArch64.
    SysReg(SysRegAccess),
    /// Data abort from the guest (stage 2 fault: MMIO or a mapping problem).
    DataAbort(DataAbort),
    /// Instruction abort from the guest: it tried to execute from an unmapped or
    /// non-executable IPA.
    InstructionAbort { fault: FaultStatus, s1ptw: bool },
    /// FP or Advanced SIMD access trapped by CPTR_EL2 (for lazy FP context switching).
    FpSimd,
    /// Any other class, including the AArch32 and same-EL ones, left for the caller.
    Other { ec: u8, iss: u32 },
}

/// Decodes ESR_EL2 into an [`Exit`]. Every input gives an answer; nothing here panics.
pub fn decode(esr: u64) -> Exit {
    let iss = iss(esr);
    match exception_class(esr) {
        ExceptionClass::WfxTrap => Exit::Wfx { is_wfe: iss & ISS_WFX_TI_WFE != 0 },
        ExceptionClass::Hvc64 => Exit::Hvc { imm: imm16(iss) },
        ExceptionClass::Smc64 => Exit::Smc { imm: imm16(iss) },
        ExceptionClass::SysReg64 => Exit::SysReg(SysRegAccess::from_iss(iss)),
        ExceptionClass::DataAbortLower => Exit::DataAbort(DataAbort::from_iss(iss)),
        ExceptionClass::InstructionAbortLower => {
            Exit::InstructionAbort { fault: FaultStatus::from_iss(iss), s1ptw: iss & ISS_S1PTW != 0 }
        }
        ExceptionClass::FpAsimdTrap => Exit::FpSimd,
        class => Exit::Other { ec: class.bits(), iss },
    }
}

fn imm16(iss: u32) -> u16 {
    // Sixteen bits after masking: the narrowing is lossless.
    (iss & ISS_IMM16_MASK) as u16
}

#[cfg(test)]
mod tests {
    //! Each ESR below is built by hand from the field definitions:
    //! ESR = EC << 26 | IL << 25 | ISS. With IL = 1, EC 0x24 (data abort from a lower EL)
    //! gives 0x9200_0000, EC 0x20 gives 0x8200_0000, EC 0x16 0x5A00_0000, EC 0x17
    //! 0x5E00_0000, EC 0x18 0x6200_0000, EC 0x01 0x0600_0000 and EC 0x07 0x1E00_0000.
    //! Data abort ISS bits: ISV 24 (0x0100_0000), SAS [23:22], SSE 21 (0x0020_0000),
    //! SRT [20:16], SF 15 (0x8000), AR 14 (0x4000), FnV 10, EA 9, CM 8, S1PTW 7, WnR 6 (0x40),
    //! DFSC [5:0] (0x07 = translation fault, level 3).
    use super::*;
    use crate::exit::sysreg::SysReg;

    fn data_abort(esr: u64) -> DataAbort {
        match decode(esr) {
            Exit::DataAbort(abort) => abort,
            other => panic!("{esr:#x} decoded as {other:?}"),
        }
    }

    fn mmio(esr: u64) -> MmioAccess {
        data_abort(esr).access.expect("ISV should be set")
    }

    #[test]
    fn stores_of_each_size() {
        // strb w1, [x0]: ISV | SAS 0b00 | SRT 1 (0x1_0000) | WnR | DFSC 0x07.
        let a = mmio(0x9301_0047);
        assert_eq!((a.size, a.reg, a.is_write, a.sixty_four), (1, 1, true, false));
        // strh w2, [x0]: SAS 0b01 (0x40_0000), SRT 2.
        let a = mmio(0x9342_0047);
        assert_eq!((a.size, a.reg, a.is_write), (2, 2, true));
        // str w1, [x0]: SAS 0b10 (0x80_0000), SRT 1.
        let a = mmio(0x9381_0047);
        assert_eq!((a.size, a.reg, a.is_write, a.sixty_four), (4, 1, true, false));
        // str x3, [x0]: SAS 0b11 (0xC0_0000), SRT 3, SF.
        let a = mmio(0x93C3_8047);
        assert_eq!((a.size, a.reg, a.is_write, a.sixty_four), (8, 3, true, true));
        assert!(!a.sign_extend && !a.acquire_release);
    }

    #[test]
    fn loads_of_each_size() {
        // ldrb w4 / ldrh w5 / ldr w6 / ldr x7, each from [x0]: WnR clear.
        for (esr, size, reg, sf) in [
            (0x9304_0007, 1, 4, false),
            (0x9345_0007, 2, 5, false),
            (0x9386_0007, 4, 6, false),
            (0x93C7_8007, 8, 7, true),
        ] {
            let a = mmio(esr);
            assert_eq!((a.size, a.reg, a.is_write, a.sixty_four), (size, reg, false, sf), "{esr:#x}");
            assert!(!a.sign_extend);
            assert!(!data_abort(esr).is_write);
        }
    }

    #[test]
    fn sign_extending_loads() {
        // ldrsb w8, [x0]: SAS 0b00 | SSE | SRT 8, SF clear (W destination).
        let a = mmio(0x9328_0007);
        assert_eq!((a.size, a.reg, a.sign_extend, a.sixty_four), (1, 8, true, false));
        assert_eq!(a.load_value(0x80), 0xFFFF_FF80);
        // ldrsb x9, [x0]: SSE | SRT 9 | SF.
        let a = mmio(0x9329_8007);
        assert_eq!((a.size, a.reg, a.sign_extend, a.sixty_four), (1, 9, true, true));
        assert_eq!(a.load_value(0x80), 0xFFFF_FFFF_FFFF_FF80);
        // ldrsw x10, [x0]: SAS 0b10 | SSE | SRT 10 (0xA_0000) | SF.
        let a = mmio(0x93AA_8007);
        assert_eq!((a.size, a.reg, a.sign_extend, a.sixty_four), (4, 10, true, true));
        assert_eq!(a.load_value(0x8000_0000), 0xFFFF_FFFF_8000_0000);
    }

    #[test]
    fn store_of_the_zero_register() {
        // str wzr, [x0]: SRT 31 (0x1F_0000) names XZR, not SP.
        let a = mmio(0x939F_0047);
        assert_eq!((a.size, a.reg, a.is_write), (4, 31, true));
    }

    #[test]
    fn store_release_sets_acquire_release() {
        // stlr w1, [x0]: as str w1 plus AR (0x4000).
        assert!(mmio(0x9381_4047).acquire_release);
    }

    #[test]
    fn abort_without_isv_has_no_access() {
        // e.g. stp x0, x1, [x2]: ISV clear, WnR set, translation fault level 3.
        let abort = data_abort(0x9200_0047);
        assert_eq!(abort.access, None);
        assert!(abort.is_write);
        assert_eq!(abort.fault, FaultStatus::Translation { level: 3 });
    }

    #[test]
    fn abort_flag_bits() {
        let base = 0x9200_0000;
        assert!(data_abort(base | u64::from(ISS_S1PTW)).s1ptw);
        assert!(data_abort(base | u64::from(ISS_FNV)).far_not_valid);
        assert!(data_abort(base | u64::from(ISS_EA)).external);
        // dc civac to an unmapped IPA: CM and WnR both set.
        let abort = data_abort(base | u64::from(ISS_CM | ISS_WNR));
        assert!(abort.cache_maintenance && abort.is_write);
        let plain = data_abort(base);
        assert!(!plain.s1ptw && !plain.far_not_valid && !plain.external && !plain.cache_maintenance);
    }

    #[test]
    fn fault_status_codes() {
        assert_eq!(FaultStatus::from_fsc(0b00_0010), FaultStatus::AddressSize { level: 2 });
        assert_eq!(FaultStatus::from_fsc(0b00_0101), FaultStatus::Translation { level: 1 });
        assert_eq!(FaultStatus::from_fsc(0b00_1011), FaultStatus::AccessFlag { level: 3 });
        assert_eq!(FaultStatus::from_fsc(0b00_1111), FaultStatus::Permission { level: 3 });
        assert_eq!(FaultStatus::from_fsc(0b01_0000), FaultStatus::SyncExternal);
        assert_eq!(FaultStatus::from_fsc(0b01_0101), FaultStatus::SyncExternalOnWalk { level: 1 });
        assert_eq!(FaultStatus::from_fsc(0b10_0001), FaultStatus::Alignment);
        // Synchronous tag check fault and TLB conflict have no name here.
        assert_eq!(FaultStatus::from_fsc(0b01_0001), FaultStatus::Other(0b01_0001));
        assert_eq!(FaultStatus::from_fsc(0b11_0000), FaultStatus::Other(0b11_0000));
        // A permission fault through the data abort path: 0x9200_004F is a write, DFSC 0x0F.
        assert_eq!(data_abort(0x9200_004F).fault, FaultStatus::Permission { level: 3 });
    }

    #[test]
    fn hypercalls_and_secure_monitor_calls() {
        // HVC #0: EC 0x16 << 26 | IL.
        assert_eq!(decode(0x5A00_0000), Exit::Hvc { imm: 0 });
        assert_eq!(decode(0x5A00_1234), Exit::Hvc { imm: 0x1234 });
        // SMC #0: EC 0x17 << 26 | IL.
        assert_eq!(decode(0x5E00_0000), Exit::Smc { imm: 0 });
        assert_eq!(exception_class(0x5E00_0000), ExceptionClass::Smc64);
    }

    #[test]
    fn wait_for_interrupt_and_event() {
        // WFI: EC 0x01 << 26 | IL, TI 0b00. Hardware also sets CV (bit 24) and COND 0b1110
        // ([23:20]) for AArch64, giving 0x07E0_0000; both decode the same.
        assert_eq!(decode(0x0600_0000), Exit::Wfx { is_wfe: false });
        assert_eq!(decode(0x07E0_0000), Exit::Wfx { is_wfe: false });
        // WFE: TI 0b01. WFET (TI 0b11) counts as WFE, WFIT (0b10) as WFI.
        assert_eq!(decode(0x0600_0001), Exit::Wfx { is_wfe: true });
        assert_eq!(decode(0x07E0_0001), Exit::Wfx { is_wfe: true });
        assert_eq!(decode(0x0600_0003), Exit::Wfx { is_wfe: true });
        assert_eq!(decode(0x0600_0002), Exit::Wfx { is_wfe: false });
    }

    #[test]
    fn msr_icc_sgi1r() {
        // msr ICC_SGI1R_EL1, x1: Op0 3 (0x30_0000) | Op2 5 (0xA_0000) | Op1 0 | CRn 12
        // (0x3000) | Rt 1 (0x20) | CRm 11 (0x16) | Direction 0 (write) = ISS 0x3A_3036.
        let Exit::SysReg(access) = decode(0x623A_3036) else { panic!("not a sysreg trap") };
        assert_eq!(access.reg, SysReg::ICC_SGI1R_EL1);
        assert_eq!((access.rt, access.is_read), (1, false));
    }

    #[test]
    fn mrs_of_an_unknown_register() {
        // mrs x2, S3_1_C15_C2_0: Op0 3 (0x30_0000) | Op1 1 (0x4000) | CRn 15 (0x3C00) |
        // Rt 2 (0x40) | CRm 2 (0x4) | Direction 1 (read) = ISS 0x30_7C45.
        let Exit::SysReg(access) = decode(0x6230_7C45) else { panic!("not a sysreg trap") };
        assert_eq!(access.reg, SysReg::new(3, 1, 15, 2, 0));
        assert_eq!((access.rt, access.is_read), (2, true));
        assert_eq!(access.reg.name(), None);
    }

    #[test]
    fn instruction_abort() {
        // EC 0x20 << 26 | IL | IFSC 0x07 (translation fault, level 3).
        let fault = FaultStatus::Translation { level: 3 };
        assert_eq!(decode(0x8200_0007), Exit::InstructionAbort { fault, s1ptw: false });
        // Same with S1PTW (bit 7).
        assert_eq!(decode(0x8200_0087), Exit::InstructionAbort { fault, s1ptw: true });
    }

    #[test]
    fn fp_simd_trap() {
        // EC 0x07 << 26 | IL, with CV/COND as hardware reports them.
        assert_eq!(decode(0x1E00_0000), Exit::FpSimd);
        assert_eq!(decode(0x1FE0_0000), Exit::FpSimd);
    }

    #[test]
    fn other_classes_keep_their_numbers() {
        // brk #0: EC 0x3C << 26 | IL = 0xF200_0000.
        assert_eq!(decode(0xF200_0000), Exit::Other { ec: 0x3C, iss: 0 });
        assert_eq!(exception_class(0xF200_0000), ExceptionClass::Brk64);
        // EC 0x3F is not defined: kept as a raw number.
        assert_eq!(exception_class(0xFE00_0000), ExceptionClass::Other(0x3F));
        // A data abort taken at EL2 itself is not a guest exit.
        assert_eq!(decode(0x9600_0007), Exit::Other { ec: 0x25, iss: 7 });
        // EC 0x00 (unknown reason).
        assert_eq!(decode(0x0200_0000), Exit::Other { ec: 0, iss: 0 });
    }

    #[test]
    fn exception_class_numbers_round_trip() {
        for ec in 0..=u8::MAX {
            assert_eq!(ExceptionClass::from_bits(ec).bits(), ec);
        }
        assert_eq!(ExceptionClass::from_bits(0x16), ExceptionClass::Hvc64);
        assert_eq!(ExceptionClass::DataAbortLower.bits(), 0x24);
    }

    #[test]
    fn instruction_lengths_and_upper_bits() {
        assert_eq!(instruction_length(0x5A00_0000), 4);
        // IL = 0: a 16-bit T32 instruction.
        assert_eq!(instruction_length(0x5800_0000), 2);
        // ISS2 and RES0 bits above bit 31 do not change the decoding.
        assert_eq!(decode(0xFFFF_FFFF_0000_0000 | 0x5A00_0000), Exit::Hvc { imm: 0 });
        assert_eq!(iss(u64::MAX), 0x01FF_FFFF);
    }

    #[test]
    fn display_names_the_class() {
        assert_eq!(format!("{}", ExceptionClass::Hvc64), "Hvc64 (EC 0x16)");
        assert_eq!(format!("{}", ExceptionClass::Other(0x3F)), "unnamed exception class 0x3f");
    }
}
