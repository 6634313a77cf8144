//! Fletcher-64, the checksum of the HRT's built-in [`CHECKSUM`] function, defined once so the
//! HRT (which computes it, streamed: [`Fletcher64`]) and ROS programs (which check it) cannot
//! disagree.
//!
//! The sum runs over little-endian 32-bit words (a final partial word is padded with zero bytes);
//! both sums start at 0 and are kept modulo 2^32 - 1; the result is `sum2 << 32 | sum1`.
//! `"abcde"` gives `0xc8c6c527646362c6` (test vectors below, also computed independently).
//!
//! [`CHECKSUM`]: crate::abi::invoke::function::CHECKSUM

/// Fletcher-64 modulus (2^32 - 1).
pub const FLETCHER64_MODULUS: u64 = 0xffff_ffff;
const WORD_BYTES: usize = 4;

/// A Fletcher-64 in progress, fed in pieces (a process's buffer is physically scattered page
/// by page): whole words where the stream is at a word boundary, bytes otherwise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fletcher64 {
    sum1: u64,
    sum2: u64,
    /// The bytes of an unfinished word, and how many there are.
    partial: [u8; WORD_BYTES],
    filled: usize,
}

impl Fletcher64 {
    pub const fn new() -> Self {
        Self { sum1: 0, sum2: 0, partial: [0; WORD_BYTES], filled: 0 }
    }

    /// Bytes of an unfinished word held back (0: the stream is at a word boundary, so
    /// [`add_word_le`](Self::add_word_le) may be used).
    pub const fn pending_bytes(&self) -> usize {
        self.filled
    }

    /// Adds the four bytes `word.to_le_bytes()`. Only at a word boundary
    /// ([`pending_bytes`](Self::pending_bytes) 0); otherwise they go through
    /// [`add_byte`](Self::add_byte), which gives the same checksum.
    pub fn add_word_le(&mut self, word: u32) {
        if self.filled != 0 {
            word.to_le_bytes().into_iter().for_each(|b| self.add_byte(b));
            return;
        }
        self.sum1 = (self.sum1 + u64::from(word)) % FLETCHER64_MODULUS;
        self.sum2 = (self.sum2 + self.sum1) % FLETCHER64_MODULUS;
    }

    pub fn add_byte(&mut self, byte: u8) {
        self.partial[self.filled] = byte;
        self.filled += 1;
        if self.filled == WORD_BYTES {
            self.filled = 0;
            self.add_word_le(u32::from_le_bytes(self.partial));
            self.partial = [0; WORD_BYTES];
        }
    }

    pub fn add_bytes<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        bytes.into_iter().for_each(|b| self.add_byte(b));
    }

    /// Adds a slice: bytes up to a word boundary, then whole words, then the tail.
    pub fn add_slice(&mut self, bytes: &[u8]) {
        let lead = ((WORD_BYTES - self.filled) % WORD_BYTES).min(bytes.len());
        self.add_bytes(bytes[..lead].iter().copied());
        let mut words = bytes[lead..].chunks_exact(WORD_BYTES);
        for chunk in &mut words {
            self.add_word_le(u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]));
        }
        self.add_bytes(words.remainder().iter().copied());
    }

    /// The checksum of everything added (a final partial word padded with zero bytes).
    pub fn finish(mut self) -> u64 {
        if self.filled != 0 {
            // The padding bytes are already zero.
            let word = u32::from_le_bytes(self.partial);
            self.filled = 0;
            self.add_word_le(word);
        }
        (self.sum2 << u32::BITS) | self.sum1
    }
}

/// Fletcher-64 of a byte stream (for memory that must be read one byte at a time, such as the
/// HRT's volatile reads of guest memory).
pub fn fletcher64<I: IntoIterator<Item = u8>>(bytes: I) -> u64 {
    let mut sum = Fletcher64::new();
    sum.add_bytes(bytes);
    sum.finish()
}

/// Fletcher-64 of a slice: the same value as [`fletcher64`], a word at a time.
pub fn fletcher64_slice(bytes: &[u8]) -> u64 {
    let mut sum = Fletcher64::new();
    sum.add_slice(bytes);
    sum.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    #[test]
    fn test_vectors() {
        for (input, expected) in [
            (&b"abcde"[..], 0xc8c6_c527_6463_62c6u64),
            (b"abcdef", 0xc8c7_2b27_6463_c8c6),
            (b"abcdefgh", 0x312e_2b28_ccca_c8c6),
            (b"", 0),
        ] {
            assert_eq!(fletcher64(input.iter().copied()), expected, "{input:?}");
            assert_eq!(fletcher64_slice(input), expected, "{input:?}");
        }
    }

    #[test]
    fn both_forms_agree_on_every_length_and_large_words() {
        // Bytes near 0xff make the words large, exercising the modulus.
        let data: Vec<u8> = (0..4099u32).map(|i| (0xff - (i * 7 % 13)) as u8).collect();
        for len in (0..64).chain([1023, 1024, 1025, 4096, 4099]) {
            assert_eq!(fletcher64(data[..len].iter().copied()), fletcher64_slice(&data[..len]), "len {len}");
        }
        let ones = [0xffu8; 64];
        assert_eq!(fletcher64_slice(&ones), 0, "0xffffffff is 0 modulo 2^32 - 1");
    }

    #[test]
    fn pieces_at_any_boundary_give_the_whole_checksum() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 131 + 7) as u8).collect();
        let whole = fletcher64_slice(&data);
        for cut in [0, 1, 2, 3, 4, 5, 7, 8, 333, 998, 999, 1000] {
            for second in [cut, (cut + 1).min(1000), (cut + 6).min(1000)] {
                let mut sum = Fletcher64::new();
                sum.add_slice(&data[..cut]);
                sum.add_bytes(data[cut..second].iter().copied());
                sum.add_slice(&data[second..]);
                assert_eq!(sum.finish(), whole, "cuts at {cut} and {second}");
            }
        }
        let mut sum = Fletcher64::new();
        sum.add_byte(b'a');
        assert_eq!(sum.pending_bytes(), 1);
        sum.add_word_le(u32::from_le_bytes(*b"bcde"));
        assert_eq!(sum.pending_bytes(), 1, "a word off the boundary goes bytewise");
        assert_eq!(sum.finish(), fletcher64_slice(b"abcde"));
    }
}
