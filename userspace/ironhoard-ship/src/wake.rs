//! Waking the shipper when the appliance publishes a record.
//!
//! The appliance's pollers publish, once per batch, the offset their next
//! record gets (`q<N>/head`, [`ironhoard_movelog::head`]): a Release store
//! into a shared mapping, nothing more, so the poller's hot loop does not
//! know the shipper exists. The shipper cannot be woken by a store, so a
//! watcher thread checks each partition's head — one atomic load each, no
//! directory listing, no file opened, no allocation — against the offset
//! the shipper waits at, and wakes the shipper's loop (a
//! [`tokio::sync::Notify`]) when a head moved past it.
//!
//! How often: every `wake_interval` while moves flow (a new record waits at
//! most that long); after a second with none, the interval doubles at each
//! quiet check up to `poll_interval`, which is what an idle shipper costs.
//! Each check is a timer wake-up; on a VM one costs about 15 µs of CPU, so
//! the intervals are the trade between a move's journey time and the
//! shipper's CPU (docs/shipping.md, "A move's journey").
//!
//! A partition without a head (a log written by an older appliance) or a
//! log whose writer is not alive (its heads mean nothing then) is read the
//! old way: the shipper is woken every `poll_interval` to try.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ironhoard_movelog::head::HeadReader;
use ironhoard_movelog::WriterWatch;

/// No news for this long: the interval starts backing off.
pub const QUIET_AFTER: Duration = Duration::from_secs(1);

/// The shipper's side: where each partition waits, and the wake-up.
#[derive(Default)]
pub struct Shared {
    /// Per partition (queue): the offset of the record the shipper waits
    /// for, `u64::MAX` while it does not wait on that partition (it has
    /// records to publish, or is backing off).
    waits: Mutex<Vec<(u16, Arc<AtomicU64>)>>,
    pub notify: tokio::sync::Notify,
    stop: AtomicBool,
    /// Checks made, and wake-ups given (for the stats).
    pub checks: AtomicU64,
    pub wakes: AtomicU64,
}

impl Shared {
    /// The cell the shipper stores partition `queue`'s waiting offset in.
    pub fn cell(&self, queue: u16) -> Arc<AtomicU64> {
        let mut w = self.waits.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = w.iter().find(|(q, _)| *q == queue) {
            return Arc::clone(c);
        }
        let c = Arc::new(AtomicU64::new(u64::MAX));
        w.push((queue, Arc::clone(&c)));
        c
    }

