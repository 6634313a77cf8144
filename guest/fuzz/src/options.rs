//! The fuzzer's command line (/chosen/bootargs): `seed=<n> iter=<n> [trace=<op>]
//! [progress=<n>] [classes=<a,b,...>] [qemu_bugs=1] [spare=vtimer] [scenario=<name>]`.
//! Numbers are decimal or 0x-hex. Unknown words are an error (a typo must not silently run
//! another fuzz).

use crate::ops;
use crate::scenarios::Scenario;

/// Without `seed=` / `iter=`.
const DEFAULT_SEED: u64 = 1;
const DEFAULT_ITER: u64 = 1000;
/// A progress line every this many operations per CPU.
const DEFAULT_PROGRESS: u64 = 2000;

pub struct Options {
    pub seed: u64,
    pub iter: u64,
    /// Print operations from this index on (u64::MAX: never).
    pub trace_from: u64,
    pub progress: u64,
    /// Bit n: ops::CLASSES[n] is drawn.
    pub classes: u32,
    /// Do not avoid the operations known to crash QEMU itself.
    pub qemu_bugs: bool,
    /// `spare=vtimer`: leave PPI 27 alone (see ops::Ctx).
    pub spare_vtimer: bool,
    /// `scenario=<name>`: run that scenario instead of the random phase (scenarios/).
    pub scenario: Option<Scenario>,
}

fn number(text: &[u8]) -> Option<u64> {
    let text = core::str::from_utf8(text).ok()?;
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Parses the command line; on error, the offending word.
pub fn parse(bootargs: &[u8]) -> Result<Options, &[u8]> {
    let mut options = Options {
        seed: DEFAULT_SEED,
        iter: DEFAULT_ITER,
        trace_from: u64::MAX,
        progress: DEFAULT_PROGRESS,
        classes: ops::parse_classes(b"").unwrap_or(0),
        qemu_bugs: false,
        spare_vtimer: false,
        scenario: None,
    };
    for word in bootargs.split(u8::is_ascii_whitespace).filter(|w| !w.is_empty()) {
        let mut parts = word.splitn(2, |&b| b == b'=');
        let (key, value) = (parts.next().unwrap_or(b""), parts.next().unwrap_or(b""));
        let parsed = match key {
            b"seed" => number(value).map(|n| options.seed = n),
            b"iter" => number(value).map(|n| options.iter = n),
            b"trace" => number(value).map(|n| options.trace_from = n),
            b"progress" => number(value).map(|n| options.progress = n.max(1)),
            b"classes" => ops::parse_classes(value).map(|c| options.classes = c),
            b"qemu_bugs" => number(value).map(|n| options.qemu_bugs = n != 0),
            b"spare" if value == b"vtimer" => {
                options.spare_vtimer = true;
                Some(())
            }
            b"scenario" => Scenario::parse(value).map(|s| options.scenario = Some(s)),
            // Linux's console option, harmless to pass along.
            b"console" => Some(()),
            _ => None,
        };
        parsed.ok_or(word)?;
    }
    if options.classes == 0 {
        return Err(b"classes=");
    }
    Ok(options)
}
