//! Debian's unmodified kernel under the hypervisor on one vCPU: boot to /init, timer
//! interrupts, console input, PSCI SYSTEM_OFF and SYSTEM_RESET, a clean kernel log, and faults
//! for accesses to unassigned guest-physical addresses.

use std::time::Duration;

use integration_tests::Qemu;

/// Guest boot under TCG takes a few seconds natively; allow for emulation overhead and load.
const BOOT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(150);

fn one_vcpu_linux(name: &str, guest_args: &str) -> Qemu {
    Qemu::new(name)
        .var("SMP", "1")
        .var("HYP_ARGS", "vcpus=1")
        .var("GUEST_ARGS", format!("console=ttyAMA0 {guest_args}"))
        .wall_limit(Duration::from_secs(400))
}

/// Parses "HVTEST: arch_timer <n1> <n2>".
fn arch_timer_counts(line: &str) -> (u64, u64) {
    let numbers: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert_eq!(numbers.len(), 2, "two counts in {line:?}");
    (numbers[0], numbers[1])
}

/// Proves: Linux boots to /init on the hypervisor, the virtual timer interrupt is delivered
/// (the arch_timer count in /proc/interrupts grows over a second of guest time), and the
/// guest's `poweroff -f` ends QEMU through PSCI SYSTEM_OFF.
#[test]
fn linux_boots_timer_counts_and_poweroff_exits_qemu() {
    let mut run = one_vcpu_linux("linux_boots_timer_counts", "hvtest=interrupts").start();
    run.expect("HVTEST: init started", BOOT);
    let line = run.expect("HVTEST: arch_timer", STEP);
    let (before, after) = arch_timer_counts(&line);
    assert!(after > before, "the timer interrupt count grows: {line}");
    run.expect("HVTEST: done interrupts status=0", STEP);
    run.expect("(HYP) guest powered off (PSCI SYSTEM_OFF)", STEP);
    run.expect_exit(STEP);
}

/// Proves: the kernel log of a full boot has no oops, BUG, WARNING, RCU stall, "timed out",
/// or GIC / arch timer errors, and the guest sees one CPU.
#[test]
fn linux_kernel_log_is_clean() {
    let mut run = one_vcpu_linux("linux_kernel_log_is_clean", "hvtest=smoke").start();
    run.expect("HVTEST: init started", BOOT);
    run.expect("HVTEST: cpus 1", STEP);
    run.expect("HVTEST: dmesg-bad-count 0", STEP);
    run.expect("HVTEST: done smoke status=0", STEP);
    run.expect_exit(STEP);
    let log = run.output();
    for bad in ["GICv3: ", "arch_timer: "] {
        for line in log.lines().filter(|l| l.contains(bad)) {
            let lower = line.to_lowercase();
            assert!(!lower.contains("error") && !lower.contains("fail") && !lower.contains("broken"), "{line}");
        }
    }
    assert!(log.contains("GICv3: "), "the GIC driver probed");
    assert!(log.contains("arch_timer: cp15 timer(s) running"), "the timer driver probed");
}

/// Proves: the interactive shell reads typed commands through the emulated PL011, Ctrl-]
/// prints the exit profile on demand without disturbing the guest, `reboot -f`
/// (PSCI SYSTEM_RESET) boots the guest a second time from a clean state, and it then powers off.
#[test]
fn typed_commands_run_and_reboot_boots_again() {
    let mut run = one_vcpu_linux("typed_commands_and_reboot", "").start();
    run.expect("HVTEST: shell ready", BOOT);
    run.send_line("echo typed-$((6*7))");
    run.expect("typed-42", STEP);
    // Ctrl-] asks the hypervisor for its exit profile; the guest never sees the key.
    run.send("\x1d");
    run.expect("(HYP) profile begin", STEP);
    run.expect("(HYP) profile end", STEP);
    run.send_line("echo after-profile");
    run.expect("after-profile", STEP);
    run.send_line("reboot -f");
    run.expect("(HYP) guest reset (PSCI SYSTEM_RESET)", STEP);
    run.expect("HVTEST: init started", BOOT);
    run.expect("HVTEST: shell ready", STEP);
    run.send_line("echo second-$((40+2))");
    run.expect("second-42", STEP);
    // The timer interrupt works after the reset (a hardware-linked PPI left active across the
    // reset would starve the second boot of ticks: `sleep` would never return).
    run.send_line("a=$(grep arch_timer /proc/interrupts); sleep 1; b=$(grep arch_timer /proc/interrupts); echo timer-after-reboot ${a%% G*} ${b%% G*}");
    let line = run.expect("timer-after-reboot 11:", STEP);
    let counts: Vec<u64> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(counts.len() == 2 && counts[1] > counts[0], "arch_timer counts grow after reboot: {line}");
    run.send_line("poweroff -f");
    run.expect("(HYP) guest powered off (PSCI SYSTEM_OFF)", STEP);
    run.expect_exit(STEP);
}

/// Proves: a guest read and write of an unassigned guest-physical address (busybox devmem
/// through /dev/mem) each get an external abort (the process dies with SIGBUS), the hypervisor
/// logs both and stays up, and the guest keeps running.
#[test]
fn unassigned_address_faults_the_guest_not_the_hypervisor() {
    // 0x0c00_0000 is QEMU virt's platform bus, which the guest platform does not have.
    let mut run = one_vcpu_linux("unassigned_address_faults", "").start();
    run.expect("HVTEST: shell ready", BOOT);
    run.send_line("devmem 0x0c000000 32; echo read-status=$?");
    run.expect("(HYP) WARN: vcpu0: 4-byte read at unassigned IPA 0xc000000", STEP);
    run.expect("read-status=135", STEP);
    run.send_line("devmem 0x0c000010 32 0x1234; echo write-status=$?");
    run.expect("(HYP) WARN: vcpu0: 4-byte write at unassigned IPA 0xc000010", STEP);
    run.expect("write-status=135", STEP);
    run.send_line("echo still-$((1+1))-alive");
    run.expect("still-2-alive", STEP);
    run.send_line("poweroff -f");
    run.expect_exit(STEP);
}
