//! What a pCPU knows about the list registers of the vCPU loaded on it, between exits, so the
//! exit path touches the virtual GIC (its lock and the ICH_* registers) only when something
//! can have changed.
//!
//! On QEMU every ICH_* access is slow (it takes QEMU's global lock) and the vGIC's locks can be
//! contended (the VM-wide one it had was, by every vCPU); taking both on every exit made each
//! exit cost far more than the exit itself. The rules, as KVM does with its used-LR count and ELRSR:
//!
//! - **sync** (learn what the guest did with its list registers) only when a list register is
//!   in use and either one of them was emptied (ICH_ELRSR_EL2), or the exit may depend on or
//!   change the vCPU's interrupt state (a physical IRQ: maintenance, kick, timer; WFI; an
//!   access to the vGIC's frames);
//! - **flush** (refill the list registers) only after a sync, when the vCPU was kicked (its
//!   interrupts changed), when more interrupts waited than fitted, or when the vCPU was just
//!   loaded.
//!
//! A pending→active change of a list register (the guest acknowledged it) is not visible in
//! ELRSR and needs no action; completion of a level-triggered interrupt raises the EOI
//! maintenance interrupt, which is a physical IRQ and so always syncs.

use super::MAX_LRS;

/// Why the loaded vCPU exited, as far as its interrupt state is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitReason {
    /// A physical interrupt: GIC maintenance, a kick, the guest's timer, a device.
    Irq,
    /// The vCPU waits for an interrupt (WFI or CPU_SUSPEND): needs an exact view.
    Wait,
    /// A read or write of the vGIC's distributor or redistributor frames.
    GicAccess,
    /// A write to a timer whose interrupt the exit may withdraw (the trapped physical timer).
    TimerWrite,
    /// Anything else (HVC, SGI sent to others, device MMIO, system registers...).
    Other,
}

impl ExitReason {
    /// Whether the exit's handling reads the vCPU's interrupt state, so the list registers
    /// must be synced before it (the others can sync at the end, with the flush).
    pub fn needs_exact_state(self) -> bool {
        matches!(self, Self::Wait | Self::GicAccess | Self::TimerWrite)
    }
}

/// The list registers of the loaded vCPU as last written to the hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadedLrs {
    values: [u64; MAX_LRS],
    /// Number of list registers the CPU implements.
    count: usize,
    /// The last flush left interrupts waiting (ICH_HCR_EL2.UIE is set).
    overflow: bool,
    /// The hardware may hold anything (a vCPU was just loaded or reset): sync and flush all.
    stale: bool,
}

impl LoadedLrs {
    /// Nothing known yet: the first exit syncs and flushes everything.
    pub const fn new(count: usize) -> Self {
        let count = if count < MAX_LRS { count } else { MAX_LRS };
        Self { values: [0; MAX_LRS], count, overflow: false, stale: true }
    }

