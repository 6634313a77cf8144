//! After the HRT's random phase: its summary, and whether the hypervisor still serves the HRT
//! (one `FUZZ: check <name> pass|fail <details>` line each, as checks/ in the Linux build):
//!
//! hvm (Null answers, GetStateAndEvent reports the HRT ready with its cores, the ROS's
//! sub-operations and an undefined one are refused), psci (the HRT has none: NOT_SUPPORTED),
//! console (too long and outside RAM refused), timer and sgi (checks/), memory (the image and
//! the canary intact), answers (checks/: no clobbered x4-x17, every abort at the address that
//! faulted), protocol (no unexpected answer during the random phase, calls.rs), cores (every
//! HRT core started and finished). Only this core's own GIC state is re-initialised: the
//! distributor and the other redistributors belong to the ROS.

use core::sync::atomic::{AtomicU64, Ordering};

use hvm_ros_lib::abi::{HvmError, SubOp, HRT_CONSOLE_MAX, HVM_HCALL_ID, HVM_OK};

use super::calls::{FIRST_UNEXPECTED, HVM_ANSWERS, UNEXPECTED};
use super::memory::{self, Layout};
use super::{ops, Config, STARTED};
use crate::checks::{self, Report};
use crate::exceptions::COUNTERS;
use crate::psci::{self, Instruction, CALL_REGS};
use crate::uart::println;
use crate::{gic, timer};

/// SMCCC NOT_SUPPORTED, PSCI_VERSION's id, and a sub-operation code the ABI does not define.
const NOT_SUPPORTED: u64 = u64::MAX;
const PSCI_VERSION: u64 = 0x8400_0000;
const UNDEFINED_SUB_OP: u64 = 0x99;
/// An IPA no RAM has (above the 4 GiB the identity map's RAM window ends at).
const NOT_RAM: u64 = 0x1_0000_0000;

/// The image's checksum before the random phase.
static IMAGE_CHECKSUM: AtomicU64 = AtomicU64::new(0);

pub fn remember_image() {
    IMAGE_CHECKSUM.store(crate::image_checksum(), Ordering::Relaxed);
}

/// Sums one counter over all CPUs.
fn total(counter: impl Fn(&crate::exceptions::Counters) -> &AtomicU64) -> u64 {
    COUNTERS.iter().map(|c| counter(c).load(Ordering::Relaxed)).sum()
}

/// The summary lines (each under the console's 256 bytes, so each stays one line).
pub fn summary(config: &Config) {
    let by_class = ops::totals();
    let all: u64 = by_class.iter().sum();
    let aborts = total(|c| &c.ext_aborts) + total(|c| &c.other_aborts) + total(|c| &c.insn_aborts);
    let clobbers: u64 = crate::ops::CLOBBERS.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    println!(
        "FUZZ: summary seed={} iter={} ops={all} undef={} aborts={aborts} serrors={} irqs={} fiqs={} clobbers={clobbers} \
         far_bad={} unexpected_answers={} cores={}",
        config.seed,
        config.iter,
        total(|c| &c.undef),
        total(|c| &c.serrors),
        total(|c| &c.irqs),
        total(|c| &c.fiqs),
        total(|c| &c.far_bad),
        UNEXPECTED.load(Ordering::Relaxed),
        config.layout.hrt_cores,
    );
    let (ec_seen, dfsc_seen) = COUNTERS.iter().fold((0, 0), |(ec, dfsc), c| {
        (ec | c.ec_seen.load(Ordering::Relaxed), dfsc | c.dfsc_seen.load(Ordering::Relaxed))
    });
    println!(
        "FUZZ: exceptions ext_aborts={} other_aborts={} insn_aborts={} fp_traps={} other_sync={} ec_seen={ec_seen:#x} \
         dfsc_seen={dfsc_seen:#x}",
        total(|c| &c.ext_aborts),
        total(|c| &c.other_aborts),
        total(|c| &c.insn_aborts),
        total(|c| &c.fp_traps),
        total(|c| &c.other_sync),
    );
    let mut line = [0u8; 200];
    let mut len = 0;
    for (name, count) in ops::CLASSES.iter().zip(by_class) {
        append(&mut line, &mut len, format_args!(" {name}={count}"));
    }
    println!("FUZZ: classes{}", core::str::from_utf8(&line[..len]).unwrap_or(""));
    let answer = |n: usize| HVM_ANSWERS[n].load(Ordering::Relaxed);
    println!(
        "FUZZ: hvm-answers ok={} failed={} unknown_sub_op={} wrong_partition={} wrong_state={} bad_address={} \
         invalid_argument={} not_hvm={} busy={} not_implemented={} wrong_level={} other={}",
        answer(0),
        answer(1),
        answer(2),
        answer(3),
        answer(4),
        answer(5),
        answer(6),
        answer(7),
        answer(8),
        answer(9),
        answer(10),
        answer(11),
    );
}

