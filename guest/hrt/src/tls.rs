//! The mirrored TLS registers (palacios-hvm.md §4.7, §7.8: the AArch64 replacement for
//! Multiverse's GDT and FS-base mirroring). A ROS thread asks the hypervisor to mirror its
//! TPIDR_EL0 (its thread pointer: glibc's TLS and `errno`) and TPIDRRO_EL0; the first HRT core
//! gets the values in the comm page (upcall `MirrorTls`, 0x51) and keeps them here, for every
//! core: ROS code run at EL0 (el0.rs) starts with them. `UnmirrorTls` (0x53) drops them (0
//! again). Both are answered with `TlsSyncDone` (upcall.rs).
//!
//! One pair for the whole HRT, not one per HRT thread: this kernel has no threads, and a call
//! runs one ROS function on behalf of the process that mirrored last.

use crate::shared::Published;

/// TPIDR_EL0, TPIDRRO_EL0.
static MIRROR: Published<2> = Published::new();

/// The values ROS code gets in its thread registers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadRegisters {
    pub tpidr_el0: u64,
    pub tpidrro_el0: u64,
}

/// Mirrors `registers` (0x51).
pub fn mirror(registers: ThreadRegisters) {
    MIRROR.publish([registers.tpidr_el0, registers.tpidrro_el0]);
}

/// Drops the mirrored values (0x53): ROS code starts with 0 in both registers again.
pub fn unmirror() {
    MIRROR.publish([0, 0]);
}

/// What is mirrored now (0 and 0 if nothing is).
pub fn mirrored() -> ThreadRegisters {
    let (_, [tpidr_el0, tpidrro_el0]) = MIRROR.read();
    ThreadRegisters { tpidr_el0, tpidrro_el0 }
}
