//! Memory: address ranges and the host memory plan.

pub mod addr;
mod bulk_copy;
pub mod guest_memory;
pub mod layout;
pub mod stage2;

use core::fmt;

/// A half-open physical address range `[start, start + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemRange {
    pub start: u64,
    pub size: u64,
}

impl MemRange {
    pub const fn new(start: u64, size: u64) -> Self {
        Self { start, size }
    }

    /// One past the last byte (saturating, so a range reaching the top of the space is safe).
    pub const fn end(&self) -> u64 {
        self.start.saturating_add(self.size)
    }

    pub const fn contains(&self, addr: u64) -> bool {
        addr >= self.start && addr < self.end()
    }

    pub const fn contains_range(&self, other: &MemRange) -> bool {
        other.start >= self.start && other.end() <= self.end()
    }

    pub const fn overlaps(&self, other: &MemRange) -> bool {
        self.start < other.end() && other.start < self.end()
    }
}

impl fmt::Display for MemRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#011x}..{:#011x} ({})", self.start, self.end(), HumanSize(self.size))
    }
}

/// Formats a byte count as B/KiB/MiB/GiB, exact where possible.
pub struct HumanSize(pub u64);

impl fmt::Display for HumanSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [(&str, u32); 3] = [("GiB", 30), ("MiB", 20), ("KiB", 10)];
        for (name, shift) in UNITS {
            if self.0 >= 1 << shift {
                return if self.0.is_multiple_of(1 << shift) {
                    write!(f, "{} {name}", self.0 >> shift)
                } else {
                    write!(f, "{:.1} {name}", self.0 as f64 / (1u64 << shift) as f64)
                };
            }
        }
        write!(f, "{} B", self.0)
    }
}

pub const fn align_up(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

pub const fn align_down(value: u64, align: u64) -> u64 {
    value & !(align - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_overlap_and_contain() {
        let a = MemRange::new(0x1000, 0x1000);
        assert!(a.contains(0x1fff) && !a.contains(0x2000));
        assert!(a.overlaps(&MemRange::new(0x1800, 0x1000)));
        assert!(!a.overlaps(&MemRange::new(0x2000, 0x1000)));
        assert!(a.contains_range(&MemRange::new(0x1000, 0x800)));
        assert_eq!(MemRange::new(u64::MAX - 1, 16).end(), u64::MAX);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(format!("{}", HumanSize(2 << 30)), "2 GiB");
        assert_eq!(format!("{}", HumanSize(33 << 20)), "33 MiB");
        assert_eq!(format!("{}", HumanSize(1536)), "1.5 KiB");
        assert_eq!(format!("{}", HumanSize(12)), "12 B");
    }
}
