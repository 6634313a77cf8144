//! Per-pCPU identity and small CPU helpers.

use aarch64_cpu::registers::{Readable, Writeable, CNTFRQ_EL0, CNTPCT_EL0, MPIDR_EL1, TPIDR_EL2};

/// Most pCPUs the hypervisor brings up (stack table size).
pub const MAX_PCPUS: usize = 8;

/// MPIDR_EL1 affinity fields Aff0..Aff3, the form device-tree `reg` uses for CPUs.
const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// This CPU's MPIDR affinity.
pub fn current_mpidr() -> u64 {
    MPIDR_EL1.get() & MPIDR_AFFINITY_MASK
}

/// Records the logical index of this pCPU (kept in TPIDR_EL2, which nothing else at EL2 uses).
pub fn set_current_index(index: usize) {
    TPIDR_EL2.set(index as u64);
}

/// The logical index of this pCPU (0 = the boot CPU).
pub fn current_index() -> usize {
    TPIDR_EL2.get() as usize
}

/// Counter ticks since reset and their frequency.
pub fn counter() -> u64 {
    CNTPCT_EL0.get()
}

pub fn counter_frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Busy-waits until `done()` holds or `timeout_ms` pass; returns whether it held.
pub fn wait_until(timeout_ms: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = counter() + counter_frequency() * timeout_ms / 1000;
    while counter() < deadline {
        if done() {
            return true;
        }
        core::hint::spin_loop();
    }
    done()
}

/// Four values from the CPU's random number generator (RNDR), or `None` if it has none or it
/// failed to produce them (RNDR reports failure through PSTATE.Z).
pub fn random_numbers() -> Option<[u64; 4]> {
    use aarch64_cpu::registers::ID_AA64ISAR0_EL1;
    if ID_AA64ISAR0_EL1.read(ID_AA64ISAR0_EL1::RNDR) == 0 {
        return None;
    }
    let mut values = [0u64; 4];
    for value in &mut values {
        let failed: u64;
        // SAFETY: RNDR (s3_3_c2_c4_0) exists (checked above); reading it has no side effect
        // beyond NZCV, which the asm declares it clobbers by default.
        unsafe { core::arch::asm!("mrs {v}, s3_3_c2_c4_0", "cset {f}, eq", v = out(reg) *value, f = out(reg) failed) };
        if failed != 0 {
            return None;
        }
    }
    Some(values)
}

/// Makes code the hypervisor just wrote into guest RAM visible to instruction fetches on every
/// CPU (data writes are not coherent with instruction caches).
pub fn sync_instruction_cache() {
    // SAFETY: cache maintenance and barriers have no effect on memory contents or registers.
    unsafe { core::arch::asm!("dsb ish", "ic ialluis", "dsb ish", "isb", options(nostack, preserves_flags)) };
}

/// ISR_EL1.I, bit [7]: read at EL2, whether a physical IRQ is pending (masked or not).
const ISR_IRQ_PENDING: u64 = 1 << 7;

/// Whether a physical IRQ is pending at this pCPU's interface (whether or not EL2 masks it).
/// Not a GIC register access: on QEMU those take its global lock, this does not.
pub fn physical_irq_pending() -> bool {
    let isr: u64;
    // SAFETY: ISR_EL1 is a read-only status register (aarch64-cpu has no accessor for it).
    unsafe { core::arch::asm!("mrs {}, isr_el1", out(reg) isr) };
    isr & ISR_IRQ_PENDING != 0
}
