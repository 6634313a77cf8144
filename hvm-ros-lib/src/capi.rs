//! The C API (`include/hvm_ros.h`, `libhvm_ros.a`): every function of Palacios'
//! `v3_hvm_ros_user.h` with its name, signature and meaning, on top of [`crate::ros`], plus a few
//! `hvm_ros_*` functions in the style of the Rust API.
//!
//! Like Palacios, functions return 0 or -1. On -1 they also set `errno` (EBUSY: another
//! transaction in flight or the HRT not ready; ENOSYS: not implemented by this hypervisor yet;
//! EFAULT: bad address; ETIMEDOUT; ENODEV: not an HVM; EACCES: not root; EIO: anything else),
//! remember the precise code for [`hvm_ros_last_error`] and write a line to the log
//! (`v3_hvm_ros_user_set_log`; standard error by default).
//!
//! Differences from Palacios, all on purpose:
//! - waits have a timeout ([`hvm_ros_set_timeout_ms`], default 10 s) instead of spinning forever;
//!   a buffer the HRT may still use after a timeout is kept, never freed;
//! - `v3_hvm_ros_invoke_hrt_async` copies the caller's buffer into a pinned page (the
//!   hypervisor translates the address once, and the HRT uses the page until the call is over):
//!   a buffer starting with `HVM_INVOCATION_MAGIC` is a `struct hvm_invocation`, copied back
//!   with its results when the call is over; any other buffer is a NUL-terminated string
//!   (at most one page) the HRT prints;
//! - synchronous calls need no merged address space: the channel is a pinned page of the
//!   library, and `v3_hvm_ros_invoke_hrt_sync(buf, ...)` runs `buf` if it is a
//!   `struct hvm_invocation`, and otherwise (Palacios' test passes a string) makes a call the
//!   HRT only completes; its `handle_ros_events` really polls for events (Palacios' test of it
//!   was dead code, palacios-hvm.md §8 item 11);
//! - `mirror_gdt` / `unmirror_gdt` mirror the TLS registers (TPIDR_EL0, TPIDRRO_EL0) on AArch64
//!   (`cpu` is ignored: the HRT runs the process's code with them on any core);
//! - every wait services the ROS events the HRT forwards (Palacios' merge wait did not), but only
//!   while the library has a transaction of its own in flight;
//! - an HRT exception event is completed with 0 (Palacios passed an uninitialised value, §8 item
//!   12) and fails the call it happened in (a `CALL_ROS`, [`hvm_ros_call_ros`]) instead of ending
//!   the process; a page fault the process cannot resolve (address not mapped with that access)
//!   is completed with -errno instead of killing the process with SIGSEGV.

use std::prelude::rust_2021::*;

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::fmt;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use crate::abi::invoke::Invocation;
use crate::abi::{HvmError, RosEvent, RosEventType, SubOp, TransState};
use crate::checksum::fletcher64_slice;
use crate::ros::events::{self, Handled, RosException};
use crate::ros::merged::current_tls;
use crate::ros::pinned::{check_string_buffer, page_size, PinnedPage};
use crate::ros::{Hvm, HvmOpenError, HvmStatus, InvokeError, SyncSession};
use crate::status::{self, invoke_sub_op, starts_with_invocation_magic, CallError};

/// Library error codes of [`hvm_ros_last_error`] (the hypervisor's are -1..-99).
pub mod lib_error {
    /// A wait timed out.
    pub const TIMEOUT: i64 = -100;
    /// No HVM: not opened, not an HVM, not root (see the log line).
    pub const NO_HVM: i64 = -101;
    /// A buffer could not be allocated or locked.
    pub const PIN: i64 = -102;
    /// The call completed but the HRT did not run it on the cores it should have (reset?).
    pub const NOT_DONE: i64 = -103;
    /// A bad argument (null pointer, string too long, ...).
    pub const ARGUMENT: i64 = -104;
    /// The transaction ended unexpectedly (the HRT was reset meanwhile).
    pub const LOST: i64 = -105;
    /// No synchronous session (or one is already open, for `v3_hvm_ros_synchronize`).
    pub const SYNC_SESSION: i64 = -106;
    /// A function of the process run in the HRT took an exception ([`super::hvm_ros_last_exception`]).
    pub const EXCEPTION: i64 = -107;
}

/// `reset_type` (Palacios' enum order).
const RESET_HRT: c_int = 0;
const RESET_ROS: c_int = 1;
const RESET_BOTH: c_int = 2;

/// Where log lines go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Log {
    Stderr,
    /// A C `FILE *`.
    File(usize),
    Off,
}

static LOG: Mutex<Log> = Mutex::new(Log::Stderr);
static HVM: OnceLock<Hvm> = OnceLock::new();
static OPEN: Mutex<()> = Mutex::new(());
static TIMEOUT_NS: AtomicU64 = AtomicU64::new(10_000_000_000);
/// The synchronous session of `v3_hvm_ros_synchronize`.
static SYNC: Mutex<Option<SyncSession<'static>>> = Mutex::new(None);
/// The pinned page of `v3_hvm_ros_invoke_hrt_async`, reused call after call.
static ASYNC_PAGE: Mutex<Option<PinnedPage>> = Mutex::new(None);
/// The call `v3_hvm_ros_invoke_hrt_async_nowait` left in flight.
static PENDING: Mutex<Option<Pending>> = Mutex::new(None);

thread_local! {
    static LAST_ERROR: Cell<i64> = const { Cell::new(0) };
    /// The exception behind this thread's last `HVM_ROS_ERR_EXCEPTION` failure.
    static LAST_EXCEPTION: Cell<Option<RosException>> = const { Cell::new(None) };
}

