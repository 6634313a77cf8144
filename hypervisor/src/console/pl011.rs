//! Minimal polled driver for the physical Arm PL011 UART.

use tock_registers::interfaces::{Readable, Writeable};
use tock_registers::registers::{ReadOnly, ReadWrite};
use tock_registers::{register_bitfields, register_structs};

register_bitfields![u32,
    /// UARTFR, the flag register.
    FR [
        /// Transmit FIFO full.
        TXFF OFFSET(5) NUMBITS(1) [],
        /// Receive FIFO empty.
        RXFE OFFSET(4) NUMBITS(1) [],
        /// UART busy transmitting.
        BUSY OFFSET(3) NUMBITS(1) [],
    ],
    /// UARTIMSC, the interrupt mask set/clear register.
    IMSC [
        /// Receive timeout interrupt.
        RTIM OFFSET(6) NUMBITS(1) [],
        /// Receive interrupt.
        RXIM OFFSET(4) NUMBITS(1) [],
    ]
];

register_structs! {
    Pl011Registers {
        (0x00 => dr: ReadWrite<u32>),
        (0x04 => _reserved0),
        (0x18 => fr: ReadOnly<u32, FR::Register>),
        (0x1c => _reserved1),
        (0x38 => imsc: ReadWrite<u32, IMSC::Register>),
        (0x3c => @END),
    }
}

/// A PL011 at a fixed MMIO address.
pub struct Pl011 {
    registers: *const Pl011Registers,
}

// SAFETY: the registers are MMIO; every access is a single volatile load/store and callers
// serialise writers with the console lock.
unsafe impl Send for Pl011 {}

impl Pl011 {
    /// # Safety
    /// `base` must be the address of a PL011's registers, mapped as device memory, for as long
    /// as the returned value is used.
    pub const unsafe fn new(base: usize) -> Self {
        Self { registers: base as *const Pl011Registers }
    }

    fn regs(&self) -> &Pl011Registers {
        // SAFETY: `new`'s contract: the pointer is a valid mapping of the registers.
        unsafe { &*self.registers }
    }

    pub fn write_byte(&self, byte: u8) {
        while self.regs().fr.is_set(FR::TXFF) {
            core::hint::spin_loop();
        }
        self.regs().dr.set(byte as u32);
    }

    /// A received byte, if one is waiting.
    pub fn read_byte(&self) -> Option<u8> {
        if self.regs().fr.is_set(FR::RXFE) {
            None
        } else {
            Some(self.regs().dr.get() as u8)
        }
    }

    /// Whether the UART interrupts when input arrives (or sits unread).
    pub fn set_receive_interrupt(&self, enabled: bool) {
        if enabled {
            self.regs().imsc.write(IMSC::RXIM::SET + IMSC::RTIM::SET);
        } else {
            self.regs().imsc.set(0);
        }
    }

    /// Waits until the last byte has left the transmitter (before powering off).
    pub fn flush(&self) {
        while self.regs().fr.is_set(FR::BUSY) {
            core::hint::spin_loop();
        }
    }
}
