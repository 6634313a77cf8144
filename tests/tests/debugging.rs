//! Debugging aids on a running Linux guest: the gdb helper, the exit profile and its parser,
//! and `make trace` with its summary script.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use integration_tests::{free_port, repo_path, Qemu};

const BOOT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(120);

/// Proves: a batch gdb-multiarch session with scripts/gdb/hyp.py (what `make gdb` loads)
/// lists both vCPUs of a running Linux guest with their pCPU and PC, decodes the list
/// registers, walks stage 2 for RAM and for an MMIO address, and shows exit counters; the
/// guest keeps running after gdb detaches.
#[test]
fn gdb_helper_inspects_a_running_linux_guest() {
    let port = free_port();
    let mut run = Qemu::new("gdb_helper_on_linux")
        .var("SMP", "2")
        .var("HYP_ARGS", "vcpus=2")
        .arg("-gdb")
        .arg(format!("tcp::{port}"))
        .start();
    run.expect("HVTEST: shell ready", BOOT);
    let gdb = Command::new("timeout")
        .arg("120")
        .arg("gdb-multiarch")
        .args(["-q", "-batch", "-nx", "-x"])
        .arg(repo_path("scripts/gdb/hyp.py"))
        .arg(repo_path("build/hypervisor.elf"))
        .args(["-ex", &format!("target remote :{port}")])
        .args(["-ex", "hyp-vcpus", "-ex", "hyp-lrs", "-ex", "hyp-s2 0x40000000", "-ex", "hyp-s2 0x09000000"])
        .args(["-ex", "hyp-pending", "-ex", "hyp-exits", "-ex", "detach"])
        .output()
        .expect("gdb-multiarch runs");
    let text = String::from_utf8_lossy(&gdb.stdout).to_string() + &String::from_utf8_lossy(&gdb.stderr);
    for wanted in [
        "2 vCPU(s)",
        "vcpu0: Runnable, loaded on pcpu0",
        "vcpu1: Runnable, loaded on pcpu1",
        "pcpu0 (at its last guest entry)",
        "LR0 = 0x",
        "ELRSR (derived) = 0b",
        "IPA 0x40000000 -> PA 0x",
        "IPA 0x9000000: not mapped",
        "interrupt(s) pending, active or in a list register",
        "vcpu0: exits=",
    ] {
        assert!(text.contains(wanted), "gdb output lacks {wanted:?}:\n{text}");
    }
    assert!(!text.contains("Python Exception"), "a helper command failed:\n{text}");
    assert!(!text.contains("guest pc 0x200"), "a vCPU sits at an exception vector with VBAR_EL1 = 0:\n{text}");
    run.send_line("echo after-gdb-$((20+22))");
    run.expect("after-gdb-42", STEP);
    run.send_line("poweroff -f");
    run.expect_exit(STEP);
}

/// Proves (DEBUGGING.md "Debugging the hybrid VM"): with scripts/gdb/hyp.py, gdb has the HRT's
/// symbols next to the hypervisor's, a breakpoint on an HRT function (`hrt_main`) stops an HRT
/// core at EL1, `hyp-hvm` shows both partitions and the HVM state, `hyp-break` resolves a short
/// Rust name, and the hybrid VM boots on after gdb detaches.
#[test]
fn gdb_breaks_in_the_hrt_and_shows_the_hybrid_vm() {
    let port = free_port();
    let mut run = Qemu::new("gdb_hvm")
        .var("HYP_ARGS", "hvm=on")
        .var("HRT", repo_path("build/hrt.elf").display().to_string())
        .arg("-S")
        .arg("-gdb")
        .arg(format!("tcp::{port}"))
        .start();
    let gdb = Command::new("timeout")
        .arg("180")
        .arg("gdb-multiarch")
        .args(["-q", "-batch", "-nx", "-x"])
        .arg(repo_path("scripts/gdb/hyp.py"))
        .arg(repo_path("build/hypervisor.elf"))
        .args(["-ex", &format!("target remote :{port}")])
        .args(["-ex", "hyp-break hrt_main", "-ex", "continue", "-ex", "info symbol $pc", "-ex", "print $cpsr & 0xc"])
        .args(["-ex", "hyp-hvm", "-ex", "hyp-vcpus", "-ex", "delete", "-ex", "hyp-break handle_psci_call"])
        .args(["-ex", "delete", "-ex", "detach"])
        .output()
        .expect("gdb-multiarch runs");
    let text = String::from_utf8_lossy(&gdb.stdout).to_string() + &String::from_utf8_lossy(&gdb.stderr);
    for wanted in [
        "HRT symbols loaded from",
        "hrt::hrt_main",
        "= 4",
        "ROS: vCPUs 0-2, RAM 0x40000000..0x80000000 (1024 MiB), stage 2 VMID 1",
        "HRT: vCPUs 3-3, RAM 0x80000000..0x84000000 (64 MiB), stage 2 VMID 2",
        "transaction state: Idle",
        "HRT status: Booting",
        "HRT entry 0xffffff80",
        "vcpu3: Runnable, loaded on pcpu3",
        "file hypervisor/src/vm/exits.rs",
    ] {
        assert!(text.contains(wanted), "gdb output lacks {wanted:?}:\n{text}");
    }
    assert!(!text.contains("Python Exception"), "a helper command failed:\n{text}");
    run.expect("(HRT) ready", BOOT);
    run.expect("HVTEST: shell ready", BOOT);
    run.send_line("poweroff -f");
    run.expect_exit(STEP);
}