struct Pending {
    page: PinnedPage,
    /// The caller's `struct hvm_invocation` to copy the results to (0 for a string).
    copy_back: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn timeout() -> Duration {
    Duration::from_nanos(TIMEOUT_NS.load(Ordering::Relaxed))
}

/// One line to the log.
fn log(args: fmt::Arguments<'_>) {
    match *lock(&LOG) {
        Log::Off => {}
        Log::Stderr => std::eprintln!("hvm_ros: {args}"),
        Log::File(file) => {
            let line = std::format!("hvm_ros: {args}\n").replace('\0', " ");
            if let Ok(line) = std::ffi::CString::new(line) {
                // SAFETY: the caller of v3_hvm_ros_user_set_log gave us an open FILE; the line
                // is NUL-terminated.
                unsafe {
                    libc::fputs(line.as_ptr(), file as *mut libc::FILE);
                    libc::fflush(file as *mut libc::FILE);
                }
            }
        }
    }
}

fn set_errno(value: c_int) {
    // SAFETY: __errno_location returns this thread's errno, always valid.
    unsafe { *libc::__errno_location() = value };
}

/// The errno for a hypervisor error code.
pub fn errno_for(e: HvmError) -> c_int {
    #[allow(unreachable_patterns)]
    match e {
        HvmError::WrongState | HvmError::Busy => libc::EBUSY,
        HvmError::NotImplemented | HvmError::UnknownSubOp => libc::ENOSYS,
        HvmError::BadAddress => libc::EFAULT,
        HvmError::InvalidArgument => libc::EINVAL,
        HvmError::WrongPartition | HvmError::WrongLevel => libc::EPERM,
        HvmError::NotHvm => libc::ENODEV,
        _ => libc::EIO,
    }
}

/// [`hvm_ros_last_error`]'s code and the errno for `e`.
pub fn codes_for(e: &InvokeError) -> (i64, c_int) {
    match e {
        InvokeError::Hvm(e) => (e.code() as i64, errno_for(*e)),
        InvokeError::Timeout { .. } => (lib_error::TIMEOUT, libc::ETIMEDOUT),
        InvokeError::Lost { .. } => (lib_error::LOST, libc::EIO),
        InvokeError::Call(CallError::UnexpectedDone { .. }) => (lib_error::NOT_DONE, libc::EIO),
        InvokeError::Call(CallError::Failed { status, .. }) => {
            (*status, HvmError::from_code(*status as u64).map_or(libc::EIO, errno_for))
        }
        InvokeError::Pin(io) => (lib_error::PIN, io.raw_os_error().unwrap_or(libc::ENOMEM)),
        InvokeError::String(_) => (lib_error::ARGUMENT, libc::EINVAL),
        InvokeError::SessionClosed => (lib_error::SYNC_SESSION, libc::EINVAL),
        InvokeError::Exception { .. } => (lib_error::EXCEPTION, libc::EIO),
        InvokeError::Io(io) => (HvmError::Failed.code() as i64, io.raw_os_error().unwrap_or(libc::EIO)),
    }
}

/// Records a failure (errno, last error, log line) and returns -1.
fn fail(code: i64, errno: c_int, args: fmt::Arguments<'_>) -> c_int {
    LAST_ERROR.with(|last| last.set(code));
    log(args);
    set_errno(errno);
    -1
}

fn fail_invoke(what: &str, e: &InvokeError) -> c_int {
    if let Some(exception) = e.exception() {
        LAST_EXCEPTION.with(|last| last.set(Some(exception)));
    }
    let (code, errno) = codes_for(e);
    fail(code, errno, format_args!("{what}: {e}"))
}

fn fail_hvm(what: &str, e: HvmError) -> c_int {
    fail_invoke(what, &InvokeError::Hvm(e))
}

fn succeed() -> c_int {
    LAST_ERROR.with(|last| last.set(0));
    0
}

/// The process's HVM, opened on first use.
fn hvm(what: &str) -> Result<&'static Hvm, c_int> {
    if let Some(hvm) = HVM.get() {
        return Ok(hvm);
    }
    let _guard = lock(&OPEN);
    if let Some(hvm) = HVM.get() {
        return Ok(hvm);
    }
    match Hvm::open() {
        Ok(hvm) => {
            hvm.set_timeout(timeout());
            Ok(HVM.get_or_init(|| hvm))
        }
        Err(e) => Err(fail(lib_error::NO_HVM, open_errno(&e), format_args!("{what}: {e}"))),
    }
}

/// The errno for a failed open.
fn open_errno(e: &HvmOpenError) -> c_int {
    match e {
        HvmOpenError::NotPermitted => libc::EACCES,
        HvmOpenError::NotAnHvm | HvmOpenError::UnsupportedArch => libc::ENODEV,
        HvmOpenError::Io(io) => io.raw_os_error().unwrap_or(libc::EIO),
        _ => libc::EIO,
    }
}

/// Handles a ROS event (Palacios' `v3_hvm_handle_ros_event`): does the work, counts it and
/// completes it; an exception is recorded (and logged). Returns the handling.
fn service_event(hvm: &Hvm, event: &RosEvent) -> Result<Handled, HvmError> {
    // SAFETY: the event comes from the hypervisor on behalf of the HRT running this process's
    // code (which can touch its memory and make its system calls anyway).
    let handled = unsafe { hvm.handle_ros_event(event) }?;
    if let Handled::HrtException(e) = handled {
        LAST_EXCEPTION.with(|last| last.set(Some(e)));
        log(format_args!("HRT exception in ROS code: {e}"));
    }
    Ok(handled)
}

