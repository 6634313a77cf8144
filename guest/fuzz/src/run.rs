//! The random phase on every CPU: the boot CPU starts one worker per other vCPU with PSCI
//! CPU_ON (context id WORKER | index), all start together, each runs `iter` operations of its
//! own stream (seed, CPU index), the workers power off with CPU_OFF. The configuration the
//! workers need is published here by the boot CPU before it starts them.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use crate::dtb::{Platform, MAX_CPUS, MAX_VIRTIO_SLOTS};
use crate::exceptions::CURRENT_OP;
use crate::ops::{self, Ctx};
use crate::options::Options;
use crate::uart::println;
use crate::{arch, gic, psci, timer};

/// Context ids the secondary entry understands (anything else is a stray CPU_ON from the
/// random phase: counted, powered off).
pub const WORKER_CONTEXT: u64 = 0xf022_0000_0000_0000;
pub const CHECK_CONTEXT: u64 = 0xf022_c0c0_0000_0000;
const CONTEXT_INDEX_MASK: u64 = 0xff;
/// How long a worker may take to come up, and to make any progress.
const STARTUP_US: u64 = 2_000_000;
const STALL_US: u64 = 60_000_000;

static SEED: AtomicU64 = AtomicU64::new(0);
static ITER: AtomicU64 = AtomicU64::new(0);
static TRACE_FROM: AtomicU64 = AtomicU64::new(u64::MAX);
static PROGRESS: AtomicU64 = AtomicU64::new(1);
static CLASSES: AtomicU32 = AtomicU32::new(0);
static CPU_COUNT: AtomicU64 = AtomicU64::new(1);
static DISK_SLOT: AtomicU64 = AtomicU64::new(0);
static VIRTIO_SLOTS: [AtomicU64; MAX_VIRTIO_SLOTS] = [const { AtomicU64::new(0) }; MAX_VIRTIO_SLOTS];
static VIRTIO_COUNT: AtomicU64 = AtomicU64::new(0);
static QEMU_BUGS: AtomicBool = AtomicBool::new(false);
static SPARE_VTIMER: AtomicBool = AtomicBool::new(false);
static GO: AtomicBool = AtomicBool::new(false);
/// Per CPU: ready to start, operations done, finished.
static READY: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
static DONE_OPS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static FINISHED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// CPUs started with a context id nobody asked for.
pub static STRAY_STARTS: AtomicU64 = AtomicU64::new(0);

/// Publishes the configuration (boot CPU, before any worker starts).
pub fn publish(options: &Options, platform: &Platform, disk_slot: Option<u64>) {
    SEED.store(options.seed, Ordering::Relaxed);
    ITER.store(options.iter, Ordering::Relaxed);
    TRACE_FROM.store(options.trace_from, Ordering::Relaxed);
    PROGRESS.store(options.progress, Ordering::Relaxed);
    CLASSES.store(options.classes, Ordering::Relaxed);
    QEMU_BUGS.store(options.qemu_bugs, Ordering::Relaxed);
    SPARE_VTIMER.store(options.spare_vtimer, Ordering::Relaxed);
    CPU_COUNT.store(platform.cpu_count.max(1) as u64, Ordering::Relaxed);
    DISK_SLOT.store(disk_slot.unwrap_or(0), Ordering::Relaxed);
    for (slot, &address) in VIRTIO_SLOTS.iter().zip(&platform.virtio_slots[..platform.virtio_count]) {
        slot.store(address, Ordering::Relaxed);
    }
    VIRTIO_COUNT.store(platform.virtio_count as u64, Ordering::Release);
}

fn ctx(cpu: usize, trace: bool) -> Ctx {
    let disk = DISK_SLOT.load(Ordering::Relaxed);
    Ctx {
        cpu,
        cpu_count: CPU_COUNT.load(Ordering::Relaxed) as usize,
        virtio_slots: core::array::from_fn(|i| VIRTIO_SLOTS[i].load(Ordering::Relaxed)),
        virtio_count: VIRTIO_COUNT.load(Ordering::Acquire) as usize,
        disk_slot: (disk != 0).then_some(disk),
        trace,
        index: 0,
        qemu_bugs: QEMU_BUGS.load(Ordering::Relaxed),
        spare_vtimer: SPARE_VTIMER.load(Ordering::Relaxed),
    }
}

