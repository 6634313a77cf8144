//! Synchronous mode (palacios-hvm.md §4.4): a shared-memory channel between this process and
//! the first HRT core, which polls it while the session lasts. A call is no hypercall at all:
//! the process writes the invocation into the channel and bumps `issued`; the HRT runs it and
//! sets `completed` to `issued`.
//!
//! `SyncSetup` (0x28) hands the channel to the HRT (the state goes SyncSetup, then Sync when the
//! HRT polls it); `SyncTeardown` (0x29, same buffer) takes it back (SyncTeardown, then Idle).
//! A channel the HRT may still poll is never freed: when a teardown cannot be confirmed, its
//! page is kept (leaked) for the life of the process.

use std::prelude::rust_2021::*;

use std::mem::ManuallyDrop;
use std::ptr::{addr_of, addr_of_mut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::invoke::InvokeError;
use super::pinned::PinnedPage;
use super::Hvm;
use crate::abi::invoke::{function, Invocation, SyncChannel};
use crate::abi::{SubOp, TransState};
use crate::status::CallError;

/// Spins between two looks at the clock in a sync call (a clock read costs more than a spin).
const SPINS_PER_CLOCK_CHECK: u64 = 4096;
/// Spins between two event polls when a sync call services ROS events.
const SPINS_PER_EVENT_POLL: u64 = 1 << 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Session {
    /// In sync mode; calls may be made.
    Open,
    /// A call timed out: the HRT may still answer it, so no new call is made; only teardown.
    Broken,
    /// Torn down (or given up); the channel was freed or leaked.
    Closed,
}

/// An open synchronous channel to the HRT ([`Hvm::synchronize`]). Dropping it tears it down
/// (best effort; [`SyncSession::desynchronize`] reports the outcome).
#[derive(Debug)]
pub struct SyncSession<'a> {
    hvm: &'a Hvm,
    channel: ManuallyDrop<PinnedPage>,
    issued: u64,
    state: Session,
    timeout: Duration,
}

impl Hvm {
    /// Enters synchronous mode: a pinned [`SyncChannel`] is handed to the HRT (0x28); returns
    /// once the state is Sync.
    pub fn synchronize(&self) -> Result<SyncSession<'_>, InvokeError> {
        let page = PinnedPage::new()?;
        let channel: *mut SyncChannel = page.as_ptr().cast();
        // SAFETY: a fresh page-aligned page of ours, larger than a SyncChannel.
        unsafe { channel.write_volatile(SyncChannel::new()) };
        let mut session = SyncSession {
            hvm: self,
            channel: ManuallyDrop::new(page),
            issued: 0,
            state: Session::Open,
            timeout: self.timeout(),
        };
        std::sync::atomic::fence(Ordering::Release);
        if let Err(e) = self.call(SubOp::SyncSetup, [session.va(), 0, 0, 0, 0, 0]) {
            // Refused: the HRT never saw the channel.
            session.free_channel();
            return Err(e.into());
        }
        match self.wait_until("sync mode", session.timeout, |s| s.trans != TransState::SyncSetup) {
            Ok(status) if status.trans == TransState::Sync => Ok(session),
            Ok(status) => {
                // Idle: the HRT was reset before it took the channel, so nobody polls it.
                if status.trans == TransState::Idle {
                    session.free_channel();
                } else {
                    session.leak_channel();
                }
                Err(InvokeError::Lost { what: "sync setup", status })
            }
            Err(e) => {
                session.leak_channel();
                Err(e)
            }
        }
    }
}

