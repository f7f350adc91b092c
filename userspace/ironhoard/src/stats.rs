//! The stats socket: a Unix stream socket (mode 0660) serving a tiny
//! line protocol. A client connects, writes one command line, and reads
//! one JSON document back; the server then closes the connection.
//!
//! Commands (docs/operations.md): `show stats` (counters in total and per
//! queue, rates over the last second), `show info` (what is running, where,
//! in which modes), `show latency` (batch and per-move service time
//! percentiles), `show xdp` (the XDP program's counters), `show players`
//! (table fill per queue), `show metrics` (Prometheus text). An empty line
//! means `show stats`. Anything else gets `{"error": "..."}`.
//!
//! `capture {json}` is the exception: it keeps its connection for as long
//! as the capture runs and streams frames (crate::capture).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ironhoard_common::{DropReason, XdpCounter};
use ironhoard_dataplane::{WorkerShared, XSK_STAT_NAMES};
use ironhoard_engine::Counters;
use ironhoard_ship::status::percentiles;
use ironhoard_wire::Status;
use serde_json::{json, Map, Value};

/// What the control plane knows about one worker.
pub struct WorkerInfo {
    pub queue: u32,
    pub core: usize,
    pub shared: Arc<WorkerShared>,
}

/// The capture running on an appliance (at most one).
#[derive(Default)]
pub struct Running(pub(crate) std::sync::Mutex<Option<String>>);

impl Running {
    /// What runs, for `show stats` (null when nothing does).
    pub fn describe(&self) -> Value {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone().map_or(Value::Null, Value::from)
    }
}

/// The reloader as `show info` and `reload` see it (the control plane's
/// [`crate::reload::Reloader`]).
pub trait Reloadable: Send + Sync {
    /// `reload`'s answer: what changed, or why it was refused.
    fn reload_json(&self) -> Value;
    /// The config in force: key ids, secret files, what a reload changed.
    fn info(&self) -> Value;
}

/// Static facts for `show info`.
pub struct Info {
    pub backend: String,
    pub iface: String,
    pub port: u16,
    pub config_path: PathBuf,
    pub players_per_worker: usize,
    pub key_ids: usize,
    pub secret_files: Vec<PathBuf>,
    pub log_dir: PathBuf,
    /// The predecessor this appliance took over from ("pid N", "systemd fd store").
    pub handed_over_by: Option<String>,
}

/// Per-second rates of the totals, computed by the sampler thread.
#[derive(Default, Clone)]
pub struct Rates {
    last: Option<(Instant, Counters, Vec<Counters>)>,
    /// Rates over the last interval: (total, per queue), per second.
    pub total: Map<String, Value>,
    pub queues: Vec<Map<String, Value>>,
}

fn rates_of(now: &Counters, before: &Counters, secs: f64) -> Map<String, Value> {
    let r = |a: u64, b: u64| ((a.saturating_sub(b)) as f64 / secs).round();
    let dropped = |c: &Counters| c.dropped.iter().sum::<u64>();
    let mut m = Map::new();
    m.insert("rx".into(), r(now.rx, before.rx).into());
    m.insert("tx".into(), r(now.tx, before.tx).into());
    m.insert("accepted".into(), r(now.status(Status::Accepted), before.status(Status::Accepted)).into());
    m.insert("dropped".into(), r(dropped(now), dropped(before)).into());
    m
}

/// The running appliance as the stats socket sees it.
pub struct StatsSource {
    pub info: Info,
    pub workers: Vec<WorkerInfo>,
    pub started: Instant,
    /// XDP backend: mode obtained, zero-copy, hugepages (Null otherwise).
    pub xdp_info: Value,
    /// XDP backend: the loaded program, for its counters.
    pub steering: Option<Arc<std::sync::Mutex<ironhoard_loader::Steering>>>,
    pub rates: std::sync::Mutex<Rates>,
    /// The move log's state.
    pub log: Option<Arc<ironhoard_movelog::LogShared>>,
    /// Reloads the config (the `reload` command, SIGHUP).
    pub reloader: Option<Arc<dyn Reloadable>>,
    /// The `capture` running, if any (at most one).
    pub capture: Running,
}