/// Runs this CPU's stream of `iter` operations.
pub fn stream(cpu: usize) {
    let (seed, iter) = (SEED.load(Ordering::Relaxed), ITER.load(Ordering::Relaxed));
    let (trace_from, progress) = (TRACE_FROM.load(Ordering::Relaxed), PROGRESS.load(Ordering::Relaxed));
    let classes = CLASSES.load(Ordering::Relaxed);
    let mut ctx = ctx(cpu, false);
    for index in 0..iter {
        ctx.trace = index >= trace_from;
        ctx.index = index;
        if index > 0 && index % progress == 0 {
            println!("FUZZ: progress cpu={cpu} op={index}");
        }
        ops::run(seed, index, classes, &ctx);
        DONE_OPS[cpu].store(index + 1, Ordering::Relaxed);
    }
    CURRENT_OP[cpu].store(u64::MAX, Ordering::Relaxed);
    timer::disarm();
}

/// Starts a worker on every other CPU and waits until each is ready. Returns how many started.
pub fn start_workers(platform: &Platform, entry: u64) -> usize {
    let me = arch::cpu_index();
    let mut started = 0;
    for (index, &mpidr) in platform.cpus[..platform.cpu_count].iter().enumerate() {
        if index == me {
            continue;
        }
        let result = psci::psci(psci::CPU_ON_64, [mpidr, entry, WORKER_CONTEXT | index as u64]);
        let give_up = arch::now() + arch::us_to_ticks(STARTUP_US);
        while result == 0 && !READY[index].load(Ordering::Acquire) && arch::now() < give_up {
            core::hint::spin_loop();
        }
        if READY[index].load(Ordering::Acquire) {
            started += 1;
        } else {
            println!("FUZZ: error: worker cpu={index} mpidr={mpidr:#x} did not start (CPU_ON returned {result:#x})");
        }
    }
    started
}

pub fn go() {
    GO.store(true, Ordering::Release);
}

/// Waits until every started worker finished; reports the ones that stall (no progress for a
/// minute). Returns false if any did.
pub fn wait_workers(platform: &Platform) -> bool {
    let me = arch::cpu_index();
    let mut all_done = true;
    for index in (0..platform.cpu_count).filter(|&i| i != me && READY[i].load(Ordering::Acquire)) {
        let mut last = u64::MAX;
        let mut since = arch::now();
        while !FINISHED[index].load(Ordering::Acquire) {
            let done = DONE_OPS[index].load(Ordering::Relaxed);
            if done != last {
                (last, since) = (done, arch::now());
            } else if arch::now() - since > arch::us_to_ticks(STALL_US) {
                println!("FUZZ: error: worker cpu={index} stalled at op={done} (no progress for 60 s)");
                all_done = false;
                break;
            }
            arch::delay_us(1000);
        }
    }
    all_done
}

/// A secondary CPU after boot.S, MMU on: a worker, the cpu_on check's vCPU, or a stray start.
#[no_mangle]
extern "C" fn secondary_main(context: u64) -> ! {
    let cpu = arch::cpu_index();
    crate::scenarios::secondary(context, cpu);
    if context & !CONTEXT_INDEX_MASK == WORKER_CONTEXT && (context & CONTEXT_INDEX_MASK) as usize == cpu {
        gic::init_redistributor(cpu, &[timer::PPI_VIRTUAL]);
        gic::init_cpu_interface();
        arch::unmask_irqs_and_serrors();
        READY[cpu].store(true, Ordering::Release);
        while !GO.load(Ordering::Acquire) {
            core::hint::spin_loop();
        }
        stream(cpu);
        arch::mask_irqs();
        FINISHED[cpu].store(true, Ordering::Release);
    } else if context == CHECK_CONTEXT | cpu as u64 {
        println!("FUZZ: cpu{cpu} online (cpu_on check)");
        crate::checks::CHECK_CPU_ONLINE.store(true, Ordering::Release);
    } else {
        STRAY_STARTS.fetch_add(1, Ordering::Relaxed);
    }
    psci::psci(psci::CPU_OFF, [0; 3]);
    println!("FUZZ: error: cpu{cpu}: CPU_OFF returned");
    arch::park()
}
