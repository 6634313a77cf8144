// Entry points. Included by main.rs through global_asm!, which fills in the named operands
// (constants from mmu.rs and uart.rs, the page table's symbol).
//
// The image starts with the 64-byte arm64 Linux boot header (Documentation/arch/arm64/
// booting.rst), so the hypervisor (or QEMU's -kernel) loads it like Linux: at RAM base +
// text_offset, entered at EL1 with the MMU off, interrupts masked and x0 = the DTB's address.

.section .text.head, "ax"
.global _start
_start:
    b       primary_entry               // code0
    .word   0                           // code1
    .quad   __text_offset               // text_offset (linker.ld)
    .quad   __image_size                // image_size, including .bss and the stacks
    .quad   {IMAGE_FLAGS}               // flags: little-endian, 4 KiB pages, base near RAM start
    .quad   0, 0, 0                     // reserved
    .ascii  "ARM\x64"                   // magic
    .word   0                           // reserved (PE header offset)

.text
// The boot CPU. x0 = physical address of the DTB.
primary_entry:
    mov     x19, x0
    // Linked at a fixed address: refuse to run anywhere else (absolute addresses would be wrong).
    adr     x1, _start
    ldr     x2, =_start
    cmp     x1, x2
    b.ne    wrong_address
    // Zero .bss, which holds the stacks.
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  bl      set_stack
    bl      enable_mmu
    mov     x0, x19
    bl      rust_main
    b       park

// Secondary CPUs, started by PSCI CPU_ON: x0 = the context id. Each CPU has its own stack,
// chosen by MPIDR_EL1.Aff0 (the hypervisor numbers vCPUs from 0).
.global secondary_entry
secondary_entry:
    mov     x19, x0
    bl      set_stack
    bl      enable_mmu
    mov     x0, x19
    bl      secondary_main
    b       park

// sp = top of this CPU's stack (MPIDR_EL1.Aff0 < MAX_CPUS, else park). Clobbers x0-x2.
set_stack:
    mrs     x0, mpidr_el1
    and     x0, x0, #0xff
    cmp     x0, #{MAX_CPUS}
    b.hs    park
    add     x0, x0, #1
    ldr     x1, =__stack_size
    mul     x0, x0, x1
    adrp    x2, __stacks_start
    add     x2, x2, :lo12:__stacks_start
    add     x0, x0, x2
    mov     sp, x0
    ret

// Installs the exception vectors, allows FP/SIMD (so the fuzzer's 16-byte SIMD loads and
// stores reach the hypervisor) and turns on the MMU with the map of mmu.rs, caches on. Done
// before any Rust code, so that no stack or data access happens with the MMU off and is then
// read back through the caches. Clobbers x0 only.
enable_mmu:
    adrp    x0, exception_vectors
    add     x0, x0, :lo12:exception_vectors
    msr     vbar_el1, x0
    mov     x0, #{CPACR_FPEN}
    msr     cpacr_el1, x0
    ldr     x0, ={MAIR}
    msr     mair_el1, x0
    ldr     x0, ={TCR}
    msr     tcr_el1, x0
    adrp    x0, {PAGE_TABLE}
    add     x0, x0, :lo12:{PAGE_TABLE}
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    ldr     x0, ={SCTLR}
    msr     sctlr_el1, x0
    isb
    ret

// Loaded at the wrong address: say so on the PL011 (MMU off: device memory) and stop.
wrong_address:
    adr     x1, wrong_address_message
    ldr     x2, ={UART_DR}
3:  ldrb    w3, [x1], #1
    cbz     w3, park
    str     w3, [x2]
    b       3b

.global park
park:
    wfe
    b       park

.ltorg

.section .rodata
wrong_address_message:
    .asciz  "FUZZ: error: loaded at the wrong address (expected RAM base + 2 MiB)\r\n"
