//! The virtio-mmio register file: discovery, negotiation, queue setup, interrupts and reset.

use super::*;
use crate::devices::virtio::blk::{VIRTIO_BLK_S_OK, VIRTIO_BLK_T_IN};
use crate::devices::virtio::queue::{QueueError, VIRTQ_AVAIL_F_NO_INTERRUPT};
use crate::devices::virtio::VirtioError;

#[test]
fn identifies_as_a_modern_virtio_block_device() {
    let mut guest = Guest::new(DISK_SECTORS);
    // Literal values from the spec, so a wrong constant cannot hide behind its own name.
    assert_eq!(guest.reg(MAGIC_VALUE), 0x7472_6976);
    assert_eq!(guest.reg(VERSION), 2);
    assert_eq!(guest.reg(DEVICE_ID), 2);
    assert_eq!(guest.reg(VENDOR_ID), VENDOR);
    assert_eq!(guest.dev.name(), "virtio-blk");
}

#[test]
fn offers_version_1_indirect_and_block_features() {
    let mut guest = Guest::new(DISK_SECTORS);
    guest.set(DEVICE_FEATURES_SEL, 0);
    let low = guest.reg(DEVICE_FEATURES);
    // SEG_MAX (2), BLK_SIZE (6), FLUSH (9), INDIRECT_DESC (28).
    assert_eq!(low, 1 << 2 | 1 << 6 | 1 << 9 | 1 << 28);
    guest.set(DEVICE_FEATURES_SEL, 1);
    assert_eq!(guest.reg(DEVICE_FEATURES), 1, "VERSION_1 is bit 32");
    guest.set(DEVICE_FEATURES_SEL, 2);
    assert_eq!(guest.reg(DEVICE_FEATURES), 0);
}

#[test]
fn config_space_reads_at_any_width() {
    let mut guest = Guest::new(0x345);
    assert_eq!(guest.dev.read(CONFIG, 8), 0x345, "capacity");
    let bytes: Vec<u64> = (0..4).map(|i| guest.dev.read(CONFIG + i, 1)).collect();
    assert_eq!(bytes, [0x45, 0x03, 0x00, 0x00]);
    assert_eq!(guest.dev.read(CONFIG + 1, 2), 0x0003, "unaligned");
    assert_eq!(guest.dev.read(CONFIG + 12, 4), 254, "seg_max");
    assert_eq!(guest.dev.read(CONFIG + 20, 4), 512, "blk_size");
    assert_eq!(guest.dev.read(CONFIG + 22, 4), 0, "straddles the end of the fields");
    assert_eq!(guest.dev.read(CONFIG + 0xfc, 4), 0, "past the fields");
    guest.dev.write(CONFIG, 8, 0);
    assert_eq!(guest.dev.read(CONFIG, 8), 0x345, "read-only");
    assert_eq!(guest.reg(CONFIG_GENERATION), 0);
}

#[test]
fn driver_initialisation_sequence_succeeds() {
    let mut guest = Guest::new(DISK_SECTORS);
    guest.set(QUEUE_SEL, 1);
    assert_eq!(guest.reg(QUEUE_NUM_MAX), 0, "only one queue");
    guest.set(QUEUE_SEL, 0);
    assert_eq!(guest.reg(QUEUE_NUM_MAX), 256);
    guest.init(QUEUE_SIZE);
    let all = STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK | STATUS_DRIVER_OK;
    assert_eq!(guest.reg(STATUS), all);
    assert_eq!(guest.reg(QUEUE_READY), 1);
    assert_eq!(guest.dev.take_error(), None);
    assert_eq!(guest.read_sectors(1, 1), (VIRTIO_BLK_S_OK, 513));
}

