//! `scenario=serror` (issue 13, hole 8), driven by a debugger: QEMU has no source of physical
//! SErrors, so the test stops vCPU 0 at [`fuzz_serror_request_point`] and asks the hypervisor
//! for a virtual SError for it (`hyp-serror 0` in scripts/gdb/hyp.py). vCPUs 0 and 1 share one
//! pCPU with SErrors masked (PSTATE.A) for `SHARE_US`, so the pending SError is switched out and
//! in with vCPU 0 hundreds of times; then vCPU 1 unmasks SErrors for a while, then vCPU 0 does.
//! The SError must reach vCPU 0, once, and never vCPU 1 (a pending SError left on the pCPU
//! would go to whichever vCPU runs there next).

use core::sync::atomic::{AtomicU32, Ordering};

use super::{start, Role};
use crate::arch;
use crate::dtb::Platform;
use crate::exceptions::COUNTERS;
use crate::uart::println;

/// How long both vCPUs run with SErrors masked, and each then keeps them unmasked.
const SHARE_US: u64 = 500_000;
const UNMASK_US: u64 = 100_000;
/// How long vCPU 0 waits for vCPU 1's window to end.
const BYSTANDER_US: u64 = 5_000_000;
const BYSTANDER: usize = 1;

/// 0: both masked; 1: vCPU 1's window; 2: vCPU 1 done.
static PHASE: AtomicU32 = AtomicU32::new(0);

/// The test's debugger breaks here (on vCPU 0) and asks for the SError.
#[no_mangle]
#[inline(never)]
pub extern "C" fn fuzz_serror_request_point() {
    // SAFETY: a no-op that keeps the function (and its address) in the image.
    unsafe { core::arch::asm!("nop", options(nomem, nostack)) };
}

/// Keeps PSTATE.A clear for `us` microseconds: a pending virtual SError is taken now.
fn unmasked_window(us: u64) {
    // SAFETY: clears PSTATE.A only; exceptions.rs counts SErrors and returns.
    unsafe { core::arch::asm!("msr daifclr, #4", "isb", options(nostack)) };
    arch::delay_us(us);
    // SAFETY: sets PSTATE.A only.
    unsafe { core::arch::asm!("msr daifset, #4", "isb", options(nostack)) };
}

fn serrors(cpu: usize) -> u64 {
    COUNTERS[cpu].serrors.load(Ordering::Relaxed)
}

pub fn run(platform: &Platform, entry: u64) -> Result<&'static str, &'static str> {
    if platform.cpu_count < 2 {
        return Err("needs two vCPUs (sharing one pCPU)");
    }
    start(platform, entry, BYSTANDER, Role::SErrorBystander, 0)?;
    println!("FUZZ: scenario serror at fuzz_serror_request_point (a debugger asks: hyp-serror 0)");
    fuzz_serror_request_point();
    arch::delay_us(SHARE_US);
    let masked_through = serrors(0) + serrors(BYSTANDER);
    PHASE.store(1, Ordering::Release);
    let give_up = arch::now() + arch::us_to_ticks(BYSTANDER_US);
    while PHASE.load(Ordering::Acquire) != 2 {
        if arch::now() > give_up {
            return Err("vCPU 1 never finished its window");
        }
        core::hint::spin_loop();
    }
    unmasked_window(UNMASK_US);
    let (own, other) = (serrors(0), serrors(BYSTANDER));
    println!("FUZZ: scenario serror taken: vcpu0={own} vcpu1={other} while_masked={masked_through}");
    match (own, other, masked_through) {
        (1, 0, 0) => Ok("the SError stayed pending with vCPU 0 and reached it once unmasked"),
        (_, _, 1..) => Err("an SError was taken while SErrors were masked"),
        (0, 0, _) => Err("no SError arrived (does the test's debugger run hyp-serror 0?)"),
        (_, 1.., _) => Err("the SError reached the other vCPU that shared the pCPU"),
        _ => Err("vCPU 0 took more than one SError"),
    }
}

/// vCPU 1: waits with SErrors masked, then unmasks them for its window.
pub fn bystander() {
    while PHASE.load(Ordering::Acquire) != 1 {
        core::hint::spin_loop();
    }
    unmasked_window(UNMASK_US);
    PHASE.store(2, Ordering::Release);
}
