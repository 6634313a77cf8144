//! The options on the HRT command line (the boot info's `cmdline`): words separated by spaces.
//!
//! | word | effect |
//! |---|---|
//! | `heartbeat=<seconds>` | after ready, core 0 prints a heartbeat line every 1..3600 seconds |
//! | `bench` | before ready, core 0 times [`crate::bench::NULL_CALLS`] null calls |
//!
//! A word this kernel does not know, or a heartbeat period out of range, is reported and ignored,
//! never fatal: a typo on the command line must not cost the HRT its boot. For a repeated
//! option the last word wins.

use core::fmt;

use crate::console::Printable;

const HEARTBEAT_PREFIX: &[u8] = b"heartbeat=";
const BENCH: &[u8] = b"bench";
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
}

/// A word [`parse`] ignored.
#[derive(Clone, Copy, Debug)]
pub enum Ignored<'a> {
    Unknown(&'a [u8]),
    /// `heartbeat=` with something other than a number of seconds in range.
    BadHeartbeat(&'a [u8]),
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
        } else {
            ignored(Ignored::Unknown(word));
        }
    }
    options
}

/// `value` as a heartbeat period: decimal digits only (no sign), within range.
fn seconds(value: &[u8]) -> Option<u64> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let period: u64 = core::str::from_utf8(value).ok()?.parse().ok()?;
    (HEARTBEAT_MIN_S..=HEARTBEAT_MAX_S).contains(&period).then_some(period)
}
