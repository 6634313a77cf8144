//! A hybrid VM on the VM side (DESIGN.md §7): the HRT partition (its RAM, stage-2 table,
//! image and boot), and the 0xf00d calls carried out on the vCPU that made them: `hvc` from
//! EL1 (ROS kernel, HRT), the doorbell page from a ROS process, the HRT console.
//!
//! The decisions are `crate::hvm`'s (a pure state machine); this module supplies who called,
//! writes the answer into the caller's registers and performs the effects (resets, the ready
//! line).

use alloc::string::String;
use alloc::vec;

use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use hvm_ros_lib::abi::invoke::CommPage;
use hvm_ros_lib::abi::{HvmError, SubOp, HRT_CONSOLE_MAX};
use spin::Mutex;

use super::lifecycle;
use super::Vm;
use crate::arch::aarch64::cpu;
use crate::arch::aarch64::guest::{self, TranslationRegisters};
use crate::arch::aarch64::trap::TrapFrame;
use crate::console::CONSOLE;
use crate::exit::dispatch::TlbiOp;
use crate::guest_map;
use crate::hvm::boot::{self, BootLayout, GicFrames, HrtImageError};
use crate::hvm::events::EVENT_SIZE;
use crate::hvm::{buffer_size, check_caller, signal, Caller, Effect, HvmState, Level, Request};
use crate::mm::addr::{GuestVirt, HostPhys, Ipa};
use crate::mm::guest_memory::GuestMemory;
use crate::mm::stage2::{GuestStage2, Stage2Error};
use crate::mm::MemRange;
use hvm_ros_lib::abi::signal::{SignalFrame, FRAME_SIZE};

/// VMID of the HRT partition's stage-2 table (the ROS uses the VM's, 1).
const HRT_VMID: u16 = 2;
/// SPSR_EL2.M[4]: the caller was in AArch32.
const SPSR_M_AARCH32: u64 = 1 << 4;
/// SPSR_EL2.M[3:2]: the exception level the caller was at.
const SPSR_M_EL_SHIFT: u32 = 2;
const SPSR_M_EL_MASK: u64 = 0b11;
/// Registers a call's answer occupies (x0..x3).
const REPLY_REGS: usize = 4;
/// The guest's page size (Debian's arm64 kernel): a call's buffer may not cross a page.
const GUEST_PAGE_SIZE: u64 = 4096;
/// TTBR0_EL1 without its ASID [63:48] and CnP [0]: the translation table base address.
const TTBR_BADDR_MASK: u64 = 0x0000_FFFF_FFFF_FFFE;
/// TTBRn_EL1.ASID: bits [63:48] (Linux takes the ASID from TTBR1_EL1: TCR_EL1.A1 = 1).
const TTBR_ASID_SHIFT: u32 = 48;

/// Set while the HRT runs a merged ROS process: ROS vCPUs then trap their TLB maintenance,
/// which the hypervisor performs for the ROS and again for the HRT (DESIGN.md §7).
static MERGE_ACTIVE: AtomicBool = AtomicBool::new(false);
/// Set while a signal waits for its process (`hvm::signal`): the ROS exit path then looks.
static SIGNAL_PENDING: AtomicBool = AtomicBool::new(false);

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
    /// An image a ROS process installed (0x8): booted instead of the module from the next HRT
    /// boot on.
    installed: Mutex<Option<Vec<u8>>>,
    /// The comm page's request sequence number (`CommPage::seq`); restarts with every boot.
    upcall_seq: AtomicU64,
}

