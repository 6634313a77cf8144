//! The running VM: its shared state, how it is built from the boot modules, and its reset.
//!
//! One VM per hypervisor. vCPU `i` is pinned to pCPU `i`: the guest owns that pCPU's EL1 state,
//! so exits only pass general registers through the trap frame. State several vCPUs share (the
//! virtual GIC, PSCI power states, devices) sits behind spin locks.

/// Logs a warning that vCPU `$vcpu`'s behaviour caused, rate-limited per vCPU (see
/// `profile::rate_limit`; suppressed lines are counted in the exit profile).
macro_rules! guest_warn {
    ($vcpu:expr, $($arg:tt)*) => {
        if $crate::vm::stats::guest_log_allowed($vcpu) {
            log::warn!($($arg)*);
        }
    };
}

mod contended;
pub mod cpus;
pub mod exits;
pub mod hvm;
pub mod irq;
pub mod lifecycle;
mod lr_path;
pub mod run;
pub mod stats;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use spin::{Mutex, Once};

use crate::arch::aarch64::{cpu, gic as pgic};
use crate::boot::entropy::{EntropyPool, EntropySources};
use crate::boot::guest_dtb::{self, GuestDtbConfig, VirtioMmioNode};
use crate::boot::host_dtb::HostPlatform;
use crate::boot::linux_image::{self, LoadPlan};
use crate::console::CONSOLE;
use crate::devices::host_blk::HostBlock;
use crate::devices::virtio::blk::{BlockBackend, VirtioBlk};
use crate::devices::virtio::empty::EmptySlot;
use crate::devices::virtio::mmio::VirtioMmio;
use crate::devices::vpl011::{TxSink, Vpl011};
use crate::devices::{DeviceManager, IrqLine, MmioDevice};
use crate::gic::mailbox::Mailboxes;
use crate::gic::{VcpuGic, Vgic, Waiter};
use crate::guest_map;
use crate::mm::addr::{HostPhys, Ipa};
use crate::mm::guest_memory::GuestMemory;
use crate::mm::stage2::GuestStage2;
use crate::mm::MemRange;
use crate::options::MAX_VCPUS;
use crate::psci::PsciState;

/// The guest's virtio-mmio slot 0, where its disk is.
const DISK_SLOT: MemRange = MemRange::new(guest_map::VIRTIO_MMIO_BASE, guest_map::VIRTIO_MMIO_STRIDE);

/// The guest's virtio-mmio slot `n`: its registers and interrupt.
fn virtio_slot(n: u32) -> VirtioMmioNode {
    VirtioMmioNode {
        base: guest_map::VIRTIO_MMIO_BASE + u64::from(n) * guest_map::VIRTIO_MMIO_STRIDE,
        size: guest_map::VIRTIO_MMIO_STRIDE,
        spi: guest_map::VIRTIO_MMIO_FIRST_SPI + n,
    }
}

/// The interrupts of the guest's UART and disk.
const UART_INTID: u32 = guest_map::SPI_BASE + guest_map::UART_SPI;
const DISK_INTID: u32 = guest_map::SPI_BASE + guest_map::VIRTIO_MMIO_FIRST_SPI;

/// The VMID of the (only) VM.
const VMID: u16 = 1;

/// Everything needed to (re)load the guest's boot images into its RAM. The DTB is built anew
/// for every boot, with fresh KASLR and RNG seeds.
pub struct BootImages {
    kernel: &'static [u8],
    initrd: Option<&'static [u8]>,
    dtb: DtbInputs,
    entropy: Mutex<EntropyPool>,
    pub plan: LoadPlan,
}

/// What the guest DTB is made of, apart from its seeds.
struct DtbInputs {
    vcpus: usize,
    ram: MemRange,
    bootargs: String,
    virtio_mmio: Vec<VirtioMmioNode>,
    doorbell: Option<MemRange>,
}

impl BootImages {
    /// A guest DTB with new seeds.
    fn build_dtb(&self) -> Result<Vec<u8>, BuildError> {
        let inputs = &self.dtb;
        guest_dtb::build(&GuestDtbConfig {
            vcpus: inputs.vcpus,
            ram: inputs.ram,
            bootargs: &inputs.bootargs,
            initrd: self.plan.initrd,
            virtio_mmio: &inputs.virtio_mmio,
            seeds: self.entropy.lock().guest_seeds(),
            doorbell: inputs.doorbell,
        })
        .map_err(BuildError::Dtb)
    }
}