/// Polls 0xf until `done`, servicing the ROS events of the library's transaction meanwhile
/// (Palacios' `wait_for_completion`).
fn wait(hvm: &Hvm, what: &'static str, done: impl Fn(HvmStatus) -> bool) -> Result<HvmStatus, InvokeError> {
    hvm.wait_until(what, timeout(), done)
}

fn idle(s: HvmStatus) -> bool {
    s.trans == TransState::Idle
}

/// Completes the `_nowait` call left in flight if the state says it is over.
fn reap(hvm: &Hvm) {
    let mut pending = lock(&PENDING);
    let Some(p) = pending.as_ref() else { return };
    if !matches!(hvm.state(), Ok(s) if idle(s)) {
        return;
    }
    fence(Ordering::Acquire);
    if p.copy_back != 0 {
        // SAFETY: the pinned page holds an Invocation; the caller of the `_nowait` call keeps
        // its buffer alive until the call is over (Palacios' rule), which it now is.
        unsafe {
            let done = (p.page.as_ptr() as *const Invocation).read_volatile();
            (p.copy_back as *mut Invocation).write_unaligned(done);
        }
    }
    *pending = None;
}

/// A buffer of `v3_hvm_ros_invoke_hrt_async`: a `struct hvm_invocation` or a string.
enum AsyncBuffer {
    Invocation(Invocation),
    String(Vec<u8>),
}

/// Reads the caller's buffer.
///
/// # Safety
///
/// `buf` is a `struct hvm_invocation` or a NUL-terminated string.
unsafe fn read_async_buffer(buf: *const c_void) -> Result<AsyncBuffer, c_int> {
    let bytes = buf.cast::<u8>();
    // SAFETY: no byte after the first that differs from the magic is read, so never past a
    // string's NUL (the magic has none).
    if starts_with_invocation_magic(|i| unsafe { bytes.add(i).read() }) {
        // SAFETY: the buffer starts with the magic: it is a struct hvm_invocation.
        return Ok(AsyncBuffer::Invocation(unsafe { buf.cast::<Invocation>().read_unaligned() }));
    }
    // SAFETY: not an invocation: a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(buf.cast::<c_char>()) };
    if let Err(e) = check_string_buffer(s, page_size()) {
        return Err(fail(lib_error::ARGUMENT, libc::EINVAL, format_args!("invoke: {e}")));
    }
    Ok(AsyncBuffer::String(s.to_bytes_with_nul().to_vec()))
}

fn write_buffer(page: &mut PinnedPage, buffer: &AsyncBuffer) {
    match buffer {
        AsyncBuffer::Invocation(inv) => {
            // SAFETY: Invocation is plain integers; viewing it as bytes is fine.
            let bytes = unsafe {
                std::slice::from_raw_parts((inv as *const Invocation).cast::<u8>(), core::mem::size_of::<Invocation>())
            };
            page.write_bytes(0, bytes);
        }
        AsyncBuffer::String(s) => page.write_bytes(0, s),
    }
}

/// Checks that a completed invocation ran where it should have (0x20: core 0 alone; 0x21: the
/// first n cores). The functions' own statuses are the caller's to read.
fn check_done(inv: &Invocation, parallel: bool) -> Result<(), CallError> {
    let done = inv.done;
    let ok =
        if parallel { done != 0 && done & done.wrapping_add(1) == 0 && done <= status::ALL_SLOTS } else { done == 1 };
    if ok {
        Ok(())
    } else {
        Err(CallError::UnexpectedDone { done, expected: (!parallel).then_some(1) })
    }
}

