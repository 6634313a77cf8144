//! Fletcher-64, streamed: the checksum function's (functions.rs) arithmetic, fed one run of
//! guest memory at a time, since a process's buffer is physically scattered page by page.
//!
//! Over little-endian 32-bit words (a final partial word is padded with zero bytes), both sums
//! start at 0 and are kept modulo 2^32 - 1; the result is `sum2 << 32 | sum1`. ("abcde" gives
//! 0xc8c6c527646362c6.) Words may straddle runs: the bytes of an unfinished word are carried
//! over to the next run.

use crate::guest_ram::Chunk;

/// Fletcher-64 modulus (2^32 - 1).
const MODULUS: u64 = 0xffff_ffff;
const WORD_BYTES: usize = 4;

/// A checksum in progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fletcher64 {
    sum1: u64,
    sum2: u64,
    /// The bytes of an unfinished word, and how many there are.
    partial: [u8; WORD_BYTES],
    filled: usize,
}

impl Fletcher64 {
    pub fn new() -> Self {
        Self::default()
    }

    fn add_word(&mut self, word: u32) {
        self.sum1 = (self.sum1 + u64::from(word)) % MODULUS;
        self.sum2 = (self.sum2 + self.sum1) % MODULUS;
    }

    fn add_byte(&mut self, byte: u8) {
        self.partial[self.filled] = byte;
        self.filled += 1;
        if self.filled == WORD_BYTES {
            self.add_word(u32::from_le_bytes(self.partial));
            self.partial = [0; WORD_BYTES];
            self.filled = 0;
        }
    }

    /// Adds bytes of our own (the self-test's reference checksum).
    pub fn add_bytes(&mut self, bytes: impl IntoIterator<Item = u8>) {
        bytes.into_iter().for_each(|byte| self.add_byte(byte));
    }

    /// Adds the bytes of `chunk`: bytewise until a word starts, then whole words (one load
    /// each where aligned), then the tail.
    pub fn add_chunk(&mut self, chunk: &Chunk) {
        let len = chunk.len();
        let mut offset = 0;
        while self.filled != 0 && offset < len {
            self.add_byte(chunk.byte(offset));
            offset += 1;
        }
        while len - offset >= WORD_BYTES as u64 {
            self.add_word(chunk.u32_le(offset));
            offset += WORD_BYTES as u64;
        }
        while offset < len {
            self.add_byte(chunk.byte(offset));
            offset += 1;
        }
    }

    /// The checksum of everything added.
    pub fn finish(mut self) -> u64 {
        if self.filled != 0 {
            // The padding bytes are already zero.
            self.add_word(u32::from_le_bytes(self.partial));
        }
        (self.sum2 << u32::BITS) | self.sum1
    }
}
