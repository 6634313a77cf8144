//! The physical GICv3 as the hypervisor uses it: distributor and redistributors through the
//! arm-gic crate, the EL2 CPU interface (acknowledge, priority drop, deactivate), SGIs between
//! pCPUs, and the ICH_* virtual-interface registers that carry the guest's list registers.
//!
//! EOImode = 1: writing ICC_EOIR1_EL1 only drops the running priority; deactivation is a
//! separate ICC_DIR_EL1 write. That lets a hardware-linked interrupt (the guest's virtual timer)
//! stay active physically until the guest deactivates the virtual interrupt.

use core::ptr::NonNull;

use aarch64_cpu::registers::{Readable, Writeable, ICH_HCR_EL2, ICH_MISR_EL2, ICH_VMCR_EL2, ICH_VTR_EL2};
use arm_gic::gicv3::registers::{Gicd, GicrSgi};
use arm_gic::gicv3::{GicCpuInterface, GicV3, SgiTarget, SgiTargetGroup};
use arm_gic::{IntId, InterruptGroup, Trigger};
use safe_mmio::UniqueMmioPointer;
use spin::Mutex;

use crate::boot::host_dtb::GicInfo;

/// INTID the hypervisor uses to kick another pCPU (re-evaluate its vCPU's interrupts).
pub const SGI_KICK: u32 = 1;
/// Priority of every interrupt the hypervisor enables (all equal: EL2 never nests).
const HYP_PRIORITY: u8 = 0x80;
/// Priority mask that lets every priority through.
const PRIORITY_MASK_ALL: u8 = 0xff;

static GIC: Mutex<Option<GicV3<'static>>> = Mutex::new(None);

/// Sets up the distributor, all redistributors and the boot pCPU's interface.
pub fn init_primary(info: &GicInfo, pcpus: usize) {
    // SAFETY: the addresses come from the host DTB's GIC node, GiB 0 is mapped as device memory
    // in the EL2 map, and this is the only driver instance (kept in GIC).
    let gic = unsafe {
        let gicd = UniqueMmioPointer::new(NonNull::new(info.distributor.start as *mut Gicd).expect("GICD not at 0"));
        let gicr = NonNull::new(info.redistributors.start as *mut GicrSgi).expect("GICR not at 0");
        GicV3::new(gicd, gicr, pcpus)
    };
    let mut gic = match gic {
        Ok(gic) => gic,
        Err(error) => panic!("the host GIC could not be set up: {error:?}"),
    };
    gic.setup(0);
    *GIC.lock() = Some(gic);
    init_cpu_interface();
}

/// Wakes this pCPU's redistributor and sets up its CPU interface (secondary pCPUs).
pub fn init_secondary(index: usize) {
    if let Some(gic) = GIC.lock().as_mut() {
        gic.init_cpu(index);
    }
    init_cpu_interface();
}

fn init_cpu_interface() {
    GicCpuInterface::enable_system_register_el2(true);
    // ICC_CTLR_EL1.EOImode (bit 1): priority drop and deactivation become separate writes.
    const ICC_CTLR_EOIMODE: u64 = 1 << 1;
    // SAFETY: changes only how this pCPU's interrupts are completed; done before any is taken.
    unsafe {
        core::arch::asm!(
            "mrs {tmp}, icc_ctlr_el1", "orr {tmp}, {tmp}, {bit}", "msr icc_ctlr_el1, {tmp}", "isb",
            tmp = out(reg) _, bit = in(reg) ICC_CTLR_EOIMODE,
        )
    };
    GicCpuInterface::set_priority_mask(PRIORITY_MASK_ALL);
    GicCpuInterface::enable_group1(true);
}

/// Enables a private interrupt (SGI/PPI) on pCPU `index`.
pub fn enable_private(intid: u32, index: usize, level_triggered: bool) {
    if let Some(gic) = GIC.lock().as_mut() {
        let id = int_id(intid);
        let _ = gic.set_interrupt_priority(id, Some(index), HYP_PRIORITY);
        if !id.is_sgi() {
            let trigger = if level_triggered { Trigger::Level } else { Trigger::Edge };
            let _ = gic.set_trigger(id, Some(index), trigger);
        }
        let _ = gic.enable_interrupt(id, Some(index), true);
    }
}

/// Enables a shared interrupt (routed to pCPU 0 by the distributor's reset routing).
pub fn enable_shared(intid: u32, level_triggered: bool) {
    if let Some(gic) = GIC.lock().as_mut() {
        let id = int_id(intid);
        let _ = gic.set_interrupt_priority(id, None, HYP_PRIORITY);
        let trigger = if level_triggered { Trigger::Level } else { Trigger::Edge };
        let _ = gic.set_trigger(id, None, trigger);
        let _ = gic.enable_interrupt(id, None, true);
    }
}

/// The arm-gic id for a raw INTID.
fn int_id(raw: u32) -> IntId {
    const PPI_FIRST: u32 = 16;
    const SPI_FIRST: u32 = 32;
    match raw {
        0..PPI_FIRST => IntId::sgi(raw),
        PPI_FIRST..SPI_FIRST => IntId::ppi(raw - PPI_FIRST),
        _ => IntId::spi(raw - SPI_FIRST),
    }
}

