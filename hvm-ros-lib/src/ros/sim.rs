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

use super::merged::RosFn;
use super::{Hvm, TestBackend};
use crate::abi::invoke::{function, Invocation, SyncChannel, INVOCATION_MAGIC, MAX_HRT_CORES, SYNC_MAGIC};
use crate::abi::{
    ExceptionEvent, HvmError, PageFaultEvent, RosEvent, RosEventPayload, RosEventType, SubOp, TransState, HVM_HCALL_ID,
    HVM_OK,
};
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

/// An event the simulated HRT forwards before it runs a `CALL_ROS` function.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scripted {
    /// A system call: number (the host's) and x0..x5.
    Syscall([u64; 7]),
    /// A page fault at `far`, read (0), write (1) or exec (2).
    PageFault { far: u64, action: u32 },
    /// An exception: the call then fails with status -1 and the ESR as its result, without
    /// running the function.
    Exception { pc: u64, esr: u64, far: u64 },
}

pub(crate) struct Sim {
    cores: usize,
    inner: Mutex<State>,
    /// What the HRT printed (PRINT and string invocations).
    pub(crate) printed: Mutex<Vec<String>>,
    /// The events the next `CALL_ROS` forwards first.
    script: Mutex<Vec<Scripted>>,
    /// The results the process completed the forwarded events with, in order.
    pub(crate) event_results: Mutex<Vec<u64>>,
    /// The last image installed (0x8).
    pub(crate) image: Mutex<Option<Vec<u8>>>,
}

