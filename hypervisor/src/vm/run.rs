//! Running vCPUs on pCPUs: the exit path (list-register sync, dispatch, refill), scheduling
//! (pinned, or time-sliced on the CNTHP tick; policy in `crate::sched`), PSCI CPU_ON/CPU_OFF
//! and SYSTEM_RESET.
//!
//! A vCPU is either *loaded* on its home pCPU (its registers are the pCPU's; its general
//! registers are the trap frame on that pCPU's stack) or *saved* in its [`VcpuSlot`].

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

use aarch64_cpu::registers::{Readable, ESR_EL2, FAR_EL2, HPFAR_EL2};
use spin::Mutex;

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
use crate::sched::{Ownership, RunQueue, RunState};

/// Length of a time slice when vCPUs share a pCPU. Short, because a vCPU preempted while
/// holding a guest spinlock makes the others spin for the rest of their slices (lock-holder
/// preemption; QEMU's TCG does not trap WFE, so spinners cannot be caught). Measured with a
/// 20 s fork/pipe stress on 4 vCPUs over 2 pCPUs: 10 ms slices gave 16 ping-pongs / 12 forks,
/// 2 ms 32 / 26, 1 ms 94 / 63 (pinned 4-on-4: 296 / 155), for about 14% hypervisor time.
pub const TIME_SLICE_MS: u64 = 1;

/// How soon a pinned pCPU comes back to serve disk requests a notification left unserved.
const UNSERVED_IO_RETRY_US: u64 = 500;
/// How long an idle pCPU naps while another pCPU serves the disk.
const IO_PASS_NAP_US: u64 = 100;

/// A vCPU's saved state and scheduling state.
struct VcpuSlot {
    state: RunState,
    frame: TrapFrame,
    context: VcpuContext,
    /// The saved state is a fresh start (load reset EL1 state rather than `context`).
    fresh: bool,
    /// For a fresh start: EL1 registers that differ from reset (an HRT core starts with its
    /// MMU on).
    boot_el1: Option<El1Boot>,
    /// Whether a pCPU holds the registers, and a start waiting for it to let go.
    owner: Ownership<Start>,
}

/// What a start (boot, PSCI CPU_ON, a partition reset) gives a vCPU.
struct Start {
    frame: TrapFrame,
    boot_el1: Option<El1Boot>,
}

impl VcpuSlot {
    /// The vCPU starts afresh from `start` at its next load.
    fn apply_start(&mut self, start: Start) {
        self.frame = start.frame;
        self.fresh = true;
        self.boot_el1 = start.boot_el1;
        self.state = RunState::Runnable;
    }

    /// The pCPU that held the vCPU lets go (saved or dropped); a start that waited for this
    /// wins over what was saved.
    fn release(&mut self) {
        if let Some(start) = self.owner.release() {
            self.apply_start(start);
        }
    }
}

static SLOTS: [Mutex<VcpuSlot>; MAX_VCPUS] = [const {
    Mutex::new(VcpuSlot {
        state: RunState::Off,
        frame: TrapFrame::zeroed(),
        context: VcpuContext::zeroed(),
        fresh: false,
        boot_el1: None,
        owner: Ownership::new(),
    })
}; MAX_VCPUS];

/// Each pCPU's run queue (its vCPUs and which one is loaded).
static QUEUES: [Mutex<Option<RunQueue>>; MAX_VCPUS] = [const { Mutex::new(None) }; MAX_VCPUS];
/// Bumped when a vCPU is reset (its partition reboots): a pCPU whose loaded vCPU started
/// before the bump drops it without saving it.
static VCPU_EPOCH: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];
/// The epoch of the vCPU each pCPU loaded, as of loading it.
static LOADED_EPOCH: [AtomicU32; MAX_VCPUS] = [const { AtomicU32::new(0) }; MAX_VCPUS];
/// The VTTBR_EL2 value each pCPU runs its guest with (partitions have their own tables).
static LOADED_VTTBR: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];
/// Whether each pCPU traps its guest's TLB maintenance now (HCR_EL2.TTLB; see
/// `vm::hvm::tlb_trap_wanted`).
static TLB_TRAPPED: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];
/// Whether each pCPU runs guest code now (false from a guest exit until its return): a pCPU in
/// the hypervisor updates its TLB trap before it enters the guest again.
static IN_GUEST: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];

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
            if !IN_GUEST[p].load(Ordering::SeqCst) || TLB_TRAPPED[p].load(Ordering::SeqCst) {
                return true;
            }
            let running = QUEUES[p].lock().as_ref().and_then(|q| q.current);
            running.is_none_or(|vcpu| vm.is_hrt_vcpu(vcpu))
        })
    })
}

