//! The HVM API of a ROS (Linux guest) process: 0xf00d hypercalls through the doorbell page.
//!
//! EL0 cannot execute `hvc`, so the hypervisor lists a **doorbell page** in the ROS device tree: a
//! node with `compatible = "hvm-ros,doorbell"` ([`DOORBELL_COMPATIBLE`]) whose `reg` is a
//! guest-physical address with no stage-2 mapping. [`Hvm::open`] finds that node under
//! `/proc/device-tree`, maps the page from `/dev/mem` (so only root can drive the HVM, on
//! purpose), and every call is one plain `str xzr, [xN]` to its first word with the call in
//! x0..x7: x0 = [`HVM_HCALL_ID`], x1 = the sub-operation, x2..x7 = its arguments. The store traps
//! to EL2 with a valid syndrome; the hypervisor answers like an SMCCC call (x0 = [`HVM_OK`] or an
//! [`HvmError`] code, x1..x3 = outputs, x4..x7 possibly clobbered) and steps past the store.
//!
//! ```no_run
//! let hvm = hvm_ros_lib::ros::Hvm::open()?;
//! let reply = hvm.null()?;
//! println!("{} ns since HRT boot", reply.since_hrt_boot_ns);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The device-tree functions ([`find_doorbell`], [`parse_reg`], ...) take a directory or bytes, so
//! they work on any copy of a device tree (the tests build fake ones in a temporary directory).
//!
//! Invoking the HRT ([`invoke`], [`sync`]): buffers the HRT reads and writes are pinned pages
//! ([`pinned`]); a call is accepted only when the transaction state is Idle and the HRT ready,
//! and is over when the state is Idle again.
//!
//! ```no_run
//! use hvm_ros_lib::abi::invoke::function;
//! let hvm = hvm_ros_lib::ros::Hvm::open()?;
//! println!("{}", hvm.state()?);
//! assert_eq!(hvm.invoke(function::ADD, [2, 3, 0, 0, 0, 0])?, 5);
//! let per_core = hvm.invoke_parallel(function::ADD, [2, 3, 0, 0, 0, 0])?;
//! let mut session = hvm.synchronize()?;
//! assert_eq!(session.call(function::ADD, [2, 3, 0, 0, 0, 0])?, 5);
//! session.desynchronize()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Running the process's own code in the HRT ([`merged`]): merge the address space, then
//! `CALL_ROS` a function of this process; it runs at HRT EL0 while the library services its
//! system calls and page faults ([`events`]), and an exception in it fails the call with the
//! exception's syndrome.
//!
//! ```no_run
//! extern "C" fn add(a: u64, b: u64, _: u64, _: u64) -> u64 {
//!     a + b
//! }
//! let hvm = hvm_ros_lib::ros::Hvm::open()?;
//! hvm.merge()?;
//! hvm.mirror_tls()?;
//! // SAFETY: `add` touches nothing but its arguments.
//! assert_eq!(unsafe { hvm.call_ros(add, [2, 3, 0, 0]) }?, 5);
//! hvm.unmirror_tls()?;
//! hvm.unmerge()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod counter;
pub mod events;
pub mod invoke;
pub mod merged;
pub mod pinned;
pub mod signal;
pub mod sync;

#[cfg(all(test, not(target_arch = "aarch64")))]
pub(crate) mod sim;

/// What answers the calls of an `Hvm` in host tests (a simulated hypervisor and HRT).
#[cfg(all(test, not(target_arch = "aarch64")))]
type TestBackend = std::sync::Arc<dyn Fn([u64; 8]) -> [u64; 4] + Send + Sync>;

pub use crate::status::{CallError, HvmStatus};
pub use events::{EventCounts, RosException};
pub use invoke::{InvokeError, StateAndEvent};
pub use merged::{RosFn, RosStack};
pub use pinned::{PinnedInvocation, PinnedPage, PinnedString};
pub use sync::SyncSession;

// The crate is `no_std`; this module is ordinary std code.
use std::prelude::rust_2021::*;

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::{self, NonNull};
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Duration;

use crate::abi::{HvmError, SubOp, DOORBELL_COMPATIBLE, HVM_HCALL_ID, HVM_OK};

