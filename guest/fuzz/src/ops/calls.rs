//! HVC and SMC with random function ids and arguments: PSCI with wild MPIDRs, entry points
//! and context ids, SMCCC architecture calls, the 0xf00d HVM hypercall with random sub-ops and
//! pointers, and random ids of every owner. x0-x17 go in random; after a call that the
//! hypervisor answered as SMCCC 1.1 says, x4-x17 must be as they were (SMCCC 1.1 makes the
//! callee preserve them): a clobber is counted.
//!
//! Never issued at random: SYSTEM_OFF, SYSTEM_RESET(2), CPU_OFF, CPU_FREEZE,
//! CPU_DEFAULT_SUSPEND, SYSTEM_SUSPEND, MEM_PROTECT (they would end or freeze the run, not test
//! the hypervisor), the 0xf00d resets; CPU_ON only with the fuzzer's own secondary entry, or
//! with a target no vCPU has; CPU_SUSPEND only as a standby with the timer armed.

use core::sync::atomic::{AtomicU64, Ordering};

use super::Ctx;
use crate::dtb::MAX_CPUS;
use crate::psci::{self, Instruction, Regs, CALL_REGS};
use crate::rng::Rng;
use crate::{scratch, timer, uart};

/// Function-id ranges: PSCI (SMC32 / SMC64), SMCCC architecture calls, TRNG.
const PSCI32: u64 = 0x8400_0000;
const PSCI64: u64 = 0xC400_0000;
const PSCI_FUNCTIONS: u64 = 0x20;
const SMCCC_ARCH: u64 = 0x8000_0000;
const SMCCC_ARCH_IDS: [u64; 6] = [0x8000_0000, 0x8000_0001, 0x8000_0002, 0x8000_3fff, 0x8000_7fff, 0x8000_8000];
const TRNG_FIRST: u64 = 0x8400_0050;
const TRNG_FUNCTIONS: u64 = 8;
/// Function id bit 30: the SMC64 calling convention.
const SMC64_BIT: u64 = 1 << 30;
/// The HVM hypercall and the sub-ops it must never be given here (ResetRos/Hrt/Both).
const HVM_HCALL_ID: u64 = 0xC600_F00D;
const HVM_RESETS: [u64; 3] = [0x1, 0x2, 0x3];
const HVM_SUBOPS: u64 = 0x70;
/// PSCI functions (low bits) the fuzzer never calls at random.
const PSCI_CPU_SUSPEND: u64 = 0x01;
const PSCI_CPU_OFF: u64 = 0x02;
const PSCI_CPU_ON: u64 = 0x03;
const PSCI_NEVER: [u64; 8] = [0x02, 0x08, 0x09, 0x0b, 0x0c, 0x0e, 0x12, 0x13];
const PSCI_SYSTEM_OFF2: u64 = 0x15;
/// The MPIDR affinity fields PSCI compares; vCPU n has affinity n (n < MAX_CPUS).
const MPIDR_AFFINITY: u64 = 0xff_00ff_ffff;
/// CPU_SUSPEND power_state: StateType [16] (1 = powerdown, which may resume at the entry
/// point: never asked for).
const POWER_STATE_POWERDOWN: u64 = 1 << 16;
/// How long the timer gives a CPU_SUSPEND before it wakes it.
const SUSPEND_WAKE_US: u64 = 200;
/// CPU_ON's context id in a random call: the secondary entry counts it and powers off.
const STRAY_CONTEXT_MARK: u64 = 0x5757_0000_0000_0000;
/// The first register SMCCC 1.1 makes the callee preserve.
const FIRST_PRESERVED: usize = 4;

/// Per CPU: calls whose x4-x17 came back changed.
pub static CLOBBERS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// The first clobber: function id and register number.
pub static FIRST_CLOBBER: AtomicU64 = AtomicU64::new(0);

extern "C" {
    fn secondary_entry();
}

/// A target that no vCPU has, after SMC32 truncation too.
fn invalid_target(rng: &mut Rng) -> u64 {
    loop {
        let target = rng.value();
        if target & MPIDR_AFFINITY & u64::from(u32::MAX) >= MAX_CPUS as u64 {
            return target;
        }
    }
}

