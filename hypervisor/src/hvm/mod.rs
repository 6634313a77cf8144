//! The hybrid VM's 0xf00d dispatcher: a pure state machine (Palacios' `trans_state` plus a
//! real HRT ready state, palacios-hvm.md §4.1 and §4.10), unit-tested on the host.
//!
//! The VM layer (`vm::hvm`) decodes who called (partition, exception level), feeds the call in
//! with the counter's value, and carries out the [`Effect`] the reply asks for (a reset, the
//! ready line). Nothing here touches the guest: a bad call only ever produces an error code.

pub mod boot;
pub mod events;
pub mod permissions;
pub mod signal;
#[cfg(test)]
mod tests;

use events::{EventSlot, EVENT_SIZE};
use hvm_ros_lib::abi::invoke::{Invocation, SyncChannel};
use hvm_ros_lib::abi::{HvmError, RosEvent, SubOp, TransState, HVM_OK};

pub use permissions::{check_caller, Caller, Level, Partition};

/// Where the HRT partition is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HrtStatus {
    /// Booting since counter value `started`; `ready_cores` has a bit per HRT core that has
    /// reported ready.
    Booting { started: u64, ready_cores: u64 },
    /// Every HRT core reported ready, `boot_ticks` after the boot started.
    Ready { started: u64, boot_ticks: u64 },
}

impl HrtStatus {
    fn started(self) -> u64 {
        match self {
            Self::Booting { started, .. } | Self::Ready { started, .. } => started,
        }
    }
}

/// What the VM must do after a call was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Reboot the ROS partition (its vCPUs, RAM images, devices); the HRT runs on.
    ResetRos,
    /// Reboot the HRT partition; the ROS runs on.
    ResetHrt,
    /// Reboot both partitions.
    ResetBoth,
    /// The last HRT core reported ready: the HRT took `boot_ticks` counter ticks to boot.
    HrtReady {
        cores: usize,
        boot_ticks: u64,
    },
    /// Write the request into the comm page and raise the upcall on the HRT cores in `cores`
    /// (bit n: HRT core n). `buffer` is the guest-physical address of the caller's buffer.
    Upcall {
        op: SubOp,
        buffer: u64,
        cores: u64,
    },
    /// Write the event slot (`event`) to the caller's `buffer`.
    WriteEvent {
        buffer: u64,
        event: [u8; EVENT_SIZE],
    },
    /// A merge or unmerge finished: the HRT now runs (`Some`: with the address space whose
    /// TTBR0 base this is) or no longer runs ROS code; ROS TLB maintenance must (not) be
    /// replayed for the HRT.
    MergeChanged {
        merged: Option<u64>,
    },
    /// Copy the `size`-byte HRT image at the caller's virtual address `va`, check it and keep it
    /// for the next HRT boot.
    InstallImage {
        va: u64,
        size: u64,
    },
    /// A signal is pending: ROS vCPUs must look at their next entry into EL0.
    SignalRaised,
    /// Resume the calling process from the signal frame at its virtual address `frame`.
    SignalReturn {
        frame: u64,
    },
}

/// What a call brings besides its sub-operation: the guest-physical address of its x2 buffer
/// (for the sub-operations of [`buffer_size`]; `None` when x2 did not translate or is 0), its
/// arguments x2..x7, the calling process's TTBR0 base (for a merge), and for a posted event the
/// event read from that buffer.
#[derive(Clone, Copy, Debug, Default)]
pub struct Request {
    pub buffer: Option<u64>,
    pub args: [u64; 6],
    pub ttbr0: u64,
    pub event: Option<[u8; EVENT_SIZE]>,
}

