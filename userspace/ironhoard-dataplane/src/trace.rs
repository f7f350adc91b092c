//! The RX ring's fill level over time: a sample at the poller's first turn
//! at least a millisecond after the last one (before it consumes: one a
//! millisecond while it turns; an idle poller asleep in poll(2) samples
//! when it wakes), the last [`TRACE_LEN`] - 1 kept (about 4 s under load),
//! read by `show rx-ring`.
//!
//! It tells a poller that is too slow (a sample every millisecond, the
//! level climbing) from one that was stopped (no samples for a while, the
//! ring full after the gap: the poller off its core, or its vCPU halted).
//! One writer (the poller: relaxed stores, no read-modify-write, no lock,
//! no allocation), any number of readers.

use std::sync::atomic::{fence, AtomicU64, Ordering};

/// Samples kept: about 4 s at one a millisecond.
pub const TRACE_LEN: usize = 4096;
/// The sampling period, ns.
pub const TRACE_PERIOD_NS: u64 = 1_000_000;
/// Levels up to 65 535: a ring has at most 32 768 entries (`XskSizes`);
/// the time keeps 48 bits of CLOCK_MONOTONIC µs (8.9 years of uptime).
const LEVEL_BITS: u32 = 16;
const LEVEL_MAX: u32 = (1 << LEVEL_BITS) - 1;

/// A ring of (time, level) samples, each packed in one u64: CLOCK_MONOTONIC
/// microseconds above, the level below.
pub struct LevelTrace {
    /// Samples written so far (the next one goes to `head % TRACE_LEN`).
    head: AtomicU64,
    slots: Box<[AtomicU64]>,
}

impl Default for LevelTrace {
    fn default() -> Self {
        LevelTrace { head: AtomicU64::new(0), slots: (0..TRACE_LEN).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl std::fmt::Debug for LevelTrace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LevelTrace({} samples)", self.head.load(Ordering::Relaxed))
    }
}

impl LevelTrace {
    /// Records `level` at `now_ns` (CLOCK_MONOTONIC). Single writer only.
    #[inline]
    pub fn push(&self, now_ns: u64, level: u32) {
        let h = self.head.load(Ordering::Relaxed);
        // a reader that sees this slot's new value then sees a head of at
        // least h, which tells it the slot's old sample is gone (with the
        // reader's fence in `snapshot`: the seqlock pattern)
        fence(Ordering::Release);
        let v = ((now_ns / 1000) << LEVEL_BITS) | u64::from(level.min(LEVEL_MAX));
        self.slots[h as usize % TRACE_LEN].store(v, Ordering::Relaxed);
        // the slot before the head: a reader that sees this head sees it
        self.head.store(h + 1, Ordering::Release);
    }

    /// Samples written since start (including those overwritten).
    pub fn written(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// The samples still held, oldest first, as (CLOCK_MONOTONIC ns at µs
    /// precision, level). Samples the writer overwrote while this read
    /// are left out.
    pub fn snapshot(&self) -> Vec<(u64, u32)> {
        let h = self.head.load(Ordering::Acquire);
        let first = h.saturating_sub(TRACE_LEN as u64);
        let raw: Vec<u64> = (first..h).map(|i| self.slots[i as usize % TRACE_LEN].load(Ordering::Relaxed)).collect();
        // sample i shares its slot with i + TRACE_LEN: those the writer has
        // written since, or may be writing (head h2), are suspect
        fence(Ordering::Acquire);
        let h2 = self.head.load(Ordering::Relaxed);
        let keep_from = (h2 + 1).saturating_sub(TRACE_LEN as u64);
        let skip = keep_from.saturating_sub(first).min(raw.len() as u64) as usize;
        raw[skip..].iter().map(|&v| ((v >> LEVEL_BITS) * 1000, (v & u64::from(LEVEL_MAX)) as u32)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_come_back_oldest_first_at_microsecond_precision() {
        let t = LevelTrace::default();
        assert!(t.snapshot().is_empty());
        let base = 5_000_000_123_000; // a whole µs: the trace keeps µs
        t.push(base, 0);
        t.push(base + 1_000_999, 64);
        t.push(base + 40_000_000, 2048);
        t.push(base + 41_000_000, 70_000); // clamped, not spilled into the time
        assert_eq!(
            t.snapshot(),
            vec![(base, 0), (base + 1_000_000, 64), (base + 40_000_000, 2048), (base + 41_000_000, LEVEL_MAX)]
        );
        assert_eq!(t.written(), 4);
    }

    #[test]
    fn only_the_last_trace_len_samples_are_kept() {
        let t = LevelTrace::default();
        let n = TRACE_LEN as u64 + 10;
        for i in 0..n {
            t.push(1_000 + i * TRACE_PERIOD_NS, i as u32);
        }
        let s = t.snapshot();
        // the oldest slot is the one the writer fills next: left out
        assert_eq!(s.len(), TRACE_LEN - 1);
        assert_eq!(s[0], (1_000 + 11 * TRACE_PERIOD_NS, 11));
        assert_eq!(*s.last().unwrap(), (1_000 + (n - 1) * TRACE_PERIOD_NS, (n - 1) as u32));
        assert!(s.windows(2).all(|w| w[0].0 < w[1].0), "in time order");
    }
}