    fn snapshot(&self) -> Vec<(u16, Arc<AtomicU64>)> {
        self.waits.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The watcher thread; stopped and joined on drop.
pub struct Watcher {
    pub shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    pub fn start(log_dir: &Path, wake: Duration, idle: Duration) -> std::io::Result<Watcher> {
        Watcher::start_with(Arc::new(Shared::default()), log_dir, wake, idle)
    }

    /// Starts watching on cells the shipper already holds.
    pub fn start_with(shared: Arc<Shared>, log_dir: &Path, wake: Duration, idle: Duration) -> std::io::Result<Watcher> {
        let s = Arc::clone(&shared);
        let dir: PathBuf = log_dir.into();
        let thread = std::thread::Builder::new().name("ship-wake".into()).spawn(move || watch(&dir, &s, wake, idle.max(wake)))?;
        Ok(Watcher { shared, thread: Some(thread) })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The interval after a check: `wake` on news, else unchanged until
/// [`QUIET_AFTER`] without news, then doubling up to `idle`.
pub fn next_interval(cur: Duration, news: bool, quiet_for: Duration, wake: Duration, idle: Duration) -> Duration {
    if news {
        wake
    } else if quiet_for >= QUIET_AFTER {
        (cur * 2).min(idle)
    } else {
        cur
    }
}

fn now_minus(d: Duration) -> Instant {
    Instant::now().checked_sub(d).unwrap_or_else(Instant::now)
}

fn watch(log_dir: &Path, s: &Shared, wake: Duration, idle: Duration) {
    // precise short sleeps: the default timer slack (50 µs) is a quarter
    // of the default interval
    // SAFETY: PR_SET_TIMERSLACK takes an integer and changes only this
    // thread's timer slack; no memory is passed.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
    let mut heads: HashMap<u16, (Option<HeadReader>, Instant)> = HashMap::new();
    let mut writer = WriterWatch::new(log_dir);
    let mut parts = s.snapshot();
    let mut listed = Instant::now();
    let mut interval = wake;
    let mut last_news = Instant::now();
    let mut last_blind = Instant::now();
    // the writer's liveness, asked at most this often when nothing is new
    let mut alive = (true, now_minus(Duration::from_secs(10)));
    while !s.stop.load(Ordering::Relaxed) {
        std::thread::sleep(interval);
        let now = Instant::now();
        if now.duration_since(listed) >= Duration::from_millis(100) || parts.is_empty() {
            parts = s.snapshot();
            listed = now;
        }
        s.checks.fetch_add(1, Ordering::Relaxed);
        let mut news = false;
        let mut blind = parts.is_empty();
        for (q, wait) in &parts {
            let (h, tried) = heads.entry(*q).or_insert((None, now - Duration::from_secs(10)));
            if h.is_none() && now.duration_since(*tried) >= Duration::from_secs(1) {
                *h = HeadReader::open(&log_dir.join(ironhoard_movelog::partition_name(*q)));
                *tried = now;
            }
            match h {
                Some(h) => news |= h.load() > wait.load(Ordering::Acquire),
                None => blind = true,
            }
        }
        // the heads mean something only while their writer lives (asked
        // at most twice a second: a lock file open and flock each time)
        if !blind && !news {
            if now.duration_since(alive.1) >= Duration::from_millis(500) {
                alive = (writer.alive(), now);
            }
            blind = !alive.0;
        }
        if blind && now.duration_since(last_blind) >= idle {
            // cannot tell: let the shipper look in the files itself
            last_blind = now;
            s.notify.notify_one();
        }
        if news {
            last_news = now;
            s.wakes.fetch_add(1, Ordering::Relaxed);
            s.notify.notify_one();
        }
        interval = next_interval(interval, news, now.duration_since(last_news), wake, idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_short_while_moves_flow_and_backs_off_when_idle() {
        let (w, i) = (Duration::from_micros(200), Duration::from_millis(20));
        assert_eq!(next_interval(i, true, Duration::ZERO, w, i), w, "news: at once back to the short interval");
        assert_eq!(next_interval(w, false, Duration::from_millis(500), w, i), w, "a short lull keeps it");
        let mut cur = w;
        let mut n = 0;
        while cur < i {
            cur = next_interval(cur, false, QUIET_AFTER, w, i);
            n += 1;
        }
        assert_eq!(cur, i, "capped at the idle interval");
        assert!(n <= 7, "reaches it in a few checks: {n}");
    }

    #[test]
    fn a_published_record_wakes_the_shipper_and_an_idle_log_does_not() {
        use ironhoard_movelog::{open_log, Accepted, LogConfig, SyncPolicy, HEADER_LEN, RECORD_LEN};
        let d = std::env::temp_dir().join(format!("ih-wake-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let lc = LogConfig { dir: d.clone(), segment_bytes: (HEADER_LEN + 64 * RECORD_LEN) as u64, sync: SyncPolicy::None };
        let (mut parts, mut keeper, _shared, _) = open_log(&lc, &[0], &mut |_| {}).unwrap();
        keeper.prime();
        let w = Watcher::start(&d, Duration::from_micros(200), Duration::from_millis(5)).unwrap();
        let cell = w.shared.cell(0);
        cell.store(0, Ordering::Release); // waiting for offset 0
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let woken = |ms: u64| rt.block_on(async { tokio::time::timeout(Duration::from_millis(ms), w.shared.notify.notified()).await.is_ok() });
        // the writer is alive and published nothing: no wake-up
        assert!(!woken(300), "woken with nothing published");
        let t = Instant::now();
        assert!(parts[0].append(&Accepted { recv_unix_ns: 1, queue: 0, mv: [1; 64] }));
        parts[0].commit();
        assert!(woken(1000), "a published record wakes the shipper");
        let took = t.elapsed();
        // the shipper read it: it now waits for offset 1
        cell.store(1, Ordering::Release);
        // A check begun before that store may still wake it once more (the
        // test thread can be slower than a 200 µs check): a Notify keeps at
        // most one such wake-up. Once two more checks have begun, the one
        // in between saw offset 1: take that stale wake-up, if any; any
        // later one is a check that woke the shipper with nothing new.
        let c0 = w.shared.checks.load(Ordering::Relaxed);
        while w.shared.checks.load(Ordering::Relaxed) < c0 + 2 {
            std::thread::sleep(Duration::from_micros(100));
        }
        let _ = woken(0);
        assert!(!woken(300), "woken again with nothing new");
        assert!(w.shared.wakes.load(Ordering::Relaxed) >= 1);
        eprintln!("woken {took:?} after the commit");
        drop(parts);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
