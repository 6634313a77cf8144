//! Bring-up of the hypervisor on the boot pCPU and the secondaries: heap, console, options,
//! memory plan, MMU, pCPU start-up and the banner.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use aarch64_cpu::registers::{Writeable, VBAR_EL2};
use buddy_system_allocator::LockedHeap;

use crate::arch::aarch64::{cpu, firmware, gic, mmu};
use crate::boot::banner::write_banner;
use crate::boot::host_dtb::{self, HostPlatform};
use crate::console::logger::{self, Logger};
use crate::console::{CONSOLE, LOG_PREFIX};
use crate::mm::layout::{self, PlanInput};
use crate::mm::MemRange;
use crate::options;
use crate::vm;

/// Buddy orders: blocks up to 2^32 bytes.
#[global_allocator]
static HEAP: LockedHeap<33> = LockedHeap::empty();

/// A small heap in .bss used until the memory plan says where the real one goes (parsing the
/// DTB needs a few allocations).
const EARLY_HEAP_SIZE: usize = 256 << 10;
#[repr(C, align(4096))]
struct EarlyHeap([u8; EARLY_HEAP_SIZE]);
static mut EARLY_HEAP: EarlyHeap = EarlyHeap([0; EARLY_HEAP_SIZE]);

/// Stack size of each secondary pCPU.
const SECONDARY_STACK_SIZE: usize = 64 << 10;

/// Initial SP for each secondary pCPU, read by `secondary_entry` in `boot.S`.
#[no_mangle]
static SECONDARY_STACK_TOPS: [AtomicU64; cpu::MAX_PCPUS] = [const { AtomicU64::new(0) }; cpu::MAX_PCPUS];

/// Which pCPUs have come up.
static ONLINE: [AtomicBool; cpu::MAX_PCPUS] = [const { AtomicBool::new(false) }; cpu::MAX_PCPUS];

/// Set once the VM exists; secondary pCPUs wait for it before parking for their vCPUs.
static GUEST_READY: AtomicBool = AtomicBool::new(false);

/// Used when the DTB cannot be read, so the failure can still be reported: QEMU virt's UART.
const QEMU_VIRT_PL011: usize = 0x0900_0000;

/// How long a secondary pCPU may take to answer CPU_ON.
const SECONDARY_TIMEOUT_MS: u64 = 5000;

static LOGGER: Logger<crate::console::Console> = Logger { sink: &CONSOLE };

extern "C" {
    static el2_vectors: u8;
    static __image_start: u8;
    static __image_end: u8;
    fn secondary_entry();
}

/// Prints a fatal boot error with its fix and powers the machine off.
fn fatal(args: core::fmt::Arguments<'_>) -> ! {
    CONSOLE.write_text(format_args!("{LOG_PREFIX}ERROR: {args}\n{LOG_PREFIX}powering off\n"));
    CONSOLE.flush();
    firmware::system_off()
}

fn install_vectors() {
    // SAFETY: only the symbol's address is taken.
    VBAR_EL2.set(unsafe { &el2_vectors } as *const u8 as u64);
}

