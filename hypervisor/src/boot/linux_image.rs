//! The arm64 Linux boot protocol (Documentation/arch/arm64/booting.rst): reads the 64-byte
//! header at the start of an `Image` and decides where the kernel, initrd and device tree go in
//! guest RAM.
//!
//! ```text
//! guest RAM ┌────────────────────────┐ 2 MiB-aligned base
//!           │ text_offset (often 0)  │
//!           │ kernel, image_size     │ entry = first byte
//!           │ initrd                 │ next page after the kernel
//!           │ ...                    │
//!           │ DTB                    │ start of the last 2 MiB window that holds it
//!           └────────────────────────┘
//! ```
//!
//! Everything here is pure arithmetic on untrusted numbers: every sum is checked and every
//! failure is an [`ImageError`], never a panic.

use core::fmt;

use crate::mm::{HumanSize, MemRange};

/// Bytes of the header.
pub const HEADER_SIZE: usize = 64;
/// `magic`: "ARM\x64" read as a little-endian u32.
pub const MAGIC: u32 = 0x644d_5241;

// Field offsets in the header; every field is little-endian.
const TEXT_OFFSET_AT: usize = 8;
const IMAGE_SIZE_AT: usize = 16;
const FLAGS_AT: usize = 24;
const MAGIC_AT: usize = 56;

/// `flags` bit 0: the kernel is big-endian.
const FLAG_BIG_ENDIAN: u64 = 1 << 0;
/// `flags` bits 1-2: the kernel's page size (0 unspecified, 1 = 4K, 2 = 16K, 3 = 64K).
const FLAG_PAGE_SIZE_SHIFT: u32 = 1;
const FLAG_PAGE_SIZE_MASK: u64 = 0b11;
/// `flags` bit 3: the 2 MiB-aligned base may be anywhere in RAM, not only near its start.
const FLAG_PLACE_ANYWHERE: u64 = 1 << 3;

/// The kernel goes `text_offset` bytes above a base aligned to this.
pub const KERNEL_BASE_ALIGN: u64 = 2 << 20;
/// `text_offset` of kernels older than 3.17, whose header has `image_size` 0.
pub const LEGACY_TEXT_OFFSET: u64 = 0x8_0000;
/// The initrd starts on a page boundary.
const INITRD_ALIGN: u64 = 4096;
/// `text_offset` is a multiple of the page size in every kernel ever built.
const TEXT_OFFSET_ALIGN: u64 = 4096;
/// The DTB must be 8-byte aligned, at most 2 MiB, and not cross a 2 MiB boundary.
const DTB_ALIGN: u64 = 8;
pub const DTB_MAX_SIZE: u64 = 2 << 20;
const DTB_WINDOW: u64 = 2 << 20;

/// What the loader needs from an `Image` header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset of the image from a 2 MiB-aligned base (meaningless if `image_size` is 0).
    pub text_offset: u64,
    /// Bytes the kernel needs from its start, bss included; 0 for kernels older than 3.17.
    pub image_size: u64,
    /// Endianness, page size and placement bits.
    pub flags: u64,
}

impl ImageHeader {
    /// A header from before Linux 3.17, with no `image_size` and no meaningful flags.
    pub fn is_legacy(&self) -> bool {
        self.image_size == 0
    }

    /// The kernel's page size in bytes, if the header says.
    pub fn page_size(&self) -> Option<u64> {
        const SIZES: [Option<u64>; 4] = [None, Some(4 << 10), Some(16 << 10), Some(64 << 10)];
        if self.is_legacy() {
            return None;
        }
        SIZES[((self.flags >> FLAG_PAGE_SIZE_SHIFT) & FLAG_PAGE_SIZE_MASK) as usize]
    }

    /// Whether the kernel may be placed anywhere in RAM (we put it at the start regardless).
    pub fn place_anywhere(&self) -> bool {
        !self.is_legacy() && self.flags & FLAG_PLACE_ANYWHERE != 0
    }
}

/// Where everything goes, in guest IPAs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// Where the image file is copied; the part past the file's end (bss) must be zero or is
    /// zeroed by the kernel, and must be free.
    pub kernel: MemRange,
    /// Where the boot CPU starts, with x0 = the DTB's address.
    pub entry: u64,
    pub initrd: Option<MemRange>,
    pub dtb: MemRange,
}