/// Renders counters with the SPEC names.
pub fn counters_json(c: &Counters) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("rx".into(), c.rx.into());
    m.insert("tx".into(), c.tx.into());
    for s in Status::ALL {
        m.insert(s.name().into(), c.status(s).into());
    }
    let dropped: Map<String, Value> = DropReason::ALL.iter().map(|r| (r.name().to_string(), c.drops(*r).into())).collect();
    m.insert("dropped".into(), Value::Object(dropped));
    m.insert("tx_errors".into(), c.tx_errors.into());
    m
}

impl StatsSource {
    /// Worker counters now, and their sum (without the XDP program's drops).
    fn snapshots(&self) -> (Counters, Vec<Counters>) {
        let qs: Vec<Counters> = self.workers.iter().map(|w| w.shared.counters.snapshot()).collect();
        let mut t = Counters::default();
        for q in &qs {
            t.add(q);
        }
        (t, qs)
    }

    /// Called once a second by the sampler: rates over the last interval.
    pub fn sample_rates(&self) {
        let (t, qs) = self.snapshots();
        let now = Instant::now();
        let mut r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((then, pt, pqs)) = r.last.take() {
            let secs = now.duration_since(then).as_secs_f64().max(1e-3);
            r.total = rates_of(&t, &pt, secs);
            r.queues = qs.iter().zip(&pqs).map(|(a, b)| rates_of(a, b, secs)).collect();
        }
        r.last = Some((now, t, qs));
    }

    /// `show stats`: totals at the top level, then `queues`.
    pub fn stats(&self) -> Value {
        let mut total = Counters::default();
        let mut players = 0u64;
        let mut queues = Vec::new();
        for w in &self.workers {
            let c = w.shared.counters.snapshot();
            let p = w.shared.players.load(std::sync::atomic::Ordering::Relaxed);
            total.add(&c);
            players += p;
            queues.push(Value::Object(queue_json(w, &c, p)));
        }
        // The XDP program's early drops never reach a poller: they count in
        // the totals (rx and dropped), not in any queue.
        let xdp = self.xdp_counters();
        if let Some(x) = &xdp {
            for c in XdpCounter::ALL {
                if let Some(r) = c.drop_reason() {
                    total.dropped[r as usize] += x[c as usize];
                    total.rx += x[c as usize];
                }
            }
        }
        let mut top = counters_json(&total);
        if let Some(x) = &xdp {
            let m: Map<String, Value> = XdpCounter::ALL.iter().map(|c| (c.name().to_string(), x[*c as usize].into())).collect();
            top.insert("xdp".into(), Value::Object(m));
        }
        top.insert("players".into(), players.into());
        top.insert("uptime_secs".into(), self.started.elapsed().as_secs_f64().into());
        top.insert("backend".into(), self.info.backend.clone().into());
        top.insert("capture".into(), self.capture.describe());
        {
            let r = self.rates.lock().unwrap_or_else(|e| e.into_inner());
            top.insert("rates_per_sec".into(), Value::Object(r.total.clone()));
            for (q, rq) in queues.iter_mut().zip(&r.queues) {
                q["rates_per_sec"] = Value::Object(rq.clone());
            }
        }
        if let Some(l) = &self.log {
            top.insert("log".into(), log_json(l, &mut queues));
        }
        top.insert("queues".into(), Value::Array(queues));
        Value::Object(top)
    }

    /// `show metrics`: Prometheus text exposition.
    pub fn prometheus(&self) -> String {
        crate::prometheus::render(&self.stats(), &self.latency(), &self.info())
    }

    /// `show players`: table fill per queue.
    pub fn players(&self) -> Value {
        let cap = self.info.players_per_worker as u64;
        let qs: Vec<Value> = self
            .workers
            .iter()
            .map(|w| {
                let p = w.shared.players.load(std::sync::atomic::Ordering::Relaxed);
                json!({"queue": w.queue, "players": p, "capacity": cap, "fill_pct": 100.0 * p as f64 / cap as f64})
            })
            .collect();
        let total: u64 = self.workers.iter().map(|w| w.shared.players.load(std::sync::atomic::Ordering::Relaxed)).sum();
        json!({"players": total, "capacity": cap * self.workers.len() as u64, "queues": qs})
    }

