//! The guest's breakpoint and watchpoint registers. They are not trapped (Linux writes all of
//! them on every CPU at boot, and a debugger in the guest uses them freely), so they are the
//! pCPU's: switched with the vCPU, so that vCPUs sharing a pCPU never see (or fire) each
//! other's breakpoints, and reset when a vCPU starts afresh (issue 13, hole 6).

use aarch64_cpu::registers::{Readable, ID_AA64DFR0_EL1};
use spin::Once;

/// The architecture allows up to 16 of each.
const MAX_PAIRS: usize = 16;

/// Reads a debug register whose name is the concatenation of `$part`s.
macro_rules! read_debug_register {
    ($($part:expr),+) => {{
        let value: u64;
        // SAFETY: reading an implemented debug register (the caller checked the index) has no
        // side effect.
        unsafe { core::arch::asm!(concat!("mrs {}, ", $($part),+), out(reg) value) };
        value
    }};
}

/// Writes `$value` to the debug register named by the `$part`s.
macro_rules! write_debug_register {
    ($value:expr, $($part:expr),+) => {
        // SAFETY: the guest's own debug state, written while it does not run, into an
        // implemented register (the caller checked the index).
        unsafe { core::arch::asm!(concat!("msr ", $($part),+, ", {}"), in(reg) $value) }
    };
}

/// Breakpoint or watchpoint.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Breakpoint,
    Watchpoint,
}

/// Pair `n` (control, value) of `kind`, read from this pCPU.
fn read_pair(kind: Kind, n: usize) -> (u64, u64) {
    macro_rules! arms {
        ($($i:literal)*) => {
            match (kind, n) {
                $(
                    (Kind::Breakpoint, $i) => (
                        read_debug_register!("dbgbcr", stringify!($i), "_el1"),
                        read_debug_register!("dbgbvr", stringify!($i), "_el1"),
                    ),
                    (Kind::Watchpoint, $i) => (
                        read_debug_register!("dbgwcr", stringify!($i), "_el1"),
                        read_debug_register!("dbgwvr", stringify!($i), "_el1"),
                    ),
                )*
                _ => (0, 0),
            }
        };
    }
    arms!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
}

/// Writes pair `n` of `kind`: the value first, so an enabled pair never matches a stale
/// address.
fn write_pair(kind: Kind, n: usize, control: u64, value: u64) {
    macro_rules! arms {
        ($($i:literal)*) => {
            match (kind, n) {
                $(
                    (Kind::Breakpoint, $i) => {
                        write_debug_register!(value, "dbgbvr", stringify!($i), "_el1");
                        write_debug_register!(control, "dbgbcr", stringify!($i), "_el1");
                    }
                    (Kind::Watchpoint, $i) => {
                        write_debug_register!(value, "dbgwvr", stringify!($i), "_el1");
                        write_debug_register!(control, "dbgwcr", stringify!($i), "_el1");
                    }
                )*
                _ => {}
            }
        };
    }
    arms!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15)
}

/// Control and value registers of one kind (breakpoints or watchpoints).
#[derive(Clone, Copy, Debug, Default)]
pub struct Pairs {
    control: [u64; MAX_PAIRS],
    value: [u64; MAX_PAIRS],
}

/// A vCPU's breakpoints and watchpoints (all zero: disabled, as at reset).
#[derive(Clone, Copy, Debug, Default)]
pub struct DebugRegisters {
    breakpoints: Pairs,
    watchpoints: Pairs,
}

/// How many breakpoints and watchpoints this CPU has (ID_AA64DFR0_EL1.BRPs/WRPs hold the count
/// minus one), read once: every vCPU switch needs it twice.
fn implemented() -> (usize, usize) {
    static COUNTS: Once<(usize, usize)> = Once::new();
    *COUNTS.call_once(|| {
        let breakpoints = ID_AA64DFR0_EL1.read(ID_AA64DFR0_EL1::BRPs) as usize + 1;
        let watchpoints = ID_AA64DFR0_EL1.read(ID_AA64DFR0_EL1::WRPs) as usize + 1;
        (breakpoints.min(MAX_PAIRS), watchpoints.min(MAX_PAIRS))
    })
}

impl DebugRegisters {
    pub const fn zeroed() -> Self {
        let none = Pairs { control: [0; MAX_PAIRS], value: [0; MAX_PAIRS] };
        Self { breakpoints: none, watchpoints: none }
    }

    /// Reads the implemented ones from this pCPU.
    pub fn save() -> Self {
        let (breakpoints, watchpoints) = implemented();
        let mut regs = Self::default();
        for n in 0..breakpoints {
            (regs.breakpoints.control[n], regs.breakpoints.value[n]) = read_pair(Kind::Breakpoint, n);
        }
        for n in 0..watchpoints {
            (regs.watchpoints.control[n], regs.watchpoints.value[n]) = read_pair(Kind::Watchpoint, n);
        }
        regs
    }

    /// Writes them to this pCPU (the guest is not running).
    pub fn restore(&self) {
        let (breakpoints, watchpoints) = implemented();
        for n in 0..breakpoints {
            write_pair(Kind::Breakpoint, n, self.breakpoints.control[n], self.breakpoints.value[n]);
        }
        for n in 0..watchpoints {
            write_pair(Kind::Watchpoint, n, self.watchpoints.control[n], self.watchpoints.value[n]);
        }
    }
}
