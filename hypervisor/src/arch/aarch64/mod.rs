//! AArch64 at EL2: boot, exception vectors, the hypervisor's own MMU, firmware calls.

pub mod context;
pub mod cpu;
pub mod debug_regs;
pub mod firmware;
pub mod gic;
pub mod guest;
pub mod hyp_timer;
pub mod id_regs;
pub mod mmu;
pub mod physical_timer;
pub mod serror;
pub mod trap;

// boot.S and vectors.S are assembled into the binary by main.rs, so the entry symbols always
// reach the link.
