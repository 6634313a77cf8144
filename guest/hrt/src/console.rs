//! The HRT console: `print!`/`println!` through the hypervisor's console call (abi.rs
//! `HRT_CONSOLE_ID`), which prefixes each line with "(HRT) ".
//!
//! Each core formats into its own line buffer (no lock between cores) and hands it to the
//! hypervisor at a newline or when it is full. The IRQ handler prints too, so the buffer is
//! only touched with IRQs masked. The fatal and panic reports use a fresh buffer on the stack
//! ([`print_unbuffered`]): they may have interrupted this core in the middle of a print.

use core::cell::UnsafeCell;
use core::fmt::{self, Write};

use hvm_ros_lib::abi::HRT_CONSOLE_MAX;

use crate::cpu::{self, IrqsMasked, MAX_CORES};
use crate::{hvc, translate};

/// One console call's worth of bytes.
const LINE_MAX: usize = HRT_CONSOLE_MAX as usize;

/// The bytes of a line. Aligned to their own size, so they never straddle a page: the console
/// call takes one IPA, and only the first byte's is looked up.
#[repr(C, align(256))]
struct LineBytes([u8; LINE_MAX]);

const _: () = assert!(core::mem::align_of::<LineBytes>() == LINE_MAX);
const _: () = assert!(translate::PAGE_SIZE.is_multiple_of(LINE_MAX as u64));

struct LineBuffer {
    bytes: LineBytes,
    len: usize,
}

impl LineBuffer {
    const fn new() -> Self {
        Self { bytes: LineBytes([0; LINE_MAX]), len: 0 }
    }

    fn push(&mut self, byte: u8) {
        self.bytes.0[self.len] = byte;
        self.len += 1;
        if byte == b'\n' || self.len == LINE_MAX {
            self.flush();
        }
    }

    /// Hands the buffered bytes to the hypervisor. A failure cannot be reported anywhere else,
    /// so the bytes are dropped.
    fn flush(&mut self) {
        if self.len == 0 {
            return;
        }
        if let Some(ipa) = translate::va_to_ipa(self.bytes.0.as_ptr() as u64) {
            let _ = hvc::console(ipa, self.len as u64);
        }
        self.len = 0;
    }
}

impl Write for LineBuffer {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(|byte| self.push(byte));
        Ok(())
    }
}

/// One line buffer per core.
struct PerCoreLines([UnsafeCell<LineBuffer>; MAX_CORES]);

// SAFETY: core `i` only ever touches element `i`, and only with IRQs masked (`with_line`), so
// no two contexts hold the same buffer at once.
unsafe impl Sync for PerCoreLines {}

static LINES: PerCoreLines = PerCoreLines([const { UnsafeCell::new(LineBuffer::new()) }; MAX_CORES]);

/// Runs `f` on this core's line buffer, IRQs masked. A core without one (index beyond
/// MAX_CORES, only before boot checks park it) gets a temporary buffer, flushed at the end.
fn with_line(f: impl FnOnce(&mut LineBuffer)) {
    let _masked = IrqsMasked::new();
    match LINES.0.get(cpu::core_index()) {
        // SAFETY: this core's own buffer, IRQs masked: nothing else can be using it (see the
        // Sync impl). The fatal and panic paths never come here.
        Some(cell) => f(unsafe { &mut *cell.get() }),
        None => {
            let mut line = LineBuffer::new();
            f(&mut line);
            line.flush();
        }
    }
}

/// What `print!` calls.
pub fn print_args(args: fmt::Arguments) {
    with_line(|line| {
        let _ = line.write_fmt(args);
    });
}

/// `byte`, or '?' if it is not printable ASCII, a newline or a tab: text from outside this
/// kernel (guest memory, the command line) cannot play terminal escape games on the host
/// console.
fn printable(byte: u8) -> u8 {
    let printable = byte.is_ascii_graphic() || matches!(byte, b' ' | b'\n' | b'\t');
    if printable {
        byte
    } else {
        b'?'
    }
}

/// Prints raw bytes (text from guest memory), through [`printable`].
pub fn print_bytes(bytes: impl IntoIterator<Item = u8>) {
    with_line(|line| {
        for byte in bytes {
            line.push(printable(byte));
        }
    });
}

/// Raw bytes as `{}` in a `print!` (through [`printable`]): for a word of the command line in
/// the middle of a line, which then goes out in one piece.
pub struct Printable<'a>(pub &'a [u8]);

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.iter().try_for_each(|&byte| f.write_char(char::from(printable(byte))))
    }
}

/// Bytes from an iterator as `{}` (through [`printable`]): for text read from guest memory
/// in place, printed as part of one line.
pub struct PrintableIter<I>(pub I);

impl<I: Iterator<Item = u8> + Clone> fmt::Display for PrintableIter<I> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.0.clone().try_for_each(|byte| f.write_char(char::from(printable(byte))))
    }
}

/// One line from a fresh buffer on the stack, whatever this core's buffer holds: for the fatal
/// exception and panic reports.
pub fn print_unbuffered(args: fmt::Arguments) {
    let _masked = IrqsMasked::new();
    let mut line = LineBuffer::new();
    let _ = writeln!(line, "{args}");
    line.flush();
}

/// Prints formatted text.
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::console::print_args(format_args!($($arg)*))
    };
}

/// Prints formatted text and a newline.
macro_rules! println {
    () => {
        $crate::console::print_args(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::console::print_args(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {print, println};
