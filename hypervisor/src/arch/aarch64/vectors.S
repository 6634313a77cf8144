// EL2 exception vector table.
//
// Every entry saves the interrupted context as a TrapFrame (see arch/aarch64/trap.rs) on the
// current stack and calls handle_exception(frame, kind). The handler may edit the frame (e.g.
// advance ELR or set x0); the frame is restored on return.

.equ TRAP_FRAME_SIZE, 34 * 8            // x0-x30, ELR_EL2, SPSR_EL2, padding

.macro VECTOR kind
.balign 0x80
    sub     sp, sp, #TRAP_FRAME_SIZE
    stp     x0, x1, [sp, #0 * 8]
    mov     x1, #\kind
    b       trap_common
.endm

.section .text.vectors, "ax"
.balign 0x800
.global el2_vectors
el2_vectors:
    // Current EL with SP_EL0
    VECTOR 0
    VECTOR 1
    VECTOR 2
    VECTOR 3
    // Current EL with SP_ELx
    VECTOR 4
    VECTOR 5
    VECTOR 6
    VECTOR 7
    // Lower EL, AArch64
    VECTOR 8
    VECTOR 9
    VECTOR 10
    VECTOR 11
    // Lower EL, AArch32
    VECTOR 12
    VECTOR 13
    VECTOR 14
    VECTOR 15

trap_common:
    stp     x2, x3, [sp, #2 * 8]
    stp     x4, x5, [sp, #4 * 8]
    stp     x6, x7, [sp, #6 * 8]
    stp     x8, x9, [sp, #8 * 8]
    stp     x10, x11, [sp, #10 * 8]
    stp     x12, x13, [sp, #12 * 8]
    stp     x14, x15, [sp, #14 * 8]
    stp     x16, x17, [sp, #16 * 8]
    stp     x18, x19, [sp, #18 * 8]
    stp     x20, x21, [sp, #20 * 8]
    stp     x22, x23, [sp, #22 * 8]
    stp     x24, x25, [sp, #24 * 8]
    stp     x26, x27, [sp, #26 * 8]
    stp     x28, x29, [sp, #28 * 8]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x30, x2, [sp, #30 * 8]
    str     x3, [sp, #32 * 8]
    mov     x0, sp
    bl      handle_exception
.global trap_return
trap_return:
    ldr     x3, [sp, #32 * 8]
    ldp     x30, x2, [sp, #30 * 8]
    msr     elr_el2, x2
    msr     spsr_el2, x3
    ldp     x28, x29, [sp, #28 * 8]
    ldp     x26, x27, [sp, #26 * 8]
    ldp     x24, x25, [sp, #24 * 8]
    ldp     x22, x23, [sp, #22 * 8]
    ldp     x20, x21, [sp, #20 * 8]
    ldp     x18, x19, [sp, #18 * 8]
    ldp     x16, x17, [sp, #16 * 8]
    ldp     x14, x15, [sp, #14 * 8]
    ldp     x12, x13, [sp, #12 * 8]
    ldp     x10, x11, [sp, #10 * 8]
    ldp     x8, x9, [sp, #8 * 8]
    ldp     x6, x7, [sp, #6 * 8]
    ldp     x4, x5, [sp, #4 * 8]
    ldp     x2, x3, [sp, #2 * 8]
    ldp     x0, x1, [sp, #0 * 8]
    add     sp, sp, #TRAP_FRAME_SIZE
    eret
