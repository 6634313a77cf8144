//! Tests of the list register flush and sync, playing the guest's part by editing the raw
//! list register values as the virtual CPU interface would.

use super::*;
use crate::gic::irq::INTID_END;
use crate::gic::lr::{LR_EOI, LR_HW, LR_STATE_MASK, LR_STATE_SHIFT};
use crate::gic::regs::{ICACTIVER, ICENABLER, ICPENDR, ISACTIVER};
use crate::gic::Vgic;
use crate::guest_map::{PPI_VIRT_TIMER, SPI_BASE};

/// What QEMU's cortex-a57 has.
const NUM_LRS: usize = 4;
const SPI: u32 = SPI_BASE + 5;

fn vgic(vcpus: usize) -> Vgic {
    let vgic = Vgic::new(vcpus);
    vgic.set_groups(false, true);
    vgic
}

fn enable(vgic: &Vgic, vcpu: usize, intid: u32, priority: u8) {
    vgic.edit_irq(vcpu, intid, |irq| {
        irq.enabled = true;
        irq.priority = priority;
    });
}

fn make_edge(vgic: &Vgic, intid: u32) {
    vgic.edit_irq(0, intid, |irq| irq.trigger = crate::gic::irq::Trigger::Edge);
}

/// The INTIDs in valid list registers, in list register order.
fn in_lrs(lrs: &[u64]) -> Vec<u32> {
    lrs.iter()
        .map(|&raw| ListRegister::decode(raw))
        .filter(|lr| lr.state != LrState::Invalid)
        .map(|lr| lr.vintid)
        .collect()
}

fn find(lrs: &[u64], intid: u32) -> usize {
    lrs.iter()
        .position(|&raw| {
            let lr = ListRegister::decode(raw);
            lr.vintid == intid && lr.state != LrState::Invalid
        })
        .unwrap_or_else(|| panic!("INTID {intid} is in no list register"))
}

fn set_state(lrs: &mut [u64], intid: u32, state: LrState) {
    let index = find(lrs, intid);
    lrs[index] = (lrs[index] & !(LR_STATE_MASK << LR_STATE_SHIFT)) | (state as u64) << LR_STATE_SHIFT;
}

/// The guest acknowledges `intid` (ICC_IAR1_EL1).
fn guest_ack(lrs: &mut [u64], intid: u32) {
    set_state(lrs, intid, LrState::Active);
}

/// The guest completes `intid` (EOI and deactivation).
fn guest_complete(lrs: &mut [u64], intid: u32) {
    set_state(lrs, intid, LrState::Invalid);
}

#[test]
fn flush_puts_a_pending_interrupt_in_a_list_register_once() {
    let vgic = vgic(1);
    make_edge(&vgic, SPI);
    enable(&vgic, 0, SPI, 0xA3);
    vgic.set_pending(SPI, 0);
    let mut lrs = [0; NUM_LRS];
    assert_eq!(vgic.flush_lrs(0, &mut lrs), FlushResult::default());
    let lr = ListRegister::decode(lrs[0]);
    assert_eq!((lr.vintid, lr.state, lr.priority), (SPI, LrState::Pending, 0xA0));
    assert!(lr.group1 && lr.pintid.is_none() && !lr.eoi_maintenance);
    assert_eq!(vgic.gicd_read(0x200 + 4, 4).value, 1 << 5, "reads pending while in the LR");

    vgic.sync_lrs(0, &mut lrs);
    vgic.flush_lrs(0, &mut lrs);
    assert_eq!(in_lrs(&lrs), [SPI], "not duplicated");
    assert!(vgic.has_deliverable(0));
}

