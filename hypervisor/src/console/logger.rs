//! A `log` backend writing prefixed lines to the console.

use core::fmt::{self, Write};
use log::{Level, LevelFilter, Log, Metadata, Record};

/// Starts every hypervisor line, like Xen's "(XEN)".
pub const LOG_PREFIX: &str = "(HYP) ";

/// Something that accepts whole formatted lines.
pub trait LineSink: Sync {
    fn write_line(&self, args: fmt::Arguments<'_>);
}

/// Formats a record as one console line: prefix, level tag for warnings and errors, message.
pub fn format_line(out: &mut dyn Write, level: Level, args: &fmt::Arguments<'_>) -> fmt::Result {
    out.write_str(LOG_PREFIX)?;
    match level {
        Level::Error => out.write_str("ERROR: ")?,
        Level::Warn => out.write_str("WARN: ")?,
        Level::Debug => out.write_str("debug: ")?,
        Level::Trace => out.write_str("trace: ")?,
        Level::Info => {}
    }
    out.write_fmt(*args)?;
    out.write_str("\n")
}

pub struct Logger<S: LineSink + 'static> {
    pub sink: &'static S,
}

impl<S: LineSink> Log for Logger<S> {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if self.enabled(record.metadata()) {
            self.sink.write_line(format_args!("{}", LineOf(record)));
        }
    }

    fn flush(&self) {}
}

struct LineOf<'a, 'r>(&'a Record<'r>);

impl fmt::Display for LineOf<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        format_line(f, self.0.level(), self.0.args())
    }
}

/// Sets the level that `log=` chose.
pub fn set_level(level: LevelFilter) {
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn lines_carry_prefix_and_level() {
        let mut out = String::new();
        format_line(&mut out, Level::Warn, &format_args!("vcpu {} stalled", 3)).unwrap();
        assert_eq!(out, "(HYP) WARN: vcpu 3 stalled\n");
        out.clear();
        format_line(&mut out, Level::Info, &format_args!("hello")).unwrap();
        assert_eq!(out, "(HYP) hello\n");
    }
}
