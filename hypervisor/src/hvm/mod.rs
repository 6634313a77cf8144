//! The hybrid VM's 0xf00d dispatcher: a pure state machine (Palacios' `trans_state` plus a
//! real HRT ready state, palacios-hvm.md §4.1 and §4.10), unit-tested on the host.
//!
//! The VM layer (`vm::hvm`) decodes who called (partition, exception level), feeds the call in
//! with the counter's value, and carries out the [`Effect`] the reply asks for (a reset, the
//! ready line). Nothing here touches the guest: a bad call only ever produces an error code.

pub mod boot;
pub mod permissions;
#[cfg(test)]
mod tests;

use hvm_ros_lib::abi::{HvmError, SubOp, TransState, HVM_OK};

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
    HrtReady { cores: usize, boot_ticks: u64 },
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
}

impl HvmState {
    /// A hybrid VM with `hrt_cores` HRT cores whose HRT boot started at counter value `now`.
    pub fn new(hrt_cores: usize, counter_frequency: u64, now: u64) -> Self {
        Self {
            hrt_cores: hrt_cores.clamp(1, 64),
            counter_frequency: counter_frequency.max(1),
            trans: TransState::Idle,
            hrt: HrtStatus::Booting { started: now, ready_cores: 0 },
        }
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

    /// Answers the 0xf00d call with sub-operation `code` and arguments x2..x7 from `caller`,
    /// at counter value `now`.
    pub fn handle(&mut self, caller: Caller, code: u64, _args: [u64; 6], now: u64) -> Reply {
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
            _ => Reply::error(HvmError::NotImplemented),
        }
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
