//! Reading the hardware's feature ID registers at EL2 by encoding (for TID3 emulation).

/// The hardware value of ID register S3_0_C0_C<crm>_<op2> (CRm 1..7); 0 for anything else.
pub fn read(crm: u8, op2: u8) -> u64 {
    macro_rules! id_regs {
        ($($crm:literal: $($op2:literal)*;)*) => {
            match (crm, op2) {
                $($(
                    ($crm, $op2) => {
                        let value: u64;
                        // SAFETY: reading an ID register has no side effects.
                        unsafe { core::arch::asm!(concat!("mrs {}, s3_0_c0_c", $crm, "_", $op2), out(reg) value) };
                        value
                    }
                )*)*
                _ => 0,
            }
        };
    }
    id_regs! {
        1: 0 1 2 3 4 5 6 7;
        2: 0 1 2 3 4 5 6 7;
        3: 0 1 2 3 4 5 6 7;
        4: 0 1 2 3 4 5 6 7;
        5: 0 1 2 3 4 5 6 7;
        6: 0 1 2 3 4 5 6 7;
        7: 0 1 2 3 4 5 6 7;
    }
}
