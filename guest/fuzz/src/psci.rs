//! Hypercalls through the fuzzer's call stubs (asm/ops.S): x0-x17 in and out, so the fuzzer
//! sees every register the hypervisor returns or clobbers. PSCI goes through the conduit the
//! device tree names.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::dtb::Conduit;

/// Registers x0-x17 of a call.
pub type Regs = [u64; CALL_REGS];
pub const CALL_REGS: usize = 18;

/// PSCI function ids (DEN0022) the fuzzer itself calls.
pub const PSCI_VERSION: u64 = 0x8400_0000;
pub const CPU_OFF: u64 = 0x8400_0002;
pub const CPU_ON_64: u64 = 0xC400_0003;
pub const AFFINITY_INFO_64: u64 = 0xC400_0004;
pub const SYSTEM_OFF: u64 = 0x8400_0008;
pub const SMCCC_VERSION: u64 = 0x8000_0000;
/// AFFINITY_INFO: the CPU is off.
pub const AFFINITY_OFF: u64 = 1;

extern "C" {
    fn fuzz_call_hvc0(regs: *mut Regs);
    fn fuzz_call_hvc1(regs: *mut Regs);
    fn fuzz_call_hvcffff(regs: *mut Regs);
    fn fuzz_call_smc0(regs: *mut Regs);
    fn fuzz_call_smc1234(regs: *mut Regs);
}

/// The instruction a call uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instruction {
    Hvc0,
    Hvc1,
    HvcFfff,
    Smc0,
    Smc1234,
}

/// The conduit is SMC (else HVC), set once by the boot CPU from the device tree.
static USE_SMC: AtomicBool = AtomicBool::new(false);

pub fn set_conduit(conduit: Conduit) {
    USE_SMC.store(conduit == Conduit::Smc, Ordering::Relaxed);
}

pub fn conduit() -> Instruction {
    if USE_SMC.load(Ordering::Relaxed) {
        Instruction::Smc0
    } else {
        Instruction::Hvc0
    }
}

/// Makes the call with `regs` as x0-x17; `regs` receives x0-x17 afterwards.
pub fn call(instruction: Instruction, regs: &mut Regs) {
    let stub = match instruction {
        Instruction::Hvc0 => fuzz_call_hvc0,
        Instruction::Hvc1 => fuzz_call_hvc1,
        Instruction::HvcFfff => fuzz_call_hvcffff,
        Instruction::Smc0 => fuzz_call_smc0,
        Instruction::Smc1234 => fuzz_call_smc1234,
    };
    // SAFETY: the stub loads x0-x17 from `regs`, makes the call and stores x0-x17 back; it
    // saves and restores the callee-saved registers it uses (x19, x30). A fault on the call
    // instruction is stepped over (it is in .fuzz_code).
    unsafe { stub(regs) };
}

/// A PSCI call through the conduit with up to three arguments: x0 afterwards.
pub fn psci(function: u64, args: [u64; 3]) -> u64 {
    let mut regs = [0; CALL_REGS];
    regs[0] = function;
    regs[1..4].copy_from_slice(&args);
    call(conduit(), &mut regs);
    regs[0]
}

/// SYSTEM_OFF; if it returns (it should not), parks this CPU.
pub fn system_off() -> ! {
    psci(SYSTEM_OFF, [0; 3]);
    crate::arch::park()
}
