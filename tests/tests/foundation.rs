//! The hypervisor alone: EL2 boot on every pCPU, the banner, boot-time errors, and gdb.

use std::process::Command;
use std::time::Duration;

use integration_tests::{free_port, repo_path, scratch_file, Qemu};

const BOOT: Duration = Duration::from_secs(60);

/// Proves: all 4 pCPUs come up through firmware PSCI and the banner lists both guest-loader
/// modules with address, size and bootargs, read from the host DTB.
#[test]
fn banner_lists_pcpus_and_both_modules() {
    let kernel = scratch_file("not-a-kernel.bin", 8192);
    let initrd = scratch_file("initrd.bin", 4096);
    let mut run = Qemu::new("banner_lists_pcpus_and_both_modules")
        .var("SMP", "4")
        .var("KERNEL", kernel.to_str().unwrap())
        .var("INITRD", initrd.to_str().unwrap())
        .var("GUEST_ARGS", "console=ttyAMA0 quiet")
        .wall_limit(Duration::from_secs(90))
        .start();
    run.expect("(HYP) AArch64 EL2 hypervisor", BOOT);
    run.expect("(HYP) pCPUs: 4 (4 online)", BOOT);
    for cpu in 0..4 {
        run.expect(&format!("pcpu{cpu} mpidr={cpu:#x} online"), BOOT);
    }
    run.expect("(HYP) psci: smc", BOOT);
    run.expect("kernel at 0x44000000 size 0x2000 (8 KiB) bootargs=\"console=ttyAMA0 quiet\"", BOOT);
    run.expect("ramdisk at 0x4a000000 size 0x1000 (4 KiB)", BOOT);
    run.expect_exit(BOOT);
}

/// Proves: without a kernel module the hypervisor says how to give one and QEMU exits.
#[test]
fn missing_kernel_module_is_a_clear_error_and_qemu_exits() {
    let mut run = Qemu::new("missing_kernel_module")
        .var("KERNEL", "none")
        .var("INITRD", "none")
        .wall_limit(Duration::from_secs(90))
        .start();
    let line = run.expect("(HYP) ERROR: no guest kernel", BOOT);
    assert!(line.contains("-device guest-loader,addr="), "the message names the fix: {line}");
    run.expect("(HYP) powering off", BOOT);
    run.expect_exit(BOOT);
}

/// Proves: a malformed option is refused by name with the usage line, and QEMU exits.
#[test]
fn bad_option_value_is_refused() {
    let mut run = Qemu::new("bad_option_value")
        .var("KERNEL", "none")
        .var("INITRD", "none")
        .var("HYP_ARGS", "vcpus=0 log=info")
        .wall_limit(Duration::from_secs(90))
        .start();
    run.expect("(HYP) ERROR: bad value '0' for option 'vcpus'", BOOT);
    run.expect("(HYP) options: vcpus=", BOOT);
    run.expect_exit(BOOT);
    assert!(!run.output().contains("pCPUs:"), "nothing boots past a bad option");
}

/// Proves: an unknown option is refused by name.
#[test]
fn unknown_option_is_refused() {
    let mut run = Qemu::new("unknown_option")
        .var("KERNEL", "none")
        .var("INITRD", "none")
        .var("HYP_ARGS", "log=debug frobnicate=1")
        .wall_limit(Duration::from_secs(90))
        .start();
    run.expect("(HYP) ERROR: unknown option 'frobnicate'", BOOT);
    run.expect_exit(BOOT);
}

/// Proves: a module placed over hypervisor memory is refused with the address to use instead.
#[test]
fn module_over_hypervisor_memory_is_refused() {
    let kernel = scratch_file("overlap-kernel.bin", 4096);
    let mut run = Qemu::new("module_over_hypervisor_memory")
        .var("KERNEL", kernel.to_str().unwrap())
        .var("KERNEL_ADDR", "0x41000000")
        .var("INITRD", "none")
        .wall_limit(Duration::from_secs(90))
        .start();
    let line = run.expect("overlaps hypervisor memory", BOOT);
    assert!(line.contains("0x44000000"), "names where modules may go: {line}");
    run.expect_exit(BOOT);
}

/// Proves: `make debug` starts QEMU halted with a gdb server; a batch gdb-multiarch session
/// stops at `rust_main` with the DTB address in x0, continues, and quits QEMU.
#[test]
fn gdb_stops_at_rust_main_and_reads_registers() {
    let port = free_port();
    let make = Command::new("make")
        .current_dir(repo_path(""))
        .args(["-s", "debug", "NO_BUILD=1", &format!("GDB_PORT={port}")])
        .env("KERNEL", "none")
        .env("INITRD", "none")
        .env("TIMEOUT", "120")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("make debug starts");
    // Give QEMU a moment to open its gdb socket.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "gdb server never listened on {port}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let gdb = Command::new("timeout")
        .arg("120")
        .arg("gdb-multiarch")
        .args(["-q", "-batch", "-nx"])
        .arg(repo_path("build/hypervisor.elf"))
        .args(["-ex", &format!("target remote :{port}")])
        .args(["-ex", "break rust_main", "-ex", "continue", "-ex", "info registers x0", "-ex", "print/x $pc"])
        .args(["-ex", "info symbol $pc", "-ex", "monitor quit"])
        .output()
        .expect("gdb-multiarch runs");
    let text = String::from_utf8_lossy(&gdb.stdout).to_string() + &String::from_utf8_lossy(&gdb.stderr);
    let qemu = make.wait_with_output().expect("make debug ends");
    assert!(text.contains("Breakpoint 1, ") && text.contains("rust_main"), "gdb stopped at rust_main:\n{text}");
    let x0_line =
        text.lines().find(|l| l.trim_start().starts_with("x0 ")).unwrap_or_else(|| panic!("x0 read:\n{text}"));
    let x0 = x0_line.split_whitespace().nth(1).expect("x0 value");
    assert_ne!(x0, "0x0", "x0 holds the DTB address at rust_main:\n{text}");
    assert!(text.contains("rust_main + ") && text.contains("in section .text"), "pc is in rust_main:\n{text}");
    assert!(qemu.status.success() || qemu.status.code().is_some(), "QEMU ended after monitor quit");
}

/// Proves: ending a run (here: dropping it while the guest still runs) leaves no QEMU behind,
/// so a failing test cannot leave emulators burning the machine's CPUs.
#[test]
fn an_abandoned_run_leaves_no_qemu_behind() {
    // A guest argument no other test uses identifies this run's QEMU in `ps`.
    let marker = "abandoned_run_marker=1";
    let mut run = Qemu::new("abandoned_run")
        .var("SMP", "1")
        .var("HYP_ARGS", "vcpus=1")
        .var("GUEST_ARGS", format!("console=ttyAMA0 {marker}"))
        .start();
    run.expect("(HYP) guest:", BOOT);
    drop(run);
    std::thread::sleep(Duration::from_millis(500));
    let ps = Command::new("ps").args(["-eo", "args"]).output().expect("ps runs");
    let listing = String::from_utf8_lossy(&ps.stdout);
    let abandoned = listing.lines().filter(|l| l.contains("qemu-system-aarch64") && l.contains(marker)).count();
    assert_eq!(abandoned, 0, "QEMU still runs after its run was dropped:\n{listing}");
}
