//! The Rust side of the exception vectors (asm/vectors.S).

use core::sync::atomic::{AtomicU32, Ordering};

use crate::timer::{self, Timer};
use crate::uart::println;
use crate::{arch, gic, ipi, probe, psci};

/// KIND of the synchronous exception vector from EL1 with SP_EL1 (the index in VECTOR_NAMES).
const KIND_SYNC: u64 = 4;
/// SGIs and PPIs, whose takes are counted.
const NUM_PRIVATE: usize = 32;

/// The vector entry names, by the KIND vectors.S passes.
const VECTOR_NAMES: [&str; 16] = [
    "sync (EL1, SP0)",
    "irq (EL1, SP0)",
    "fiq (EL1, SP0)",
    "serror (EL1, SP0)",
    "sync",
    "irq",
    "fiq",
    "serror",
    "sync (lower EL, AArch64)",
    "irq (lower EL, AArch64)",
    "fiq (lower EL, AArch64)",
    "serror (lower EL, AArch64)",
    "sync (lower EL, AArch32)",
    "irq (lower EL, AArch32)",
    "fiq (lower EL, AArch32)",
    "serror (lower EL, AArch32)",
];

/// INTID + 1 of the last interrupt nobody expected (0: none).
static UNEXPECTED_INTID: AtomicU32 = AtomicU32::new(0);
/// How often each SGI or PPI was taken since its count was last read.
static TAKEN: [AtomicU32; NUM_PRIVATE] = [const { AtomicU32::new(0) }; NUM_PRIVATE];

/// An IRQ taken from EL1. `entry_ticks` is CNTVCT_EL0 as the vector read it on entry.
#[no_mangle]
extern "C" fn irq_handler(entry_ticks: u64) {
    let intid = gic::ack();
    if gic::is_special(intid) {
        return; // spurious: already gone, nothing to end
    }
    if let Some(count) = TAKEN.get(intid as usize) {
        count.fetch_add(1, Ordering::Relaxed);
    }
    match intid {
        timer::PPI_VIRTUAL_TIMER => timer::on_interrupt(entry_ticks),
        // Level-triggered: stop it before the EOI, or it is taken again at once.
        timer::PPI_PHYSICAL_TIMER => Timer::Physical.disarm(),
        ipi::SGI_PING => ipi::on_ping(),
        _ => UNEXPECTED_INTID.store(intid + 1, Ordering::Relaxed),
    }
    gic::end(intid);
}

/// The last unexpected interrupt taken since the previous call, if any.
pub fn take_unexpected_interrupt() -> Option<u32> {
    UNEXPECTED_INTID.swap(0, Ordering::Relaxed).checked_sub(1)
}

/// How often the SGI or PPI `intid` was taken since the previous call; the count restarts.
pub fn take_count(intid: u32) -> u32 {
    TAKEN.get(intid as usize).map_or(0, |count| count.swap(0, Ordering::Relaxed))
}

/// A synchronous exception from EL1: a probe's fault (probe.rs) resumes at its fault path,
/// anything else is unexpected. `elr` is ELR_EL1; returns the address to resume at.
#[no_mangle]
extern "C" fn sync_handler(elr: u64) -> u64 {
    match probe::fixup(elr, arch::esr(), arch::far()) {
        Some(resume) => resume,
        None => exception_unexpected(KIND_SYNC),
    }
}

/// Any other exception: print what happened and power off.
#[no_mangle]
extern "C" fn exception_unexpected(kind: u64) -> ! {
    let name = VECTOR_NAMES.get(kind as usize).copied().unwrap_or("?");
    println!(
        "MICROBENCH: exception ESR={:#x} ELR={:#x} FAR={:#x} vector={name} cpu={:#x}",
        arch::esr(),
        arch::elr(),
        arch::far(),
        arch::mpidr() & arch::MPIDR_AFFINITY_MASK
    );
    psci::system_off()
}
