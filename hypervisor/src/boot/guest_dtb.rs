//! Builds the device tree a guest boots with.
//!
//! The guest platform is described once, in `dtb/guest-virt.dts`, which build.rs compiles with
//! dtc and this module embeds. [`build`] copies every node and property of that template into a
//! new DTB (read with fdt-rs, written with vm-fdt) and patches what depends on the VM:
//!
//! - `/memory@...`: `reg` and the unit address = the guest's RAM;
//! - `/cpus`: a `cpu@N` node per vCPU, `reg` = its MPIDR, started with PSCI;
//! - the GICv3 node: the redistributor region's size, one 128 KiB frame pair per vCPU;
//! - `/chosen`: `bootargs`, `kaslr-seed` and `rng-seed` (fresh for every boot), and
//!   `linux,initrd-start` / `linux,initrd-end` if there is an initrd;
//! - one `virtio_mmio@...` node per virtio-mmio transport, at the end of the root node.
//!
//! Phandles are copied unchanged, so the template's references (`interrupt-parent`, `clocks`)
//! stay valid.

use alloc::format;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use fdt_rs::base::DevTree;
use fdt_rs::index::{DevTreeIndex, DevTreeIndexNode};
use fdt_rs::prelude::*;
use vm_fdt::FdtWriter;

use super::entropy::GuestSeeds;
use crate::guest_map::{vcpu_mpidr, GICR_STRIDE, NUM_SPIS};
use crate::mm::MemRange;
use crate::options::MAX_VCPUS;

/// The compiled template, aligned as fdt-rs requires (include_bytes! only guarantees bytes).
#[repr(C, align(8))]
struct Aligned<T: ?Sized>(T);
static TEMPLATE: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/guest-virt.dtb")));

/// GIC interrupt specifier: type SPI, and flags edge rising (virtio-mmio interrupts are edges).
const GIC_SPI: u32 = 0;
const IRQ_EDGE_RISING: u32 = 1;
/// Default cell counts when a node does not set them (devicetree spec 2.3.5).
const DEFAULT_ADDRESS_CELLS: u32 = 2;
const DEFAULT_SIZE_CELLS: u32 = 1;
/// Index of the redistributor region in the GICv3 node's `reg` (after the distributor).
const GIC_REDISTRIBUTOR_REG: usize = 1;

/// A virtio-mmio transport the guest should probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioMmioNode {
    /// IPA of the register window.
    pub base: u64,
    pub size: u64,
    /// SPI number (GIC INTID - 32).
    pub spi: u32,
}

/// What varies between guests.
#[derive(Clone, Copy, Debug)]
pub struct GuestDtbConfig<'a> {
    pub vcpus: usize,
    /// Guest RAM, in IPAs.
    pub ram: MemRange,
    pub bootargs: &'a str,
    /// Where the initrd was loaded, in IPAs.
    pub initrd: Option<MemRange>,
    pub virtio_mmio: &'a [VirtioMmioNode],
    /// `/chosen/kaslr-seed` and `/chosen/rng-seed` (see `boot::entropy`).
    pub seeds: GuestSeeds,
    /// A hybrid VM's doorbell page (ROS guests only): a `hvm-ros,doorbell` node.
    pub doorbell: Option<MemRange>,
}

