//! A record the first HRT core publishes and every core reads: the merge (merge.rs) and the
//! mirrored TLS registers (tls.rs). A sequence lock over atomic words: a reader never sees half
//! of an update and never waits on a lock holder for long (the writer only stores a few words;
//! an interrupt on its core can delay it, never stop it).

use core::sync::atomic::{fence, AtomicU64, Ordering};

/// The sequence number's step per update: odd while an update is being written.
const WRITING: u64 = 1;
const UPDATE: u64 = 2;

/// `N` words, published together.
pub struct Published<const N: usize> {
    seq: AtomicU64,
    words: [AtomicU64; N],
}

impl<const N: usize> Published<N> {
    /// The record before any update: every word 0, version 0.
    pub const fn new() -> Self {
        Self { seq: AtomicU64::new(0), words: [const { AtomicU64::new(0) }; N] }
    }

    /// Replaces the record; its new version. One writer at a time: only the first HRT core
    /// publishes, from its upcall loop (upcall.rs serves one request at a time).
    pub fn publish(&self, words: [u64; N]) -> u64 {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(WRITING), Ordering::Relaxed);
        // The odd sequence number is visible before any of the new words.
        fence(Ordering::Release);
        for (word, value) in self.words.iter().zip(words) {
            word.store(value, Ordering::Relaxed);
        }
        let version = seq.wrapping_add(UPDATE);
        self.seq.store(version, Ordering::Release);
        version
    }

    /// The record and its version (which changes with every [`Self::publish`]).
    pub fn read(&self) -> (u64, [u64; N]) {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            let words = core::array::from_fn(|index| self.words[index].load(Ordering::Relaxed));
            // The words are read before the sequence number is checked again.
            fence(Ordering::Acquire);
            let after = self.seq.load(Ordering::Relaxed);
            if before == after && before & WRITING == 0 {
                return (before, words);
            }
            core::hint::spin_loop();
        }
    }
}
