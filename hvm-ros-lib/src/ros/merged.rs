//! The process's own code in the HRT (palacios-hvm.md §4.2, §4.5, §4.7, §4.9, §7.5, §7.8):
//! merging the address space, calling functions of the process at HRT EL0 (`CALL_ROS`), the TLS
//! mirror, and installing a new HRT image.
//!
//! - [`Hvm::merge`] (0x30) hands the HRT this process's translation root (the hypervisor reads
//!   TTBR0_EL1, TCR_EL1, MAIR_EL1 and the ASID of the calling vCPU itself); the state is Merge
//!   until the HRT took it, then Idle. [`Hvm::unmerge`] (0x31) undoes it.
//! - [`Hvm::call_ros`] invokes the HRT's `CALL_ROS` (function 4): the HRT runs the function at
//!   EL0 in the merged address space on a stack of this process, with x0..x3 = the four
//!   arguments, and its x0 at return is the result. Meanwhile this process services the HRT's
//!   forwarded events ([`super::events`]): the function's system calls run here, its page faults
//!   are made good here. An exception the function takes fails the call
//!   ([`InvokeError::Exception`], with the syndrome) and the HRT goes on.
//! - [`Hvm::mirror_tls`] (0x51) gives the HRT the calling thread's TPIDR_EL0 and TPIDRRO_EL0, so
//!   the function sees this thread's thread-locals (errno, `thread_local!`); the state is
//!   TlsSync until the HRT took them. [`Hvm::unmirror_tls`] (0x53) drops them.
//! - [`Hvm::install_hrt_image`] (0x8) copies an HRT ELF into the hypervisor, which checks it and
//!   boots it at the next HRT reset ([`Hvm::install_and_boot`] does both and waits).
//!
//! Every one of these is refused with `WrongState` unless the state is Idle and the HRT ready.

use std::prelude::rust_2021::*;

use std::io;
use std::ptr::{self, NonNull};
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use super::counter::{self, ticks_to_ns};
use super::events::RosException;
use super::invoke::InvokeError;
use super::pinned::page_size;
use super::Hvm;
use crate::abi::invoke::{function, Invocation, MAX_HRT_CORES};
use crate::abi::SubOp;
use crate::status::{self, CallError, HvmStatus};

/// A function of this process that the HRT can run: x0..x3 in, x0 out.
pub type RosFn = extern "C" fn(u64, u64, u64, u64) -> u64;

/// The stack each HRT core gets for a `CALL_ROS` function of [`Hvm::call_ros`].
pub const CALL_ROS_STACK_SIZE: usize = crate::abi::invoke::CALL_ROS_STACK_STRIDE as usize;

