//! hvm-test-rs: guest/hvm-test/hvm-test.c (Palacios' HVM test program) through the Rust API,
//! plus a check of every built-in HRT function.
//!
//! usage: hvm-test-rs [builtins | simple|time sync|async [num_merges num_calls]]
//!
//! First (always) the built-in checks: ADD (also wrapping), CHECKSUM of a 1 MiB heap buffer
//! against Fletcher-64 computed here, PRINT, SPIN_US, an unknown function (must fail), ADD on
//! every HRT core in parallel, a string invocation, and ADD through a synchronous session. Then
//! the Palacios test the arguments name (same steps and "Took" lines as hvm-test; merge steps
//! the hypervisor does not implement yet print "not yet" and the test goes on).
//! Exit status 0 when everything worked, 1 when a check or step failed, 2 on a usage error,
//! 3 when the HVM cannot be opened.

use std::ffi::CStr;
use std::process::ExitCode;
use std::time::Duration;

use hvm_ros_lib::abi::invoke::function;
use hvm_ros_lib::checksum::fletcher64_slice;
use hvm_ros_lib::ros::counter::{self, ticks_to_ns};
use hvm_ros_lib::ros::{Hvm, InvokeError, PinnedString};
use hvm_ros_lib::status::CallError;

const USAGE: &str = "usage: hvm-test-rs [builtins | simple|time sync|async [num_merges num_calls]]";
const HELLO: &CStr = c"hello world\n";
const CHECKSUM_BYTES: usize = 1 << 20;
const SPIN_US: u64 = 1000;
/// How long to wait for a booting HRT before the checks.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a call may take (a 1 MiB checksum walks the process's page tables; under TCG).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Simple,
    Time(u64, u64),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sync,
    Async,
}

#[derive(Debug, PartialEq, Eq)]
struct Args {
    test: Option<(Mode, Kind)>,
}

/// Palacios' parsing: only the first letter of each word counts.
fn parse(args: &[String]) -> Result<Args, String> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let kind = |w: &str| match w.chars().next() {
        Some('s') => Ok(Kind::Sync),
        Some('a') => Ok(Kind::Async),
        _ => Err(format!("Unknown type {w}")),
    };
    let count = |w: &str| w.parse::<u64>().map_err(|_| format!("'{w}' is not a count"));
    match words.as_slice() {
        [] | ["builtins"] => Ok(Args { test: None }),
        [mode, k] if mode.starts_with('s') => Ok(Args { test: Some((Mode::Simple, kind(k)?)) }),
        [mode, k, merges, calls] if mode.starts_with('s') => {
            count(merges)?;
            count(calls)?;
            Ok(Args { test: Some((Mode::Simple, kind(k)?)) })
        }
        [mode, k, merges, calls] if mode.starts_with('t') => {
            Ok(Args { test: Some((Mode::Time(count(merges)?, count(calls)?), kind(k)?)) })
        }
        [mode, _] if mode.starts_with('t') => Err("time needs num_merges and num_calls".into()),
        [mode, ..] if !mode.starts_with('s') && !mode.starts_with('t') => Err(format!("Unknown mode {mode}")),
        _ => Err("wrong number of arguments".into()),
    }
}

/// Counts failed checks.
struct Checks {
    failed: usize,
}

impl Checks {
    fn ok(&mut self, what: &str, detail: impl std::fmt::Display) {
        println!("check {what}: ok ({detail})");
    }

    fn fail(&mut self, what: &str, why: impl std::fmt::Display) {
        println!("check {what}: failed: {why}");
        self.failed += 1;
    }

    /// `result` must be Ok and satisfy `good`.
    fn expect<T: std::fmt::Debug>(
        &mut self,
        what: &str,
        result: Result<T, InvokeError>,
        good: impl FnOnce(&T) -> Result<(), String>,
    ) {
        match result {
            Ok(value) => match good(&value) {
                Ok(()) => self.ok(what, format!("{value:?}")),
                Err(why) => self.fail(what, format!("{value:?}: {why}")),
            },
            Err(e) => self.fail(what, e),
        }
    }
}

