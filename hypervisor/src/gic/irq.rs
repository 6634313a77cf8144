//! The shadow state of one virtual interrupt, and the INTID ranges of the guest's GIC.
//!
//! An interrupt's pending and active state lives in one of two places. While it is not in a
//! list register, it is here. While it sits in a list register, the list register owns the
//! state the guest acts on (acknowledge, EOI), and this record only keeps what happened since:
//! a new edge (`latch`), the line level, and guest MMIO edits to apply at the next flush
//! (`fix`). `lr_sync.rs` moves state between the two.

use super::lr::LrState;
use crate::guest_map::{NUM_SPIS, SPI_BASE};

/// SGIs are INTIDs 0..16, PPIs 16..32: both private to a vCPU.
pub const NUM_SGIS: u32 = 16;
pub const NUM_PRIVATE: u32 = SPI_BASE;
/// One past the highest implemented INTID.
pub const INTID_END: u32 = SPI_BASE + NUM_SPIS;
/// Number of implemented INTIDs of one vCPU's view: its private ones and all SPIs.
pub const NUM_INTIDS: usize = INTID_END as usize;
/// Highest INTID a hardware-linked list register may name (1020..1023 are special).
pub const MAX_PINTID: u32 = 1019;

pub const fn is_sgi(intid: u32) -> bool {
    intid < NUM_SGIS
}

pub const fn is_private(intid: u32) -> bool {
    intid < NUM_PRIVATE
}

/// Index into the SPI table, if `intid` is an implemented SPI.
pub const fn spi_index(intid: u32) -> Option<usize> {
    if intid >= SPI_BASE && intid < INTID_END {
        Some((intid - SPI_BASE) as usize)
    } else {
        None
    }
}

/// How the interrupt's input is sensed (GICD_ICFGR<n> / GICR_ICFGR<n>).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Each rising edge (or injection) makes it pending once.
    Edge,
    /// Pending for as long as the line is high.
    Level,
}

/// Where an interrupt sits while it is in a list register, and the list register's state as
/// of the holder's last sync or flush. The state is kept here, with the interrupt, rather than
/// with the holder's record: the distributor reports an SPI's pending and active state under
/// its own lock, without the lock of the vCPU that holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LrSlot {
    pub vcpu: usize,
    pub index: usize,
    pub state: LrState,
}

/// Guest MMIO edits to an interrupt that is in a list register, applied by the owning vCPU's
/// next flush (the list register may belong to a vCPU that is running right now).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LrFixup {
    /// GICD_ICPENDR: drop the list register's pending state.
    pub clear_pending: bool,
    /// GICD_ISACTIVER / GICD_ICACTIVER: the active state to impose, last write wins.
    pub active: Option<bool>,
}

/// The shadow state of one virtual interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqState {
    pub enabled: bool,
    /// Pending state not yet handed to a list register: an edge, an injection, an SGI or a
    /// GICD_ISPENDR write. For level-triggered interrupts it lasts until the guest acknowledges
    /// the interrupt (or clears it), as the architecture's software pending latch does.
    pub latch: bool,
    /// The input line, for level-triggered interrupts.
    pub line: bool,
    /// Active state, only while not in a list register.
    pub active: bool,
    /// As written by the guest (all 8 bits kept).
    pub priority: u8,
    pub group1: bool,
    pub trigger: Trigger,
    /// Physical INTID this interrupt is linked to (HW list registers), if any.
    pub hw_pintid: Option<u32>,
    /// The list register holding it, if any.
    pub lr: Option<LrSlot>,
    pub fix: LrFixup,
    /// A hardware-linked interrupt the guest cleared (pending and active) through the
    /// distributor while no list register held it: the physical interrupt, which the
    /// hypervisor took and left active for the guest to deactivate, never will be. The owner's
    /// next flush deactivates it.
    pub physical_owed: bool,
}

impl IrqState {
    /// Reset state. Interrupts start in Group 1 (the architecture leaves the reset group of a
    /// single-security-state GIC UNKNOWN) so that a guest which never programs IGROUPR still
    /// gets IRQs rather than FIQs.
    pub const fn new(trigger: Trigger) -> Self {
        Self {
            enabled: false,
            latch: false,
            line: false,
            active: false,
            priority: 0,
            group1: true,
            trigger,
            hw_pintid: None,
            lr: None,
            fix: LrFixup { clear_pending: false, active: None },
            physical_owed: false,
        }
    }

    /// Reset state of INTID `intid`: SGIs are always edge-triggered, others start level.
    pub const fn reset(intid: u32) -> Self {
        Self::new(if is_sgi(intid) { Trigger::Edge } else { Trigger::Level })
    }

    pub fn is_edge(&self) -> bool {
        self.trigger == Trigger::Edge
    }

    /// Pending in the shadow state (not counting a list register that holds it).
    pub fn pending(&self) -> bool {
        self.latch || (self.trigger == Trigger::Level && self.line)
    }

    /// Leaves list register `index` of `vcpu`, if that is where it is: its active state and any
    /// edits meant for the list register go with it.
    pub fn leave_lr(&mut self, vcpu: usize, index: usize) {
        if self.lr.is_some_and(|slot| (slot.vcpu, slot.index) == (vcpu, index)) {
            self.lr = None;
            self.active = false;
            self.fix = LrFixup::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intid_ranges() {
        assert!(is_sgi(15) && !is_sgi(16));
        assert!(is_private(31) && !is_private(32));
        assert_eq!(spi_index(31), None);
        assert_eq!(spi_index(32), Some(0));
        assert_eq!(spi_index(INTID_END - 1), Some(NUM_SPIS as usize - 1));
        assert_eq!(spi_index(INTID_END), None);
    }

    #[test]
    fn level_interrupts_are_pending_while_the_line_is_high() {
        let mut irq = IrqState::reset(40);
        assert!(!irq.pending());
        irq.line = true;
        assert!(irq.pending());
        irq.trigger = Trigger::Edge;
        assert!(!irq.pending(), "an edge interrupt needs a latched edge");
        irq.latch = true;
        assert!(irq.pending());
    }
}
