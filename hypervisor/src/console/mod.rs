//! The hypervisor's console: the physical PL011, shared by all pCPUs (and, later, the guest's
//! emulated UART). Log lines carry [`LOG_PREFIX`] so a reader can tell them from guest output.

pub mod guest_filter;
pub mod logger;
pub mod partial_line;
pub mod pl011;

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use guest_filter::GuestFilter;
pub use logger::LOG_PREFIX;
use partial_line::PartialLine;
use pl011::Pl011;

/// The shared console; writers take the lock for a whole line so lines never interleave.
pub struct Console {
    uart: spin::Mutex<Option<Pl011>>,
    /// Keeps guest output from forging hypervisor lines (used under the `uart` lock).
    guest_filter: spin::Mutex<GuestFilter>,
    /// Whether the last byte written ended a line: a hypervisor line that would otherwise
    /// continue a guest's unfinished line starts on a new one, so the prefix stays visible.
    at_line_start: AtomicBool,
    /// The guest's unfinished line, written again after a hypervisor line that broke it (used
    /// under the `uart` lock).
    guest_line: spin::Mutex<PartialLine>,
}

pub static CONSOLE: Console = Console {
    uart: spin::Mutex::new(None),
    guest_filter: spin::Mutex::new(GuestFilter::new()),
    at_line_start: AtomicBool::new(true),
    guest_line: spin::Mutex::new(PartialLine::new()),
};

impl Console {
    /// Points the console at a PL011.
    ///
    /// # Safety
    /// `base` must be a PL011's register block, mapped as device memory from now on.
    pub unsafe fn init(&self, base: usize) {
        // SAFETY: forwarded from this function's contract.
        *self.uart.lock() = Some(unsafe { Pl011::new(base) });
    }

    /// Writes text as is (newlines become CR LF), holding the lock for the whole text. Text
    /// that interrupts an unfinished guest line starts on a new line, and the guest's line is
    /// written again after it.
    pub fn write_text(&self, args: fmt::Arguments<'_>) {
        let guard = self.uart.lock();
        if let Some(uart) = guard.as_ref() {
            let interrupted = !self.at_line_start.load(Ordering::Relaxed);
            if interrupted {
                let _ = UartWriter(uart).write_str("\n");
            }
            let _ = UartWriter(uart).write_fmt(args);
            self.at_line_start.store(true, Ordering::Relaxed);
            if interrupted {
                let line = self.guest_line.lock();
                let redraw = line.redraw();
                if !redraw.is_empty() {
                    let _ = UartWriter(uart).write_str(core::str::from_utf8(redraw).unwrap_or(""));
                    self.at_line_start.store(false, Ordering::Relaxed);
                }
            }
        }
    }

    /// Writes one byte of guest console output (see `guest_filter`: a guest cannot print what
    /// looks like a hypervisor line).
    pub fn write_guest_byte(&self, byte: u8) {
        let guard = self.uart.lock();
        if let Some(uart) = guard.as_ref() {
            let mut line = self.guest_line.lock();
            self.guest_filter.lock().push(byte, |out| {
                let _ = UartWriter(uart).write_str(core::str::from_utf8(&[out]).unwrap_or("?"));
                self.at_line_start.store(out == b'\n', Ordering::Relaxed);
                line.push(out);
            });
        }
    }

    /// Like `write_text` but usable while panicking: if another CPU holds the lock (it may have
    /// panicked with it held) it writes anyway after a short wait, at worst mixing a line.
    pub fn write_emergency(&self, args: fmt::Arguments<'_>) {
        for _ in 0..1_000_000 {
            if let Some(guard) = self.uart.try_lock() {
                if let Some(uart) = guard.as_ref() {
                    let _ = UartWriter(uart).write_fmt(args);
                }
                return;
            }
            core::hint::spin_loop();
        }
        // SAFETY: a holder that never releases the lock has stopped (it panicked or hung);
        // breaking the lock risks at worst a mixed line, better than a silent panic.
        unsafe { self.uart.force_unlock() };
        self.write_text(args);
    }

    /// Waits until the UART has sent everything (before power-off).
    pub fn flush(&self) {
        if let Some(uart) = self.uart.lock().as_ref() {
            uart.flush();
        }
    }

    /// Whether the UART interrupts when input arrives.
    pub fn set_receive_interrupt(&self, enabled: bool) {
        if let Some(uart) = self.uart.lock().as_ref() {
            uart.set_receive_interrupt(enabled);
        }
    }

    /// A byte typed on the console, if any.
    pub fn read_byte(&self) -> Option<u8> {
        self.uart.lock().as_ref().and_then(Pl011::read_byte)
    }
}

impl logger::LineSink for Console {
    fn write_line(&self, args: fmt::Arguments<'_>) {
        self.write_text(args);
    }
}

struct UartWriter<'a>(&'a Pl011);

impl Write for UartWriter<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            if byte == b'\n' {
                self.0.write_byte(b'\r');
            }
            self.0.write_byte(byte);
        }
        Ok(())
    }
}
