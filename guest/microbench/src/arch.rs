//! The few AArch64 instructions the kernel needs beyond plain Rust: system register access,
//! barriers, interrupt masking and WFI.
//!
//! Every `asm!` here keeps the default memory clobber, so the compiler neither moves memory
//! accesses across it nor reorders two of them: timings taken around MMIO or SGI writes stay
//! in program order.

/// Defines `fn $name() -> u64`, reading the system register `$reg`.
macro_rules! sysreg_read {
    ($(#[$meta:meta])* $vis:vis fn $name:ident = $reg:literal) => {
        $(#[$meta])*
        #[inline(always)]
        $vis fn $name() -> u64 {
            let value: u64;
            // SAFETY: `mrs` of a register chosen at definition; it reads no memory.
            unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nostack)) };
            value
        }
    };
}

/// Defines `fn $name(value: u64)`, writing the system register `$reg`. Only used for the GIC
/// CPU interface and the EL1 timers, whose state cannot break memory safety.
macro_rules! sysreg_write {
    ($(#[$meta:meta])* $vis:vis fn $name:ident = $reg:literal) => {
        $(#[$meta])*
        #[inline(always)]
        $vis fn $name(value: u64) {
            // SAFETY: `msr` of a GIC CPU interface or timer register (see the macro's doc).
            unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) value, options(nostack)) };
        }
    };
}
pub(crate) use {sysreg_read, sysreg_write};

sysreg_read!(pub fn current_el = "CurrentEL");
sysreg_read!(pub fn mpidr = "mpidr_el1");
sysreg_read!(pub fn esr = "esr_el1");
sysreg_read!(pub fn elr = "elr_el1");
sysreg_read!(pub fn far = "far_el1");
sysreg_read!(
    /// ISR_EL1: which interrupts are pending, whether masked or not.
    pub fn isr = "isr_el1"
);

/// CurrentEL.EL, bits [3:2].
pub const CURRENT_EL_SHIFT: u32 = 2;
/// ISR_EL1.I: an IRQ is pending; ISR_EL1.A: an SError is pending.
pub const ISR_IRQ: u64 = 1 << 7;
pub const ISR_SERROR: u64 = 1 << 8;
/// MPIDR_EL1 affinity fields: Aff0 [7:0], Aff1 [15:8], Aff2 [23:16], Aff3 [39:32].
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// The exception level we run at.
pub fn exception_level() -> u64 {
    (current_el() >> CURRENT_EL_SHIFT) & 0b11
}

/// An instruction synchronization barrier.
#[inline(always)]
pub fn isb() {
    // SAFETY: a barrier; no memory or register effects.
    unsafe { core::arch::asm!("isb", options(nostack)) };
}

/// Orders earlier stores before later instructions, system register writes included (for a
/// store that an SGI's receiver must see).
#[inline(always)]
pub fn dsb_ishst() {
    // SAFETY: a barrier; no memory or register effects.
    unsafe { core::arch::asm!("dsb ishst", options(nostack)) };
}

/// Masks IRQs (PSTATE.I = 1).
#[inline(always)]
pub fn mask_irqs() {
    // SAFETY: changes PSTATE.I only.
    unsafe { core::arch::asm!("msr daifset, #2", options(nostack)) };
}

/// Unmasks IRQs (PSTATE.I = 0): pending interrupts are taken through exceptions.rs.
#[inline(always)]
pub fn unmask_irqs() {
    // SAFETY: changes PSTATE.I only; the IRQ vector saves and restores the interrupted state.
    unsafe { core::arch::asm!("msr daifclr, #2", "isb", options(nostack)) };
}

/// Waits for an interrupt (it wakes the CPU even when masked).
#[inline(always)]
pub fn wfi() {
    // SAFETY: suspends execution until an interrupt or event; no other effect.
    unsafe { core::arch::asm!("wfi", options(nostack)) };
}

/// Stops this CPU for good.
pub fn park() -> ! {
    loop {
        // SAFETY: waits for an event; no other effect.
        unsafe { core::arch::asm!("wfe", options(nostack)) };
    }
}