/// Why an image cannot be booted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageError {
    /// Fewer bytes than a header.
    TooShort { len: u64 },
    /// Not an arm64 `Image` (e.g. a compressed `Image.gz` or a vmlinux ELF).
    BadMagic(u32),
    /// A big-endian kernel; guests run little-endian.
    BigEndian,
    /// `text_offset` is not a multiple of 4 KiB (a corrupt header).
    BadTextOffset(u64),
    /// Guest RAM is empty or wraps around the address space.
    BadRam(MemRange),
    /// The kernel does not fit below the DTB.
    KernelDoesNotFit { kernel_end: u64, limit: u64 },
    /// The initrd does not fit between the kernel and the DTB.
    InitrdDoesNotFit { size: u64, space: u64 },
    /// An initrd of 0 bytes.
    EmptyInitrd,
    /// The DTB is empty or larger than 2 MiB.
    BadDtbSize(u64),
    /// Guest RAM is too small to hold the DTB.
    DtbDoesNotFit { size: u64, ram: MemRange },
}

impl fmt::Display for ImageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => {
                write!(f, "the kernel is {len} bytes, shorter than an arm64 Image header")
            }
            Self::BadMagic(magic) => write!(
                f,
                "the kernel is not an arm64 Image (magic {magic:#010x}); \
                 pass an uncompressed Image, not Image.gz or vmlinux"
            ),
            Self::BigEndian => write!(f, "the kernel is big-endian; guests run little-endian"),
            Self::BadTextOffset(offset) => {
                write!(f, "the Image header's text_offset {offset:#x} is not 4 KiB-aligned")
            }
            Self::BadRam(ram) => write!(f, "guest RAM {ram:#x?} is empty or wraps around"),
            Self::KernelDoesNotFit { kernel_end, limit } => write!(
                f,
                "the kernel would end at {kernel_end:#x}, past the usable guest RAM ({limit:#x}); \
                 raise mem="
            ),
            Self::InitrdDoesNotFit { size, space } => write!(
                f,
                "the initrd ({}) does not fit in the {} left after the kernel; raise mem=",
                HumanSize(*size),
                HumanSize(*space)
            ),
            Self::EmptyInitrd => write!(f, "the initrd is empty"),
            Self::BadDtbSize(size) => write!(
                f,
                "the guest DTB is {}; it must be non-empty and at most {}",
                HumanSize(*size),
                HumanSize(DTB_MAX_SIZE)
            ),
            Self::DtbDoesNotFit { size, ram } => {
                write!(f, "the guest DTB ({}) does not fit in guest RAM {ram}", HumanSize(*size))
            }
        }
    }
}

/// Reads the header at the start of an `Image`.
pub fn parse(bytes: &[u8]) -> Result<ImageHeader, ImageError> {
    let header = bytes.get(..HEADER_SIZE).ok_or(ImageError::TooShort { len: bytes.len() as u64 })?;
    let magic = u32::from_le_bytes(field(header, MAGIC_AT));
    if magic != MAGIC {
        return Err(ImageError::BadMagic(magic));
    }
    let image = ImageHeader {
        text_offset: u64::from_le_bytes(field(header, TEXT_OFFSET_AT)),
        image_size: u64::from_le_bytes(field(header, IMAGE_SIZE_AT)),
        flags: u64::from_le_bytes(field(header, FLAGS_AT)),
    };
    // Legacy headers have no flags, and such kernels are little-endian in practice.
    if !image.is_legacy() && image.flags & FLAG_BIG_ENDIAN != 0 {
        return Err(ImageError::BigEndian);
    }
    Ok(image)
}

/// The `N` bytes at `offset` of the (already length-checked) header.
fn field<const N: usize>(header: &[u8], offset: usize) -> [u8; N] {
    let mut bytes = [0; N];
    bytes.copy_from_slice(&header[offset..offset + N]);
    bytes
}

