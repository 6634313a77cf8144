//! Who may issue which 0xf00d sub-operation (DESIGN.md §7: "accepted only from the partition
//! that owns them"; Palacios checked partitions only, palacios-hvm.md §8 item 13).
//!
//! - A ROS *process* (EL0, through the doorbell) drives the HVM: invocations, merges, signals,
//!   TLS mirroring and image installs name a process, so only EL0 may ask for them.
//! - The ROS kernel (EL1, `hvc`) may ping and reset, like a process.
//! - The HRT kernel (EL1, `hvc`) answers: call done, merge done, events, ready.
//! - ROS code running in the HRT (HRT EL0, merged) may issue nothing: it cannot `hvc`, and the
//!   doorbell is not mapped for the HRT.

use hvm_ros_lib::abi::{HvmError, SubOp};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    Ros,
    Hrt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    El0,
    El1,
}

/// The vCPU that made a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub partition: Partition,
    pub level: Level,
    /// For an HRT vCPU, its index among the HRT cores (0 for the first); 0 for the ROS.
    pub hrt_core: usize,
}

impl Caller {
    pub const fn ros(level: Level) -> Self {
        Self { partition: Partition::Ros, level, hrt_core: 0 }
    }

    pub const fn hrt(level: Level, hrt_core: usize) -> Self {
        Self { partition: Partition::Hrt, level, hrt_core }
    }
}

/// Which callers a sub-operation accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Allowed {
    /// Anyone but ROS code in the HRT.
    Anyone,
    /// A ROS process or the ROS kernel.
    Ros,
    /// A ROS process only.
    RosProcess,
    /// The HRT kernel only.
    HrtKernel,
}

fn allowed(op: SubOp) -> Allowed {
    use SubOp::*;
    match op {
        Null | RaiseSignal | GetStateAndEvent => Allowed::Anyone,
        ResetRos | ResetHrt | ResetBoth | EventComplete => Allowed::Ros,
        InstallHrtImage | Invoke | ParallelInvoke | SyncSetup | SyncTeardown | Merge | Unmerge | SetSignalHandler
        | SignalReturn | MirrorTls | UnmirrorTls => Allowed::RosProcess,
        PostRosEvent | AckEventResult | CallDone | MergeDone | TlsSyncDone | HrtReady => Allowed::HrtKernel,
    }
}

/// Whether `caller` may issue `op`: the error names what is wrong (partition or level).
pub fn check_caller(op: SubOp, caller: Caller) -> Result<(), HvmError> {
    use Level::{El0, El1};
    use Partition::{Hrt, Ros};
    let (partition_ok, level_ok) = match (allowed(op), caller.partition, caller.level) {
        (_, Hrt, El0) => (true, false),
        (Allowed::Anyone, _, _) => (true, true),
        (Allowed::Ros, Ros, _) => (true, true),
        (Allowed::RosProcess, Ros, level) => (true, level == El0),
        (Allowed::HrtKernel, Hrt, El1) => (true, true),
        _ => (false, true),
    };
    match (partition_ok, level_ok) {
        (false, _) => Err(HvmError::WrongPartition),
        (true, false) => Err(HvmError::WrongLevel),
        (true, true) => Ok(()),
    }
}
