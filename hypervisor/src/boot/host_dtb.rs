//! Reads what the hypervisor needs from the host device tree QEMU passes in x0.
//!
//! Uses fdt-rs's index (parent links) so `reg` is decoded with the parent's `#address-cells` /
//! `#size-cells`, as the device-tree spec requires, rather than assuming QEMU's 2/2.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use fdt_rs::base::DevTree;
use fdt_rs::index::{DevTreeIndex, DevTreeIndexNode};
use fdt_rs::prelude::*;

use crate::mm::MemRange;

/// The firmware's PSCI conduit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    Smc,
    Hvc,
}

/// One physical CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuInfo {
    /// The affinity fields of MPIDR_EL1, as in the cpu node's `reg`.
    pub mpidr: u64,
}

/// The physical GICv3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GicInfo {
    pub distributor: MemRange,
    pub redistributors: MemRange,
}

/// What a guest-loader module is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModuleKind {
    Kernel,
    Ramdisk,
    /// `multiboot,module` without a more specific compatible.
    Other,
}

impl fmt::Display for ModuleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kernel => "kernel",
            Self::Ramdisk => "ramdisk",
            Self::Other => "module",
        })
    }
}

/// A `/chosen/module@...` node added by QEMU's `-device guest-loader`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootModule {
    pub kind: ModuleKind,
    pub range: MemRange,
    pub bootargs: Option<String>,
}

/// The first word of an HRT image module's bootargs.
const HRT_MODULE_WORD: &str = "hrt";

impl BootModule {
    /// Whether this is a hybrid VM's HRT image (bootargs `hrt [HRT command line]`).
    pub fn is_hrt_image(&self) -> bool {
        self.bootargs.as_deref().and_then(|args| args.split_ascii_whitespace().next()) == Some(HRT_MODULE_WORD)
    }

    /// The HRT's command line: the bootargs after the word `hrt`.
    pub fn hrt_cmdline(&self) -> &str {
        let args = self.bootargs.as_deref().unwrap_or("").trim_start();
        args.strip_prefix(HRT_MODULE_WORD).unwrap_or("").trim()
    }
}

/// A virtio-mmio transport slot of the host machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmioSlot {
    pub range: MemRange,
    /// The SPI number (GIC INTID - 32).
    pub spi: u32,
}

/// Everything the hypervisor takes from the host DTB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostPlatform {
    pub memory: Vec<MemRange>,
    pub cpus: Vec<CpuInfo>,
    pub gic: Option<GicInfo>,
    pub uart: Option<MemRange>,
    pub psci: Option<PsciConduit>,
    pub bootargs: String,
    pub modules: Vec<BootModule>,
    pub virtio_mmio: Vec<VirtioMmioSlot>,
    /// `/chosen/rng-seed` and `/chosen/kaslr-seed`: QEMU's entropy for the hypervisor, mixed
    /// into the guests' seeds (see `boot::entropy`).
    pub rng_seed: Vec<u8>,
    pub kaslr_seed: Option<u64>,
}

/// Why the host DTB could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DtbError {
    /// Bad magic, truncated, misaligned or malformed structure.
    Malformed,
    /// A `reg` property too short for its cells, or with more than two cells per number.
    BadReg,
}

impl fmt::Display for DtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed => f.write_str("the device tree is malformed"),
            Self::BadReg => f.write_str("a device-tree reg property does not match its #address-cells/#size-cells"),
        }
    }
}

impl From<fdt_rs::error::DevTreeError> for DtbError {
    fn from(_: fdt_rs::error::DevTreeError) -> Self {
        Self::Malformed
    }
}

/// Size of the DTB in `header` (its `totalsize` field), for copying it out of guest-visible RAM.
pub fn total_size(header: &[u8]) -> Result<usize, DtbError> {
    // SAFETY: read_totalsize only reads the header bytes it bounds-checks against the slice.
    unsafe { DevTree::read_totalsize(header) }.map_err(DtbError::from)
}

