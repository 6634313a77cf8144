//! The run loop's state, one struct per CPU: a [`Pcpu`] for each physical CPU (its run queue and
//! what it knows about the vCPU it has loaded) and a [`VcpuRecord`] for each vCPU (its saved
//! registers and scheduling state). `vm::run` drives them; `vm::lifecycle` starts, stops and
//! resets vCPUs through them; the exit handlers only read them.
//!
//! A vCPU is either *loaded* on its home pCPU (its registers are the pCPU's; its general
//! registers are the trap frame on that pCPU's stack) or *saved* in its [`VcpuSlot`].

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};

use spin::Mutex;

use crate::arch::aarch64::context::VcpuContext;
use crate::arch::aarch64::cpu;
use crate::arch::aarch64::trap::TrapFrame;
use crate::gic::loaded::LoadedLrs;
use crate::guest_map::PPI_VIRT_TIMER;
use crate::hvm::boot::El1Boot;
use crate::options::MAX_VCPUS;
use crate::sched::{Ownership, RunQueue, RunState};

/// A vCPU's saved state and scheduling state.
pub struct VcpuSlot {
    pub state: RunState,
    pub frame: TrapFrame,
    pub context: VcpuContext,
    /// The saved state is a fresh start (load reset EL1 state rather than `context`).
    pub fresh: bool,
    /// For a fresh start: EL1 registers that differ from reset (an HRT core starts with its
    /// MMU on).
    pub boot_el1: Option<El1Boot>,
    /// Whether a pCPU holds the registers, and a start waiting for it to let go.
    pub owner: Ownership<Start>,
}

/// What a start (boot, PSCI CPU_ON, a partition reset) gives a vCPU.
pub struct Start {
    pub frame: TrapFrame,
    pub boot_el1: Option<El1Boot>,
}

impl VcpuSlot {
    /// The vCPU starts afresh from `start` at its next load.
    pub fn apply_start(&mut self, start: Start) {
        self.frame = start.frame;
        self.fresh = true;
        self.boot_el1 = start.boot_el1;
        self.state = RunState::Runnable;
    }

    /// The pCPU that held the vCPU lets go (saved or dropped); a start that waited for this
    /// wins over what was saved.
    pub fn release(&mut self) {
        if let Some(start) = self.owner.release() {
            self.apply_start(start);
        }
    }
}

/// Everything the run loop keeps about one vCPU.
pub struct VcpuRecord {
    /// Saved registers and scheduling state.
    pub slot: Mutex<VcpuSlot>,
    /// Bumped (under `slot`'s lock) when the vCPU is reset, its partition rebooting: a pCPU
    /// whose loaded vCPU started before the bump drops it without saving it.
    pub epoch: AtomicU32,
    /// The timer PPIs injected since their line was last resampled (see
    /// `lr_path::resample_timer_lines`).
    timers_injected: AtomicU8,
}

impl VcpuRecord {
    const fn new() -> Self {
        Self {
            slot: Mutex::new(VcpuSlot {
                state: RunState::Off,
                frame: TrapFrame::zeroed(),
                context: VcpuContext::zeroed(),
                fresh: false,
                boot_el1: None,
                owner: Ownership::new(),
            }),
            epoch: AtomicU32::new(0),
            timers_injected: AtomicU8::new(0),
        }
    }

    /// Records that timer `intid` was injected.
    pub fn note_timer_injected(&self, intid: u32) {
        self.timers_injected.fetch_or(timer_bit(intid), Ordering::Relaxed);
    }

    /// Whether a timer was injected since its last resample.
    pub fn timers_injected(&self) -> bool {
        self.timers_injected.load(Ordering::Relaxed) != 0
    }

    /// Whether timer `intid` was injected since its last resample (and forgets it).
    pub fn take_timer_injected(&self, intid: u32) -> bool {
        let bit = timer_bit(intid);
        self.timers_injected.fetch_and(!bit, Ordering::Relaxed) & bit != 0
    }
}

