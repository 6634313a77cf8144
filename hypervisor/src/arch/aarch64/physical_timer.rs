//! The guest's EL1 physical timer, accessed on its behalf: its CNTP_* accesses trap
//! (CNTHCTL_EL2.EL1PCEN = 0) so the hypervisor sees every change and can withdraw an interrupt
//! the timer no longer asserts. EL2 reaches the same registers (the EL1 physical timer) by the
//! same names, so emulation is the access itself.

use aarch64_cpu::registers::{Readable, Writeable, CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTP_TVAL_EL0};

use crate::exit::sysreg::SysReg;

/// CNTP_CTL_EL0.ISTATUS is read-only.
const CTL_WRITABLE: u64 = 0b11;
/// CNTP_TVAL_EL0 is a signed 32-bit view.
const TVAL_MASK: u64 = 0xffff_ffff;

/// The value of `reg` (one of CNTP_CTL/CVAL/TVAL_EL0) for the guest.
pub fn read(reg: SysReg) -> u64 {
    match reg {
        SysReg::CNTP_CTL_EL0 => CNTP_CTL_EL0.get(),
        SysReg::CNTP_CVAL_EL0 => CNTP_CVAL_EL0.get(),
        _ => CNTP_TVAL_EL0.get() & TVAL_MASK,
    }
}

/// The guest's write of `value` to `reg` (one of CNTP_CTL/CVAL/TVAL_EL0).
pub fn write(reg: SysReg, value: u64) {
    match reg {
        SysReg::CNTP_CTL_EL0 => CNTP_CTL_EL0.set(value & CTL_WRITABLE),
        SysReg::CNTP_CVAL_EL0 => CNTP_CVAL_EL0.set(value),
        _ => CNTP_TVAL_EL0.set(value & TVAL_MASK),
    }
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}
