//! Invoking the HRT from a ROS process (palacios-hvm.md §4.3): the state query (0xf),
//! asynchronous calls on the first or on every HRT core (0x20 / 0x21), and the waits of every
//! transaction (it ends when the state is back to Idle), which service the ROS events the HRT
//! forwards meanwhile ([`Hvm::poll`]).
//!
//! One transaction is in flight VM-wide at a time: the hypervisor refuses a call with
//! [`HvmError::WrongState`] unless the state is Idle and the HRT ready. After the hypervisor
//! accepted a call, the HRT runs it asynchronously and the call is over when the state is Idle
//! again; the invocation buffer then holds, per HRT core that ran it, a `done` bit, a status and
//! a result.

use std::prelude::rust_2021::*;

use std::ffi::CStr;
use std::fmt;
use std::io;
use std::sync::atomic::{fence, Ordering};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::events::RosException;
use super::pinned::{page_size, PinnedInvocation, PinnedString, StringBufferError, PAYLOAD_OFFSET};
use super::Hvm;
use crate::abi::invoke::function;
use crate::abi::{HvmError, RosEvent, SubOp, TransState};
use crate::status::{self, invoke_sub_op, CallError, HvmStatus};

/// Why an invocation (or another transaction) did not give a result.
#[derive(Debug)]
pub enum InvokeError {
    /// The hypervisor refused a call: `WrongState` when another transaction is in flight or the
    /// HRT is not ready, `NotImplemented` for a sub-operation it does not implement yet, ...
    Hvm(HvmError),
    /// `what` did not happen within `waited`; `last` is the last state seen. A buffer the HRT
    /// may still write is kept (leaked), never freed.
    Timeout { what: &'static str, waited: Duration, last: Option<HvmStatus> },
    /// The transaction ended other than it should (e.g. sync setup ended Idle: the HRT was
    /// reset meanwhile).
    Lost { what: &'static str, status: HvmStatus },
    /// The call completed but did not succeed on every HRT core it should have run on.
    Call(CallError),
    /// Allocating or locking a buffer failed.
    Pin(io::Error),
    /// This string cannot be an invocation buffer.
    String(StringBufferError),
    /// A sync call on a session that is over or broken (an earlier call timed out).
    SessionClosed,
    /// A function of this process that the HRT ran ([`Hvm::call_ros`]) took an exception (on
    /// HRT core `core`): the call failed, the HRT goes on.
    Exception { core: usize, exception: RosException },
    /// A file (an HRT image) could not be read.
    Io(io::Error),
}

impl fmt::Display for InvokeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hvm(e) => write!(f, "the hypervisor refused: {e}"),
            Self::Timeout { what, waited, last: Some(last) } => {
                write!(f, "timed out after {waited:?} waiting for {what} (last state: {last})")
            }
            Self::Timeout { what, waited, last: None } => write!(f, "timed out after {waited:?} waiting for {what}"),
            Self::Lost { what, status } => write!(f, "{what} ended unexpectedly (state: {status})"),
            Self::Call(e) => write!(f, "{e}"),
            Self::Pin(e) => write!(f, "cannot pin a buffer: {e}"),
            Self::String(e) => write!(f, "{e}"),
            Self::SessionClosed => write!(f, "the synchronous session is closed"),
            Self::Exception { core, exception } => {
                write!(f, "the function took an exception in the HRT (HRT core {core}): {exception}")
            }
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for InvokeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Hvm(e) => Some(e),
            Self::Pin(e) | Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<HvmError> for InvokeError {
    fn from(e: HvmError) -> Self {
        Self::Hvm(e)
    }
}

impl From<CallError> for InvokeError {
    fn from(e: CallError) -> Self {
        Self::Call(e)
    }
}

impl From<io::Error> for InvokeError {
    fn from(e: io::Error) -> Self {
        Self::Pin(e)
    }
}

impl From<StringBufferError> for InvokeError {
    fn from(e: StringBufferError) -> Self {
        Self::String(e)
    }
}

impl InvokeError {
    /// The hypervisor's error code behind this error, if there is one (the refusal, or the
    /// status a function reported).
    pub fn hvm_error(&self) -> Option<HvmError> {
        match self {
            Self::Hvm(e) => Some(*e),
            Self::Call(e) => e.hvm_error(),
            _ => None,
        }
    }

    /// Whether the hypervisor answered that it does not implement this yet.
    pub fn is_not_implemented(&self) -> bool {
        matches!(self, Self::Hvm(HvmError::NotImplemented))
    }

    /// The exception a function run in the HRT took, if that is why the call failed.
    pub fn exception(&self) -> Option<RosException> {
        match self {
            Self::Exception { exception, .. } => Some(*exception),
            _ => None,
        }
    }
}

/// A [`RosEvent`] that cannot cross a page boundary (the hypervisor writes it in one piece).
#[repr(C, align(128))]
struct EventBuffer(RosEvent);

/// What an event poll saw.
#[derive(Clone, Copy)]
pub struct StateAndEvent {
    pub status: HvmStatus,
    /// The pending ROS event (`event_type` [`crate::abi::RosEventType::None`] when there is none).
    pub event: RosEvent,
}

impl Hvm {
    /// How long the waits of the convenience functions last (default [`Hvm::DEFAULT_TIMEOUT`]).
    pub fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_ns.load(Ordering::Relaxed))
    }

