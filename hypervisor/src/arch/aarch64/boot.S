// Entry points of the EL2 image.
//
// The image starts with the 64-byte arm64 Linux boot header so that QEMU's -kernel loader treats
// it as an Image: it loads it at RAM base + text_offset and passes the host DTB's address in x0.

.section .text.head, "ax"
.global _start
_start:
    b       primary_entry               // code0
    .word   0                           // code1
    .quad   0x200000                    // text_offset: loaded 2 MiB into RAM (see linker.ld)
    .quad   HYP_IMAGE_SIZE              // image_size, including .bss
    .quad   0xa                         // flags: little-endian, 4 KiB pages, any 2 MiB base
    .quad   0, 0, 0                     // reserved
    .ascii  "ARM\x64"                   // magic
    .word   0                           // reserved (PE header offset)

.text
// x0 = physical address of the host DTB. Runs on the boot CPU with the MMU off.
primary_entry:
    mov     x19, x0
    mrs     x1, CurrentEL
    cmp     x1, #(2 << 2)               // CurrentEL.EL == 2?
    b.ne    not_at_el2
    // Zero .bss (the boot stack lives there too).
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:  adrp    x1, __boot_stack_top        // reserved in linker.ld
    add     x1, x1, :lo12:__boot_stack_top
    mov     sp, x1
    mov     x0, x19
    bl      rust_main
    b       park

// Entered through firmware PSCI CPU_ON with x0 = our logical CPU index (the context id).
.global secondary_entry
secondary_entry:
    mov     x19, x0
    adrp    x1, SECONDARY_STACK_TOPS
    add     x1, x1, :lo12:SECONDARY_STACK_TOPS
    ldr     x1, [x1, x19, lsl #3]
    mov     sp, x1
    mov     x0, x19
    bl      secondary_main
    b       park

// Started below EL2 (QEMU without virtualization=on): nothing useful can run. Spin visibly.
not_at_el2:
park:
    wfe
    b       park
