//! hvm-signal-test: signals from the HRT into this process (`abi::signal`).
//!
//! `hvm-signal-test [count]` registers a handler, starts a thread that keeps 24 general
//! registers and the condition flags at known values in a tight loop and checks them on every
//! turn, and has the HRT raise `count` (default 1000) signals into the process (the
//! RAISE_SIGNALS built-in; each is delivered before the next is raised). Signals land in
//! whichever thread of the process runs at EL0: the checking loop or this thread's wait for
//! the invocation. It then checks every signal was handled exactly once with its code and that
//! no register of the loop ever changed. Prints one line per check; exit status 0 only if all
//! pass.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hvm_ros_lib::abi::invoke::function;
use hvm_ros_lib::ros::Hvm;

/// The code every signal carries.
const SIGNAL_CODE: u64 = 0x5157_0001;
const DEFAULT_COUNT: u64 = 1000;
const STACK_SIZE: usize = 64 << 10;

static HANDLED: AtomicU64 = AtomicU64::new(0);
/// Signals that interrupted the register-checking loop (its thread id is `CHECKER_TID`).
static IN_CHECKER: AtomicU64 = AtomicU64::new(0);
static CHECKER_TID: AtomicU64 = AtomicU64::new(0);
static WRONG_CODE: AtomicU64 = AtomicU64::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(code: u64) {
    if code == SIGNAL_CODE {
        HANDLED.fetch_add(1, Ordering::SeqCst);
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() } as u64;
        if tid == CHECKER_TID.load(Ordering::SeqCst) {
            IN_CHECKER.fetch_add(1, Ordering::SeqCst);
        }
    } else {
        WRONG_CODE.store(code, Ordering::SeqCst);
    }
}

/// Turns of a loop that sets x1..x15 (but x8), x19..x28 and NZCV to known values and checks
/// them until `STOP`; returns (turns, turns on which a register or the flags had changed).
#[cfg(target_arch = "aarch64")]
fn register_checking_loop() -> (u64, u64) {
    let (turns, bad): (u64, u64);
    // SAFETY: the asm uses only the registers it declares (clobbered or out), reads `STOP`
    // through the pointer it is given, and does not touch the stack.
    unsafe {
        core::arch::asm!(
            // x19 is LLVM's: kept aside in a register and put back at the end.
            "mov {saved19}, x19",
            // Known values: register n holds 0x100 + n.
            "mov x1, #0x101", "mov x2, #0x102", "mov x3, #0x103", "mov x4, #0x104",
            "mov x5, #0x105", "mov x6, #0x106", "mov x7, #0x107", "mov x9, #0x109",
            "mov x10, #0x10a", "mov x11, #0x10b", "mov x12, #0x10c", "mov x13, #0x10d",
            "mov x14, #0x10e", "mov x15, #0x10f",
            "mov x19, #0x113", "mov x20, #0x114", "mov x21, #0x115", "mov x22, #0x116",
            "mov x23, #0x117", "mov x24, #0x118", "mov x25, #0x119", "mov x26, #0x11a",
            "mov x27, #0x11b", "mov x28, #0x11c",
            "mov {turns}, #0",
            "mov {bad}, #0",
            "2:",
            // Flags Z and C set (x1 == x1), checked after a short spin.
            "cmp x1, x1",
            "mov {tmp}, #64",
            "3:",
            "sub {tmp}, {tmp}, #1",
            "cbnz {tmp}, 3b",
            "b.ne 4f",
            "b.lo 4f",
            "cmp x1, #0x101", "b.ne 4f", "cmp x2, #0x102", "b.ne 4f",
            "cmp x3, #0x103", "b.ne 4f", "cmp x4, #0x104", "b.ne 4f",
            "cmp x5, #0x105", "b.ne 4f", "cmp x6, #0x106", "b.ne 4f",
            "cmp x7, #0x107", "b.ne 4f", "cmp x9, #0x109", "b.ne 4f",
            "cmp x10, #0x10a", "b.ne 4f", "cmp x11, #0x10b", "b.ne 4f",
            "cmp x12, #0x10c", "b.ne 4f", "cmp x13, #0x10d", "b.ne 4f",
            "cmp x14, #0x10e", "b.ne 4f", "cmp x15, #0x10f", "b.ne 4f",
            "cmp x19, #0x113", "b.ne 4f", "cmp x20, #0x114", "b.ne 4f",
            "cmp x21, #0x115", "b.ne 4f", "cmp x22, #0x116", "b.ne 4f",
            "cmp x23, #0x117", "b.ne 4f", "cmp x24, #0x118", "b.ne 4f",
            "cmp x25, #0x119", "b.ne 4f", "cmp x26, #0x11a", "b.ne 4f",
            "cmp x27, #0x11b", "b.ne 4f", "cmp x28, #0x11c", "b.ne 4f",
            "b 5f",
            "4:",
            "add {bad}, {bad}, #1",
            "5:",
            "add {turns}, {turns}, #1",
            "ldrb {tmp:w}, [{stop}]",
            "cbz {tmp}, 2b",
            "mov x19, {saved19}",
            stop = in(reg) STOP.as_ptr(),
            saved19 = out(reg) _,
            turns = out(reg) turns,
            bad = out(reg) bad,
            tmp = out(reg) _,
            out("x1") _, out("x2") _, out("x3") _, out("x4") _, out("x5") _, out("x6") _,
            out("x7") _, out("x9") _, out("x10") _, out("x11") _, out("x12") _, out("x13") _,
            out("x14") _, out("x15") _, out("x20") _, out("x21") _, out("x22") _,
            out("x23") _, out("x24") _, out("x25") _, out("x26") _, out("x27") _, out("x28") _,
        );
    }
    (turns, bad)
}

