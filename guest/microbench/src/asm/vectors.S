// The EL1 exception vector table (VBAR_EL1, set by boot.S). IRQs taken from EL1 with SP_EL1 go
// to irq_handler (exceptions.rs) with the interrupted state saved; synchronous exceptions from
// EL1 with SP_EL1 go to sync_handler, which resumes at the address it returns (a probe's fault
// path, probe.rs) or does not return; everything else is unexpected: exception_unexpected
// prints the syndrome and powers off.

// Bytes of the frame: x0-x18, x29, x30, ELR_EL1, SPSR_EL1, rounded up to 16.
.equ FRAME, 24 * 8
.equ FRAME_ELR, 168
.equ FRAME_SPSR, 176

// unexpected KIND: a vector entry that hands KIND (see exceptions.rs) to the Rust handler.
.macro unexpected kind
.balign 0x80
    mov     x0, #\kind
    b       unexpected_entry
.endm

// save_frame: stores x2-x18, x29, x30, ELR_EL1 and SPSR_EL1 in the frame (x0 and x1 are
// already there); x1 is free afterwards.
.macro save_frame
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x29, [sp, #144]
    mrs     x1, elr_el1
    stp     x30, x1, [sp, #160]
    mrs     x1, spsr_el1
    str     x1, [sp, #FRAME_SPSR]
.endm

// restore_frame_and_return: the inverse of save_frame and the vector's first instructions, then
// back to ELR_EL1 as the frame holds it.
.macro restore_frame_and_return
    ldr     x1, [sp, #FRAME_SPSR]
    msr     spsr_el1, x1
    ldp     x30, x1, [sp, #160]
    msr     elr_el1, x1
    ldp     x18, x29, [sp, #144]
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
.endm

.section .text.vectors, "ax"
.balign 0x800
.global exception_vectors
exception_vectors:
    // Current EL with SP_EL0: we never run on SP_EL0.
    unexpected 0
    unexpected 1
    unexpected 2
    unexpected 3
    // Current EL with SP_ELx.
.balign 0x80
    sub     sp, sp, #FRAME
    stp     x0, x1, [sp, #0]
    b       sync_entry
.balign 0x80
    sub     sp, sp, #FRAME
    stp     x0, x1, [sp, #0]
    mrs     x0, cntvct_el0              // the entry time, before anything else
    b       irq_entry
    unexpected 6
    unexpected 7
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

// x0 and x1 already saved.
sync_entry:
    save_frame
    ldr     x0, [sp, #FRAME_ELR]
    bl      sync_handler                // returns the address to resume at
    str     x0, [sp, #FRAME_ELR]
    restore_frame_and_return

// x0 = CNTVCT_EL0 at entry; x0 and x1 already saved.
irq_entry:
    save_frame
    bl      irq_handler
    restore_frame_and_return