impl SyncSession<'_> {
    fn channel(&self) -> *mut SyncChannel {
        self.channel.as_ptr().cast()
    }

    /// Virtual address of the channel (x2 of 0x28 / 0x29).
    pub fn va(&self) -> u64 {
        self.channel.va()
    }

    /// Calls the session's waits last at most this long (default: the [`Hvm::timeout`] when
    /// the session started).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.issued
    }

    /// One synchronous call of `inv` as given (its magic included: without
    /// [`crate::abi::invoke::INVOCATION_MAGIC`] the HRT just completes it). Spins until the HRT
    /// completed it, for at most the session's timeout, calling `poll` every 2^16 spins (to
    /// service ROS events) if given. Returns the invocation as the HRT left it.
    pub fn call_raw(&mut self, inv: Invocation, mut poll: Option<&mut dyn FnMut()>) -> Result<Invocation, InvokeError> {
        if self.state != Session::Open {
            return Err(InvokeError::SessionClosed);
        }
        let channel = self.channel();
        // SAFETY: `channel` points at our live, aligned SyncChannel; the fields are u64 (so the
        // counters may be used as AtomicU64: same size and alignment); the HRT accesses them
        // only through the counters' protocol: it reads the invocation after it sees `issued`
        // move (Release below) and writes it before `completed` moves (Acquire below).
        unsafe {
            addr_of_mut!((*channel).invocation).write_volatile(inv);
            self.issued += 1;
            AtomicU64::from_ptr(addr_of_mut!((*channel).issued)).store(self.issued, Ordering::Release);
        }
        // SAFETY: as above.
        let completed = unsafe { AtomicU64::from_ptr(addr_of_mut!((*channel).completed)) };
        let start = Instant::now();
        let mut spins = 0u64;
        while completed.load(Ordering::Acquire) != self.issued {
            spins += 1;
            if spins.is_multiple_of(SPINS_PER_CLOCK_CHECK) {
                let waited = start.elapsed();
                if waited >= self.timeout {
                    self.state = Session::Broken;
                    let last = self.hvm.state().ok();
                    return Err(InvokeError::Timeout { what: "a synchronous call", waited, last });
                }
                if spins.is_multiple_of(SPINS_PER_EVENT_POLL) {
                    if let Some(poll) = poll.as_mut() {
                        poll();
                    }
                }
            }
            std::hint::spin_loop();
        }
        // SAFETY: as above; the Acquire load ordered the HRT's writes before this read.
        Ok(unsafe { addr_of!((*channel).invocation).read_volatile() })
    }

    /// Calls HRT function `function` with `args` through the channel; returns its result.
    pub fn call(&mut self, function: u64, args: [u64; 6]) -> Result<u64, InvokeError> {
        let done = self.call_raw(Invocation::new(function, args), None)?;
        match done.status[0] {
            0 => Ok(done.result[0]),
            status => Err(CallError::Failed { core: 0, status }.into()),
        }
    }

    /// A call the HRT only completes (invocation magic 0): what Palacios' test program makes
    /// with its string buffer; measures the channel's round trip.
    pub fn call_noop(&mut self) -> Result<(), InvokeError> {
        let inv = Invocation { magic: 0, ..Invocation::new(function::ADD, [0; 6]) };
        self.call_raw(inv, None).map(drop)
    }

    /// Leaves synchronous mode (0x29, then waits until Idle) and frees the channel.
    pub fn desynchronize(mut self) -> Result<(), InvokeError> {
        self.close()
    }

    fn close(&mut self) -> Result<(), InvokeError> {
        if self.state == Session::Closed {
            return Ok(());
        }
        let hvm = self.hvm;
        match hvm.call(SubOp::SyncTeardown, [self.va(), 0, 0, 0, 0, 0]) {
            Ok(_) => match hvm.wait_idle(self.timeout) {
                Ok(_) => {
                    self.free_channel();
                    Ok(())
                }
                Err(e) => {
                    self.leak_channel();
                    Err(e)
                }
            },
            Err(refused) => {
                // Idle means nobody polls the channel any more (the HRT was reset); otherwise
                // the HRT may still hold it.
                match hvm.state() {
                    Ok(status) if status.trans == TransState::Idle => self.free_channel(),
                    _ => self.leak_channel(),
                }
                Err(refused.into())
            }
        }
    }

    fn free_channel(&mut self) {
        if self.state != Session::Closed {
            self.state = Session::Closed;
            // SAFETY: the state guards against a second drop; the page is not used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.channel) }
        }
    }

    fn leak_channel(&mut self) {
        self.state = Session::Closed;
    }
}

impl Drop for SyncSession<'_> {
    fn drop(&mut self) {
        let _ = self.close();
    }
}
