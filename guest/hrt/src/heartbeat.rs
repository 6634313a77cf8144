//! The heartbeat (`heartbeat=<seconds>`, cmdline.rs): once it is ready, core 0 prints
//! `heartbeat n=<K> uptime_ms=<ms>` every period, so a test can see the HRT is still alive and
//! taking interrupts after something happened in the ROS.
//!
//! The IRQ handler only counts the virtual timer's interrupt (timer.rs); the line is printed
//! by [`Heartbeat::poll`], which core 0's idle loop (upcall.rs) calls after the WFI and its
//! sync-mode loop calls while polling, outside the handler: the console's line buffer is shared
//! with IRQ context only under masked IRQs (console.rs), and a print from here needs nothing
//! else.

use crate::boot::BootInfoView;
use crate::console::println;
use crate::timer;

const MICROS_PER_SECOND: u64 = 1_000_000;
const MICROS_PER_MILLI: u64 = 1_000;

/// A running heartbeat.
pub struct Heartbeat {
    frequency: u64,
    boot_start_counter: u64,
    period: u64,
    deadline: u64,
    beats: u64,
    /// Virtual timer interrupts taken when the last beat was printed.
    seen: u64,
}

impl Heartbeat {
    /// Arms the first beat, `period_s` seconds (in range, cmdline.rs) from now. The caller
    /// unmasks interrupts.
    pub fn start(period_s: u64, boot: &BootInfoView) -> Self {
        let frequency = boot.counter_frequency();
        let period = timer::us_to_ticks(period_s * MICROS_PER_SECOND, frequency).max(1);
        let deadline = timer::now().saturating_add(period);
        let heartbeat = Self {
            frequency,
            boot_start_counter: boot.boot_start_counter(),
            period,
            deadline,
            beats: 0,
            seen: timer::interrupts_taken(),
        };
        timer::arm_at(deadline);
        heartbeat
    }

    /// Whether the timer fired since the last beat: a waiter checks this with IRQs masked
    /// before its WFI (the mask-check-WFI-unmask pattern of timer::check_interrupts).
    pub fn due(&self) -> bool {
        timer::interrupts_taken() != self.seen
    }

    /// Prints a beat and arms the next one, if the timer fired.
    pub fn poll(&mut self) {
        let taken = timer::interrupts_taken();
        if taken == self.seen {
            return;
        }
        self.seen = taken;
        self.beats += 1;
        let now = timer::now();
        self.deadline = next_deadline(self.deadline, self.period, now);
        timer::arm_at(self.deadline);
        let uptime_ticks = now.saturating_sub(self.boot_start_counter);
        let uptime_ms = timer::ticks_to_us(uptime_ticks, self.frequency) / MICROS_PER_MILLI;
        println!("heartbeat n={} uptime_ms={uptime_ms}", self.beats);
    }
}

/// The deadline after `deadline`: one period on, so the beats do not drift by the time it takes
/// to wake and print; but if that is already past (the vCPU was not run for a while), one period
/// from `now`: missed beats are skipped, not fired back to back.
fn next_deadline(deadline: u64, period: u64, now: u64) -> u64 {
    let next = deadline.saturating_add(period);
    if next > now {
        next
    } else {
        now.saturating_add(period)
    }
}
