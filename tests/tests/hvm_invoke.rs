//! Invocations of HRT functions from ROS processes (hvm-ros-lib, hvmctl, hvm-test and
//! hvm-test-rs in the initramfs): async, parallel and synchronous calls, calls while the HRT is
//! not ready, and recovery from processes killed in the middle of a call.

use std::time::Duration;

use integration_tests::{repo_path, Qemu, Run};

const BOOT: Duration = Duration::from_secs(240);
const RUN: Duration = Duration::from_secs(600);

/// A hybrid VM on `smp` pCPUs running guest test `hvtest`, the HRT with `hrt_args`.
fn hybrid_vm(name: &str, smp: &str, hyp_args: &str, hrt_args: &str, hvtest: &str) -> Run {
    Qemu::new(name)
        .var("SMP", smp)
        .var("HYP_ARGS", format!("hvm=on {hyp_args}"))
        .var("HRT", repo_path("build/hrt.elf").display().to_string())
        .var("HRT_ARGS", hrt_args)
        .var("GUEST_ARGS", format!("console=ttyAMA0 hvloglevel=1 hvtest={hvtest}"))
        .fail_on("core parked")
        .fail_on("CallDone failed")
        .fail_on("(HYP) ERROR")
        .wall_limit(Duration::from_secs(900))
        .start()
}

/// The output of step `name` (the lines since the previous step) and its exit status. A
/// marker line an HRT line broke is written again whole by the console: the first whole one
/// counts.
fn step(output: &str, name: &str) -> (String, i32) {
    let marker = format!("HVTEST: step {name} rc=");
    let (end, rc) = output
        .match_indices(&marker)
        .find_map(|(at, _)| {
            let rest = output[at + marker.len()..].lines().next().unwrap_or("").trim();
            rest.parse::<i32>().ok().map(|rc| (at, rc))
        })
        .unwrap_or_else(|| panic!("no step {name}:\n{output}"));
    let start = output[..end].rfind("HVTEST: ").map_or(0, |i| i + output[i..].find('\n').unwrap_or(0));
    (output[start..end].to_string(), rc)
}

/// Proves: the built-in functions run in the HRT with their results checked (the checksum of a
/// 1 MiB ROS buffer computed in the HRT equals the ROS's own); Palacios' test program in C
/// (simple and timed, async and sync) and its Rust twin pass; 100,000 synchronous calls, then
/// async again; an invocation while the HRT is (re)booting answers WrongState at once, then
/// works once it is ready; a process killed during an async call leaves a state the next
/// process uses; one killed in sync mode leaves the channel up (calls refused) until an HRT
/// reset, after which calls work again.
#[test]
fn hvm_invocations_async_sync_and_recovery() {
    let mut run = hybrid_vm("hvm_invoke", "4", "", "ready_delay_ms=3000", "hvminvoke");
    run.expect("HVTEST: running hvminvoke", BOOT);
    run.expect("HVTEST: done hvminvoke status=0", RUN);
    run.expect_exit(Duration::from_secs(120));
    let output = run.output();

    for (name, wanted) in [
        ("ready-at-boot", ""),
        ("builtins", "check CHECKSUM of 1 MiB: ok"),
        ("simple-async", "hvm-test: ok"),
        ("simple-sync", "Desynchonize"),
        ("time-async", "ns/iter"),
        ("time-sync", "Executing 100000 HRT calls synchronously"),
        ("async-after-sync", "1 result(s): 42"),
        ("rust-example", "hvm-test-rs: ok (0 check(s) failed)"),
        // The rebooting HRT's lines may cut into this step's output: its status says enough.
        ("reset-hrt", ""),
        ("ready-after-reset", ""),
        ("async-after-reset", "1 result(s): 5"),
        ("after-killed-async", "1 result(s): 7"),
        ("state-after-killed-sync", "state: Sync (4)"),
        ("recover-reset", ""),
        ("recover-ready", ""),
        ("after-killed-sync", "1 result(s): 11"),
    ] {
        let (lines, rc) = step(&output, name);
        assert_eq!(rc, 0, "step {name} failed:\n{lines}");
        assert!(lines.contains(wanted), "step {name} lacks {wanted:?}:\n{lines}");
    }
    for name in ["not-ready-after-reset", "refused-while-stuck"] {
        let (lines, rc) = step(&output, name);
        assert_eq!(rc, 1, "step {name} must be refused:\n{lines}");
        assert!(lines.contains("WrongState"), "{name}: {lines}");
    }
    assert!(output.contains("(HRT) core 0: hello world"), "the HRT printed the test program's string");
    assert!(output.contains("(HRT) core 0: hvm-test-rs: PRINT from a ROS process"));
}

/// Proves: a parallel invocation runs on every HRT core exactly once (2 HRT cores) and each
/// core's result comes back; the Rust example's checks pass with two HRT cores.
#[test]
fn hvm_parallel_invocation_on_two_hrt_cores() {
    let mut run = hybrid_vm("hvm_parallel", "4", "ros_vcpus=2 hrt_vcpus=2", "", "hvmparallel");
    run.expect("HVTEST: done hvmparallel status=0", RUN);
    run.expect_exit(Duration::from_secs(120));
    let output = run.output();
    let (lines, rc) = step(&output, "parallel-add");
    assert_eq!(rc, 0, "{lines}");
    assert!(lines.contains("2 result(s): 42 (0x2a), 42 (0x2a)"), "{lines}");
    let (lines, rc) = step(&output, "parallel-spin");
    assert_eq!(rc, 0, "{lines}");
    let (lines, rc) = step(&output, "builtins");
    assert_eq!(rc, 0, "{lines}");
    assert!(lines.contains("parallel ADD ran on 2 HRT core(s)"), "{lines}");
}
