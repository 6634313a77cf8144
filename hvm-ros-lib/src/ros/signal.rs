//! Signals from the HRT to a ROS process (palacios-hvm.md §4.6, §7.7; DESIGN.md: "EL2 saves the
//! interrupted context on the registered stack and enters the handler stub; the stub returns
//! with the signal-return sub-operation").
//!
//! `SetSignalHandler` (0x40) registers an entry point and a stack top for the calling process
//! (0, 0 removes them). The entry point this library registers is the stub
//! `__v3_hvm_ros_signal_handler_stub` (Palacios' name), which expects (`crate::abi::signal`):
//! - on entry, at EL0: PC = the stub, SP = the frame EL2 wrote with the interrupted context
//!   (`abi::signal::SignalFrame`, 16-byte aligned, below the registered stack top), x0 = the
//!   signal code; every other register may hold anything;
//! - the stub saves the FP/SIMD state (q0-q31, FPCR, FPSR) below the frame, calls the handler
//!   with the code (if one is set), restores the FP/SIMD state and makes `SignalReturn` (0x60)
//!   through the doorbell with x2 = the frame address (SP at entry): EL2 reloads the interrupted
//!   context from the frame and never returns to the stub (which traps with `brk` if it did).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::Hvm;
use crate::abi::{HvmError, SubOp};

/// The handler the stub calls (an `extern "C" fn(u64)`, 0 for none); Palacios'
/// `__v3_hvm_ros_signal_handler`.
static HANDLER: AtomicUsize = AtomicUsize::new(0);
/// The doorbell word the stub rings for `SignalReturn`.
static DOORBELL: AtomicUsize = AtomicUsize::new(0);
/// The registered stack (address, length), unlocked when unregistered.
static STACK: std::sync::Mutex<(usize, usize)> = std::sync::Mutex::new((0, 0));

#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".text",
    ".global __v3_hvm_ros_signal_handler_stub",
    ".type __v3_hvm_ros_signal_handler_stub, %function",
    ".balign 16",
    "__v3_hvm_ros_signal_handler_stub:",
    // x19 keeps the frame address (the handler preserves it: AAPCS64 callee-saved).
    "mov x19, sp",
    "sub sp, sp, #528",
    "mrs x9, fpcr",
    "mrs x10, fpsr",
    "stp x9, x10, [sp, #0]",
    "stp q0, q1, [sp, #16]",
    "stp q2, q3, [sp, #48]",
    "stp q4, q5, [sp, #80]",
    "stp q6, q7, [sp, #112]",
    "stp q8, q9, [sp, #144]",
    "stp q10, q11, [sp, #176]",
    "stp q12, q13, [sp, #208]",
    "stp q14, q15, [sp, #240]",
    "stp q16, q17, [sp, #272]",
    "stp q18, q19, [sp, #304]",
    "stp q20, q21, [sp, #336]",
    "stp q22, q23, [sp, #368]",
    "stp q24, q25, [sp, #400]",
    "stp q26, q27, [sp, #432]",
    "stp q28, q29, [sp, #464]",
    "stp q30, q31, [sp, #496]",
    "adrp x9, {handler}",
    "ldr x9, [x9, :lo12:{handler}]",
    "cbz x9, 1f",
    // x0 still holds the code: the handler's argument.
    "blr x9",
    "1:",
    "ldp x9, x10, [sp, #0]",
    "msr fpcr, x9",
    "msr fpsr, x10",
    "ldp q0, q1, [sp, #16]",
    "ldp q2, q3, [sp, #48]",
    "ldp q4, q5, [sp, #80]",
    "ldp q6, q7, [sp, #112]",
    "ldp q8, q9, [sp, #144]",
    "ldp q10, q11, [sp, #176]",
    "ldp q12, q13, [sp, #208]",
    "ldp q14, q15, [sp, #240]",
    "ldp q16, q17, [sp, #272]",
    "ldp q18, q19, [sp, #304]",
    "ldp q20, q21, [sp, #336]",
    "ldp q22, q23, [sp, #368]",
    "ldp q24, q25, [sp, #400]",
    "ldp q26, q27, [sp, #432]",
    "ldp q28, q29, [sp, #464]",
    "ldp q30, q31, [sp, #496]",
    "mov sp, x19",
    "adrp x9, {doorbell}",
    "ldr x9, [x9, :lo12:{doorbell}]",
    "movz x0, #0xf00d",
    "movk x0, #0xc600, lsl #16",
    "mov x1, #{signal_return}",
    "mov x2, x19",
    "str xzr, [x9]",
    "2:",
    "brk #0xf00d",
    "b 2b",
    ".size __v3_hvm_ros_signal_handler_stub, . - __v3_hvm_ros_signal_handler_stub",
    handler = sym HANDLER,
    doorbell = sym DOORBELL,
    signal_return = const SubOp::SignalReturn as u64,
);

