//! Running vCPUs on pCPUs: first entry, the exit path (list-register sync, dispatch, refill),
//! PSCI CPU_ON/CPU_OFF for pinned vCPUs, and SYSTEM_RESET.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use aarch64_cpu::registers::{Readable, ESR_EL2, FAR_EL2, HPFAR_EL2};
use spin::Mutex;

use super::{exits, irq, stats, vm, Vm};
use crate::arch::aarch64::trap::{TrapFrame, VectorKind};
use crate::arch::aarch64::{cpu, gic as pgic, guest};
use crate::exit::dispatch::ExitInfo;
use crate::gic::MAX_LRS;
use crate::guest_map::{self, PPI_GIC_MAINTENANCE, PPI_NONSECURE_PHYS_TIMER, PPI_VIRT_TIMER};
use crate::mm::stage2::vtcr_value;
use crate::options::MAX_VCPUS;
use crate::profile::ExitKind;

/// A pending PSCI CPU_ON for a parked vCPU: entry point and context id.
static START_REQUESTS: [Mutex<Option<(u64, u64)>>; MAX_VCPUS] = [const { Mutex::new(None) }; MAX_VCPUS];
/// Bumped by SYSTEM_RESET; a vCPU that sees a newer value than it started with parks.
static RESET_EPOCH: AtomicU32 = AtomicU32::new(0);
static STARTED_EPOCH: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];
/// Where each pCPU's stack ends (vCPU entry restarts it from the top).
static STACK_TOPS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

/// Records this pCPU's stack top (boot code, once per pCPU).
pub fn set_stack_top(index: usize, top: u64) {
    STACK_TOPS[index].store(top, Ordering::Relaxed);
}

/// Starts vCPU `vcpu` on this pCPU at `entry` with x0 = `x0`. Never returns: the pCPU now
/// runs the guest and comes back only through exits.
pub fn start_vcpu(vcpu: usize, entry: u64, x0: u64) -> ! {
    let vm = vm();
    STARTED_EPOCH[vcpu].store(RESET_EPOCH.load(Ordering::Acquire), Ordering::Release);
    guest::configure_el2(vm.stage2.vttbr(), vtcr_value(physical_address_range()));
    guest::reset_el1(guest_map::vcpu_mpidr(vcpu));
    for lr in 0..pgic::list_register_count() {
        pgic::write_lr(lr, 0);
    }
    pgic::write_vmcr(0);
    pgic::set_virtual_interface(false);
    for (intid, level) in [(PPI_VIRT_TIMER, true), (PPI_NONSECURE_PHYS_TIMER, true), (PPI_GIC_MAINTENANCE, true), (pgic::SGI_KICK, false)] {
        pgic::enable_private(intid, vcpu, level);
    }
    vm.psci.lock().mark_on(vcpu);
    stats::vcpu_started(vcpu);
    log::debug!("vcpu{vcpu}: starting at {entry:#x} (x0={x0:#x})");
    let frame = guest::initial_frame(entry, x0);
    let top = STACK_TOPS[vcpu].load(Ordering::Relaxed);
    // SAFETY: `top` is this pCPU's stack top (recorded at boot) and nothing on the stack is
    // needed again: everything from here on starts from guest exits.
    unsafe { guest::enter(&frame, top) }
}

fn physical_address_range() -> u64 {
    use aarch64_cpu::registers::ID_AA64MMFR0_EL1;
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange)
}

/// A parked pCPU: waits for PSCI CPU_ON of its vCPU, then runs it.
pub fn park(vcpu: usize) -> ! {
    loop {
        if let Some((entry, context_id)) = START_REQUESTS[vcpu].lock().take() {
            start_vcpu(vcpu, entry, context_id);
        }
        aarch64_cpu::asm::wfe();
    }
}

