//! Typed addresses: a guest-physical address (IPA), a host-physical address and a guest
//! virtual address are all 64-bit numbers, and mixing them up is the classic hypervisor bug
//! (mapping an IPA as if it were host memory, handing a guest pointer to the hardware). The
//! interfaces that cross between the spaces (guest RAM access, stage-2 mapping, guest address
//! translation) take and return these types, so such a mix-up does not compile.

use core::fmt;

/// An intermediate physical address: what the guest sees as physical memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ipa(pub u64);

/// A host physical address (identity-mapped at EL2, so also where the hypervisor reaches it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HostPhys(pub u64);

/// A virtual address in the guest's own (stage-1) address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GuestVirt(pub u64);

macro_rules! address {
    ($type:ident, $what:literal) => {
        impl $type {
            /// This address plus `offset` bytes, unless that wraps.
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(value) => Some(Self(value)),
                    None => None,
                }
            }

            /// This address plus `offset` bytes (wrapping is a bug of the caller).
            pub const fn add(self, offset: u64) -> Self {
                Self(self.0 + offset)
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($what, " {:#x}"), self.0)
            }
        }

        impl fmt::LowerHex for $type {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::LowerHex::fmt(&self.0, f)
            }
        }
    };
}

address!(Ipa, "IPA");
address!(HostPhys, "PA");
address!(GuestVirt, "VA");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_print_their_space_and_add_without_wrapping() {
        assert_eq!(alloc::format!("{}", Ipa(0x4000_0000)), "IPA 0x40000000");
        assert_eq!(alloc::format!("{:#x}", HostPhys(0x10)), "0x10");
        assert_eq!(GuestVirt(u64::MAX).checked_add(1), None);
        assert_eq!(Ipa(0x1000).add(0x10), Ipa(0x1010));
    }
}
