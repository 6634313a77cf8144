//! The built-in functions a ROS process invokes by index (abi.rs `invoke::function`; upcall.rs
//! runs them for an invocation). Addresses are the calling process's virtual addresses, read
//! through its page tables (rosmem.rs):
//!
//! | index | function | args[0] | args[1] | result |
//! |---|---|---|---|---|
//! | 0 | print a NUL-terminated string (at most 255 bytes) | its VA | - | bytes printed |
//! | 1 | add | a | b | a + b, wrapping |
//! | 2 | checksum (Fletcher-64, fletcher.rs) | VA of a buffer | its length (at most 256 MiB) | the checksum |
//! | 3 | spin | microseconds (at most 1 s) | - | microseconds actually spun |
//! | 4 | run a function of the merged process at EL0 (el0.rs) | its address | its stack top (core n: 256 KiB lower per n) | its x0 (args[2..6] are its x0..x3) |
//!
//! Every built-in function returns within a bounded time (the caps), so a call never holds off
//! a sync teardown for long; a CALL_ROS runs as long as the process's function does. A bad
//! address or argument is an error, never a fault.

use core::fmt;

use hvm_ros_lib::abi::invoke::function::{ADD, CALL_ROS, CHECKSUM, PRINT, RAISE_SIGNALS, SPIN_US};
use hvm_ros_lib::abi::HvmError;

use crate::console::{println, Printable};
use crate::el0::{self, RosCallError};
use crate::rosmem::{self, AddressSpace, RosMemError};
use crate::timer;

/// Longest [`CHECKSUM`] buffer: long enough for any benchmark, short enough that the call ends
/// within seconds.
pub const CHECKSUM_MAX_LEN: u64 = 256 << 20;
/// Longest [`SPIN_US`].
pub const SPIN_MAX_US: u64 = 1_000_000;

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FnError {
    /// No function has this index.
    UnknownFunction(u64),
    /// A [`CHECKSUM`] longer than [`CHECKSUM_MAX_LEN`].
    TooLong { len: u64 },
    /// A [`SPIN_US`] longer than [`SPIN_MAX_US`].
    SpinTooLong { us: u64 },
    /// The process's memory could not be read.
    Memory(RosMemError),
    /// A [`CALL_ROS`] did not run, or did not return.
    RosCall(RosCallError),
    /// A [`RAISE_SIGNALS`] more than [`RAISE_SIGNALS_MAX`] times, or with code 0.
    BadSignals { count: u64, code: u64 },
    /// The hypervisor refused a signal (no handler registered, ...) after `raised` of them.
    Signal { raised: u64, error: crate::hvc::CallError },
}

impl FnError {
    /// The status an invocation reports for this failure (abi.rs `Invocation::status`).
    pub fn status(self) -> i64 {
        let error = match self {
            Self::UnknownFunction(_) | Self::TooLong { .. } | Self::SpinTooLong { .. } | Self::BadSignals { .. } => {
                HvmError::InvalidArgument
            }
            Self::Signal { error, .. } => return error.status(),
            // A string without its NUL in reach is a bad length, not a bad address.
            Self::Memory(RosMemError::Unterminated { .. }) => HvmError::InvalidArgument,
            Self::Memory(_) => HvmError::BadAddress,
            Self::RosCall(error) => return error.status(),
        };
        error as i64
    }

    /// The result an invocation reports for this failure: a failed [`CALL_ROS`]'s exception
    /// syndrome (ESR_EL1), else 0.
    pub fn result(self) -> u64 {
        match self {
            Self::RosCall(error) => error.result(),
            _ => 0,
        }
    }
}

impl From<RosMemError> for FnError {
    fn from(error: RosMemError) -> Self {
        Self::Memory(error)
    }
}

impl fmt::Display for FnError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Self::UnknownFunction(index) => write!(f, "no function {index}"),
            Self::TooLong { len } => write!(f, "checksum of {len} bytes, at most {CHECKSUM_MAX_LEN}"),
            Self::SpinTooLong { us } => write!(f, "spin of {us} us, at most {SPIN_MAX_US}"),
            Self::Memory(error) => write!(f, "{error}"),
            Self::RosCall(error) => write!(f, "{error}"),
            Self::BadSignals { count, code } => {
                write!(f, "{count} signals with code {code:#x}: at most {RAISE_SIGNALS_MAX}, code not 0")
            }
            Self::Signal { raised, error } => write!(f, "signal refused after {raised} raised: {error}"),
        }
    }
}

/// Most signals one [`RAISE_SIGNALS`] raises.
pub const RAISE_SIGNALS_MAX: u64 = 100_000;

/// Raises `code` `count` times: each time the previous one is still pending (Busy) the core
/// spins and asks again, so every signal is delivered before the next is raised.
fn raise_signals(count: u64, code: u64) -> Result<u64, FnError> {
    if count > RAISE_SIGNALS_MAX || code == 0 {
        return Err(FnError::BadSignals { count, code });
    }
    for raised in 0..count {
        loop {
            match crate::hvc::raise_signal(code) {
                Ok(()) => break,
                Err(error) if error.is(HvmError::Busy) => core::hint::spin_loop(),
                Err(error) => return Err(FnError::Signal { raised, error }),
            }
        }
    }
    Ok(count)
}

/// What a call runs with: the caller's address space, and this core.
pub struct Context<'a> {
    pub space: &'a AddressSpace,
    /// The caller's TTBR0 table base (merge.rs `process_of`): CALL_ROS runs only for the merged
    /// process.
    pub process: u64,
    /// This HRT core's index (PRINT names it).
    pub core: usize,
    pub counter_frequency: u64,
}

/// Calls function `index` with `args`.
pub fn call(index: u64, args: &[u64; 6], context: &Context) -> Result<u64, FnError> {
    match index {
        PRINT => print_string(args[0], context),
        ADD => Ok(args[0].wrapping_add(args[1])),
        CHECKSUM => checksum(args[0], args[1], context.space),
        SPIN_US => spin(args[0], context.counter_frequency),
        RAISE_SIGNALS => raise_signals(args[0], args[1]),
        CALL_ROS => {
            el0::call_ros(args, context.process, context.core, context.counter_frequency).map_err(FnError::RosCall)
        }
        _ => Err(FnError::UnknownFunction(index)),
    }
}

/// Prints `core N: <string>` (a trailing newline of the string's own is dropped).
fn print_string(va: u64, context: &Context) -> Result<u64, FnError> {
    let mut buffer: rosmem::StringBuffer = [0; rosmem::STRING_MAX + 1];
    let string = context.space.read_c_string(va, &mut buffer)?;
    let len = string.len() as u64;
    let text = string.strip_suffix(b"\n").unwrap_or(string);
    println!("core {}: {}", context.core, Printable(text));
    Ok(len)
}

fn checksum(va: u64, len: u64, space: &AddressSpace) -> Result<u64, FnError> {
    if len > CHECKSUM_MAX_LEN {
        return Err(FnError::TooLong { len });
    }
    Ok(space.checksum(va, len)?)
}

fn spin(us: u64, counter_frequency: u64) -> Result<u64, FnError> {
    if us > SPIN_MAX_US {
        return Err(FnError::SpinTooLong { us });
    }
    let start = timer::now();
    let end = start + timer::us_to_ticks(us, counter_frequency);
    while timer::now() < end {
        core::hint::spin_loop();
    }
    Ok(timer::ticks_to_us(timer::now() - start, counter_frequency))
}
