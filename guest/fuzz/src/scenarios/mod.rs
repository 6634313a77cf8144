//! Scenarios: targeted attacks on one hypervisor weakness each, instead of the random phase
//! (`scenario=<name>` on the command line). Each proves a hole of issue 13 closed: it fails on
//! a hypervisor that has the hole and passes on one that does not.
//!
//! ```text
//! FUZZ: scenario <name> <figures>
//! FUZZ: check <name> pass|fail <details>
//! FUZZ: done seed=<s> ok|FAILED
//! ```
//!
//! - `virtio_flood` (hole 1): one vCPU keeps the disk's avail index moving while another
//!   notifies once; a third, sharing the notifier's pCPU, must keep ticking meanwhile.
//! - `cpu_churn` (hole 3): CPU_ON again the moment a vCPU has called CPU_OFF, thousands of
//!   times; every start must run with its own context id, and CPU_OFF must never return.
//! - `reset_race` (hole 3): SYSTEM_RESET while the other vCPUs write into the image's data;
//!   after each reset the freshly loaded image must be intact.
//! - `lr_overflow` (hole 2): every list register holds an active interrupt the guest never
//!   deactivates, more are pending: no maintenance-interrupt storm, the vCPU keeps running.
//! - `fresh_start` (hole 4): a vCPU started on a pCPU another vCPU used sees none of its
//!   registers.
//! - `isolation` (hole 6): the PMU does not count the hypervisor's cycles for the guest, and
//!   vCPUs sharing a pCPU keep their own breakpoint registers.
//! - `serror` (hole 8, with a debugger): a virtual SError asked for vCPU 0 stays pending with
//!   it while it shares its pCPU, and reaches it (once) when it unmasks SErrors.

mod churn;
mod flood;
mod fresh_start;
mod isolation;
mod lr_overflow;
mod reset_race;
mod serror;

use core::sync::atomic::{AtomicBool, Ordering};

use crate::checks::Report;
use crate::dtb::{Platform, MAX_CPUS};
use crate::uart::println;
use crate::{arch, psci};

/// The scenarios, by command-line name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    VirtioFlood,
    CpuChurn,
    ResetRace,
    SError,
    Isolation,
    LrOverflow,
    FreshStart,
}

impl Scenario {
    pub fn parse(name: &[u8]) -> Option<Self> {
        match name {
            b"virtio_flood" => Some(Self::VirtioFlood),
            b"cpu_churn" => Some(Self::CpuChurn),
            b"reset_race" => Some(Self::ResetRace),
            b"serror" => Some(Self::SError),
            b"isolation" => Some(Self::Isolation),
            b"lr_overflow" => Some(Self::LrOverflow),
            b"fresh_start" => Some(Self::FreshStart),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::VirtioFlood => "virtio_flood",
            Self::CpuChurn => "cpu_churn",
            Self::ResetRace => "reset_race",
            Self::SError => "serror",
            Self::Isolation => "isolation",
            Self::LrOverflow => "lr_overflow",
            Self::FreshStart => "fresh_start",
        }
    }
}

/// Context ids of the vCPUs a scenario starts: the role in bits [39:32], an argument in the
/// low 32 bits.
const SCENARIO_CONTEXT: u64 = 0xf022_5c00_0000_0000;
const ROLE_SHIFT: u32 = 32;
const ROLE_MASK: u64 = 0xff;
const ARGUMENT_MASK: u64 = 0xffff_ffff;

/// What a vCPU started by a scenario does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    FloodPublisher = 1,
    FloodTicker = 2,
    Churned = 3,
    ResetWriter = 4,
    SErrorBystander = 5,
    IsolationPeer = 6,
    FreshDirtier = 7,
    FreshInspector = 8,
}

impl Role {
    fn from_bits(bits: u64) -> Option<Self> {
        [
            Self::FloodPublisher,
            Self::FloodTicker,
            Self::Churned,
            Self::ResetWriter,
            Self::SErrorBystander,
            Self::IsolationPeer,
            Self::FreshDirtier,
            Self::FreshInspector,
        ]
        .into_iter()
        .find(|role| *role as u64 == bits)
    }

