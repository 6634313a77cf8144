//! An empty virtio-mmio slot, as QEMU virt presents one: a valid transport (magic, version,
//! vendor) whose DeviceID is 0, "no device". Software probes every slot the device tree lists
//! and skips these; benchmarks and test kernels that hard-code a slot read them without a fault.
//! Every other register reads as zero and writes are ignored.

use super::mmio::{DEVICE_ID, MAGIC, MAGIC_VALUE, MMIO_VERSION, VENDOR, VENDOR_ID, VERSION};
use crate::devices::MmioDevice;

/// DeviceID 0: reserved by the virtio spec to mean "no device here".
const NO_DEVICE: u32 = 0;

#[derive(Clone, Copy, Debug, Default)]
pub struct EmptySlot;

impl MmioDevice for EmptySlot {
    fn name(&self) -> &'static str {
        "virtio-mmio (empty)"
    }

    fn read(&mut self, offset: u64, size: u8) -> u64 {
        // Only aligned 32-bit reads of the identification registers mean anything.
        if size != 4 {
            return 0;
        }
        let value = match offset {
            MAGIC_VALUE => MAGIC,
            VERSION => MMIO_VERSION,
            DEVICE_ID => NO_DEVICE,
            VENDOR_ID => VENDOR,
            _ => 0,
        };
        value.into()
    }

    fn write(&mut self, _offset: u64, _size: u8, _value: u64) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devices::virtio::mmio::{QUEUE_NUM_MAX, STATUS};

    #[test]
    fn identifies_as_a_transport_without_a_device() {
        let mut slot = EmptySlot;
        assert_eq!(slot.read(MAGIC_VALUE, 4), 0x7472_6976, "\"virt\"");
        assert_eq!(slot.read(VERSION, 4), 2);
        assert_eq!(slot.read(DEVICE_ID, 4), 0);
        assert_eq!(slot.read(VENDOR_ID, 4), u64::from(VENDOR));
        assert_eq!(slot.read(QUEUE_NUM_MAX, 4), 0);
        assert_eq!(slot.read(MAGIC_VALUE, 1), 0, "narrow reads are not registers");
    }

    #[test]
    fn writes_change_nothing() {
        let mut slot = EmptySlot;
        slot.write(STATUS, 4, 0xff);
        slot.write(DEVICE_ID, 4, 7);
        assert_eq!(slot.read(STATUS, 4), 0);
        assert_eq!(slot.read(DEVICE_ID, 4), 0);
        assert!(!slot.irq_asserted());
    }
}