    /// `show latency`: batch and per-move service time, and the reload
    /// work a turn of the worker did, per queue and merged.
    pub fn latency(&self) -> Value {
        let mut all_b = new_hist();
        let mut all_m = new_hist();
        let mut all_r = new_hist();
        let mut qs = Vec::new();
        for w in &self.workers {
            let b = to_hdr(&w.shared.batch_ns);
            let m = to_hdr(&w.shared.move_ns);
            let r = to_hdr(&w.shared.reload_ns);
            let _ = all_b.add(&b);
            let _ = all_m.add(&m);
            let _ = all_r.add(&r);
            qs.push(json!({"queue": w.queue, "batch_ns": percentiles(&b), "move_ns": percentiles(&m), "reload_ns": percentiles(&r)}));
        }
        json!({"batch_ns": percentiles(&all_b), "move_ns": percentiles(&all_m), "reload_ns": percentiles(&all_r), "queues": qs})
    }

    /// `show rx-ring`: each AF_XDP queue's RX ring level, sampled by its
    /// poller about each millisecond, over the last ~4 s (under load):
    /// `[CLOCK_MONOTONIC µs, level]` pairs (align with
    /// `perf record -k CLOCK_MONOTONIC`), and a summary. A gap between
    /// samples is time the poller did not turn (off its core, its vCPU
    /// halted, or asleep in poll(2) with nothing to do).
    pub fn rx_ring(&self) -> Value {
        let Some(size) = self.xdp_info["ring_size"].as_u64() else {
            return json!({"error": format!("no RX ring: the appliance runs the {} backend", self.info.backend)});
        };
        let qs: Vec<Value> = self
            .workers
            .iter()
            .map(|w| {
                let samples = w.shared.rx_level.snapshot();
                let mut q = level_summary(&samples, size);
                q.insert("queue".into(), w.queue.into());
                q.insert("core".into(), w.core.into());
                q.insert("ring_size".into(), size.into());
                q.insert("samples_written".into(), w.shared.rx_level.written().into());
                q.insert("samples".into(), samples.iter().map(|&(t, l)| json!([t / 1000, l])).collect::<Vec<_>>().into());
                Value::Object(q)
            })
            .collect();
        json!({"period_us": ironhoard_dataplane::trace::TRACE_PERIOD_NS / 1000, "queues": qs})
    }

    fn xdp_counters(&self) -> Option<[u64; XdpCounter::COUNT as usize]> {
        let st = self.steering.as_ref()?;
        let g = st.lock().unwrap_or_else(|e| e.into_inner());
        g.counters().ok()
    }

    /// `show xdp`: the XDP program's per-CPU counters, summed.
    pub fn xdp(&self) -> Value {
        match self.xdp_counters() {
            Some(x) => {
                let m: Map<String, Value> = XdpCounter::ALL.iter().map(|c| (c.name().to_string(), x[*c as usize].into())).collect();
                json!({"xdp": m, "mode": self.xdp_info})
            }
            None => json!({"error": "no XDP program: the appliance runs the socket backend"}),
        }
    }

    /// `show info`.
    pub fn info(&self) -> Value {
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "uptime_secs": self.started.elapsed().as_secs_f64(),
            "backend": self.info.backend,
            "interface": self.info.iface,
            "port": self.info.port,
            "config": self.info.config_path.display().to_string(),
            "key_ids": self.reloader.as_ref().map(|r| r.info()["key_ids"].clone()).unwrap_or(self.info.key_ids.into()),
            "secret_files": self.reloader.as_ref().map(|r| r.info()["secret_files"].clone())
                .unwrap_or_else(|| self.info.secret_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().into()),
            "config_in_force": self.reloader.as_ref().map(|r| r.info()),
            "log_dir": self.info.log_dir.display().to_string(),
            "handed_over_by": self.info.handed_over_by,
            "players_per_worker": self.info.players_per_worker,
            "xdp": self.xdp_info,
            "queues": self.workers.iter().map(|w| json!({"queue": w.queue, "core": w.core})).collect::<Vec<_>>(),
        })
    }

    pub fn answer(&self, command: &str) -> Value {
        match command.split_whitespace().collect::<Vec<_>>().as_slice() {
            [] | ["show", "stats"] => self.stats(),
            ["show", "info"] => self.info(),
            ["show", "xdp"] => self.xdp(),
            ["show", "players"] => self.players(),
            ["show", "latency"] => self.latency(),
            ["show", "rx-ring"] => self.rx_ring(),
            ["show", "metrics"] => json!({"prometheus": self.prometheus()}),
            ["reload"] => match &self.reloader {
                Some(r) => r.reload_json(),
                None => json!({"ok": false, "error": "this appliance cannot reload"}),
            },
            _ => json!({"error": format!("unknown command {command:?}; try: show stats | show info | show latency | show rx-ring | show xdp | show players | show metrics | reload")}),
        }
    }
}