/// The boot pCPU: from `rust_main` with the MMU off.
pub fn primary(dtb_address: usize) -> ! {
    cpu::set_current_index(0);
    install_vectors();
    // SAFETY: EARLY_HEAP is used only here, once, to seed the allocator.
    unsafe {
        let early = core::ptr::addr_of_mut!(EARLY_HEAP) as usize;
        HEAP.lock().init(early, EARLY_HEAP_SIZE);
    }

    // SAFETY: QEMU passes a DTB address in x0 (arm64 Image boot protocol); reading its header
    // tells us how long it is, and RAM is identity-accessible with the MMU off.
    let dtb_header = unsafe { core::slice::from_raw_parts(dtb_address as *const u8, 64) };
    let dtb_size = host_dtb::total_size(dtb_header).unwrap_or(0);
    // SAFETY: as above, for the whole blob whose size the header gives.
    let dtb = unsafe { core::slice::from_raw_parts(dtb_address as *const u8, dtb_size) };
    let platform = match HostPlatform::from_dtb(dtb) {
        Ok(platform) => platform,
        Err(error) => {
            // SAFETY: QEMU virt's PL011 is at this address; the MMU is off so it is device memory.
            unsafe { CONSOLE.init(QEMU_VIRT_PL011) };
            fatal(format_args!("cannot read the host device tree at {dtb_address:#x}: {error}"))
        }
    };
    let uart = platform.uart.map_or(QEMU_VIRT_PL011, |u| u.start as usize);
    // SAFETY: the DTB's PL011; GiB 0 stays device memory in the EL2 map built below.
    unsafe { CONSOLE.init(uart) };

    mmu::build(&platform.memory);
    mmu::enable();
    let _ = log::set_logger(&LOGGER);

    let opts = match options::parse(&platform.bootargs, platform.cpus.len().min(cpu::MAX_PCPUS)) {
        Ok(opts) => opts,
        Err(error) => fatal(format_args!("{error}\n{LOG_PREFIX}{}", options::USAGE)),
    };
    logger::set_level(opts.log_level);
    if let Some(conduit) = platform.psci {
        firmware::set_conduit(conduit);
    }

    // SAFETY: only the symbols' addresses are taken.
    let image = unsafe {
        let start = &__image_start as *const u8 as u64;
        MemRange::new(start, &__image_end as *const u8 as u64 - start)
    };
    let modules: Vec<MemRange> = platform.modules.iter().map(|m| m.range).collect();
    // A hybrid VM's HRT RAM lies directly above the ROS's: one block backs both.
    let guest_mem = match opts.hvm {
        Some(hvm) => Some(opts.guest_mem.unwrap_or(layout::DEFAULT_GUEST_MEM) + hvm.hrt_mem),
        None => opts.guest_mem,
    };
    let plan = match layout::plan(&PlanInput {
        ram: &platform.memory,
        image,
        dtb: MemRange::new(dtb_address as u64, dtb_size as u64),
        modules: &modules,
        guest_mem,
    }) {
        Ok(plan) => plan,
        Err(error) if opts.hvm.is_some() => {
            fatal(format_args!("{error} (a hybrid VM needs mem= of ROS RAM plus hrt_mem= of HRT RAM: lower them)"))
        }
        Err(error) => fatal(format_args!("{error}")),
    };
    // SAFETY: the plan gives the heap RAM that nothing else uses (outside the image, the DTB,
    // the modules and guest RAM).
    unsafe { HEAP.lock().add_to_heap(plan.heap.start as usize, plan.heap.end() as usize) };

    extern "C" {
        static __boot_stack_top: u8;
    }
    // SAFETY: only the symbol's address is taken.
    vm::run::set_stack_top(0, unsafe { &__boot_stack_top } as *const u8 as u64);
    gic::init_primary(
        platform.gic.as_ref().unwrap_or_else(|| fatal(format_args!("the host DTB has no GICv3"))),
        platform.cpus.len(),
    );
    start_secondaries(&platform);

    let online: Vec<bool> = (0..platform.cpus.len()).map(|i| ONLINE[i].load(Ordering::Acquire)).collect();
    let mut banner = String::new();
    let _ = write_banner(&mut banner, &platform, &online);
    for line in banner.lines() {
        log::info!("{line}");
    }
    log::info!("hypervisor memory {}, heap {}", plan.hypervisor, plan.heap);
    log::info!("guest RAM backed by {}", plan.guest_ram);

    if platform.kernel_module().is_none() {
        fatal(format_args!(
            "no guest kernel: give one with QEMU's guest-loader, e.g. \
             -device guest-loader,addr=0x44000000,kernel=Image,bootargs=\"console=ttyAMA0\" \
             (and optionally -device guest-loader,addr=0x4A000000,initrd=initramfs.cpio.gz)"
        ));
    }
    let pcpus = platform.cpus.len().min(cpu::MAX_PCPUS);
    let vcpus = match opts.hvm {
        Some(hvm) => hvm.total_vcpus(),
        None => opts.vcpus.unwrap_or(pcpus),
    };
    if opts.hvm.is_none() && platform.hrt_module().is_some() {
        log::warn!("a guest-loader module with bootargs 'hrt' is ignored: it is an HRT image and hvm=on is not set");
    }
    let mpidrs: Vec<u64> = pcpu_mpidrs(&platform).into_iter().take(vcpus).collect();
    if vcpus > pcpus {
        log::info!("{vcpus} vCPUs on {pcpus} pCPUs: time-sliced ({} ms slices)", vm::run::TIME_SLICE_MS);
    }
    let vm = match vm::build(&platform, plan.guest_ram, vcpus, mpidrs, opts.hvm) {
        Ok(vm) => vm,
        Err(error) => fatal(format_args!("{error}")),
    };
    let guest_vcpus = vm.ros_vcpus;
    log::info!(
        "guest: {guest_vcpus} vCPU(s), kernel at IPA {:#x}, entry {:#x}, DTB at {:#x}{}",
        vm.boot.plan.kernel.start,
        vm.boot.plan.entry,
        vm.boot.plan.dtb.start,
        match vm.boot.plan.initrd {
            Some(r) => alloc::format!(", initrd at {:#x} ({} bytes)", r.start, r.size),
            None => String::new(),
        }
    );
    if let Some(hrt) = &vm.hrt {
        log::info!(
            "hybrid VM: ROS vCPUs 0-{} with RAM {}, HRT vCPUs {}-{} with RAM {}, doorbell at {:#x}",
            vm.ros_vcpus - 1,
            vm.memory.ipa,
            hrt.first_vcpu,
            hrt.first_vcpu + hrt.cores - 1,
            hrt.ram,
            crate::guest_map::DOORBELL_BASE
        );
    }
    gic::enable_shared(vm::irq::HOST_UART_INTID, true);
    vm::irq::enable_host_disk_interrupt();
    CONSOLE.set_receive_interrupt(true);
    GUEST_READY.store(true, Ordering::Release);
    aarch64_cpu::asm::sev();
    if let Err(error) = vm.start() {
        fatal(format_args!("{error}"));
    }
    vm::run::run_pcpu(0)
}

