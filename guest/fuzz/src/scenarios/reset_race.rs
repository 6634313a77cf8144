//! `scenario=reset_race` (issue 13, hole 3): SYSTEM_RESET reloads the guest's images; a
//! hypervisor that does so before the other pCPUs stopped running the old guest lets them write
//! into the fresh image. Each boot, the other vCPUs write over `SENTINEL` (in the image's data)
//! without pause, and the boot CPU resets the machine; the next boot checks that `SENTINEL`
//! and the image's code are as loaded. A record in RAM outside the image (which a reset does
//! not clear) counts the boots across resets.

use core::ptr::{read_volatile, write_volatile};
use core::sync::atomic::{AtomicU64, Ordering};

use super::{start, Role};
use crate::dtb::Platform;
use crate::uart::println;
use crate::{arch, psci, scratch};

const RESETS: u64 = 5;
/// How long the writers write before the reset.
const WRITE_US: u64 = 20_000;
/// PSCI SYSTEM_RESET (DEN0022).
const SYSTEM_RESET: u64 = 0x8400_0009;

/// In the image's data: loaded with this pattern, written over by the writers.
const SENTINEL_WORD: u64 = 0x5e57_1ae1_5e57_1ae1;
const SENTINEL_WORDS: usize = 1024;
static SENTINEL: [AtomicU64; SENTINEL_WORDS] = [const { AtomicU64::new(SENTINEL_WORD) }; SENTINEL_WORDS];

/// The record that survives resets: this far into RAM, far above the image and below the
/// scratch zones at the top of RAM.
const RECORD_OFFSET: u64 = 64 << 20;
const RECORD_MAGIC: u64 = 0x7265_7365_7472_6163; // "resetrac"
#[repr(C)]
#[derive(Clone, Copy)]
struct Record {
    magic: u64,
    boots: u64,
    corrupted_boots: u64,
    image_checksum: u64,
}

fn record_address() -> Result<*mut Record, &'static str> {
    let ram = scratch::ram();
    let address = ram.start + RECORD_OFFSET;
    let below_zones = address + core::mem::size_of::<Record>() as u64 <= scratch::canary().start;
    if !below_zones {
        return Err("RAM too small for the reset record");
    }
    Ok(address as *mut Record)
}

fn load_record() -> Result<Record, &'static str> {
    // SAFETY: the address is in RAM (identity-mapped, normal memory), above the image and its
    // stacks and below the scratch zones: nothing else uses it.
    Ok(unsafe { read_volatile(record_address()?) })
}

fn store_record(record: Record) -> Result<(), &'static str> {
    // SAFETY: as for `load_record`.
    unsafe { write_volatile(record_address()?, record) };
    Ok(())
}

pub fn run(platform: &Platform, entry: u64) -> Result<&'static str, &'static str> {
    if platform.cpu_count < 2 {
        return Err("needs two vCPUs or more");
    }
    let checksum = crate::image_checksum();
    let mut record = load_record()?;
    if record.magic != RECORD_MAGIC {
        record = Record { magic: RECORD_MAGIC, boots: 0, corrupted_boots: 0, image_checksum: checksum };
    } else {
        let overwritten = SENTINEL.iter().filter(|w| w.load(Ordering::Relaxed) != SENTINEL_WORD).count();
        let code_intact = checksum == record.image_checksum;
        println!(
            "FUZZ: scenario reset_race boot={} sentinel_overwritten={overwritten}/{SENTINEL_WORDS} code_intact={code_intact}",
            record.boots
        );
        if overwritten != 0 || !code_intact {
            record.corrupted_boots += 1;
        }
    }
    if record.boots == RESETS {
        store_record(Record { magic: 0, ..record })?;
        println!("FUZZ: scenario reset_race resets={RESETS} corrupted_boots={}", record.corrupted_boots);
        if record.corrupted_boots != 0 {
            return Err("a reset left the old guest writing into the freshly loaded image");
        }
        return Ok("every reset loaded an image nobody wrote into");
    }
    record.boots += 1;
    store_record(record)?;
    for cpu in 1..platform.cpu_count {
        start(platform, entry, cpu, Role::ResetWriter, 0)?;
    }
    arch::delay_us(WRITE_US);
    println!("FUZZ: scenario reset_race reset {}/{RESETS}", record.boots);
    psci::psci(SYSTEM_RESET, [0; 3]);
    Err("SYSTEM_RESET returned")
}

/// The other vCPUs: write over the sentinel until the reset stops them.
pub fn writer(cpu: usize) {
    let mut round = 0u64;
    loop {
        round += 1;
        for word in &SENTINEL {
            word.store((cpu as u64) << 32 | round, Ordering::Relaxed);
        }
    }
}