/// What a queue's RX level samples say: the highest level, how many
/// samples found the ring full, and the longest gap between two samples
/// with the level the poller found after it.
fn level_summary(samples: &[(u64, u32)], ring_size: u64) -> Map<String, Value> {
    let mut m = Map::new();
    let max = samples.iter().map(|s| s.1).max();
    let full = samples.iter().filter(|s| u64::from(s.1) >= ring_size).count();
    let gap = samples.windows(2).max_by_key(|w| w[1].0.saturating_sub(w[0].0));
    m.insert("max".into(), max.into());
    m.insert("full".into(), full.into());
    m.insert("longest_gap_us".into(), gap.map(|w| w[1].0.saturating_sub(w[0].0) / 1000).into());
    m.insert("level_after_longest_gap".into(), gap.map(|w| w[1].1).into());
    m
}

/// One queue's counters in `show stats`: its engine's, its worker's, the
/// kernel's XDP_STATISTICS (AF_XDP).
fn queue_json(w: &WorkerInfo, c: &Counters, players: u64) -> Map<String, Value> {
    use std::sync::atomic::Ordering::Relaxed;
    let sh = &w.shared;
    let mut q = counters_json(c);
    q.insert("queue".into(), w.queue.into());
    q.insert("core".into(), w.core.into());
    q.insert("players".into(), players.into());
    q.insert("wakeups".into(), sh.wakeups.load(Relaxed).into());
    q.insert("busy_polls".into(), sh.busy_polls.load(Relaxed).into());
    q.insert("handoffs".into(), sh.handoffs.load(Relaxed).into());
    q.insert("handoffs_dropped".into(), sh.handoffs_dropped.load(Relaxed).into());
    q.insert("key_cache_hits".into(), sh.key_cache_hits.load(Relaxed).into());
    q.insert("key_cache_misses".into(), sh.key_cache_misses.load(Relaxed).into());
    q.insert("peer_wakes".into(), sh.peer_wakes.load(Relaxed).into());
    q.insert("bridged".into(), sh.bridged.load(Relaxed).into());
    q.insert("capture_active".into(), sh.capture_active.load(Relaxed).into());
    q.insert("capture_skipped".into(), sh.capture_skipped.load(Relaxed).into());
    if sh.has_xsk_stats.load(Relaxed) {
        let m: Map<String, Value> =
            XSK_STAT_NAMES.iter().zip(&sh.xsk_stats).map(|(n, v)| (n.to_string(), v.load(Relaxed).into())).collect();
        q.insert("xsk".into(), Value::Object(m));
    }
    q
}

