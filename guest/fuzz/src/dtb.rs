//! Just enough of the flattened device tree (devicetree specification, chapter 5): the PSCI
//! conduit (`/psci` `method`), the CPUs (`reg` of `/cpus/cpu@N`), the RAM (`/memory` `reg`), the
//! command line (`/chosen` `bootargs`) and the virtio-mmio slots (`reg` of the root's children
//! compatible with "virtio,mmio").

/// FDT header fields (big-endian u32s) and the structure block's tokens.
const FDT_MAGIC: u32 = 0xd00d_feed;
const HEADER_TOTALSIZE: usize = 4;
const HEADER_OFF_DT_STRUCT: usize = 8;
const HEADER_OFF_DT_STRINGS: usize = 12;
const HEADER_SIZE_DT_STRINGS: usize = 32;
const HEADER_SIZE_DT_STRUCT: usize = 36;
const HEADER_LEN: usize = 40;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// No sane device tree is larger (the boot protocol's limit is 2 MiB).
const MAX_SIZE: usize = 2 << 20;
const CELL: usize = 4;
/// `#address-cells` / `#size-cells` when the root does not say (devicetree spec, 2.3.5).
const DEFAULT_ADDRESS_CELLS: usize = 2;
const DEFAULT_SIZE_CELLS: usize = 1;
/// Node names remembered along the current path.
const MAX_DEPTH: usize = 4;
/// Depths of the root's own properties, and of its children's.
const ROOT: usize = 1;
const TOP_LEVEL: usize = 2;
/// The CPUs, virtio-mmio slots and command-line bytes we keep.
pub const MAX_CPUS: usize = 8;
pub const MAX_VIRTIO_SLOTS: usize = 64;
pub const MAX_BOOTARGS: usize = 512;
const VIRTIO_MMIO_COMPATIBLE: &[u8] = b"virtio,mmio";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
}

/// What the fuzzer needs from the device tree.
#[derive(Clone, Copy)]
pub struct Platform {
    pub conduit: Option<Conduit>,
    /// MPIDR values (`reg`) of the first `cpu_count` CPUs.
    pub cpus: [u64; MAX_CPUS],
    pub cpu_count: usize,
    /// The first memory node's first range.
    pub ram: Option<(u64, u64)>,
    pub bootargs: [u8; MAX_BOOTARGS],
    pub bootargs_len: usize,
    pub virtio_slots: [u64; MAX_VIRTIO_SLOTS],
    pub virtio_count: usize,
}

impl Platform {
    pub fn bootargs(&self) -> &[u8] {
        &self.bootargs[..self.bootargs_len]
    }
}

/// The root's child being read.
#[derive(Clone, Copy, Default)]
struct TopLevelNode {
    virtio: bool,
    memory: bool,
    reg: Option<(u64, u64)>,
}

/// Reads the device tree at `address`.
///
/// # Safety
/// `address` must be the DTB address the boot protocol handed over: readable memory that
/// nothing writes while this runs.
pub unsafe fn read(address: usize) -> Result<Platform, &'static str> {
    if address == 0 || !address.is_multiple_of(8) {
        return Err("no DTB address in x0 (or a misaligned one)");
    }
    // SAFETY: the caller guarantees the header is readable.
    let header = unsafe { core::slice::from_raw_parts(address as *const u8, HEADER_LEN) };
    if be32(header, 0) != Some(FDT_MAGIC) {
        return Err("x0 does not point to a DTB (bad magic)");
    }
    let total = be32(header, HEADER_TOTALSIZE).unwrap_or(0) as usize;
    if !(HEADER_LEN..=MAX_SIZE).contains(&total) {
        return Err("the DTB's totalsize is implausible");
    }
    // SAFETY: the caller guarantees the DTB, totalsize bytes long, is readable.
    let blob = unsafe { core::slice::from_raw_parts(address as *const u8, total) };
    let block = |offset, size| {
        let start = be32(header, offset)? as usize;
        blob.get(start..start.checked_add(be32(header, size)? as usize)?)
    };
    let structure = block(HEADER_OFF_DT_STRUCT, HEADER_SIZE_DT_STRUCT).ok_or("bad structure block")?;
    let strings = block(HEADER_OFF_DT_STRINGS, HEADER_SIZE_DT_STRINGS).ok_or("bad strings block")?;
    scan(structure, strings).ok_or("malformed structure block")
}

