//! The hybrid VM (`hvm=on`): Linux on the ROS vCPUs, the HRT runtime kernel (build/hrt.elf)
//! on the others, 0xf00d calls from a ROS process through the doorbell and from the HRT,
//! isolation of HRT memory, and resets of either partition or both while the other runs.

use std::time::Duration;

use integration_tests::{count_guest_lines, Qemu, Run};

const BOOT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(120);
const HVM_ERROR_UNKNOWN_SUB_OP: i64 = -2;
const HVM_ERROR_WRONG_PARTITION: i64 = -3;
const HVM_ERROR_BAD_ADDRESS: i64 = -5;
const HVM_ERROR_INVALID_ARGUMENT: i64 = -6;

/// A hybrid VM on `smp` pCPUs with `hyp_args` (after `hvm=on`); the guest runs `hvtest`
/// (empty: the shell) with the HRT's heartbeat on.
fn hybrid_vm(name: &str, smp: &str, hyp_args: &str, hvtest: &str) -> Qemu {
    let test = if hvtest.is_empty() { String::new() } else { format!(" hvtest={hvtest}") };
    Qemu::new(name)
        .var("SMP", smp)
        .var("HYP_ARGS", format!("hvm=on {hyp_args}"))
        .var("HRT", integration_tests::repo_path("build/hrt.elf").display().to_string())
        .var("HRT_ARGS", "heartbeat=1")
        .var("GUEST_ARGS", format!("console=ttyAMA0 hvloglevel=1{test}"))
        // The HRT's own failure reports (guest/hrt).
        .fail_on("core parked")
        .fail_on("FAILED")
        .fail_on("timer check failed")
        .fail_on("HrtReady failed")
        .fail_on("(HYP) ERROR")
        .wall_limit(Duration::from_secs(900))
}

/// The "HVTEST: " report lines of the run so far.
fn report(run: &Run) -> Vec<String> {
    run.output().lines().filter_map(|l| l.find("HVTEST: ").map(|i| l[i + 8..].trim().to_string())).collect()
}

fn field<'a>(report: &'a [String], key: &str) -> &'a str {
    let prefix = format!("{key} ");
    let line = report.iter().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {key} line: {report:?}"));
    &line[prefix.len()..]
}

/// Boots the hybrid VM, runs guest/initramfs/tests/hvm.sh and checks what the ROS sees and
/// what its calls get.
fn ros_view_and_calls(name: &str, smp: &str, hyp_args: &str, ros_cpus: usize, hrt_cores: usize) {
    let mut run = hybrid_vm(name, smp, hyp_args, "hvm").start();
    run.expect("(HRT) hvm self-test: refused invoke, reset-ros and unknown sub-op ok", BOOT);
    run.expect(&format!("(HRT) ready: {hrt_cores} core(s), booted in"), STEP);
    run.expect("HVTEST: hrt-write", BOOT);
    // The HRT still runs after a ROS process hit its memory.
    run.expect("(HRT) heartbeat", STEP);
    run.expect("HVTEST: done hvm status=0", STEP);
    run.expect_exit(STEP);
    let output = run.output();
    let report = report(&run);

    assert_eq!(field(&report, "nproc"), ros_cpus.to_string(), "the ROS sees only its CPUs");
    assert_eq!(field(&report, "cpu-nodes"), ros_cpus.to_string());
    assert_eq!(field(&report, "ram"), "0x0000000040000000 0x0000000040000000", "ROS RAM only: 1 GiB");
    assert_eq!(field(&report, "doorbell"), "hvm-doorbell@b000000");

    let null = field(&report, "null");
    assert!(null.starts_with("rc=0 null: ok,") && null.contains("ns since HRT boot"), "{null}");
    assert!(field(&report, "loop-null").contains("ns/call"));
    let nonroot = field(&report, "nonroot");
    assert!(nonroot.starts_with("rc=3 ") && nonroot.contains("permission denied"), "refused cleanly: {nonroot}");

    let x0 = |subop: &str| -> i64 {
        let line = report.iter().find(|l| l.starts_with(&format!("call {subop} "))).expect("call line");
        line.rsplit("x0=").next().unwrap().parse().unwrap_or_else(|_| panic!("{line}"))
    };
    for hrt_only in ["2f", "3f", "5f", "10", "1e", "61"] {
        assert_eq!(x0(hrt_only), HVM_ERROR_WRONG_PARTITION, "sub-op {hrt_only} from a ROS process");
    }
    assert_eq!(x0("20"), HVM_ERROR_BAD_ADDRESS, "an invocation needs its buffer");
    assert_eq!(x0("41"), HVM_ERROR_INVALID_ARGUMENT, "a signal needs a code");
    assert_eq!(x0("99"), HVM_ERROR_UNKNOWN_SUB_OP);

    // SIGBUS kills devmem (128 + 7); the hypervisor injected an external abort and logged it.
    assert_eq!(field(&report, "hrt-read"), "rc=135", "a ROS read of HRT RAM faults");
    assert_eq!(field(&report, "hrt-write"), "rc=135", "a ROS write of HRT RAM faults");
    assert_eq!(field(&report, "null-after"), "rc=0");
    assert!(output.contains("read at unassigned IPA 0x80000000"), "{output}");
    assert_eq!(output.matches("(HRT) ready").count(), 1, "nothing reset the HRT");
}

