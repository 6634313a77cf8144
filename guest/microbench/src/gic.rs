//! The GICv3 as QEMU virt lays it out (and the hypervisor's guest map repeats): distributor,
//! one redistributor per CPU, and the system-register CPU interface. Everything we use is
//! Group 1 (non-secure), so interrupts arrive as IRQs.

use crate::arch::{self, sysreg_read, sysreg_write};
use crate::timer::Deadline;

/// Distributor (GICD) base and registers.
pub const GICD_BASE: usize = 0x0800_0000;
const GICD_CTLR: usize = 0x0000;
/// GICD_TYPER: read-only, no side effects (what `mmio_gicd` reads).
pub const GICD_TYPER: usize = 0x0004;
/// GICD_TYPER.ITLinesNumber [4:0]: the GIC supports 32 * (N + 1) INTIDs.
pub const GICD_TYPER_ITLINES_MASK: u32 = 0x1f;
/// GICD_CTLR bits as a non-secure access sees them (the same with DS = 1): EnableGrp1(NS),
/// ARE(_NS), Register Write Pending.
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
const GICD_CTLR_ARE: u32 = 1 << 4;
const GICD_CTLR_RWP: u32 = 1 << 31;

/// Redistributors: a 128 KiB pair of 64 KiB frames (RD_base, SGI_base) per CPU.
const GICR_BASE: usize = 0x080A_0000;
const GICR_STRIDE: usize = 0x2_0000;
const GICR_SGI_FRAME: usize = 0x1_0000;
/// More than QEMU virt's first redistributor region holds (123).
const GICR_MAX: usize = 128;
/// RD_base registers.
const GICR_TYPER: usize = 0x0008;
const GICR_WAKER: usize = 0x0014;
/// SGI_base registers.
const GICR_IGROUPR0: usize = 0x0080;
const GICR_ISENABLER0: usize = 0x0100;
const GICR_ICENABLER0: usize = 0x0180;
const GICR_ISPENDR0: usize = 0x0200;
const GICR_ISACTIVER0: usize = 0x0300;
const GICR_IPRIORITYR: usize = 0x0400;
/// GICR_TYPER.Last [4] and Affinity_Value [63:32] (Aff3.Aff2.Aff1.Aff0).
const GICR_TYPER_LAST: u64 = 1 << 4;
const GICR_TYPER_AFFINITY_SHIFT: u32 = 32;
/// GICR_WAKER.ProcessorSleep [1] and ChildrenAsleep [2].
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;

/// The priority of our interrupts (any value below ICC_PMR_EL1's is signalled).
const PRIORITY: u32 = 0x80;
/// SGIs and PPIs: INTIDs 0-31, banked per redistributor.
const NUM_PRIVATE: u32 = 32;
/// INTIDs 1020-1023 are special: IAR returns 1023 when nothing is pending.
const INTID_SPECIAL_FIRST: u32 = 1020;
/// ICC_IAR1_EL1.INTID [23:0].
const IAR_INTID_MASK: u64 = 0xff_ffff;

/// ICC_SRE_EL1: SRE [0], DFB [1], DIB [2].
const ICC_SRE_ENABLE: u64 = 0b111;
/// ICC_PMR_EL1: signal every priority.
const ICC_PMR_ALL: u64 = 0xff;
/// ICC_BPR1_EL1: no preemption grouping beyond the minimum.
const ICC_BPR1_MIN: u64 = 0;
/// ICC_CTLR_EL1.EOImode [1]: 0 = EOIR both drops priority and deactivates (no ICC_DIR_EL1).
const ICC_CTLR_EOIMODE: u64 = 1 << 1;
/// ICC_IGRPEN1_EL1.Enable [0].
const ICC_IGRPEN1_ENABLE: u64 = 1;
/// ICC_SGI1R_EL1 fields: TargetList [15:0], Aff1 [23:16], INTID [27:24], Aff2 [39:32],
/// Aff3 [55:48].
const SGI1R_AFF1_SHIFT: u32 = 16;
const SGI1R_INTID_SHIFT: u32 = 24;
const SGI1R_AFF2_SHIFT: u32 = 32;
const SGI1R_AFF3_SHIFT: u32 = 48;
/// Only Aff0 0-15 can be named in a target list (no range selector).
const SGI1R_MAX_AFF0: u64 = 15;
/// Affinity fields Aff0-Aff3: 8 bits each; MPIDR_EL1 keeps Aff0-Aff2 at [23:0] and Aff3 at [39:32].
const AFFINITY_LEVELS: u32 = 4;
const AFF_BITS: u32 = 8;
const AFF_MASK: u64 = 0xff;
const MPIDR_AFF3_SHIFT: u32 = 32;
/// IPRIORITYR holds one byte per INTID, four to a 32-bit word.
const PRIORITY_BITS: u32 = 8;
const PRIORITY_MASK: u32 = 0xff;
const PRIORITIES_PER_WORD: u32 = 4;

