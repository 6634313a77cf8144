//! Links the fuzzer with its linker script and generates the system-register jump tables.
//!
//! An `mrs`/`msr` names its register in the instruction, so a register chosen at run time needs
//! one instruction per register: `$OUT_DIR/sysreg_tables.S` holds, in the `.fuzz_code` section
//! (where the exception handler steps over faults), three tables of 8-byte entries
//! `<instruction>; ret`:
//!
//! * `fuzz_sysreg_read_table`: `mrs x0, S<op0>_<op1>_C<n>_C<m>_<op2>` for every encoding below;
//! * `fuzz_sysreg_write_table`: `msr S..., x0` for the same list minus [`NEVER_WRITE`];
//! * `fuzz_sys_table`: `sys #op1, C<n>, C<m>, #op2, x0` (cache, TLB and address translation
//!   maintenance and random op0 = 1 encodings; x0 is always an address the fuzzer may lose).
//!
//! `$OUT_DIR/sysreg_tables.rs` gives their lengths and encodings to the Rust side.

use std::collections::BTreeSet;
use std::fmt::Write as _;

/// (op0, op1, CRn, CRm, op2).
type Encoding = (u8, u8, u8, u8, u8);

/// Registers the fuzzer itself depends on: writing them would break the fuzzer, not test the
/// hypervisor (translation, vectors, stack selection, interrupt masks).
const NEVER_WRITE: &[(Encoding, &str)] = &[
    ((3, 0, 1, 0, 0), "SCTLR_EL1"),
    ((3, 0, 2, 0, 0), "TTBR0_EL1"),
    ((3, 0, 2, 0, 1), "TTBR1_EL1"),
    ((3, 0, 2, 0, 2), "TCR_EL1"),
    ((3, 0, 10, 2, 0), "MAIR_EL1"),
    ((3, 0, 12, 0, 0), "VBAR_EL1"),
    ((3, 0, 4, 2, 0), "SPSel"),
    ((3, 3, 4, 2, 1), "DAIF"),
];

