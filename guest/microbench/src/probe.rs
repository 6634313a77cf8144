//! Reads that may fault: [`read32`] loads through a tiny assembly routine whose one load
//! instruction is known to the synchronous exception handler (exceptions.rs). A data abort on
//! that instruction (a synchronous external abort from an unbacked device address, or a
//! translation fault outside our map) resumes at the routine's fault path instead of powering
//! off, and the syndrome is kept for the report.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

/// What probe_read32 returns after a fault: no 32-bit value is this large (`movn x0, #0`).
const FAULTED: u64 = u64::MAX;
/// ESR_ELx.EC [31:26], and its value for a data abort taken without a change of level.
const ESR_EC_SHIFT: u32 = 26;
const ESR_EC_MASK: u64 = 0x3f;
const EC_DATA_ABORT_SAME_EL: u64 = 0x25;
/// ESR_ELx.ISS.DFSC [5:0], and its value for a synchronous external abort (not on a walk).
const ESR_DFSC_MASK: u64 = 0x3f;
const DFSC_SYNC_EXTERNAL_ABORT: u64 = 0x10;

core::arch::global_asm!(
    ".section .text.probe, \"ax\"",
    // u64 probe_read32(address): the 32-bit value at address, zero-extended, or FAULTED.
    ".global probe_read32",
    "probe_read32:",
    ".global probe_read32_access",
    "probe_read32_access:",
    "    ldr     w0, [x0]",
    "    ret",
    // Where the handler resumes after a data abort on probe_read32_access.
    ".global probe_read32_fault",
    "probe_read32_fault:",
    "    movn    x0, #0",
    "    ret",
);

extern "C" {
    fn probe_read32(address: usize) -> u64;
    /// Labels inside probe_read32, never called.
    fn probe_read32_access();
    fn probe_read32_fault();
}

/// The syndrome and fault address of the last probe that faulted.
static FAULT_ESR: AtomicU64 = AtomicU64::new(0);
static FAULT_FAR: AtomicU64 = AtomicU64::new(0);

/// A probe's data abort.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub esr: u64,
    pub far: u64,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if self.esr & ESR_DFSC_MASK == DFSC_SYNC_EXTERNAL_ABORT {
            "synchronous external abort"
        } else {
            "data abort"
        };
        write!(f, "{kind} ESR={:#x} FAR={:#x}", self.esr, self.far)
    }
}

/// Reads the 32-bit value at `address`, or reports the data abort the read caused.
///
/// # Safety
/// `address` must be 4-byte aligned, and reading it must have no side effect that matters to
/// anyone (a read-only identification register, or memory).
pub unsafe fn read32(address: usize) -> Result<u32, Fault> {
    // SAFETY: the caller guarantees a harmless aligned read; a fault on it is caught
    // (exceptions.rs, `fixup`) and turns into FAULTED. probe_read32 follows the C ABI and
    // touches x0 only.
    let value = unsafe { probe_read32(address) };
    if value == FAULTED {
        return Err(Fault { esr: FAULT_ESR.load(Ordering::Relaxed), far: FAULT_FAR.load(Ordering::Relaxed) });
    }
    Ok(value as u32)
}

/// The synchronous exception handler's part: for a data abort on the probe's load at `elr`,
/// records the syndrome and returns where to resume; `None` for any other exception.
pub fn fixup(elr: u64, esr: u64, far: u64) -> Option<u64> {
    let access = probe_read32_access as *const () as u64;
    if elr != access || (esr >> ESR_EC_SHIFT) & ESR_EC_MASK != EC_DATA_ABORT_SAME_EL {
        return None;
    }
    FAULT_ESR.store(esr, Ordering::Relaxed);
    FAULT_FAR.store(far, Ordering::Relaxed);
    Some(probe_read32_fault as *const () as u64)
}