/// How long a redistributor or the distributor may take to settle.
const SETTLE_MS: u64 = 100;
/// At most this many interrupts are acknowledged by one [`drain`] (a level-triggered one whose
/// source still asserts it would come back forever).
const DRAIN_MAX: usize = 16;

sysreg_read!(fn icc_sre = "icc_sre_el1");
sysreg_write!(fn set_icc_sre = "icc_sre_el1");
sysreg_write!(fn set_icc_pmr = "icc_pmr_el1");
sysreg_write!(fn set_icc_bpr1 = "icc_bpr1_el1");
sysreg_read!(fn icc_ctlr = "icc_ctlr_el1");
sysreg_write!(fn set_icc_ctlr = "icc_ctlr_el1");
sysreg_write!(fn set_icc_igrpen1 = "icc_igrpen1_el1");
sysreg_read!(
    /// Acknowledges the highest-priority pending Group 1 interrupt.
    fn icc_iar1 = "icc_iar1_el1"
);
sysreg_write!(fn set_icc_eoir1 = "icc_eoir1_el1");
sysreg_write!(fn set_icc_sgi1r = "icc_sgi1r_el1");

/// Reads the 32-bit register at `address` in the GIC's MMIO.
fn read32(address: usize) -> u32 {
    // SAFETY: GICD and GICR lie in the first GiB, mapped as device memory (mmu.rs); reading a
    // GIC register has no effect on memory.
    unsafe { core::ptr::read_volatile(address as *const u32) }
}

fn read64(address: usize) -> u64 {
    // SAFETY: as for read32; 64-bit registers (GICR_TYPER) may be read with one access.
    unsafe { core::ptr::read_volatile(address as *const u64) }
}

fn write32(address: usize, value: u32) {
    // SAFETY: GIC registers are device memory (mmu.rs); writing them changes interrupt state,
    // never memory.
    unsafe { core::ptr::write_volatile(address as *mut u32, value) };
}

/// A 32-bit distributor register (`offset` from GICD_BASE).
pub fn gicd_read(offset: usize) -> u32 {
    read32(GICD_BASE + offset)
}

/// Turns on affinity routing and Group 1 in the distributor (the boot CPU, once).
pub fn init_distributor() -> Result<(), &'static str> {
    let wanted = GICD_CTLR_ARE | GICD_CTLR_ENABLE_GRP1;
    // Everything off first: changing ARE while a group is enabled is UNPREDICTABLE (as Linux).
    write32(GICD_BASE + GICD_CTLR, 0);
    wait_for(|| gicd_read(GICD_CTLR) & GICD_CTLR_RWP == 0, "GICD_CTLR.RWP stays set")?;
    write32(GICD_BASE + GICD_CTLR, wanted);
    wait_for(|| gicd_read(GICD_CTLR) & GICD_CTLR_RWP == 0, "GICD_CTLR.RWP stays set")?;
    if gicd_read(GICD_CTLR) & wanted != wanted {
        return Err("GICD_CTLR does not keep ARE and EnableGrp1");
    }
    Ok(())
}

/// This CPU's redistributor.
pub struct Redistributor {
    base: usize,
}

impl Redistributor {
    /// Finds the redistributor whose GICR_TYPER affinity is this CPU's and wakes it.
    pub fn this_cpu() -> Result<Self, &'static str> {
        let affinity = this_cpu_affinity();
        for index in 0..GICR_MAX {
            let base = GICR_BASE + index * GICR_STRIDE;
            let typer = read64(base + GICR_TYPER);
            if typer >> GICR_TYPER_AFFINITY_SHIFT == affinity {
                let redistributor = Self { base };
                redistributor.wake()?;
                return Ok(redistributor);
            }
            if typer & GICR_TYPER_LAST != 0 {
                break;
            }
        }
        Err("no redistributor has this CPU's affinity")
    }

    fn wake(&self) -> Result<(), &'static str> {
        let waker = self.base + GICR_WAKER;
        write32(waker, read32(waker) & !GICR_WAKER_PROCESSOR_SLEEP);
        wait_for(|| read32(waker) & GICR_WAKER_CHILDREN_ASLEEP == 0, "GICR_WAKER.ChildrenAsleep stays set")
    }

    /// Makes the SGI or PPI `intid` Group 1, gives it our priority and enables it.
    pub fn enable(&self, intid: u32) {
        assert!(intid < NUM_PRIVATE, "INTID {intid} is not an SGI or PPI");
        let sgi = self.base + GICR_SGI_FRAME;
        let bit = 1 << intid;
        write32(sgi + GICR_IGROUPR0, read32(sgi + GICR_IGROUPR0) | bit);
        // Written as whole words, the access size every GIC must accept.
        let word = sgi + GICR_IPRIORITYR + (intid / PRIORITIES_PER_WORD * PRIORITIES_PER_WORD) as usize;
        let shift = PRIORITY_BITS * (intid % PRIORITIES_PER_WORD);
        write32(word, (read32(word) & !(PRIORITY_MASK << shift)) | (PRIORITY << shift));
        write32(sgi + GICR_ISENABLER0, bit);
    }

    /// Disables the SGI or PPI `intid`.
    pub fn disable(&self, intid: u32) {
        assert!(intid < NUM_PRIVATE, "INTID {intid} is not an SGI or PPI");
        write32(self.base + GICR_SGI_FRAME + GICR_ICENABLER0, 1 << intid);
    }

    /// Whether GICR_ISPENDR0 shows the SGI or PPI `intid` pending.
    pub fn is_pending(&self, intid: u32) -> bool {
        assert!(intid < NUM_PRIVATE, "INTID {intid} is not an SGI or PPI");
        read32(self.base + GICR_SGI_FRAME + GICR_ISPENDR0) & (1 << intid) != 0
    }

    /// Whether GICR_ISACTIVER0 shows the SGI or PPI `intid` active.
    pub fn is_active(&self, intid: u32) -> bool {
        assert!(intid < NUM_PRIVATE, "INTID {intid} is not an SGI or PPI");
        read32(self.base + GICR_SGI_FRAME + GICR_ISACTIVER0) & (1 << intid) != 0
    }

    /// GICR_TYPER.Affinity_Value: the affinity (Aff3.Aff2.Aff1.Aff0) this redistributor serves.
    pub fn affinity(&self) -> u64 {
        read64(self.base + GICR_TYPER) >> GICR_TYPER_AFFINITY_SHIFT
    }
}

