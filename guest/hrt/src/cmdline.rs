//! The options on the HRT command line (the boot info's `cmdline`): words separated by spaces.
//!
//! | word | effect |
//! |---|---|
//! | `heartbeat=<seconds>` | after ready, core 0 prints a heartbeat line every 1..3600 seconds |
//! | `bench` | after ready, core 0 times [`crate::bench::NULL_CALLS`] null calls |
//! | `ready_delay_ms=<ms>` | core 0 waits that long (1..60000 ms) before reporting ready: makes the "HRT not ready" window long enough for tests to hit it |
//!
//! A word this kernel does not know, or a heartbeat period out of range, is reported and ignored,
//! never fatal: a typo on the command line must not cost the HRT its boot. For a repeated
//! option the last word wins.

use core::fmt;

use crate::console::Printable;

const HEARTBEAT_PREFIX: &[u8] = b"heartbeat=";
const BENCH: &[u8] = b"bench";
const READY_DELAY_PREFIX: &[u8] = b"ready_delay_ms=";
/// The ready delay's range, milliseconds.
pub const READY_DELAY_MAX_MS: u64 = 60_000;
/// The heartbeat period's range, seconds: at least one beat a second keeps the console readable,
/// at most one an hour still says "alive" within a long test.
pub const HEARTBEAT_MIN_S: u64 = 1;
pub const HEARTBEAT_MAX_S: u64 = 3600;

/// What the command line asks for.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// `heartbeat=<seconds>`: the period, within [`HEARTBEAT_MIN_S`]..=[`HEARTBEAT_MAX_S`].
    pub heartbeat_s: Option<u64>,
    /// `bench`.
    pub bench: bool,
    /// `ready_delay_ms=<ms>`, within 1..=[`READY_DELAY_MAX_MS`].
    pub ready_delay_ms: Option<u64>,
}

/// A word [`parse`] ignored.
#[derive(Clone, Copy, Debug)]
pub enum Ignored<'a> {
    Unknown(&'a [u8]),
    /// `heartbeat=` with something other than a number of seconds in range.
    BadHeartbeat(&'a [u8]),
    /// `ready_delay_ms=` with something other than a number of milliseconds in range.
    BadReadyDelay(&'a [u8]),
}

impl fmt::Display for Ignored<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Self::Unknown(word) => write!(f, "unknown option '{}' ignored", Printable(word)),
            Self::BadHeartbeat(word) => write!(
                f,
                "'{}' ignored: the heartbeat period is {HEARTBEAT_MIN_S}..{HEARTBEAT_MAX_S} seconds",
                Printable(word)
            ),
            Self::BadReadyDelay(word) => {
                write!(f, "'{}' ignored: the ready delay is 1..{READY_DELAY_MAX_MS} ms", Printable(word))
            }
        }
    }
}

/// Parses `cmdline`, handing each ignored word to `ignored` (in command-line order).
pub fn parse<'a>(cmdline: &'a [u8], mut ignored: impl FnMut(Ignored<'a>)) -> Options {
    let mut options = Options::default();
    // Any ASCII whitespace separates words: the command line comes from a device-tree string,
    // where a tab or newline is as easily typed as a space.
    for word in cmdline.split(u8::is_ascii_whitespace).filter(|word| !word.is_empty()) {
        if word == BENCH {
            options.bench = true;
        } else if let Some(value) = word.strip_prefix(HEARTBEAT_PREFIX) {
            match seconds(value) {
                Some(period) => options.heartbeat_s = Some(period),
                None => ignored(Ignored::BadHeartbeat(word)),
            }
        } else if let Some(value) = word.strip_prefix(READY_DELAY_PREFIX) {
            match number_in(value, 1..=READY_DELAY_MAX_MS) {
                Some(ms) => options.ready_delay_ms = Some(ms),
                None => ignored(Ignored::BadReadyDelay(word)),
            }
        } else {
            ignored(Ignored::Unknown(word));
        }
    }
    options
}

/// `value` as a heartbeat period: decimal digits only (no sign), within range.
fn seconds(value: &[u8]) -> Option<u64> {
    number_in(value, HEARTBEAT_MIN_S..=HEARTBEAT_MAX_S)
}

/// `value` as a decimal number (digits only, no sign) within `range`.
fn number_in(value: &[u8], range: core::ops::RangeInclusive<u64>) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let number: u64 = core::str::from_utf8(value).ok()?.parse().ok()?;
    range.contains(&number).then_some(number)
}
