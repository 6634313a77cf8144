//! The EL2 entry glue: boot assembly, the Rust entry points of the boot and secondary pCPUs,
//! the exception entry and the panic handler. Everything else lives in the library.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("the hypervisor runs at EL2 on aarch64-unknown-none; see README.md (make build)");
    std::process::exit(1);
}

#[cfg(target_os = "none")]
mod el2 {
    use hypervisor::arch::aarch64::trap::{FaultRegisters, TrapFrame, VectorKind};
    use hypervisor::arch::aarch64::{cpu, firmware};
    use hypervisor::console::{CONSOLE, LOG_PREFIX};
    use hypervisor::startup;

    core::arch::global_asm!(include_str!("arch/aarch64/boot.S"));
    core::arch::global_asm!(include_str!("arch/aarch64/vectors.S"));

    /// Boot pCPU entry, from `boot.S`, with the MMU off and x0 = host DTB address.
    #[no_mangle]
    extern "C" fn rust_main(dtb_address: usize) -> ! {
        startup::primary(dtb_address)
    }

    /// Secondary pCPU entry, from `boot.S`, with x0 = the logical CPU index.
    #[no_mangle]
    extern "C" fn secondary_main(index: usize) -> ! {
        startup::secondary(index)
    }

    /// Every exception taken to EL2 lands here (from `vectors.S`).
    #[no_mangle]
    extern "C" fn handle_exception(frame: &mut TrapFrame, kind: u64) {
        let kind = VectorKind(kind);
        if !kind.from_current_el() {
            hypervisor::vm::run::on_guest_exit(frame, kind);
            return;
        }
        // An exception taken from EL2 itself is a hypervisor bug. Report everything and stop.
        let faults = FaultRegisters::read();
        CONSOLE.write_emergency(format_args!("{LOG_PREFIX}unexpected exception: {kind}\n{LOG_PREFIX}{faults}\n"));
        frame.dump(|line| CONSOLE.write_emergency(format_args!("{LOG_PREFIX}{line}\n")));
        panic!("unexpected {kind} at ELR_EL2={:#x}", frame.elr);
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
        let faults = FaultRegisters::read();
        CONSOLE.write_emergency(format_args!(
            "{LOG_PREFIX}PANIC on pcpu{}: {}\n{LOG_PREFIX}{faults}\n",
            cpu::current_index(),
            info
        ));
        CONSOLE.write_emergency(format_args!("{LOG_PREFIX}powering off\n"));
        firmware::system_off()
    }
}
