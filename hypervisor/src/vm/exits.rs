//! Carrying out what `exit::dispatch` decided for a guest exit, on the vCPU that exited.

use hvm_ros_lib::abi::{HRT_CONSOLE_ID, HVM_HCALL_ID};

use super::cpus::this_pcpu;
use super::{hvm, irq, lifecycle, vm, Vm};
use crate::arch::aarch64::context::TimerRegisters;
use crate::arch::aarch64::guest;
use crate::arch::aarch64::trap::TrapFrame;
use crate::arch::aarch64::{firmware, physical_timer, serror};
use crate::console::CONSOLE;
use crate::exit::dispatch::{Action, ExitInfo};
use crate::exit::syndrome::instruction_length;
use crate::exit::{read_gpr, write_gpr, MmioAccess};
use crate::guest_map;
use crate::mm::MemRange;
use crate::profile::ExitKind;
use crate::psci::{self, PsciOutcome};
use crate::sched::Resched;
use crate::vcpu::inject::{inject, GuestException};

/// Handles one synchronous exit of the loaded vCPU `vcpu`; says what kind it was and whether
/// the scheduler must act.
pub fn handle_sync(frame: &mut TrapFrame, info: ExitInfo, action: Action, vcpu: usize) -> (ExitKind, Resched) {
    let mut resched = Resched::No;
    let kind = match action {
        Action::WaitForInterrupt => ExitKind::Wfi,
        Action::StepOver => ExitKind::Wfe,
        Action::Hvc => ExitKind::Hvc,
        Action::Smc => ExitKind::Smc,
        Action::SendSgi { .. } => ExitKind::Sgi,
        Action::ReadIdRegister { .. } => ExitKind::IdRegister,
        Action::PhysicalTimer { .. } => ExitKind::PhysicalTimer,
        Action::ReadsAsZero { .. } => ExitKind::Other,
        Action::TlbMaintenance { .. } => ExitKind::TlbMaintenance,
        Action::Mmio { .. } => ExitKind::Mmio,
        Action::MmioWithoutSyndrome { .. } => ExitKind::MmioNoSyndrome,
        Action::InstructionFetchFault { .. } => ExitKind::InstructionAbort,
        Action::VirtualSError => ExitKind::SError,
        Action::Undefined(_) => ExitKind::Undef,
    };
    match action {
        Action::WaitForInterrupt => {
            step(frame, info.esr);
            resched = wait(vcpu);
        }
        Action::StepOver => {
            // WFE traps only where vCPUs share a pCPU: a waiter spinning on a lock yields, so
            // the lock holder gets to run.
            step(frame, info.esr);
            resched = Resched::Preempt;
        }
        Action::Hvc => resched = handle_psci_call(frame, vcpu),
        Action::Smc => {
            step(frame, info.esr);
            resched = handle_psci_call(frame, vcpu);
        }
        Action::SendSgi { rt } => {
            step(frame, info.esr);
            if handle_sgi_trap(vcpu, read_gpr(&frame.x, rt)) {
                resched = Resched::Preempt;
            }
        }
        Action::ReadIdRegister { reg, rt } => {
            let hardware = crate::arch::aarch64::id_regs::read(reg.crm, reg.op2);
            write_gpr(&mut frame.x, rt, crate::exit::id_regs::guest_value(reg, hardware));
            step(frame, info.esr);
        }
        Action::ReadsAsZero { rt, is_read } => {
            if is_read {
                write_gpr(&mut frame.x, rt, 0);
            }
            step(frame, info.esr);
        }
        Action::PhysicalTimer { reg, rt, is_read } => {
            if is_read {
                write_gpr(&mut frame.x, rt, physical_timer::read(reg));
            } else {
                physical_timer::write(reg, read_gpr(&frame.x, rt));
                resample_physical_timer(vcpu);
            }
            step(frame, info.esr);
        }
        Action::TlbMaintenance { op, rt } => {
            hvm::replay_tlb_maintenance(vm(), op, read_gpr(&frame.x, rt));
            step(frame, info.esr);
        }
        Action::Mmio { ipa, access } => handle_mmio_abort(frame, vcpu, ipa, access, &info),
        Action::MmioWithoutSyndrome { ipa, is_write } => {
            guest_warn!(
                vcpu,
                "vcpu{vcpu}: {} at IPA {ipa:#x} without a syndrome (ISV=0) at PC {:#x}: cannot emulate; external abort injected",
                if is_write { "write" } else { "read" },
                frame.elr
            );
            inject_exception(frame, GuestException::DataExternalAbort { address: info.far, is_write });
        }
        Action::InstructionFetchFault { ipa } => {
            guest_warn!(
                vcpu,
                "vcpu{vcpu}: instruction fetch from IPA {ipa:#x} (PC {:#x}) outside RAM: external abort injected",
                frame.elr
            );
            inject_exception(frame, GuestException::InstructionExternalAbort { address: info.far });
        }
        Action::VirtualSError => {
            guest_warn!(
                vcpu,
                "vcpu{vcpu}: external abort at PC {:#x} (ESR_EL2 {:#x}): virtual SError injected",
                frame.elr,
                info.esr
            );
            // The abort's syndrome is not an SError's: none is given (uncategorized).
            serror::inject(0);
        }
        Action::Undefined(reason) => {
            guest_warn!(
                vcpu,
                "vcpu{vcpu}: {reason:?} at PC {:#x} (ESR_EL2 {:#x}): UNDEF injected",
                frame.elr,
                info.esr
            );
            inject_exception(frame, GuestException::Undefined);
        }
    }
    (kind, resched)
}

