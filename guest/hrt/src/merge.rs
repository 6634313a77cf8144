//! The address-space merge (DESIGN.md §7; palacios-hvm.md §4.2, §7.5): the HRT takes a ROS
//! process's user address space into its TTBR0 half, so the process's functions run here, at
//! EL0 (el0.rs), over the process's own translation tables. The HRT kernel lives in the TTBR1
//! half and is not touched.
//!
//! The first HRT core gets the request (upcall `Merge`, 0x30, or `Unmerge`, 0x31) with the
//! process's TTBR0 base, TCR_EL1, MAIR_EL1 and ASID in the comm page, checks it, publishes it
//! as the shared merge record and applies it on itself; every other core applies the record
//! lazily, before it next enters EL0 ([`apply_on_this_core`]). Applying a merge:
//!
//! * TTBR0_EL1 = the table base, tagged with the process's ASID: the ROS's by-ASID TLB
//!   invalidations, which the hypervisor replays for the HRT while a merge is active, then hit
//!   the HRT's entries (Linux keeps the ASID in TTBR1 with TCR_EL1.A1 = 1; ours stays A1 = 0,
//!   so the ASID comes from TTBR0).
//! * TCR_EL1: EPD0 cleared, the ROS's TTBR0-half fields taken (region size, cacheability,
//!   shareability, granule, top-byte ignore), and with them AS (the ASID's width, which must
//!   match the ROS's 8 or 16 bits) and HA/HD (hardware Access flag and dirty state: without
//!   them every page Linux leaves "old" or clean-writable would cost a forwarded fault).
//!   The TTBR1 half's fields are the HRT's own.
//! * MAIR_EL1 = the ROS's, whose attribute indexes the process's descriptors use. Only if it
//!   gives the indexes the HRT's own mappings use the same meaning (abi.rs `hrt_boot`: 0 normal
//!   write-back, 4 device nGnRE, as Linux): else the merge is refused.
//! * The TLB entries of that ASID are invalidated (another process may have used it before).
//!
//! Unmerging disables the TTBR0 half again (EPD0 = 1, TTBR0 = 0) and invalidates the ASID.
//! A refused merge is answered all the same (the ROS must not wait forever), leaves nothing
//! merged, and CALL_ROS then fails cleanly with `WrongState`.

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{Readable, Writeable, MAIR_EL1, TCR_EL1, TTBR0_EL1};
use hvm_ros_lib::abi::hrt_boot::{ATTR_DEVICE, ATTR_NORMAL};

use crate::boot::RamRange;
use crate::cpu::{self, MAX_CORES};
use crate::shared::Published;

/// TCR_EL1 fields.
const TCR_T0SZ: u64 = 0x3f;
const TCR_EPD0: u64 = 1 << 7;
const TCR_IRGN0: u64 = 0b11 << 8;
const TCR_ORGN0: u64 = 0b11 << 10;
const TCR_SH0: u64 = 0b11 << 12;
const TCR_TG0: u64 = 0b11 << 14;
/// A1: which TTBR holds the ASID (0: TTBR0, ours).
const TCR_A1: u64 = 1 << 22;
/// AS: 16-bit ASIDs (else 8-bit).
const TCR_AS: u64 = 1 << 36;
const TCR_TBI0: u64 = 1 << 37;
const TCR_HA: u64 = 1 << 39;
const TCR_HD: u64 = 1 << 40;
/// DS (LPA2): changes the descriptor format of both halves, the HRT's tables included.
const TCR_DS: u64 = 1 << 59;
/// What a merge takes from the ROS's TCR_EL1.
const TCR_FROM_ROS: u64 = TCR_T0SZ | TCR_IRGN0 | TCR_ORGN0 | TCR_SH0 | TCR_TG0 | TCR_AS | TCR_TBI0 | TCR_HA | TCR_HD;

/// TTBR0_EL1.BADDR [47:1] (the hypervisor has cleared the ASID and CnP) and ASID [63:48]; the
/// same position in a TLBI operand.
const TTBR_BADDR_MASK: u64 = 0x0000_ffff_ffff_fffe;
const ASID_SHIFT: u32 = 48;
const ASID_MAX_8_BIT: u64 = 0xff;
const ASID_MAX_16_BIT: u64 = 0xffff;

