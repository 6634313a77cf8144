//! Built-in functions, called by index (later work invokes them on the ROS's behalf):
//!
//! | index | function | arg0 | arg1 | returns |
//! |---|---|---|---|---|
//! | 0 | print a NUL-terminated string | its IPA (in ROS or HRT RAM) | - | bytes printed |
//! | 1 | add | a | b | a + b, wrapping |
//! | 2 | checksum (Fletcher-64, below) | IPA of a buffer in ROS RAM | its length | the checksum |
//! | 3 | spin | microseconds (at most 1 s) | - | microseconds actually spun |
//!
//! Guest memory is read through the linear map, one volatile byte at a time (the ROS may be
//! writing it meanwhile), after a bounds check against the boot info's RAM ranges: a bad
//! address is an error, never a fault.

use core::fmt;

use hvm_ros_lib::abi::HvmError;

use crate::boot::{BootInfoView, RamRange};
use crate::console::{self, println};
use crate::timer;

/// The function table's indexes.
pub const PRINT: u64 = 0;
pub const ADD: u64 = 1;
pub const CHECKSUM: u64 = 2;
pub const SPIN: u64 = 3;

/// Longest string [`PRINT`] prints (without its NUL).
const PRINT_MAX: u64 = 1024;
/// Longest [`SPIN`].
const SPIN_MAX_US: u64 = 1_000_000;

/// Why a call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FnError {
    /// No function has this index.
    UnknownFunction(u64),
    /// The memory named is not (all) inside the RAM the function may read.
    BadAddress { ipa: u64, len: u64 },
    /// No NUL within [`PRINT_MAX`] bytes or before the end of RAM.
    Unterminated { ipa: u64 },
    /// An argument out of range (a spin longer than [`SPIN_MAX_US`]).
    InvalidArgument(u64),
}

impl FnError {
    /// The hypercall error code for this failure (for returning it to the ROS).
    #[allow(dead_code, reason = "for the invoke path, which calls the table on the ROS's behalf")]
    pub fn code(self) -> u64 {
        match self {
            Self::UnknownFunction(_) | Self::InvalidArgument(_) => HvmError::InvalidArgument.code(),
            Self::BadAddress { .. } | Self::Unterminated { .. } => HvmError::BadAddress.code(),
        }
    }
}

impl fmt::Display for FnError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Self::UnknownFunction(index) => write!(f, "no function {index}"),
            Self::BadAddress { ipa, len } => write!(f, "{len} bytes at IPA {ipa:#x} are outside the allowed RAM"),
            Self::Unterminated { ipa } => write!(f, "no NUL within {PRINT_MAX} bytes of IPA {ipa:#x}"),
            Self::InvalidArgument(value) => write!(f, "argument {value} out of range"),
        }
    }
}

/// Calls function `index`.
pub fn call(index: u64, arg0: u64, arg1: u64, boot: &BootInfoView) -> Result<u64, FnError> {
    match index {
        PRINT => print_string(arg0, boot),
        ADD => Ok(arg0.wrapping_add(arg1)),
        CHECKSUM => checksum(arg0, arg1, boot),
        SPIN => spin(arg0, boot.counter_frequency()),
        _ => Err(FnError::UnknownFunction(index)),
    }
}

/// The byte at `ipa`, which the caller has checked lies in RAM.
fn read_byte(boot: &BootInfoView, ipa: u64) -> u8 {
    // SAFETY: `ipa` lies in ROS or HRT RAM (checked by the caller against the boot info), which
    // the linear map maps as normal memory; a volatile read of a byte that another partition
    // may be writing is well defined.
    unsafe { core::ptr::read_volatile(boot.ipa_to_va(ipa) as *const u8) }
}

/// Bytes of `[ipa, ipa + len)`, which the caller has checked lies in RAM.
fn bytes(boot: &BootInfoView, ipa: u64, len: u64) -> impl Iterator<Item = u8> + '_ {
    (ipa..ipa + len).map(move |at| read_byte(boot, at))
}

fn print_string(ipa: u64, boot: &BootInfoView) -> Result<u64, FnError> {
    let region: Option<RamRange> = [boot.ros_ram(), boot.hrt_ram()].into_iter().find(|ram| ram.contains(ipa, 1));
    let available = region.and_then(|ram| ram.bytes_from(ipa)).ok_or(FnError::BadAddress { ipa, len: 1 })?;
    let scan = available.min(PRINT_MAX + 1);
    let len = (0..scan).find(|&offset| read_byte(boot, ipa + offset) == 0).ok_or(FnError::Unterminated { ipa })?;
    console::print_bytes(bytes(boot, ipa, len));
    if len == 0 || read_byte(boot, ipa + len - 1) != b'\n' {
        println!();
    }
    Ok(len)
}