/// Architected registers (op0 = 3) an EL1 guest may touch, plus EL2/EL3/EL12 ones it may not.
#[rustfmt::skip]
fn named_op0_3() -> Vec<Encoding> {
    let mut v = Vec::new();
    // Every ID register slot (op1 = 0, CRn = 0, CRm 0..7): MIDR, MPIDR, ID_PFR*, ID_AA64*...
    for crm in 0..8 {
        for op2 in 0..8 {
            v.push((3, 0, 0, crm, op2));
        }
    }
    v.extend([
        (3, 1, 0, 0, 0), (3, 1, 0, 0, 1), (3, 1, 0, 0, 2), (3, 1, 0, 0, 7), (3, 2, 0, 0, 0),
        (3, 3, 0, 0, 1), (3, 3, 0, 0, 7),
        // SCTLR, ACTLR, CPACR, RGSR, GCR, ZCR, TRFCR, SMPRI, SMCR
        (3, 0, 1, 0, 0), (3, 0, 1, 0, 1), (3, 0, 1, 0, 2), (3, 0, 1, 0, 5), (3, 0, 1, 0, 6),
        (3, 0, 1, 2, 0), (3, 0, 1, 2, 1), (3, 0, 1, 2, 4), (3, 0, 1, 2, 6),
        // TTBR0/1, TCR, pointer authentication keys
        (3, 0, 2, 0, 0), (3, 0, 2, 0, 1), (3, 0, 2, 0, 2), (3, 0, 2, 1, 0), (3, 0, 2, 1, 1),
        (3, 0, 2, 1, 2), (3, 0, 2, 1, 3), (3, 0, 2, 2, 0), (3, 0, 2, 2, 1), (3, 0, 2, 3, 0),
        (3, 0, 2, 3, 1), (3, 3, 2, 4, 0), (3, 3, 2, 4, 1),
        // SPSR, ELR, SP_EL0, SPSel, CurrentEL, PAN, UAO, ICC_PMR, NZCV, DAIF, SVCR, DIT, SSBS,
        // TCO, FPCR, FPSR, DSPSR, DLR
        (3, 0, 4, 0, 0), (3, 0, 4, 0, 1), (3, 0, 4, 1, 0), (3, 0, 4, 2, 0), (3, 0, 4, 2, 2),
        (3, 0, 4, 2, 3), (3, 0, 4, 2, 4), (3, 0, 4, 6, 0), (3, 3, 4, 2, 0), (3, 3, 4, 2, 1),
        (3, 3, 4, 2, 2), (3, 3, 4, 2, 5), (3, 3, 4, 2, 6), (3, 3, 4, 2, 7), (3, 3, 4, 4, 0),
        (3, 3, 4, 4, 1), (3, 3, 4, 5, 0), (3, 3, 4, 5, 1),
        // AFSR0/1, ESR, RAS error records, TFSR, FAR, PAR
        (3, 0, 5, 1, 0), (3, 0, 5, 1, 1), (3, 0, 5, 2, 0), (3, 0, 5, 3, 0), (3, 0, 5, 3, 1),
        (3, 0, 5, 4, 0), (3, 0, 5, 4, 1), (3, 0, 5, 4, 2), (3, 0, 5, 4, 3), (3, 0, 5, 5, 0),
        (3, 0, 5, 5, 1), (3, 0, 5, 6, 0), (3, 0, 5, 6, 1), (3, 0, 6, 0, 0), (3, 0, 7, 4, 0),
        // SPE, PMU (EL1 part)
        (3, 0, 9, 9, 0), (3, 0, 9, 9, 2), (3, 0, 9, 9, 3), (3, 0, 9, 9, 4), (3, 0, 9, 9, 5),
        (3, 0, 9, 9, 7), (3, 0, 9, 10, 0), (3, 0, 9, 10, 7), (3, 0, 9, 14, 1), (3, 0, 9, 14, 2),
        (3, 0, 9, 14, 6),
        // PMU (EL0 part): PMCR, PMCNTENSET/CLR, PMOVSCLR, PMSWINC, PMSELR, PMCEID0/1, PMCCNTR,
        // PMXEVTYPER, PMXEVCNTR, PMUSERENR, PMOVSSET, PMCCFILTR
        (3, 3, 9, 12, 0), (3, 3, 9, 12, 1), (3, 3, 9, 12, 2), (3, 3, 9, 12, 3), (3, 3, 9, 12, 4),
        (3, 3, 9, 12, 5), (3, 3, 9, 12, 6), (3, 3, 9, 12, 7), (3, 3, 9, 13, 0), (3, 3, 9, 13, 1),
        (3, 3, 9, 13, 2), (3, 3, 9, 14, 0), (3, 3, 9, 14, 3), (3, 3, 14, 15, 7),
        // MAIR, AMAIR, LORegions, MPAM
        (3, 0, 10, 2, 0), (3, 0, 10, 3, 0), (3, 0, 10, 4, 0), (3, 0, 10, 4, 1), (3, 0, 10, 4, 2),
        (3, 0, 10, 4, 3), (3, 0, 10, 4, 7), (3, 0, 10, 5, 0), (3, 0, 10, 5, 1), (3, 0, 10, 4, 4),
        // VBAR, RVBAR, RMR, ISR, DISR
        (3, 0, 12, 0, 0), (3, 0, 12, 0, 1), (3, 0, 12, 0, 2), (3, 0, 12, 1, 0), (3, 0, 12, 1, 1),
        // CONTEXTIDR, TPIDR_EL1, SCXTNUM, TPIDR_EL0, TPIDRRO_EL0, activity monitors
        (3, 0, 13, 0, 1), (3, 0, 13, 0, 4), (3, 0, 13, 0, 7), (3, 3, 13, 0, 2), (3, 3, 13, 0, 3),
        (3, 3, 13, 2, 0), (3, 3, 13, 2, 1), (3, 3, 13, 2, 4), (3, 3, 13, 4, 0), (3, 3, 13, 4, 1),
        // Timers: CNTKCTL, CNTFRQ, CNTPCT, CNTVCT, CNTPCTSS, CNTVCTSS, CNTP_*, CNTV_*, CNTPS_*
        (3, 0, 14, 1, 0), (3, 3, 14, 0, 0), (3, 3, 14, 0, 1), (3, 3, 14, 0, 2), (3, 3, 14, 0, 5),
        (3, 3, 14, 0, 6), (3, 3, 14, 2, 0), (3, 3, 14, 2, 1), (3, 3, 14, 2, 2), (3, 3, 14, 3, 0),
        (3, 3, 14, 3, 1), (3, 3, 14, 3, 2), (3, 7, 14, 2, 0), (3, 7, 14, 2, 1), (3, 7, 14, 2, 2),
        // EL2 registers (UNDEFINED at EL1)
        (3, 4, 1, 1, 0), (3, 4, 1, 0, 0), (3, 4, 2, 1, 0), (3, 4, 2, 1, 2), (3, 4, 12, 11, 0),
        (3, 4, 12, 11, 1), (3, 4, 12, 12, 0), (3, 4, 12, 12, 3), (3, 4, 12, 9, 5), (3, 4, 14, 1, 0),
        (3, 4, 14, 0, 3), (3, 4, 12, 0, 0), (3, 4, 5, 2, 0), (3, 4, 4, 0, 1), (3, 4, 4, 0, 0),
        (3, 4, 4, 1, 0), (3, 4, 1, 1, 1), (3, 4, 1, 1, 2), (3, 4, 0, 0, 5), (3, 4, 14, 2, 1),
        // EL12/EL02 aliases and EL3 registers
        (3, 5, 1, 0, 0), (3, 5, 2, 0, 0), (3, 5, 14, 3, 1), (3, 5, 14, 1, 0), (3, 6, 1, 1, 0),
        (3, 6, 12, 0, 0), (3, 6, 1, 0, 0), (3, 6, 12, 12, 5),
        // IMPLEMENTATION DEFINED (Cortex-A57: L2CTLR, L2ECTLR, L2ACTLR, CPUACTLR, CPUECTLR,
        // CPUMERRSR, L2MERRSR, CBAR) and other CRn = 11 / 15 slots
        (3, 1, 11, 0, 2), (3, 1, 11, 0, 3), (3, 1, 15, 0, 0), (3, 1, 15, 2, 0), (3, 1, 15, 2, 1),
        (3, 1, 15, 2, 2), (3, 1, 15, 2, 3), (3, 1, 15, 3, 0), (3, 0, 15, 0, 0), (3, 0, 15, 2, 0),
        (3, 0, 15, 15, 7), (3, 3, 15, 0, 0), (3, 3, 15, 1, 1), (3, 4, 15, 0, 0), (3, 5, 15, 7, 3),
        (3, 7, 15, 15, 7), (3, 2, 15, 3, 2), (3, 6, 15, 0, 0), (3, 0, 11, 0, 0), (3, 3, 11, 5, 5),
    ]);
    // The GIC CPU interface: every ICC_* register (ICC_SGI*R writes send SGIs).
    for op2 in 0..8 {
        v.push((3, 0, 12, 8, op2)); // IAR0 EOIR0 HPPIR0 BPR0 AP0R0..3
        v.push((3, 0, 12, 12, op2)); // IAR1 EOIR1 HPPIR1 BPR1 CTLR SRE IGRPEN0 IGRPEN1
    }
    for op2 in 0..4 {
        v.push((3, 0, 12, 9, op2)); // AP1R0..3
    }
    v.extend([(3, 0, 12, 9, 5), (3, 0, 12, 11, 1), (3, 0, 12, 11, 3), (3, 0, 12, 11, 5)]);
    v.extend([(3, 0, 12, 11, 6), (3, 0, 12, 11, 7), (3, 6, 12, 12, 4), (3, 6, 12, 12, 7)]);
    // PMU event counters and types 0..7 and 30.
    for n in [0u8, 1, 2, 3, 4, 5, 6, 7, 30] {
        v.push((3, 3, 14, 8 + n / 8, n % 8));
        v.push((3, 3, 14, 12 + n / 8, n % 8));
    }
    v
}

