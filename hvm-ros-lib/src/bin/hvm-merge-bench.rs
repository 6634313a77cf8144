//! hvm-merge-bench: the costs of running a process's code in the HRT, each next to the Linux
//! operation it stands in for, in the form of hvbench's results ("HVBENCH: <metric> <value>
//! <unit>", read by scripts/hvm-bench.sh):
//! - merge_rt: one merge (0x30 round trip: upcall, the HRT switching address spaces, 0x3f);
//! - fault_forward / first_touch: one page fault of ROS code in the HRT, forwarded to this
//!   process and retried, next to this process touching a fresh page itself;
//! - syscall_forward / syscall: one getppid made by ROS code in the HRT (forwarded and
//!   performed here), next to the same system call made here;
//! - call_ros: a call of ROS code in the HRT that neither faults nor calls the system (taken
//!   off the forwarded figures, which are per fault / per system call).
//!
//! `hvm-merge-bench [rounds]` (default 20 merges, 20x64 pages, 20x100 system calls).

use std::process::ExitCode;
use std::time::Instant;

use hvm_ros_lib::ros::Hvm;

const PAGE: usize = 4096;
const PAGES_PER_ROUND: usize = 64;
const SYSCALLS_PER_ROUND: u64 = 100;

/// Reads one byte of each of `pages` pages at `at` (ROS code, run in the HRT or here).
extern "C" fn touch_pages(at: u64, pages: u64, _: u64, _: u64) -> u64 {
    let mut sum = 0u64;
    for page in 0..pages {
        // SAFETY: the caller maps `pages` pages at `at`; a volatile read makes each one fault.
        sum += u64::from(unsafe { core::ptr::read_volatile((at + page * PAGE as u64) as *const u8) });
    }
    sum
}

/// Makes `count` getppid system calls (ROS code, run in the HRT or here).
extern "C" fn getppid_loop(count: u64, _: u64, _: u64, _: u64) -> u64 {
    let mut last = 0;
    for _ in 0..count {
        // SAFETY: getppid has no arguments and cannot fail.
        last = unsafe { libc::syscall(libc::SYS_getppid) } as u64;
    }
    last
}

/// `pages` fresh anonymous pages (never touched).
fn fresh_pages(pages: usize) -> u64 {
    // SAFETY: a private anonymous mapping at an address of the kernel's choice.
    let at = unsafe {
        libc::mmap(
            core::ptr::null_mut(),
            pages * PAGE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(at, libc::MAP_FAILED, "mmap");
    at as u64
}

fn unmap(at: u64, pages: usize) {
    // SAFETY: `at` is a mapping of `pages` pages made by `fresh_pages`.
    unsafe { libc::munmap(at as *mut libc::c_void, pages * PAGE) };
}

fn report(metric: &str, total_ns: u128, count: u128, unit: &str) {
    let per = total_ns as f64 / count as f64;
    let value = if unit == "us" { per / 1000.0 } else { per };
    println!("HVBENCH: {metric} {value:.3} {unit}");
}

fn run(hvm: &Hvm, rounds: u64) -> Result<(), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let mut merge_ns = 0u128;
    for _ in 0..rounds {
        let start = Instant::now();
        hvm.merge().map_err(|e| fail("merge", &e))?;
        merge_ns += start.elapsed().as_nanos();
        hvm.unmerge().map_err(|e| fail("unmerge", &e))?;
    }
    report("merge_rt", merge_ns, u128::from(rounds), "us");

    hvm.merge().map_err(|e| fail("merge", &e))?;
    // What a call of ROS code in the HRT costs by itself (no fault, no system call): taken off
    // the forwarded figures.
    let mut call_ns = 0u128;
    for _ in 0..rounds {
        let start = Instant::now();
        // SAFETY: touch_pages with no pages reads nothing.
        unsafe { hvm.call_ros(touch_pages, [0, 0, 0, 0]) }.map_err(|e| fail("call_ros", &e))?;
        call_ns += start.elapsed().as_nanos();
    }
    let (mut forward_ns, mut native_ns) = (0u128, 0u128);
    let (mut forward_sys_ns, mut native_sys_ns) = (0u128, 0u128);
    for _ in 0..rounds {
        let at = fresh_pages(PAGES_PER_ROUND);
        let start = Instant::now();
        // SAFETY: touch_pages reads the mapping it is given, which stays mapped meanwhile.
        unsafe { hvm.call_ros(touch_pages, [at, PAGES_PER_ROUND as u64, 0, 0]) }.map_err(|e| fail("call_ros", &e))?;
        forward_ns += start.elapsed().as_nanos();
        unmap(at, PAGES_PER_ROUND);

        let at = fresh_pages(PAGES_PER_ROUND);
        let start = Instant::now();
        std::hint::black_box(touch_pages(at, PAGES_PER_ROUND as u64, 0, 0));
        native_ns += start.elapsed().as_nanos();
        unmap(at, PAGES_PER_ROUND);

        let start = Instant::now();
        // SAFETY: getppid_loop only makes system calls.
        unsafe { hvm.call_ros(getppid_loop, [SYSCALLS_PER_ROUND, 0, 0, 0]) }.map_err(|e| fail("call_ros", &e))?;
        forward_sys_ns += start.elapsed().as_nanos();
        let start = Instant::now();
        std::hint::black_box(getppid_loop(SYSCALLS_PER_ROUND, 0, 0, 0));
        native_sys_ns += start.elapsed().as_nanos();
    }
    hvm.unmerge().map_err(|e| fail("unmerge", &e))?;
    report("call_ros", call_ns, u128::from(rounds), "us");
    forward_ns = forward_ns.saturating_sub(call_ns);
    forward_sys_ns = forward_sys_ns.saturating_sub(call_ns);
    let faults = u128::from(rounds) * PAGES_PER_ROUND as u128;
    let calls = u128::from(rounds * SYSCALLS_PER_ROUND);
    report("fault_forward", forward_ns, faults, "us");
    report("first_touch", native_ns, faults, "us");
    report("syscall_forward", forward_sys_ns, calls, "us");
    report("syscall", native_sys_ns, calls, "us");
    Ok(())
}

fn main() -> ExitCode {
    let rounds = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => 20,
        Some(Ok(n)) if n > 0 => n,
        _ => {
            eprintln!("usage: hvm-merge-bench [rounds > 0]");
            return ExitCode::from(2);
        }
    };
    let hvm = match Hvm::open() {
        Ok(hvm) => hvm,
        Err(e) => {
            eprintln!("hvm-merge-bench: {e}");
            return ExitCode::from(3);
        }
    };
    match run(&hvm, rounds) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hvm-merge-bench: {e}");
            ExitCode::from(1)
        }
    }
}
