// Every instruction the fuzzer issues on purpose that may fault, in the .fuzz_code section:
// the synchronous exception handler (exceptions.rs) counts a fault on one of them and steps
// over it (ELR += 4). Called from Rust (ops/access.rs, calls.rs, arch.rs) through `blr`.
//
// The access table: fixed 16-byte slots (up to three instructions and `ret`), one per access
// kind of ops/access.rs (`Kind`, same order). In: x0 = value to store (or the load's result if it
// faults), x1 = base address, x2 = second value (pairs); out: x0. Clobbers x0-x3, v0.

.arch armv8.1-a+fp+simd+lse
.section .fuzz_code, "ax"

.macro slot a, b=nop, c=nop
.balign 16
    \a
    \b
    \c
    ret
.endm

.balign 16
.global fuzz_access_table
fuzz_access_table:
    // Loads (kinds 0-25).
    slot    "ldrb w0, [x1]"
    slot    "ldrh w0, [x1]"
    slot    "ldr w0, [x1]"
    slot    "ldr x0, [x1]"
    slot    "ldrsb x0, [x1]"
    slot    "ldrsh x0, [x1]"
    slot    "ldrsw x0, [x1]"
    slot    "ldrsb w0, [x1]"
    slot    "ldp w0, w2, [x1]"
    slot    "ldp x0, x2, [x1]"
    slot    "ldpsw x0, x2, [x1]"
    slot    "ldr x0, [x1], #8"
    slot    "ldr x0, [x1, #8]!"
    slot    "ldar w0, [x1]"
    slot    "ldar x0, [x1]"
    slot    "ldxr x0, [x1]"
    slot    "ldnp x0, x2, [x1]"
    slot    "ldur w0, [x1, #1]"
    slot    "ldr x0, [x1, xzr]"
    slot    "ldr q0, [x1]", "fmov x0, d0"
    slot    "ld1 {{v0.16b}}, [x1]", "fmov x0, d0"
    slot    "ldtr x0, [x1]"
    slot    "ldaxp x0, x2, [x1]"
    slot    "prfm pldl1keep, [x1]"
    slot    "ldr w0, [x1], #4"
    slot    "ldrh w0, [x1, #2]!"
    // Stores (kinds 26-50).
    slot    "strb w0, [x1]"
    slot    "strh w0, [x1]"
    slot    "str w0, [x1]"
    slot    "str x0, [x1]"
    slot    "stp w0, w2, [x1]"
    slot    "stp x0, x2, [x1]"
    slot    "str x0, [x1], #8"
    slot    "str x0, [x1, #8]!"
    slot    "stlr w0, [x1]"
    slot    "stlr x0, [x1]"
    slot    "stxr w3, x0, [x1]"
    slot    "stnp x0, x2, [x1]"
    slot    "stur w0, [x1, #1]"
    slot    "fmov d0, x0", "str q0, [x1]"
    slot    "fmov d0, x0", "st1 {{v0.16b}}, [x1]"
    slot    "sttr w0, [x1]"
    slot    "strb w0, [x1], #1"
    slot    "stlrb w0, [x1]"
    slot    "stlrh w0, [x1]"
    slot    "str x0, [x1, xzr]"
    slot    "swp x0, x0, [x1]"
    slot    "ldadd w0, w0, [x1]"
    slot    "stp w0, w2, [x1, #-4]!"
    slot    "strh w0, [x1], #-2"
    slot    "stxp w3, x0, x2, [x1]"
    // Cache maintenance by address (kinds 51-56).
    slot    "dc civac, x1"
    slot    "dc cvac, x1"
    slot    "dc ivac, x1"
    slot    "dc zva, x1"
    slot    "dc cvau, x1"
    slot    "ic ivau, x1"
.global fuzz_access_table_end
fuzz_access_table_end:

// Instruction fetch from x0: returns to fuzz_ifetch_return, where the handler also resumes
// after an instruction abort at the target.
.balign 16
.global fuzz_ifetch
fuzz_ifetch:
    stp     x29, x30, [sp, #-16]!
    blr     x0
.global fuzz_ifetch_return
fuzz_ifetch_return:
    ldp     x29, x30, [sp], #16
    ret

// call NAME, INSN: a hypercall with x0-x17 loaded from the array x0 points to, which receives
// x0-x17 as they are after the call.
.macro call name, insn
.balign 16
.global \name
\name:
    stp     x19, x30, [sp, #-16]!
    mov     x19, x0
    ldp     x0, x1, [x19, #0]
    ldp     x2, x3, [x19, #16]
    ldp     x4, x5, [x19, #32]
    ldp     x6, x7, [x19, #48]
    ldp     x8, x9, [x19, #64]
    ldp     x10, x11, [x19, #80]
    ldp     x12, x13, [x19, #96]
    ldp     x14, x15, [x19, #112]
    ldp     x16, x17, [x19, #128]
    \insn
    stp     x0, x1, [x19, #0]
    stp     x2, x3, [x19, #16]
    stp     x4, x5, [x19, #32]
    stp     x6, x7, [x19, #48]
    stp     x8, x9, [x19, #64]
    stp     x10, x11, [x19, #80]
    stp     x12, x13, [x19, #96]
    stp     x14, x15, [x19, #112]
    stp     x16, x17, [x19, #128]
    ldp     x19, x30, [sp], #16
    ret
.endm

    call    fuzz_call_hvc0, "hvc #0"
    call    fuzz_call_hvc1, "hvc #1"
    call    fuzz_call_hvcffff, "hvc #0xffff"
    call    fuzz_call_smc0, "smc #0"
    call    fuzz_call_smc1234, "smc #0x1234"

// Hints and waits (misc.rs): one instruction each, 8-byte slots.
.balign 8
.global fuzz_hint_table
fuzz_hint_table:
    wfi
    ret
    wfe
    ret
    sev
    ret
    sevl
    ret
    yield
    ret
    hint    #16         // esb
    ret
    hint    #20         // csdb
    ret
    isb
    ret
    dsb     sy
    ret
    hint    #17         // psb csync
    ret
.global fuzz_hint_table_end
fuzz_hint_table_end:
