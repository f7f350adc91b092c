//! Per-worker counters. A worker counts into a plain [`Counters`] (no atomics
//! on the per-packet path) and publishes it once per batch into its
//! [`SharedCounters`] with relaxed stores: one writer per counter set, so no
//! read-modify-write and no lock. The control plane reads [`Snapshot`]s.

use std::sync::atomic::{AtomicU64, Ordering};

use ironhoard_common::DropReason;
use ironhoard_wire::Status;

/// Counters of one worker, owned by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams received on the move port.
    pub rx: u64,
    /// Acks sent.
    pub tx: u64,
    /// Acks by status, indexed by the status code.
    pub status: [u64; 6],
    /// Silent drops, indexed by [`DropReason`].
    pub dropped: [u64; DropReason::COUNT],
    /// Acks that could not be sent (socket error, full TX ring).
    pub tx_errors: u64,
}

impl Counters {
    #[inline]
    pub fn count_status(&mut self, s: Status) {
        self.status[s as usize] += 1;
    }
    #[inline]
    pub fn count_drop(&mut self, r: DropReason) {
        self.dropped[r as usize] += 1;
    }
    pub fn status(&self, s: Status) -> u64 {
        self.status[s as usize]
    }
    pub fn drops(&self, r: DropReason) -> u64 {
        self.dropped[r as usize]
    }
    /// Adds another worker's counters (for totals).
    pub fn add(&mut self, o: &Counters) {
        self.rx += o.rx;
        self.tx += o.tx;
        self.tx_errors += o.tx_errors;
        for i in 0..self.status.len() {
            self.status[i] += o.status[i];
        }
        for i in 0..self.dropped.len() {
            self.dropped[i] += o.dropped[i];
        }
    }
}

/// A read of one worker's published counters.
pub type Snapshot = Counters;

const N: usize = 3 + 6 + DropReason::COUNT;

/// The published copy of a worker's counters, on its own cache lines.
#[repr(align(128))]
#[derive(Debug, Default)]
pub struct SharedCounters {
    cells: [AtomicU64; N],
}

impl SharedCounters {
    /// Publishes `c` (called by the owning worker only).
    #[inline]
    pub fn publish(&self, c: &Counters) {
        let vals = Self::flatten(c);
        for (cell, v) in self.cells.iter().zip(vals) {
            cell.store(v, Ordering::Relaxed);
        }
    }

    /// Reads the last published values.
    pub fn snapshot(&self) -> Snapshot {
        let mut v = [0u64; N];
        for (o, cell) in v.iter_mut().zip(&self.cells) {
            *o = cell.load(Ordering::Relaxed);
        }
        let mut c = Counters { rx: v[0], tx: v[1], tx_errors: v[2], ..Counters::default() };
        c.status.copy_from_slice(&v[3..9]);
        c.dropped.copy_from_slice(&v[9..]);
        c
    }

    fn flatten(c: &Counters) -> [u64; N] {
        let mut v = [0u64; N];
        v[0] = c.rx;
        v[1] = c.tx;
        v[2] = c.tx_errors;
        v[3..9].copy_from_slice(&c.status);
        v[9..].copy_from_slice(&c.dropped);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_snapshot_roundtrip() {
        let mut c = Counters { rx: 10, tx: 9, tx_errors: 1, ..Default::default() };
        c.count_status(Status::Busy);
        c.count_drop(DropReason::BadTag);
        let s = SharedCounters::default();
        s.publish(&c);
        assert_eq!(s.snapshot(), c);
        let mut t = Counters::default();
        t.add(&c);
        t.add(&c);
        assert_eq!(t.rx, 20);
        assert_eq!(t.status(Status::Busy), 2);
        assert_eq!(t.drops(DropReason::BadTag), 2);
    }
}
