//! Architecture-specific code: everything that touches AArch64 system registers.

pub mod aarch64;
