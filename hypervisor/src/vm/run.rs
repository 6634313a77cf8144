//! Running vCPUs on pCPUs: the exit path (list-register sync, dispatch, refill) and scheduling
//! (pinned, or time-sliced on the CNTHP tick; policy in `crate::sched`). The exit handlers
//! (`vm::exits`, `vm::irq`) say what the scheduler must do (`Resched`); this loop does it. Its
//! state is one struct per CPU (`vm::cpus`); starts and resets requested from elsewhere arrive
//! through them (`vm::lifecycle`).

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use aarch64_cpu::registers::{Readable, ESR_EL2, FAR_EL2, HPFAR_EL2};

use super::cpus::{pcpu as pcpu_state, this_pcpu, vcpu_record, Pcpu};
use super::{exits, irq, lr_path, stats, vm, IoPass, Vm};
use crate::arch::aarch64::context::VcpuContext;
use crate::arch::aarch64::trap::{TrapFrame, VectorKind};
use crate::arch::aarch64::{cpu, gic as pgic, guest, hyp_timer};
use crate::exit::dispatch::{route, Action, ExitInfo};
use crate::gic::loaded::{ExitReason, LoadedLrs};
use crate::gic::MAX_LRS;
use crate::guest_map::{self, PPI_GIC_MAINTENANCE, PPI_HYP_PHYS_TIMER, PPI_NONSECURE_PHYS_TIMER, PPI_VIRT_TIMER};
use crate::hvm::boot::El1Boot;
use crate::mm::stage2::vtcr_value;
use crate::options::MAX_VCPUS;
use crate::profile::{ExitKind, VgicStats};
use crate::sched::{Resched, RunQueue, RunState};

/// Length of a time slice when vCPUs share a pCPU. Short, because a vCPU preempted while
/// holding a guest spinlock makes the others spin for the rest of their slices (lock-holder
/// preemption; QEMU's TCG does not trap WFE, so spinners cannot be caught). Measured with a
/// 20 s fork/pipe stress on 4 vCPUs over 2 pCPUs: 10 ms slices gave 16 ping-pongs / 12 forks,
/// 2 ms 32 / 26, 1 ms 94 / 63 (pinned 4-on-4: 296 / 155), for about 14% hypervisor time.
pub const TIME_SLICE_MS: u64 = 1;

/// How soon a pinned pCPU comes back to serve disk requests a notification left unserved.
const UNSERVED_IO_RETRY_US: u64 = 500;

/// The list registers each pCPU last entered its guest with, for debuggers (`hyp-lrs` in
/// scripts/gdb/hyp.py): QEMU's gdb stub does not expose the ICH_* registers.
#[no_mangle]
pub static HYP_DEBUG_LRS: [[AtomicU64; MAX_LRS]; MAX_VCPUS] =
    [const { [const { AtomicU64::new(0) }; MAX_LRS] }; MAX_VCPUS];

/// Sets HCR_EL2.TTLB on this pCPU as vCPU `vcpu` needs it, if it is not already so.
fn update_tlb_trap(vm: &Vm, here: &Pcpu, vcpu: usize) {
    // A load on every exit, a write only on a change (outside a merge: never).
    let wanted = super::hvm::tlb_trap_wanted(vm, vcpu);
    if here.tlb_trapped.load(Ordering::SeqCst) != wanted {
        here.tlb_trapped.store(wanted, Ordering::SeqCst);
        guest::set_tlb_trap(wanted);
    }
}

/// Records this pCPU's stack top (boot code, once per pCPU).
pub fn set_stack_top(index: usize, top: u64) {
    pcpu_state(index).stack_top.store(top, Ordering::Relaxed);
}

