//! The HRT build's random operations. Operation `index` of HRT core `core` is drawn from its
//! own generator (`Rng::for_op(seed, core, index)`): a class by weight, then everything else.
//! The access forms, system-register tables, hints and call stubs are the Linux build's; the
//! targets follow hrt/memory.rs's rules (nothing that would break the ROS rather than test the
//! hypervisor). The calls (the main point: random 0xf00d sub-operations) are in hrt/calls.rs.

use core::sync::atomic::{AtomicU64, Ordering};

use super::memory::{Layout, DEVICE_GIB_END, VIRTIO_BASE, VIRTIO_WINDOW};
use super::{calls, gic_regs};
use crate::dtb::MAX_CPUS;
use crate::exceptions::{CURRENT_OP, IFETCH_TARGET};
use crate::gic::{self, GICD_BASE, GICD_SIZE, GICR_BASE, GICR_STRIDE};
use crate::mmu::{ALIAS_VA, BLOCK_SIZE, FAR_END_ADDRESS, NORMAL_END_ADDRESS, TOP_PA, TOP_VA};
use crate::rng::Rng;
use crate::sysregs::{self, Encoding, Name, READS, SYS_OPS, WRITES};
use crate::uart::{println, UART_BASE, UART_SIZE};
use crate::{arch, ops, timer};
use hvm_ros_lib::abi::hrt_boot::LINEAR_MAP_BASE;

/// What an operation runs with.
pub struct Ctx {
    /// This vCPU (MPIDR Aff0): indexes the per-CPU counters and names its redistributor.
    pub cpu: usize,
    pub layout: Layout,
    pub trace: bool,
    pub index: u64,
    pub qemu_bugs: bool,
    pub spare_vtimer: bool,
}

/// Operation classes: names (for `classes=` and the summary) and weights.
pub const CLASSES: [&str; 11] =
    ["hvm", "call", "console", "mem", "fetch", "sysreg-read", "sysreg-write", "sys", "gic", "wait", "sgi"];
const WEIGHTS: [u32; 11] = [28, 10, 3, 20, 2, 10, 8, 3, 10, 3, 3];
const CLASS_COUNT: usize = CLASSES.len();

/// Operations run per CPU and class.
static OPS: [[AtomicU64; CLASS_COUNT]; MAX_CPUS] = [const { [const { AtomicU64::new(0) }; CLASS_COUNT] }; MAX_CPUS];

/// How far around a window the fuzzer strays.
const AROUND: u64 = 0x1000;
/// Device space nothing is assigned to (as in ops/access.rs).
const UNASSIGNED: (u64, u64) = (0x0C00_0000, 0x1000_0000);
/// The doorbell page (the hypervisor's guest map): a ROS process's calls; from the HRT, an
/// unassigned address.
const DOORBELL: u64 = 0x0B00_0000;
const DOORBELL_SIZE: u64 = 0x1000;
/// Forms whose fault reports the aligned block rather than the address.
const CACHE_BLOCK: u64 = 64;
/// Cache maintenance that never changes memory's contents (clean, or clean and invalidate):
/// allowed on ROS RAM.
const HARMLESS_MAINTENANCE: [&str; 4] = ["dc civac", "dc cvac", "dc cvau", "ic ivau"];
/// Reads that acknowledge an interrupt (ICC_IAR0/1_EL1, ICC_NMIAR1_EL1): skipped with
/// `spare=vtimer`, as in the Linux build (ops/sysreg.rs).
const ACKNOWLEDGES: [Encoding; 3] = [(3, 0, 12, 8, 0), (3, 0, 12, 12, 0), (3, 0, 12, 9, 5)];
/// The SGI generation registers: a random value could signal the ROS's vCPUs.
const SGI_REGISTERS: [Encoding; 3] = [(3, 0, 12, 11, 5), (3, 0, 12, 11, 6), (3, 0, 12, 11, 7)];
/// ICC_SGI*R_EL1 fields: TargetList [15:0], INTID [27:24], IRM [40] (every vCPU but this one).
const SGI_TARGETS: u64 = 0xffff;
const SGI_INTID_SHIFT: u32 = 24;
const SGI_IRM: u64 = 1 << 40;
const SGIS: u64 = 16;
/// ICC_BPR1_EL1.BinaryPoint (see ops/sysreg.rs: QEMU aborts on RES0 bits set).
const ICC_BPR_MASK: u64 = 0b111;
/// Hint table slots (asm/ops.S): 8 bytes each, the first is WFI.
const HINT_SLOT: usize = 8;
const HINT_WFI: usize = 0;
const WFI_WAKE_US: u64 = 100;
/// CNTV_CTL_EL0.ISTATUS: the timer condition is met.
const TIMER_ISTATUS: u64 = 1 << 2;

