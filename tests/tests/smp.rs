//! SMP guests: four vCPUs pinned or time-sliced, on cortex-a57 and on max; CPU hotplug; and
//! a minute of SMP stress without stalls.

use std::time::Duration;

use integration_tests::Qemu;

const BOOT: Duration = Duration::from_secs(300);
const STEP: Duration = Duration::from_secs(120);

fn smp_linux(name: &str, cpu: &str, pcpus: u32, vcpus: u32, hvtest: &str) -> Qemu {
    Qemu::new(name)
        .var("CPU", cpu)
        .var("SMP", pcpus.to_string())
        .var("HYP_ARGS", format!("vcpus={vcpus}"))
        .var("GUEST_ARGS", format!("console=ttyAMA0 hvloglevel=4 hvtest={hvtest}"))
        .wall_limit(Duration::from_secs(600))
}

/// Boots `vcpus` vCPUs on `pcpus` pCPUs and checks the guest brings all of them online with a
/// clean kernel log and no hypervisor error.
fn four_cpus_online(name: &str, cpu: &str, pcpus: u32) {
    let mut run = smp_linux(name, cpu, pcpus, 4, "smoke").start();
    run.expect("HVTEST: init started", BOOT);
    run.expect("HVTEST: cpus 4", STEP);
    run.expect("HVTEST: dmesg-bad-count 0", STEP);
    run.expect("HVTEST: done smoke status=0", STEP);
    run.expect_exit(STEP);
    let log = run.output();
    assert!(!log.contains("(HYP) ERROR"), "the hypervisor reported an error");
    if pcpus < 4 {
        assert!(log.contains(&format!("(HYP) 4 vCPUs on {pcpus} pCPUs: time-sliced")), "time-slicing was used");
    }
}

/// Proves: 4 vCPUs pinned to 4 pCPUs (PSCI CPU_ON, redistributors, SGIs) on cortex-a57.
#[test]
fn a57_four_vcpus_pinned() {
    four_cpus_online("a57_four_vcpus_pinned", "cortex-a57", 4);
}

/// Proves: 4 vCPUs time-sliced on 2 pCPUs on cortex-a57.
#[test]
fn a57_four_vcpus_on_two_pcpus() {
    four_cpus_online("a57_four_vcpus_on_two_pcpus", "cortex-a57", 2);
}

/// Proves: 4 vCPUs time-sliced on 1 pCPU on cortex-a57.
#[test]
fn a57_four_vcpus_on_one_pcpu() {
    four_cpus_online("a57_four_vcpus_on_one_pcpu", "cortex-a57", 1);
}

/// Proves: the same on `-cpu max` (PAuth keys switched, SVE/SME/MTE hidden), pinned.
#[test]
fn max_four_vcpus_pinned() {
    four_cpus_online("max_four_vcpus_pinned", "max", 4);
}

/// Proves: `-cpu max`, 4 vCPUs time-sliced on 2 pCPUs.
#[test]
fn max_four_vcpus_on_two_pcpus() {
    four_cpus_online("max_four_vcpus_on_two_pcpus", "max", 2);
}

/// Proves: `-cpu max`, 4 vCPUs time-sliced on 1 pCPU.
#[test]
fn max_four_vcpus_on_one_pcpu() {
    four_cpus_online("max_four_vcpus_on_one_pcpu", "max", 1);
}

/// Proves: CPU hot-unplug and re-plug through sysfs (PSCI CPU_OFF, AFFINITY_INFO, CPU_ON)
/// works twice, and the re-plugged CPU runs work, pinned and time-sliced.
#[test]
fn cpu_hotplug_pinned_and_time_sliced() {
    for (name, pcpus) in [("cpu_hotplug_pinned", 4), ("cpu_hotplug_time_sliced", 2)] {
        let mut run = smp_linux(name, "cortex-a57", pcpus, 4, "hotplug").start();
        run.expect("HVTEST: online 4", BOOT);
        for _ in 0..2 {
            run.expect("HVTEST: online 3", STEP);
            run.expect("HVTEST: online 4", STEP);
        }
        run.expect("HVTEST: pinned ran-on-3", STEP);
        run.expect("HVTEST: done hotplug status=0", STEP);
        run.expect_exit(STEP);
    }
}

/// Proves: 60 s of guest time of parallel CPU loops, cross-CPU pipe ping-pong and fork/exec
/// churn on 4 vCPUs over 2 pCPUs ends without RCU stall, soft lockup, hung task or Oops (the
/// harness fails on any of them), with work done by every part, and no hypervisor error.
#[test]
fn smp_stress_a_minute_on_two_pcpus() {
    let mut run = smp_linux("smp_stress_a_minute", "cortex-a57", 2, 4, "stress stress_seconds=60").start();
    run.expect("HVTEST: stress on 4 cpus for 60s", BOOT);
    let line = run.expect("HVTEST: stress done", Duration::from_secs(400));
    let field = |key: &str| -> Option<u64> {
        line.split_whitespace().find_map(|w| w.strip_prefix(key)).and_then(|v| v.parse().ok())
    };
    let (Some(seconds), Some(pingpong), Some(forks)) = (field("seconds="), field("pingpong="), field("forks=")) else {
        run.fail(&format!("malformed stress summary {line:?}"));
    };
    assert!(seconds >= 60, "{line}");
    assert!(pingpong > 0 && forks > 0, "every part made progress: {line}");
    run.expect("HVTEST: dmesg-bad-count 0", STEP);
    run.expect_exit(STEP);
    assert!(!run.output().contains("(HYP) ERROR"), "the hypervisor reported an error");
}

/// Proves: no IPI is lost at full rate: 4 x 6,000 cross-CPU pipe round trips (processes
/// pinned to CPUs 0 and 1, every round trip two cross-CPU wake-ups) on 4 pinned vCPUs finish.
/// A lost SGI hung this guest with two vCPUs spinning on a lock (lock-free SGI posting).
/// Without KASLR (hence KPTI) system calls are fast and the IPI rate highest.
#[test]
fn cross_cpu_ping_pong_loses_no_ipi() {
    let mut run = smp_linux("cross_cpu_ping_pong", "cortex-a57", 4, 4, "pingpong")
        .var("GUEST_ARGS", "console=ttyAMA0 hvloglevel=4 nokaslr mitigations=off hvtest=pingpong")
        .start();
    run.expect("HVTEST: init started", BOOT);
    run.expect("HVTEST: pingpong rounds=4", Duration::from_secs(420));
    run.expect("HVTEST: done pingpong status=0", STEP);
    run.expect_exit(STEP);
}