#[cfg(not(target_arch = "aarch64"))]
fn register_checking_loop() -> (u64, u64) {
    while !STOP.load(Ordering::Relaxed) {
        std::hint::spin_loop();
    }
    (0, 0)
}

fn check(name: &str, ok: bool, detail: String) -> bool {
    println!("check {name}: {} ({detail})", if ok { "ok" } else { "FAILED" });
    ok
}

fn main() -> ExitCode {
    let count = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => DEFAULT_COUNT,
        Some(Ok(n)) if n > 0 => n,
        _ => {
            eprintln!("usage: hvm-signal-test [count > 0]");
            return ExitCode::from(2);
        }
    };
    let hvm: &'static Hvm = match Hvm::open() {
        Ok(hvm) => Box::leak(Box::new(hvm)),
        Err(e) => {
            eprintln!("hvm-signal-test: {e}");
            return ExitCode::from(3);
        }
    };
    let _ = hvm.unregister_signal();
    let stack: &'static mut [u8] = Box::leak(vec![0u8; STACK_SIZE].into_boxed_slice());
    if let Err(e) = hvm.register_signal_with_stack(on_signal, stack) {
        eprintln!("hvm-signal-test: registering the handler: {e}");
        return ExitCode::from(1);
    }
    let checker = std::thread::spawn(|| {
        // SAFETY: as in on_signal.
        CHECKER_TID.store(unsafe { libc::gettid() } as u64, Ordering::SeqCst);
        register_checking_loop()
    });
    while CHECKER_TID.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    let raised = hvm.invoke(function::RAISE_SIGNALS, [count, SIGNAL_CODE, 0, 0, 0, 0]);
    // The last signal may still be pending: give it a moment to land.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while HANDLED.load(Ordering::SeqCst) < count && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    STOP.store(true, Ordering::SeqCst);
    let (turns, bad) = checker.join().unwrap_or((0, u64::MAX));
    let _ = hvm.unregister_signal();
    let handled = HANDLED.load(Ordering::SeqCst);
    let mut ok = check("raise", matches!(raised, Ok(n) if n == count), format!("{raised:?}"));
    ok &= check("handled once each", handled == count, format!("{handled} of {count} handled"));
    let wrong = WRONG_CODE.load(Ordering::SeqCst);
    ok &= check("signal code", wrong == 0, format!("wrong code {wrong:#x}"));
    let interrupted = IN_CHECKER.load(Ordering::SeqCst);
    ok &= check(
        "registers intact",
        bad == 0 && turns > 0 && interrupted > 0,
        format!("{turns} turns, {bad} with a changed register, {interrupted} signals handled in the loop"),
    );
    println!("hvm-signal-test: {}", if ok { "ok" } else { "FAILED" });
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