/// Bytes of the caller's memory a sub-operation's x2 points at, which the VM translates to a
/// guest-physical address before [`HvmState::handle`] (the buffer must not cross a page).
pub fn buffer_size(op: SubOp) -> Option<usize> {
    match op {
        SubOp::Invoke | SubOp::ParallelInvoke => Some(core::mem::size_of::<Invocation>()),
        SubOp::SyncSetup | SubOp::SyncTeardown => Some(core::mem::size_of::<SyncChannel>()),
        SubOp::GetStateAndEvent | SubOp::PostRosEvent => Some(core::mem::size_of::<RosEvent>()),
        _ => None,
    }
}

/// The answer to one call: x0..x3 for the caller and what the VM must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub regs: [u64; 4],
    pub effect: Effect,
}

impl Reply {
    const fn ok(effect: Effect) -> Self {
        Self { regs: [HVM_OK, 0, 0, 0], effect }
    }

    const fn error(error: HvmError) -> Self {
        Self { regs: [error.code(), 0, 0, 0], effect: Effect::None }
    }
}

/// The HVM state of one hybrid VM.
#[derive(Clone, Debug)]
pub struct HvmState {
    hrt_cores: usize,
    counter_frequency: u64,
    trans: TransState,
    hrt: HrtStatus,
    /// HRT cores that still owe the `CallDone` of the request in flight (bit n: HRT core n).
    /// A count (Palacios) cannot tell a core that answers twice, or one never asked, from the
    /// others; a mask can, and a late answer after a reset is refused rather than counted.
    awaiting: u64,
    /// The synchronous channel (guest-physical), from SyncSetup to the end of SyncTeardown.
    sync_channel: Option<u64>,
    /// The merge in flight: `Some(ttbr0)` for a merge with that process, `None` for an unmerge.
    merging: Option<Option<u64>>,
    /// The merged process (its TTBR0 base), if any.
    merged: Option<u64>,
    events: EventSlot,
    signals: signal::Signals,
}

impl HvmState {
    /// A hybrid VM with `hrt_cores` HRT cores whose HRT boot started at counter value `now`.
    pub fn new(hrt_cores: usize, counter_frequency: u64, now: u64) -> Self {
        Self {
            hrt_cores: hrt_cores.clamp(1, 64),
            counter_frequency: counter_frequency.max(1),
            trans: TransState::Idle,
            hrt: HrtStatus::Booting { started: now, ready_cores: 0 },
            awaiting: 0,
            sync_channel: None,
            merging: None,
            merged: None,
            events: EventSlot::default(),
            signals: signal::Signals::default(),
        }
    }

    /// The signal state (registration and pending signal).
    pub fn signals(&mut self) -> &mut signal::Signals {
        &mut self.signals
    }

    /// The merged process's TTBR0 base, if a merge is in effect.
    pub fn merged(&self) -> Option<u64> {
        self.merged
    }

    /// Bit mask of every HRT core.
    fn all_cores(&self) -> u64 {
        if self.hrt_cores >= 64 {
            u64::MAX
        } else {
            (1 << self.hrt_cores) - 1
        }
    }

    fn hrt_ready(&self) -> bool {
        matches!(self.hrt, HrtStatus::Ready { .. })
    }

    pub fn trans_state(&self) -> TransState {
        self.trans
    }

    pub fn hrt_status(&self) -> HrtStatus {
        self.hrt
    }

    /// The HRT (re)boots at counter value `now`: every piece of HVM state starts afresh (unlike
    /// Palacios, which kept events, signals and the GDT area, palacios-hvm.md §8 item 14).
    pub fn hrt_boot_started(&mut self, now: u64) {
        *self = Self::new(self.hrt_cores, self.counter_frequency, now);
    }

    /// Answers the 0xf00d call with sub-operation `code` from `caller` at counter value `now`.
    /// `buffer` is the guest-physical address of the caller's x2 buffer for the sub-operations
    /// that have one ([`buffer_size`]), `None` when x2 did not translate (or is 0).
    pub fn handle(&mut self, caller: Caller, code: u64, buffer: Option<u64>, now: u64) -> Reply {
        self.handle_request(caller, code, Request { buffer, ..Request::default() }, now)
    }

