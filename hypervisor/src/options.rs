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

/// HRT memory when `hrt_mem=` is not given.
pub const DEFAULT_HRT_MEM: u64 = 64 << 20;
/// Smallest HRT memory: the image, its boot state (tables, stacks) and a little heap.
pub const MIN_HRT_MEM: u64 = 8 << 20;

/// Options as given; `None` means "not given, use the platform-derived default".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HypOptions {
    pub vcpus: Option<usize>,
    /// With `hvm=on`, the ROS's RAM.
    pub guest_mem: Option<u64>,
    pub log_level: LevelFilter,
    /// `hvm=on`: a hybrid VM (see [`HvmOptions`]).
    pub hvm: Option<HvmOptions>,
}

impl Default for HypOptions {
    fn default() -> Self {
        Self { vcpus: None, guest_mem: None, log_level: LevelFilter::Info, hvm: None }
    }
}

/// The partitions of a hybrid VM: vCPUs `[0, ros_vcpus)` run the ROS (Linux), the next
/// `hrt_vcpus` the HRT, whose `hrt_mem` bytes of RAM lie directly above the ROS's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HvmOptions {
    pub ros_vcpus: usize,
    pub hrt_vcpus: usize,
    pub hrt_mem: u64,
}

impl HvmOptions {
    pub const fn total_vcpus(&self) -> usize {
        self.ros_vcpus + self.hrt_vcpus
    }
}

/// Defaults of a hybrid VM for `pcpus` pCPUs when `ros_vcpus`/`hrt_vcpus` are not given: one
/// HRT core, the rest ROS (at least one of each).
pub fn default_partition(pcpus: usize) -> (usize, usize) {
    (pcpus.saturating_sub(1).max(1), 1)
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
    /// Options that make no sense together; names the option to change and why.
    Conflict {
        key: &'static str,
        reason: &'static str,
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
            Self::Conflict { key, reason } => write!(f, "option '{key}': {reason}"),
        }
    }
}

/// One line listing every option, printed with every option error.
pub const USAGE: &str = "options: vcpus=<1..8> mem=<size, e.g. 512M or 1G> log=<error|warn|info|debug|trace> \
                         hvm=<on|off> ros_vcpus=<n> hrt_vcpus=<n> hrt_mem=<size>";

/// The hybrid-VM words as given, checked together once every word is read.
#[derive(Default)]
struct HvmWords {
    hvm: Option<bool>,
    ros_vcpus: Option<usize>,
    hrt_vcpus: Option<usize>,
    hrt_mem: Option<u64>,
}

/// Parses the host command line. `pcpus` (the host's pCPU count) gives the hybrid VM's
/// default partition sizes.
pub fn parse(cmdline: &str, pcpus: usize) -> Result<HypOptions, OptionError<'_>> {
    let mut options = HypOptions::default();
    let mut log_given = false;
    let mut hvm = HvmWords::default();
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
            "hvm" => {
                set_once(
                    &mut hvm.hvm,
                    key,
                    || match value {
                        "on" => Some(true),
                        "off" => Some(false),
                        _ => None,
                    },
                    value,
                    "on or off",
                )?;
            }
            "ros_vcpus" | "hrt_vcpus" => {
                let slot = if key == "ros_vcpus" { &mut hvm.ros_vcpus } else { &mut hvm.hrt_vcpus };
                set_once(
                    slot,
                    key,
                    || value.parse().ok().filter(|n| (1..=MAX_VCPUS).contains(n)),
                    value,
                    "a whole number from 1 to 8",
                )?;
            }
            "hrt_mem" => {
                set_once(
                    &mut hvm.hrt_mem,
                    key,
                    || parse_size(value).filter(|&s| s >= MIN_HRT_MEM),
                    value,
                    "a size of at least 8M, like 64M",
                )?;
            }
            _ => return Err(OptionError::UnknownKey(key)),
        }
    }
    options.hvm = check_hvm(&hvm, &options, pcpus)?;
    Ok(options)
}

/// Stores the parsed value of an option given once; refuses a repeat or a bad value.
fn set_once<'a, T>(
    slot: &mut Option<T>,
    key: &'a str,
    parse: impl FnOnce() -> Option<T>,
    value: &'a str,
    expected: &'static str,
) -> Result<(), OptionError<'a>> {
    if slot.is_some() {
        return Err(OptionError::Repeated(key));
    }
    *slot = Some(parse().ok_or(OptionError::BadValue { key, value, expected })?);
    Ok(())
}