/// Sets HCR_EL2.TTLB on this pCPU as vCPU `vcpu` needs it, if it is not already so.
fn update_tlb_trap(vm: &Vm, pcpu: usize, vcpu: usize) {
    // A load on every exit, a write only on a change (outside a merge: never).
    let wanted = super::hvm::tlb_trap_wanted(vm, vcpu);
    if TLB_TRAPPED[pcpu].load(Ordering::SeqCst) != wanted {
        TLB_TRAPPED[pcpu].store(wanted, Ordering::SeqCst);
        guest::set_tlb_trap(wanted);
    }
}
/// Set on a pCPU whose virtual CPU interface the IRQ path switched off (see
/// `irq::handle_irq`); the exit path switches it on again before entering the guest.
static INTERFACE_OFF: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];

/// Records that this pCPU's virtual CPU interface is off until the next guest entry.
pub fn note_virtual_interface_off() {
    INTERFACE_OFF[cpu::current_index()].store(true, Ordering::Relaxed);
}

/// What each pCPU knows about its loaded vCPU's list registers (only that pCPU uses its own).
static LOADED_LRS: [Mutex<LoadedLrs>; MAX_VCPUS] = [const { Mutex::new(LoadedLrs::new(0)) }; MAX_VCPUS];
/// Where each pCPU's stack ends (the first entry into a guest starts it from the top).
static STACK_TOPS: [AtomicU64; MAX_VCPUS] = [const { AtomicU64::new(0) }; MAX_VCPUS];

/// The list registers each pCPU last entered its guest with, for debuggers (`hyp-lrs` in
/// scripts/gdb/hyp.py): QEMU's gdb stub does not expose the ICH_* registers.
#[no_mangle]
pub static HYP_DEBUG_LRS: [[AtomicU64; MAX_LRS]; MAX_VCPUS] =
    [const { [const { AtomicU64::new(0) }; MAX_LRS] }; MAX_VCPUS];

/// The vCPU loaded on this pCPU, if any.
pub fn current_vcpu() -> Option<usize> {
    QUEUES[cpu::current_index()].lock().as_ref().and_then(|queue| queue.current)
}

/// Records this pCPU's stack top (boot code, once per pCPU).
pub fn set_stack_top(index: usize, top: u64) {
    STACK_TOPS[index].store(top, Ordering::Relaxed);
}

/// Prepares vCPU `vcpu` to start at `entry` with x0 = `x0` and wakes its home pCPU.
pub fn request_start(vm: &Vm, vcpu: usize, entry: u64, x0: u64) {
    request_start_with(vm, vcpu, guest::initial_frame(entry, x0), None);
}

