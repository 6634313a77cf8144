//! The guest fuzzer as the HRT of a hybrid VM (guest/fuzz built with its `hrt` feature into
//! build/fuzz-hrt.elf; issue 13): Linux boots in the ROS while every HRT core runs its own
//! random but reproducible operations: 0xf00d calls with random sub-operations, arguments and
//! pointers (the real HVM state machine, driven from the HRT side), every other SMCCC id, the
//! HRT console with good and bad buffers, loads and fetches at random IPAs (ROS RAM, HRT RAM,
//! unassigned addresses, the doorbell), stores where nothing is, random system registers, its
//! own redistributor and SGIs. The fuzzer checks the answers the protocol fixes and that the
//! hypervisor still serves the HRT, prints its verdict through the HRT console and idles (an
//! HRT never powers the machine off). Meanwhile a ROS process makes null calls through the
//! doorbell; afterwards the ROS must answer (hvmctl state, null, loop-null) with a clean kernel
//! log, neither partition may have rebooted, and the hypervisor may print no panic, no error and
//! no warning other than a guest fault report.
//!
//! What is typed at the ROS prints its markers through shell arithmetic (`$((40+2))`), so the
//! echo of the typed line never matches them; the kernel-log pattern is bracketed for the same
//! reason (Linux's failure lines fail the run).
//!
//! One seed on 1 ROS + 1 HRT vCPU (pinned), one on 1 ROS + 2 HRT vCPUs time-sliced on two
//! pCPUs. A failure names the scripts/fuzz.sh command (MODE=hrt) that reproduces it.

use std::time::Duration;

use integration_tests::fuzzer::{self, FAILURES};
use integration_tests::{count_guest_lines, repo_path, Qemu, Run};

/// Operations per HRT core: about 15 s on a pCPU of its own under TCG (measured: 50,000 in
/// 5 s), so the random phase outlasts the ROS's boot and overlaps its null calls.
const ITER: u64 = 150_000;
/// Until the fuzzer's start line, until the ROS's shell, until the fuzzer's verdict, until the
/// ROS's checks, until QEMU exits.
const BOOT: Duration = Duration::from_secs(60);
const SHELL: Duration = Duration::from_secs(120);
const RANDOM_PHASE: Duration = Duration::from_secs(240);
const ROS_CHECKS: Duration = Duration::from_secs(120);
const EXIT: Duration = Duration::from_secs(30);
const WALL_LIMIT: Duration = Duration::from_secs(480);
/// Hypervisor warnings that report an HRT's own fault (besides fuzzer::GUEST_FAULT_WARNINGS).
const HRT_GUEST_FAULT_WARNINGS: &[&str] = &["HRT SMCCC call", "HRT console text at IPA"];

/// Typed at the ROS once its shell is up: null calls through the doorbell until the fuzzer is
/// done (then /tmp/fuzz-done exists).
const ROS_LOAD: &str = "(n=0; while [ ! -e /tmp/fuzz-done ]; do hvmctl null >/dev/null || \
    { echo \"ROS-LOOP-$((40+2)) failed after $n calls\"; break; }; n=$((n+1)); done; \
    echo \"ROS-LOOP-$((40+2)) done calls=$n\") &";
/// Typed once the fuzzer is done: stop the load, then the checks.
const ROS_CHECKS_COMMAND: &str = "touch /tmp/fuzz-done; wait; hvmctl state; hvmctl null; hvmctl loop-null 1000; \
    echo \"ROS-CHECKS-$((40+2)) dmesg-bad=$(dmesg | grep -cE \
    'B[U]G:|W[A]RNING:|O[o]ps|Unable to h[a]ndle|rcu.*st[a]ll|soft l[o]ckup|hung_t[a]sk')\"";

/// build/fuzz-hrt.elf (scripts/build-fuzz.sh builds it with build/fuzz.bin, once per run).
fn hrt_image() -> String {
    fuzzer::image();
    repo_path("build/fuzz-hrt.elf").display().to_string()
}

/// The line holding `pattern`: printed already (anywhere), or waited for.
fn seen_or_expect(run: &mut Run, pattern: &str, within: Duration) -> String {
    match run.output().lines().find(|line| line.contains(pattern)) {
        Some(line) => line.trim_end_matches('\r').to_string(),
        None => run.expect(pattern, within),
    }
}

