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
}
