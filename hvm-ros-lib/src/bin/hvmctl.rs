//! hvmctl: make 0xf00d hypercalls from a ROS shell through the doorbell page (needs root).
//!
//! Exit status: 0 success, 1 the hypervisor answered an error, 2 usage error, 3 the HVM could
//! not be opened (not an HVM, not root, ...).

use std::ffi::CString;
use std::process::ExitCode;

use hvm_ros_lib::abi::invoke::function;
use hvm_ros_lib::abi::{HvmError, SubOp};
use hvm_ros_lib::checksum::fletcher64_slice;
use hvm_ros_lib::ros::{Hvm, InvokeError};

const USAGE: &str = "\
usage: hvmctl [--as-user <uid>] <command>
  --as-user <uid>              drop root for that user (and group) id first: shows how the HVM
                               refuses a process that may not open /dev/mem
  null                         one null call: the time since the HRT booted
  reset-ros | reset-hrt | reset-both
                               reset a partition (reset-ros reboots this Linux)
  call <subop> [arg...]        a raw call: x1 = subop, x2..x7 = args (hex, 0x optional);
                               prints x0..x3
  loop-null <n>                n null calls; prints the time per call
  state                        the transaction state and whether the HRT is ready
  merge | unmerge              merge hvmctl's own address space into the HRT (0x30), or undo
                               whatever merge is in force (0x31); prints the round trip. The
                               merge outlives hvmctl (its tables are freed when it exits):
                               unmerge before the HRT runs anything in it
  invoke [-p] <function> [arg...]
                               call an HRT function on the first HRT core (-p: on every
                               HRT core) and print its result(s); function and args:
                                 add <a> <b>         a + b
                                 spin <us>           spin that many microseconds
                                 print <text...>     the HRT prints the text
                                 checksum <text...>  Fletcher-64 of the text, checked here
                                 <number> [arg...]   any function, up to 6 numeric args
                               numbers are decimal, or hex with 0x
  string [-p] <text...>        Palacios' string invocation: the HRT prints the buffer
  bench-invoke <n>             n round trips each of an async, a parallel and a sync ADD;
                               prints HVBENCH: lines invoke_async and invoke_parallel
                               (microseconds) and invoke_sync (ns) for scripts/hvm-bench.sh
exit status: 0 ok, 1 the hypervisor answered an error, 2 usage error, 3 no usable HVM";

const OK: u8 = 0;
const HVM_ERROR: u8 = 1;
const USAGE_ERROR: u8 = 2;
const NO_HVM: u8 = 3;

enum Command {
    Null,
    Reset(SubOp, &'static str),
    Call(u64, [u64; 6]),
    LoopNull(u64),
    BenchInvoke(u64),
    State,
    Merge { unmerge: bool },
    Invoke { parallel: bool, call: Invocation },
    String { parallel: bool, text: CString },
}

/// What `hvmctl invoke` calls.
enum Invocation {
    /// A function with numeric arguments.
    Numeric { name: String, function: u64, args: [u64; 6] },
    /// PRINT with a string of ours.
    Print(CString),
    /// CHECKSUM of bytes of ours.
    Checksum(Vec<u8>),
}

/// A decimal number, or hex with 0x.
fn parse_number(s: &str) -> Result<u64, String> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .map_err(|_| format!("'{s}' is not a 64-bit number (decimal, or hex with 0x)"))
}

fn parse_numbers<const N: usize>(words: &[&str]) -> Result<[u64; 6], String> {
    if words.len() > N {
        return Err(format!("at most {N} arguments, got {}", words.len()));
    }
    let mut args = [0u64; 6];
    for (arg, word) in args.iter_mut().zip(words) {
        *arg = parse_number(word)?;
    }
    Ok(args)
}

fn text(words: &[&str]) -> Result<CString, String> {
    if words.is_empty() {
        return Err("no text".into());
    }
    CString::new(words.join(" ")).map_err(|_| "the text holds a NUL".to_string())
}

fn parse_invocation(words: &[&str]) -> Result<Invocation, String> {
    let numeric = |name: &str, function: u64, args: [u64; 6]| Invocation::Numeric { name: name.into(), function, args };
    match words {
        ["add", a, b] => Ok(numeric("add", function::ADD, parse_numbers::<2>(&[a, b])?)),
        ["spin", us] => Ok(numeric("spin", function::SPIN_US, parse_numbers::<1>(&[us])?)),
        ["print", rest @ ..] => Ok(Invocation::Print(text(rest)?)),
        ["checksum", rest @ ..] => Ok(Invocation::Checksum(text(rest)?.into_bytes())),
        ["add", ..] => Err("add takes two numbers".into()),
        ["spin", ..] => Err("spin takes one number (microseconds)".into()),
        [f, rest @ ..] if f.starts_with(|c: char| c.is_ascii_digit()) => {
            let function = parse_number(f)?;
            Ok(numeric(&format!("function {function}"), function, parse_numbers::<6>(rest)?))
        }
        [] => Err("invoke needs a function".into()),
        [f, ..] => Err(format!("unknown function '{f}' (add, spin, print, checksum or a number)")),
    }
}