/// A buffer the HRT reads: written (so present) and locked (so it stays).
fn locked_buffer(len: usize) -> Vec<u8> {
    // A xorshift pattern: every byte value, no period a checksum could miss.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let buffer: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    // SAFETY: mlock only changes the residency of our own buffer (unlocked when it is freed:
    // the process ends first).
    if unsafe { libc::mlock(buffer.as_ptr().cast(), buffer.len()) } != 0 {
        println!("note: mlock of the checksum buffer failed ({}), going on", std::io::Error::last_os_error());
    }
    buffer
}

fn builtins(hvm: &Hvm, checks: &mut Checks) {
    checks.expect("ADD", hvm.invoke(function::ADD, [40, 2, 0, 0, 0, 0]), |&r| {
        if r == 42 {
            Ok(())
        } else {
            Err("expected 42".into())
        }
    });
    checks.expect("ADD wrapping", hvm.invoke(function::ADD, [u64::MAX, 2, 0, 0, 0, 0]), |&r| {
        if r == 1 {
            Ok(())
        } else {
            Err("expected 1".into())
        }
    });

    let buffer = locked_buffer(CHECKSUM_BYTES);
    let local = fletcher64_slice(&buffer);
    let args = [buffer.as_ptr() as u64, buffer.len() as u64, 0, 0, 0, 0];
    checks.expect("CHECKSUM of 1 MiB", hvm.invoke(function::CHECKSUM, args), |&r| {
        if r == local {
            Ok(())
        } else {
            Err(format!("computed here: {local:#x}"))
        }
    });

    let text = c"hvm-test-rs: PRINT from a ROS process";
    checks.expect("PRINT", hvm.print(text), |&r| {
        // The HRT answers the number of bytes printed.
        if r == text.to_bytes().len() as u64 {
            Ok(())
        } else {
            Err(format!("expected {} bytes printed", text.to_bytes().len()))
        }
    });

    let start = counter::now();
    let spun = hvm.invoke(function::SPIN_US, [SPIN_US, 0, 0, 0, 0, 0]);
    let elapsed_us = ticks_to_ns(counter::now() - start, counter::frequency()) / 1000;
    checks.expect(&format!("SPIN_US {SPIN_US}"), spun, |&r| {
        if r < SPIN_US {
            Err(format!("spun less than {SPIN_US} us"))
        } else if elapsed_us < SPIN_US {
            Err(format!("the call took {elapsed_us} us here"))
        } else {
            Ok(())
        }
    });

    match hvm.invoke(0xdead, [0; 6]) {
        Err(InvokeError::Call(CallError::Failed { core: 0, status })) => {
            checks.ok("unknown function fails", format!("status {status}"))
        }
        other => checks.fail("unknown function fails", format!("{other:?}")),
    }

    checks.expect("parallel ADD", hvm.invoke_parallel(function::ADD, [20, 22, 0, 0, 0, 0]), |results| {
        if results.is_empty() || results.iter().any(|&r| r != 42) {
            Err("expected 42 from every HRT core".into())
        } else {
            println!("parallel ADD ran on {} HRT core(s)", results.len());
            Ok(())
        }
    });

    checks.expect("string invocation", hvm.invoke_string(HELLO), |_| Ok(()));

    match hvm.synchronize() {
        Ok(mut session) => {
            checks.expect("sync ADD", session.call(function::ADD, [1, 2, 0, 0, 0, 0]), |&r| {
                if r == 3 {
                    Ok(())
                } else {
                    Err("expected 3".into())
                }
            });
            checks.expect("sync no-op", session.call_noop(), |_| Ok(()));
            checks.expect("desynchronize", session.desynchronize(), |_| Ok(()));
        }
        Err(e) => checks.fail("synchronize", e),
    }
}