fn args_from(args: *const u64) -> [u64; 6] {
    let mut out = [0u64; 6];
    if !args.is_null() {
        // SAFETY: the caller passes 6 arguments (documented in the header).
        unsafe { std::ptr::copy_nonoverlapping(args, out.as_mut_ptr(), 6) };
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Palacios' API (v3_hvm_ros_user.h)

/// Opens the HVM (the doorbell) and logs to standard error. Returns -1 (with a log line) when
/// this is no HVM or the caller may not open /dev/mem.
#[no_mangle]
pub extern "C" fn v3_hvm_ros_user_init() -> c_int {
    *lock(&LOG) = Log::Stderr;
    match hvm("v3_hvm_ros_user_init") {
        Ok(_) => succeed(),
        Err(rc) => rc,
    }
}

/// Ends a synchronous session left open (best effort) and stops logging.
#[no_mangle]
pub extern "C" fn v3_hvm_ros_user_deinit() -> c_int {
    if let Some(session) = lock(&SYNC).take() {
        if let Err(e) = session.desynchronize() {
            log(format_args!("v3_hvm_ros_user_deinit: desynchronize: {e}"));
        }
    }
    if let Some(hvm) = HVM.get() {
        reap(hvm);
    }
    *lock(&LOG) = Log::Off;
    succeed()
}

/// Sends log lines to `log` (a `FILE *`; NULL: no log lines).
///
/// # Safety
///
/// `log` is NULL or an open `FILE *` that stays open while it is the log.
#[no_mangle]
pub unsafe extern "C" fn v3_hvm_ros_user_set_log(log: *mut libc::FILE) -> c_int {
    *lock(&LOG) = if log.is_null() { Log::Off } else { Log::File(log as usize) };
    succeed()
}

/// Registers `handler` to be called with the code when the HRT signals this process, on the
/// `stack_size` bytes at `stack` (zeroed and locked first).
///
/// # Safety
///
/// `stack` is `stack_size` writable bytes nothing else uses while the handler is registered.
#[no_mangle]
pub unsafe extern "C" fn v3_hvm_ros_register_signal(
    handler: Option<extern "C" fn(u64)>,
    stack: *mut c_void,
    stack_size: u64,
) -> c_int {
    let hvm = match hvm("v3_hvm_ros_register_signal") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    // SAFETY: passed on from our caller.
    match unsafe { hvm.register_signal(handler, stack.cast(), stack_size as usize) } {
        Ok(()) => succeed(),
        Err(e) => fail_hvm("failed to install HVM signal handler", e),
    }
}

/// Removes this process's signal handler.
#[no_mangle]
pub extern "C" fn v3_hvm_ros_unregister_signal() -> c_int {
    let hvm = match hvm("v3_hvm_ros_unregister_signal") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    match hvm.unregister_signal() {
        Ok(()) => succeed(),
        Err(e) => fail_hvm("failed to uninstall HVM signal handler", e),
    }
}

/// Gives the hypervisor a new HRT image (`size` bytes at `image`), booted by the next HRT
/// reset (it is not booted now). A bad image is refused (-1: EINVAL or EFAULT).
///
/// # Safety
///
/// `image` is `size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn v3_hvm_ros_install_hrt_image(image: *mut c_void, size: u64) -> c_int {
    let hvm = match hvm("v3_hvm_ros_install_hrt_image") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    reap(hvm);
    if image.is_null() || size == 0 {
        return fail(lib_error::ARGUMENT, libc::EINVAL, format_args!("install HRT image: no image"));
    }
    // SAFETY: passed on from our caller.
    let image = unsafe { std::slice::from_raw_parts(image.cast::<u8>(), size as usize) };
    match hvm.install_hrt_image(image) {
        Ok(()) => succeed(),
        Err(e) => fail_invoke("install HRT image", &e),
    }
}

/// Resets the HRT, the ROS or both (`reset_type`); does not wait (a ROS reset does not return).
#[no_mangle]
pub extern "C" fn v3_hvm_ros_reset(what: c_int) -> c_int {
    let op = match what {
        RESET_HRT => SubOp::ResetHrt,
        RESET_ROS => SubOp::ResetRos,
        RESET_BOTH => SubOp::ResetBoth,
        _ => return fail(lib_error::ARGUMENT, libc::EINVAL, format_args!("reset: no reset type {what}")),
    };
    let hvm = match hvm("v3_hvm_ros_reset") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    match hvm.call(op, [0; 6]) {
        Ok(_) => succeed(),
        Err(e) => fail_hvm("error in request to reset", e),
    }
}

/// A transaction without a buffer: the call, then a wait until Idle (servicing events).
fn transaction(what: &'static str, op: SubOp, args: [u64; 6]) -> c_int {
    let hvm = match hvm(what) {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    reap(hvm);
    if let Err(e) = hvm.call(op, args) {
        return fail_hvm(what, e);
    }
    match wait(hvm, "the end of the transaction", idle) {
        Ok(_) => succeed(),
        Err(e) => fail_invoke(what, &e),
    }
}

/// Merges this process's address space into the HRT (the hypervisor takes the calling thread's
/// translation root) and waits until the HRT took it.
#[no_mangle]
pub extern "C" fn v3_hvm_ros_merge_address_spaces() -> c_int {
    transaction("merge address spaces", SubOp::Merge, [0; 6])
}

/// Undoes the merge and waits until the HRT dropped the address space.
#[no_mangle]
pub extern "C" fn v3_hvm_ros_unmerge_address_spaces() -> c_int {
    transaction("unmerge address spaces", SubOp::Unmerge, [0; 6])
}

/// Palacios' GDT and FS-base mirror, on AArch64 the TLS mirror: `fsbase` is the TLS pointer
/// (TPIDR_EL0, what `arch_prctl(ARCH_GET_FS)` gave on x86; 0 means this thread's), with this
/// thread's TPIDRRO_EL0; `cpu` is ignored.
#[no_mangle]
pub extern "C" fn v3_hvm_ros_mirror_gdt(fsbase: u64, cpu: u64) -> c_int {
    let (tpidr, tpidrro) = current_tls();
    v3_hvm_ros_mirror_tls(if fsbase == 0 { tpidr } else { fsbase }, tpidrro, cpu)
}

/// Undoes [`v3_hvm_ros_mirror_gdt`].
#[no_mangle]
pub extern "C" fn v3_hvm_ros_unmirror_gdt() -> c_int {
    v3_hvm_ros_unmirror_tls()
}

/// The name Palacios' header declares (misspelt) for [`v3_hvm_ros_unmirror_gdt`].
#[no_mangle]
pub extern "C" fn v3_hvm_ros_unmiror_gdt() -> c_int {
    v3_hvm_ros_unmirror_tls()
}

/// Mirrors TLS registers into the HRT (0x51: x2 = TPIDR_EL0, x3 = TPIDRRO_EL0) and waits until
/// the HRT took them: the process's code the HRT runs then sees these thread-locals. `cpu` is
/// ignored (Palacios' argument).
#[no_mangle]
pub extern "C" fn v3_hvm_ros_mirror_tls(tpidr_el0: u64, tpidrro_el0: u64, cpu: u64) -> c_int {
    let _ = cpu;
    transaction("mirror TLS", SubOp::MirrorTls, [tpidr_el0, tpidrro_el0, 0, 0, 0, 0])
}

/// Drops the mirrored TLS registers (0x53).
#[no_mangle]
pub extern "C" fn v3_hvm_ros_unmirror_tls() -> c_int {
    transaction("unmirror TLS", SubOp::UnmirrorTls, [0; 6])
}

/// Invokes the HRT with `buf` on its first core (or on every core if `par`) and waits until
/// the call is over, servicing ROS events meanwhile. `buf` is a `struct hvm_invocation`
/// (starting with `HVM_INVOCATION_MAGIC`; copied back with its results) or a NUL-terminated
/// string (at most a page) that the HRT prints. -1 when the call is refused, times out, or (an
/// invocation) did not run on the cores it should have; a function's own failure is in its
/// `status`.
///
/// # Safety
///
/// `buf` is a `struct hvm_invocation` or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn v3_hvm_ros_invoke_hrt_async(buf: *mut c_void, par: c_int) -> c_int {
    let what = if par != 0 { "parallel invoke" } else { "invoke" };
    let hvm = match hvm(what) {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    if buf.is_null() {
        return fail(lib_error::ARGUMENT, libc::EINVAL, format_args!("{what}: no buffer"));
    }
    reap(hvm);
    // SAFETY: passed on from our caller.
    let buffer = match unsafe { read_async_buffer(buf) } {
        Ok(buffer) => buffer,
        Err(rc) => return rc,
    };
    let mut slot = lock(&ASYNC_PAGE);
    let page = match &mut *slot {
        Some(page) => page,
        None => match PinnedPage::new() {
            Ok(page) => slot.insert(page),
            Err(e) => return fail_invoke(what, &InvokeError::Pin(e)),
        },
    };
    write_buffer(page, &buffer);
    fence(Ordering::Release);
    if let Err(e) = hvm.call(invoke_sub_op(par != 0), [page.va(), 0, 0, 0, 0, 0]) {
        return fail_hvm(&std::format!("error in request to launch {what}"), e);
    }
    if let Err(e) = wait(hvm, "the end of the call", idle) {
        // The HRT may still write the page: keep it for good.
        if let Some(page) = slot.take() {
            page.leak();
        }
        return fail_invoke(what, &e);
    }
    if let AsyncBuffer::Invocation(_) = buffer {
        // SAFETY: the page holds the invocation the HRT completed; `buf` is the caller's.
        let done = unsafe { (page.as_ptr() as *const Invocation).read_volatile() };
        // SAFETY: `buf` is a struct hvm_invocation (it starts with the magic).
        unsafe { buf.cast::<Invocation>().write_unaligned(done) };
        if let Err(e) = check_done(&done, par != 0) {
            return fail_invoke(what, &InvokeError::Call(e));
        }
    }
    succeed()
}

/// Starts the invocation and returns without waiting (0 even when the hypervisor refused, as
/// in Palacios; `hvm_ros_last_error` tells). The buffer is copied into a pinned page; an
/// invocation's results are copied back to `buf` by the next library call that sees the call
/// over (e.g. `hvm_ros_wait_idle`), so `buf` must live until then.
///
/// # Safety
///
/// As for [`v3_hvm_ros_invoke_hrt_async`], and `buf` must stay valid as said above.
#[no_mangle]
pub unsafe extern "C" fn v3_hvm_ros_invoke_hrt_async_nowait(buf: *mut c_void, par: c_int) -> c_int {
    let hvm = match hvm("invoke (no wait)") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    if buf.is_null() {
        return fail(lib_error::ARGUMENT, libc::EINVAL, format_args!("invoke (no wait): no buffer"));
    }
    reap(hvm);
    // SAFETY: passed on from our caller.
    let buffer = match unsafe { read_async_buffer(buf) } {
        Ok(buffer) => buffer,
        Err(rc) => return rc,
    };
    let mut page = match PinnedPage::new() {
        Ok(page) => page,
        Err(e) => return fail_invoke("invoke (no wait)", &InvokeError::Pin(e)),
    };
    write_buffer(&mut page, &buffer);
    fence(Ordering::Release);
    match hvm.call(invoke_sub_op(par != 0), [page.va(), 0, 0, 0, 0, 0]) {
        Ok(_) => {
            let copy_back = if let AsyncBuffer::Invocation(_) = buffer { buf as usize } else { 0 };
            let mut pending = lock(&PENDING);
            if let Some(stale) = pending.take() {
                // Still in flight (reap did not free it): the HRT may write it.
                stale.page.leak();
            }
            *pending = Some(Pending { page, copy_back });
            succeed()
        }
        Err(e) => {
            fail_hvm("error in request to launch (no wait)", e);
            0
        }
    }
}

/// Enters synchronous mode: a pinned channel is handed to the first HRT core, which polls it
/// until [`v3_hvm_ros_desynchronize`].
#[no_mangle]
pub extern "C" fn v3_hvm_ros_synchronize() -> c_int {
    let hvm = match hvm("synchronize") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    reap(hvm);
    let mut sync = lock(&SYNC);
    if sync.is_some() {
        return fail(lib_error::SYNC_SESSION, libc::EBUSY, format_args!("synchronize: already synchronized"));
    }
    match hvm.synchronize() {
        Ok(session) => {
            *sync = Some(session);
            succeed()
        }
        Err(e) => fail_invoke("synchronize call failed", &e),
    }
}

/// One synchronous call: `buf` if it is a `struct hvm_invocation` (copied in, run, copied back
/// with its result), otherwise a call the HRT only completes. Spins until it is done (at most
/// the timeout), servicing ROS events every 2^16 spins if `handle_ros_events`.
///
/// # Safety
///
/// `buf` is NULL, a `struct hvm_invocation` or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn v3_hvm_ros_invoke_hrt_sync(buf: *mut c_void, handle_ros_events: c_int) -> c_int {
    let mut sync = lock(&SYNC);
    let Some(session) = sync.as_mut() else {
        return fail(lib_error::SYNC_SESSION, libc::EINVAL, format_args!("sync invoke: not synchronized"));
    };
    let bytes = buf.cast::<u8>();
    // SAFETY: no byte after the first that differs from the magic is read (see
    // read_async_buffer).
    let is_invocation = !buf.is_null() && starts_with_invocation_magic(|i| unsafe { bytes.add(i).read() });
    let inv = if is_invocation {
        // SAFETY: it starts with the magic: a struct hvm_invocation.
        unsafe { buf.cast::<Invocation>().read_unaligned() }
    } else {
        Invocation { magic: 0, ..Invocation::new(crate::abi::invoke::function::ADD, [0; 6]) }
    };
    let hvm = HVM.get();
    let mut service = || {
        if let Some(hvm) = hvm {
            if let Err(e) = hvm.poll() {
                log(format_args!("sync invoke: polling for ROS events: {e}"));
            }
        }
    };
    let poll: Option<&mut dyn FnMut()> = if handle_ros_events != 0 { Some(&mut service) } else { None };
    match session.call_raw(inv, poll) {
        Ok(done) => {
            if is_invocation {
                // SAFETY: `buf` is a struct hvm_invocation.
                unsafe { buf.cast::<Invocation>().write_unaligned(done) };
            }
            succeed()
        }
        Err(e) => fail_invoke("sync invoke", &e),
    }
}

/// Leaves synchronous mode.
#[no_mangle]
pub extern "C" fn v3_hvm_ros_desynchronize() -> c_int {
    let Some(session) = lock(&SYNC).take() else {
        return fail(lib_error::SYNC_SESSION, libc::EINVAL, format_args!("desynchronize: not synchronized"));
    };
    match session.desynchronize() {
        Ok(()) => succeed(),
        Err(e) => fail_invoke("desynchronize call failed", &e),
    }
}

/// Does the work of a ROS event (make the page present, make the system call) and completes it
/// with `EventComplete`. An HRT exception is completed with 0, recorded
/// ([`hvm_ros_last_exception`]) and answered -1 (Palacios ended the process).
///
/// # Safety
///
/// `event` is NULL or a `struct v3_ros_event` forwarded from the HRT running this process's
/// code.
#[no_mangle]
pub unsafe extern "C" fn v3_hvm_handle_ros_event(event: *mut RosEvent) -> c_int {
    if event.is_null() {
        return fail(lib_error::ARGUMENT, libc::EINVAL, format_args!("handle ROS event: no event"));
    }
    let hvm = match hvm("handle ROS event") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    // SAFETY: the caller's event.
    let event = unsafe { event.read_unaligned() };
    match service_event(hvm, &event) {
        Ok(Handled::HrtException(e)) => {
            fail(lib_error::EXCEPTION, libc::EIO, format_args!("HRT execution failed: exception in ROS code: {e}"))
        }
        Ok(_) => succeed(),
        Err(e) => fail_hvm("completing the ROS event", e),
    }
}

/// [`v3_hvm_handle_ros_event`] without a hypercall: the result goes to
/// `event->last_ros_event_result` and the event becomes `ROS_NONE` (for an HRT exception too,
/// which is recorded and answered -1).
///
/// # Safety
///
/// As for [`v3_hvm_handle_ros_event`].
#[no_mangle]
pub unsafe extern "C" fn v3_hvm_handle_ros_event_nohcall(event: *mut RosEvent) -> c_int {
    if event.is_null() {
        return fail(lib_error::ARGUMENT, libc::EINVAL, format_args!("handle ROS event: no event"));
    }
    // SAFETY: the caller's event; the work is vouched for by the caller.
    let mut e = unsafe { event.read_unaligned() };
    // SAFETY: as above.
    let handled = unsafe { events::perform(&e) };
    let Some(result) = handled.result() else { return succeed() };
    e.last_ros_event_result = result;
    e.event_type = RosEventType::None as u32;
    // SAFETY: the caller's event.
    unsafe { event.write_unaligned(e) };
    if let Handled::HrtException(exception) = handled {
        LAST_EXCEPTION.with(|last| last.set(Some(exception)));
        return fail(
            lib_error::EXCEPTION,
            libc::EIO,
            format_args!("HRT execution failed: exception in ROS code: {exception}"),
        );
    }
    succeed()
}

/// Raises signal `code` to the process that registered a handler (any process may).
#[no_mangle]
pub extern "C" fn v3_hvm_hrt_signal_ros(code: u64) -> c_int {
    let hvm = match hvm("signal") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    match hvm.raise_signal(code) {
        Ok(()) => succeed(),
        Err(e) => fail_hvm("signal", e),
    }
}

// ---------------------------------------------------------------------------------------------
// hvm-ros-lib's own functions (the Rust API's built-in calls)

/// The transaction state (`enum hvm_trans_state`) and whether the HRT is ready (1) or
/// (re)booting (0); either pointer may be NULL.
///
/// # Safety
///
/// Each pointer is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hvm_ros_state(trans_state: *mut c_int, hrt_ready: *mut c_int) -> c_int {
    let hvm = match hvm("state") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    match hvm.state() {
        Ok(status) => {
            // SAFETY: the caller's pointers, checked for NULL.
            unsafe {
                if !trans_state.is_null() {
                    *trans_state = status.trans as c_int;
                }
                if !hrt_ready.is_null() {
                    *hrt_ready = c_int::from(status.hrt_ready);
                }
            }
            succeed()
        }
        Err(e) => fail_hvm("state", e),
    }
}

