//! Access to guest RAM from the hypervisor: guest-physical (IPA) addresses are translated to
//! host-physical ones (identity-mapped at EL2) with bounds checks, so a guest-supplied address
//! can never make the hypervisor touch memory outside the guest's RAM.

use super::addr::{HostPhys, Ipa};
use super::bulk_copy;
use super::MemRange;

/// The guest's RAM: `ipa` range (guest-physical) and where it lives in host memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMemory {
    pub ipa: MemRange,
    host_base: HostPhys,
}

/// A contiguous run of guest RAM, checked when it was made: what a device may hand to real
/// hardware for DMA (its host address), or fill and drain by copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestSegment {
    host: HostPhys,
    len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutsideGuestRam {
    pub ipa: Ipa,
    pub len: u64,
}

impl GuestMemory {
    /// # Safety
    /// `host_base..host_base + ipa.size` must be memory the hypervisor may read and write, used
    /// for nothing but this guest's RAM, for as long as the value lives.
    pub const unsafe fn new(ipa: MemRange, host_base: HostPhys) -> Self {
        Self { ipa, host_base }
    }

    /// The host address of `len` bytes at `ipa`, if they all lie in guest RAM.
    pub fn host_address(&self, ipa: Ipa, len: u64) -> Result<HostPhys, OutsideGuestRam> {
        let inside = ipa.0 >= self.ipa.start && ipa.0.checked_add(len).is_some_and(|end| end <= self.ipa.end());
        if inside {
            Ok(self.host_base.add(ipa.0 - self.ipa.start))
        } else {
            Err(OutsideGuestRam { ipa, len })
        }
    }

    /// The `len` bytes at `ipa` as a segment, if they all lie in guest RAM.
    pub fn segment(&self, ipa: Ipa, len: u64) -> Result<GuestSegment, OutsideGuestRam> {
        let host = self.host_address(ipa, len)?;
        let len = usize::try_from(len).map_err(|_| OutsideGuestRam { ipa, len })?;
        Ok(GuestSegment { host, len })
    }

    /// Copies `bytes` into guest RAM at `ipa`.
    pub fn write(&self, ipa: Ipa, bytes: &[u8]) -> Result<(), OutsideGuestRam> {
        let HostPhys(host) = self.host_address(ipa, bytes.len() as u64)?;
        // SAFETY: `host_address` checked the whole range lies in guest RAM, which `new`'s
        // contract makes ours to write; `bytes` cannot overlap it (it is hypervisor memory or a
        // module outside guest RAM).
        unsafe { bulk_copy::copy_nonoverlapping(bytes.as_ptr(), host as *mut u8, bytes.len()) };
        Ok(())
    }

    /// Copies from guest RAM at `ipa` into `out`.
    pub fn read(&self, ipa: Ipa, out: &mut [u8]) -> Result<(), OutsideGuestRam> {
        let HostPhys(host) = self.host_address(ipa, out.len() as u64)?;
        // SAFETY: as in `write`, the range was checked to lie in guest RAM.
        unsafe { bulk_copy::copy_nonoverlapping(host as *const u8, out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}

impl GuestSegment {
    /// Where the segment lives in host memory (for a device's DMA).
    pub fn host_address(&self) -> HostPhys {
        self.host
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Fills the segment from `bytes`, which must be exactly as long.
    pub fn fill_from(&self, bytes: &[u8]) {
        assert_eq!(bytes.len(), self.len, "segment fill of the wrong length");
        // SAFETY: `GuestMemory::segment` checked the range lies in guest RAM, which
        // `GuestMemory::new`'s contract makes ours to write; `bytes` is hypervisor memory.
        unsafe { bulk_copy::copy_nonoverlapping(bytes.as_ptr(), self.host.0 as *mut u8, self.len) };
    }

    /// Copies the segment into `out`, which must be exactly as long.
    pub fn copy_to(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.len, "segment copy of the wrong length");
        // SAFETY: as in `fill_from`.
        unsafe { bulk_copy::copy_nonoverlapping(self.host.0 as *const u8, out.as_mut_ptr(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn reads_and_writes_stay_inside_guest_ram() {
        let mut backing = vec![0u8; 0x2000];
        let ipa = MemRange::new(0x4000_0000, 0x2000);
        // SAFETY: the Vec outlives `memory` and is used for nothing else.
        let memory = unsafe { GuestMemory::new(ipa, HostPhys(backing.as_mut_ptr() as u64)) };
        memory.write(Ipa(0x4000_1ffe), &[1, 2]).unwrap();
        let mut out = [0u8; 2];
        memory.read(Ipa(0x4000_1ffe), &mut out).unwrap();
        assert_eq!(out, [1, 2]);
        assert!(memory.write(Ipa(0x4000_1fff), &[1, 2]).is_err(), "crosses the end");
        assert!(memory.read(Ipa(0x3fff_ffff), &mut out).is_err(), "starts below");
        assert!(memory.host_address(Ipa(u64::MAX), 2).is_err(), "wraps");
        assert_eq!(backing[0x1ffe], 1, "the write landed in the backing memory");
    }

    #[test]
    fn segments_are_checked_and_reach_the_backing_memory() {
        let mut backing = vec![0u8; 0x2000];
        let base = backing.as_mut_ptr() as u64;
        let ipa = MemRange::new(0x4000_0000, 0x2000);
        // SAFETY: the Vec outlives `memory` and is used for nothing else.
        let memory = unsafe { GuestMemory::new(ipa, HostPhys(base)) };
        let segment = memory.segment(Ipa(0x4000_1000), 3).unwrap();
        assert_eq!((segment.host_address(), segment.len()), (HostPhys(base + 0x1000), 3));
        segment.fill_from(&[7, 8, 9]);
        let mut out = [0u8; 3];
        segment.copy_to(&mut out);
        assert_eq!(out, [7, 8, 9]);
        assert!(memory.segment(Ipa(0x4000_1fff), 2).is_err(), "crosses the end");
        assert!(memory.segment(Ipa(0x3fff_f000), 1).is_err(), "starts below");
        assert_eq!(&backing[0x1000..0x1003], &[7, 8, 9]);
    }
}
