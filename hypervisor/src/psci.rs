//! PSCI 1.1 and SMCCC 1.1 as the guest sees them: the firmware interface a guest kernel uses
//! to start and stop its CPUs and to power the machine off, emulated by the hypervisor.
//!
//! The guest calls with HVC #0: function id in w0, arguments in x1..x3, result in x0
//! (SMCCC, Arm DEN0028). Function ids and codes come from PSCI (Arm DEN0022). This module
//! only decides; starting, stopping and parking vCPUs is the caller's job, driven by the
//! returned [`PsciOutcome`].

use core::ops::RangeInclusive;

use crate::guest_map::vcpu_mpidr;
use crate::options::MAX_VCPUS;

/// Function identifiers, as the smccc crate defines them (named here without their
/// `PSCI_` prefix). `_32` ids use the SMC32 convention (32-bit arguments), `_64` ids SMC64.
pub mod function {
    pub use smccc::arch::{
        SMCCC_ARCH_FEATURES, SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2, SMCCC_ARCH_WORKAROUND_3, SMCCC_VERSION,
    };
    pub use smccc::psci::{
        PSCI_AFFINITY_INFO_32 as AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64 as AFFINITY_INFO_64, PSCI_CPU_OFF as CPU_OFF,
        PSCI_CPU_ON_32 as CPU_ON_32, PSCI_CPU_ON_64 as CPU_ON_64, PSCI_CPU_SUSPEND_32 as CPU_SUSPEND_32,
        PSCI_CPU_SUSPEND_64 as CPU_SUSPEND_64, PSCI_FEATURES, PSCI_MIGRATE_32 as MIGRATE_32,
        PSCI_MIGRATE_64 as MIGRATE_64, PSCI_MIGRATE_INFO_TYPE as MIGRATE_INFO_TYPE,
        PSCI_MIGRATE_INFO_UP_CPU_32 as MIGRATE_INFO_UP_CPU_32, PSCI_MIGRATE_INFO_UP_CPU_64 as MIGRATE_INFO_UP_CPU_64,
        PSCI_SYSTEM_OFF as SYSTEM_OFF, PSCI_SYSTEM_RESET as SYSTEM_RESET, PSCI_VERSION,
    };
}

/// PSCI status codes (the smccc crate's), returned sign-extended in x0.
pub mod status {
    pub use smccc::psci::error::{
        ALREADY_ON, DENIED, DISABLED, INTERNAL_FAILURE, INVALID_ADDRESS, INVALID_PARAMETERS, NOT_PRESENT,
        NOT_SUPPORTED, ON_PENDING, SUCCESS,
    };
}

/// Function ids the PSCI service owns, in both conventions.
const PSCI_SMC32_IDS: RangeInclusive<u32> = 0x8400_0000..=0x8400_001F;
const PSCI_SMC64_IDS: RangeInclusive<u32> = 0xC400_0000..=0xC400_001F;
/// Function ids of the Arm architecture service (SMCCC_VERSION and friends).
const SMCCC_ARCH_IDS: RangeInclusive<u32> = 0x8000_0000..=0x8000_FFFF;
/// Function id bit 30: the call uses the SMC64 convention; clear means SMC32, whose
/// arguments are the low 32 bits of each register.
const SMC64_BIT: u32 = 1 << 30;
const SMC32_ARGUMENT_MASK: u64 = u32::MAX as u64;

/// Versions are reported as major in bits [30:16] and minor in bits [15:0].
const VERSION_MAJOR_SHIFT: u32 = 16;
const fn version(major: u64, minor: u64) -> u64 {
    (major << VERSION_MAJOR_SHIFT) | minor
}
const PSCI_VERSION_1_1: u64 = version(1, 1);
const SMCCC_VERSION_1_1: u64 = version(1, 1);

/// PSCI_FEATURES(CPU_SUSPEND) flags: bit 1 clear = original power_state format, bit 0
/// clear = no OS-initiated mode.
const CPU_SUSPEND_FEATURE_FLAGS: u64 = 0;
/// PSCI_FEATURES result for other implemented functions: no optional features.
const FEATURE_PRESENT: u64 = 0;
/// SMCCC_ARCH_FEATURES result for an implemented architecture call.
const ARCH_FEATURE_PRESENT: u64 = 0;
/// MIGRATE_INFO_TYPE: no Trusted OS, or one that needs no migration.
const MIGRATE_INFO_TYPE_NOT_REQUIRED: u64 = 2;
/// AFFINITY_INFO only supports level 0 (a single CPU) from PSCI 1.0 on.
const AFFINITY_LEVEL_CPU: u64 = 0;
/// The MPIDR fields PSCI compares: Aff3 [39:32], Aff2 [23:16], Aff1 [15:8], Aff0 [7:0]. A
/// guest may pass its raw MPIDR, whose other bits (U, MT, RES1) are not part of the id.
const MPIDR_AFFINITY_MASK: u64 = 0xFF_00FF_FFFF;
/// A64 instructions are four bytes and must be aligned to four.
const INSTRUCTION_ALIGNMENT: u64 = 4;

