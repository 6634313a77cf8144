// Running ROS code at EL0 (el0.rs): the way in from the kernel, the common part of the
// lower-EL vectors (vectors.S), the way back to EL0 and the way out to the kernel. Included by
// main.rs through global_asm!, which fills in the named operands (frame offsets from el0.rs).
//
// hrt_el0_call(frame, call) works like setjmp: it pushes the callee-saved registers and `call`
// (the kernel context) on this core's stack, copies the EL0 frame right below them and returns
// to EL0 through it. SP_EL1 at EL0 is then the kernel context's address, so an exception from
// EL0 pushes its frame right below the kernel context, the same place. After the Rust handler,
// either EL0 resumes from the (possibly changed) frame, or the call is over: the frame is
// dropped and the kernel context popped, which returns from hrt_el0_call (longjmp).

.section .text.el0, "ax"

// hrt_el0_call(frame: *const El0Frame [x0], call: *mut RosCall [x1]); returns when the handler
// ends the call.
.global hrt_el0_call
hrt_el0_call:
    sub     sp, sp, #{KERNEL_CONTEXT}
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    str     x1, [sp, #{KERNEL_CONTEXT_CALL}]
    sub     sp, sp, #{FRAME}
    mov     x9, sp
    mov     x10, #({FRAME} / 16)
1:  ldp     x11, x12, [x0], #16
    stp     x11, x12, [x9], #16
    subs    x10, x10, #1
    b.ne    1b
    b       el0_return

// From a lower-EL vector: x0 = the kind of exception, the interrupted x0 and x1 saved at [sp]
// (the vector made room for the whole frame).
.global hrt_el0_exception_entry
hrt_el0_exception_entry:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x9, sp_el0
    stp     x30, x9, [sp, #{FRAME_X30}]         // x30, then SP_EL0
    mrs     x10, elr_el1
    mrs     x11, spsr_el1
    stp     x10, x11, [sp, #{FRAME_ELR}]        // ELR_EL1, then SPSR_EL1
    // hrt_el0_exception(frame, kind, call): `call` is in the kernel context above the frame.
    mov     x1, x0
    mov     x0, sp
    ldr     x2, [sp, #({FRAME} + {KERNEL_CONTEXT_CALL})]
    mov     x29, xzr                            // EL0's x29 is no frame of ours
    bl      {HANDLER}
    cmp     x0, #{RESUME}
    b.eq    el0_return
    // The call is over: drop the frame, pop the kernel context, return from hrt_el0_call.
    add     sp, sp, #{FRAME}
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    add     sp, sp, #{KERNEL_CONTEXT}
    ret

// sp = an EL0 frame, right below the kernel context: restore it and return to EL0. IRQs are
// masked first: the handler may have unmasked them, and an IRQ taken from here on would
// overwrite ELR_EL1 and SPSR_EL1.
el0_return:
    msr     daifset, #{DAIF_ALL}
    ldp     x10, x11, [sp, #{FRAME_ELR}]
    msr     elr_el1, x10
    msr     spsr_el1, x11
    ldr     x9, [sp, #{FRAME_SP}]
    msr     sp_el0, x9
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    ldr     x30, [sp, #{FRAME_X30}]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #{FRAME}
    eret
