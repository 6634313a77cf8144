//! Injecting a synchronous exception into a guest's EL1, as the architecture would deliver it:
//! the guest's PC and PSTATE go to ELR_EL1 and SPSR_EL1, the syndrome to ESR_EL1 (and FAR_EL1),
//! and execution resumes at the right entry of VBAR_EL1 in EL1h with DAIF masked.

/// SPSR.M values (AArch64 exception level and stack pointer selection).
const MODE_MASK: u64 = 0b1_1111;
const MODE_EL0T: u64 = 0b0_0000;
const MODE_EL1T: u64 = 0b0_0100;
const MODE_EL1H: u64 = 0b0_0101;
/// SPSR.M[4]: the interrupted state was AArch32.
const MODE_AARCH32: u64 = 0b1_0000;
/// PSTATE.{D,A,I,F}, masked on exception entry.
const DAIF_MASKED: u64 = 0b1111 << 6;

/// VBAR_EL1 entry offsets (synchronous exceptions).
const VECTOR_CURRENT_EL_SP0: u64 = 0x000;
const VECTOR_CURRENT_EL_SPX: u64 = 0x200;
const VECTOR_LOWER_EL_AARCH64: u64 = 0x400;
const VECTOR_LOWER_EL_AARCH32: u64 = 0x600;

// ESR_ELx fields.
const ESR_EC_SHIFT: u64 = 26;
const ESR_IL: u64 = 1 << 25;
const EC_UNKNOWN: u64 = 0x00;
const EC_DATA_ABORT_LOWER: u64 = 0x24;
const EC_DATA_ABORT_CURRENT: u64 = 0x25;
const EC_INSTRUCTION_ABORT_LOWER: u64 = 0x20;
const EC_INSTRUCTION_ABORT_CURRENT: u64 = 0x21;
/// ISS.WnR of a data abort.
const ISS_WNR: u64 = 1 << 6;
/// Fault status code "synchronous external abort, not on a translation table walk".
const FSC_SYNC_EXTERNAL_ABORT: u64 = 0x10;

/// What to inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestException {
    /// An UNDEFINED instruction (e.g. an access to a system register we do not emulate).
    Undefined,
    /// A synchronous external abort on a data access at `address` (a guest VA).
    DataExternalAbort { address: u64, is_write: bool },
    /// A synchronous external abort on an instruction fetch at `address`.
    InstructionExternalAbort { address: u64 },
}

/// The register updates that deliver the exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Injection {
    pub elr_el1: u64,
    pub spsr_el1: u64,
    pub esr_el1: u64,
    pub far_el1: Option<u64>,
    /// New guest PC (ELR_EL2 on return).
    pub pc: u64,
    /// New guest PSTATE (SPSR_EL2 on return).
    pub pstate: u64,
}

/// Computes the injection of `exception` into a guest interrupted at `pc` with `pstate`
/// (its SPSR_EL2), whose vector base is `vbar_el1`.
pub fn inject(exception: GuestException, pc: u64, pstate: u64, vbar_el1: u64) -> Injection {
    let mode = pstate & MODE_MASK;
    let from_el1 = mode == MODE_EL1T || mode == MODE_EL1H;
    let offset = if pstate & MODE_AARCH32 != 0 {
        VECTOR_LOWER_EL_AARCH32
    } else {
        match mode {
            MODE_EL1H => VECTOR_CURRENT_EL_SPX,
            MODE_EL1T => VECTOR_CURRENT_EL_SP0,
            MODE_EL0T => VECTOR_LOWER_EL_AARCH64,
            _ => VECTOR_LOWER_EL_AARCH64,
        }
    };
    let (esr, far) = match exception {
        GuestException::Undefined => ((EC_UNKNOWN << ESR_EC_SHIFT) | ESR_IL, None),
        GuestException::DataExternalAbort { address, is_write } => {
            let ec = if from_el1 { EC_DATA_ABORT_CURRENT } else { EC_DATA_ABORT_LOWER };
            let wnr = if is_write { ISS_WNR } else { 0 };
            ((ec << ESR_EC_SHIFT) | ESR_IL | wnr | FSC_SYNC_EXTERNAL_ABORT, Some(address))
        }
        GuestException::InstructionExternalAbort { address } => {
            let ec = if from_el1 { EC_INSTRUCTION_ABORT_CURRENT } else { EC_INSTRUCTION_ABORT_LOWER };
            ((ec << ESR_EC_SHIFT) | ESR_IL | FSC_SYNC_EXTERNAL_ABORT, Some(address))
        }
    };
    Injection {
        elr_el1: pc,
        spsr_el1: pstate,
        esr_el1: esr,
        far_el1: far,
        pc: vbar_el1 + offset,
        pstate: MODE_EL1H | DAIF_MASKED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VBAR: u64 = 0xffff_8000_1001_0800;

    #[test]
    fn undef_from_el1h_goes_to_the_current_el_spx_vector() {
        let i = inject(GuestException::Undefined, 0x1234, MODE_EL1H, VBAR);
        assert_eq!(i.pc, VBAR + 0x200);
        assert_eq!(i.elr_el1, 0x1234);
        assert_eq!(i.spsr_el1, MODE_EL1H);
        assert_eq!(i.esr_el1, 0x0200_0000, "EC=0 (unknown), IL=1");
        assert_eq!(i.pstate, 0x3c5, "EL1h with DAIF masked");
        assert_eq!(i.far_el1, None);
    }

    #[test]
    fn data_abort_from_el0_uses_the_lower_el_vector_and_keeps_pstate() {
        let pstate = MODE_EL0T | (1 << 29); // some flags set by the guest
        let i =
            inject(GuestException::DataExternalAbort { address: 0xdead_0000, is_write: true }, 0x40_0000, pstate, VBAR);
        assert_eq!(i.pc, VBAR + 0x400);
        assert_eq!(i.spsr_el1, pstate, "the guest's PSTATE is saved untouched");
        assert_eq!(i.esr_el1 >> 26, 0x24);
        assert_eq!(i.esr_el1 & 0x3f, 0x10);
        assert_ne!(i.esr_el1 & (1 << 6), 0, "WnR");
        assert_eq!(i.far_el1, Some(0xdead_0000));
    }

    #[test]
    fn data_abort_from_el1_is_a_current_el_abort() {
        let i = inject(GuestException::DataExternalAbort { address: 1, is_write: false }, 0, MODE_EL1H, VBAR);
        assert_eq!(i.esr_el1 >> 26, 0x25);
        assert_eq!(i.esr_el1 & (1 << 6), 0);
    }

    #[test]
    fn instruction_abort_and_sp0_and_aarch32_vectors() {
        let i = inject(GuestException::InstructionExternalAbort { address: 8 }, 8, MODE_EL1T, VBAR);
        assert_eq!(i.pc, VBAR);
        assert_eq!(i.esr_el1 >> 26, 0x21);
        let i = inject(GuestException::Undefined, 8, MODE_AARCH32, VBAR);
        assert_eq!(i.pc, VBAR + 0x600);
    }
}
