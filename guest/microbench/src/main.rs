//! microbench: a bare-metal EL1 kernel that measures what virtualization costs a guest, booted
//! like Linux (arm64 `Image`, DTB in x0) either directly by QEMU or under the hypervisor, so
//! the two can be compared. It prints one `MICROBENCH:` line per measurement (bench.rs), then
//! `MICROBENCH: done`, and powers off through PSCI.
//!
//! With `mode=conformance` on its command line (/chosen/bootargs) it runs conformance checks
//! instead and prints `CONFORMANCE:` lines (conformance/), then powers off.
//!
//! Boot: asm/boot.S (Image header, stacks, MMU on with mmu.rs's identity map, vectors from
//! asm/vectors.S), then [`rust_main`] on the boot CPU; ipi.rs starts a second CPU.

#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

mod arch;
mod bench;
mod conformance;
mod dtb;
mod exceptions;
mod gic;
mod ipi;
mod mmu;
mod probe;
mod psci;
mod timer;
mod uart;

use core::panic::PanicInfo;

use dtb::Mode;
use uart::println;

/// The Image header's flags: little-endian (bit 0 clear), 4 KiB pages (bits [2:1] = 1), and
/// bit 3 clear: the 2 MiB-aligned base must be as close to the start of RAM as possible, for
/// we are linked at RAM base + text_offset.
const IMAGE_FLAGS: u64 = 1 << 1;
/// The level we are written for (entered at EL1 under the hypervisor and on plain QEMU).
const EXPECTED_EL: u64 = 1;

core::arch::global_asm!(
    include_str!("asm/boot.S"),
    IMAGE_FLAGS = const IMAGE_FLAGS,
    MAIR = const mmu::MAIR,
    TCR = const mmu::TCR,
    SCTLR = const mmu::SCTLR,
    PAGE_TABLE = sym mmu::PAGE_TABLE,
    UART_DR = const uart::UART_DR_ADDRESS,
);
core::arch::global_asm!(include_str!("asm/vectors.S"));

/// The boot CPU, MMU on, IRQs masked. `dtb` is the device tree's address from x0.
#[no_mangle]
extern "C" fn rust_main(dtb: usize) -> ! {
    // SAFETY: x0 at entry is the DTB's address (arm64 boot protocol); nothing writes the DTB.
    let platform = match unsafe { dtb::read(dtb) } {
        Ok(platform) => platform,
        Err(err) => fail(format_args!("cannot read the DTB at {dtb:#x}: {err}")),
    };
    match platform.conduit {
        Some(conduit) => psci::set_conduit(conduit),
        None => fail(format_args!("the DTB has no /psci method (hvc or smc)")),
    }
    let el = arch::exception_level();
    if el != EXPECTED_EL {
        fail(format_args!("running at EL{el}; this kernel is written for EL{EXPECTED_EL}"));
    }
    let version = match psci::version() {
        Ok(version) => version,
        Err(err) => fail(format_args!("PSCI_VERSION through {}: {err}", psci::conduit_name())),
    };
    match platform.mode {
        Mode::Benchmark => {}
        Mode::Conformance => {
            println!(
                "MICROBENCH: start mode=conformance el={el} cpus={} conduit={} psci={}.{} cntfrq_hz={}",
                platform.cpu_count,
                psci::conduit_name(),
                version.major,
                version.minor,
                timer::frequency()
            );
            conformance::run_all(&platform);
            psci::system_off()
        }
        Mode::Unknown => fail(format_args!("unknown mode= in the command line (bench or conformance)")),
    }
    println!(
        "MICROBENCH: start el={el} cpus={} conduit={} psci={}.{} cntfrq_hz={} samples={} batch={}",
        platform.cpu_count,
        psci::conduit_name(),
        version.major,
        version.minor,
        timer::frequency(),
        bench::SAMPLES,
        bench::BATCH
    );
    bench::run_all(&platform);
    println!("MICROBENCH: done");
    psci::system_off()
}

/// Reports a reason not to go on and powers off.
fn fail(reason: core::fmt::Arguments) -> ! {
    println!("MICROBENCH: error: {reason}");
    psci::system_off()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    println!("MICROBENCH: panic: {info}");
    psci::system_off()
}