/// A pCPU's life once the VM exists: set up EL2 for guests, then run whatever its run queue
/// offers. Never returns.
pub fn run_pcpu(pcpu: usize) -> ! {
    let here = pcpu_state(pcpu);
    let vm = vm();
    let queue = RunQueue::new(pcpu, &vm.placement);
    let shared = queue.is_shared();
    *here.queue.lock() = Some(queue);
    guest::configure_el2(vm.stage2.vttbr(), vtcr_value(physical_address_range()), shared);
    here.loaded_vttbr.store(vm.stage2.vttbr(), Ordering::Relaxed);
    for (intid, level) in [
        (PPI_VIRT_TIMER, true),
        (PPI_NONSECURE_PHYS_TIMER, true),
        (PPI_GIC_MAINTENANCE, true),
        (PPI_HYP_PHYS_TIMER, true),
        (pgic::SGI_KICK, false),
    ] {
        pgic::enable_private(intid, pcpu, level);
    }
    *here.loaded_lrs.lock() = LoadedLrs::new(pgic::list_register_count());
    quiesce_virtual_interface();
    let mut frame = TrapFrame::zeroed();
    idle_until_runnable(pcpu, &mut frame);
    // The first entry rebuilds the stack from its top, where this very code's frames live:
    // stage the guest's registers outside the stack first.
    let entry = &ENTRY_FRAMES[pcpu];
    // SAFETY: only this pCPU touches its entry slot, once, here.
    unsafe { *entry.0.get() = frame };
    let top = here.stack_top.load(Ordering::Relaxed);
    // SAFETY: `top` is this pCPU's stack top (recorded at boot), the frame is in static memory
    // (not on that stack), and nothing on the stack is needed again: everything from here on
    // starts from guest exits.
    unsafe {
        here.in_guest.store(true, Ordering::SeqCst);
        guest::enter_guest(&*entry.0.get(), top)
    }
}

/// A pCPU's first guest frame, staged outside its stack (see `run_pcpu`).
struct EntryFrame(core::cell::UnsafeCell<TrapFrame>);

// SAFETY: each pCPU only ever accesses its own element.
unsafe impl Sync for EntryFrame {}

static ENTRY_FRAMES: [EntryFrame; MAX_VCPUS] =
    [const { EntryFrame(core::cell::UnsafeCell::new(TrapFrame::zeroed())) }; MAX_VCPUS];

fn physical_address_range() -> u64 {
    use aarch64_cpu::registers::ID_AA64MMFR0_EL1;
    ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange)
}

/// Run states of all vCPUs (a snapshot for the scheduler).
fn states() -> [RunState; MAX_VCPUS] {
    core::array::from_fn(|v| vcpu_record(v).slot.lock().state)
}

/// The scheduler: the next vCPU for this pCPU, or `None`.
#[inline(never)]
fn pick_next_vcpu(pcpu: usize) -> Option<usize> {
    let here = pcpu_state(pcpu);
    let states = states();
    let vm = vm();
    let queue = here.queue.lock();
    queue.as_ref()?.pick_next(&states, cpu::counter(), |v| vm.vgic.has_deliverable(v))
}

/// Loads vCPU `vcpu` (saved in its slot) onto this pCPU, its registers into `frame`; false
/// (nothing loaded) if it was stopped since the scheduler chose it.
fn load(pcpu: usize, vcpu: usize, frame: &mut TrapFrame) -> bool {
    let here = pcpu_state(pcpu);
    let record = vcpu_record(vcpu);
    let mut slot = record.slot.lock();
    let state = slot.state;
    if !slot.owner.try_load(state) {
        return false;
    }
    // Under the slot lock, as the epoch bump of `lifecycle::stop_vcpus`: a stop either came
    // first (not loaded) or finds this epoch stale (dropped at the next exit).
    here.loaded_epoch.store(record.epoch.load(Ordering::Acquire), Ordering::Release);
    if state != RunState::Runnable {
        // Waiting with an interrupt to take.
        slot.state = RunState::Runnable;
    }
    here.loaded_lrs.lock().invalidate();
    if here.interface_off.swap(false, Ordering::Relaxed) {
        pgic::set_virtual_interface(false);
    }
    let vttbr = vm().vttbr(vcpu);
    if here.loaded_vttbr.swap(vttbr, Ordering::Relaxed) != vttbr {
        // Partitions have their own VMIDs: switching tables needs no TLB maintenance.
        guest::set_vttbr(vttbr);
    }
    *frame = slot.frame;
    if slot.fresh {
        slot.fresh = false;
        let boot_el1 = slot.boot_el1.take();
        drop(slot);
        boot_vcpu(vcpu, frame, boot_el1);
    } else {
        slot.context.restore();
        drop(slot);
        stats::vcpu_switched_in(vcpu);
    }
    let mut queue = here.queue.lock();
    if let Some(queue) = queue.as_mut() {
        queue.current = Some(vcpu);
        if queue.is_shared() {
            rearm_slice();
        } else {
            hyp_timer::disarm();
        }
    }
    true
}

