//! What the HRT build learns at boot instead of reading a device tree: the hypervisor's boot
//! info (x0 at entry, hvm-ros-lib `abi::HrtBootInfo`), checked against what the rest of the
//! fuzzer assumes (its link address, QEMU virt's GIC frames), and the command line, which holds
//! the Linux build's options (options.rs) and the HRT's own `classes=` (ops.rs names).

use hvm_ros_lib::abi::{hrt_boot, HrtBootInfo};

use super::memory::{Layout, Range};
use super::ops;
use crate::dtb::MAX_CPUS;
use crate::gic::{GICD_BASE, GICR_BASE, GICR_STRIDE};
use crate::options::{self, Options};

extern "C" {
    static __image_start: u8;
}

/// Reads and checks the boot info at `va` for HRT core `core` on vCPU `vcpu`.
///
/// # Safety
/// `va` must be the address the hypervisor passed in x0 (the boot contract: readable for
/// `size_of::<HrtBootInfo>()` bytes, never changed while the HRT runs).
pub unsafe fn read(va: u64, core: u64, vcpu: u64) -> Result<(HrtBootInfo, Layout), &'static str> {
    if !va.is_multiple_of(core::mem::align_of::<HrtBootInfo>() as u64) {
        return Err("the boot info address is not 8-byte aligned");
    }
    // SAFETY: aligned (checked) and readable (the caller); HrtBootInfo is plain integers, valid
    // for any bytes.
    let info = unsafe { core::ptr::read_volatile(va as *const HrtBootInfo) };
    // SAFETY: a linker symbol; only its address is taken.
    let linked_at = unsafe { &__image_start as *const u8 as u64 };
    let checks: [(bool, &'static str); 7] = [
        (info.magic == hrt_boot::MAGIC, "bad boot info magic"),
        (info.image_va == linked_at, "the image is not where linker-hrt.ld links it (IMAGE_BASE)"),
        (info.linear_map_va == hrt_boot::LINEAR_MAP_BASE, "unexpected linear map address"),
        (core < info.hrt_cores && info.first_hrt_vcpu.checked_add(core) == Some(vcpu), "core index and vCPU disagree"),
        ((info.first_hrt_vcpu + info.hrt_cores) as usize <= MAX_CPUS, "more vCPUs than the fuzzer handles (8)"),
        (
            info.gicd_base == GICD_BASE && info.gicr_base == GICR_BASE && info.gicr_stride == GICR_STRIDE,
            "the GIC is not at QEMU virt's addresses (gic.rs)",
        ),
        (info.hrt_mem_start == info.ros_mem_start + info.ros_mem_size, "HRT RAM does not follow ROS RAM"),
    ];
    if let Some(&(_, why)) = checks.iter().find(|(ok, _)| !ok) {
        return Err(why);
    }
    let layout = Layout::new(
        Range::new(info.ros_mem_start, info.ros_mem_size),
        Range::new(info.hrt_mem_start, info.hrt_mem_size),
        Range::new(info.free_start, info.free_end.saturating_sub(info.free_start)),
        info.first_hrt_vcpu as usize,
        info.hrt_cores as usize,
    )?;
    Ok((info, layout))
}

/// The command line up to its NUL.
pub fn cmdline(info: &HrtBootInfo) -> &[u8] {
    let len = info.cmdline.iter().position(|&b| b == 0).unwrap_or(info.cmdline.len());
    &info.cmdline[..len]
}

/// Parses the command line: `classes=` against the HRT's classes, every other word as the
/// Linux build does (options.rs). Returns the options and the HRT class bits (bit n:
/// ops::CLASSES[n]); on error, the offending word.
pub fn parse(cmdline: &[u8]) -> Result<(Options, u32), &[u8]> {
    let mut rest = [0u8; hrt_boot::CMDLINE_MAX];
    let mut len = 0;
    let mut classes = ops::parse_classes(b"").unwrap_or(0);
    for word in cmdline.split(u8::is_ascii_whitespace).filter(|w| !w.is_empty()) {
        if let Some(list) = word.strip_prefix(b"classes=") {
            classes = ops::parse_classes(list).ok_or(word)?;
        } else if len + word.len() < rest.len() {
            rest[len..len + word.len()].copy_from_slice(word);
            rest[len + word.len()] = b' ';
            len += word.len() + 1;
        }
    }
    if classes == 0 {
        return Err(b"classes=");
    }
    match options::parse(&rest[..len]) {
        Ok(options) => Ok((options, classes)),
        // The word options.rs refused, as it stands in the command line.
        Err(bad) => Err(cmdline.split(u8::is_ascii_whitespace).find(|w| *w == bad).unwrap_or(cmdline)),
    }
}