struct State {
    trans: TransState,
    ready: bool,
    behaviour: Behaviour,
    channel: Option<u64>,
    stop_sync: Arc<AtomicBool>,
    /// The event slot (one event at a time, VM-wide).
    event: RosEvent,
    merged: bool,
    /// The mirrored TPIDR_EL0 and TPIDRRO_EL0.
    tls: Option<(u64, u64)>,
    /// When the current HRT boot started.
    boot: std::time::Instant,
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
                event: RosEvent::none(),
                merged: false,
                tls: None,
                boot: std::time::Instant::now(),
            }),
            printed: Mutex::new(Vec::new()),
            script: Mutex::new(Vec::new()),
            event_results: Mutex::new(Vec::new()),
            image: Mutex::new(None),
        })
    }

    /// The events the next `CALL_ROS` forwards before it runs its function.
    pub(crate) fn script(&self, events: Vec<Scripted>) {
        *self.script.lock().unwrap() = events;
    }

    pub(crate) fn merged(&self) -> bool {
        self.inner.lock().unwrap().merged
    }

    pub(crate) fn tls(&self) -> Option<(u64, u64)> {
        self.inner.lock().unwrap().tls
    }

    /// Forwards `event` as the HRT does (0x10), waits until the process completed it, takes
    /// the result and acknowledges (0x1e).
    fn forward(&self, event: RosEvent) -> u64 {
        {
            let mut s = self.inner.lock().unwrap();
            assert_eq!(s.event.event_type, RosEventType::None as u32, "one event at a time");
            s.event = event;
        }
        loop {
            {
                let mut s = self.inner.lock().unwrap();
                if s.event.event_type == RosEventType::Done as u32 {
                    let result = s.event.last_ros_event_result;
                    s.event = RosEvent::none();
                    self.event_results.lock().unwrap().push(result);
                    return result;
                }
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// The HRT's `CALL_ROS`: the scripted events, then the function (called here: on the host
    /// the process's address space is ours).
    fn call_ros(&self, args: [u64; 6]) -> Result<u64, (i64, u64)> {
        if !self.merged() {
            return Err((HvmError::WrongState.code() as i64, 0));
        }
        let script = std::mem::take(&mut *self.script.lock().unwrap());
        for scripted in script {
            let mut event = RosEvent::none();
            match scripted {
                Scripted::Syscall([nr, a0, a1, a2, a3, a4, a5]) => {
                    event.event_type = RosEventType::Syscall as u32;
                    event.payload = RosEventPayload { syscall: [nr, a0, a1, a2, a3, a4, a5, 0] };
                }
                Scripted::PageFault { far, action } => {
                    event.event_type = RosEventType::PageFault as u32;
                    event.payload = RosEventPayload { page_fault: PageFaultEvent { pc: args[0], far, action } };
                }
                Scripted::Exception { pc, esr, far } => {
                    event.event_type = RosEventType::HrtException as u32;
                    event.payload = RosEventPayload { exception: ExceptionEvent { pc, vector: esr, far } };
                    self.forward(event);
                    return Err((-1, esr));
                }
            }
            self.forward(event);
        }
        // SAFETY: the test passes a RosFn of this (host) process.
        let f: RosFn = unsafe { std::mem::transmute::<usize, RosFn>(args[0] as usize) };
        assert_eq!(args[1] % 16, 0, "the stack top is 16-byte aligned");
        Ok(f(args[2], args[3], args[4], args[5]))
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
        s.merged = false;
        s.tls = None;
        s.event = RosEvent::none();
        s.boot = std::time::Instant::now();
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
            SubOp::Null => [HVM_OK, s.boot.elapsed().as_nanos() as u64, 0, 0],
            SubOp::GetStateAndEvent => {
                if a2 != 0 {
                    assert!(in_one_page(a2, 80), "event buffer crosses a page");
                    // SAFETY: the process's event buffer (checked to be in one page).
                    unsafe { (a2 as *mut RosEvent).write_volatile(s.event) };
                }
                [s.trans as u64, u64::from(s.ready), 0, 0]
            }
            SubOp::EventComplete => {
                let pending = [RosEventType::PageFault, RosEventType::Syscall, RosEventType::HrtException]
                    .iter()
                    .any(|&t| s.event.event_type == t as u32);
                if !pending {
                    return error(HvmError::WrongState);
                }
                s.event.event_type = RosEventType::Done as u32;
                s.event.last_ros_event_result = a2;
                [HVM_OK, 0, 0, 0]
            }
            SubOp::Merge | SubOp::Unmerge | SubOp::MirrorTls | SubOp::UnmirrorTls => {
                if s.trans != TransState::Idle || !s.ready {
                    return error(HvmError::WrongState);
                }
                let tls = matches!(op, SubOp::MirrorTls | SubOp::UnmirrorTls);
                s.trans = if tls { TransState::TlsSync } else { TransState::Merge };
                let sim = Arc::clone(self);
                let a3 = regs[3];
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(2));
                    let mut s = sim.inner.lock().unwrap();
                    match op {
                        SubOp::Merge => s.merged = true,
                        SubOp::Unmerge => s.merged = false,
                        SubOp::MirrorTls => s.tls = Some((a2, a3)),
                        _ => s.tls = None,
                    }
                    s.trans = TransState::Idle;
                });
                [HVM_OK, 0, 0, 0]
            }
            SubOp::InstallHrtImage => {
                let len = regs[3] as usize;
                if a2 == 0 || len == 0 {
                    return error(HvmError::BadAddress);
                }
                // SAFETY: the process's image (tests only).
                let image = unsafe { std::slice::from_raw_parts(a2 as *const u8, len) };
                if len < 64 || !image.starts_with(b"\x7fELF") {
                    return error(HvmError::InvalidArgument);
                }
                *self.image.lock().unwrap() = Some(image.to_vec());
                [HVM_OK, 0, 0, 0]
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

    /// The HRT's function table: a result, or a status and result.
    fn run(&self, function: u64, args: [u64; 6]) -> Result<u64, (i64, u64)> {
        if function == function::CALL_ROS {
            return self.call_ros(args);
        }
        self.builtin(function, args).map_err(|e| (e.code() as i64, 0))
    }

    fn builtin(&self, function: u64, args: [u64; 6]) -> Result<u64, HvmError> {
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
                    Err(failure) => failure,
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
                    Err(failure) => failure,
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
    }

    #[test]
    fn a_hung_sync_call_breaks_the_session() {
        let sim = Sim::new(1);
        let hvm = sim.hvm();
        sim.set_behaviour(Behaviour::Hang);
        let mut session = hvm.synchronize().unwrap();
        session.set_timeout(Duration::from_millis(30));
        assert!(matches!(session.call_noop(), Err(InvokeError::Timeout { .. })));
        assert!(matches!(session.call_noop(), Err(InvokeError::SessionClosed)));
        // The teardown still works (the simulated HRT takes the nested teardown).
        session.desynchronize().unwrap();
        assert_eq!(sim.trans(), TransState::Idle);
    }

    extern "C" fn add4(a: u64, b: u64, c: u64, d: u64) -> u64 {
        a + b + c + d
    }

    #[test]
    fn merge_call_ros_with_forwarded_events_and_unmerge() {
        use crate::abi::invoke::MAX_HRT_CORES;
        use crate::ros::events::EventCounts;
        let sim = Sim::new(2);
        let hvm = sim.hvm();
        // Not merged: the HRT refuses the call.
        // SAFETY: add4 is a plain function.
        let e = unsafe { hvm.call_ros(add4, [1, 2, 3, 4]) }.unwrap_err();
        assert!(matches!(e, InvokeError::Call(CallError::Failed { status: -4, .. })), "{e:?}");
        hvm.merge().unwrap();
        assert!(sim.merged());
        assert!(!hvm.transaction_in_flight(), "the wait saw Idle");
        // SAFETY: as above.
        assert_eq!(unsafe { hvm.call_ros(add4, [1, 2, 3, 4]) }.unwrap(), 10);

        // Events first: a system call, a write fault on a page nobody touched.
        let page = crate::ros::pinned::page_size();
        // SAFETY: a fresh private mapping, checked.
        let untouched = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(untouched, libc::MAP_FAILED);
        sim.script(vec![
            Scripted::Syscall([libc::SYS_getpid as u64, 0, 0, 0, 0, 0, 0]),
            Scripted::Syscall([libc::SYS_close as u64, u64::MAX, 0, 0, 0, 0, 0]),
            Scripted::PageFault { far: untouched as u64 + 17, action: 1 },
        ]);
        let before = hvm.event_counts();
        // SAFETY: as above.
        assert_eq!(unsafe { hvm.call_ros(add4, [5, 0, 0, 0]) }.unwrap(), 5);
        let counts = hvm.event_counts().since(&before);
        assert_eq!(counts, EventCounts { page_faults: 1, syscalls: 2, ..EventCounts::default() });
        let results = sim.event_results.lock().unwrap().clone();
        assert_eq!(results, [std::process::id() as u64, -i64::from(libc::EBADF) as u64, 0]);
        let mut resident = [0u8];
        // SAFETY: our mapping, one page.
        assert_eq!(unsafe { libc::mincore(untouched, page, resident.as_mut_ptr()) }, 0);
        assert_eq!(resident[0] & 1, 1, "the faulting page is present now");
        // SAFETY: our mapping.
        unsafe { libc::munmap(untouched, page) };

        // An exception: the call fails with its syndrome, pc and FAR; the next call works.
        sim.script(vec![Scripted::Exception { pc: 0x40_1234, esr: 0x0200_0000, far: 0 }]);
        // SAFETY: as above.
        let e = unsafe { hvm.call_ros(add4, [1, 1, 0, 0]) }.unwrap_err();
        let exception = e.exception().expect("an exception");
        assert_eq!((exception.ec(), exception.pc, exception.far), (0, Some(0x40_1234), Some(0)));
        assert!(e.to_string().contains("EC 0x0"), "{e}");
        assert_eq!(hvm.event_counts().exceptions, 1);
        assert_eq!(sim.event_results.lock().unwrap().last(), Some(&0), "acknowledged with 0");
        // SAFETY: as above.
        assert_eq!(unsafe { hvm.call_ros(add4, [1, 1, 0, 0]) }.unwrap(), 2);

        // Every HRT core.
        // SAFETY: as above.
        assert_eq!(unsafe { hvm.call_ros_parallel(add4, [1, 2, 0, 0]) }.unwrap(), vec![3, 3]);
        let stack = hvm.ros_stacks.lock().unwrap().as_ref().map(|s| s.size());
        assert_eq!(stack, Some(super::super::merged::CALL_ROS_STACK_SIZE * MAX_HRT_CORES));

        hvm.mirror_tls_values(0x1234, 0x5678).unwrap();
        assert_eq!(sim.tls(), Some((0x1234, 0x5678)));
        hvm.unmirror_tls().unwrap();
        assert_eq!(sim.tls(), None);
        hvm.unmerge().unwrap();
        assert!(!sim.merged());
        assert_eq!(sim.trans(), TransState::Idle);
    }

    #[test]
    fn transactions_are_refused_unless_idle_and_ready() {
        let sim = Sim::new(1);
        let hvm = sim.hvm();
        sim.set_ready(false);
        assert!(matches!(hvm.merge(), Err(InvokeError::Hvm(HvmError::WrongState))));
        assert!(matches!(hvm.mirror_tls(), Err(InvokeError::Hvm(HvmError::WrongState))));
        sim.set_ready(true);
        let _session = hvm.synchronize().unwrap();
        assert!(matches!(hvm.unmerge(), Err(InvokeError::Hvm(HvmError::WrongState))));
    }

    #[test]
    fn only_the_handle_with_the_transaction_services_its_events() {
        let sim = Sim::new(1);
        let (mine, other) = (sim.hvm(), sim.hvm());
        mine.merge().unwrap();
        sim.script(vec![Scripted::Syscall([libc::SYS_getpid as u64, 0, 0, 0, 0, 0, 0])]);
        let f: RosFn = add4;
        let mut inv = PinnedInvocation::new(function::CALL_ROS, [f as usize as u64, 0, 7, 0, 0, 0]).unwrap();
        mine.invoke_async(&mut inv).unwrap();
        // The other handle polls, and leaves the event alone.
        for _ in 0..50 {
            other.poll().unwrap();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(other.event_counts().total(), 0);
        assert!(sim.event_results.lock().unwrap().is_empty());
        let done = mine.finish(&mut inv, Duration::from_secs(5)).unwrap();
        assert_eq!((done.status[0], done.result[0]), (0, 7));
        assert_eq!(mine.event_counts().syscalls, 1);
    }

    #[test]
    fn an_image_is_installed_and_booted() {
        let sim = Sim::new(1);
        let hvm = sim.hvm();
        assert!(matches!(hvm.install_hrt_image(b"not an ELF"), Err(InvokeError::Hvm(HvmError::InvalidArgument))));
        let mut image = vec![0u8; 8192];
        image[..4].copy_from_slice(b"\x7fELF");
        hvm.merge().unwrap();
        std::thread::sleep(Duration::from_millis(5));
        let status = hvm.install_and_boot(&image, Duration::from_secs(5)).unwrap();
        assert!(status.accepts_calls());
        assert_eq!(sim.image.lock().unwrap().as_deref(), Some(&image[..]));
        assert!(!sim.merged(), "a reset ends the merge");
    }
}