/// A timer PPI's bit in `VcpuRecord::timers_injected`.
fn timer_bit(intid: u32) -> u8 {
    const VIRTUAL: u8 = 1 << 0;
    const PHYSICAL: u8 = 1 << 1;
    if intid == PPI_VIRT_TIMER {
        VIRTUAL
    } else {
        PHYSICAL
    }
}

/// Everything the run loop keeps about one pCPU. Only that pCPU changes its fields; other
/// pCPUs read `queue`, `in_guest` and `tlb_trapped` (a merge's wait for TLB traps).
pub struct Pcpu {
    /// Its vCPUs and which one is loaded.
    pub queue: Mutex<Option<RunQueue>>,
    /// The epoch of the loaded vCPU as of loading it (see `VcpuRecord::epoch`).
    pub loaded_epoch: AtomicU32,
    /// The VTTBR_EL2 value its guest runs with (partitions have their own tables).
    pub loaded_vttbr: AtomicU64,
    /// Whether it traps its guest's TLB maintenance now (HCR_EL2.TTLB; see
    /// `vm::hvm::tlb_trap_wanted`).
    pub tlb_trapped: AtomicBool,
    /// Whether it runs guest code now (false from a guest exit until its return): a pCPU in
    /// the hypervisor updates its TLB trap before it enters the guest again.
    pub in_guest: AtomicBool,
    /// Its virtual CPU interface was switched off by the IRQ path (see `irq::handle_irq`); the
    /// exit path switches it on again before entering the guest.
    pub interface_off: AtomicBool,
    /// What it knows about its loaded vCPU's list registers.
    pub loaded_lrs: Mutex<LoadedLrs>,
    /// Where its stack ends (the first entry into a guest starts it from the top).
    pub stack_top: AtomicU64,
}

impl Pcpu {
    const fn new() -> Self {
        Self {
            queue: Mutex::new(None),
            loaded_epoch: AtomicU32::new(0),
            loaded_vttbr: AtomicU64::new(0),
            tlb_trapped: AtomicBool::new(false),
            in_guest: AtomicBool::new(false),
            interface_off: AtomicBool::new(false),
            loaded_lrs: Mutex::new(LoadedLrs::new(0)),
            stack_top: AtomicU64::new(0),
        }
    }

    /// The vCPU loaded here, if any.
    pub fn current_vcpu(&self) -> Option<usize> {
        self.queue.lock().as_ref().and_then(|queue| queue.current)
    }

    /// Whether several vCPUs share this pCPU (time-sliced; WFI then yields instead of waiting
    /// in place).
    pub fn is_shared(&self) -> bool {
        self.queue.lock().as_ref().is_some_and(RunQueue::is_shared)
    }

    /// Whether `vcpu`, loaded here, was reset since it was loaded (it must be dropped).
    pub fn is_stale(&self, vcpu: usize) -> bool {
        self.loaded_epoch.load(Ordering::Acquire) != vcpu_record(vcpu).epoch.load(Ordering::Acquire)
    }

    /// Whether the vCPU loaded here was reset since it was loaded.
    pub fn loaded_vcpu_is_stale(&self) -> bool {
        self.current_vcpu().is_some_and(|vcpu| self.is_stale(vcpu))
    }

    /// Records that the virtual CPU interface is off until the next guest entry.
    pub fn note_virtual_interface_off(&self) {
        self.interface_off.store(true, Ordering::Relaxed);
    }
}

static PCPUS: [Pcpu; MAX_VCPUS] = [const { Pcpu::new() }; MAX_VCPUS];
static VCPUS: [VcpuRecord; MAX_VCPUS] = [const { VcpuRecord::new() }; MAX_VCPUS];

/// pCPU `index`'s state.
pub fn pcpu(index: usize) -> &'static Pcpu {
    &PCPUS[index]
}

/// The state of the pCPU this runs on.
pub fn this_pcpu() -> &'static Pcpu {
    pcpu(cpu::current_index())
}

/// vCPU `vcpu`'s record.
pub fn vcpu_record(vcpu: usize) -> &'static VcpuRecord {
    &VCPUS[vcpu]
}
