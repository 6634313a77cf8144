//! Output on the PL011 at QEMU virt's address, by polling, one whole line at a time under a
//! spinlock (several vCPUs print). The UART is re-enabled before each line: the fuzzer's own
//! random stores may have switched it off.
//!
//! The HRT build (feature `hrt`) has no UART of its own: its lines go through the hypervisor's
//! HRT console (hrt/console.rs), and the PL011 path here is linked but unused.
#![cfg_attr(feature = "hrt", allow(dead_code, unused_imports))]

use core::fmt::{self, Write};
use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicBool, Ordering};

/// PL011 base address on QEMU virt (the same in the hypervisor's guest map).
pub const UART_BASE: usize = 0x0900_0000;
pub const UART_SIZE: u64 = 0x1000;
/// Registers.
pub const UARTDR: usize = 0x000;
pub const UARTFR: usize = 0x018;
pub const UARTCR: usize = 0x030;
pub const UARTIMSC: usize = 0x038;
pub const UARTICR: usize = 0x044;
/// UARTFR.TXFF: the transmit FIFO is full.
pub const FR_TXFF: u32 = 1 << 5;
/// UARTCR: UARTEN, TXE, RXE.
pub const CR_ENABLED: u32 = (1 << 0) | (1 << 8) | (1 << 9);
/// All interrupt bits (UARTICR clears them).
pub const INT_ALL: u32 = 0x7ff;
/// Address of UARTDR, for boot.S's message before the MMU is on.
pub const UART_DR_ADDRESS: usize = UART_BASE + UARTDR;
/// How many polls of TXFF before a byte is sent anyway (a UART stuck full must not hang us).
const TX_POLLS: u32 = 100_000;
/// How many tries for the lock before an exception handler prints anyway.
const FORCE_AFTER_TRIES: u32 = 10_000_000;

static LOCK: AtomicBool = AtomicBool::new(false);

pub fn read(offset: usize) -> u32 {
    // SAFETY: the PL011's registers lie in the first GiB, mapped as device memory (mmu.rs); a
    // read of UARTFR or UARTCR has no side effect.
    unsafe { read_volatile((UART_BASE + offset) as *const u32) }
}

pub fn write(offset: usize, value: u32) {
    // SAFETY: a PL011 register, device memory (mmu.rs); writing it changes the UART only.
    unsafe { write_volatile((UART_BASE + offset) as *mut u32, value) };
}

fn write_byte(byte: u8) {
    for _ in 0..TX_POLLS {
        if read(UARTFR) & FR_TXFF == 0 {
            break;
        }
        core::hint::spin_loop();
    }
    write(UARTDR, byte.into());
}

/// The console, as a `fmt::Write` (callers hold the lock).
struct Console;

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            if byte == b'\n' {
                write_byte(b'\r');
            }
            write_byte(byte);
        }
        Ok(())
    }
}

/// Prints one line (HRT build: through the HRT console, which needs no lock).
#[cfg(feature = "hrt")]
pub fn print_line(args: fmt::Arguments, _force: bool) {
    crate::hrt::console::print_line(args);
}

/// Prints one line under the lock. With `force`, as from an exception handler that may have
/// interrupted the lock's holder on this very CPU, prints anyway after a long wait.
#[cfg(not(feature = "hrt"))]
pub fn print_line(args: fmt::Arguments, force: bool) {
    let mut tries = 0u32;
    while LOCK.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        tries += 1;
        if force && tries > FORCE_AFTER_TRIES {
            break;
        }
        core::hint::spin_loop();
    }
    if read(UARTCR) & CR_ENABLED != CR_ENABLED {
        write(UARTCR, CR_ENABLED);
    }
    let _ = writeln!(Console, "{args}");
    LOCK.store(false, Ordering::Release);
}

/// Prints formatted text with a newline.
macro_rules! println {
    ($($arg:tt)*) => {
        $crate::uart::print_line(format_args!($($arg)*), false)
    };
}
pub(crate) use println;
