//! The HRT runtime kernel: the bare-metal EL1 kernel the hypervisor boots on every HRT core of
//! a hybrid VM (DESIGN.md §7, palacios-hvm.md §7.12). Its boot contract is hvm-ros-lib's
//! `abi::hrt_boot` / `abi::HrtBootInfo`.
//!
//! Every HRT core enters asm/entry.S at once (MMU on, hypervisor-built TTBR1 tables, own
//! stack): it installs the vectors (asm/vectors.S) and calls [`hrt_main`], which checks the
//! boot info, sets up this core's GIC CPU interface and redistributor, proves interrupts work
//! with the virtual timer, makes the null call, tells the hypervisor it is ready (`HrtReady`)
//! and idles, serving upcalls (upcall.rs): invocations of the built-in functions (functions.rs)
//! on a ROS process's behalf, reading its memory through its page tables (rosmem.rs), and sync
//! mode on core 0. A process can merge its address space with the HRT's (merge.rs) and have
//! its own functions run here at EL0 (el0.rs, asm/el0.S), with its system calls, page faults
//! and exceptions forwarded to it (events.rs) and its thread registers mirrored (tls.rs).
//! Output goes through the hypervisor's HRT console (console.rs).
//!
//! Core 0 also prints the kernel's version, reads the command-line options (cmdline.rs),
//! self-tests the built-in functions
//! and the page walker (functions_self_test.rs) and the hypervisor's permission checks
//! (hvm_self_test.rs), times null calls if asked (bench.rs), and beats if asked
//! (heartbeat.rs).

#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

mod bench;
mod boot;
mod cmdline;
mod console;
mod cpu;
mod el0;
mod events;
mod exceptions;
mod fletcher;
mod functions;
mod functions_self_test;
mod gic;
mod guest_ram;
mod heartbeat;
mod hvc;
mod hvm_self_test;
mod invocation;
mod merge;
mod rosmem;
mod shared;
mod timer;
mod tls;
mod translate;
mod upcall;

use core::fmt;
use core::panic::PanicInfo;

use boot::BootInfoView;
use console::{print, println};

/// The HRT core that prints the boot summary, the command line and the self-tests, and the only
/// one that acts on the command-line options (the one single-core upcalls go to).
const MAIN_CORE: usize = upcall::FIRST_CORE;
const NANOS_PER_MICRO: u64 = 1_000;

/// The crate's version, and the flavour of this build (`HRT_FLAVOUR` in the build's
/// environment, empty if unset): scripts/build-hrt.sh also builds an `alt` image, which a test
/// installs from the ROS to see the new kernel boot (its version line names it).
const VERSION: &str = env!("CARGO_PKG_VERSION");
const FLAVOUR: Option<&str> = option_env!("HRT_FLAVOUR");

core::arch::global_asm!(
    include_str!("asm/entry.S"),
    MAIN = sym hrt_main,
    PARK = sym cpu::park,
    FATAL_FLAG_BIT = const cpu::FATAL_FLAG_BIT,
);
core::arch::global_asm!(
    include_str!("asm/vectors.S"),
    IRQ = sym exceptions::hrt_irq,
    FATAL = sym exceptions::hrt_fatal,
    PARK = sym cpu::park,
    FATAL_FLAG_BIT = const cpu::FATAL_FLAG_BIT,
    MAX_CORES = const cpu::MAX_CORES,
    FATAL_STACK_SIZE = const exceptions::FATAL_STACK_SIZE,
    EL0_FRAME = const el0::FRAME_SIZE,
    EL0_SYNC = const el0::EL0_SYNC,
    EL0_IRQ = const el0::EL0_IRQ,
);
core::arch::global_asm!(
    include_str!("asm/el0.S"),
    HANDLER = sym el0::hrt_el0_exception,
    RESUME = const el0::RESUME,
    DAIF_ALL = const cpu::DAIF_ALL,
    FRAME = const el0::FRAME_SIZE,
    FRAME_X30 = const el0::FRAME_X30,
    FRAME_SP = const el0::FRAME_SP,
    FRAME_ELR = const el0::FRAME_ELR,
    KERNEL_CONTEXT = const el0::KERNEL_CONTEXT,
    KERNEL_CONTEXT_CALL = const el0::KERNEL_CONTEXT_CALL,
);

