//! The random operations. Operation `index` of CPU `cpu` is drawn from its own generator
//! (`Rng::for_op(seed, cpu, index)`): a class by weight, then everything else. `trace=<n>` on
//! the command line prints every operation from index n on before it runs.

mod access;
mod calls;
mod gic;
mod misc;
mod sysreg;
mod virtio;
mod virtq;

use core::sync::atomic::{AtomicU64, Ordering};

use crate::dtb::{MAX_CPUS, MAX_VIRTIO_SLOTS};
use crate::exceptions::CURRENT_OP;
use crate::rng::Rng;

pub use access::{checked_read32, checked_write32};
#[cfg(feature = "hrt")]
pub use access::{form, run_form, FORM_COUNT, LOAD_FORMS, PLAIN_LOADS, PLAIN_STORES};
pub use calls::{CLOBBERS, FIRST_CLOBBER};
#[cfg(feature = "hrt")]
pub use misc::prepare_cpu_wakeup;
pub use sysreg::IMPDEF_REACHED;
pub use virtio::USED_ENTRIES as VIRTIO_USED_ENTRIES;
pub use virtio::{
    DEVICE_ID as VIRTIO_DEVICE_ID, DEVICE_ID_BLOCK, DRIVER_FEATURES, DRIVER_FEATURES_SEL, FEATURE_VERSION_1_HIGH,
    INTERRUPT_ACK, INTERRUPT_STATUS, QUEUE_DESC, QUEUE_DEVICE, QUEUE_DRIVER, QUEUE_NOTIFY, QUEUE_NUM, QUEUE_READY,
    QUEUE_SEL, STATUS, STATUS_ACKNOWLEDGE, STATUS_DRIVER, STATUS_DRIVER_OK, STATUS_FEATURES_OK,
};

/// What an operation runs with.
pub struct Ctx {
    pub cpu: usize,
    pub cpu_count: usize,
    pub virtio_slots: [u64; MAX_VIRTIO_SLOTS],
    pub virtio_count: usize,
    /// The virtio-blk transport's base, if there is one.
    pub disk_slot: Option<u64>,
    pub trace: bool,
    /// The operation running (for trace lines).
    pub index: u64,
    /// Also do what is known to crash QEMU itself (`qemu_bugs=1`).
    pub qemu_bugs: bool,
    /// Leave the virtual timer's interrupt (PPI 27) alone (`spare=vtimer`): no random write to
    /// its redistributor bits, no random acknowledge (a hunting aid while a bug there is open).
    pub spare_vtimer: bool,
}

/// Operation classes: names (for `classes=` and the summary) and weights.
pub const CLASSES: [&str; 10] =
    ["mem", "fetch", "sysreg-read", "sysreg-write", "sys", "call", "gic", "virtio", "wait", "sgi"];
const WEIGHTS: [u32; 10] = [32, 2, 10, 10, 3, 12, 14, 12, 3, 2];
pub const CLASS_COUNT: usize = CLASSES.len();

/// Operations run per CPU and class.
pub static OPS: [[AtomicU64; CLASS_COUNT]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; CLASS_COUNT] }; MAX_CPUS];

impl Ctx {
    fn slots(&self) -> &[u64] {
        &self.virtio_slots[..self.virtio_count.max(1)]
    }
}

/// Runs operation `index` of this CPU's stream, drawing only from the classes in `enabled`
/// (bit n: CLASSES[n]).
pub fn run(seed: u64, index: u64, enabled: u32, ctx: &Ctx) {
    let mut rng = Rng::for_op(seed, ctx.cpu, index);
    let weights: [u32; CLASS_COUNT] = core::array::from_fn(|c| if enabled & (1 << c) != 0 { WEIGHTS[c] } else { 0 });
    let class = rng.weighted(&weights);
    CURRENT_OP[ctx.cpu].store(index, Ordering::Relaxed);
    OPS[ctx.cpu][class].fetch_add(1, Ordering::Relaxed);
    match class {
        0 => access::access(&mut rng, ctx),
        1 => access::fetch(&mut rng, ctx),
        2 => sysreg::read(&mut rng, ctx),
        3 => sysreg::write(&mut rng, ctx),
        4 => sysreg::sys(&mut rng, ctx),
        5 => calls::call(&mut rng, ctx),
        6 => gic::access(&mut rng, ctx),
        7 => virtio::sequence(&mut rng, ctx),
        8 => misc::wait_or_hint(&mut rng, ctx),
        _ => misc::sgi(&mut rng, ctx),
    }
}

/// The class bits `classes=a,b,...` names (all classes for an empty list); `None` if a name is
/// unknown.
pub fn parse_classes(list: &[u8]) -> Option<u32> {
    parse_class_names(list, &CLASSES)
}

/// The bits of `names` that the comma-separated `list` names (all of them for an empty list);
/// `None` if a name is unknown. Shared with the HRT build's own classes.
pub fn parse_class_names(list: &[u8], names: &[&str]) -> Option<u32> {
    if list.is_empty() {
        return Some((1 << names.len()) - 1);
    }
    list.split(|&b| b == b',')
        .try_fold(0u32, |mask, name| names.iter().position(|c| c.as_bytes() == name).map(|c| mask | (1 << c)))
}

/// Operations run by all CPUs, per class.
pub fn totals() -> [u64; CLASS_COUNT] {
    sum_per_class(&OPS)
}

/// Per-class operation counters summed over the CPUs.
pub fn sum_per_class<const N: usize>(counters: &[[AtomicU64; N]]) -> [u64; N] {
    core::array::from_fn(|c| counters.iter().map(|cpu| cpu[c].load(Ordering::Relaxed)).sum())
}