extern "C" {
    fn fuzz_ifetch(target: u64);
    fn fuzz_hint_table();
    fn fuzz_hint_table_end();
    fn fuzz_hrt_same_value_store(value: u64, address: u64) -> u64;
}

/// The class bits `classes=a,b,...` names (all classes for an empty list); `None` if a name is
/// unknown.
pub fn parse_classes(list: &[u8]) -> Option<u32> {
    ops::parse_class_names(list, &CLASSES)
}

/// Operations run by all CPUs, per class.
pub fn totals() -> [u64; CLASS_COUNT] {
    ops::sum_per_class(&OPS)
}

/// Runs operation `index` of HRT core `core`'s stream.
pub fn run(seed: u64, core: usize, index: u64, enabled: u32, ctx: &Ctx) {
    let mut rng = Rng::for_op(seed, core, index);
    let weights: [u32; CLASS_COUNT] = core::array::from_fn(|c| if enabled & (1 << c) != 0 { WEIGHTS[c] } else { 0 });
    let class = rng.weighted(&weights);
    CURRENT_OP[ctx.cpu].store(index, Ordering::Relaxed);
    OPS[ctx.cpu][class].fetch_add(1, Ordering::Relaxed);
    match class {
        0 => calls::hvm(&mut rng, ctx),
        1 => calls::smccc(&mut rng, ctx),
        2 => calls::console(&mut rng, ctx),
        3 => access(&mut rng, ctx),
        4 => fetch(&mut rng, ctx),
        5 => sysreg_read(&mut rng, ctx),
        6 => sysreg_write(&mut rng, ctx),
        7 => sys(&mut rng, ctx),
        8 => gic_regs::access(&mut rng, ctx),
        9 => wait_or_hint(&mut rng, ctx),
        _ => sgi(&mut rng, ctx),
    }
}

fn around(rng: &mut Rng, base: u64, size: u64) -> u64 {
    base.saturating_sub(AROUND) + rng.below(size + 2 * AROUND)
}

/// A target: its guest-physical address, the virtual address that reaches it, and whether a
/// store there may at least write back what is there (ROS RAM).
struct Target {
    ipa: u64,
    va: u64,
    same_value_only: bool,
}

fn pick_target(rng: &mut Rng, ctx: &Ctx) -> Target {
    let layout = &ctx.layout;
    let ram = layout.ram();
    let device_ipa = match rng.below(16) {
        0 | 1 => around(rng, GICR_BASE + GICR_STRIDE * ctx.cpu as u64, GICR_STRIDE),
        2 => around(rng, GICR_BASE, GICR_STRIDE * (layout.vcpus() as u64 + 1)),
        3 => around(rng, GICD_BASE, GICD_SIZE),
        4 => around(rng, UART_BASE as u64, UART_SIZE),
        5 => around(rng, VIRTIO_BASE, VIRTIO_WINDOW),
        6 => around(rng, DOORBELL, DOORBELL_SIZE),
        7 => rng.range(UNASSIGNED.0, UNASSIGNED.1),
        8 => rng.below(DEVICE_GIB_END),
        9 => {
            let ipa = match rng.below(3) {
                0 => rng.range(ram.end(), NORMAL_END_ADDRESS),
                1 => rng.range(NORMAL_END_ADDRESS, FAR_END_ADDRESS),
                _ => TOP_PA + rng.below(BLOCK_SIZE),
            };
            let va = if ipa >= TOP_PA { TOP_VA + (ipa - TOP_PA) } else { ipa };
            return Target { ipa, va, same_value_only: false };
        }
        10 | 11 => {
            let ipa = layout.data.pick(rng, CACHE_BLOCK, 1);
            let va = if rng.percent(70) { ipa } else { LINEAR_MAP_BASE + ipa };
            return Target { ipa, va, same_value_only: false };
        }
        12 | 13 => {
            let ipa = layout.ros.pick(rng, CACHE_BLOCK, 1);
            let va = match rng.below(3) {
                0 => ipa,
                1 => LINEAR_MAP_BASE + ipa,
                _ => super::mmu::ro_alias_va(layout, (ipa - layout.ros.start) % super::mmu::RO_ALIAS_SIZE),
            };
            return Target { ipa, va, same_value_only: true };
        }
        14 => {
            // Anywhere in HRT RAM (image, stacks, tables, boot info): loads only.
            let ipa = layout.hrt.pick(rng, CACHE_BLOCK, 1);
            let va = if rng.percent(50) { ipa } else { LINEAR_MAP_BASE + ipa };
            return Target { ipa, va, same_value_only: false };
        }
        _ => {
            // The linear map ends with RAM: a translation fault at stage 1, in the guest.
            let ipa = rng.range(ram.end(), ram.end() + BLOCK_SIZE);
            return Target { ipa, va: LINEAR_MAP_BASE + ipa, same_value_only: false };
        }
    };
    // Device memory through the identity map, the normal non-cacheable alias (unaligned
    // accesses, pairs and exclusives reach the hypervisor) or the hypervisor's linear map.
    let va = match rng.below(4) {
        0 | 1 => device_ipa,
        2 => ALIAS_VA + device_ipa,
        _ => LINEAR_MAP_BASE + device_ipa,
    };
    Target { ipa: device_ipa, va, same_value_only: false }
}