#[test]
fn overflow_is_flagged_and_priority_order_respected() {
    let vgic = vgic(1);
    let priorities = [0xC0, 0x10, 0x80, 0xF0, 0x40, 0x20];
    for (n, &priority) in priorities.iter().enumerate() {
        let intid = SPI_BASE + n as u32;
        make_edge(&vgic, intid);
        enable(&vgic, 0, intid, priority);
        vgic.set_pending(intid, 0);
    }
    let mut lrs = [0; NUM_LRS];
    assert!(vgic.flush_lrs(0, &mut lrs).overflow);
    let best_four = [SPI_BASE + 1, SPI_BASE + 5, SPI_BASE + 4, SPI_BASE + 2];
    assert_eq!(in_lrs(&lrs), best_four);

    // The guest finishes two: their slots take the remaining two.
    guest_ack(&mut lrs, SPI_BASE + 1);
    guest_complete(&mut lrs, SPI_BASE + 1);
    guest_complete(&mut lrs, SPI_BASE + 5);
    vgic.sync_lrs(0, &mut lrs);
    assert_eq!(in_lrs(&lrs), [SPI_BASE + 4, SPI_BASE + 2], "sync frees completed slots");
    assert!(!vgic.flush_lrs(0, &mut lrs).overflow);
    assert_eq!(in_lrs(&lrs), [SPI_BASE, SPI_BASE + 3, SPI_BASE + 4, SPI_BASE + 2]);
}

#[test]
fn higher_priority_arrival_evicts_a_pending_lower_one() {
    let vgic = vgic(1);
    for n in 0..NUM_LRS as u32 {
        enable(&vgic, 0, SPI_BASE + n, 0xA0);
        make_edge(&vgic, SPI_BASE + n);
        vgic.set_pending(SPI_BASE + n, 0);
    }
    let mut lrs = [0; NUM_LRS];
    vgic.flush_lrs(0, &mut lrs);
    guest_ack(&mut lrs, SPI_BASE); // Active ones are never evicted.

    enable(&vgic, 0, SPI, 0x20);
    make_edge(&vgic, SPI);
    vgic.set_pending(SPI, 0);
    assert!(vgic.flush_lrs(0, &mut lrs).overflow, "the evicted one waits");
    assert!(in_lrs(&lrs).contains(&SPI) && in_lrs(&lrs).contains(&SPI_BASE));
    let evicted = (1..NUM_LRS as u32).map(|n| SPI_BASE + n).find(|i| !in_lrs(&lrs).contains(i));
    let evicted = evicted.unwrap();
    assert!(vgic.irq(0, evicted).unwrap().latch, "still pending in the distributor");
    assert_eq!(vgic.irq(0, evicted).unwrap().lr, None);
}

#[test]
fn edge_on_an_active_interrupt_makes_it_pending_and_active() {
    let vgic = vgic(1);
    enable(&vgic, 0, 3, 0);
    vgic.set_pending(3, 0);
    let mut lrs = [0; NUM_LRS];
    vgic.flush_lrs(0, &mut lrs);
    guest_ack(&mut lrs, 3);
    vgic.sync_lrs(0, &mut lrs);
    assert_eq!(vgic.set_pending(3, 0), Kick::vcpu(0));
    assert!(!vgic.flush_lrs(0, &mut lrs).overflow);
    assert_eq!(in_lrs(&lrs), [3], "no second list register");
    assert_eq!(ListRegister::decode(lrs[0]).state, LrState::PendingActive);
}

#[test]
fn level_interrupt_repends_while_the_line_is_high() {
    let vgic = vgic(1);
    enable(&vgic, 0, SPI, 0xA0);
    vgic.set_level(SPI, 0, true);
    let mut lrs = [0; NUM_LRS];
    vgic.flush_lrs(0, &mut lrs);
    assert_ne!(lrs[0] & LR_EOI, 0, "completion must be noticed");

    guest_ack(&mut lrs, SPI);
    vgic.flush_lrs(0, &mut lrs);
    assert_eq!(in_lrs(&lrs), [SPI]);
    assert_eq!(ListRegister::decode(lrs[0]).state, LrState::Active);

    guest_complete(&mut lrs, SPI);
    vgic.sync_lrs(0, &mut lrs);
    assert_eq!(lrs[0], 0, "zeroed, which also clears the EOI maintenance status");
    assert!(vgic.has_deliverable(0), "line still high");
    vgic.flush_lrs(0, &mut lrs);
    assert_eq!(ListRegister::decode(lrs[0]).state, LrState::Pending);

    // Now the device is serviced and lowers the line before the guest completes.
    guest_ack(&mut lrs, SPI);
    vgic.sync_lrs(0, &mut lrs);
    vgic.set_level(SPI, 0, false);
    guest_complete(&mut lrs, SPI);
    vgic.flush_lrs(0, &mut lrs);
    assert!(in_lrs(&lrs).is_empty() && !vgic.has_deliverable(0));
}

