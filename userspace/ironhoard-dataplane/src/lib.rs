//! The IronHoard data path: worker threads that move datagrams between the
//! network and an [`ironhoard_engine::Engine`], one worker per queue, each
//! pinned to its core. Nothing here parses config or talks to operators;
//! the control plane (the `ironhoard` binary) builds the workers, starts
//! them and reads their [`WorkerShared`] state.
//!
//! Backends:
//! - [`socket`]: kernel UDP sockets (SO_REUSEPORT group, recvmmsg/sendmmsg).

pub mod affinity;
pub mod frame;
pub mod socket;
pub mod xsk;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use ironhoard_engine::SharedCounters;

/// State a worker shares with the control plane: its published counters,
/// its player-table fill, and the stop flag it polls.
#[derive(Debug, Default)]
pub struct WorkerShared {
    pub counters: SharedCounters,
    /// Players in the worker's table (published with the counters).
    pub players: AtomicU64,
    /// Set by the control plane; the worker returns within ~100 ms.
    pub stop: AtomicBool,
}

impl WorkerShared {
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Monotonic nanoseconds (vDSO clock, no system call).
#[inline]
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
