//! Starting, stopping and resetting vCPUs from outside the run loop: PSCI CPU_ON and
//! SYSTEM_RESET, a hybrid VM's partition resets and HRT boots. These change a vCPU's record
//! (`vm::cpus`) and kick the pCPUs concerned; each pCPU's run loop (`vm::run`) picks the change
//! up at its next exit.

use core::sync::atomic::Ordering;

use spin::Mutex;

use super::cpus::{pcpu, this_pcpu, vcpu_record, Start};
use super::Vm;
use crate::arch::aarch64::trap::TrapFrame;
use crate::arch::aarch64::{cpu, gic as pgic, guest};
use crate::hvm::boot::El1Boot;
use crate::options::MAX_VCPUS;
use crate::sched::RunState;

/// Prepares vCPU `vcpu` to start at `entry` with x0 = `x0` and wakes its home pCPU.
pub fn request_start(vm: &Vm, vcpu: usize, entry: u64, x0: u64) {
    request_start_with(vm, vcpu, guest::initial_frame(entry, x0), None);
}

/// Prepares vCPU `vcpu` to start with `frame` and, unless given, reset EL1 registers; wakes
/// its home pCPU. If a pCPU still holds the vCPU (it is on its way out of CPU_OFF, or being
/// dropped by a reset), the start waits until that pCPU lets go of it.
pub fn request_start_with(vm: &Vm, vcpu: usize, frame: TrapFrame, boot_el1: Option<El1Boot>) {
    {
        let mut slot = vcpu_record(vcpu).slot.lock();
        if let Some(start) = slot.owner.request_start(Start { frame, boot_el1 }) {
            slot.apply_start(start);
        }
    }
    let home = vm.placement.home(vcpu);
    if home == cpu::current_index() {
        return;
    }
    if let Some(&mpidr) = vm.pcpu_mpidr.get(home) {
        pgic::kick(mpidr);
    }
}

/// Whether any vCPU in `targets` other than `vcpu` lives on `vcpu`'s pCPU.
pub fn shares_pcpu_with(vm: &Vm, vcpu: usize, targets: crate::gic::Kick) -> bool {
    let home = vm.placement.home(vcpu);
    targets.iter().any(|t| t != vcpu && vm.placement.home(t) == home)
}

/// PSCI SYSTEM_RESET: the guest (a hybrid VM's ROS) reboots.
pub fn system_reset(vm: &Vm) {
    log::info!("guest reset (PSCI SYSTEM_RESET): rebooting the guest");
    reset_ros(vm);
}

/// Reboots the guest (a hybrid VM's ROS partition): its vCPUs stop, its state is reset and its
/// vCPU 0 boots again. A hybrid VM's HRT runs on.
pub fn reset_ros(vm: &Vm) {
    reset_partition(vm, 0..vm.ros_vcpus, || {
        vm.reset_ros();
        request_start(vm, 0, vm.boot.plan.entry, vm.boot.plan.dtb.start);
    });
}

/// Resets are one at a time: two vCPUs resetting each other's partitions at once would each
/// wait for the other's pCPU to let go of its vCPU.
static RESET_LOCK: Mutex<()> = Mutex::new(());
/// How long a reset waits for the other pCPUs to let go of the vCPUs it stopped (they do at
/// their next exit, which the reset's kick forces; a host that does not schedule QEMU's vCPU
/// threads for a while makes this more than microseconds).
const RELEASE_WAIT_MS: u64 = 2000;

/// Resets a partition: stops `vcpus`, waits until no other pCPU runs any of them, then calls
/// `reset` (reload images, reset device state, start vCPUs again). Only then: a pCPU still
/// running the old guest would write into the freshly loaded images and device state.
/// Does nothing if this pCPU's own vCPU was reset meanwhile (another reset made the request
/// moot, and waits for this pCPU to drop that vCPU).
pub fn reset_partition(vm: &Vm, vcpus: core::ops::Range<usize>, reset: impl FnOnce()) {
    let here = this_pcpu();
    let _one_at_a_time = loop {
        if here.loaded_vcpu_is_stale() {
            log::debug!("pcpu{}: reset request dropped: its vCPU was reset meanwhile", cpu::current_index());
            return;
        }
        if let Some(guard) = RESET_LOCK.try_lock() {
            break guard;
        }
        core::hint::spin_loop();
    };
    if here.loaded_vcpu_is_stale() {
        return;
    }
    stop_vcpus(vm, vcpus.clone());
    kick_all_pcpus(vm);
    if !wait_until_released(vcpus) {
        log::error!("reset: another pCPU still runs a stopped vCPU after {RELEASE_WAIT_MS} ms");
    }
    reset();
}

/// Stops `vcpus` for a reset: off, and dropped (not saved) by whichever pCPU has one loaded,
/// at its next exit.
fn stop_vcpus(vm: &Vm, vcpus: core::ops::Range<usize>) {
    for vcpu in vcpus.take_while(|&v| v < vm.vcpu_count) {
        let record = vcpu_record(vcpu);
        let mut slot = record.slot.lock();
        slot.state = RunState::Off;
        // Under the slot lock, as `run::load` reads it.
        record.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// Waits (bounded) until no pCPU but this one holds any of `vcpus`.
fn wait_until_released(vcpus: core::ops::Range<usize>) -> bool {
    let mine = this_pcpu().current_vcpu();
    let deadline = cpu::counter() + cpu::counter_frequency() * RELEASE_WAIT_MS / 1000;
    loop {
        let held = vcpus
            .clone()
            .filter(|&v| v < MAX_VCPUS && Some(v) != mine)
            .any(|v| vcpu_record(v).slot.lock().owner.is_loaded());
        if !held {
            return true;
        }
        if cpu::counter() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
}

/// Kicks every other pCPU, so those running a stopped vCPU drop it now.
pub fn kick_all_pcpus(vm: &Vm) {
    for &mpidr in &vm.pcpu_mpidr {
        if mpidr != cpu::current_mpidr() {
            pgic::kick(mpidr);
        }
    }
}

/// How long a merge waits for the other pCPUs to trap their ROS vCPU's TLB maintenance.
const TLB_TRAP_WAIT_MS: u64 = 50;

/// Waits (bounded) until every other pCPU that runs a ROS vCPU traps its TLB maintenance:
/// a merge must not let the HRT use the process's tables while a ROS TLBI can still escape
/// the replay. A pCPU picks the trap up at its next guest entry (the caller kicked them all);
/// this pCPU does before its own. Returns whether all did in time.
pub fn wait_for_tlb_traps(vm: &Vm) -> bool {
    let me = cpu::current_index();
    cpu::wait_until(TLB_TRAP_WAIT_MS, || {
        (0..vm.pcpu_mpidr.len()).filter(|&p| p != me).all(|p| {
            let other = pcpu(p);
            if !other.in_guest.load(Ordering::SeqCst) || other.tlb_trapped.load(Ordering::SeqCst) {
                return true;
            }
            other.current_vcpu().is_none_or(|vcpu| vm.is_hrt_vcpu(vcpu))
        })
    })
}