fn psci_call(rng: &mut Rng, ctx: &Ctx, regs: &mut Regs) {
    let base = if rng.percent(50) { PSCI32 } else { PSCI64 };
    let mut function = rng.below(PSCI_FUNCTIONS);
    while PSCI_NEVER.contains(&function) || function == PSCI_SYSTEM_OFF2 {
        function = rng.below(PSCI_FUNCTIONS);
    }
    regs[0] = base | function;
    match function {
        PSCI_CPU_ON => {
            let entry = secondary_entry as *const () as u64;
            if rng.percent(50) {
                // Our entry, any target (a real one starts, sees a stray context and powers off).
                regs[1] = if rng.percent(70) { rng.below(ctx.cpu_count as u64 + 2) } else { rng.value() };
                regs[2] = entry;
                regs[3] = STRAY_CONTEXT_MARK | rng.below(1 << 32);
            } else {
                regs[1] = invalid_target(rng);
                regs[2] = if rng.percent(50) { scratch::not_ram(rng) } else { rng.value() };
            }
        }
        PSCI_CPU_SUSPEND => {
            regs[1] &= !POWER_STATE_POWERDOWN;
            crate::arch::mask_irqs(); // unmasked again by `call`, after the suspend
            super::misc::prepare_wakeup(ctx);
            timer::arm_in_us(SUSPEND_WAKE_US);
        }
        _ => {
            if rng.percent(50) {
                regs[1] = rng.below(ctx.cpu_count as u64 + 2); // a plausible MPIDR or function id
            }
        }
    }
}

fn hvm_call(rng: &mut Rng, regs: &mut Regs) {
    regs[0] = HVM_HCALL_ID;
    let mut subop = if rng.percent(80) { rng.below(HVM_SUBOPS) } else { rng.value() };
    while HVM_RESETS.contains(&subop) {
        subop = rng.below(HVM_SUBOPS);
    }
    regs[1] = subop;
    for reg in regs[2..8].iter_mut() {
        *reg = match rng.below(3) {
            0 => scratch::data().pick(rng, 0, 1),
            1 => scratch::not_ram(rng),
            _ => scratch::confine(rng.value(), scratch::data()),
        };
    }
}

/// A function id of any owner and convention, never one of the forbidden PSCI calls.
fn random_id(rng: &mut Rng) -> u64 {
    loop {
        let id = match rng.below(4) {
            0 => rng.pick(&SMCCC_ARCH_IDS) | (rng.next() & !u64::from(u32::MAX)),
            1 => SMCCC_ARCH | rng.below(0x1_0000),
            2 => (TRNG_FIRST + rng.below(TRNG_FUNCTIONS)) | if rng.percent(50) { SMC64_BIT } else { 0 },
            _ => rng.next(),
        };
        let w0 = id & u64::from(u32::MAX);
        let psci = w0 & !SMC64_BIT & !(PSCI_FUNCTIONS - 1) == PSCI32;
        let function = w0 & (PSCI_FUNCTIONS - 1);
        let forbidden = psci
            && (PSCI_NEVER.contains(&function)
                || matches!(function, PSCI_CPU_ON | PSCI_CPU_SUSPEND | PSCI_SYSTEM_OFF2 | PSCI_CPU_OFF));
        if !forbidden && w0 != HVM_HCALL_ID as u32 as u64 {
            return id;
        }
    }
}

fn is_suspend(x0: u64) -> bool {
    let w0 = x0 & u64::from(u32::MAX);
    w0 == PSCI32 | PSCI_CPU_SUSPEND || w0 == PSCI64 | PSCI_CPU_SUSPEND
}

pub fn call(rng: &mut Rng, ctx: &Ctx) {
    let unmasked = crate::arch::irqs_unmasked();
    let mut regs: Regs = [0; CALL_REGS];
    for reg in regs.iter_mut() {
        *reg = rng.value();
    }
    match rng.below(5) {
        0 | 1 => psci_call(rng, ctx, &mut regs),
        2 => hvm_call(rng, &mut regs),
        _ => regs[0] = random_id(rng),
    }
    let instruction = rng.pick(&[
        psci::conduit(),
        psci::conduit(),
        psci::conduit(),
        Instruction::Hvc1,
        Instruction::HvcFfff,
        Instruction::Smc0,
        Instruction::Smc1234,
    ]);
    if ctx.trace {
        uart::println!(
            "FUZZ: op cpu={} #{} call {instruction:?} x0={:#x} x1={:#x} x2={:#x} x3={:#x}",
            ctx.cpu,
            ctx.index,
            regs[0],
            regs[1],
            regs[2],
            regs[3]
        );
    }
    let before = regs;
    // IRQs masked around a CPU_SUSPEND: its wake-up interrupt must still be pending then.
    let suspend = is_suspend(regs[0]);
    if suspend {
        crate::arch::mask_irqs();
    }
    psci::call(instruction, &mut regs);
    if suspend {
        timer::disarm();
        if unmasked {
            crate::arch::unmask_irqs_and_serrors();
        }
    }
    if let Some(reg) = (FIRST_PRESERVED..CALL_REGS).find(|&r| regs[r] != before[r]) {
        if CLOBBERS[ctx.cpu].fetch_add(1, Ordering::Relaxed) == 0 {
            FIRST_CLOBBER.store(((before[0] & u64::from(u32::MAX)) << 8) | reg as u64, Ordering::Relaxed);
        }
    }
}
