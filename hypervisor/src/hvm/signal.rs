//! Signals from the HRT into a ROS process (`abi::signal`): the registration, the one pending
//! signal, the frame the hypervisor writes on the process's stack, and the state a signal
//! return may restore. Pure; `vm::hvm` writes and reads the frame in guest memory.

use hvm_ros_lib::abi::signal::{SignalFrame, FRAME_SIZE};
use hvm_ros_lib::abi::HvmError;

/// PSTATE bits a signal return takes from the (user-writable) frame: the condition flags N, Z,
/// C, V. Everything else (exception level, stack selection, DAIF, ...) stays as the process
/// had it when it made the call, so a forged frame cannot leave EL0 or mask interrupts.
pub const PSTATE_RESTORABLE: u64 = 0xF000_0000;
/// The frame sits 16-byte aligned below the registered stack top.
const FRAME_ALIGN: u64 = 16;

/// A process's registered handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handler {
    /// The process (its TTBR0 base).
    pub ttbr0: u64,
    pub entry: u64,
    pub stack_top: u64,
}

impl Handler {
    /// Where the frame goes: `(stack_top - FRAME_SIZE) & !15`, if that does not wrap.
    pub fn frame_address(&self) -> Option<u64> {
        self.stack_top.checked_sub(FRAME_SIZE as u64).map(|at| at & !(FRAME_ALIGN - 1))
    }
}

/// The signal state of a hybrid VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    handler: Option<Handler>,
    pending: Option<u64>,
    /// A delivered signal's handler runs (until its signal return): the next signal waits,
    /// because its frame would go where this one's is.
    in_handler: bool,
}

impl Signals {
    pub fn handler(&self) -> Option<Handler> {
        self.handler
    }

    pub fn pending(&self) -> Option<u64> {
        self.pending
    }

    /// 0x40 from process `ttbr0`: `entry` and `stack_top` both non-zero install a handler (none
    /// may be installed), both zero remove it (only its own process may); refused while a
    /// signal is pending (Palacios' rules, with the owner check added).
    pub fn register(&mut self, ttbr0: u64, entry: u64, stack_top: u64) -> Result<(), HvmError> {
        if self.pending.is_some() {
            return Err(HvmError::Busy);
        }
        match (entry, stack_top) {
            (0, 0) => match self.handler {
                Some(handler) if handler.ttbr0 != ttbr0 => Err(HvmError::WrongPartition),
                _ => {
                    self.handler = None;
                    self.in_handler = false;
                    Ok(())
                }
            },
            (0, _) | (_, 0) => Err(HvmError::InvalidArgument),
            _ if self.handler.is_some() => Err(HvmError::Busy),
            _ => {
                let handler = Handler { ttbr0, entry, stack_top };
                handler.frame_address().ok_or(HvmError::InvalidArgument)?;
                self.handler = Some(handler);
                Ok(())
            }
        }
    }

    /// 0x41: makes signal `code` (non-zero) pending for the registered process.
    pub fn raise(&mut self, code: u64) -> Result<(), HvmError> {
        if code == 0 {
            return Err(HvmError::InvalidArgument);
        }
        if self.handler.is_none() {
            return Err(HvmError::WrongState);
        }
        if self.pending.is_some() {
            return Err(HvmError::Busy);
        }
        self.pending = Some(code);
        Ok(())
    }

    /// The pending signal and its handler, taken for delivery into process `ttbr0` (which a
    /// ROS vCPU is about to enter at EL0); `None` for another process or nothing pending.
    /// Not while a handler runs: the signal waits for its return.
    pub fn take_for(&mut self, ttbr0: u64) -> Option<(u64, Handler)> {
        if self.in_handler {
            return None;
        }
        let handler = self.handler.filter(|h| h.ttbr0 == ttbr0)?;
        let code = self.pending.take()?;
        self.in_handler = true;
        Some((code, handler))
    }

    /// Puts back a signal whose delivery failed (its frame could not be written): never lost.
    pub fn put_back(&mut self, code: u64) {
        self.in_handler = false;
        self.pending.get_or_insert(code);
    }

    /// The handler returned (0x60): the next signal may be delivered.
    pub fn handler_returned(&mut self) {
        self.in_handler = false;
    }
}

