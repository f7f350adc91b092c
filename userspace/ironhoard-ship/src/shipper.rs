//! The publishing loop: one thread, one connection to the cluster.
//!
//! Each partition of the log is read in offset order from its checkpoint.
//! Records are published without waiting (up to `in_flight` PubAcks
//! outstanding across partitions); a partition's shipped offset moves past
//! a record only once the PubAcks of it and of every record before it
//! arrived. When a publish fails (no PubAck within `ack_timeout`, the
//! connection lost, the stream refusing it), the partition stops
//! publishing, waits for its outstanding PubAcks, then goes back to its
//! first unacknowledged record after a backoff: records published after
//! the failed one are published again and the stream reports them as
//! duplicates. Nothing is skipped: a record the stream keeps refusing stops
//! its partition (lag grows, `rejected` and `last_error` say why).
//!
//! PubAcks come back on one subscription (`<inbox>.<publish number>`), as
//! a JetStream asynchronous publisher does, and time out by a scan of the
//! publishes in send order: no future, timer or channel per message, which
//! is what lets one core ship faster than the data path records.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::Release};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};

use ironhoard_movelog::reader::partition_end;
use ironhoard_movelog::{partitions, PartitionReader, ReadError, Record};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::message;
use crate::status::{PartitionStatus, Status};
use crate::{unix_ns, ShipConfig};

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("NATS {servers}: {why}")]
    Connect { servers: String, why: String },
    #[error("file {path}: {why}")]
    File { path: PathBuf, why: String },
    #[error("move log {dir}: {source}")]
    Log { dir: PathBuf, source: ReadError },
}

/// Connects with what `[ship]` says (servers, credentials, TLS), counting
/// disconnects and reconnects in `status`. With `retry`, a cluster that is
/// down at start is retried forever in the background.
pub async fn connect(cfg: &ShipConfig, status: Option<Arc<Status>>, retry: bool) -> Result<async_nats::Client, ShipError> {
    let servers = cfg.servers.join(",");
    let err = |why: String| ShipError::Connect { servers: servers.clone(), why };
    let mut opts = async_nats::ConnectOptions::new()
        .name(format!("ironhoard-ship {}", cfg.host_id))
        .connection_timeout(Duration::from_secs(3))
        .max_reconnects(None)
        .client_capacity(cfg.in_flight.max(1024) * 2)
        // PubAcks arrive on one subscription: room for every one in flight
        .subscription_capacity((cfg.in_flight * 4).max(65_536))
        .reconnect_delay_callback(|attempt| backoff(attempt as u32, Duration::from_millis(100), Duration::from_secs(2)));
    if retry {
        opts = opts.retry_on_initial_connect();
    }
    if let Some(st) = status {
        opts = opts.event_callback(move |ev| {
            let st = Arc::clone(&st);
            async move {
                match ev {
                    async_nats::Event::Connected => {
                        if st.connected.swap(true, Relaxed) {
                            return;
                        }
                        if st.disconnects.load(Relaxed) > 0 {
                            st.reconnects.fetch_add(1, Relaxed);
                            log::info!("ship: reconnected to the cluster");
                        } else {
                            log::info!("ship: connected to the cluster");
                        }
                    }
                    async_nats::Event::Disconnected => {
                        if st.connected.swap(false, Relaxed) {
                            st.disconnects.fetch_add(1, Relaxed);
                            log::warn!("ship: disconnected from the cluster; reconnecting (the move log keeps the moves)");
                        }
                    }
                    other => log::warn!("ship: NATS: {other}"),
                }
            }
        });
    }
    if let Some(c) = &cfg.creds {
        opts = opts.credentials_file(c).await.map_err(|e| ShipError::File { path: c.clone(), why: format!("[ship] creds: {e}") })?;
    }
    if let Some(k) = &cfg.nkey {
        let seed = std::fs::read_to_string(k).map_err(|e| ShipError::File { path: k.clone(), why: format!("[ship] nkey: {e}") })?;
        opts = opts.nkey(seed.trim().to_string());
    }
    if let Some(ca) = &cfg.tls_ca {
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    let addrs: Vec<async_nats::ServerAddr> =
        cfg.servers.iter().map(|s| s.parse().map_err(|e| err(format!("{s}: {e}")))).collect::<Result<_, _>>()?;
    opts.connect(addrs).await.map_err(|e| err(e.to_string()))
}

/// `base × 2^attempt`, at most `max`.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    base.saturating_mul(1u32 << attempt.min(16)).min(max)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ack {
    Pending,
    Stored,
    Failed,
}

