//! This core's part of the GICv3: the system-register CPU interface and its own redistributor.
//! The distributor belongs to the ROS (it is only read, for a diagnostic). Everything the HRT
//! takes is Group 1, so it arrives as an IRQ.

use core::fmt;

use aarch64_cpu::asm::barrier;

use crate::timer;

/// The EL1 virtual timer's PPI.
pub const PPI_VIRTUAL_TIMER: u32 = 27;
/// INTIDs 1020-1023 are special (1023: nothing pending); they are never ended.
const INTID_SPECIAL_FIRST: u32 = 1020;
/// ICC_IAR1_EL1.INTID [23:0].
const IAR_INTID_MASK: u64 = 0xff_ffff;
/// ICC_PMR_EL1: signal every priority.
const ICC_PMR_ALL: u64 = 0xff;
/// ICC_BPR1_EL1: the smallest binary point (all priority bits are group priority).
const ICC_BPR1_MIN: u64 = 0;
/// ICC_CTLR_EL1.EOImode [1]: 0 = ICC_EOIR1_EL1 both drops priority and deactivates.
const ICC_CTLR_EOIMODE: u64 = 1 << 1;
/// ICC_IGRPEN1_EL1.Enable [0].
const ICC_IGRPEN1_ENABLE: u64 = 1;

/// RD_base frame registers, and the offset of the SGI_base frame after it.
const GICR_WAKER: u64 = 0x0014;
const GICR_SGI_FRAME: u64 = crate::boot::GICR_FRAME_SIZE;
/// SGI_base frame registers (one bit per SGI/PPI).
const GICR_IGROUPR0: u64 = 0x0080;
const GICR_ISENABLER0: u64 = 0x0100;
/// GICR_WAKER.ProcessorSleep [1], ChildrenAsleep [2].
const GICR_WAKER_PROCESSOR_SLEEP: u32 = 1 << 1;
const GICR_WAKER_CHILDREN_ASLEEP: u32 = 1 << 2;
/// GICD_CTLR and its EnableGrp1 (non-secure view) [1].
const GICD_CTLR: u64 = 0x0000;
const GICD_CTLR_ENABLE_GRP1: u32 = 1 << 1;
/// SGIs and PPIs: INTIDs 0-31, one bit each in the redistributor's 32-bit registers.
const PRIVATE_INTIDS: u32 = 32;
/// How long a redistributor may take to wake.
const WAKE_TIMEOUT_US: u64 = 100_000;

/// Define functions reading or writing a GIC CPU interface register by name (aarch64-cpu has
/// only a read-only ICC_CTLR_EL1).
macro_rules! icc_read {
    ($name:ident = $reg:literal) => {
        fn $name() -> u64 {
            let value: u64;
            // SAFETY: `mrs` of a GIC CPU interface register; it reads no memory.
            unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) value, options(nomem, nostack)) };
            value
        }
    };
}
macro_rules! icc_write {
    ($name:ident = $reg:literal) => {
        fn $name(value: u64) {
            // SAFETY: `msr` of a GIC CPU interface register: it changes interrupt state, never
            // memory.
            unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) value, options(nomem, nostack)) };
        }
    };
}

icc_write!(set_icc_pmr = "icc_pmr_el1");
icc_write!(set_icc_bpr1 = "icc_bpr1_el1");
icc_read!(icc_ctlr = "icc_ctlr_el1");
icc_write!(set_icc_ctlr = "icc_ctlr_el1");
icc_write!(set_icc_igrpen1 = "icc_igrpen1_el1");
icc_read!(icc_iar1 = "icc_iar1_el1");
icc_write!(set_icc_eoir1 = "icc_eoir1_el1");

// The GIC is emulated: its accesses trap to the hypervisor, which can only decode plain
// single-register loads and stores (a valid syndrome). `read_volatile` may compile to forms with
// writeback (`ldr w, [x, #imm]!`), which cannot be emulated, so the accesses are spelled out.

