//! A simulated hypervisor and HRT for host tests of the invocation paths: it answers the calls
//! of an [`Hvm`] as the contract says (state machine, WrongState / BadAddress /
//! NotImplemented) and runs the HRT's side on a thread of its own, reading and writing the
//! process's buffers directly (on the host, a virtual address is just a pointer).

use std::prelude::rust_2021::*;

use std::ffi::CStr;
use std::ptr::addr_of_mut;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Hvm, TestBackend};
use crate::abi::invoke::{function, Invocation, SyncChannel, INVOCATION_MAGIC, MAX_HRT_CORES, SYNC_MAGIC};
use crate::abi::{HvmError, RosEvent, SubOp, TransState, HVM_HCALL_ID, HVM_OK};
use crate::checksum::fletcher64_slice;

/// How the simulated HRT behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Runs every call.
    Normal,
    /// Never finishes a call (a hung HRT).
    Hang,
    /// Is reset while a call runs: the state goes back to Idle without the call done.
    ResetDuringCall,
}

pub(crate) struct Sim {
    cores: usize,
    inner: Mutex<State>,
    /// What the HRT printed (PRINT and string invocations).
    pub(crate) printed: Mutex<Vec<String>>,
}

struct State {
    trans: TransState,
    ready: bool,
    behaviour: Behaviour,
    channel: Option<u64>,
    stop_sync: Arc<AtomicBool>,
}

fn error(e: HvmError) -> [u64; 4] {
    [e.code(), 0, 0, 0]
}

/// The buffer `[va, va + len)` lies in one 4 KiB page (what the hypervisor requires).
fn in_one_page(va: u64, len: u64) -> bool {
    va != 0 && va / 4096 == (va + len - 1) / 4096
}

impl Sim {
    pub(crate) fn new(cores: usize) -> Arc<Sim> {
        Arc::new(Sim {
            cores,
            inner: Mutex::new(State {
                trans: TransState::Idle,
                ready: true,
                behaviour: Behaviour::Normal,
                channel: None,
                stop_sync: Arc::new(AtomicBool::new(false)),
            }),
            printed: Mutex::new(Vec::new()),
        })
    }

    /// An `Hvm` whose calls this simulation answers.
    pub(crate) fn hvm(self: &Arc<Sim>) -> Hvm {
        let sim = Arc::clone(self);
        let backend: TestBackend = Arc::new(move |regs| sim.call(regs));
        Hvm::with_backend(backend)
    }

    pub(crate) fn set_behaviour(&self, behaviour: Behaviour) {
        self.inner.lock().unwrap().behaviour = behaviour;
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.inner.lock().unwrap().ready = ready;
    }

    /// Back to Idle and ready, as after an HRT reset (a hung call is dropped).
    pub(crate) fn reset(&self) {
        let mut s = self.inner.lock().unwrap();
        s.stop_sync.store(true, Ordering::SeqCst);
        s.trans = TransState::Idle;
        s.ready = true;
        s.channel = None;
        s.behaviour = Behaviour::Normal;
    }

    pub(crate) fn trans(&self) -> TransState {
        self.inner.lock().unwrap().trans
    }

