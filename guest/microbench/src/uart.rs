//! Output on QEMU virt's PL011, by polling. No initialisation: QEMU's PL011 (and the
//! hypervisor's) transmits from reset. Only the boot CPU prints, except for the last words of
//! an unexpected exception, so there is no lock.

use core::fmt;
use core::ptr::{read_volatile, write_volatile};

/// PL011 base address on QEMU virt (the same in the hypervisor's guest map).
pub const UART_BASE: usize = 0x0900_0000;
/// UARTDR, the data register.
pub const UARTDR: usize = 0x000;
/// UARTFR, the flag register.
pub const UARTFR: usize = 0x018;
/// UARTFR.TXFF: the transmit FIFO is full.
const FR_TXFF: u32 = 1 << 5;

/// Address of UARTDR, for boot.S's message before the MMU is on.
pub const UART_DR_ADDRESS: usize = UART_BASE + UARTDR;

/// Reads the 32-bit register at `offset` (UARTDR or UARTFR).
pub fn read(offset: usize) -> u32 {
    debug_assert!(offset == UARTDR || offset == UARTFR);
    // SAFETY: the PL011's registers lie in the first GiB, mapped as device memory (mmu.rs); a
    // read of UARTFR has no side effect, one of UARTDR pops the receive FIFO.
    unsafe { read_volatile((UART_BASE + offset) as *const u32) }
}

fn write_byte(byte: u8) {
    while read(UARTFR) & FR_TXFF != 0 {
        core::hint::spin_loop();
    }
    // SAFETY: UARTDR is device memory (mmu.rs); writing it transmits one byte.
    unsafe { write_volatile((UART_BASE + UARTDR) as *mut u32, byte.into()) };
}

/// The console, as a `fmt::Write`.
pub struct Console;

impl fmt::Write for Console {
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

/// Prints formatted text with a newline on the console.
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        // Writing to the console cannot fail.
        let _ = writeln!($crate::uart::Console, $($arg)*);
    }};
}
pub(crate) use println;