#[cfg(target_arch = "aarch64")]
extern "C" {
    fn __v3_hvm_ros_signal_handler_stub();
}

/// The entry point registered with the hypervisor.
fn stub_address() -> u64 {
    #[cfg(target_arch = "aarch64")]
    {
        __v3_hvm_ros_signal_handler_stub as *const () as u64
    }
    #[cfg(not(target_arch = "aarch64"))]
    {
        // Unreachable in practice: an `Hvm` exists only on aarch64.
        0
    }
}

/// The stack top registered for a stack of `size` bytes at `stack`: 16 bytes below its end,
/// 16-byte aligned (Palacios: `stack + stack_size - 16`, aligned).
pub fn stack_top(stack: u64, size: u64) -> u64 {
    (stack + size).saturating_sub(16) & !0xf
}

impl Hvm {
    /// Registers `handler` (none: signals are taken and ignored) to run on the `stack_size` bytes
    /// at `stack` when the HRT signals this process (0x40 with the library's stub as entry
    /// point). The stack is zeroed (so
    /// present) and locked first. The handler runs on that stack, in whatever thread was
    /// interrupted, and must be async-signal-safe.
    ///
    /// # Safety
    ///
    /// `stack` must be `stack_size` writable bytes that nothing else uses while the handler is
    /// registered, and this `Hvm` must stay open meanwhile (the stub rings its doorbell).
    pub unsafe fn register_signal(
        &self,
        handler: Option<extern "C" fn(u64)>,
        stack: *mut u8,
        stack_size: usize,
    ) -> Result<(), HvmError> {
        if stack.is_null() || stack_size < 1024 {
            return Err(HvmError::InvalidArgument);
        }
        // SAFETY: the caller gives us the stack (see above).
        unsafe {
            std::ptr::write_bytes(stack, 0, stack_size);
            libc::mlock(stack.cast(), stack_size);
        }
        *STACK.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = (stack as usize, stack_size);
        HANDLER.store(handler.map_or(0, |h| h as usize), Ordering::SeqCst);
        DOORBELL.store(self.map.word as usize, Ordering::SeqCst);
        let top = stack_top(stack as u64, stack_size as u64);
        self.call(SubOp::SetSignalHandler, [stub_address(), top, 0, 0, 0, 0]).map(drop)
    }

    /// [`Hvm::register_signal`] with a stack that lives as long as the process.
    pub fn register_signal_with_stack(
        &'static self,
        handler: extern "C" fn(u64),
        stack: &'static mut [u8],
    ) -> Result<(), HvmError> {
        // SAFETY: the stack is ours alone for good; a `'static` Hvm stays open.
        unsafe { self.register_signal(Some(handler), stack.as_mut_ptr(), stack.len()) }
    }

    /// Removes this process's handler (0x40 with 0, 0), then forgets it and unlocks its stack
    /// whatever the hypervisor answered (as Palacios does).
    pub fn unregister_signal(&self) -> Result<(), HvmError> {
        let result = self.call(SubOp::SetSignalHandler, [0; 6]).map(drop);
        HANDLER.store(0, Ordering::SeqCst);
        let mut stack = STACK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if stack.0 != 0 {
            // SAFETY: munlock only changes residency of the memory we locked.
            unsafe { libc::munlock(stack.0 as *const libc::c_void, stack.1) };
            *stack = (0, 0);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_top_is_aligned_below_the_end() {
        assert_eq!(stack_top(0x1000, 0x2000), 0x2ff0);
        assert_eq!(stack_top(0x1001, 0x2000), 0x2ff0);
        assert_eq!(stack_top(0x1008, 0x2008), 0x3000);
        assert_eq!(stack_top(0, 8), 0);
    }
}
