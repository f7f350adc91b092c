//! The IronHoard data path: worker threads that move datagrams between the
//! network and an [`ironhoard_engine::Engine`], one worker per queue, each
//! pinned to its core. Nothing here parses config or talks to operators;
//! the control plane (the `ironhoard` binary) builds the workers, starts
//! them and reads their [`WorkerShared`] state.
//!
//! Backends:
//! - [`xsk`]: AF_XDP, one socket and UMEM per NIC queue, steered by the XDP
//!   program; each socket's poller (the loop in `poller`, over the socket's
//!   [`rings::XskRings`]) validates moves in place and acks from the same
//!   frame, handing a move whose player another poller owns to that
//!   poller's mailbox (the [`mesh::Mesh`]);
//! - [`socket`]: kernel UDP sockets (SO_REUSEPORT group, recvmmsg/sendmmsg),
//!   for hosts or NICs where AF_XDP is not wanted.
//!
//! Beside them: [`rings`] (an AF_XDP socket's rings as every loop over them
//! drives them: the poller's, and the lab benchmark's reflector's), [`mesh`]
//! (the pollers' mailboxes), [`split`] (an AF_XDP
//! socket's halves, for the generator), [`capture`] (the per-poller ring
//! `ironhoard capture` reads),
//! [`dispatch`] (the move log's writer as the engine sees it), [`frame`] (frames
//! built for tests and the generator; the classifier the pollers run is
//! `ironhoard-classify`'s, the XDP program's), [`affinity`], [`nic`].

pub mod affinity;
pub mod capture;
pub mod nic;
mod poller;
pub mod dispatch;
pub mod frame;
pub mod hist;
pub mod mesh;
pub mod rings;
pub mod socket;
pub mod split;
pub mod trace;
pub mod xsk;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use std::sync::{Arc, Mutex};

use ironhoard_engine::{Engine, EngineConfig, Keyring, SharedCounters};

use crate::capture::CaptureRing;
use crate::hist::AtomicHistogram;

