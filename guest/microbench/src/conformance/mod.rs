//! Conformance mode (`mode=conformance` in bootargs): instead of measuring, checks that the
//! platform behaves as QEMU virt does on its own (the reference), and prints one line per check:
//!
//! ```text
//! CONFORMANCE: <name> pass [<details>]
//! CONFORMANCE: <name> fail <details>
//! CONFORMANCE: done passed=<n> failed=<m>
//! ```
//!
//! The checks: the GIC's identification registers (here), the timers' interrupt lines
//! (timers.rs) and the empty virtio-mmio slots (virtio.rs). All run on the boot CPU with IRQs
//! masked except where a check unmasks them.

mod timers;
mod virtio;

use core::fmt::Display;

use crate::dtb::Platform;
use crate::gic::{self, Redistributor};
use crate::timer::Timer;
use crate::uart::println;

/// The least GICD_TYPER.ITLinesNumber we accept: 96 INTIDs (QEMU virt's 32 virtio-mmio slots
/// alone use INTIDs 48-79).
const MIN_IT_LINES_NUMBER: u32 = 2;

/// Counts the verdicts as they are printed.
#[derive(Default)]
pub struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    /// Prints the verdict line of check `name`; `details` follow the verdict.
    pub fn record(&mut self, name: impl Display, passed: bool, details: impl Display) {
        if passed {
            self.passed += 1;
            println!("CONFORMANCE: {name} pass {details}");
        } else {
            self.failed += 1;
            println!("CONFORMANCE: {name} fail {details}");
        }
    }
}

/// Runs every check and prints the summary line.
pub fn run_all(platform: &Platform) {
    let mut report = Report::default();
    virtio::empty_slots(&mut report, platform);
    match setup_gic() {
        Ok(redistributor) => {
            gicd_typer_sane(&mut report, &redistributor);
            for timer in [Timer::Virtual, Timer::Physical] {
                timers::disable_before_take(&mut report, &redistributor, timer);
            }
            timers::latency_busy(&mut report, &redistributor);
            for timer in [Timer::Virtual, Timer::Physical] {
                redistributor.disable(timer.ppi());
            }
        }
        Err(err) => report.record("gic_setup", false, format_args!("the GIC checks did not run: {err}")),
    }
    println!("CONFORMANCE: done passed={} failed={}", report.passed, report.failed);
}

/// Distributor, this CPU's redistributor with both timer PPIs enabled, the CPU interface.
fn setup_gic() -> Result<Redistributor, &'static str> {
    gic::init_distributor()?;
    let redistributor = Redistributor::this_cpu()?;
    for timer in [Timer::Virtual, Timer::Physical] {
        redistributor.enable(timer.ppi());
    }
    gic::init_cpu_interface();
    Ok(redistributor)
}

/// GICD_TYPER leaves room for SPIs, and this CPU's GICR_TYPER reports its affinity.
fn gicd_typer_sane(report: &mut Report, redistributor: &Redistributor) {
    let it_lines = gic::gicd_read(gic::GICD_TYPER) & gic::GICD_TYPER_ITLINES_MASK;
    let (mine, reported) = (gic::this_cpu_affinity(), redistributor.affinity());
    report.record(
        "gicd_typer_sane",
        it_lines >= MIN_IT_LINES_NUMBER && reported == mine,
        format_args!(
            "GICD_TYPER.ITLinesNumber={it_lines} (at least {MIN_IT_LINES_NUMBER}) GICR_TYPER.Affinity={reported:#x} \
             MPIDR affinity={mine:#x}"
        ),
    );
}
