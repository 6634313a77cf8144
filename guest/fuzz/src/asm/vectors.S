// The EL1 exception vector table (VBAR_EL1, set by boot.S). Exceptions taken from EL1 with
// SP_EL1 (the only way the fuzzer runs) save every general-purpose register, ELR_EL1 and
// SPSR_EL1 in a frame on the stack and call the Rust handler with its address
// (exceptions.rs `Frame`); the handler may change the frame (e.g. step ELR over a faulting
// instruction), which is then restored. Anything else is unexpected: exception_unexpected
// prints the syndrome and powers off.

// Bytes of the frame: x0-x30, ELR_EL1, SPSR_EL1, rounded up to 16.
.equ FRAME, 34 * 8
.equ FRAME_ELR, 31 * 8
.equ FRAME_SPSR, 32 * 8

// unexpected KIND: a vector entry that hands KIND (see exceptions.rs) to the Rust handler.
.macro unexpected kind
.balign 0x80
    mov     x0, #\kind
    b       unexpected_entry
.endm

// handled HANDLER: save the frame, call HANDLER(frame), restore, return.
.macro handled handler
.balign 0x80
    sub     sp, sp, #FRAME
    stp     x0, x1, [sp, #0]
    adr     x1, \handler
    b       save_call_restore
.endm

.section .text.vectors, "ax"
.balign 0x800
.global exception_vectors
exception_vectors:
    // Current EL with SP_EL0: the fuzzer never runs on SP_EL0.
    unexpected 0
    unexpected 1
    unexpected 2
    unexpected 3
    // Current EL with SP_ELx.
    handled sync_handler
    handled irq_handler
    handled fiq_handler
    handled serror_handler
    // Lower EL, AArch64 and AArch32: there is no lower EL here.
    unexpected 8
    unexpected 9
    unexpected 10
    unexpected 11
    unexpected 12
    unexpected 13
    unexpected 14
    unexpected 15

unexpected_entry:
    bl      exception_unexpected        // never returns
    b       park

// x0 and x1 are saved; x1 = the Rust handler to call with the frame.
save_call_restore:
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
    mrs     x2, elr_el1
    stp     x30, x2, [sp, #240]
    mrs     x2, spsr_el1
    str     x2, [sp, #FRAME_SPSR]
    mov     x0, sp
    blr     x1
    ldr     x1, [sp, #FRAME_SPSR]
    msr     spsr_el1, x1
    ldp     x30, x1, [sp, #240]
    msr     elr_el1, x1
    ldp     x28, x29, [sp, #224]
    ldp     x26, x27, [sp, #208]
    ldp     x24, x25, [sp, #192]
    ldp     x22, x23, [sp, #176]
    ldp     x20, x21, [sp, #160]
    ldp     x18, x19, [sp, #144]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #FRAME
    eret
