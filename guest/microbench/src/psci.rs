//! PSCI through the conduit the device tree names (HVC under the hypervisor and on plain QEMU
//! without EL2; SMC where firmware or QEMU's EL3 emulation answers). The smccc crate makes the
//! calls; this module picks HVC or SMC at run time.

use core::sync::atomic::{AtomicBool, Ordering};

use smccc::psci::{self, Version};
use smccc::{Hvc, Smc};

use crate::dtb::Conduit;

pub use smccc::psci::error::Error;
use smccc::psci::PSCI_VERSION;

/// The conduit is SMC (else HVC), set once by the boot CPU from the device tree.
static USE_SMC: AtomicBool = AtomicBool::new(false);

pub fn set_conduit(conduit: Conduit) {
    USE_SMC.store(conduit == Conduit::Smc, Ordering::Relaxed);
}

pub fn conduit() -> Conduit {
    if USE_SMC.load(Ordering::Relaxed) {
        Conduit::Smc
    } else {
        Conduit::Hvc
    }
}

/// The conduit's name, as the device tree spells it.
pub fn conduit_name() -> &'static str {
    match conduit() {
        Conduit::Hvc => "hvc",
        Conduit::Smc => "smc",
    }
}

/// PSCI_VERSION.
pub fn version() -> Result<Version, Error> {
    match conduit() {
        Conduit::Hvc => psci::version::<Hvc>(),
        Conduit::Smc => psci::version::<Smc>(),
    }
}

/// CPU_ON (64-bit): starts the CPU `target_mpidr` at the physical address `entry`, at EL1 with
/// the MMU off, x0 = `context_id`.
pub fn cpu_on(target_mpidr: u64, entry: u64, context_id: u64) -> Result<(), Error> {
    match conduit() {
        Conduit::Hvc => psci::cpu_on::<Hvc>(target_mpidr, entry, context_id),
        Conduit::Smc => psci::cpu_on::<Smc>(target_mpidr, entry, context_id),
    }
}

/// SYSTEM_OFF; if it returns (it should not), parks this CPU.
pub fn system_off() -> ! {
    let _ = match conduit() {
        Conduit::Hvc => psci::system_off::<Hvc>(),
        Conduit::Smc => psci::system_off::<Smc>(),
    };
    crate::arch::park()
}

/// PSCI_VERSION as a bare call through conduit `C`, for timing: x0 on return (the version, or
/// a negative error).
#[inline(always)]
pub fn raw_version<C: smccc::Call>() -> u32 {
    C::call32(PSCI_VERSION, [0; 7])[0]
}
