//! The guest's console: an emulated Arm PL011 UART.
//!
//! Transmit is immediate (every byte goes straight to the sink, so the TX FIFO always reads as
//! empty); received bytes wait in a FIFO until the guest reads them. The interrupt line follows
//! the PL011's rule: asserted while `RIS & IMSC` is non-zero.

use alloc::boxed::Box;
use alloc::collections::VecDeque;

use super::MmioDevice;

// Register offsets (PL011 TRM, section 3.2).
const UARTDR: u64 = 0x000;
const UARTRSR: u64 = 0x004;
const UARTFR: u64 = 0x018;
const UARTILPR: u64 = 0x020;
const UARTIBRD: u64 = 0x024;
const UARTFBRD: u64 = 0x028;
const UARTLCR_H: u64 = 0x02c;
const UARTCR: u64 = 0x030;
const UARTIFLS: u64 = 0x034;
const UARTIMSC: u64 = 0x038;
const UARTRIS: u64 = 0x03c;
const UARTMIS: u64 = 0x040;
const UARTICR: u64 = 0x044;
const UARTDMACR: u64 = 0x048;
/// UARTPeriphID0..3 and UARTPCellID0..3, one byte per word.
const ID_REGISTERS: u64 = 0xfe0;
/// The values a PL011 r1p5 reports (Linux's amba bus matches on them).
const ID_VALUES: [u8; 8] = [0x11, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];

// UARTFR bits.
const FR_RXFE: u64 = 1 << 4;
const FR_RXFF: u64 = 1 << 6;
const FR_TXFE: u64 = 1 << 7;

// Interrupt bits (RIS, MIS, IMSC, ICR).
const INT_RX: u32 = 1 << 4;
const INT_TX: u32 = 1 << 5;
const INT_RT: u32 = 1 << 6;
const INT_ALL: u32 = 0x7ff;

/// Reset values: UARTCR enables TX and RX; IFLS sets half-full FIFO triggers.
const CR_RESET: u32 = 0x300;
const IFLS_RESET: u32 = 0x12;

/// Bytes the receive FIFO holds; more input is dropped (as on the real device).
const RX_FIFO_DEPTH: usize = 32;

/// Where transmitted bytes go.
pub trait TxSink: Send {
    fn put(&mut self, byte: u8);
}

pub struct Vpl011 {
    sink: Box<dyn TxSink>,
    rx: VecDeque<u8>,
    raw_interrupts: u32,
    interrupt_mask: u32,
    control: u32,
    line_control: u32,
    fifo_levels: u32,
    int_baud: u32,
    frac_baud: u32,
    dma_control: u32,
    ilpr: u32,
}

impl Vpl011 {
    pub fn new(sink: Box<dyn TxSink>) -> Self {
        Self {
            sink,
            rx: VecDeque::with_capacity(RX_FIFO_DEPTH),
            raw_interrupts: 0,
            interrupt_mask: 0,
            control: CR_RESET,
            line_control: 0,
            fifo_levels: IFLS_RESET,
            int_baud: 0,
            frac_baud: 0,
            dma_control: 0,
            ilpr: 0,
        }
    }

    /// A byte arrives from the outside world; false if the FIFO was full and it was dropped.
    pub fn receive(&mut self, byte: u8) -> bool {
        if self.rx.len() >= RX_FIFO_DEPTH {
            return false;
        }
        self.rx.push_back(byte);
        self.raw_interrupts |= INT_RX | INT_RT;
        true
    }

    /// Whether another received byte fits in the FIFO.
    pub fn has_room(&self) -> bool {
        self.rx.len() < RX_FIFO_DEPTH
    }

    /// Whether a guest read at `offset` can make room in the receive FIFO: only a read of the
    /// data register takes a byte out. (Every printed character polls the flag register; the
    /// console's input needs no look at the physical UART after those.)
    pub fn read_frees_room(offset: u64) -> bool {
        offset == UARTDR
    }

    /// Whether the interrupt line is asserted.
    pub fn irq_asserted(&self) -> bool {
        self.raw_interrupts & self.interrupt_mask != 0
    }

    fn flags(&self) -> u64 {
        let mut flags = FR_TXFE;
        if self.rx.is_empty() {
            flags |= FR_RXFE;
        }
        if self.rx.len() >= RX_FIFO_DEPTH {
            flags |= FR_RXFF;
        }
        flags
    }

    fn read_data(&mut self) -> u64 {
        let byte = self.rx.pop_front().unwrap_or(0);
        if self.rx.is_empty() {
            self.raw_interrupts &= !(INT_RX | INT_RT);
        }
        byte as u64
    }
}

