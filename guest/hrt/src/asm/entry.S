// The HRT entry point (ELF e_entry), run by every HRT core at once. Included by main.rs through
// global_asm!, which fills in the named operands.
//
// The hypervisor enters here at EL1h with D, A, I, F masked, the MMU on (its TTBR1 tables),
// SP_EL1 = this core's stack top, x0 = boot info VA, x1 = HRT core index, x2 = vCPU id
// (hvm-ros-lib abi.rs, mod hrt_boot). VBAR_EL1 is 0, so the vectors come first: until then an
// exception would run whatever lies at address 0.

.section .text.entry, "ax"
.global _start
_start:
    adrp    x9, hrt_vectors
    add     x9, x9, :lo12:hrt_vectors
    msr     vbar_el1, x9
    // TPIDR_EL1 = the HRT core index: how exception handlers find their core (cpu.rs). The
    // fatal-report flag bit starts clear.
    bic     x9, x1, #(1 << {FATAL_FLAG_BIT})
    msr     tpidr_el1, x9
    isb
    // AAPCS64 wants a 16-byte aligned sp; round the given stack top down to be sure.
    mov     x9, sp
    and     x9, x9, #~15
    mov     sp, x9
    // End the frame-pointer chain here (backtraces in gdb).
    mov     x29, xzr
    mov     x30, xzr
    // hrt_main(boot info VA, core index, vCPU id): x0..x2 as the hypervisor set them.
    bl      {MAIN}
    b       {PARK}