/// Proves (acceptance 1, 2, 3, 5): 3 ROS + 1 HRT vCPUs on 4 pCPUs, pinned: Linux sees 3 CPUs
/// and its own RAM and the doorbell; the HRT boots, reports ready and refuses ROS-only calls
/// from the HRT; a ROS process makes the null call through the doorbell, a non-root one is
/// refused, HRT-only and unknown sub-operations answer errors, a process touching HRT memory
/// gets a fault and the HRT keeps running.
#[test]
fn hvm_pinned_ros_view_calls_and_isolation() {
    ros_view_and_calls("hvm_pinned", "4", "", 3, 1);
}

/// Proves acceptance 1 time-sliced: 2 ROS + 2 HRT vCPUs on 2 pCPUs.
#[test]
fn hvm_time_sliced_on_two_pcpus() {
    ros_view_and_calls("hvm_time_sliced", "2", "ros_vcpus=2 hrt_vcpus=2", 2, 2);
}

/// Runs `command` at the ROS shell and waits for its marker.
fn shell(run: &mut Run, command: &str, marker: &str) {
    run.send_line(&format!("{command}; echo {marker}"));
    run.expect(&format!("\n{marker}"), STEP);
}

/// Proves (acceptance 4): ten HRT resets while a ROS workload runs (the workload lives on, the
/// HRT is ready again each time); ten ROS resets while the HRT runs (Linux boots again, the
/// HRT is not rebooted: its heartbeat goes on and no new ready line appears); ten resets of
/// both (both boot again).
#[test]
fn hvm_resets_one_partition_while_the_other_runs() {
    let mut run = hybrid_vm("hvm_resets", "4", "", "").start();
    run.expect("(HRT) ready", BOOT);
    run.expect("HVTEST: shell ready", BOOT);
    // A ROS workload that counts; it must count on through HRT resets.
    shell(&mut run, "(i=0; while :; do i=$((i+1)); echo $i >/tmp/count; done) & echo $! >/tmp/worker", "started");
    for round in 1..=10 {
        // The HRT may be ready again before the shell prints the marker.
        run.send_line("hvmctl reset-hrt");
        run.expect("(HRT) ready", STEP);
        shell(&mut run, "hvmctl null", &format!("hrt-reset-{round}"));
    }
    shell(&mut run, "kill -0 $(cat /tmp/worker) && echo worker alive count=$(cat /tmp/count)", "checked");
    let output = run.output();
    assert!(output.contains("worker alive count="), "the ROS workload survived ten HRT resets");
    assert_eq!(output.matches("(HRT) ready").count(), 11);
    assert_eq!(count_guest_lines(&output, "HVTEST: init started"), 1, "the ROS never rebooted");

    for round in 1..=10 {
        let beats = run.output().matches("(HRT) heartbeat").count();
        run.send_line("hvmctl reset-ros");
        run.expect("HVTEST: shell ready", BOOT);
        run.expect("(HRT) heartbeat", STEP);
        let output = run.output();
        assert!(output.matches("(HRT) heartbeat").count() > beats, "round {round}: the HRT runs on");
        assert_eq!(output.matches("(HRT) ready").count(), 11, "round {round}: the HRT was not rebooted");
        shell(&mut run, "hvmctl null", &format!("ros-reset-{round}"));
    }
    assert_eq!(count_guest_lines(&run.output(), "HVTEST: init started"), 11);

    for round in 1..=10 {
        run.send_line("hvmctl reset-both");
        run.expect("(HRT) ready", BOOT);
        run.expect("HVTEST: shell ready", BOOT);
        shell(&mut run, "hvmctl null", &format!("both-reset-{round}"));
    }
    let output = run.output();
    assert_eq!(count_guest_lines(&output, "HVTEST: init started"), 21);
    assert_eq!(output.matches("(HRT) ready").count(), 21);
    run.send_line("poweroff -f");
    run.expect_exit(STEP);
}