impl HostPlatform {
    /// Parses a flattened device tree. `blob` must be 4-byte aligned (as any DTB in memory is).
    pub fn from_dtb(blob: &[u8]) -> Result<Self, DtbError> {
        let size = total_size(blob)?;
        let blob = blob.get(..size).ok_or(DtbError::Malformed)?;
        if !(blob.as_ptr() as usize).is_multiple_of(4) {
            return Err(DtbError::Malformed);
        }
        // SAFETY: the slice is 4-byte aligned and exactly totalsize long, as DevTree::new requires.
        let tree = unsafe { DevTree::new(blob) }?;
        let layout = DevTreeIndex::get_layout(&tree)?;
        let mut index_buf = vec![0u8; layout.size() + layout.align()];
        let index = DevTreeIndex::new(tree, &mut index_buf)?;

        let mut platform = HostPlatform::default();
        for node in index.nodes() {
            let name = node.name()?;
            if name == "chosen" {
                if let Some(args) = string_prop(&node, "bootargs")? {
                    platform.bootargs = args.to_string();
                }
                if let Some(seed) = raw_prop(&node, "rng-seed")? {
                    platform.rng_seed = seed.to_vec();
                }
                // A malformed seed is no reason to refuse to boot: it is just not used.
                if let Some(seed) = raw_prop(&node, "kaslr-seed")? {
                    platform.kaslr_seed = read_cells(seed, 2).ok().map(|(value, _)| value);
                }
            }
            if let Some(device_type) = string_prop(&node, "device_type")? {
                match device_type {
                    "memory" => platform.memory.extend(reg_ranges(&node)?),
                    "cpu" => {
                        let cells = cells_of_parent(&node, "#address-cells", 2)?;
                        let reg = raw_prop(&node, "reg")?.ok_or(DtbError::BadReg)?;
                        let (mpidr, _) = read_cells(reg, cells)?;
                        platform.cpus.push(CpuInfo { mpidr });
                    }
                    _ => {}
                }
            }
            if is_compatible(&node, "arm,gic-v3")? {
                let regs = reg_ranges(&node)?;
                if let [distributor, redistributors, ..] = regs[..] {
                    platform.gic = Some(GicInfo { distributor, redistributors });
                }
            } else if is_compatible(&node, "arm,pl011")? && platform.uart.is_none() {
                platform.uart = reg_ranges(&node)?.first().copied();
            } else if is_compatible(&node, "arm,psci-0.2")? || is_compatible(&node, "arm,psci")? {
                platform.psci = match string_prop(&node, "method")? {
                    Some("smc") => Some(PsciConduit::Smc),
                    Some("hvc") => Some(PsciConduit::Hvc),
                    _ => None,
                };
            } else if is_compatible(&node, "multiboot,module")? {
                let kind = if is_compatible(&node, "multiboot,kernel")? {
                    ModuleKind::Kernel
                } else if is_compatible(&node, "multiboot,ramdisk")? {
                    ModuleKind::Ramdisk
                } else {
                    ModuleKind::Other
                };
                let range = *reg_ranges(&node)?.first().ok_or(DtbError::BadReg)?;
                let bootargs = string_prop(&node, "bootargs")?.map(ToString::to_string);
                platform.modules.push(BootModule { kind, range, bootargs });
            } else if is_compatible(&node, "virtio,mmio")? {
                let range = *reg_ranges(&node)?.first().ok_or(DtbError::BadReg)?;
                // interrupts = <GIC_SPI number flags>
                if let Some(irq) = raw_prop(&node, "interrupts")? {
                    let spi = read_cells(irq.get(4..).ok_or(DtbError::BadReg)?, 1)?.0 as u32;
                    platform.virtio_mmio.push(VirtioMmioSlot { range, spi });
                }
            }
        }
        // QEMU lists modules in reverse order of the command line; keep address order.
        platform.modules.sort_by_key(|m| m.range.start);
        platform.virtio_mmio.sort_by_key(|s| s.range.start);
        Ok(platform)
    }

    /// The first `multiboot,kernel` module that is not the HRT image.
    pub fn kernel_module(&self) -> Option<&BootModule> {
        self.modules.iter().find(|m| m.kind == ModuleKind::Kernel && !m.is_hrt_image())
    }

    /// The hybrid VM's HRT image: the first kernel module whose bootargs start with the word
    /// `hrt` (the rest is the HRT's command line).
    pub fn hrt_module(&self) -> Option<&BootModule> {
        self.modules.iter().find(|m| m.kind == ModuleKind::Kernel && m.is_hrt_image())
    }

    /// The first `multiboot,ramdisk` module.
    pub fn ramdisk_module(&self) -> Option<&BootModule> {
        self.modules.iter().find(|m| m.kind == ModuleKind::Ramdisk)
    }
}

