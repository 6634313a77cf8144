//! A hybrid VM on the VM side (DESIGN.md §7): the HRT partition (its RAM, stage-2 table,
//! image and boot), and the 0xf00d calls carried out on the vCPU that made them: `hvc` from
//! EL1 (ROS kernel, HRT), the doorbell page from a ROS process, the HRT console.
//!
//! The decisions are `crate::hvm`'s (a pure state machine); this module supplies who called,
//! writes the answer into the caller's registers and performs the effects (resets, the ready
//! line).

use alloc::string::String;
use alloc::vec;

use hvm_ros_lib::abi::{HvmError, HRT_CONSOLE_MAX};
use spin::Mutex;

use super::run;
use super::Vm;
use crate::arch::aarch64::cpu;
use crate::arch::aarch64::trap::TrapFrame;
use crate::console::CONSOLE;
use crate::guest_map;
use crate::hvm::boot::{self, BootLayout, GicFrames, HrtImageError};
use crate::hvm::{Caller, Effect, HvmState, Level};
use crate::mm::guest_memory::GuestMemory;
use crate::mm::stage2::{GuestStage2, Stage2Error};
use crate::mm::MemRange;

/// VMID of the HRT partition's stage-2 table (the ROS uses the VM's, 1).
const HRT_VMID: u16 = 2;
/// SPSR_EL2.M[4]: the caller was in AArch32.
const SPSR_M_AARCH32: u64 = 1 << 4;
/// SPSR_EL2.M[3:2]: the exception level the caller was at.
const SPSR_M_EL_SHIFT: u32 = 2;
const SPSR_M_EL_MASK: u64 = 0b11;
/// Registers a call's answer occupies (x0..x3).
const REPLY_REGS: usize = 4;
/// Registers a call passes (x0 = function id, x1 = sub-operation, x2..x7 = arguments).
const ARG_REGS: core::ops::Range<usize> = 2..8;

/// Why the HRT partition could not be built.
#[derive(Debug)]
pub enum HrtBuildError {
    Image(HrtImageError),
    Stage2(Stage2Error),
}

impl core::fmt::Display for HrtBuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Image(e) => write!(f, "the HRT image cannot be booted: {e}"),
            Self::Stage2(e) => write!(f, "cannot map HRT memory: {e:?}"),
        }
    }
}

/// Where an HRT boot enters.
#[derive(Clone, Copy, Debug)]
struct HrtEntry {
    entry: u64,
    layout: BootLayout,
}

/// The HRT partition of a hybrid VM: vCPUs `[first_vcpu, first_vcpu + cores)`.
pub struct HrtPartition {
    pub first_vcpu: usize,
    pub cores: usize,
    /// HRT RAM, directly above the ROS's.
    pub ram: MemRange,
    /// What the HRT may reach: ROS and HRT RAM.
    pub memory: GuestMemory,
    /// Maps ROS and HRT RAM at the IPAs the ROS sees its own (VMID [`HRT_VMID`]).
    pub stage2: GuestStage2,
    ros_ram: MemRange,
    image: &'static [u8],
    cmdline: String,
    pub state: Mutex<HvmState>,
    entry: Mutex<Option<HrtEntry>>,
}

impl HrtPartition {
    /// The HRT partition over `ram` (IPA), whose host memory follows the ROS's
    /// (`ros_host_base` backs `ros_ram`). Checks the image; nothing is loaded yet.
    pub fn new(
        first_vcpu: usize,
        cores: usize,
        ros_ram: MemRange,
        ram: MemRange,
        ros_host_base: u64,
        image: &'static [u8],
        cmdline: String,
    ) -> Result<Self, HrtBuildError> {
        let parsed = boot::parse_image(image).map_err(HrtBuildError::Image)?;
        BootLayout::new(ros_ram, ram, cores, parsed.span).map_err(HrtBuildError::Image)?;
        let visible = MemRange::new(ros_ram.start, ram.end() - ros_ram.start);
        let mut stage2 = GuestStage2::new(HRT_VMID);
        stage2.map_ram(visible.start, ros_host_base, visible.size).map_err(HrtBuildError::Stage2)?;
        // SAFETY: the memory plan reserved this host range for guest RAM (ROS then HRT) alone.
        let memory = unsafe { GuestMemory::new(visible, ros_host_base) };
        Ok(Self {
            first_vcpu,
            cores,
            ram,
            memory,
            stage2,
            ros_ram,
            image,
            cmdline,
            state: Mutex::new(HvmState::new(cores, cpu::counter_frequency(), cpu::counter())),
            entry: Mutex::new(None),
        })
    }

