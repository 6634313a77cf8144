//! Pinned pages: the memory a ROS process shares with the HRT.
//!
//! The hypervisor translates a buffer's virtual address once, when the call is made, and the HRT
//! then reads and writes that guest-physical page until the call (or the sync session) is over.
//! So the buffer must not cross a page boundary, must be present when the call is made, and
//! must stay where it is: a [`PinnedPage`] is a private anonymous mapping of its own, written
//! (so present) and `mlock`ed (so never swapped out), unlocked and unmapped when dropped.
//!
//! A page the HRT may still write (a call that timed out) must never be handed back to the
//! kernel: [`PinnedPage::leak`] keeps it mapped and locked for the life of the process.

// The crate is `no_std`; this module is ordinary std code.
use std::prelude::rust_2021::*;

use std::ffi::CStr;
use std::io;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};

use crate::abi::invoke::{Invocation, INVOCATION_MAGIC, MAX_HRT_CORES};

/// The page size of this kernel (4, 16 or 64 KiB on arm64).
pub fn page_size() -> usize {
    // SAFETY: sysconf only reads a configuration value; it touches no memory of ours.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    match usize::try_from(size) {
        Ok(size) if size.is_power_of_two() && size >= 4096 => size,
        _ => 4096,
    }
}

/// One page-aligned, zero-filled, present and locked mapping of whole pages.
#[derive(Debug)]
pub struct PinnedPage {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone (nothing else holds its address except the
// HRT, which is outside the Rust program); moving it to another thread moves that ownership.
unsafe impl Send for PinnedPage {}
// SAFETY: `&PinnedPage` only gives reads of the address and volatile reads of the memory.
unsafe impl Sync for PinnedPage {}

impl PinnedPage {
    /// One page (the kernel's page size).
    pub fn new() -> io::Result<Self> {
        Self::with_len(1)
    }

    /// At least `bytes` bytes (rounded up to whole pages, at least one).
    pub fn with_len(bytes: usize) -> io::Result<Self> {
        let len = bytes.max(1).checked_next_multiple_of(page_size()).ok_or(io::ErrorKind::InvalidInput)?;
        // SAFETY: a new private anonymous mapping (no address hint, no MAP_FIXED) aliases no
        // memory Rust knows about; the result is checked against MAP_FAILED before use.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned address 0"))?;
        let page = PinnedPage { base, len };
        // Write every page (MAP_POPULATE is only a hint) so each is present and private to us,
        // not the shared zero page.
        for offset in (0..len).step_by(page_size()) {
            // SAFETY: `offset < len`, inside the fresh mapping, which is writable.
            unsafe { page.base.as_ptr().add(offset).write_volatile(0) };
        }
        // SAFETY: mlock only changes the residency of our own mapping.
        if unsafe { libc::mlock(page.base.as_ptr().cast(), len) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("mlock of a {len}-byte buffer: {e}")));
        }
        Ok(page)
    }

    /// The first byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The virtual address a hypercall passes (x2).
    pub fn va(&self) -> u64 {
        self.base.as_ptr() as u64
    }

    /// Bytes mapped.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never empty; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Keeps the mapping (mapped and locked) for the rest of the process: for a buffer the HRT
    /// may still write after a call timed out.
    pub fn leak(self) {
        std::mem::forget(self);
    }

    /// Copies `bytes` to offset `at` and zeroes the rest of the mapping after them.
    /// Panics if they do not fit.
    pub fn write_bytes(&mut self, at: usize, bytes: &[u8]) {
        let end = at.checked_add(bytes.len()).filter(|&end| end <= self.len);
        let end =
            end.unwrap_or_else(|| std::panic!("{} bytes at {at} do not fit a {}-byte page", bytes.len(), self.len));
        // SAFETY: `[at, end)` and `[end, len)` lie inside our writable mapping; `&mut self`
        // means no Rust reference reads it meanwhile; `bytes` cannot overlap a mapping nobody
        // else knows of.
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), self.as_ptr().add(at), bytes.len());
            ptr::write_bytes(self.as_ptr().add(end), 0, self.len - end);
        }
    }
}