/// One random load, store or cache maintenance operation (a store only where allowed).
fn access(rng: &mut Rng, ctx: &Ctx) {
    let target = pick_target(rng, ctx);
    let mut index = rng.below(ops::FORM_COUNT as u64) as usize;
    let (name, size, store) = ops::form(index);
    let va = if rng.percent(70) { target.va & !(size.min(8) - 1) } else { target.va };
    let ipa = target.ipa.wrapping_add(va.wrapping_sub(target.va));
    let allowed = ctx.layout.store_allowed(ctx.cpu, ipa, size.max(CACHE_BLOCK));
    let harmless = target.same_value_only && HARMLESS_MAINTENANCE.contains(&name);
    if store && !allowed && !harmless {
        if target.same_value_only && rng.percent(50) {
            let aligned = va & !7;
            if ctx.trace {
                println!("FUZZ: op cpu={} #{} same-value store va={aligned:#x}", ctx.cpu, ctx.index);
            }
            crate::exceptions::expect_access(aligned, aligned + 8);
            // SAFETY: asm/hrt_entry.S: an exclusive load and a store of the same value that
            // fails if anyone wrote in between, so memory never changes; a fault is stepped over
            // (the routine is in .fuzz_code).
            unsafe { fuzz_hrt_same_value_store(0, aligned) };
            crate::exceptions::expect_access(0, 0);
            return;
        }
        index = rng.below(ops::LOAD_FORMS) as usize;
    }
    let (name, size, _) = ops::form(index);
    if !ctx.layout.load_allowed(ipa, size.max(CACHE_BLOCK)) {
        return;
    }
    let (value, value2) = (rng.value(), rng.value());
    if ctx.trace {
        println!("FUZZ: op cpu={} #{} access {name} ipa={ipa:#x} va={va:#x} value={value:#x}", ctx.cpu, ctx.index);
    }
    ops::run_form(index, va, value, value2);
}

/// An instruction fetch where nothing is: above RAM, device space through the executable
/// alias, or through mappings that forbid execution (never ROS or HRT RAM).
fn fetch(rng: &mut Rng, ctx: &Ctx) {
    let target = match rng.below(4) {
        0 => rng.range(ctx.layout.ram().end(), NORMAL_END_ADDRESS),
        1 => ALIAS_VA + rng.below(DEVICE_GIB_END),
        2 => LINEAR_MAP_BASE + rng.below(DEVICE_GIB_END),
        _ => TOP_VA + rng.below(BLOCK_SIZE),
    } & !3;
    if ctx.trace {
        println!("FUZZ: op cpu={} #{} fetch va={target:#x}", ctx.cpu, ctx.index);
    }
    IFETCH_TARGET[ctx.cpu].store(target, Ordering::Relaxed);
    // SAFETY: nothing executable is mapped at the target (see above): the fetch aborts and the
    // handler resumes after the branch. Should something run there, that is the finding.
    unsafe { fuzz_ifetch(target) };
    IFETCH_TARGET[ctx.cpu].store(0, Ordering::Relaxed);
}

fn sysreg_read(rng: &mut Rng, ctx: &Ctx) {
    let mut index = rng.below(READS.len() as u64) as usize;
    if ctx.spare_vtimer && ACKNOWLEDGES.contains(&READS[index]) {
        index = (index + 1) % READS.len();
    }
    if ctx.trace {
        println!("FUZZ: op cpu={} #{} mrs {}", ctx.cpu, ctx.index, Name(READS[index]));
    }
    sysregs::read(index, 0);
}