/// AFFINITY_INFO results.
const AFFINITY_INFO_ON: u64 = 0;
const AFFINITY_INFO_OFF: u64 = 1;
const AFFINITY_INFO_ON_PENDING: u64 = 2;

/// The power state of one vCPU, as AFFINITY_INFO reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerState {
    Off,
    /// CPU_ON accepted, the vCPU not yet running.
    OnPending,
    On,
}

impl PowerState {
    /// The AFFINITY_INFO return value.
    pub const fn affinity_info(self) -> u64 {
        match self {
            Self::On => AFFINITY_INFO_ON,
            Self::Off => AFFINITY_INFO_OFF,
            Self::OnPending => AFFINITY_INFO_ON_PENDING,
        }
    }
}

/// What PSCI knows about one VM: its vCPUs' power states and where they may start.
#[derive(Clone, Debug)]
pub struct PsciState {
    vcpus: usize,
    power: [PowerState; MAX_VCPUS],
    ram_base: u64,
    ram_size: u64,
}

impl PsciState {
    /// A VM that has just booted: vCPU 0 on, the others off. `vcpus` is clamped to
    /// `1..=MAX_VCPUS`; entry points must lie in guest RAM `[ram_base, ram_base + ram_size)`.
    pub fn new(vcpus: usize, ram_base: u64, ram_size: u64) -> Self {
        let mut state =
            Self { vcpus: vcpus.clamp(1, MAX_VCPUS), power: [PowerState::Off; MAX_VCPUS], ram_base, ram_size };
        state.reset();
        state
    }

    /// Back to the boot state, e.g. for SYSTEM_RESET.
    pub fn reset(&mut self) {
        self.power = [PowerState::Off; MAX_VCPUS];
        self.power[0] = PowerState::On;
    }

    pub fn vcpu_count(&self) -> usize {
        self.vcpus
    }

    /// The power state of `vcpu`, or `None` if the VM has no such vCPU.
    pub fn power_state(&self, vcpu: usize) -> Option<PowerState> {
        self.power[..self.vcpus].get(vcpu).copied()
    }

    /// Records that `vcpu`, started by a [`PsciOutcome::CpuOn`], is now running.
    pub fn mark_on(&mut self, vcpu: usize) {
        self.set(vcpu, PowerState::On);
    }

    fn set(&mut self, vcpu: usize, state: PowerState) {
        if let Some(slot) = self.power[..self.vcpus].get_mut(vcpu) {
            *slot = state;
        }
    }

    /// The vCPU whose MPIDR has the affinity fields of `mpidr`.
    fn vcpu_by_mpidr(&self, mpidr: u64) -> Option<usize> {
        let wanted = mpidr & MPIDR_AFFINITY_MASK;
        (0..self.vcpus).find(|&vcpu| vcpu_mpidr(vcpu) & MPIDR_AFFINITY_MASK == wanted)
    }

    /// Whether a vCPU could start executing at `entry`: aligned and inside guest RAM.
    fn is_valid_entry(&self, entry: u64) -> bool {
        let in_ram = entry.checked_sub(self.ram_base).is_some_and(|offset| offset < self.ram_size);
        in_ram && entry.is_multiple_of(INSTRUCTION_ALIGNMENT)
    }
}

/// What the caller must do after a PSCI or SMCCC call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciOutcome {
    /// Put this in the caller's x0 and resume it (status codes are sign-extended).
    Return(u64),
    /// Give the caller SUCCESS in x0, and start vCPU `target` (now `OnPending`) at `entry`
    /// with `context_id` in x0; call [`PsciState::mark_on`] once it runs.
    CpuOn {
        target: usize,
        entry: u64,
        context_id: u64,
    },
    /// The caller is now off: stop running it until a CPU_ON names it.
    CpuOff,
    /// CPU_SUSPEND: wait like WFI, then resume the caller with SUCCESS in x0.
    Suspend,
    SystemOff,
    SystemReset,
    /// Not a PSCI or Arm architecture call (e.g. a hypervisor-specific hypercall): the caller
    /// decides what it means.
    NotPsci,
}