    fn call(self: &Arc<Sim>, regs: [u64; 8]) -> [u64; 4] {
        assert_eq!(regs[0], HVM_HCALL_ID, "x0 is the HVM function id");
        let (code, a2) = (regs[1], regs[2]);
        let Some(op) = SubOp::from_code(code) else { return error(HvmError::UnknownSubOp) };
        let mut s = self.inner.lock().unwrap();
        match op {
            SubOp::Null => [HVM_OK, 0, 0, 0],
            SubOp::GetStateAndEvent => {
                if a2 != 0 {
                    assert!(in_one_page(a2, 80), "event buffer crosses a page");
                    // SAFETY: the process's event buffer (checked to be in one page).
                    unsafe { (a2 as *mut RosEvent).write_volatile(RosEvent::none()) };
                }
                [s.trans as u64, u64::from(s.ready), 0, 0]
            }
            SubOp::Invoke | SubOp::ParallelInvoke => {
                if s.trans != TransState::Idle || !s.ready {
                    return error(HvmError::WrongState);
                }
                if !in_one_page(a2, core::mem::size_of::<Invocation>() as u64) {
                    return error(HvmError::BadAddress);
                }
                let parallel = op == SubOp::ParallelInvoke;
                s.trans = if parallel { TransState::ParCall } else { TransState::Call };
                let (sim, behaviour) = (Arc::clone(self), s.behaviour);
                std::thread::spawn(move || sim.hrt_call(a2, parallel, behaviour));
                [HVM_OK, 0, 0, 0]
            }
            SubOp::SyncSetup => {
                if s.trans != TransState::Idle || !s.ready {
                    return error(HvmError::WrongState);
                }
                if !in_one_page(a2, core::mem::size_of::<SyncChannel>() as u64) {
                    return error(HvmError::BadAddress);
                }
                s.trans = TransState::SyncSetup;
                s.channel = Some(a2);
                s.stop_sync = Arc::new(AtomicBool::new(false));
                let (sim, stop, behaviour) = (Arc::clone(self), Arc::clone(&s.stop_sync), s.behaviour);
                std::thread::spawn(move || sim.hrt_sync(a2, stop, behaviour));
                [HVM_OK, 0, 0, 0]
            }
            SubOp::SyncTeardown => {
                if s.trans != TransState::Sync {
                    return error(HvmError::WrongState);
                }
                if Some(a2) != s.channel {
                    return error(HvmError::InvalidArgument);
                }
                s.trans = TransState::SyncTeardown;
                s.stop_sync.store(true, Ordering::SeqCst);
                [HVM_OK, 0, 0, 0]
            }
            SubOp::ResetHrt => {
                drop(s);
                self.reset();
                [HVM_OK, 0, 0, 0]
            }
            _ => error(HvmError::NotImplemented),
        }
    }

    /// The HRT's function table.
    fn run(&self, function: u64, args: [u64; 6]) -> Result<u64, HvmError> {
        match function {
            function::PRINT => {
                // SAFETY: the process passes a NUL-terminated string (tests only).
                let s = unsafe { CStr::from_ptr(args[0] as *const std::ffi::c_char) };
                self.printed.lock().unwrap().push(s.to_string_lossy().into_owned());
                Ok(s.to_bytes().len() as u64)
            }
            function::ADD => Ok(args[0].wrapping_add(args[1])),
            function::CHECKSUM => {
                // SAFETY: the process passes its own buffer (tests only).
                let bytes = unsafe { std::slice::from_raw_parts(args[0] as *const u8, args[1] as usize) };
                Ok(fletcher64_slice(bytes))
            }
            function::SPIN_US if args[0] <= 1_000_000 => {
                std::thread::sleep(Duration::from_micros(args[0]));
                Ok(args[0])
            }
            _ => Err(HvmError::InvalidArgument),
        }
    }

    /// An asynchronous call on the HRT cores.
    fn hrt_call(&self, va: u64, parallel: bool, behaviour: Behaviour) {
        std::thread::sleep(Duration::from_millis(2));
        match behaviour {
            Behaviour::Hang => return,
            Behaviour::ResetDuringCall => {
                let mut s = self.inner.lock().unwrap();
                s.trans = TransState::Idle;
                return;
            }
            Behaviour::Normal => {}
        }
        let inv = va as *mut Invocation;
        // SAFETY: the process's buffer (tests only); the first word tells what it is.
        let magic = unsafe { (va as *const u64).read_volatile() };
        if magic == INVOCATION_MAGIC {
            // SAFETY: as above.
            let mut call = unsafe { inv.read_volatile() };
            let cores = if parallel { self.cores } else { 1 };
            for core in 0..cores.min(MAX_HRT_CORES) {
                let (status, result) = match self.run(call.function, call.args) {
                    Ok(result) => (0, result),
                    Err(e) => (e.code() as i64, 0),
                };
                call.status[core] = status;
                call.result[core] = result;
                call.done |= 1 << core;
            }
            // SAFETY: as above.
            unsafe { inv.write_volatile(call) };
        } else {
            // SAFETY: not an invocation: a NUL-terminated string.
            let s = unsafe { CStr::from_ptr(va as *const std::ffi::c_char) };
            let copies = if parallel { self.cores } else { 1 };
            for _ in 0..copies {
                self.printed.lock().unwrap().push(s.to_string_lossy().into_owned());
            }
        }
        std::sync::atomic::fence(Ordering::Release);
        self.inner.lock().unwrap().trans = TransState::Idle;
    }