/// `show stats`' `log`: the move log's totals and partitions (and each
/// queue's `log_refused`).
fn log_json(l: &ironhoard_movelog::LogShared, queues: &mut [Value]) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    for q in queues.iter_mut() {
        let qn = q["queue"].as_u64().unwrap_or(u64::MAX);
        if let Some(p) = l.partitions.iter().find(|p| p.queue as u64 == qn) {
            q["log_refused"] = p.refused.load(Relaxed).into();
        }
    }
    let parts: Vec<Value> = l
        .partitions
        .iter()
        .map(|p| {
            let first = p.segment_first.load(Relaxed);
            json!({
                "queue": p.queue,
                "dir": p.dir.display().to_string(),
                "records": p.records.load(Relaxed),
                "next_offset": p.next_offset.load(Relaxed),
                "segment_first": if first == u64::MAX { Value::Null } else { first.into() },
                "segments_ready": p.ready(),
                "refused": p.refused.load(Relaxed),
                "rotations": p.rotations.load(Relaxed),
                "segments_in_folios": p.folio_segments.load(Relaxed),
                "segments_in_pages": p.page_segments.load(Relaxed),
                "syncs": p.syncs.load(Relaxed),
                "sync_errors": p.sync_errors.load(Relaxed),
                "synced_offset": p.synced_offset.load(Relaxed),
                "commits": p.commits.load(Relaxed),
                "batch_syncs": p.batch_syncs.load(Relaxed),
            })
        })
        .collect();
    let sum = |f: fn(&ironhoard_movelog::PartitionShared) -> u64| l.partitions.iter().map(|p| f(p)).sum::<u64>();
    json!({
            "dir": l.dir.display().to_string(),
            "sync": l.sync.name(),
            "segment_bytes": l.segment_bytes,
            "healthy": l.healthy.load(Relaxed),
            "records": l.records(),
            "refused": sum(|p| p.refused.load(Relaxed)),
            "rotations": sum(|p| p.rotations.load(Relaxed)),
            "segments_in_folios": sum(|p| p.folio_segments.load(Relaxed)),
            "segments_in_pages": sum(|p| p.page_segments.load(Relaxed)),
            "syncs": sum(|p| p.syncs.load(Relaxed)),
            "commits": sum(|p| p.commits.load(Relaxed)),
            "batch_syncs": sum(|p| p.batch_syncs.load(Relaxed)),
            "write_errors": l.errors.load(Relaxed),
            "last_error": l.last_error.lock().ok().and_then(|e| e.clone()),
            "recovery": l.recovery.lock().map(|r| r.clone()).unwrap_or_default(),
            "partitions": parts,
        })
}

fn new_hist() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 1u64 << 42, 2).expect("histogram bounds")
}

/// A worker's histogram as an HDR histogram (each bucket at its midpoint).
fn to_hdr(h: &ironhoard_dataplane::hist::AtomicHistogram) -> hdrhistogram::Histogram<u64> {
    let mut out = new_hist();
    h.for_each(|lo, hi, c| {
        let _ = out.record_n((lo + (hi - lo) / 2).max(1), c);
    });
    out
}

/// The readable table `ironhoard stats` prints by default: totals, per
/// queue, rates over the last second, latency percentiles.
pub fn render_table(v: &Value, lat: Option<&Value>) -> String {
    let mut out = String::new();
    let g = |o: &Value, k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
    let uptime = v.get("uptime_secs").and_then(Value::as_f64).unwrap_or(0.0);
    out.push_str(&format!(
        "backend {}  uptime {:.0}s  players {}\n",
        v.get("backend").and_then(Value::as_str).unwrap_or("?"),
        uptime,
        g(v, "players")
    ));
    let cols = ["rx", "tx", "accepted", "duplicate", "stale", "invalid", "rate_limited", "busy"];
    out.push_str(&format!("{:<8}", "queue"));
    for c in cols {
        out.push_str(&format!("{c:>13}"));
    }
    out.push_str(&format!("{:>13}\n", "dropped"));
    let row = |name: String, o: &Value, out: &mut String| {
        out.push_str(&format!("{name:<8}"));
        for c in cols {
            out.push_str(&format!("{:>13}", g(o, c)));
        }
        let d: u64 = o.get("dropped").and_then(Value::as_object).map(|m| m.values().filter_map(Value::as_u64).sum()).unwrap_or(0);
        out.push_str(&format!("{d:>13}\n"));
    };
    let qs = v.get("queues").and_then(Value::as_array).cloned().unwrap_or_default();
    for q in &qs {
        row(format!("q{}", g(q, "queue")), q, &mut out);
    }
    row("total".into(), v, &mut out);
    if let Some(d) = v.get("dropped").and_then(Value::as_object) {
        let parts: Vec<String> = d.iter().map(|(k, n)| format!("{k}={n}")).collect();
        out.push_str(&format!("dropped by reason: {}\n", parts.join(" ")));
    }
    if let Some(x) = v.get("xdp").and_then(Value::as_object) {
        let parts: Vec<String> = x.iter().map(|(k, n)| format!("{k}={n}")).collect();
        out.push_str(&format!("xdp program: {}\n", parts.join(" ")));
    }
    if let Some(r) = v.get("rates_per_sec").and_then(Value::as_object) {
        out.push_str(&format!(
            "per second (last 1 s): rx {}  tx {}  accepted {}  dropped {}\n",
            r.get("rx").unwrap_or(&Value::Null),
            r.get("tx").unwrap_or(&Value::Null),
            r.get("accepted").unwrap_or(&Value::Null),
            r.get("dropped").unwrap_or(&Value::Null)
        ));
    }
    for q in &qs {
        if let Some(x) = q.get("xsk").and_then(Value::as_object) {
            let parts: Vec<String> = x.iter().map(|(k, n)| format!("{k}={n}")).collect();
            out.push_str(&format!("q{} AF_XDP: {}  wakeups={}\n", g(q, "queue"), parts.join(" "), g(q, "wakeups")));
        }
    }
    if let Some(l) = v.get("log").filter(|l| l.is_object()) {
        table_log(&mut out, l);
    }
    if let Some(l) = lat {
        table_latency(&mut out, l);
    }
    out
}