impl PsciOutcome {
    fn status(code: i32) -> Self {
        // Sign-extend: SMCCC returns negative codes in the whole of x0.
        Self::Return(i64::from(code) as u64)
    }
}

/// Whether the guest's x0 asks for CPU_SUSPEND (which waits for an interrupt like WFI).
pub fn is_cpu_suspend(function_id: u64) -> bool {
    matches!(function_id as u32, function::CPU_SUSPEND_32 | function::CPU_SUSPEND_64)
}

/// Handles one call from vCPU `caller`: `function_id` is the guest's x0, `args` its x1..x3.
///
/// Every argument is guest-controlled; any value gets an answer, never a panic.
pub fn handle(state: &mut PsciState, caller: usize, function_id: u64, args: [u64; 3]) -> PsciOutcome {
    use function::*;
    // SMCCC passes the function id in w0: the upper half of x0 is not part of it.
    let function_id = function_id as u32;
    let args = if function_id & SMC64_BIT == 0 { args.map(|arg| arg & SMC32_ARGUMENT_MASK) } else { args };
    let [arg1, arg2, arg3] = args;
    match function_id {
        PSCI_VERSION => PsciOutcome::Return(PSCI_VERSION_1_1),
        CPU_SUSPEND_32 | CPU_SUSPEND_64 => PsciOutcome::Suspend,
        CPU_OFF => {
            state.set(caller, PowerState::Off);
            PsciOutcome::CpuOff
        }
        CPU_ON_32 | CPU_ON_64 => cpu_on(state, arg1, arg2, arg3),
        AFFINITY_INFO_32 | AFFINITY_INFO_64 => affinity_info(state, arg1, arg2),
        MIGRATE_INFO_TYPE => PsciOutcome::Return(MIGRATE_INFO_TYPE_NOT_REQUIRED),
        SYSTEM_OFF => PsciOutcome::SystemOff,
        SYSTEM_RESET => PsciOutcome::SystemReset,
        PSCI_FEATURES => psci_features(arg1),
        SMCCC_VERSION => PsciOutcome::Return(SMCCC_VERSION_1_1),
        SMCCC_ARCH_FEATURES => arch_features(arg1),
        // Includes MIGRATE and MIGRATE_INFO_UP_CPU: without a Trusted OS there is nothing to
        // migrate.
        id if PSCI_SMC32_IDS.contains(&id) || PSCI_SMC64_IDS.contains(&id) || SMCCC_ARCH_IDS.contains(&id) => {
            PsciOutcome::status(status::NOT_SUPPORTED)
        }
        _ => PsciOutcome::NotPsci,
    }
}

/// CPU_ON(target_cpu, entry_point_address, context_id).
fn cpu_on(state: &mut PsciState, target_mpidr: u64, entry: u64, context_id: u64) -> PsciOutcome {
    let Some(target) = state.vcpu_by_mpidr(target_mpidr) else {
        return PsciOutcome::status(status::INVALID_PARAMETERS);
    };
    match state.power_state(target) {
        Some(PowerState::On) => return PsciOutcome::status(status::ALREADY_ON),
        Some(PowerState::OnPending) => return PsciOutcome::status(status::ON_PENDING),
        Some(PowerState::Off) | None => {}
    }
    if !state.is_valid_entry(entry) {
        return PsciOutcome::status(status::INVALID_ADDRESS);
    }
    state.set(target, PowerState::OnPending);
    PsciOutcome::CpuOn { target, entry, context_id }
}

/// AFFINITY_INFO(target_affinity, lowest_affinity_level).
fn affinity_info(state: &PsciState, target_mpidr: u64, level: u64) -> PsciOutcome {
    if level != AFFINITY_LEVEL_CPU {
        return PsciOutcome::status(status::INVALID_PARAMETERS);
    }
    match state.vcpu_by_mpidr(target_mpidr).and_then(|vcpu| state.power_state(vcpu)) {
        Some(power) => PsciOutcome::Return(power.affinity_info()),
        None => PsciOutcome::status(status::INVALID_PARAMETERS),
    }
}