struct InFlight {
    offset: u64,
    recv_ns: u64,
    ack: Ack,
}

struct Part {
    queue: u16,
    reader: PartitionReader,
    /// Read, not yet published.
    pending: Option<Record>,
    /// Published, in offset order, until the front is acknowledged.
    inflight: VecDeque<InFlight>,
    /// Publishes of this partition whose outcome is not known yet.
    outstanding: usize,
    /// A publish failed: publish nothing more until the outstanding ones
    /// are known, then go back.
    failed: bool,
    /// Publish nothing before this (backoff after a failure, or a read error).
    hold_until: Option<Instant>,
    log_end: u64,
    checkpointed: u64,
    /// Where this partition waits for the appliance (the watcher's cell):
    /// the offset of the next record once caught up, else `u64::MAX`.
    wait: Arc<AtomicU64>,
}

impl Part {
    /// First offset not yet known to be in the stream.
    fn shipped(&self) -> u64 {
        match (self.inflight.front(), &self.pending) {
            (Some(f), _) => f.offset,
            (None, Some(r)) => r.offset,
            (None, None) => self.reader.position(),
        }
    }

    fn oldest_unshipped_ns(&self) -> Option<u64> {
        self.inflight.front().map(|f| f.recv_ns).or(self.pending.map(|r| r.recv_unix_ns))
    }
}

/// Housekeeping interval while there is work, and when idle.
const BUSY_TICK: Duration = Duration::from_millis(50);
const IDLE_TICK: Duration = Duration::from_millis(500);

/// What the server answered a publish.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// Stored (or a duplicate) in `stream`.
    Stored { stream: String, duplicate: bool },
    /// The stream refused it (an API error), or no stream takes the subject.
    Refused(String),
    /// No answer within the ack timeout.
    TimedOut,
}

#[derive(serde::Deserialize)]
struct ApiError {
    #[serde(default)]
    code: u32,
    #[serde(default)]
    err_code: u32,
    #[serde(default)]
    description: String,
}

#[derive(serde::Deserialize)]
struct PubAck {
    #[serde(default)]
    stream: String,
    #[serde(default)]
    duplicate: bool,
    #[serde(default)]
    error: Option<ApiError>,
}

/// Decodes the server's answer to a publish (a PubAck, an API error, or a
/// no-responders status).
pub fn answer_of(m: &async_nats::Message) -> Answer {
    if m.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
        return Answer::Refused("no stream takes the subject (no responders)".into());
    }
    match serde_json::from_slice::<PubAck>(&m.payload) {
        Ok(PubAck { error: Some(e), .. }) => Answer::Refused(format!("{} (code {}, err_code {})", e.description, e.code, e.err_code)),
        Ok(a) if !a.stream.is_empty() => Answer::Stored { stream: a.stream, duplicate: a.duplicate },
        _ => Answer::Refused(format!("unexpected answer {:?}", String::from_utf8_lossy(&m.payload))),
    }
}

pub struct Shipper {
    cfg: ShipConfig,
    log_dir: PathBuf,
    status: Arc<Status>,
    ckpt: Checkpoint,
    parts: Vec<Part>,
    outstanding: usize,
    failures: u32,
    last_warn: Option<Instant>,
    /// Publish number → (partition queue, offset), while its answer is awaited.
    awaiting: HashMap<u64, (u16, u64, u16)>,
    /// The stream of each partition (of `[ship] partitions`).
    streams: Vec<String>,
    /// Publish numbers in send order, with their deadlines.
    deadlines: VecDeque<(u64, Instant)>,
    next_publish: u64,
    inbox: String,
    /// Wakes the loop when the appliance publishes a record.
    wake: Arc<crate::wake::Shared>,
    /// Writes checkpoints off the loop.
    ckpt_writer: CheckpointWriter,
}

type Written = Result<std::collections::BTreeMap<u16, u64>, ()>;

#[derive(Default)]
struct WriterState {
    /// The newest checkpoint not yet written (an older one is replaced).
    pending: Option<Checkpoint>,
    busy: bool,
    result: Option<Written>,
    stop: bool,
}

