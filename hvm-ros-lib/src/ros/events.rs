//! ROS events (palacios-hvm.md §4.5, §7.9; the protocol is in [`RosEvent`]'s documentation):
//! work the HRT forwards to the process whose code it runs at HRT EL0 after a merge.
//!
//! The process finds the event with `GetStateAndEvent` (0xf, with an event buffer), does the
//! work and completes it with `EventComplete` (0x1f) and a result:
//! - `ROS_SYSCALL`: the system call, made here (arm64 numbers, `args[0]` = number, `args[1..7]`
//!   = x0..x5); the result is the raw x0, a negative errno included;
//! - `ROS_PAGE_FAULT`: the page is made present in this process, for writing if the access was
//!   a write, without changing its contents; result 0 ([`resolve_page_fault`]);
//! - `HRT_EXCEPTION`: recorded ([`RosException`]: syndrome, pc, fault address) for the caller
//!   whose call it fails; result 0;
//! - `HRT_THREAD_EXIT`: result 0.
//!
//! The waits of [`Hvm`] service events ([`Hvm::poll`]) only while this handle has a transaction
//! of its own in flight: an event is always about the transaction in flight (there is one at a
//! time, VM-wide), and another process's events must not be handled here (its system calls would
//! run in this process).

use std::prelude::rust_2021::*;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use super::Hvm;
use crate::abi::{HvmError, PageFaultAction, RosEvent, RosEventType, SubOp, TransState, HRT_FAIL_VEC};
use crate::status::HvmStatus;

/// An exception a function of the process took while the HRT ran it (an `HRT_EXCEPTION` event,
/// or a `CALL_ROS` that failed with status -1 and the syndrome as its result).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RosException {
    /// ESR_EL1 of the exception, or [`HRT_FAIL_VEC`] for an exception in the HRT itself.
    pub esr: u64,
    /// Where it happened (ELR_EL1), when an event said so.
    pub pc: Option<u64>,
    /// The fault address (FAR_EL1), when an event said so (meaningful for aborts only).
    pub far: Option<u64>,
}

impl RosException {
    /// From an `HRT_EXCEPTION` event's payload.
    pub fn from_event(pc: u64, vector: u64, far: u64) -> Self {
        Self { esr: vector, pc: Some(pc), far: Some(far) }
    }

    /// Whether the exception happened in the HRT itself rather than in the process's code.
    pub fn in_hrt(&self) -> bool {
        self.esr == HRT_FAIL_VEC
    }

    /// The exception class, ESR bits 31:26.
    pub fn ec(&self) -> u8 {
        ((self.esr >> 26) & 0x3f) as u8
    }

    /// What the exception class means (ARM ARM, ESR_ELx.EC).
    pub fn ec_name(&self) -> &'static str {
        ec_name(self.ec())
    }

    /// Whether the exception class sets FAR_ELx (aborts, PC alignment, watchpoints); for the
    /// others its value is unknown (whatever an earlier exception left).
    pub fn far_is_valid(&self) -> bool {
        !self.in_hrt() && matches!(self.ec(), 0x20 | 0x21 | 0x22 | 0x24 | 0x25 | 0x34 | 0x35)
    }
}

/// The name of exception class `ec` (ESR_ELx.EC).
pub fn ec_name(ec: u8) -> &'static str {
    match ec {
        0x00 => "unknown reason (e.g. an undefined instruction)",
        0x01 => "WFI or WFE",
        0x07 => "SIMD or floating-point access",
        0x0d => "branch target exception",
        0x0e => "illegal execution state",
        0x15 => "SVC",
        0x18 => "system register or instruction access",
        0x19 => "SVE access",
        0x1c => "pointer authentication failure",
        0x20 => "instruction abort from a lower exception level",
        0x21 => "instruction abort",
        0x22 => "PC alignment fault",
        0x24 => "data abort from a lower exception level",
        0x25 => "data abort",
        0x26 => "SP alignment fault",
        0x2c => "floating-point exception",
        0x2f => "SError",
        0x30 | 0x31 => "breakpoint",
        0x32 | 0x33 => "software step",
        0x34 | 0x35 => "watchpoint",
        0x3c => "BRK instruction",
        _ => "other exception class",
    }
}

