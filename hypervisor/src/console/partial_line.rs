//! The guest's unfinished console line. A hypervisor line that arrives in the middle of a
//! guest line breaks it in two; the console then writes the guest's part again after its own
//! line, so the guest's line also appears whole (as a shell redraws a prompt) and a reader that
//! looks for a whole guest line still finds it.

/// Longest unfinished line kept; a longer one is not redrawn (its start is lost anyway).
const CAPACITY: usize = 256;

/// The bytes of the current guest line since its last newline.
#[derive(Debug)]
pub struct PartialLine {
    bytes: [u8; CAPACITY],
    len: usize,
    overflowed: bool,
}

impl PartialLine {
    pub const fn new() -> Self {
        Self { bytes: [0; CAPACITY], len: 0, overflowed: false }
    }

    /// Records a byte the guest printed.
    pub fn push(&mut self, byte: u8) {
        if byte == b'\n' {
            self.len = 0;
            self.overflowed = false;
        } else if self.len < CAPACITY {
            self.bytes[self.len] = byte;
            self.len += 1;
        } else {
            self.overflowed = true;
        }
    }

    /// The unfinished line to write again after an interruption: nothing if it was too long,
    /// or holds anything but printable text (a terminal control sequence written twice could
    /// make the terminal answer twice, e.g. a cursor-position query in a shell prompt).
    pub fn redraw(&self) -> &[u8] {
        let line = &self.bytes[..self.len];
        let printable = line.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
        if self.overflowed || !printable {
            &[]
        } else {
            line
        }
    }
}

impl Default for PartialLine {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_line_since_the_last_newline() {
        let mut line = PartialLine::new();
        for &b in b"first\r\nHVTEST: st" {
            line.push(b);
        }
        assert_eq!(line.redraw(), b"HVTEST: st");
        line.push(b'\n');
        assert_eq!(line.redraw(), b"");
    }

    #[test]
    fn control_sequences_are_not_redrawn() {
        let mut line = PartialLine::new();
        for &b in b"guest# \x1b[6n" {
            line.push(b);
        }
        assert_eq!(line.redraw(), b"");
    }

    #[test]
    fn a_line_too_long_is_not_redrawn() {
        let mut line = PartialLine::new();
        for _ in 0..CAPACITY + 1 {
            line.push(b'x');
        }
        assert_eq!(line.redraw(), b"");
        line.push(b'\n');
        line.push(b'y');
        assert_eq!(line.redraw(), b"y");
    }
}