/// Where Linux shows the flattened device tree it booted with (a directory per node, a file per
/// property holding the property's raw bytes).
pub const DEVICE_TREE: &str = "/proc/device-tree";
/// Physical memory, the doorbell page's way into the process.
pub const DEV_MEM: &str = "/dev/mem";
/// `#address-cells` / `#size-cells` when the doorbell's parent does not say (the protocol's).
const DEFAULT_CELLS: u32 = 2;
/// Deeper node paths are not searched (a real tree is a few levels deep; this bounds a loop).
const MAX_DEPTH: usize = 32;

/// Why [`Hvm::open`] failed.
#[derive(Debug)]
pub enum HvmOpenError {
    /// No (enabled) `hvm-ros,doorbell` node in the device tree, or no device tree at all: this
    /// Linux does not run as the ROS of an HVM.
    NotAnHvm,
    /// Opening `/dev/mem` was refused (EACCES or EPERM): the caller must run as root.
    NotPermitted,
    /// Reading the device tree or opening `/dev/mem` failed otherwise (the message names the path).
    Io(io::Error),
    /// The doorbell node exists but its `reg` (or its parent's `#address-cells` /
    /// `#size-cells`) is unusable; says what is wrong.
    BadDeviceTree(String),
    /// `/dev/mem` opened but the kernel would not map the doorbell page (e.g. a kernel that
    /// restricts `/dev/mem` to fewer ranges).
    MapFailed { addr: u64, source: io::Error },
    /// A doorbell exists but this program was not built for aarch64, the only architecture
    /// whose store the hypervisor decodes.
    UnsupportedArch,
}

impl fmt::Display for HvmOpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAnHvm => write!(f, "not an HVM (no {DOORBELL_COMPATIBLE} node in {DEVICE_TREE})"),
            Self::NotPermitted => write!(f, "permission denied opening {DEV_MEM}: run as root"),
            Self::Io(e) => write!(f, "I/O error: {e}"),
            Self::BadDeviceTree(why) => write!(f, "bad {DOORBELL_COMPATIBLE} device-tree node: {why}"),
            Self::MapFailed { addr, source } => {
                write!(f, "cannot map the doorbell page at {addr:#x} from {DEV_MEM}: {source}")
            }
            Self::UnsupportedArch => write!(
                f,
                "the doorbell can only be rung from aarch64 (this program is built for {})",
                std::env::consts::ARCH
            ),
        }
    }
}

impl std::error::Error for HvmOpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) | Self::MapFailed { source: e, .. } => Some(e),
            _ => None,
        }
    }
}

/// `e` with the path it concerns in its message.
fn io_at(path: &Path, e: io::Error) -> HvmOpenError {
    HvmOpenError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The doorbell node found in a device tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Doorbell {
    /// The node's directory (e.g. `/proc/device-tree/hvm-doorbell@...`).
    pub node: PathBuf,
    /// Guest-physical address of the doorbell (its first word is the one to store to).
    pub addr: u64,
    /// Size of the doorbell region in bytes.
    pub size: u64,
}

/// The strings of a `compatible` (or any string-list) property: NUL-separated, empty ones skipped.
pub fn compatible_strings(prop: &[u8]) -> impl Iterator<Item = &[u8]> {
    prop.split(|&b| b == 0).filter(|s| !s.is_empty())
}

/// Whether a `compatible` property lists `compatible`.
pub fn is_compatible(prop: &[u8], compatible: &str) -> bool {
    compatible_strings(prop).any(|s| s == compatible.as_bytes())
}

/// A one-cell property such as `#address-cells`: exactly one big-endian u32.
pub fn parse_u32(prop: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(prop.try_into().ok()?))
}

/// The first (address, size) pair of a `reg` property whose parent has `address_cells` /
/// `size_cells` (each 1 or 2). `None` when the cell counts are unsupported or the property is not
/// a whole, non-empty number of pairs.
pub fn parse_reg(reg: &[u8], address_cells: u32, size_cells: u32) -> Option<(u64, u64)> {
    if !(1..=2).contains(&address_cells) || !(1..=2).contains(&size_cells) {
        return None;
    }
    let (ac, sc) = (address_cells as usize, size_cells as usize);
    let pair = (ac + sc) * 4;
    if reg.is_empty() || !reg.len().is_multiple_of(pair) {
        return None;
    }
    let mut cells = reg[..pair].chunks_exact(4).map(|c| u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]])));
    let mut number = |n: usize| (0..n).fold(0u64, |acc, _| (acc << 32) | cells.next().unwrap_or(0));
    let addr = number(ac);
    let size = number(sc);
    Some((addr, size))
}