/// Negotiates `low`/`high` as the driver's features and says whether FEATURES_OK stuck.
fn negotiate(guest: &mut Guest, low: u32, high: u32) -> bool {
    guest.set(STATUS, 0);
    guest.set(STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    guest.set(DRIVER_FEATURES_SEL, 0);
    guest.set(DRIVER_FEATURES, low);
    guest.set(DRIVER_FEATURES_SEL, 1);
    guest.set(DRIVER_FEATURES, high);
    guest.set(STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    let status = guest.reg(STATUS);
    assert_eq!(status & (STATUS_ACKNOWLEDGE | STATUS_DRIVER), STATUS_ACKNOWLEDGE | STATUS_DRIVER);
    status & STATUS_FEATURES_OK != 0
}

#[test]
fn features_ok_requires_a_subset_including_version_1() {
    let mut guest = Guest::new(DISK_SECTORS);
    assert!(negotiate(&mut guest, 1 << 9, 1), "FLUSH + VERSION_1");
    assert!(!negotiate(&mut guest, 1 << 9, 0), "no VERSION_1");
    assert!(!negotiate(&mut guest, 1 << 5, 1), "RO was not offered");
    assert!(!negotiate(&mut guest, 0, 1 | 1 << 3), "feature 35 was not offered");
}

#[test]
fn features_cannot_change_after_features_ok() {
    let mut guest = Guest::new(DISK_SECTORS);
    assert!(negotiate(&mut guest, 0, 1));
    // A later attempt to drop VERSION_1 is ignored; FEATURES_OK stays set.
    guest.set(DRIVER_FEATURES_SEL, 1);
    guest.set(DRIVER_FEATURES, 0);
    guest.set(STATUS, STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK);
    assert_ne!(guest.reg(STATUS) & STATUS_FEATURES_OK, 0);
}

/// Tries to enable queue 0 with `size` entries; returns whether QueueReady reads 1.
fn try_queue(guest: &mut Guest, size: u32) -> bool {
    guest.set(QUEUE_NUM, size);
    guest.set(QUEUE_READY, 1);
    guest.reg(QUEUE_READY) == 1
}

#[test]
fn queue_sizes_must_be_powers_of_two_within_the_maximum() {
    let mut guest = Guest::new(DISK_SECTORS);
    guest.setup_queue_addresses_only();
    for size in [0, 3, 100, 257, 512, 0x1_0000, u32::MAX] {
        assert!(!try_queue(&mut guest, size), "size {size} accepted");
        assert_eq!(guest.dev.take_error(), Some(VirtioError::Queue(QueueError::BadSize { size })));
    }
    assert!(try_queue(&mut guest, 256));
}

impl Guest {
    /// Programs the standard queue addresses but not the size.
    fn setup_queue_addresses_only(&mut self) {
        self.set(QUEUE_SEL, 0);
        for (reg, addr) in [(QUEUE_DESC_LOW, DESC), (QUEUE_DRIVER_LOW, AVAIL), (QUEUE_DEVICE_LOW, USED)] {
            self.set(reg, addr as u32);
            self.set(reg + 4, (addr >> 32) as u32);
        }
    }
}

#[test]
fn queues_outside_ram_or_misaligned_are_refused() {
    for (reg, addr) in [(QUEUE_DESC_LOW, DESC + 8), (QUEUE_DEVICE_LOW, USED + 2), (QUEUE_DRIVER_LOW, OUTSIDE)] {
        let mut guest = Guest::new(DISK_SECTORS);
        guest.setup_queue_addresses_only();
        guest.set(reg, addr as u32);
        assert!(!try_queue(&mut guest, 16), "{reg:#x} = {addr:#x} accepted");
        assert!(guest.dev.take_error().is_some());
    }
    let mut guest = Guest::new(DISK_SECTORS);
    guest.setup_queue_addresses_only();
    guest.set(QUEUE_DESC_HIGH, 1);
    assert!(!try_queue(&mut guest, 16), "high half counts");
}

#[test]
fn queue_setup_is_frozen_while_ready() {
    let mut guest = Guest::ready();
    guest.set(QUEUE_NUM, 4);
    guest.set(QUEUE_DESC_LOW, (DESC + 0x800) as u32);
    guest.set(QUEUE_DEVICE_LOW, 0);
    // Still the 16-entry queue at the original addresses.
    for sector in 0..20 {
        assert_eq!(guest.read_sectors(sector, 1), (VIRTIO_BLK_S_OK, 513));
    }
    guest.set(QUEUE_READY, 0);
    assert_eq!(guest.reg(QUEUE_READY), 0, "disabling is allowed");
}

#[test]
fn completion_raises_the_interrupt_until_acknowledged() {
    let mut guest = Guest::ready();
    assert!(!guest.dev.irq_asserted());
    guest.read_sectors(0, 1);
    assert!(guest.dev.irq_asserted());
    assert_eq!(guest.reg(INTERRUPT_STATUS), INT_USED_BUFFER);
    guest.set(INTERRUPT_ACK, INT_CONFIG_CHANGE);
    assert!(guest.dev.irq_asserted(), "acknowledging another bit leaves it");
    guest.set(INTERRUPT_ACK, INT_USED_BUFFER);
    assert_eq!(guest.reg(INTERRUPT_STATUS), 0);
    assert!(!guest.dev.irq_asserted());
}

#[test]
fn no_interrupt_flag_suppresses_the_interrupt() {
    let mut guest = Guest::ready();
    guest.ram.write(AVAIL, &VIRTQ_AVAIL_F_NO_INTERRUPT.to_le_bytes());
    assert_eq!(guest.read_sectors(0, 1), (VIRTIO_BLK_S_OK, 513));
    assert!(!guest.dev.irq_asserted());
}

#[test]
fn notifications_before_driver_ok_are_ignored() {
    let mut guest = Guest::new(DISK_SECTORS);
    assert!(negotiate(&mut guest, 0, 1));
    guest.setup_queue(QUEUE_SIZE);
    let header = guest.header(VIRTIO_BLK_T_IN, 0);
    let status = guest.status();
    guest.offer(&[header, writable(DATA, 512), status]);
    guest.notify();
    assert_eq!(guest.ram.used_idx(), 0);
    let status = guest.reg(STATUS);
    guest.set(STATUS, status | STATUS_DRIVER_OK);
    guest.notify();
    assert_eq!(guest.ram.used_idx(), 1);
    guest.set(QUEUE_NOTIFY, 7);
    assert_eq!(guest.dev.take_error(), None, "no such queue: ignored");
}

#[test]
fn writing_zero_to_status_resets_everything() {
    let mut guest = Guest::ready();
    guest.read_sectors(0, 1);
    assert!(guest.dev.irq_asserted());
    guest.set(STATUS, 0);
    assert_eq!(guest.reg(STATUS), 0);
    assert_eq!(guest.reg(QUEUE_READY), 0);
    assert_eq!(guest.reg(INTERRUPT_STATUS), 0);
    assert!(!guest.dev.irq_asserted());
    // A notify now does nothing, and the device starts again from ring index 0 afterwards.
    guest.notify();
    guest.ram.write(AVAIL, &[0; 0x2000]);
    guest.init(QUEUE_SIZE);
    assert_eq!(guest.read_sectors(2, 1), (VIRTIO_BLK_S_OK, 513));
    assert_eq!(guest.ram.used_idx(), 1);
}

#[test]
fn a_broken_avail_ring_makes_the_device_need_a_reset() {
    let mut guest = Guest::ready();
    // The driver claims 100 new entries in a 16-entry ring.
    guest.ram.write(AVAIL + 2, &100u16.to_le_bytes());
    guest.notify();
    let error = guest.dev.take_error().unwrap();
    assert!(matches!(error, VirtioError::Queue(QueueError::AvailIndexJump { .. })));
    assert_ne!(guest.reg(STATUS) & STATUS_DEVICE_NEEDS_RESET, 0);
    assert_eq!(guest.reg(INTERRUPT_STATUS), INT_CONFIG_CHANGE);
    // Nothing more is processed until the driver resets.
    guest.ram.write(AVAIL + 2, &0u16.to_le_bytes());
    guest.notify();
    assert_eq!(guest.dev.take_error(), None);
    assert_eq!(guest.ram.used_idx(), 0);
}

#[test]
fn config_changes_bump_the_generation_and_interrupt() {
    let mut guest = Guest::ready();
    guest.dev.config_changed();
    assert_eq!(guest.reg(CONFIG_GENERATION), 1);
    assert_eq!(guest.reg(INTERRUPT_STATUS), INT_CONFIG_CHANGE);
}

#[test]
fn registers_only_answer_aligned_32_bit_accesses() {
    let mut guest = Guest::new(DISK_SECTORS);
    assert_eq!(guest.dev.read(MAGIC_VALUE, 1), 0);
    assert_eq!(guest.dev.read(MAGIC_VALUE, 8), 0);
    assert_eq!(guest.dev.read(VERSION + 1, 4), 0);
    guest.dev.write(STATUS, 2, u64::from(STATUS_ACKNOWLEDGE));
    assert_eq!(guest.reg(STATUS), 0);
    // Unknown and read-only offsets.
    assert_eq!(guest.reg(0x0f0), 0);
    guest.set(MAGIC_VALUE, 0);
    assert_eq!(guest.reg(MAGIC_VALUE), MAGIC);
}
