//! After the random phase: does the hypervisor still serve the guest? One line per check,
//!
//! ```text
//! FUZZ: check <name> pass|fail <details>
//! ```
//!
//! psci (PSCI_VERSION and SMCCC_VERSION answer), timer (a virtual-timer interrupt armed 1 ms
//! ahead arrives within 20 ms), sgi (an SGI to itself arrives), uart (UARTFR and UARTCR read
//! sane; the line itself is the output test), disk (GET_ID and a sector read after a device
//! reset, then the same sector in 255 pieces, more than the host device takes), cpu_on (another vCPU starts, prints and powers off), memory (the image and the
//! canary are intact), answers (no hypercall clobbered x4-x17, every injected abort reported
//! the address that faulted). The boot CPU runs them alone, after re-initialising the GIC.

pub mod disk;

use core::fmt::Display;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::dtb::Platform;
use crate::exceptions::COUNTERS;
use crate::uart::{self, println};
use crate::{arch, gic, ops, psci, scratch, timer};

/// The timer check: armed this far ahead, must arrive within this, tries.
const TIMER_AHEAD_US: u64 = 1000;
const TIMER_LATE_US: u64 = 20_000;
const TIMER_GIVE_UP_US: u64 = 1_000_000;
const TIMER_TRIES: usize = 3;
/// The SGI the checks send (the random phase may have left it in any state: re-initialised).
pub const SGI_CHECK: u32 = 1;
const SGI_WAIT_US: u64 = 100_000;
/// CPU_ON: how long the started vCPU may take to report and to power off again.
const CPU_ON_WAIT_US: u64 = 2_000_000;
/// PSCI and SMCCC versions report the major number in bits [30:16].
const VERSION_MAJOR_SHIFT: u32 = 16;
const VERSION_NEGATIVE: u64 = 1 << 31;
/// MPIDR Aff0: the CPU index the started vCPU finds in its context id.
const MPIDR_AFF0: u64 = 0xff;

/// Set by the vCPU the cpu_on check starts, once it has printed its line.
pub static CHECK_CPU_ONLINE: AtomicBool = AtomicBool::new(false);

/// Counts the verdicts as they are printed.
#[derive(Default)]
pub struct Report {
    pub passed: u32,
    pub failed: u32,
}

impl Report {
    pub fn record(&mut self, name: &str, passed: bool, details: impl Display) {
        if passed {
            self.passed += 1;
            println!("FUZZ: check {name} pass {details}");
        } else {
            self.failed += 1;
            println!("FUZZ: check {name} fail {details}");
        }
    }
}

/// Puts the GIC and this CPU's interface back into a known state: the distributor on, every
/// SPI off, this CPU's timer PPI and the check SGI enabled, nothing active.
pub fn reinit_gic(cpu: usize) {
    arch::mask_irqs();
    gic::init_distributor();
    gic::quiesce_spis();
    gic::init_redistributor(cpu, &[timer::PPI_VIRTUAL, SGI_CHECK]);
    gic::init_cpu_interface();
    timer::disarm();
}

fn version_ok(version: u64) -> bool {
    version & VERSION_NEGATIVE == 0 && version >> VERSION_MAJOR_SHIFT >= 1
}

fn check_psci(report: &mut Report) {
    let psci = psci::psci(psci::PSCI_VERSION, [0; 3]);
    let smccc = psci::psci(psci::SMCCC_VERSION, [0; 3]);
    report.record("psci", version_ok(psci) && version_ok(smccc), format_args!("psci={psci:#x} smccc={smccc:#x}"));
}