/// Waits until the transaction state is Idle (servicing ROS events), then completes a
/// `_nowait` invocation (copying its results back).
#[no_mangle]
pub extern "C" fn hvm_ros_wait_idle() -> c_int {
    let hvm = match hvm("wait idle") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    match wait(hvm, "the Idle state", idle) {
        Ok(_) => {
            reap(hvm);
            succeed()
        }
        Err(e) => fail_invoke("wait idle", &e),
    }
}

/// Waits at most `timeout_ms` until the HRT is ready and idle (after an HRT reset, say).
#[no_mangle]
pub extern "C" fn hvm_ros_wait_ready(timeout_ms: u64) -> c_int {
    let hvm = match hvm("wait ready") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    match hvm.wait_ready(Duration::from_millis(timeout_ms)) {
        Ok(_) => succeed(),
        Err(e) => fail_invoke("wait ready", &e),
    }
}

/// Calls HRT function `function` (`HVM_FN_*`) with the 6 `args` (NULL: zeros) on the first HRT
/// core and stores its result. -1 also when the function failed (`hvm_ros_last_error` is then
/// its status).
///
/// # Safety
///
/// `args` is NULL or 6 readable values; `result` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hvm_ros_invoke(function: u64, args: *const u64, result: *mut u64) -> c_int {
    let hvm = match hvm("invoke") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    reap(hvm);
    match hvm.invoke(function, args_from(args)) {
        Ok(value) => {
            if !result.is_null() {
                // SAFETY: the caller's pointer, checked for NULL.
                unsafe { *result = value };
            }
            succeed()
        }
        Err(e) => fail_invoke("invoke", &e),
    }
}