/// Appends formatted text to a fixed buffer (cut at its end).
fn append(buf: &mut [u8], len: &mut usize, args: core::fmt::Arguments) {
    struct Cursor<'a>(&'a mut [u8], &'a mut usize);
    impl core::fmt::Write for Cursor<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = (*self.1 + s.len()).min(self.0.len());
            self.0[*self.1..end].copy_from_slice(&s.as_bytes()[..end - *self.1]);
            *self.1 = end;
            Ok(())
        }
    }
    let _ = core::fmt::write(&mut Cursor(buf, len), args);
}

/// x0..x3 after an `hvc #0` with x0..x3 = `args`.
fn hvc(args: [u64; 4]) -> [u64; 4] {
    let mut regs = [0u64; CALL_REGS];
    regs[..4].copy_from_slice(&args);
    psci::call(Instruction::Hvc0, &mut regs);
    [regs[0], regs[1], regs[2], regs[3]]
}

fn check_hvm(report: &mut Report, layout: &Layout) {
    let null = hvc([HVM_HCALL_ID, SubOp::Null as u64, 0, 0]);
    let buffer = layout.data.start;
    let state = hvc([HVM_HCALL_ID, SubOp::GetStateAndEvent as u64, buffer, 0]);
    let refused = |op: u64| hvc([HVM_HCALL_ID, op, buffer, 0])[0];
    let (reset, invoke, undefined) =
        (refused(SubOp::ResetRos as u64), refused(SubOp::Invoke as u64), refused(UNDEFINED_SUB_OP));
    let wrong_partition = HvmError::WrongPartition.code();
    let passed = null[0] == HVM_OK
        && null[1] > 0
        && (state[0] as i64) >= 0
        && state[1] == 1
        && state[2] == layout.hrt_cores as u64
        && reset == wrong_partition
        && invoke == wrong_partition
        && undefined == HvmError::UnknownSubOp.code();
    report.record(
        "hvm",
        passed,
        format_args!(
            "null={:#x} ns_since_boot={} state={:#x} ready={} cores={} reset_ros={:#x} invoke={:#x} undefined={:#x}",
            null[0], null[1], state[0], state[1], state[2], reset, invoke, undefined
        ),
    );
}

fn check_psci_and_console(report: &mut Report, layout: &Layout) {
    let psci = hvc([PSCI_VERSION, 0, 0, 0])[0];
    report.record("psci", psci == NOT_SUPPORTED, format_args!("psci_version={psci:#x} (the HRT has no PSCI)"));
    let too_long = super::console::write(layout.data.start, HRT_CONSOLE_MAX + 1);
    let outside = super::console::write(NOT_RAM, 1);
    report.record(
        "console",
        too_long == HvmError::InvalidArgument.code() && outside == HvmError::BadAddress.code(),
        format_args!("too_long={too_long:#x} outside_ram={outside:#x}"),
    );
}

fn check_memory(report: &mut Report, layout: &Layout) {
    let checksum = crate::image_checksum();
    let at_boot = IMAGE_CHECKSUM.load(Ordering::Relaxed);
    let canary = memory::check_canary(layout);
    let (address, value) = canary.unwrap_or((0, 0));
    report.record(
        "memory",
        checksum == at_boot && canary.is_none(),
        format_args!(
            "image_checksum={checksum:#x} (boot {at_boot:#x}) canary_intact={} first_bad={address:#x}={value:#x}",
            canary.is_none()
        ),
    );
}

/// Runs every check on the main core (`cpu`); `finished`: every other core finished.
pub fn run(layout: &Layout, cpu: usize, finished: bool) -> Report {
    let mut report = Report::default();
    checks::print_gic_state(cpu);
    crate::arch::mask_irqs();
    gic::init_redistributor(cpu, &[timer::PPI_VIRTUAL, checks::SGI_CHECK]);
    gic::init_cpu_interface();
    timer::disarm();
    check_hvm(&mut report, layout);
    check_psci_and_console(&mut report, layout);
    checks::check_timer(&mut report);
    checks::check_sgi(&mut report, cpu);
    check_memory(&mut report, layout);
    checks::check_answers(&mut report);
    let unexpected = UNEXPECTED.load(Ordering::Relaxed);
    let [class, x0, x1, answer] = FIRST_UNEXPECTED.each_ref().map(|v| v.load(Ordering::Relaxed));
    report.record(
        "protocol",
        unexpected == 0,
        format_args!("unexpected_answers={unexpected} first: class={class} x0={x0:#x} x1={x1:#x} answer={answer:#x}"),
    );
    let started = STARTED.load(Ordering::Relaxed);
    report.record(
        "cores",
        finished && started == layout.hrt_cores as u64,
        format_args!("started={started} of {} all_finished={finished}", layout.hrt_cores),
    );
    report
}
