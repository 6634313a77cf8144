//! Emulated devices and the [`DeviceManager`] that routes trapped guest MMIO to them.
//!
//! A device only sees offsets inside its own region and access sizes; the manager owns the IPA
//! map. An access to an address no device claims is reported as [`MmioError::Unassigned`], which
//! the caller turns into an external abort for the guest. A device registered with an
//! interrupt reports its line's level after every access, so the caller can update the
//! virtual GIC without knowing which device it was.

#[cfg(target_os = "none")]
pub mod host_blk;
pub mod virtio;
pub mod vpl011;

use alloc::boxed::Box;
use alloc::vec::Vec;

use crate::mm::MemRange;

/// Something the guest can reach through MMIO.
pub trait MmioDevice: Send {
    /// Short name for logs.
    fn name(&self) -> &'static str;
    /// Reads `size` bytes (1, 2, 4 or 8) at `offset` in the device's region.
    fn read(&mut self, offset: u64, size: u8) -> u64;
    /// Writes the low `size` bytes of `value` at `offset`.
    fn write(&mut self, offset: u64, size: u8, value: u64);
    /// Whether the device's interrupt line is asserted (level-triggered).
    fn irq_asserted(&self) -> bool {
        false
    }
}

/// The state of a device's interrupt line after an access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqLine {
    /// The GIC interrupt id the line is wired to.
    pub intid: u32,
    pub asserted: bool,
}

/// A device in the map: where, which interrupt, what.
struct Slot {
    range: MemRange,
    intid: Option<u32>,
    device: Box<dyn MmioDevice>,
}

impl Slot {
    fn line(&self) -> Option<IrqLine> {
        self.intid.map(|intid| IrqLine { intid, asserted: self.device.irq_asserted() })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// No device at this IPA.
    Unassigned,
}

/// Routes IPA ranges to devices.
#[derive(Default)]
pub struct DeviceManager {
    devices: Vec<Slot>,
}

impl DeviceManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a device at `range`, its interrupt line wired to `intid` if it has one.
    /// Overlapping another device is a programming error and refused.
    pub fn add(&mut self, range: MemRange, intid: Option<u32>, device: Box<dyn MmioDevice>) -> Result<(), MemRange> {
        if let Some(existing) = self.devices.iter().find(|slot| slot.range.overlaps(&range)) {
            return Err(existing.range);
        }
        self.devices.push(Slot { range, intid, device });
        Ok(())
    }

    fn find(&mut self, ipa: u64, size: u8) -> Result<(u64, &mut Slot), MmioError> {
        let last = ipa.checked_add(size.max(1) as u64 - 1).ok_or(MmioError::Unassigned)?;
        self.devices
            .iter_mut()
            .find(|slot| slot.range.contains(ipa) && slot.range.contains(last))
            .map(|slot| (ipa - slot.range.start, slot))
            .ok_or(MmioError::Unassigned)
    }

    /// Reads from the device at `ipa`: the value, and its interrupt line afterwards.
    pub fn read(&mut self, ipa: u64, size: u8) -> Result<(u64, Option<IrqLine>), MmioError> {
        let (offset, slot) = self.find(ipa, size)?;
        let value = slot.device.read(offset, size);
        Ok((value, slot.line()))
    }

    /// Writes to the device at `ipa`; returns its interrupt line afterwards.
    pub fn write(&mut self, ipa: u64, size: u8, value: u64) -> Result<Option<IrqLine>, MmioError> {
        let (offset, slot) = self.find(ipa, size)?;
        slot.device.write(offset, size, value);
        Ok(slot.line())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four words of storage; asserts its interrupt while word 0 is non-zero.
    struct Scratch([u64; 4]);

    impl MmioDevice for Scratch {
        fn name(&self) -> &'static str {
            "scratch"
        }
        fn read(&mut self, offset: u64, _size: u8) -> u64 {
            self.0[(offset / 8) as usize % 4]
        }
        fn write(&mut self, offset: u64, _size: u8, value: u64) {
            self.0[(offset / 8) as usize % 4] = value;
        }
        fn irq_asserted(&self) -> bool {
            self.0[0] != 0
        }
    }

    #[test]
    fn routes_by_range_with_offsets() {
        let mut manager = DeviceManager::new();
        manager.add(MemRange::new(0x1000, 0x20), None, Box::new(Scratch([0; 4]))).unwrap();
        manager.write(0x1008, 8, 42).unwrap();
        assert_eq!(manager.read(0x1008, 8), Ok((42, None)));
    }

    #[test]
    fn accesses_report_the_device_interrupt_line() {
        let mut manager = DeviceManager::new();
        manager.add(MemRange::new(0x1000, 0x20), Some(48), Box::new(Scratch([0; 4]))).unwrap();
        assert_eq!(manager.write(0x1000, 8, 1), Ok(Some(IrqLine { intid: 48, asserted: true })));
        assert_eq!(manager.write(0x1000, 8, 0), Ok(Some(IrqLine { intid: 48, asserted: false })));
        assert_eq!(manager.read(0x1008, 8), Ok((0, Some(IrqLine { intid: 48, asserted: false }))));
    }

    #[test]
    fn unassigned_and_straddling_accesses_are_refused() {
        let mut manager = DeviceManager::new();
        manager.add(MemRange::new(0x1000, 0x20), None, Box::new(Scratch([0; 4]))).unwrap();
        assert_eq!(manager.read(0x2000, 4), Err(MmioError::Unassigned));
        assert_eq!(manager.read(0x101c, 8), Err(MmioError::Unassigned));
        assert_eq!(manager.write(u64::MAX, 8, 0), Err(MmioError::Unassigned));
    }

    #[test]
    fn overlapping_devices_are_refused() {
        let mut manager = DeviceManager::new();
        manager.add(MemRange::new(0x1000, 0x20), None, Box::new(Scratch([0; 4]))).unwrap();
        assert!(manager.add(MemRange::new(0x1010, 0x20), None, Box::new(Scratch([0; 4]))).is_err());
    }
}
