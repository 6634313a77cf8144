//! A vCPU's architectural state beyond its general registers, for switching vCPUs on a pCPU:
//! the EL1 system registers, FP/SIMD registers, the guest's timers, the GIC virtual CPU
//! interface, the pointer-authentication keys when the CPU has them, the breakpoints and
//! watchpoints, and a virtual SError not taken yet.
//!
//! A pinned vCPU never needs this (it owns its pCPU's EL1 state); time-sliced vCPUs swap it.

use aarch64_cpu::asm::barrier;
use aarch64_cpu::registers::{
    Readable, Writeable, CNTP_CTL_EL0, CNTP_CVAL_EL0, CNTV_CTL_EL0, CNTV_CVAL_EL0, ICH_AP0R0_EL2, ICH_AP1R0_EL2,
};

use super::debug_regs::DebugRegisters;
use super::gic as pgic;
use super::serror::PendingSError;
use crate::gic::MAX_LRS;

/// Saves/restores one system register per name, by the same list in both directions.
macro_rules! sysregs {
    ($($name:ident),* $(,)?) => {
        /// The EL1 (and EL0) system registers of a vCPU.
        #[derive(Clone, Copy, Debug, Default)]
        #[allow(non_snake_case)]
        pub struct El1Registers {
            $(pub $name: u64,)*
        }

        impl El1Registers {
            pub const fn zeroed() -> Self {
                Self { $($name: 0,)* }
            }

            /// Reads them from this pCPU.
            pub fn save() -> Self {
                let mut regs = Self::default();
                // SAFETY: reading system registers has no side effects.
                $(unsafe { core::arch::asm!(concat!("mrs {}, ", stringify!($name)), out(reg) regs.$name) };)*
                regs
            }

            /// Writes them to this pCPU.
            pub fn restore(&self) {
                // SAFETY: these registers belong to the guest, which is not running now.
                $(unsafe { core::arch::asm!(concat!("msr ", stringify!($name), ", {}"), in(reg) self.$name) };)*
            }
        }
    };
}

sysregs!(
    sctlr_el1,
    cpacr_el1,
    ttbr0_el1,
    ttbr1_el1,
    tcr_el1,
    mair_el1,
    amair_el1,
    vbar_el1,
    contextidr_el1,
    tpidr_el0,
    tpidrro_el0,
    tpidr_el1,
    sp_el0,
    sp_el1,
    elr_el1,
    spsr_el1,
    esr_el1,
    far_el1,
    afsr0_el1,
    afsr1_el1,
    par_el1,
    csselr_el1,
    cntkctl_el1,
    mdscr_el1,
    vmpidr_el2,
);

/// The guest's two timers (virtual and EL1 physical).
#[derive(Clone, Copy, Debug, Default)]
pub struct TimerRegisters {
    pub cntv_ctl: u64,
    pub cntv_cval: u64,
    pub cntp_ctl: u64,
    pub cntp_cval: u64,
}

/// CNTx_CTL_EL0 fields.
const TIMER_ENABLE: u64 = 1 << 0;
const TIMER_IMASK: u64 = 1 << 1;
const TIMER_ISTATUS: u64 = 1 << 2;

/// Whether a timer with control register `ctl` asserts its interrupt line.
fn timer_line(ctl: u64) -> bool {
    ctl & (TIMER_ENABLE | TIMER_IMASK | TIMER_ISTATUS) == TIMER_ENABLE | TIMER_ISTATUS
}

impl TimerRegisters {
    /// Reads the live timers without stopping them.
    pub fn read() -> Self {
        Self {
            cntv_ctl: CNTV_CTL_EL0.get(),
            cntv_cval: CNTV_CVAL_EL0.get(),
            cntp_ctl: CNTP_CTL_EL0.get(),
            cntp_cval: CNTP_CVAL_EL0.get(),
        }
    }

    /// Whether the live virtual and physical timers assert their interrupt lines (reads only
    /// the two control registers).
    pub fn read_lines() -> (bool, bool) {
        (timer_line(CNTV_CTL_EL0.get()), timer_line(CNTP_CTL_EL0.get()))
    }

    /// Saves the timers and stops them on this pCPU (the next vCPU must not get their
    /// interrupts).
    pub fn save_and_stop() -> Self {
        let timers = Self::read();
        CNTV_CTL_EL0.set(0);
        CNTP_CTL_EL0.set(0);
        barrier::isb(barrier::SY);
        timers
    }

    pub fn restore(&self) {
        // CVAL before CTL, so an enabled timer never compares against a stale deadline.
        CNTV_CVAL_EL0.set(self.cntv_cval);
        CNTP_CVAL_EL0.set(self.cntp_cval);
        CNTV_CTL_EL0.set(self.cntv_ctl);
        CNTP_CTL_EL0.set(self.cntp_ctl);
        barrier::isb(barrier::SY);
    }