/// Calls HRT function `function` on every HRT core; stores HRT core n's result at
/// `results[n]` (at most `max_results`) and the number of HRT cores at `*cores`.
///
/// # Safety
///
/// `args` is NULL or 6 readable values; `results` is NULL or `max_results` writable values;
/// `cores` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hvm_ros_invoke_parallel(
    function: u64,
    args: *const u64,
    results: *mut u64,
    max_results: u32,
    cores: *mut u32,
) -> c_int {
    let hvm = match hvm("parallel invoke") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    reap(hvm);
    match hvm.invoke_parallel(function, args_from(args)) {
        Ok(values) => {
            // SAFETY: the caller's pointers and sizes, checked for NULL.
            unsafe {
                if !results.is_null() {
                    let n = values.len().min(max_results as usize);
                    std::ptr::copy_nonoverlapping(values.as_ptr(), results, n);
                }
                if !cores.is_null() {
                    *cores = values.len() as u32;
                }
            }
            succeed()
        }
        Err(e) => fail_invoke("parallel invoke", &e),
    }
}

/// Calls HRT function `function` through the synchronous channel (after
/// `v3_hvm_ros_synchronize`) and stores its result.
///
/// # Safety
///
/// As for [`hvm_ros_invoke`].
#[no_mangle]
pub unsafe extern "C" fn hvm_ros_sync_invoke(function: u64, args: *const u64, result: *mut u64) -> c_int {
    let mut sync = lock(&SYNC);
    let Some(session) = sync.as_mut() else {
        return fail(lib_error::SYNC_SESSION, libc::EINVAL, format_args!("sync invoke: not synchronized"));
    };
    match session.call(function, args_from(args)) {
        Ok(value) => {
            if !result.is_null() {
                // SAFETY: the caller's pointer, checked for NULL.
                unsafe { *result = value };
            }
            succeed()
        }
        Err(e) => fail_invoke("sync invoke", &e),
    }
}