/// A stack for functions the HRT runs: a private anonymous mapping, every page written (so
/// present: the function does not fault on it), with an inaccessible guard page below (an
/// overflow is a fault the process cannot resolve, not a write into other memory).
#[derive(Debug)]
pub struct RosStack {
    /// The guard page (the mapping starts here).
    base: NonNull<u8>,
    /// Bytes mapped, the guard page included.
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; the HRT uses it only during a call, which
// the `Hvm` serialises.
unsafe impl Send for RosStack {}

impl RosStack {
    /// At least `size` bytes of stack (whole pages), plus the guard page.
    pub fn new(size: usize) -> io::Result<Self> {
        let page = page_size();
        let usable = size.max(1).checked_next_multiple_of(page).ok_or(io::ErrorKind::InvalidInput)?;
        let len = usable + page;
        // SAFETY: a new private anonymous mapping aliases nothing; checked before use.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned address 0"))?;
        let stack = RosStack { base, len };
        // SAFETY: the first page of our mapping.
        if unsafe { libc::mprotect(base.as_ptr().cast(), page, libc::PROT_NONE) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for offset in (page..len).step_by(page) {
            // SAFETY: inside our writable mapping, above the guard page.
            unsafe { base.as_ptr().add(offset).write_volatile(0) };
        }
        Ok(stack)
    }

    /// The initial stack pointer: the end of the mapping (page-aligned, so 16-byte aligned).
    pub fn top(&self) -> u64 {
        self.base.as_ptr() as u64 + self.len as u64
    }

    /// Bytes of stack (without the guard page).
    pub fn size(&self) -> usize {
        self.len - page_size()
    }

    /// Keeps the mapping for the rest of the process: the HRT may still run on it (a call that
    /// timed out).
    pub fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for RosStack {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping mmap returned, owned by this value alone.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The outcome of a `CALL_ROS` on HRT core `core` of a completed invocation: its result, the
/// exception it took (status -1, the result is the ESR; `recorded` is the last exception event,
/// which gives the pc and FAR when its syndrome matches), or another failure.
pub fn call_ros_outcome(inv: &Invocation, core: usize, recorded: Option<RosException>) -> Result<u64, InvokeError> {
    match inv.status[core] {
        0 => Ok(inv.result[core]),
        -1 => {
            let esr = inv.result[core];
            let exception = match recorded {
                Some(e) if e.esr == esr => e,
                _ => RosException { esr, pc: None, far: None },
            };
            Err(InvokeError::Exception { core, exception })
        }
        status => Err(CallError::Failed { core, status }.into()),
    }
}

/// Reads the bytes of an HRT image file.
pub fn read_image(path: &std::path::Path) -> Result<Vec<u8>, InvokeError> {
    std::fs::read(path).map_err(|e| InvokeError::Io(io::Error::new(e.kind(), format!("{}: {e}", path.display()))))
}

impl Hvm {
    /// A transaction without a buffer: `sub_op` with `args`, then a wait until Idle (servicing
    /// events).
    fn transaction(&self, sub_op: SubOp, args: [u64; 6]) -> Result<(), InvokeError> {
        self.call(sub_op, args)?;
        self.wait_idle(self.timeout())?;
        Ok(())
    }

    /// Merges this process's address space into the HRT (0x30) and waits until the HRT took it.
    pub fn merge(&self) -> Result<(), InvokeError> {
        self.transaction(SubOp::Merge, [0; 6])
    }

    /// Undoes [`Hvm::merge`] (0x31) and waits until the HRT dropped the address space.
    pub fn unmerge(&self) -> Result<(), InvokeError> {
        self.transaction(SubOp::Unmerge, [0; 6])
    }

    /// Mirrors this thread's TLS registers (TPIDR_EL0, TPIDRRO_EL0) into the HRT (0x51) and
    /// waits until the HRT took them: functions run with [`Hvm::call_ros`] then see this
    /// thread's thread-locals.
    pub fn mirror_tls(&self) -> Result<(), InvokeError> {
        let (tpidr, tpidrro) = current_tls();
        self.mirror_tls_values(tpidr, tpidrro)
    }

    /// [`Hvm::mirror_tls`] with the given register values.
    pub fn mirror_tls_values(&self, tpidr_el0: u64, tpidrro_el0: u64) -> Result<(), InvokeError> {
        self.transaction(SubOp::MirrorTls, [tpidr_el0, tpidrro_el0, 0, 0, 0, 0])
    }

    /// Drops the mirrored TLS registers (0x53) and waits until the HRT did.
    pub fn unmirror_tls(&self) -> Result<(), InvokeError> {
        self.transaction(SubOp::UnmirrorTls, [0; 6])
    }

    /// Runs `f(args)` in the HRT, at EL0 in the merged address space, on a stack of the library
    /// (256 KiB, present), and returns its result; services its system calls and page faults
    /// meanwhile. Needs a merge first. An exception in `f` fails the call with
    /// [`InvokeError::Exception`].
    ///
    /// # Safety
    ///
    /// `f` runs concurrently with this process's other threads and with this thread's wait
    /// loop, with this thread's TLS registers if they were mirrored ([`Hvm::mirror_tls`]; other
    /// values otherwise): as a signal handler interrupting this thread would. It must be safe to
    /// run so (no lock this thread holds, no data this thread uses unsynchronised).
    pub unsafe fn call_ros(&self, f: RosFn, args: [u64; 4]) -> Result<u64, InvokeError> {
        // SAFETY: passed on from the caller; a `RosFn` is a function of this process.
        unsafe { self.call_ros_at(f as usize as u64, args) }
    }

    /// [`Hvm::call_ros`] with the function's address.
    ///
    /// # Safety
    ///
    /// As for [`Hvm::call_ros`], and `f` must be the address of a function of this process with
    /// the signature of a [`RosFn`].
    pub unsafe fn call_ros_at(&self, f: u64, args: [u64; 4]) -> Result<u64, InvokeError> {
        let mut stacks = self.ros_stacks.lock().unwrap_or_else(PoisonError::into_inner);
        let stack = match &mut *stacks {
            Some(stack) => stack,
            None => stacks.insert(RosStack::new(CALL_ROS_STACK_SIZE * MAX_HRT_CORES)?),
        };
        let top = stack.top();
        // SAFETY: the stack is ours and nothing else uses it during the call (the lock).
        let outcome = unsafe { self.call_ros_on_stack(f, top, args) };
        if matches!(outcome, Err(InvokeError::Timeout { .. })) {
            // The HRT may still run on it.
            if let Some(stack) = stacks.take() {
                stack.leak();
            }
        }
        outcome
    }

    /// [`Hvm::call_ros_at`] on the stack whose top is `stack_top` (16-byte aligned, in this
    /// process's memory; present, or its faults are forwarded too).
    ///
    /// # Safety
    ///
    /// As for [`Hvm::call_ros_at`], and the stack must be memory nothing else uses during the
    /// call (and after it, if the call times out: the HRT may still run).
    pub unsafe fn call_ros_on_stack(&self, f: u64, stack_top: u64, args: [u64; 4]) -> Result<u64, InvokeError> {
        let _stale = self.take_exception();
        let [a0, a1, a2, a3] = args;
        let done = self.run_scratch(false, |inv| inv.set(function::CALL_ROS, [f, stack_top, a0, a1, a2, a3]))?;
        if done.done != 1 {
            return Err(CallError::UnexpectedDone { done: done.done, expected: Some(1) }.into());
        }
        call_ros_outcome(&done, 0, self.take_exception())
    }

    /// Runs `f(args)` on every HRT core at once (0x21 with `CALL_ROS`); returns HRT core n's
    /// result at index n, or the first failure.
    ///
    /// The invocation has one stack argument for every core: the library passes the top of an
    /// area of [`CALL_ROS_STACK_SIZE`] bytes per possible HRT core, and HRT core n runs at
    /// `top - n * CALL_ROS_STACK_SIZE` (`abi::invoke::CALL_ROS_STACK_STRIDE`), so every core
    /// has a stack of its own.
    ///
    /// # Safety
    ///
    /// As for [`Hvm::call_ros`], with `f` running on several HRT cores at once, on a shared
    /// stack (see above).
    pub unsafe fn call_ros_parallel(&self, f: RosFn, args: [u64; 4]) -> Result<Vec<u64>, InvokeError> {
        let mut stacks = self.ros_stacks.lock().unwrap_or_else(PoisonError::into_inner);
        let stack = match &mut *stacks {
            Some(stack) => stack,
            None => stacks.insert(RosStack::new(CALL_ROS_STACK_SIZE * MAX_HRT_CORES)?),
        };
        let _stale = self.take_exception();
        let [a0, a1, a2, a3] = args;
        let call = [f as usize as u64, stack.top(), a0, a1, a2, a3];
        let done = match self.run_scratch(true, |inv| inv.set(function::CALL_ROS, call)) {
            Ok(done) => done,
            Err(e) => {
                if matches!(e, InvokeError::Timeout { .. }) {
                    if let Some(stack) = stacks.take() {
                        stack.leak();
                    }
                }
                return Err(e);
            }
        };
        // Which cores ran: the first n (the statuses are looked at below).
        let ran = Invocation { status: [0; MAX_HRT_CORES], ..done };
        let cores = status::parallel_results(&ran, None)?.as_slice().len();
        let recorded = self.take_exception();
        (0..cores).map(|core| call_ros_outcome(&done, core, recorded)).collect()
    }

    /// Gives the hypervisor a new HRT image (0x8: x2 = its address, x3 = its size), booted by the
    /// next HRT reset. Every page of it is read first (the hypervisor needs them present) and
    /// locked during the call. A bad image is refused (`InvalidArgument`, `BadAddress`).
    pub fn install_hrt_image(&self, image: &[u8]) -> Result<(), InvokeError> {
        let sum = image.iter().step_by(page_size()).fold(0u8, |acc, &b| acc.wrapping_add(b));
        std::hint::black_box(sum);
        if let Some(&last) = image.last() {
            std::hint::black_box(last);
        }
        // SAFETY: mlock/munlock only change the residency of memory we may read.
        let locked = !image.is_empty() && unsafe { libc::mlock(image.as_ptr().cast(), image.len()) } == 0;
        let result = self.call(SubOp::InstallHrtImage, [image.as_ptr() as u64, image.len() as u64, 0, 0, 0, 0]);
        if locked {
            // SAFETY: as above.
            unsafe { libc::munlock(image.as_ptr().cast(), image.len()) };
        }
        result.map(drop).map_err(InvokeError::from)
    }

    /// Resets the HRT (0x2) and waits at most `timeout` until the HRT this reset booted is
    /// ready: ready and idle, with a boot that started after the reset call (the uptime of the
    /// null call is shorter than the time since), so the old HRT's "ready" does not count.
    pub fn reboot_hrt(&self, timeout: Duration) -> Result<HvmStatus, InvokeError> {
        let start = Instant::now();
        let reset_at = counter::now();
        self.reset_hrt()?;
        loop {
            let left = timeout.saturating_sub(start.elapsed());
            let status = self.wait_ready(left)?;
            let uptime_ns = self.null()?.since_hrt_boot_ns;
            let since_reset_ns = ticks_to_ns(counter::now() - reset_at, counter::frequency());
            if uptime_ns <= since_reset_ns {
                return Ok(status);
            }
            let waited = start.elapsed();
            if waited >= timeout {
                return Err(InvokeError::Timeout { what: "the HRT to reboot", waited, last: Some(status) });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// [`Hvm::install_hrt_image`], then [`Hvm::reboot_hrt`]: the new image runs when this
    /// returns.
    pub fn install_and_boot(&self, image: &[u8], timeout: Duration) -> Result<HvmStatus, InvokeError> {
        self.install_hrt_image(image)?;
        self.reboot_hrt(timeout)
    }
}

/// This thread's TLS registers: TPIDR_EL0 and TPIDRRO_EL0 (0 off aarch64).
pub fn current_tls() -> (u64, u64) {
    #[cfg(target_arch = "aarch64")]
    {
        let (tpidr, tpidrro): (u64, u64);
        // SAFETY: both registers are readable at EL0; no memory, no stack.
        unsafe {
            core::arch::asm!("mrs {}, tpidr_el0", "mrs {}, tpidrro_el0", out(reg) tpidr, out(reg) tpidrro,
                options(nomem, nostack));
        }
        (tpidr, tpidrro)
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ros_stack_is_present_with_a_guard_below() {
        let stack = RosStack::new(10_000).unwrap();
        let page = page_size();
        assert_eq!(stack.size(), 10_000usize.next_multiple_of(page));
        assert_eq!(stack.top() % 16, 0);
        let mut resident = vec![0u8; stack.len / page];
        // SAFETY: our mapping, one byte per page.
        assert_eq!(unsafe { libc::mincore(stack.base.as_ptr().cast(), stack.len, resident.as_mut_ptr()) }, 0);
        assert_eq!(resident[0] & 1, 0, "the guard page is not present");
        assert!(resident[1..].iter().all(|&r| r & 1 == 1), "every stack page is present");
        // The guard is inaccessible: populating it fails.
        // SAFETY: populating changes nothing.
        let rc = unsafe { libc::madvise(stack.base.as_ptr().cast(), page, libc::MADV_POPULATE_READ) };
        assert_eq!(rc, -1);
    }

    #[test]
    fn outcomes_of_call_ros() {
        let mut inv = Invocation::new(function::CALL_ROS, [0; 6]);
        inv.done = 0b11;
        inv.result = [5, 0x0200_0000, 0, 0, 0, 0, 0, 0];
        inv.status = [0, -1, 0, 0, 0, 0, 0, 0];
        assert_eq!(call_ros_outcome(&inv, 0, None).unwrap(), 5);
        let recorded = RosException { esr: 0x0200_0000, pc: Some(0x1000), far: Some(0) };
        match call_ros_outcome(&inv, 1, Some(recorded)) {
            Err(InvokeError::Exception { core: 1, exception }) => assert_eq!(exception, recorded),
            other => std::panic!("{other:?}"),
        }
        let other = RosException { esr: 0x9200_0004, pc: Some(0x1000), far: Some(0) };
        match call_ros_outcome(&inv, 1, Some(other)) {
            Err(InvokeError::Exception { exception, .. }) => {
                assert_eq!(exception, RosException { esr: 0x0200_0000, pc: None, far: None }, "not that event's")
            }
            other => std::panic!("{other:?}"),
        }
        inv.status[0] = -4;
        assert!(matches!(
            call_ros_outcome(&inv, 0, None),
            Err(InvokeError::Call(CallError::Failed { status: -4, .. }))
        ));
    }
}
