//! Boot self-test of the built-in functions (functions.rs) and the page walker they read a
//! process's memory with (rosmem.rs), on core 0 before it reports ready.
//!
//! No ROS process exists to test against, so the test builds a small one in HRT RAM (the
//! walker is given HRT RAM instead of ROS RAM): stage-1 tables in the format Linux writes
//! (4 KiB granule), walked once as a 48-bit address space (root at level 0) and once as a
//! 39-bit one (root at level 1). Two virtual pages map two physical pages in reverse order, so
//! a string and a checksum across the boundary only come out right if each page is translated
//! on its own; a 2 MiB block, a tagged pointer and the refusals (an address outside the RAM, an
//! unmapped page, a table outside the RAM, a VA beyond the region, a 16 KiB granule, a
//! checksum too long, an unknown function, a CALL_ROS with nothing merged) are checked too. The
//! hypervisor is not involved.

use core::cell::UnsafeCell;
use core::fmt;
use core::sync::atomic::{compiler_fence, AtomicBool, Ordering};

use hvm_ros_lib::abi::invoke::function::{ADD, CALL_ROS, CHECKSUM, SPIN_US};

use crate::boot::BootInfoView;
use crate::el0::RosCallError;
use crate::fletcher::Fletcher64;
use crate::functions::{self, Context, FnError, CHECKSUM_MAX_LEN};
use crate::guest_ram::GuestRam;
use crate::rosmem::{AddressSpace, RosMemError, StringBuffer, PAGE_SIZE, STRING_MAX};
use crate::translate;

const PAGE_BYTES: usize = PAGE_SIZE as usize;
const ENTRIES: usize = PAGE_BYTES / core::mem::size_of::<u64>();

/// Descriptors as Linux writes them (bits [1:0]); the walker ignores the other attributes.
const DESC_TABLE: u64 = 0b11;
const DESC_PAGE: u64 = 0b11;
const DESC_BLOCK: u64 = 0b01;

/// VA bits each level indexes (4 KiB granule).
const L1_SHIFT: u32 = 30;
const L2_SHIFT: u32 = 21;
const L3_SHIFT: u32 = 12;
const BLOCK_SIZE: u64 = 1 << L2_SHIFT;

/// Where the test maps things: all under level-1 entry 1 (so level-0 entry 0 in the 48-bit
/// space). Level-2 entry 3 is a page table, 4 a 2 MiB block, 5 a table outside the RAM.
const L1_INDEX: usize = 1;
const L2_PAGES: usize = 3;
const L2_BLOCK: usize = 4;
const L2_BAD_TABLE: usize = 5;
/// In the page table: entries 0 and 1 map the two data pages (in reverse), 2 maps IPA 0
/// (outside the RAM), 3 is invalid.
const L3_OUTSIDE_RAM: usize = 2;
const L3_UNMAPPED: usize = 3;
/// Virtual page `v` of the test's two maps `data[DATA_PAGE_OF[v]]`.
const DATA_PAGE_OF: [usize; 2] = [1, 0];

const fn test_va(l2: usize, l3: usize) -> u64 {
    ((L1_INDEX as u64) << L1_SHIFT) | ((l2 as u64) << L2_SHIFT) | ((l3 as u64) << L3_SHIFT)
}
/// The two mapped pages, one after the other.
const DATA_VA: u64 = test_va(L2_PAGES, 0);
const DATA_LEN: u64 = DATA_PAGE_OF.len() as u64 * PAGE_SIZE;

/// The string, across the two pages; its checksum is fletcher.rs's documented example.
const STRING: &[u8] = b"abcde";
const STRING_CHECKSUM: u64 = 0xc8c6_c527_6463_62c6;
const STRING_OFFSET: u64 = PAGE_SIZE - 3;
const STRING_VA: u64 = DATA_VA + STRING_OFFSET;
/// A tag in the top byte (TBI0): ignored.
const TAG: u64 = 0x5a << 56;

/// TCR_EL1 values: T0SZ [5:0], TG0 [15:14] (0b00 = 4 KiB, 0b10 = 16 KiB), TBI0 [37].
const TCR_TBI0: u64 = 1 << 37;
const TCR_48_BIT: u64 = 16 | TCR_TBI0;
const TCR_39_BIT: u64 = 25 | TCR_TBI0;
const TCR_16K_GRANULE: u64 = 25 | (0b10 << 14);

