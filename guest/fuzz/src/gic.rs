//! The GICv3 as QEMU virt lays it out (and the hypervisor's guest map repeats): distributor,
//! one redistributor per vCPU, and the system-register CPU interface, which the fuzzer reaches
//! through the generated tables (a random write may have made it fault). Everything the fuzzer
//! uses is Group 1 (non-secure): interrupts arrive as IRQs.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use crate::arch::{self, read_sysreg, write_sysreg};
use crate::dtb::MAX_CPUS;
use crate::sysregs as regs;

/// Distributor.
pub const GICD_BASE: u64 = 0x0800_0000;
pub const GICD_SIZE: u64 = 0x1_0000;
pub const GICD_CTLR: u64 = 0x0000;
pub const GICD_IGROUPR: u64 = 0x0080;
pub const GICD_ICENABLER: u64 = 0x0180;
pub const GICD_ICPENDR: u64 = 0x0280;
pub const GICD_ICACTIVER: u64 = 0x0380;
/// GICD_CTLR: EnableGrp1(NS) [1], ARE [4], RWP [31].
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;
/// Redistributors: a 128 KiB pair of 64 KiB frames (RD_base, SGI_base) per vCPU.
pub const GICR_BASE: u64 = 0x080A_0000;
pub const GICR_STRIDE: u64 = 0x2_0000;
pub const GICR_SGI_FRAME: u64 = 0x1_0000;
pub const GICR_WAKER: u64 = 0x0014;
pub const GICR_IGROUPR0: u64 = 0x0080;
pub const GICR_ISENABLER0: u64 = 0x0100;
pub const GICR_ICENABLER0: u64 = 0x0180;
pub const GICR_ISPENDR0: u64 = 0x0200;
pub const GICR_ISACTIVER0: u64 = 0x0300;
pub const GICR_ICPENDR0: u64 = 0x0280;
pub const GICR_ICACTIVER0: u64 = 0x0380;
pub const GICR_IPRIORITYR: u64 = 0x0400;
pub const GICR_ICFGR1: u64 = 0x0c04;
/// GICR_WAKER.ProcessorSleep [1].
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
/// INTIDs: SGIs 0-15, PPIs 16-31, SPIs from 32; the virtual distributor has 96 SPIs; 1020-1023
/// are special (1023: nothing pending).
pub const NUM_SGIS: u32 = 16;
const NUM_PRIVATE: u32 = 32;
pub const NUM_INTIDS: u32 = 128;
const INTID_SPECIAL_FIRST: u32 = 1020;
pub const SPURIOUS: u32 = 1023;
const IAR_INTID_MASK: u64 = 0xff_ffff;
/// The priority of the fuzzer's interrupts (any value below the PMR's is signalled).
const PRIORITY: u8 = 0x80;
/// ICC_SRE_EL1: SRE, DFB, DIB. ICC_PMR_EL1: signal every priority. ICC_CTLR_EL1.EOImode [1].
const ICC_SRE_ENABLE: u64 = 0b111;
const ICC_PMR_ALL: u64 = 0xff;
const ICC_CTLR_EOIMODE: u64 = 1 << 1;
/// Bits per enable/pending/active register.
const BITS_PER_WORD: u32 = 32;
/// At most this many interrupts are acknowledged by one drain.
const DRAIN_MAX: usize = 64;

/// SGIs taken per CPU (bit n: SGI n since the last `take_sgis`).
static SGIS_TAKEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

pub fn read32(address: u64) -> u32 {
    // SAFETY: GICD and GICR lie in the first GiB, mapped as device memory (mmu.rs); the
    // hypervisor emulates them (a fault would be stepped over only in .fuzz_code, but these
    // registers are assigned).
    unsafe { read_volatile(address as *const u32) }
}

pub fn write32(address: u64, value: u32) {
    // SAFETY: as for read32; writing GIC registers changes interrupt state, never memory.
    unsafe { write_volatile(address as *mut u32, value) };
}

/// The redistributor (RD_base) of CPU `cpu`.
pub fn gicr(cpu: usize) -> u64 {
    GICR_BASE + cpu as u64 * GICR_STRIDE
}

/// Acknowledges the highest-priority pending Group 1 interrupt (1023 if none, or if the read
/// faulted).
pub fn acknowledge() -> u32 {
    (read_sysreg(regs::ICC_IAR1_EL1, u64::from(SPURIOUS)) & IAR_INTID_MASK) as u32
}

pub fn is_special(intid: u32) -> bool {
    intid >= INTID_SPECIAL_FIRST
}

/// Ends `intid`: priority drop, and deactivation in EOImode 1.
pub fn end(intid: u32) {
    drop_priority(intid);
    if read_sysreg(regs::ICC_CTLR_EL1, 0) & ICC_CTLR_EOIMODE != 0 {
        deactivate(intid);
    }
}

/// Sets ICC_CTLR_EL1.EOImode to `mode` (0 or ICC_CTLR_EOIMODE).
pub fn set_eoi_mode(mode: u64) {
    write_sysreg(
        regs::ICC_CTLR_EL1,
        (read_sysreg(regs::ICC_CTLR_EL1, 0) & !ICC_CTLR_EOIMODE) | (mode & ICC_CTLR_EOIMODE),
    );
}