#[test]
fn lowered_line_withdraws_an_unacknowledged_level_interrupt() {
    let vgic = vgic(1);
    enable(&vgic, 0, SPI, 0xA0);
    vgic.set_level(SPI, 0, true);
    let mut lrs = [0; NUM_LRS];
    vgic.flush_lrs(0, &mut lrs);
    assert_eq!(vgic.set_level(SPI, 0, false), Kick::vcpu(0));
    vgic.flush_lrs(0, &mut lrs);
    assert!(in_lrs(&lrs).is_empty());
}

#[test]
fn timer_goes_in_hardware_list_registers() {
    let vgic = vgic(2);
    assert!(vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER));
    enable(&vgic, 1, PPI_VIRT_TIMER, 0xA0);
    assert_eq!(vgic.set_pending(PPI_VIRT_TIMER, 1), Kick::vcpu(1));
    let mut lrs = [0; NUM_LRS];
    vgic.flush_lrs(1, &mut lrs);
    let lr = ListRegister::decode(lrs[0]);
    assert_eq!((lr.vintid, lr.pintid, lr.state), (27, Some(27), LrState::Pending));
    assert_ne!(lrs[0] & LR_HW, 0);
    assert!(!lr.eoi_maintenance, "HW list registers carry no EOI maintenance");

    // Level-configured (as Linux does) or not, a new injection while active waits.
    guest_ack(&mut lrs, PPI_VIRT_TIMER);
    vgic.edit_irq(1, PPI_VIRT_TIMER, |irq| irq.trigger = crate::gic::irq::Trigger::Edge);
    vgic.set_pending(PPI_VIRT_TIMER, 1);
    vgic.flush_lrs(1, &mut lrs);
    assert_eq!(ListRegister::decode(lrs[0]).state, LrState::Active, "never pending+active");
    guest_complete(&mut lrs, PPI_VIRT_TIMER);
    vgic.flush_lrs(1, &mut lrs);
    assert_eq!(ListRegister::decode(lrs[0]).state, LrState::Pending);
}

/// The guest's timer fired and was injected, then the guest disabled the timer before taking
/// the interrupt: the list register is withdrawn, the interrupt reads as not pending, and the
/// physical interrupt must be deactivated (the guest will never do it).
#[test]
fn a_dropped_timer_line_withdraws_the_untaken_interrupt() {
    let vgic = vgic(2);
    vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER);
    enable(&vgic, 1, PPI_VIRT_TIMER, 0xA0);
    vgic.set_pending(PPI_VIRT_TIMER, 1);
    let mut lrs = [0; NUM_LRS];
    vgic.flush_lrs(1, &mut lrs);
    assert_eq!(in_lrs(&lrs), [PPI_VIRT_TIMER]);

    vgic.sync_lrs(1, &mut lrs);
    assert_eq!(vgic.hw_line_dropped(PPI_VIRT_TIMER, 1), (Kick::vcpu(1), true));
    let irq = vgic.irq(1, PPI_VIRT_TIMER).unwrap();
    assert!(!crate::gic::view::pending_view(&irq), "GICR_ISPENDR0 reads it as not pending");
    assert!(!vgic.has_deliverable(1));
    vgic.flush_lrs(1, &mut lrs);
    assert_eq!(in_lrs(&lrs), [] as [u32; 0], "the list register is withdrawn");

    // Dropped again, with nothing pending: no refresh needed; the physical interrupt is not
    // the guest's, so deactivating it is harmless.
    assert_eq!(vgic.hw_line_dropped(PPI_VIRT_TIMER, 1), (Kick::NONE, true));
}