/// First entry of a vCPU (boot or PSCI CPU_ON): EL1 in its reset state (but for `boot_el1`),
/// an empty virtual CPU interface; `frame` holds the entry point and x0.
#[inline(never)]
fn boot_vcpu(vcpu: usize, frame: &TrapFrame, boot_el1: Option<El1Boot>) {
    // Everything the vCPU can see starts from reset, list registers included.
    guest::reset_el1(guest_map::vcpu_mpidr(vcpu), boot_el1.as_ref());
    vm().psci.lock().mark_on(vcpu);
    stats::vcpu_started(vcpu);
    log::debug!("vcpu{vcpu}: starting at {:#x} (x0={:#x})", frame.elr, frame.x[0]);
}

/// Saves the loaded vCPU `vcpu` (registers in `frame`) into its slot with run state `state`.
fn save(vcpu: usize, frame: &TrapFrame, state: RunState) {
    let context = VcpuContext::save();
    release_hardware_interrupts();
    let mut slot = vcpu_record(vcpu).slot.lock();
    slot.frame = *frame;
    slot.context = context;
    slot.state = state;
    slot.release();
}

/// Drops the loaded vCPU `vcpu` without saving it (it was reset), then idles.
fn drop_and_idle(pcpu: usize, vcpu: usize, frame: &mut TrapFrame) {
    quiesce_virtual_interface();
    vcpu_record(vcpu).slot.lock().release();
    idle_until_runnable(pcpu, frame);
}

/// No vCPU is loaded on this pCPU: sleep until one is runnable, then load it into `frame`.
fn idle_until_runnable(pcpu: usize, frame: &mut TrapFrame) {
    let here = pcpu_state(pcpu);
    if let Some(queue) = here.queue.lock().as_mut() {
        queue.current = None;
    }
    loop {
        if pick_next_vcpu(pcpu).is_some_and(|next| load(pcpu, next, frame)) {
            vm().stop_polling_disk();
            return;
        }
        match vm().serve_unserved_io(true) {
            IoPass::NothingWaits => {}
            pass => {
                // Disk work: no sleeping, but take the interrupts that came meanwhile, and look
                // again for a runnable vCPU (the pass may have completed what one waits for).
                if pass == IoPass::Deferred {
                    IoPass::nap_while_another_pcpu_serves();
                }
                irq::handle_irq(None);
                continue;
            }
        }
        let deadline = here.queue.lock().as_ref().and_then(|q| q.earliest_deadline(&states()));
        match deadline {
            Some(deadline) => hyp_timer::arm_at(deadline),
            None => hyp_timer::disarm(),
        }
        aarch64_cpu::asm::wfi();
        irq::handle_irq(None);
    }
}

/// Empties the list registers of a vCPU that stops running here for good (reset).
fn quiesce_virtual_interface() {
    let mut loaded = this_pcpu().loaded_lrs.lock();
    loaded.invalidate();
    loaded.set_overflow(false);
    drop(loaded);
    // The guest's timers must stop before their PPIs are released (see below).
    let _ = crate::arch::aarch64::context::TimerRegisters::save_and_stop();
    for n in 0..pgic::list_register_count().min(MAX_LRS) {
        pgic::write_lr(n, 0);
    }
    release_hardware_interrupts();
    pgic::set_virtual_interface(false);
}

/// A hardware-linked interrupt (the guest's timer) stays active physically until the guest
/// deactivates it through its list register. The timer PPIs belong to the pCPU, shared by every
/// vCPU that runs here: when a vCPU leaves (switched out, powered off, reset), deactivate them,
/// or no later vCPU's timer could ever fire. That holds whether the interrupt already sits in a
/// list register or is still pending in the virtual GIC (it fired during this very exit). The
/// leaving vCPU's timer is stopped first, so its line is low; when the vCPU returns and its
/// timer is restored, an expired timer simply fires again.
fn release_hardware_interrupts() {
    for intid in [PPI_VIRT_TIMER, PPI_NONSECURE_PHYS_TIMER] {
        pgic::deactivate(intid);
    }
}

