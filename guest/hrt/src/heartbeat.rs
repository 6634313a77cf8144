//! The heartbeat (`heartbeat=<seconds>`, cmdline.rs): core 0's idle loop once it is ready,
//! printing `heartbeat n=<K> uptime_ms=<ms>` every period, so a test can see the HRT is still
//! alive and taking interrupts after something happened in the ROS.
//!
//! The IRQ handler only counts the virtual timer's interrupt (timer.rs); the line is printed
//! here, after the WFI, outside the handler: the console's line buffer is shared with IRQ context
//! only under masked IRQs (console.rs), and a print from here needs nothing else.

use crate::boot::BootInfoView;
use crate::console::println;
use crate::{cpu, timer};

const MICROS_PER_SECOND: u64 = 1_000_000;
const MICROS_PER_MILLI: u64 = 1_000;

/// Core 0's idle loop with a heartbeat every `period_s` seconds (in range, cmdline.rs).
pub fn run(period_s: u64, boot: &BootInfoView) -> ! {
    let frequency = boot.counter_frequency();
    let period = timer::us_to_ticks(period_s * MICROS_PER_SECOND, frequency).max(1);
    let mut beats: u64 = 0;
    let mut seen = timer::interrupts_taken();
    let mut deadline = timer::now().saturating_add(period);
    timer::arm_at(deadline);
    cpu::enable_interrupts();
    loop {
        // The mask-check-WFI-unmask pattern of timer::check_interrupts: a tick taken between
        // the check and the WFI still wakes it (WFI wakes on a pending, masked interrupt).
        cpu::disable_irqs();
        let taken = timer::interrupts_taken();
        if taken == seen {
            cpu::wait_for_interrupt();
            cpu::enable_irqs();
            continue;
        }
        cpu::enable_irqs();
        seen = taken;
        beats += 1;
        let now = timer::now();
        deadline = next_deadline(deadline, period, now);
        timer::arm_at(deadline);
        let uptime_ms = timer::ticks_to_us(now.saturating_sub(boot.boot_start_counter()), frequency) / MICROS_PER_MILLI;
        println!("heartbeat n={beats} uptime_ms={uptime_ms}");
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