/// Calls `fn(a0, a1, a2, a3)`, a function of this process, in the HRT (`CALL_ROS`: at HRT EL0,
/// in the merged address space: merge first) on the stack whose top is `stack_top` (16-byte
/// aligned, memory of this process nothing else uses meanwhile; NULL: a 256 KiB stack of the
/// library) and stores its x0 at `*result`. Its system calls and page faults are serviced while
/// the library waits. -1 when the call is refused or fails; when the function took an exception
/// (`hvm_ros_last_error()` is `HVM_ROS_ERR_EXCEPTION`), `*result` is its syndrome (ESR) and
/// [`hvm_ros_last_exception`] tells more.
///
/// # Safety
///
/// `fn` is a function of this process taking four 64-bit integers and returning one, safe to
/// run concurrently with the process's threads (as a signal handler of the calling thread
/// would, whose TLS it sees if mirrored); `stack_top` as said; `result` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hvm_ros_call_ros(
    fn_: *const c_void,
    stack_top: *mut c_void,
    a0: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    result: *mut u64,
) -> c_int {
    let hvm = match hvm("call ROS function") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    if fn_.is_null() {
        return fail(lib_error::ARGUMENT, libc::EINVAL, format_args!("call ROS function: no function"));
    }
    if !(stack_top as u64).is_multiple_of(16) {
        return fail(
            lib_error::ARGUMENT,
            libc::EINVAL,
            format_args!("call ROS function: stack top not 16-byte aligned"),
        );
    }
    reap(hvm);
    let args = [a0, a1, a2, a3];
    let outcome = if stack_top.is_null() {
        // SAFETY: passed on from our caller.
        unsafe { hvm.call_ros_at(fn_ as u64, args) }
    } else {
        // SAFETY: passed on from our caller.
        unsafe { hvm.call_ros_on_stack(fn_ as u64, stack_top as u64, args) }
    };
    let value = match &outcome {
        Ok(value) => Some(*value),
        Err(e) => e.exception().map(|exception| exception.esr),
    };
    if let (Some(value), false) = (value, result.is_null()) {
        // SAFETY: the caller's pointer, checked for NULL.
        unsafe { *result = value };
    }
    match outcome {
        Ok(_) => succeed(),
        Err(e) => fail_invoke("call ROS function", &e),
    }
}

/// The exception behind this thread's last `HVM_ROS_ERR_EXCEPTION` failure: its syndrome
/// (ESR_EL1; `HRT_FAIL_VEC` for one in the HRT itself), pc and fault address (0 when the HRT
/// did not say). 0, or -1 when there is none. Any pointer may be NULL.
///
/// # Safety
///
/// Each pointer is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn hvm_ros_last_exception(esr: *mut u64, pc: *mut u64, far: *mut u64) -> c_int {
    let Some(e) = LAST_EXCEPTION.with(Cell::get) else { return -1 };
    // SAFETY: the caller's pointers, checked for NULL.
    unsafe {
        for (out, value) in [(esr, e.esr), (pc, e.pc.unwrap_or(0)), (far, e.far.unwrap_or(0))] {
            if !out.is_null() {
                *out = value;
            }
        }
    }
    0
}