/// The exit path for exceptions from the guest (vector kinds 8..15): sync the list registers
/// if needed, handle the exit, reschedule if needed, refill the list registers if needed (see
/// `gic::loaded` for when each is needed: a null HVC touches neither the vGIC nor the GIC).
#[inline(never)]
pub fn on_guest_exit(frame: &mut TrapFrame, kind: VectorKind) {
    let exit_start = cpu::counter();
    let pcpu = cpu::current_index();
    let here = pcpu_state(pcpu);
    here.in_guest.store(false, Ordering::SeqCst);
    let Some(vcpu) = here.current_vcpu() else {
        log::error!("pcpu{pcpu}: guest exit with no vCPU loaded");
        return;
    };
    let vm = vm();
    let info = kind.is_sync().then(|| ExitInfo { esr: ESR_EL2.get(), far: FAR_EL2.get(), hpfar: HPFAR_EL2.get() });
    let action = info.as_ref().map(route);
    let reason = exit_reason(kind, action.as_ref(), frame.x[0], vm.vcpu_count);

    // Exits that look at the vCPU's interrupt state sync (and resample its timer lines) first;
    // the others sync at the end, under the same lock of the vCPU's vGIC state as the flush.
    let mut work = VgicStats::default();
    let mut needs_sync = here.loaded_lrs.lock().needs_sync(reason, pgic::empty_list_registers);
    // Whether the loaded list registers were synced in this exit (then `LoadedLrs` is exact).
    let mut synced = false;
    if reason.needs_exact_state() && (needs_sync || vcpu_record(vcpu).timers_injected()) {
        synced = lr_path::sync_and_resample(vm, &mut here.loaded_lrs.lock(), vcpu, needs_sync, &mut work);
        needs_sync &= !synced;
    }

    let (exit_kind, resched) = match (info, action) {
        // A vCPU reset while it ran does nothing more: it is dropped below.
        _ if here.is_stale(vcpu) => (ExitKind::Other, Resched::No),
        (Some(info), Some(action)) => exits::handle_sync(frame, info, action, vcpu),
        _ if kind.is_irq() => {
            // A debugger's SError request waits for an IRQ exit (every running vCPU takes them:
            // its timer, the slice tick), not a check on every exit.
            take_debugger_serror_request(vcpu);
            (ExitKind::Irq, irq::handle_irq(Some(vcpu)))
        }
        _ if kind.is_serror() => exits::reflect_serror(frame, vcpu, ESR_EL2.get()),
        _ => {
            log::warn!("vcpu{vcpu}: {kind} at PC {:#x} (ESR_EL2 {:#x}) ignored", frame.elr, ESR_EL2.get());
            (ExitKind::Other, Resched::No)
        }
    };

    // Disk requests a notification left unserved: one more bounded pass, charged to the vCPU
    // that exited (before a switch, so the next vCPU's slice starts after it).
    if vm.serve_unserved_io(false).more_waits() && !here.is_shared() {
        // Come back for the rest even if the guest polls without exiting (a shared pCPU's
        // slice tick does that already).
        hyp_timer::arm_at(cpu::counter() + cpu::counter_frequency() * UNSERVED_IO_RETRY_US / 1_000_000);
    }

    let mut current = vcpu;
    if here.is_stale(vcpu) {
        // The vCPU was reset: the loaded state is gone; its registers must not be saved.
        drop_and_idle(pcpu, vcpu, frame);
        current = here.current_vcpu().unwrap_or(vcpu);
    } else if resched != Resched::No {
        let state = match resched {
            Resched::Wait { wake_at } => RunState::Waiting { wake_at },
            Resched::Off => RunState::Off,
            _ => RunState::Runnable,
        };
        // Mark the state first so the scheduler sees it, then switch only if someone else runs.
        vcpu_record(vcpu).slot.lock().state = state;
        match pick_next_vcpu(pcpu) {
            Some(next) if next == vcpu => {
                vcpu_record(vcpu).slot.lock().state = RunState::Runnable;
                if here.is_shared() {
                    rearm_slice();
                }
            }
            next => {
                if needs_sync {
                    // The vGIC must know what the guest did before the vCPU is put away.
                    lr_path::sync_and_resample(vm, &mut here.loaded_lrs.lock(), vcpu, true, &mut work);
                    needs_sync = false;
                }
                save(vcpu, frame, state);
                pgic::set_virtual_interface(false);
                here.loaded_lrs.lock().set_overflow(false);
                if !next.is_some_and(|next| load(pcpu, next, frame)) {
                    idle_until_runnable(pcpu, frame);
                }
                current = here.current_vcpu().unwrap_or(vcpu);
            }
        }
    }

    let kicked = vm.take_attention(current);
    let mut loaded = here.loaded_lrs.lock();
    let mut injected = 0;
    let late_sync = needs_sync && current == vcpu;
    if late_sync || loaded.needs_flush(synced, kicked) {
        let refill = lr_path::refill(vm, &mut loaded, current, late_sync, synced && current == vcpu, &mut work);
        injected = refill.injected;
        for (n, lr) in refill.lrs.iter().enumerate().take(loaded.count()) {
            HYP_DEBUG_LRS[pcpu][n].store(*lr, Ordering::Relaxed);
        }
    }
    drop(loaded);
    if here.interface_off.swap(false, Ordering::Relaxed) {
        pgic::set_virtual_interface(here.loaded_lrs.lock().overflow());
    }
    update_tlb_trap(vm, here, current);
    here.in_guest.store(true, Ordering::SeqCst);
    super::hvm::deliver_signal(vm, current, frame);
    stats::add_vgic(work);
    stats::record_exit(vcpu, exit_kind, exit_start, injected);
}

