//! The fuzzer as the HRT image of a hybrid VM (cargo feature `hrt`: build/fuzz-hrt.elf, linked
//! by linker-hrt.ld at the HRT image window). Linux runs in the ROS meanwhile; the fuzzer is
//! only a partition, so it never powers the machine off.
//!
//! Every HRT core enters asm/hrt_entry.S at once (MMU on with the hypervisor's TTBR1 tables, its
//! own stack, x0 = boot info, x1 = core index, x2 = vCPU) and comes to [`hrt_main`]. The main
//! core (HRT core 0) checks the boot info, reads the command line (`seed=<n> iter=<n>
//! [classes=..] [trace=..] [progress=..]`), prepares DATA and the canary (memory.rs) and the
//! identity map (mmu.rs), and publishes all that. Then every core enables the identity map,
//! sets up its own redistributor and CPU interface, reports ready (0xf00d HrtReady), waits for
//! the others and runs `iter` operations of its own stream (ops.rs, calls.rs, gic_regs.rs,
//! within the bounds of memory.rs). The main core then prints the summary and runs the checks
//! (checks.rs), ending with
//!
//! ```text
//! (HRT) FUZZ: done seed=<s> ok|FAILED passed=<n> failed=<n>
//! ```
//!
//! and every core idles in WFI with interrupts on (an upcall SGI from the ROS is taken and
//! ignored).

mod boot;
mod calls;
mod checks;
pub mod console;
mod gic_regs;
mod memory;
mod mmu;
mod ops;

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hvm_ros_lib::abi::{SubOp, HVM_HCALL_ID, HVM_OK};

use crate::dtb::MAX_CPUS;
use crate::exceptions::{CURRENT_OP, SEED};
use crate::psci::{self, Instruction, CALL_REGS};
use crate::uart::println;
use crate::{arch, gic, timer};
use memory::Layout;

core::arch::global_asm!(
    include_str!("../asm/hrt_entry.S"),
    CPACR_FPEN = const crate::mmu::CPACR_FPEN,
    HRT_MAIN = sym hrt_main,
);

/// The HRT core that reads the boot info, prints the summary and runs the checks.
const MAIN_CORE: u64 = 0;
/// How long the cores wait for each other before they start (then run anyway and the check
/// reports it), and how long a core may make no progress before it counts as stalled.
const START_WAIT_US: u64 = 5_000_000;
const STALL_US: u64 = 60_000_000;
const POLL_US: u64 = 1000;

/// What the main core found, for every core.
#[derive(Clone, Copy)]
struct Config {
    seed: u64,
    iter: u64,
    classes: u32,
    trace_from: u64,
    progress: u64,
    qemu_bugs: bool,
    spare_vtimer: bool,
    layout: Layout,
}

/// The configuration, written once by the main core before PUBLISHED is set (Release).
struct Published(UnsafeCell<MaybeUninit<Config>>);

// SAFETY: written only by the main core before it sets PUBLISHED (Release); read only after
// PUBLISHED is seen set (Acquire), never written again.
unsafe impl Sync for Published {}

static CONFIG: Published = Published(UnsafeCell::new(MaybeUninit::uninit()));
static PUBLISHED: AtomicBool = AtomicBool::new(false);
/// Cores ready to start; per vCPU: operations done, finished.
static STARTED: AtomicU64 = AtomicU64::new(0);
static DONE_OPS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
static FINISHED: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];

fn config() -> Option<Config> {
    // SAFETY: after PUBLISHED is seen set (Acquire), CONFIG is initialised and never written.
    PUBLISHED.load(Ordering::Acquire).then(|| unsafe { (*CONFIG.0.get()).assume_init() })
}

/// Every HRT core, from asm/hrt_entry.S.
#[no_mangle]
extern "C" fn hrt_main(info_va: u64, core: u64, vcpu: u64) -> ! {
    if arch::cpu_index() as u64 != vcpu || vcpu as usize >= MAX_CPUS {
        fail(format_args!("core {core}: vCPU {vcpu} but MPIDR Aff0 {} (at most {MAX_CPUS} vCPUs)", arch::cpu_index()));
    }
    let config = if core == MAIN_CORE {
        // SAFETY: x0 at entry is the boot info's address (the HRT boot contract).
        prepare(unsafe { boot::read(info_va, core, vcpu) })
    } else {
        loop {
            if let Some(config) = config() {
                break config;
            }
            core::hint::spin_loop();
        }
    };
    if let Err(why) = mmu::enable(&config.layout) {
        fail(format_args!("core {core}: {why}"));
    }
    let cpu = vcpu as usize;
    gic::init_redistributor(cpu, &[timer::PPI_VIRTUAL, crate::checks::SGI_CHECK]);
    gic::init_cpu_interface();
    let mut regs = [0u64; CALL_REGS];
    regs[..2].copy_from_slice(&[HVM_HCALL_ID, SubOp::HrtReady as u64]);
    psci::call(Instruction::Hvc0, &mut regs);
    if regs[0] != HVM_OK {
        println!("FUZZ: error: core {core}: HrtReady answered {:#x}", regs[0]);
    }
    STARTED.fetch_add(1, Ordering::AcqRel);
    let give_up = arch::now() + arch::us_to_ticks(START_WAIT_US);
    while STARTED.load(Ordering::Acquire) < config.layout.hrt_cores as u64 && arch::now() < give_up {
        core::hint::spin_loop();
    }
    arch::unmask_irqs_and_serrors();
    stream(&config, core as usize, cpu);
    arch::mask_irqs();
    FINISHED[cpu].store(true, Ordering::Release);
    if core == MAIN_CORE {
        let finished = wait_others(&config.layout, cpu);
        checks::summary(&config);
        let report = checks::run(&config.layout, cpu, finished);
        let verdict = if report.failed == 0 { "ok" } else { "FAILED" };
        println!("FUZZ: done seed={} {verdict} passed={} failed={}", config.seed, report.passed, report.failed);
    }
    idle()
}