/// The hybrid-VM options checked against each other: partition options without `hvm=on`,
/// `vcpus=` with it, or more vCPUs than supported are refused, naming the option.
fn check_hvm(words: &HvmWords, options: &HypOptions, pcpus: usize) -> Result<Option<HvmOptions>, OptionError<'static>> {
    let partition_given = words.ros_vcpus.is_some() || words.hrt_vcpus.is_some() || words.hrt_mem.is_some();
    if words.hvm != Some(true) {
        let key = if words.ros_vcpus.is_some() {
            "ros_vcpus"
        } else if words.hrt_vcpus.is_some() {
            "hrt_vcpus"
        } else {
            "hrt_mem"
        };
        if partition_given {
            return Err(OptionError::Conflict { key, reason: "only applies to a hybrid VM: add hvm=on" });
        }
        return Ok(None);
    }
    if options.vcpus.is_some() {
        return Err(OptionError::Conflict {
            key: "vcpus",
            reason: "a hybrid VM's vCPUs are ros_vcpus + hrt_vcpus: give those instead",
        });
    }
    let (default_ros, default_hrt) = default_partition(pcpus);
    let hvm = HvmOptions {
        ros_vcpus: words.ros_vcpus.unwrap_or(default_ros),
        hrt_vcpus: words.hrt_vcpus.unwrap_or(default_hrt),
        hrt_mem: words.hrt_mem.unwrap_or(DEFAULT_HRT_MEM),
    };
    if hvm.total_vcpus() > MAX_VCPUS {
        let key = if words.hrt_vcpus.is_some() { "hrt_vcpus" } else { "ros_vcpus" };
        return Err(OptionError::Conflict { key, reason: "ros_vcpus + hrt_vcpus may not exceed 8" });
    }
    Ok(Some(hvm))
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

    /// Parses as on a 4-pCPU host.
    fn parse(cmdline: &str) -> Result<HypOptions, OptionError<'_>> {
        super::parse(cmdline, 4)
    }

    #[test]
    fn hvm_defaults_to_one_hrt_core_and_the_rest_ros() {
        let hvm = parse("hvm=on").unwrap().hvm.unwrap();
        assert_eq!(hvm, HvmOptions { ros_vcpus: 3, hrt_vcpus: 1, hrt_mem: DEFAULT_HRT_MEM });
        assert_eq!(super::parse("hvm=on", 1).unwrap().hvm.unwrap().total_vcpus(), 2, "one of each on 1 pCPU");
        assert_eq!(parse("hvm=off").unwrap().hvm, None);
        assert_eq!(parse("").unwrap().hvm, None);
    }

    #[test]
    fn hvm_partitions_parse() {
        let options = parse("hvm=on ros_vcpus=2 hrt_vcpus=2 hrt_mem=128M mem=512M").unwrap();
        assert_eq!(options.hvm, Some(HvmOptions { ros_vcpus: 2, hrt_vcpus: 2, hrt_mem: 128 << 20 }));
        assert_eq!(options.guest_mem, Some(512 << 20), "mem= is the ROS's RAM");
    }

    #[test]
    fn contradictory_hvm_options_name_the_option() {
        let conflict = |cmdline| match parse(cmdline) {
            Err(OptionError::Conflict { key, .. }) => key,
            other => panic!("{cmdline}: {other:?}"),
        };
        assert_eq!(conflict("ros_vcpus=2"), "ros_vcpus");
        assert_eq!(conflict("hvm=off hrt_vcpus=1"), "hrt_vcpus");
        assert_eq!(conflict("hrt_mem=64M"), "hrt_mem");
        assert_eq!(conflict("hvm=on vcpus=4"), "vcpus");
        assert_eq!(conflict("hvm=on ros_vcpus=6 hrt_vcpus=3"), "hrt_vcpus");
        assert_eq!(conflict("hvm=on ros_vcpus=8"), "ros_vcpus");
        for bad in ["hvm=on ros_vcpus=0", "hvm=on hrt_vcpus=0", "hvm=yes", "hvm=on hrt_mem=4M", "hvm=on hrt_mem=3M"] {
            assert!(matches!(parse(bad), Err(OptionError::BadValue { .. })), "{bad} was accepted");
        }
        assert_eq!(parse("hvm=on hvm=on"), Err(OptionError::Repeated("hvm")));
        let text = format!("{}", parse("hvm=on vcpus=2").unwrap_err());
        assert!(text.contains("vcpus") && text.contains("ros_vcpus"), "{text}");
    }

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