/// A value for an SGI generation register that signals HRT vCPUs or vCPUs that do not exist:
/// never the ROS's (its SGIs are Linux's IPIs; a stray IPI_CPU_STOP would stop a CPU).
fn sgi_value(rng: &mut Rng, layout: &Layout) -> u64 {
    let hrt = ((1u64 << layout.hrt_cores) - 1) << layout.first_hrt_vcpu;
    let absent = SGI_TARGETS & !((1u64 << layout.vcpus()) - 1);
    let targets = rng.next() & (hrt | absent);
    let fields = if rng.percent(60) { rng.below(SGIS) << SGI_INTID_SHIFT } else { rng.value() };
    (fields & !(SGI_IRM | SGI_TARGETS)) | targets
}

fn sysreg_write(rng: &mut Rng, ctx: &Ctx) {
    let index = rng.below(WRITES.len() as u64) as usize;
    let mut value = rng.value();
    if SGI_REGISTERS.contains(&WRITES[index]) {
        value = sgi_value(rng, &ctx.layout);
    }
    if WRITES[index] == sysregs::ICC_BPR1_EL1 && !ctx.qemu_bugs {
        value &= ICC_BPR_MASK;
    }
    if ctx.trace {
        println!("FUZZ: op cpu={} #{} msr {} value={value:#x}", ctx.cpu, ctx.index, Name(WRITES[index]));
    }
    sysregs::write(index, value);
}

/// A `sys` operation (TLB, cache, address translation) with an address the fuzzer may lose:
/// DATA, or where nothing is.
fn sys(rng: &mut Rng, ctx: &Ctx) {
    let index = rng.below(SYS_OPS.len() as u64) as usize;
    let address = if rng.percent(50) {
        ctx.layout.data.pick(rng, CACHE_BLOCK, 1)
    } else {
        rng.range(ctx.layout.ram().end(), NORMAL_END_ADDRESS)
    };
    if ctx.trace {
        println!("FUZZ: op cpu={} #{} sys {} x0={address:#x}", ctx.cpu, ctx.index, Name(SYS_OPS[index]));
    }
    sysregs::sys(index, address);
}

fn hint(index: usize) {
    let entry = fuzz_hint_table as *const () as usize + index * HINT_SLOT;
    // SAFETY: slot `index` of the hint table (asm/ops.S): one hint or barrier and `ret`, no
    // register or memory effects (WFI only returns after an interrupt; the caller armed the
    // timer).
    unsafe { core::arch::asm!("blr {entry}", entry = in(reg) entry, clobber_abi("C")) };
}

/// A hint or a barrier; a WFI with the virtual timer armed to end it.
fn wait_or_hint(rng: &mut Rng, ctx: &Ctx) {
    let slots = (fuzz_hint_table_end as *const () as usize - fuzz_hint_table as *const () as usize) / HINT_SLOT;
    let index = rng.below(slots as u64) as usize;
    if ctx.trace {
        println!("FUZZ: op cpu={} #{} hint {index}", ctx.cpu, ctx.index);
    }
    if index != HINT_WFI {
        hint(index);
        return;
    }
    // IRQs masked from arming to the WFI (ops/misc.rs): a masked pending interrupt still ends it.
    let unmasked = arch::irqs_unmasked();
    arch::mask_irqs();
    ops::prepare_cpu_wakeup(ctx.cpu);
    if ctx.trace {
        crate::checks::print_gic_state(ctx.cpu);
    }
    timer::arm_in_us(WFI_WAKE_US);
    hint(index);
    if ctx.trace {
        // Whether the timer's deadline had passed when the wait ended (its interrupt is taken
        // once IRQs are unmasked again), or something else ended it: the evidence when a later
        // wait never ends.
        let due = arch::read_sysreg(sysregs::CNTV_CTL_EL0, 0) & TIMER_ISTATUS != 0;
        println!("FUZZ: op cpu={} #{} woke timer_due={due}", ctx.cpu, ctx.index);
    }
    timer::disarm();
    if unmasked {
        arch::unmask_irqs_and_serrors();
    }
}

/// An SGI to an HRT vCPU (this one included) or to one that does not exist.
fn sgi(rng: &mut Rng, ctx: &Ctx) {
    let layout = &ctx.layout;
    let target = if rng.percent(80) {
        (layout.first_hrt_vcpu as u64 + rng.below(layout.hrt_cores as u64)).min(SGIS - 1)
    } else {
        rng.range(layout.vcpus() as u64, SGIS)
    };
    let intid = rng.below(SGIS) as u32;
    if ctx.trace {
        println!("FUZZ: op cpu={} #{} sgi {intid} to {target}", ctx.cpu, ctx.index);
    }
    gic::send_sgi(intid, target);
}