pub struct Vm {
    /// Every vCPU, of both partitions of a hybrid VM.
    pub vcpu_count: usize,
    /// vCPUs `[0, ros_vcpus)` run the guest kernel (Linux); all of them unless this is a
    /// hybrid VM.
    pub ros_vcpus: usize,
    /// A hybrid VM's HRT partition (vCPUs `[ros_vcpus, vcpu_count)`).
    pub hrt: Option<hvm::HrtPartition>,
    pub memory: GuestMemory,
    pub stage2: GuestStage2,
    pub vgic: Vgic,
    pub psci: Mutex<PsciState>,
    pub devices: Mutex<DeviceManager>,
    pub uart: Arc<Mutex<Vpl011>>,
    /// The guest's virtio-blk disk, when QEMU has a virtio-blk device for it.
    pub disk: Option<Arc<Mutex<Disk>>>,
    pub boot: BootImages,
    /// MPIDR affinity of each pCPU, by index (for kicks).
    pub pcpu_mpidr: Vec<u64>,
    /// Which pCPU each vCPU lives on.
    pub placement: crate::sched::Placement,
}

static VM: Once<Vm> = Once::new();

/// Timer PPIs in flight (see `gic::mailbox`).
static MAILBOXES: Mailboxes = Mailboxes::new();

/// Set for a vCPU whose interrupts changed since its last entry (see [`Vm::kick`]).
static ATTENTION: [AtomicBool; MAX_VCPUS] = [const { AtomicBool::new(false) }; MAX_VCPUS];

/// The VM, once built.
pub fn vm() -> &'static Vm {
    VM.get().expect("the VM is built before any vCPU runs")
}

/// Sends guest UART output to the physical console.
struct ConsoleSink;

impl TxSink for ConsoleSink {
    fn put(&mut self, byte: u8) {
        CONSOLE.write_guest_byte(byte);
    }
}

/// The guest's UART as the device manager sees it. The vPL011 is shared with the console
/// IRQ path; after a guest read that drains its receive FIFO more typed input is pulled in from
/// the physical UART. Not after other reads: the flag register is polled for every printed
/// character, and each pull costs two accesses to the physical UART (QEMU's global lock).
struct ConsoleUart(Arc<Mutex<Vpl011>>);

impl MmioDevice for ConsoleUart {
    fn name(&self) -> &'static str {
        "pl011"
    }
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        let mut uart = self.0.lock();
        let value = uart.read(offset, size);
        if Vpl011::read_frees_room(offset) {
            irq::pump_console_input(&mut uart);
        }
        value
    }
    fn write(&mut self, offset: u64, size: u8, value: u64) {
        self.0.lock().write(offset, size, value)
    }
    fn irq_asserted(&self) -> bool {
        self.0.lock().irq_asserted()
    }
}

/// The guest's disk as the device manager sees it: shared with the VM (for reset), and every
/// request the guest gets wrong is logged. It sets its own interrupt line (see
/// [`update_disk_line`]), so the device manager has none for it.
struct DiskDevice(Arc<Mutex<Disk>>);

/// Sets the guest disk's interrupt line from its state; with the disk locked, so that the line
/// follows the order of the state changes. Set after unlocking, two pCPUs that change the disk
/// one after the other (a completion, the guest's acknowledge) could set the line in the
/// opposite order and leave it stale: an interrupt lost (the guest waits for its disk forever)
/// or one that never ends.
fn update_disk_line(disk: &Disk) {
    vm().set_line(IrqLine { intid: DISK_INTID, asserted: disk.irq_asserted() });
}

/// Whether the disk holds notified requests it has not served yet: a notification serves one
/// bounded pass (`WorkBudget`), later passes run on guest exits ([`Vm::serve_unserved_io`]).
static DISK_UNSERVED: AtomicBool = AtomicBool::new(false);
/// Whether the host disk works on requests in the background (see [`Vm::serve_unserved_io`]).
static DISK_IN_FLIGHT: AtomicBool = AtomicBool::new(false);
/// The pCPU (index + 1) that polls the host disk with its interrupt off, or 0 (see
/// [`Vm::poll_disk_io`]); changed with the disk locked.
static DISK_POLLER: AtomicUsize = AtomicUsize::new(0);

