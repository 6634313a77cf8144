//! The IPI round trip: the boot CPU starts a second CPU with PSCI CPU_ON, then plays ping-pong
//! with it. CPU 0 writes a sequence number to PING and sends SGI_PING; CPU 1, idle in WFI with
//! IRQs unmasked, takes the interrupt and copies PING to PONG; CPU 0 times from the SGI write
//! until it sees its number in PONG.

use core::fmt;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::dtb::Platform;
use crate::timer::{self, Deadline};
use crate::uart::println;
use crate::{arch, gic, psci};

/// The SGI CPU 0 pings CPU 1 with.
pub const SGI_PING: u32 = 2;
/// CPU_ON's context id: the started CPU's index.
const SECONDARY_CONTEXT_ID: u64 = 1;
/// How long CPU 1 may take to come up, and one ping to come back.
const STARTUP_MS: u64 = 1000;
const PONG_MS: u64 = 100;

/// CPU 1's progress.
const STARTING: u32 = 0;
const READY: u32 = 1;
const FAILED: u32 = 2;
static SECONDARY_STATE: AtomicU32 = AtomicU32::new(STARTING);

static PING: AtomicU64 = AtomicU64::new(0);
static PONG: AtomicU64 = AtomicU64::new(0);

extern "C" {
    /// boot.S: where a CPU started by CPU_ON begins (MMU off, x0 = context id).
    fn secondary_entry();
}

/// Why the round trip cannot be measured.
pub enum IpiError {
    NoSecondCpu,
    CpuOn(psci::Error),
    NotReady,
    SecondarySetup,
    PongMissing { seq: u64 },
}

impl fmt::Display for IpiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSecondCpu => write!(f, "only one CPU (the DTB's /cpus lists no other SGI-reachable CPU)"),
            Self::CpuOn(err) => write!(f, "PSCI CPU_ON failed: {err}"),
            Self::NotReady => write!(f, "CPU 1 did not report ready within {STARTUP_MS} ms of CPU_ON"),
            Self::SecondarySetup => write!(f, "CPU 1 could not set up its redistributor (see its line above)"),
            Self::PongMissing { seq } => {
                write!(f, "SGI {SGI_PING} #{seq} to CPU 1 got no answer within {PONG_MS} ms")
            }
        }
    }
}

/// Starts the second CPU and fills `samples` with round trips in counter ticks.
pub fn round_trips(platform: &Platform, samples: &mut [u64]) -> Result<(), IpiError> {
    let me = arch::mpidr() & arch::MPIDR_AFFINITY_MASK;
    let target = platform.cpus[..platform.cpu_count]
        .iter()
        .copied()
        .find(|&mpidr| mpidr != me && gic::sgi_can_target(mpidr))
        .ok_or(IpiError::NoSecondCpu)?;
    psci::cpu_on(target, secondary_entry as *const () as u64, SECONDARY_CONTEXT_ID).map_err(IpiError::CpuOn)?;
    let deadline = Deadline::after_ms(STARTUP_MS);
    loop {
        match SECONDARY_STATE.load(Ordering::Acquire) {
            READY => break,
            FAILED => return Err(IpiError::SecondarySetup),
            _ if deadline.passed() => return Err(IpiError::NotReady),
            _ => core::hint::spin_loop(),
        }
    }

    for (seq, sample) in (1..).zip(samples.iter_mut()) {
        PING.store(seq, Ordering::Release);
        arch::dsb_ishst(); // PING is visible before the SGI is
        let deadline = Deadline::after_ms(PONG_MS);
        let start = timer::now();
        gic::send_sgi(SGI_PING, target);
        while PONG.load(Ordering::Acquire) != seq {
            if deadline.passed() {
                return Err(IpiError::PongMissing { seq });
            }
            core::hint::spin_loop();
        }
        *sample = timer::now() - start;
    }
    Ok(())
}

/// The IRQ handler's part on CPU 1: answer the ping.
pub fn on_ping() {
    PONG.store(PING.load(Ordering::Acquire), Ordering::Release);
}

/// CPU 1, after boot.S turned its MMU on: set up its GIC, then idle taking pings.
#[no_mangle]
extern "C" fn secondary_main(_context_id: u64) -> ! {
    match gic::Redistributor::this_cpu() {
        Ok(redistributor) => {
            redistributor.enable(SGI_PING);
            gic::init_cpu_interface();
            SECONDARY_STATE.store(READY, Ordering::Release);
        }
        Err(err) => {
            println!("MICROBENCH: CPU 1: {err}");
            SECONDARY_STATE.store(FAILED, Ordering::Release);
            arch::park();
        }
    }
    arch::unmask_irqs();
    loop {
        arch::wfi();
    }
}