/// PSCI_FEATURES(psci_func_id): which functions this implementation provides.
fn psci_features(queried: u64) -> PsciOutcome {
    use function::*;
    match u32::try_from(queried) {
        Ok(CPU_SUSPEND_32 | CPU_SUSPEND_64) => PsciOutcome::Return(CPU_SUSPEND_FEATURE_FLAGS),
        // SMCCC_VERSION is listed because PSCI_FEATURES is how a guest discovers it.
        Ok(PSCI_VERSION | CPU_OFF | CPU_ON_32 | CPU_ON_64 | AFFINITY_INFO_32 | AFFINITY_INFO_64)
        | Ok(MIGRATE_INFO_TYPE | SYSTEM_OFF | SYSTEM_RESET | PSCI_FEATURES | SMCCC_VERSION) => {
            PsciOutcome::Return(FEATURE_PRESENT)
        }
        _ => PsciOutcome::status(status::NOT_SUPPORTED),
    }
}

/// SMCCC_ARCH_FEATURES(arch_func_id). The ARCH_WORKAROUND calls are not implemented, so the
/// guest relies on its own mitigations (or reports itself vulnerable).
fn arch_features(queried: u64) -> PsciOutcome {
    use function::*;
    match u32::try_from(queried) {
        Ok(SMCCC_VERSION | SMCCC_ARCH_FEATURES) => PsciOutcome::Return(ARCH_FEATURE_PRESENT),
        _ => PsciOutcome::status(status::NOT_SUPPORTED),
    }
}

#[cfg(test)]
mod tests {
    use super::function::*;
    use super::status::*;
    use super::*;
    use crate::guest_map::RAM_BASE;
    use PsciOutcome::{CpuOff, NotPsci, Return};

    const RAM_SIZE: u64 = 256 << 20;
    const ENTRY: u64 = RAM_BASE + 0x8_0000;
    const NO_ARGS: [u64; 3] = [0; 3];

    fn vm(vcpus: usize) -> PsciState {
        PsciState::new(vcpus, RAM_BASE, RAM_SIZE)
    }

    fn err(status: i32) -> PsciOutcome {
        PsciOutcome::status(status)
    }

    fn started(target: usize, entry: u64, context_id: u64) -> PsciOutcome {
        PsciOutcome::CpuOn { target, entry, context_id }
    }

    /// A call from vCPU 0.
    fn call(state: &mut PsciState, id: u32, args: [u64; 3]) -> PsciOutcome {
        handle(state, 0, u64::from(id), args)
    }

    fn cpu_on(state: &mut PsciState, mpidr: u64, entry: u64) -> PsciOutcome {
        call(state, CPU_ON_64, [mpidr, entry, 0])
    }

    fn affinity(state: &mut PsciState, mpidr: u64) -> PsciOutcome {
        call(state, AFFINITY_INFO_64, [mpidr, 0, 0])
    }

    #[test]
    fn versions() {
        let mut state = vm(1);
        assert_eq!(call(&mut state, PSCI_VERSION, NO_ARGS), Return(0x0001_0001));
        assert_eq!(call(&mut state, SMCCC_VERSION, NO_ARGS), Return(0x0001_0001));
    }

    #[test]
    fn errors_are_sign_extended() {
        assert_eq!(err(NOT_SUPPORTED), Return(u64::MAX));
        assert_eq!(err(INVALID_ADDRESS), Return(-9i64 as u64));
    }

    #[test]
    fn boot_state() {
        let state = vm(4);
        assert_eq!(state.vcpu_count(), 4);
        assert_eq!(state.power_state(0), Some(PowerState::On));
        assert_eq!(state.power_state(3), Some(PowerState::Off));
        assert_eq!(state.power_state(4), None);
        // Impossible counts are clamped rather than trusted.
        assert_eq!(vm(0).vcpu_count(), 1);
        assert_eq!(vm(usize::MAX).vcpu_count(), MAX_VCPUS);
    }

    #[test]
    fn cpu_on_starts_an_off_vcpu_once() {
        let mut state = vm(4);
        let outcome = call(&mut state, CPU_ON_64, [vcpu_mpidr(2), ENTRY, 0x1234]);
        assert_eq!(outcome, started(2, ENTRY, 0x1234));
        assert_eq!(state.power_state(2), Some(PowerState::OnPending));
        // Asked again before it runs, then after.
        assert_eq!(cpu_on(&mut state, 2, ENTRY), err(ON_PENDING));
        state.mark_on(2);
        assert_eq!(cpu_on(&mut state, 2, ENTRY), err(ALREADY_ON));
        // The boot vCPU (here also the caller) is already on.
        assert_eq!(cpu_on(&mut state, 0, ENTRY), err(ALREADY_ON));
    }