/// Places the kernel at the first 2 MiB-aligned address of `ram` plus `text_offset`, the initrd
/// on the next page after the kernel's `image_size`, and the DTB at the start of the last 2 MiB
/// window of `ram` that holds it. `ram` is the guest's RAM, in IPAs.
pub fn plan_load(
    ram: MemRange,
    header: &ImageHeader,
    kernel_file_size: u64,
    initrd_size: Option<u64>,
    dtb_size: u64,
) -> Result<LoadPlan, ImageError> {
    let ram_end = ram.start.checked_add(ram.size).filter(|_| ram.size > 0);
    let ram_end = ram_end.ok_or(ImageError::BadRam(ram))?;
    if kernel_file_size < HEADER_SIZE as u64 {
        return Err(ImageError::TooShort { len: kernel_file_size });
    }
    if dtb_size == 0 || dtb_size > DTB_MAX_SIZE {
        return Err(ImageError::BadDtbSize(dtb_size));
    }

    // The DTB first, so the kernel and initrd can be checked against it. Starting it on a 2 MiB
    // boundary keeps it 8-byte aligned and within one window, as it is at most 2 MiB.
    let dtb_start = ram_end
        .checked_sub(dtb_size)
        .map(|start| start / DTB_WINDOW * DTB_WINDOW)
        .filter(|&start| start >= ram.start)
        .ok_or(ImageError::DtbDoesNotFit { size: dtb_size, ram })?;
    debug_assert!(dtb_start.is_multiple_of(DTB_ALIGN));
    let dtb = MemRange::new(dtb_start, dtb_size);

    let (text_offset, kernel_size) = if header.is_legacy() {
        (LEGACY_TEXT_OFFSET, kernel_file_size)
    } else {
        (header.text_offset, header.image_size.max(kernel_file_size))
    };
    if !text_offset.is_multiple_of(TEXT_OFFSET_ALIGN) {
        return Err(ImageError::BadTextOffset(text_offset));
    }
    let too_big = |kernel_end| ImageError::KernelDoesNotFit { kernel_end, limit: dtb.start };
    let kernel_start = align_up(ram.start, KERNEL_BASE_ALIGN)
        .and_then(|base| base.checked_add(text_offset))
        .ok_or(too_big(u64::MAX))?;
    let kernel_end = kernel_start.checked_add(kernel_size).ok_or(too_big(u64::MAX))?;
    if kernel_end > dtb.start {
        return Err(too_big(kernel_end));
    }
    let kernel = MemRange::new(kernel_start, kernel_size);

    let initrd = match initrd_size {
        None => None,
        Some(0) => return Err(ImageError::EmptyInitrd),
        Some(size) => {
            let start = align_up(kernel_end, INITRD_ALIGN).filter(|&start| start <= dtb.start);
            let space = start.map_or(0, |start| dtb.start - start);
            match start {
                Some(start) if size <= space => Some(MemRange::new(start, size)),
                _ => return Err(ImageError::InitrdDoesNotFit { size, space }),
            }
        }
    };

    Ok(LoadPlan { kernel, entry: kernel.start, initrd, dtb })
}

