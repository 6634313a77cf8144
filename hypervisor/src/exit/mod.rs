//! Guest exits as data.
//!
//! When a guest traps to EL2, ESR_EL2 says why. It is decoded once, by [`decode`], into an
//! [`Exit`]: a plain value naming the reason and carrying every detail a handler needs (the
//! MMIO access, the system register, the hypercall immediate). The dispatcher, written
//! elsewhere, then picks a handler from a table keyed by [`ExceptionClass`]. Keeping the
//! decoding pure means it is tested on the host with real syndrome values, and handlers never
//! pick bits out of ESR_EL2 themselves.
//!
//! - [`syndrome`]: ESR_EL2 fields, exception classes, fault status codes, [`Exit`].
//! - [`mmio`]: the faulting IPA and the load/store described by a data abort.
//! - [`sysreg`]: trapped MSR/MRS accesses and the system registers a hypervisor traps.

pub mod dispatch;
pub mod hidden_regs;
pub mod id_regs;
pub mod mmio;
pub mod syndrome;
pub mod sysreg;

pub use mmio::{fault_ipa, MmioAccess};
pub use syndrome::{decode, exception_class, instruction_length, DataAbort, ExceptionClass, Exit, FaultStatus};
pub use sysreg::{SysReg, SysRegAccess};

/// Register number 31 in a load/store or MSR/MRS syndrome names XZR: reads give zero and
/// writes are discarded. (It never means SP in the syndromes decoded here.)
pub const ZERO_REGISTER: u8 = 31;

/// General-purpose registers a trap frame saves: x0..x30.
pub const GPR_COUNT: usize = 31;

/// Reads guest register `index` (x0..x30 from a saved frame), where [`ZERO_REGISTER`] reads
/// as zero. Out-of-range numbers also read as zero rather than panicking.
pub fn read_gpr(x: &[u64; GPR_COUNT], index: u8) -> u64 {
    x.get(usize::from(index)).copied().unwrap_or(0)
}

/// Writes guest register `index`; writes to [`ZERO_REGISTER`] (or beyond) are discarded.
pub fn write_gpr(x: &mut [u64; GPR_COUNT], index: u8, value: u64) {
    if let Some(reg) = x.get_mut(usize::from(index)) {
        *reg = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_register_reads_zero_and_ignores_writes() {
        let mut x = [0; GPR_COUNT];
        write_gpr(&mut x, 30, 7);
        write_gpr(&mut x, ZERO_REGISTER, 9);
        write_gpr(&mut x, u8::MAX, 9);
        assert_eq!(read_gpr(&x, 30), 7);
        assert_eq!(read_gpr(&x, ZERO_REGISTER), 0);
        assert_eq!(read_gpr(&x, u8::MAX), 0);
        assert_eq!(x.iter().sum::<u64>(), 7);
    }

    #[test]
    fn mmio_store_from_a_register_end_to_end() {
        // str w1, [x0] to IPA 0x0900_0000 (the UART data register).
        let Exit::DataAbort(abort) = decode(0x9381_0047) else { panic!("not a data abort") };
        let access = abort.access.unwrap();
        let mut x = [0; GPR_COUNT];
        x[1] = 0xDEAD_BEEF_0000_0041;
        assert_eq!(access.store_value(read_gpr(&x, access.reg)), 0x41);
        assert_eq!(fault_ipa(0x0900_0000 >> 8, 0xFFFF_0000_0000_0000), 0x0900_0000);
    }
}
