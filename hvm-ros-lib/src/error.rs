//! Decoding and printing [`HvmError`] codes (kept out of [`crate::abi`], which only defines them).
//!
//! Nothing here is exhaustive over the enum on purpose: a variant added to `abi.rs` must not break
//! the hypervisor's build. The test module's exhaustive `match` is what reminds whoever adds one to
//! list it in [`HvmError::ALL`] (and give it a description).

use core::fmt;

use crate::abi::HvmError;

impl HvmError {
    /// Every error code the protocol defines.
    pub const ALL: &'static [HvmError] = &[
        HvmError::Failed,
        HvmError::UnknownSubOp,
        HvmError::WrongPartition,
        HvmError::WrongState,
        HvmError::BadAddress,
        HvmError::InvalidArgument,
        HvmError::NotHvm,
        HvmError::Busy,
        HvmError::NotImplemented,
        HvmError::WrongLevel,
    ];

    /// Decodes an x0 value; `None` for 0 (success) and for codes the protocol does not define.
    pub fn from_code(code: u64) -> Option<HvmError> {
        Self::ALL.iter().copied().find(|e| e.code() == code)
    }

    /// What the code means, in a few words.
    pub const fn description(self) -> &'static str {
        #[allow(unreachable_patterns)]
        match self {
            HvmError::Failed => "generic failure",
            HvmError::UnknownSubOp => "unknown sub-operation",
            HvmError::WrongPartition => "sub-operation not allowed from the caller's partition",
            HvmError::WrongState => "wrong transaction state for this sub-operation",
            HvmError::BadAddress => "bad guest address or size",
            HvmError::InvalidArgument => "invalid argument",
            HvmError::NotHvm => "the VM has no HVM configured",
            HvmError::Busy => "busy (something is already pending)",
            HvmError::NotImplemented => "sub-operation not implemented by this hypervisor",
            HvmError::WrongLevel => "sub-operation not allowed from the caller's exception level",
            _ => "undocumented error",
        }
    }
}

/// `UnknownSubOp (-2): unknown sub-operation`: the variant name, the x0 value, the meaning.
impl fmt::Display for HvmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({}): {}", self, self.code() as i64, self.description())
    }
}

#[cfg(feature = "std")]
impl std::error::Error for HvmError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::HVM_OK;

    /// Exhaustive on purpose (see the module comment): a new variant fails to compile here until
    /// it is added, and then the test below fails until it is in [`HvmError::ALL`].
    fn position(e: HvmError) -> usize {
        match e {
            HvmError::Failed => 0,
            HvmError::UnknownSubOp => 1,
            HvmError::WrongPartition => 2,
            HvmError::WrongState => 3,
            HvmError::BadAddress => 4,
            HvmError::InvalidArgument => 5,
            HvmError::NotHvm => 6,
            HvmError::Busy => 7,
            HvmError::NotImplemented => 8,
            HvmError::WrongLevel => 9,
        }
    }

    #[test]
    fn all_lists_every_variant_once_and_in_order() {
        for (i, &e) in HvmError::ALL.iter().enumerate() {
            assert_eq!(position(e), i, "{e:?}");
            assert_ne!(e.description(), "undocumented error", "{e:?}");
        }
    }

    #[test]
    fn every_code_round_trips() {
        for &e in HvmError::ALL {
            assert_eq!(HvmError::from_code(e.code()), Some(e));
            assert!((e.code() as i64) < 0);
        }
        assert_eq!(HvmError::from_code(HVM_OK), None);
        assert_eq!(HvmError::from_code(1), None);
        assert_eq!(HvmError::from_code(-1000i64 as u64), None);
        assert_eq!(HvmError::from_code(u64::MAX), Some(HvmError::Failed));
    }

    #[test]
    fn display_names_the_variant_its_code_and_meaning() {
        assert_eq!(std::format!("{}", HvmError::UnknownSubOp), "UnknownSubOp (-2): unknown sub-operation");
    }
}
