//! ROS events (palacios-hvm.md §4.5): work the HRT forwards to the process whose code it runs
//! (after a merge). The process does the work (touches the faulting address so its kernel maps
//! it, makes the system call) and completes the event with `EventComplete` (0x1f). The events
//! arrive with `GetStateAndEvent` (0xf); the hypervisor reports none yet.

use crate::abi::{HvmError, PageFaultAction, RosEvent, RosEventType, HRT_FAIL_VEC};

use super::Hvm;

/// What handling an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// No event (`ROS_NONE`, `ROS_DONE`) or one this library does not know: nothing done.
    Nothing,
    /// The work is done; `result` is what completes the event (0 for a page fault or a thread
    /// exit, the raw return value, negative errno included, for a system call).
    Done { result: u64 },
    /// The HRT failed (an exception in the HRT itself when `vector` is [`HRT_FAIL_VEC`], or in
    /// the process's code it ran): Palacios' library exits the process.
    HrtException { pc: u64, vector: u64 },
}

impl Handled {
    /// Whether the exception happened in the HRT itself (rather than in ROS code it ran).
    pub fn in_hrt(&self) -> bool {
        matches!(self, Handled::HrtException { vector, .. } if *vector == HRT_FAIL_VEC)
    }
}

/// Does the work `event` asks for in this process, without completing it.
///
/// # Safety
///
/// A page-fault event makes this process read (and for a write fault, write back unchanged) one
/// byte at the address the event names, and a system-call event makes any system call: the
/// event must come from the HRT running this process's code, which can do both anyway.
pub unsafe fn perform(event: &RosEvent) -> Handled {
    match event.event_type {
        t if t == RosEventType::PageFault as u32 => {
            // SAFETY: the variant the event type names.
            let pf = unsafe { event.payload.page_fault };
            let at = pf.far as *mut u8;
            // SAFETY: the caller vouches for the address (see above); volatile, so the access
            // really happens, and a write puts the byte back.
            unsafe {
                if pf.action == PageFaultAction::Write as u32 {
                    let old = at.read_volatile();
                    at.write_volatile(0x0a);
                    at.write_volatile(old);
                } else {
                    at.read_volatile();
                }
            }
            Handled::Done { result: 0 }
        }
        t if t == RosEventType::Syscall as u32 => {
            // SAFETY: the variant the event type names.
            let args = unsafe { event.payload.syscall };
            // SAFETY: the caller vouches for the system call (see above).
            let rc = unsafe {
                libc::syscall(
                    args[0] as libc::c_long,
                    args[1] as libc::c_long,
                    args[2] as libc::c_long,
                    args[3] as libc::c_long,
                    args[4] as libc::c_long,
                    args[5] as libc::c_long,
                    args[6] as libc::c_long,
                )
            };
            // libc answers -1 and errno; the HRT expects the raw -errno.
            let raw =
                if rc == -1 { -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(1)) } else { rc };
            Handled::Done { result: raw as u64 }
        }
        t if t == RosEventType::HrtException as u32 => {
            // SAFETY: the variant the event type names.
            let e = unsafe { event.payload.exception };
            Handled::HrtException { pc: e.pc, vector: e.vector }
        }
        t if t == RosEventType::HrtThreadExit as u32 => Handled::Done { result: 0 },
        _ => Handled::Nothing,
    }
}

impl Hvm {
    /// Handles `event` ([`perform`]) and completes it (0x1f): with its result, or with -1 for
    /// an HRT exception (the caller decides whether to go on).
    ///
    /// # Safety
    ///
    /// As for [`perform`].
    pub unsafe fn handle_ros_event(&self, event: &RosEvent) -> Result<Handled, HvmError> {
        // SAFETY: passed on to the caller.
        let handled = unsafe { perform(event) };
        match handled {
            Handled::Nothing => {}
            Handled::Done { result } => self.event_complete(result)?,
            Handled::HrtException { .. } => self.event_complete(u64::MAX)?,
        }
        Ok(handled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{ExceptionEvent, PageFaultEvent, RosEventPayload};

    fn event(event_type: RosEventType, payload: RosEventPayload) -> RosEvent {
        let mut e = RosEvent::none();
        e.event_type = event_type as u32;
        e.payload = payload;
        e
    }

    #[test]
    fn a_page_fault_touches_the_byte_and_leaves_it_unchanged() {
        let mut byte = 0x5au8;
        let far = &mut byte as *mut u8 as u64;
        for action in [PageFaultAction::Read, PageFaultAction::Write, PageFaultAction::Exec] {
            let pf = PageFaultEvent { pc: 0x1234, far, action: action as u32 };
            let e = event(RosEventType::PageFault, RosEventPayload { page_fault: pf });
            // SAFETY: the address is a local byte.
            assert_eq!(unsafe { perform(&e) }, Handled::Done { result: 0 });
        }
        assert_eq!(byte, 0x5a);
    }

    #[test]
    fn a_system_call_runs_here_and_returns_raw_results() {
        let e =
            event(RosEventType::Syscall, RosEventPayload { syscall: [libc::SYS_getpid as u64, 0, 0, 0, 0, 0, 0, 0] });
        // SAFETY: getpid has no effect.
        assert_eq!(unsafe { perform(&e) }, Handled::Done { result: std::process::id() as u64 });
        // close(-1) fails with EBADF: the HRT gets -EBADF, as from a raw svc.
        let e = event(
            RosEventType::Syscall,
            RosEventPayload { syscall: [libc::SYS_close as u64, u64::MAX, 0, 0, 0, 0, 0, 0] },
        );
        // SAFETY: closing an invalid descriptor has no effect.
        assert_eq!(unsafe { perform(&e) }, Handled::Done { result: -i64::from(libc::EBADF) as u64 });
    }

    #[test]
    fn exceptions_thread_exits_and_unknown_events() {
        let ex = ExceptionEvent { pc: 0x40_0000, vector: HRT_FAIL_VEC };
        let e = event(RosEventType::HrtException, RosEventPayload { exception: ex });
        // SAFETY: no memory or system call involved.
        let handled = unsafe { perform(&e) };
        assert_eq!(handled, Handled::HrtException { pc: 0x40_0000, vector: HRT_FAIL_VEC });
        assert!(handled.in_hrt());
        let e = event(RosEventType::HrtThreadExit, RosEventPayload { thread_exit_id: 7 });
        // SAFETY: as above.
        assert_eq!(unsafe { perform(&e) }, Handled::Done { result: 0 });
        // SAFETY: as above.
        assert_eq!(unsafe { perform(&RosEvent::none()) }, Handled::Nothing);
        let mut odd = RosEvent::none();
        odd.event_type = 99;
        // SAFETY: as above.
        assert_eq!(unsafe { perform(&odd) }, Handled::Nothing);
    }
}
