//! Waiting for a lock that another pCPU holds without taking the host core away from it.
//!
//! On QEMU every pCPU is a host thread; with 4 of them on 2 host cores, the holder of a spin
//! lock is often descheduled by the host, and pCPUs spinning for the lock keep it off the host
//! cores for a whole host time slice (the exit profile measured ~0.9 ms per wait for the vGIC
//! lock). So a waiter spins briefly (most holds are short) and then naps: a WFI that wakes at a
//! short deadline or at any interrupt, during which QEMU stops its thread and the holder runs.
//! This is what pause-loop exiting buys a guest on a real host.

use spin::{Mutex, MutexGuard};

use crate::arch::aarch64::{cpu, hyp_timer};

/// How long to spin before the first nap, and how long each nap lasts at most (µs).
const SPIN_US: u64 = 20;
const NAP_US: u64 = 50;

/// Locks `mutex`; if another pCPU holds it, waits as the module docs say.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    if let Some(guard) = mutex.try_lock() {
        return guard;
    }
    let started = cpu::counter();
    loop {
        pause(started);
        if let Some(guard) = mutex.try_lock() {
            return guard;
        }
    }
}

/// One step of a wait that began at counter value `started`: a spin while the wait is young,
/// a nap after.
pub fn pause(started: u64) {
    let spin_until = started + cpu::counter_frequency() * SPIN_US / 1_000_000;
    if cpu::counter() < spin_until {
        core::hint::spin_loop();
    } else {
        hyp_timer::nap_for_us(NAP_US);
    }
}