fn parse_hex(s: &str) -> Result<u64, String> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")).unwrap_or(s);
    u64::from_str_radix(digits, 16).map_err(|_| format!("'{s}' is not a 64-bit hex number"))
}

fn parse(args: &[String]) -> Result<Command, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["null"] => Ok(Command::Null),
        ["reset-ros"] => Ok(Command::Reset(SubOp::ResetRos, "reset-ros")),
        ["reset-hrt"] => Ok(Command::Reset(SubOp::ResetHrt, "reset-hrt")),
        ["reset-both"] => Ok(Command::Reset(SubOp::ResetBoth, "reset-both")),
        ["call", code, rest @ ..] => {
            if rest.len() > 6 {
                return Err(format!("call takes at most 6 arguments (x2..x7), got {}", rest.len()));
            }
            let mut regs = [0u64; 6];
            for (reg, arg) in regs.iter_mut().zip(rest) {
                *reg = parse_hex(arg)?;
            }
            Ok(Command::Call(parse_hex(code)?, regs))
        }
        ["loop-null", n] => match n.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Command::LoopNull(n)),
            _ => Err(format!("loop-null needs a positive decimal count, got '{n}'")),
        },
        ["state"] => Ok(Command::State),
        ["merge"] => Ok(Command::Merge { unmerge: false }),
        ["unmerge"] => Ok(Command::Merge { unmerge: true }),
        ["bench-invoke", n] => match n.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Command::BenchInvoke(n)),
            _ => Err(format!("bench-invoke needs a positive decimal count, got '{n}'")),
        },
        ["invoke", "-p" | "--parallel", rest @ ..] => {
            Ok(Command::Invoke { parallel: true, call: parse_invocation(rest)? })
        }
        ["invoke", rest @ ..] => Ok(Command::Invoke { parallel: false, call: parse_invocation(rest)? }),
        ["string", "-p" | "--parallel", rest @ ..] => Ok(Command::String { parallel: true, text: text(rest)? }),
        ["string", rest @ ..] => Ok(Command::String { parallel: false, text: text(rest)? }),
        [] => Err("no command".into()),
        [cmd, ..] => Err(format!("unknown command or wrong arguments: '{cmd}'")),
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
/// Mean round trip of `n` calls of `call`, in nanoseconds (one untimed call first).
fn round_trip_ns(n: u64, mut call: impl FnMut() -> Result<(), InvokeError>) -> Result<f64, InvokeError> {
    call()?;
    let start = monotonic_ns();
    for _ in 0..n {
        call()?;
    }
    Ok((monotonic_ns() - start) as f64 / n as f64)
}

/// `hvmctl bench-invoke`: async, parallel and sync ADD round trips, in the form of hvbench's
/// results ("HVBENCH: <metric> <value> <unit>").
fn bench_invoke(hvm: &Hvm, n: u64) -> Result<(), InvokeError> {
    let args = [1, 2, 0, 0, 0, 0];
    let async_ns = round_trip_ns(n, || hvm.invoke(function::ADD, args).map(drop))?;
    println!("HVBENCH: invoke_async {:.3} us", async_ns / 1000.0);
    let parallel_ns = round_trip_ns(n, || hvm.invoke_parallel(function::ADD, args).map(drop))?;
    println!("HVBENCH: invoke_parallel {:.3} us", parallel_ns / 1000.0);
    let mut session = hvm.synchronize()?;
    // Ten times the calls: a sync round trip is much shorter.
    let sync_ns = round_trip_ns(n * 10, || session.call(function::ADD, args).map(drop))?;
    session.desynchronize()?;
    println!("HVBENCH: invoke_sync {sync_ns:.3} ns");
    Ok(())
}