pub(crate) fn check_timer(report: &mut Report) {
    let mut latencies = [u64::MAX; TIMER_TRIES];
    arch::unmask_irqs_and_serrors();
    for latency in latencies.iter_mut() {
        let deadline = timer::arm_in_us(TIMER_AHEAD_US);
        let give_up = deadline + arch::us_to_ticks(TIMER_GIVE_UP_US);
        while timer::fired_at().is_none() && arch::now() < give_up {
            core::hint::spin_loop();
        }
        if let Some(at) = timer::fired_at() {
            *latency = arch::ticks_to_us(at.saturating_sub(deadline));
            if *latency < TIMER_LATE_US {
                break;
            }
        }
    }
    timer::disarm();
    arch::mask_irqs();
    let best = latencies.iter().copied().min().unwrap_or(u64::MAX);
    let shown = |us: u64| if us == u64::MAX { -1 } else { us as i64 };
    report.record(
        "timer",
        best < TIMER_LATE_US,
        format_args!(
            "late_us={},{},{} (armed {TIMER_AHEAD_US} us ahead, bound {TIMER_LATE_US} us)",
            shown(latencies[0]),
            shown(latencies[1]),
            shown(latencies[2])
        ),
    );
}

pub(crate) fn check_sgi(report: &mut Report, cpu: usize) {
    let _ = gic::take_sgis(cpu);
    arch::unmask_irqs_and_serrors();
    gic::send_sgi(SGI_CHECK, cpu as u64);
    let give_up = arch::now() + arch::us_to_ticks(SGI_WAIT_US);
    let mut taken = 0;
    while taken & (1 << SGI_CHECK) == 0 && arch::now() < give_up {
        taken |= gic::take_sgis(cpu);
    }
    arch::mask_irqs();
    report.record("sgi", taken & (1 << SGI_CHECK) != 0, format_args!("sgi={SGI_CHECK} taken_mask={taken:#x}"));
}

fn check_uart(report: &mut Report) {
    uart::write(uart::UARTIMSC, 0);
    uart::write(uart::UARTICR, uart::INT_ALL);
    uart::write(uart::UARTCR, uart::CR_ENABLED);
    let (fr, cr) = (uart::read(uart::UARTFR), uart::read(uart::UARTCR));
    let sane = fr & uart::FR_TXFF == 0 && cr & uart::CR_ENABLED == uart::CR_ENABLED;
    report.record("uart", sane, format_args!("fr={fr:#x} cr={cr:#x}"));
}

fn check_disk(report: &mut Report, slot: Option<u64>) {
    let Some(base) = slot else {
        report.record("disk", true, "skipped: no virtio-blk device");
        return;
    };
    match disk::check(base) {
        Ok(id) => {
            let id = core::str::from_utf8(&id).unwrap_or("?").trim_end_matches('\0');
            report.record(
                "disk",
                true,
                format_args!("slot={base:#x} get_id and sector 0 read ok, whole and in 255 pieces, id={id:?}"),
            )
        }
        Err(why) => report.record("disk", false, format_args!("slot={base:#x}: {why}")),
    }
}

/// Polls AFFINITY_INFO until `mpidr` reports off (true) or the time is up.
fn wait_off(mpidr: u64, us: u64) -> bool {
    let give_up = arch::now() + arch::us_to_ticks(us);
    while arch::now() < give_up {
        if psci::psci(psci::AFFINITY_INFO_64, [mpidr, 0, 0]) == psci::AFFINITY_OFF {
            return true;
        }
        arch::delay_us(1000);
    }
    false
}

fn check_cpu_on(report: &mut Report, platform: &Platform, entry: u64, context_base: u64) {
    let me = arch::mpidr() & arch::MPIDR_AFFINITY_MASK;
    let Some(&target) = platform.cpus[..platform.cpu_count].iter().find(|&&mpidr| mpidr != me) else {
        report.record("cpu_on", true, "skipped: one CPU");
        return;
    };
    if !wait_off(target, CPU_ON_WAIT_US) {
        report.record("cpu_on", false, format_args!("mpidr={target:#x} never reported off before CPU_ON"));
        return;
    }
    CHECK_CPU_ONLINE.store(false, Ordering::Release);
    let context = context_base | (target & MPIDR_AFF0);
    let result = psci::psci(psci::CPU_ON_64, [target, entry, context]);
    let give_up = arch::now() + arch::us_to_ticks(CPU_ON_WAIT_US);
    while !CHECK_CPU_ONLINE.load(Ordering::Acquire) && arch::now() < give_up {
        core::hint::spin_loop();
    }
    let online = CHECK_CPU_ONLINE.load(Ordering::Acquire);
    let off_again = online && wait_off(target, CPU_ON_WAIT_US);
    report.record(
        "cpu_on",
        result == 0 && online && off_again,
        format_args!("mpidr={target:#x} cpu_on={:#x} online={online} off_again={off_again}", result as i64),
    );
}