/// Palacios' "Took" line with counter ticks for cycles, plus ns/iter.
fn report(ticks: u64, iters: u64) {
    let hz = counter::frequency();
    let per_iter = ticks.checked_div(iters).unwrap_or(0);
    let seconds = if iters == 0 { 0.0 } else { ticks as f64 / iters as f64 / hz as f64 };
    println!(
        "Took {ticks} cycles, {per_iter} cycles/iter, or {seconds:.6} seconds/iter ({:.1} ns/iter; cycles are {hz} Hz counter ticks)",
        seconds * 1e9
    );
}

/// A merge-type step failed: "not yet" (Ok, go on) when the hypervisor does not implement it.
fn merge_step(what: &str, result: Result<(), InvokeError>) -> Result<bool, String> {
    match result {
        Ok(()) => Ok(true),
        Err(e) if e.is_not_implemented() => {
            println!("{what}: not yet ({e}), going on");
            Ok(false)
        }
        Err(e) => Err(format!("failed to {what}: {e}")),
    }
}

/// Palacios' merge timing loop; Ok(false) when merges are not implemented yet.
fn time_merges(hvm: &Hvm, n: u64) -> Result<bool, String> {
    println!("Executing {n} address space merges");
    let start = counter::now();
    for _ in 0..n {
        if !merge_step("merge address spaces", hvm.merge())? {
            return Ok(false);
        }
    }
    report(counter::now() - start, n);
    Ok(true)
}

fn simple_sync(hvm: &Hvm) -> Result<(), String> {
    println!("Merge");
    merge_step("merge address spaces", hvm.merge())?;
    println!("Synchronize");
    let mut session = hvm.synchronize().map_err(|e| format!("failed to synchronize: {e}"))?;
    println!("Invoke");
    session.call_noop().map_err(|e| format!("failed to invoke HRT: {e}"))?;
    println!("Desynchonize");
    session.desynchronize().map_err(|e| format!("failed to desynchronize: {e}"))?;
    println!("Unmerge");
    merge_step("unmerge address spaces", hvm.unmerge())?;
    println!("Done.");
    Ok(())
}

fn simple_async(hvm: &Hvm) -> Result<(), String> {
    println!("Merge");
    merge_step("merge address spaces", hvm.merge())?;
    println!("Invoke");
    hvm.invoke_string(HELLO).map_err(|e| format!("failed to invoke HRT: {e}"))?;
    println!("Unmerge");
    merge_step("unmerge address spaces", hvm.unmerge())?;
    println!("Done.");
    Ok(())
}

fn time_sync(hvm: &Hvm, merges: u64, calls: u64) -> Result<(), String> {
    let merged = time_merges(hvm, merges)?;
    println!("Setting up synchronous invocation");
    let mut session = hvm.synchronize().map_err(|e| format!("failed to synchronize: {e}"))?;
    println!("Executing {calls} HRT calls synchronously");
    let start = counter::now();
    for i in 0..calls {
        session.call_noop().map_err(|e| format!("failed to invoke HRT (call {i}): {e}"))?;
    }
    report(counter::now() - start, calls);
    session.desynchronize().map_err(|e| format!("failed to desynchronize: {e}"))?;
    if merged {
        merge_step("unmerge address spaces", hvm.unmerge())?;
    }
    Ok(())
}

fn time_async(hvm: &Hvm, merges: u64, calls: u64) -> Result<(), String> {
    let merged = time_merges(hvm, merges)?;
    // One pinned buffer for every call, as Palacios passes the same stack buffer.
    let mut buffer = match PinnedString::new(HELLO) {
        Ok(Ok(buffer)) => buffer,
        Ok(Err(e)) => return Err(e.to_string()),
        Err(e) => return Err(format!("cannot pin a buffer: {e}")),
    };
    println!("Executing {calls} HRT calls");
    let start = counter::now();
    for i in 0..calls {
        hvm.invoke_string_buffer(&mut buffer, false).map_err(|e| format!("failed to invoke HRT (call {i}): {e}"))?;
    }
    report(counter::now() - start, calls);
    if merged {
        merge_step("unmerge address spaces", hvm.unmerge())?;
    }
    Ok(())
}

