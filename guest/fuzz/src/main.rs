//! fuzz: a bare-metal EL1 guest that attacks the hypervisor with random but reproducible
//! operations, then checks that the hypervisor still serves it. It boots like Linux (arm64
//! `Image`, DTB in x0) and reads `seed=<n> iter=<n>` from its command line (options.rs).
//!
//! ```text
//! FUZZ: start seed=<s> iter=<n> cpus=<n> ...
//! FUZZ: progress cpu=<c> op=<i>                  every 2000 operations per CPU
//! FUZZ: summary seed=<s> iter=<n> ops=<n> undef=<n> aborts=<n> serrors=<n> ...
//! FUZZ: check <name> pass|fail <details>        checks/
//! FUZZ: done seed=<s> ok|FAILED
//! ```
//!
//! then PSCI SYSTEM_OFF. Boot: asm/boot.S (Image header, stacks, MMU on with mmu.rs's map,
//! vectors from asm/vectors.S); [`rust_main`] on the boot CPU; run.rs starts the other vCPUs,
//! each running its own stream (ops/); exceptions.rs counts what comes back.
//!
//! Built with the `hrt` feature, the same code links as a hybrid VM's HRT image instead
//! (build/fuzz-hrt.elf; hrt/: another entry, its own operation mix, output through the HRT
//! console, and no power-off: the ROS runs on).

#![no_std]
#![no_main]
#![deny(clippy::undocumented_unsafe_blocks)]

mod arch;
mod checks;
mod dma_area;
mod dtb;
mod exceptions;
mod gic;
#[cfg(feature = "hrt")]
mod hrt;
mod mmu;
mod ops;
mod options;
mod psci;
mod rng;
mod run;
mod scenarios;
mod scratch;
mod sysregs;
mod timer;
mod uart;

use core::panic::PanicInfo;
use core::sync::atomic::Ordering;

use exceptions::COUNTERS;
use uart::println;

/// The Image header's flags: little-endian (bit 0 clear), 4 KiB pages (bits [2:1] = 1), and
/// bit 3 clear: the 2 MiB-aligned base must be as close to the start of RAM as possible, for
/// we are linked at RAM base + text_offset.
const IMAGE_FLAGS: u64 = 1 << 1;
/// The level we are written for.
const EXPECTED_EL: u64 = 1;
/// FNV-1a, for the image checksum.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

core::arch::global_asm!(
    include_str!("asm/boot.S"),
    IMAGE_FLAGS = const IMAGE_FLAGS,
    MAX_CPUS = const dtb::MAX_CPUS,
    CPACR_FPEN = const mmu::CPACR_FPEN,
    MAIR = const mmu::MAIR,
    TCR = const mmu::TCR,
    SCTLR = const mmu::SCTLR,
    PAGE_TABLE = sym mmu::PAGE_TABLE,
    UART_DR = const uart::UART_DR_ADDRESS,
);
core::arch::global_asm!(include_str!("asm/vectors.S"));
core::arch::global_asm!(include_str!("asm/ops.S"));
core::arch::global_asm!(include_str!(concat!(env!("OUT_DIR"), "/sysreg_tables.S")));

extern "C" {
    static __image_start: u8;
    static __checked_end: u8;
    fn secondary_entry();
}

/// FNV-1a of the image's code and read-only data.
pub fn image_checksum() -> u64 {
    // SAFETY: linker symbols; only their addresses are taken.
    let (start, end) = unsafe { (&__image_start as *const u8 as usize, &__checked_end as *const u8 as usize) };
    // SAFETY: [start, end) is the loaded image's text and rodata, readable and never written.
    let bytes = unsafe { core::slice::from_raw_parts(start as *const u8, end - start) };
    bytes.iter().fold(FNV_OFFSET, |hash, &b| (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME))
}

/// The first virtio-mmio slot whose DeviceID says block device.
fn find_disk(platform: &dtb::Platform) -> Option<u64> {
    platform.virtio_slots[..platform.virtio_count]
        .iter()
        .copied()
        .find(|&base| ops::checked_read32(base + ops::VIRTIO_DEVICE_ID) == Some(ops::DEVICE_ID_BLOCK))
}

