//! Data integrity across power-off and reset (issue 13): 20 cycles of writing known data to the
//! virtio-blk disk, sync, and `reboot -f` or `poweroff -f` (alternating); every boot verifies
//! everything written before it (guest/initramfs/tests/integrity.sh).

use std::time::Duration;

use integration_tests::{repo_path, Qemu};

const BOOT: Duration = Duration::from_secs(240);
const CYCLES: usize = 20;

/// Proves: 20 write + sync + power-off/reset cycles (reset: the same QEMU boots again through
/// PSCI SYSTEM_RESET; power-off: QEMU exits and starts again on the same disk file), and every
/// boot's sha256 check of all earlier cycles' data passes: no byte lost or corrupted.
#[test]
fn twenty_power_cycles_lose_no_data() {
    let template = repo_path("build/disk.img");
    assert!(template.exists(), "build/disk.img missing: run scripts/mkdisk.sh (make test does)");
    let disk = repo_path("build/test-files/integrity.img");
    std::fs::create_dir_all(disk.parent().unwrap()).unwrap();
    std::fs::copy(&template, &disk).expect("copy the test disk");
    let mut cycle = 0;
    let mut boots = 0;
    while cycle < CYCLES {
        boots += 1;
        let mut run = Qemu::new(&format!("integrity_{boots}"))
            .var("SMP", "2")
            .var("HYP_ARGS", "vcpus=2")
            .var("DISK", disk.display().to_string())
            .var("GUEST_ARGS", "console=ttyAMA0 hvloglevel=1 hvtest=integrity")
            .fail_on("FAILED")
            .wall_limit(Duration::from_secs(600))
            .start();
        // A reboot runs the next cycle in the same QEMU; a power-off ends it.
        loop {
            let line = run.expect("HVTEST: integrity cycle=", BOOT);
            assert!(line.contains(&format!("cycle={cycle} verified={cycle} ok")), "cycle {cycle}: {line}");
            cycle += 1;
            let ending = run.expect("HVTEST: integrity ending with ", BOOT);
            if ending.contains("poweroff") || cycle == CYCLES {
                break;
            }
        }
        let status = run.expect_exit(BOOT);
        assert!(status.success(), "QEMU exits cleanly after a power-off: {status}");
    }
    assert!(boots >= CYCLES / 2, "every other cycle starts QEMU again ({boots} starts)");
}
