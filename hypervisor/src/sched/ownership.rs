//! Who holds a vCPU's registers, so that starting a vCPU never races with the pCPU that still
//! runs it or is saving it (issue 13, hole 3).
//!
//! A vCPU's registers live either on the pCPU that loaded it or in its saved slot. PSCI marks a
//! vCPU off when it *calls* CPU_OFF, while its pCPU is still on the way out; a CPU_ON from
//! another vCPU can come in that window, and a reset stops vCPUs that are still loaded. So a
//! start request for a loaded vCPU is kept aside and applied by the pCPU when it lets go of
//! the vCPU (saved or dropped), never written over registers that pCPU is about to save; and a
//! vCPU stopped before its pCPU finished picking it is not loaded at all.

use super::RunState;

/// A vCPU slot's ownership: loaded on a pCPU or not, and a start waiting for its release.
/// `S` is what a start carries (entry registers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership<S> {
    loaded: bool,
    pending_start: Option<S>,
}

impl<S> Default for Ownership<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Ownership<S> {
    pub const fn new() -> Self {
        Self { loaded: false, pending_start: None }
    }

    /// Whether a pCPU holds the vCPU's registers now.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// A start was requested: `Some(start)` to apply to the slot now, or `None` if it waits
    /// for the pCPU holding the vCPU to release it. A later request replaces a waiting one
    /// (PSCI refuses a second CPU_ON while the first is pending, so only a reset does that).
    pub fn request_start(&mut self, start: S) -> Option<S> {
        if self.loaded {
            self.pending_start = Some(start);
            None
        } else {
            Some(start)
        }
    }

    /// A pCPU wants to load the vCPU, whose run state is `state`: whether it may. A vCPU
    /// stopped (off) since the pCPU chose it stays where it is.
    pub fn try_load(&mut self, state: RunState) -> bool {
        if self.loaded || state == RunState::Off {
            return false;
        }
        self.loaded = true;
        true
    }

    /// The pCPU lets go of the vCPU (after saving it, or dropping it on a reset): the start
    /// that waited for this, if any, to apply instead of what was saved.
    pub fn release(&mut self) -> Option<S> {
        self.loaded = false;
        self.pending_start.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_for_an_unloaded_vcpu_applies_at_once() {
        let mut owner = Ownership::new();
        assert_eq!(owner.request_start(7), Some(7));
        assert!(!owner.is_loaded());
    }

    #[test]
    fn a_start_for_a_loaded_vcpu_waits_for_its_release() {
        // CPU_OFF on pCPU A, CPU_ON from pCPU B before A saved the vCPU.
        let mut owner = Ownership::new();
        assert!(owner.try_load(RunState::Runnable));
        assert_eq!(owner.request_start(1), None, "not written over registers A will save");
        assert_eq!(owner.release(), Some(1), "A applies it instead of its saved state");
        assert_eq!(owner.release(), None, "applied once");
        assert!(!owner.is_loaded());
    }

    #[test]
    fn a_later_start_replaces_a_waiting_one() {
        let mut owner = Ownership::new();
        assert!(owner.try_load(RunState::Runnable));
        assert_eq!(owner.request_start(1), None);
        assert_eq!(owner.request_start(2), None);
        assert_eq!(owner.release(), Some(2));
    }

    #[test]
    fn a_stopped_vcpu_is_not_loaded() {
        // A reset marked the vCPU off after the scheduler chose it.
        let mut owner: Ownership<u8> = Ownership::new();
        assert!(!owner.try_load(RunState::Off));
        assert!(!owner.is_loaded());
        assert!(owner.try_load(RunState::Waiting { wake_at: None }), "a waiting vCPU with an interrupt may load");
    }

    #[test]
    fn a_loaded_vcpu_is_not_loaded_twice() {
        let mut owner: Ownership<u8> = Ownership::new();
        assert!(owner.try_load(RunState::Runnable));
        assert!(!owner.try_load(RunState::Runnable), "two pCPUs must never run one vCPU");
        assert_eq!(owner.release(), None);
        assert!(owner.try_load(RunState::Runnable));
    }
}