/// MAIR_EL1: one 8-bit attribute per index; the encodings the HRT's mappings need.
const MAIR_ATTR_BITS: u64 = 8;
const MAIR_ATTR_MASK: u64 = 0xff;
const MAIR_NORMAL_WB: u64 = 0xff;
const MAIR_DEVICE_NGNRE: u64 = 0x04;

/// The words of [`RECORD`]: merged (0 or 1), TTBR0_EL1, the TCR fields, MAIR_EL1, ASID.
const WORDS: usize = 5;
const MERGED: u64 = 1;
/// The merge in force. Version 0 (all zero) is "nothing merged", as every core boots.
static RECORD: Published<WORDS> = Published::new();

/// Per core: the record version it applied last, and the ASID it then used (to invalidate on
/// unmerge).
static APPLIED: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(0) }; MAX_CORES];
static APPLIED_ASID: [AtomicU64; MAX_CORES] = [const { AtomicU64::new(NO_ASID) }; MAX_CORES];
const NO_ASID: u64 = u64::MAX;

/// A merge request, from the comm page.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub ttbr0: u64,
    pub tcr: u64,
    pub mair: u64,
    pub asid: u64,
}

/// A merged process, as every core applies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Merged {
    /// The TTBR0 table base: the process's identity (DESIGN.md §7).
    pub base: u64,
    pub asid: u64,
    /// The ROS's [`TCR_FROM_ROS`] fields.
    tcr: u64,
    mair: u64,
}

impl Merged {
    fn from_record(words: [u64; WORDS]) -> Option<Self> {
        let [merged, base, tcr, mair, asid] = words;
        (merged == MERGED).then_some(Self { base, asid, tcr, mair })
    }

    fn record(&self) -> [u64; WORDS] {
        [MERGED, self.base, self.tcr, self.mair, self.asid]
    }
}

/// Why a merge was refused.
#[derive(Clone, Copy, Debug)]
pub enum Refused {
    /// The table base is not inside ROS RAM.
    TableOutsideRam { base: u64 },
    /// A MAIR_EL1 attribute the HRT's own mappings use means something else there.
    Mair { mair: u64, index: u64, found: u64, expected: u64 },
    /// TCR_EL1.DS (LPA2) would change the format of the HRT's own descriptors.
    Lpa2,
    /// The ASID does not fit the ROS's ASID width.
    AsidTooWide { asid: u64, bits: u32 },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Self::TableOutsideRam { base } => write!(f, "translation table at IPA {base:#x} is not inside ROS RAM"),
            Self::Mair { mair, index, found, expected } => write!(
                f,
                "MAIR_EL1 {mair:#x} has attribute {index} = {found:#04x}, the HRT's mappings need {expected:#04x}"
            ),
            Self::Lpa2 => write!(f, "TCR_EL1.DS (LPA2) is set, the HRT's tables use the other descriptor format"),
            Self::AsidTooWide { asid, bits } => write!(f, "ASID {asid:#x} does not fit the ROS's {bits}-bit ASIDs"),
        }
    }
}

/// Checks `request` against the HRT's needs; the merge it describes.
fn check(request: &Request, ros_ram: RamRange) -> Result<Merged, Refused> {
    let base = request.ttbr0 & TTBR_BADDR_MASK;
    // The hardware walker reads the tables wherever the base points: it must be the ROS's RAM,
    // never the HRT's.
    if !ros_ram.contains(base, 1) {
        return Err(Refused::TableOutsideRam { base });
    }
    for (index, expected) in [(ATTR_NORMAL, MAIR_NORMAL_WB), (ATTR_DEVICE, MAIR_DEVICE_NGNRE)] {
        let found = (request.mair >> (index * MAIR_ATTR_BITS)) & MAIR_ATTR_MASK;
        if found != expected {
            return Err(Refused::Mair { mair: request.mair, index, found, expected });
        }
    }
    if request.tcr & TCR_DS != 0 {
        return Err(Refused::Lpa2);
    }
    let (max, bits) = if request.tcr & TCR_AS != 0 { (ASID_MAX_16_BIT, 16) } else { (ASID_MAX_8_BIT, 8) };
    if request.asid > max {
        return Err(Refused::AsidTooWide { asid: request.asid, bits });
    }
    Ok(Merged { base, asid: request.asid, tcr: request.tcr & TCR_FROM_ROS, mair: request.mair })
}

