//! `ironhoard capture`: what the AF_XDP pollers received (and, with
//! `--acks`, sent), as a pcap.
//!
//! Server side ([`serve`]): the stats socket's `capture {json options}`
//! command. The connection outlives the socket's 2 s limit: the server
//! installs a ring in each selected worker (ironhoard_dataplane::capture),
//! answers one JSON line, then streams frames (below) until the client
//! half-closes or goes away, the count or duration is reached; then it
//! removes the rings (also when the connection breaks: a guard does it)
//! and sends an end frame with the totals. At most one capture at a time.
//!
//! Stream framing after the JSON line, all integers big-endian:
//! - `J` u32 len, JSON: progress (`skipped` per queue), or the end
//!   (`"end": true`, `reason`, `written`, `skipped`);
//! - `R` u16 queue, u8 kind (0 move, 1 ack), u8 status (0xff none),
//!   u64 Unix time ns, u16 frame length, u16 bytes kept, the bytes.
//!
//! Client side ([`run_client`]): sends the options, writes the records to
//! a pcap (Ethernet, nanosecond timestamps), and prints a one-line JSON
//! summary.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ironhoard_dataplane::capture::{CaptureRing, Record, RecordKind, DEFAULT_RING};
use ironhoard_dataplane::WorkerShared;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::stats::{Running, StatsSource};

/// What the client asks for.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// Only this queue's poller (all otherwise).
    #[serde(default)]
    pub queue: Option<u32>,
    /// Stop after this many frames.
    #[serde(default)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[serde(default)]
    pub duration: Option<f64>,
    /// Keep only moves whose ack had this status (and those acks).
    #[serde(default)]
    pub status: Option<u8>,
    /// Also the acks sent.
    #[serde(default)]
    pub acks: bool,
    /// Records per poller ring.
    #[serde(default)]
    pub ring: Option<usize>,
    /// Who asks (named to a second capture): the client's pid and file.
    #[serde(default)]
    pub pid: u32,
    #[serde(default)]
    pub out: String,
}

/// Removes the rings and frees the slot however the capture ends.
struct Session<'a> {
    running: &'a Running,
    workers: Vec<(u32, Arc<WorkerShared>, Arc<CaptureRing>, u64)>,
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        for (_, w, _, _) in &self.workers {
            w.set_capture(None);
        }
        *self.running.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Session<'_> {
    fn skipped(&self) -> BTreeMap<String, u64> {
        self.workers.iter().map(|(q, w, _, base)| (q.to_string(), w.capture_skipped.load(Ordering::Relaxed).saturating_sub(*base))).collect()
    }
}

/// The `capture` command's argument: `capture {json}`.
pub fn command_args(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("capture")?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// Serves one `capture` connection (on the stats socket's thread for it).
pub fn serve(src: &StatsSource, c: &mut UnixStream, args: &str) {
    let reply = |c: &mut UnixStream, v: Value| {
        let _ = c.set_write_timeout(Some(Duration::from_secs(2)));
        let _ = c.write_all(format!("{v}\n").as_bytes());
    };
    let opts: Options = match serde_json::from_str(if args.is_empty() { "{}" } else { args }) {
        Ok(o) => o,
        Err(e) => return reply(c, json!({"error": format!("capture options {args:?}: {e}")})),
    };
    let session = match start(src, &opts) {
        Ok(s) => s,
        Err(e) => return reply(c, json!({"error": e})),
    };
    // the pollers take their rings at their next turn (≤ 10 ms when idle)
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(1) && !session.workers.iter().all(|(_, w, _, _)| w.capture_active.load(Ordering::Acquire)) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let queues: Vec<u32> = session.workers.iter().map(|(q, ..)| *q).collect();
    let active = session.workers.iter().all(|(_, w, _, _)| w.capture_active.load(Ordering::Acquire));
    log::info!("capture started: queues {queues:?}, options {opts:?}");
    reply(c, json!({"ok": true, "queues": queues, "active": active, "ring": session.workers[0].2.capacity()}));
    let (reason, written) = stream(c, &session, &opts);
    let skipped = session.skipped();
    drop(session); // rings removed before the end frame goes out
    log::info!("capture ended ({reason}): {written} frame(s), skipped {skipped:?}");
    let mut buf = Vec::new();
    put_json(&mut buf, &json!({"end": true, "reason": reason, "written": written, "skipped": skipped}));
    let _ = c.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = c.write_all(&buf);
}

/// Installs the rings, or says why not.
fn start<'a>(src: &'a StatsSource, opts: &Options) -> std::result::Result<Session<'a>, String> {
    if src.info.backend != "xdp" {
        return Err(format!("capture needs the xdp backend; this appliance runs the {} backend", src.info.backend));
    }
    if let Some(d) = opts.duration {
        if !(d.is_finite() && d > 0.0) {
            return Err(format!("capture duration {d}: give a positive number of seconds"));
        }
    }
    if opts.status.is_some_and(|s| ironhoard_wire::Status::from_u8(s).is_none()) {
        return Err(format!("capture status {}: no such status", opts.status.unwrap_or_default()));
    }
    let selected: Vec<_> = src.workers.iter().filter(|w| opts.queue.is_none_or(|q| q == w.queue)).collect();
    if selected.is_empty() {
        let served: Vec<u32> = src.workers.iter().map(|w| w.queue).collect();
        return Err(format!("capture queue {}: not served here (queues {served:?})", opts.queue.unwrap_or_default()));
    }
    let ring = opts.ring.unwrap_or(DEFAULT_RING).clamp(64, 1 << 20);
    let mut slot = src.capture.0.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(first) = slot.as_ref() {
        return Err(format!("a capture is already running ({first}); one at a time"));
    }
    *slot = Some(format!(
        "pid {} writing {:?}, queues {:?}, started at unix {}",
        opts.pid,
        opts.out,
        selected.iter().map(|w| w.queue).collect::<Vec<_>>(),
        realtime_ns() / 1_000_000_000
    ));
    drop(slot);
    let workers = selected
        .iter()
        .map(|w| {
            let r = Arc::new(CaptureRing::new(ring, opts.acks, opts.status));
            let base = w.shared.capture_skipped.load(Ordering::Relaxed);
            w.shared.set_capture(Some(Arc::clone(&r)));
            (w.queue, Arc::clone(&w.shared), r, base)
        })
        .collect();
    Ok(Session { running: &src.capture, workers })
}