    /// Forget what the hardware holds (a vCPU was loaded, or the virtual interface reset).
    pub fn invalidate(&mut self) {
        self.stale = true;
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Bit n set: list register n holds an interrupt.
    pub fn in_use(&self) -> u16 {
        self.values[..self.count]
            .iter()
            .enumerate()
            .filter(|(_, &value)| value != 0)
            .fold(0, |mask, (n, _)| mask | 1 << n)
    }

    /// Whether this exit must sync. `empty` reads ICH_ELRSR_EL2 (bit n set: list register n is
    /// empty); it is called only when the answer depends on it.
    pub fn needs_sync(&self, reason: ExitReason, empty: impl FnOnce() -> u16) -> bool {
        if self.stale {
            return true;
        }
        let in_use = self.in_use();
        if in_use == 0 {
            return false;
        }
        reason != ExitReason::Other || empty() & in_use != 0
    }

    /// Whether the list registers must be refilled before entry.
    pub fn needs_flush(&self, synced: bool, kicked: bool) -> bool {
        self.stale || synced || kicked || self.overflow
    }

    /// The values the hardware holds, for the list registers `read` is asked about (those in
    /// use; the others are known to be zero).
    pub fn current(&self, mut read: impl FnMut(usize) -> u64) -> [u64; MAX_LRS] {
        let mut lrs = [0u64; MAX_LRS];
        let in_use = self.in_use();
        for (n, lr) in lrs.iter_mut().enumerate().take(self.count) {
            if self.stale || in_use & 1 << n != 0 {
                *lr = read(n);
            }
        }
        lrs
    }

    /// Records what was written after a sync or flush: `write` is called for each list
    /// register whose value differs from what the hardware holds (`hardware`).
    pub fn update(&mut self, hardware: &[u64; MAX_LRS], new: &[u64; MAX_LRS], mut write: impl FnMut(usize, u64)) {
        for n in 0..self.count {
            if new[n] != hardware[n] || self.stale {
                write(n, new[n]);
            }
        }
        self.values = *new;
        self.stale = false;
    }

    /// Records whether the last flush overflowed; says whether ICH_HCR_EL2 must change.
    pub fn set_overflow(&mut self, overflow: bool) -> bool {
        let changed = self.overflow != overflow;
        self.overflow = overflow;
        changed
    }

    /// Whether the last flush overflowed (ICH_HCR_EL2.UIE is wanted).
    pub fn overflow(&self) -> bool {
        self.overflow
    }

    pub fn values(&self) -> &[u64; MAX_LRS] {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loaded(values: &[u64]) -> LoadedLrs {
        let mut lrs = LoadedLrs::new(4);
        let mut new = [0; MAX_LRS];
        new[..values.len()].copy_from_slice(values);
        lrs.update(&[0; MAX_LRS], &new, |_, _| {});
        lrs
    }

    const NOTHING_EMPTY: fn() -> u16 = || 0;

    #[test]
    fn a_fresh_vcpu_syncs_and_flushes_everything() {
        let lrs = LoadedLrs::new(4);
        assert!(lrs.needs_sync(ExitReason::Other, || panic!("no need to ask the hardware")));
        assert!(lrs.needs_flush(false, false));
        let mut read = 0;
        lrs.current(|_| {
            read += 1;
            0
        });
        assert_eq!(read, 4, "a stale view reads every list register");
    }

    #[test]
    fn with_empty_list_registers_nothing_is_synced_or_flushed() {
        let lrs = loaded(&[]);
        for reason in
            [ExitReason::Irq, ExitReason::Wait, ExitReason::GicAccess, ExitReason::TimerWrite, ExitReason::Other]
        {
            assert!(!lrs.needs_sync(reason, || panic!("ELRSR not read when nothing is in use")));
        }
        assert!(!lrs.needs_flush(false, false), "a null HVC touches nothing");
        lrs.current(|n| panic!("list register {n} read though unused"));
    }

    #[test]
    fn in_use_list_registers_sync_when_emptied_or_when_the_exit_needs_it() {
        let lrs = loaded(&[0xA000_0000_0000_001B, 0, 0x5000_0000_0000_0001]);
        assert_eq!(lrs.in_use(), 0b101);
        assert!(!lrs.needs_sync(ExitReason::Other, NOTHING_EMPTY));
        assert!(!lrs.needs_sync(ExitReason::Other, || 0b1010), "only unused ones are empty");
        assert!(lrs.needs_sync(ExitReason::Other, || 0b0100), "list register 2 was completed");
        assert!(lrs.needs_sync(ExitReason::Irq, NOTHING_EMPTY));
        assert!(lrs.needs_sync(ExitReason::Wait, NOTHING_EMPTY));
        assert!(lrs.needs_sync(ExitReason::GicAccess, NOTHING_EMPTY));
        let mut asked = [false; 4];
        lrs.current(|n| {
            asked[n] = true;
            0
        });
        assert_eq!(asked, [true, false, true, false], "only list registers in use are read");
    }

    #[test]
    fn flush_after_a_sync_a_kick_or_an_overflow() {
        let mut lrs = loaded(&[1]);
        assert!(!lrs.needs_flush(false, false));
        assert!(lrs.needs_flush(true, false));
        assert!(lrs.needs_flush(false, true));
        assert!(lrs.set_overflow(true), "UIE must be set");
        assert!(!lrs.set_overflow(true), "already set");
        assert!(lrs.needs_flush(false, false), "waiting interrupts are retried at every exit");
        assert!(lrs.set_overflow(false));
        lrs.invalidate();
        assert!(lrs.needs_flush(false, false));
    }

    #[test]
    fn only_changed_list_registers_are_written() {
        let mut lrs = loaded(&[1, 2, 0, 0]);
        let hardware = lrs.current(|n| [1, 2, 0, 0][n]);
        let mut new = hardware;
        new[1] = 0;
        new[3] = 7;
        let mut written = alloc::vec::Vec::new();
        lrs.update(&hardware, &new, |n, value| written.push((n, value)));
        assert_eq!(written, [(1, 0), (3, 7)]);
        assert_eq!(lrs.in_use(), 0b1001);
    }

    #[test]
    fn a_stale_view_writes_every_list_register() {
        let mut lrs = LoadedLrs::new(2);
        let mut written = 0;
        lrs.update(&[0; MAX_LRS], &[0; MAX_LRS], |_, _| written += 1);
        assert_eq!(written, 2, "zeroes too: the hardware may hold a previous vCPU's interrupts");
        assert_eq!(LoadedLrs::new(99).count(), MAX_LRS);
    }
}