/// Reads a property file; `None` if the node has no such property.
fn read_property(path: &Path) -> Result<Option<Vec<u8>>, HvmOpenError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_at(path, e)),
    }
}

/// Whether `node` is an enabled doorbell node.
fn is_doorbell(node: &Path) -> Result<bool, HvmOpenError> {
    let Some(compatible) = read_property(&node.join("compatible"))? else {
        return Ok(false);
    };
    if !is_compatible(&compatible, DOORBELL_COMPATIBLE) {
        return Ok(false);
    }
    // A node without `status` is enabled; otherwise only "okay" (or the old "ok") is.
    Ok(match read_property(&node.join("status"))? {
        None => true,
        Some(status) => matches!(compatible_strings(&status).next(), Some(b"okay" | b"ok")),
    })
}

/// Depth-first search for the first doorbell node at or below `node`, children in name order.
fn search(node: &Path, depth: usize) -> Result<Option<PathBuf>, HvmOpenError> {
    if is_doorbell(node)? {
        return Ok(Some(node.to_path_buf()));
    }
    if depth == MAX_DEPTH {
        return Ok(None);
    }
    let mut children = Vec::new();
    for entry in fs::read_dir(node).map_err(|e| io_at(node, e))? {
        let entry = entry.map_err(|e| io_at(node, e))?;
        // Nodes are directories; properties are files. Symbolic links are not followed.
        if entry.file_type().map_err(|e| io_at(&entry.path(), e))?.is_dir() {
            children.push(entry.path());
        }
    }
    children.sort();
    for child in children {
        if let Some(found) = search(&child, depth + 1)? {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

/// `#address-cells` or `#size-cells` of the node `parent` ([`DEFAULT_CELLS`] if absent).
fn cells(parent: &Path, name: &str) -> Result<u32, HvmOpenError> {
    let path = parent.join(name);
    match read_property(&path)? {
        None => Ok(DEFAULT_CELLS),
        Some(prop) => parse_u32(&prop).ok_or_else(|| {
            HvmOpenError::BadDeviceTree(format!("{} is {} bytes, not one cell", path.display(), prop.len()))
        }),
    }
}

/// Finds the doorbell in the device tree whose root node is the directory `dt_root` (normally
/// [`DEVICE_TREE`]). A missing `dt_root` means [`HvmOpenError::NotAnHvm`], as does a tree
/// without an enabled doorbell node; the first one in depth-first name order is used.
pub fn find_doorbell(dt_root: &Path) -> Result<Doorbell, HvmOpenError> {
    match fs::metadata(dt_root) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(HvmOpenError::NotAnHvm),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(HvmOpenError::NotAnHvm),
        Err(e) => return Err(io_at(dt_root, e)),
    }
    let node = search(dt_root, 0)?.ok_or(HvmOpenError::NotAnHvm)?;
    let bad = |why: String| HvmOpenError::BadDeviceTree(format!("{}: {why}", node.display()));
    if node == dt_root {
        return Err(bad("the root node cannot be the doorbell".into()));
    }
    let parent = node.parent().unwrap_or(dt_root);
    let (ac, sc) = (cells(parent, "#address-cells")?, cells(parent, "#size-cells")?);
    let reg = read_property(&node.join("reg"))?.ok_or_else(|| bad("no reg property".into()))?;
    let (addr, size) = parse_reg(&reg, ac, sc)
        .ok_or_else(|| bad(format!("reg of {} bytes is not (address, size) pairs of {ac} + {sc} cells", reg.len())))?;
    if size < 8 {
        return Err(bad(format!("doorbell of {size} bytes holds no 64-bit word")));
    }
    if !addr.is_multiple_of(8) || addr.checked_add(size).is_none() {
        return Err(bad(format!("doorbell address {addr:#x} (size {size:#x}) is unusable")));
    }
    Ok(Doorbell { node, addr, size })
}

/// The page size of this kernel (4, 16 or 64 KiB on arm64).
fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value; it touches no memory of ours.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    match u64::try_from(size) {
        Ok(size) if size.is_power_of_two() => size,
        _ => 4096,
    }
}

/// A shared mapping of the page(s) holding one 64-bit word of a file (`/dev/mem`).
struct Mapping {
    base: NonNull<libc::c_void>,
    len: usize,
    /// The word at the requested offset, inside the mapping.
    word: *mut u64,
}

impl Mapping {
    /// Maps the word at byte `offset` of `path` (opened read-write, `O_SYNC`: uncached for
    /// `/dev/mem`). `offset` must be 8-byte aligned.
    fn new(path: &Path, offset: u64) -> Result<Self, HvmOpenError> {
        let file =
            OpenOptions::new().read(true).write(true).custom_flags(libc::O_SYNC).open(path).map_err(|e| {
                match e.raw_os_error() {
                    Some(libc::EACCES | libc::EPERM) => HvmOpenError::NotPermitted,
                    _ => io_at(path, e),
                }
            })?;
        let page = page_size();
        let start = offset & !(page - 1);
        let in_page = (offset - start) as usize;
        let len = (in_page + 8).next_multiple_of(page as usize);
        let file_offset = libc::off_t::try_from(start)
            .map_err(|_| HvmOpenError::BadDeviceTree(format!("doorbell address {offset:#x} is beyond mmap's reach")))?;
        // SAFETY: a new mapping (no address hint, no MAP_FIXED) cannot alias any memory Rust
        // knows about; the descriptor is open for the duration of the call and the result is
        // checked against MAP_FAILED before use. The mapping outlives the descriptor by design.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                file_offset,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(HvmOpenError::MapFailed { addr: offset, source: io::Error::last_os_error() });
        }
        let base = NonNull::new(base).ok_or_else(|| HvmOpenError::MapFailed {
            addr: offset,
            source: io::Error::other("mmap returned address 0"),
        })?;
        // `in_page + 8 <= len`, so the word lies inside the mapping; `start` and `offset` are
        // 8-byte aligned (page-aligned, respectively checked by the caller) and so is the word.
        let word = base.as_ptr().cast::<u8>().wrapping_add(in_page).cast::<u64>();
        Ok(Mapping { base, len, word })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are exactly what mmap returned and nothing else unmaps them;
        // no reference into the mapping escapes this type (it is only used through raw pointers
        // while `self` is alive).
        unsafe { libc::munmap(self.base.as_ptr(), self.len) };
    }
}