/// Proves: a Linux boot ends with an exit profile that scripts/hyp-prof.py parses into a table
/// (and JSON, and a PNG chart) whose totals equal the raw counters the hypervisor printed.
#[test]
fn exit_profile_parses_and_totals_match() {
    let mut run = Qemu::new("exit_profile")
        .var("SMP", "2")
        .var("HYP_ARGS", "vcpus=2")
        .var("GUEST_ARGS", "console=ttyAMA0 hvtest=boot")
        .start();
    run.expect("(HYP) profile begin", BOOT);
    run.expect("(HYP) profile end", STEP);
    run.expect_exit(STEP);
    let log_path = repo_path("build/test-logs/exit_profile.log");
    std::fs::write(&log_path, run.output()).expect("save the log");

    // The raw counters, straight from the hypervisor's lines.
    let mut raw: BTreeMap<String, u64> = BTreeMap::new();
    let mut raw_total = 0;
    for line in run.output().lines().filter(|l| l.contains("(HYP) profile vcpu=") && l.contains(" exit=")) {
        let field = |key: &str| line.split_whitespace().find_map(|w| w.strip_prefix(key)).expect("field").to_string();
        let count: u64 = field("count=").trim().parse().expect("count");
        *raw.entry(field("exit=")).or_default() += count;
        raw_total += count;
    }
    assert!(raw_total > 1000, "a Linux boot exits often: {raw_total}");

    let json = Command::new("python3")
        .arg(repo_path("scripts/hyp-prof.py"))
        .arg("--json")
        .arg(&log_path)
        .output()
        .expect("python3");
    assert!(json.status.success(), "hyp-prof.py --json failed: {}", String::from_utf8_lossy(&json.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(parsed["totals"]["exits"].as_u64(), Some(raw_total));
    for (kind, count) in &raw {
        assert_eq!(parsed["totals"]["exit_kinds"][kind]["count"].as_u64(), Some(*count), "{kind}");
    }

    let table = Command::new("python3").arg(repo_path("scripts/hyp-prof.py")).arg(&log_path).output().expect("python3");
    let table_text = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.status.success() && table_text.contains("exit kind") && table_text.contains("% in hypervisor"),
        "{table_text}"
    );

    let png = repo_path("build/test-logs/exit_profile.png");
    let _ = std::fs::remove_file(&png);
    let chart = Command::new("/usr/bin/python3")
        .arg(repo_path("scripts/hyp-prof.py"))
        .arg(&log_path)
        .arg("--png")
        .arg(&png)
        .output()
        .expect("python3");
    assert!(chart.status.success(), "{}", String::from_utf8_lossy(&chart.stderr));
    let bytes = std::fs::read(&png).expect("PNG written");
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG file");
}

/// Proves: `make trace` on a short boot writes a QEMU -d int,guest_errors trace that
/// scripts/trace-summary.py reads: hypervisor calls, stage-2 data aborts and IRQs are counted.
#[test]
fn make_trace_produces_a_readable_trace() {
    let trace = repo_path("build/test-files/make-trace.log");
    let _ = std::fs::remove_file(&trace);
    let make = Command::new("make")
        .current_dir(repo_path(""))
        .args(["-s", "trace", "NO_BUILD=1", &format!("TRACE_LOG={}", trace.display())])
        .env("SMP", "1")
        .env("HYP_ARGS", "vcpus=1")
        .env("GUEST_ARGS", "console=ttyAMA0 hvtest=boot")
        .env("TIMEOUT", "240")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("make trace runs");
    let out = String::from_utf8_lossy(&make.stdout);
    assert!(
        out.contains("HVTEST: done boot status=0"),
        "the traced boot completed:\n{}",
        &out[out.len().saturating_sub(3000)..]
    );
    assert!(trace.exists(), "the trace file was written");

    let summary = Command::new("python3")
        .arg(repo_path("scripts/trace-summary.py"))
        .arg(&trace)
        .arg("--json")
        .output()
        .expect("python3");
    assert!(summary.status.success(), "{}", String::from_utf8_lossy(&summary.stderr));
    let parsed: serde_json::Value = serde_json::from_slice(&summary.stdout).expect("JSON");
    let text = parsed.to_string();
    for wanted in ["HVC64", "DABT_LOW", "IRQ"] {
        assert!(text.contains(wanted), "summary lacks {wanted}: {}", &text[..text.len().min(2000)]);
    }
    let human =
        Command::new("python3").arg(repo_path("scripts/trace-summary.py")).arg(&trace).output().expect("python3");
    assert!(String::from_utf8_lossy(&human.stdout).contains("Last"), "the last-exceptions table is printed");
    let _ = std::fs::remove_file(&trace);
}