/// A thread that writes checkpoints (temp file, fsync, rename, fsync of
/// the directory), newest first: the loop posts and goes on.
struct CheckpointWriter {
    shared: Arc<(std::sync::Mutex<WriterState>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CheckpointWriter {
    fn start(path: PathBuf, status: Arc<Status>) -> CheckpointWriter {
        let shared = Arc::new((std::sync::Mutex::new(WriterState::default()), std::sync::Condvar::new()));
        let sh = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("ship-ckpt".into())
            .spawn(move || {
                let (m, cv) = &*sh;
                let mut last_warn: Option<Instant> = None;
                loop {
                    let mut ck = {
                        let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
                        loop {
                            if let Some(c) = st.pending.take() {
                                st.busy = true;
                                break c;
                            }
                            if st.stop {
                                return;
                            }
                            st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
                        }
                    };
                    let r = ck.store(&path, unix_ns());
                    let written = match r {
                        Ok(()) => {
                            status.checkpoints.fetch_add(1, Relaxed);
                            Ok(ck.positions.clone())
                        }
                        Err(e) => {
                            status.checkpoint_errors.fetch_add(1, Relaxed);
                            if last_warn.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                                log::warn!("ship: {e}");
                                last_warn = Some(Instant::now());
                            }
                            status.set_error(e.to_string());
                            Err(())
                        }
                    };
                    let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
                    st.busy = false;
                    st.result = Some(written);
                    cv.notify_all();
                }
            })
            .expect("spawning the checkpoint writer");
        CheckpointWriter { shared, thread: Some(thread) }
    }

    fn post(&self, ck: Checkpoint) {
        let (m, cv) = &*self.shared;
        m.lock().unwrap_or_else(|p| p.into_inner()).pending = Some(ck);
        cv.notify_all();
    }

    fn take_result(&self) -> Option<Written> {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner()).result.take()
    }

