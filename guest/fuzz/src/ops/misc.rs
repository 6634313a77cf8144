//! Waits and hints: WFI and CPU_SUSPEND with the virtual timer armed to end them, WFE, SEV,
//! YIELD, ESB, CSDB, ISB, DSB, PSB; SGIs to random vCPUs.
//!
//! A wait only ends when an enabled interrupt can be signalled, and the fuzzer's own random
//! GIC and ICC writes may have made that impossible (a guest that waits with every interrupt
//! off hangs on hardware too). So before a wait the timer's path is made deliverable again:
//! distributor on, PPI 27 enabled, Group 1, not active, a priority the PMR lets through, no
//! active priority blocking it, the CPU interface on.

use super::Ctx;
use crate::gic::{self, GICD_BASE, GICD_CTLR, GICR_SGI_FRAME};
use crate::rng::Rng;
use crate::sysregs::{self as regs};
use crate::{arch, timer, uart};

extern "C" {
    fn fuzz_hint_table();
    fn fuzz_hint_table_end();
}

/// Bytes per hint slot; the first slot is WFI.
const HINT_SLOT: usize = 8;
const HINT_WFI: usize = 0;
/// How soon the timer ends a WFI.
const WFI_WAKE_US: u64 = 100;
/// GICD_CTLR: ARE and EnableGrp1.
const GICD_CTLR_WANTED: u32 = (1 << 4) | (1 << 1);
/// The timer's priority and the register holding it (4 per word).
const TIMER_PRIORITY: u32 = 0x80;
const PRIORITY_MASK: u32 = 0xff;
/// ICC_PMR_EL1: let every priority through. ICC_SRE_EL1: SRE, DFB, DIB.
const PMR_ALL: u64 = 0xff;
const SRE_ENABLE: u64 = 0b111;
const BYTE_BITS: u32 = 8;
const PRIORITIES_PER_WORD: u32 = 4;

/// Makes this CPU's virtual timer interrupt able to end a wait (see the module doc).
pub fn prepare_wakeup(ctx: &Ctx) {
    let ctlr = gic::read32(GICD_BASE + GICD_CTLR);
    if ctlr & GICD_CTLR_WANTED != GICD_CTLR_WANTED {
        gic::init_distributor();
    }
    prepare_cpu_wakeup(ctx.cpu);
}

/// The part of [`prepare_wakeup`] in CPU `cpu`'s own redistributor and CPU interface: all of it
/// that the HRT build may touch (the distributor is the ROS's, and does not gate HRT PPIs).
pub fn prepare_cpu_wakeup(cpu: usize) {
    let rd = gic::gicr(cpu);
    let sgi = rd + GICR_SGI_FRAME;
    let bit = 1u32 << timer::PPI_VIRTUAL;
    gic::write32(rd + gic::GICR_WAKER, 0);
    gic::write32(sgi + gic::GICR_ICACTIVER0, bit);
    gic::write32(sgi + gic::GICR_IGROUPR0, gic::read32(sgi + gic::GICR_IGROUPR0) | bit);
    let word = sgi + gic::GICR_IPRIORITYR + u64::from(timer::PPI_VIRTUAL / PRIORITIES_PER_WORD * 4);
    let shift = BYTE_BITS * (timer::PPI_VIRTUAL % PRIORITIES_PER_WORD);
    gic::write32(word, (gic::read32(word) & !(PRIORITY_MASK << shift)) | (TIMER_PRIORITY << shift));
    gic::write32(sgi + gic::GICR_ISENABLER0, bit);
    arch::write_sysreg(regs::ICC_SRE_EL1, arch::read_sysreg(regs::ICC_SRE_EL1, 0) | SRE_ENABLE);
    arch::write_sysreg(regs::ICC_PMR_EL1, PMR_ALL);
    for reg in regs::ICC_AP1R.iter().chain(regs::ICC_AP0R.iter()) {
        arch::write_sysreg(*reg, 0);
    }
    arch::write_sysreg(regs::ICC_IGRPEN1_EL1, 1);
}

fn hint(index: usize) {
    let entry = fuzz_hint_table as *const () as usize + index * HINT_SLOT;
    // SAFETY: slot `index` of the hint table: one hint or barrier and `ret`, no register or
    // memory effects (WFI only returns after an interrupt; the caller armed the timer).
    unsafe { core::arch::asm!("blr {entry}", entry = in(reg) entry, clobber_abi("C")) };
}

pub fn wait_or_hint(rng: &mut Rng, ctx: &Ctx) {
    let slots = (fuzz_hint_table_end as *const () as usize - fuzz_hint_table as *const () as usize) / HINT_SLOT;
    let index = rng.below(slots as u64) as usize;
    if ctx.trace {
        uart::println!("FUZZ: op cpu={} #{} hint {index}", ctx.cpu, ctx.index);
    }
    if index == HINT_WFI {
        // IRQs masked from arming to the WFI: an interrupt taken in between would leave the
        // WFI nothing to wake it (a masked pending interrupt still does).
        let unmasked = arch::irqs_unmasked();
        arch::mask_irqs();
        prepare_wakeup(ctx);
        if ctx.trace {
            crate::checks::print_gic_state(ctx.cpu);
        }
        timer::arm_in_us(WFI_WAKE_US);
        hint(index);
        timer::disarm();
        if unmasked {
            arch::unmask_irqs_and_serrors();
        }
    } else {
        hint(index);
    }
}

/// An SGI to a random vCPU (or one that does not exist).
pub fn sgi(rng: &mut Rng, ctx: &Ctx) {
    let (intid, target) = (rng.below(16) as u32, rng.below(ctx.cpu_count as u64 + 1).min(15));
    if ctx.trace {
        uart::println!("FUZZ: op cpu={} #{} sgi {intid} to {target}", ctx.cpu, ctx.index);
    }
    gic::send_sgi(intid, target);
}