/// Debug (op0 = 2, op1 = 0 / 3 / 4) and trace (op0 = 2, op1 = 1) registers.
#[rustfmt::skip]
fn named_op0_2() -> Vec<Encoding> {
    let mut v = vec![
        (2, 0, 0, 0, 2), (2, 0, 0, 2, 0), (2, 0, 0, 2, 2), (2, 0, 0, 3, 2), (2, 0, 0, 6, 2),
        (2, 0, 1, 0, 0), (2, 0, 1, 0, 4), (2, 0, 1, 1, 4), (2, 0, 1, 3, 4), (2, 0, 1, 4, 4),
        (2, 0, 7, 8, 6), (2, 0, 7, 9, 6), (2, 0, 7, 14, 6), (2, 3, 0, 1, 0), (2, 3, 0, 4, 0),
        (2, 3, 0, 5, 0), (2, 4, 0, 7, 0),
        // Trace unit: TRCPRGCTLR, TRCSTATR, TRCCONFIGR, TRCIDR0..13, TRCOSLAR, TRCCLAIMSET/CLR
        (2, 1, 0, 1, 0), (2, 1, 0, 3, 0), (2, 1, 0, 4, 0), (2, 1, 0, 6, 0), (2, 1, 0, 8, 7),
        (2, 1, 0, 9, 7), (2, 1, 0, 10, 7), (2, 1, 0, 11, 7), (2, 1, 0, 12, 7), (2, 1, 0, 13, 7),
        (2, 1, 0, 0, 6), (2, 1, 0, 1, 6), (2, 1, 1, 0, 4), (2, 1, 1, 1, 4), (2, 1, 7, 8, 6),
        (2, 1, 7, 9, 6), (2, 1, 7, 14, 6), (2, 1, 0, 2, 0), (2, 1, 0, 0, 7), (2, 1, 0, 15, 7),
    ];
    // Breakpoints 0..5 and watchpoints 0..3: value and control registers.
    for n in 0..6 {
        v.push((2, 0, 0, n, 4));
        v.push((2, 0, 0, n, 5));
    }
    for n in 0..4 {
        v.push((2, 0, 0, n, 6));
        v.push((2, 0, 0, n, 7));
    }
    v
}