/// PSCI CPU_ON accepted for `target`: wake its parked pCPU.
pub fn request_start(vm: &Vm, target: usize, entry: u64, context_id: u64) {
    if target >= vm.pcpu_mpidr.len() {
        log::error!("vcpu{target} has no pCPU to run on");
        return;
    }
    *START_REQUESTS[target].lock() = Some((entry, context_id));
    aarch64_cpu::asm::sev();
}

/// PSCI CPU_OFF: this vCPU stops; its pCPU parks until the next CPU_ON.
pub fn power_off_self(_vm: &Vm, vcpu: usize) -> ! {
    log::debug!("vcpu{vcpu}: off (PSCI CPU_OFF)");
    quiesce_virtual_interface();
    park(vcpu)
}

/// PSCI SYSTEM_RESET: every other vCPU parks, the VM is reset and vCPU 0 boots again.
pub fn system_reset(vm: &Vm) -> ! {
    let me = cpu::current_index();
    log::info!("guest reset (PSCI SYSTEM_RESET): rebooting the guest");
    RESET_EPOCH.fetch_add(1, Ordering::AcqRel);
    vm.kick(crate::gic::Kick::first(vm.vcpu_count));
    quiesce_virtual_interface();
    vm.reset();
    if me == 0 {
        start_vcpu(0, vm.boot.plan.entry, vm.boot.plan.dtb.start)
    }
    request_start(vm, 0, vm.boot.plan.entry, vm.boot.plan.dtb.start);
    park(me)
}

/// Whether vCPU `vcpu` must stop running because the VM was reset since it started.
pub fn must_leave(vcpu: usize) -> bool {
    STARTED_EPOCH[vcpu].load(Ordering::Acquire) != RESET_EPOCH.load(Ordering::Acquire)
}

fn quiesce_virtual_interface() {
    for lr in 0..pgic::list_register_count() {
        pgic::write_lr(lr, 0);
    }
    pgic::set_virtual_interface(false);
}

/// The exit path for exceptions from the guest (vector kinds 8..15): sync the list registers,
/// handle the exit, refill the list registers.
pub fn on_guest_exit(frame: &mut TrapFrame, kind: VectorKind) {
    let exit_start = cpu::counter();
    let vcpu = cpu::current_index();
    let count = pgic::list_register_count().min(MAX_LRS);
    let mut lrs = [0u64; MAX_LRS];
    for (n, lr) in lrs.iter_mut().enumerate().take(count) {
        *lr = pgic::read_lr(n);
    }
    let vm = vm();
    let before = lrs;
    vm.vgic.lock().sync_lrs(vcpu, &mut lrs[..count]);
    // Completed entries must leave the hardware now, not at the next entry: an EOI'd entry
    // keeps the maintenance interrupt asserted, which would wake a WFI wait over and over.
    for n in 0..count {
        if lrs[n] != before[n] {
            pgic::write_lr(n, lrs[n]);
        }
    }

    let exit_kind = if kind.is_sync() {
        let info = ExitInfo { esr: ESR_EL2.get(), far: FAR_EL2.get(), hpfar: HPFAR_EL2.get() };
        exits::handle_sync(frame, info)
    } else if kind.is_irq() {
        irq::handle_pending(vcpu);
        ExitKind::Irq
    } else {
        log::warn!("vcpu{vcpu}: {kind} at PC {:#x} (ESR_EL2 {:#x}) ignored", frame.elr, ESR_EL2.get());
        ExitKind::Other
    };
    if must_leave(vcpu) {
        quiesce_virtual_interface();
        park(vcpu);
    }

    let synced = lrs;
    let result = vm.vgic.lock().flush_lrs(vcpu, &mut lrs[..count]);
    let mut injected = 0;
    for (n, lr) in lrs.iter().enumerate().take(count) {
        pgic::write_lr(n, *lr);
        if synced[n] == 0 && *lr != 0 {
            injected += 1;
        }
    }
    pgic::set_virtual_interface(result.overflow);
    vm.kick(result.kick);
    stats::record_exit(vcpu, exit_kind, exit_start, injected);
}