/// Runs the HRT fuzzer with `seed` on `hrt_vcpus` next to a ROS of `ros_vcpus` on `pcpus`
/// pCPUs and asserts a clean run of both partitions.
fn fuzz_hrt(name: &str, seed: u64, pcpus: u32, ros_vcpus: u32, hrt_vcpus: u32) {
    let reproduce = format!(
        "MODE=hrt SEED={seed} ITER={ITER} SMP={pcpus} ROS_VCPUS={ros_vcpus} HRT_VCPUS={hrt_vcpus} scripts/fuzz.sh"
    );
    let qemu = Qemu::new(name)
        .var("SMP", pcpus.to_string())
        .var("HYP_ARGS", format!("hvm=on ros_vcpus={ros_vcpus} hrt_vcpus={hrt_vcpus}"))
        .var("HRT", hrt_image())
        .var("HRT_ARGS", format!("seed={seed} iter={ITER}"))
        .var("GUEST_ARGS", "console=ttyAMA0 hvloglevel=1")
        .wall_limit(WALL_LIMIT);
    let mut run = FAILURES.iter().fold(qemu, |qemu, pattern| qemu.fail_on(pattern)).start();
    run.expect(&format!("(HRT) FUZZ: start seed={seed} "), BOOT);
    run.expect("HVTEST: shell ready", SHELL);
    run.send_line(ROS_LOAD);
    let verdict = seen_or_expect(&mut run, &format!("(HRT) FUZZ: done seed={seed} "), RANDOM_PHASE);
    run.send_line(ROS_CHECKS_COMMAND);
    let ros_checks = run.expect("ROS-CHECKS-42 dmesg-bad=", ROS_CHECKS);
    run.send_line("poweroff -f");
    let status = run.expect_exit(EXIT);
    let output = run.output();

    let summary = output.lines().find(|line| line.contains("(HRT) FUZZ: summary ")).unwrap_or("no summary line");
    let failed_checks: Vec<&str> =
        output.lines().filter(|line| line.contains("FUZZ: check ") && line.contains(" fail ")).collect();
    let passed_checks = output.lines().filter(|line| line.contains("FUZZ: check ") && line.contains(" pass")).count();
    let other_warnings: Vec<&str> = fuzzer::unexplained_warnings(&output)
        .into_iter()
        .filter(|line| !HRT_GUEST_FAULT_WARNINGS.iter().any(|fault| line.contains(fault)))
        .collect();
    assert!(
        verdict.contains(" ok") && failed_checks.is_empty() && passed_checks >= 9 && other_warnings.is_empty(),
        "{name}: the HRT fuzzer's run failed (reproduce: {reproduce})\nverdict: {verdict}\nfailed checks: \
         {failed_checks:#?} ({passed_checks} passed)\nhypervisor warnings that are not guest faults: \
         {other_warnings:#?}\n{summary}\nfull log: build/test-logs/{name}.log"
    );

    // The ROS: its calls during the fuzz answered, it answers now, its kernel log is clean.
    let ros_ok = output.contains("ROS-LOOP-42 done calls=")
        && !output.contains("ROS-LOOP-42 failed")
        && output.lines().any(|line| line.starts_with("state: "))
        && output.lines().any(|line| line.starts_with("null: ok"))
        && output.contains("loop-null: 1000 calls")
        && ros_checks.trim_end().ends_with("dmesg-bad=0")
        && status.success();
    assert!(ros_ok, "{name}: the ROS is not healthy after the HRT's fuzz (reproduce: {reproduce})\n{ros_checks}\nQEMU: {status}\nfull log: build/test-logs/{name}.log");
    // Neither partition rebooted (a ROS line an HRT line broke counts once: count_guest_lines).
    let boots = count_guest_lines(&output, "HVTEST: init started");
    assert_eq!(boots, 1, "{name}: the ROS booted {boots} times");
    assert_eq!(output.matches("(HRT) FUZZ: start ").count(), 1, "{name}: the HRT booted more than once");
}

/// Proves: one HRT core (pinned) survives 150,000 random operations of seed 1, 0xf00d calls
/// first among them, with every fixed answer as the protocol says, while Linux boots in the
/// ROS and makes null calls; afterwards the hypervisor still serves the HRT and the ROS answers
/// with a clean kernel log, nothing rebooted and no hypervisor panic, error or unexplained
/// warning.
#[test]
fn fuzz_hrt_one_core_seed_1() {
    fuzz_hrt("fuzz_hrt_one_core_seed_1", 1, 2, 1, 1);
}

/// Proves: the same for two HRT cores of seed 2, time-sliced with the ROS's vCPU on two pCPUs
/// (each core its own stream; both race on the HVM state).
#[test]
fn fuzz_hrt_two_cores_time_sliced_seed_2() {
    fuzz_hrt("fuzz_hrt_two_cores_time_sliced_seed_2", 2, 2, 1, 2);
}