fn check_memory(report: &mut Report, checksum_at_boot: u64) {
    let checksum = crate::image_checksum();
    let canary = scratch::check_canary();
    let (address, value) = canary.unwrap_or((0, 0));
    report.record(
        "memory",
        checksum == checksum_at_boot && canary.is_none(),
        format_args!(
            "image_checksum={checksum:#x} (boot {checksum_at_boot:#x}) canary_intact={} first_bad={address:#x}={value:#x}",
            canary.is_none()
        ),
    );
}

pub(crate) fn check_answers(report: &mut Report) {
    let clobbers: u64 = ops::CLOBBERS.iter().map(|c| c.load(Ordering::Relaxed)).sum();
    let far_bad: u64 = COUNTERS.iter().map(|c| c.far_bad.load(Ordering::Relaxed)).sum();
    let first = COUNTERS.iter().find(|c| c.far_bad.load(Ordering::Relaxed) != 0);
    let [esr, far, elr, lo] = first.map_or([0; 4], |c| c.first_far_bad.each_ref().map(|v| v.load(Ordering::Relaxed)));
    let clobber = ops::FIRST_CLOBBER.load(Ordering::Relaxed);
    report.record(
        "answers",
        clobbers == 0 && far_bad == 0,
        format_args!(
            "clobbered_calls={clobbers} first_clobber_fid={:#x} first_clobber_reg=x{} far_mismatches={far_bad} \
             first_mismatch_esr={esr:#x} far={far:#x} elr={elr:#x} expected_from={lo:#x}",
            clobber >> 8,
            clobber & 0xff
        ),
    );
}

/// Prints how the random phase left this CPU's private interrupts (before `reinit_gic`): the
/// evidence when a later check fails.
pub fn print_gic_state(cpu: usize) {
    let sgi = gic::gicr(cpu) + gic::GICR_SGI_FRAME;
    let reg = |offset: u64| gic::read32(sgi + offset);
    println!(
        "FUZZ: gic-state cpu={cpu} group={:#x} enabled={:#x} pending={:#x} active={:#x} icfgr1={:#x} \
         gicd_ctlr={:#x} waker={:#x} vtimer_prio={:#x}",
        reg(gic::GICR_IGROUPR0),
        reg(gic::GICR_ISENABLER0),
        reg(gic::GICR_ISPENDR0),
        reg(gic::GICR_ISACTIVER0),
        reg(gic::GICR_ICFGR1),
        gic::read32(gic::GICD_BASE + gic::GICD_CTLR),
        gic::read32(gic::gicr(cpu) + gic::GICR_WAKER),
        (reg(gic::GICR_IPRIORITYR + u64::from(timer::PPI_VIRTUAL / 4) * 4) >> (8 * (timer::PPI_VIRTUAL % 4))) & 0xff,
    );
}

/// Runs every check on the boot CPU; `entry` and `context_base` (ORed with the CPU index)
/// start the cpu_on check's vCPU.
pub fn run_all(platform: &Platform, disk_slot: Option<u64>, checksum: u64, entry: u64, context_base: u64) -> Report {
    let cpu = arch::cpu_index();
    let mut report = Report::default();
    print_gic_state(cpu);
    reinit_gic(cpu);
    check_uart(&mut report);
    check_psci(&mut report);
    check_timer(&mut report);
    check_sgi(&mut report, cpu);
    check_disk(&mut report, disk_slot);
    check_cpu_on(&mut report, platform, entry, context_base);
    check_memory(&mut report, checksum);
    check_answers(&mut report);
    report
}
