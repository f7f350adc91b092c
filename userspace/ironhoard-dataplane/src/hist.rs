//! A log-linear latency histogram that a worker records into with plain
//! relaxed loads and stores (one writer: no atomic read-modify-write, no
//! lock, no allocation) and the control plane reads at any time.
//!
//! Values below 32 ns have their own bucket; above, each power of two is
//! split into 32 buckets (≤ 3.2 % relative error) up to ~1100 s. The
//! control plane turns snapshots into `hdrhistogram` histograms for
//! percentiles and exposition.

use std::sync::atomic::{AtomicU64, Ordering};

const SUB_BITS: u32 = 5;
const SUB: usize = 1 << SUB_BITS;
const MAX_MSB: u32 = 40;
/// Number of buckets.
pub const BUCKETS: usize = (MAX_MSB as usize - SUB_BITS as usize + 2) * SUB;

/// Bucket of a value.
#[inline]
pub fn bucket_of(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let msb = (63 - v.leading_zeros()).min(MAX_MSB);
    let v = v.min((1u64 << (MAX_MSB + 1)) - 1);
    let sub = ((v >> (msb - SUB_BITS)) as usize) & (SUB - 1);
    (msb - SUB_BITS + 1) as usize * SUB + sub
}

/// Lowest and highest value of a bucket.
pub fn bucket_bounds(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, i as u64);
    }
    let msb = (i / SUB) as u32 + SUB_BITS - 1;
    let sub = (i % SUB) as u64;
    let low = (SUB as u64 + sub) << (msb - SUB_BITS);
    (low, low + (1u64 << (msb - SUB_BITS)) - 1)
}

/// The histogram. 9.5 KiB.
pub struct AtomicHistogram {
    buckets: Box<[AtomicU64]>,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        AtomicHistogram { buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl std::fmt::Debug for AtomicHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AtomicHistogram(..)")
    }
}

impl AtomicHistogram {
    /// Records `n` occurrences of `v`. Single writer only.
    #[inline]
    pub fn record_n(&self, v: u64, n: u64) {
        let b = &self.buckets[bucket_of(v)];
        b.store(b.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Calls `f(low, high, count)` for every non-empty bucket.
    pub fn for_each(&self, mut f: impl FnMut(u64, u64, u64)) {
        for (i, b) in self.buckets.iter().enumerate() {
            let c = b.load(Ordering::Relaxed);
            if c > 0 {
                let (lo, hi) = bucket_bounds(i);
                f(lo, hi, c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order_with_small_error() {
        let mut last = 0;
        for v in 0..100_000u64 {
            let b = bucket_of(v);
            assert!(b >= last, "buckets grow with values");
            last = b;
        }
        for v in (0..5000u64).chain((1..60).map(|s| 1u64 << (s % 41))).chain([u64::MAX]) {
            let b = bucket_of(v);
            assert!(b < BUCKETS);
            let (lo, hi) = bucket_bounds(b);
            let vc = v.min((1u64 << 41) - 1);
            assert!(lo <= vc && vc <= hi, "v {v} bucket {b} [{lo}, {hi}]");
            assert!((hi - lo) as f64 <= lo as f64 / 31.0 + 1.0);
        }
    }

    #[test]
    fn record_and_read() {
        let h = AtomicHistogram::default();
        h.record_n(10, 2);
        h.record_n(1000, 3);
        let mut seen = Vec::new();
        h.for_each(|lo, hi, c| seen.push((lo, hi, c)));
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0], (10, 10, 2));
        assert!(seen[1].0 <= 1000 && 1000 <= seen[1].1 && seen[1].2 == 3);
    }
}