/// Whether the client half-closed or went away (without blocking).
fn client_done(c: &mut UnixStream) -> bool {
    let mut p = libc::pollfd { fd: c.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd for an open socket we own; timeout 0.
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    if n <= 0 {
        return false;
    }
    if p.revents & (libc::POLLHUP | libc::POLLERR) != 0 {
        return true;
    }
    // readable: EOF (shutdown or gone), or bytes we do not expect (a stop)
    let mut b = [0u8; 64];
    !matches!(c.read(&mut b), Err(ref e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted)
}

/// Streams records until the end; returns why it ended and frames sent.
fn stream(c: &mut UnixStream, s: &Session<'_>, opts: &Options) -> (&'static str, u64) {
    let offset = realtime_ns() as i128 - ironhoard_dataplane::monotonic_ns() as i128;
    let limit = opts.count.unwrap_or(u64::MAX);
    let until = opts.duration.map(|d| Instant::now() + Duration::from_secs_f64(d));
    let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut written = 0u64;
    let mut next_progress = Instant::now() + Duration::from_millis(250);
    loop {
        if client_done(c) {
            return ("client", written);
        }
        let mut got = 0usize;
        for (q, _, ring, _) in &s.workers {
            while written < limit && buf.len() < (1 << 16) - 256 {
                let Some(r) = ring.pop() else { break };
                put_record(&mut buf, *q as u16, &r, (r.mono_ns as i128 + offset).max(0) as u64);
                written += 1;
                got += 1;
            }
        }
        let now = Instant::now();
        let progress = now >= next_progress;
        if progress {
            put_json(&mut buf, &json!({"skipped": s.skipped(), "written": written}));
            next_progress = now + Duration::from_millis(250);
        }
        if !buf.is_empty() {
            if c.write_all(&buf).is_err() {
                return ("client", written);
            }
            buf.clear();
        }
        if written >= limit {
            return ("count", written);
        }
        if until.is_some_and(|u| now >= u) {
            return ("duration", written);
        }
        if got == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn put_json(buf: &mut Vec<u8>, v: &Value) {
    let b = v.to_string();
    buf.push(b'J');
    buf.extend_from_slice(&(b.len() as u32).to_be_bytes());
    buf.extend_from_slice(b.as_bytes());
}

fn put_record(buf: &mut Vec<u8>, queue: u16, r: &Record, unix_ns: u64) {
    let b = r.bytes();
    buf.push(b'R');
    buf.extend_from_slice(&queue.to_be_bytes());
    buf.push(r.kind as u8);
    buf.push(r.status);
    buf.extend_from_slice(&unix_ns.to_be_bytes());
    buf.extend_from_slice(&r.len.to_be_bytes());
    buf.extend_from_slice(&(b.len() as u16).to_be_bytes());
    buf.extend_from_slice(b);
}

/// One decoded stream frame (a record borrows the bytes it was read from).
#[derive(Debug, PartialEq)]
pub enum Frame<'a> {
    Json(Value),
    Record { queue: u16, kind: RecordKind, status: u8, unix_ns: u64, len: u16, bytes: &'a [u8] },
}

/// The whole frame at the front of `buf`, if there is one, and its size.
pub fn parse_frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>> {
    let Some(&t) = buf.first() else { return Ok(None) };
    match t {
        b'J' => {
            if buf.len() < 5 {
                return Ok(None);
            }
            let n = u32::from_be_bytes(buf[1..5].try_into().expect("4 bytes")) as usize;
            if n > 1 << 20 {
                bail!("capture stream: a JSON frame of {n} bytes");
            }
            if buf.len() < 5 + n {
                return Ok(None);
            }
            let v = serde_json::from_slice(&buf[5..5 + n]).context("capture stream: bad JSON frame")?;
            Ok(Some((Frame::Json(v), 5 + n)))
        }
        b'R' => {
            const H: usize = 1 + 2 + 1 + 1 + 8 + 2 + 2;
            if buf.len() < H {
                return Ok(None);
            }
            let cap = u16::from_be_bytes([buf[15], buf[16]]) as usize;
            if buf.len() < H + cap {
                return Ok(None);
            }
            let kind = RecordKind::from_u8(buf[3]).with_context(|| format!("capture stream: record kind {}", buf[3]))?;
            let f = Frame::Record {
                queue: u16::from_be_bytes([buf[1], buf[2]]),
                kind,
                status: buf[4],
                unix_ns: u64::from_be_bytes(buf[5..13].try_into().expect("8 bytes")),
                len: u16::from_be_bytes([buf[13], buf[14]]),
                bytes: &buf[H..H + cap],
            };
            Ok(Some((f, H + cap)))
        }
        other => bail!("capture stream: unknown frame type {other:#04x}"),
    }
}

/// Classic pcap, Ethernet link type, nanosecond timestamps (magic
/// 0xa1b23c4d): tshark, tcpdump and `ironhoard-pktgen --replay` read it.
pub struct PcapWriter<W: Write> {
    out: W,
}

pub const PCAP_MAGIC_NS: u32 = 0xa1b2_3c4d;
pub const LINKTYPE_ETHERNET: u32 = 1;

impl PcapWriter<BufWriter<File>> {
    pub fn create(path: &Path) -> Result<Self> {
        let f = File::create(path).with_context(|| format!("creating pcap {}", path.display()))?;
        PcapWriter::new(BufWriter::with_capacity(1 << 16, f)).with_context(|| format!("writing pcap {}", path.display()))
    }
}

impl<W: Write> PcapWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&PCAP_MAGIC_NS.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapWriter { out })
    }

    /// A frame of `orig_len` bytes on the wire, of which `bytes` were kept.
    pub fn write(&mut self, unix_ns: u64, bytes: &[u8], orig_len: usize) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((unix_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((unix_ns % 1_000_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(orig_len.max(bytes.len()) as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(bytes)
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// `ironhoard capture`: asks the appliance at `socket`, writes `out`,
/// returns the summary it prints.
pub fn run_client(socket: &Path, mut opts: Options, out: &Path) -> Result<Value> {
    opts.pid = std::process::id();
    opts.out = out.display().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    // the file first: a path we cannot write fails before anything starts
    let mut w = PcapWriter::create(out)?;
    let (mut c, head, buf) = request(socket, &opts)?;
    if let Some(e) = head.get("error") {
        drop(w);
        let _ = std::fs::remove_file(out);
        bail!("capture refused by {}: {}", socket.display(), e.as_str().unwrap_or("error"));
    }
    if head["active"] == false {
        eprintln!("ironhoard capture: warning: not every poller took its ring within 1 s (a stopped worker?)");
    }
    eprintln!("ironhoard capture: capturing on queue(s) {} into {} (Ctrl-C to stop)", head["queues"], out.display());
    c.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut t = Tally::default();
    for q in head["queues"].as_array().into_iter().flatten() {
        t.per_queue.insert(q.to_string(), 0);
    }
    receive(&mut c, buf, &opts, &stop, &mut t, &mut w, out)?;
    w.finish().with_context(|| format!("writing pcap {}", out.display()))?;
    if stop.load(Ordering::Relaxed) && t.ended && t.reason == "client" {
        t.reason = "interrupted".into();
    } else if t.frames >= opts.count.unwrap_or(u64::MAX) && t.reason == "client" {
        t.reason = "count".into();
    }
    if !t.ended {
        eprintln!("ironhoard capture: the appliance closed the capture without its end frame ({}); the file holds what arrived", t.reason);
    }
    Ok(t.summary(out))
}

/// Connects, sends the `capture` command, and reads the appliance's JSON
/// answer line: the connection, the answer, and what came after it.
fn request(socket: &Path, opts: &Options) -> Result<(UnixStream, Value, Vec<u8>)> {
    let mut c = crate::client::connect(socket)?;
    c.set_write_timeout(Some(Duration::from_secs(5)))?;
    writeln!(c, "capture {}", serde_json::to_string(opts)?).with_context(|| format!("stats socket {}", socket.display()))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut buf = Vec::with_capacity(1 << 16);
    let mut chunk = vec![0u8; 1 << 16];
    let nl = loop {
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            break i;
        }
        let n = c.read(&mut chunk).with_context(|| format!("reading from stats socket {}", socket.display()))?;
        if n == 0 {
            bail!("stats socket {}: closed before answering the capture (an appliance without `capture`?)", socket.display());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head: Value = serde_json::from_slice(&buf[..nl])
        .with_context(|| format!("stats socket {} answered {:?}", socket.display(), String::from_utf8_lossy(&buf[..nl])))?;
    buf.drain(..=nl);
    Ok((c, head, buf))
}

/// What a capture client received.
struct Tally {
    frames: u64,
    moves: u64,
    acks: u64,
    /// Frames written per queue.
    per_queue: BTreeMap<String, u64>,
    /// Records each queue's ring had no room for (the server's count).
    skipped: BTreeMap<String, u64>,
    reason: String,
    /// The server's end frame arrived.
    ended: bool,
}

impl Default for Tally {
    fn default() -> Tally {
        Tally {
            frames: 0,
            moves: 0,
            acks: 0,
            per_queue: BTreeMap::new(),
            skipped: BTreeMap::new(),
            reason: "closed".into(),
            ended: false,
        }
    }
}

impl Tally {
    fn summary(&self, out: &Path) -> Value {
        let queues: serde_json::Map<String, Value> = self
            .per_queue
            .iter()
            .map(|(q, n)| (q.clone(), json!({"frames": n, "skipped": self.skipped.get(q).copied().unwrap_or(0)})))
            .collect();
        json!({
            "frames": self.frames,
            "moves": self.moves,
            "acks": self.acks,
            "skipped": self.skipped.values().sum::<u64>(),
            "queues": queues,
            "file": out.display().to_string(),
            "reason": self.reason,
            "complete": self.ended,
        })
    }
}

/// Reads the capture stream until its end frame (or the connection's end),
/// writing each selected record to `w` (the file `out`). A signal, `--count` or
/// `--duration` half-closes the connection: the server then ends the
/// capture and sends its totals (5 s at most).
fn receive(
    c: &mut UnixStream,
    mut buf: Vec<u8>,
    opts: &Options,
    stop: &AtomicBool,
    t: &mut Tally,
    w: &mut PcapWriter<impl Write>,
    out: &Path,
) -> Result<()> {
    let limit = opts.count.unwrap_or(u64::MAX);
    let until = opts.duration.map(|d| Instant::now() + Duration::from_secs_f64(d) + Duration::from_secs(1));
    let mut chunk = vec![0u8; 1 << 16];
    let mut stop_sent: Option<Instant> = None;
    loop {
        let mut pos = 0;
        while let Some((f, used)) = parse_frame(&buf[pos..])? {
            pos += used;
            match f {
                Frame::Record { queue, kind, status, unix_ns, len, bytes } => {
                    if t.frames >= limit || opts.status.is_some_and(|s| s != status) {
                        continue;
                    }
                    w.write(unix_ns, bytes, len as usize).with_context(|| format!("writing pcap {}", out.display()))?;
                    t.frames += 1;
                    *t.per_queue.entry(queue.to_string()).or_default() += 1;
                    match kind {
                        RecordKind::Move => t.moves += 1,
                        RecordKind::Ack => t.acks += 1,
                    }
                }
                Frame::Json(v) => {
                    if let Some(m) = v["skipped"].as_object() {
                        t.skipped = m.iter().map(|(k, n)| (k.clone(), n.as_u64().unwrap_or(0))).collect();
                    }
                    if v["end"] == true {
                        t.reason = v["reason"].as_str().unwrap_or("?").to_string();
                        t.ended = true;
                        return Ok(());
                    }
                }
            }
        }
        buf.drain(..pos);
        let want_stop = stop.load(Ordering::Relaxed) || t.frames >= limit || until.is_some_and(|u| Instant::now() >= u);
        if want_stop && stop_sent.is_none() {
            // half-close: the server ends the capture and sends its totals
            let _ = c.shutdown(std::net::Shutdown::Write);
            stop_sent = Some(Instant::now());
        }
        if stop_sent.is_some_and(|t| t.elapsed() > Duration::from_secs(5)) {
            t.reason = "no end frame within 5 s of the stop".into();
            return Ok(());
        }
        match c.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted) => {}
            Err(e) => {
                t.reason = format!("stats socket: {e}");
                return Ok(());
            }
        }
    }
}

/// `--out` must name a file (checked before connecting).
pub fn check_out(out: &Path) -> Result<PathBuf> {
    if out.as_os_str().is_empty() || out.is_dir() {
        bail!("--out {}: give a file name (FILE.pcap)", out.display());
    }
    Ok(out.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhoard_dataplane::capture::NO_STATUS;

    #[test]
    fn stream_frames_round_trip_also_split_anywhere() {
        let mut enc = Vec::new();
        let frame: Vec<u8> = (0..106u8).collect();
        let r = Record::new(RecordKind::Move, 1, 5, &frame);
        put_record(&mut enc, 3, &r, 1_700_000_000_123_456_789);
        put_json(&mut enc, &json!({"skipped": {"3": 2}}));
        let a = Record::new(RecordKind::Ack, NO_STATUS, 5, &[7u8; 90]);
        put_record(&mut enc, 0, &a, 9);
        let want = [
            format!("{:?}", Frame::Record { queue: 3, kind: RecordKind::Move, status: 1, unix_ns: 1_700_000_000_123_456_789, len: 106, bytes: &frame }),
            format!("{:?}", Frame::Json(json!({"skipped": {"3": 2}}))),
            format!("{:?}", Frame::Record { queue: 0, kind: RecordKind::Ack, status: NO_STATUS, unix_ns: 9, len: 90, bytes: &[7u8; 90] }),
        ];
        for split in [1, 7, 17, 50, enc.len()] {
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for piece in enc.chunks(split) {
                buf.extend_from_slice(piece);
                let mut pos = 0;
                while let Some((f, used)) = parse_frame(&buf[pos..]).unwrap() {
                    got.push(format!("{f:?}"));
                    pos += used;
                }
                buf.drain(..pos);
            }
            assert_eq!(got, want, "split {split}");
            assert!(buf.is_empty());
        }
        assert!(parse_frame(&[b'X', 0, 0]).is_err());
    }

    #[test]
    fn pcap_header_and_records() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(1_700_000_001_000_000_042, &[1, 2, 3], 3).unwrap();
        w.write(5, &[9; 4], 200).unwrap();
        let b = w.finish().unwrap();
        assert_eq!(b.len(), 24 + 16 + 3 + 16 + 4);
        assert_eq!(&b[0..4], &[0x4d, 0x3c, 0xb2, 0xa1], "nanosecond magic, little-endian");
        assert_eq!(u16::from_le_bytes([b[4], b[5]]), 2);
        assert_eq!(u16::from_le_bytes([b[6], b[7]]), 4);
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), LINKTYPE_ETHERNET);
        let r = &b[24..];
        assert_eq!(u32::from_le_bytes(r[0..4].try_into().unwrap()), 1_700_000_001);
        assert_eq!(u32::from_le_bytes(r[4..8].try_into().unwrap()), 42, "nanoseconds, not microseconds");
        assert_eq!(u32::from_le_bytes(r[8..12].try_into().unwrap()), 3);
        assert_eq!(u32::from_le_bytes(r[12..16].try_into().unwrap()), 3);
        assert_eq!(&r[16..19], &[1, 2, 3]);
        let r2 = &r[19..];
        assert_eq!(u32::from_le_bytes(r2[8..12].try_into().unwrap()), 4, "bytes kept");
        assert_eq!(u32::from_le_bytes(r2[12..16].try_into().unwrap()), 200, "length on the wire");
    }

    #[test]
    fn capture_command_and_options() {
        assert_eq!(command_args("capture {\"count\": 3}"), Some("{\"count\": 3}"));
        assert_eq!(command_args("capture"), Some(""));
        assert_eq!(command_args("captures"), None);
        assert_eq!(command_args("show stats"), None);
        let o: Options = serde_json::from_str(r#"{"queue": 1, "count": 10, "status": 1, "acks": true}"#).unwrap();
        assert_eq!((o.queue, o.count, o.status, o.acks, o.duration), (Some(1), Some(10), Some(1), true, None));
        assert!(serde_json::from_str::<Options>(r#"{"qeue": 1}"#).is_err(), "a misspelt option is refused");
        let back: Options = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
    }
}