/// The ROS events the library serviced so far (`struct hvm_ros_event_counts`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCountsC {
    pub page_faults: u64,
    pub unresolved_page_faults: u64,
    pub syscalls: u64,
    pub exceptions: u64,
    pub thread_exits: u64,
}

/// Stores the numbers of ROS events the library serviced so far at `*counts`.
///
/// # Safety
///
/// `counts` is NULL or a writable `struct hvm_ros_event_counts`.
#[no_mangle]
pub unsafe extern "C" fn hvm_ros_event_counts(counts: *mut EventCountsC) -> c_int {
    if counts.is_null() {
        return fail(lib_error::ARGUMENT, libc::EINVAL, format_args!("event counts: no buffer"));
    }
    let c = HVM.get().map(Hvm::event_counts).unwrap_or_default();
    let out = EventCountsC {
        page_faults: c.page_faults,
        unresolved_page_faults: c.unresolved_page_faults,
        syscalls: c.syscalls,
        exceptions: c.exceptions,
        thread_exits: c.thread_exits,
    };
    // SAFETY: the caller's buffer, checked for NULL.
    unsafe { counts.write_unaligned(out) };
    succeed()
}

/// Installs the HRT image (`size` bytes at `image`), resets the HRT and waits at most
/// `timeout_ms` until the new HRT is ready.
///
/// # Safety
///
/// `image` is `size` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn hvm_ros_install_and_boot(image: *const c_void, size: u64, timeout_ms: u64) -> c_int {
    let hvm = match hvm("install and boot HRT image") {
        Ok(hvm) => hvm,
        Err(rc) => return rc,
    };
    if image.is_null() || size == 0 {
        return fail(lib_error::ARGUMENT, libc::EINVAL, format_args!("install and boot HRT image: no image"));
    }
    reap(hvm);
    // SAFETY: the caller's bytes.
    let image = unsafe { std::slice::from_raw_parts(image.cast::<u8>(), size as usize) };
    match hvm.install_and_boot(image, Duration::from_millis(timeout_ms)) {
        Ok(_) => succeed(),
        Err(e) => fail_invoke("install and boot HRT image", &e),
    }
}

/// How long the library waits for a transaction to end (default 10 000 ms).
#[no_mangle]
pub extern "C" fn hvm_ros_set_timeout_ms(timeout_ms: u64) {
    let ns = timeout_ms.saturating_mul(1_000_000);
    TIMEOUT_NS.store(ns, Ordering::Relaxed);
    if let Some(hvm) = HVM.get() {
        hvm.set_timeout(Duration::from_nanos(ns));
    }
}

/// The code behind this thread's last failure: an `enum hvm_error` code (-1..-99) from the
/// hypervisor or a function's status, an `HVM_ROS_ERR_*` code of the library, 0 after a
/// success.
#[no_mangle]
pub extern "C" fn hvm_ros_last_error() -> i64 {
    LAST_ERROR.with(Cell::get)
}

/// What a [`hvm_ros_last_error`] code means (a static string).
#[no_mangle]
pub extern "C" fn hvm_ros_strerror(code: i64) -> *const c_char {
    error_string(code).as_ptr()
}

/// [`hvm_ros_strerror`]'s strings.
pub fn error_string(code: i64) -> &'static CStr {
    if code == 0 {
        return c"success";
    }
    #[allow(unreachable_patterns)]
    if let Some(e) = HvmError::from_code(code as u64) {
        return match e {
            HvmError::Failed => c"generic failure",
            HvmError::UnknownSubOp => c"unknown sub-operation",
            HvmError::WrongPartition => c"sub-operation not allowed from the caller's partition",
            HvmError::WrongState => c"wrong transaction state (another call in flight, or the HRT is not ready)",
            HvmError::BadAddress => c"bad guest address or size",
            HvmError::InvalidArgument => c"invalid argument",
            HvmError::NotHvm => c"the VM has no HVM configured",
            HvmError::Busy => c"busy (something is already pending)",
            HvmError::NotImplemented => c"not implemented by this hypervisor",
            HvmError::WrongLevel => c"sub-operation not allowed from the caller's exception level",
            _ => c"hypervisor error",
        };
    }
    match code {
        lib_error::TIMEOUT => c"timed out",
        lib_error::NO_HVM => c"no HVM (not an HVM, or not root)",
        lib_error::PIN => c"cannot allocate or lock a buffer",
        lib_error::NOT_DONE => c"the HRT did not run the call on the cores it should have",
        lib_error::ARGUMENT => c"bad argument",
        lib_error::LOST => c"the transaction ended unexpectedly (HRT reset?)",
        lib_error::SYNC_SESSION => c"no synchronous session (or one is already open)",
        lib_error::EXCEPTION => c"the process's code took an exception in the HRT (hvm_ros_last_exception)",
        _ => c"unknown error",
    }
}

/// Fletcher-64 of `len` bytes at `buf`: what the HRT's `HVM_FN_CHECKSUM` answers.
///
/// # Safety
///
/// `buf` is `len` readable bytes (or `len` is 0).
#[no_mangle]
pub unsafe extern "C" fn hvm_ros_fletcher64(buf: *const c_void, len: u64) -> u64 {
    if buf.is_null() || len == 0 {
        return 0;
    }
    // SAFETY: the caller's bytes.
    fletcher64_slice(unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len as usize) })
}

#[cfg(test)]
mod tests;