/// Fletcher-64 modulus (2^32 - 1).
const FLETCHER64_MODULUS: u64 = 0xffff_ffff;
const WORD_BYTES: usize = 4;

/// Fletcher-64 of `bytes`: over little-endian 32-bit words (a final partial word is padded with
/// zero bytes), both sums start at 0 and are kept modulo 2^32 - 1; the result is
/// `sum2 << 32 | sum1`. ("abcde" gives 0xc8c6c527646362c6.)
pub fn fletcher64(bytes: impl Iterator<Item = u8>) -> u64 {
    let (mut sum1, mut sum2) = (0u64, 0u64);
    let mut word = [0u8; WORD_BYTES];
    let mut filled = 0;
    let mut add_word = |word: [u8; WORD_BYTES]| {
        sum1 = (sum1 + u64::from(u32::from_le_bytes(word))) % FLETCHER64_MODULUS;
        sum2 = (sum2 + sum1) % FLETCHER64_MODULUS;
    };
    for byte in bytes {
        word[filled] = byte;
        filled += 1;
        if filled == WORD_BYTES {
            add_word(word);
            word = [0; WORD_BYTES];
            filled = 0;
        }
    }
    if filled != 0 {
        add_word(word);
    }
    (sum2 << u32::BITS) | sum1
}

fn checksum(ipa: u64, len: u64, boot: &BootInfoView) -> Result<u64, FnError> {
    if !boot.ros_ram().contains(ipa, len) {
        return Err(FnError::BadAddress { ipa, len });
    }
    Ok(fletcher64(bytes(boot, ipa, len)))
}

fn spin(us: u64, counter_frequency: u64) -> Result<u64, FnError> {
    if us > SPIN_MAX_US {
        return Err(FnError::InvalidArgument(us));
    }
    let start = timer::now();
    let end = start + timer::us_to_ticks(us, counter_frequency);
    while timer::now() < end {
        core::hint::spin_loop();
    }
    Ok(timer::ticks_to_us(timer::now() - start, counter_frequency))
}

/// Boot self-test of [`ADD`], [`SPIN`] and the checksum's bounds check.
pub fn self_test(boot: &BootInfoView) -> Result<SelfTest, SelfTestError> {
    const SPIN_TEST_US: u64 = 100;
    const SUMS: [(u64, u64, u64); 2] = [(2, 3, 5), (u64::MAX, 2, 1)];
    for (a, b, expected) in SUMS {
        let got = call(ADD, a, b, boot).map_err(SelfTestError::Call)?;
        if got != expected {
            return Err(SelfTestError::Wrong { what: "add", got });
        }
    }
    let spun_us = call(SPIN, SPIN_TEST_US, 0, boot).map_err(SelfTestError::Call)?;
    if spun_us < SPIN_TEST_US {
        return Err(SelfTestError::Wrong { what: "spin (us)", got: spun_us });
    }
    // Two bytes straddling the end of ROS RAM: refused, without touching memory.
    let ros = boot.ros_ram();
    let straddling = call(CHECKSUM, (ros.start + ros.size).saturating_sub(1), 2, boot);
    match straddling {
        Err(FnError::BadAddress { .. }) => Ok(SelfTest { spin_us: SPIN_TEST_US, spun_us }),
        Err(error) => Err(SelfTestError::Call(error)),
        Ok(got) => Err(SelfTestError::Wrong { what: "checksum past the end of ROS RAM", got }),
    }
}

/// What [`self_test`] measured.
pub struct SelfTest {
    spin_us: u64,
    spun_us: u64,
}

impl fmt::Display for SelfTest {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "add ok, spin {} us ok (took {} us), checksum bounds ok", self.spin_us, self.spun_us)
    }
}

/// How [`self_test`] failed.
pub enum SelfTestError {
    Call(FnError),
    Wrong { what: &'static str, got: u64 },
}

impl fmt::Display for SelfTestError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Call(error) => write!(f, "{error}"),
            Self::Wrong { what, got } => write!(f, "{what} returned {got:#x}"),
        }
    }
}
