//! The boot info the hypervisor hands every HRT core (x0 at entry, abi.rs `HrtBootInfo`):
//! read once, checked, then kept as a [`BootInfoView`] with the address arithmetic the rest of
//! the kernel needs.

use core::fmt;

use hvm_ros_lib::abi::invoke::CommPage;
use hvm_ros_lib::abi::{hrt_boot, HrtBootInfo};

use crate::cpu::MAX_CORES;
use crate::guest_ram::GuestRam;

/// The device space the linear map maps as device memory: the first GiB of the IPA space
/// (abi.rs `hrt_boot`). The GIC must lie in it.
const DEVICE_SPACE_END: u64 = 1 << 30;
/// A redistributor is two 64 KiB frames: RD_base, then SGI_base.
pub const GICR_FRAME_SIZE: u64 = 0x1_0000;
const GICR_FRAMES: u64 = 2;
/// The distributor's register frame.
const GICD_SIZE: u64 = 0x1_0000;
/// SGIs are INTIDs 0-15.
const SGI_COUNT: u64 = 16;

/// Why a core refuses to boot.
#[derive(Clone, Copy, Debug)]
pub enum BootInfoError {
    Misaligned { va: u64 },
    BadMagic { found: u64 },
    CoreIndex { core: u64, cores: u64 },
    VcpuMismatch { vcpu: u64, first_hrt_vcpu: u64, core: u64 },
    Mapping { linear_map_va: u64, image_va: u64 },
    NoCounterFrequency,
    UpcallNotSgi { intid: u64 },
    GicrOutsideDeviceSpace { frame: u64 },
    CommPage { ipa: u64 },
}

impl fmt::Display for BootInfoError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Self::Misaligned { va } => write!(f, "boot info address {va:#x} is not 8-byte aligned"),
            Self::BadMagic { found } => {
                write!(f, "magic {found:#018x}, expected {:#018x} (\"HRTBOOT1\")", hrt_boot::MAGIC)
            }
            Self::CoreIndex { core, cores } => {
                write!(f, "core index {core} with {cores} HRT cores (this kernel handles {MAX_CORES})")
            }
            Self::VcpuMismatch { vcpu, first_hrt_vcpu, core } => {
                write!(f, "vCPU {vcpu} is not first_hrt_vcpu {first_hrt_vcpu} + core index {core}")
            }
            Self::Mapping { linear_map_va, image_va } => write!(
                f,
                "linear map at {linear_map_va:#x} and image at {image_va:#x}, expected {:#x} and {:#x}",
                hrt_boot::LINEAR_MAP_BASE,
                hrt_boot::IMAGE_BASE
            ),
            Self::NoCounterFrequency => write!(f, "counter_frequency is 0"),
            Self::UpcallNotSgi { intid } => write!(f, "upcall INTID {intid} is not an SGI"),
            Self::GicrOutsideDeviceSpace { frame } => {
                write!(f, "redistributor at IPA {frame:#x} lies outside the device space")
            }
            Self::CommPage { ipa } => write!(f, "comm page at IPA {ipa:#x} is not an aligned block in HRT RAM"),
        }
    }
}

/// A guest-physical RAM range from the boot info.
#[derive(Clone, Copy, Debug)]
pub struct RamRange {
    pub start: u64,
    pub size: u64,
}

impl RamRange {
    /// Whether `[ipa, ipa + len)` lies inside this range (no wrap-around).
    pub fn contains(&self, ipa: u64, len: u64) -> bool {
        let (Some(end), Some(range_end)) = (ipa.checked_add(len), self.start.checked_add(self.size)) else {
            return false;
        };
        ipa >= self.start && end <= range_end
    }

    /// Bytes from `ipa` to the end of the range, if `ipa` lies inside it.
    pub fn bytes_from(&self, ipa: u64) -> Option<u64> {
        self.contains(ipa, 1).then(|| self.start + self.size - ipa)
    }
}

/// A checked copy of the boot info and this core's identity.
#[derive(Clone, Copy)]
pub struct BootInfoView {
    info: HrtBootInfo,
    core: usize,
    vcpu: u64,
}