    /// Waits until nothing is being written or waits to be (before a write
    /// of the loop's own, so an older checkpoint never lands after it).
    fn wait_idle(&self) {
        let (m, cv) = &*self.shared;
        let mut st = m.lock().unwrap_or_else(|p| p.into_inner());
        st.pending = None;
        while st.busy {
            st = cv.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for CheckpointWriter {
    fn drop(&mut self) {
        self.shared.0.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        self.shared.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Shipper {
    /// Loads the checkpoint and checks it against the log.
    ///
    /// The log's end counts what recovery set aside (its offsets are never
    /// reused), so a checkpoint is past it only when records the shipper
    /// already published were lost from the log afterwards: read from the
    /// page cache, then gone in a power cut before their sync (`sync =
    /// none` or `interval`), or the log was removed. The appliance then
    /// writes new moves at those offsets, so shipping resumes at the log's
    /// end, not at the checkpoint: nothing new is skipped, and what was
    /// published before is in the stream already (its message ids name the
    /// moves, so one published twice is stored once).
    pub fn new(cfg: ShipConfig, log_dir: &Path, status: Arc<Status>) -> Result<Shipper, ShipError> {
        let mut ckpt = Checkpoint::load(&cfg.checkpoint, &cfg.host_id, &cfg.stream)?;
        for (queue, checkpoint) in ckpt.positions.iter_mut() {
            let end = partition_end(log_dir, *queue).map_err(|source| ShipError::Log { dir: log_dir.into(), source })?;
            if *checkpoint > end {
                log::warn!(
                    "ship: move log {}: partition q{queue}: the checkpoint {} says offset {checkpoint}, but the log (set-aside files included) ends at {end}: \
                     the records {end}..{checkpoint} were published, then lost from the log (a power cut before their sync, or the log was removed); \
                     shipping resumes at {end}, where new moves are written",
                    log_dir.display(),
                    cfg.checkpoint.display()
                );
                status.rewinds.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                *checkpoint = end;
            }
        }
        let streams = crate::stream::stream_names(&cfg);
        let ckpt_writer = CheckpointWriter::start(cfg.checkpoint.clone(), Arc::clone(&status));
        let mut s = Shipper {
            ckpt_writer,
            streams,
            cfg,
            log_dir: log_dir.into(),
            status,
            ckpt,
            parts: Vec::new(),
            outstanding: 0,
            failures: 0,
            last_warn: None,
            awaiting: HashMap::new(),
            deadlines: VecDeque::new(),
            next_publish: 0,
            inbox: String::new(),
            wake: Arc::new(crate::wake::Shared::default()),
        };
        s.discover();
        Ok(s)
    }

    /// Where each partition resumes (from the checkpoint).
    pub fn resume_positions(&self) -> Vec<(u16, u64)> {
        self.parts.iter().map(|p| (p.queue, p.reader.position())).collect()
    }

    /// Picks up partitions that appeared in the log.
    fn discover(&mut self) {
        let qs = match partitions(&self.log_dir) {
            Ok(q) => q,
            Err(e) => {
                self.warn(format!("{e}"));
                return;
            }
        };
        for q in qs {
            if self.parts.iter().any(|p| p.queue == q) {
                continue;
            }
            let from = self.ckpt.position(q);
            log::info!("ship: partition q{q} from offset {from}");
            self.parts.push(Part {
                queue: q,
                reader: PartitionReader::open(&self.log_dir, q, from),
                pending: None,
                inflight: VecDeque::new(),
                outstanding: 0,
                failed: false,
                hold_until: None,
                log_end: partition_end(&self.log_dir, q).unwrap_or(from),
                checkpointed: from,
                wait: self.wake.cell(q),
            });
        }
        self.parts.sort_by_key(|p| p.queue);
    }

    /// Logs at most one warning a second (the counters have the rest).
    fn warn(&mut self, msg: String) {
        let now = Instant::now();
        if self.last_warn.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(1)) {
            log::warn!("ship: {msg}");
            self.last_warn = Some(now);
        }
        self.status.set_error(msg);
    }

    /// The next record of partition `i`, `None` at the end of the log (or
    /// after a read error, retried a second later).
    fn next_record(&mut self, i: usize) -> Option<Record> {
        if let Some(r) = self.parts[i].pending.take() {
            return Some(r);
        }
        for _ in 0..1024 {
            match self.parts[i].reader.next() {
                Ok(r) => return r,
                Err(e) if !e.is_fatal() => {
                    // damage or a gap: reported, counted, stepped over
                    match e {
                        ReadError::Gap { .. } => self.status.log_gaps.fetch_add(1, Relaxed),
                        _ => self.status.log_damage.fetch_add(1, Relaxed),
                    };
                    log::error!("ship: {e}");
                    self.status.set_error(e.to_string());
                }
                Err(e) => {
                    self.warn(format!("{e}; retrying in 1 s"));
                    self.parts[i].hold_until = Some(Instant::now() + Duration::from_secs(1));
                    return None;
                }
            }
        }
        None
    }

    /// Publishes records while the window has room; true if any was sent.
    async fn fill(&mut self, client: &async_nats::Client) -> bool {
        let mut any = false;
        // while disconnected nothing is queued: the client's queue would
        // fill and block the loop (and its timeouts and stats) until the
        // cluster is back; the log keeps the records meanwhile
        if client.connection_state() != async_nats::connection::State::Connected {
            // but the first record waiting is read: its age is the lag
            for i in 0..self.parts.len() {
                if self.parts[i].pending.is_none() && self.parts[i].inflight.is_empty() && self.parts[i].hold_until.is_none() {
                    self.parts[i].pending = self.next_record(i);
                }
            }
            return false;
        }
        let now = Instant::now();
        let n = self.parts.len();
        for i in 0..n {
            if self.parts[i].hold_until.is_some_and(|t| t > now) {
                continue;
            }
            self.parts[i].hold_until = None;
            while !self.parts[i].failed && self.outstanding < self.cfg.in_flight {
                let Some(r) = self.next_record(i) else { break };
                let id = message::msg_id(&r.mv);
                let mut h = async_nats::HeaderMap::new();
                h.insert(async_nats::header::NATS_MESSAGE_ID, id.as_str());
                h.insert(message::HOST_HEADER, self.cfg.host_id.as_str());
                h.insert(message::QUEUE_HEADER, r.queue.to_string().as_str());
                h.insert(message::OFFSET_HEADER, r.offset.to_string().as_str());
                let payload = bytes::Bytes::copy_from_slice(&message::payload(&r));
                let subject = message::subject(&self.cfg.subject_prefix, self.cfg.partitions, &r.mv);
                let stream_of = message::partition_of(self.cfg.partitions, &r.mv);
                let num = self.next_publish;
                let reply = format!("{}.{num}", self.inbox);
                let queued = tokio::time::timeout(self.cfg.ack_timeout, client.publish_with_reply_and_headers(subject, reply, h, payload))
                    .await
                    .unwrap_or_else(|_| Err(async_nats::client::PublishError::new(async_nats::client::PublishErrorKind::Send)));
                match queued {
                    Ok(()) => {
                        self.next_publish += 1;
                        let p = &mut self.parts[i];
                        p.inflight.push_back(InFlight { offset: r.offset, recv_ns: r.recv_unix_ns, ack: Ack::Pending });
                        p.outstanding += 1;
                        self.outstanding += 1;
                        self.awaiting.insert(num, (p.queue, r.offset, stream_of));
                        self.deadlines.push_back((num, Instant::now() + self.cfg.ack_timeout));
                        self.status.sent.fetch_add(1, Relaxed);
                        let read = unix_ns().saturating_sub(r.recv_unix_ns) / 1000;
                        let _ = self.status.read_lag_us.lock().unwrap_or_else(|p| p.into_inner()).record(read.max(1));
                        any = true;
                    }
                    Err(e) => {
                        // not even queued (the client is closing, or the
                        // message is too large for the server)
                        self.parts[i].pending = Some(r);
                        self.status.errors.fetch_add(1, Relaxed);
                        self.warn(format!("publish of q{}:{} ({id}): {e}", self.parts[i].queue, r.offset));
                        self.fail(i);
                        break;
                    }
                }
            }
        }
        any
    }

    /// Tells the watcher where each partition waits: at its reader's
    /// position once it read everything, nowhere while it has records to
    /// publish or is held back.
    fn set_waits(&self) {
        for p in &self.parts {
            let at = if p.pending.is_none() && !p.failed && p.hold_until.is_none() { p.reader.position() } else { u64::MAX };
            p.wait.store(at, Release);
        }
    }

    /// An answer on the inbox subscription.
    fn answered(&mut self, m: &async_nats::Message) {
        let Some(num) = m.subject.rsplit('.').next().and_then(|t| t.parse::<u64>().ok()) else { return };
        // a late answer to a publish already timed out is ignored: the
        // record is published again and the stream says duplicate
        let Some((q, off, sp)) = self.awaiting.remove(&num) else { return };
        self.done(q, off, sp, answer_of(m));
    }

    /// Fails the publishes whose answer is overdue.
    fn expire(&mut self, now: Instant) {
        while let Some(&(num, deadline)) = self.deadlines.front() {
            if !self.awaiting.contains_key(&num) {
                self.deadlines.pop_front();
                continue;
            }
            if deadline > now {
                break;
            }
            self.deadlines.pop_front();
            if let Some((q, off, sp)) = self.awaiting.remove(&num) {
                self.done(q, off, sp, Answer::TimedOut);
            }
        }
    }

    /// Partition `i` had a failure: go back once its outstanding publishes
    /// are known.
    fn fail(&mut self, i: usize) {
        self.parts[i].failed = true;
        self.maybe_rewind(i);
    }

    fn maybe_rewind(&mut self, i: usize) {
        let p = &mut self.parts[i];
        if !p.failed || p.outstanding > 0 {
            return;
        }
        let from = p.shipped();
        p.reader = PartitionReader::open(&self.log_dir, p.queue, from);
        p.inflight.clear();
        p.pending = None;
        p.failed = false;
        let wait = backoff(self.failures, Duration::from_millis(100), Duration::from_secs(5));
        p.hold_until = Some(Instant::now() + wait);
        self.failures = self.failures.saturating_add(1);
        self.status.retries.fetch_add(1, Relaxed);
        log::debug!("ship: q{} goes back to offset {from} in {wait:?}", p.queue);
        // read the first record now: its age is the lag while waiting
        self.parts[i].pending = self.next_record(i);
    }

    fn done(&mut self, q: u16, off: u64, sp: u16, answer: Answer) {
        let want = &self.streams[usize::from(sp)];
        let Some(i) = self.parts.iter().position(|p| p.queue == q) else { return };
        self.outstanding -= 1;
        self.parts[i].outstanding -= 1;
        let idx = self.parts[i].inflight.binary_search_by_key(&off, |f| f.offset).ok();
        match answer {
            Answer::Stored { stream, duplicate } if stream == *want => {
                self.status.acked.fetch_add(1, Relaxed);
                if duplicate {
                    self.status.duplicates.fetch_add(1, Relaxed);
                }
                self.failures = 0;
                if let Some(k) = idx {
                    let f = &mut self.parts[i].inflight[k];
                    f.ack = Ack::Stored;
                    let lag = unix_ns().saturating_sub(f.recv_ns) / 1000;
                    let _ = self.status.lag_us.lock().unwrap_or_else(|p| p.into_inner()).record(lag.max(1));
                }
            }
            Answer::Stored { stream, .. } => {
                // another stream captured the subject: stored, but not where
                // the game servers read
                self.status.rejected.fetch_add(1, Relaxed);
                self.warn(format!(
                    "q{q}:{off}: stored in stream {stream:?}, not {want:?}: another stream's subjects overlap {}; not moving on",
                    crate::stream::subjects(&self.cfg, sp)
                ));
                self.mark_failed(i, idx);
            }
            Answer::Refused(why) => {
                self.status.rejected.fetch_add(1, Relaxed);
                let hint = if why.contains("no responders") {
                    " (create the stream with `ironhoard ship --ensure-stream`; during a leader election this passes)".to_string()
                } else {
                    String::new()
                };
                self.warn(format!("publish of q{q}:{off} to stream {want}: refused: {why}{hint}; going back to the first unacknowledged record"));
                self.mark_failed(i, idx);
            }
            Answer::TimedOut => {
                self.status.errors.fetch_add(1, Relaxed);
                self.warn(format!(
                    "publish of q{q}:{off} to stream {want}: no PubAck within {:?}; going back to the first unacknowledged record",
                    self.cfg.ack_timeout
                ));
                self.mark_failed(i, idx);
            }
        }
        let p = &mut self.parts[i];
        while p.inflight.front().is_some_and(|f| f.ack == Ack::Stored) {
            p.inflight.pop_front();
        }
        self.maybe_rewind(i);
    }

    fn mark_failed(&mut self, i: usize, idx: Option<usize>) {
        if let Some(k) = idx {
            self.parts[i].inflight[k].ack = Ack::Failed;
        }
        self.parts[i].failed = true;
    }

    /// Writes the checkpoint if a partition moved: handed to the writer
    /// thread (`background`: a write and two fsyncs take milliseconds, which
    /// the publishing loop must not stall for), or written here (at stop).
    fn checkpoint(&mut self, background: bool) {
        if !background {
            // what the writer has in hand lands first (or is superseded)
            self.ckpt_writer.wait_idle();
        }
        // the writer's outcome since the last call
        if let Some(written) = self.ckpt_writer.take_result() {
            match written {
                Ok(positions) => {
                    for p in &mut self.parts {
                        if let Some(&o) = positions.get(&p.queue) {
                            p.checkpointed = o;
                        }
                    }
                }
                // the positions stay in memory; the next write retries
                Err(()) => self.ckpt.positions.clear(),
            }
        }
        let mut moved = false;
        for p in &self.parts {
            let s = p.shipped();
            if self.ckpt.position(p.queue) != s || !self.ckpt.positions.contains_key(&p.queue) {
                self.ckpt.positions.insert(p.queue, s);
                moved = true;
            }
        }
        // at stop, also what was posted but not (yet) known written
        moved |= !background && self.parts.iter().any(|p| p.checkpointed != self.ckpt.position(p.queue));
        if !moved {
            return;
        }
        if background {
            self.ckpt_writer.post(self.ckpt.clone());
            return;
        }
        match self.ckpt.store(&self.cfg.checkpoint, unix_ns()) {
            Ok(()) => {
                self.status.checkpoints.fetch_add(1, Relaxed);
                for p in &mut self.parts {
                    p.checkpointed = self.ckpt.position(p.queue);
                }
            }
            Err(e) => {
                self.status.checkpoint_errors.fetch_add(1, Relaxed);
                self.ckpt.positions.clear();
                self.warn(e.to_string());
            }
        }
    }

    fn refresh_ends(&mut self) {
        for p in &mut self.parts {
            if let Ok(e) = partition_end(&self.log_dir, p.queue) {
                p.log_end = e;
            }
        }
    }

    fn publish_status(&self) {
        let v = self
            .parts
            .iter()
            .map(|p| {
                let shipped = p.shipped();
                PartitionStatus {
                    queue: p.queue,
                    shipped,
                    checkpointed: p.checkpointed,
                    // the end is sampled each second; what was read is there too
                    log_end: p.log_end.max(shipped),
                    oldest_unshipped_ns: p.oldest_unshipped_ns(),
                    in_flight: p.outstanding as u64,
                }
            })
            .collect();
        *self.status.partitions.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    /// Ships until `stop` is set, then waits up to one ack timeout for the
    /// outstanding PubAcks and writes the checkpoint a last time.
    pub async fn run(mut self, client: async_nats::Client, stop: Arc<AtomicBool>) -> Result<(), ShipError> {
        self.inbox = client.new_inbox();
        let mut acks = client
            .subscribe(format!("{}.*", self.inbox))
            .await
            .map_err(|e| ShipError::Connect { servers: self.cfg.servers.join(","), why: format!("subscribing to PubAcks: {e}") })?;
        // the watcher shares the loop's cells: start it on them
        let watcher = crate::wake::Watcher::start_with(Arc::clone(&self.wake), &self.log_dir, self.cfg.wake_interval, self.cfg.poll_interval)
            .map_err(|e| ShipError::File { path: self.log_dir.clone(), why: format!("starting the wake-up thread: {e}") })?;
        // housekeeping (timeouts, checkpoint, stats) every 50 ms while
        // there is work, every 500 ms when idle: an idle shipper stays asleep
        let mut next_tick = Instant::now() + BUSY_TICK;
        let mut last_work = Instant::now();
        let mut last_ckpt = Instant::now();
        let mut last_end = Instant::now() - Duration::from_secs(10);
        let mut stop_at: Option<Instant> = None;
        self.refresh_ends();
        self.publish_status();
        loop {
            if stop_at.is_none() && stop.load(Relaxed) {
                log::info!("ship: stopping: waiting for {} outstanding PubAck(s)", self.outstanding);
                stop_at = Some(Instant::now() + self.cfg.ack_timeout);
            }
            if let Some(t) = stop_at {
                if self.outstanding == 0 || Instant::now() >= t {
                    break;
                }
            } else {
                if self.fill(&client).await {
                    last_work = Instant::now();
                }
                self.set_waits();
            }
            let window_full = self.outstanding >= self.cfg.in_flight;
            tokio::select! {
                biased;
                Some(m) = acks.next() => {
                    self.answered(&m);
                    // take every answer already here before publishing more
                    while let Some(Some(m)) = acks.next().now_or_never() {
                        self.answered(&m);
                    }
                }
                _ = tokio::time::sleep_until(next_tick.into()) => {
                    let now = Instant::now();
                    let busy = self.outstanding > 0
                        || now.duration_since(last_work) < Duration::from_secs(1)
                        || self.parts.iter().any(|p| p.hold_until.is_some() || p.failed);
                    next_tick = now + if busy { BUSY_TICK } else { IDLE_TICK };
                    self.expire(now);
                    if now.duration_since(last_ckpt) >= self.cfg.checkpoint_interval {
                        self.checkpoint(true);
                        last_ckpt = now;
                    }
                    if now.duration_since(last_end) >= Duration::from_secs(1) {
                        self.discover();
                        self.refresh_ends();
                        last_end = now;
                    }
                    self.publish_status();
                }
                _ = self.wake.notify.notified(), if !window_full && stop_at.is_none() => {}
            }
        }
        drop(watcher);
        let left = self.outstanding;
        self.checkpoint(false);
        self.refresh_ends();
        self.publish_status();
        let pos: Vec<String> = self.parts.iter().map(|p| format!("q{}:{}", p.queue, p.shipped())).collect();
        log::info!(
            "ship: stopped: {} published ({} duplicates), checkpoint {}{}",
            self.status.acked.load(Relaxed),
            self.status.duplicates.load(Relaxed),
            pos.join(" "),
            if left > 0 { format!("; {left} PubAck(s) never came: those records are published again at the next start") } else { String::new() }
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhoard_movelog::{open_log, Accepted, LogConfig, SyncPolicy, HEADER_LEN, RECORD_LEN};

    fn cfg(dir: &Path) -> ShipConfig {
        ShipConfig {
            servers: vec!["nats://127.0.0.1:4222".into()],
            stream: "MOVES".into(),
            subject_prefix: "moves".into(),
            host_id: "edge-1".into(),
            checkpoint: dir.join("ship.checkpoint"),
            creds: None,
            nkey: None,
            tls_ca: None,
            in_flight: 16,
            ack_timeout: Duration::from_secs(1),
            checkpoint_interval: Duration::from_secs(1),
            wake_interval: Duration::from_micros(200),
            poll_interval: Duration::from_millis(10),
            partitions: 1,
            replicas: 1,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(3600),
            core: None,
            stats_socket: dir.join("ship.sock"),
            prometheus_listen: None,
        }
    }

    /// 30 records in segments of 10, every one shipped (checkpoint 30).
    fn shipped_log(tag: &str) -> (PathBuf, ShipConfig) {
        let d = std::env::temp_dir().join(format!("ih-ship-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let log = d.join("log");
        let lc = LogConfig { dir: log.clone(), segment_bytes: (HEADER_LEN + 10 * RECORD_LEN) as u64, sync: SyncPolicy::EveryBatch };
        let (mut parts, mut keeper, shared, _) = open_log(&lc, &[0], &mut |_| {}).unwrap();
        for i in 0..30u64 {
            let mut mv = [1u8; 64];
            mv[..8].copy_from_slice(&i.to_be_bytes());
            while !parts[0].append(&Accepted { recv_unix_ns: i, queue: 0, mv }) {
                keeper.prime();
            }
            parts[0].commit();
        }
        parts.clear();
        shared.request_stop();
        keeper.run();
        let c = cfg(&d);
        let mut ck = Checkpoint::new(&c.host_id, &c.stream);
        ck.positions.insert(0, 30);
        ck.store(&c.checkpoint, 1).unwrap();
        (d, c)
    }

    #[test]
    fn a_newest_segment_cut_at_start_leaves_the_checkpoint_valid() {
        let (d, c) = shipped_log("aside");
        // damage early in the newest segment (offsets 20..30): recovery keeps
        // offset 20 in place and copies 21..30 aside
        let seg = d.join("log/q0").join(ironhoard_movelog::segment_name(20));
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[0xEE], (HEADER_LEN + RECORD_LEN + 5) as u64).unwrap();
        let lc = LogConfig { dir: d.join("log"), segment_bytes: (HEADER_LEN + 10 * RECORD_LEN) as u64, sync: SyncPolicy::None };
        let (parts, keeper, shared, rec) = open_log(&lc, &[0], &mut |_| {}).unwrap();
        assert!(rec[0].1.damage.iter().any(|x| x.set_aside.is_some()), "{:?}", rec[0].1);
        drop(parts);
        shared.request_stop();
        keeper.run();
        let status = Arc::new(Status::new(&c.host_id, &c.stream));
        let s = Shipper::new(c, &d.join("log"), Arc::clone(&status)).unwrap_or_else(|e| panic!("the shipper refused: {e}"));
        assert_eq!(s.resume_positions(), vec![(0, 30)], "the set-aside records still count: nothing to rewind");
        assert_eq!(status.rewinds.load(Relaxed), 0);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_checkpoint_past_a_log_that_lost_records_resumes_at_the_end() {
        let (d, c) = shipped_log("lost");
        // a power cut took the newest segment's records (zero pages) after
        // the shipper had published them
        let seg = d.join("log/q0").join(ironhoard_movelog::segment_name(20));
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 10 * RECORD_LEN], HEADER_LEN as u64).unwrap();
        let status = Arc::new(Status::new(&c.host_id, &c.stream));
        let s = Shipper::new(c, &d.join("log"), Arc::clone(&status)).unwrap_or_else(|e| panic!("the shipper refused: {e}"));
        assert_eq!(s.resume_positions(), vec![(0, 20)], "new moves are written from 20 on: shipped from there");
        assert_eq!(status.rewinds.load(Relaxed), 1);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