/// Why a guest DTB could not be built.
#[derive(Debug, PartialEq, Eq)]
pub enum GuestDtbError {
    /// The vCPU count is 0 or above [`MAX_VCPUS`].
    VcpuCount(usize),
    /// Guest RAM or the initrd is empty.
    EmptyRange(MemRange),
    /// A virtio-mmio node is empty, overlaps another or has an SPI the GIC does not have.
    BadVirtioNode(VirtioMmioNode),
    /// A value does not fit the number of cells its node uses.
    DoesNotFit(u64),
    /// The embedded template is unreadable or has a malformed property (named):
    /// `dtb/guest-virt.dts` is broken.
    Template(&'static str),
    /// vm-fdt refused the output, e.g. bootargs containing a NUL byte.
    Write(vm_fdt::Error),
}

impl fmt::Display for GuestDtbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::VcpuCount(n) => write!(f, "{n} vCPUs: a guest has 1 to {MAX_VCPUS}"),
            Self::EmptyRange(range) => write!(f, "empty memory range at {:#x}", range.start),
            Self::BadVirtioNode(node) => write!(
                f,
                "virtio-mmio node at {:#x} (size {:#x}, SPI {}) is empty, overlaps another or \
                 has an SPI >= {NUM_SPIS}",
                node.base, node.size, node.spi
            ),
            Self::DoesNotFit(value) => write!(f, "{value:#x} does not fit its device-tree cells"),
            Self::Template(what) => write!(f, "the guest DTB template is broken: {what}"),
            Self::Write(err) => write!(f, "cannot write the guest DTB: {err}"),
        }
    }
}

impl From<vm_fdt::Error> for GuestDtbError {
    fn from(err: vm_fdt::Error) -> Self {
        Self::Write(err)
    }
}

impl From<fdt_rs::error::DevTreeError> for GuestDtbError {
    fn from(_: fdt_rs::error::DevTreeError) -> Self {
        Self::Template("not a readable DTB")
    }
}

/// Builds the DTB for a guest configured as `config`.
pub fn build(config: &GuestDtbConfig<'_>) -> Result<Vec<u8>, GuestDtbError> {
    validate(config)?;
    // SAFETY: TEMPLATE is 8-byte aligned and exactly the DTB dtc wrote, as DevTree::new requires.
    let tree = unsafe { DevTree::new(&TEMPLATE.0) }?;
    let layout = DevTreeIndex::get_layout(&tree)?;
    let mut index_buf = vec![0u8; layout.size() + layout.align()];
    let index = DevTreeIndex::new(tree, &mut index_buf)?;

    // The header's boot_cpuid_phys stays 0; arm64 Linux reads its MPIDR instead.
    let mut builder = Builder { config, writer: FdtWriter::new()? };
    builder.copy_node(&index.root(), 0, Cells::default())?;
    Ok(builder.writer.finish()?)
}

fn validate(config: &GuestDtbConfig<'_>) -> Result<(), GuestDtbError> {
    if !(1..=MAX_VCPUS).contains(&config.vcpus) {
        return Err(GuestDtbError::VcpuCount(config.vcpus));
    }
    for range in core::iter::once(config.ram).chain(config.initrd) {
        if range.size == 0 {
            return Err(GuestDtbError::EmptyRange(range));
        }
    }
    for (i, node) in config.virtio_mmio.iter().enumerate() {
        let window = MemRange::new(node.base, node.size);
        let overlaps =
            config.virtio_mmio[..i].iter().any(|other| window.overlaps(&MemRange::new(other.base, other.size)));
        if node.size == 0 || node.spi >= NUM_SPIS || overlaps {
            return Err(GuestDtbError::BadVirtioNode(*node));
        }
    }
    Ok(())
}

/// Template nodes this module patches (all children of the root), and the root itself. The
/// unit tests check that the template has each of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Root,
    Memory,
    Cpus,
    Gic,
    Chosen,
    Other,
}

/// #address-cells and #size-cells that apply to a node's children.
#[derive(Clone, Copy, Debug)]
struct Cells {
    address: u32,
    size: u32,
}

impl Default for Cells {
    /// The devicetree spec's defaults for a node that does not set them.
    fn default() -> Self {
        Self { address: DEFAULT_ADDRESS_CELLS, size: DEFAULT_SIZE_CELLS }
    }
}

struct Builder<'c, 'a> {
    config: &'c GuestDtbConfig<'a>,
    writer: FdtWriter,
}

type Node<'a, 'i, 'dt> = DevTreeIndexNode<'a, 'i, 'dt>;

