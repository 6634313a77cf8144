//! The guest platform checked from inside against QEMU virt's own behaviour: guest/microbench
//! in conformance mode (`mode=conformance` on its command line) checks the timers' interrupt
//! lines, the virtual timer's latency, the empty virtio-mmio slots and the GIC's identification
//! registers, and prints one `CONFORMANCE: <name> pass|fail ...` line per check. The same
//! kernel runs on plain QEMU, the reference where every check must pass, and under the
//! hypervisor, where every check must pass as well. The tests build build/microbench.bin
//! themselves (scripts/build-microbench.sh, once per run; cargo makes it a no-op when current).

use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use integration_tests::{repo_path, Qemu};

/// Until the kernel's start line, until its summary, until QEMU exits; QEMU's own bound.
const BOOT: Duration = Duration::from_secs(60);
const CHECKS: Duration = Duration::from_secs(60);
const EXIT: Duration = Duration::from_secs(30);
const WALL_LIMIT: Duration = Duration::from_secs(160);

/// Every check the kernel reports, once each (guest/microbench/src/conformance/).
const CHECK_NAMES: &[&str] = &[
    "virtio_empty_slots",
    "gicd_typer_sane",
    "vtimer_disable_before_take_enable0",
    "vtimer_disable_before_take_enable0_ispendr_clear",
    "vtimer_disable_before_take_imask",
    "vtimer_disable_before_take_imask_ispendr_clear",
    "vtimer_disable_before_take_cval_future",
    "vtimer_disable_before_take_cval_future_ispendr_clear",
    "ptimer_disable_before_take_enable0",
    "ptimer_disable_before_take_enable0_ispendr_clear",
    "ptimer_disable_before_take_imask",
    "ptimer_disable_before_take_imask_ispendr_clear",
    "ptimer_disable_before_take_cval_future",
    "ptimer_disable_before_take_cval_future_ispendr_clear",
    "vtimer_latency_busy",
];

/// The kernel's own last words (it powers off after them).
const KERNEL_FAILURES: &[&str] = &["MICROBENCH: error", "MICROBENCH: panic", "MICROBENCH: exception"];

const LINE_PREFIX: &str = "CONFORMANCE: ";
const SUMMARY_PREFIX: &str = "CONFORMANCE: done ";
const GUEST_ARGS: &str = "mode=conformance";

/// build/microbench.bin, built (scripts/build-microbench.sh, idempotent) once per test run.
fn microbench() -> String {
    static BUILT: OnceLock<Result<String, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let output = Command::new(repo_path("scripts/build-microbench.sh"))
            .output()
            .map_err(|err| format!("scripts/build-microbench.sh does not run: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "scripts/build-microbench.sh failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(repo_path("build/microbench.bin").display().to_string())
    });
    built.clone().unwrap_or_else(|err| panic!("{err}"))
}

/// Boots `qemu` (the kernel in conformance mode), waits for its summary and power-off, and
/// returns the check lines (without the prefix) and the summary's passed and failed counts.
/// One run at a time: the latency check measures the host's scheduling too, so the two runs
/// are kept from competing for the CPUs.
fn conformance_report(qemu: Qemu) -> (Vec<String>, (usize, usize)) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let qemu = KERNEL_FAILURES.iter().fold(qemu.wall_limit(WALL_LIMIT), |qemu, pattern| qemu.fail_on(pattern));
    let mut run = qemu.start();
    run.expect("MICROBENCH: start mode=conformance", BOOT);
    let summary = run.expect(SUMMARY_PREFIX, CHECKS);
    let status = run.expect_exit(EXIT);
    assert!(status.success(), "QEMU exits by the kernel's PSCI SYSTEM_OFF, got {status}");
    let count = |key: &str| -> usize {
        let field = summary.split_whitespace().find_map(|word| word.strip_prefix(key));
        field.and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("no {key}<n> in {summary:?}"))
    };
    let counts = (count("passed="), count("failed="));
    let lines = run
        .output()
        .lines()
        .filter_map(|line| line.find(LINE_PREFIX).map(|i| line[i + LINE_PREFIX.len()..].trim_end().to_string()))
        .filter(|line| !line.starts_with("done "))
        .collect();
    (lines, counts)
}

