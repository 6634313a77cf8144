//! Bad boot input (issue 13): a truncated or corrupt kernel Image, an initrd overlapping the
//! kernel or the host DTB, `mem=` larger than RAM, `vcpus=0` / `vcpus=99`, no kernel module,
//! and for a hybrid VM no HRT image or a corrupt one: each ends with a message naming the
//! problem and QEMU exits, none hangs.

use std::path::PathBuf;
use std::time::Duration;

use integration_tests::{repo_path, Qemu};

/// Far more than a refused boot needs (it ends before any guest runs).
const EXIT: Duration = Duration::from_secs(90);

/// A file of the first `len` bytes of the guest kernel, with its first `zeroed` bytes zeroed.
fn damaged_image(name: &str, len: usize, zeroed: usize) -> PathBuf {
    let mut bytes = std::fs::read(repo_path("build/guest/Image")).expect("build/guest/Image (make guest)");
    bytes.truncate(len);
    bytes[..zeroed.min(len)].fill(0);
    let path = repo_path(&format!("build/test-files/{name}"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Boots with `vars` and expects `message` before QEMU exits on its own, within [`EXIT`].
fn refused(name: &str, vars: &[(&str, String)], message: &str) {
    let mut qemu = Qemu::new(name).wall_limit(Duration::from_secs(120));
    for (key, value) in vars {
        qemu = qemu.var(key, value.clone());
    }
    let mut run = qemu.start();
    run.expect(message, EXIT);
    run.expect_exit(EXIT);
    assert!(!run.output().contains("(HYP) PANIC"), "{name}: a panic instead of a refusal");
}

/// Proves: an Image too short for its header, and one whose header is zeroed, are refused with
/// the reason, before any guest runs.
#[test]
fn a_truncated_or_corrupt_kernel_is_refused() {
    let truncated = damaged_image("truncated-Image", 32, 0);
    refused(
        "boot_truncated_kernel",
        &[("KERNEL", truncated.display().to_string())],
        "not a usable arm64 Linux Image: TooShort",
    );
    let corrupt = damaged_image("corrupt-Image", 1 << 20, 64);
    refused(
        "boot_corrupt_kernel",
        &[("KERNEL", corrupt.display().to_string())],
        "not a usable arm64 Linux Image: BadMagic",
    );
}

/// Proves: an initrd placed over the kernel is refused (by QEMU's loader, which names both
/// regions), and one over the host DTB by the hypervisor.
#[test]
fn overlapping_modules_are_refused() {
    refused("boot_initrd_over_kernel", &[("INITRD_ADDR", "0x44100000".into())], "ROM regions are overlapping");
    refused("boot_initrd_over_dtb", &[("INITRD_ADDR", "0x48000000".into())], "overlap");
}

/// Proves: options the machine cannot honour stop the boot, naming the option.
#[test]
fn impossible_options_are_refused() {
    refused("boot_mem_too_big", &[("HYP_ARGS", "mem=4G".into())], "not enough RAM for 4 GiB of guest memory");
    refused("boot_vcpus_0", &[("HYP_ARGS", "vcpus=0".into())], "bad value '0' for option 'vcpus'");
    refused("boot_vcpus_99", &[("HYP_ARGS", "vcpus=99".into())], "bad value '99' for option 'vcpus'");
    refused("boot_hvm_and_vcpus", &[("HYP_ARGS", "hvm=on vcpus=2".into())], "option 'vcpus'");
}

/// Proves: no kernel module, a hybrid VM without its HRT image, and a corrupt HRT image each
/// stop the boot with a message saying what to give.
#[test]
fn missing_or_bad_images_are_refused() {
    refused("boot_no_kernel", &[("KERNEL", "none".into())], "no guest kernel");
    refused("boot_hvm_no_hrt", &[("HYP_ARGS", "hvm=on".into())], "hvm=on needs an HRT image");
    let not_elf = damaged_image("not-an-hrt.elf", 4096, 4096);
    refused(
        "boot_hvm_bad_hrt",
        &[("HYP_ARGS", "hvm=on".into()), ("HRT", not_elf.display().to_string())],
        "the HRT image cannot be booted: not an AArch64 ELF executable",
    );
}
