//! Configuring EL2 to run a guest on this pCPU, and entering it.
//!
//! The guest owns EL1 outright while it runs: the hypervisor never uses EL1 registers, so a vCPU
//! pinned to a pCPU needs no EL1 save/restore on exits; only its general registers, ELR and SPSR
//! pass through the trap frame. Every trap bit below is chosen deliberately.

use aarch64_cpu::registers::{
    ReadWriteable, Writeable, CNTHCTL_EL2, CNTVOFF_EL2, CPTR_EL2, HCR_EL2, MDCR_EL2, VTCR_EL2, VTTBR_EL2,
};

use super::context::{PauthKeys, VcpuContext};
use super::trap::TrapFrame;
use crate::exit::dispatch::TlbiOp;
use crate::hvm::boot::El1Boot;
use crate::mm::addr::{GuestVirt, Ipa};

/// PSTATE for a vCPU's first instruction: EL1h with D, A, I, F masked (Linux boot protocol).
pub const EL1H_DAIF_MASKED: u64 = 0x3c5;

/// SCTLR_EL1 at reset: MMU and caches off, RES1 bits set (Arm ARM D19.2, SCTLR_EL1).
const SCTLR_EL1_RESET: u64 = 0x30d0_0800;
/// CPACR_EL1.FPEN = 0b11: no FP/SIMD traps to EL1 (the guest enables what it wants).
const CPACR_EL1_FP_ON: u64 = 0b11 << 20;
/// MPIDR_EL1 bit 31 is RES1.
const MPIDR_RES1: u64 = 1 << 31;

/// ID_AA64DFR0_EL1.PMUVer values without an architected PMU (none, IMPLEMENTATION DEFINED).
const PMUVER_NONE: u64 = 0;
const PMUVER_IMPDEF: u64 = 0xf;
/// PMCR_EL0.N, bits [15:11]: the number of event counters.
const PMCR_N_SHIFT: u64 = 11;
const PMCR_N_MASK: u64 = 0x1f;

/// How many PMU event counters this CPU has (0 without a PMU).
fn pmu_counters() -> u64 {
    use aarch64_cpu::registers::{Readable, ID_AA64DFR0_EL1};
    let version = ID_AA64DFR0_EL1.read(ID_AA64DFR0_EL1::PMUVer);
    if version == PMUVER_NONE || version == PMUVER_IMPDEF {
        return 0;
    }
    let pmcr: u64;
    // SAFETY: reading PMCR_EL0 at EL2 on a CPU with a PMUv3 has no side effect.
    unsafe { core::arch::asm!("mrs {}, pmcr_el0", out(reg) pmcr) };
    (pmcr >> PMCR_N_SHIFT) & PMCR_N_MASK
}

