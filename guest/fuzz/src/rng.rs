//! splitmix64: small, fast and good enough to pick fuzz operations. Every operation gets its
//! own generator seeded from (seed, CPU, operation index), so one index names one operation
//! exactly, whatever came before it.

/// splitmix64's increment (the golden ratio) and the seed mixers for CPU and index.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;
const MIX1: u64 = 0xbf58_476d_1ce4_e5b9;
const MIX2: u64 = 0x94d0_49bb_1331_11eb;
const CPU_SALT: u64 = 0xc2b2_ae3d_27d4_eb4f;

pub struct Rng(u64);

impl Rng {
    /// The generator of operation `index` of CPU `cpu`'s stream for `seed`.
    pub fn for_op(seed: u64, cpu: usize, index: u64) -> Self {
        let mut mixer = Self(seed ^ (cpu as u64).wrapping_mul(CPU_SALT));
        let base = mixer.next();
        Self(base ^ index.wrapping_mul(GOLDEN))
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(MIX1);
        z = (z ^ (z >> 27)).wrapping_mul(MIX2);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..hi` (`lo` if the range is empty).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo))
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A value of an "interesting" shape: small, all ones, one bit, a boundary, or random.
    pub fn value(&mut self) -> u64 {
        match self.below(8) {
            0 => self.below(16),
            1 => u64::MAX,
            2 => 1 << self.below(64),
            3 => (1 << self.below(64)) - 1,
            4 => u64::from(self.next() as u32),
            5 => 0x8000_0000_0000_0000 | self.below(16),
            6 => 0,
            _ => self.next(),
        }
    }

    /// Picks an index by weight.
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut left = self.below(total);
        for (index, &weight) in weights.iter().enumerate() {
            if left < u64::from(weight) {
                return index;
            }
            left -= u64::from(weight);
        }
        weights.len().saturating_sub(1)
    }
}