/// Every HRT core, from entry.S: `boot_va`, `core`, `vcpu` are x0, x1, x2 at entry.
extern "C" fn hrt_main(boot_va: u64, core: u64, vcpu: u64) -> ! {
    // SAFETY: x0 at entry is the boot info's address (boot contract, abi.rs `hrt_boot`).
    let boot = match unsafe { BootInfoView::from_entry(boot_va, core, vcpu) } {
        Ok(boot) => boot,
        Err(error) => fail(format_args!("core {core} (vCPU {vcpu}): bad boot info at {boot_va:#x}: {error}")),
    };
    let core = boot.core();
    let frequency = boot.counter_frequency();

    exceptions::set_upcall_intid(boot.upcall_intid());
    el0::init_core();
    gic::init_cpu_interface();
    let private_intids = [boot.upcall_intid(), gic::PPI_VIRTUAL_TIMER];
    if let Err(error) = gic::init_redistributor(boot.gicr_va(), &private_intids, frequency) {
        fail(format_args!("core {core}: redistributor: {error}"));
    }
    let timer = timer::check_interrupts(frequency);
    if let Err(no_tick) = timer {
        // Say why, if it is the usual reason: the ROS owns the distributor and may not have
        // enabled it yet. The core goes on: interrupts work once the ROS has.
        let distributor_off = boot.gicd_va().is_some_and(|gicd| !gic::distributor_enabled(gicd));
        let reason =
            if distributor_off { "; GICD_CTLR.EnableGrp1 is 0 (the ROS has not enabled the GIC yet)" } else { "" };
        println!("core {core}: timer check failed: {no_tick}{reason}");
    }

    // The other cores leave the options alone: they stay idle, and ignored words are reported
    // once.
    let options = if core == MAIN_CORE { main_core_checks(&boot) } else { cmdline::Options::default() };

    let timer_status = if timer.is_ok() { "timer ok" } else { "timer FAILED" };
    let null = NullCall(hvc::null());
    if core == MAIN_CORE {
        println!("core {core} of {} up: boot info ok, {timer_status}, {null}", boot.cores());
    } else {
        println!("core {core} up (vCPU {}): {timer_status}, {null}", boot.vcpu());
    }
    if let Some(ms) = options.ready_delay_ms {
        println!("ready in {ms} ms (ready_delay_ms)");
        timer::busy_wait_us(ms * 1000, frequency);
    }
    // Before ready: the requests after it are new to the server.
    let server = upcall::Server::new(&boot);
    if let Err(error) = hvc::ready() {
        println!("core {core}: HrtReady failed: {error}");
    }
    // After ready, so the boot time the hypervisor reports does not include it.
    if options.bench {
        match bench::null_calls(frequency) {
            Ok(cost) => println!("bench: {cost}"),
            Err(error) => println!("bench FAILED: {error}"),
        }
    }
    let heartbeat = options.heartbeat_s.map(|period_s| heartbeat::Heartbeat::start(period_s, &boot));
    server.run(heartbeat)
}

/// Core 0's part of the boot: prints the command line and the words it ignores, runs the
/// self-tests, and returns the options.
fn main_core_checks(boot: &BootInfoView) -> cmdline::Options {
    match FLAVOUR.filter(|flavour| !flavour.is_empty()) {
        Some(flavour) => println!("version {VERSION}-{flavour}"),
        None => println!("version {VERSION}"),
    }
    if boot.cmdline().is_empty() {
        println!("cmdline: (empty)");
    } else {
        print!("cmdline: ");
        console::print_bytes(boot.cmdline().iter().copied());
        println!();
    }
    let options = cmdline::parse(boot.cmdline(), |ignored| println!("cmdline: {ignored}"));
    match functions_self_test::run(boot) {
        Ok(report) => println!("self-test: {report}"),
        Err(error) => println!("self-test FAILED: {error}"),
    }
    match hvm_self_test::run() {
        Ok(()) => println!("hvm self-test: {}", hvm_self_test::PASSED),
        Err(failures) => println!("hvm self-test FAILED: {failures}"),
    }
    options
}

/// The null call's outcome, as the boot line shows it.
struct NullCall(Result<hvc::SinceBoot, hvc::CallError>);

impl fmt::Display for NullCall {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.0 {
            Ok(since) => write!(f, "null call: {} us since boot start", since.nanoseconds / NANOS_PER_MICRO),
            Err(error) => write!(f, "null call failed: {error}"),
        }
    }
}

/// Reports a boot failure and parks this core (it never becomes ready).
fn fail(args: fmt::Arguments) -> ! {
    println!("{args}; core parked");
    cpu::park()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    let core = cpu::core_index();
    match info.location() {
        Some(at) => console::print_unbuffered(format_args!(
            "core {core}: panic at {}:{}: {}; core parked",
            at.file(),
            at.line(),
            info.message()
        )),
        None => console::print_unbuffered(format_args!("core {core}: panic: {}; core parked", info.message())),
    }
    cpu::park()
}