    /// The first HRT core polling a sync channel.
    fn hrt_sync(&self, va: u64, stop: Arc<AtomicBool>, behaviour: Behaviour) {
        let channel = va as *mut SyncChannel;
        // SAFETY: the process's channel (tests only).
        assert_eq!(unsafe { (*channel).magic }, SYNC_MAGIC);
        std::thread::sleep(Duration::from_millis(2));
        {
            let mut s = self.inner.lock().unwrap();
            if s.trans != TransState::SyncSetup {
                return; // reset meanwhile
            }
            s.trans = TransState::Sync;
        }
        // SAFETY: as above; the counters are u64, used as atomics by both sides.
        let (issued, completed) = unsafe {
            (
                AtomicU64::from_ptr(addr_of_mut!((*channel).issued)),
                AtomicU64::from_ptr(addr_of_mut!((*channel).completed)),
            )
        };
        let mut count = 0;
        while !stop.load(Ordering::SeqCst) {
            let now = issued.load(Ordering::Acquire);
            if now == count || behaviour == Behaviour::Hang {
                std::thread::yield_now();
                continue;
            }
            // SAFETY: as above.
            let mut call = unsafe { addr_of_mut!((*channel).invocation).read_volatile() };
            if call.magic == INVOCATION_MAGIC {
                let (status, result) = match self.run(call.function, call.args) {
                    Ok(result) => (0, result),
                    Err(e) => (e.code() as i64, 0),
                };
                call.status[0] = status;
                call.result[0] = result;
                call.done = 1;
                // SAFETY: as above.
                unsafe { addr_of_mut!((*channel).invocation).write_volatile(call) };
            }
            count = now;
            completed.store(count, Ordering::Release);
        }
        let mut s = self.inner.lock().unwrap();
        if s.trans == TransState::SyncTeardown {
            s.trans = TransState::Idle;
            s.channel = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ros::{InvokeError, PinnedInvocation};
    use crate::status::{CallError, HvmStatus};

    #[test]
    fn invoke_runs_on_the_first_core_and_parallel_on_every_core() {
        let sim = Sim::new(3);
        let hvm = sim.hvm();
        assert_eq!(hvm.state().unwrap(), HvmStatus { trans: TransState::Idle, hrt_ready: true });
        assert_eq!(hvm.invoke(function::ADD, [2, 3, 0, 0, 0, 0]).unwrap(), 5);
        assert_eq!(hvm.invoke_parallel(function::ADD, [2, 3, 0, 0, 0, 0]).unwrap(), vec![5, 5, 5]);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 31) as u8).collect();
        let args = [data.as_ptr() as u64, data.len() as u64, 0, 0, 0, 0];
        assert_eq!(hvm.invoke(function::CHECKSUM, args).unwrap(), fletcher64_slice(&data));
        assert_eq!(hvm.print(c"from the test").unwrap(), 13);
        hvm.invoke_string(c"hello world\n").unwrap();
        hvm.invoke_string_on(c"everyone", true).unwrap();
        let printed = sim.printed.lock().unwrap().clone();
        assert_eq!(printed, ["from the test", "hello world\n", "everyone", "everyone", "everyone"]);
        assert_eq!(sim.trans(), TransState::Idle);
    }

