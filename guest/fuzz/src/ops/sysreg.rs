//! Reads and writes of random system-register encodings (the generated jump tables: ID, EL1,
//! EL2/EL3 from EL1, debug, trace, PMU, timers, ICC_*, IMPLEMENTATION DEFINED and sampled
//! encodings), and random `sys` maintenance operations. An UNDEFINED one comes back as an
//! exception, counted and stepped over.

use core::sync::atomic::{AtomicU64, Ordering};

use super::Ctx;
use crate::exceptions::fault_count;
use crate::rng::Rng;
use crate::sysregs::{self, Encoding, Name, READS, SYS_OPS, WRITES};
use crate::{scratch, uart};

/// IMPLEMENTATION DEFINED registers (op0 = 3, CRn = 11 or 15) that an EL1 read or write reached
/// without an UNDEF: nothing trapped them to the hypervisor (HCR_EL2.TIDCP clear). Reported in
/// the summary; not a failure by itself.
pub static IMPDEF_REACHED: AtomicU64 = AtomicU64::new(0);
const IMPDEF_CRN: [u8; 2] = [11, 15];

fn note_impdef(reg: Encoding, faults_before: u64) {
    if reg.0 == 3 && IMPDEF_CRN.contains(&reg.2) && fault_count() == faults_before {
        IMPDEF_REACHED.fetch_add(1, Ordering::Relaxed);
    }
}

/// ICC_SGI1R_EL1 fields: TargetList [15:0], Aff1 [23:16], INTID [27:24], Aff2 [39:32],
/// IRM [40], Aff3 [55:48]. A random SGI targets the vCPUs that exist most of the time.
const SGI1R_INTID_SHIFT: u32 = 24;
const SGI1R_IRM: u64 = 1 << 40;
const SGI_TARGET_MASK: u64 = 0xffff;
/// ICC_BPR1_EL1.BinaryPoint [2:0]; the rest is RES0.
const ICC_BPR_MASK: u64 = 0b111;

/// Reads that acknowledge an interrupt (ICC_IAR0/1_EL1, ICC_NMIAR1_EL1).
const ACKNOWLEDGES: [Encoding; 3] = [(3, 0, 12, 8, 0), (3, 0, 12, 12, 0), (3, 0, 12, 9, 5)];

pub fn read(rng: &mut Rng, ctx: &Ctx) {
    let mut index = rng.below(READS.len() as u64) as usize;
    if ctx.spare_vtimer && ACKNOWLEDGES.contains(&READS[index]) {
        index = (index + 1) % READS.len();
    }
    if ctx.trace {
        uart::println!("FUZZ: op cpu={} #{} mrs {}", ctx.cpu, ctx.index, Name(READS[index]));
    }
    let before = fault_count();
    sysregs::read(index, 0);
    note_impdef(READS[index], before);
}

pub fn write(rng: &mut Rng, ctx: &Ctx) {
    let index = rng.below(WRITES.len() as u64) as usize;
    let mut value = rng.value();
    if WRITES[index] == sysregs::ICC_SGI1R_EL1 && rng.percent(75) {
        // Mostly well-formed SGIs to existing vCPUs, sometimes to everyone else (IRM).
        let targets = rng.below(1 << ctx.cpu_count) & SGI_TARGET_MASK;
        value = (rng.below(16) << SGI1R_INTID_SHIFT) | targets | if rng.percent(10) { SGI1R_IRM } else { 0 };
    }
    if WRITES[index] == sysregs::ICC_BPR1_EL1 && !ctx.qemu_bugs {
        // QEMU (7.2 and later) truncates an ICV_BPR1_EL1 write to `int` before clamping it to
        // the minimum and keeps its low 3 bits: RES0 bits set can leave VBPR1 = 0, and QEMU then
        // aborts on `assert(bpr > 0)` in icv_gprio_mask (a QEMU bug, not the hypervisor's;
        // `qemu_bugs=1` writes the raw value to reproduce it).
        value &= ICC_BPR_MASK;
    }
    if ctx.trace {
        uart::println!("FUZZ: op cpu={} #{} msr {} value={value:#x}", ctx.cpu, ctx.index, Name(WRITES[index]));
    }
    let before = fault_count();
    sysregs::write(index, value);
    note_impdef(WRITES[index], before);
}

/// A `sys` operation (TLB, cache, address translation, random op0 = 1) with an address the
/// fuzzer may lose: in DATA, or not RAM.
pub fn sys(rng: &mut Rng, ctx: &Ctx) {
    let index = rng.below(SYS_OPS.len() as u64) as usize;
    let address = if rng.percent(50) { scratch::data().pick(rng, 64, 1) } else { scratch::not_ram(rng) };
    if ctx.trace {
        uart::println!("FUZZ: op cpu={} #{} sys {} x0={address:#x}", ctx.cpu, ctx.index, Name(SYS_OPS[index]));
    }
    sysregs::sys(index, address);
}