/// Publishes what the disk has left to do, for the lock-free checks on every exit.
fn note_disk_work(disk: &Disk) {
    DISK_UNSERVED.store(disk.has_unserved(), Ordering::Release);
    DISK_IN_FLIGHT.store(disk.device().backend().transfers_in_flight() > 0, Ordering::Release);
}
/// The counter value before which a busy pCPU takes no further pass (see
/// [`Vm::serve_unserved_io`]).
static NEXT_BUSY_PASS_AT: AtomicU64 = AtomicU64::new(0);

/// What [`Vm::serve_unserved_io`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoPass {
    /// No notified disk request waits.
    NothingWaits,
    /// A pass ran here; `more` requests still wait.
    Ran { more: bool },
    /// Requests wait, but no pass ran here: another pCPU runs one, or it is not yet this busy
    /// pCPU's turn.
    Deferred,
}

/// How long an idle pCPU naps while another pCPU serves the disk.
const IO_PASS_NAP_US: u64 = 100;

impl IoPass {
    /// Whether requests still wait after this.
    pub fn more_waits(self) -> bool {
        !matches!(self, Self::NothingWaits | Self::Ran { more: false })
    }

    /// An idle pCPU whose disk pass could not run (`Deferred`: another pCPU runs one) waits a
    /// little before it looks again, without keeping the host core from the pCPU that serves.
    pub fn nap_while_another_pcpu_serves() {
        crate::arch::aarch64::hyp_timer::nap_for_us(IO_PASS_NAP_US);
    }
}

/// Logs the request the guest got wrong, if any.
fn log_disk_error(disk: &mut Disk) {
    if let Some(error) = disk.take_error() {
        let vcpu = cpus::this_pcpu().current_vcpu().unwrap_or(0);
        guest_warn!(vcpu, "vcpu{vcpu}: disk: guest request refused: {error:?}");
    }
}

impl MmioDevice for DiskDevice {
    fn name(&self) -> &'static str {
        "virtio-blk"
    }
    // The disk's lock is held for whole passes over the host device (milliseconds): waiters
    // nap rather than spin (see `contended`).
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        let mut disk = contended::lock(&self.0);
        let value = disk.read(offset, size);
        update_disk_line(&disk);
        value
    }
    fn write(&mut self, offset: u64, size: u8, value: u64) {
        let mut disk = contended::lock(&self.0);
        disk.write(offset, size, value);
        note_disk_work(&disk);
        log_disk_error(&mut disk);
        update_disk_line(&disk);
    }
    fn irq_asserted(&self) -> bool {
        contended::lock(&self.0).irq_asserted()
    }
}

/// The guest's disk: emulated virtio-blk over QEMU's virtio-blk.
pub type Disk = VirtioMmio<VirtioBlk<HostBlock>>;

/// Why the VM could not be built; each names its fix.
#[derive(Debug)]
pub enum BuildError {
    NoKernel,
    Kernel(linux_image::ImageError),
    Dtb(guest_dtb::GuestDtbError),
    Stage2(crate::mm::stage2::Stage2Error),
    Load,
    NoHrtImage,
    Hrt(hvm::HrtBuildError),
}

impl core::fmt::Display for BuildError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoKernel => write!(f, "no guest kernel module"),
            Self::Kernel(e) => write!(f, "the guest kernel module is not a usable arm64 Linux Image: {e:?}"),
            Self::Dtb(e) => write!(f, "cannot build the guest device tree: {e:?}"),
            Self::Stage2(e) => write!(f, "cannot map guest RAM: {e:?}"),
            Self::Load => write!(f, "the guest images do not fit in guest RAM; raise mem="),
            Self::NoHrtImage => write!(
                f,
                "hvm=on needs an HRT image: give one with QEMU's guest-loader, e.g. \
                 -device guest-loader,addr=0x49000000,kernel=build/hrt.elf,bootargs=hrt"
            ),
            Self::Hrt(e) => write!(f, "{e}"),
        }
    }
}

/// Module bytes in host memory (modules are identity-mapped RAM outside guest RAM).
fn module_bytes(range: MemRange) -> &'static [u8] {
    // SAFETY: the memory plan checked every module lies in RAM outside hypervisor memory and
    // guest RAM; nothing writes to module memory after boot.
    unsafe { core::slice::from_raw_parts(range.start as *const u8, range.size as usize) }
}