/// The frame as bytes, little-endian, in `SignalFrame`'s field order.
pub fn encode(frame: &SignalFrame) -> [u8; FRAME_SIZE] {
    let mut bytes = [0u8; FRAME_SIZE];
    let words = core::iter::once(frame.code).chain(frame.x).chain([frame.sp, frame.pc, frame.pstate, frame.reserved]);
    for (chunk, word) in bytes.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    bytes
}

/// The frame read back from bytes.
pub fn decode(bytes: &[u8; FRAME_SIZE]) -> SignalFrame {
    let mut words = bytes.chunks_exact(8).map(|chunk| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        u64::from_le_bytes(word)
    });
    let mut next = || words.next().unwrap_or(0);
    let code = next();
    let x = core::array::from_fn(|_| next());
    SignalFrame { code, x, sp: next(), pc: next(), pstate: next(), reserved: next() }
}

/// The PSTATE a signal return resumes with: the process's own (`current`, an EL0 state: it
/// made the call from EL0) with only the condition flags taken from the frame.
pub fn sanitized_pstate(current: u64, from_frame: u64) -> u64 {
    (current & !PSTATE_RESTORABLE) | (from_frame & PSTATE_RESTORABLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROCESS: u64 = 0x4400_0000;
    const OTHER: u64 = 0x4500_0000;

    #[test]
    fn registration_follows_palacios_rules_plus_an_owner() {
        let mut signals = Signals::default();
        assert_eq!(signals.raise(1), Err(HvmError::WrongState), "no handler");
        assert_eq!(signals.register(PROCESS, 0x40_1000, 0), Err(HvmError::InvalidArgument));
        assert_eq!(signals.register(PROCESS, 0x40_1000, 8), Err(HvmError::InvalidArgument), "no room");
        signals.register(PROCESS, 0x40_1000, 0x7fff_0000).unwrap();
        assert_eq!(signals.register(PROCESS, 0x40_2000, 0x7fff_0000), Err(HvmError::Busy), "remove first");
        assert_eq!(signals.register(OTHER, 0, 0), Err(HvmError::WrongPartition), "not its handler");
        signals.raise(7).unwrap();
        assert_eq!(signals.raise(8), Err(HvmError::Busy), "one pending");
        assert_eq!(signals.register(PROCESS, 0, 0), Err(HvmError::Busy), "not while pending");
        assert_eq!(signals.raise(0), Err(HvmError::InvalidArgument));
    }

    #[test]
    fn a_signal_waits_for_its_process_and_is_never_lost() {
        let mut signals = Signals::default();
        signals.register(PROCESS, 0x40_1000, 0x7fff_0008).unwrap();
        signals.raise(5).unwrap();
        assert_eq!(signals.take_for(OTHER), None, "another process");
        assert_eq!(signals.pending(), Some(5));
        let (code, handler) = signals.take_for(PROCESS).unwrap();
        assert_eq!((code, handler.entry), (5, 0x40_1000));
        assert_eq!(handler.frame_address(), Some((0x7fff_0008 - 288) & !15));
        assert_eq!(signals.take_for(PROCESS), None, "delivered once");
        signals.put_back(code);
        assert_eq!(signals.take_for(PROCESS).map(|(c, _)| c), Some(5), "a failed delivery comes again");
        // While the handler runs, the next signal waits: its frame would overwrite this one's.
        signals.raise(6).unwrap();
        assert_eq!(signals.take_for(PROCESS), None, "not nested");
        signals.handler_returned();
        assert_eq!(signals.take_for(PROCESS).map(|(c, _)| c), Some(6));
    }

    #[test]
    fn frames_round_trip_and_a_forged_one_cannot_leave_el0_or_change_daif() {
        let frame = SignalFrame {
            code: 9,
            x: core::array::from_fn(|n| 0x1000 + n as u64),
            sp: 0x7fff_f000,
            pc: 0x40_2468,
            pstate: 0x6000_0000,
            reserved: 0,
        };
        let bytes = encode(&frame);
        assert_eq!(bytes[8..16], 0x1000u64.to_le_bytes(), "x0 right after the code");
        assert_eq!(decode(&bytes), frame);
        // The process called from EL0t with DAIF clear; the frame claims EL1h with DAIF masked.
        let current = 0x2000_0000;
        let forged = 0x9000_03c5;
        let resumed = sanitized_pstate(current, forged);
        assert_eq!(resumed & 0xf, 0, "still EL0t");
        assert_eq!(resumed & 0x3c0, 0, "DAIF unchanged");
        assert_eq!(resumed & PSTATE_RESTORABLE, 0x9000_0000, "the flags come back");
    }
}
