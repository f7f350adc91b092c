//! Dispatch of accepted moves: pollers hand each ACCEPTED move to the
//! dispatcher through a bounded lock-free queue (one per poller); the
//! dispatcher thread appends them to the move log.
//!
//! A full queue, or a log that cannot be written, makes `offer` fail, which
//! turns the move into BUSY: nothing is recorded and the client retries. A
//! move is never acked ACCEPTED and then dropped by the dispatcher: records
//! it could not write stay buffered and are retried.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use ironhoard_engine::Dispatch;
use ironhoard_movelog::{Accepted, Writer, WriterConfig};
use ironhoard_wire::MOVE_LEN;
use log::{error, info, warn};

/// Records the dispatcher keeps in memory at most while the log cannot be
/// written, before it stops taking from the queues (which then fill: BUSY).
const MAX_PENDING: usize = 1 << 20;
/// Records taken from the queues per write.
const BATCH: usize = 8192;

/// What the dispatcher shares with pollers and the control plane.
#[derive(Debug)]
pub struct DispatchShared {
    /// False while the log cannot be written: pollers answer BUSY.
    pub healthy: AtomicBool,
    /// Unix time minus monotonic time (ns), refreshed by the dispatcher so
    /// pollers can stamp records with wall-clock receive times.
    pub wall_offset_ns: AtomicI64,
    pub records: AtomicU64,
    pub write_errors: AtomicU64,
    pub pending: AtomicU64,
    pub syncs: AtomicU64,
    pub rotations: AtomicU64,
    pub batches: AtomicU64,
    /// Moves refused because a queue was full or the log unhealthy.
    pub refused: Vec<AtomicU64>,
    pub last_error: Mutex<Option<String>>,
    pub segment: Mutex<String>,
    /// Set by the control plane after the pollers stopped: drain and exit.
    pub stop: AtomicBool,
}

impl DispatchShared {
    pub fn new(queues: usize) -> DispatchShared {
        DispatchShared {
            healthy: AtomicBool::new(false),
            wall_offset_ns: AtomicI64::new(wall_offset()),
            records: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            pending: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            refused: (0..queues).map(|_| AtomicU64::new(0)).collect(),
            last_error: Mutex::new(None),
            segment: Mutex::new(String::new()),
            stop: AtomicBool::new(false),
        }
    }
}

fn wall_offset() -> i64 {
    ironhoard_movelog::unix_ns() as i64 - crate::monotonic_ns() as i64
}

/// A poller's end of its dispatch queue (implements the engine's
/// [`Dispatch`]): a push of a fixed-size value into a preallocated slot.
pub struct QueueDispatch {
    q: Arc<ArrayQueue<Accepted>>,
    shared: Arc<DispatchShared>,
    queue: u16,
    refused: u64,
}

impl Dispatch for QueueDispatch {
    #[inline]
    fn offer(&mut self, mv: &[u8; MOVE_LEN], recv_ns: u64) -> bool {
        if !self.shared.healthy.load(Ordering::Relaxed) {
            self.refuse();
            return false;
        }
        let recv_unix_ns = (recv_ns as i64 + self.shared.wall_offset_ns.load(Ordering::Relaxed)) as u64;
        match self.q.push(Accepted { recv_unix_ns, queue: self.queue, mv: *mv }) {
            Ok(()) => true,
            Err(_) => {
                self.refuse();
                false
            }
        }
    }
}

impl QueueDispatch {
    #[inline]
    fn refuse(&mut self) {
        self.refused += 1;
        self.shared.refused[self.queue as usize % self.shared.refused.len()].store(self.refused, Ordering::Relaxed);
    }
}

/// The dispatcher: owns the log writer and drains every poller's queue.
pub struct Dispatcher {
    queues: Vec<Arc<ArrayQueue<Accepted>>>,
    shared: Arc<DispatchShared>,
    cfg: WriterConfig,
    writer: Option<Writer>,
}

/// Builds the dispatcher and one [`QueueDispatch`] per poller, each queue
/// of `depth` records (allocated here, once).
pub fn dispatcher(cfg: WriterConfig, pollers: usize, depth: usize) -> (Dispatcher, Vec<QueueDispatch>, Arc<DispatchShared>) {
    let shared = Arc::new(DispatchShared::new(pollers));
    let queues: Vec<_> = (0..pollers).map(|_| Arc::new(ArrayQueue::new(depth.max(1)))).collect();
    let ends = queues
        .iter()
        .enumerate()
        .map(|(i, q)| QueueDispatch { q: Arc::clone(q), shared: Arc::clone(&shared), queue: i as u16, refused: 0 })
        .collect();
    let mut d = Dispatcher { queues, shared: Arc::clone(&shared), cfg, writer: None };
    d.try_open();
    (d, ends, shared)
}