/// An SError taken while the guest ran (HCR_EL2.AMO routes it here): it belongs to the guest,
/// which gets a virtual SError with the same syndrome where the CPU can carry one.
pub fn reflect_serror(frame: &TrapFrame, vcpu: usize, esr: u64) -> (ExitKind, Resched) {
    guest_warn!(vcpu, "vcpu{vcpu}: SError (ESR_EL2 {esr:#x}) at PC {:#x}: virtual SError injected", frame.elr);
    serror::inject(esr);
    (ExitKind::SError, Resched::No)
}

/// WFI (or CPU_SUSPEND): a vCPU alone on its pCPU waits in place; one that shares its pCPU
/// yields it until an interrupt arrives or its timer expires.
fn wait(vcpu: usize) -> Resched {
    if irq::has_deliverable(vcpu) {
        return Resched::No;
    }
    if this_pcpu().is_shared() {
        return Resched::Wait { wake_at: TimerRegisters::read().deadline() };
    }
    irq::wait_for_interrupt(vcpu);
    Resched::No
}

/// A guest write to ICC_SGI1R_EL1: mark the SGI pending on its targets and kick them. Says
/// whether the sender should yield its pCPU: a target waiting its turn on the same pCPU can
/// only answer (and the sender usually waits for the answer) once it runs.
#[inline(never)]
fn handle_sgi_trap(vcpu: usize, value: u64) -> bool {
    let targets = vm().send_sgi(vcpu, value);
    lifecycle::shares_pcpu_with(vm(), vcpu, targets)
}

/// The guest just wrote its physical timer (the accesses trap so this can happen): an
/// interrupt it fired and the guest has not taken stops being pending at once if the timer
/// no longer asserts it, as on hardware, even if the guest unmasks IRQs before any other exit.
fn resample_physical_timer(vcpu: usize) {
    let timers = TimerRegisters::read();
    if timers.physical_line() {
        return;
    }
    let vm = vm();
    let (kick, deactivate) = vm.vgic.hw_line_dropped(guest_map::PPI_NONSECURE_PHYS_TIMER, vcpu);
    if deactivate {
        crate::arch::aarch64::gic::deactivate(guest_map::PPI_NONSECURE_PHYS_TIMER);
    }
    vm.kick(kick);
}

/// Moves the guest past the trapped instruction.
fn step(frame: &mut TrapFrame, esr: u64) {
    frame.elr = frame.elr.wrapping_add(instruction_length(esr));
}

fn inject_exception(frame: &mut TrapFrame, exception: GuestException) {
    let injection = inject(exception, frame.elr, frame.spsr, guest::vbar_el1());
    guest::write_exception_registers(injection.elr_el1, injection.spsr_el1, injection.esr_el1, injection.far_el1);
    frame.elr = injection.pc;
    frame.spsr = injection.pstate;
}

