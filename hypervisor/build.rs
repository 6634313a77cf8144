//! Links the EL2 binary with our linker script (host builds, i.e. unit tests, use the default)
//! and compiles the guest device-tree template with dtc, for `boot::guest_dtb` to embed.
use std::path::Path;
use std::process::Command;

/// The guest platform template, relative to this crate.
const GUEST_DTS: &str = "../dtb/guest-virt.dts";
/// Its compiled form, in OUT_DIR.
const GUEST_DTB: &str = "guest-virt.dtb";

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    if target_os == "none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    }
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=src/arch/aarch64/boot.S");
    println!("cargo:rerun-if-changed=src/arch/aarch64/vectors.S");

    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    compile_guest_dtb(&Path::new(&dir).join(GUEST_DTS), &Path::new(&out_dir).join(GUEST_DTB));
}

/// Runs `dtc -I dts -O dtb -o <dtb> <dts>`, failing the build with a clear message if dtc is
/// missing or rejects the source. dtc's warnings are passed on as cargo warnings (the guest_dtb
/// unit tests fail on them).
fn compile_guest_dtb(dts: &Path, dtb: &Path) {
    println!("cargo:rerun-if-changed={}", dts.display());
    let output =
        Command::new("dtc").args(["-I", "dts", "-O", "dtb", "-o"]).arg(dtb).arg(dts).output().unwrap_or_else(|err| {
            panic!(
                "cannot run dtc ({err}) to compile {}: install the device-tree compiler \
                 (Debian package device-tree-compiler, or run scripts/bootstrap.sh)",
                dts.display()
            )
        });
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!("dtc failed to compile {} ({}):\n{stderr}", dts.display(), output.status);
    }
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        println!("cargo:warning=dtc: {line}");
    }
}
