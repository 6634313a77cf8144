//! Physical interrupts taken while a guest runs (or while its vCPU waits), turned into virtual
//! ones: the guest's timers, console input, kicks from other pCPUs, GIC maintenance.

use super::cpus::{this_pcpu, vcpu_record};
use super::{vm, IoPass};
use crate::arch::aarch64::hyp_timer;
use crate::arch::aarch64::{cpu, gic as pgic};
use crate::console::CONSOLE;
use crate::devices::vpl011::Vpl011;
use crate::guest_map::{
    PPI_GIC_MAINTENANCE, PPI_HYP_PHYS_TIMER, PPI_NONSECURE_PHYS_TIMER, PPI_VIRT_TIMER, SPI_BASE, UART_SPI,
};
use crate::sched::Resched;

/// INTIDs from this value up are special (1020..1023: spurious / no interrupt pending).
const FIRST_SPECIAL_INTID: u32 = 1020;
/// The host UART's interrupt: QEMU virt wires its PL011 to SPI 1, as we do for the guest.
pub const HOST_UART_INTID: u32 = SPI_BASE + UART_SPI;

/// Takes every pending physical interrupt on this pCPU, whose loaded vCPU (if any) is `vcpu`;
/// says whether the scheduler must act (the time slice ended).
#[inline(never)]
pub fn handle_irq(vcpu: Option<usize>) -> Resched {
    let mut resched = Resched::No;
    // Idle loops call this after each look at the disk: without a pending interrupt, spare
    // them the acknowledge (a GIC access: QEMU's global lock).
    if !cpu::physical_irq_pending() {
        return resched;
    }
    while let Some(intid) = pgic::acknowledge().filter(|&intid| intid < FIRST_SPECIAL_INTID) {
        log::trace!("physical interrupt {intid} (loaded vCPU {vcpu:?})");
        match intid {
            PPI_HYP_PHYS_TIMER => {
                // The slice ended (or an idle pCPU's wake-up time came): the scheduler decides.
                hyp_timer::disarm();
                complete(intid);
                resched = Resched::Preempt;
            }
            PPI_VIRT_TIMER | PPI_NONSECURE_PHYS_TIMER => {
                let Some(vcpu) = vcpu else {
                    // No vCPU is loaded, so no guest timer should be running: drop it.
                    complete(intid);
                    continue;
                };
                // Hardware-linked: stays active physically until the guest deactivates the
                // virtual interrupt (list register HW bit), so only drop the priority here.
                vm().post_timer(vcpu, intid);
                vcpu_record(vcpu).note_timer_injected(intid);
                pgic::priority_drop(intid);
            }
            HOST_UART_INTID => {
                vm().receive_console_input();
                complete(intid);
            }
            _ if Some(intid) == host_disk_interrupt() => {
                vm().complete_disk_io();
                complete(intid);
            }
            PPI_GIC_MAINTENANCE => {
                // The list registers are synced and refilled on the way back into the guest,
                // which is what this asks for. Its condition (an EOI'd entry, underflow) lasts
                // until then, and the interrupt is level-triggered: switch the virtual
                // interface off (which drops it) until the entry, or it would be taken again
                // at once, forever.
                pgic::disable_virtual_interface();
                this_pcpu().note_virtual_interface_off();
                complete(intid);
            }
            pgic::SGI_KICK => {
                // Nothing to do here: a kicked vCPU is flagged, and its list registers are
                // refilled on the way back into the guest.
                complete(intid);
            }
            other => {
                log::warn!("unexpected physical interrupt {other} (loaded vCPU {vcpu:?})");
                complete(other);
            }
        }
        // Most exits take one interrupt: ask ISR_EL1 whether another waits rather than pay
        // for an acknowledge that answers "none" (a GIC access: QEMU's global lock).
        if !cpu::physical_irq_pending() {
            break;
        }
    }
    resched
}

/// The host disk's interrupt, if there is a disk (looked up once).
fn host_disk_interrupt() -> Option<u32> {
    static INTID: spin::Once<Option<u32>> = spin::Once::new();
    *INTID.call_once(|| vm().host_disk_interrupt())
}

/// Enables the host disk's interrupt (routed to pCPU 0): its requests complete in the
/// background (see `devices::host_blk`).
pub fn enable_host_disk_interrupt() {
    if let Some(intid) = host_disk_interrupt() {
        pgic::enable_shared(intid, true);
    }
}

fn complete(intid: u32) {
    pgic::priority_drop(intid);
    pgic::deactivate(intid);
}

/// Typing this on the console (Ctrl-]) prints the exit profile instead of reaching the guest.
pub const PROFILE_KEY: u8 = 0x1d;

/// Moves typed bytes from the physical UART into the guest's UART, as many as its FIFO takes.
/// The rest waits in the physical UART (and QEMU's character device behind it) with the
/// receive interrupt masked until the guest reads and this runs again: backpressure instead
/// of dropped keystrokes. The caller updates the guest UART's interrupt line.
pub fn pump_console_input(uart: &mut Vpl011) {
    while uart.has_room() {
        match CONSOLE.read_byte() {
            Some(PROFILE_KEY) => super::stats::print_profile(),
            Some(byte) => {
                uart.receive(byte);
            }
            None => break,
        }
    }
    CONSOLE.set_receive_interrupt(uart.has_room());
}

/// Whether the loaded vCPU `vcpu`, whose list registers are synced, has an interrupt to take
/// (its timer may have fired meanwhile: posted PPIs are taken in first).
pub fn has_deliverable(vcpu: usize) -> bool {
    let vm = vm();
    vm.vgic.vcpu(vcpu).is_some_and(|mut gic| {
        vm.take_posted(&mut gic);
        gic.has_deliverable()
    })
}

/// WFI: returns once vCPU `vcpu` has an interrupt to take; until then the pCPU sleeps and
/// handles its physical interrupts (one of which will eventually be for this vCPU).
pub fn wait_for_interrupt(vcpu: usize) {
    wait_until_deliverable(vcpu);
    vm().stop_polling_disk();
}

fn wait_until_deliverable(vcpu: usize) {
    loop {
        if has_deliverable(vcpu) {
            return;
        }
        // This pCPU has nothing else to do: disk requests a notification left unserved are
        // served back to back (their completion is often what the vCPU waits for), as an idle
        // pCPU does; before, they waited for the next exit of some vCPU.
        // A pass's completion may be for this vCPU: it looks again before sleeping.
        match vm().serve_unserved_io(true) {
            IoPass::Ran { .. } => {}
            IoPass::Deferred => IoPass::nap_while_another_pcpu_serves(),
            IoPass::NothingWaits => {
                // IRQs stay masked at EL2; WFI still wakes when one becomes pending.
                let idle_start = crate::arch::aarch64::cpu::counter();
                aarch64_cpu::asm::wfi();
                super::stats::add_idle(vcpu, crate::arch::aarch64::cpu::counter() - idle_start);
            }
        }
        handle_irq(Some(vcpu));
        if this_pcpu().loaded_vcpu_is_stale() {
            return;
        }
    }
}
