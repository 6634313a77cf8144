//! `virtio_empty_slots`: every virtio-mmio node in the device tree is a transport that reads
//! without a fault: MagicValue "virt", Version 2 (virtio 1.x), and a DeviceID, 0 where the slot
//! has no device (QEMU virt lists all its slots, used or not).

use core::fmt;

use crate::{arch, probe};

use super::Report;

const NAME: &str = "virtio_empty_slots";
/// virtio-mmio registers (virtio 1.x, 4.2.2) and the values a transport shows: QEMU's default
/// is the legacy layout (Version 1), the hypervisor offers the modern one (Version 2).
const MAGIC_VALUE: usize = 0x000;
const VERSION: usize = 0x004;
const DEVICE_ID: usize = 0x008;
const MAGIC: u32 = 0x7472_6976; // "virt", little-endian
const VERSION_LEGACY: u32 = 1;
const VERSION_MODERN: u32 = 2;
/// DeviceID of a slot without a device.
const NO_DEVICE: u32 = 0;
/// The probed registers' alignment.
const REGISTER_ALIGN: u64 = 4;

/// What went wrong first, for the report.
enum Problem {
    Misaligned,
    Fault { offset: usize, fault: probe::Fault },
    Magic(u32),
    Version(u32),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Misaligned => write!(f, "reg is not {REGISTER_ALIGN}-byte aligned"),
            Self::Fault { offset, fault } => write!(f, "read at +{offset:#x}: {fault}"),
            Self::Magic(value) => write!(f, "MagicValue {value:#x}, expected {MAGIC:#x}"),
            Self::Version(value) => write!(f, "Version {value}, expected {VERSION_LEGACY} or {VERSION_MODERN}"),
        }
    }
}

/// The DeviceID of the transport at `base`, after checking its magic and version.
fn read_transport(base: u64) -> Result<u32, Problem> {
    if !base.is_multiple_of(REGISTER_ALIGN) {
        return Err(Problem::Misaligned);
    }
    let read = |offset: usize| {
        // SAFETY: aligned (checked above); MagicValue, Version and DeviceID are read-only
        // identification registers whose reads have no side effect, and a fault is caught.
        unsafe { probe::read32(base as usize + offset) }.map_err(|fault| Problem::Fault { offset, fault })
    };
    let magic = read(MAGIC_VALUE)?;
    let version = read(VERSION)?;
    let device = read(DEVICE_ID)?;
    if magic != MAGIC {
        return Err(Problem::Magic(magic));
    }
    if version != VERSION_LEGACY && version != VERSION_MODERN {
        return Err(Problem::Version(version));
    }
    Ok(device)
}

pub fn empty_slots(report: &mut Report, platform: &crate::dtb::Platform) {
    let slots = &platform.virtio_slots[..platform.virtio_count];
    let (mut empty, mut devices, mut bad) = (0, 0, 0);
    let mut first_problem = None;
    for &base in slots {
        match read_transport(base) {
            Ok(NO_DEVICE) => empty += 1,
            Ok(_) => devices += 1,
            Err(problem) => {
                bad += 1;
                first_problem.get_or_insert((base, problem));
            }
        }
    }
    // An asynchronous external abort would not have been taken (PSTATE.A is set): look for it.
    let serror = arch::isr() & arch::ISR_SERROR != 0;
    let counts = format_args!(
        "slots={} listed={} empty={empty} with_device={devices} bad={bad} serror_pending={}",
        slots.len(),
        platform.virtio_listed,
        u8::from(serror)
    );
    match first_problem {
        Some((base, problem)) => report.record(NAME, false, format_args!("{counts}; first: slot {base:#x}: {problem}")),
        None if slots.is_empty() => {
            report.record(NAME, false, format_args!("{counts}; no virtio,mmio node in the DTB"))
        }
        None => report.record(NAME, !serror && slots.len() == platform.virtio_listed, counts),
    }
}