fn find_prop<'a, 'i, 'dt>(
    node: &DevTreeIndexNode<'a, 'i, 'dt>,
    name: &str,
) -> Result<Option<fdt_rs::index::DevTreeIndexProp<'a, 'i, 'dt>>, DtbError> {
    for prop in node.props() {
        if prop.name()? == name {
            return Ok(Some(prop));
        }
    }
    Ok(None)
}

fn raw_prop<'dt>(node: &DevTreeIndexNode<'_, '_, 'dt>, name: &str) -> Result<Option<&'dt [u8]>, DtbError> {
    Ok(find_prop(node, name)?.map(|p| p.raw()))
}

fn string_prop<'dt>(node: &DevTreeIndexNode<'_, '_, 'dt>, name: &str) -> Result<Option<&'dt str>, DtbError> {
    match find_prop(node, name)? {
        Some(prop) => Ok(Some(prop.str()?)),
        None => Ok(None),
    }
}

/// Whether one of the strings in `compatible` equals `wanted`.
fn is_compatible(node: &DevTreeIndexNode<'_, '_, '_>, wanted: &str) -> Result<bool, DtbError> {
    Ok(raw_prop(node, "compatible")?.is_some_and(|raw| raw.split(|&b| b == 0).any(|s| s == wanted.as_bytes())))
}

/// `#address-cells` or `#size-cells` that applies to the node's own `reg`: the nearest
/// ancestor that sets it, as Linux and Xen read it (QEMU's `/chosen/module@` nodes rely on this:
/// `/chosen` sets neither and the modules use the root's cells).
fn cells_of_parent(node: &DevTreeIndexNode<'_, '_, '_>, name: &str, default: usize) -> Result<usize, DtbError> {
    let mut ancestor = node.parent();
    while let Some(current) = ancestor {
        if let Some(raw) = raw_prop(&current, name)? {
            return Ok(read_cells(raw, 1)?.0 as usize);
        }
        ancestor = current.parent();
    }
    Ok(default)
}

/// Reads one big-endian number of `cells` 32-bit cells; returns it and the rest of the slice.
fn read_cells(bytes: &[u8], cells: usize) -> Result<(u64, &[u8]), DtbError> {
    if cells == 0 || cells > 2 || bytes.len() < cells * 4 {
        return Err(DtbError::BadReg);
    }
    let (head, rest) = bytes.split_at(cells * 4);
    let value =
        head.chunks_exact(4).fold(0u64, |acc, c| (acc << 32) | u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as u64);
    Ok((value, rest))
}