/// Builds the VM: stage-2 map of guest RAM, devices, virtual GIC, and the boot images loaded.
/// A hybrid VM (`hvm`) splits `guest_ram_host` into ROS RAM and, above it, `hvm.hrt_mem` of
/// HRT RAM; the HRT is booted by [`Vm::start`].
pub fn build(
    platform: &HostPlatform,
    guest_ram_host: MemRange,
    vcpu_count: usize,
    pcpu_mpidr: Vec<u64>,
    hvm_options: Option<crate::options::HvmOptions>,
) -> Result<&'static Vm, BuildError> {
    let kernel_module = platform.kernel_module().ok_or(BuildError::NoKernel)?;
    let kernel = module_bytes(kernel_module.range);
    let initrd = platform.ramdisk_module().map(|m| module_bytes(m.range));
    let header = linux_image::parse(kernel).map_err(BuildError::Kernel)?;

    let hrt_mem = hvm_options.map_or(0, |h| h.hrt_mem);
    let ros_vcpus = hvm_options.map_or(vcpu_count, |h| h.ros_vcpus);
    let ram_ipa = MemRange::new(guest_map::RAM_BASE, guest_ram_host.size - hrt_mem);
    // The DTB's size is needed for the plan and the plan's initrd range for the DTB: plan with
    // a generous DTB bound first.
    const DTB_MAX: u64 = 64 << 10;
    let plan = linux_image::plan_load(ram_ipa, &header, kernel.len() as u64, initrd.map(|i| i.len() as u64), DTB_MAX)
        .map_err(BuildError::Kernel)?;
    let host_disk = HostBlock::probe(&platform.virtio_mmio);
    let entropy = EntropyPool::new(&EntropySources {
        host_rng_seed: &platform.rng_seed,
        host_kaslr_seed: platform.kaslr_seed,
        cpu_random: cpu::random_numbers(),
        counter: cpu::counter(),
    });
    let boot = BootImages {
        kernel,
        initrd,
        dtb: DtbInputs {
            vcpus: ros_vcpus,
            ram: ram_ipa,
            bootargs: kernel_module.bootargs.clone().unwrap_or_default(),
            virtio_mmio: (0..guest_map::VIRTIO_MMIO_SLOTS).map(virtio_slot).collect(),
            doorbell: hvm_options.map(|_| MemRange::new(guest_map::DOORBELL_BASE, guest_map::DOORBELL_SIZE)),
        },
        entropy: Mutex::new(entropy),
        plan,
    };

    let mut stage2 = GuestStage2::new(VMID);
    stage2.map_ram(Ipa(ram_ipa.start), HostPhys(guest_ram_host.start), ram_ipa.size).map_err(BuildError::Stage2)?;
    // SAFETY: the memory plan reserved guest_ram_host for the guest alone.
    let memory = unsafe { GuestMemory::new(ram_ipa, HostPhys(guest_ram_host.start)) };

    let uart = Arc::new(Mutex::new(Vpl011::new(Box::new(ConsoleSink))));
    let mut devices = DeviceManager::new();
    devices
        .add(
            MemRange::new(guest_map::UART_BASE, guest_map::UART_SIZE),
            Some(UART_INTID),
            Box::new(ConsoleUart(uart.clone())),
        )
        .expect("first device cannot overlap");
    let disk = host_disk.map(|backend| Arc::new(Mutex::new(VirtioMmio::new(VirtioBlk::new(backend), memory))));
    if let Some(disk) = &disk {
        devices.add(DISK_SLOT, None, Box::new(DiskDevice(disk.clone()))).expect("the disk slot is free");
    } else {
        log::info!("disk: none (no virtio-blk device on the QEMU command line)");
    }
    // Every other slot is an empty transport, as on QEMU virt.
    let first_empty = if disk.is_some() { 1 } else { 0 };
    for slot in (first_empty..guest_map::VIRTIO_MMIO_SLOTS).map(virtio_slot) {
        let range = MemRange::new(slot.base, slot.size);
        devices.add(range, None, Box::new(EmptySlot)).expect("virtio slots do not overlap");
    }

    let hrt = match hvm_options {
        Some(options) => {
            let module = platform.hrt_module().ok_or(BuildError::NoHrtImage)?;
            let ram = MemRange::new(ram_ipa.end(), options.hrt_mem);
            let partition = hvm::HrtPartition::new(
                ros_vcpus,
                options.hrt_vcpus,
                ram_ipa,
                ram,
                HostPhys(guest_ram_host.start),
                module_bytes(module.range),
                module.hrt_cmdline().into(),
            )
            .map_err(BuildError::Hrt)?;
            Some(partition)
        }
        None => None,
    };

    let placement = match &hrt {
        Some(hrt) => crate::sched::Placement::hybrid(vcpu_count, pcpu_mpidr.len(), hrt.first_vcpu, hrt.cores),
        None => crate::sched::Placement::uniform(vcpu_count, pcpu_mpidr.len()),
    };
    let vm = Vm {
        placement,
        vcpu_count,
        ros_vcpus,
        hrt,
        memory,
        stage2,
        vgic: new_vgic(vcpu_count, ros_vcpus),
        psci: Mutex::new(PsciState::new(ros_vcpus, ram_ipa.start, ram_ipa.size)),
        devices: Mutex::new(devices),
        uart,
        disk,
        boot,
        pcpu_mpidr,
    };
    vm.load_images()?;
    Ok(VM.call_once(|| vm))
}