const SPIN_TEST_US: u64 = 100;
const SUMS: [(u64, u64, u64); 2] = [(2, 3, 5), (u64::MAX, 2, 1)];

#[repr(C, align(4096))]
struct Table([u64; ENTRIES]);

#[repr(C, align(4096))]
struct DataPage([u8; PAGE_BYTES]);

/// The test's tables and pages (in .bss, so in HRT RAM).
#[repr(C)]
struct Fixture {
    l0: Table,
    l1: Table,
    l2: Table,
    l3: Table,
    data: [DataPage; 2],
}

struct FixtureCell(UnsafeCell<Fixture>);

// SAFETY: only `build_fixture` writes it, once (FIXTURE_BUILT), on core 0.
unsafe impl Sync for FixtureCell {}

static FIXTURE: FixtureCell = FixtureCell(UnsafeCell::new(Fixture {
    l0: Table([0; ENTRIES]),
    l1: Table([0; ENTRIES]),
    l2: Table([0; ENTRIES]),
    l3: Table([0; ENTRIES]),
    data: [DataPage([0; PAGE_BYTES]), DataPage([0; PAGE_BYTES])],
}));
static FIXTURE_BUILT: AtomicBool = AtomicBool::new(false);

/// The IPAs of the two roots and of data page 0.
struct Roots {
    l0: u64,
    l1: u64,
    data0: u64,
}

/// Byte `offset` of the test's virtual range [`DATA_VA`], [`DATA_VA`] + [`DATA_LEN`]: a pattern,
/// with [`STRING`] and its NUL at [`STRING_OFFSET`].
fn expected_byte(offset: u64) -> u8 {
    match offset.checked_sub(STRING_OFFSET).map(|at| at as usize) {
        Some(at) if at < STRING.len() => STRING[at],
        Some(at) if at == STRING.len() => 0,
        // Never zero, so the string has no early NUL; the low bits vary within a word.
        _ => (offset % 251) as u8 + 1,
    }
}

/// Fills the fixture and returns its roots (None: already built, or not mapped).
fn build_fixture() -> Option<Roots> {
    if FIXTURE_BUILT.swap(true, Ordering::Relaxed) {
        return None;
    }
    // SAFETY: the first and only reference (FIXTURE_BUILT), on this core; it ends with this
    // function, before the walker reads the fixture through the linear map.
    let fixture = unsafe { &mut *FIXTURE.0.get() };
    let ipa = |va: *const u8| translate::va_to_ipa(va as u64);
    let l0 = ipa(fixture.l0.0.as_ptr().cast())?;
    let l1 = ipa(fixture.l1.0.as_ptr().cast())?;
    let l2 = ipa(fixture.l2.0.as_ptr().cast())?;
    let l3 = ipa(fixture.l3.0.as_ptr().cast())?;
    let data = [ipa(fixture.data[0].0.as_ptr())?, ipa(fixture.data[1].0.as_ptr())?];

    fixture.l0.0[0] = l1 | DESC_TABLE;
    fixture.l1.0[L1_INDEX] = l2 | DESC_TABLE;
    fixture.l2.0[L2_PAGES] = l3 | DESC_TABLE;
    fixture.l2.0[L2_BLOCK] = (data[0] & !(BLOCK_SIZE - 1)) | DESC_BLOCK;
    fixture.l2.0[L2_BAD_TABLE] = DESC_TABLE;
    for (virtual_page, &data_page) in DATA_PAGE_OF.iter().enumerate() {
        fixture.l3.0[virtual_page] = data[data_page] | DESC_PAGE;
        let base = virtual_page as u64 * PAGE_SIZE;
        for (offset, byte) in fixture.data[data_page].0.iter_mut().enumerate() {
            *byte = expected_byte(base + offset as u64);
        }
    }
    fixture.l3.0[L3_OUTSIDE_RAM] = DESC_PAGE;
    fixture.l3.0[L3_UNMAPPED] = 0;
    Some(Roots { l0, l1, data0: data[0] })
}