impl Builder<'_, '_> {
    /// Writes `node` and its subtree, with the patches for its role. `depth` is 0 for the root;
    /// `parent_cells` are the cells `node`'s own `reg` uses.
    fn copy_node(&mut self, node: &Node<'_, '_, '_>, depth: usize, parent_cells: Cells) -> Result<(), GuestDtbError> {
        let role = match depth {
            0 => Role::Root,
            1 => role_of(node)?,
            _ => Role::Other,
        };
        let cells = cells_of(node)?;
        let name = match role {
            Role::Memory => format!("memory@{:x}", self.config.ram.start),
            _ => node.name()?.to_string(),
        };
        let handle = self.writer.begin_node(&name)?;

        // Template properties, minus those the node's patch writes afresh below.
        for prop in node.props() {
            let prop_name = prop.name()?;
            match (role, prop_name) {
                (Role::Memory, "reg") => {}
                (Role::Chosen, "bootargs" | "linux,initrd-start" | "linux,initrd-end" | "kaslr-seed" | "rng-seed") => {}
                (Role::Gic, "reg") => self.write_gic_reg(prop.raw(), parent_cells)?,
                (_, "phandle") => {
                    let phandle = read_u32(prop.raw()).ok_or(GuestDtbError::Template("bad phandle"))?;
                    // property_phandle also checks that phandles are unique.
                    self.writer.property_phandle(phandle)?;
                }
                _ => self.writer.property(prop_name, prop.raw())?,
            }
        }
        match role {
            Role::Memory => {
                let ram = self.config.ram;
                self.write_reg(&[(ram.start, ram.size)], parent_cells)?;
            }
            Role::Chosen => self.write_chosen()?,
            _ => {}
        }

        for child in node.children() {
            self.copy_node(&child, depth + 1, cells)?;
        }
        match role {
            Role::Cpus => self.write_cpus(cells)?,
            Role::Root => {
                self.write_virtio_nodes(cells)?;
                self.write_doorbell(cells)?;
            }
            _ => {}
        }
        Ok(self.writer.end_node(handle)?)
    }

    /// The GIC's `reg` with the redistributor region sized for the vCPUs.
    fn write_gic_reg(&mut self, raw: &[u8], cells: Cells) -> Result<(), GuestDtbError> {
        let mut regions = decode_reg(raw, cells)?;
        let redistributors = regions
            .get_mut(GIC_REDISTRIBUTOR_REG)
            .ok_or(GuestDtbError::Template("the GIC reg has no redistributor region"))?;
        // vcpus <= MAX_VCPUS, so this cannot overflow.
        redistributors.1 = self.config.vcpus as u64 * GICR_STRIDE;
        self.write_reg(&regions, cells)
    }

    fn write_chosen(&mut self) -> Result<(), GuestDtbError> {
        self.writer.property_string("bootargs", self.config.bootargs)?;
        if let Some(initrd) = self.config.initrd {
            self.writer.property_u64("linux,initrd-start", initrd.start)?;
            self.writer.property_u64("linux,initrd-end", initrd.end())?;
        }
        self.writer.property_u64("kaslr-seed", self.config.seeds.kaslr)?;
        self.writer.property("rng-seed", &self.config.seeds.rng)?;
        Ok(())
    }

    /// One `cpu@N` node per vCPU, in a /cpus node whose children use `cells`.
    fn write_cpus(&mut self, cells: Cells) -> Result<(), GuestDtbError> {
        for index in 0..self.config.vcpus {
            let mpidr = vcpu_mpidr(index);
            let cpu = self.writer.begin_node(&format!("cpu@{mpidr:x}"))?;
            self.writer.property_string("device_type", "cpu")?;
            self.writer.property_string("compatible", "arm,armv8")?;
            self.writer.property("reg", &encode_cells(mpidr, cells.address)?)?;
            self.writer.property_string("enable-method", "psci")?;
            self.writer.end_node(cpu)?;
        }
        Ok(())
    }

