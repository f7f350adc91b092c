//! Serving the control-plane sockets (the stats socket, /metrics) so that
//! no client can hold them: each connection has a thread of its own, at
//! most `max_conns` at once (more are refused at once), and one deadline
//! for the whole exchange — a client trickling a byte a second is cut off
//! when the deadline passes, not kept alive by each byte.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; the next ones are refused.
    pub max_conns: usize,
    /// Time for the whole exchange: request in, answer out.
    pub deadline: Duration,
    /// Request bytes read at most.
    pub max_request: usize,
}

impl Limits {
    pub const CONTROL: Limits = Limits { max_conns: 8, deadline: Duration::from_secs(2), max_request: 8192 };
}

/// A stream with per-operation timeouts (UnixStream, TcpStream).
pub trait Conn: Read + Write + Send + 'static {
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()>;
}

impl Conn for std::os::unix::net::UnixStream {
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }
}

impl Conn for std::net::TcpStream {
    fn set_timeouts(&self, t: Option<Duration>) -> io::Result<()> {
        self.set_read_timeout(t)?;
        self.set_write_timeout(t)
    }
}

/// Reads until `complete(bytes)` says the request is whole, the peer
/// closes, `max` bytes arrived, or `deadline` passes (then `TimedOut`).
pub fn read_request<C: Conn>(c: &mut C, deadline: Instant, max: usize, complete: impl Fn(&[u8]) -> bool) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 1024];
    while !complete(&buf) && buf.len() < max {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "request deadline passed"));
        }
        c.set_timeouts(Some(left))?;
        let want = chunk.len().min(max - buf.len());
        match c.read(&mut chunk[..want]) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

/// Writes `data` before `deadline`.
pub fn write_answer<C: Conn>(c: &mut C, deadline: Instant, data: &[u8]) -> io::Result<()> {
    let mut off = 0;
    while off < data.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "answer deadline passed"));
        }
        c.set_timeouts(Some(left))?;
        match c.write(&data[off..]) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "peer gone")),
            Ok(n) => off += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Accepts from `incoming` forever; each connection goes to `handle` on a
/// thread of its own with its deadline, at most `limits.max_conns` at
/// once; one beyond that gets `busy` (if any) and is closed.
pub fn serve<C: Conn, I: Iterator<Item = io::Result<C>>>(
    name: &'static str,
    incoming: I,
    limits: Limits,
    busy: Option<&'static [u8]>,
    handle: impl Fn(&mut C, Instant) + Send + Sync + 'static,
) {
    let active = Arc::new(AtomicUsize::new(0));
    let handle = Arc::new(handle);
    for conn in incoming {
        let Ok(mut c) = conn else { continue };
        if active.load(Ordering::Acquire) >= limits.max_conns {
            if let Some(b) = busy {
                let _ = write_answer(&mut c, Instant::now() + Duration::from_millis(100), b);
            }
            log::debug!("{name}: {} connections already served; one refused", limits.max_conns);
            continue;
        }
        active.fetch_add(1, Ordering::AcqRel);
        let (active, handle) = (Arc::clone(&active), Arc::clone(&handle));
        let spawned = std::thread::Builder::new().name(format!("ih-{name}")).spawn(move || {
            let deadline = Instant::now() + limits.deadline;
            handle(&mut c, deadline);
            active.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_err() {
            // the closure (and its count) was dropped with the error
            log::warn!("{name}: cannot spawn a connection thread");
        }
    }
}