/// Checks the hypervisor cannot pass on ARMv8.0 (documented in docs/design-notes.md): the
/// guest stops its virtual timer whose interrupt is already in a list register and unmasks IRQs
/// without any exit in between. CNTV accesses cannot trap without FEAT_ECV, so nothing
/// withdraws the list register; the guest takes the interrupt once and finds its timer not
/// firing (Linux counts it as spurious). KVM behaves the same. As soon as the guest touches the
/// GIC in between (the `_ispendr_clear` variants), the line is resampled; the physical timer's
/// accesses trap, so it passes every variant.
const KNOWN_LIMITS: &[&str] = &[
    "vtimer_disable_before_take_enable0",
    "vtimer_disable_before_take_imask",
    "vtimer_disable_before_take_cval_future",
];

/// Asserts that each of [`CHECK_NAMES`] was reported once and passed (apart from `allowed`,
/// which must be reported but may fail), and that the summary agrees; the message lists every
/// failing and missing check.
fn assert_all_pass(side: &str, report: (Vec<String>, (usize, usize)), allowed: &[&str]) {
    let (lines, (passed, failed)) = report;
    let verdict = |line: &String| line.split_whitespace().nth(1).map(str::to_string);
    let name = |line: &String| line.split_whitespace().next().map(str::to_string).unwrap_or_default();
    let failing_allowed =
        lines.iter().filter(|l| verdict(l).as_deref() != Some("pass") && allowed.contains(&name(l).as_str())).count();
    let failing: Vec<&String> = lines
        .iter()
        .filter(|line| verdict(line).as_deref() != Some("pass") && !allowed.contains(&name(line).as_str()))
        .collect();
    let reported = |name: &str| lines.iter().filter(|line| line.split_whitespace().next() == Some(name)).count();
    let missing: Vec<&str> = CHECK_NAMES.iter().copied().filter(|name| reported(name) != 1).collect();
    let unknown: Vec<&String> = lines
        .iter()
        .filter(|line| !CHECK_NAMES.iter().any(|name| line.split_whitespace().next() == Some(name)))
        .collect();
    assert!(
        failing.is_empty() && missing.is_empty() && unknown.is_empty(),
        "{side}: {} of {} checks fail:\n  {}\nnot reported exactly once: {missing:?}\nunknown lines: {unknown:?}",
        failing.len(),
        lines.len(),
        failing.iter().map(|line| line.as_str()).collect::<Vec<_>>().join("\n  ")
    );
    assert_eq!(
        (passed, failed),
        (lines.len() - failing_allowed, failing_allowed),
        "{side}: the summary counts the lines"
    );
}

/// Proves: on plain QEMU (`-M virt,gic-version=3 -cpu cortex-a57`, two CPUs) every conformance check
/// passes, so the checks describe QEMU virt's real behaviour: timer interrupts stopped before
/// they were taken are neither pending nor taken, the virtual timer interrupts a busy loop
/// within 2 ms (median of 20; up to 3 rounds, as host load shows up as latency), empty
/// virtio-mmio slots read as transports with DeviceID 0 without a fault, and GICD_TYPER and
/// GICR_TYPER are sane.
#[test]
fn conformance_checks_pass_on_plain_qemu() {
    let kernel = microbench();
    let qemu = Qemu::plain("conformance_plain_qemu")
        .arg("-M")
        .arg("virt,gic-version=3")
        .arg("-cpu")
        .arg("cortex-a57")
        .arg("-smp")
        .arg("2")
        .arg("-m")
        .arg("1G")
        .arg("-nographic")
        .arg("-nic")
        .arg("none")
        .arg("-kernel")
        .arg(kernel)
        .arg("-append")
        .arg(GUEST_ARGS);
    assert_all_pass("plain QEMU", conformance_report(qemu), &[]);
}

/// Proves: under the hypervisor (2 vCPUs on 2 pCPUs, the kernel as the guest) the same checks
/// pass as on plain QEMU: a guest timer interrupt that fired while the guest had IRQs masked
/// and that the guest then stopped (ENABLE=0, IMASK=1 or CVAL in the future), for the virtual
/// and the physical timer, is shown not pending in GICR_ISPENDR0 and then not taken; the
/// virtual timer's latency is as bounded; every empty virtio-mmio slot is a transport without
/// a fault. The [`KNOWN_LIMITS`] (no exit between stopping the timer and unmasking) must be
/// reported, and may fail.
#[test]
fn conformance_checks_pass_under_the_hypervisor() {
    let kernel = microbench();
    let qemu = Qemu::new("conformance_hypervisor")
        .var("KERNEL", kernel)
        .var("INITRD", "none")
        .var("SMP", "2")
        .var("HYP_ARGS", "vcpus=2 mem=256M")
        .var("GUEST_ARGS", GUEST_ARGS);
    assert_all_pass("hypervisor", conformance_report(qemu), KNOWN_LIMITS);
}