/// Once the guest has acknowledged the timer interrupt, a dropping line changes nothing: the
/// guest's EOI deactivates the physical interrupt through the list register.
#[test]
fn a_dropped_line_leaves_a_taken_interrupt_alone() {
    let vgic = vgic(1);
    vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER);
    enable(&vgic, 0, PPI_VIRT_TIMER, 0xA0);
    vgic.set_pending(PPI_VIRT_TIMER, 0);
    let mut lrs = [0; NUM_LRS];
    vgic.flush_lrs(0, &mut lrs);
    guest_ack(&mut lrs, PPI_VIRT_TIMER);
    vgic.sync_lrs(0, &mut lrs);
    assert!(!vgic.hw_line_dropped(PPI_VIRT_TIMER, 0).1, "the guest deactivates it");
    vgic.flush_lrs(0, &mut lrs);
    assert_eq!(ListRegister::decode(lrs[find(&lrs, PPI_VIRT_TIMER)]).state, LrState::Active);

    // Software (not hardware-linked) and edge interrupts keep their pending state.
    enable(&vgic, 0, SPI, 0);
    vgic.set_pending(SPI, 0);
    assert_eq!(vgic.hw_line_dropped(SPI, 0), (Kick::NONE, false));
    assert!(vgic.has_deliverable(0));
}

/// The guest clears the pending or active state of its timer interrupt (GICR_ICPENDR0 /
/// GICR_ICACTIVER0) or disables it while it sits in a hardware list register: the flush
/// withdraws it and says to deactivate the physical interrupt, which the guest now never will
/// (found by the guest fuzzer: the timer never fired again).
#[test]
fn withdrawing_a_hardware_interrupt_deactivates_it() {
    /// The redistributor's SGI/PPI frame follows its RD frame.
    const SGI_FRAME: u64 = 0x1_0000;
    let bit = 1u64 << PPI_VIRT_TIMER;
    for (register, acknowledged) in [(ICPENDR, false), (ICACTIVER, true), (ICENABLER, false)] {
        let vgic = vgic(1);
        vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER);
        enable(&vgic, 0, PPI_VIRT_TIMER, 0xA0);
        vgic.set_pending(PPI_VIRT_TIMER, 0);
        let mut lrs = [0; NUM_LRS];
        let placed = vgic.flush_lrs(0, &mut lrs);
        assert!(placed.deactivate.iter().all(Option::is_none));
        if acknowledged {
            guest_ack(&mut lrs, PPI_VIRT_TIMER);
        }
        vgic.sync_lrs(0, &mut lrs);
        // ICPENDR / ICENABLER on a pending one, ICACTIVER on an acknowledged one: nothing left.
        vgic.gicr_write(SGI_FRAME + register, 4, bit);
        let result = vgic.flush_lrs(0, &mut lrs);
        assert_eq!(in_lrs(&lrs), [] as [u32; 0], "register {register:#x}: withdrawn");
        assert_eq!(result.deactivate[0], Some(PPI_VIRT_TIMER), "register {register:#x}");
    }
}

/// The guest clears the pending state of its timer interrupt (GICR_ICPENDR0) before any list
/// register held it: the hypervisor took the physical interrupt and left it active for the
/// guest to deactivate through a list register, which now never happens, so the next flush
/// deactivates it (before, the physical PPI stayed active until a timer write resampled it).
/// Pended again before the flush, it goes to a list register instead.
#[test]
fn a_hardware_interrupt_cleared_before_any_list_register_is_deactivated() {
    const SGI_FRAME: u64 = 0x1_0000;
    let bit = 1u64 << PPI_VIRT_TIMER;
    for pended_again in [false, true] {
        let vgic = vgic(1);
        vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER);
        enable(&vgic, 0, PPI_VIRT_TIMER, 0xA0);
        vgic.set_pending(PPI_VIRT_TIMER, 0);
        vgic.gicr_write(SGI_FRAME + ICPENDR, 4, bit);
        if pended_again {
            vgic.set_pending(PPI_VIRT_TIMER, 0);
        }
        let mut lrs = [0; NUM_LRS];
        let result = vgic.flush_lrs(0, &mut lrs);
        let deactivated: Vec<u32> = result.deactivate.iter().flatten().copied().collect();
        if pended_again {
            assert_eq!(in_lrs(&lrs), [PPI_VIRT_TIMER]);
            assert!(deactivated.is_empty(), "the guest deactivates it through the list register");
        } else {
            assert!(in_lrs(&lrs).is_empty());
            assert_eq!(deactivated, [PPI_VIRT_TIMER]);
            let again = vgic.flush_lrs(0, &mut lrs);
            assert!(again.deactivate.iter().all(Option::is_none), "owed once");
        }
    }
}