impl fmt::Display for RosException {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.in_hrt() {
            write!(f, "an exception in the HRT itself")?;
        } else {
            write!(f, "EC {:#x} ({}), ESR {:#x}", self.ec(), self.ec_name(), self.esr)?;
        }
        if let Some(pc) = self.pc {
            write!(f, " at pc {pc:#x}")?;
        }
        match self.far {
            Some(far) if self.far_is_valid() => write!(f, ", FAR {far:#x}")?,
            _ => {}
        }
        Ok(())
    }
}

/// What handling an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handled {
    /// No event (`ROS_NONE`, `ROS_DONE`) or one this library does not know: nothing done.
    Nothing,
    /// A page fault made good: the page is present (and writable, for a write) in this process.
    PageFault,
    /// A page fault this process cannot resolve (the address is not mapped, or not with the
    /// access the fault needs): completed with `-errno`, nothing touched.
    UnresolvedPageFault { errno: i32 },
    /// A system call, made here; `result` is its raw return value (negative errno included).
    Syscall { result: u64 },
    /// The HRT thread running the process's code exited.
    ThreadExit,
    /// An exception in the process's code as the HRT ran it (or in the HRT itself).
    HrtException(RosException),
}

impl Handled {
    /// What completes the event (`EventComplete`'s x2); `None` for no event.
    pub fn result(&self) -> Option<u64> {
        match *self {
            Handled::Nothing => None,
            Handled::PageFault | Handled::ThreadExit | Handled::HrtException(_) => Some(0),
            Handled::UnresolvedPageFault { errno } => Some(-i64::from(errno) as u64),
            Handled::Syscall { result } => Some(result),
        }
    }
}

/// The page size of this kernel.
fn page_size() -> u64 {
    super::pinned::page_size() as u64
}

/// Whether this kernel knows `MADV_POPULATE_READ` / `MADV_POPULATE_WRITE` (Linux 5.14).
fn populate_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        let probe = 0u64;
        let page = std::hint::black_box(&probe as *const u64 as u64) & !(page_size() - 1);
        // SAFETY: populating the (mapped, readable) page of a local changes nothing.
        unsafe { libc::madvise(page as *mut libc::c_void, page_size() as usize, libc::MADV_POPULATE_READ) == 0 }
    })
}

/// Makes the page holding `far` present in this process (the work of a `ROS_PAGE_FAULT`): for
/// a write, present and writable (copy-on-write broken, as a write would), without changing a
/// byte.
///
/// With `MADV_POPULATE_WRITE` / `MADV_POPULATE_READ` the kernel faults the page in as a write or
/// a read would, touching nothing, and answers an error for an address that is not mapped or
/// not with that access (`Err(errno)`: the fault cannot be resolved here; a touch would kill the
/// process with SIGSEGV). On a kernel without them the page is touched: a volatile read, or for
/// a write an atomic add of 0 to the byte (a write access that leaves its value, even with other
/// threads writing it).
///
/// # Safety
///
/// Without `MADV_POPULATE_*`, `far` is accessed: it must be mapped with the access the event
/// names (the HRT forwards faults of this process's code, which is how it can be wrong, so a
/// kernel with `MADV_POPULATE_*` is what makes this safe).
pub unsafe fn resolve_page_fault(far: u64, action: u32) -> Result<(), i32> {
    // User addresses ignore the top byte (TCR_EL1.TBI0): FAR may hold a tag there.
    let far = far & 0x00ff_ffff_ffff_ffff;
    let write = action == PageFaultAction::Write as u32;
    let page = far & !(page_size() - 1);
    if populate_supported() {
        let advice = if write { libc::MADV_POPULATE_WRITE } else { libc::MADV_POPULATE_READ };
        // SAFETY: populating changes no contents, and fails cleanly for a bad address.
        let rc = unsafe { libc::madvise(page as *mut libc::c_void, page_size() as usize, advice) };
        if rc == 0 {
            return Ok(());
        }
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EFAULT);
        if errno != libc::EINTR {
            return Err(errno);
        }
        // Interrupted by a signal: the touch below does it.
    }
    // SAFETY: the caller vouches for the address (see above).
    unsafe { touch(far, write) };
    Ok(())
}