    /// A hybrid VM's PSCI state covers the ROS's vCPUs only (vm::build), so the ROS cannot
    /// start, query or touch an HRT core (here vCPU 3 of 3 ROS + 1 HRT).
    #[test]
    fn a_hybrid_vms_ros_cannot_reach_hrt_cores() {
        let mut ros = vm(3);
        assert_eq!(cpu_on(&mut ros, vcpu_mpidr(3), ENTRY), err(INVALID_PARAMETERS));
        assert_eq!(affinity(&mut ros, vcpu_mpidr(3)), err(INVALID_PARAMETERS));
        ros.mark_on(3);
        assert_eq!(ros.power_state(3), None, "the HRT core's state is not the ROS's to set");
    }

    #[test]
    fn cpu_on_of_a_cpu_that_does_not_exist() {
        let mut state = vm(4);
        for mpidr in [4, 7, 0x100, 0x1_0000, 0x1_0000_0000, u64::MAX] {
            assert_eq!(cpu_on(&mut state, mpidr, ENTRY), err(INVALID_PARAMETERS), "{mpidr:#x}");
        }
    }

    #[test]
    fn cpu_on_ignores_non_affinity_mpidr_bits() {
        // A raw MPIDR value: RES1 bit 31 and MT bit 24 set.
        assert_eq!(cpu_on(&mut vm(2), 0x8100_0001, ENTRY), started(1, ENTRY, 0));
    }

    #[test]
    fn cpu_on_refuses_entries_outside_ram() {
        let mut state = vm(2);
        let outside = [0, RAM_BASE - 4, RAM_BASE + RAM_SIZE, u64::MAX - 3, ENTRY + 2];
        for entry in outside {
            assert_eq!(cpu_on(&mut state, 1, entry), err(INVALID_ADDRESS), "{entry:#x}");
        }
        assert_eq!(state.power_state(1), Some(PowerState::Off));
        let last = RAM_BASE + RAM_SIZE - 4;
        assert_eq!(cpu_on(&mut state, 1, last), started(1, last, 0));
    }

    #[test]
    fn smc32_calls_use_the_low_half_of_each_argument() {
        let mut state = vm(2);
        let high = 0xFFFF_FFFF_0000_0000;
        let outcome = call(&mut state, CPU_ON_32, [high | 1, high | ENTRY, high | 5]);
        assert_eq!(outcome, started(1, ENTRY, 5));
        assert_eq!(call(&mut state, AFFINITY_INFO_32, [high | 1, high, 0]), Return(2));
        // The same values through the SMC64 id are taken whole, and are invalid.
        assert_eq!(affinity(&mut state, high | 1), err(INVALID_PARAMETERS));
    }

    #[test]
    fn affinity_info_follows_power_transitions() {
        let mut state = vm(2);
        assert_eq!(affinity(&mut state, 0), Return(0));
        assert_eq!(affinity(&mut state, 1), Return(1));
        cpu_on(&mut state, 1, ENTRY);
        assert_eq!(affinity(&mut state, 1), Return(2));
        state.mark_on(1);
        assert_eq!(affinity(&mut state, 1), Return(0));
        assert_eq!(handle(&mut state, 1, CPU_OFF.into(), NO_ARGS), CpuOff);
        assert_eq!(affinity(&mut state, 1), Return(1));
        // Off vCPUs may be started again.
        assert_eq!(cpu_on(&mut state, 1, ENTRY), started(1, ENTRY, 0));
    }

    #[test]
    fn affinity_info_refuses_bad_arguments() {
        let mut state = vm(2);
        let level_one = call(&mut state, AFFINITY_INFO_64, [0, 1, 0]);
        assert_eq!(level_one, err(INVALID_PARAMETERS));
        assert_eq!(affinity(&mut state, 2), err(INVALID_PARAMETERS));
    }

    #[test]
    fn cpu_off_and_suspend() {
        let mut state = vm(1);
        let suspend = call(&mut state, CPU_SUSPEND_64, [0, ENTRY, 0]);
        assert_eq!(suspend, PsciOutcome::Suspend);
        assert_eq!(call(&mut state, CPU_SUSPEND_32, NO_ARGS), PsciOutcome::Suspend);
        assert_eq!(call(&mut state, CPU_OFF, NO_ARGS), CpuOff);
        assert_eq!(state.power_state(0), Some(PowerState::Off));
        // A caller index the VM does not have changes nothing and does not panic.
        assert_eq!(handle(&mut state, 99, CPU_OFF.into(), NO_ARGS), CpuOff);
    }

