//! Guest console output can never look like a hypervisor line: the byte sequence the
//! hypervisor's lines start with, `(HYP)`, is rewritten wherever it appears in guest output
//! (`(HYP)` becomes `(guest:HYP)`), so neither a reader nor a test's failure patterns (e.g.
//! `(HYP) PANIC`) can be fooled by a guest, whatever carriage returns or escape sequences it
//! uses to place it. Other bytes pass through unchanged, so interactive programs keep working.

/// What the hypervisor's lines start with (`LOG_PREFIX` without its space).
const MARK: &[u8] = b"(HYP)";
/// What a guest's copy of [`MARK`] is shown as.
const REPLACEMENT: &[u8] = b"(guest:HYP)";

/// A streaming rewriter: bytes that may start [`MARK`] are held back until it is clear
/// whether they do.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuestFilter {
    /// How many bytes of [`MARK`] the held-back bytes match.
    matched: usize,
}

impl GuestFilter {
    pub const fn new() -> Self {
        Self { matched: 0 }
    }

    /// Feeds one guest byte; `emit` receives the bytes to print, in order.
    pub fn push(&mut self, byte: u8, mut emit: impl FnMut(u8)) {
        if byte == MARK[self.matched] {
            self.matched += 1;
            if self.matched == MARK.len() {
                REPLACEMENT.iter().for_each(|&b| emit(b));
                self.matched = 0;
            }
            return;
        }
        // Not the mark after all: release what was held, then look at this byte afresh (it
        // may start a new mark; the mark has no repeated prefix, so nothing else can).
        MARK[..self.matched].iter().for_each(|&b| emit(b));
        self.matched = 0;
        if byte == MARK[0] {
            self.matched = 1;
        } else {
            emit(byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(input: &[u8]) -> alloc::string::String {
        let mut filter = GuestFilter::new();
        let mut out = alloc::vec::Vec::new();
        for &byte in input {
            filter.push(byte, |b| out.push(b));
        }
        alloc::string::String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_mark_is_rewritten_anywhere() {
        assert_eq!(filter(b"(HYP) PANIC at x\n"), "(guest:HYP) PANIC at x\n");
        assert_eq!(filter(b"ok\r(HYP) PANIC"), "ok\r(guest:HYP) PANIC");
        assert_eq!(filter(b"x(HYP)(HYP)y"), "x(guest:HYP)(guest:HYP)y");
        assert_eq!(filter(b"((HYP)"), "((guest:HYP)", "a failed start restarts the match");
    }

    #[test]
    fn everything_else_passes_unchanged() {
        let text = b"guest# \x1b[6n(HY) (HYPE (hyp) HYP) (H\n";
        assert_eq!(filter(text).as_bytes(), text);
    }

    #[test]
    fn a_partial_mark_is_held_until_decided() {
        let mut filter = GuestFilter::new();
        let mut out = alloc::vec::Vec::new();
        for &byte in b"a(HY" {
            filter.push(byte, |b| out.push(b));
        }
        assert_eq!(out, b"a");
        filter.push(b'!', |b| out.push(b));
        assert_eq!(out, b"a(HY!");
    }
}
