//! Links the HRT kernel with its linker script, checks that the script's link address is the
//! ABI's `hrt_boot::IMAGE_BASE`, and rebuilds when the script or the assembly changes.

use hvm_ros_lib::abi::hrt_boot;

/// The line of linker.ld that sets the link address.
const IMAGE_BASE_ASSIGNMENT: &str = "IMAGE_BASE = ";

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = std::fs::read_to_string(format!("{dir}/linker.ld")).expect("read linker.ld");
    let linked_at = script
        .lines()
        .find_map(|line| line.trim().strip_prefix(IMAGE_BASE_ASSIGNMENT))
        .and_then(|value| value.trim_end_matches(';').trim().strip_prefix("0x"))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
        .expect("linker.ld sets IMAGE_BASE = 0x<hex>;");
    assert_eq!(
        linked_at,
        hrt_boot::IMAGE_BASE,
        "linker.ld links the HRT at {linked_at:#x}, but the boot ABI maps its image at {:#x}",
        hrt_boot::IMAGE_BASE
    );

    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    // 4 KiB pages: segments need only page alignment (lld's AArch64 default is 64 KiB, which
    // would pad the file for nothing).
    println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    for file in ["linker.ld", "build.rs", "src/asm/entry.S", "src/asm/vectors.S", "src/asm/el0.S"] {
        println!("cargo:rerun-if-changed={file}");
    }
}
