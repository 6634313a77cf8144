// The EL1 exception vector table (VBAR_EL1, set first thing by entry.S): 16 entries of 0x80
// bytes, 2 KiB aligned. Included by main.rs through global_asm!.
//
// * IRQ taken at EL1 on SP_EL1 (the way the HRT kernel runs): save the caller-saved registers,
//   ELR_EL1 and SPSR_EL1, call the Rust handler (exceptions.rs `hrt_irq`), restore, eret.
// * Synchronous exception or IRQ from AArch64 EL0 (ROS code the HRT runs there, el0.rs): make
//   room for the whole EL0 frame, save x0 and x1, and go to asm/el0.S with the kind in x0,
//   which saves the rest and calls el0.rs `hrt_el0_exception`.
// * Everything else is fatal: synchronous exceptions and SErrors at EL1 (a bug, or a bad
//   access), FIQs (the HRT enables no Group 0 interrupt), SErrors from EL0, the SP_EL0 vectors
//   (the kernel never runs on SP_EL0) and AArch32 (EL0 is only ever entered in AArch64).
//   fatal_entry reports ESR/ELR/FAR on the console and parks the core.

// The IRQ frame: x0-x18, x30, ELR_EL1, SPSR_EL1 (22 registers, a multiple of 16 bytes).
.equ IRQ_FRAME, 22 * 8
.equ IRQ_FRAME_X18_X30, 18 * 8
.equ IRQ_FRAME_ELR_SPSR, 20 * 8

// fatal KIND: hands the vector's number to fatal_entry (exceptions.rs names it).
.macro fatal kind
.balign 0x80
    mov     x0, #\kind
    b       fatal_entry
.endm

.macro irq
.balign 0x80
    sub     sp, sp, #IRQ_FRAME
    stp     x0, x1, [sp, #0]
    b       irq_entry
.endm

// from_el0 KIND: an exception from EL0, for el0.rs (KIND: its EL0_SYNC or EL0_IRQ).
.macro from_el0 kind
.balign 0x80
    sub     sp, sp, #{EL0_FRAME}
    stp     x0, x1, [sp, #0]
    mov     x0, #\kind
    b       hrt_el0_exception_entry
.endm

.section .text.vectors, "ax"
.balign 0x800
.global hrt_vectors
hrt_vectors:
    // Current EL with SP_EL0.
    fatal 0
    fatal 1
    fatal 2
    fatal 3
    // Current EL with SP_EL1.
    fatal 4
    irq
    fatal 6
    fatal 7
    // Lower EL, AArch64.
    from_el0 {EL0_SYNC}
    from_el0 {EL0_IRQ}
    fatal 10
    fatal 11
    // Lower EL, AArch32.
    fatal 12
    fatal 13
    fatal 14
    fatal 15

// x0, x1 are saved at [sp].
irq_entry:
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x30, [sp, #IRQ_FRAME_X18_X30]
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x0, x1, [sp, #IRQ_FRAME_ELR_SPSR]
    bl      {IRQ}
    ldp     x0, x1, [sp, #IRQ_FRAME_ELR_SPSR]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x18, x30, [sp, #IRQ_FRAME_X18_X30]
    ldp     x16, x17, [sp, #128]
    ldp     x14, x15, [sp, #112]
    ldp     x12, x13, [sp, #96]
    ldp     x10, x11, [sp, #80]
    ldp     x8, x9, [sp, #64]
    ldp     x6, x7, [sp, #48]
    ldp     x4, x5, [sp, #32]
    ldp     x2, x3, [sp, #16]
    ldp     x0, x1, [sp, #0]
    add     sp, sp, #IRQ_FRAME
    eret

// x0 = the vector's number. Reports once per core: a second fatal exception while reporting
// (the flag in TPIDR_EL1 is set) parks at once. The report runs on this core's fatal stack,
// for the fault may have come from its own stack (overflow).
fatal_entry:
    mov     x1, sp
    mrs     x2, tpidr_el1
    tbnz    x2, #{FATAL_FLAG_BIT}, {PARK}
    orr     x3, x2, #(1 << {FATAL_FLAG_BIT})
    msr     tpidr_el1, x3
    cmp     x2, #{MAX_CORES}
    b.hs    1f                          // no fatal stack for this core: keep sp
    adrp    x3, fatal_stacks
    add     x3, x3, :lo12:fatal_stacks
    mov     x4, #{FATAL_STACK_SIZE}
    madd    x3, x2, x4, x3              // this core's fatal stack: bottom...
    add     x3, x3, x4                  // ...and top
    mov     sp, x3
1:  mov     x29, xzr
    bl      {FATAL}                     // hrt_fatal(vector number, interrupted sp): no return
    b       {PARK}

.section .bss.fatal_stacks, "aw", %nobits
.balign 16
fatal_stacks:
    .skip   {FATAL_STACK_SIZE} * {MAX_CORES}
