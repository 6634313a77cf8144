//! The ROS event slot (palacios-hvm.md §4.5; the protocol is in `abi::RosEvent`'s docs): one
//! event at a time, VM-wide, kept as the 80 bytes the HRT posted so the hypervisor never has to
//! interpret the payload (a union) it only passes on.

use hvm_ros_lib::abi::{HvmError, RosEvent, RosEventType};

/// Bytes of a `RosEvent`.
pub const EVENT_SIZE: usize = core::mem::size_of::<RosEvent>();
/// `RosEvent::event_type` (a u32) and `last_ros_event_result` (a u64) in those bytes.
const TYPE_BYTES: core::ops::Range<usize> = 0..4;
const RESULT_BYTES: core::ops::Range<usize> = 8..16;

/// The event slot: `None`, a forwarded event, or `Done` with its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventSlot {
    bytes: [u8; EVENT_SIZE],
}

impl Default for EventSlot {
    fn default() -> Self {
        Self { bytes: [0; EVENT_SIZE] }
    }
}

fn type_code(event: RosEventType) -> u32 {
    event as u32
}

impl EventSlot {
    /// The event type code in the slot.
    pub fn event_type(&self) -> u32 {
        let mut word = [0u8; 4];
        word.copy_from_slice(&self.bytes[TYPE_BYTES]);
        u32::from_le_bytes(word)
    }

    /// Whether a forwarded event waits for the ROS process.
    fn forwarded(code: u32) -> bool {
        [RosEventType::PageFault, RosEventType::Syscall, RosEventType::HrtException, RosEventType::HrtThreadExit]
            .into_iter()
            .any(|t| type_code(t) == code)
    }

    /// The HRT posts `event` (its 80 bytes): only into an empty slot, and only an event that is
    /// forwarded (a page fault, a system call, an HRT exception or thread exit).
    pub fn post(&mut self, event: [u8; EVENT_SIZE]) -> Result<(), HvmError> {
        if self.event_type() != type_code(RosEventType::None) {
            return Err(HvmError::Busy);
        }
        let posted = Self { bytes: event };
        if !Self::forwarded(posted.event_type()) {
            return Err(HvmError::InvalidArgument);
        }
        *self = posted;
        // The result field is the ROS's to fill.
        self.bytes[RESULT_BYTES].fill(0);
        Ok(())
    }

    /// The ROS process completed the pending event with `result` (0x1f). Unlike Palacios, only
    /// a pending event can be completed: a stray completion cannot fake a result.
    pub fn complete(&mut self, result: u64) -> Result<(), HvmError> {
        if !Self::forwarded(self.event_type()) {
            return Err(HvmError::WrongState);
        }
        self.bytes[TYPE_BYTES].copy_from_slice(&type_code(RosEventType::Done).to_le_bytes());
        self.bytes[RESULT_BYTES].copy_from_slice(&result.to_le_bytes());
        Ok(())
    }

    /// The HRT took the result (0x1e): the slot is empty again.
    pub fn acknowledge(&mut self) -> Result<(), HvmError> {
        if self.event_type() != type_code(RosEventType::Done) {
            return Err(HvmError::WrongState);
        }
        *self = Self::default();
        Ok(())
    }

    /// The slot as the 80 bytes a state query writes out.
    pub fn bytes(&self) -> [u8; EVENT_SIZE] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: RosEventType, payload_word: u64) -> [u8; EVENT_SIZE] {
        let mut bytes = [0u8; EVENT_SIZE];
        bytes[TYPE_BYTES].copy_from_slice(&(kind as u32).to_le_bytes());
        bytes[16..24].copy_from_slice(&payload_word.to_le_bytes());
        bytes
    }

    #[test]
    fn an_event_is_posted_completed_and_acknowledged_once() {
        let mut slot = EventSlot::default();
        assert_eq!(slot.complete(1), Err(HvmError::WrongState), "nothing to complete");
        assert_eq!(slot.acknowledge(), Err(HvmError::WrongState));
        slot.post(event(RosEventType::Syscall, 172)).unwrap();
        assert_eq!(slot.bytes()[16..24], 172u64.to_le_bytes(), "the payload passes through");
        assert_eq!(slot.post(event(RosEventType::PageFault, 0)), Err(HvmError::Busy), "one at a time");
        slot.complete(42).unwrap();
        assert_eq!(slot.event_type(), RosEventType::Done as u32);
        assert_eq!(slot.bytes()[RESULT_BYTES], 42u64.to_le_bytes());
        assert_eq!(slot.complete(43), Err(HvmError::WrongState), "completed twice");
        assert_eq!(slot.post(event(RosEventType::Syscall, 1)), Err(HvmError::Busy), "until acknowledged");
        slot.acknowledge().unwrap();
        assert_eq!(slot, EventSlot::default());
    }

    #[test]
    fn only_forwarded_kinds_can_be_posted() {
        let mut slot = EventSlot::default();
        for kind in [RosEventType::None, RosEventType::Done] {
            assert_eq!(slot.post(event(kind, 0)), Err(HvmError::InvalidArgument));
        }
        let mut bogus = [0xffu8; EVENT_SIZE];
        bogus[TYPE_BYTES].copy_from_slice(&99u32.to_le_bytes());
        assert_eq!(slot.post(bogus), Err(HvmError::InvalidArgument));
        let mut forged = event(RosEventType::HrtException, 0);
        forged[RESULT_BYTES].copy_from_slice(&7u64.to_le_bytes());
        slot.post(forged).unwrap();
        assert_eq!(slot.bytes()[RESULT_BYTES], [0; 8], "the HRT cannot pre-fill the result");
    }
}
