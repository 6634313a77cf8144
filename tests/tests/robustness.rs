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
