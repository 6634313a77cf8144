//! `scenario=lr_overflow` (issue 13, hole 2): a guest that leaves every list register holding
//! an active interrupt it never deactivates, with more interrupts pending behind them. With
//! EOImode 1 it acknowledges `ACTIVE` SGIs and only drops their priority; `PENDING` more wait.
//! The hypervisor must not answer with a maintenance-interrupt storm (an underflow or
//! no-pending maintenance request that stays asserted while nothing changes): the vCPU must
//! keep making progress.

use crate::dtb::Platform;
use crate::uart::println;
use crate::{arch, gic};

/// SGIs used: the first `ACTIVE` are left active, the rest pending. QEMU's GICv3 has four list
/// registers; eight SGIs overflow them whatever the hypervisor keeps in them.
const FIRST_SGI: u32 = 8;
const SGIS: u32 = 8;
const ACTIVE: usize = 4;
/// How long each progress measurement spins.
const WINDOW_US: u64 = 200_000;
/// Progress kept, in percent of the progress before, below which the check fails. A storm
/// leaves the vCPU no progress at all (the run hangs); the load of other QEMU runs on the host
/// alone moved the ratio between 48 and 100 % in test runs.
const MIN_PROGRESS_PERCENT: u64 = 10;
/// ICC_CTLR_EL1.EOImode: EOI drops the priority only, ICC_DIR_EL1 deactivates.
const ICC_CTLR_EOIMODE: u64 = 1 << 1;

/// Loop iterations in `WINDOW_US`.
fn progress() -> u64 {
    let end = arch::now() + arch::us_to_ticks(WINDOW_US);
    let mut count = 0u64;
    while arch::now() < end {
        count = core::hint::black_box(count + 1);
    }
    count
}

pub fn run(_platform: &Platform) -> Result<&'static str, &'static str> {
    let cpu = arch::cpu_index();
    let sgis: [u32; SGIS as usize] = core::array::from_fn(|i| FIRST_SGI + i as u32);
    gic::init_redistributor(cpu, &sgis);
    let before = progress();
    gic::set_eoi_mode(ICC_CTLR_EOIMODE);
    for &sgi in &sgis {
        gic::send_sgi(sgi, cpu as u64);
    }
    let mut active = 0;
    for _ in 0..ACTIVE {
        let intid = gic::acknowledge();
        if gic::is_special(intid) {
            break;
        }
        gic::drop_priority(intid);
        active += 1;
    }
    let during = progress();
    // Clean up: deactivate what was left active, take the rest.
    for &sgi in &sgis[..active] {
        gic::deactivate(sgi);
    }
    gic::set_eoi_mode(0);
    gic::drain();
    let percent = during * 100 / before.max(1);
    println!("FUZZ: scenario lr_overflow active={active} progress_before={before} during={during} ({percent}%)");
    if active != ACTIVE {
        return Err("the SGIs could not be made active");
    }
    if percent < MIN_PROGRESS_PERCENT {
        return Err("the vCPU lost its progress to the hypervisor while its list registers were full");
    }
    Ok("full list registers with pending interrupts behind them cost the vCPU no progress")
}
