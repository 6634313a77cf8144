//! Calls to the platform firmware's PSCI (QEMU's built-in PSCI, reached with SMC when the
//! hypervisor itself runs at EL2), through the smccc crate.

use core::sync::atomic::{AtomicBool, Ordering};

use smccc::psci;
use smccc::{Hvc, Smc};

use crate::boot::host_dtb::PsciConduit;

static USE_HVC: AtomicBool = AtomicBool::new(false);

/// Chooses the conduit the host DTB names.
pub fn set_conduit(conduit: PsciConduit) {
    USE_HVC.store(conduit == PsciConduit::Hvc, Ordering::Relaxed);
}

/// Starts the CPU `mpidr` at physical address `entry` with `context` in x0.
pub fn cpu_on(mpidr: u64, entry: u64, context: u64) -> Result<(), psci::error::Error> {
    if USE_HVC.load(Ordering::Relaxed) {
        psci::cpu_on::<Hvc>(mpidr, entry, context)
    } else {
        psci::cpu_on::<Smc>(mpidr, entry, context)
    }
}

/// Powers the machine off (QEMU exits). Does not return; spins if the firmware refuses.
pub fn system_off() -> ! {
    let _ = if USE_HVC.load(Ordering::Relaxed) { psci::system_off::<Hvc>() } else { psci::system_off::<Smc>() };
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Resets the machine. Does not return.
pub fn system_reset() -> ! {
    let _ = if USE_HVC.load(Ordering::Relaxed) { psci::system_reset::<Hvc>() } else { psci::system_reset::<Smc>() };
    loop {
        aarch64_cpu::asm::wfe();
    }
}