/// Touches the byte at `far`: a volatile read, or an atomic add of 0 (a write that keeps the
/// value).
///
/// # Safety
///
/// `far` must be mapped readable (and writable if `write`).
pub unsafe fn touch(far: u64, write: bool) {
    if write {
        // SAFETY: the caller's byte; an atomic access of one byte needs no alignment.
        let byte = unsafe { std::sync::atomic::AtomicU8::from_ptr(far as *mut u8) };
        byte.fetch_add(0, Ordering::Relaxed);
    } else {
        // SAFETY: as above.
        unsafe { (far as *const u8).read_volatile() };
    }
}

/// arm64 system call numbers the library treats specially.
mod nr {
    pub const EXIT: u64 = 93;
    pub const EXIT_GROUP: u64 = 94;
    pub const RT_SIGRETURN: u64 = 139;
    pub const CLONE: u64 = 220;
    pub const CLONE3: u64 = 435;
}

/// Makes system call `args[0]` with x0..x5 = `args[1..7]` in this process and returns the raw
/// x0 (a negative errno for a failure), as the `svc` would have in the ROS.
///
/// A few calls cannot be made on behalf of other code: `clone` / `clone3` (the child would
/// continue in this library's wait loop, not in the code the HRT runs) and `rt_sigreturn` (no
/// signal frame of ours) answer `-ENOSYS`; `exit` (of the thread, which here is the thread
/// waiting for the HRT) ends the whole process, as `exit_group` does.
///
/// # Safety
///
/// Any system call: the event must come from the HRT running this process's code.
pub unsafe fn forward_syscall(args: [u64; 8]) -> u64 {
    let number = match args[0] {
        nr::CLONE | nr::CLONE3 | nr::RT_SIGRETURN if cfg!(target_arch = "aarch64") => {
            return -i64::from(libc::ENOSYS) as u64;
        }
        nr::EXIT if cfg!(target_arch = "aarch64") => nr::EXIT_GROUP,
        number => number,
    };
    #[cfg(target_arch = "aarch64")]
    {
        let ret: u64;
        // SAFETY: the caller vouches for the system call. `svc #0` clobbers x0 only (the
        // result) on arm64 Linux; the flags and memory may change.
        unsafe {
            core::arch::asm!(
                "svc #0",
                in("x8") number,
                inlateout("x0") args[1] => ret,
                in("x1") args[2],
                in("x2") args[3],
                in("x3") args[4],
                in("x4") args[5],
                in("x5") args[6],
                options(nostack),
            );
        }
        ret
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        // Host builds (tests): the host's numbering, through libc, which turns -errno into -1
        // and errno.
        // SAFETY: as above.
        let rc = unsafe {
            libc::syscall(
                number as libc::c_long,
                args[1] as libc::c_long,
                args[2] as libc::c_long,
                args[3] as libc::c_long,
                args[4] as libc::c_long,
                args[5] as libc::c_long,
                args[6] as libc::c_long,
            )
        };
        let raw = if rc == -1 { -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(1)) } else { rc };
        raw as u64
    }
}