/// An emulated MMIO access: the virtual GIC's frames or a device; anything else is an
/// unassigned address and gets an external abort.
#[inline(never)]
fn handle_mmio_abort(frame: &mut TrapFrame, vcpu: usize, ipa: u64, access: MmioAccess, info: &ExitInfo) {
    let vm = vm();
    let gicd = MemRange::new(guest_map::GICD_BASE, guest_map::GICD_SIZE);
    // A hybrid VM's ROS reaches its own redistributor frames only; the HRT all of them.
    let frames = if vm.is_hrt_vcpu(vcpu) { vm.vcpu_count } else { vm.ros_vcpus };
    let gicr = MemRange::new(guest_map::GICR_BASE, guest_map::GICR_STRIDE * frames as u64);
    if hvm::is_doorbell(vm, ipa) && !vm.is_hrt_vcpu(vcpu) {
        // A ROS process's (or the ROS kernel's) 0xf00d call: x0..x7 hold it.
        let load = (!access.is_write).then_some(access.reg);
        if hvm::call(vm, vcpu, frame) {
            // A signal return: the whole context was replaced, PC included.
            return;
        }
        if let Some(reg) = load {
            let status = frame.x[0];
            write_gpr(&mut frame.x, reg, status);
        }
        step(frame, info.esr);
        return;
    }
    let handled = if access.is_write {
        let value = access.store_value(read_gpr(&frame.x, access.reg));
        if gicd.contains(ipa) {
            let result = vm.vgic.gicd_write(ipa - gicd.start, access.size, value);
            note_gic_access(vcpu, "GICD write", ipa, result.access);
            vm.kick(result.kick);
            true
        } else if gicr.contains(ipa) {
            let result = vm.vgic.gicr_write(ipa - gicr.start, access.size, value);
            note_gic_access(vcpu, "GICR write", ipa, result.access);
            vm.kick(result.kick);
            true
        } else {
            let result = vm.devices.lock().write(ipa, access.size, value);
            if let Ok(Some(line)) = result {
                vm.set_line(line);
            }
            result.is_ok()
        }
    } else {
        let raw = if gicd.contains(ipa) {
            let result = vm.vgic.gicd_read(ipa - gicd.start, access.size);
            note_gic_access(vcpu, "GICD read", ipa, result.access);
            Some(result.value)
        } else if gicr.contains(ipa) {
            let result = vm.vgic.gicr_read(ipa - gicr.start, access.size);
            note_gic_access(vcpu, "GICR read", ipa, result.access);
            Some(result.value)
        } else {
            let result = vm.devices.lock().read(ipa, access.size);
            if let Ok((_, Some(line))) = result {
                vm.set_line(line);
            }
            result.ok().map(|(value, _)| value)
        };
        if let Some(raw) = raw {
            write_gpr(&mut frame.x, access.reg, access.load_value(raw));
        }
        raw.is_some()
    };
    if handled {
        step(frame, info.esr);
    } else {
        guest_warn!(
            vcpu,
            "vcpu{vcpu}: {}-byte {} at unassigned IPA {ipa:#x} (PC {:#x}): external abort injected",
            access.size,
            if access.is_write { "write" } else { "read" },
            frame.elr
        );
        inject_exception(frame, GuestException::DataExternalAbort { address: info.far, is_write: access.is_write });
    }
}

fn note_gic_access(vcpu: usize, what: &str, ipa: u64, access: crate::gic::RegAccess) {
    if access != crate::gic::RegAccess::Ok {
        log::debug!("vcpu{vcpu}: {what} at {ipa:#x}: {access:?} (read as zero / ignored)");
    }
}

/// An HVC or SMC call: PSCI and SMCCC, or the HVM hypercall.
#[inline(never)]
fn handle_psci_call(frame: &mut TrapFrame, vcpu: usize) -> Resched {
    let vm = vm();
    let function_id = frame.x[0];
    match function_id {
        HVM_HCALL_ID => {
            // From EL1 no call replaces the caller's context (signal returns come from EL0).
            let _ = hvm::call(vm, vcpu, frame);
            return Resched::No;
        }
        HRT_CONSOLE_ID => {
            hvm::console(vm, vcpu, frame);
            return Resched::No;
        }
        _ if vm.is_hrt_vcpu(vcpu) => {
            // PSCI is the ROS's: the hypervisor starts and stops HRT cores itself.
            guest_warn!(vcpu, "vcpu{vcpu}: HRT SMCCC call {function_id:#x} not supported");
            frame.x[0] = status_code(psci::status::NOT_SUPPORTED);
            return Resched::No;
        }
        _ => {}
    }
    let args = [frame.x[1], frame.x[2], frame.x[3]];
    let outcome = psci::handle(&mut vm.psci.lock(), vcpu, function_id, args);
    match outcome {
        PsciOutcome::Return(value) => frame.x[0] = value,
        PsciOutcome::NotPsci => {
            log::debug!("vcpu{vcpu}: unknown SMCCC function {function_id:#x}");
            frame.x[0] = status_code(psci::status::NOT_SUPPORTED);
        }
        PsciOutcome::CpuOn { target, entry, context_id } => {
            frame.x[0] = status_code(psci::status::SUCCESS);
            lifecycle::request_start(vm, target, entry, context_id);
        }
        PsciOutcome::CpuOff => {
            log::debug!("vcpu{vcpu}: off (PSCI CPU_OFF)");
            return Resched::Off;
        }
        PsciOutcome::Suspend => {
            frame.x[0] = status_code(psci::status::SUCCESS);
            return wait(vcpu);
        }
        PsciOutcome::SystemOff => system_off(vm),
        PsciOutcome::SystemReset => lifecycle::system_reset(vm),
    }
    Resched::No
}

/// A PSCI status as the 64-bit x0 value (negative codes sign-extended).
fn status_code(status: i32) -> u64 {
    status as i64 as u64
}

fn system_off(_vm: &Vm) -> ! {
    log::info!("guest powered off (PSCI SYSTEM_OFF)");
    super::stats::print_profile();
    CONSOLE.flush();
    firmware::system_off()
}