    #[test]
    fn a_failing_function_reports_its_status() {
        let sim = Sim::new(2);
        let hvm = sim.hvm();
        match hvm.invoke(99, [0; 6]) {
            Err(InvokeError::Call(CallError::Failed { core: 0, status })) => {
                assert_eq!(status, HvmError::InvalidArgument.code() as i64)
            }
            other => std::panic!("{other:?}"),
        }
        let e = hvm.invoke_parallel(function::SPIN_US, [2_000_000, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!(e.hvm_error(), Some(HvmError::InvalidArgument));
    }

    #[test]
    fn calls_are_refused_while_the_hrt_boots_or_another_call_runs() {
        let sim = Sim::new(1);
        let hvm = sim.hvm();
        sim.set_ready(false);
        assert!(matches!(hvm.invoke(function::ADD, [0; 6]), Err(InvokeError::Hvm(HvmError::WrongState))));
        hvm.set_timeout(Duration::from_millis(50));
        assert!(matches!(hvm.wait_ready(Duration::from_millis(20)), Err(InvokeError::Timeout { .. })));
        sim.set_ready(true);
        hvm.wait_ready(Duration::from_secs(5)).unwrap();

        let mut inv = PinnedInvocation::new(function::SPIN_US, [20_000, 0, 0, 0, 0, 0]).unwrap();
        hvm.invoke_async(&mut inv).unwrap();
        assert!(inv.is_in_flight());
        assert!(matches!(hvm.invoke(function::ADD, [0; 6]), Err(InvokeError::Hvm(HvmError::WrongState))));
        assert!(matches!(hvm.invoke_async(&mut inv), Err(InvokeError::Hvm(HvmError::Busy))), "still in flight");
        let done = hvm.finish(&mut inv, Duration::from_secs(5)).unwrap();
        assert!(!inv.is_in_flight());
        assert_eq!((done.done, done.status[0], done.result[0]), (1, 0, 20_000));
    }

    #[test]
    fn a_reset_during_a_call_is_not_a_result() {
        let sim = Sim::new(2);
        let hvm = sim.hvm();
        sim.set_behaviour(Behaviour::ResetDuringCall);
        let e = hvm.invoke(function::ADD, [1, 1, 0, 0, 0, 0]).unwrap_err();
        assert!(matches!(e, InvokeError::Call(CallError::UnexpectedDone { done: 0, .. })), "{e:?}");
        let e = hvm.invoke_parallel(function::ADD, [1, 1, 0, 0, 0, 0]).unwrap_err();
        assert!(matches!(e, InvokeError::Call(CallError::UnexpectedDone { done: 0, .. })), "{e:?}");
    }

    #[test]
    fn a_hung_call_times_out_and_its_buffer_is_kept() {
        let sim = Sim::new(1);
        let hvm = sim.hvm();
        hvm.set_timeout(Duration::from_millis(30));
        sim.set_behaviour(Behaviour::Hang);
        let e = hvm.invoke(function::ADD, [1, 1, 0, 0, 0, 0]).unwrap_err();
        assert!(
            matches!(e, InvokeError::Timeout { last: Some(HvmStatus { trans: TransState::Call, .. }), .. }),
            "{e:?}"
        );
        let stale = hvm.scratch.lock().unwrap().as_ref().map(|inv| (inv.va(), inv.is_in_flight()));
        assert!(matches!(stale, Some((_, true))), "the buffer stays in flight");
        sim.reset();
        assert_eq!(hvm.invoke(function::ADD, [1, 1, 0, 0, 0, 0]).unwrap(), 2);
        let fresh = hvm.scratch.lock().unwrap().as_ref().map(PinnedInvocation::va);
        assert_ne!(fresh, stale.map(|(va, _)| va), "a new buffer replaced the one in flight");
    }

    #[test]
    fn a_sync_session_calls_through_shared_memory() {
        let sim = Sim::new(2);
        let hvm = sim.hvm();
        let mut session = hvm.synchronize().unwrap();
        assert_eq!(sim.trans(), TransState::Sync);
        assert!(matches!(hvm.invoke(function::ADD, [0; 6]), Err(InvokeError::Hvm(HvmError::WrongState))));
        for i in 0..100 {
            assert_eq!(session.call(function::ADD, [i, 1, 0, 0, 0, 0]).unwrap(), i + 1);
            session.call_noop().unwrap();
        }
        assert_eq!(session.calls(), 200);
        let e = session.call(42, [0; 6]).unwrap_err();
        assert!(matches!(e, InvokeError::Call(CallError::Failed { core: 0, .. })), "{e:?}");
        session.desynchronize().unwrap();
        assert_eq!(sim.trans(), TransState::Idle);
        // Dropping a session tears it down too.
        drop(hvm.synchronize().unwrap());
        assert_eq!(sim.trans(), TransState::Idle);
        assert!(matches!(hvm.merge(), Err(e) if e.is_not_implemented()));
    }

    #[test]
    fn a_hung_sync_call_breaks_the_session() {
        let sim = Sim::new(1);
        let hvm = sim.hvm();
        hvm.set_timeout(Duration::from_millis(30));
        sim.set_behaviour(Behaviour::Hang);
        let mut session = hvm.synchronize().unwrap();
        assert!(matches!(session.call_noop(), Err(InvokeError::Timeout { .. })));
        assert!(matches!(session.call_noop(), Err(InvokeError::SessionClosed)));
        // The teardown still works (the simulated HRT takes the nested teardown).
        session.desynchronize().unwrap();
        assert_eq!(sim.trans(), TransState::Idle);
    }
}