impl BootInfoView {
    /// Reads and checks the boot info at `va` for HRT core `core`, vCPU `vcpu` (the entry
    /// registers x0, x1, x2).
    ///
    /// # Safety
    /// `va`, if 8-byte aligned, must be readable for `size_of::<HrtBootInfo>()` bytes (the boot
    /// contract: x0 points at the boot info; the hypervisor never changes it while we run).
    pub unsafe fn from_entry(va: u64, core: u64, vcpu: u64) -> Result<Self, BootInfoError> {
        if !va.is_multiple_of(core::mem::align_of::<HrtBootInfo>() as u64) {
            return Err(BootInfoError::Misaligned { va });
        }
        // SAFETY: aligned (checked) and readable (the caller); HrtBootInfo is plain integers,
        // valid for any bytes.
        let info = unsafe { core::ptr::read(va as *const HrtBootInfo) };
        if info.magic != hrt_boot::MAGIC {
            return Err(BootInfoError::BadMagic { found: info.magic });
        }
        if core >= info.hrt_cores || core >= MAX_CORES as u64 {
            return Err(BootInfoError::CoreIndex { core, cores: info.hrt_cores });
        }
        if info.first_hrt_vcpu.checked_add(core) != Some(vcpu) {
            return Err(BootInfoError::VcpuMismatch { vcpu, first_hrt_vcpu: info.first_hrt_vcpu, core });
        }
        if info.linear_map_va != hrt_boot::LINEAR_MAP_BASE || info.image_va != hrt_boot::IMAGE_BASE {
            return Err(BootInfoError::Mapping { linear_map_va: info.linear_map_va, image_va: info.image_va });
        }
        if info.counter_frequency == 0 {
            return Err(BootInfoError::NoCounterFrequency);
        }
        if info.upcall_intid >= SGI_COUNT {
            return Err(BootInfoError::UpcallNotSgi { intid: info.upcall_intid });
        }
        let frame = vcpu.checked_mul(info.gicr_stride).and_then(|offset| info.gicr_base.checked_add(offset));
        let frame_end = frame.and_then(|frame| frame.checked_add(GICR_FRAMES * GICR_FRAME_SIZE));
        if frame_end.is_none_or(|end| end > DEVICE_SPACE_END) {
            return Err(BootInfoError::GicrOutsideDeviceSpace { frame: frame.unwrap_or(u64::MAX) });
        }
        // Upcall requests are read from it through the linear map (upcall.rs).
        let comm_aligned = info.comm_page.is_multiple_of(core::mem::align_of::<CommPage>() as u64);
        let hrt_ram = RamRange { start: info.hrt_mem_start, size: info.hrt_mem_size };
        if !comm_aligned || !hrt_ram.contains(info.comm_page, core::mem::size_of::<CommPage>() as u64) {
            return Err(BootInfoError::CommPage { ipa: info.comm_page });
        }
        Ok(Self { info, core: core as usize, vcpu })
    }

    /// This core's HRT core index (< [`MAX_CORES`]).
    pub fn core(&self) -> usize {
        self.core
    }

    pub fn vcpu(&self) -> u64 {
        self.vcpu
    }

    pub fn cores(&self) -> u64 {
        self.info.hrt_cores
    }

    pub fn counter_frequency(&self) -> u64 {
        self.info.counter_frequency
    }

    /// CNTVCT_EL0 when the hypervisor started this HRT boot: uptimes count from here.
    pub fn boot_start_counter(&self) -> u64 {
        self.info.boot_start_counter
    }

    pub fn upcall_intid(&self) -> u32 {
        self.info.upcall_intid as u32
    }

    pub fn ros_ram(&self) -> RamRange {
        RamRange { start: self.info.ros_mem_start, size: self.info.ros_mem_size }
    }

    pub fn hrt_ram(&self) -> RamRange {
        RamRange { start: self.info.hrt_mem_start, size: self.info.hrt_mem_size }
    }

    /// ROS RAM, for reading on the ROS's behalf (its invocations, its processes' memory).
    pub fn ros_memory(&self) -> GuestRam {
        GuestRam::new(self.ros_ram(), self.info.linear_map_va)
    }

    /// HRT RAM, the same way (the self-test's page tables live there).
    pub fn hrt_memory(&self) -> GuestRam {
        GuestRam::new(self.hrt_ram(), self.info.linear_map_va)
    }

    /// The comm page's IPA (checked: aligned, in HRT RAM; read through [`Self::hrt_memory`]).
    pub fn comm_page(&self) -> u64 {
        self.info.comm_page
    }

    /// Where guest-physical address `ipa` is mapped (the linear map).
    pub fn ipa_to_va(&self, ipa: u64) -> u64 {
        self.info.linear_map_va + ipa
    }

    /// The virtual address of this core's redistributor (RD_base frame; SGI_base follows).
    pub fn gicr_va(&self) -> u64 {
        self.ipa_to_va(self.info.gicr_base + self.vcpu * self.info.gicr_stride)
    }

    /// The virtual address of the distributor, if it lies in the device space (it is only read,
    /// for a diagnostic: the ROS owns it).
    pub fn gicd_va(&self) -> Option<u64> {
        let end = self.info.gicd_base.checked_add(GICD_SIZE)?;
        (end <= DEVICE_SPACE_END).then(|| self.ipa_to_va(self.info.gicd_base))
    }

    /// The command line, up to its NUL (all of it if the hypervisor left none).
    pub fn cmdline(&self) -> &[u8] {
        let len = self.info.cmdline.iter().position(|&byte| byte == 0).unwrap_or(self.info.cmdline.len());
        &self.info.cmdline[..len]
    }
}