/// What [`Hvm::null`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NullReply {
    /// Nanoseconds since the hypervisor started the current HRT boot (x1).
    pub since_hrt_boot_ns: u64,
    /// The same interval in generic-counter ticks (x2).
    pub ticks: u64,
}

/// Interprets the x0..x3 an [`Hvm::call_raw`] with sub-operation code `sub_op` returned: `Ok`
/// when x0 is [`HVM_OK`] (or, for [`SubOp::GetStateAndEvent`], a non-negative transaction
/// state); otherwise the [`HvmError`] x0 names, or [`HvmError::Failed`] for a code this library
/// does not know.
pub fn reply_result(sub_op: u64, regs: [u64; 4]) -> Result<[u64; 4], HvmError> {
    let x0 = regs[0];
    if x0 == HVM_OK || (sub_op == SubOp::GetStateAndEvent as u64 && (x0 as i64) >= 0) {
        Ok(regs)
    } else {
        Err(HvmError::from_code(x0).unwrap_or(HvmError::Failed))
    }
}

/// An open doorbell: the HVM seen from a ROS process.
pub struct Hvm {
    map: Mapping,
    doorbell: Doorbell,
    /// The invocation buffer of [`Hvm::invoke`] and friends, made on first use.
    scratch: Mutex<Option<PinnedInvocation>>,
    /// [`Hvm::timeout`] in nanoseconds.
    timeout_ns: AtomicU64,
    /// The ROS events this handle serviced, and whether it has a transaction in flight.
    events: events::EventState,
    /// The stack of [`Hvm::call_ros`], made on first use (one per HRT core for the parallel
    /// variant).
    ros_stacks: Mutex<Option<RosStack>>,
    #[cfg(all(test, not(target_arch = "aarch64")))]
    backend: Option<TestBackend>,
}