    /// One `virtio_mmio@base` node per transport, in the root, whose children use `cells`.
    fn write_virtio_nodes(&mut self, cells: Cells) -> Result<(), GuestDtbError> {
        for node in self.config.virtio_mmio {
            let handle = self.writer.begin_node(&format!("virtio_mmio@{:x}", node.base))?;
            self.writer.property_string("compatible", "virtio,mmio")?;
            self.write_reg(&[(node.base, node.size)], cells)?;
            let interrupt = [GIC_SPI, node.spi, IRQ_EDGE_RISING];
            self.writer.property_array_u32("interrupts", &interrupt)?;
            self.writer.property_null("dma-coherent")?;
            self.writer.end_node(handle)?;
        }
        Ok(())
    }

    /// The hybrid VM's doorbell node, with a 64-bit address and size as its users expect.
    fn write_doorbell(&mut self, cells: Cells) -> Result<(), GuestDtbError> {
        let Some(doorbell) = self.config.doorbell else {
            return Ok(());
        };
        if (cells.address, cells.size) != (2, 2) {
            return Err(GuestDtbError::Template("the root must use 2 address and 2 size cells"));
        }
        let handle = self.writer.begin_node(&format!("hvm-doorbell@{:x}", doorbell.start))?;
        self.writer.property_string("compatible", hvm_ros_lib::abi::DOORBELL_COMPATIBLE)?;
        self.write_reg(&[(doorbell.start, doorbell.size)], cells)?;
        Ok(self.writer.end_node(handle)?)
    }

    /// A `reg` property of (address, size) pairs in `cells`.
    fn write_reg(&mut self, regions: &[(u64, u64)], cells: Cells) -> Result<(), GuestDtbError> {
        let mut value = Vec::new();
        for &(address, size) in regions {
            value.extend(encode_cells(address, cells.address)?);
            value.extend(encode_cells(size, cells.size)?);
        }
        Ok(self.writer.property("reg", &value)?)
    }
}

/// The role of a child of the root.
fn role_of(node: &Node<'_, '_, '_>) -> Result<Role, GuestDtbError> {
    let name = node.name()?;
    let mut role = match name {
        "cpus" => Role::Cpus,
        "chosen" => Role::Chosen,
        _ => Role::Other,
    };
    for prop in node.props() {
        match prop.name()? {
            "device_type" if prop.raw() == b"memory\0" => role = Role::Memory,
            "compatible" if prop.raw().split(|&b| b == 0).any(|c| c == b"arm,gic-v3") => role = Role::Gic,
            _ => {}
        }
    }
    Ok(role)
}

/// The #address-cells / #size-cells `node` sets for its children (spec defaults if unset).
fn cells_of(node: &Node<'_, '_, '_>) -> Result<Cells, GuestDtbError> {
    let mut cells = Cells::default();
    for prop in node.props() {
        let target = match prop.name()? {
            "#address-cells" => &mut cells.address,
            "#size-cells" => &mut cells.size,
            _ => continue,
        };
        *target = read_u32(prop.raw()).ok_or(GuestDtbError::Template("bad #address-cells or #size-cells"))?;
    }
    Ok(cells)
}

/// A one-cell property's value.
fn read_u32(raw: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(raw.try_into().ok()?))
}

/// `value` as `cells` (1 or 2) big-endian 32-bit cells.
fn encode_cells(value: u64, cells: u32) -> Result<Vec<u8>, GuestDtbError> {
    let too_big = GuestDtbError::DoesNotFit(value);
    match cells {
        1 => Ok(u32::try_from(value).map_err(|_| too_big)?.to_be_bytes().to_vec()),
        2 => Ok(value.to_be_bytes().to_vec()),
        _ => Err(too_big),
    }
}