    /// Sets [`Hvm::timeout`].
    pub fn set_timeout(&self, timeout: Duration) {
        self.timeout_ns.store(timeout.as_nanos().min(u128::from(u64::MAX)) as u64, Ordering::Relaxed);
    }

    /// The transaction state and whether the HRT is ready (0xf without an event buffer).
    pub fn state(&self) -> Result<HvmStatus, HvmError> {
        HvmStatus::from_regs(self.call_raw(SubOp::GetStateAndEvent as u64, [0; 6]))
    }

    /// The state and the pending ROS event (0xf with an event buffer).
    pub fn state_and_event(&self) -> Result<StateAndEvent, HvmError> {
        let mut buffer = EventBuffer(RosEvent::none());
        let va = &mut buffer as *mut EventBuffer as u64;
        let regs = self.call_raw(SubOp::GetStateAndEvent as u64, [va, 0, 0, 0, 0, 0]);
        // SAFETY: `buffer` is ours; the hypervisor may have written it during the call (the
        // asm is not `nomem`, and its address was exposed by the cast), so read it afresh.
        let event = unsafe { std::ptr::read_volatile(&buffer.0) };
        Ok(StateAndEvent { status: HvmStatus::from_regs(regs)?, event })
    }

    /// Polls the state (0xf) until `done` says so, for at most `timeout`, servicing the ROS
    /// events of a transaction of ours meanwhile ([`Hvm::poll`]).
    pub fn wait_until(
        &self,
        what: &'static str,
        timeout: Duration,
        mut done: impl FnMut(HvmStatus) -> bool,
    ) -> Result<HvmStatus, InvokeError> {
        let start = Instant::now();
        loop {
            let status = self.poll()?;
            if done(status) {
                // The HRT's writes to our buffers happened before its CallDone, which the
                // hypervisor ordered before the answer we just read.
                fence(Ordering::Acquire);
                return Ok(status);
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(InvokeError::Timeout { what, waited, last: Some(status) });
            }
            std::hint::spin_loop();
        }
    }

    /// Polls until the transaction state is Idle (whether or not the HRT is ready: an HRT reset
    /// also ends a transaction).
    pub fn wait_idle(&self, timeout: Duration) -> Result<HvmStatus, InvokeError> {
        self.wait_until("the Idle state", timeout, |s| s.trans == TransState::Idle)
    }

    /// Polls until the state is Idle and the HRT ready, i.e. until a call would be accepted
    /// (after a reset of the HRT, for example).
    pub fn wait_ready(&self, timeout: Duration) -> Result<HvmStatus, InvokeError> {
        self.wait_until("a ready, idle HRT", timeout, HvmStatus::accepts_calls)
    }