/// Which TLBs an invalidation reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Every core's (inner shareable): the core that serves the merge.
    AllCores,
    /// This core's: one applying the record lazily.
    ThisCore,
}

/// Invalidates the TLB entries of `asid` (every level, walk caches included), and waits for
/// it.
fn invalidate_asid(asid: u64, scope: Scope) {
    let operand = asid << ASID_SHIFT;
    match scope {
        // SAFETY: TLB maintenance drops cached translations of the TTBR0 half only (the HRT's
        // own mappings are global); it touches no memory.
        Scope::AllCores => unsafe {
            core::arch::asm!("tlbi aside1is, {asid}", "dsb ish", "isb", asid = in(reg) operand, options(nostack))
        },
        // SAFETY: as above.
        Scope::ThisCore => unsafe {
            core::arch::asm!("tlbi aside1, {asid}", "dsb nsh", "isb", asid = in(reg) operand, options(nostack))
        },
    }
}

/// Loads `merge` (or the unmerged state) into this core's registers and invalidates what it
/// replaces.
fn load(merge: Option<Merged>, core: usize, scope: Scope) {
    let previous = APPLIED_ASID[core].load(Ordering::Relaxed);
    let tcr = TCR_EL1.get();
    match merge {
        Some(merge) => {
            MAIR_EL1.set(merge.mair);
            // A1 stays 0: the ASID is TTBR0's.
            TCR_EL1.set((tcr & !(TCR_FROM_ROS | TCR_EPD0 | TCR_A1)) | merge.tcr);
            TTBR0_EL1.set(merge.base | (merge.asid << ASID_SHIFT));
            barrier::isb(barrier::SY);
            if previous != NO_ASID && previous != merge.asid {
                invalidate_asid(previous, scope);
            }
            invalidate_asid(merge.asid, scope);
            APPLIED_ASID[core].store(merge.asid, Ordering::Relaxed);
        }
        None => {
            // Walks of the TTBR0 half stop before the table base goes.
            TCR_EL1.set(tcr | TCR_EPD0);
            barrier::isb(barrier::SY);
            TTBR0_EL1.set(0);
            barrier::isb(barrier::SY);
            if previous != NO_ASID {
                invalidate_asid(previous, scope);
            }
            APPLIED_ASID[core].store(NO_ASID, Ordering::Relaxed);
        }
    }
}

/// Publishes `merge` (None: nothing merged) and applies it on this core, invalidating for
/// every core.
fn publish(merge: Option<Merged>) {
    let core = cpu::core_index();
    let version = RECORD.publish(merge.map_or([0; WORDS], |merge| merge.record()));
    load(merge, core, Scope::AllCores);
    APPLIED[core].store(version, Ordering::Relaxed);
}

/// The merge in force (what [`apply_on_this_core`] would apply).
pub fn current() -> Option<Merged> {
    Merged::from_record(RECORD.read().1)
}

/// Merges the process `request` describes (0x30, first HRT core), replacing any merge in force;
/// a refused request leaves nothing merged.
pub fn merge(request: &Request, ros_ram: RamRange) -> Result<Merged, Refused> {
    let checked = check(request, ros_ram);
    publish(checked.ok());
    checked
}

/// Unmerges (0x31, first HRT core); the process that was merged.
pub fn unmerge() -> Option<Merged> {
    let was = current();
    publish(None);
    was
}

/// Brings this core up to the merge in force, if it changed since this core last looked: call
/// before entering EL0. The merge now in force on this core.
pub fn apply_on_this_core() -> Option<Merged> {
    let core = cpu::core_index();
    let (version, words) = RECORD.read();
    let merge = Merged::from_record(words);
    if APPLIED[core].load(Ordering::Relaxed) != version {
        load(merge, core, Scope::ThisCore);
        APPLIED[core].store(version, Ordering::Relaxed);
    }
    merge
}

/// The TTBR0 table base of `ttbr0` (a comm page's `ros_ttbr0`): the process's identity.
pub fn process_of(ttbr0: u64) -> u64 {
    ttbr0 & TTBR_BADDR_MASK
}