    /// Whether the virtual timer's interrupt line is high (enabled, unmasked, condition met).
    pub fn virtual_line(&self) -> bool {
        timer_line(self.cntv_ctl)
    }

    /// The same for the EL1 physical timer.
    pub fn physical_line(&self) -> bool {
        timer_line(self.cntp_ctl)
    }

    /// When a saved timer would fire (counter value), if it is armed: with CNTVOFF_EL2 = 0
    /// both timers compare against the physical count.
    pub fn deadline(&self) -> Option<u64> {
        let armed = |ctl: u64| ctl & TIMER_ENABLE != 0 && ctl & TIMER_IMASK == 0;
        let v = armed(self.cntv_ctl).then_some(self.cntv_cval);
        let p = armed(self.cntp_ctl).then_some(self.cntp_cval);
        match (v, p) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The virtual CPU interface state of a vCPU.
#[derive(Clone, Copy, Debug, Default)]
pub struct GicInterface {
    pub lrs: [u64; MAX_LRS],
    pub vmcr: u64,
    pub ap0r0: u64,
    pub ap1r0: u64,
}

impl GicInterface {
    pub fn save() -> Self {
        let mut g = Self { vmcr: pgic::read_vmcr(), ..Default::default() };
        for n in 0..pgic::list_register_count().min(MAX_LRS) {
            g.lrs[n] = pgic::read_lr(n);
        }
        g.ap0r0 = ICH_AP0R0_EL2.get();
        g.ap1r0 = ICH_AP1R0_EL2.get();
        g
    }

    pub fn restore(&self) {
        pgic::write_vmcr(self.vmcr);
        for n in 0..pgic::list_register_count().min(MAX_LRS) {
            pgic::write_lr(n, self.lrs[n]);
        }
        ICH_AP0R0_EL2.set(self.ap0r0);
        ICH_AP1R0_EL2.set(self.ap1r0);
    }
}

/// FP/SIMD registers q0..q31 and FPCR/FPSR (the hypervisor itself is soft-float, so these are
/// always the guest's).
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct FpRegisters {
    q: [u128; 32],
    fpcr: u64,
    fpsr: u64,
}

impl Default for FpRegisters {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl FpRegisters {
    pub const fn zeroed() -> Self {
        Self { q: [0; 32], fpcr: 0, fpsr: 0 }
    }
}

extern "C" {
    fn fp_save(regs: *mut FpRegisters);
    fn fp_restore(regs: *const FpRegisters);
}

core::arch::global_asm!(
    ".arch_extension fp",
    ".arch_extension simd",
    ".global fp_save",
    "fp_save:",
    "stp q0, q1, [x0, #0x000]",
    "stp q2, q3, [x0, #0x020]",
    "stp q4, q5, [x0, #0x040]",
    "stp q6, q7, [x0, #0x060]",
    "stp q8, q9, [x0, #0x080]",
    "stp q10, q11, [x0, #0x0a0]",
    "stp q12, q13, [x0, #0x0c0]",
    "stp q14, q15, [x0, #0x0e0]",
    "stp q16, q17, [x0, #0x100]",
    "stp q18, q19, [x0, #0x120]",
    "stp q20, q21, [x0, #0x140]",
    "stp q22, q23, [x0, #0x160]",
    "stp q24, q25, [x0, #0x180]",
    "stp q26, q27, [x0, #0x1a0]",
    "stp q28, q29, [x0, #0x1c0]",
    "stp q30, q31, [x0, #0x1e0]",
    "mrs x1, fpcr",
    "mrs x2, fpsr",
    "add x0, x0, #0x200",
    "stp x1, x2, [x0]",
    "ret",
    ".global fp_restore",
    "fp_restore:",
    "ldp q0, q1, [x0, #0x000]",
    "ldp q2, q3, [x0, #0x020]",
    "ldp q4, q5, [x0, #0x040]",
    "ldp q6, q7, [x0, #0x060]",
    "ldp q8, q9, [x0, #0x080]",
    "ldp q10, q11, [x0, #0x0a0]",
    "ldp q12, q13, [x0, #0x0c0]",
    "ldp q14, q15, [x0, #0x0e0]",
    "ldp q16, q17, [x0, #0x100]",
    "ldp q18, q19, [x0, #0x120]",
    "ldp q20, q21, [x0, #0x140]",
    "ldp q22, q23, [x0, #0x160]",
    "ldp q24, q25, [x0, #0x180]",
    "ldp q26, q27, [x0, #0x1a0]",
    "ldp q28, q29, [x0, #0x1c0]",
    "ldp q30, q31, [x0, #0x1e0]",
    "add x0, x0, #0x200",
    "ldp x1, x2, [x0]",
    "msr fpcr, x1",
    "msr fpsr, x2",
    "ret",
);

impl FpRegisters {
    pub fn save() -> Self {
        let mut regs = Self::default();
        // SAFETY: fp_save writes exactly the 0x210 bytes of FpRegisters through the pointer.
        unsafe { fp_save(&mut regs) };
        regs
    }

    pub fn restore(&self) {
        // SAFETY: fp_restore only reads the structure.
        unsafe { fp_restore(self) };
    }
}

/// Pointer-authentication keys (present on `-cpu max`, absent on cortex-a57).
#[derive(Clone, Copy, Debug, Default)]
pub struct PauthKeys([u64; 10]);

/// ID_AA64ISAR1_EL1 fields APA [7:4] and API [11:8]: address authentication implemented.
const ISAR1_APA_API_MASK: u64 = 0xff0;

/// Whether this CPU implements pointer authentication.
pub fn has_pauth() -> bool {
    let isar1: u64;
    // SAFETY: reading an ID register.
    unsafe { core::arch::asm!("mrs {}, id_aa64isar1_el1", out(reg) isar1) };
    isar1 & ISAR1_APA_API_MASK != 0
}

/// The keys' system-register encodings (APIAKeyLo_EL1 .. APGAKeyHi_EL1), spelled generically
/// because the assembler only knows their names with the pauth target feature enabled.
macro_rules! for_each_pauth_key {
    ($action:ident) => {
        $action!(0, "s3_0_c2_c1_0"); // APIAKeyLo_EL1
        $action!(1, "s3_0_c2_c1_1"); // APIAKeyHi_EL1
        $action!(2, "s3_0_c2_c1_2"); // APIBKeyLo_EL1
        $action!(3, "s3_0_c2_c1_3"); // APIBKeyHi_EL1
        $action!(4, "s3_0_c2_c2_0"); // APDAKeyLo_EL1
        $action!(5, "s3_0_c2_c2_1"); // APDAKeyHi_EL1
        $action!(6, "s3_0_c2_c2_2"); // APDBKeyLo_EL1
        $action!(7, "s3_0_c2_c2_3"); // APDBKeyHi_EL1
        $action!(8, "s3_0_c2_c3_0"); // APGAKeyLo_EL1
        $action!(9, "s3_0_c2_c3_1"); // APGAKeyHi_EL1
    };
}

impl PauthKeys {
    pub fn save() -> Self {
        let mut keys = [0u64; 10];
        macro_rules! read_key {
            ($i:literal, $reg:literal) => {
                // SAFETY: reading the guest's key (only called when has_pauth()).
                unsafe { core::arch::asm!(concat!("mrs {}, ", $reg), out(reg) keys[$i]) };
            };
        }
        for_each_pauth_key!(read_key);
        Self(keys)
    }

    pub fn restore(&self) {
        let keys = &self.0;
        macro_rules! write_key {
            ($i:literal, $reg:literal) => {
                // SAFETY: restoring the guest's own key (only called when has_pauth()).
                unsafe { core::arch::asm!(concat!("msr ", $reg, ", {}"), in(reg) keys[$i]) };
            };
        }
        for_each_pauth_key!(write_key);
    }
}

/// Everything of a vCPU that lives in pCPU registers besides the trap frame.
#[derive(Clone, Copy, Default)]
pub struct VcpuContext {
    pub el1: El1Registers,
    pub fp: FpRegisters,
    pub timers: TimerRegisters,
    pub gic: GicInterface,
    pub pauth: Option<PauthKeys>,
    pub debug: DebugRegisters,
    pub serror: PendingSError,
}

impl VcpuContext {
    /// An all-zero context (placeholder until a vCPU is first saved).
    pub const fn zeroed() -> Self {
        Self {
            el1: El1Registers::zeroed(),
            fp: FpRegisters::zeroed(),
            timers: TimerRegisters { cntv_ctl: 0, cntv_cval: 0, cntp_ctl: 0, cntp_cval: 0 },
            gic: GicInterface { lrs: [0; MAX_LRS], vmcr: 0, ap0r0: 0, ap1r0: 0 },
            pauth: None,
            debug: DebugRegisters::zeroed(),
            serror: PendingSError::NONE,
        }
    }

    /// Saves the running vCPU's state off this pCPU (stopping its timers).
    pub fn save() -> Self {
        Self {
            el1: El1Registers::save(),
            fp: FpRegisters::save(),
            timers: TimerRegisters::save_and_stop(),
            gic: GicInterface::save(),
            pauth: has_pauth().then(PauthKeys::save),
            debug: DebugRegisters::save(),
            serror: PendingSError::save(),
        }
    }

    /// Loads a saved vCPU onto this pCPU.
    pub fn restore(&self) {
        self.el1.restore();
        self.fp.restore();
        self.gic.restore();
        if let Some(keys) = &self.pauth {
            keys.restore();
        }
        self.debug.restore();
        self.serror.restore();
        self.timers.restore();
    }
}
