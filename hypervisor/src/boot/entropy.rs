//! Fresh random seeds for every guest boot: `/chosen/kaslr-seed` and `/chosen/rng-seed`.
//!
//! QEMU gives a kernel it boots directly both seeds; a guest of ours must get them too, or it
//! runs without KASLR and, worse for speed, with an empty entropy pool: Debian's 6.1 kernel then
//! re-extracts its input pool (BLAKE2s) on every `get_random_u16()`, which it calls on every
//! system call to randomise the kernel stack offset. Measured: a `getppid()` loop took
//! 7,000 ns per call without the seed and 1,390 ns with it (plain QEMU: 1,350 ns).
//!
//! The hypervisor's own seeds (the host DTB's, from QEMU), RNDR where the CPU has it and the
//! counter are hashed into the key of a ChaCha20 generator; each guest boot (including every
//! SYSTEM_RESET) draws new seeds from it, so no two boots see the same ones. Pure logic: the
//! caller collects the inputs.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::{Digest, Sha256};

/// Bytes of `/chosen/rng-seed` given to a guest (Linux credits up to 64 bytes from it).
pub const GUEST_RNG_SEED_BYTES: usize = 64;

/// What the generator is seeded from. Missing sources are simply absent; the counter is
/// always there, so the seeds differ from boot to boot even on a machine with no entropy.
#[derive(Clone, Copy, Debug, Default)]
pub struct EntropySources<'a> {
    /// The host DTB's `/chosen/rng-seed` bytes (empty if it has none).
    pub host_rng_seed: &'a [u8],
    /// The host DTB's `/chosen/kaslr-seed`.
    pub host_kaslr_seed: Option<u64>,
    /// Values read from RNDR, if the CPU implements it.
    pub cpu_random: Option<[u64; 4]>,
    /// The physical counter when the pool was made.
    pub counter: u64,
}

/// The seeds of one guest boot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestSeeds {
    pub kaslr: u64,
    pub rng: [u8; GUEST_RNG_SEED_BYTES],
}

/// A cryptographic generator keyed from [`EntropySources`].
pub struct EntropyPool {
    rng: ChaCha20Rng,
}

impl EntropyPool {
    pub fn new(sources: &EntropySources<'_>) -> Self {
        let mut hash = Sha256::new();
        // Each input is length- or presence-tagged, so different inputs never hash alike.
        hash.update(b"hypervisor guest seeds v1");
        hash.update((sources.host_rng_seed.len() as u64).to_le_bytes());
        hash.update(sources.host_rng_seed);
        match sources.host_kaslr_seed {
            Some(seed) => hash.update([&[1u8][..], &seed.to_le_bytes()].concat()),
            None => hash.update([0u8]),
        }
        match sources.cpu_random {
            Some(values) => {
                hash.update([1u8]);
                for value in values {
                    hash.update(value.to_le_bytes());
                }
            }
            None => hash.update([0u8]),
        }
        hash.update(sources.counter.to_le_bytes());
        Self { rng: ChaCha20Rng::from_seed(hash.finalize().into()) }
    }

    /// New seeds for one guest boot.
    pub fn guest_seeds(&mut self) -> GuestSeeds {
        let mut rng = [0u8; GUEST_RNG_SEED_BYTES];
        self.rng.fill_bytes(&mut rng);
        GuestSeeds { kaslr: self.rng.next_u64(), rng }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(counter: u64) -> EntropySources<'static> {
        EntropySources { host_rng_seed: &[1, 2, 3, 4], host_kaslr_seed: Some(0x1234), cpu_random: None, counter }
    }

    #[test]
    fn same_sources_same_seeds() {
        let a = EntropyPool::new(&sources(7)).guest_seeds();
        let b = EntropyPool::new(&sources(7)).guest_seeds();
        assert_eq!(a, b, "deterministic for given inputs (reproducible in tests)");
    }

    #[test]
    fn every_boot_gets_new_seeds() {
        let mut pool = EntropyPool::new(&sources(7));
        let first = pool.guest_seeds();
        let second = pool.guest_seeds();
        assert_ne!(first.kaslr, second.kaslr);
        assert_ne!(first.rng, second.rng);
        assert!(first.rng.iter().any(|&b| b != 0));
    }

    #[test]
    fn every_source_changes_the_seeds() {
        let base = EntropyPool::new(&sources(7)).guest_seeds();
        let variants = [
            EntropySources { counter: 8, ..sources(7) },
            EntropySources { host_rng_seed: &[1, 2, 3, 5], ..sources(7) },
            EntropySources { host_rng_seed: &[1, 2, 3], ..sources(7) },
            EntropySources { host_kaslr_seed: None, ..sources(7) },
            EntropySources { host_kaslr_seed: Some(0x1235), ..sources(7) },
            EntropySources { cpu_random: Some([0; 4]), ..sources(7) },
            EntropySources { cpu_random: Some([0, 0, 0, 1]), ..sources(7) },
        ];
        let mut seen = alloc::vec![base];
        for variant in variants {
            let seeds = EntropyPool::new(&variant).guest_seeds();
            assert!(!seen.contains(&seeds), "{variant:?} did not change the seeds");
            seen.push(seeds);
        }
    }

    #[test]
    fn a_machine_without_entropy_still_varies_with_the_counter() {
        let none = |counter| EntropySources { counter, ..EntropySources::default() };
        assert_ne!(EntropyPool::new(&none(1)).guest_seeds(), EntropyPool::new(&none(2)).guest_seeds());
    }
}
