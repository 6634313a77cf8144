//! The guest's virtio-blk disk, backed by a real file through QEMU's virtio-blk device: data
//! the guest writes and syncs is in the file after power-off and is read back by a second boot.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use integration_tests::{repo_path, Qemu};

const BOOT: Duration = Duration::from_secs(300);
const STEP: Duration = Duration::from_secs(240);

/// A fresh copy of the test disk (scripts/mkdisk.sh) for one test.
fn fresh_disk(name: &str) -> PathBuf {
    let template = repo_path("build/disk.img");
    assert!(template.exists(), "build/disk.img missing: run scripts/mkdisk.sh (make test does)");
    let copy = repo_path(&format!("build/test-files/{name}.img"));
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    std::fs::copy(&template, &copy).expect("copy the test disk");
    copy
}

/// md5 of a file inside the ext4 image, read on the host with debugfs (not through the guest).
fn md5_in_image(image: &Path, file: &str) -> String {
    let out = image.with_extension(format!("{}.out", file.trim_start_matches('/')));
    let _ = std::fs::remove_file(&out);
    let status = Command::new("/usr/sbin/debugfs")
        .arg("-R")
        .arg(format!("dump {file} {}", out.display()))
        .arg(image)
        .output()
        .expect("debugfs runs (e2fsprogs)");
    assert!(status.status.success() && out.exists(), "debugfs could not dump {file}: {status:?}");
    let md5 = Command::new("md5sum").arg(&out).output().expect("md5sum runs");
    String::from_utf8_lossy(&md5.stdout).split_whitespace().next().unwrap_or_default().to_string()
}

fn disk_run(name: &str, disk: &Path, pcpus: u32, vcpus: u32, mode: &str) -> Qemu {
    Qemu::new(name)
        .var("SMP", pcpus.to_string())
        .var("HYP_ARGS", format!("vcpus={vcpus}"))
        .var("DISK", disk.to_str().unwrap())
        .var("GUEST_ARGS", format!("console=ttyAMA0 hvtest=blk blk_mode={mode}"))
        .wall_limit(Duration::from_secs(600))
}

fn value_after<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(key)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{key} in {line:?}"))
}

/// Proves: the guest loads virtio_mmio and virtio_blk, mounts /dev/vda, reads a known file
/// intact, writes 32 MiB, syncs and powers off; the file on the host holds the same data
/// (checked with debugfs), and a second boot reads it back with the same checksum.
#[test]
fn disk_writes_reach_the_file_and_survive_a_reboot() {
    let disk = fresh_disk("disk_writes_reach_the_file");
    let mut run = disk_run("disk_write", &disk, 1, 1, "write").start();
    run.expect("HVTEST: blk mounted", BOOT);
    run.expect("HVTEST: blk known", STEP);
    let line = run.expect("HVTEST: blk written", STEP);
    let written = value_after(&line, "written ").to_string();
    run.expect("HVTEST: blk ok write", STEP);
    run.expect("HVTEST: done blk status=0", STEP);
    run.expect_exit(STEP);
    assert_eq!(md5_in_image(&disk, "/written.bin"), written, "the host file holds what the guest wrote");

    let mut run = disk_run("disk_verify", &disk, 1, 1, "verify").start();
    let line = run.expect("HVTEST: blk verified", BOOT);
    assert_eq!(value_after(&line, "verified "), written);
    run.expect("HVTEST: blk ok verify", STEP);
    run.expect_exit(STEP);
}

/// Proves: on 4 vCPUs (time-sliced on 2 pCPUs), concurrent writers and readers on separate
/// files get their data intact, and every written file is in the host file.
#[test]
fn disk_concurrent_readers_and_writers_on_four_vcpus() {
    let disk = fresh_disk("disk_concurrent");
    let mut run = disk_run("disk_concurrent", &disk, 2, 4, "parallel").start();
    run.expect("HVTEST: blk parallel on 4 cpus", BOOT);
    let mut sums = Vec::new();
    for cpu in 0..4 {
        let line = run.expect(&format!("HVTEST: blk par{cpu} "), STEP);
        sums.push(value_after(&line, &format!("par{cpu} ")).to_string());
    }
    run.expect("HVTEST: blk ok parallel", STEP);
    run.expect_exit(STEP);
    for (cpu, sum) in sums.iter().enumerate() {
        assert_eq!(&md5_in_image(&disk, &format!("/par{cpu}.bin")), sum, "par{cpu}.bin on the host");
    }
}