    #[test]
    fn system_off_and_reset() {
        let mut state = vm(2);
        assert_eq!(call(&mut state, SYSTEM_OFF, NO_ARGS), PsciOutcome::SystemOff);
        assert_eq!(call(&mut state, SYSTEM_RESET, NO_ARGS), PsciOutcome::SystemReset);
        cpu_on(&mut state, 1, ENTRY);
        state.reset();
        assert_eq!(state.power_state(0), Some(PowerState::On));
        assert_eq!(state.power_state(1), Some(PowerState::Off));
    }

    #[test]
    fn migration_is_not_needed() {
        let mut state = vm(1);
        assert_eq!(call(&mut state, MIGRATE_INFO_TYPE, NO_ARGS), Return(2));
        let ids = [MIGRATE_32, MIGRATE_64, MIGRATE_INFO_UP_CPU_32, MIGRATE_INFO_UP_CPU_64];
        for id in ids {
            assert_eq!(call(&mut state, id, NO_ARGS), err(NOT_SUPPORTED), "{id:#x}");
        }
    }

    #[test]
    fn psci_features() {
        let mut state = vm(1);
        let mut features = |id: u32| call(&mut state, PSCI_FEATURES, [id.into(), 0, 0]);
        let implemented = [
            PSCI_VERSION,
            CPU_SUSPEND_32,
            CPU_SUSPEND_64,
            CPU_OFF,
            CPU_ON_32,
            CPU_ON_64,
            AFFINITY_INFO_32,
            AFFINITY_INFO_64,
            MIGRATE_INFO_TYPE,
            SYSTEM_OFF,
            SYSTEM_RESET,
            PSCI_FEATURES,
            SMCCC_VERSION,
        ];
        for id in implemented {
            assert_eq!(features(id), Return(0), "{id:#x}");
        }
        for id in [MIGRATE_64, 0x8400_0012, SMCCC_ARCH_FEATURES, 0xC600_F00D] {
            assert_eq!(features(id), err(NOT_SUPPORTED), "{id:#x}");
        }
    }

    #[test]
    fn smccc_arch_features() {
        let mut state = vm(1);
        let mut features = |id: u32| call(&mut state, SMCCC_ARCH_FEATURES, [id.into(), 0, 0]);
        assert_eq!(features(SMCCC_VERSION), Return(0));
        assert_eq!(features(SMCCC_ARCH_FEATURES), Return(0));
        let absent = [SMCCC_ARCH_WORKAROUND_1, SMCCC_ARCH_WORKAROUND_2, SMCCC_ARCH_WORKAROUND_3, PSCI_VERSION];
        for id in absent {
            assert_eq!(features(id), err(NOT_SUPPORTED), "{id:#x}");
        }
    }

    #[test]
    fn unknown_ids_inside_the_ranges_are_not_supported() {
        let mut state = vm(1);
        let psci = [0x8400_000B, 0x8400_001F, 0xC400_0000, 0xC400_001F];
        for id in psci.into_iter().chain([0x8000_0002, 0x8000_FFFF]) {
            assert_eq!(call(&mut state, id, NO_ARGS), err(NOT_SUPPORTED), "{id:#x}");
        }
        // Workarounds are only advertised as absent; calling one anyway is refused too.
        let workaround = call(&mut state, SMCCC_ARCH_WORKAROUND_1, NO_ARGS);
        assert_eq!(workaround, err(NOT_SUPPORTED));
    }

    #[test]
    fn ids_outside_the_ranges_are_left_to_the_caller() {
        let mut state = vm(1);
        let beyond_psci = [0x8400_0020, 0xC400_0020, 0x8001_0000, 0xC000_0000];
        for id in beyond_psci.into_iter().chain([0xC600_F00D, 0]) {
            assert_eq!(call(&mut state, id, NO_ARGS), NotPsci, "{id:#x}");
        }
    }

    #[test]
    fn upper_half_of_x0_is_not_part_of_the_function_id() {
        let x0 = 0xFFFF_FFFF_0000_0000 | u64::from(PSCI_VERSION);
        assert_eq!(handle(&mut vm(1), 0, x0, NO_ARGS), Return(PSCI_VERSION_1_1));
    }
}
