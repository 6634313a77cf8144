//! The hypervisor's own options, from the host `/chosen/bootargs` (QEMU `-append`).
//!
//! Syntax: space-separated `key=value` words. Unknown keys, malformed values and repeated keys
//! are errors: a typo must never silently fall back to a default.

use core::fmt;
use log::LevelFilter;

/// Largest vCPU count a VM may have (one redistributor frame each in the guest map).
pub const MAX_VCPUS: usize = 8;
/// Smallest guest RAM we accept: Debian's kernel and an initramfs need more than this.
pub const MIN_GUEST_MEM: u64 = 64 << 20;

/// Options as given; `None` means "not given, use the platform-derived default".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypOptions {
    pub vcpus: Option<usize>,
    pub guest_mem: Option<u64>,
    pub log_level: LevelFilter,
}

impl Default for HypOptions {
    fn default() -> Self {
        Self { vcpus: None, guest_mem: None, log_level: LevelFilter::Info }
    }
}

/// What is wrong with the command line, naming the offending word.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptionError<'a> {
    /// A word without `=`.
    NotKeyValue(&'a str),
    UnknownKey(&'a str),
    Repeated(&'a str),
    BadValue {
        key: &'a str,
        value: &'a str,
        expected: &'static str,
    },
}

impl fmt::Display for OptionError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotKeyValue(word) => write!(f, "option '{word}' is not of the form key=value"),
            Self::UnknownKey(key) => write!(f, "unknown option '{key}'"),
            Self::Repeated(key) => write!(f, "option '{key}' is given more than once"),
            Self::BadValue { key, value, expected } => {
                write!(f, "bad value '{value}' for option '{key}': expected {expected}")
            }
        }
    }
}

/// One line listing every option, printed with every option error.
pub const USAGE: &str = "options: vcpus=<1..8> mem=<size, e.g. 512M or 1G> log=<error|warn|info|debug|trace>";

/// Parses the host command line.
pub fn parse(cmdline: &str) -> Result<HypOptions, OptionError<'_>> {
    let mut options = HypOptions::default();
    let mut log_given = false;
    for word in cmdline.split_ascii_whitespace() {
        let (key, value) = word.split_once('=').ok_or(OptionError::NotKeyValue(word))?;
        match key {
            "vcpus" => {
                let bad = OptionError::BadValue { key, value, expected: "a whole number from 1 to 8" };
                if options.vcpus.is_some() {
                    return Err(OptionError::Repeated(key));
                }
                let n: usize = value.parse().map_err(|_| bad.clone())?;
                if !(1..=MAX_VCPUS).contains(&n) {
                    return Err(bad);
                }
                options.vcpus = Some(n);
            }
            "mem" => {
                if options.guest_mem.is_some() {
                    return Err(OptionError::Repeated(key));
                }
                let size = parse_size(value).filter(|&s| s >= MIN_GUEST_MEM).ok_or(OptionError::BadValue {
                    key,
                    value,
                    expected: "a size of at least 64M, like 512M or 1G",
                })?;
                options.guest_mem = Some(size);
            }
            "log" => {
                if log_given {
                    return Err(OptionError::Repeated(key));
                }
                log_given = true;
                options.log_level = parse_level(value).ok_or(OptionError::BadValue {
                    key,
                    value,
                    expected: "one of error, warn, info, debug, trace",
                })?;
            }
            _ => return Err(OptionError::UnknownKey(key)),
        }
    }
    Ok(options)
}

/// Parses `<number>[K|M|G]` (binary units); a size must be a multiple of 2 MiB so guest RAM
/// can be mapped with block descriptors.
pub fn parse_size(text: &str) -> Option<u64> {
    let (digits, shift) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 10),
        b'M' | b'm' => (&text[..text.len() - 1], 20),
        b'G' | b'g' => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let size = digits.parse::<u64>().ok()?.checked_mul(1 << shift)?;
    (size % (2 << 20) == 0).then_some(size)
}

fn parse_level(text: &str) -> Option<LevelFilter> {
    Some(match text {
        "error" => LevelFilter::Error,
        "warn" => LevelFilter::Warn,
        "info" => LevelFilter::Info,
        "debug" => LevelFilter::Debug,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_command_line_gives_defaults() {
        assert_eq!(parse(""), Ok(HypOptions::default()));
        assert_eq!(parse("   "), Ok(HypOptions::default()));
    }

    #[test]
    fn all_options_parse() {
        let options = parse("vcpus=4 mem=512M log=debug").unwrap();
        assert_eq!(options.vcpus, Some(4));
        assert_eq!(options.guest_mem, Some(512 << 20));
        assert_eq!(options.log_level, LevelFilter::Debug);
        assert_eq!(parse("mem=1G").unwrap().guest_mem, Some(1 << 30));
    }

    #[test]
    fn unknown_option_is_refused_by_name() {
        assert_eq!(parse("vcpus=2 frobnicate=1"), Err(OptionError::UnknownKey("frobnicate")));
        assert_eq!(parse("quiet"), Err(OptionError::NotKeyValue("quiet")));
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "vcpus=0",
            "vcpus=9",
            "vcpus=two",
            "vcpus=",
            "vcpus=-1",
            "mem=1T",
            "mem=",
            "mem=G",
            "mem=32M",
            "mem=3M",
            "mem=1.5G",
            "log=loud",
            "log=",
        ] {
            assert!(matches!(parse(bad), Err(OptionError::BadValue { .. })), "{bad} was accepted");
        }
    }

    #[test]
    fn repeated_options_are_refused() {
        assert_eq!(parse("vcpus=1 vcpus=2"), Err(OptionError::Repeated("vcpus")));
        assert_eq!(parse("log=info log=info"), Err(OptionError::Repeated("log")));
        assert_eq!(parse("mem=1G mem=1G"), Err(OptionError::Repeated("mem")));
    }

    #[test]
    fn sizes_use_binary_units_and_2mib_granularity() {
        assert_eq!(parse_size("2048K"), Some(2 << 20));
        assert_eq!(parse_size("64m"), Some(64 << 20));
        assert_eq!(parse_size("4194304"), Some(4 << 20));
        assert_eq!(parse_size("1025K"), None);
        assert_eq!(parse_size("99999999999999G"), None);
    }

    #[test]
    fn errors_name_the_offending_word() {
        let text = format!("{}", parse("mem=lots").unwrap_err());
        assert!(text.contains("mem") && text.contains("lots"), "{text}");
    }
}