/// Decodes every (address, size) pair of the node's `reg`.
fn reg_ranges(node: &DevTreeIndexNode<'_, '_, '_>) -> Result<Vec<MemRange>, DtbError> {
    let address_cells = cells_of_parent(node, "#address-cells", 2)?;
    let size_cells = cells_of_parent(node, "#size-cells", 1)?;
    let mut rest = raw_prop(node, "reg")?.ok_or(DtbError::BadReg)?;
    let mut ranges = Vec::new();
    while !rest.is_empty() {
        let (start, tail) = read_cells(rest, address_cells)?;
        let (size, tail) = read_cells(tail, size_cells)?;
        ranges.push(MemRange::new(start, size));
        rest = tail;
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `qemu-system-aarch64 -M virt,gic-version=3,virtualization=on,dumpdtb=... -smp 4 -m 2G
    /// -append "vcpus=2 log=debug" -device guest-loader,addr=0x44000000,kernel=...,
    /// bootargs="console=ttyAMA0 earlycon" -device guest-loader,addr=0x48000000,initrd=...`,
    /// repacked with `dtc -I dtb -O dtb`. See tests/fixtures/README.md.
    static QEMU_VIRT_DTB: &[u8] = include_bytes!("../../../tests/fixtures/qemu-virt-gicv3-smp4-guest-loader.dtb");

    fn aligned(blob: &[u8]) -> Vec<u32> {
        blob.chunks(4)
            .map(|c| {
                let mut word = [0u8; 4];
                word[..c.len()].copy_from_slice(c);
                u32::from_ne_bytes(word)
            })
            .collect()
    }

    fn parse_fixture() -> HostPlatform {
        let words = aligned(QEMU_VIRT_DTB);
        // SAFETY: reinterpreting an owned u32 buffer as bytes of the same length.
        let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), QEMU_VIRT_DTB.len()) };
        HostPlatform::from_dtb(bytes).expect("fixture parses")
    }

    #[test]
    fn reads_memory_cpus_gic_uart_psci() {
        let p = parse_fixture();
        assert_eq!(p.memory, vec![MemRange::new(0x4000_0000, 0x8000_0000)]);
        let mpidrs: Vec<u64> = p.cpus.iter().map(|c| c.mpidr).collect();
        assert_eq!(mpidrs, vec![0, 1, 2, 3]);
        let gic = p.gic.unwrap();
        assert_eq!(gic.distributor, MemRange::new(0x0800_0000, 0x1_0000));
        assert_eq!(gic.redistributors, MemRange::new(0x080A_0000, 0xF6_0000));
        assert_eq!(p.uart, Some(MemRange::new(0x0900_0000, 0x1000)));
        assert_eq!(p.psci, Some(PsciConduit::Smc));
        assert_eq!(p.virtio_mmio.len(), 32);
        assert_eq!(p.virtio_mmio[0], VirtioMmioSlot { range: MemRange::new(0x0A00_0000, 0x200), spi: 16 });
    }

    #[test]
    fn the_hrt_image_is_the_kernel_module_whose_bootargs_start_with_hrt() {
        let module = |addr: u64, bootargs: Option<&str>| BootModule {
            kind: ModuleKind::Kernel,
            range: MemRange::new(addr, 0x1000),
            bootargs: bootargs.map(ToString::to_string),
        };
        let platform = HostPlatform {
            modules: vec![module(0x1000, Some("hrt  quiet x=1")), module(0x2000, Some("console=ttyAMA0 hrt"))],
            ..HostPlatform::default()
        };
        assert_eq!(platform.hrt_module().unwrap().range.start, 0x1000);
        assert_eq!(platform.hrt_module().unwrap().hrt_cmdline(), "quiet x=1");
        assert_eq!(platform.kernel_module().unwrap().range.start, 0x2000, "Linux, even after the HRT");
        assert!(!module(0, Some("hrtx")).is_hrt_image());
        assert!(!module(0, None).is_hrt_image());
        assert_eq!(module(0, Some("hrt")).hrt_cmdline(), "");
    }

    #[test]
    fn reads_bootargs_and_guest_loader_modules() {
        let p = parse_fixture();
        assert_eq!(p.bootargs, "vcpus=2 log=debug");
        let kernel = p.kernel_module().unwrap();
        assert_eq!(kernel.range, MemRange::new(0x4400_0000, 0x1000));
        assert_eq!(kernel.bootargs.as_deref(), Some("console=ttyAMA0 earlycon"));
        let ramdisk = p.ramdisk_module().unwrap();
        assert_eq!(ramdisk.range, MemRange::new(0x4800_0000, 0x2000));
        assert_eq!(ramdisk.bootargs, None);
    }

    #[test]
    fn reads_qemus_seeds() {
        let p = parse_fixture();
        assert_eq!(p.kaslr_seed, Some(0xedb7_daed_3c44_33bf));
        assert_eq!(p.rng_seed.len(), 32);
        assert_eq!(p.rng_seed[..4], [0xde, 0xc1, 0xea, 0xeb]);
    }

    #[test]
    fn garbage_is_refused() {
        let words = vec![0xdead_beefu32; 64];
        // SAFETY: an owned u32 buffer viewed as bytes.
        let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), 256) };
        assert_eq!(HostPlatform::from_dtb(bytes), Err(DtbError::Malformed));
        assert!(HostPlatform::from_dtb(&[]).is_err());
    }

    #[test]
    fn truncated_dtb_is_refused() {
        let words = aligned(QEMU_VIRT_DTB);
        // SAFETY: an owned u32 buffer viewed as bytes, shorter than the buffer.
        let bytes = unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), QEMU_VIRT_DTB.len() / 2) };
        assert!(HostPlatform::from_dtb(bytes).is_err());
    }

    #[test]
    fn reg_cells_are_validated() {
        assert_eq!(read_cells(&[0, 0, 0, 1, 0, 0, 0, 2], 2).unwrap().0, 0x1_0000_0002);
        assert_eq!(read_cells(&[0, 0, 1], 1), Err(DtbError::BadReg));
        assert_eq!(read_cells(&[0; 12], 3), Err(DtbError::BadReg));
    }
}
