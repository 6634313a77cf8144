//! The saved context of an exception taken to EL2 (built by `vectors.S`) and its reporting.

use core::fmt;

use aarch64_cpu::registers::{Readable, ESR_EL2, FAR_EL2, HPFAR_EL2};

/// Registers saved by `vectors.S`; the layout is fixed by the assembly (offsets in 8-byte words).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct TrapFrame {
    pub x: [u64; 31],
    pub elr: u64,
    pub spsr: u64,
    _pad: u64,
}

impl TrapFrame {
    pub const fn zeroed() -> Self {
        Self { x: [0; 31], elr: 0, spsr: 0, _pad: 0 }
    }
}

const _: () = assert!(core::mem::size_of::<TrapFrame>() == 34 * 8, "must match TRAP_FRAME_SIZE in vectors.S");

/// Which of the 16 vector-table entries was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VectorKind(pub u64);

impl VectorKind {
    /// Taken from EL2 itself (a hypervisor bug) rather than from a guest.
    pub fn from_current_el(self) -> bool {
        self.0 < 8
    }

    pub fn is_sync(self) -> bool {
        self.0.is_multiple_of(4)
    }

    pub fn is_irq(self) -> bool {
        self.0 % 4 == 1
    }

    pub fn is_serror(self) -> bool {
        self.0 % 4 == 3
    }
}

impl fmt::Display for VectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ORIGIN: [&str; 4] = ["EL2 with SP_EL0", "EL2 with SP_EL2", "lower EL (AArch64)", "lower EL (AArch32)"];
        const TYPE: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];
        write!(f, "{} from {}", TYPE[(self.0 % 4) as usize], ORIGIN[(self.0 / 4) as usize % 4])
    }
}

/// The fault registers, read at the time of reporting.
#[derive(Clone, Copy)]
pub struct FaultRegisters {
    pub esr: u64,
    pub far: u64,
    pub hpfar: u64,
}

impl FaultRegisters {
    pub fn read() -> Self {
        Self { esr: ESR_EL2.get(), far: FAR_EL2.get(), hpfar: HPFAR_EL2.get() }
    }
}

impl fmt::Display for FaultRegisters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ESR_EL2={:#018x} FAR_EL2={:#018x} HPFAR_EL2={:#018x}", self.esr, self.far, self.hpfar)
    }
}

impl TrapFrame {
    /// Writes the registers, four per line, each line through `line`.
    pub fn dump(&self, mut line: impl FnMut(fmt::Arguments<'_>)) {
        line(format_args!("ELR_EL2={:#018x} SPSR_EL2={:#018x}", self.elr, self.spsr));
        for row in (0..31).step_by(4) {
            let mut text = heapless_line::Line::new();
            for reg in row..(row + 4).min(31) {
                let _ = fmt::Write::write_fmt(&mut text, format_args!("x{reg:<2}={:#018x} ", self.x[reg]));
            }
            line(format_args!("{}", text.as_str()));
        }
    }
}

/// A fixed-size line buffer, so dumping registers never allocates (it runs in panics).
mod heapless_line {
    pub struct Line {
        buf: [u8; 128],
        len: usize,
    }

    impl Line {
        pub fn new() -> Self {
            Self { buf: [0; 128], len: 0 }
        }

        pub fn as_str(&self) -> &str {
            core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
        }
    }

    impl core::fmt::Write for Line {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.len + s.len();
            if end > self.buf.len() {
                return Err(core::fmt::Error);
            }
            self.buf[self.len..end].copy_from_slice(s.as_bytes());
            self.len = end;
            Ok(())
        }
    }
}
