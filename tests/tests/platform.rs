//! The guest platform as software written for QEMU virt expects it: every listed virtio-mmio
//! slot is a transport (empty ones with DeviceID 0), and every boot gets fresh KASLR and RNG
//! seeds in /chosen, so Debian's kernel runs with KASLR as it does on plain QEMU.

use std::time::Duration;

use integration_tests::Qemu;

const BOOT: Duration = Duration::from_secs(240);
const STEP: Duration = Duration::from_secs(120);

/// Boots one vCPU without a disk, runs guest/initramfs/tests/platform.sh, and returns its
/// "HVTEST:" lines.
fn platform_report(name: &str, guest_args: &str) -> Vec<String> {
    let mut run = Qemu::new(name)
        .var("SMP", "1")
        .var("HYP_ARGS", "vcpus=1")
        .var("GUEST_ARGS", format!("console=ttyAMA0 hvloglevel=1 hvtest=platform {guest_args}"))
        .wall_limit(Duration::from_secs(400))
        .start();
    run.expect("HVTEST: init started", BOOT);
    run.expect("HVTEST: done platform status=0", STEP);
    run.expect_exit(STEP);
    let output = run.output();
    assert!(!output.contains("external abort injected"), "no probe faulted:\n{output}");
    output.lines().filter_map(|l| l.find("HVTEST: ").map(|i| l[i + 8..].trim().to_string())).collect()
}

/// The value after `key ` on the first report line starting with it.
fn field<'a>(report: &'a [String], key: &str) -> &'a str {
    let prefix = format!("{key} ");
    let line = report.iter().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("no {key} line: {report:?}"));
    &line[prefix.len()..]
}

/// Proves: the guest DTB lists QEMU virt's 32 virtio-mmio slots and each reads as a virtio
/// transport (magic "virt", version 2) with DeviceID 0 when empty, without a fault; and
/// /chosen/kaslr-seed is there and different on two boots (with `nokaslr` the kernel leaves
/// it in place; with KASLR it consumes and zeroes it).
#[test]
fn empty_virtio_slots_and_a_fresh_kaslr_seed_per_boot() {
    let first = platform_report("platform_first_boot", "nokaslr");
    assert_eq!(field(&first, "virtio-slots"), "32", "{first:?}");
    let slots: Vec<&String> = first.iter().filter(|l| l.starts_with("virtio-slot ")).collect();
    assert_eq!(slots.len(), 32);
    for slot in slots {
        assert!(slot.ends_with("magic=0x74726976 version=2 device=0"), "empty transport: {slot}");
    }
    let second = platform_report("platform_second_boot", "nokaslr");
    let (seed1, seed2) = (field(&first, "kaslr-seed"), field(&second, "kaslr-seed"));
    assert_eq!(seed1.len(), 16, "a 64-bit seed: {seed1}");
    assert_ne!(seed1, "0000000000000000");
    assert_ne!(seed1, seed2, "each boot gets its own seed");
}

/// Proves: without `nokaslr`, Debian's kernel randomises its own address on every boot (as
/// on plain QEMU): _text is away from its link address and differs between two boots.
#[test]
fn the_guest_kernel_runs_with_kaslr() {
    let first = platform_report("kaslr_first_boot", "");
    let second = platform_report("kaslr_second_boot", "");
    let (a, b) = (field(&first, "kaslr"), field(&second, "kaslr"));
    assert!(a.starts_with("enabled") && b.starts_with("enabled"), "{a} / {b}");
    assert_ne!(a, b, "a different place each boot");
}