impl Drop for PinnedPage {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` are exactly the mapping mmap returned, which only this value
        // owns; munmap also unlocks it.
        unsafe {
            libc::munlock(self.base.as_ptr().cast(), self.len);
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// Offset in a [`PinnedInvocation`]'s page of the bytes that may follow the [`Invocation`] (a
/// string for `PRINT`): past the invocation, 64-byte aligned.
pub const PAYLOAD_OFFSET: usize = 256;

/// An [`Invocation`] at the start of a [`PinnedPage`], with room for a payload after it
/// ([`PAYLOAD_OFFSET`]). Every access to the invocation is volatile: the HRT writes it.
#[derive(Debug)]
pub struct PinnedInvocation {
    page: ManuallyDrop<PinnedPage>,
    /// Set when the hypervisor accepted a call with this buffer, cleared once the call is known
    /// to be over; a buffer dropped while set is leaked rather than freed.
    pub(crate) in_flight: bool,
}

const _: () = assert!(core::mem::size_of::<Invocation>() <= PAYLOAD_OFFSET);

impl PinnedInvocation {
    /// A pinned page holding `Invocation::new(function, args)`.
    pub fn new(function: u64, args: [u64; 6]) -> io::Result<Self> {
        let mut inv = PinnedInvocation { page: ManuallyDrop::new(PinnedPage::new()?), in_flight: false };
        inv.set(function, args);
        Ok(inv)
    }

    fn ptr(&self) -> *mut Invocation {
        self.page.as_ptr().cast()
    }

    /// Virtual address of the invocation (x2 of 0x20 / 0x21).
    pub fn va(&self) -> u64 {
        self.page.va()
    }

    /// Virtual address of the payload area ([`PAYLOAD_OFFSET`]).
    pub fn payload_va(&self) -> u64 {
        self.page.va() + PAYLOAD_OFFSET as u64
    }

    /// Bytes available for a payload.
    pub fn payload_capacity(&self) -> usize {
        self.page.len() - PAYLOAD_OFFSET
    }

    /// Prepares a new call: magic, `function`, `args`; clears `done`, `status` and `result`.
    pub fn set(&mut self, function: u64, args: [u64; 6]) {
        self.write(Invocation::new(function, args));
    }

    /// Writes the whole invocation as given (magic included: a test may pass a bad one).
    pub fn write(&mut self, inv: Invocation) {
        // SAFETY: the page is at least PAYLOAD_OFFSET >= size_of::<Invocation>() bytes, page
        // (so suitably) aligned, and owned by `self`.
        unsafe { self.ptr().write_volatile(inv) }
    }

    /// A copy of the invocation as it is now.
    pub fn get(&self) -> Invocation {
        // SAFETY: as in `write`; a volatile read of memory the HRT may write concurrently is a
        // plain copy of whatever bytes are there, every bit pattern being a valid `Invocation`.
        unsafe { self.ptr().read_volatile() }
    }

    /// Copies `payload` to the payload area and zeroes the rest of the page. Panics if it does
    /// not fit ([`payload_capacity`](Self::payload_capacity)).
    pub fn set_payload(&mut self, payload: &[u8]) {
        self.page.write_bytes(PAYLOAD_OFFSET, payload);
    }

    /// Whether a call with this buffer was accepted and not yet seen to finish.
    pub fn is_in_flight(&self) -> bool {
        self.in_flight
    }

    /// `done` as it is now (bit n: HRT core n finished).
    pub fn done(&self) -> u64 {
        self.get().done
    }

    /// HRT core `core`'s status and result.
    pub fn core_outcome(&self, core: usize) -> Option<(i64, u64)> {
        (core < MAX_HRT_CORES).then(|| {
            let inv = self.get();
            (inv.status[core], inv.result[core])
        })
    }
}

impl Drop for PinnedInvocation {
    fn drop(&mut self) {
        // An in-flight page may still be written by the HRT: it stays for the life of the
        // process.
        if !self.in_flight {
            // SAFETY: dropped once, here; `self.page` is not used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.page) }
        }
    }
}

/// A NUL-terminated string at the start of a [`PinnedPage`], for the HRT to print (what
/// Palacios' test program passes to 0x20 / 0x21: any buffer without [`INVOCATION_MAGIC`]).
#[derive(Debug)]
pub struct PinnedString {
    page: ManuallyDrop<PinnedPage>,
    pub(crate) in_flight: bool,
}

/// Why a string cannot be passed as an invocation buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StringBufferError {
    /// With its NUL it does not fit one page.
    TooLong { len: usize, max: usize },
    /// It starts with the bytes of [`INVOCATION_MAGIC`], so the HRT would read it as an
    /// [`Invocation`].
    LooksLikeAnInvocation,
}

impl std::fmt::Display for StringBufferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLong { len, max } => write!(f, "a {len}-byte string does not fit one page (at most {max})"),
            Self::LooksLikeAnInvocation => write!(f, "the string starts with the invocation magic"),
        }
    }
}

/// Checks that `s` can be an invocation buffer on pages of `page_size` bytes.
pub fn check_string_buffer(s: &CStr, page_size: usize) -> Result<(), StringBufferError> {
    let bytes = s.to_bytes_with_nul();
    if bytes.len() > page_size {
        return Err(StringBufferError::TooLong { len: bytes.len() - 1, max: page_size - 1 });
    }
    if bytes.starts_with(&INVOCATION_MAGIC.to_le_bytes()) {
        return Err(StringBufferError::LooksLikeAnInvocation);
    }
    Ok(())
}

impl PinnedString {
    /// A pinned page holding `s` and its NUL (zeroes after it).
    pub fn new(s: &CStr) -> io::Result<Result<Self, StringBufferError>> {
        if let Err(e) = check_string_buffer(s, page_size()) {
            return Ok(Err(e));
        }
        let mut page = PinnedPage::new()?;
        page.write_bytes(0, s.to_bytes_with_nul());
        Ok(Ok(PinnedString { page: ManuallyDrop::new(page), in_flight: false }))
    }

    /// Virtual address of the string (x2 of 0x20 / 0x21).
    pub fn va(&self) -> u64 {
        self.page.va()
    }
}

impl Drop for PinnedString {
    fn drop(&mut self) {
        if !self.in_flight {
            // SAFETY: dropped once, here; `self.page` is not used afterwards.
            unsafe { ManuallyDrop::drop(&mut self.page) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::invoke::function;

    #[test]
    fn a_pinned_page_is_aligned_zeroed_and_whole_pages() {
        let page = PinnedPage::new().unwrap();
        assert_eq!(page.va() % page_size() as u64, 0);
        assert_eq!(page.len(), page_size());
        // SAFETY: reading our own mapping.
        let bytes = unsafe { std::slice::from_raw_parts(page.as_ptr(), page.len()) };
        assert!(bytes.iter().all(|&b| b == 0));
        assert_eq!(PinnedPage::with_len(page_size() + 1).unwrap().len(), 2 * page_size());
    }

    #[test]
    fn an_invocation_stays_inside_its_page_and_reads_back() {
        let mut inv = PinnedInvocation::new(function::ADD, [2, 3, 0, 0, 0, 0]).unwrap();
        let va = inv.va();
        assert_eq!(va % page_size() as u64, 0);
        let end = va + core::mem::size_of::<Invocation>() as u64 - 1;
        assert_eq!(va / 4096, end / 4096, "never crosses a page");
        assert_eq!(inv.get(), Invocation::new(function::ADD, [2, 3, 0, 0, 0, 0]));
        // What the HRT does: mark core 0 done with a result.
        let mut answered = inv.get();
        answered.done = 1;
        answered.result[0] = 5;
        inv.write(answered);
        assert_eq!(inv.done(), 1);
        assert_eq!(inv.core_outcome(0), Some((0, 5)));
        assert_eq!(inv.core_outcome(MAX_HRT_CORES), None);
        inv.set(function::SPIN_US, [10, 0, 0, 0, 0, 0]);
        assert_eq!(inv.done(), 0, "a new call clears the completion record");
        inv.set_payload(b"hi\0");
        assert_eq!(inv.payload_va(), va + PAYLOAD_OFFSET as u64);
        assert_eq!(inv.payload_capacity(), page_size() - PAYLOAD_OFFSET);
    }

    #[test]
    fn an_in_flight_buffer_is_leaked_not_freed() {
        let mut inv = PinnedInvocation::new(function::ADD, [0; 6]).unwrap();
        inv.in_flight = true;
        let va = inv.va();
        drop(inv);
        // Still mapped: readable.
        // SAFETY: the leaked page stays mapped for the life of the process.
        let magic = unsafe { (va as *const u64).read_volatile() };
        assert_eq!(magic, INVOCATION_MAGIC);
    }

    #[test]
    fn string_buffers_must_fit_a_page_and_not_look_like_an_invocation() {
        let ok = c"hello world\n";
        let s = PinnedString::new(ok).unwrap().unwrap();
        // SAFETY: reading our own mapping, NUL-terminated by construction.
        assert_eq!(unsafe { CStr::from_ptr(s.va() as *const libc::c_char) }, ok);
        let long = std::ffi::CString::new(vec![b'x'; 4096]).unwrap();
        assert_eq!(check_string_buffer(&long, 4096), Err(StringBufferError::TooLong { len: 4096, max: 4095 }));
        let fits = std::ffi::CString::new(vec![b'x'; 4095]).unwrap();
        assert_eq!(check_string_buffer(&fits, 4096), Ok(()));
        assert_eq!(check_string_buffer(c"HVMCALL1 and more", 4096), Err(StringBufferError::LooksLikeAnInvocation));
        assert_eq!(check_string_buffer(c"HVMCALL", 4096), Ok(()));
    }
}
