//! The Rust side of the vectors (asm/vectors.S): the IRQ handler, and the report of a fatal
//! exception, after which the core parks (it must never die silently).

use core::sync::atomic::{AtomicU32, Ordering};

use aarch64_cpu::registers::{Readable, ELR_EL1, ESR_EL1, FAR_EL1, SPSR_EL1};

use crate::console::{self, println};
use crate::cpu;
use crate::{gic, timer, upcall};

/// Bytes of each core's stack for the fatal report (vectors.S switches to it).
pub const FATAL_STACK_SIZE: usize = 4096;

/// What each vector of vectors.S is, by its number.
#[rustfmt::skip]
const VECTOR_NAMES: [&str; 16] = [
    "synchronous exception (EL1, SP_EL0)", "IRQ (EL1, SP_EL0)", "FIQ (EL1, SP_EL0)", "SError (EL1, SP_EL0)",
    "synchronous exception", "IRQ", "FIQ", "SError",
    "synchronous exception (lower EL, AArch64)", "IRQ (lower EL, AArch64)",
    "FIQ (lower EL, AArch64)", "SError (lower EL, AArch64)",
    "synchronous exception (lower EL, AArch32)", "IRQ (lower EL, AArch32)",
    "FIQ (lower EL, AArch32)", "SError (lower EL, AArch32)",
];

/// The SGI the hypervisor raises for an upcall (the boot info's `upcall_intid`; the same for
/// every core). None until the first core sets it.
const NO_UPCALL_INTID: u32 = u32::MAX;
static UPCALL_INTID: AtomicU32 = AtomicU32::new(NO_UPCALL_INTID);

/// Tells the IRQ handler which SGI is the upcall (before it is enabled).
pub fn set_upcall_intid(intid: u32) {
    UPCALL_INTID.store(intid, Ordering::Relaxed);
}

/// IRQ at EL1 (vectors.S saved the caller-saved registers). One interrupt per entry: another
/// one pending raises the IRQ again after the `eret`. The timer and the upcall are only noted:
/// the interrupted loop acts on them (heartbeat.rs, upcall.rs).
pub extern "C" fn hrt_irq() {
    let intid = gic::acknowledge();
    if gic::is_special(intid) {
        return;
    }
    let core = cpu::core_index();
    if intid == gic::PPI_VIRTUAL_TIMER {
        timer::on_interrupt(core);
    } else if intid == UPCALL_INTID.load(Ordering::Relaxed) {
        upcall::on_interrupt(core);
    } else {
        println!("core {core}: unexpected interrupt {intid}");
    }
    gic::end(intid);
}

/// ESR_ELx.EC [31:26].
const ESR_EC_SHIFT: u32 = 26;
const ESR_EC_MASK: u64 = 0x3f;

/// A fatal exception (vectors.S, on this core's fatal stack): `vector` is the vector's number,
/// `interrupted_sp` the stack pointer when it was taken. Reports and parks.
pub extern "C" fn hrt_fatal(vector: u64, interrupted_sp: u64) -> ! {
    let (esr, elr, far, spsr) = (ESR_EL1.get(), ELR_EL1.get(), FAR_EL1.get(), SPSR_EL1.get());
    let name = VECTOR_NAMES.get(vector as usize).copied().unwrap_or("unknown vector");
    console::print_unbuffered(format_args!(
        "core {}: fatal {name}: ESR_EL1 {esr:#x} (EC {:#x}) ELR_EL1 {elr:#x} FAR_EL1 {far:#x} SPSR_EL1 {spsr:#x} \
         SP {interrupted_sp:#x}; core parked",
        cpu::core_index(),
        (esr >> ESR_EC_SHIFT) & ESR_EC_MASK,
    ));
    cpu::park()
}