    pub fn contains_vcpu(&self, vcpu: usize) -> bool {
        (self.first_vcpu..self.first_vcpu + self.cores).contains(&vcpu)
    }

    /// Writes the image and the boot state into HRT RAM for a boot starting now.
    fn load(&self, now: u64) -> Result<HrtEntry, HrtImageError> {
        let image = boot::parse_image(self.image)?;
        let layout = BootLayout::new(self.ros_ram, self.ram, self.cores, image.span)?;
        let outside = |_| HrtImageError::TooBig { needed: image.span, available: self.ram.size };
        // What the previous boot left in its image and boot state must not leak into this one.
        self.zero(MemRange::new(self.ram.start, layout.free.start - self.ram.start)).map_err(outside)?;
        self.zero(MemRange::new(layout.stacks.start, self.ram.end() - layout.stacks.start)).map_err(outside)?;
        for segment in &image.segments {
            self.memory.write(self.ram.start + segment.offset, segment.bytes).map_err(outside)?;
        }
        for table in boot::build_tables(&layout) {
            let mut bytes = [0u8; boot::PAGE_SIZE as usize];
            for (chunk, entry) in bytes.chunks_exact_mut(8).zip(table.entries) {
                chunk.copy_from_slice(&entry.to_le_bytes());
            }
            self.memory.write(table.ipa, &bytes).map_err(outside)?;
        }
        let gic = GicFrames {
            gicd_base: guest_map::GICD_BASE,
            gicr_base: guest_map::GICR_BASE,
            gicr_stride: guest_map::GICR_STRIDE,
            upcall_intid: guest_map::HRT_UPCALL_SGI,
        };
        let info = layout.boot_info(self.first_vcpu, cpu::counter_frequency(), now, &self.cmdline, gic);
        self.memory.write(layout.boot_info, &boot::boot_info_bytes(&info)).map_err(outside)?;
        cpu::sync_instruction_cache();
        // The new tables sit where the old ones were: no stale translation may survive.
        self.stage2.invalidate_tlbs();
        Ok(HrtEntry { entry: image.entry, layout })
    }

    fn zero(&self, range: MemRange) -> Result<(), crate::mm::guest_memory::OutsideGuestRam> {
        const CHUNK: usize = 64 << 10;
        let zeroes = vec![0u8; CHUNK];
        let mut at = range.start;
        while at < range.end() {
            let len = (range.end() - at).min(CHUNK as u64) as usize;
            self.memory.write(at, &zeroes[..len])?;
            at += len as u64;
        }
        Ok(())
    }

    /// Boots the HRT: state afresh, image and boot state loaded, every core started.
    pub fn boot(&self, vm: &Vm) -> Result<(), HrtImageError> {
        let now = cpu::counter();
        self.state.lock().hrt_boot_started(now);
        let entry = self.load(now)?;
        *self.entry.lock() = Some(entry);
        for core in 0..self.cores {
            let vcpu = self.first_vcpu + core;
            let mut frame = crate::arch::aarch64::guest::initial_frame(entry.entry, BootLayout::linear_va(entry.layout.boot_info));
            frame.x[1] = core as u64;
            frame.x[2] = vcpu as u64;
            run::request_start_with(vm, vcpu, frame, Some(boot::el1_boot(&entry.layout, core)));
        }
        Ok(())
    }

    /// The caller of a call from vCPU `vcpu` at `level`.
    fn caller(&self, vcpu: usize, level: Level) -> Caller {
        if self.contains_vcpu(vcpu) {
            Caller::hrt(level, vcpu - self.first_vcpu)
        } else {
            Caller::ros(level)
        }
    }
}

/// The exception level a trapped instruction came from, or `None` for AArch32 callers (the
/// protocol is AArch64 only).
pub fn caller_level(spsr: u64) -> Option<Level> {
    if spsr & SPSR_M_AARCH32 != 0 {
        return None;
    }
    match (spsr >> SPSR_M_EL_SHIFT) & SPSR_M_EL_MASK {
        0 => Some(Level::El0),
        _ => Some(Level::El1),
    }
}

