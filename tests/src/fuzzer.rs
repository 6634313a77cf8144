//! The guest fuzzer (guest/fuzz) as the tests run it: built once per test run, a scratch disk
//! per run, and the hypervisor warnings that only report the fuzzer's own faults.

use std::process::Command;
use std::sync::OnceLock;

use crate::repo_path;

/// The fuzzer's own failure lines, and QEMU's (an assertion in QEMU itself ends the run).
pub const FAILURES: &[&str] = &["FUZZ: error", "(HYP) ERROR", "qemu-system-aarch64:"];

/// Hypervisor warnings that report the guest's own fault (anything else is a finding).
pub const GUEST_FAULT_WARNINGS: &[&str] = &[
    "UNDEF injected",
    "at unassigned IPA",
    "without a syndrome (ISV=0)",
    "instruction fetch from IPA",
    "disk: guest request refused",
];

/// The scratch disk the fuzzer may write anything to.
const DISK_BYTES: u64 = 8 << 20;

/// build/fuzz.bin, built (scripts/build-fuzz.sh, idempotent) once per test run.
pub fn image() -> String {
    static BUILT: OnceLock<Result<String, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let output = Command::new(repo_path("scripts/build-fuzz.sh"))
            .output()
            .map_err(|err| format!("scripts/build-fuzz.sh does not run: {err}"))?;
        if !output.status.success() {
            return Err(format!(
                "scripts/build-fuzz.sh failed ({}):\n{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(repo_path("build/fuzz.bin").display().to_string())
    });
    built.clone().unwrap_or_else(|err| panic!("{err}"))
}

/// A fresh scratch disk for one run (never build/disk.img: the fuzzer writes random sectors).
pub fn scratch_disk(name: &str) -> String {
    let path = repo_path(&format!("build/test-files/{name}.img"));
    std::fs::create_dir_all(path.parent().expect("dir")).expect("create build/test-files");
    let file = std::fs::File::create(&path).expect("create the scratch disk");
    file.set_len(DISK_BYTES).expect("size the scratch disk");
    path.display().to_string()
}

/// The hypervisor warnings in `output` that are not reports of the guest's own faults.
pub fn unexplained_warnings(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|line| line.contains("(HYP) WARN"))
        .filter(|line| !GUEST_FAULT_WARNINGS.iter().any(|fault| line.contains(fault)))
        .collect()
}