/// The (address, size) pairs of a `reg` using `cells`.
fn decode_reg(raw: &[u8], cells: Cells) -> Result<Vec<(u64, u64)>, GuestDtbError> {
    let bad = GuestDtbError::Template("a reg does not match its #address-cells/#size-cells");
    let (address_len, size_len) = (cells.address as usize * 4, cells.size as usize * 4);
    let entry_len = address_len + size_len;
    if cells.address > 2 || cells.size > 2 || entry_len == 0 || !raw.len().is_multiple_of(entry_len) {
        return Err(bad);
    }
    let number = |bytes: &[u8]| bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    Ok(raw
        .chunks_exact(entry_len)
        .map(|entry| (number(&entry[..address_len]), number(&entry[address_len..])))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::host_dtb::{HostPlatform, PsciConduit, VirtioMmioSlot};
    use crate::guest_map::*;
    use std::string::String;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Props = Vec<(String, Vec<u8>)>;

    /// One vCPU, 512 MiB at RAM_BASE, no bootargs, initrd or virtio.
    fn config(vcpus: usize) -> GuestDtbConfig<'static> {
        let ram = MemRange::new(RAM_BASE, 512 << 20);
        let seeds = GuestSeeds { kaslr: 0x0123_4567_89ab_cdef, rng: core::array::from_fn(|i| i as u8) };
        GuestDtbConfig { vcpus, ram, bootargs: "", initrd: None, virtio_mmio: &[], seeds, doorbell: None }
    }

    fn virtio_slots(n: u32) -> Vec<VirtioMmioNode> {
        let slot = |i: u32| VirtioMmioNode {
            base: VIRTIO_MMIO_BASE + u64::from(i) * VIRTIO_MMIO_STRIDE,
            size: VIRTIO_MMIO_STRIDE,
            spi: VIRTIO_MMIO_FIRST_SPI + i,
        };
        (0..n).map(slot).collect()
    }

    /// Runs `f` on a copy of `dtb` aligned as fdt-rs requires.
    fn with_aligned<R>(dtb: &[u8], f: impl FnOnce(&[u8]) -> R) -> R {
        let mut words = vec![0u64; dtb.len().div_ceil(8)];
        // SAFETY: an owned u64 buffer viewed as at least dtb.len() bytes.
        let bytes = unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), dtb.len()) };
        bytes.copy_from_slice(dtb);
        f(bytes)
    }

    fn platform(dtb: &[u8]) -> HostPlatform {
        with_aligned(dtb, |bytes| HostPlatform::from_dtb(bytes).expect("output parses"))
    }

    /// Every node of `dtb` as (path, properties), parsed back with fdt-rs.
    fn nodes(dtb: &[u8]) -> Vec<(String, Props)> {
        fn collect(node: &Node<'_, '_, '_>, path: String, out: &mut Vec<(String, Props)>) {
            let props = node.props().map(|p| (p.name().unwrap().into(), p.raw().into()));
            out.push((path.clone(), props.collect()));
            for child in node.children() {
                let name = child.name().unwrap();
                collect(&child, format!("{}/{name}", path.trim_end_matches('/')), out);
            }
        }
        with_aligned(dtb, |bytes| {
            // SAFETY: aligned, and exactly the blob.
            let tree = unsafe { DevTree::new(bytes) }.expect("output parses");
            let layout = DevTreeIndex::get_layout(&tree).unwrap();
            let mut buf = vec![0u8; layout.size() + layout.align()];
            let index = DevTreeIndex::new(tree, &mut buf).unwrap();
            let mut out = Vec::new();
            collect(&index.root(), "/".into(), &mut out);
            out
        })
    }

    fn prop(dtb: &[u8], path: &str, name: &str) -> Option<Vec<u8>> {
        let (_, props) = nodes(dtb).into_iter().find(|(p, _)| p == path)?;
        props.into_iter().find(|(n, _)| n == name).map(|(_, value)| value)
    }

    fn cells(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// dtc's one complaint about its own decompiled output: a .dts made from a DTB has literal
    /// numbers where the source had `<&label>`, and dtc warns that it cannot tell those cells
    /// are phandles (QEMU's own DTB does the same). dtc still resolves each number to a node and
    /// reports a dangling one ("Could not get phandle node"), so only this message is forgiven.
    fn literal_phandle_warning(line: &str) -> bool {
        line.contains("Warning (clocks_property)") && line.ends_with("is not a phandle reference")
    }

    /// Runs `dtc -I <from> -O <to>` on `input`; fails on an error or a warning not `forgiven`.
    fn dtc(from: &str, to: &str, input: &[u8], forgiven: fn(&str) -> bool) -> Vec<u8> {
        static TEMP_FILES: AtomicUsize = AtomicUsize::new(0);
        let n = TEMP_FILES.fetch_add(1, Ordering::Relaxed);
        let base = std::env::temp_dir().join(format!("guest-dtb-test-{}-{n}", std::process::id()));
        let (input_path, output_path) = (base.with_extension(from), base.with_extension(to));
        std::fs::write(&input_path, input).unwrap();
        let result = std::process::Command::new("dtc")
            .args(["-I", from, "-O", to, "-o"])
            .args([&output_path, &input_path])
            .output()
            .unwrap_or_else(|e| panic!("cannot run dtc ({e}): install device-tree-compiler"));
        let output = std::fs::read(&output_path);
        let _ = (std::fs::remove_file(input_path), std::fs::remove_file(output_path));
        let stderr = String::from_utf8_lossy(&result.stderr);
        let clean = stderr.lines().all(forgiven);
        assert!(result.status.success() && clean, "dtc -I {from} -O {to}: {stderr}");
        output.unwrap()
    }

    #[test]
    fn one_vcpu_without_initrd() {
        let dtb = build(&GuestDtbConfig { bootargs: "console=ttyAMA0", ..config(1) }).unwrap();
        let platform = platform(&dtb);
        assert_eq!(platform.memory, vec![config(1).ram]);
        assert_eq!(platform.cpus.len(), 1);
        assert_eq!(platform.cpus[0].mpidr, vcpu_mpidr(0));
        let gic = platform.gic.unwrap();
        assert_eq!(gic.distributor, MemRange::new(GICD_BASE, GICD_SIZE));
        assert_eq!(gic.redistributors, MemRange::new(GICR_BASE, GICR_STRIDE));
        assert_eq!(platform.uart, Some(MemRange::new(UART_BASE, UART_SIZE)));
        assert_eq!(platform.psci, Some(PsciConduit::Hvc));
        assert_eq!(platform.bootargs, "console=ttyAMA0");
        assert!(platform.virtio_mmio.is_empty());
        assert_eq!(prop(&dtb, "/chosen", "linux,initrd-start"), None);
        assert_eq!(prop(&dtb, "/cpus/cpu@0", "enable-method").unwrap(), b"psci\0");
        assert_eq!(prop(&dtb, "/cpus/cpu@0", "reg").unwrap(), cells(&[0]));
        assert_eq!(prop(&dtb, "/chosen", "stdout-path").unwrap(), b"/pl011@9000000\0");
    }

    #[test]
    fn chosen_carries_the_boot_seeds() {
        let config = config(1);
        let dtb = build(&config).unwrap();
        assert_eq!(prop(&dtb, "/chosen", "kaslr-seed").unwrap(), config.seeds.kaslr.to_be_bytes());
        assert_eq!(prop(&dtb, "/chosen", "rng-seed").unwrap(), config.seeds.rng);
        let platform = platform(&dtb);
        assert_eq!(platform.kaslr_seed, Some(config.seeds.kaslr), "the host parser reads what we write");
        assert_eq!(platform.rng_seed, config.seeds.rng);
    }

    #[test]
    fn eight_vcpus_with_initrd_and_virtio_and_ram_elsewhere() {
        let ram = MemRange::new(0x8000_0000, 1 << 30);
        let initrd = Some(MemRange::new(0x8800_0000, 0x12_3456));
        let virtio = virtio_slots(2);
        let config = GuestDtbConfig { ram, initrd, virtio_mmio: &virtio, ..config(8) };
        let dtb = build(&config).unwrap();
        let platform = platform(&dtb);
        assert_eq!(platform.memory, vec![ram]);
        assert_eq!(prop(&dtb, "/memory@80000000", "reg").unwrap(), cells(&[0, 1 << 31, 0, 1 << 30]));
        let mpidrs: Vec<u64> = platform.cpus.iter().map(|c| c.mpidr).collect();
        assert_eq!(mpidrs, (0..8).map(vcpu_mpidr).collect::<Vec<_>>());
        let redistributors = MemRange::new(GICR_BASE, 8 * GICR_STRIDE);
        assert_eq!(platform.gic.unwrap().redistributors, redistributors);
        let slot = |v: &VirtioMmioNode| VirtioMmioSlot { range: MemRange::new(v.base, v.size), spi: v.spi };
        assert_eq!(platform.virtio_mmio, virtio.iter().map(slot).collect::<Vec<_>>());
        let path = format!("/virtio_mmio@{:x}", virtio[1].base);
        assert_eq!(prop(&dtb, &path, "interrupts").unwrap(), cells(&[0, virtio[1].spi, 1]));
        assert_eq!(prop(&dtb, &path, "dma-coherent").unwrap(), b"");
        let initrd_start = prop(&dtb, "/chosen", "linux,initrd-start").unwrap();
        assert_eq!(initrd_start, 0x8800_0000u64.to_be_bytes());
        let initrd_end = prop(&dtb, "/chosen", "linux,initrd-end").unwrap();
        assert_eq!(initrd_end, 0x8812_3456u64.to_be_bytes());
    }

    #[test]
    fn a_ros_dtb_lists_the_doorbell_with_64_bit_cells() {
        let doorbell = MemRange::new(0x0b00_0000, 0x1000);
        let dtb = build(&GuestDtbConfig { doorbell: Some(doorbell), ..config(3) }).unwrap();
        let path = "/hvm-doorbell@b000000";
        assert_eq!(prop(&dtb, path, "compatible").unwrap(), b"hvm-ros,doorbell\0");
        let reg = [0x0b00_0000u64.to_be_bytes(), 0x1000u64.to_be_bytes()].concat();
        assert_eq!(prop(&dtb, path, "reg").unwrap(), reg);
        assert_eq!(platform(&dtb).cpus.len(), 3);
        let dts = dtc("dtb", "dts", &dtb, literal_phandle_warning);
        assert!(String::from_utf8_lossy(&dts).contains("hvm-ros,doorbell"));
        assert_eq!(prop(&build(&config(3)).unwrap(), path, "reg"), None, "no doorbell outside a hybrid VM");
    }

    #[test]
    fn bootargs_with_spaces_and_quotes_survive() {
        let bootargs = r#"console=ttyAMA0 init=/bin/sh -- -c "echo 'hi there'" x=\"#;
        let dtb = build(&GuestDtbConfig { bootargs, ..config(2) }).unwrap();
        assert_eq!(platform(&dtb).bootargs, bootargs);
        let dts = dtc("dtb", "dts", &dtb, literal_phandle_warning);
        let recompiled = dtc("dts", "dtb", &dts, literal_phandle_warning);
        let expected = format!("{bootargs}\0").into_bytes();
        assert_eq!(prop(&recompiled, "/chosen", "bootargs"), Some(expected));
    }

    #[test]
    fn round_trips_through_dtc_cleanly() {
        let virtio = virtio_slots(4);
        let initrd = Some(MemRange::new(0x4400_0000, 0x1000));
        let full = GuestDtbConfig { initrd, virtio_mmio: &virtio, bootargs: "quiet", ..config(8) };
        for config in [config(1), full] {
            let dtb = build(&config).unwrap();
            let dts = dtc("dtb", "dts", &dtb, literal_phandle_warning);
            let recompiled = dtc("dts", "dtb", &dts, literal_phandle_warning);
            assert_eq!(nodes(&recompiled), nodes(&dtb));
        }
    }

    #[test]
    fn template_source_compiles_without_any_warning() {
        let dts = include_bytes!("../../../dtb/guest-virt.dts");
        assert_eq!(dtc("dts", "dtb", dts, |_| false), TEMPLATE.0);
    }

    #[test]
    fn template_matches_the_guest_map_and_keeps_phandles() {
        let dtb = build(&config(1)).unwrap();
        let ppi = |intid: u32| [1, intid - 16, 4];
        let timers = [PPI_SECURE_PHYS_TIMER, PPI_NONSECURE_PHYS_TIMER, PPI_VIRT_TIMER, PPI_HYP_PHYS_TIMER];
        let timer_cells: Vec<u32> = timers.into_iter().flat_map(ppi).collect();
        assert_eq!(prop(&dtb, "/timer", "interrupts").unwrap(), cells(&timer_cells));
        let maintenance = cells(&ppi(PPI_GIC_MAINTENANCE));
        assert_eq!(prop(&dtb, "/intc@8000000", "interrupts").unwrap(), maintenance);
        let uart = cells(&[0, UART_SPI, 4]);
        assert_eq!(prop(&dtb, "/pl011@9000000", "interrupts").unwrap(), uart);
        let gic = prop(&dtb, "/intc@8000000", "phandle").unwrap();
        let clock = prop(&dtb, "/apb-pclk", "phandle").unwrap();
        assert_ne!(gic, clock);
        assert_eq!(prop(&dtb, "/", "interrupt-parent").unwrap(), gic);
        let clocks = [clock.clone(), clock].concat();
        assert_eq!(prop(&dtb, "/pl011@9000000", "clocks").unwrap(), clocks);
        assert!(prop(&dtb, "/timer", "always-on").is_some());
    }

    #[test]
    fn bad_configs_are_refused() {
        let ok = config(1);
        let too_many = MAX_VCPUS + 1;
        for vcpus in [0, too_many] {
            let config = GuestDtbConfig { vcpus, ..ok };
            assert_eq!(build(&config), Err(GuestDtbError::VcpuCount(vcpus)));
        }
        let empty = MemRange::new(RAM_BASE, 0);
        let no_ram = GuestDtbConfig { ram: empty, ..ok };
        assert_eq!(build(&no_ram), Err(GuestDtbError::EmptyRange(empty)));
        let no_initrd = GuestDtbConfig { initrd: Some(empty), ..ok };
        assert_eq!(build(&no_initrd), Err(GuestDtbError::EmptyRange(empty)));
        let nul = GuestDtbConfig { bootargs: "a\0b", ..ok };
        assert_eq!(build(&nul), Err(GuestDtbError::Write(vm_fdt::Error::InvalidString)));
        let mut virtio = virtio_slots(2);
        virtio[1].spi = NUM_SPIS;
        let bad_spi = GuestDtbConfig { virtio_mmio: &virtio, ..ok };
        assert_eq!(build(&bad_spi), Err(GuestDtbError::BadVirtioNode(virtio[1])));
        let mut virtio = virtio_slots(2);
        virtio[1].base = virtio[0].base + 0x100;
        let overlap = GuestDtbConfig { virtio_mmio: &virtio, ..ok };
        assert_eq!(build(&overlap), Err(GuestDtbError::BadVirtioNode(virtio[1])));
    }

    #[test]
    fn cells_are_encoded_and_checked() {
        assert_eq!(encode_cells(0x1_0000_0002, 2).unwrap(), cells(&[1, 2]));
        assert_eq!(encode_cells(7, 1).unwrap(), cells(&[7]));
        let big = 0x1_0000_0000;
        assert_eq!(encode_cells(big, 1), Err(GuestDtbError::DoesNotFit(big)));
        assert_eq!(encode_cells(1, 3), Err(GuestDtbError::DoesNotFit(1)));
        assert_eq!(encode_cells(0, 0), Err(GuestDtbError::DoesNotFit(0)));
        let two_and_two = Cells { address: 2, size: 2 };
        assert!(decode_reg(&cells(&[0, 1, 2]), two_and_two).is_err());
        let two_and_one = Cells { address: 2, size: 1 };
        assert_eq!(decode_reg(&cells(&[0, 1, 2]), two_and_one).unwrap(), vec![(1, 2)]);
    }
}