    /// Issues `sub_op` with x2 = `va`.
    fn issue(&self, sub_op: SubOp, va: u64) -> Result<(), HvmError> {
        // Our writes to the buffer must be visible before the HRT is told about it.
        fence(Ordering::Release);
        self.call(sub_op, [va, 0, 0, 0, 0, 0]).map(drop)
    }

    /// Starts `inv` on the first HRT core (0x20), or on every HRT core (0x21) if `parallel`;
    /// clears its completion record first. Returns once the hypervisor accepted it: wait with
    /// [`Hvm::finish`].
    pub fn invoke_async_on(&self, inv: &mut PinnedInvocation, parallel: bool) -> Result<(), InvokeError> {
        if inv.in_flight {
            return Err(InvokeError::Hvm(HvmError::Busy));
        }
        let mut fresh = inv.get();
        fresh.done = 0;
        fresh.status = [0; crate::abi::invoke::MAX_HRT_CORES];
        fresh.result = [0; crate::abi::invoke::MAX_HRT_CORES];
        inv.write(fresh);
        self.issue(invoke_sub_op(parallel), inv.va())?;
        inv.in_flight = true;
        Ok(())
    }

    /// [`Hvm::invoke_async_on`] on the first HRT core (0x20).
    pub fn invoke_async(&self, inv: &mut PinnedInvocation) -> Result<(), InvokeError> {
        self.invoke_async_on(inv, false)
    }

    /// [`Hvm::invoke_async_on`] on every HRT core (0x21).
    pub fn invoke_parallel_async(&self, inv: &mut PinnedInvocation) -> Result<(), InvokeError> {
        self.invoke_async_on(inv, true)
    }

    /// Waits until the call started on `inv` is over (state Idle) and returns the completion
    /// record. On a timeout the buffer stays in flight: dropping it then leaks its page.
    pub fn finish(
        &self,
        inv: &mut PinnedInvocation,
        timeout: Duration,
    ) -> Result<crate::abi::invoke::Invocation, InvokeError> {
        if inv.in_flight {
            self.wait_idle(timeout)?;
            inv.in_flight = false;
        }
        Ok(inv.get())
    }

    /// Runs `prepare` on the reusable invocation buffer, starts it, waits for it and returns its
    /// completion record.
    pub(crate) fn run_scratch(
        &self,
        parallel: bool,
        prepare: impl FnOnce(&mut PinnedInvocation),
    ) -> Result<crate::abi::invoke::Invocation, InvokeError> {
        let mut scratch = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        if scratch.as_ref().is_some_and(PinnedInvocation::is_in_flight) {
            // A timed-out call may still write it: drop (leak) it and start afresh.
            *scratch = None;
        }
        let inv = match &mut *scratch {
            Some(inv) => inv,
            None => scratch.insert(PinnedInvocation::new(function::ADD, [0; 6])?),
        };
        prepare(inv);
        self.invoke_async_on(inv, parallel)?;
        self.finish(inv, self.timeout())
    }

    /// Calls HRT function `function` with `args` on the first HRT core and waits for its
    /// result. Address arguments are this process's virtual addresses of present memory.
    pub fn invoke(&self, function: u64, args: [u64; 6]) -> Result<u64, InvokeError> {
        let done = self.run_scratch(false, |inv| inv.set(function, args))?;
        Ok(status::single_result(&done)?)
    }

    /// Calls HRT function `function` with `args` on every HRT core; returns HRT core n's result
    /// at index n.
    pub fn invoke_parallel(&self, function: u64, args: [u64; 6]) -> Result<Vec<u64>, InvokeError> {
        let done = self.run_scratch(true, |inv| inv.set(function, args))?;
        Ok(status::parallel_results(&done, None)?.as_slice().to_vec())
    }