/// Prepares vCPU `vcpu` to start with `frame` and, unless given, reset EL1 registers; wakes
/// its home pCPU. If a pCPU still holds the vCPU (it is on its way out of CPU_OFF, or being
/// dropped by a reset), the start waits until that pCPU lets go of it.
pub fn request_start_with(vm: &Vm, vcpu: usize, frame: TrapFrame, boot_el1: Option<El1Boot>) {
    {
        let mut slot = SLOTS[vcpu].lock();
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

/// A pCPU's life once the VM exists: set up EL2 for guests, then run whatever its run queue
/// offers. Never returns.
pub fn run_pcpu(pcpu: usize) -> ! {
    let vm = vm();
    let queue = RunQueue::new(pcpu, &vm.placement);
    let shared = queue.is_shared();
    *QUEUES[pcpu].lock() = Some(queue);
    guest::configure_el2(vm.stage2.vttbr(), vtcr_value(physical_address_range()), shared);
    LOADED_VTTBR[pcpu].store(vm.stage2.vttbr(), Ordering::Relaxed);
    for (intid, level) in [
        (PPI_VIRT_TIMER, true),
        (PPI_NONSECURE_PHYS_TIMER, true),
        (PPI_GIC_MAINTENANCE, true),
        (PPI_HYP_PHYS_TIMER, true),
        (pgic::SGI_KICK, false),
    ] {
        pgic::enable_private(intid, pcpu, level);
    }
    *LOADED_LRS[pcpu].lock() = LoadedLrs::new(pgic::list_register_count());
    quiesce_virtual_interface();
    let mut frame = TrapFrame::zeroed();
    idle_until_runnable(pcpu, &mut frame);
    // The first entry rebuilds the stack from its top, where this very code's frames live:
    // stage the guest's registers outside the stack first.
    let entry = &ENTRY_FRAMES[pcpu];
    // SAFETY: only this pCPU touches its entry slot, once, here.
    unsafe { *entry.0.get() = frame };
    let top = STACK_TOPS[pcpu].load(Ordering::Relaxed);
    // SAFETY: `top` is this pCPU's stack top (recorded at boot), the frame is in static memory
    // (not on that stack), and nothing on the stack is needed again: everything from here on
    // starts from guest exits.
    unsafe {
        IN_GUEST[pcpu].store(true, Ordering::SeqCst);
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
    core::array::from_fn(|v| SLOTS[v].lock().state)
}

/// The scheduler: the next vCPU for this pCPU, or `None`.
#[inline(never)]
fn pick_next_vcpu(pcpu: usize) -> Option<usize> {
    let states = states();
    let vm = vm();
    let queue = QUEUES[pcpu].lock();
    queue.as_ref()?.pick_next(&states, cpu::counter(), |v| vm.vgic.has_deliverable(v))
}

/// Loads vCPU `vcpu` (saved in its slot) onto this pCPU, its registers into `frame`; false
/// (nothing loaded) if it was stopped since the scheduler chose it.
fn load(pcpu: usize, vcpu: usize, frame: &mut TrapFrame) -> bool {
    let mut slot = SLOTS[vcpu].lock();
    let state = slot.state;
    if !slot.owner.try_load(state) {
        return false;
    }
    // Under the slot lock, as the epoch bump of `stop_vcpus`: a stop either came first (not
    // loaded) or finds this epoch stale (dropped at the next exit).
    LOADED_EPOCH[pcpu].store(VCPU_EPOCH[vcpu].load(Ordering::Acquire), Ordering::Release);
    if state != RunState::Runnable {
        // Waiting with an interrupt to take.
        slot.state = RunState::Runnable;
    }
    LOADED_LRS[pcpu].lock().invalidate();
    if INTERFACE_OFF[pcpu].swap(false, Ordering::Relaxed) {
        pgic::set_virtual_interface(false);
    }
    let vttbr = vm().vttbr(vcpu);
    if LOADED_VTTBR[pcpu].swap(vttbr, Ordering::Relaxed) != vttbr {
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
    let mut queue = QUEUES[pcpu].lock();
    if let Some(queue) = queue.as_mut() {
        queue.current = Some(vcpu);
        if queue.is_shared() {
            hyp_timer::arm_at(cpu::counter() + cpu::counter_frequency() * TIME_SLICE_MS / 1000);
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
    let mut slot = SLOTS[vcpu].lock();
    slot.frame = *frame;
    slot.context = context;
    slot.state = state;
    slot.release();
}

/// Drops the loaded vCPU `vcpu` without saving it (it was reset), then idles.
fn drop_and_idle(pcpu: usize, vcpu: usize, frame: &mut TrapFrame) {
    quiesce_virtual_interface();
    SLOTS[vcpu].lock().release();
    idle_until_runnable(pcpu, frame);
}

/// No vCPU is loaded on this pCPU: sleep until one is runnable, then load it into `frame`.
fn idle_until_runnable(pcpu: usize, frame: &mut TrapFrame) {
    if let Some(queue) = QUEUES[pcpu].lock().as_mut() {
        queue.current = None;
    }
    loop {
        if pick_next_vcpu(pcpu).is_some_and(|next| load(pcpu, next, frame)) {
            return;
        }
        match vm().serve_unserved_io(true) {
            IoPass::NothingWaits => {}
            pass => {
                // Disk work: no sleeping, but take the interrupts that came meanwhile, and look
                // again for a runnable vCPU (the pass may have completed what one waits for).
                if pass == IoPass::Deferred {
                    nap_while_another_pcpu_serves_io();
                }
                irq::handle_irq(None);
                continue;
            }
        }
        let deadline = QUEUES[pcpu].lock().as_ref().and_then(|q| q.earliest_deadline(&states()));
        match deadline {
            Some(deadline) => hyp_timer::arm_at(deadline),
            None => hyp_timer::disarm(),
        }
        aarch64_cpu::asm::wfi();
        irq::handle_irq(None);
    }
}

/// An idle pCPU whose disk pass could not run (another pCPU runs one) waits a little before it
/// looks again, without keeping the host core from the pCPU that serves.
pub fn nap_while_another_pcpu_serves_io() {
    hyp_timer::nap_for_us(IO_PASS_NAP_US);
}

/// What the exit handler asks of the scheduler.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Resched {
    /// Keep running the loaded vCPU.
    No,
    /// The time slice ended: run another runnable vCPU if there is one.
    Preempt,
    /// The vCPU waits for an interrupt (WFI) until `wake_at` at the latest.
    Wait { wake_at: Option<u64> },
    /// The vCPU powered itself off (PSCI CPU_OFF).
    Off,
}

/// Whether any vCPU in `targets` other than `vcpu` lives on `vcpu`'s pCPU.
pub fn shares_pcpu_with(vcpu: usize, targets: crate::gic::Kick) -> bool {
    let placement = vm().placement;
    let home = placement.home(vcpu);
    targets.iter().any(|t| t != vcpu && placement.home(t) == home)
}

/// Whether the loaded vCPU shares its pCPU (WFI then yields instead of waiting in place).
pub fn pcpu_is_shared() -> bool {
    QUEUES[cpu::current_index()].lock().as_ref().is_some_and(RunQueue::is_shared)
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
    let pcpu = cpu::current_index();
    let _one_at_a_time = loop {
        if loaded_vcpu_is_stale(pcpu) {
            log::debug!("pcpu{pcpu}: reset request dropped: its vCPU was reset meanwhile");
            return;
        }
        if let Some(guard) = RESET_LOCK.try_lock() {
            break guard;
        }
        core::hint::spin_loop();
    };
    if loaded_vcpu_is_stale(pcpu) {
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
        let mut slot = SLOTS[vcpu].lock();
        slot.state = RunState::Off;
        // Under the slot lock, as `load` reads it.
        VCPU_EPOCH[vcpu].fetch_add(1, Ordering::AcqRel);
    }
}

/// Waits (bounded) until no pCPU but this one holds any of `vcpus`.
fn wait_until_released(vcpus: core::ops::Range<usize>) -> bool {
    let mine = current_vcpu();
    let deadline = cpu::counter() + cpu::counter_frequency() * RELEASE_WAIT_MS / 1000;
    loop {
        let held =
            vcpus.clone().filter(|&v| v < MAX_VCPUS && Some(v) != mine).any(|v| SLOTS[v].lock().owner.is_loaded());
        if !held {
            return true;
        }
        if cpu::counter() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
}

/// Whether the vCPU loaded on `pcpu` (this pCPU) was reset since it was loaded.
fn loaded_vcpu_is_stale(pcpu: usize) -> bool {
    current_vcpu().is_some_and(|vcpu| is_stale(pcpu, vcpu))
}

/// Whether `vcpu`, loaded on `pcpu`, was reset since it was loaded (it must be dropped).
fn is_stale(pcpu: usize, vcpu: usize) -> bool {
    LOADED_EPOCH[pcpu].load(Ordering::Acquire) != VCPU_EPOCH[vcpu].load(Ordering::Acquire)
}

/// Kicks every other pCPU, so those running a stopped vCPU drop it now.
pub fn kick_all_pcpus(vm: &Vm) {
    for &mpidr in &vm.pcpu_mpidr {
        if mpidr != cpu::current_mpidr() {
            pgic::kick(mpidr);
        }
    }
}

/// Empties the list registers of a vCPU that stops running here for good (reset).
fn quiesce_virtual_interface() {
    let mut loaded = LOADED_LRS[cpu::current_index()].lock();
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
    IN_GUEST[pcpu].store(false, Ordering::SeqCst);
    let Some(vcpu) = QUEUES[pcpu].lock().as_ref().and_then(|q| q.current) else {
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
    let mut needs_sync = LOADED_LRS[pcpu].lock().needs_sync(reason, pgic::empty_list_registers);
    // Whether the loaded list registers were synced in this exit (then `LoadedLrs` is exact).
    let mut synced = false;
    if reason.needs_exact_state() && (needs_sync || irq::timers_injected(vcpu)) {
        synced = lr_path::sync_and_resample(vm, &mut LOADED_LRS[pcpu].lock(), vcpu, needs_sync, &mut work);
        needs_sync &= !synced;
    }

    let (exit_kind, resched) = match (info, action) {
        // A vCPU reset while it ran does nothing more: it is dropped below.
        _ if is_stale(pcpu, vcpu) => (ExitKind::Other, Resched::No),
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
    if vm.serve_unserved_io(false).more_waits() && !pcpu_is_shared() {
        // Come back for the rest even if the guest polls without exiting (a shared pCPU's
        // slice tick does that already).
        hyp_timer::arm_at(cpu::counter() + cpu::counter_frequency() * UNSERVED_IO_RETRY_US / 1_000_000);
    }

    let mut current = vcpu;
    if is_stale(pcpu, vcpu) {
        // The vCPU was reset: the loaded state is gone; its registers must not be saved.
        drop_and_idle(pcpu, vcpu, frame);
        current = QUEUES[pcpu].lock().as_ref().and_then(|q| q.current).unwrap_or(vcpu);
    } else if resched != Resched::No {
        let state = match resched {
            Resched::Wait { wake_at } => RunState::Waiting { wake_at },
            Resched::Off => RunState::Off,
            _ => RunState::Runnable,
        };
        // Mark the state first so the scheduler sees it, then switch only if someone else runs.
        SLOTS[vcpu].lock().state = state;
        match pick_next_vcpu(pcpu) {
            Some(next) if next == vcpu => {
                SLOTS[vcpu].lock().state = RunState::Runnable;
                if pcpu_is_shared() {
                    rearm_slice();
                }
            }
            next => {
                if needs_sync {
                    // The vGIC must know what the guest did before the vCPU is put away.
                    lr_path::sync_and_resample(vm, &mut LOADED_LRS[pcpu].lock(), vcpu, true, &mut work);
                    needs_sync = false;
                }
                save(vcpu, frame, state);
                pgic::set_virtual_interface(false);
                LOADED_LRS[pcpu].lock().set_overflow(false);
                if !next.is_some_and(|next| load(pcpu, next, frame)) {
                    idle_until_runnable(pcpu, frame);
                }
                current = QUEUES[pcpu].lock().as_ref().and_then(|q| q.current).unwrap_or(vcpu);
            }
        }
    }

    let kicked = vm.take_attention(current);
    let mut loaded = LOADED_LRS[pcpu].lock();
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
    if INTERFACE_OFF[pcpu].swap(false, Ordering::Relaxed) {
        pgic::set_virtual_interface(LOADED_LRS[pcpu].lock().overflow());
    }
    update_tlb_trap(vm, pcpu, current);
    IN_GUEST[pcpu].store(true, Ordering::SeqCst);
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

/// Whether the vCPU loaded on this pCPU was reset since it was loaded (it must drop it).
pub fn reset_pending() -> bool {
    loaded_vcpu_is_stale(cpu::current_index())
}

/// Re-arms the slice timer after its tick (called from the IRQ path on a shared pCPU).
pub fn rearm_slice() {
    hyp_timer::arm_at(cpu::counter() + cpu::counter_frequency() * TIME_SLICE_MS / 1000);
}
