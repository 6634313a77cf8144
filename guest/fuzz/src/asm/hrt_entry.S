// The entry point of the HRT build (linker-hrt.ld: ELF e_entry), run by every HRT core at once.
// Included by hrt/mod.rs through global_asm!, which fills in the named operands.
//
// The hypervisor enters here at EL1h with D, A, I, F masked, the MMU on (its TTBR1 tables only),
// SP_EL1 = this core's stack top, x0 = the boot info's virtual address, x1 = the HRT core index,
// x2 = the vCPU id (hvm-ros-lib abi.rs, mod hrt_boot). VBAR_EL1 is 0, so the vectors come
// first: until then an exception would run whatever lies at address 0.

.section .text.hrt_entry, "ax"
.global hrt_entry
hrt_entry:
    adrp    x9, exception_vectors
    add     x9, x9, :lo12:exception_vectors
    msr     vbar_el1, x9
    // FP/SIMD on, as boot.S does: the access table's 16-byte SIMD forms must reach the
    // hypervisor rather than trap here.
    mov     x9, #{CPACR_FPEN}
    msr     cpacr_el1, x9
    isb
    // AAPCS64 wants a 16-byte aligned sp; round the given stack top down to be sure.
    mov     x9, sp
    and     x9, x9, #~15
    mov     sp, x9
    // End the frame-pointer chain here (backtraces in gdb).
    mov     x29, xzr
    mov     x30, xzr
    // hrt_main(boot info VA, core index, vCPU id): x0..x2 as the hypervisor set them.
    bl      {HRT_MAIN}
    b       park

// A store that cannot change memory: reads the 8 bytes at x1 exclusively and writes the same
// value back only if nobody wrote them in between (stxr fails otherwise). The HRT may write the
// ROS's RAM; this exercises that path without corrupting the ROS. In .fuzz_code: a fault (an
// unaligned address, a read-only mapping) is counted and stepped over. The clrex makes sure a
// load that faulted leaves no monitor behind, so the stxr after it cannot store x0's old value.
// Returns the value read (x3 = the stxr's status).
.section .fuzz_code, "ax"
.balign 16
.global fuzz_hrt_same_value_store
fuzz_hrt_same_value_store:
    clrex
    ldxr    x0, [x1]
    stxr    w3, x0, [x1]
    ret