/// Does the work `event` asks for in this process, without completing it.
///
/// # Safety
///
/// A system-call event makes any system call, and a page-fault event may touch the address it
/// names (see [`resolve_page_fault`]): the event must come from the HRT running this process's
/// code.
pub unsafe fn perform(event: &RosEvent) -> Handled {
    match event.event_type {
        t if t == RosEventType::PageFault as u32 => {
            // SAFETY: the variant the event type names.
            let pf = unsafe { event.payload.page_fault };
            // SAFETY: passed on from the caller.
            match unsafe { resolve_page_fault(pf.far, pf.action) } {
                Ok(()) => Handled::PageFault,
                Err(errno) => Handled::UnresolvedPageFault { errno },
            }
        }
        t if t == RosEventType::Syscall as u32 => {
            // SAFETY: the variant the event type names.
            let args = unsafe { event.payload.syscall };
            // SAFETY: passed on from the caller.
            Handled::Syscall { result: unsafe { forward_syscall(args) } }
        }
        t if t == RosEventType::HrtException as u32 => {
            // SAFETY: the variant the event type names.
            let e = unsafe { event.payload.exception };
            Handled::HrtException(RosException::from_event(e.pc, e.vector, e.far))
        }
        t if t == RosEventType::HrtThreadExit as u32 => Handled::ThreadExit,
        _ => Handled::Nothing,
    }
}

/// How many events of each kind a handle serviced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Page faults made good.
    pub page_faults: u64,
    /// Page faults answered with an error (address not mapped with that access).
    pub unresolved_page_faults: u64,
    pub syscalls: u64,
    pub exceptions: u64,
    pub thread_exits: u64,
}

impl EventCounts {
    /// Every event serviced.
    pub fn total(&self) -> u64 {
        self.page_faults + self.unresolved_page_faults + self.syscalls + self.exceptions + self.thread_exits
    }

    /// The events counted since `earlier` (a previous snapshot).
    pub fn since(&self, earlier: &EventCounts) -> EventCounts {
        EventCounts {
            page_faults: self.page_faults.wrapping_sub(earlier.page_faults),
            unresolved_page_faults: self.unresolved_page_faults.wrapping_sub(earlier.unresolved_page_faults),
            syscalls: self.syscalls.wrapping_sub(earlier.syscalls),
            exceptions: self.exceptions.wrapping_sub(earlier.exceptions),
            thread_exits: self.thread_exits.wrapping_sub(earlier.thread_exits),
        }
    }
}

impl fmt::Display for EventCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} page fault(s), {} unresolved, {} system call(s), {} exception(s)",
            self.page_faults, self.unresolved_page_faults, self.syscalls, self.exceptions
        )?;
        if self.thread_exits != 0 {
            write!(f, ", {} thread exit(s)", self.thread_exits)?;
        }
        Ok(())
    }
}

/// A handle's event bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct EventState {
    /// Set when this handle started a transaction, cleared when a wait sees the state Idle.
    in_flight: AtomicBool,
    page_faults: AtomicU64,
    unresolved_page_faults: AtomicU64,
    syscalls: AtomicU64,
    exceptions: AtomicU64,
    thread_exits: AtomicU64,
    /// The last exception event, until taken.
    last_exception: Mutex<Option<RosException>>,
}

impl EventState {
    pub(crate) fn set_in_flight(&self, in_flight: bool) {
        self.in_flight.store(in_flight, Ordering::SeqCst);
    }

