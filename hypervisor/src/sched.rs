//! Which vCPU a pCPU runs next. Pure policy, unit-tested on the host; `vm::run` applies it.
//!
//! vCPUs are placed statically ([`Placement`]): vCPU `v` lives on pCPU `v % pcpus`, except that
//! a hybrid VM's HRT cores get pCPUs of their own whenever there are more pCPUs than HRT cores
//! (the ROS then shares the others). With as many pCPUs as vCPUs each pCPU has one vCPU (pinned,
//! no preemption tick); a pCPU with several time-slices them round-robin on the EL2 physical
//! timer (CNTHP) tick. A vCPU waiting in WFI is skipped until it has an interrupt or its timer
//! deadline passes.

mod ownership;

pub use ownership::Ownership;

use crate::options::MAX_VCPUS;

/// Which pCPU each vCPU lives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    vcpus: usize,
    pcpus: usize,
    /// A hybrid VM's HRT cores: first vCPU and count.
    hrt: Option<(usize, usize)>,
}

impl Placement {
    /// `vcpus` vCPUs spread round-robin over `pcpus` pCPUs.
    pub const fn uniform(vcpus: usize, pcpus: usize) -> Self {
        Self { vcpus, pcpus: if pcpus == 0 { 1 } else { pcpus }, hrt: None }
    }

    /// A hybrid VM whose vCPUs `[first_hrt, first_hrt + hrt_cores)` are HRT cores.
    pub const fn hybrid(vcpus: usize, pcpus: usize, first_hrt: usize, hrt_cores: usize) -> Self {
        Self { hrt: Some((first_hrt, hrt_cores)), ..Self::uniform(vcpus, pcpus) }
    }

    pub const fn pcpus(&self) -> usize {
        self.pcpus
    }

    pub const fn vcpus(&self) -> usize {
        self.vcpus
    }

    /// The pCPU vCPU `vcpu` runs on.
    pub const fn home(&self, vcpu: usize) -> usize {
        match self.hrt {
            // Not enough pCPUs for one each, but enough to give each HRT core its own: the
            // HRT takes the last pCPUs, the ROS shares the first ones.
            Some((first, cores)) if self.vcpus > self.pcpus && self.pcpus > cores => {
                let ros_pcpus = self.pcpus - cores;
                if vcpu >= first {
                    ros_pcpus + (vcpu - first) % cores
                } else {
                    vcpu % ros_pcpus
                }
            }
            _ => vcpu % self.pcpus,
        }
    }
}

/// A vCPU's scheduling state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunState {
    /// Powered off (PSCI): never picked.
    Off,
    /// Ready to run.
    Runnable,
    /// In WFI: runnable again once it has an interrupt to take or the counter reaches
    /// `wake_at` (its timer deadline), whichever comes first.
    Waiting { wake_at: Option<u64> },
}

/// The vCPUs of one pCPU and which one is current.
#[derive(Clone, Debug)]
pub struct RunQueue {
    vcpus: [usize; MAX_VCPUS],
    len: usize,
    pub current: Option<usize>,
}

impl RunQueue {
    /// The queue of pCPU `pcpu` under `placement`.
    pub fn new(pcpu: usize, placement: &Placement) -> Self {
        let mut queue = Self { vcpus: [0; MAX_VCPUS], len: 0, current: None };
        for vcpu in (0..placement.vcpus().min(MAX_VCPUS)).filter(|&v| placement.home(v) == pcpu) {
            queue.vcpus[queue.len] = vcpu;
            queue.len += 1;
        }
        queue
    }

    /// The vCPUs living here, in order.
    pub fn vcpus(&self) -> &[usize] {
        &self.vcpus[..self.len]
    }

    /// Whether this pCPU time-slices (needs the preemption tick).
    pub fn is_shared(&self) -> bool {
        self.len > 1
    }

    /// The next vCPU to run, round-robin starting after the current one (so a preempted vCPU
    /// goes to the back), or `None` if nothing can run. `can_run(v)` says whether a waiting
    /// vCPU has an interrupt; `now` is the counter value.
    pub fn pick_next(&self, states: &[RunState], now: u64, mut can_run: impl FnMut(usize) -> bool) -> Option<usize> {
        let start = match self.current {
            Some(current) => self.vcpus().iter().position(|&v| v == current).map_or(0, |i| i + 1),
            None => 0,
        };
        (0..self.len).map(|i| self.vcpus[(start + i) % self.len]).find(|&v| match states.get(v) {
            Some(RunState::Runnable) => true,
            Some(RunState::Waiting { wake_at }) => wake_at.is_some_and(|t| now >= t) || can_run(v),
            Some(RunState::Off) | None => false,
        })
    }