// SAFETY: `Hvm` owns its mapping; the only access through it is the hypercall store, which a
// hypervisor serves for any vCPU and thread (each call's state is in that vCPU's registers), so
// it may move to and be shared between threads. Dropping it from another thread just unmaps.
// Its other fields are Send and Sync themselves.
unsafe impl Send for Hvm {}
// SAFETY: see `Send`; `&Hvm` only allows calls, which need no synchronisation between threads.
unsafe impl Sync for Hvm {}

impl fmt::Debug for Hvm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hvm").field("doorbell", &self.doorbell).finish_non_exhaustive()
    }
}

impl Hvm {
    /// Finds the doorbell in [`DEVICE_TREE`] and maps it from [`DEV_MEM`] (needs root).
    pub fn open() -> Result<Self, HvmOpenError> {
        Self::open_at(Path::new(DEVICE_TREE), Path::new(DEV_MEM))
    }

    /// [`Hvm::open`] with another device-tree directory and physical-memory file.
    pub fn open_at(dt_root: &Path, mem: &Path) -> Result<Self, HvmOpenError> {
        let doorbell = find_doorbell(dt_root)?;
        if !cfg!(target_arch = "aarch64") {
            return Err(HvmOpenError::UnsupportedArch);
        }
        let map = Mapping::new(mem, doorbell.addr)?;
        Ok(Hvm {
            map,
            doorbell,
            scratch: Mutex::new(None),
            timeout_ns: AtomicU64::new(Self::DEFAULT_TIMEOUT.as_nanos() as u64),
            events: events::EventState::default(),
            ros_stacks: Mutex::new(None),
            #[cfg(all(test, not(target_arch = "aarch64")))]
            backend: None,
        })
    }

