//! hvm-test-rs: guest/hvm-test/hvm-test.c (Palacios' HVM test program) through the Rust API,
//! plus a check of every built-in HRT function, of the process's own code run in the HRT, and of
//! HRT image installation.
//!
//! usage: hvm-test-rs [builtins | simple|time sync|async [num_merges num_calls] | merged | install]
//!
//! - `builtins` (and first, for the Palacios modes): ADD (also wrapping), CHECKSUM of a 1 MiB
//!   heap buffer against Fletcher-64 computed here, PRINT, SPIN_US, an unknown function (must
//!   fail), ADD on every HRT core in parallel, a string invocation, and ADD through a
//!   synchronous session. Then the Palacios test the arguments name (same steps and "Took"
//!   lines as hvm-test).
//! - `merged`: merge, then functions of this process run in the HRT (`CALL_ROS`): an addition,
//!   on the first and on every HRT core; a raw system call's error; a sum over 64 MiB this process never touched (every page
//!   forwarded once; the count of page-fault events must equal the number of pages), then the
//!   HRT writing part of it (copy-on-write of the zero page); printf, write and getpid from the
//!   HRT; TLB coherence (page remapped under the HRT; fork while merged, copy-on-write in child
//!   and parent); a thread-local read with the TLS mirrored; an undefined instruction and an
//!   unresolvable fault (the call fails with the exception, the next one works); unmerge.
//! - `install`: install /lib/hrt/hrt-alt.elf and boot it; a truncated image and one with two
//!   overlapping PT_LOAD segments must be refused; then /lib/hrt/hrt.elf again (booted), so the
//!   machine ends with the default HRT.
//!
//! One line per check: `check <name>: ok (...)` or `check <name>: FAILED: ...`.
//! Exit status 0 when everything worked, 1 when a check or step failed, 2 on a usage error,
//! 3 when the HVM cannot be opened.

use std::cell::Cell;
use std::ffi::CStr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hvm_ros_lib::abi::invoke::function;
use hvm_ros_lib::abi::HvmError;
use hvm_ros_lib::checksum::fletcher64_slice;
use hvm_ros_lib::ros::counter::{self, ticks_to_ns};
use hvm_ros_lib::ros::merged::{current_tls, read_image};
use hvm_ros_lib::ros::{Hvm, InvokeError, PinnedString, RosFn};
use hvm_ros_lib::status::CallError;

