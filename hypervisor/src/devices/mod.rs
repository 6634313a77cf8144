//! Emulated devices and the [`DeviceManager`] that routes trapped guest MMIO to them.
//!
//! A device only sees offsets inside its own region and access sizes; the manager owns the IPA
//! map. An access to an address no device claims is reported as [`MmioError::Unassigned`], which
//! the caller turns into an external abort for the guest.

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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MmioError {
    /// No device at this IPA.
    Unassigned,
}

/// Routes IPA ranges to devices.
#[derive(Default)]
pub struct DeviceManager {
    devices: Vec<(MemRange, Box<dyn MmioDevice>)>,
}

impl DeviceManager {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a device at `range`. Overlapping another device is a programming error and refused.
    pub fn add(&mut self, range: MemRange, device: Box<dyn MmioDevice>) -> Result<(), MemRange> {
        if let Some((existing, _)) = self.devices.iter().find(|(r, _)| r.overlaps(&range)) {
            return Err(*existing);
        }
        self.devices.push((range, device));
        Ok(())
    }

    fn find(&mut self, ipa: u64, size: u8) -> Result<(u64, &mut (dyn MmioDevice + 'static)), MmioError> {
        let last = ipa.checked_add(size.max(1) as u64 - 1).ok_or(MmioError::Unassigned)?;
        self.devices
            .iter_mut()
            .find(|(range, _)| range.contains(ipa) && range.contains(last))
            .map(|(range, device)| (ipa - range.start, device.as_mut()))
            .ok_or(MmioError::Unassigned)
    }

    pub fn read(&mut self, ipa: u64, size: u8) -> Result<u64, MmioError> {
        let (offset, device) = self.find(ipa, size)?;
        Ok(device.read(offset, size))
    }

    pub fn write(&mut self, ipa: u64, size: u8, value: u64) -> Result<(), MmioError> {
        let (offset, device) = self.find(ipa, size)?;
        device.write(offset, size, value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn routes_by_range_with_offsets() {
        let mut manager = DeviceManager::new();
        manager.add(MemRange::new(0x1000, 0x20), Box::new(Scratch([0; 4]))).unwrap();
        manager.write(0x1008, 8, 42).unwrap();
        assert_eq!(manager.read(0x1008, 8), Ok(42));
    }

    #[test]
    fn unassigned_and_straddling_accesses_are_refused() {
        let mut manager = DeviceManager::new();
        manager.add(MemRange::new(0x1000, 0x20), Box::new(Scratch([0; 4]))).unwrap();
        assert_eq!(manager.read(0x2000, 4), Err(MmioError::Unassigned));
        assert_eq!(manager.read(0x101c, 8), Err(MmioError::Unassigned));
        assert_eq!(manager.write(u64::MAX, 8, 0), Err(MmioError::Unassigned));
    }

    #[test]
    fn overlapping_devices_are_refused() {
        let mut manager = DeviceManager::new();
        manager.add(MemRange::new(0x1000, 0x20), Box::new(Scratch([0; 4]))).unwrap();
        assert!(manager.add(MemRange::new(0x1010, 0x20), Box::new(Scratch([0; 4]))).is_err());
    }
}