/// `value` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;
    const RAM: MemRange = MemRange::new(0x4000_0000, 1 << 30);

    /// A header as `arch/arm64/kernel/head.S` lays it out.
    fn header_bytes(text_offset: u64, image_size: u64, flags: u64) -> [u8; HEADER_SIZE] {
        let mut bytes = [0u8; HEADER_SIZE];
        bytes[0..4].copy_from_slice(&0x1400_0000u32.to_le_bytes()); // code0: a branch
        bytes[TEXT_OFFSET_AT..TEXT_OFFSET_AT + 8].copy_from_slice(&text_offset.to_le_bytes());
        bytes[IMAGE_SIZE_AT..IMAGE_SIZE_AT + 8].copy_from_slice(&image_size.to_le_bytes());
        bytes[FLAGS_AT..FLAGS_AT + 8].copy_from_slice(&flags.to_le_bytes());
        bytes[MAGIC_AT..MAGIC_AT + 4].copy_from_slice(b"ARM\x64");
        bytes
    }

    /// Every promise of a plan: inside RAM, aligned as booting.rst requires, no overlaps.
    fn check_plan(ram: MemRange, plan: &LoadPlan) {
        assert!(ram.contains_range(&plan.kernel) && ram.contains_range(&plan.dtb), "{plan:x?}");
        assert_eq!(plan.entry, plan.kernel.start);
        assert!(plan.kernel.start.is_multiple_of(TEXT_OFFSET_ALIGN));
        assert!(plan.dtb.start.is_multiple_of(DTB_ALIGN));
        assert!(plan.dtb.size <= DTB_MAX_SIZE);
        assert_eq!(plan.dtb.start / DTB_WINDOW, (plan.dtb.end() - 1) / DTB_WINDOW);
        assert!(!plan.kernel.overlaps(&plan.dtb));
        if let Some(initrd) = plan.initrd {
            assert!(ram.contains_range(&initrd));
            assert!(initrd.start.is_multiple_of(INITRD_ALIGN));
            assert!(initrd.start >= plan.kernel.end());
            assert!(!initrd.overlaps(&plan.dtb));
        }
    }

    #[test]
    fn parses_a_modern_header() {
        let header = parse(&header_bytes(0, 40 * MIB, 0b1010)).unwrap();
        assert_eq!(header, ImageHeader { text_offset: 0, image_size: 40 * MIB, flags: 0b1010 });
        assert_eq!(header.page_size(), Some(4096));
        assert!(header.place_anywhere());
        assert!(!header.is_legacy());
    }

    #[test]
    fn refuses_what_is_not_a_little_endian_image() {
        assert_eq!(parse(&[]), Err(ImageError::TooShort { len: 0 }));
        let bytes = header_bytes(0, MIB, 0);
        assert_eq!(parse(&bytes[..63]), Err(ImageError::TooShort { len: 63 }));
        let mut gzip = bytes;
        gzip[MAGIC_AT..MAGIC_AT + 4].copy_from_slice(&[0x1f, 0x8b, 8, 0]);
        assert_eq!(parse(&gzip), Err(ImageError::BadMagic(0x0008_8b1f)));
        assert_eq!(parse(&header_bytes(0, MIB, FLAG_BIG_ENDIAN)), Err(ImageError::BigEndian));
        // Legacy headers carry no flags: bit 0 means nothing there.
        assert!(parse(&header_bytes(0x8_0000, 0, FLAG_BIG_ENDIAN)).is_ok());
    }

    #[test]
    fn plans_kernel_initrd_and_dtb() {
        let header = parse(&header_bytes(0, 40 * MIB, 0b1010)).unwrap();
        let plan = plan_load(RAM, &header, 30 * MIB, Some(5 * MIB + 123), 0x1234).unwrap();
        assert_eq!(plan.kernel, MemRange::new(0x4000_0000, 40 * MIB));
        assert_eq!(plan.entry, 0x4000_0000);
        assert_eq!(plan.initrd, Some(MemRange::new(0x4280_0000, 5 * MIB + 123)));
        assert_eq!(plan.dtb, MemRange::new(0x7fe0_0000, 0x1234));
        check_plan(RAM, &plan);
    }

    #[test]
    fn honours_text_offset_and_a_file_longer_than_image_size() {
        let header = parse(&header_bytes(0x8_0000, 10 * MIB, 0)).unwrap();
        let ram = MemRange::new(0x4010_0000, 256 * MIB); // base not 2 MiB-aligned
        let plan = plan_load(ram, &header, 12 * MIB + 1, None, 4096).unwrap();
        assert_eq!(plan.kernel, MemRange::new(0x4028_0000, 12 * MIB + 1));
        assert_eq!(plan.initrd, None);
        check_plan(ram, &plan);
    }

    #[test]
    fn legacy_kernels_use_the_old_text_offset_and_their_file_size() {
        let header = parse(&header_bytes(0x1234, 0, 0)).unwrap();
        assert!(header.is_legacy() && header.page_size().is_none());
        let plan = plan_load(RAM, &header, 9 * MIB, Some(4096), 64).unwrap();
        assert_eq!(plan.kernel, MemRange::new(0x4008_0000, 9 * MIB));
        assert_eq!(plan.initrd, Some(MemRange::new(0x4098_0000, 4096)));
        check_plan(RAM, &plan);
    }

    #[test]
    fn dtb_goes_in_the_last_window_that_holds_it() {
        let header = parse(&header_bytes(0, MIB, 0)).unwrap();
        let ram = MemRange::new(0x4000_0000, 64 * MIB + 0x1000); // ends just past a window
        let plan = plan_load(ram, &header, MIB, None, 0x800).unwrap();
        assert_eq!(plan.dtb.start, 0x4400_0000);
        let plan = plan_load(ram, &header, MIB, None, DTB_MAX_SIZE).unwrap();
        assert_eq!(plan.dtb, MemRange::new(0x43e0_0000, DTB_MAX_SIZE));
        check_plan(ram, &plan);
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let header = parse(&header_bytes(0, 60 * MIB, 0)).unwrap();
        let ram = MemRange::new(0x4000_0000, 64 * MIB);
        assert_eq!(
            plan_load(ram, &header, MIB, Some(3 * MIB), 100),
            Err(ImageError::InitrdDoesNotFit { size: 3 * MIB, space: 2 * MIB })
        );
        assert_eq!(
            plan_load(ram, &header, 63 * MIB, None, 100),
            Err(ImageError::KernelDoesNotFit { kernel_end: 0x43f0_0000, limit: 0x43e0_0000 })
        );
        assert_eq!(plan_load(ram, &header, MIB, Some(0), 100), Err(ImageError::EmptyInitrd));
        assert_eq!(plan_load(ram, &header, MIB, None, 0), Err(ImageError::BadDtbSize(0)));
        let too_big = DTB_MAX_SIZE + 1;
        assert_eq!(plan_load(ram, &header, MIB, None, too_big), Err(ImageError::BadDtbSize(too_big)));
        assert_eq!(plan_load(ram, &header, 10, None, 100), Err(ImageError::TooShort { len: 10 }));
        let tiny = MemRange::new(0x4000_0000, 0x1000);
        assert!(matches!(plan_load(tiny, &header, MIB, None, 0x2000), Err(ImageError::DtbDoesNotFit { .. })));
    }

    #[test]
    fn odd_numbers_are_errors_not_panics() {
        let ram_at_top = MemRange::new(u64::MAX - 0xfff, 0x1000);
        for (ram, text_offset, image_size) in [
            (RAM, u64::MAX - 0xfff, 1),
            (RAM, 0, u64::MAX),
            (RAM, 0x800, 1),
            (MemRange::new(u64::MAX, 2), 0, 1),
            (MemRange::new(0, 0), 0, 1),
            (ram_at_top, 0, 1),
        ] {
            let header = ImageHeader { text_offset, image_size, flags: 0 };
            assert!(plan_load(ram, &header, u64::MAX, Some(u64::MAX), 8).is_err());
            assert!(plan_load(ram, &header, 64, Some(u64::MAX), 8).is_err());
        }
        assert_eq!(
            plan_load(RAM, &ImageHeader { text_offset: 0x800, image_size: 1, flags: 0 }, 64, None, 8),
            Err(ImageError::BadTextOffset(0x800))
        );
    }

    #[test]
    fn garbage_headers_never_panic() {
        // A small xorshift generator: deterministic, no dependencies.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000u32 {
            let mut bytes = [0u8; HEADER_SIZE];
            bytes.iter_mut().for_each(|b| *b = next() as u8);
            if round.is_multiple_of(2) {
                bytes[MAGIC_AT..MAGIC_AT + 4].copy_from_slice(b"ARM\x64");
            }
            // Small values now and then, so some plans succeed and get checked.
            if round.is_multiple_of(4) {
                bytes[TEXT_OFFSET_AT..FLAGS_AT].fill(0);
                bytes[IMAGE_SIZE_AT] = 1;
            }
            let len = (next() % (HEADER_SIZE as u64 + 8)) as usize;
            let parsed = parse(&bytes[..len.min(HEADER_SIZE)]);
            let Ok(header) = parsed else { continue };
            let ram = MemRange::new(next() % (1 << 40), next() % (4 << 30));
            let initrd = (!round.is_multiple_of(3)).then(|| next() % (64 * MIB));
            if let Ok(plan) = plan_load(ram, &header, next() % (64 * MIB), initrd, next() % (3 * MIB)) {
                check_plan(ram, &plan);
            }
        }
    }
}
