//! Page-aligned memory shared with a device (virtio rings, request headers, buffers): every
//! access is volatile, as the device reads and writes it behind the compiler's back.

use core::cell::UnsafeCell;
use core::ptr::{read_volatile, write_volatile};

#[repr(C, align(4096))]
pub struct DmaArea<const N: usize>(UnsafeCell<[u8; N]>);

// SAFETY: all accesses are volatile reads and writes of plain data; each user gives every
// location one writer (the driver's side or the device's).
unsafe impl<const N: usize> Sync for DmaArea<N> {}

impl<const N: usize> DmaArea<N> {
    pub const fn new() -> Self {
        Self(UnsafeCell::new([0; N]))
    }

    /// Its guest-physical address (the fuzzer runs identity-mapped).
    pub fn address(&self) -> u64 {
        self.0.get() as u64
    }

    /// Stores `value` at byte offset `at`.
    pub fn put<T: Copy>(&self, at: usize, value: T) {
        assert!(at + core::mem::size_of::<T>() <= N, "outside the area");
        // SAFETY: inside the area (checked above), which lives for the program; volatile.
        unsafe { write_volatile((self.address() + at as u64) as *mut T, value) };
    }

    /// Loads a `T` from byte offset `at`.
    pub fn get<T: Copy>(&self, at: usize) -> T {
        assert!(at + core::mem::size_of::<T>() <= N, "outside the area");
        // SAFETY: as for `put`.
        unsafe { read_volatile((self.address() + at as u64) as *const T) }
    }

    /// Zeroes it.
    pub fn clear(&self) {
        for at in (0..N).step_by(core::mem::size_of::<u64>()) {
            self.put(at, 0u64);
        }
    }
}
