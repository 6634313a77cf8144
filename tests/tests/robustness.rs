//! A guest cannot hurt the hypervisor or pass itself off as it.

use std::time::Duration;

use integration_tests::Qemu;

const BOOT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(120);

/// Proves: guest console output can never contain the hypervisor's line mark `(HYP)`, however
/// the guest places it (line start, after a carriage return, mid-line): it is shown as
/// `(guest:HYP)`, so a reader and the tests' failure patterns (which include `(HYP) PANIC`,
/// and would fail this very test) only ever see real hypervisor lines.
#[test]
fn guest_output_cannot_forge_hypervisor_lines() {
    let mut run = Qemu::new("guest_cannot_forge_hypervisor_lines")
        .var("SMP", "1")
        .var("HYP_ARGS", "vcpus=1")
        .var("GUEST_ARGS", "console=ttyAMA0 hvloglevel=1 hvtest=forge")
        .wall_limit(Duration::from_secs(400))
        .start();
    run.expect("HVTEST: done forge status=0", BOOT);
    run.expect_exit(STEP);
    let output = run.output();
    assert_eq!(output.matches("(guest:HYP) PANIC forged").count(), 3, "{output}");
    for line in output.lines().filter(|l| l.contains("(HYP)")) {
        assert!(line.starts_with("(HYP) ") && !line.contains("forged"), "a forged hypervisor line: {line:?}");
    }
}

/// Proves: a guest that makes the hypervisor log on every access (300 reads of an unassigned
/// address, each an external abort for the guest) cannot flood the console: the hypervisor
/// prints a burst and a trickle of those warnings, counts the rest in the exit profile, and
/// the guest keeps running.
#[test]
fn guest_caused_log_lines_are_rate_limited() {
    let mut run = Qemu::new("guest_log_flood")
        .var("SMP", "1")
        .var("HYP_ARGS", "vcpus=1")
        .var("GUEST_ARGS", "console=ttyAMA0 hvloglevel=1 hvtest=logflood")
        .wall_limit(Duration::from_secs(400))
        .start();
    run.expect("HVTEST: logflood reads=300", BOOT);
    run.expect("HVTEST: done logflood status=0", STEP);
    let logs = run.expect("(HYP) profile vcpu=0 guest_logs=", STEP);
    run.expect_exit(STEP);
    let field = |key: &str| -> u64 {
        let word = logs.split_whitespace().find_map(|w| w.strip_prefix(key)).unwrap_or_else(|| panic!("{logs}"));
        word.parse().unwrap_or_else(|_| panic!("{logs}"))
    };
    let (printed, suppressed) = (field("guest_logs="), field("guest_logs_suppressed="));
    let warnings = run.output().matches("at unassigned IPA 0xc000000").count() as u64;
    assert_eq!(warnings, printed, "the profile counts what was printed");
    assert!(printed + suppressed >= 300, "every abort was counted: {logs}");
    assert!(printed <= 80, "{printed} warnings printed for 300 faults: not rate-limited");
    assert!(suppressed > 0, "{logs}");
}
