//! Virtual to guest-physical addresses, by asking the MMU (`AT S1E1R`): the console call wants
//! the IPA of its bytes, and this works for any mapped buffer (image, stack, linear map)
//! without trusting the boot info, which may be what we are about to complain about.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, PAR_EL1};

use crate::cpu::IrqsMasked;

/// Offset bits within a 4 KiB page (the granule of the hypervisor's TTBR1 tables).
pub const PAGE_SIZE: u64 = 4096;
const PAGE_OFFSET_MASK: u64 = PAGE_SIZE - 1;
/// PAR_EL1.PA holds address bits [47:12].
const PAR_PA_SHIFT: u32 = 12;

/// The IPA `va` translates to by this core's stage-1 tables for an EL1 read, if it is mapped.
pub fn va_to_ipa(va: u64) -> Option<u64> {
    // PAR_EL1 is shared with anything else on this core that translates (an IRQ handler
    // printing): no interrupt between the AT and the read of its result.
    let _masked = IrqsMasked::new();
    // SAFETY: AT only walks the translation tables and writes PAR_EL1; it never faults
    // (a failed walk is reported in PAR_EL1.F) and accesses no memory of ours.
    unsafe { core::arch::asm!("at s1e1r, {va}", va = in(reg) va, options(nostack, preserves_flags)) };
    barrier::isb(barrier::SY);
    let par = PAR_EL1.extract();
    if par.is_set(PAR_EL1::F) {
        return None;
    }
    Some((par.read(PAR_EL1::PA) << PAR_PA_SHIFT) | (va & PAGE_OFFSET_MASK))
}
