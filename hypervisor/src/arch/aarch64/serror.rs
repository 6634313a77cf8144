//! Virtual SErrors (issue 13, hole 8). With HCR_EL2.AMO set, an SError taken while a guest runs
//! comes to EL2; it is the guest's (its access caused it, or the memory behind it failed), so
//! the guest gets the architectural virtual SError: HCR_EL2.VSE, taken once the guest unmasks
//! SErrors (PSTATE.A), with the syndrome in VSESR_EL2 when the CPU has the RAS extension. The
//! CPU clears VSE when the guest takes it; until then it is part of the vCPU's state.

use aarch64_cpu::registers::{ReadWriteable, Readable, HCR_EL2, ID_AA64PFR0_EL1};

/// ESR ISS bits a virtual SError's syndrome may carry (VSESR_EL2: IDS and ISS, [24:0]).
pub const SYNDROME_MASK: u64 = (1 << 25) - 1;

/// ID_AA64PFR0_EL1.RAS, bits [31:28] (not named by aarch64-cpu).
const PFR0_RAS_SHIFT: u64 = 28;
const PFR0_RAS_MASK: u64 = 0xf;

/// Whether this CPU implements RAS (and so VSESR_EL2).
fn has_ras() -> bool {
    (ID_AA64PFR0_EL1.get() >> PFR0_RAS_SHIFT) & PFR0_RAS_MASK != 0
}

fn write_vsesr(syndrome: u64) {
    // SAFETY: VSESR_EL2 (S3_4_C5_C2_3) exists with RAS (checked by the callers); it only sets
    // the syndrome of the guest's next virtual SError.
    unsafe { core::arch::asm!("msr s3_4_c5_c2_3, {}", in(reg) syndrome & SYNDROME_MASK) };
}

fn read_vsesr() -> u64 {
    let value: u64;
    // SAFETY: reading VSESR_EL2 (RAS checked by the caller) has no side effect.
    unsafe { core::arch::asm!("mrs {}, s3_4_c5_c2_3", out(reg) value) };
    value
}

/// Makes a virtual SError pending for the guest running on this pCPU (its next entry).
pub fn inject(syndrome: u64) {
    if has_ras() {
        write_vsesr(syndrome);
    }
    HCR_EL2.modify(HCR_EL2::VSE::SET);
}

/// A vCPU's virtual SError not taken yet.
#[derive(Clone, Copy, Debug, Default)]
pub struct PendingSError {
    pending: bool,
    syndrome: u64,
}

impl PendingSError {
    pub const NONE: Self = Self { pending: false, syndrome: 0 };

    /// Takes the pending virtual SError off this pCPU (the next vCPU must not get it).
    pub fn save() -> Self {
        let pending = HCR_EL2.is_set(HCR_EL2::VSE);
        let syndrome = if pending && has_ras() { read_vsesr() } else { 0 };
        if pending {
            HCR_EL2.modify(HCR_EL2::VSE::CLEAR);
        }
        Self { pending, syndrome }
    }

    /// Puts it back (or makes sure none is pending).
    pub fn restore(&self) {
        if self.pending {
            inject(self.syndrome);
        } else if HCR_EL2.is_set(HCR_EL2::VSE) {
            HCR_EL2.modify(HCR_EL2::VSE::CLEAR);
        }
    }
}
