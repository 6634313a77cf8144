//! The guest-physical (IPA) map every VM sees: QEMU virt's, so kernels written for virt run
//! unmodified. These are facts of the guest platform, shared by the stage-2 setup, the device
//! manager and the guest DTB.

/// GICv3 distributor (GICD), 64 KiB.
pub const GICD_BASE: u64 = 0x0800_0000;
pub const GICD_SIZE: u64 = 0x1_0000;
/// GICv3 redistributors: one 128 KiB frame pair (RD_base + SGI_base) per vCPU from here.
pub const GICR_BASE: u64 = 0x080A_0000;
pub const GICR_STRIDE: u64 = 0x2_0000;
/// PL011 UART, 4 KiB, interrupt SPI 1 (INTID 33).
pub const UART_BASE: u64 = 0x0900_0000;
pub const UART_SIZE: u64 = 0x1000;
pub const UART_SPI: u32 = 1;
/// virtio-mmio transports: slot n at VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_STRIDE, SPI 16 + n.
pub const VIRTIO_MMIO_BASE: u64 = 0x0A00_0000;
pub const VIRTIO_MMIO_STRIDE: u64 = 0x200;
pub const VIRTIO_MMIO_FIRST_SPI: u32 = 16;
/// Number of virtio-mmio slots, as on QEMU virt: every one is a transport (empty ones report
/// DeviceID 0).
pub const VIRTIO_MMIO_SLOTS: u32 = 32;
/// A hybrid VM's doorbell page (DESIGN.md §7): no stage-2 mapping, so a ROS process's access
/// traps; listed in the ROS DTB only. QEMU virt has nothing here.
pub const DOORBELL_BASE: u64 = 0x0B00_0000;
pub const DOORBELL_SIZE: u64 = 0x1000;
/// The SGI the hypervisor raises on an HRT core for an upcall (Palacios' `hrt_int_vector`);
/// Linux uses SGIs 0..7 for itself, the HRT this one.
pub const HRT_UPCALL_SGI: u32 = 15;
/// Guest RAM starts here (QEMU virt's RAM base).
pub const RAM_BASE: u64 = 0x4000_0000;

/// GIC interrupt ids of the architected timers (PPIs), as on QEMU virt.
pub const PPI_HYP_PHYS_TIMER: u32 = 26;
pub const PPI_VIRT_TIMER: u32 = 27;
pub const PPI_SECURE_PHYS_TIMER: u32 = 29;
pub const PPI_NONSECURE_PHYS_TIMER: u32 = 30;
/// The GIC maintenance interrupt (PPI 9).
pub const PPI_GIC_MAINTENANCE: u32 = 25;
/// First shared peripheral interrupt id.
pub const SPI_BASE: u32 = 32;
/// SPIs the virtual distributor implements (GICD_TYPER.ITLinesNumber = 3: INTIDs up to 127).
pub const NUM_SPIS: u32 = 96;

/// Whether `ipa` lies in the distributor or in one of the `vcpus` redistributor frame pairs.
pub const fn is_gic_frame(ipa: u64, vcpus: usize) -> bool {
    let in_gicd = ipa >= GICD_BASE && ipa - GICD_BASE < GICD_SIZE;
    let in_gicr = ipa >= GICR_BASE && ipa - GICR_BASE < GICR_STRIDE * vcpus as u64;
    in_gicd || in_gicr
}

/// Guest MPIDR of vCPU `index`: Aff0 = index (one cluster; at most 8 vCPUs).
pub const fn vcpu_mpidr(index: usize) -> u64 {
    index as u64
}
