//! Just enough of the flattened device tree (devicetree specification, chapter 5) to learn the
//! PSCI conduit (`/psci` `method`), the CPUs (`reg` of the `/cpus/cpu@N` nodes), what to run
//! (`mode=` in `/chosen` `bootargs`) and the virtio-mmio slots (`reg` of the root's children
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
/// Bytes in a cell.
const CELL: usize = 4;
/// `#address-cells` when a node does not say (devicetree specification, 2.3.5).
const DEFAULT_ADDRESS_CELLS: usize = 2;

/// Node names remembered along the current path: the root, /cpus, /cpus/cpu@N and one more.
const MAX_DEPTH: usize = 4;
/// Nodes open while reading the root's own properties, and its children's.
const ROOT: usize = 1;
const TOP_LEVEL: usize = 2;
/// The CPUs we keep track of.
pub const MAX_CPUS: usize = 8;
/// The virtio-mmio slots we keep track of (QEMU virt has 32).
pub const MAX_VIRTIO_SLOTS: usize = 64;
/// The compatible string of a virtio-mmio transport.
const VIRTIO_MMIO_COMPATIBLE: &[u8] = b"virtio,mmio";
/// The bootargs option that selects what the kernel runs.
const MODE_OPTION: &[u8] = b"mode=";

/// How PSCI is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conduit {
    Hvc,
    Smc,
}

/// What the kernel runs: `mode=bench` (the default) or `mode=conformance`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Benchmark,
    Conformance,
    /// A `mode=` value we do not know.
    Unknown,
}

/// What the kernel needs from the device tree.
#[derive(Clone, Copy, Debug)]
pub struct Platform {
    pub conduit: Option<Conduit>,
    /// MPIDR values (`reg`) of the first `cpu_count` CPUs.
    pub cpus: [u64; MAX_CPUS],
    pub cpu_count: usize,
    pub mode: Mode,
    /// Base addresses of the first `virtio_count` virtio-mmio slots.
    pub virtio_slots: [u64; MAX_VIRTIO_SLOTS],
    pub virtio_count: usize,
    /// virtio-mmio nodes in the tree (more than `virtio_count` if they did not all fit).
    pub virtio_listed: usize,
}

/// The root's child being read: is it a virtio-mmio transport, and its first `reg` address.
#[derive(Clone, Copy, Default)]
struct TopLevelNode {
    virtio: bool,
    address: Option<u64>,
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
        mode: Mode::Benchmark,
        virtio_slots: [0; MAX_VIRTIO_SLOTS],
        virtio_count: 0,
        virtio_listed: 0,
    };
    // path[d] = name of the node at depth d (the root, "", is depth 0).
    let mut path: [&[u8]; MAX_DEPTH] = [b""; MAX_DEPTH];
    let mut depth = 0usize; // nodes open
    let mut root_address_cells = DEFAULT_ADDRESS_CELLS;
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
                    node = TopLevelNode::default();
                }
            }
            FDT_END_NODE => {
                if depth == TOP_LEVEL && node.virtio {
                    add_virtio_slot(&mut platform, node.address);
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
                    (ROOT, b"#address-cells") => root_address_cells = be32(value, 0)? as usize,
                    (TOP_LEVEL, b"compatible") => node.virtio |= has_string(value, VIRTIO_MMIO_COMPATIBLE),
                    (TOP_LEVEL, b"reg") => node.address = be_cells(value, root_address_cells),
                    _ => property(&mut platform, &path[..depth.min(path.len())], name, value),
                }
            }
            FDT_NOP => {}
            FDT_END => return Some(platform),
            _ => return None,
        }
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
            // One or two cells, as /cpus #address-cells says.
            let reg = value.iter().fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
            platform.cpus[platform.cpu_count] = reg;
            platform.cpu_count += 1;
        }
        ([_, chosen], b"bootargs") if *chosen == b"chosen" => {
            platform.mode = cstr(value).map_or(Mode::Benchmark, mode_from_bootargs);
        }
        _ => {}
    }
}

/// The mode `bootargs` asks for (the last `mode=` wins, as on Linux's command line).
fn mode_from_bootargs(bootargs: &[u8]) -> Mode {
    let chosen = bootargs.split(u8::is_ascii_whitespace).filter_map(|word| word.strip_prefix(MODE_OPTION)).next_back();
    match chosen {
        None | Some(b"bench") => Mode::Benchmark,
        Some(b"conformance") => Mode::Conformance,
        Some(_) => Mode::Unknown,
    }
}

/// Records a virtio-mmio node; one without a usable `reg` is recorded at address 0, which the
/// check then reports.
fn add_virtio_slot(platform: &mut Platform, address: Option<u64>) {
    platform.virtio_listed += 1;
    if let Some(slot) = platform.virtio_slots.get_mut(platform.virtio_count) {
        *slot = address.unwrap_or(0);
        platform.virtio_count += 1;
    }
}

/// Whether the string list `value` (NUL-terminated strings back to back) holds `wanted`.
fn has_string(value: &[u8], wanted: &[u8]) -> bool {
    value.split(|&byte| byte == 0).any(|string| string == wanted)
}

/// The number in the first `cells` big-endian cells of `value` (at most two).
fn be_cells(value: &[u8], cells: usize) -> Option<u64> {
    let bytes = value.get(..cells.checked_mul(CELL)?)?;
    (cells <= 2).then(|| bytes.iter().fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte)))
}

/// A node name without its unit address ("cpu@1" -> "cpu").
fn base_name(name: &[u8]) -> &[u8] {
    name.split(|&byte| byte == b'@').next().unwrap_or(name)
}

/// The NUL-terminated string at the start of `bytes`, without the NUL.
fn cstr(bytes: &[u8]) -> Option<&[u8]> {
    bytes.iter().position(|&byte| byte == 0).map(|end| &bytes[..end])
}

fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn align4(value: usize) -> usize {
    (value + 3) & !3
}