/// Acknowledges the highest-priority pending interrupt, if any.
pub fn acknowledge() -> Option<u32> {
    GicCpuInterface::get_and_acknowledge_interrupt(InterruptGroup::Group1).map(|id| id.raw_value())
}

/// Drops the running priority of `intid` (EOImode 1: it stays active).
pub fn priority_drop(intid: u32) {
    GicCpuInterface::end_interrupt(int_id(intid), InterruptGroup::Group1);
}

/// Deactivates `intid` (ICC_DIR_EL1).
pub fn deactivate(intid: u32) {
    // SAFETY: writing ICC_DIR_EL1 deactivates an interrupt; no memory is involved.
    unsafe { core::arch::asm!("msr icc_dir_el1, {}", "isb", in(reg) intid as u64) };
}

/// Sends the kick SGI to the pCPU with MPIDR affinity `mpidr` (Aff0 < 16).
pub fn kick(mpidr: u64) {
    const AFF0_MASK: u64 = 0xf;
    const AFF1_SHIFT: u64 = 8;
    let _ = GicCpuInterface::send_sgi(
        IntId::sgi(SGI_KICK),
        SgiTarget::List {
            affinity3: 0,
            affinity2: 0,
            affinity1: (mpidr >> AFF1_SHIFT) as u8,
            target_list: 1 << (mpidr & AFF0_MASK),
        },
        SgiTargetGroup::CurrentGroup1,
    );
}

/// Number of list registers this CPU implements (ICH_VTR_EL2.ListRegs + 1).
pub fn list_register_count() -> usize {
    ICH_VTR_EL2.read(ICH_VTR_EL2::ListRegs) as usize + 1
}

/// Reads ICH_LR<n>_EL2.
pub fn read_lr(n: usize) -> u64 {
    macro_rules! read {
        ($($i:literal => $reg:literal),*) => {
            match n {
                // SAFETY: reading a list register has no side effects.
                $($i => { let v: u64; unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) v) }; v })*
                _ => 0,
            }
        };
    }
    read!(0 => "ich_lr0_el2", 1 => "ich_lr1_el2", 2 => "ich_lr2_el2", 3 => "ich_lr3_el2",
          4 => "ich_lr4_el2", 5 => "ich_lr5_el2", 6 => "ich_lr6_el2", 7 => "ich_lr7_el2",
          8 => "ich_lr8_el2", 9 => "ich_lr9_el2", 10 => "ich_lr10_el2", 11 => "ich_lr11_el2",
          12 => "ich_lr12_el2", 13 => "ich_lr13_el2", 14 => "ich_lr14_el2", 15 => "ich_lr15_el2")
}

/// Writes ICH_LR<n>_EL2.
pub fn write_lr(n: usize, value: u64) {
    macro_rules! write {
        ($($i:literal => $reg:literal),*) => {
            match n {
                // SAFETY: list registers only affect the guest's virtual interrupts.
                $($i => unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) value) },)*
                _ => {}
            }
        };
    }
    write!(0 => "ich_lr0_el2", 1 => "ich_lr1_el2", 2 => "ich_lr2_el2", 3 => "ich_lr3_el2",
           4 => "ich_lr4_el2", 5 => "ich_lr5_el2", 6 => "ich_lr6_el2", 7 => "ich_lr7_el2",
           8 => "ich_lr8_el2", 9 => "ich_lr9_el2", 10 => "ich_lr10_el2", 11 => "ich_lr11_el2",
           12 => "ich_lr12_el2", 13 => "ich_lr13_el2", 14 => "ich_lr14_el2", 15 => "ich_lr15_el2")
}

/// ICH_HCR_EL2: enable the virtual CPU interface; optionally ask for a maintenance interrupt
/// when the list registers run (nearly) empty, to refill them.
pub fn set_virtual_interface(underflow_maintenance: bool) {
    ICH_HCR_EL2.write(
        ICH_HCR_EL2::En::SET
            + if underflow_maintenance {
                ICH_HCR_EL2::UIE::SET + ICH_HCR_EL2::NPIE::SET
            } else {
                ICH_HCR_EL2::UIE::CLEAR
            },
    );
}

/// The guest's virtual CPU interface control (priority mask, group enables): saved per vCPU.
pub fn read_vmcr() -> u64 {
    ICH_VMCR_EL2.get()
}

pub fn write_vmcr(value: u64) {
    ICH_VMCR_EL2.set(value);
}

/// Empty list registers bitmap and maintenance status (for debugging output).
pub fn elrsr() -> u64 {
    let value: u64;
    // SAFETY: reading ICH_ELRSR_EL2 has no side effects.
    unsafe { core::arch::asm!("mrs {}, ich_elrsr_el2", out(reg) value) };
    value
}

pub fn misr() -> u64 {
    ICH_MISR_EL2.get()
}
