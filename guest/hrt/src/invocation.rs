//! The blocks a ROS process hands the HRT, in ROS RAM (abi.rs `invoke::Invocation` and
//! `invoke::SyncChannel`): found by the guest-physical address in the comm page, checked to lie
//! inside ROS RAM, read and answered through the linear map (guest_ram.rs).
//!
//! The process owns the memory and may be writing it: fields are read with volatile loads, and
//! the words the two sides synchronise on are atomics. An invocation's answer is this core's
//! status and result, then its bit in `done` (Release: the process reads `done` with Acquire and
//! then the slots). A sync call's answer is the slot of core 0, then `completed` (Release).

use core::fmt;
use core::mem::{offset_of, size_of};
use core::sync::atomic::{AtomicU64, Ordering};

use hvm_ros_lib::abi::invoke::{Invocation, SyncChannel, MAX_HRT_CORES, SYNC_MAGIC};

use crate::cpu::MAX_CORES;
use crate::guest_ram::GuestRam;

// Every core this kernel runs on has its status and result slot, and its bit in `done`.
const _: () = assert!(MAX_CORES <= MAX_HRT_CORES && MAX_HRT_CORES <= u64::BITS as usize);

const WORD_BYTES: u64 = size_of::<u64>() as u64;
/// The blocks hold 64-bit words and atomics: 8-byte alignment is required.
const BLOCK_ALIGN: u64 = WORD_BYTES;

/// Why a block address was refused.
#[derive(Clone, Copy, Debug)]
pub enum BlockError {
    /// Not (all) inside ROS RAM.
    OutsideRam {
        what: &'static str,
        ipa: u64,
    },
    Misaligned {
        what: &'static str,
        ipa: u64,
    },
    /// A sync channel without [`SYNC_MAGIC`].
    BadMagic {
        ipa: u64,
        found: u64,
    },
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match *self {
            Self::OutsideRam { what, ipa } => write!(f, "{what} at IPA {ipa:#x} is not inside ROS RAM"),
            Self::Misaligned { what, ipa } => write!(f, "{what} at IPA {ipa:#x} is not 8-byte aligned"),
            Self::BadMagic { ipa, found } => {
                write!(f, "sync channel at IPA {ipa:#x} has magic {found:#018x}, expected {SYNC_MAGIC:#018x}")
            }
        }
    }
}

/// Checks that `[ipa, ipa + len)` is an aligned block inside `ram`.
fn check_block(ram: &GuestRam, what: &'static str, ipa: u64, len: usize) -> Result<(), BlockError> {
    if !ipa.is_multiple_of(BLOCK_ALIGN) {
        return Err(BlockError::Misaligned { what, ipa });
    }
    if !ram.range().contains(ipa, len as u64) {
        return Err(BlockError::OutsideRam { what, ipa });
    }
    Ok(())
}

/// An [`Invocation`] in ROS RAM (checked: aligned, inside).
#[derive(Clone, Copy, Debug)]
pub struct InvocationBlock {
    ram: GuestRam,
    ipa: u64,
}

impl InvocationBlock {
    pub fn at(ram: GuestRam, ipa: u64) -> Result<Self, BlockError> {
        check_block(&ram, "invocation", ipa, size_of::<Invocation>())?;
        Ok(Self { ram, ipa })
    }

    /// The word at `offset` in the block (inside: `at` checked the whole block).
    fn word(&self, offset: usize) -> u64 {
        self.ram.read_u64(self.ipa + offset as u64).unwrap_or_default()
    }

    pub fn magic(&self) -> u64 {
        self.word(offset_of!(Invocation, magic))
    }

    pub fn function(&self) -> u64 {
        self.word(offset_of!(Invocation, function))
    }

    pub fn args(&self) -> [u64; 6] {
        let args = offset_of!(Invocation, args);
        core::array::from_fn(|index| self.word(args + index * WORD_BYTES as usize))
    }

    /// Writes `core`'s status (0 or a negative `HvmError` code) and result.
    pub fn write_answer(&self, core: usize, status: i64, result: u64) {
        let slot = core as u64 * WORD_BYTES;
        // Inside and aligned (`at`), core < MAX_HRT_CORES (the assert above): these succeed.
        let _ = self.ram.write_u64(self.ipa + offset_of!(Invocation, status) as u64 + slot, status as u64);
        let _ = self.ram.write_u64(self.ipa + offset_of!(Invocation, result) as u64 + slot, result);
    }

    /// Sets `core`'s bit in `done`, after its answer (Release).
    pub fn mark_done(&self, core: usize) {
        if let Some(done) = self.ram.atomic_u64(self.ipa + offset_of!(Invocation, done) as u64) {
            done.fetch_or(1 << core, Ordering::Release);
        }
    }
}

/// A [`SyncChannel`] in ROS RAM (checked: aligned, inside, its magic), with its counters at
/// hand for the polling loop.
#[derive(Clone, Copy, Debug)]
pub struct SyncChannelBlock {
    magic: &'static AtomicU64,
    issued: &'static AtomicU64,
    completed: &'static AtomicU64,
    invocation: InvocationBlock,
}

impl SyncChannelBlock {
    pub fn at(ram: GuestRam, ipa: u64) -> Result<Self, BlockError> {
        check_block(&ram, "sync channel", ipa, size_of::<SyncChannel>())?;
        let word = |offset: usize| ipa + offset as u64;
        let found = ram.read_u64(word(offset_of!(SyncChannel, magic))).unwrap_or_default();
        if found != SYNC_MAGIC {
            return Err(BlockError::BadMagic { ipa, found });
        }
        let outside = BlockError::OutsideRam { what: "sync channel", ipa };
        Ok(Self {
            magic: ram.atomic_u64(word(offset_of!(SyncChannel, magic))).ok_or(outside)?,
            issued: ram.atomic_u64(word(offset_of!(SyncChannel, issued))).ok_or(outside)?,
            completed: ram.atomic_u64(word(offset_of!(SyncChannel, completed))).ok_or(outside)?,
            invocation: InvocationBlock { ram, ipa: word(offset_of!(SyncChannel, invocation)) },
        })
    }

    /// The call the process issued last, if it is not completed yet: the `issued` count to
    /// complete it with. (Acquire: the invocation the process wrote before issuing is seen.)
    pub fn pending_call(&self) -> Option<u64> {
        let issued = self.issued.load(Ordering::Acquire);
        (issued != self.completed.load(Ordering::Relaxed)).then_some(issued)
    }

    pub fn invocation(&self) -> &InvocationBlock {
        &self.invocation
    }

    /// Whether the channel still carries its magic. A process that dies in sync mode frees the
    /// page, which Linux zeroes and hands to someone else: then nothing may be written there.
    pub fn still_valid(&self) -> bool {
        self.magic.load(Ordering::Relaxed) == SYNC_MAGIC
    }

    /// Completes the calls up to `issued`, after their answer (Release).
    pub fn complete(&self, issued: u64) {
        self.completed.store(issued, Ordering::Release);
    }
}
