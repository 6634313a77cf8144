//! A token bucket for log lines a guest can trigger (UNDEF, unassigned MMIO, ISV = 0, refused
//! disk requests): each vCPU may cause a burst of lines and then a steady trickle; the rest
//! are counted, not printed, so a misbehaving guest cannot flood the console or stall its pCPU
//! in synchronous UART output.

/// Lines a vCPU may cause at once.
pub const GUEST_LOG_BURST: u32 = 20;
/// Lines per second it may cause after the burst.
pub const GUEST_LOG_PER_SECOND: u32 = 5;

/// One vCPU's bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    tokens: u32,
    /// Counter value when the last token was added.
    refilled_at: u64,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self::new()
    }
}

impl RateLimit {
    pub const fn new() -> Self {
        Self { tokens: GUEST_LOG_BURST, refilled_at: 0 }
    }

    /// Whether a line may be printed at counter value `now` (`hz` ticks per second); takes a
    /// token if so.
    pub fn allow(&mut self, now: u64, hz: u64) -> bool {
        let ticks_per_token = (hz / u64::from(GUEST_LOG_PER_SECOND)).max(1);
        let earned = now.saturating_sub(self.refilled_at) / ticks_per_token;
        if earned > 0 {
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(GUEST_LOG_BURST)) as u32;
            self.refilled_at = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HZ: u64 = 62_500_000;

    #[test]
    fn a_burst_then_a_trickle() {
        let mut limit = RateLimit::new();
        let allowed = (0..1000).filter(|_| limit.allow(1, HZ)).count();
        assert_eq!(allowed, GUEST_LOG_BURST as usize, "a flood at one instant gets the burst");
        // One second later: the trickle's worth.
        let allowed = (0..1000).filter(|_| limit.allow(1 + HZ, HZ)).count();
        assert_eq!(allowed, GUEST_LOG_PER_SECOND as usize);
    }

    #[test]
    fn a_quiet_guest_gets_its_burst_back_but_no_more() {
        let mut limit = RateLimit::new();
        (0..100).for_each(|_| {
            limit.allow(0, HZ);
        });
        let allowed = (0..1000).filter(|_| limit.allow(3600 * HZ, HZ)).count();
        assert_eq!(allowed, GUEST_LOG_BURST as usize);
    }

    #[test]
    fn a_counter_that_goes_backwards_is_harmless() {
        let mut limit = RateLimit::new();
        limit.allow(10 * HZ, HZ);
        assert!(limit.allow(0, HZ), "tokens left from the burst");
        assert!(!RateLimit { tokens: 0, refilled_at: 10 * HZ }.allow(0, 0), "hz 0 does not divide by zero");
    }
}
