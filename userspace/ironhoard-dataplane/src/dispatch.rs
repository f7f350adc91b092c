//! Recording accepted moves: each poller appends its own ACCEPTED moves to
//! its own move-log partition (ironhoard-movelog), in the poller's thread,
//! before the batch's acks are sent. No queue, no dispatcher thread, nothing
//! shared with another poller.
//!
//! When the partition has no room (its segment is full and no next one is
//! ready: disk full, directory unwritable) `offer` fails and the move is
//! answered BUSY: nothing recorded, the client retries.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use ironhoard_engine::Dispatch;
use ironhoard_movelog::{Accepted, Partition};
use ironhoard_wire::MOVE_LEN;

/// Unix time minus monotonic time (ns): pollers stamp records with
/// wall-clock receive times from the monotonic batch clock. The control
/// plane refreshes it (about once a second).
#[derive(Debug)]
pub struct WallClock(AtomicI64);

impl Default for WallClock {
    fn default() -> Self {
        WallClock(AtomicI64::new(wall_offset()))
    }
}

impl WallClock {
    pub fn refresh(&self) {
        self.0.store(wall_offset(), Ordering::Relaxed);
    }
}

fn wall_offset() -> i64 {
    ironhoard_movelog::unix_ns() as i64 - crate::monotonic_ns() as i64
}

/// A poller's move-log partition as the engine's [`Dispatch`].
pub struct LogDispatch {
    part: Partition,
    clock: Arc<WallClock>,
}

impl LogDispatch {
    pub fn new(part: Partition, clock: Arc<WallClock>) -> LogDispatch {
        LogDispatch { part, clock }
    }
}

impl Dispatch for LogDispatch {
    #[inline]
    fn offer(&mut self, mv: &[u8; MOVE_LEN], recv_ns: u64) -> bool {
        let recv_unix_ns = (recv_ns as i64 + self.clock.0.load(Ordering::Relaxed)) as u64;
        self.part.append(&Accepted { recv_unix_ns, queue: self.part.queue(), mv: *mv })
    }

    #[inline]
    fn commit(&mut self) {
        self.part.commit();
    }
}