/// This CPU's affinity as GICR_TYPER packs it: Aff3.Aff2.Aff1.Aff0 in 32 bits.
pub fn this_cpu_affinity() -> u64 {
    let mpidr = arch::mpidr();
    (0..AFFINITY_LEVELS).rev().fold(0, |packed, level| (packed << AFF_BITS) | affinity_field(mpidr, level))
}

/// With IRQs masked: acknowledges and ends whatever is pending (at most [`DRAIN_MAX`]).
pub fn drain() {
    for _ in 0..DRAIN_MAX {
        let intid = ack();
        if is_special(intid) {
            break;
        }
        end(intid);
    }
}

/// Sets up this CPU's interface: system registers on, all priorities, EOImode 0, Group 1 on.
pub fn init_cpu_interface() {
    set_icc_sre(icc_sre() | ICC_SRE_ENABLE);
    arch::isb();
    set_icc_pmr(ICC_PMR_ALL);
    set_icc_bpr1(ICC_BPR1_MIN);
    set_icc_ctlr(icc_ctlr() & !ICC_CTLR_EOIMODE);
    set_icc_igrpen1(ICC_IGRPEN1_ENABLE);
    arch::isb();
}

/// Acknowledges the highest-priority pending interrupt: its INTID (1023 if none).
#[inline(always)]
pub fn ack() -> u32 {
    (icc_iar1() & IAR_INTID_MASK) as u32
}

/// Whether `intid` from [`ack`] means "no interrupt".
pub fn is_special(intid: u32) -> bool {
    intid >= INTID_SPECIAL_FIRST
}

/// Ends (priority drop and deactivation, EOImode 0) the interrupt `intid`.
#[inline(always)]
pub fn end(intid: u32) {
    set_icc_eoir1(intid.into());
    arch::isb();
}

/// Sends SGI `intid` to the CPU with affinity `mpidr`.
#[inline(always)]
pub fn send_sgi(intid: u32, mpidr: u64) {
    let aff = |level| affinity_field(mpidr, level);
    debug_assert!(sgi_can_target(mpidr));
    let value = (u64::from(intid) << SGI1R_INTID_SHIFT)
        | (aff(3) << SGI1R_AFF3_SHIFT)
        | (aff(2) << SGI1R_AFF2_SHIFT)
        | (aff(1) << SGI1R_AFF1_SHIFT)
        | (1 << aff(0));
    set_icc_sgi1r(value);
    arch::isb();
}

/// Whether an SGI can target `mpidr` with a plain target list.
pub fn sgi_can_target(mpidr: u64) -> bool {
    affinity_field(mpidr, 0) <= SGI1R_MAX_AFF0
}

/// Affinity level `level` (0-3) of an MPIDR_EL1 value.
fn affinity_field(mpidr: u64, level: u32) -> u64 {
    let shift = if level == 3 { MPIDR_AFF3_SHIFT } else { AFF_BITS * level };
    (mpidr >> shift) & AFF_MASK
}

fn wait_for(mut done: impl FnMut() -> bool, failure: &'static str) -> Result<(), &'static str> {
    let deadline = Deadline::after_ms(SETTLE_MS);
    while !done() {
        if deadline.passed() {
            return Err(failure);
        }
        core::hint::spin_loop();
    }
    Ok(())
}