/// Walks the structure block, remembering the node names along the current path.
fn scan(structure: &[u8], strings: &[u8]) -> Option<Platform> {
    let mut platform = Platform {
        conduit: None,
        cpus: [0; MAX_CPUS],
        cpu_count: 0,
        ram: None,
        bootargs: [0; MAX_BOOTARGS],
        bootargs_len: 0,
        virtio_slots: [0; MAX_VIRTIO_SLOTS],
        virtio_count: 0,
    };
    let mut path: [&[u8]; MAX_DEPTH] = [b""; MAX_DEPTH];
    let mut depth = 0usize;
    let (mut address_cells, mut size_cells) = (DEFAULT_ADDRESS_CELLS, DEFAULT_SIZE_CELLS);
    let mut node = TopLevelNode::default();
    let mut at = 0;
    loop {
        let token = be32(structure, at)?;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                let name = cstr(structure.get(at..)?)?;
                at = align4(at + name.len() + 1);
                if let Some(slot) = path.get_mut(depth) {
                    *slot = name;
                }
                depth += 1;
                if depth == TOP_LEVEL {
                    node = TopLevelNode { memory: base_name(name) == b"memory", ..TopLevelNode::default() };
                }
            }
            FDT_END_NODE => {
                if depth == TOP_LEVEL {
                    end_top_level(&mut platform, node);
                }
                depth = depth.checked_sub(1)?;
            }
            FDT_PROP => {
                let len = be32(structure, at)? as usize;
                let name_offset = be32(structure, at + 4)? as usize;
                let value = structure.get(at + 8..at + 8 + len)?;
                at = align4(at + 8 + len);
                let name = cstr(strings.get(name_offset..)?)?;
                match (depth, name) {
                    (ROOT, b"#address-cells") => address_cells = be32(value, 0)? as usize,
                    (ROOT, b"#size-cells") => size_cells = be32(value, 0)? as usize,
                    (TOP_LEVEL, b"compatible") => node.virtio |= has_string(value, VIRTIO_MMIO_COMPATIBLE),
                    (TOP_LEVEL, b"device_type") => node.memory |= cstr(value) == Some(b"memory"),
                    (TOP_LEVEL, b"reg") => {
                        let address = be_cells(value, address_cells);
                        let size = value.get(address_cells * CELL..).and_then(|rest| be_cells(rest, size_cells));
                        node.reg = address.map(|a| (a, size.unwrap_or(0)));
                        property(&mut platform, &path[..depth.min(MAX_DEPTH)], name, value);
                    }
                    _ => property(&mut platform, &path[..depth.min(MAX_DEPTH)], name, value),
                }
            }
            FDT_NOP => {}
            FDT_END => return Some(platform),
            _ => return None,
        }
    }
}

fn end_top_level(platform: &mut Platform, node: TopLevelNode) {
    if node.virtio {
        if let (Some(slot), Some((address, _))) = (platform.virtio_slots.get_mut(platform.virtio_count), node.reg) {
            *slot = address;
            platform.virtio_count += 1;
        }
    }
    if node.memory && platform.ram.is_none() {
        platform.ram = node.reg.filter(|&(_, size)| size > 0);
    }
}

/// Records one property of the node at `path` (root first).
fn property(platform: &mut Platform, path: &[&[u8]], name: &[u8], value: &[u8]) {
    match (path, name) {
        ([_, node], b"method") if base_name(node) == b"psci" => {
            platform.conduit = match cstr(value) {
                Some(b"hvc") => Some(Conduit::Hvc),
                Some(b"smc") => Some(Conduit::Smc),
                _ => None,
            };
        }
        ([_, cpus, cpu], b"reg") if *cpus == b"cpus" && base_name(cpu) == b"cpu" && platform.cpu_count < MAX_CPUS => {
            let reg = value.iter().fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
            platform.cpus[platform.cpu_count] = reg;
            platform.cpu_count += 1;
        }
        ([_, chosen], b"bootargs") if *chosen == b"chosen" => {
            let text = cstr(value).unwrap_or(value);
            let len = text.len().min(MAX_BOOTARGS);
            platform.bootargs[..len].copy_from_slice(&text[..len]);
            platform.bootargs_len = len;
        }
        _ => {}
    }
}

fn has_string(value: &[u8], wanted: &[u8]) -> bool {
    value.split(|&byte| byte == 0).any(|string| string == wanted)
}

/// The number in the first `cells` big-endian cells of `value` (at most two).
fn be_cells(value: &[u8], cells: usize) -> Option<u64> {
    let bytes = value.get(..cells.checked_mul(CELL)?)?;
    (cells <= 2).then(|| bytes.iter().fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte)))
}

fn base_name(name: &[u8]) -> &[u8] {
    name.split(|&byte| byte == b'@').next().unwrap_or(name)
}

fn cstr(bytes: &[u8]) -> Option<&[u8]> {
    bytes.iter().position(|&byte| byte == 0).map(|end| &bytes[..end])
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn align4(value: usize) -> usize {
    (value + 3) & !3
}