/// State a worker shares with the control plane: its published counters,
/// its player-table fill, and the stop flag it polls.
#[derive(Debug, Default)]
pub struct WorkerShared {
    pub counters: SharedCounters,
    /// Players in the worker's table (published with the counters).
    pub players: AtomicU64,
    /// Set by the control plane: the worker drains (answers what its rings
    /// and mailbox hold, waits for its acks to leave), sets `drained`, and
    /// returns once `exit` is set too.
    pub stop: AtomicBool,
    /// Set by the worker once it has drained after `stop`.
    pub drained: AtomicBool,
    /// Set by the control plane once every worker has drained (no peer
    /// can hand this one a move any more).
    pub exit: AtomicBool,
    /// Moves (datagrams) served from the bridge: the UDP sockets that
    /// queued them while a predecessor handed over.
    pub bridged: AtomicU64,
    /// Set by the control plane once this process's own XDP program steers
    /// the moves: a poller stops watching its bridge when it has been
    /// empty for a while after that.
    pub bridge_closing: AtomicBool,
    /// Time to process one batch (receive to send), ns.
    pub batch_ns: AtomicHistogram,
    /// Reload work one turn of the worker's loop did: applying a reloaded
    /// config, or one slice of the sweep after a key_id was retired.
    pub reload_ns: AtomicHistogram,
    /// Service time per move: the batch's time over its datagrams, ns.
    pub move_ns: AtomicHistogram,
    /// AF_XDP: the RX ring's fill level, sampled each millisecond
    /// (`show rx-ring`).
    pub rx_level: crate::trace::LevelTrace,
    /// System calls made to kick the kernel (need_wakeup sendto/poll) and
    /// idle sleeps in poll(2).
    pub wakeups: AtomicU64,
    /// AF_XDP with preferred busy polling: recvfrom calls made on an empty
    /// RX ring to run the queue's NAPI poll (sendto kicks count in `wakeups`).
    pub busy_polls: AtomicU64,
    /// AF_XDP: the kernel's XDP_STATISTICS for the socket, published about
    /// once a second by the worker (rx_dropped, rx_invalid_descs,
    /// tx_invalid_descs, rx_ring_full, rx_fill_ring_empty_descs,
    /// tx_ring_empty_descs).
    pub xsk_stats: [AtomicU64; 6],
    /// AF_XDP: whether `xsk_stats` is meaningful.
    pub has_xsk_stats: AtomicBool,
    /// AF_XDP, several pollers: moves this poller handed to the poller
    /// owning their player, and those it could not (that mailbox full).
    pub handoffs: AtomicU64,
    /// Moves whose owner's mailbox was full: answered BUSY by this poller.
    pub handoffs_dropped: AtomicU64,
    /// AF_XDP, several pollers: lookups of the key cache for moves of
    /// players another poller owns, that found the player's keyed state
    /// (hits) or had to derive it (misses); published with the counters.
    pub key_cache_hits: AtomicU64,
    pub key_cache_misses: AtomicU64,
    /// Times this poller was woken from poll(2) by a peer that handed it
    /// moves (instead of sleeping out its 10 ms).
    pub peer_wakes: AtomicU64,
    /// Set by the worker's thread once its socket is bound and its engine
    /// restored, just before it enters its serve loop: the control plane
    /// reports READY to systemd only when every worker has set it.
    pub serving: AtomicBool,
    /// A reloaded configuration for the worker (set by the control plane,
    /// then `reload_gen` bumped); the worker applies it between batches.
    pub reload: Mutex<Option<Reload>>,
    pub reload_gen: AtomicU64,
    /// The last `reload_gen` the worker applied.
    pub reload_applied: AtomicU64,
    /// Players reclaimed by reloads (their key_id retired or re-keyed).
    pub reclaimed: AtomicU64,
    /// `ironhoard capture`: the ring this worker copies frames into while
    /// a capture runs (set by the control plane, then `capture_gen`
    /// bumped; the worker picks it up between batches).
    pub capture: Mutex<Option<Arc<CaptureRing>>>,
    pub capture_gen: AtomicU64,
    /// Set by the worker while it holds a capture ring.
    pub capture_active: AtomicBool,
    /// Records the worker could not put in its capture ring (full).
    pub capture_skipped: AtomicU64,
}

/// What a reload changes in a running worker.
#[derive(Clone)]
pub struct Reload {
    pub cfg: EngineConfig,
    pub keys: Arc<Keyring>,
}

impl std::fmt::Debug for Reload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Reload {{ cfg: {:?}, key_ids: {} }}", self.cfg, self.keys.len())
    }
}

/// Names of [`WorkerShared::xsk_stats`], in order.
pub const XSK_STAT_NAMES: [&str; 6] =
    ["rx_dropped", "rx_invalid_descs", "tx_invalid_descs", "rx_ring_full", "rx_fill_ring_empty_descs", "tx_ring_empty_descs"];