/// Runs the self-test.
pub fn run(boot: &BootInfoView) -> Result<SelfTest, SelfTestError> {
    let roots = build_fixture().ok_or(SelfTestError::Fixture)?;
    // The walker reads the fixture through another mapping (the linear map): the writes come
    // first.
    compiler_fence(Ordering::SeqCst);
    let ram = boot.hrt_memory();
    let space_48 = AddressSpace::new(ram, roots.l0, TCR_48_BIT);
    let space_39 = AddressSpace::new(ram, roots.l1, TCR_39_BIT);
    let context = |space| context(space, boot);

    for (a, b, expected) in SUMS {
        check("add", functions::call(ADD, &args(a, b), &context(&space_39)), expected)?;
    }
    let spun_us = functions::call(SPIN_US, &args(SPIN_TEST_US, 0), &context(&space_39))
        .map_err(|error| SelfTestError::Failed { what: "spin", error })?;
    if spun_us < SPIN_TEST_US {
        return Err(SelfTestError::Wrong { what: "spin (us)", got: spun_us, expected: SPIN_TEST_US });
    }

    for space in [&space_48, &space_39] {
        walk(space, &context(space), roots.data0)?;
    }
    refusals(&context(&space_39), ram, roots.l1)?;
    Ok(SelfTest { spin_us: SPIN_TEST_US, spun_us })
}

fn context<'a>(space: &'a AddressSpace, boot: &BootInfoView) -> Context<'a> {
    // No process: CALL_ROS, the only function that looks, is only tested unmerged.
    Context { space, process: 0, core: boot.core(), counter_frequency: boot.counter_frequency() }
}

fn args(a: u64, b: u64) -> [u64; 6] {
    [a, b, 0, 0, 0, 0]
}

fn check(what: &'static str, got: Result<u64, FnError>, expected: u64) -> Result<(), SelfTestError> {
    match got {
        Ok(got) if got == expected => Ok(()),
        Ok(got) => Err(SelfTestError::Wrong { what, got, expected }),
        Err(error) => Err(SelfTestError::Failed { what, error }),
    }
}

/// What must work in either address space.
fn walk(space: &AddressSpace, context: &Context, data0: u64) -> Result<(), SelfTestError> {
    let mut buffer: StringBuffer = [0; STRING_MAX + 1];
    match space.read_c_string(STRING_VA | TAG, &mut buffer) {
        Ok(string) if string == STRING => {}
        Ok(_) => return Err(SelfTestError::Mismatch { what: "string across pages" }),
        Err(error) => return Err(SelfTestError::Failed { what: "string across pages", error: error.into() }),
    }
    let mut copy = [0u8; 2 * STRING_MAX];
    let copy_va = STRING_VA - STRING_MAX as u64;
    space.read(copy_va, &mut copy).map_err(|error| SelfTestError::Failed { what: "read", error: error.into() })?;
    let base = copy_va - DATA_VA;
    if copy.iter().enumerate().any(|(at, &byte)| byte != expected_byte(base + at as u64)) {
        return Err(SelfTestError::Mismatch { what: "read across pages" });
    }
    let sum = functions::call(CHECKSUM, &args(STRING_VA, STRING.len() as u64), context);
    check("checksum of the string", sum, STRING_CHECKSUM)?;
    // Unaligned start and end, so words straddle the pages.
    let (start, len) = (1, DATA_LEN - 2);
    let mut expected = Fletcher64::new();
    expected.add_bytes((start..start + len).map(expected_byte));
    let sum = functions::call(CHECKSUM, &args(DATA_VA + start, len), context);
    check("checksum across pages", sum, expected.finish())?;
    let block_va = test_va(L2_BLOCK, 0) + (data0 & (BLOCK_SIZE - 1));
    match space.translate(block_va) {
        Ok(ipa) if ipa == data0 => Ok(()),
        Ok(ipa) => Err(SelfTestError::Wrong { what: "2 MiB block", got: ipa, expected: data0 }),
        Err(error) => Err(SelfTestError::Failed { what: "2 MiB block", error: error.into() }),
    }
}