/// The `ironhoard stats` table's move log lines.
fn table_log(out: &mut String, l: &Value) {
    let g = |o: &Value, k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
    out.push_str(&format!(
        "move log {} (sync {}): {} records this run, {} BUSY for want of a segment, {}{}\n",
        l["dir"].as_str().unwrap_or("?"),
        l["sync"].as_str().unwrap_or("?"),
        g(l, "records"),
        g(l, "refused"),
        if l["healthy"].as_bool() == Some(true) { "healthy" } else { "UNHEALTHY" },
        l["last_error"].as_str().map(|e| format!(" (last error: {e})")).unwrap_or_default()
    ));
    for p in l["partitions"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "  q{}: next offset {}  segment {}  prepared {}  rotations {}  syncs {}  prefaulted in 2 MiB folios {} / single pages {}\n",
            g(p, "queue"),
            g(p, "next_offset"),
            p["segment_first"].as_u64().map_or("none".to_string(), |f| f.to_string()),
            g(p, "segments_ready"),
            g(p, "rotations"),
            g(p, "syncs"),
            g(p, "segments_in_folios"),
            g(p, "segments_in_pages")
        ));
    }
    for r in l["recovery"].as_array().into_iter().flatten() {
        out.push_str(&format!("  at start: {}\n", r.as_str().unwrap_or("")));
    }
}

/// The `ironhoard stats` table's latency lines.
fn table_latency(out: &mut String, lat: &Value) {
    let g = |o: &Value, k: &str| o.get(k).and_then(Value::as_u64).unwrap_or(0);
    for (k, name) in [("move_ns", "per-move service"), ("batch_ns", "per batch")] {
        let p = &lat[k];
        if g(p, "count") > 0 {
            out.push_str(&format!(
                "{name:<16} p50 {:.2} us  p99 {:.2} us  p99.9 {:.2} us  max {:.2} us  ({} samples)\n",
                g(p, "p50") as f64 / 1e3,
                g(p, "p99") as f64 / 1e3,
                g(p, "p999") as f64 / 1e3,
                g(p, "max") as f64 / 1e3,
                g(p, "count")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DropReason;

    /// The operator's reference lists the `dropped` object's keys: the same
    /// names, in the same order, as the one table in `ironhoard-common`.
    #[test]
    fn the_docs_name_every_drop_reason() {
        let doc = include_str!("../../../docs/operations.md");
        let from = doc.find("`dropped` (object by reason: ").expect("docs/operations.md lists the drop reasons");
        let list = &doc[from..];
        let list = &list[list.find(": ").unwrap() + 2..list.find(')').unwrap()];
        let named: Vec<&str> = list.split(", ").map(|n| n.trim_matches('`')).collect();
        let table: Vec<&str> = DropReason::ALL.iter().map(|r| r.name()).collect();
        assert_eq!(named, table, "docs/operations.md's `show stats` row");
    }
}