/// Operations (op0 = 1) that take an address or set/way in x0: TLB invalidation, cache
/// maintenance, address translation, and random encodings.
#[rustfmt::skip]
fn sys_ops() -> Vec<Encoding> {
    let mut v = vec![
        (1, 0, 8, 7, 0), (1, 0, 8, 3, 0), (1, 0, 8, 7, 1), (1, 0, 8, 7, 2), (1, 0, 8, 7, 3),
        (1, 0, 8, 3, 1), (1, 0, 7, 5, 0), (1, 0, 7, 1, 0), (1, 3, 7, 5, 1), (1, 0, 7, 6, 2),
        (1, 0, 7, 10, 2), (1, 0, 7, 14, 2), (1, 0, 7, 6, 1), (1, 3, 7, 10, 1), (1, 3, 7, 14, 1),
        (1, 3, 7, 11, 1), (1, 3, 7, 4, 1), (1, 0, 7, 8, 0), (1, 0, 7, 8, 1), (1, 0, 7, 8, 2),
        (1, 0, 7, 8, 3), (1, 0, 7, 9, 0), (1, 4, 8, 7, 0), (1, 4, 7, 8, 0), (1, 6, 8, 7, 0),
        (1, 3, 7, 3, 4), (1, 3, 7, 3, 5), (1, 3, 7, 3, 7),
    ];
    let mut rng = 0x1234_5678_9abc_def0u64;
    for _ in 0..40 {
        let r = next(&mut rng);
        v.push((1, (r & 7) as u8, ((r >> 3) & 15) as u8, ((r >> 7) & 15) as u8, ((r >> 11) & 7) as u8));
    }
    v
}