/// The main core's preparation: the boot info checked, the command line read, DATA, the
/// canary and the identity map ready; then published for the other cores.
fn prepare(boot: Result<(hvm_ros_lib::abi::HrtBootInfo, Layout), &'static str>) -> Config {
    let (info, layout) = boot.unwrap_or_else(|why| fail(format_args!("boot info: {why}")));
    let (options, classes) = match boot::parse(boot::cmdline(&info)) {
        Ok(parsed) => parsed,
        Err(word) => fail(format_args!("bad command-line word {:?}", core::str::from_utf8(word).unwrap_or("?"))),
    };
    SEED.store(options.seed, Ordering::Relaxed);
    memory::init_zones(&layout);
    if let Err(why) = mmu::build(&layout) {
        fail(format_args!("{why}"));
    }
    let config = Config {
        seed: options.seed,
        iter: options.iter,
        classes,
        trace_from: options.trace_from,
        progress: options.progress,
        qemu_bugs: options.qemu_bugs,
        spare_vtimer: options.spare_vtimer,
        layout,
    };
    println!(
        "FUZZ: start seed={} iter={} mode=hrt cores={} first_vcpu={} ros_ram={:#x}+{:#x} hrt_ram={:#x}+{:#x} \
         data={:#x} classes={classes:#x}",
        config.seed,
        config.iter,
        layout.hrt_cores,
        layout.first_hrt_vcpu,
        layout.ros.start,
        layout.ros.size,
        layout.hrt.start,
        layout.hrt.size,
        layout.data.start,
    );
    checks::remember_image();
    // SAFETY: the main core writes CONFIG once, before PUBLISHED (see `Published`).
    unsafe { (*CONFIG.0.get()).write(config) };
    PUBLISHED.store(true, Ordering::Release);
    config
}

/// Runs this core's stream of `iter` operations.
fn stream(config: &Config, core: usize, cpu: usize) {
    let mut ctx = ops::Ctx {
        cpu,
        layout: config.layout,
        trace: false,
        index: 0,
        qemu_bugs: config.qemu_bugs,
        spare_vtimer: config.spare_vtimer,
    };
    for index in 0..config.iter {
        ctx.trace = index >= config.trace_from;
        ctx.index = index;
        if index > 0 && index % config.progress == 0 {
            println!("FUZZ: progress cpu={cpu} op={index}");
        }
        ops::run(config.seed, core, index, config.classes, &ctx);
        DONE_OPS[cpu].store(index + 1, Ordering::Relaxed);
    }
    CURRENT_OP[cpu].store(u64::MAX, Ordering::Relaxed);
    timer::disarm();
}

/// Waits until every other HRT core finished; reports the ones that stall (no progress for a
/// minute). Returns false if any did.
fn wait_others(layout: &Layout, me: usize) -> bool {
    let mut all_done = true;
    for cpu in (layout.first_hrt_vcpu..layout.vcpus()).filter(|&cpu| cpu != me) {
        let (mut last, mut since) = (u64::MAX, arch::now());
        while !FINISHED[cpu].load(Ordering::Acquire) {
            let done = DONE_OPS[cpu].load(Ordering::Relaxed);
            if done != last {
                (last, since) = (done, arch::now());
            } else if arch::now() - since > arch::us_to_ticks(STALL_US) {
                println!("FUZZ: error: cpu={cpu} stalled at op={done} (no progress for 60 s)");
                all_done = false;
                break;
            }
            arch::delay_us(POLL_US);
        }
    }
    all_done
}

/// The end of an HRT core: interrupts on, the timer off, waiting for interrupts for good. The
/// machine belongs to the ROS too: the HRT never powers it off.
fn idle() -> ! {
    timer::disarm();
    arch::unmask_irqs_and_serrors();
    loop {
        // SAFETY: waits for an interrupt; the IRQ handler (exceptions.rs) takes it.
        unsafe { core::arch::asm!("wfi", options(nostack)) };
    }
}

/// Reports a reason not to go on and idles (never powers off: the ROS runs on).
fn fail(reason: core::fmt::Arguments) -> ! {
    println!("FUZZ: error: {reason}");
    println!("FUZZ: done seed={} FAILED", SEED.load(Ordering::Relaxed));
    idle()
}