/// How the vGIC's locks wait: spin briefly, then nap (see `contended`); the time goes into the
/// exit profile.
const VGIC_WAITER: Waiter = Waiter { begin: cpu::counter, pause: contended::pause, end: record_vgic_wait };

fn record_vgic_wait(started: u64) {
    let waited = cpu::counter() - started;
    stats::add_vgic(crate::profile::VgicStats { lock_waits: 1, lock_wait_ticks: waited, ..Default::default() });
}

fn new_vgic(vcpu_count: usize, ros_vcpus: usize) -> Vgic {
    let mut vgic = Vgic::new(vcpu_count);
    vgic.set_partition(ros_vcpus);
    vgic.set_waiter(VGIC_WAITER);
    // The guest's timers are the pCPU's: their interrupts are linked to the physical ones.
    vgic.set_hw_mapping(guest_map::PPI_VIRT_TIMER, guest_map::PPI_VIRT_TIMER);
    vgic.set_hw_mapping(guest_map::PPI_NONSECURE_PHYS_TIMER, guest_map::PPI_NONSECURE_PHYS_TIMER);
    vgic
}

impl Vm {
    /// Copies kernel, initrd and DTB into guest RAM where the load plan says.
    fn load_images(&self) -> Result<(), BuildError> {
        let plan = &self.boot.plan;
        self.memory.write(Ipa(plan.kernel.start), self.boot.kernel).map_err(|_| BuildError::Load)?;
        if let (Some(range), Some(initrd)) = (plan.initrd, self.boot.initrd) {
            self.memory.write(Ipa(range.start), initrd).map_err(|_| BuildError::Load)?;
        }
        let dtb = self.boot.build_dtb()?;
        if dtb.len() as u64 > plan.dtb.size {
            return Err(BuildError::Load);
        }
        self.memory.write(Ipa(plan.dtb.start), &dtb).map_err(|_| BuildError::Load)?;
        Ok(())
    }

    /// Starts the guest: its vCPU 0 and, in a hybrid VM, every HRT core.
    pub fn start(&self) -> Result<(), BuildError> {
        lifecycle::request_start(self, 0, self.boot.plan.entry, self.boot.plan.dtb.start);
        if let Some(hrt) = &self.hrt {
            hrt.boot(self).map_err(|e| BuildError::Hrt(hvm::HrtBuildError::Image(e)))?;
        }
        Ok(())
    }

    /// The VTTBR_EL2 value vCPU `vcpu` runs with: its partition's stage-2 table.
    pub fn vttbr(&self, vcpu: usize) -> u64 {
        match &self.hrt {
            Some(hrt) if hrt.contains_vcpu(vcpu) => hrt.stage2.vttbr(),
            _ => self.stage2.vttbr(),
        }
    }

    /// Whether `vcpu` belongs to a hybrid VM's HRT partition.
    pub fn is_hrt_vcpu(&self, vcpu: usize) -> bool {
        self.hrt.as_ref().is_some_and(|hrt| hrt.contains_vcpu(vcpu))
    }

    /// Forgets the timer interrupts posted to `vcpus` and never taken (they are reset).
    pub fn drop_posted(&self, vcpus: core::ops::Range<usize>) {
        for vcpu in vcpus {
            if let Some(mailbox) = MAILBOXES.get(vcpu) {
                mailbox.take();
            }
        }
    }

