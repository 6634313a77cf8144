//! Output of the HRT build: the hypervisor's HRT console call (SMCCC 0xC600_F00E: x1 = IPA of
//! the text, x2 = its length, at most 256), which prints each line as `(HRT) <line>`. The PL011
//! is the ROS's; uart::print_line comes here instead.
//!
//! A line is formatted into a buffer on the stack, which the hypervisor placed in HRT RAM and
//! maps through its linear map (VA = LINEAR_MAP_BASE + IPA), so the IPA needs no lookup and no
//! shared state: cores and exception handlers print without a lock, one call per line (lines
//! longer than 256 bytes go out in pieces, each its own console line).

use core::fmt::{self, Write};

use hvm_ros_lib::abi::hrt_boot::{IMAGE_BASE, LINEAR_MAP_BASE};
use hvm_ros_lib::abi::{HRT_CONSOLE_ID, HRT_CONSOLE_MAX};

use crate::psci::{self, Instruction, CALL_REGS};

const LINE_MAX: usize = HRT_CONSOLE_MAX as usize;

struct Line {
    bytes: [u8; LINE_MAX],
    len: usize,
}

impl Line {
    fn push(&mut self, byte: u8) {
        if self.len == LINE_MAX {
            self.flush();
        }
        self.bytes[self.len] = byte;
        self.len += 1;
    }

    /// Hands the bytes to the hypervisor. A failure cannot be reported anywhere else: the
    /// bytes are dropped.
    fn flush(&mut self) {
        let va = self.bytes.as_ptr() as u64;
        if self.len > 0 && (LINEAR_MAP_BASE..IMAGE_BASE).contains(&va) {
            write(va - LINEAR_MAP_BASE, self.len as u64);
        }
        self.len = 0;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        s.bytes().for_each(|byte| self.push(byte));
        Ok(())
    }
}

/// The console call itself: `len` bytes at guest-physical `ipa`. Returns x0 (0, or an HVM
/// error code).
pub fn write(ipa: u64, len: u64) -> u64 {
    let mut regs = [0u64; CALL_REGS];
    regs[..3].copy_from_slice(&[HRT_CONSOLE_ID, ipa, len]);
    psci::call(Instruction::Hvc0, &mut regs);
    regs[0]
}

/// Prints one line (what uart::print_line does in the Linux build).
pub fn print_line(args: fmt::Arguments) {
    let mut line = Line { bytes: [0; LINE_MAX], len: 0 };
    let _ = writeln!(line, "{args}");
    line.flush();
}
