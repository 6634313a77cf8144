//! The hypervisor as a library: everything except the EL2 entry glue in `main.rs`.
//!
//! Modules that are pure logic build on any target, so `cargo test` runs them on the host;
//! modules that touch system registers or devices are compiled only for `target_os = "none"`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod boot;
pub mod console;
pub mod devices;
pub mod exit;
pub mod gic;
pub mod guest_map;
pub mod hvm;
pub mod mm;
pub mod options;
pub mod profile;
pub mod psci;
pub mod sched;
#[cfg(target_os = "none")]
pub mod startup;
pub mod vcpu;
#[cfg(target_os = "none")]
pub mod vm;

#[cfg(target_os = "none")]
pub mod arch;