/// Sets the EL2 controls for running a guest: stage-2 on, physical interrupts to EL2, WFI and
/// SMC trapped, EL1 in AArch64, FP/SIMD untrapped (the hypervisor itself is soft-float).
/// `trap_wfe`: on a pCPU that time-slices vCPUs, WFE (a spinning lock waiter) traps so the
/// vCPU can yield to the one holding the lock (on hardware; QEMU's TCG never traps WFE).
pub fn configure_el2(vttbr: u64, vtcr: u64, trap_wfe: bool) {
    HCR_EL2.write(
        HCR_EL2::VM::Enable      // stage-2 translation
            + HCR_EL2::SWIO::SET // set/way invalidate is clean+invalidate
            + HCR_EL2::FMO::EnableVirtualFIQ
            + HCR_EL2::IMO::EnableVirtualIRQ
            + HCR_EL2::AMO::SET  // SErrors to EL2, virtual SErrors to the guest
            + HCR_EL2::FB::SET   // broadcast TLB/cache maintenance to all pCPUs of the VM
            + HCR_EL2::BSU::InnerShareable
            + HCR_EL2::TWI::SET  // WFI traps: an idle vCPU gives up its pCPU
            + HCR_EL2::TSC::SET  // SMC traps: PSCI over SMC is emulated like HVC
            + HCR_EL2::TID3::SET // feature ID registers trap: SVE/SME/MTE are hidden
            + HCR_EL2::TIDCP::SET // IMPLEMENTATION DEFINED registers trap (and UNDEF): a guest
                                  // must not reach the pCPU's own control registers
            + HCR_EL2::TACR::SET  // ACTLR_EL1 too (it reads as zero: exit::hidden_regs)
            + HCR_EL2::RW::EL1IsAarch64,
    );
    if trap_wfe {
        HCR_EL2.modify(HCR_EL2::TWE::SET);
    }
    if super::context::has_pauth() {
        // Pointer authentication instructions and keys stay with the guest (keys are switched
        // with the vCPU).
        HCR_EL2.modify(HCR_EL2::API::SET + HCR_EL2::APK::SET);
    }
    // The guest may read the physical counter directly; its physical-timer accesses trap
    // (EL1PCEN clear) so the hypervisor sees the timer's line drop (`physical_timer`). Linux
    // uses the virtual timer, which cannot trap on ARMv8.0, so this costs it nothing.
    CNTHCTL_EL2.write(CNTHCTL_EL2::EL1PCTEN::SET + CNTHCTL_EL2::EL1PCEN::CLEAR);
    CNTVOFF_EL2.set(0);
    // FP/SIMD and trace untrapped; SVE trapped (TZ): the ID registers hide it from the guest.
    // With E2H = 0, bits 13, 12, 9 and 7..0 are RES1.
    const CPTR_EL2_RES1: u64 = 0x0000_32ff;
    const CPTR_EL2_TZ: u64 = 1 << 8;
    // TTA: trace registers trap (and UNDEF): their state is not switched between vCPUs.
    const CPTR_EL2_TTA: u64 = 1 << 20;
    CPTR_EL2.set(CPTR_EL2_RES1 | CPTR_EL2_TZ | CPTR_EL2_TTA);
    // The PMU traps (TPM, TPMCR; exit::hidden_regs makes it read as zero): its counters can
    // count at EL2. HPMN keeps its reset meaning (all counters the guest's), as a count of 0
    // is CONSTRAINED UNPREDICTABLE before Armv8.6. Debug registers stay untrapped: they are
    // switched with the vCPU (context::VcpuContext).
    MDCR_EL2.write(MDCR_EL2::TPM::SET + MDCR_EL2::TPMCR::SET + MDCR_EL2::HPMN.val(pmu_counters()));
    VTCR_EL2.set(vtcr);
    VTTBR_EL2.set(vttbr);
    // SAFETY: stage-2 is freshly configured; stale entries for this VMID must go.
    unsafe { core::arch::asm!("dsb ishst", "tlbi vmalls12e1is", "dsb ish", "isb") };
}

/// Puts every register a vCPU `mpidr` can see into its reset state: EL1 system registers,
/// FP/SIMD, timers, the virtual CPU interface (list registers, VMCR, active priorities) and
/// PAuth keys. A vCPU that starts on a pCPU never sees what the previous occupant left there.
/// `boot` gives the translation registers of a vCPU that starts with its MMU on (an HRT core).
pub fn reset_el1(mpidr: u64, boot: Option<&El1Boot>) {
    let mut context = VcpuContext::zeroed();
    context.el1.sctlr_el1 = SCTLR_EL1_RESET;
    context.el1.cpacr_el1 = CPACR_EL1_FP_ON;
    context.el1.vmpidr_el2 = mpidr | MPIDR_RES1;
    if let Some(boot) = boot {
        context.el1.sctlr_el1 = boot.sctlr;
        context.el1.tcr_el1 = boot.tcr;
        context.el1.mair_el1 = boot.mair;
        context.el1.ttbr1_el1 = boot.ttbr1;
        context.el1.sp_el1 = boot.sp_el1;
    }
    context.pauth = super::context::has_pauth().then(PauthKeys::default);
    context.restore();
}