    /// PSCI SYSTEM_RESET (or a hybrid VM's ROS reset): the guest starts again from a clean
    /// state: images reloaded, its part of the virtual GIC, PSCI states, the UART and the disk
    /// reset. The caller stopped its vCPUs and restarts vCPU 0. A hybrid VM's HRT is untouched.
    pub fn reset_ros(&self) {
        // First the disk: its reset waits for the host device's transfers in flight, which
        // could otherwise land in guest RAM after the new images.
        if let Some(disk) = &self.disk {
            let mut disk = disk.lock();
            disk.reset();
            note_disk_work(&disk);
        }
        if let Err(error) = self.load_images() {
            log::error!("guest reset failed: {error}");
        }
        self.vgic.reset_ros();
        // Interrupts posted for the old guest and never taken are not the new guest's.
        self.drop_posted(0..self.ros_vcpus);
        *self.psci.lock() = PsciState::new(self.ros_vcpus, self.memory.ipa.start, self.memory.ipa.size);
        *self.uart.lock() = Vpl011::new(Box::new(ConsoleSink));
    }

    /// Makes the given vCPUs re-evaluate their interrupts: flag them (their next entry refills
    /// their list registers) and kick the pCPUs they live on (a vCPU on this pCPU sees the
    /// change at its next entry or scheduling decision).
    pub fn kick(&self, kick: crate::gic::Kick) {
        let me = crate::arch::aarch64::cpu::current_index();
        let mut kicked = 0u32;
        for vcpu in kick.iter() {
            // Before the physical kick, which the target's exit path answers by reading this.
            ATTENTION[vcpu].store(true, Ordering::Release);
            let home = self.placement.home(vcpu);
            if home != me && kicked & (1 << home) == 0 {
                kicked |= 1 << home;
                if let Some(&mpidr) = self.pcpu_mpidr.get(home) {
                    pgic::kick(mpidr);
                }
            }
        }
    }

    /// Takes the timer PPIs posted to the vCPU whose (locked) interrupt state `gic` is into
    /// it. Only on the pCPU that vCPU is loaded on, once its list registers are synced (see
    /// `gic::mailbox`).
    pub fn take_posted(&self, gic: &mut VcpuGic) {
        let _ = gic.take_posted_ppis(&MAILBOXES);
    }

    /// The guest's timer `intid` fired on loaded vCPU `vcpu`: posts it (no vGIC lock) and flags
    /// the vCPU, whose next entry makes it pending and flushes.
    pub fn post_timer(&self, vcpu: usize, intid: u32) {
        if let Some(mailbox) = MAILBOXES.get(vcpu) {
            mailbox.post_ppi(intid);
            self.kick(crate::gic::Kick::vcpu(vcpu));
        }
    }

    /// `sender`'s write of `value` to ICC_SGI1R_EL1: makes the SGI pending on its targets and
    /// kicks those that must look; returns them.
    pub fn send_sgi(&self, sender: usize, value: u64) -> crate::gic::Kick {
        let kick = self.vgic.send_sgi(sender, value);
        self.kick(kick);
        kick
    }

    /// Whether vCPU `vcpu` was kicked since the last call (and clears the flag).
    pub fn take_attention(&self, vcpu: usize) -> bool {
        ATTENTION.get(vcpu).is_some_and(|flag| flag.swap(false, Ordering::Acquire))
    }

    /// Sets a device's interrupt line in the virtual GIC and kicks whoever that concerns.
    pub fn set_line(&self, line: IrqLine) {
        let kick = self.vgic.set_level(line.intid, 0, line.asserted);
        self.kick(kick);
    }