fn monotonic_ns() -> u128 {
    let mut ts = libc_timespec();
    // SAFETY: `ts` is a valid, writable timespec; clock_gettime writes only it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC) failed");
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn libc_timespec() -> libc::timespec {
    // SAFETY: timespec is plain integers (and, on some targets, padding); all zeroes is valid.
    unsafe { std::mem::zeroed() }
}

fn error_exit(what: &str, e: HvmError) -> u8 {
    eprintln!("{what}: error: {e}");
    HVM_ERROR
}

fn invoke_error_exit(what: &str, e: InvokeError) -> u8 {
    eprintln!("{what}: error: {e}");
    HVM_ERROR
}

/// Runs `function` on the first HRT core, or on every one; returns the results.
fn invoke(hvm: &Hvm, parallel: bool, function: u64, args: [u64; 6]) -> Result<Vec<u64>, InvokeError> {
    if parallel {
        hvm.invoke_parallel(function, args)
    } else {
        hvm.invoke(function, args).map(|r| vec![r])
    }
}

fn run_invocation(hvm: &Hvm, parallel: bool, call: Invocation) -> u8 {
    let (name, function, args, expected) = match &call {
        Invocation::Numeric { name, function, args } => (name.clone(), *function, *args, None),
        Invocation::Print(text) => {
            if !parallel {
                // The string goes next to the invocation, pinned with it.
                return match hvm.print(text) {
                    Ok(r) => {
                        println!("invoke print: ok, result {r}");
                        OK
                    }
                    Err(e) => invoke_error_exit("invoke print", e),
                };
            }
            ("print".to_string(), function::PRINT, [text.as_ptr() as u64, 0, 0, 0, 0, 0], None)
        }
        Invocation::Checksum(bytes) => {
            let args = [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0];
            ("checksum".to_string(), function::CHECKSUM, args, Some(fletcher64_slice(bytes)))
        }
    };
    let on = if parallel { " on every HRT core" } else { "" };
    match invoke(hvm, parallel, function, args) {
        Ok(results) => {
            let shown: Vec<String> = results.iter().map(|r| format!("{r} ({r:#x})")).collect();
            println!("invoke {name}{on}: ok, {} result(s): {}", results.len(), shown.join(", "));
            match expected {
                Some(local) if results.iter().any(|&r| r != local) => {
                    eprintln!("invoke {name}: the HRT's result differs from {local:#x}, computed here");
                    HVM_ERROR
                }
                Some(local) => {
                    println!("invoke {name}: matches {local:#x}, computed here");
                    OK
                }
                None => OK,
            }
        }
        Err(e) => invoke_error_exit(&format!("invoke {name}{on}"), e),
    }
}

fn run(hvm: &Hvm, command: Command) -> u8 {
    match command {
        Command::Null => match hvm.null() {
            Ok(r) => {
                println!("null: ok, {} ns since HRT boot ({} counter ticks)", r.since_hrt_boot_ns, r.ticks);
                OK
            }
            Err(e) => error_exit("null", e),
        },
        Command::Reset(op, name) => {
            let result = match op {
                SubOp::ResetRos => hvm.reset_ros(),
                SubOp::ResetHrt => hvm.reset_hrt(),
                _ => hvm.reset_both(),
            };
            match result {
                Ok(()) => {
                    println!("{name}: ok");
                    OK
                }
                Err(e) => error_exit(name, e),
            }
        }
        Command::Call(code, args) => {
            let [x0, x1, x2, x3] = hvm.call_raw(code, args);
            let op = SubOp::from_code(code).map_or_else(|| "unknown sub-op".to_string(), |op| format!("{op:?}"));
            let verdict = if x0 as i64 >= 0 {
                "ok".to_string()
            } else {
                HvmError::from_code(x0)
                    .map_or_else(|| "unknown error code".to_string(), |e| format!("{e:?}: {}", e.description()))
            };
            println!("call {code:#x} ({op}): x0 = {} ({x0:#x}) {verdict}", x0 as i64);
            println!("  x1 = {x1:#x}, x2 = {x2:#x}, x3 = {x3:#x}");
            if x0 as i64 >= 0 {
                OK
            } else {
                HVM_ERROR
            }
        }
        Command::LoopNull(n) => {
            let start = monotonic_ns();
            for i in 0..n {
                if let Err(e) = hvm.null() {
                    return error_exit(&format!("loop-null: call {i}"), e);
                }
            }
            let total = monotonic_ns() - start;
            println!("loop-null: {n} calls in {total} ns, {} ns/call", total / u128::from(n));
            OK
        }
        Command::BenchInvoke(n) => match bench_invoke(hvm, n) {
            Ok(()) => OK,
            Err(e) => invoke_error_exit("bench-invoke", e),
        },
        Command::State => match hvm.state() {
            Ok(status) => {
                println!("state: {status}");
                OK
            }
            Err(e) => error_exit("state", e),
        },
        Command::Merge { unmerge } => {
            let name = if unmerge { "unmerge" } else { "merge" };
            let start = monotonic_ns();
            let result = if unmerge { hvm.unmerge() } else { hvm.merge() };
            let took = monotonic_ns() - start;
            match result {
                Ok(()) => {
                    println!("{name}: ok ({} us round trip)", took / 1000);
                    OK
                }
                Err(e) => invoke_error_exit(name, e),
            }
        }
        Command::Invoke { parallel, call } => run_invocation(hvm, parallel, call),
        Command::String { parallel, text } => match hvm.invoke_string_on(&text, parallel) {
            Ok(()) => {
                println!("string: ok");
                OK
            }
            Err(e) => invoke_error_exit("string", e),
        },
    }
}

/// Becomes user and group `id` (from root).
fn drop_root(id: u32) -> Result<(), String> {
    // SAFETY: setgid/setuid take plain integers and only change this process's credentials.
    let failed = unsafe { libc::setgid(id) != 0 || libc::setuid(id) != 0 };
    if failed {
        return Err(format!("cannot become user {id}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--as-user") {
        let Some(id) = args.get(1).and_then(|id| id.parse::<u32>().ok()) else {
            eprintln!("hvmctl: --as-user needs a numeric user id\n{USAGE}");
            return ExitCode::from(USAGE_ERROR);
        };
        if let Err(why) = drop_root(id) {
            eprintln!("hvmctl: {why}");
            return ExitCode::from(USAGE_ERROR);
        }
        args.drain(..2);
    }
    if matches!(args.first().map(String::as_str), Some("-h" | "--help" | "help")) {
        println!("{USAGE}");
        return ExitCode::from(OK);
    }
    let command = match parse(&args) {
        Ok(command) => command,
        Err(why) => {
            eprintln!("hvmctl: {why}\n{USAGE}");
            return ExitCode::from(USAGE_ERROR);
        }
    };
    let hvm = match Hvm::open() {
        Ok(hvm) => hvm,
        Err(e) => {
            eprintln!("hvmctl: {e}");
            return ExitCode::from(NO_HVM);
        }
    };
    ExitCode::from(run(&hvm, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &str) -> Result<Command, String> {
        parse(&words.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn parses_commands() {
        assert!(matches!(parse_words("null"), Ok(Command::Null)));
        assert!(matches!(parse_words("reset-hrt"), Ok(Command::Reset(SubOp::ResetHrt, _))));
        assert!(matches!(parse_words("call 42"), Ok(Command::Call(0x42, [0, 0, 0, 0, 0, 0]))));
        assert!(matches!(parse_words("call 0x20 1 0X2 ff 0 0 7"), Ok(Command::Call(0x20, [1, 2, 0xff, 0, 0, 7]))));
        assert!(matches!(parse_words("loop-null 1000"), Ok(Command::LoopNull(1000))));
        assert!(matches!(parse_words("state"), Ok(Command::State)));
        assert!(matches!(parse_words("merge"), Ok(Command::Merge { unmerge: false })));
        assert!(matches!(parse_words("unmerge"), Ok(Command::Merge { unmerge: true })));
        assert!(matches!(
            parse_words("invoke add 2 0x10"),
            Ok(Command::Invoke {
                parallel: false,
                call: Invocation::Numeric { function: function::ADD, args: [2, 16, 0, 0, 0, 0], .. }
            })
        ));
        assert!(matches!(
            parse_words("invoke -p spin 100"),
            Ok(Command::Invoke {
                parallel: true,
                call: Invocation::Numeric { function: function::SPIN_US, args: [100, 0, 0, 0, 0, 0], .. }
            })
        ));
        assert!(matches!(
            parse_words("invoke 7 1 2 3 4 5 6"),
            Ok(Command::Invoke { call: Invocation::Numeric { function: 7, args: [1, 2, 3, 4, 5, 6], .. }, .. })
        ));
        match parse_words("invoke print hello  world") {
            Ok(Command::Invoke { call: Invocation::Print(text), .. }) => assert_eq!(text.as_bytes(), b"hello world"),
            _ => panic!("print"),
        }
        match parse_words("invoke checksum abcde") {
            Ok(Command::Invoke { call: Invocation::Checksum(bytes), .. }) => assert_eq!(bytes, b"abcde"),
            _ => panic!("checksum"),
        }
        match parse_words("string -p hello world") {
            Ok(Command::String { parallel: true, text }) => assert_eq!(text.as_bytes(), b"hello world"),
            _ => panic!("string"),
        }
    }

    #[test]
    fn rejects_bad_usage() {
        for words in [
            "",
            "nul",
            "null 1",
            "call",
            "call xyz",
            "call 1 2 3 4 5 6 7 8",
            "loop-null",
            "loop-null 0",
            "loop-null -1",
            "loop-null 0x10",
            "state 1",
            "merge now",
            "unmerge 1",
            "invoke",
            "invoke add 1",
            "invoke add 1 2 3",
            "invoke add 1 x",
            "invoke spin",
            "invoke print",
            "invoke frobnicate 1",
            "invoke 1 1 2 3 4 5 6 7",
            "invoke 0xzz",
            "string",
            "string -p",
        ] {
            assert!(parse_words(words).is_err(), "'{words}'");
        }
    }
}