impl Dispatcher {
    fn set_error(&self, e: &std::io::Error) {
        self.shared.write_errors.fetch_add(1, Ordering::Relaxed);
        *self.shared.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
    }

    fn try_open(&mut self) -> bool {
        match Writer::open(self.cfg.clone()) {
            Ok(w) => {
                info!("move log {}: appending at offset {} in {}", self.cfg.dir.display(), w.next_offset(), w.segment().display());
                *self.shared.segment.lock().unwrap_or_else(|p| p.into_inner()) = w.segment().display().to_string();
                self.writer = Some(w);
                self.shared.healthy.store(true, Ordering::Relaxed);
                true
            }
            Err(e) => {
                error!("move log {}: cannot be written ({e}); every move is answered BUSY until it can", self.cfg.dir.display());
                self.set_error(&e);
                self.shared.healthy.store(false, Ordering::Relaxed);
                false
            }
        }
    }

    /// Runs until `shared.stop` is set and every queue is drained and
    /// written. Returns the number of records it could not write (0 unless
    /// the log stayed unwritable through shutdown).
    pub fn run(mut self) -> u64 {
        // However this returns (or panics), pollers stop offering moves to
        // queues nobody drains: they answer BUSY.
        struct Unhealthy(Arc<DispatchShared>);
        impl Drop for Unhealthy {
            fn drop(&mut self) {
                self.0.healthy.store(false, Ordering::Relaxed);
            }
        }
        let _guard = Unhealthy(Arc::clone(&self.shared));
        let mut last_offset_refresh = Instant::now();
        let mut last_reopen = Instant::now();
        let mut last_complaint: Option<Instant> = None;
        let mut stopping_since: Option<Instant> = None;
        loop {
            let stop = self.shared.stop.load(Ordering::Acquire);
            if last_offset_refresh.elapsed() >= Duration::from_secs(1) {
                self.shared.wall_offset_ns.store(wall_offset(), Ordering::Relaxed);
                last_offset_refresh = Instant::now();
            }
            if self.writer.is_none() {
                if last_reopen.elapsed() >= Duration::from_secs(1) || stop {
                    last_reopen = Instant::now();
                    self.try_open();
                }
                if self.writer.is_none() {
                    if stop {
                        let left: usize = self.queues.iter().map(|q| q.len()).sum();
                        if left == 0 || stopping_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(5) {
                            return left as u64;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
            }
            let w = self.writer.as_mut().expect("open");
            let mut took = 0usize;
            if w.pending() < MAX_PENDING {
                'drain: for q in &self.queues {
                    while let Some(a) = q.pop() {
                        w.append(&a);
                        took += 1;
                        if took >= BATCH {
                            break 'drain;
                        }
                    }
                }
            }
            // write what is pending (or only let a due interval sync run)
            let before = w.next_offset();
            let res = w.flush();
            self.shared.records.fetch_add(w.next_offset() - before, Ordering::Relaxed);
            match res {
                Ok(()) => {
                    if took > 0 {
                        self.shared.batches.fetch_add(1, Ordering::Relaxed);
                    }
                    if !self.shared.healthy.swap(true, Ordering::Relaxed) {
                        info!("move log {}: writable again", self.cfg.dir.display());
                    }
                }
                Err(e) => {
                    self.shared.healthy.store(false, Ordering::Relaxed);
                    if last_complaint.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                        error!("move log: {e}; {} records held for retry, new moves answered BUSY", w.pending());
                        last_complaint = Some(Instant::now());
                    }
                    self.set_error(&e);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            let w = self.writer.as_mut().expect("open");
            self.shared.pending.store(w.pending() as u64, Ordering::Relaxed);
            self.shared.syncs.store(w.syncs, Ordering::Relaxed);
            self.shared.rotations.store(w.rotations, Ordering::Relaxed);
            if w.rotations > 0 {
                *self.shared.segment.lock().unwrap_or_else(|p| p.into_inner()) = w.segment().display().to_string();
            }
            if took == 0 && w.pending() == 0 {
                if stop && self.queues.iter().all(|q| q.is_empty()) {
                    if let Err(e) = w.sync() {
                        warn!("move log: final fsync failed: {e}");
                    }
                    self.shared.syncs.store(w.syncs, Ordering::Relaxed);
                    return 0;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            if stop && w.pending() > 0 && stopping_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(5) {
                let left = w.pending() as u64 + self.queues.iter().map(|q| q.len() as u64).sum::<u64>();
                error!("move log: shutting down with {left} accepted records unwritten ({:?})", self.shared.last_error.lock().ok());
                return left;
            }
        }
    }
}