    /// Serves one more pass of the disk's notified requests if some wait. Cheap when none
    /// wait (one atomic load): it runs on every guest exit, and a pass already running on
    /// another pCPU is not waited for.
    ///
    /// A pass (walking the queue, starting transfers, serving flushes and bounced requests on
    /// the spot) takes CPU time from somewhere. An idle
    /// pCPU (`idle`) serves pass after pass: no vCPU waits for it. A pCPU that runs vCPUs
    /// serves at most half of the time: after a pass, none until as long again has passed, so a
    /// guest that floods its disk cannot starve its own other vCPUs.
    ///
    /// An idle pCPU also polls the host disk for requests in flight instead of sleeping: a
    /// completion then reaches the guest without the wake-up of a sleeping QEMU thread (tens of
    /// microseconds on this host), the interrupt path's cost, for requests that take hundreds.
    pub fn serve_unserved_io(&self, idle: bool) -> IoPass {
        if !DISK_UNSERVED.load(Ordering::Acquire) {
            if idle && DISK_IN_FLIGHT.load(Ordering::Acquire) {
                return self.poll_disk_io();
            }
            // Nothing in flight any more (another pCPU took the last completions): a poller
            // lets go before it sleeps, or the disk's interrupt would stay off for the next
            // requests while it sleeps. (Only an idle pCPU polls.)
            if idle {
                self.stop_polling_disk();
            }
            return IoPass::NothingWaits;
        }
        let start = cpu::counter();
        if !idle && start < NEXT_BUSY_PASS_AT.load(Ordering::Relaxed) {
            return IoPass::Deferred;
        }
        let Some(mut disk) = self.disk.as_ref().and_then(|disk| disk.try_lock()) else {
            return IoPass::Deferred;
        };
        disk.serve_unserved();
        let end = cpu::counter();
        NEXT_BUSY_PASS_AT.store(end + (end - start), Ordering::Relaxed);
        let more = disk.has_unserved();
        note_disk_work(&disk);
        log_disk_error(&mut disk);
        update_disk_line(&disk);
        IoPass::Ran { more }
    }

    /// The host disk's interrupt (GIC INTID), if there is a disk.
    pub fn host_disk_interrupt(&self) -> Option<u32> {
        self.disk.as_ref().map(|disk| contended::lock(disk).device().backend().interrupt_id())
    }

    /// The host disk finished requests (its interrupt): completes them towards the guest and
    /// updates the guest disk's line.
    pub fn complete_disk_io(&self) {
        let Some(disk) = self.disk.as_ref() else {
            return;
        };
        let mut disk = contended::lock(disk);
        disk.device_mut().backend_mut().acknowledge_interrupt();
        disk.poll_completions();
        self.finish_disk_completions(disk);
    }

    /// An idle pCPU's look at the host disk's requests in flight (see `serve_unserved_io`). One
    /// idle pCPU at a time polls, with the host disk's interrupt suppressed (no interrupt to
    /// take and acknowledge for what it sees anyway); it lets go in [`Vm::stop_polling_disk`].
    fn poll_disk_io(&self) -> IoPass {
        let me = cpu::current_index() + 1;
        let Some(mut disk) = self.disk.as_ref().and_then(|disk| disk.try_lock()) else {
            return IoPass::Deferred;
        };
        match DISK_POLLER.load(Ordering::Relaxed) {
            0 => {
                DISK_POLLER.store(me, Ordering::Relaxed);
                disk.device_mut().backend_mut().set_interrupts(false);
            }
            poller if poller != me => return IoPass::Deferred,
            _ => {}
        }
        let completed = disk.device().backend().has_completed();
        if completed {
            disk.poll_completions();
        }
        let more = disk.device().backend().transfers_in_flight() > 0;
        if !more {
            DISK_POLLER.store(0, Ordering::Relaxed);
            disk.device_mut().backend_mut().set_interrupts(true);
        }
        // Most looks find nothing: the guest disk's state and line are unchanged then.
        if completed {
            self.finish_disk_completions(disk);
        }
        IoPass::Ran { more }
    }

    /// This pCPU stops polling the host disk, if it did (its idle wait ended): the disk's
    /// interrupt is back on, and whatever completed while it was off is taken now.
    pub fn stop_polling_disk(&self) {
        let me = cpu::current_index() + 1;
        if DISK_POLLER.load(Ordering::Relaxed) != me {
            return;
        }
        let Some(disk) = self.disk.as_ref() else {
            return;
        };
        let mut disk = contended::lock(disk);
        DISK_POLLER.store(0, Ordering::Relaxed);
        disk.device_mut().backend_mut().set_interrupts(true);
        // A completion while the interrupt was off raised none.
        if disk.device().backend().has_completed() {
            disk.poll_completions();
            self.finish_disk_completions(disk);
        }
    }

    /// Publishes the disk's state after its completions were taken and updates its line.
    fn finish_disk_completions(&self, mut disk: spin::MutexGuard<'_, Disk>) {
        note_disk_work(&disk);
        log_disk_error(&mut disk);
        update_disk_line(&disk);
    }

    /// Pulls typed input into the guest's UART (console IRQ) and updates its line.
    pub fn receive_console_input(&self) {
        let asserted = {
            let mut uart = self.uart.lock();
            irq::pump_console_input(&mut uart);
            uart.irq_asserted()
        };
        self.set_line(IrqLine { intid: UART_INTID, asserted });
    }
}