const USAGE: &str = "usage: hvm-test-rs [builtins | simple|time sync|async [num_merges num_calls] | merged | install]";
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
    /// `merged` or `install` instead of the built-ins and a Palacios test.
    special: Option<Special>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Special {
    Merged,
    Install,
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
    let test = |test| Ok(Args { test: Some(test), special: None });
    match words.as_slice() {
        [] | ["builtins"] => Ok(Args { test: None, special: None }),
        ["merged"] => Ok(Args { test: None, special: Some(Special::Merged) }),
        ["install"] => Ok(Args { test: None, special: Some(Special::Install) }),
        [mode, k] if mode.starts_with('s') => test((Mode::Simple, kind(k)?)),
        [mode, k, merges, calls] if mode.starts_with('s') => {
            count(merges)?;
            count(calls)?;
            test((Mode::Simple, kind(k)?))
        }
        [mode, k, merges, calls] if mode.starts_with('t') => {
            test((Mode::Time(count(merges)?, count(calls)?), kind(k)?))
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
        println!("check {what}: FAILED: {why}");
        self.failed += 1;
    }

    /// Ok when `good` holds, else FAILED with `why`.
    fn check(&mut self, what: &str, good: bool, detail: impl std::fmt::Display) {
        if good {
            self.ok(what, detail);
        } else {
            self.fail(what, detail);
        }
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

/// A merge or unmerge step: its failure fails the test.
fn merge_step(what: &str, result: Result<(), InvokeError>) -> Result<(), String> {
    result.map_err(|e| format!("failed to {what}: {e}"))
}

/// Palacios' merge timing loop.
fn time_merges(hvm: &Hvm, n: u64) -> Result<(), String> {
    println!("Executing {n} address space merges");
    let start = counter::now();
    for i in 0..n {
        merge_step(&format!("merge address spaces (merge {i})"), hvm.merge())?;
    }
    report(counter::now() - start, n);
    Ok(())
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
    time_merges(hvm, merges)?;
    println!("Setting up synchronous invocation");
    let mut session = hvm.synchronize().map_err(|e| format!("failed to synchronize: {e}"))?;
    println!("Executing {calls} HRT calls synchronously");
    let start = counter::now();
    for i in 0..calls {
        session.call_noop().map_err(|e| format!("failed to invoke HRT (call {i}): {e}"))?;
    }
    report(counter::now() - start, calls);
    session.desynchronize().map_err(|e| format!("failed to desynchronize: {e}"))?;
    merge_step("unmerge address spaces", hvm.unmerge())
}

fn time_async(hvm: &Hvm, merges: u64, calls: u64) -> Result<(), String> {
    time_merges(hvm, merges)?;
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
    merge_step("unmerge address spaces", hvm.unmerge())
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

// ---------------------------------------------------------------------------------------------
// `merged`: functions of this process run in the HRT (CALL_ROS).

/// The array the HRT sums without this process ever touching it.
const UNTOUCHED_BYTES: usize = 64 << 20;
/// The part of it the HRT then writes.
const WRITTEN_BYTES: usize = 8 << 20;
/// How long the 64 MiB sum may take (one forwarded page fault per page; under TCG).
const FAULTS_TIMEOUT: Duration = Duration::from_secs(600);

extern "C" fn add4(a: u64, b: u64, c: u64, d: u64) -> u64 {
    a.wrapping_add(b).wrapping_add(c).wrapping_add(d)
}

/// Sum of `words` u64 at `at`.
extern "C" fn sum_words(at: u64, words: u64, _: u64, _: u64) -> u64 {
    let p = at as *const u64;
    (0..words as usize).fold(0u64, |sum, i| {
        // SAFETY: the caller passes `words` readable words at `at`.
        sum.wrapping_add(unsafe { p.add(i).read_volatile() })
    })
}

/// The word the HRT writes at index `i` of the written part.
fn fill_value(seed: u64, i: u64) -> u64 {
    seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Writes `fill_value(seed, i)` to word i of the `words` at `at`; their sum.
extern "C" fn fill_words(at: u64, words: u64, seed: u64, _: u64) -> u64 {
    let p = at as *mut u64;
    (0..words).fold(0u64, |sum, i| {
        let value = fill_value(seed, i);
        // SAFETY: the caller passes `words` writable words at `at`.
        unsafe { p.add(i as usize).write_volatile(value) };
        sum.wrapping_add(value)
    })
}

/// The u64 at `at`.
extern "C" fn read_word(at: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: the caller passes a readable word.
    unsafe { (at as *const u64).read_volatile() }
}

/// A raw `svc`: system call `number` with x0 = `a0`; the raw x0 back (a negative errno).
extern "C" fn raw_syscall(number: u64, a0: u64, _: u64, _: u64) -> u64 {
    #[cfg(target_arch = "aarch64")]
    {
        let ret: u64;
        // SAFETY: the test passes a harmless call (close of a bad descriptor).
        unsafe { core::arch::asm!("svc #0", in("x8") number, inlateout("x0") a0 => ret, options(nostack)) };
        ret
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        let _ = (number, a0);
        0
    }
}

/// printf (libc's stdout, flushed), write and getpid from the HRT; returns the pid.
extern "C" fn hello(_: u64, _: u64, _: u64, _: u64) -> u64 {
    // SAFETY: libc calls with valid, NUL-terminated arguments.
    unsafe {
        let pid = libc::getpid();
        libc::printf(c"hvm-test-rs: printf in the HRT: getpid() = %d\n".as_ptr(), pid);
        libc::fflush(std::ptr::null_mut());
        let line = b"hvm-test-rs: write(2) in the HRT\n";
        libc::write(1, line.as_ptr().cast(), line.len());
        pid as u64
    }
}

thread_local! {
    /// Set by this thread, read by ROS code in the HRT with the TLS mirrored.
    static TLS_VALUE: Cell<u64> = const { Cell::new(0) };
}

extern "C" fn read_tls_value(_: u64, _: u64, _: u64, _: u64) -> u64 {
    TLS_VALUE.with(Cell::get)
}

extern "C" fn read_tpidr(_: u64, _: u64, _: u64, _: u64) -> u64 {
    current_tls().0
}

/// Executes an undefined instruction.
extern "C" fn undefined_instruction(_: u64, _: u64, _: u64, _: u64) -> u64 {
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: traps (in the HRT: an exception event; the call fails).
        unsafe { core::arch::asm!("udf #0", options(noreturn, nostack)) }
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        0
    }
}

/// An anonymous private mapping of this process.
struct Mapping {
    at: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize, flags: libc::c_int, fd: libc::c_int, at: *mut u8) -> Result<Self, String> {
        // SAFETY: a new mapping (MAP_FIXED only over one of ours, which the caller unmapped).
        let p = unsafe { libc::mmap(at.cast(), len, libc::PROT_READ | libc::PROT_WRITE, flags, fd, 0) };
        if p == libc::MAP_FAILED {
            return Err(format!("mmap of {len} bytes: {}", std::io::Error::last_os_error()));
        }
        Ok(Mapping { at: p.cast(), len })
    }

    fn anonymous(len: usize) -> Result<Self, String> {
        Self::new(len, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, std::ptr::null_mut())
    }

    fn va(&self) -> u64 {
        self.at as u64
    }

    fn words(&self) -> u64 {
        (self.len / 8) as u64
    }

    /// Fills it with `value` (so present, written by this process).
    fn fill(&self, value: u64) {
        for i in 0..self.len / 8 {
            // SAFETY: inside our writable mapping.
            unsafe { self.at.cast::<u64>().add(i).write_volatile(value) };
        }
    }

    fn word(&self, index: usize) -> u64 {
        // SAFETY: inside our mapping.
        unsafe { self.at.cast::<u64>().add(index).read_volatile() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our mapping.
        unsafe { libc::munmap(self.at.cast(), self.len) };
    }
}

fn page() -> usize {
    hvm_ros_lib::ros::pinned::page_size()
}

/// `f(args)` in the HRT. The functions of this file touch only their arguments' memory, which
/// no other thread uses (this program has one thread).
fn call(hvm: &Hvm, f: RosFn, args: [u64; 4]) -> Result<u64, InvokeError> {
    // SAFETY: see above.
    unsafe { hvm.call_ros(f, args) }
}

fn expect_value(checks: &mut Checks, what: &str, result: Result<u64, InvokeError>, wanted: u64) {
    match result {
        Ok(value) => checks.check(what, value == wanted, format!("{value:#x}, expected {wanted:#x}")),
        Err(e) => checks.fail(what, e),
    }
}

/// (b): a sum over 64 MiB this process never touched, one forwarded page fault per page; then
/// the HRT writes the first 8 MiB (each zero page copied on write).
fn page_faults(hvm: &Hvm, checks: &mut Checks) {
    let array = match Mapping::anonymous(UNTOUCHED_BYTES) {
        Ok(array) => array,
        Err(e) => return checks.fail("page faults", e),
    };
    // 4 KiB pages, one fault each: no transparent huge page (a huge zero page would map 2 MiB
    // at one fault).
    // SAFETY: advice on our own mapping.
    unsafe { libc::madvise(array.at.cast(), array.len, libc::MADV_NOHUGEPAGE) };
    let pages = (UNTOUCHED_BYTES / page()) as u64;
    // A first call over a small present buffer, so the function's code and stack are present:
    // then the sum's faults are the array's.
    let warm = [1u64, 2, 3];
    if let Err(e) = call(hvm, sum_words, [warm.as_ptr() as u64, 3, 0, 0]) {
        return checks.fail("page faults", format!("warm-up call: {e}"));
    }
    let before = hvm.event_counts();
    let start = Instant::now();
    hvm.set_timeout(FAULTS_TIMEOUT);
    let hrt_sum = call(hvm, sum_words, [array.va(), array.words(), 0, 0]);
    hvm.set_timeout(CALL_TIMEOUT);
    let took = start.elapsed();
    let events = hvm.event_counts().since(&before);
    let own_sum = sum_words(array.va(), array.words(), 0, 0);
    println!(
        "page faults: {} MiB, {pages} pages of {} bytes: {events} in {took:?} ({:.1} us per page)",
        UNTOUCHED_BYTES >> 20,
        page(),
        took.as_secs_f64() * 1e6 / pages as f64
    );
    match hrt_sum {
        Ok(sum) => checks.check(
            "page faults",
            sum == own_sum && events.page_faults == pages && events.unresolved_page_faults == 0,
            format!(
                "HRT sum {sum:#x}, own sum {own_sum:#x}; {} page-fault events serviced for {pages} pages",
                events.page_faults
            ),
        ),
        Err(e) => checks.fail("page faults", format!("{e} (after {events})")),
    }

    let words = (WRITTEN_BYTES / 8) as u64;
    let seed = 0x5eed_0000_0000_0000 ^ u64::from(std::process::id());
    let before = hvm.event_counts();
    let written = call(hvm, fill_words, [array.va(), words, seed, 0]);
    let events = hvm.event_counts().since(&before);
    let expected: u64 = (0..words).fold(0, |sum, i| sum.wrapping_add(fill_value(seed, i)));
    let seen = (0..words as usize).all(|i| array.word(i) == fill_value(seed, i as u64));
    let pages = (WRITTEN_BYTES / page()) as u64;
    match written {
        Ok(sum) => checks.check(
            "HRT writes",
            sum == expected && seen && events.page_faults == pages,
            format!(
                "{} MiB written by the HRT over zero pages: sum {sum:#x} (expected {expected:#x}), this \
                 process {} every word; {} write-fault events for {pages} pages",
                WRITTEN_BYTES >> 20,
                if seen { "reads" } else { "does NOT read" },
                events.page_faults
            ),
        ),
        Err(e) => checks.fail("HRT writes", e),
    }
}

/// (d): the HRT never reads through a stale translation: a page replaced under the same
/// address, and copy-on-write after a fork while merged.
fn tlb_coherence(hvm: &Hvm, checks: &mut Checks) {
    let size = page();
    // Page A is a memfd page kept alive by its descriptor, so the page mapped at the same
    // address afterwards is surely another physical page.
    // SAFETY: a name of ours.
    let fd = unsafe { libc::memfd_create(c"hvm-test-rs".as_ptr(), libc::MFD_CLOEXEC) };
    // SAFETY: our descriptor.
    if fd < 0 || unsafe { libc::ftruncate(fd, size as libc::off_t) } != 0 {
        return checks.fail("tlb remap", format!("memfd: {}", std::io::Error::last_os_error()));
    }
    let result = (|| -> Result<(u64, u64), String> {
        let a = Mapping::new(size, libc::MAP_SHARED, fd, std::ptr::null_mut())?;
        a.fill(0x1111_1111_1111_1111);
        let at = a.at;
        let first = call(hvm, read_word, [a.va(), 0, 0, 0]).map_err(|e| format!("first read: {e}"))?;
        drop(a);
        let b = Mapping::new(size, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED, -1, at)?;
        if b.at != at {
            return Err(format!("MAP_FIXED gave {:?}, not {at:?}", b.at));
        }
        b.fill(0x2222_2222_2222_2222);
        let second = call(hvm, read_word, [b.va(), 0, 0, 0]).map_err(|e| format!("second read: {e}"))?;
        Ok((first, second))
    })();
    // SAFETY: our descriptor.
    unsafe { libc::close(fd) };
    match result {
        Ok((first, second)) => checks.check(
            "tlb remap",
            first == 0x1111_1111_1111_1111 && second == 0x2222_2222_2222_2222,
            format!("HRT read {first:#x}, then {second:#x} after munmap and mmap MAP_FIXED at the same address"),
        ),
        Err(e) => checks.fail("tlb remap", e),
    }

    // Fork while merged; the child writes its copy and exits.
    let var = match Mapping::anonymous(size) {
        Ok(var) => var,
        Err(e) => return checks.fail("fork cow", e),
    };
    var.fill(0xaaaa_0000_0000_0001);
    let outcome = (|| -> Result<u64, String> {
        call(hvm, read_word, [var.va(), 0, 0, 0]).map_err(|e| format!("read before the fork: {e}"))?;
        // SAFETY: the child only stores, then _exit()s (async-signal-safe).
        match unsafe { libc::fork() } {
            -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
            0 => {
                // SAFETY: the child's copy of our mapping.
                unsafe {
                    var.at.cast::<u64>().write_volatile(0xbbbb_0000_0000_0002);
                    libc::_exit(0)
                }
            }
            child => wait_child(child)?,
        }
        call(hvm, read_word, [var.va(), 0, 0, 0]).map_err(|e| format!("read after the fork: {e}"))
    })();
    match outcome {
        Ok(value) => checks.check(
            "fork cow",
            value == 0xaaaa_0000_0000_0001,
            format!("HRT read {value:#x} after the child wrote its copy (parent's value 0xaaaa000000000001)"),
        ),
        Err(e) => checks.fail("fork cow", e),
    }

    // Fork while merged; the parent writes first (its page is copied while the child still
    // maps the old one), then the child writes the old page: a stale translation would see it.
    let outcome = (|| -> Result<u64, String> {
        var.fill(0xcccc_0000_0000_0003);
        call(hvm, read_word, [var.va(), 0, 0, 0]).map_err(|e| format!("read before the fork: {e}"))?;
        let mut pipe = [0; 2];
        // SAFETY: a pipe into our array.
        if unsafe { libc::pipe(pipe.as_mut_ptr()) } != 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: the child only reads, stores, then _exit()s (async-signal-safe).
        let child = unsafe { libc::fork() };
        if child == 0 {
            let mut byte = 0u8;
            // SAFETY: our pipe; the child's copy of our mapping.
            unsafe {
                libc::read(pipe[0], (&mut byte as *mut u8).cast(), 1);
                var.at.cast::<u64>().write_volatile(0xdddd_0000_0000_0004);
                libc::_exit(0)
            }
        }
        if child < 0 {
            return Err(format!("fork: {}", std::io::Error::last_os_error()));
        }
        var.fill(0xeeee_0000_0000_0005);
        // SAFETY: our pipe.
        unsafe {
            libc::write(pipe[1], b"x".as_ptr().cast(), 1);
            libc::close(pipe[0]);
            libc::close(pipe[1]);
        }
        wait_child(child)?;
        call(hvm, read_word, [var.va(), 0, 0, 0]).map_err(|e| format!("read after the fork: {e}"))
    })();
    match outcome {
        Ok(value) => checks.check(
            "fork cow parent write",
            value == 0xeeee_0000_0000_0005,
            format!("HRT read {value:#x}: the parent's write after the fork (0xeeee000000000005), not the child's"),
        ),
        Err(e) => checks.fail("fork cow parent write", e),
    }
}

fn wait_child(child: libc::pid_t) -> Result<(), String> {
    let mut status = 0;
    // SAFETY: our child.
    if unsafe { libc::waitpid(child, &mut status, 0) } != child {
        return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err(format!("the child ended with status {status:#x}"));
    }
    Ok(())
}

fn merged(hvm: &Hvm, checks: &mut Checks) {
    let pid = std::process::id();
    println!("hvm-test-rs: merged checks in process {pid}");
    match hvm.merge() {
        Ok(()) => checks.ok("merge", "the HRT took the address space"),
        Err(e) => {
            checks.fail("merge", &e);
            return;
        }
    }
    // (a)
    expect_value(checks, "call_ros add", call(hvm, add4, [1, 20, 300, 4000]), 4321);
    // On every HRT core at once (add4 is a leaf: it needs no stack, which the cores would share
    // if the HRT gave them all the same stack top).
    // SAFETY: add4 touches nothing but its arguments.
    match unsafe { hvm.call_ros_parallel(add4, [1, 20, 300, 4000]) } {
        Ok(results) => checks.check(
            "call_ros parallel",
            !results.is_empty() && results.iter().all(|&r| r == 4321),
            format!("{} HRT core(s): {results:?}", results.len()),
        ),
        Err(e) => checks.fail("call_ros parallel", e),
    }
    let ebadf = -i64::from(libc::EBADF) as u64;
    expect_value(checks, "syscall error", call(hvm, raw_syscall, [libc::SYS_close as u64, u64::MAX, 0, 0]), ebadf);
    // (b)
    page_faults(hvm, checks);
    // (c) (libc may use the thread pointer: mirror this thread's first)
    if let Err(e) = hvm.mirror_tls() {
        checks.fail("mirror tls", e);
    }
    println!("hvm-test-rs: this process's pid is {pid}");
    let before = hvm.event_counts();
    let result = call(hvm, hello, [0; 4]);
    let events = hvm.event_counts().since(&before);
    match result {
        Ok(value) => checks.check(
            "printf getpid",
            value == u64::from(pid) && events.syscalls >= 3,
            format!(
                "getpid() in the HRT = {value}, this process's pid {pid}; {} system calls forwarded",
                events.syscalls
            ),
        ),
        Err(e) => checks.fail("printf getpid", e),
    }
    // (d)
    tlb_coherence(hvm, checks);
    // (e)
    let value = 0x7e57_0000_0000_0000 | u64::from(pid);
    let tls = (|| -> Result<(u64, u64), InvokeError> {
        hvm.unmirror_tls()?;
        TLS_VALUE.with(|v| v.set(value));
        hvm.mirror_tls()?;
        Ok((call(hvm, read_tpidr, [0; 4])?, call(hvm, read_tls_value, [0; 4])?))
    })();
    match tls {
        Ok((tpidr, read)) => checks.check(
            "tls",
            tpidr == current_tls().0 && read == value,
            format!(
                "TPIDR_EL0 in the HRT {tpidr:#x} (this thread's {:#x}); thread-local read {read:#x}, set {value:#x}",
                current_tls().0
            ),
        ),
        Err(e) => checks.fail("tls", e),
    }
    // (f)
    match call(hvm, undefined_instruction, [0; 4]) {
        Err(InvokeError::Exception { exception, .. }) => checks.check(
            "undefined instruction",
            exception.ec() == 0,
            format!("the call failed with the exception: {exception}"),
        ),
        other => checks.fail("undefined instruction", format!("expected an exception with EC 0x0, got {other:?}")),
    }
    expect_value(checks, "after exception", call(hvm, add4, [2, 3, 0, 0]), 5);
    let before = hvm.event_counts();
    match call(hvm, read_word, [0x100, 0, 0, 0]) {
        Err(InvokeError::Exception { exception, .. }) => {
            let events = hvm.event_counts().since(&before);
            checks.check(
                "unresolvable fault",
                exception.ec() == 0x24 && events.unresolved_page_faults > 0,
                format!("{exception}; {} unresolved page-fault events first", events.unresolved_page_faults),
            )
        }
        other => checks.fail("unresolvable fault", format!("expected a data abort, got {other:?}")),
    }
    expect_value(checks, "after fault", call(hvm, add4, [3, 4, 0, 0]), 7);
    match hvm.unmirror_tls() {
        Ok(()) => checks.ok("unmirror tls", "dropped"),
        Err(e) => checks.fail("unmirror tls", e),
    }
    match hvm.unmerge() {
        Ok(()) => checks.ok("unmerge", "the HRT dropped the address space"),
        Err(e) => checks.fail("unmerge", e),
    }
    println!("hvm-test-rs: events serviced in all: {}", hvm.event_counts());
}

// ---------------------------------------------------------------------------------------------
// `install`: HRT images installed from this process.

const ALT_IMAGE: &str = "/lib/hrt/hrt-alt.elf";
const DEFAULT_IMAGE: &str = "/lib/hrt/hrt.elf";
/// How long a new HRT may take to boot (under TCG).
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

/// ELF64 field offsets (little-endian).
const E_PHOFF: usize = 0x20;
const E_PHENTSIZE: usize = 0x36;
const E_PHNUM: usize = 0x38;
const PT_LOAD: u32 = 1;
const P_VADDR: usize = 16;
const P_PADDR: usize = 24;
const P_MEMSZ: usize = 40;

fn le_u16(b: &[u8], at: usize) -> Option<usize> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?) as usize)
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// `elf` with two PT_LOAD segments at the same address: the second one's addresses set to the
/// first one's (or, with a single PT_LOAD, another program header made a copy of it).
fn overlapping_loads(elf: &[u8]) -> Result<Vec<u8>, String> {
    if elf.get(..5) != Some(b"\x7fELF\x02") {
        return Err("not an ELF64 file".into());
    }
    let header = |at| le_u16(elf, at).ok_or("truncated ELF header");
    let phoff = le_u64(elf, E_PHOFF).ok_or("truncated ELF header")? as usize;
    let (entsize, count) = (header(E_PHENTSIZE)?, header(E_PHNUM)?);
    if entsize < 56 || phoff.checked_add(entsize * count).is_none_or(|end| end > elf.len()) {
        return Err("bad program header table".into());
    }
    let at = |i: usize| phoff + i * entsize;
    let loads: Vec<usize> = (0..count).filter(|&i| le_u32(elf, at(i)) == Some(PT_LOAD)).collect();
    let mut out = elf.to_vec();
    match loads.as_slice() {
        [] => return Err("no PT_LOAD segment".into()),
        [first, second, ..] => {
            let (first, second) = (at(*first), at(*second));
            for field in [P_VADDR, P_PADDR] {
                out.copy_within(first + field..first + field + 8, second + field);
            }
            if le_u64(&out, second + P_MEMSZ) == Some(0) {
                out.copy_within(first + P_MEMSZ..first + P_MEMSZ + 8, second + P_MEMSZ);
            }
        }
        [only] => {
            let other = (0..count).find(|i| i != only).ok_or("a single program header")?;
            out.copy_within(at(*only)..at(*only) + entsize, at(other));
        }
    }
    Ok(out)
}

/// Whether `result` is a refusal of a bad image.
fn refused(checks: &mut Checks, what: &str, result: Result<(), InvokeError>) {
    match result {
        Err(InvokeError::Hvm(e @ (HvmError::InvalidArgument | HvmError::BadAddress))) => {
            checks.ok(what, format!("refused: {e}"))
        }
        Err(e) => checks.fail(what, format!("refused, but not as a bad image: {e}")),
        Ok(()) => checks.fail(what, "the hypervisor took it"),
    }
}

/// Installs `image`, boots it and checks it answers an invocation.
fn install_and_boot(hvm: &Hvm, checks: &mut Checks, what: &str, path: &str, image: &[u8]) {
    let start = Instant::now();
    let booted = hvm.install_and_boot(image, BOOT_TIMEOUT);
    let took = start.elapsed();
    match booted.and_then(|_| hvm.invoke(function::ADD, [40, 2, 0, 0, 0, 0])) {
        Ok(42) => checks.ok(what, format!("{path} ({} bytes) booted and ready in {took:?}, ADD answered", image.len())),
        Ok(other) => checks.fail(what, format!("{path} booted, but ADD answered {other}")),
        Err(e) => checks.fail(what, format!("{path}: {e}")),
    }
}

fn install(hvm: &Hvm, checks: &mut Checks) {
    let default = match read_image(std::path::Path::new(DEFAULT_IMAGE)) {
        Ok(image) => image,
        Err(e) => return checks.fail("install", e),
    };
    match read_image(std::path::Path::new(ALT_IMAGE)) {
        Ok(alt) => install_and_boot(hvm, checks, "install", ALT_IMAGE, &alt),
        Err(e) => checks.fail("install", e),
    }
    refused(checks, "truncated image refused", hvm.install_hrt_image(&default[..1000.min(default.len())]));
    match overlapping_loads(&default) {
        Ok(bad) => refused(checks, "overlapping image refused", hvm.install_hrt_image(&bad)),
        Err(e) => checks.fail("overlapping image refused", format!("cannot make one from {DEFAULT_IMAGE}: {e}")),
    }
    install_and_boot(hvm, checks, "reinstall default", DEFAULT_IMAGE, &default);
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

    let mut checks = Checks { failed: 0 };
    if let Some(special) = args.special {
        match special {
            Special::Merged => merged(hvm, &mut checks),
            Special::Install => install(hvm, &mut checks),
        }
        let ok = checks.failed == 0;
        println!("hvm-test-rs: {} ({} check(s) failed)", if ok { "ok" } else { "failed" }, checks.failed);
        return ExitCode::from(if ok { 0 } else { 1 });
    }

    // As Palacios' test: remove any handler, register ours on an 8 KiB stack.
    let _ = hvm.unregister_signal();
    let stack: &'static mut [u8] = Box::leak(vec![0u8; 8192].into_boxed_slice());
    if let Err(e) = hvm.register_signal_with_stack(signal_handler, stack) {
        println!("signal handler registration failed ({e}), going on");
    }

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

    fn test(mode: Mode, kind: Kind) -> Result<Args, String> {
        Ok(Args { test: Some((mode, kind)), special: None })
    }

    #[test]
    fn parses_palacios_arguments() {
        assert_eq!(parse(&words("")), Ok(Args { test: None, special: None }));
        assert_eq!(parse(&words("builtins")), Ok(Args { test: None, special: None }));
        assert_eq!(parse(&words("merged")), Ok(Args { test: None, special: Some(Special::Merged) }));
        assert_eq!(parse(&words("install")), Ok(Args { test: None, special: Some(Special::Install) }));
        assert_eq!(parse(&words("simple sync")), test(Mode::Simple, Kind::Sync));
        assert_eq!(parse(&words("s a")), test(Mode::Simple, Kind::Async));
        assert_eq!(parse(&words("time async 10 1000")), test(Mode::Time(10, 1000), Kind::Async));
        assert_eq!(parse(&words("time sync 0 5")), test(Mode::Time(0, 5), Kind::Sync));
        for bad in ["time sync", "simple", "x sync", "simple x", "time sync a b", "simple sync 1", "merged 1"] {
            assert!(parse(&words(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_signal_line_shows_the_code_in_hex() {
        let line = b"HVM Signal Handler Invoked: code=0x0000000000000000\n";
        assert_eq!(&line[33..35], b"0x");
        assert_eq!(line.len(), 52);
    }

    /// An ELF64 header and `types.len()` program headers (56 bytes each) right after it.
    fn elf(types: &[u32]) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 56 * types.len()];
        e[..5].copy_from_slice(b"\x7fELF\x02");
        e[E_PHOFF..E_PHOFF + 8].copy_from_slice(&64u64.to_le_bytes());
        e[E_PHENTSIZE..E_PHENTSIZE + 2].copy_from_slice(&56u16.to_le_bytes());
        e[E_PHNUM..E_PHNUM + 2].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for (i, &t) in types.iter().enumerate() {
            let at = 64 + 56 * i;
            e[at..at + 4].copy_from_slice(&t.to_le_bytes());
            let vaddr = 0xffff_ff80_0000_0000u64 + 0x10_0000 * i as u64;
            e[at + P_VADDR..at + P_VADDR + 8].copy_from_slice(&vaddr.to_le_bytes());
            e[at + P_PADDR..at + P_PADDR + 8].copy_from_slice(&vaddr.to_le_bytes());
            e[at + P_MEMSZ..at + P_MEMSZ + 8].copy_from_slice(&0x2000u64.to_le_bytes());
        }
        e
    }

    fn load_ranges(e: &[u8]) -> Vec<(u64, u64)> {
        let count = le_u16(e, E_PHNUM).unwrap();
        (0..count)
            .map(|i| 64 + 56 * i)
            .filter(|&at| le_u32(e, at) == Some(PT_LOAD))
            .map(|at| (le_u64(e, at + P_VADDR).unwrap(), le_u64(e, at + P_MEMSZ).unwrap()))
            .collect()
    }

    #[test]
    fn overlapping_segments_are_made_from_two_loads_or_one() {
        let two = overlapping_loads(&elf(&[6, PT_LOAD, PT_LOAD, 0x6474_e551])).unwrap();
        let ranges = load_ranges(&two);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0], ranges[1], "same address and size");
        let one = overlapping_loads(&elf(&[PT_LOAD, 0x6474_e551])).unwrap();
        let ranges = load_ranges(&one);
        assert_eq!(ranges.len(), 2);
        assert_eq!(ranges[0], ranges[1]);
        assert!(overlapping_loads(&elf(&[PT_LOAD])).is_err());
        assert!(overlapping_loads(&elf(&[6])).is_err());
        assert!(overlapping_loads(b"\x7fELF\x01").is_err());
        let mut short = elf(&[PT_LOAD, PT_LOAD]);
        short.truncate(100);
        assert!(overlapping_loads(&short).is_err());
    }

    #[test]
    fn functions_for_the_hrt_compute_as_expected_here() {
        let words = [1u64, 2, 3, u64::MAX];
        assert_eq!(sum_words(words.as_ptr() as u64, 4, 0, 0), 5);
        let mut out = [0u64; 5];
        let sum = fill_words(out.as_mut_ptr() as u64, 5, 7, 0);
        assert_eq!(out[3], fill_value(7, 3));
        assert_eq!(sum, out.iter().fold(0u64, |s, &w| s.wrapping_add(w)));
        assert_eq!(add4(1, 2, 3, 4), 10);
        assert_eq!(read_word(words.as_ptr() as u64 + 8, 0, 0, 0), 2);
        TLS_VALUE.with(|v| v.set(9));
        assert_eq!(read_tls_value(0, 0, 0, 0), 9);
    }
}