/// A 0xf00d call from vCPU `vcpu` (x0..x7 in `frame`): answers x0..x3 and carries out the
/// effect.
pub fn call(vm: &Vm, vcpu: usize, frame: &mut TrapFrame) {
    let Some(hrt) = &vm.hrt else {
        frame.x[0] = HvmError::NotHvm.code();
        return;
    };
    let Some(level) = caller_level(frame.spsr) else {
        frame.x[0] = HvmError::WrongLevel.code();
        return;
    };
    let caller = hrt.caller(vcpu, level);
    let mut args = [0u64; 6];
    args.copy_from_slice(&frame.x[ARG_REGS]);
    let reply = hrt.state.lock().handle(caller, frame.x[1], args, cpu::counter());
    frame.x[..REPLY_REGS].copy_from_slice(&reply.regs);
    if reply.regs[0] != hvm_ros_lib::abi::HVM_OK {
        log::debug!("vcpu{vcpu}: hvm sub-op {:#x} from {caller:?} refused ({:#x})", frame.x[1], reply.regs[0]);
    }
    match reply.effect {
        Effect::None => {}
        Effect::ResetRos => {
            log::info!("hvm: ROS reset requested by vcpu{vcpu} ({level:?})");
            run::reset_ros(vm);
        }
        Effect::ResetHrt => {
            log::info!("hvm: HRT reset requested by vcpu{vcpu} ({level:?})");
            reset_hrt(vm);
        }
        Effect::ResetBoth => {
            log::info!("hvm: ROS and HRT reset requested by vcpu{vcpu} ({level:?})");
            reset_hrt(vm);
            run::reset_ros(vm);
        }
        Effect::HrtReady { cores, boot_ticks } => {
            let micros = boot_ticks * 1_000_000 / cpu::counter_frequency().max(1);
            log::info!("(HRT) ready: {cores} core(s), booted in {}.{:03} ms", micros / 1000, micros % 1000);
        }
    }
}

/// Reboots the HRT partition; the ROS runs on.
pub fn reset_hrt(vm: &Vm) {
    let Some(hrt) = &vm.hrt else {
        return;
    };
    run::stop_vcpus(vm, hrt.first_vcpu..hrt.first_vcpu + hrt.cores);
    {
        let mut vgic = vm.lock_vgic();
        for vcpu in hrt.first_vcpu..hrt.first_vcpu + hrt.cores {
            vgic.reset_vcpu(vcpu);
        }
    }
    vm.drop_posted(hrt.first_vcpu..hrt.first_vcpu + hrt.cores);
    if let Err(error) = hrt.boot(vm) {
        log::error!("hvm: the HRT cannot boot again: {error}");
    }
    run::kick_all_pcpus(vm);
}

/// The HRT console call: x1 = IPA of the text, x2 = its length.
pub fn console(vm: &Vm, vcpu: usize, frame: &mut TrapFrame) {
    let Some(hrt) = vm.hrt.as_ref().filter(|hrt| hrt.contains_vcpu(vcpu)) else {
        frame.x[0] = crate::psci::status::NOT_SUPPORTED as i64 as u64;
        return;
    };
    let (ipa, len) = (frame.x[1], frame.x[2]);
    if len > HRT_CONSOLE_MAX {
        frame.x[0] = HvmError::InvalidArgument.code();
        return;
    }
    let mut text = [0u8; HRT_CONSOLE_MAX as usize];
    let text = &mut text[..len as usize];
    if hrt.memory.read(ipa, text).is_err() {
        guest_warn!(vcpu, "vcpu{vcpu}: HRT console text at IPA {ipa:#x} ({len} bytes) is outside its RAM");
        frame.x[0] = HvmError::BadAddress.code();
        return;
    }
    for line in text.split(|&b| b == b'\n').filter(|line| !line.is_empty()) {
        CONSOLE.write_text(format_args!("(HRT) {}\n", core::str::from_utf8(line).unwrap_or("<not UTF-8>")));
    }
    frame.x[0] = hvm_ros_lib::abi::HVM_OK;
}

/// Whether `ipa` is the doorbell page of this VM (hybrid VMs only).
pub fn is_doorbell(vm: &Vm, ipa: u64) -> bool {
    vm.hrt.is_some() && MemRange::new(guest_map::DOORBELL_BASE, guest_map::DOORBELL_SIZE).contains(ipa)
}