    /// [`HvmState::handle`] with everything a call can bring.
    pub fn handle_request(&mut self, caller: Caller, code: u64, request: Request, now: u64) -> Reply {
        let buffer = request.buffer;
        let Some(op) = SubOp::from_code(code) else {
            return Reply::error(HvmError::UnknownSubOp);
        };
        if let Err(error) = check_caller(op, caller) {
            return Reply::error(error);
        }
        match op {
            SubOp::Null => {
                let ticks = now.saturating_sub(self.hrt.started());
                Reply { regs: [HVM_OK, self.ticks_to_ns(ticks), ticks, 0], effect: Effect::None }
            }
            SubOp::ResetRos => Reply::ok(Effect::ResetRos),
            SubOp::ResetHrt => Reply::ok(Effect::ResetHrt),
            SubOp::ResetBoth => Reply::ok(Effect::ResetBoth),
            SubOp::HrtReady => self.core_ready(caller.hrt_core, now),
            SubOp::GetStateAndEvent => {
                let state = [self.trans as u64, u64::from(self.hrt_ready()), self.hrt_cores as u64, 0];
                let event = self.events.bytes();
                let effect = buffer.map_or(Effect::None, |buffer| Effect::WriteEvent { buffer, event });
                Reply { regs: state, effect }
            }
            SubOp::Merge => self.start_merge(Some(request.ttbr0), SubOp::Merge),
            SubOp::Unmerge => self.start_merge(None, SubOp::Unmerge),
            SubOp::MergeDone => self.merge_done(caller.hrt_core),
            SubOp::MirrorTls | SubOp::UnmirrorTls => self.start(op, TransState::TlsSync, 1, Some(0)),
            SubOp::TlsSyncDone => self.finish_single(TransState::TlsSync, caller.hrt_core),
            SubOp::PostRosEvent => match (buffer, request.event) {
                (Some(_), Some(event)) => Self::answer(self.events.post(event)),
                _ => Reply::error(HvmError::BadAddress),
            },
            SubOp::EventComplete => Self::answer(self.events.complete(request.args[0])),
            SubOp::AckEventResult => Self::answer(self.events.acknowledge()),
            SubOp::SetSignalHandler => {
                Self::answer(self.signals.register(request.ttbr0, request.args[0], request.args[1]))
            }
            SubOp::RaiseSignal => match self.signals.raise(request.args[0]) {
                Ok(()) => Reply::ok(Effect::SignalRaised),
                Err(error) => Reply::error(error),
            },
            SubOp::SignalReturn => Reply::ok(Effect::SignalReturn { frame: request.args[0] }),
            SubOp::InstallHrtImage => {
                let [va, size, ..] = request.args;
                if va == 0 || size == 0 {
                    return Reply::error(HvmError::InvalidArgument);
                }
                Reply::ok(Effect::InstallImage { va, size })
            }
            SubOp::Invoke => self.start(op, TransState::Call, 1, buffer),
            SubOp::ParallelInvoke => self.start(op, TransState::ParCall, self.all_cores(), buffer),
            SubOp::SyncSetup => self.start(op, TransState::SyncSetup, 1, buffer),
            SubOp::SyncTeardown => self.sync_teardown(buffer),
            SubOp::CallDone => self.call_done(caller.hrt_core),
        }
    }

    fn answer(result: Result<(), HvmError>) -> Reply {
        match result {
            Ok(()) => Reply::ok(Effect::None),
            Err(error) => Reply::error(error),
        }
    }

    /// Merge (`Some(ttbr0)`) or unmerge (`None`): an upcall to the first HRT core.
    fn start_merge(&mut self, target: Option<u64>, op: SubOp) -> Reply {
        let reply = self.start(op, TransState::Merge, 1, Some(0));
        if reply.regs[0] == HVM_OK {
            self.merging = Some(target);
        }
        reply
    }