/// MPIDRs of the pCPUs in logical-index order (boot pCPU first).
fn pcpu_mpidrs(platform: &HostPlatform) -> Vec<u64> {
    let boot = cpu::current_mpidr();
    let mut mpidrs = alloc::vec![boot];
    mpidrs.extend(platform.cpus.iter().map(|c| c.mpidr).filter(|&m| m != boot));
    mpidrs.truncate(cpu::MAX_PCPUS);
    mpidrs
}

/// Starts every other pCPU through the firmware's PSCI CPU_ON and waits for each to report.
fn start_secondaries(platform: &HostPlatform) {
    let boot_mpidr = cpu::current_mpidr();
    ONLINE[0].store(true, Ordering::Release);
    let mut next_index = 1;
    for cpu_info in &platform.cpus {
        if cpu_info.mpidr == boot_mpidr {
            continue;
        }
        if next_index >= cpu::MAX_PCPUS {
            log::warn!("pCPU mpidr={:#x} ignored: at most {} pCPUs are supported", cpu_info.mpidr, cpu::MAX_PCPUS);
            continue;
        }
        let index = next_index;
        next_index += 1;
        let stack: &'static mut [u8] = Vec::leak(alloc::vec![0u8; SECONDARY_STACK_SIZE]);
        let stack_top = stack.as_ptr_range().end as u64 & !0xf;
        SECONDARY_STACK_TOPS[index].store(stack_top, Ordering::Release);
        vm::run::set_stack_top(index, stack_top);
        let entry = secondary_entry as *const () as u64;
        if let Err(error) = firmware::cpu_on(cpu_info.mpidr, entry, index as u64) {
            log::error!("pCPU {index} (mpidr={:#x}) did not start: {error:?}", cpu_info.mpidr);
            continue;
        }
        if !cpu::wait_until(SECONDARY_TIMEOUT_MS, || ONLINE[index].load(Ordering::Acquire)) {
            log::error!("pCPU {index} (mpidr={:#x}) did not come online", cpu_info.mpidr);
        }
    }
}

/// A secondary pCPU: from `secondary_main` with the MMU off and its own stack.
pub fn secondary(index: usize) -> ! {
    cpu::set_current_index(index);
    mmu::enable();
    install_vectors();
    gic::init_secondary(index);
    ONLINE[index].store(true, Ordering::Release);
    log::debug!("pcpu{index} online (mpidr={:#x})", cpu::current_mpidr());
    while !GUEST_READY.load(Ordering::Acquire) {
        aarch64_cpu::asm::wfe();
    }
    vm::run::run_pcpu(index)
}