#[test]
fn disabling_withdraws_a_pending_interrupt() {
    let vgic = vgic(1);
    make_edge(&vgic, SPI);
    enable(&vgic, 0, SPI, 0);
    vgic.set_pending(SPI, 0);
    let mut lrs = [0; NUM_LRS];
    vgic.flush_lrs(0, &mut lrs);
    let kick = vgic.gicd_write(ICENABLER + 4, 4, 1 << 5).kick;
    assert_eq!(kick, Kick::vcpu(0), "the holder must refresh its list registers");
    vgic.flush_lrs(0, &mut lrs);
    assert!(in_lrs(&lrs).is_empty());
    assert!(vgic.irq(0, SPI).unwrap().latch, "still pending, just not forwarded");
}

#[test]
fn guest_mmio_edits_reach_the_list_register() {
    let vgic = vgic(1);
    make_edge(&vgic, SPI);
    enable(&vgic, 0, SPI, 0);
    vgic.set_pending(SPI, 0);
    let mut lrs = [0; NUM_LRS];
    vgic.flush_lrs(0, &mut lrs);

    vgic.gicd_write(ISACTIVER + 4, 4, 1 << 5);
    assert_eq!(vgic.gicd_read(ISACTIVER + 4, 4).value, 1 << 5, "visible before the flush");
    vgic.flush_lrs(0, &mut lrs);
    assert_eq!(ListRegister::decode(lrs[0]).state, LrState::PendingActive);

    vgic.gicd_write(ICPENDR + 4, 4, 1 << 5);
    vgic.flush_lrs(0, &mut lrs);
    assert_eq!(ListRegister::decode(lrs[0]).state, LrState::Active);

    vgic.gicd_write(ICACTIVER + 4, 4, 1 << 5);
    vgic.flush_lrs(0, &mut lrs);
    assert!(in_lrs(&lrs).is_empty());
    assert_eq!(vgic.irq(0, SPI).unwrap().lr, None);
}

#[test]
fn rerouting_moves_a_pending_spi_to_the_new_target() {
    let vgic = vgic(2);
    make_edge(&vgic, SPI);
    enable(&vgic, 0, SPI, 0);
    vgic.set_pending(SPI, 0);
    let mut lrs0 = [0; NUM_LRS];
    vgic.flush_lrs(0, &mut lrs0);
    let irouter = 0x6000 + 8 * u64::from(SPI);
    assert_eq!(vgic.gicd_write(irouter, 8, 1).kick, Kick::vcpu(0), "holder first");
    let result = vgic.flush_lrs(0, &mut lrs0);
    assert!(in_lrs(&lrs0).is_empty());
    assert_eq!(result.kick, Kick::vcpu(1));
    let mut lrs1 = [0; NUM_LRS];
    vgic.flush_lrs(1, &mut lrs1);
    assert_eq!(in_lrs(&lrs1), [SPI]);
}

#[test]
fn spis_are_never_in_two_list_registers() {
    let vgic = vgic(2);
    enable(&vgic, 0, SPI, 0);
    vgic.set_level(SPI, 0, true);
    let mut lrs0 = [0; NUM_LRS];
    vgic.flush_lrs(0, &mut lrs0);
    guest_ack(&mut lrs0, SPI);
    vgic.sync_lrs(0, &mut lrs0);
    vgic.gicd_write(0x6000 + 8 * u64::from(SPI), 8, 1);
    let mut lrs1 = [0; NUM_LRS];
    vgic.flush_lrs(1, &mut lrs1);
    assert!(in_lrs(&lrs1).is_empty(), "active on vCPU 0: it stays there until completed");
}

#[test]
fn stale_and_foreign_list_register_values_are_cleaned() {
    let vgic = vgic(1);
    let mut lrs = [ListRegister::pending(99, 0, true).encode(); NUM_LRS];
    vgic.flush_lrs(0, &mut lrs);
    assert_eq!(lrs, [0; NUM_LRS], "values we did not put there never reach the guest");

    enable(&vgic, 0, SPI, 0);
    vgic.set_level(SPI, 0, true);
    vgic.flush_lrs(0, &mut lrs);
    lrs[0] = ListRegister::pending(SPI + 1, 0, true).encode();
    vgic.sync_lrs(0, &mut lrs);
    assert_eq!(vgic.irq(0, SPI).unwrap().lr, None, "record dropped, not trusted");
}

