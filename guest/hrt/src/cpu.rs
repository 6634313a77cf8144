//! This core: its HRT core index (kept in TPIDR_EL1 by entry.S, so exception handlers find it
//! without a stack or a table), interrupt masking, and the ways a core stops.

use aarch64_cpu::asm;
use aarch64_cpu::registers::{Readable, Writeable, DAIF, TPIDR_EL1};

/// Most HRT cores this kernel keeps per-core state for (the hypervisor's vCPU limit).
pub const MAX_CORES: usize = 8;

/// TPIDR_EL1 bit set while a core reports a fatal exception (vectors.S): a second one parks at
/// once. The other bits hold the core index.
pub const FATAL_FLAG_BIT: u32 = 63;
const FATAL_FLAG: u64 = 1 << FATAL_FLAG_BIT;

/// `msr daifset` / `daifclr` immediates: D [3], A [2], I [1], F [0].
pub const DAIF_ALL: u32 = 0b1111;
const DAIF_I: u32 = 0b0010;
const DAIF_A_I: u32 = 0b0110;

/// The HRT core index this core was entered with (x1 at entry).
pub fn core_index() -> usize {
    (TPIDR_EL1.get() & !FATAL_FLAG) as usize
}

/// IRQs masked for the guard's life; the previous DAIF comes back on drop. For code that
/// shares per-core state with the IRQ handler (the console line buffer).
pub struct IrqsMasked {
    saved: u64,
}

impl IrqsMasked {
    pub fn new() -> Self {
        let saved = DAIF.get();
        // SAFETY: masking IRQs on this core only delays interrupts; it touches no memory.
        unsafe { core::arch::asm!("msr daifset, #{bits}", bits = const DAIF_I, options(nomem, nostack)) };
        Self { saved }
    }
}

impl Drop for IrqsMasked {
    fn drop(&mut self) {
        DAIF.set(self.saved);
    }
}

/// Unmasks IRQs and SErrors (an SError is then reported by the fatal handler instead of
/// staying pending unseen). Debug exceptions and FIQs stay masked.
pub fn enable_interrupts() {
    // SAFETY: the vectors are installed (entry.S) and the IRQ handler only touches per-core
    // state under its own rules; unmasking touches no memory.
    unsafe { core::arch::asm!("msr daifclr, #{bits}", bits = const DAIF_A_I, options(nomem, nostack)) };
}

/// Masks IRQs (see [`IrqsMasked`] for a scoped version).
pub fn disable_irqs() {
    // SAFETY: as in IrqsMasked::new.
    unsafe { core::arch::asm!("msr daifset, #{bits}", bits = const DAIF_I, options(nomem, nostack)) };
}

/// Unmasks IRQs only.
pub fn enable_irqs() {
    // SAFETY: as in enable_interrupts.
    unsafe { core::arch::asm!("msr daifclr, #{bits}", bits = const DAIF_I, options(nomem, nostack)) };
}

/// Waits for an interrupt. It returns when one is pending even while IRQs are masked, which
/// makes "mask, check, wfi, unmask" free of the check-then-sleep race.
pub fn wait_for_interrupt() {
    asm::wfi();
}

/// Stops this core for good: everything masked, WFI forever (a pending interrupt only wakes
/// it for another round). The fatal handler, the panic handler and boot failures end here. (A
/// booted core idles in upcall.rs.)
pub extern "C" fn park() -> ! {
    // SAFETY: masking every exception class on this core touches no memory.
    unsafe { core::arch::asm!("msr daifset, #{bits}", bits = const DAIF_ALL, options(nomem, nostack)) };
    loop {
        asm::wfi();
    }
}
