//! `scenario=cpu_churn` (issue 13, hole 3): PSCI says a vCPU is off as soon as it *calls*
//! CPU_OFF, while its pCPU is still on the way out. The boot CPU starts the other vCPUs in
//! turn, `CYCLES` times, each time with CPU_ON retried the moment the previous start of that
//! vCPU called CPU_OFF, so CPU_ON lands in that window again and again. Every start must run
//! with its own context id (none lost, none run twice), and CPU_OFF must never return.

use core::sync::atomic::{AtomicU64, Ordering};

use super::Role;
use crate::dtb::{Platform, MAX_CPUS};
use crate::{arch, psci};

const CYCLES: u32 = 3000;
/// How long CPU_ON may keep answering ALREADY_ON / ON_PENDING, and a started vCPU may take to
/// run.
const START_US: u64 = 2_000_000;
/// PSCI status codes CPU_ON answers while the target is still on (DEN0022).
const ALREADY_ON: i64 = -4;
const ON_PENDING: i64 = -5;
const NOT_SEEN: u64 = u64::MAX;

/// The cycle number each vCPU last started with.
static SEEN: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(NOT_SEEN) }; MAX_CPUS];
static CPU_OFF_RETURNED: AtomicU64 = AtomicU64::new(0);

/// A vCPU started by CPU_ON with `cycle` in its context id.
pub fn started(cpu: usize, cycle: u32) {
    SEEN[cpu].store(u64::from(cycle), Ordering::Release);
}

/// CPU_OFF came back to the guest (it never should).
pub fn note_cpu_off_returned() {
    CPU_OFF_RETURNED.fetch_add(1, Ordering::Relaxed);
}

pub fn run(platform: &Platform, entry: u64) -> Result<&'static str, &'static str> {
    let others = platform.cpu_count.saturating_sub(1);
    if others == 0 {
        return Err("needs two vCPUs or more");
    }
    let mut retries = 0u64;
    for cycle in 0..CYCLES {
        let target = 1 + cycle as usize % others;
        let mpidr = platform.cpus[target];
        let context = Role::Churned.context(cycle);
        let give_up = arch::now() + arch::us_to_ticks(START_US);
        loop {
            match psci::psci(psci::CPU_ON_64, [mpidr, entry, context]) as i64 {
                0 => break,
                ALREADY_ON | ON_PENDING if arch::now() < give_up => retries += 1,
                ALREADY_ON | ON_PENDING => {
                    crate::uart::println!("FUZZ: scenario cpu_churn cycle={cycle} cpu{target} never went off");
                    return Err("a vCPU that called CPU_OFF stayed on");
                }
                _ => return Err("CPU_ON refused"),
            }
        }
        while SEEN[target].load(Ordering::Acquire) != u64::from(cycle) {
            if arch::now() > give_up {
                crate::uart::println!(
                    "FUZZ: scenario cpu_churn cycle={cycle} cpu{target} did not start (last seen {})",
                    SEEN[target].load(Ordering::Relaxed) as i64
                );
                return Err("a CPU_ON that PSCI accepted was lost");
            }
            core::hint::spin_loop();
        }
    }
    let returned = CPU_OFF_RETURNED.load(Ordering::Relaxed);
    crate::uart::println!(
        "FUZZ: scenario cpu_churn cycles={CYCLES} cpus={others} retries={retries} cpu_off_returned={returned}"
    );
    if returned != 0 {
        return Err("CPU_OFF returned to the guest");
    }
    Ok("every CPU_ON started its vCPU once, with its own context id")
}