/// The boot CPU, MMU on, interrupts masked. `dtb` is the device tree's address from x0.
#[no_mangle]
extern "C" fn rust_main(dtb: usize) -> ! {
    // SAFETY: x0 at entry is the DTB's address (arm64 boot protocol); nothing writes the DTB
    // until scratch::init below, after this copy.
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
        fail(format_args!("running at EL{el}; the fuzzer is written for EL{EXPECTED_EL}"));
    }
    let options = match options::parse(platform.bootargs()) {
        Ok(options) => options,
        Err(word) => fail(format_args!("bad command-line word {:?}", core::str::from_utf8(word).unwrap_or("?"))),
    };
    exceptions::SEED.store(options.seed, Ordering::Relaxed);
    let Some((ram_start, ram_size)) = platform.ram else { fail(format_args!("the DTB has no /memory")) };
    if let Err(err) = scratch::init(ram_start, ram_size) {
        fail(format_args!("RAM {ram_start:#x}+{ram_size:#x}: {err}"));
    }
    let checksum = image_checksum();
    let disk = find_disk(&platform);
    println!(
        "FUZZ: start seed={} iter={} cpus={} ram={ram_start:#x}+{ram_size:#x} disk={:#x} conduit={:?} classes={:#x} \
         sysregs={}/{}/{}",
        options.seed,
        options.iter,
        platform.cpu_count,
        disk.unwrap_or(0),
        psci::conduit(),
        options.classes,
        sysregs::READS.len(),
        sysregs::WRITES.len(),
        sysregs::SYS_OPS.len()
    );
    run::publish(&options, &platform, disk);
    checks::reinit_gic(arch::cpu_index());
    let entry = secondary_entry as *const () as u64;
    if let Some(scenario) = options.scenario {
        scenarios::run(scenario, &platform, disk, entry, options.seed);
    }
    let workers = run::start_workers(&platform, entry);
    let workers_ok = workers + 1 == platform.cpu_count;
    arch::unmask_irqs_and_serrors();
    run::go();
    run::stream(arch::cpu_index());
    let finished = run::wait_workers(&platform);
    arch::mask_irqs();
    summary(&options, platform.cpu_count);
    let mut report = checks::run_all(&platform, disk, checksum, entry, run::CHECK_CONTEXT);
    report.record("workers", workers_ok && finished, format_args!("started={workers} all_finished={finished}"));
    let verdict = if report.failed == 0 { "ok" } else { "FAILED" };
    println!("FUZZ: done seed={} {verdict} passed={} failed={}", options.seed, report.passed, report.failed);
    psci::system_off()
}

/// Sums one counter over all CPUs.
fn total(counter: impl Fn(&exceptions::Counters) -> &core::sync::atomic::AtomicU64) -> u64 {
    COUNTERS.iter().map(|c| counter(c).load(Ordering::Relaxed)).sum()
}

fn summary(options: &options::Options, cpus: usize) {
    let by_class = ops::totals();
    let ops: u64 = by_class.iter().sum();
    let aborts = total(|c| &c.ext_aborts) + total(|c| &c.other_aborts) + total(|c| &c.insn_aborts);
    let (ec_seen, dfsc_seen) = COUNTERS.iter().fold((0, 0), |(ec, dfsc), c| {
        (ec | c.ec_seen.load(Ordering::Relaxed), dfsc | c.dfsc_seen.load(Ordering::Relaxed))
    });
    println!(
        "FUZZ: summary seed={} iter={} ops={ops} undef={} aborts={aborts} serrors={} irqs={} fiqs={} \
         ext_aborts={} other_aborts={} insn_aborts={} fp_traps={} other_sync={} clobbers={} far_bad={} \
         stray_starts={} impdef_reached={} virtio_used={} cpus={cpus} ec_seen={ec_seen:#x} dfsc_seen={dfsc_seen:#x}",
        options.seed,
        options.iter,
        total(|c| &c.undef),
        total(|c| &c.serrors),
        total(|c| &c.irqs),
        total(|c| &c.fiqs),
        total(|c| &c.ext_aborts),
        total(|c| &c.other_aborts),
        total(|c| &c.insn_aborts),
        total(|c| &c.fp_traps),
        total(|c| &c.other_sync),
        ops::CLOBBERS.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>(),
        total(|c| &c.far_bad),
        run::STRAY_STARTS.load(Ordering::Relaxed),
        ops::IMPDEF_REACHED.load(Ordering::Relaxed),
        ops::VIRTIO_USED_ENTRIES.load(Ordering::Relaxed),
    );
    let mut line = [0u8; 256];
    let mut len = 0;
    for (name, count) in ops::CLASSES.iter().zip(by_class) {
        let mut writer = Buf { buf: &mut line, len: &mut len };
        let _ = core::fmt::write(&mut writer, format_args!(" {name}={count}"));
    }
    println!("FUZZ: classes{}", core::str::from_utf8(&line[..len]).unwrap_or(""));
}

/// A fixed buffer as a `fmt::Write`.
struct Buf<'a> {
    buf: &'a mut [u8],
    len: &'a mut usize,
}

impl core::fmt::Write for Buf<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = (*self.len + s.len()).min(self.buf.len());
        self.buf[*self.len..end].copy_from_slice(&s.as_bytes()[..end - *self.len]);
        *self.len = end;
        Ok(())
    }
}

/// Reports a reason not to go on and powers off.
fn fail(reason: core::fmt::Arguments) -> ! {
    println!("FUZZ: error: {reason}");
    println!("FUZZ: done seed={} FAILED", exceptions::SEED.load(Ordering::Relaxed));
    psci::system_off()
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    uart::print_line(format_args!("FUZZ: error: panic on cpu{}: {info}", arch::cpu_index()), true);
    uart::print_line(format_args!("FUZZ: done seed={} FAILED", exceptions::SEED.load(Ordering::Relaxed)), true);
    psci::system_off()
}
