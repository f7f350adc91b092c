//! Per-player token bucket (rate per second, burst), integer arithmetic on
//! nanosecond timestamps: one token is `NS_PER_SEC` units.

const NS_PER_SEC: u64 = 1_000_000_000;

/// Bucket parameters, shared by every player of a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketConfig {
    /// Tokens added per second.
    pub rate_per_second: u32,
    /// Bucket depth in tokens (the burst a player may send at once).
    pub burst: u32,
}

impl BucketConfig {
    fn cap_units(&self) -> u64 {
        self.burst as u64 * NS_PER_SEC
    }
}

/// One player's bucket: 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens, in units of 1e-9 token.
    units: u64,
    /// Time of the last refill (ns, caller's monotonic clock).
    last_ns: u64,
}

impl TokenBucket {
    /// A full bucket at time `now_ns`.
    pub fn full(cfg: &BucketConfig, now_ns: u64) -> TokenBucket {
        TokenBucket { units: cfg.cap_units(), last_ns: now_ns }
    }

    #[inline]
    fn refill(&mut self, cfg: &BucketConfig, now_ns: u64) {
        let cap = cfg.cap_units();
        let elapsed = now_ns.saturating_sub(self.last_ns);
        self.last_ns = self.last_ns.max(now_ns);
        if self.units >= cap || cfg.rate_per_second == 0 {
            self.units = self.units.min(cap);
            return;
        }
        // elapsed * rate units are added; clamp elapsed first so the
        // product cannot overflow (more than a full refill is pointless).
        let full_after = (cap - self.units) / cfg.rate_per_second as u64 + 1;
        let add = elapsed.min(full_after) * cfg.rate_per_second as u64;
        self.units = (self.units + add).min(cap);
    }

    /// Refills, then reports whether one token is available (does not take it).
    #[inline]
    pub fn has_token(&mut self, cfg: &BucketConfig, now_ns: u64) -> bool {
        self.refill(cfg, now_ns);
        self.units >= NS_PER_SEC
    }

    /// Takes the token [`has_token`](Self::has_token) found.
    #[inline]
    pub fn take(&mut self) {
        self.units = self.units.saturating_sub(NS_PER_SEC);
    }

    /// Brings the bucket under a new configuration (a reload): refilled up
    /// to now and capped at the new burst.
    pub fn recap(&mut self, cfg: &BucketConfig, now_ns: u64) {
        self.refill(cfg, now_ns);
    }

    /// Whole tokens available now (after the last refill).
    pub fn tokens(&self) -> u64 {
        self.units / NS_PER_SEC
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn burst_then_empty() {
        let cfg = BucketConfig { rate_per_second: 10, burst: 3 };
        let mut b = TokenBucket::full(&cfg, 0);
        for _ in 0..3 {
            assert!(b.has_token(&cfg, 0));
            b.take();
        }
        assert!(!b.has_token(&cfg, 0));
    }

    #[test]
    fn refill_at_rate() {
        let cfg = BucketConfig { rate_per_second: 10, burst: 3 };
        let mut b = TokenBucket::full(&cfg, 0);
        for _ in 0..3 {
            b.take();
        }
        // 10/s = one token per 100 ms
        assert!(!b.has_token(&cfg, 99 * MS));
        assert!(b.has_token(&cfg, 100 * MS));
        b.take();
        assert!(!b.has_token(&cfg, 150 * MS));
        assert!(b.has_token(&cfg, 200 * MS));
    }

    #[test]
    fn refill_caps_at_burst_and_survives_huge_gaps() {
        let cfg = BucketConfig { rate_per_second: u32::MAX, burst: u32::MAX };
        let mut b = TokenBucket::full(&cfg, 0);
        b.take();
        assert!(b.has_token(&cfg, u64::MAX));
        assert_eq!(b.tokens(), u32::MAX as u64);
        let cfg = BucketConfig { rate_per_second: 1, burst: 2 };
        let mut b = TokenBucket::full(&cfg, 0);
        b.take();
        b.take();
        assert!(b.has_token(&cfg, 3600 * 1000 * MS));
        assert_eq!(b.tokens(), 2);
    }

    #[test]
    fn time_going_backwards_adds_nothing() {
        let cfg = BucketConfig { rate_per_second: 1000, burst: 1 };
        let mut b = TokenBucket::full(&cfg, 10 * MS);
        b.take();
        assert!(!b.has_token(&cfg, 5 * MS));
        assert!(!b.has_token(&cfg, 10 * MS));
        assert!(b.has_token(&cfg, 11 * MS));
    }

    #[test]
    fn zero_rate_never_refills() {
        let cfg = BucketConfig { rate_per_second: 0, burst: 1 };
        let mut b = TokenBucket::full(&cfg, 0);
        b.take();
        assert!(!b.has_token(&cfg, u64::MAX));
    }
}
