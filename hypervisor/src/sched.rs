//! Which vCPU a pCPU runs next. Pure policy, unit-tested on the host; `vm::run` applies it.
//!
//! vCPUs are placed statically: vCPU `v` lives on pCPU `v % pcpus`. With as many pCPUs as
//! vCPUs each pCPU has one vCPU (pinned, no preemption tick); with fewer, a pCPU time-slices
//! its vCPUs round-robin on the EL2 physical timer (CNTHP) tick. A vCPU waiting in WFI is
//! skipped until it has an interrupt or its timer deadline passes.

use crate::options::MAX_VCPUS;

/// The pCPU vCPU `vcpu` runs on.
pub const fn home_pcpu(vcpu: usize, pcpus: usize) -> usize {
    if pcpus == 0 {
        0
    } else {
        vcpu % pcpus
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
    /// The queue of pCPU `pcpu` for a VM of `vcpu_count` vCPUs on `pcpus` pCPUs.
    pub fn new(pcpu: usize, vcpu_count: usize, pcpus: usize) -> Self {
        let mut queue = Self { vcpus: [0; MAX_VCPUS], len: 0, current: None };
        for vcpu in (0..vcpu_count.min(MAX_VCPUS)).filter(|&v| home_pcpu(v, pcpus) == pcpu) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_spreads_vcpus_over_pcpus() {
        assert_eq!(RunQueue::new(0, 4, 2).vcpus(), &[0, 2]);
        assert_eq!(RunQueue::new(1, 4, 2).vcpus(), &[1, 3]);
        assert_eq!(RunQueue::new(0, 4, 1).vcpus(), &[0, 1, 2, 3]);
        assert_eq!(RunQueue::new(3, 4, 4).vcpus(), &[3]);
        assert!(!RunQueue::new(3, 4, 4).is_shared());
        assert!(RunQueue::new(0, 4, 1).is_shared());
    }

    #[test]
    fn round_robin_after_the_current_vcpu() {
        let mut queue = RunQueue::new(0, 4, 1);
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
        let mut queue = RunQueue::new(0, 4, 1);
        queue.current = Some(2);
        let states = [RunState::Off, RunState::Waiting { wake_at: None }, RunState::Runnable, RunState::Off];
        assert_eq!(queue.pick_next(&states, 0, |_| false), Some(2));
    }

    #[test]
    fn waiting_vcpus_run_when_interrupted_or_their_timer_expires() {
        let queue = RunQueue::new(0, 3, 1);
        let states = [RunState::Off, RunState::Waiting { wake_at: Some(500) }, RunState::Waiting { wake_at: None }];
        assert_eq!(queue.pick_next(&states, 100, |_| false), None, "nothing ready yet");
        assert_eq!(queue.pick_next(&states, 500, |_| false), Some(1), "deadline reached");
        assert_eq!(queue.pick_next(&states, 100, |v| v == 2), Some(2), "interrupt pending");
        assert_eq!(queue.earliest_deadline(&states), Some(500));
    }

    #[test]
    fn off_vcpus_are_never_picked() {
        let queue = RunQueue::new(0, 2, 1);
        assert_eq!(queue.pick_next(&[RunState::Off, RunState::Off], u64::MAX, |_| true), None);
    }
}