/// EOI without deactivation (EOImode 1): the priority drops, `intid` stays active.
pub fn drop_priority(intid: u32) {
    write_sysreg(regs::ICC_EOIR1_EL1, intid.into());
}

/// Deactivates `intid` (in EOImode 1, after its priority drop).
pub fn deactivate(intid: u32) {
    write_sysreg(regs::ICC_DIR_EL1, intid.into());
}

/// Disables `intid` (an SPI in the distributor, a PPI in CPU `cpu`'s redistributor).
pub fn disable(cpu: usize, intid: u32) {
    let bit = 1 << (intid % BITS_PER_WORD);
    if intid < NUM_PRIVATE {
        write32(gicr(cpu) + GICR_SGI_FRAME + GICR_ICENABLER0, bit);
    } else if intid < NUM_INTIDS {
        write32(GICD_BASE + GICD_ICENABLER + u64::from(intid / BITS_PER_WORD) * 4, bit);
    }
}

pub fn note_sgi(cpu: usize, intid: u32) {
    SGIS_TAKEN[cpu].fetch_or(1 << intid, Ordering::Relaxed);
}

/// The SGIs CPU `cpu` took since the last call (bit n: SGI n).
pub fn take_sgis(cpu: usize) -> u64 {
    SGIS_TAKEN[cpu].swap(0, Ordering::Relaxed)
}

/// Affinity routing and Group 1 on in the distributor (everything off first: changing ARE
/// while a group is enabled is UNPREDICTABLE).
pub fn init_distributor() {
    write32(GICD_BASE + GICD_CTLR, 0);
    write32(GICD_BASE + GICD_CTLR, GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1);
}

/// Wakes CPU `cpu`'s redistributor and gives the private interrupts `enabled` (INTIDs < 32)
/// Group 1, our priority and level-sensitive PPIs; every other private interrupt is disabled.
pub fn init_redistributor(cpu: usize, enabled: &[u32]) {
    let rd = gicr(cpu);
    let sgi = rd + GICR_SGI_FRAME;
    write32(rd + GICR_WAKER, read32(rd + GICR_WAKER) & !GICR_WAKER_PROCESSOR_SLEEP);
    write32(sgi + GICR_ICENABLER0, u32::MAX);
    write32(sgi + GICR_ICPENDR0, u32::MAX);
    write32(sgi + GICR_ICACTIVER0, u32::MAX);
    write32(sgi + GICR_IGROUPR0, u32::MAX);
    write32(sgi + GICR_ICFGR1, 0);
    for word in 0..NUM_PRIVATE / 4 {
        let priorities = u32::from_ne_bytes([PRIORITY; 4]);
        write32(sgi + GICR_IPRIORITYR + u64::from(word) * 4, priorities);
    }
    let mask = enabled.iter().filter(|&&id| id < NUM_PRIVATE).fold(0u32, |mask, &id| mask | (1 << id));
    write32(sgi + GICR_ISENABLER0, mask);
}

/// Disables, un-pends and deactivates every SPI, and makes them Group 1.
pub fn quiesce_spis() {
    for word in NUM_PRIVATE / BITS_PER_WORD..NUM_INTIDS / BITS_PER_WORD {
        let offset = u64::from(word) * 4;
        write32(GICD_BASE + GICD_ICENABLER + offset, u32::MAX);
        write32(GICD_BASE + GICD_ICPENDR + offset, u32::MAX);
        write32(GICD_BASE + GICD_ICACTIVER + offset, u32::MAX);
        write32(GICD_BASE + GICD_IGROUPR + offset, u32::MAX);
    }
}

/// This CPU's interface: system registers on, every priority, EOImode 0, Group 1 on, nothing
/// active (active priorities cleared, everything pending acknowledged and ended).
pub fn init_cpu_interface() {
    write_sysreg(regs::ICC_SRE_EL1, read_sysreg(regs::ICC_SRE_EL1, 0) | ICC_SRE_ENABLE);
    write_sysreg(regs::ICC_PMR_EL1, ICC_PMR_ALL);
    write_sysreg(regs::ICC_BPR1_EL1, 0);
    write_sysreg(regs::ICC_CTLR_EL1, read_sysreg(regs::ICC_CTLR_EL1, 0) & !ICC_CTLR_EOIMODE);
    for reg in regs::ICC_AP1R.iter().chain(regs::ICC_AP0R.iter()) {
        write_sysreg(*reg, 0);
    }
    write_sysreg(regs::ICC_IGRPEN1_EL1, 1);
    drain();
}

/// With IRQs masked: acknowledges and ends whatever is pending (at most DRAIN_MAX).
pub fn drain() {
    let was_unmasked = arch::irqs_unmasked();
    arch::mask_irqs();
    for _ in 0..DRAIN_MAX {
        let intid = acknowledge();
        if is_special(intid) {
            break;
        }
        end(intid);
    }
    if was_unmasked {
        arch::unmask_irqs_and_serrors();
    }
}

/// Sends SGI `intid` to the CPU whose MPIDR Aff0 is `aff0` (< 16, Aff1-3 zero).
pub fn send_sgi(intid: u32, aff0: u64) {
    const SGI1R_INTID_SHIFT: u32 = 24;
    write_sysreg(regs::ICC_SGI1R_EL1, (u64::from(intid) << SGI1R_INTID_SHIFT) | (1 << aff0));
}
