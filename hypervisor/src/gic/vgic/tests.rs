//! The vGIC's injection, routing and SGI paths through its public, locking API.

use super::*;
use crate::gic::view::IROUTER_MODE_ANY;
use crate::guest_map::SPI_BASE;
use crate::guest_map::{PPI_VIRT_TIMER, UART_SPI};

const UART: u32 = SPI_BASE + UART_SPI;

fn enabled_vgic(vcpus: usize) -> Vgic {
    let vgic = Vgic::new(vcpus);
    vgic.set_groups(false, true);
    vgic
}

#[test]
fn reset_state() {
    let vgic = Vgic::new(0);
    assert_eq!(vgic.num_vcpus(), 1, "clamped to at least one vCPU");
    assert_eq!(Vgic::new(100).num_vcpus(), MAX_VCPUS);
    assert_eq!(vgic.cfg.lr_priority_mask, 0xF8);
    assert_eq!(vgic.dist.lock().awake, 0, "every redistributor asleep");
    assert_eq!(vgic.irq(0, 3).unwrap().trigger, irq::Trigger::Edge);
    assert!(vgic.irq(0, UART).unwrap().group1);
    assert!(vgic.irq(0, irq::INTID_END).is_none());
    assert!(vgic.irq(1, 5).is_none(), "no vCPU 1");
}

#[test]
fn injection_kicks_only_when_deliverable() {
    let vgic = enabled_vgic(2);
    assert_eq!(vgic.set_pending(UART, 0), Kick::NONE, "disabled: nobody to tell");
    vgic.edit_irq(0, UART, |irq| irq.enabled = true);
    assert_eq!(vgic.set_pending(UART, 0), Kick::vcpu(0));
    assert!(vgic.has_deliverable(0) && !vgic.has_deliverable(1));

    vgic.edit_irq(1, PPI_VIRT_TIMER, |irq| irq.enabled = true);
    assert_eq!(vgic.set_pending(PPI_VIRT_TIMER, 1), Kick::vcpu(1));
    assert_eq!(vgic.set_pending(PPI_VIRT_TIMER, 7), Kick::NONE, "no such vCPU");
    assert_eq!(vgic.set_pending(5000, 0), Kick::NONE);
}

#[test]
fn group_enable_gates_delivery() {
    let vgic = Vgic::new(1);
    vgic.edit_irq(0, SPI_BASE, |irq| irq.enabled = true);
    vgic.set_pending(SPI_BASE, 0);
    assert!(!vgic.has_deliverable(0));
    vgic.set_groups(false, true);
    assert!(vgic.has_deliverable(0));
    vgic.edit_irq(0, SPI_BASE, |irq| irq.group1 = false);
    assert!(!vgic.has_deliverable(0));
}

#[test]
fn level_lines_pend_while_high_and_edges_latch_on_rising() {
    let vgic = enabled_vgic(1);
    vgic.edit_irq(0, SPI_BASE, |irq| irq.enabled = true);
    assert_eq!(vgic.set_level(SPI_BASE, 0, true), Kick::vcpu(0));
    assert!(vgic.has_deliverable(0));
    vgic.set_level(SPI_BASE, 0, false);
    assert!(!vgic.has_deliverable(0));

    vgic.edit_irq(0, SPI_BASE, |irq| irq.trigger = irq::Trigger::Edge);
    assert_eq!(vgic.set_level(SPI_BASE, 0, true), Kick::vcpu(0));
    assert_eq!(vgic.set_level(SPI_BASE, 0, true), Kick::NONE, "no new edge");
    vgic.set_level(SPI_BASE, 0, false);
    assert!(vgic.has_deliverable(0), "the edge stays latched after the line drops");
}

#[test]
fn routing_follows_irouter() {
    let vgic = enabled_vgic(4);
    vgic.edit_irq(0, SPI_BASE, |irq| irq.enabled = true);
    let target = |vgic: &Vgic| vgic.read_distributor(|view| view.target(0, SPI_BASE));
    vgic.dist.lock().routes[0] = 2;
    assert_eq!(vgic.set_pending(SPI_BASE, 0), Kick::vcpu(2));
    vgic.dist.lock().routes[0] = 1 << 8; // Aff1 = 1: no such vCPU.
    assert_eq!(target(&vgic), None);
    vgic.dist.lock().routes[0] = IROUTER_MODE_ANY | 3;
    assert_eq!(target(&vgic), Some(0), "nobody awake: vCPU 0");
    vgic.dist.lock().awake = 1 << 3;
    assert_eq!(target(&vgic), Some(3));
}

#[test]
fn sgis_reach_listed_vcpus_or_everyone_but_the_sender() {
    let vgic = enabled_vgic(4);
    for vcpu in 0..4 {
        vgic.edit_irq(vcpu, 1, |irq| irq.enabled = true);
        vgic.edit_irq(vcpu, 2, |irq| irq.enabled = true);
    }
    assert_eq!(vgic.send_sgi(0, 1 << 24 | 0b1010), Kick::vcpu(1) | Kick::vcpu(3));
    assert!(vgic.irq(1, 1).unwrap().latch && !vgic.irq(2, 1).unwrap().latch);

    let kick = vgic.send_sgi(2, 1 << 40 | 2 << 24);
    assert_eq!(kick, Kick::vcpu(0) | Kick::vcpu(1) | Kick::vcpu(3));
    assert!(!vgic.irq(2, 2).unwrap().latch, "not the sender");

    // Targets that name no vCPU are ignored: Aff0 8..15, or Aff1 = 1.
    assert_eq!(vgic.send_sgi(0, 0xFF00), Kick::NONE);
    assert_eq!(vgic.send_sgi(0, 1 << 16 | 0b1), Kick::NONE);
}

#[test]
fn sgis_respect_the_target_group() {
    let vgic = enabled_vgic(2);
    vgic.set_groups(true, true);
    vgic.edit_irq(1, 4, |irq| {
        irq.enabled = true;
        irq.group1 = false;
    });
    assert_eq!(vgic.send_sgi(0, 4 << 24 | 0b10), Kick::NONE);
    assert!(!vgic.irq(1, 4).unwrap().latch);
    assert_eq!(vgic.send_sgi_group0(0, 4 << 24 | 0b10), Kick::vcpu(1));
}

#[test]
fn hw_mappings_are_validated() {
    let vgic = Vgic::new(2);
    assert!(vgic.set_hw_mapping(PPI_VIRT_TIMER, PPI_VIRT_TIMER));
    assert_eq!(vgic.irq(1, PPI_VIRT_TIMER).unwrap().hw_pintid, Some(27));
    assert!(!vgic.set_hw_mapping(1, 1), "SGIs cannot be hardware-linked");
    assert!(!vgic.set_hw_mapping(PPI_VIRT_TIMER, 1023), "special INTID");
    assert!(!vgic.set_hw_mapping(irq::INTID_END, 40));
    assert!(vgic.clear_hw_mapping(PPI_VIRT_TIMER));
    assert_eq!(vgic.irq(0, PPI_VIRT_TIMER).unwrap().hw_pintid, None);
}

#[test]
fn lower_lr_priority_precision() {
    let mut vgic = Vgic::new(1);
    vgic.set_lr_priority_bits(4);
    assert_eq!(vgic.cfg.lr_priority_mask, 0xF0);
    vgic.set_lr_priority_bits(0);
    assert_eq!(vgic.cfg.lr_priority_mask, 0x80);
    vgic.set_lr_priority_bits(200);
    assert_eq!(vgic.cfg.lr_priority_mask, 0xFF);
}