/// What must be refused, and how (in the 39-bit space).
fn refusals(context: &Context, ram: GuestRam, root: u64) -> Result<(), SelfTestError> {
    let beyond = 1 << 39;
    let cases: [(&'static str, u64, u64, FnError); 6] = [
        (
            "page outside the RAM",
            test_va(L2_PAGES, L3_OUTSIDE_RAM),
            1,
            memory(RosMemError::OutsideRam { va: 0, ipa: 0 }),
        ),
        ("unmapped page", test_va(L2_PAGES, L3_UNMAPPED), 1, memory(RosMemError::NotMapped { va: 0, level: 0 })),
        (
            "table outside the RAM",
            test_va(L2_BAD_TABLE, 0),
            1,
            memory(RosMemError::BadTable { va: 0, level: 0, table: 0 }),
        ),
        ("VA beyond the region", beyond, 1, memory(RosMemError::OutsideVaRange { va: 0 })),
        // The mapped pages, then the page outside the RAM: refused when reached.
        ("range into a bad page", DATA_VA, DATA_LEN + 1, memory(RosMemError::OutsideRam { va: 0, ipa: 0 })),
        ("checksum too long", DATA_VA, CHECKSUM_MAX_LEN + 1, FnError::TooLong { len: 0 }),
    ];
    for (what, va, len, expected) in cases {
        refused(what, functions::call(CHECKSUM, &args(va, len), context), expected)?;
    }
    let granule_16k = AddressSpace::new(ram, root, TCR_16K_GRANULE);
    let granule_context = Context { space: &granule_16k, ..*context };
    let expected = memory(RosMemError::Granule { tg0: 0 });
    refused("16 KiB granule", functions::call(CHECKSUM, &args(DATA_VA, 1), &granule_context), expected)?;
    let unknown = u64::MAX;
    refused("unknown function", functions::call(unknown, &args(0, 0), context), FnError::UnknownFunction(0))?;
    // Nothing is merged at boot: nothing may run (and nothing is touched).
    let not_merged = FnError::RosCall(RosCallError::NotMerged);
    refused("CALL_ROS unmerged", functions::call(CALL_ROS, &args(0, 0), context), not_merged)?;
    Ok(())
}

fn memory(error: RosMemError) -> FnError {
    FnError::Memory(error)
}

/// Whether `got` is an error of the same kind as `expected` (the fields are not compared).
fn refused(what: &'static str, got: Result<u64, FnError>, expected: FnError) -> Result<(), SelfTestError> {
    let same_kind = |error: &FnError| match (error, &expected) {
        (FnError::Memory(a), FnError::Memory(b)) => core::mem::discriminant(a) == core::mem::discriminant(b),
        (FnError::RosCall(a), FnError::RosCall(b)) => core::mem::discriminant(a) == core::mem::discriminant(b),
        (a, b) => core::mem::discriminant(a) == core::mem::discriminant(b),
    };
    match got {
        Err(error) if same_kind(&error) => Ok(()),
        Err(error) => Err(SelfTestError::Failed { what, error }),
        Ok(got) => Err(SelfTestError::Accepted { what, got }),
    }
}

/// What [`run`] measured.
pub struct SelfTest {
    spin_us: u64,
    spun_us: u64,
}

impl fmt::Display for SelfTest {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "add ok, spin {} us ok (took {} us), page walks ok (48/39-bit, pages, block, tag, string, checksum, 9 refusals)",
            self.spin_us, self.spun_us
        )
    }
}

/// How [`run`] failed.
pub enum SelfTestError {
    /// The fixture was already built, or its memory has no IPA.
    Fixture,
    Failed {
        what: &'static str,
        error: FnError,
    },
    Wrong {
        what: &'static str,
        got: u64,
        expected: u64,
    },
    /// Bytes read back differ from the fixture's.
    Mismatch {
        what: &'static str,
    },
    /// A call that must be refused returned this.
    Accepted {
        what: &'static str,
        got: u64,
    },
}

impl fmt::Display for SelfTestError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Self::Fixture => write!(f, "could not build the test page tables"),
            Self::Failed { what, error } => write!(f, "{what}: {error}"),
            Self::Wrong { what, got, expected } => write!(f, "{what} returned {got:#x}, expected {expected:#x}"),
            Self::Mismatch { what } => write!(f, "{what}: wrong bytes"),
            Self::Accepted { what, got } => write!(f, "{what} was accepted (returned {got:#x})"),
        }
    }
}