impl HrtPartition {
    /// The HRT partition over `ram` (IPA), whose host memory follows the ROS's
    /// (`ros_host_base` backs `ros_ram`). Checks the image; nothing is loaded yet.
    pub fn new(
        first_vcpu: usize,
        cores: usize,
        ros_ram: MemRange,
        ram: MemRange,
        ros_host_base: HostPhys,
        image: &'static [u8],
        cmdline: String,
    ) -> Result<Self, HrtBuildError> {
        let parsed = boot::parse_image(image).map_err(HrtBuildError::Image)?;
        BootLayout::new(ros_ram, ram, cores, parsed.span).map_err(HrtBuildError::Image)?;
        let visible = MemRange::new(ros_ram.start, ram.end() - ros_ram.start);
        let mut stage2 = GuestStage2::new(HRT_VMID);
        stage2.map_ram(Ipa(visible.start), ros_host_base, visible.size).map_err(HrtBuildError::Stage2)?;
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
            installed: Mutex::new(None),
            upcall_seq: AtomicU64::new(0),
        })
    }

    pub fn contains_vcpu(&self, vcpu: usize) -> bool {
        (self.first_vcpu..self.first_vcpu + self.cores).contains(&vcpu)
    }

    /// Writes the image and the boot state into HRT RAM for a boot starting now.
    fn load(&self, now: u64) -> Result<HrtEntry, HrtImageError> {
        let installed = self.installed.lock();
        let image = boot::parse_image(installed.as_deref().unwrap_or(self.image))?;
        let layout = BootLayout::new(self.ros_ram, self.ram, self.cores, image.span)?;
        let outside = |_| HrtImageError::TooBig { needed: image.span, available: self.ram.size };
        // What the previous boot left in its image and boot state must not leak into this one.
        self.zero(MemRange::new(self.ram.start, layout.free.start - self.ram.start)).map_err(outside)?;
        self.zero(MemRange::new(layout.stacks.start, self.ram.end() - layout.stacks.start)).map_err(outside)?;
        for segment in &image.segments {
            self.memory.write(Ipa(self.ram.start + segment.offset), segment.bytes).map_err(outside)?;
        }
        for table in boot::build_tables(&layout) {
            let mut bytes = [0u8; boot::PAGE_SIZE as usize];
            for (chunk, entry) in bytes.chunks_exact_mut(8).zip(table.entries) {
                chunk.copy_from_slice(&entry.to_le_bytes());
            }
            self.memory.write(Ipa(table.ipa), &bytes).map_err(outside)?;
        }
        let gic = GicFrames {
            gicd_base: guest_map::GICD_BASE,
            gicr_base: guest_map::GICR_BASE,
            gicr_stride: guest_map::GICR_STRIDE,
            upcall_intid: guest_map::HRT_UPCALL_SGI,
        };
        let info = layout.boot_info(self.first_vcpu, cpu::counter_frequency(), now, &self.cmdline, gic);
        self.memory.write(Ipa(layout.boot_info), &boot::boot_info_bytes(&info)).map_err(outside)?;
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
            self.memory.write(Ipa(at), &zeroes[..len])?;
            at += len as u64;
        }
        Ok(())
    }

    /// Boots the HRT: state afresh, image and boot state loaded, every core started.
    pub fn boot(&self, vm: &Vm) -> Result<(), HrtImageError> {
        let now = cpu::counter();
        self.state.lock().hrt_boot_started(now);
        self.upcall_seq.store(0, Ordering::Relaxed);
        let entry = self.load(now)?;
        *self.entry.lock() = Some(entry);
        for core in 0..self.cores {
            let vcpu = self.first_vcpu + core;
            let mut frame =
                crate::arch::aarch64::guest::initial_frame(entry.entry, BootLayout::linear_va(entry.layout.boot_info));
            frame.x[1] = core as u64;
            frame.x[2] = vcpu as u64;
            lifecycle::request_start_with(vm, vcpu, frame, Some(boot::el1_boot(&entry.layout, core)));
        }
        Ok(())
    }

    /// Writes a request into the comm page: every field, then (after a barrier) the new
    /// sequence number the HRT looks for. `caller` is the calling process's translation regime,
    /// `tls` its thread's TPIDR_EL0 and TPIDRRO_EL0 (for a TLS mirror).
    fn post_request(&self, op: SubOp, buffer: u64, caller: TranslationRegisters, tls: (u64, u64)) {
        let Some(entry) = *self.entry.lock() else {
            return;
        };
        let seq = self.upcall_seq.fetch_add(1, Ordering::Relaxed) + 1;
        let page = CommPage {
            seq,
            op: op as u64,
            arg: buffer,
            ros_ttbr0: caller.ttbr0 & TTBR_BADDR_MASK,
            ros_tcr: caller.tcr,
            ros_mair: caller.mair,
            ros_asid: caller.ttbr1 >> TTBR_ASID_SHIFT,
            tpidr_el0: tls.0,
            tpidrro_el0: tls.1,
        };
        let fields = [
            page.op,
            page.arg,
            page.ros_ttbr0,
            page.ros_tcr,
            page.ros_mair,
            page.ros_asid,
            page.tpidr_el0,
            page.tpidrro_el0,
        ];
        let at = entry.layout.comm_page;
        for (n, value) in fields.iter().enumerate() {
            let offset = core::mem::offset_of!(CommPage, op) + n * 8;
            let _ = self.memory.write(Ipa(at + offset as u64), &value.to_le_bytes());
        }
        aarch64_cpu::asm::barrier::dmb(aarch64_cpu::asm::barrier::ISH);
        let _ = self.memory.write(Ipa(at + core::mem::offset_of!(CommPage, seq) as u64), &page.seq.to_le_bytes());
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
/// effect. Returns true when the call replaced the caller's whole context (a signal return):
/// then the caller must not be moved past the calling instruction.
pub fn call(vm: &Vm, vcpu: usize, frame: &mut TrapFrame) -> bool {
    let Some(hrt) = &vm.hrt else {
        frame.x[0] = HvmError::NotHvm.code();
        return false;
    };
    let Some(level) = caller_level(frame.spsr) else {
        frame.x[0] = HvmError::WrongLevel.code();
        return false;
    };
    let caller = hrt.caller(vcpu, level);
    let op = SubOp::from_code(frame.x[1]);
    // The caller's x2 buffer, translated now (while its translation regime is loaded).
    let buffer = op
        .filter(|&op| check_caller(op, caller).is_ok())
        .and_then(buffer_size)
        .and_then(|size| caller_buffer(vm, vcpu, level, frame.x[2], size as u64));
    let regs = guest::el0_translation_registers();
    let mut request = Request { buffer, ttbr0: regs.ttbr0 & TTBR_BADDR_MASK, ..Request::default() };
    request.args.copy_from_slice(&frame.x[2..8]);
    if op == Some(SubOp::PostRosEvent) {
        request.event = buffer.and_then(|ipa| {
            let mut event = [0u8; EVENT_SIZE];
            caller_memory(vm, vcpu).read(Ipa(ipa), &mut event).ok().map(|()| event)
        });
    }
    // A handler's stack must take a frame now: refused at registration, not lost at delivery.
    if op == Some(SubOp::SetSignalHandler) && check_caller(SubOp::SetSignalHandler, caller).is_ok() {
        let handler = signal::Handler { ttbr0: request.ttbr0, entry: request.args[0], stack_top: request.args[1] };
        let installing = handler.entry != 0 && handler.stack_top != 0;
        if installing && !handler.frame_address().is_some_and(|at| user_range_writable(at, FRAME_SIZE as u64)) {
            frame.x[0] = HvmError::BadAddress.code();
            return false;
        }
    }
    let reply = hrt.state.lock().handle_request(caller, frame.x[1], request, cpu::counter());
    frame.x[..REPLY_REGS].copy_from_slice(&reply.regs);
    if reply.regs[0] != hvm_ros_lib::abi::HVM_OK {
        log::debug!("vcpu{vcpu}: hvm sub-op {:#x} from {caller:?} refused ({:#x})", frame.x[1], reply.regs[0]);
    }
    match reply.effect {
        Effect::None => {}
        Effect::ResetRos => {
            log::info!("hvm: ROS reset requested by vcpu{vcpu} ({level:?})");
            lifecycle::reset_ros(vm);
        }
        Effect::ResetHrt => {
            log::info!("hvm: HRT reset requested by vcpu{vcpu} ({level:?})");
            reset_hrt(vm);
        }
        Effect::ResetBoth => {
            log::info!("hvm: ROS and HRT reset requested by vcpu{vcpu} ({level:?})");
            reset_hrt(vm);
            lifecycle::reset_ros(vm);
        }
        Effect::HrtReady { cores, boot_ticks } => {
            let micros = boot_ticks * 1_000_000 / cpu::counter_frequency().max(1);
            log::info!("(HRT) ready: {cores} core(s), booted in {}.{:03} ms", micros / 1000, micros % 1000);
        }
        Effect::Upcall { op, buffer, cores } => {
            if op == SubOp::Merge {
                // Every ROS TLBI must be replayed before the HRT can cache the process's tables.
                set_merge_active(vm, true);
                if !lifecycle::wait_for_tlb_traps(vm) {
                    log::warn!("hvm: merge: a ROS pCPU did not trap its TLB maintenance in time");
                }
            }
            let tls = if op == SubOp::MirrorTls { (request.args[0], request.args[1]) } else { (0, 0) };
            hrt.post_request(op, buffer, regs, tls);
            raise_upcall(vm, hrt, cores);
        }
        Effect::WriteEvent { buffer, event } => {
            if caller_memory(vm, vcpu).write(Ipa(buffer), &event).is_err() {
                frame.x[0] = HvmError::BadAddress.code();
            }
        }
        Effect::MergeChanged { merged } => {
            log::info!("hvm: {}", if merged.is_some() { "merged a ROS process into the HRT" } else { "unmerged" });
            // Trapping started with the merge request (above); it ends with an unmerge.
            if merged.is_none() {
                set_merge_active(vm, false);
            }
        }
        Effect::InstallImage { va, size } => {
            if let Err(error) = install_image(vm, hrt, va, size) {
                guest_warn!(vcpu, "vcpu{vcpu}: HRT image install refused: {error:?}");
                frame.x[0] = error.code();
            }
        }
        Effect::SignalRaised => {
            SIGNAL_PENDING.store(true, Ordering::Release);
            lifecycle::kick_all_pcpus(vm);
        }
        Effect::SignalReturn { frame: at } => match read_user(vm, at) {
            Some(saved) => {
                restore_signal_frame(frame, &signal::decode(&saved));
                let mut state = hrt.state.lock();
                state.signals().handler_returned();
                // A signal raised while the handler ran is delivered now.
                SIGNAL_PENDING.store(state.signals().pending().is_some(), Ordering::Release);
                return true;
            }
            None => frame.x[0] = HvmError::BadAddress.code(),
        },
    }
    false
}

/// Whether `len` bytes at the loaded process's `va` are writable by it (every page).
fn user_range_writable(va: u64, len: u64) -> bool {
    let Some(end) = va.checked_add(len) else {
        return false;
    };
    let first = va & !(GUEST_PAGE_SIZE - 1);
    (first..end)
        .step_by(GUEST_PAGE_SIZE as usize)
        .all(|page| guest::translate_guest_va(GuestVirt(page.max(va)), true, true).is_some())
}

/// Copies `bytes` to the loaded process's `va` (ROS RAM, writable at EL0), page by page.
fn write_user(vm: &Vm, va: u64, bytes: &[u8]) -> Option<()> {
    let mut done = 0usize;
    while done < bytes.len() {
        let at = va.checked_add(done as u64)?;
        let chunk = ((GUEST_PAGE_SIZE - at % GUEST_PAGE_SIZE) as usize).min(bytes.len() - done);
        let ipa = guest::translate_guest_va(GuestVirt(at), true, true)?;
        vm.memory.write(ipa, &bytes[done..done + chunk]).ok()?;
        done += chunk;
    }
    Some(())
}

/// Reads a signal frame from the loaded process's `va` (readable at EL0), page by page.
fn read_user(vm: &Vm, va: u64) -> Option<[u8; FRAME_SIZE]> {
    let mut bytes = [0u8; FRAME_SIZE];
    let mut done = 0usize;
    while done < FRAME_SIZE {
        let at = va.checked_add(done as u64)?;
        let chunk = ((GUEST_PAGE_SIZE - at % GUEST_PAGE_SIZE) as usize).min(FRAME_SIZE - done);
        let ipa = guest::translate_guest_va(GuestVirt(at), true, false)?;
        vm.memory.read(ipa, &mut bytes[done..done + chunk]).ok()?;
        done += chunk;
    }
    Some(bytes)
}

/// Resumes the process from a signal frame: its registers, stack pointer and PC, and only the
/// condition flags of its PSTATE (`signal::sanitized_pstate`).
fn restore_signal_frame(frame: &mut TrapFrame, saved: &SignalFrame) {
    frame.x.copy_from_slice(&saved.x);
    frame.elr = saved.pc;
    frame.spsr = signal::sanitized_pstate(frame.spsr, saved.pstate);
    guest::set_sp_el0(saved.sp);
}

/// A ROS vCPU is about to enter the guest: if it enters, at EL0, the process a pending signal
/// is for, the signal is delivered now (frame written on the registered stack, the handler
/// entered). If the frame cannot be written the signal stays pending.
pub fn deliver_signal(vm: &Vm, vcpu: usize, frame: &mut TrapFrame) {
    const SPSR_M_MASK: u64 = 0xF;
    const SPSR_EL0T: u64 = 0;
    if !SIGNAL_PENDING.load(Ordering::Acquire) || frame.spsr & SPSR_M_MASK != SPSR_EL0T || vm.is_hrt_vcpu(vcpu) {
        return;
    }
    let Some(hrt) = &vm.hrt else {
        return;
    };
    let ttbr0 = guest::el0_translation_registers().ttbr0 & TTBR_BADDR_MASK;
    let mut state = hrt.state.lock();
    let Some((code, handler)) = state.signals().take_for(ttbr0) else {
        return;
    };
    let Some(at) = handler.frame_address() else {
        return;
    };
    let saved = SignalFrame { code, x: frame.x, sp: guest::sp_el0(), pc: frame.elr, pstate: frame.spsr, reserved: 0 };
    if write_user(vm, at, &signal::encode(&saved)).is_none() {
        state.signals().put_back(code);
        guest_warn!(vcpu, "vcpu{vcpu}: signal {code:#x}: its frame at {at:#x} cannot be written yet; kept pending");
        return;
    }
    SIGNAL_PENDING.store(state.signals().pending().is_some(), Ordering::Release);
    drop(state);
    frame.elr = handler.entry;
    frame.x[0] = code;
    frame.x[1] = at;
    guest::set_sp_el0(at);
}

/// Switches the replay of ROS TLB maintenance for the HRT on or off; every pCPU picks it up
/// at its next guest entry (they are kicked now).
fn set_merge_active(vm: &Vm, active: bool) {
    MERGE_ACTIVE.store(active, Ordering::SeqCst);
    lifecycle::kick_all_pcpus(vm);
}

/// Whether vCPU `vcpu` must trap its TLB maintenance (a ROS vCPU while a merge is active).
pub fn tlb_trap_wanted(vm: &Vm, vcpu: usize) -> bool {
    MERGE_ACTIVE.load(Ordering::SeqCst) && !vm.is_hrt_vcpu(vcpu)
}

/// A ROS vCPU's trapped TLB maintenance: performed for the ROS as asked, and while a merge is
/// active once more, broadcast, for the HRT's VMID, so the HRT never keeps a stale translation
/// of the merged process (its TTBR0 carries the process's ASID, so by-ASID and by-VA
/// operations hit exactly its entries).
pub fn replay_tlb_maintenance(vm: &Vm, op: TlbiOp, value: u64) {
    guest::tlb_maintenance(vm.stage2.vttbr(), op, value, false);
    if let Some(hrt) = vm.hrt.as_ref().filter(|_| MERGE_ACTIVE.load(Ordering::Acquire)) {
        guest::tlb_maintenance(hrt.stage2.vttbr(), op, value, true);
    }
}

/// 0x8: copies the `size`-byte image at the calling process's `va` page by page through its
/// stage-1 translation, checks it as a boot would, and keeps it for the next HRT boot.
fn install_image(vm: &Vm, hrt: &HrtPartition, va: u64, size: u64) -> Result<(), HvmError> {
    if size > hrt.ram.size {
        return Err(HvmError::InvalidArgument);
    }
    let mut image = alloc::vec![0u8; size as usize];
    let mut done = 0u64;
    while done < size {
        let at = va.checked_add(done).ok_or(HvmError::BadAddress)?;
        let chunk = (GUEST_PAGE_SIZE - at % GUEST_PAGE_SIZE).min(size - done);
        let ipa = guest::translate_guest_va(GuestVirt(at), true, false).ok_or(HvmError::BadAddress)?;
        let out = &mut image[done as usize..(done + chunk) as usize];
        vm.memory.read(ipa, out).map_err(|_| HvmError::BadAddress)?;
        done += chunk;
    }
    let parsed = boot::parse_image(&image).map_err(|_| HvmError::InvalidArgument)?;
    BootLayout::new(hrt.ros_ram, hrt.ram, hrt.cores, parsed.span).map_err(|_| HvmError::InvalidArgument)?;
    log::info!(
        "hvm: a new HRT image ({size} bytes, entry {:#x}) installed; it boots at the next HRT reset",
        parsed.entry
    );
    *hrt.installed.lock() = Some(image);
    Ok(())
}

/// The RAM a caller may name: the ROS's, or for the HRT, the ROS's and its own.
fn caller_memory(vm: &Vm, vcpu: usize) -> &GuestMemory {
    match &vm.hrt {
        Some(hrt) if hrt.contains_vcpu(vcpu) => &hrt.memory,
        _ => &vm.memory,
    }
}

/// The guest-physical address of the `size`-byte buffer at the loaded caller's virtual address
/// `va`: writable at the caller's level, inside one page and inside RAM the caller may name;
/// otherwise `None` (the call answers BadAddress).
fn caller_buffer(vm: &Vm, vcpu: usize, level: Level, va: u64, size: u64) -> Option<u64> {
    if va == 0 || (va % GUEST_PAGE_SIZE) + size > GUEST_PAGE_SIZE {
        return None;
    }
    let ipa = crate::arch::aarch64::guest::translate_guest_va(GuestVirt(va), level == Level::El0, true)?;
    caller_memory(vm, vcpu).host_address(ipa, size).ok()?;
    Some(ipa.0)
}

/// Raises the upcall SGI on the HRT cores in `cores` (bit n: HRT core n) and kicks them.
fn raise_upcall(vm: &Vm, hrt: &HrtPartition, cores: u64) {
    let mut kick = crate::gic::Kick::NONE;
    for core in (0..hrt.cores).filter(|core| cores & (1 << core) != 0) {
        kick |= vm.vgic.set_pending(guest_map::HRT_UPCALL_SGI, hrt.first_vcpu + core);
    }
    vm.kick(kick);
}

/// Reboots the HRT partition; the ROS runs on.
pub fn reset_hrt(vm: &Vm) {
    let Some(hrt) = &vm.hrt else {
        return;
    };
    // A reset HRT runs no merged process and has raised no signal (its state starts afresh).
    MERGE_ACTIVE.store(false, Ordering::Release);
    SIGNAL_PENDING.store(false, Ordering::Release);
    let cores = hrt.first_vcpu..hrt.first_vcpu + hrt.cores;
    lifecycle::reset_partition(vm, cores.clone(), || {
        for vcpu in cores.clone() {
            vm.vgic.reset_vcpu(vcpu);
        }
        vm.drop_posted(cores);
        if let Err(error) = hrt.boot(vm) {
            log::error!("hvm: the HRT cannot boot again: {error}");
        }
    });
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
    if hrt.memory.read(Ipa(ipa), text).is_err() {
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