impl MmioDevice for Vpl011 {
    fn name(&self) -> &'static str {
        "pl011"
    }

    fn irq_asserted(&self) -> bool {
        Vpl011::irq_asserted(self)
    }

    fn read(&mut self, offset: u64, _size: u8) -> u64 {
        match offset {
            UARTDR => self.read_data(),
            UARTRSR => 0,
            UARTFR => self.flags(),
            UARTILPR => self.ilpr as u64,
            UARTIBRD => self.int_baud as u64,
            UARTFBRD => self.frac_baud as u64,
            UARTLCR_H => self.line_control as u64,
            UARTCR => self.control as u64,
            UARTIFLS => self.fifo_levels as u64,
            UARTIMSC => self.interrupt_mask as u64,
            UARTRIS => self.raw_interrupts as u64,
            UARTMIS => (self.raw_interrupts & self.interrupt_mask) as u64,
            UARTDMACR => self.dma_control as u64,
            ID_REGISTERS..=0xffc if offset.is_multiple_of(4) => {
                ID_VALUES[((offset - ID_REGISTERS) / 4) as usize] as u64
            }
            _ => 0,
        }
    }

    fn write(&mut self, offset: u64, _size: u8, value: u64) {
        let value32 = value as u32;
        match offset {
            UARTDR => {
                self.sink.put(value as u8);
                self.raw_interrupts |= INT_TX;
            }
            UARTRSR => {}
            UARTILPR => self.ilpr = value32,
            UARTIBRD => self.int_baud = value32,
            UARTFBRD => self.frac_baud = value32,
            UARTLCR_H => self.line_control = value32,
            UARTCR => self.control = value32,
            UARTIFLS => self.fifo_levels = value32,
            UARTIMSC => self.interrupt_mask = value32 & INT_ALL,
            UARTICR => {
                self.raw_interrupts &= !(value32 & INT_ALL);
                // Data still waiting keeps the receive interrupt raised.
                if !self.rx.is_empty() {
                    self.raw_interrupts |= INT_RX | INT_RT;
                }
            }
            UARTDMACR => self.dma_control = value32,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use spin::Mutex;

    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl TxSink for Capture {
        fn put(&mut self, byte: u8) {
            self.0.lock().push(byte);
        }
    }

    fn uart() -> (Vpl011, Arc<Mutex<Vec<u8>>>) {
        let out = Arc::new(Mutex::new(Vec::new()));
        (Vpl011::new(Box::new(Capture(out.clone()))), out)
    }

    #[test]
    fn transmitted_bytes_reach_the_sink() {
        let (mut uart, out) = uart();
        for b in b"hi\n" {
            uart.write(UARTDR, 4, *b as u64);
        }
        assert_eq!(&out.lock()[..], b"hi\n");
        assert_ne!(uart.read(UARTFR, 4) & FR_TXFE, 0);
    }

    #[test]
    fn received_bytes_raise_the_interrupt_when_unmasked() {
        let (mut uart, _) = uart();
        assert_ne!(uart.read(UARTFR, 4) & FR_RXFE, 0);
        uart.receive(b'x');
        assert!(!uart.irq_asserted(), "masked");
        uart.write(UARTIMSC, 4, (INT_RX | INT_RT) as u64);
        assert!(uart.irq_asserted());
        assert_eq!(uart.read(UARTFR, 4) & FR_RXFE, 0);
        assert_eq!(uart.read(UARTDR, 4), b'x' as u64);
        assert!(!uart.irq_asserted(), "drained");
    }

    #[test]
    fn tx_interrupt_is_cleared_by_icr() {
        let (mut uart, _) = uart();
        uart.write(UARTIMSC, 4, INT_TX as u64);
        uart.write(UARTDR, 4, b'a' as u64);
        assert!(uart.irq_asserted());
        uart.write(UARTICR, 4, INT_TX as u64);
        assert!(!uart.irq_asserted());
    }

    #[test]
    fn fifo_overflow_drops_input() {
        let (mut uart, _) = uart();
        for _ in 0..RX_FIFO_DEPTH {
            assert!(uart.receive(b'a'));
        }
        assert!(!uart.receive(b'b'));
        assert_ne!(uart.read(UARTFR, 4) & FR_RXFF, 0);
    }

    #[test]
    fn only_data_reads_make_room() {
        let (mut uart, _) = uart();
        for _ in 0..RX_FIFO_DEPTH {
            uart.receive(b'x');
        }
        for offset in (0..0x50).step_by(4).filter(|&offset| offset != UARTDR) {
            assert!(!Vpl011::read_frees_room(offset), "offset {offset:#x}");
            uart.read(offset, 4);
            assert!(!uart.has_room(), "a read at {offset:#x} took a byte out");
        }
        assert!(Vpl011::read_frees_room(UARTDR));
        uart.read(UARTDR, 4);
        assert!(uart.has_room());
    }

    #[test]
    fn identifies_as_a_pl011() {
        let (mut uart, _) = uart();
        let id: Vec<u64> = (0..8).map(|i| uart.read(ID_REGISTERS + i * 4, 4)).collect();
        assert_eq!(id, ID_VALUES.iter().map(|&b| b as u64).collect::<Vec<_>>());
        assert_eq!(uart.read(0xfe2, 1), 0, "unaligned id reads are zero");
    }
}