    /// An `Hvm` whose calls `backend` answers (host tests; the doorbell is a scratch file).
    #[cfg(all(test, not(target_arch = "aarch64")))]
    fn with_backend(backend: TestBackend) -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let file = std::env::temp_dir().join(format!("hvm-ros-lib-doorbell-{}-{n}", std::process::id()));
        fs::write(&file, [0u8; 8]).unwrap();
        let map = Mapping::new(&file, 0).unwrap();
        let _ = fs::remove_file(&file);
        Hvm {
            map,
            doorbell: Doorbell { node: PathBuf::from("/test"), addr: 0, size: 8 },
            scratch: Mutex::new(None),
            timeout_ns: AtomicU64::new(Self::DEFAULT_TIMEOUT.as_nanos() as u64),
            events: events::EventState::default(),
            ros_stacks: Mutex::new(None),
            backend: Some(backend),
        }
    }

    /// How long the library waits for a transaction to end unless told otherwise
    /// ([`Hvm::set_timeout`]).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// The doorbell this handle rings.
    pub fn doorbell(&self) -> &Doorbell {
        &self.doorbell
    }

    /// Rings the doorbell with x0..x7 = `regs` exactly (x0 is normally [`HVM_HCALL_ID`]) and
    /// returns x0..x3 afterwards. The lowest level, for tests that send malformed calls.
    #[cfg(target_arch = "aarch64")]
    pub fn ring(&self, regs: [u64; 8]) -> [u64; 4] {
        let [mut x0, mut x1, mut x2, mut x3, x4, x5, x6, x7] = regs;
        // SAFETY: `self.map.word` points at the first word of the doorbell, mapped read-write
        // for as long as `self` lives, 8-byte aligned. The store is one plain single-register
        // `str` (no writeback, no pair) so the stage-2 abort it raises carries a valid syndrome;
        // the hypervisor consumes it, writes x0..x3, may clobber x4..x7 and resumes after the
        // instruction, which is what the operands declare. The asm may touch memory (the
        // hypervisor can write guest memory for some calls), so no `nomem`; it uses no stack;
        // the flags are not promised to survive the trap, so they are not declared preserved.
        unsafe {
            core::arch::asm!(
                "str xzr, [{doorbell}]",
                doorbell = in(reg) self.map.word,
                inout("x0") x0,
                inout("x1") x1,
                inout("x2") x2,
                inout("x3") x3,
                inout("x4") x4 => _,
                inout("x5") x5 => _,
                inout("x6") x6 => _,
                inout("x7") x7 => _,
                options(nostack),
            );
        }
        [x0, x1, x2, x3]
    }

    /// Not reachable: [`Hvm::open_at`] refuses to map a doorbell on architectures other than
    /// aarch64. Exists so programs using this API build (and their tests run) on a development
    /// host.
    #[cfg(not(target_arch = "aarch64"))]
    pub fn ring(&self, _regs: [u64; 8]) -> [u64; 4] {
        let _ = self.map.word;
        #[cfg(test)]
        if let Some(backend) = &self.backend {
            return backend(_regs);
        }
        unreachable!("an Hvm exists only on aarch64")
    }

    /// One 0xf00d call with sub-operation code `code` (x1, need not be a known [`SubOp`]) and
    /// x2..x7 = `args`; returns x0..x3 uninterpreted.
    pub fn call_raw(&self, code: u64, args: [u64; 6]) -> [u64; 4] {
        let [a2, a3, a4, a5, a6, a7] = args;
        self.ring([HVM_HCALL_ID, code, a2, a3, a4, a5, a6, a7])
    }

    /// One 0xf00d call; `Ok(x0..x3)` when it succeeded (see [`reply_result`]). A sub-operation
    /// that starts a transaction (an invocation, a sync setup, a merge, a TLS mirror...) marks
    /// this handle as having one in flight when accepted: until a wait sees the state Idle
    /// again, the waits service the ROS events the HRT forwards ([`Hvm::poll`]).
    pub fn call(&self, sub_op: SubOp, args: [u64; 6]) -> Result<[u64; 4], HvmError> {
        let reply = reply_result(sub_op as u64, self.call_raw(sub_op as u64, args));
        if reply.is_ok() && events::starts_transaction(sub_op) {
            self.events.set_in_flight(true);
        }
        reply
    }

    /// The null call (0x0): a round trip through the hypervisor, answering the HRT's uptime.
    pub fn null(&self) -> Result<NullReply, HvmError> {
        let [_, ns, ticks, _] = self.call(SubOp::Null, [0; 6])?;
        Ok(NullReply { since_hrt_boot_ns: ns, ticks })
    }

    /// Resets the ROS (0x1): this Linux reboots, so on success the call normally never returns.
    pub fn reset_ros(&self) -> Result<(), HvmError> {
        self.call(SubOp::ResetRos, [0; 6]).map(drop)
    }

    /// Resets the HRT (0x2): the HRT cores boot the HRT image again.
    pub fn reset_hrt(&self) -> Result<(), HvmError> {
        self.call(SubOp::ResetHrt, [0; 6]).map(drop)
    }

    /// Resets both partitions (0x3).
    pub fn reset_both(&self) -> Result<(), HvmError> {
        self.call(SubOp::ResetBoth, [0; 6]).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A scratch directory removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Self {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "hvm-ros-lib-{}-{}-{name}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        /// Writes the property `node/prop` (creating the node's directories).
        fn prop(&self, node: &str, prop: &str, bytes: &[u8]) {
            let dir = self.0.join(node);
            fs::create_dir_all(&dir).unwrap();
            fs::write(dir.join(prop), bytes).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn cells(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// A tree shaped like the ROS's: root cells 2/2, a few ordinary nodes, the doorbell.
    fn ros_tree(name: &str) -> TempDir {
        let t = TempDir::new(name);
        t.prop("", "compatible", b"linux,dummy-virt\0");
        t.prop("", "#address-cells", &cells(&[2]));
        t.prop("", "#size-cells", &cells(&[2]));
        t.prop("memory@40000000", "reg", &cells(&[0, 0x4000_0000, 0, 0x2000_0000]));
        t.prop("pl011@9000000", "compatible", b"arm,pl011\0arm,primecell\0");
        t.prop("intc@8000000", "compatible", b"arm,gic-v3\0");
        t.prop("intc@8000000/its@8080000", "compatible", b"arm,gic-v3-its\0");
        t.prop("chosen", "bootargs", b"console=ttyAMA0\0");
        t
    }

    #[test]
    fn compatible_lists_are_nul_separated() {
        let prop = b"vendor,first\0hvm-ros,doorbell\0";
        assert_eq!(compatible_strings(prop).count(), 2);
        assert!(is_compatible(prop, DOORBELL_COMPATIBLE));
        assert!(is_compatible(b"hvm-ros,doorbell", DOORBELL_COMPATIBLE));
        assert!(!is_compatible(b"hvm-ros,doorbell-v2\0", DOORBELL_COMPATIBLE));
        assert!(!is_compatible(b"xhvm-ros,doorbell\0", DOORBELL_COMPATIBLE));
        assert!(!is_compatible(b"", DOORBELL_COMPATIBLE));
    }

    #[test]
    fn reg_is_big_endian_cells() {
        let reg = cells(&[0x1, 0x2345_6000, 0, 0x1000]);
        assert_eq!(parse_reg(&reg, 2, 2), Some((0x1_2345_6000, 0x1000)));
        // Only the first pair counts.
        let two = cells(&[0, 0x1000, 0, 0x10, 0, 0x9000, 0, 0x20]);
        assert_eq!(parse_reg(&two, 2, 2), Some((0x1000, 0x10)));
        assert_eq!(parse_reg(&cells(&[0x9000_0000, 0x1000]), 1, 1), Some((0x9000_0000, 0x1000)));
        assert_eq!(parse_reg(&cells(&[0, 0x9000_0000, 0x1000]), 2, 1), Some((0x9000_0000, 0x1000)));
        assert_eq!(parse_reg(&reg[..12], 2, 2), None);
        assert_eq!(parse_reg(&[], 2, 2), None);
        assert_eq!(parse_reg(&reg, 3, 1), None);
        assert_eq!(parse_reg(&reg, 2, 0), None);
        assert_eq!(parse_u32(&cells(&[2])), Some(2));
        assert_eq!(parse_u32(&[0, 0, 2]), None);
    }

    #[test]
    fn finds_the_doorbell_node() {
        let t = ros_tree("found");
        t.prop("hvm-doorbell@7fff0000", "compatible", b"hvm-ros,doorbell\0");
        t.prop("hvm-doorbell@7fff0000", "reg", &cells(&[0, 0x7fff_0000, 0, 0x1000]));
        let d = find_doorbell(&t.0).unwrap();
        assert_eq!(d.addr, 0x7fff_0000);
        assert_eq!(d.size, 0x1000);
        assert_eq!(d.node, t.0.join("hvm-doorbell@7fff0000"));
    }

    #[test]
    fn finds_a_nested_doorbell_with_its_parents_cells() {
        let t = ros_tree("nested");
        t.prop("soc", "#address-cells", &cells(&[1]));
        t.prop("soc", "#size-cells", &cells(&[1]));
        t.prop("soc/doorbell@a000000", "compatible", b"other,thing\0hvm-ros,doorbell\0");
        t.prop("soc/doorbell@a000000", "reg", &cells(&[0x0a00_0000, 0x1000]));
        let d = find_doorbell(&t.0).unwrap();
        assert_eq!((d.addr, d.size), (0x0a00_0000, 0x1000));
    }

    #[test]
    fn missing_cells_default_to_two() {
        let t = TempDir::new("default-cells");
        t.prop("db", "compatible", b"hvm-ros,doorbell\0");
        t.prop("db", "reg", &cells(&[0, 0x5000, 0, 0x1000]));
        assert_eq!(find_doorbell(&t.0).unwrap().addr, 0x5000);
    }

    #[test]
    fn no_node_or_no_tree_is_not_an_hvm() {
        let t = ros_tree("absent");
        assert!(matches!(find_doorbell(&t.0), Err(HvmOpenError::NotAnHvm)));
        assert!(matches!(find_doorbell(&t.0.join("missing")), Err(HvmOpenError::NotAnHvm)));
        assert!(matches!(Hvm::open_at(&t.0.join("missing"), Path::new("/nonexistent")), Err(HvmOpenError::NotAnHvm)));
    }

    #[test]
    fn disabled_doorbell_is_ignored() {
        let t = ros_tree("disabled");
        t.prop("db@1000", "compatible", b"hvm-ros,doorbell\0");
        t.prop("db@1000", "reg", &cells(&[0, 0x1000, 0, 0x1000]));
        t.prop("db@1000", "status", b"disabled\0");
        assert!(matches!(find_doorbell(&t.0), Err(HvmOpenError::NotAnHvm)));
        t.prop("db@1000", "status", b"okay\0");
        assert_eq!(find_doorbell(&t.0).unwrap().addr, 0x1000);
    }

    #[test]
    fn broken_doorbell_nodes_are_bad_device_trees() {
        let broken: &[(&str, Option<Vec<u8>>)] = &[
            ("no reg", None),
            ("short reg", Some(cells(&[0, 0x1000, 0]))),
            ("zero size", Some(cells(&[0, 0x1000, 0, 0]))),
            ("misaligned", Some(cells(&[0, 0x1004 + 2, 0, 0x1000]))),
            ("wraps", Some(cells(&[0xffff_ffff, 0xffff_f000, 0, 0x2000]))),
        ];
        for (what, reg) in broken {
            let t = ros_tree("broken");
            t.prop("db", "compatible", b"hvm-ros,doorbell\0");
            if let Some(reg) = reg {
                t.prop("db", "reg", reg);
            }
            let err = find_doorbell(&t.0).unwrap_err();
            assert!(matches!(err, HvmOpenError::BadDeviceTree(_)), "{what}: {err:?}");
        }
        let t = ros_tree("bad-cells");
        t.prop("", "#size-cells", &[0, 2]);
        t.prop("db", "compatible", b"hvm-ros,doorbell\0");
        t.prop("db", "reg", &cells(&[0, 0x1000, 0, 0x1000]));
        let err = find_doorbell(&t.0).unwrap_err();
        assert!(err.to_string().contains("#size-cells is 2 bytes"), "{err}");
    }

    #[test]
    fn open_error_messages() {
        assert_eq!(HvmOpenError::NotAnHvm.to_string(), "not an HVM (no hvm-ros,doorbell node in /proc/device-tree)");
        assert_eq!(HvmOpenError::NotPermitted.to_string(), "permission denied opening /dev/mem: run as root");
    }

    #[test]
    fn mapping_reaches_the_word_at_any_offset() {
        // A plain file stands in for /dev/mem: the word's offset must survive the page rounding.
        let t = TempDir::new("mem");
        let page = page_size() as usize;
        let mem = t.0.join("mem");
        fs::write(&mem, vec![0u8; 3 * page]).unwrap();
        for offset in [0, 8, page, page + 0x18, 2 * page + page - 8] {
            let map = Mapping::new(&mem, offset as u64).unwrap();
            let value = 0x0123_4567_89ab_cdef_u64 ^ offset as u64;
            // SAFETY: `word` points into the live mapping of `mem`, aligned, and nothing else
            // accesses the file while the mapping is used.
            unsafe { map.word.write_volatile(value) };
            drop(map);
            let bytes = fs::read(&mem).unwrap();
            assert_eq!(bytes[offset..offset + 8], value.to_ne_bytes(), "offset {offset:#x}");
        }
    }

    #[test]
    fn unopenable_memory_file_is_reported() {
        let t = TempDir::new("nomem");
        let err = Mapping::new(&t.0.join("missing"), 0).err().unwrap();
        assert!(matches!(&err, HvmOpenError::Io(e) if e.kind() == io::ErrorKind::NotFound), "{err:?}");
        assert!(err.to_string().contains("missing"), "{err}");
    }

    #[test]
    fn replies_decode_like_smccc() {
        assert_eq!(reply_result(0, [0, 5, 6, 7]), Ok([0, 5, 6, 7]));
        assert_eq!(reply_result(0x42, [HvmError::UnknownSubOp.code(), 0, 0, 0]), Err(HvmError::UnknownSubOp));
        assert_eq!(reply_result(0, [-100i64 as u64, 0, 0, 0]), Err(HvmError::Failed));
        // 0xf answers the transaction state in x0.
        assert_eq!(reply_result(0xf, [3, 0, 0, 0]), Ok([3, 0, 0, 0]));
        assert_eq!(reply_result(0x1, [3, 0, 0, 0]), Err(HvmError::Failed));
        assert_eq!(reply_result(0xf, [HvmError::WrongPartition.code(), 0, 0, 0]), Err(HvmError::WrongPartition));
    }
}