impl WorkerShared {
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Called by the worker once per turn of its loop: one atomic load (and
    /// a flag), and when a reload is pending, its application (no lock is
    /// waited for: a busy slot is tried again next turn). A reload that
    /// retired or re-keyed a key_id then sweeps the player table in slices
    /// of [`SWEEP_SLOTS`](ironhoard_engine::engine::SWEEP_SLOTS), one per
    /// turn, between batches; the reload counts as applied once the sweep
    /// is done.
    #[inline]
    pub fn apply_reload(&self, seen: &mut u64, engine: &mut Engine) {
        let g = self.reload_gen.load(Ordering::Acquire);
        if g != *seen || engine.sweeping() {
            self.apply_reload_slow(g, seen, engine);
        }
    }

    #[cold]
    fn apply_reload_slow(&self, g: u64, seen: &mut u64, engine: &mut Engine) {
        let t0 = monotonic_ns();
        if g != *seen {
            let Ok(slot) = self.reload.try_lock() else { return };
            if let Some(r) = slot.as_ref() {
                engine.begin_reconfigure(r.cfg, Arc::clone(&r.keys));
            }
            *seen = g;
        }
        if engine.sweeping() {
            let n = engine.sweep_step(ironhoard_engine::engine::SWEEP_SLOTS);
            self.reclaimed.fetch_add(n as u64, Ordering::Relaxed);
        }
        self.players.store(engine.players() as u64, Ordering::Relaxed);
        if !engine.sweeping() {
            self.reload_applied.store(*seen, Ordering::Release);
        }
        self.reload_ns.record_n(monotonic_ns().saturating_sub(t0), 1);
    }

    /// Starts (`Some`) or ends (`None`) this worker's capture; the worker
    /// takes the change at its next turn (see `capture_active`).
    pub fn set_capture(&self, ring: Option<Arc<CaptureRing>>) {
        *self.capture.lock().unwrap_or_else(|e| e.into_inner()) = ring;
        self.capture_gen.fetch_add(1, Ordering::Release);
    }

    /// Called by the worker once per turn: one relaxed load while no
    /// capture starts or ends; when one does, the ring (or none) is taken
    /// from the slot (no lock is waited for: a busy slot is tried again
    /// next turn).
    #[inline]
    pub fn poll_capture(&self, seen: &mut u64, ring: &mut Option<Arc<CaptureRing>>) {
        let g = self.capture_gen.load(Ordering::Relaxed);
        if g != *seen {
            self.poll_capture_slow(g, seen, ring);
        }
    }

    #[cold]
    fn poll_capture_slow(&self, g: u64, seen: &mut u64, ring: &mut Option<Arc<CaptureRing>>) {
        let Ok(slot) = self.capture.try_lock() else { return };
        *ring = slot.clone();
        *seen = g;
        self.capture_active.store(ring.is_some(), Ordering::Release);
    }

    /// A worker leaving its loop drops its ring.
    pub fn capture_gone(&self) {
        self.capture_active.store(false, Ordering::Release);
    }

    /// One record the capture ring had no room for (single writer).
    #[cold]
    pub fn count_capture_skipped(&self) {
        self.capture_skipped.store(self.capture_skipped.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Stop: drain, then return.
    pub fn request_stop(&self) {
        self.exit.store(true, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Stop serving new moves: drain, set `drained`, and wait for
    /// [`release`](Self::release) (several pollers hand each other moves:
    /// none may leave while a peer could still hand it one).
    pub fn begin_drain(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// After every worker has drained: return.
    pub fn release(&self) {
        self.exit.store(true, Ordering::Relaxed);
    }

    /// Records one processed batch of `n` datagrams that took `ns`.
    #[inline]
    pub fn record_batch(&self, n: usize, ns: u64) {
        self.batch_ns.record_n(ns, 1);
        if n > 0 {
            self.move_ns.record_n(ns / n as u64, n as u64);
        }
    }

    #[inline]
    pub fn count_handoff(&self) {
        self.handoffs.store(self.handoffs.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    #[inline]
    pub fn count_handoff_dropped(&self) {
        self.handoffs_dropped.store(self.handoffs_dropped.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Adds to the busy-poll count (single writer).
    #[inline]
    pub fn count_busy_polls(&self, n: u64) {
        self.busy_polls.store(self.busy_polls.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Adds to the wakeup count (single writer).
    #[inline]
    pub fn count_wakeups(&self, n: u64) {
        self.wakeups.store(self.wakeups.load(Ordering::Relaxed) + n, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    /// The XDP program checks moves by `ironhoard-common`'s copy of the wire
    /// constants (the BPF build takes no crypto crates); the appliance and
    /// the generator build and parse them by `ironhoard-wire`'s.
    #[test]
    fn the_xdp_programs_wire_constants_agree_with_the_wire_crate() {
        use ironhoard_common::wire as bpf;
        assert_eq!(bpf::MOVE_LEN, ironhoard_wire::MOVE_LEN);
        assert_eq!(bpf::ACK_LEN, ironhoard_wire::ACK_LEN);
        assert_eq!(bpf::MOVE_MAGIC, ironhoard_wire::MOVE_MAGIC);
        assert_eq!(bpf::ACK_MAGIC, ironhoard_wire::ACK_MAGIC);
        assert_eq!(bpf::VERSION, ironhoard_wire::VERSION);
    }
}