/// Switches this pCPU to another stage-2 table (another partition's VMID).
pub fn set_vttbr(vttbr: u64) {
    VTTBR_EL2.set(vttbr);
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// The trap frame that starts a vCPU at `entry` in EL1h with x0 = `x0` (Linux: the DTB
/// address; PSCI CPU_ON: the context id).
pub fn initial_frame(entry: u64, x0: u64) -> TrapFrame {
    let mut frame = TrapFrame::default();
    frame.x[0] = x0;
    frame.elr = entry;
    frame.spsr = EL1H_DAIF_MASKED;
    frame
}

/// Reads the guest's VBAR_EL1 (for exception injection).
pub fn vbar_el1() -> u64 {
    let value: u64;
    // SAFETY: reading a system register.
    unsafe { core::arch::asm!("mrs {}, vbar_el1", out(reg) value) };
    value
}

/// Delivers an injected exception's EL1 register updates.
pub fn write_exception_registers(elr: u64, spsr: u64, esr: u64, far: Option<u64>) {
    // SAFETY: the guest's EL1 exception registers, written as the architecture would.
    unsafe {
        core::arch::asm!("msr elr_el1, {}", "msr spsr_el1, {}", "msr esr_el1, {}", in(reg) elr, in(reg) spsr, in(reg) esr);
        if let Some(far) = far {
            core::arch::asm!("msr far_el1, {}", in(reg) far);
        }
    }
}

extern "C" {
    /// `vectors.S`: restores a trap frame and ERETs into the guest.
    fn trap_return() -> !;
}

/// Enters the guest with `frame`, placed at the top of this pCPU's stack region `stack_top`:
/// later exits from the guest build their frames at the same place.
///
/// # Safety
/// `stack_top` must be this pCPU's stack top (16-byte aligned), `frame` must not lie on that
/// stack (the copy overwrites the stack's top, where the caller's own frames live), and
/// nothing on that stack may be needed again: the call chain up to here is abandoned.
#[inline(never)]
pub unsafe fn enter_guest(frame: &TrapFrame, stack_top: u64) -> ! {
    let slot = stack_top - core::mem::size_of::<TrapFrame>() as u64;
    // SAFETY: the slot lies in this pCPU's stack and `frame` elsewhere (caller's contract). The
    // assembly switches SP to it and jumps to the frame-restore path.
    unsafe {
        core::ptr::copy_nonoverlapping(frame as *const TrapFrame, slot as *mut TrapFrame, 1);
        core::arch::asm!("mov sp, {slot}", "b {ret}", slot = in(reg) slot, ret = sym trap_return, options(noreturn))
    }
}

/// Bits of PAR_EL1 after an address translation (AT) instruction.
const PAR_FAULT: u64 = 1 << 0;
const PAR_ADDRESS_MASK: u64 = 0x0000_FFFF_FFFF_F000;
const PAGE_OFFSET_MASK: u64 = 0xFFF;

/// Translates the loaded vCPU's virtual address `va` through its stage-1 tables as an access
/// from EL0 (`from_el0`) or EL1, for writing if `write`: the guest-physical address, or `None`
/// if that access would fault. PAR_EL1 is the guest's register: it is restored.
pub fn translate_guest_va(va: GuestVirt, from_el0: bool, write: bool) -> Option<Ipa> {
    let GuestVirt(va) = va;
    let saved: u64;
    let par: u64;
    // SAFETY: AT only writes PAR_EL1 (saved and restored here); with HCR_EL2.VM set, a stage 1
    // translation from EL2 of the EL1&0 regime walks the guest's own tables and yields an IPA.
    unsafe {
        core::arch::asm!("mrs {}, par_el1", out(reg) saved);
        match (from_el0, write) {
            (true, false) => core::arch::asm!("at s1e0r, {}", in(reg) va),
            (true, true) => core::arch::asm!("at s1e0w, {}", in(reg) va),
            (false, false) => core::arch::asm!("at s1e1r, {}", in(reg) va),
            (false, true) => core::arch::asm!("at s1e1w, {}", in(reg) va),
        }
        core::arch::asm!("isb", "mrs {}, par_el1", out(reg) par);
        core::arch::asm!("msr par_el1, {}", in(reg) saved);
    }
    (par & PAR_FAULT == 0).then_some(Ipa((par & PAR_ADDRESS_MASK) | (va & PAGE_OFFSET_MASK)))
}

/// The translation regime of the process the loaded vCPU runs.
#[derive(Clone, Copy, Debug, Default)]
pub struct TranslationRegisters {
    pub ttbr0: u64,
    pub ttbr1: u64,
    pub tcr: u64,
    pub mair: u64,
}

/// The loaded vCPU's TTBR0_EL1, TTBR1_EL1, TCR_EL1 and MAIR_EL1.
pub fn el0_translation_registers() -> TranslationRegisters {
    let mut regs = TranslationRegisters::default();
    // SAFETY: reading the guest's EL1 system registers has no side effect.
    unsafe {
        core::arch::asm!("mrs {}, ttbr0_el1", out(reg) regs.ttbr0);
        core::arch::asm!("mrs {}, ttbr1_el1", out(reg) regs.ttbr1);
        core::arch::asm!("mrs {}, tcr_el1", out(reg) regs.tcr);
        core::arch::asm!("mrs {}, mair_el1", out(reg) regs.mair);
    }
    regs
}

/// Traps (or not) the guest's TLB maintenance instructions to EL2 (HCR_EL2.TTLB).
pub fn set_tlb_trap(trap: bool) {
    if trap {
        HCR_EL2.modify(HCR_EL2::TTLB::SET);
    } else {
        HCR_EL2.modify(HCR_EL2::TTLB::CLEAR);
    }
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
}

/// Performs the guest's trapped TLB maintenance `op` (operand `value`) for the VMID of stage-2
/// table `vttbr`; a local operation is made inner-shareable when `broadcast` is set (another
/// partition's vCPUs run on other pCPUs). VTTBR_EL2 is restored before returning.
pub fn tlb_maintenance(vttbr: u64, op: TlbiOp, value: u64, broadcast: bool) {
    macro_rules! tlbi {
        ($local:literal, $shared:literal, $is:expr) => {
            if $is || broadcast {
                // SAFETY: TLB maintenance for the guest's own VMID (VTTBR_EL2 set by the caller
                // below) only drops cached translations; it touches no memory.
                unsafe { core::arch::asm!(concat!("tlbi ", $shared, ", {}"), in(reg) value) }
            } else {
                // SAFETY: as above, on this PE only.
                unsafe { core::arch::asm!(concat!("tlbi ", $local, ", {}"), in(reg) value) }
            }
        };
    }
    let saved: u64;
    // SAFETY: at EL2 (non-VHE) VTTBR_EL2 does not affect the hypervisor's own translation; it
    // is restored below. The barriers order the guest's table writes before the invalidation.
    unsafe {
        core::arch::asm!("mrs {}, vttbr_el2", "msr vttbr_el2, {}", "isb", "dsb ishst", out(reg) saved, in(reg) vttbr)
    };
    match op {
        TlbiOp::Va { last: false, broadcast: is } => tlbi!("vae1", "vae1is", is),
        TlbiOp::Va { last: true, broadcast: is } => tlbi!("vale1", "vale1is", is),
        TlbiOp::Asid { broadcast: is } => tlbi!("aside1", "aside1is", is),
        TlbiOp::VaAllAsids { last: false, broadcast: is } => tlbi!("vaae1", "vaae1is", is),
        TlbiOp::VaAllAsids { last: true, broadcast: is } => tlbi!("vaale1", "vaale1is", is),
        TlbiOp::All { broadcast: is } => {
            if is || broadcast {
                // SAFETY: as in tlbi!.
                unsafe { core::arch::asm!("tlbi vmalle1is") }
            } else {
                // SAFETY: as in tlbi!.
                unsafe { core::arch::asm!("tlbi vmalle1") }
            }
        }
        // SAFETY: as in tlbi!: the strongest EL1 invalidation, for an encoding we do not model.
        TlbiOp::Other => unsafe { core::arch::asm!("tlbi vmalle1is") },
    }
    // SAFETY: completes the invalidation, then restores the caller's VTTBR_EL2.
    unsafe { core::arch::asm!("dsb ish", "msr vttbr_el2, {}", "isb", in(reg) saved) };
}

/// The loaded vCPU's EL0 stack pointer.
pub fn sp_el0() -> u64 {
    let value: u64;
    // SAFETY: reading the guest's SP_EL0 (EL2 does not use it) has no side effect.
    unsafe { core::arch::asm!("mrs {}, sp_el0", out(reg) value) };
    value
}

/// Sets the loaded vCPU's EL0 stack pointer.
pub fn set_sp_el0(value: u64) {
    // SAFETY: SP_EL0 belongs to the guest; EL2 runs on SP_EL2.
    unsafe { core::arch::asm!("msr sp_el0, {}", in(reg) value) };
}