#[test]
fn odd_arguments_do_not_panic() {
    let vgic = vgic(1);
    let mut lrs = [u64::MAX; 20];
    assert_eq!(vgic.flush_lrs(5, &mut lrs), FlushResult::default());
    vgic.sync_lrs(5, &mut lrs);
    vgic.sync_lrs(0, &mut lrs);
    vgic.flush_lrs(0, &mut lrs);
    vgic.flush_lrs(0, &mut []);
    assert!(!vgic.has_deliverable(5));
}

#[test]
fn sgis_are_delivered_per_target() {
    let vgic = vgic(4);
    for vcpu in 0..4 {
        enable(&vgic, vcpu, 1, 0);
    }
    let kick = vgic.send_sgi(0, 1 << 24 | 0b1010);
    assert_eq!(kick, Kick::vcpu(1) | Kick::vcpu(3));
    let mut lrs = [0; NUM_LRS];
    vgic.flush_lrs(3, &mut lrs);
    assert_eq!(in_lrs(&lrs), [1]);
    assert!(!vgic.has_deliverable(0) && !vgic.has_deliverable(2));
}

/// Checks that the two sides of the list register record agree with each other and with the
/// list register values just flushed.
fn assert_consistent(vgic: &Vgic, vcpu: usize, lrs: &[u64]) {
    for (index, &raw) in lrs.iter().enumerate() {
        match vgic.record(vcpu, index) {
            Some(intid) => {
                let lr = ListRegister::decode(raw);
                assert_eq!(lr.vintid, intid);
                assert_ne!(lr.state, LrState::Invalid);
                let slot = vgic.irq(vcpu, intid).unwrap().lr;
                assert_eq!(slot, Some(LrSlot { vcpu, index, state: lr.state }));
            }
            None => assert_eq!(raw, 0),
        }
    }
    for intid in 0..INTID_END {
        if let Some(LrSlot { vcpu: holder, index, .. }) = vgic.irq(vcpu, intid).unwrap().lr {
            assert_eq!(vgic.record(holder, index), Some(intid));
        }
    }
}

#[test]
fn random_guest_and_device_activity_keeps_the_record_consistent() {
    const VCPUS: usize = 3;
    let vgic = vgic(VCPUS);
    vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER);
    let mut lrs = [[0u64; NUM_LRS]; VCPUS];
    // A small linear congruential generator: deterministic, no dependencies.
    let mut seed = 0x2545_F491_4F6C_DD1D_u64;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        seed >> 16
    };
    let mut lr_uses = 0;
    for _ in 0..20_000 {
        let vcpu = next() as usize % VCPUS;
        let intid = next() as u32 % INTID_END;
        match next() % 8 {
            0 => _ = vgic.set_pending(intid, vcpu),
            1 => _ = vgic.set_level(intid, vcpu, next() % 2 == 0),
            2 => _ = vgic.send_sgi(vcpu, next()),
            3 => _ = vgic.gicd_write((0x80 + next() % 0xE80) & !3, 4, next()),
            4 => {
                let offset = (vcpu as u64 * 0x2_0000 + 0x1_0080 + next() % 0x380) & !3;
                _ = vgic.gicr_write(offset, 4, next());
            }
            5 => _ = vgic.gicd_write(0x6000 + 8 * u64::from(intid), 8, next() % 4),
            _ => {
                // The guest runs: it acknowledges or completes some of its interrupts.
                for raw in lrs[vcpu].iter_mut() {
                    let lr = ListRegister::decode(*raw);
                    let state = match next() % 3 {
                        0 if lr.state.is_pending() => LrState::Active,
                        1 if lr.state == LrState::Active => LrState::Invalid,
                        _ => lr.state,
                    };
                    *raw = ListRegister { state, ..lr }.encode();
                }
                vgic.sync_lrs(vcpu, &mut lrs[vcpu]);
                let result = vgic.flush_lrs(vcpu, &mut lrs[vcpu]);
                assert!(!result.kick.contains(vcpu));
                assert_consistent(&vgic, vcpu, &lrs[vcpu]);
                lr_uses += lrs[vcpu].iter().filter(|&&raw| raw != 0).count();
            }
        }
    }
    assert!(lr_uses > 1000, "the run must exercise the list registers ({lr_uses})");
}