/// vCPUs a debugger asked to get a virtual SError (bit n: vCPU n; `hyp-serror` in
/// scripts/gdb/hyp.py). QEMU has no source of physical SErrors, so this is how a guest's SError
/// handling, and the hypervisor's keeping of a pending one with its vCPU, are exercised.
pub static HYP_DEBUG_SERROR_REQUESTS: AtomicU32 = AtomicU32::new(0);

/// Injects the virtual SError a debugger asked for `vcpu`, loaded here (if it is switched out
/// in this exit, the pending SError is saved with it).
fn take_debugger_serror_request(vcpu: usize) {
    let bit = 1u32 << vcpu;
    if HYP_DEBUG_SERROR_REQUESTS.load(Ordering::Relaxed) & bit != 0 {
        HYP_DEBUG_SERROR_REQUESTS.fetch_and(!bit, Ordering::Relaxed);
        log::info!("vcpu{vcpu}: virtual SError injected (a debugger asked for it)");
        crate::arch::aarch64::serror::inject(0);
    }
}

/// What the exit means for the vCPU's interrupt state (see `gic::loaded`).
/// `x0` is the guest's x0 at the exit (the function id of an HVC or SMC).
fn exit_reason(kind: VectorKind, action: Option<&Action>, x0: u64, vcpus: usize) -> ExitReason {
    match action {
        None if kind.is_irq() => ExitReason::Irq,
        Some(Action::WaitForInterrupt) => ExitReason::Wait,
        // CPU_SUSPEND waits like WFI; other calls leave interrupts alone.
        Some(Action::Hvc | Action::Smc) if crate::psci::is_cpu_suspend(x0) => ExitReason::Wait,
        Some(Action::Mmio { ipa, .. }) if guest_map::is_gic_frame(*ipa, vcpus) => ExitReason::GicAccess,
        Some(Action::PhysicalTimer { is_read: false, .. }) => ExitReason::TimerWrite,
        _ => ExitReason::Other,
    }
}

/// Arms the slice tick a whole slice from now (a shared pCPU's vCPU starts or keeps running).
fn rearm_slice() {
    hyp_timer::arm_at(cpu::counter() + cpu::counter_frequency() * TIME_SLICE_MS / 1000);
}