    /// The built-in `PRINT` with `s` (copied next to the invocation, so it is pinned too):
    /// returns the function's result.
    pub fn print(&self, s: &CStr) -> Result<u64, InvokeError> {
        let bytes = s.to_bytes_with_nul();
        let capacity = page_size() - PAYLOAD_OFFSET;
        if bytes.len() > capacity {
            return Err(StringBufferError::TooLong { len: bytes.len() - 1, max: capacity - 1 }.into());
        }
        let done = self.run_scratch(false, |inv| {
            inv.set_payload(bytes);
            inv.set(function::PRINT, [inv.payload_va(), 0, 0, 0, 0, 0]);
        })?;
        Ok(status::single_result(&done)?)
    }

    /// Palacios' string invocation: passes `s` itself as the buffer (no invocation magic), which
    /// the HRT prints; on every HRT core if `parallel`. Over when the state is Idle again.
    pub fn invoke_string_on(&self, s: &CStr, parallel: bool) -> Result<(), InvokeError> {
        self.invoke_string_buffer(&mut PinnedString::new(s)??, parallel)
    }

    /// [`Hvm::invoke_string_on`] with a string already pinned (a loop that passes the same
    /// string again and again allocates it once). On a timeout the buffer stays in flight and
    /// is refused by later calls; dropping it then leaks its page.
    pub fn invoke_string_buffer(&self, buffer: &mut PinnedString, parallel: bool) -> Result<(), InvokeError> {
        if buffer.in_flight {
            return Err(InvokeError::Hvm(HvmError::Busy));
        }
        self.issue(invoke_sub_op(parallel), buffer.va())?;
        buffer.in_flight = true;
        self.wait_idle(self.timeout())?;
        buffer.in_flight = false;
        Ok(())
    }

    /// [`Hvm::invoke_string_on`] on the first HRT core.
    pub fn invoke_string(&self, s: &CStr) -> Result<(), InvokeError> {
        self.invoke_string_on(s, false)
    }

    /// Raises signal `code` (non-zero) to the process that registered a handler (0x41).
    pub fn raise_signal(&self, code: u64) -> Result<(), HvmError> {
        self.call(SubOp::RaiseSignal, [code, 0, 0, 0, 0, 0]).map(drop)
    }

    /// Completes the pending ROS event with `result` (0x1f).
    pub fn event_complete(&self, result: u64) -> Result<(), HvmError> {
        self.call(SubOp::EventComplete, [result, 0, 0, 0, 0, 0]).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_explain_themselves() {
        assert_eq!(
            InvokeError::Hvm(HvmError::WrongState).to_string(),
            "the hypervisor refused: WrongState (-4): wrong transaction state for this sub-operation"
        );
        let last = HvmStatus { trans: TransState::Call, hrt_ready: true };
        let e = InvokeError::Timeout { what: "the Idle state", waited: Duration::from_secs(1), last: Some(last) };
        assert_eq!(e.to_string(), "timed out after 1s waiting for the Idle state (last state: Call (1), HRT ready)");
        assert!(InvokeError::Hvm(HvmError::NotImplemented).is_not_implemented());
        assert_eq!(
            InvokeError::Call(CallError::Failed { core: 1, status: -5 }).hvm_error(),
            Some(HvmError::BadAddress)
        );
        assert_eq!(InvokeError::SessionClosed.hvm_error(), None);
        let exception = RosException { esr: 0x0200_0000, pc: Some(0x40_1000), far: Some(0) };
        let e = InvokeError::Exception { core: 0, exception };
        assert_eq!(e.exception(), Some(exception));
        assert_eq!(
            e.to_string(),
            "the function took an exception in the HRT (HRT core 0): EC 0x0 (unknown reason (e.g. an \
             undefined instruction)), ESR 0x2000000 at pc 0x401000"
        );
    }

    #[test]
    fn the_event_buffer_never_crosses_a_page() {
        assert_eq!(core::mem::align_of::<EventBuffer>(), 128);
        assert!(core::mem::size_of::<RosEvent>() <= 128);
    }
}
