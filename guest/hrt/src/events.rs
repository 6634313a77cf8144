//! Forwarding events to the ROS process (abi.rs `RosEvent` and its protocol; palacios-hvm.md
//! §4.5, §7.9): what ROS code running here at EL0 (el0.rs) needs the process for. Its system
//! calls run in the process (its files, its credentials), its page faults are resolved by the
//! process touching the page, and its exceptions are reported there.
//!
//! One event at a time, VM-wide: [`forward`] posts the event (`PostRosEvent`, retried while
//! another core's event is pending: `Busy`), polls `GetStateAndEvent` until the process has
//! answered it (`Done`), takes the result and acknowledges it (`AckEventResult`), which frees
//! the slot for the next one. Nothing here is bounded by time (the process may be slow): the
//! caller keeps IRQs unmasked, so the heartbeat and upcalls are still taken meanwhile.

use core::fmt;
use core::mem::{align_of, size_of};

use hvm_ros_lib::abi::{ExceptionEvent, HvmError, PageFaultAction, PageFaultEvent, RosEvent, RosEventType};

use crate::hvc::{self, CallError};
use crate::timer;
use crate::translate::PAGE_SIZE;

/// Between two polls, and before posting again after `Busy`: the wait keeps a waiting core
/// from flooding the hypervisor with calls, and is short next to a round trip through the
/// process.
const POLL_INTERVAL_US: u64 = 2;

/// A `RosEvent` the hypervisor can reach: 80 bytes aligned to 128, so it never crosses a page
/// (the hypervisor translates its first byte only).
#[repr(C, align(128))]
struct EventBuffer(RosEvent);

const _: () = assert!(size_of::<RosEvent>() <= align_of::<EventBuffer>());
const _: () = assert!(PAGE_SIZE.is_multiple_of(align_of::<EventBuffer>() as u64));

impl EventBuffer {
    /// Its EL1 virtual address, for the hypervisor.
    fn va(&self) -> u64 {
        core::ptr::from_ref(self) as u64
    }
}

/// What ROS code needs the process for.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// `svc`: the arm64 system call `number` (x8) with x0..x5.
    Syscall { number: u64, args: [u64; 6] },
    /// A translation, access-flag or permission fault at `far` (instruction at `pc`).
    PageFault { pc: u64, far: u64, action: PageFaultAction },
    /// Anything else: the syndrome, where, and the faulting address (if any).
    Exception { pc: u64, esr: u64, far: u64 },
}

impl Event {
    fn to_ros_event(self) -> RosEvent {
        let mut event = RosEvent::none();
        match self {
            Self::Syscall { number, args } => {
                event.event_type = RosEventType::Syscall as u32;
                let mut words = [0; 8];
                words[0] = number;
                words[1..7].copy_from_slice(&args);
                event.payload.syscall = words;
            }
            Self::PageFault { pc, far, action } => {
                event.event_type = RosEventType::PageFault as u32;
                event.payload.page_fault = PageFaultEvent { pc, far, action: action as u32 };
            }
            Self::Exception { pc, esr, far } => {
                event.event_type = RosEventType::HrtException as u32;
                event.payload.exception = ExceptionEvent { pc, vector: esr, far };
            }
        }
        event
    }
}

/// The step of the protocol that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Post,
    Poll,
    Ack,
}

/// The hypervisor refused a step (other than `Busy` for a post, which is retried).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardError {
    pub step: Step,
    pub error: CallError,
}

impl fmt::Display for ForwardError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let step = match self.step {
            Step::Post => "PostRosEvent",
            Step::Poll => "GetStateAndEvent",
            Step::Ack => "AckEventResult",
        };
        write!(f, "{step} failed: {}", self.error)
    }
}

/// Forwards `event` to the process and waits for its answer: the result (`last_ros_event_result`:
/// a system call's x0, 0 for a fault).
pub fn forward(event: Event, counter_frequency: u64) -> Result<u64, ForwardError> {
    let posted = EventBuffer(event.to_ros_event());
    loop {
        match hvc::post_ros_event(posted.va()) {
            Ok(()) => break,
            // Another core's event holds the slot until its result is acknowledged.
            Err(error) if error.is(HvmError::Busy) => pause(counter_frequency),
            Err(error) => return Err(ForwardError { step: Step::Post, error }),
        }
    }
    let result = wait_until_done(counter_frequency)?;
    hvc::ack_event_result().map_err(|error| ForwardError { step: Step::Ack, error })?;
    Ok(result)
}

/// Polls until the pending event (ours: no other can be posted before we acknowledge) is
/// `Done`; its result.
fn wait_until_done(counter_frequency: u64) -> Result<u64, ForwardError> {
    let polled = EventBuffer(RosEvent::none());
    loop {
        hvc::get_state_and_event(polled.va()).map_err(|error| ForwardError { step: Step::Poll, error })?;
        // The hypervisor wrote the buffer behind the compiler's back: volatile reads.
        // SAFETY: `polled` is a live, aligned RosEvent; any bytes are a valid u32 and u64.
        let (event_type, result) = unsafe {
            (
                core::ptr::read_volatile(&raw const polled.0.event_type),
                core::ptr::read_volatile(&raw const polled.0.last_ros_event_result),
            )
        };
        if event_type == RosEventType::Done as u32 {
            return Ok(result);
        }
        pause(counter_frequency);
    }
}

fn pause(counter_frequency: u64) {
    timer::busy_wait_us(POLL_INTERVAL_US, counter_frequency);
}