extern "C" fn signal_handler(code: u64) {
    // Only async-signal-safe work: a write(2) of a fixed-size line.
    let mut line = *b"HVM Signal Handler Invoked: code=0x0000000000000000\n";
    let digits = b"0123456789abcdef";
    for i in 0..16 {
        line[35 + i] = digits[((code >> (60 - 4 * i)) & 0xf) as usize];
    }
    // SAFETY: writes our own bytes to standard output.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&args) {
        Ok(args) => args,
        Err(why) => {
            println!("{why}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let hvm: &'static Hvm = match Hvm::open() {
        Ok(hvm) => Box::leak(Box::new(hvm)),
        Err(e) => {
            println!("hvm-test-rs: {e}");
            return ExitCode::from(3);
        }
    };
    hvm.set_timeout(CALL_TIMEOUT);
    match hvm.state() {
        Ok(status) if status.accepts_calls() => println!("state: {status}"),
        Ok(status) => {
            println!("state: {status}: waiting up to {READY_TIMEOUT:?} for a ready, idle HRT");
            if let Err(e) = hvm.wait_ready(READY_TIMEOUT) {
                println!("hvm-test-rs: {e}");
                return ExitCode::from(1);
            }
        }
        Err(e) => {
            println!("hvm-test-rs: state: {e}");
            return ExitCode::from(1);
        }
    }

    // As Palacios' test: remove any handler, register ours on an 8 KiB stack.
    let _ = hvm.unregister_signal();
    let stack: &'static mut [u8] = Box::leak(vec![0u8; 8192].into_boxed_slice());
    if let Err(e) = hvm.register_signal_with_stack(signal_handler, stack) {
        println!("signal handler registration failed ({e}), going on");
    }

    let mut checks = Checks { failed: 0 };
    builtins(hvm, &mut checks);

    let test = match args.test {
        None => Ok(()),
        Some((Mode::Simple, Kind::Sync)) => simple_sync(hvm),
        Some((Mode::Simple, Kind::Async)) => simple_async(hvm),
        Some((Mode::Time(merges, calls), Kind::Sync)) => time_sync(hvm, merges, calls),
        Some((Mode::Time(merges, calls), Kind::Async)) => time_async(hvm, merges, calls),
    };
    if let Err(why) = &test {
        println!("{why}");
    }
    let _ = hvm.unregister_signal();

    let ok = checks.failed == 0 && test.is_ok();
    println!(
        "hvm-test-rs: {} ({} check(s) failed{})",
        if ok { "ok" } else { "failed" },
        checks.failed,
        match test {
            Ok(()) => "",
            Err(_) => ", test failed",
        }
    );
    ExitCode::from(if ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_palacios_arguments() {
        assert_eq!(parse(&words("")), Ok(Args { test: None }));
        assert_eq!(parse(&words("builtins")), Ok(Args { test: None }));
        assert_eq!(parse(&words("simple sync")), Ok(Args { test: Some((Mode::Simple, Kind::Sync)) }));
        assert_eq!(parse(&words("s a")), Ok(Args { test: Some((Mode::Simple, Kind::Async)) }));
        assert_eq!(parse(&words("time async 10 1000")), Ok(Args { test: Some((Mode::Time(10, 1000), Kind::Async)) }));
        assert_eq!(parse(&words("time sync 0 5")), Ok(Args { test: Some((Mode::Time(0, 5), Kind::Sync)) }));
        for bad in ["time sync", "simple", "x sync", "simple x", "time sync a b", "simple sync 1"] {
            assert!(parse(&words(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_signal_line_shows_the_code_in_hex() {
        let line = b"HVM Signal Handler Invoked: code=0x0000000000000000\n";
        assert_eq!(&line[33..35], b"0x");
        assert_eq!(line.len(), 52);
    }
}
