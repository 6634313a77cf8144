//! The physical GICv3 as the hypervisor uses it: distributor and redistributors through the
//! arm-gic crate, the EL2 CPU interface (acknowledge, priority drop, deactivate), SGIs between
//! pCPUs, and the ICH_* virtual-interface registers that carry the guest's list registers.
//!
//! EOImode = 1: writing ICC_EOIR1_EL1 only drops the running priority; deactivation is a
//! separate ICC_DIR_EL1 write. That lets a hardware-linked interrupt (the guest's virtual timer)
//! stay active physically until the guest deactivates the virtual interrupt.

use core::ptr::NonNull;

use aarch64_cpu::registers::{Readable, Writeable, ICH_HCR_EL2, ICH_VMCR_EL2, ICH_VTR_EL2};
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

/// ICC_RPR_EL1 when no interrupt is being handled (its priority not yet dropped).
const IDLE_RUNNING_PRIORITY: u64 = 0xFF;

/// Whether this pCPU is between the acknowledge and the priority drop of some interrupt. While
/// it is, interrupts of the same or lower priority (all of the hypervisor's) are not signalled,
/// and a WFI does not wake for them.
pub fn handling_interrupt() -> bool {
    let running: u64;
    // SAFETY: reading ICC_RPR_EL1 has no side effect (arm-gic has no accessor for it).
    unsafe { core::arch::asm!("mrs {}, icc_rpr_el1", out(reg) running) };
    running & IDLE_RUNNING_PRIORITY != IDLE_RUNNING_PRIORITY
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

/// Applies `$body` to list register `$n` (ICH_LR<n>_EL2) as an aarch64-cpu register.
macro_rules! with_lr {
    ($n:expr, |$reg:ident| $body:expr, $otherwise:expr) => {{
        use aarch64_cpu::registers::*;
        match $n {
            0 => {
                let $reg = ICH_LR0_EL2;
                $body
            }
            1 => {
                let $reg = ICH_LR1_EL2;
                $body
            }
            2 => {
                let $reg = ICH_LR2_EL2;
                $body
            }
            3 => {
                let $reg = ICH_LR3_EL2;
                $body
            }
            4 => {
                let $reg = ICH_LR4_EL2;
                $body
            }
            5 => {
                let $reg = ICH_LR5_EL2;
                $body
            }
            6 => {
                let $reg = ICH_LR6_EL2;
                $body
            }
            7 => {
                let $reg = ICH_LR7_EL2;
                $body
            }
            8 => {
                let $reg = ICH_LR8_EL2;
                $body
            }
            9 => {
                let $reg = ICH_LR9_EL2;
                $body
            }
            10 => {
                let $reg = ICH_LR10_EL2;
                $body
            }
            11 => {
                let $reg = ICH_LR11_EL2;
                $body
            }
            12 => {
                let $reg = ICH_LR12_EL2;
                $body
            }
            13 => {
                let $reg = ICH_LR13_EL2;
                $body
            }
            14 => {
                let $reg = ICH_LR14_EL2;
                $body
            }
            15 => {
                let $reg = ICH_LR15_EL2;
                $body
            }
            _ => $otherwise,
        }
    }};
}

/// Reads ICH_LR<n>_EL2 (0 for a list register that does not exist).
pub fn read_lr(n: usize) -> u64 {
    with_lr!(n, |lr| lr.get(), 0)
}

/// Writes ICH_LR<n>_EL2.
pub fn write_lr(n: usize, value: u64) {
    with_lr!(n, |lr| lr.set(value), ())
}

/// ICH_ELRSR_EL2: bit n set when list register n is empty (nothing pending or active, no EOI
/// maintenance outstanding).
pub fn empty_list_registers() -> u16 {
    let value: u64;
    // SAFETY: reading a GIC virtual-interface status register; no side effects.
    unsafe { core::arch::asm!("mrs {}, ich_elrsr_el2", out(reg) value) };
    value as u16
}

/// ICH_HCR_EL2 = 0: the virtual CPU interface off, which also drops the maintenance interrupt
/// (it can only be asserted while the interface is enabled).
pub fn disable_virtual_interface() {
    ICH_HCR_EL2.set(0);
}

/// ICH_HCR_EL2: enable the virtual CPU interface; optionally ask for a maintenance interrupt
/// when the list registers run (nearly) empty (UIE), to refill them. Never NPIE ("no entry
/// pending"): with every list register holding an active interrupt the guest has not yet
/// deactivated it would be asserted at every entry, a maintenance-interrupt storm.
pub fn set_virtual_interface(underflow_maintenance: bool) {
    ICH_HCR_EL2.write(
        ICH_HCR_EL2::En::SET + if underflow_maintenance { ICH_HCR_EL2::UIE::SET } else { ICH_HCR_EL2::UIE::CLEAR },
    );
}

/// The guest's virtual CPU interface control (priority mask, group enables): saved per vCPU.
pub fn read_vmcr() -> u64 {
    ICH_VMCR_EL2.get()
}

pub fn write_vmcr(value: u64) {
    ICH_VMCR_EL2.set(value);
}