    pub(crate) fn in_flight(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst)
    }

    fn count(&self, handled: &Handled) {
        let counter = match handled {
            Handled::Nothing => return,
            Handled::PageFault => &self.page_faults,
            Handled::UnresolvedPageFault { .. } => &self.unresolved_page_faults,
            Handled::Syscall { .. } => &self.syscalls,
            Handled::ThreadExit => &self.thread_exits,
            Handled::HrtException(e) => {
                *self.last_exception.lock().unwrap_or_else(PoisonError::into_inner) = Some(*e);
                &self.exceptions
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn counts(&self) -> EventCounts {
        EventCounts {
            page_faults: self.page_faults.load(Ordering::Relaxed),
            unresolved_page_faults: self.unresolved_page_faults.load(Ordering::Relaxed),
            syscalls: self.syscalls.load(Ordering::Relaxed),
            exceptions: self.exceptions.load(Ordering::Relaxed),
            thread_exits: self.thread_exits.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn take_exception(&self) -> Option<RosException> {
        self.last_exception.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Whether an accepted `sub_op` starts a transaction that ends when the state is Idle again
/// (and during which the HRT may forward events).
pub(crate) fn starts_transaction(sub_op: SubOp) -> bool {
    matches!(
        sub_op,
        SubOp::Invoke
            | SubOp::ParallelInvoke
            | SubOp::SyncSetup
            | SubOp::SyncTeardown
            | SubOp::Merge
            | SubOp::Unmerge
            | SubOp::MirrorTls
            | SubOp::UnmirrorTls
    )
}

impl Hvm {
    /// Handles `event` ([`perform`]), counts it and completes it (0x1f) with its result (0 for
    /// an HRT exception, which is recorded for [`Hvm::take_exception`]).
    ///
    /// # Safety
    ///
    /// As for [`perform`].
    pub unsafe fn handle_ros_event(&self, event: &RosEvent) -> Result<Handled, HvmError> {
        // SAFETY: passed on to the caller.
        let handled = unsafe { perform(event) };
        self.events.count(&handled);
        if let Some(result) = handled.result() {
            self.event_complete(result)?;
        }
        Ok(handled)
    }

    /// One state query with an event buffer (0xf): when this handle has a transaction in flight
    /// and the HRT forwarded an event, services it ([`Hvm::handle_ros_event`]). Returns the
    /// state seen; one that is Idle ends "in flight" (and no event is serviced then: nothing of
    /// ours runs).
    pub fn poll(&self) -> Result<HvmStatus, HvmError> {
        let seen = self.state_and_event()?;
        if seen.status.trans == TransState::Idle {
            self.events.set_in_flight(false);
        } else if self.events.in_flight() && is_forwarded(&seen.event) {
            // SAFETY: this handle started the transaction in flight (one at a time, VM-wide), so
            // the HRT runs this process's code: the event is this process's work, which that
            // code could do itself.
            unsafe { self.handle_ros_event(&seen.event) }?;
        }
        Ok(seen.status)
    }

    /// Whether this handle has a transaction in flight (so its waits service events).
    pub fn transaction_in_flight(&self) -> bool {
        self.events.in_flight()
    }

    /// The events this handle serviced so far.
    pub fn event_counts(&self) -> EventCounts {
        self.events.counts()
    }

    /// The last HRT exception an event reported (taken: the next call answers `None`).
    pub fn take_exception(&self) -> Option<RosException> {
        self.events.take_exception()
    }
}

/// Whether `event` waits for the process (a page fault, a system call, an exception, a thread
/// exit): not `ROS_NONE`, not `ROS_DONE` (completed, waiting for the HRT).
pub fn is_forwarded(event: &RosEvent) -> bool {
    [RosEventType::PageFault, RosEventType::Syscall, RosEventType::HrtException, RosEventType::HrtThreadExit]
        .iter()
        .any(|&t| event.event_type == t as u32)
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

    fn fault(far: u64, action: PageFaultAction) -> RosEvent {
        let pf = PageFaultEvent { pc: 0x1234, far, action: action as u32 };
        event(RosEventType::PageFault, RosEventPayload { page_fault: pf })
    }

    /// A private anonymous mapping of `pages` pages nobody touched.
    struct Untouched {
        base: *mut u8,
        len: usize,
    }

    impl Untouched {
        fn new(pages: usize, prot: libc::c_int) -> Self {
            let len = pages * page_size() as usize;
            // SAFETY: a fresh mapping; checked below.
            let base =
                unsafe { libc::mmap(std::ptr::null_mut(), len, prot, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
            assert_ne!(base, libc::MAP_FAILED);
            Untouched { base: base.cast(), len }
        }

        /// Pages present (mincore).
        fn resident(&self) -> usize {
            let mut vec = vec![0u8; self.len / page_size() as usize];
            // SAFETY: our mapping, a vector of one byte per page.
            assert_eq!(unsafe { libc::mincore(self.base.cast(), self.len, vec.as_mut_ptr()) }, 0);
            vec.iter().filter(|&&b| b & 1 != 0).count()
        }
    }

    impl Drop for Untouched {
        fn drop(&mut self) {
            // SAFETY: our mapping.
            unsafe { libc::munmap(self.base.cast(), self.len) };
        }
    }

    #[test]
    fn a_page_fault_touches_the_byte_and_leaves_it_unchanged() {
        let mut byte = 0x5au8;
        let far = &mut byte as *mut u8 as u64;
        for action in [PageFaultAction::Read, PageFaultAction::Write, PageFaultAction::Exec] {
            // SAFETY: the address is a local byte.
            assert_eq!(unsafe { perform(&fault(far, action)) }, Handled::PageFault);
        }
        assert_eq!(byte, 0x5a);
        // The fallback touch, too.
        // SAFETY: as above.
        unsafe {
            touch(far, true);
            touch(far, false);
        }
        assert_eq!(byte, 0x5a);
    }

    #[test]
    fn a_write_fault_makes_an_untouched_page_present_and_private_without_changing_it() {
        assert!(populate_supported(), "the host kernel has MADV_POPULATE_* (5.14)");
        let map = Untouched::new(4, libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(map.resident(), 0);
        // SAFETY: our mapping.
        let page1 = unsafe { map.base.add(page_size() as usize + 123) } as u64;
        // SAFETY: our mapping.
        assert_eq!(unsafe { perform(&fault(page1, PageFaultAction::Read)) }, Handled::PageFault);
        assert_eq!(map.resident(), 1, "a read fault maps one page");
        // SAFETY: our mapping.
        let page2 = unsafe { map.base.add(2 * page_size() as usize) } as u64;
        // SAFETY: our mapping.
        assert_eq!(
            unsafe { perform(&fault(page2 | 0x5a00_0000_0000_0000, PageFaultAction::Write)) },
            Handled::PageFault
        );
        assert_eq!(map.resident(), 2, "the tag byte is ignored");
        // SAFETY: our mapping, now present.
        assert_eq!(unsafe { (page2 as *const u8).read_volatile() }, 0);
    }

    #[test]
    fn a_fault_this_process_cannot_resolve_is_answered_not_touched() {
        let read_only = Untouched::new(1, libc::PROT_READ);
        let none = Untouched::new(1, libc::PROT_NONE);
        let gone = Untouched::new(1, libc::PROT_READ | libc::PROT_WRITE);
        let gone_at = gone.base as u64;
        drop(gone);
        for (what, far, action) in [
            ("write to a read-only page", read_only.base as u64, PageFaultAction::Write),
            ("read of a PROT_NONE page", none.base as u64, PageFaultAction::Read),
            ("read of an unmapped page", gone_at, PageFaultAction::Read),
            ("page 0", 8, PageFaultAction::Exec),
        ] {
            // SAFETY: with MADV_POPULATE_* nothing is touched (checked by not dying).
            let handled = unsafe { perform(&fault(far, action)) };
            assert!(matches!(handled, Handled::UnresolvedPageFault { .. }), "{what}: {handled:?}");
            let result = handled.result().unwrap() as i64;
            assert!((-4095..0).contains(&result), "{what}: -errno, got {result}");
        }
        // SAFETY: a read-only page may be read.
        assert_eq!(unsafe { perform(&fault(read_only.base as u64, PageFaultAction::Read)) }, Handled::PageFault);
    }

    #[test]
    fn a_system_call_runs_here_and_returns_raw_results() {
        let e =
            event(RosEventType::Syscall, RosEventPayload { syscall: [libc::SYS_getpid as u64, 0, 0, 0, 0, 0, 0, 0] });
        // SAFETY: getpid has no effect.
        let handled = unsafe { perform(&e) };
        assert_eq!(handled, Handled::Syscall { result: std::process::id() as u64 });
        assert_eq!(handled.result(), Some(std::process::id() as u64));
        // close(-1) fails with EBADF: the HRT gets -EBADF, as from a raw svc.
        let e = event(
            RosEventType::Syscall,
            RosEventPayload { syscall: [libc::SYS_close as u64, u64::MAX, 0, 0, 0, 0, 0, 0] },
        );
        // SAFETY: closing an invalid descriptor has no effect.
        assert_eq!(unsafe { perform(&e) }, Handled::Syscall { result: -i64::from(libc::EBADF) as u64 });
    }

    #[test]
    fn exceptions_thread_exits_and_unknown_events() {
        let ex = ExceptionEvent { pc: 0x40_0000, vector: 0x0200_0000, far: 0x1000 };
        let e = event(RosEventType::HrtException, RosEventPayload { exception: ex });
        // SAFETY: no memory or system call involved.
        let handled = unsafe { perform(&e) };
        let expected = RosException { esr: 0x0200_0000, pc: Some(0x40_0000), far: Some(0x1000) };
        assert_eq!(handled, Handled::HrtException(expected));
        assert_eq!(handled.result(), Some(0), "an exception is acknowledged with 0");
        assert_eq!(expected.ec(), 0);
        assert!(!expected.in_hrt());
        assert!(!expected.far_is_valid());
        assert_eq!(
            expected.to_string(),
            "EC 0x0 (unknown reason (e.g. an undefined instruction)), ESR 0x2000000 at pc 0x400000",
            "no FAR for an undefined instruction"
        );
        let in_hrt = RosException { esr: HRT_FAIL_VEC, pc: None, far: None };
        assert!(in_hrt.in_hrt());
        assert_eq!(in_hrt.to_string(), "an exception in the HRT itself");
        let abort = RosException { esr: 0x9200_0046, pc: Some(0x10), far: Some(0x100) };
        assert_eq!((abort.ec(), abort.ec_name()), (0x24, "data abort from a lower exception level"));
        assert_eq!(
            abort.to_string(),
            "EC 0x24 (data abort from a lower exception level), ESR 0x92000046 at pc 0x10, FAR 0x100"
        );
        let e = event(RosEventType::HrtThreadExit, RosEventPayload { thread_exit_id: 7 });
        // SAFETY: as above.
        assert_eq!(unsafe { perform(&e) }, Handled::ThreadExit);
        // SAFETY: as above.
        assert_eq!(unsafe { perform(&RosEvent::none()) }, Handled::Nothing);
        assert_eq!(Handled::Nothing.result(), None);
        let mut odd = RosEvent::none();
        odd.event_type = 99;
        // SAFETY: as above.
        assert_eq!(unsafe { perform(&odd) }, Handled::Nothing);
        assert!(!is_forwarded(&odd));
        odd.event_type = RosEventType::Done as u32;
        assert!(!is_forwarded(&odd), "a completed event waits for the HRT, not for us");
    }

    #[test]
    fn counts_add_up_and_subtract() {
        let state = EventState::default();
        for handled in [
            Handled::PageFault,
            Handled::PageFault,
            Handled::Syscall { result: 0 },
            Handled::UnresolvedPageFault { errno: 14 },
            Handled::Nothing,
        ] {
            state.count(&handled);
        }
        let before = state.counts();
        assert_eq!(before.total(), 4);
        state.count(&Handled::HrtException(RosException { esr: 1, pc: None, far: None }));
        let after = state.counts();
        assert_eq!(after.since(&before), EventCounts { exceptions: 1, ..EventCounts::default() });
        assert_eq!(state.take_exception().map(|e| e.esr), Some(1));
        assert_eq!(state.take_exception(), None);
        assert_eq!(after.to_string(), "2 page fault(s), 1 unresolved, 1 system call(s), 1 exception(s)");
    }
}