fn read32(va: u64) -> u32 {
    let value: u32;
    // SAFETY: callers pass GIC registers in the device space, which the linear map maps as
    // device memory (boot.rs checks the frames lie there); reading them has no side effect on
    // memory.
    unsafe { core::arch::asm!("ldr {v:w}, [{a}]", v = out(reg) value, a = in(reg) va, options(nostack, readonly)) };
    value
}

fn write32(va: u64, value: u32) {
    // SAFETY: as for read32; writing a redistributor register changes interrupt state only.
    unsafe { core::arch::asm!("str {v:w}, [{a}]", v = in(reg) value, a = in(reg) va, options(nostack)) };
}

/// This core's CPU interface: every priority signalled, no preemption grouping, EOImode 0
/// (ICC_EOIR1_EL1 also deactivates), Group 1 on. The hypervisor already enabled the system
/// register interface (ICC_SRE_EL1.SRE).
pub fn init_cpu_interface() {
    set_icc_pmr(ICC_PMR_ALL);
    set_icc_bpr1(ICC_BPR1_MIN);
    set_icc_ctlr(icc_ctlr() & !ICC_CTLR_EOIMODE);
    set_icc_igrpen1(ICC_IGRPEN1_ENABLE);
    barrier::isb(barrier::SY);
}

/// The redistributor did not wake.
#[derive(Clone, Copy, Debug)]
pub struct StillAsleep {
    pub waker: u32,
}

impl fmt::Display for StillAsleep {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "GICR_WAKER stays {:#x} (ChildrenAsleep) after {WAKE_TIMEOUT_US} us", self.waker)
    }
}

/// Wakes the redistributor at `rd_va` (its RD_base frame) and makes the private interrupts
/// `intids` Group 1 and enabled (INTIDs from 32 up are not private and are ignored). Touches
/// only those bits.
pub fn init_redistributor(rd_va: u64, intids: &[u32], counter_frequency: u64) -> Result<(), StillAsleep> {
    let waker = rd_va + GICR_WAKER;
    write32(waker, read32(waker) & !GICR_WAKER_PROCESSOR_SLEEP);
    let give_up = timer::now().saturating_add(timer::us_to_ticks(WAKE_TIMEOUT_US, counter_frequency));
    while read32(waker) & GICR_WAKER_CHILDREN_ASLEEP != 0 {
        if timer::now() >= give_up {
            return Err(StillAsleep { waker: read32(waker) });
        }
        core::hint::spin_loop();
    }
    let bits = intids.iter().filter(|&&intid| intid < PRIVATE_INTIDS).fold(0u32, |bits, &intid| bits | (1 << intid));
    let sgi_frame = rd_va + GICR_SGI_FRAME;
    write32(sgi_frame + GICR_IGROUPR0, read32(sgi_frame + GICR_IGROUPR0) | bits);
    // ISENABLER0 is write-1-to-set: the other interrupts keep their state.
    write32(sgi_frame + GICR_ISENABLER0, bits);
    Ok(())
}

/// Whether the distributor at `gicd_va` forwards Group 1 interrupts (GICD_CTLR.EnableGrp1).
/// The ROS's kernel turns it on; until then no interrupt reaches the HRT either.
pub fn distributor_enabled(gicd_va: u64) -> bool {
    read32(gicd_va + GICD_CTLR) & GICD_CTLR_ENABLE_GRP1 != 0
}

/// Acknowledges the highest-priority pending Group 1 interrupt; its INTID.
pub fn acknowledge() -> u32 {
    (icc_iar1() & IAR_INTID_MASK) as u32
}

/// Whether `intid` is one of the special INTIDs (1023: spurious), which are not ended.
pub fn is_special(intid: u32) -> bool {
    intid >= INTID_SPECIAL_FIRST
}

/// Ends `intid` (priority drop and, in EOImode 0, deactivation).
pub fn end(intid: u32) {
    set_icc_eoir1(intid.into());
}