/// splitmix64, for the sampled encodings (fixed seed: the tables are the same every build).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Encodings sampled from the whole op0 = 2 / 3 space.
fn sampled(count: usize) -> Vec<Encoding> {
    let mut rng = 0x0f00_d5ee_d000_0001u64;
    (0..count)
        .map(|_| {
            let r = next(&mut rng);
            (
                2 + (r & 1) as u8,
                ((r >> 1) & 7) as u8,
                ((r >> 4) & 15) as u8,
                ((r >> 8) & 15) as u8,
                ((r >> 12) & 7) as u8,
            )
        })
        .collect()
}

fn name(e: Encoding) -> String {
    format!("S{}_{}_C{}_C{}_{}", e.0, e.1, e.2, e.3, e.4)
}

fn table(asm: &mut String, label: &str, entries: &[Encoding], instruction: impl Fn(Encoding) -> String) {
    writeln!(asm, ".balign 8\n.global {label}\n{label}:").unwrap();
    for &e in entries {
        writeln!(asm, "    {}\n    ret", instruction(e)).unwrap();
    }
}

fn rust_list(rs: &mut String, name: &str, entries: &[Encoding]) {
    writeln!(rs, "pub const {name}: [(u8, u8, u8, u8, u8); {}] = [", entries.len()).unwrap();
    for e in entries {
        writeln!(rs, "    {e:?},").unwrap();
    }
    writeln!(rs, "];").unwrap();
}

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    // The `hrt` feature links the same code as a hybrid VM's HRT image: at the HRT image window
    // (linker-hrt.ld), with 4 KiB segment alignment (lld's AArch64 default, 64 KiB, would only
    // pad the ELF the hypervisor loads).
    if std::env::var_os("CARGO_FEATURE_HRT").is_some() {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker-hrt.ld");
        println!("cargo:rustc-link-arg-bins=-zmax-page-size=4096");
    } else {
        println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    }
    for file in [
        "linker.ld",
        "linker-hrt.ld",
        "build.rs",
        "src/asm/boot.S",
        "src/asm/vectors.S",
        "src/asm/ops.S",
        "src/asm/hrt_entry.S",
    ] {
        println!("cargo:rerun-if-changed={file}");
    }

    let mut all: BTreeSet<Encoding> = BTreeSet::new();
    all.extend(named_op0_3());
    all.extend(named_op0_2());
    all.extend(sampled(240));
    let reads: Vec<Encoding> = all.iter().copied().collect();
    let never: BTreeSet<Encoding> = NEVER_WRITE.iter().map(|&(e, _)| e).collect();
    let writes: Vec<Encoding> = reads.iter().copied().filter(|e| !never.contains(e)).collect();
    let mut sys: Vec<Encoding> = sys_ops();
    sys.sort();
    sys.dedup();

    let mut asm = String::from("// Generated by build.rs: system-register jump tables.\n.section .fuzz_code, \"ax\"\n");
    table(&mut asm, "fuzz_sysreg_read_table", &reads, |e| format!("mrs x0, {}", name(e)));
    table(&mut asm, "fuzz_sysreg_write_table", &writes, |e| format!("msr {}, x0", name(e)));
    table(&mut asm, "fuzz_sys_table", &sys, |e| format!("sys #{}, C{}, C{}, #{}, x0", e.1, e.2, e.3, e.4));
    std::fs::write(format!("{out}/sysreg_tables.S"), asm).expect("write sysreg_tables.S");

    let mut rs = String::from("// Generated by build.rs: the encodings of the jump tables, in table order.\n");
    rust_list(&mut rs, "READS", &reads);
    rust_list(&mut rs, "WRITES", &writes);
    rust_list(&mut rs, "SYS_OPS", &sys);
    std::fs::write(format!("{out}/sysreg_tables.rs"), rs).expect("write sysreg_tables.rs");
}