    /// The earliest timer deadline among this pCPU's waiting vCPUs (to program the wake-up).
    pub fn earliest_deadline(&self, states: &[RunState]) -> Option<u64> {
        self.vcpus()
            .iter()
            .filter_map(|&v| match states.get(v) {
                Some(RunState::Waiting { wake_at }) => *wake_at,
                _ => None,
            })
            .min()
    }
}

/// What an exit handler asks of the scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resched {
    /// Keep running the loaded vCPU.
    No,
    /// The time slice ended: run another runnable vCPU if there is one.
    Preempt,
    /// The vCPU waits for an interrupt (WFI) until `wake_at` at the latest.
    Wait { wake_at: Option<u64> },
    /// The vCPU powered itself off (PSCI CPU_OFF).
    Off,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrt_cores_get_their_own_pcpus_when_there_are_enough() {
        // 3 ROS + 1 HRT on 2 pCPUs: the HRT alone on pCPU 1, the ROS shares pCPU 0.
        let placement = Placement::hybrid(4, 2, 3, 1);
        assert_eq!([0, 1, 2, 3].map(|v| placement.home(v)), [0, 0, 0, 1]);
        assert_eq!(RunQueue::new(1, &placement).vcpus(), &[3]);
        // 4 ROS + 2 HRT on 4 pCPUs.
        let placement = Placement::hybrid(6, 4, 4, 2);
        assert_eq!([0, 1, 2, 3, 4, 5].map(|v| placement.home(v)), [0, 1, 0, 1, 2, 3]);
        // Enough for everyone: one each, as uniform.
        let placement = Placement::hybrid(4, 4, 3, 1);
        assert_eq!([0, 1, 2, 3].map(|v| placement.home(v)), [0, 1, 2, 3]);
        // Not enough for the HRT alone (2 HRT cores on 2 pCPUs): shared round-robin.
        let placement = Placement::hybrid(4, 2, 2, 2);
        assert_eq!([0, 1, 2, 3].map(|v| placement.home(v)), [0, 1, 0, 1]);
        assert_eq!(Placement::uniform(3, 0).home(2), 0, "no pCPU count is treated as one");
    }

    #[test]
    fn placement_spreads_vcpus_over_pcpus() {
        assert_eq!(RunQueue::new(0, &Placement::uniform(4, 2)).vcpus(), &[0, 2]);
        assert_eq!(RunQueue::new(1, &Placement::uniform(4, 2)).vcpus(), &[1, 3]);
        assert_eq!(RunQueue::new(0, &Placement::uniform(4, 1)).vcpus(), &[0, 1, 2, 3]);
        assert_eq!(RunQueue::new(3, &Placement::uniform(4, 4)).vcpus(), &[3]);
        assert!(!RunQueue::new(3, &Placement::uniform(4, 4)).is_shared());
        assert!(RunQueue::new(0, &Placement::uniform(4, 1)).is_shared());
    }

    #[test]
    fn round_robin_after_the_current_vcpu() {
        let mut queue = RunQueue::new(0, &Placement::uniform(4, 1));
        let states = [RunState::Runnable; 4];
        queue.current = Some(1);
        assert_eq!(queue.pick_next(&states, 0, |_| false), Some(2));
        queue.current = Some(3);
        assert_eq!(queue.pick_next(&states, 0, |_| false), Some(0), "wraps around");
        queue.current = None;
        assert_eq!(queue.pick_next(&states, 0, |_| false), Some(0));
    }

    #[test]
    fn the_only_runnable_vcpu_keeps_running() {
        let mut queue = RunQueue::new(0, &Placement::uniform(4, 1));
        queue.current = Some(2);
        let states = [RunState::Off, RunState::Waiting { wake_at: None }, RunState::Runnable, RunState::Off];
        assert_eq!(queue.pick_next(&states, 0, |_| false), Some(2));
    }

    #[test]
    fn waiting_vcpus_run_when_interrupted_or_their_timer_expires() {
        let queue = RunQueue::new(0, &Placement::uniform(3, 1));
        let states = [RunState::Off, RunState::Waiting { wake_at: Some(500) }, RunState::Waiting { wake_at: None }];
        assert_eq!(queue.pick_next(&states, 100, |_| false), None, "nothing ready yet");
        assert_eq!(queue.pick_next(&states, 500, |_| false), Some(1), "deadline reached");
        assert_eq!(queue.pick_next(&states, 100, |v| v == 2), Some(2), "interrupt pending");
        assert_eq!(queue.earliest_deadline(&states), Some(500));
    }

    #[test]
    fn off_vcpus_are_never_picked() {
        let queue = RunQueue::new(0, &Placement::uniform(2, 1));
        assert_eq!(queue.pick_next(&[RunState::Off, RunState::Off], u64::MAX, |_| true), None);
    }
}