    fn context(self, argument: u32) -> u64 {
        SCENARIO_CONTEXT | (self as u64) << ROLE_SHIFT | u64::from(argument)
    }
}

/// Set by a started vCPU once it runs (cleared by the starter before CPU_ON).
static ONLINE: [AtomicBool; MAX_CPUS] = [const { AtomicBool::new(false) }; MAX_CPUS];
/// How long a started vCPU may take to come up.
const START_US: u64 = 2_000_000;

/// Starts vCPU `index` at the secondary entry with `role`; waits until it runs.
fn start(platform: &Platform, entry: u64, index: usize, role: Role, argument: u32) -> Result<(), &'static str> {
    let mpidr = *platform.cpus[..platform.cpu_count].get(index).ok_or("no such CPU")?;
    ONLINE[index].store(false, Ordering::Release);
    if psci::psci(psci::CPU_ON_64, [mpidr, entry, role.context(argument)]) != 0 {
        return Err("CPU_ON refused");
    }
    let give_up = arch::now() + arch::us_to_ticks(START_US);
    while !ONLINE[index].load(Ordering::Acquire) {
        if arch::now() > give_up {
            return Err("the started CPU did not come up");
        }
        core::hint::spin_loop();
    }
    Ok(())
}

/// Runs `scenario` on the boot CPU and powers off with the verdict.
pub fn run(scenario: Scenario, platform: &Platform, disk: Option<u64>, entry: u64, seed: u64) -> ! {
    let mut report = Report::default();
    let result = match scenario {
        Scenario::VirtioFlood => flood::run(platform, disk, entry),
        Scenario::CpuChurn => churn::run(platform, entry),
        Scenario::ResetRace => reset_race::run(platform, entry),
        Scenario::SError => serror::run(platform, entry),
        Scenario::Isolation => isolation::run(platform, entry),
        Scenario::LrOverflow => lr_overflow::run(platform),
        Scenario::FreshStart => fresh_start::run(platform, entry),
    };
    match result {
        Ok(details) => report.record(scenario.name(), true, details),
        Err(details) => report.record(scenario.name(), false, details),
    }
    let verdict = if report.failed == 0 { "ok" } else { "FAILED" };
    println!("FUZZ: done seed={seed} {verdict} passed={} failed={}", report.passed, report.failed);
    psci::system_off()
}

/// A secondary vCPU whose context id names a scenario role: runs it (never returns). Returns
/// if the context is not a scenario's.
pub fn secondary(context: u64, cpu: usize) {
    if context & !(ROLE_MASK << ROLE_SHIFT | ARGUMENT_MASK) != SCENARIO_CONTEXT {
        return;
    }
    let Some(role) = Role::from_bits(context >> ROLE_SHIFT & ROLE_MASK) else {
        return;
    };
    let argument = (context & ARGUMENT_MASK) as u32;
    if role != Role::Churned {
        ONLINE[cpu].store(true, Ordering::Release);
    }
    match role {
        Role::FloodPublisher => flood::publisher(),
        Role::FloodTicker => flood::ticker(),
        Role::Churned => churn::started(cpu, argument),
        Role::ResetWriter => reset_race::writer(cpu),
        Role::SErrorBystander => serror::bystander(),
        Role::IsolationPeer => isolation::peer(),
        Role::FreshDirtier => fresh_start::dirty(
            fresh_start::INSPECTOR_MPIDR.load(Ordering::Relaxed),
            fresh_start::ENTRY.load(Ordering::Relaxed),
        ),
        Role::FreshInspector => fresh_start::inspect(),
    }
    psci::psci(psci::CPU_OFF, [0; 3]);
    churn::note_cpu_off_returned();
    println!("FUZZ: error: cpu{cpu}: CPU_OFF returned (scenario {role:?})");
    arch::park()
}