    /// The HRT finished a merge or unmerge.
    fn merge_done(&mut self, core: usize) -> Reply {
        let reply = self.finish_single(TransState::Merge, core);
        if reply.regs[0] != HVM_OK {
            return reply;
        }
        self.merged = self.merging.take().flatten();
        Reply::ok(Effect::MergeChanged { merged: self.merged })
    }

    /// The answer of the first HRT core that ends a single-core request in state `state`.
    fn finish_single(&mut self, state: TransState, core: usize) -> Reply {
        if self.trans != state || core != 0 || self.awaiting & 1 == 0 {
            return Reply::error(HvmError::WrongState);
        }
        self.awaiting = 0;
        self.trans = TransState::Idle;
        Reply::ok(Effect::None)
    }

    /// Starts a request to the HRT cores in `cores` from the idle state.
    fn start(&mut self, op: SubOp, next: TransState, cores: u64, buffer: Option<u64>) -> Reply {
        if self.trans != TransState::Idle || !self.hrt_ready() {
            return Reply::error(HvmError::WrongState);
        }
        let Some(buffer) = buffer else {
            return Reply::error(HvmError::BadAddress);
        };
        self.trans = next;
        self.awaiting = cores;
        if op == SubOp::SyncSetup {
            self.sync_channel = Some(buffer);
        }
        Reply::ok(Effect::Upcall { op, buffer, cores })
    }

    /// SyncTeardown: only in sync mode, for the channel that was set up.
    fn sync_teardown(&mut self, buffer: Option<u64>) -> Reply {
        if self.trans != TransState::Sync {
            return Reply::error(HvmError::WrongState);
        }
        let Some(buffer) = buffer else {
            return Reply::error(HvmError::BadAddress);
        };
        if Some(buffer) != self.sync_channel {
            return Reply::error(HvmError::InvalidArgument);
        }
        self.trans = TransState::SyncTeardown;
        self.awaiting = 1;
        Reply::ok(Effect::Upcall { op: SubOp::SyncTeardown, buffer, cores: 1 })
    }

    /// HRT core `core` finished the request in flight; the last answer ends it.
    fn call_done(&mut self, core: usize) -> Reply {
        let bit = 1u64 << core.min(63);
        let answering = matches!(
            self.trans,
            TransState::Call | TransState::ParCall | TransState::SyncSetup | TransState::SyncTeardown
        );
        if !answering || core >= self.hrt_cores || self.awaiting & bit == 0 {
            return Reply::error(HvmError::WrongState);
        }
        self.awaiting &= !bit;
        if self.awaiting == 0 {
            self.trans = match self.trans {
                TransState::SyncSetup => TransState::Sync,
                _ => {
                    self.sync_channel = None;
                    TransState::Idle
                }
            };
        }
        Reply::ok(Effect::None)
    }

    /// HRT core `core` reports ready; the last one makes the HRT ready.
    fn core_ready(&mut self, core: usize, now: u64) -> Reply {
        let HrtStatus::Booting { started, ready_cores } = self.hrt else {
            return Reply::error(HvmError::WrongState);
        };
        let bit = 1u64 << core.min(63);
        if core >= self.hrt_cores || ready_cores & bit != 0 {
            return Reply::error(HvmError::WrongState);
        }
        let ready_cores = ready_cores | bit;
        if ready_cores.count_ones() as usize == self.hrt_cores {
            let boot_ticks = now.saturating_sub(started);
            self.hrt = HrtStatus::Ready { started, boot_ticks };
            return Reply::ok(Effect::HrtReady { cores: self.hrt_cores, boot_ticks });
        }
        self.hrt = HrtStatus::Booting { started, ready_cores };
        Reply::ok(Effect::None)
    }

    /// Counter ticks in nanoseconds.
    pub fn ticks_to_ns(&self, ticks: u64) -> u64 {
        (u128::from(ticks) * 1_000_000_000 / u128::from(self.counter_frequency)) as u64
    }
}
