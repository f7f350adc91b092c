//! `ironhoard ship`: the shipper process around `ironhoard_ship` — its
//! core, its stats socket and /metrics, signals, systemd readiness — and
//! `--ensure-stream`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::{json, Value};

use ironhoard_ship::shipper::{connect, Shipper};
use ironhoard_ship::status::Status;
use ironhoard_ship::stream::{ensure, Ensured};
use ironhoard_ship::{unix_ns, ShipConfig};

use crate::config::Config;
use crate::prometheus::Exposition;

fn ship_config(cfg: &Config) -> Result<&ShipConfig> {
    cfg.ship
        .as_ref()
        .with_context(|| format!("config {}: no [ship] section (servers, stream, subject_prefix, host_id, checkpoint)", cfg.path.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the shipper's runtime")
}

/// `--ensure-stream`: exit 0 when created or matching, 2 when it differs.
pub fn ensure_stream(cfg: &Config) -> Result<i32> {
    let ship = ship_config(cfg)?;
    runtime()?.block_on(async {
        let client = connect(ship, None, false).await?;
        let js = async_nats::jetstream::new(client);
        let mut code = 0;
        for (p, (name, e)) in ensure(&js, ship).await.map_err(anyhow::Error::msg)?.into_iter().enumerate() {
            match e {
                Ensured::Created => println!(
                    "stream {name}: created (subjects {}, {} replica(s), file storage, duplicate window {} s, max age {} s)",
                    ironhoard_ship::stream::subjects(ship, p as u16),
                    ship.replicas,
                    ship.duplicate_window.as_secs(),
                    ship.max_age.as_secs()
                ),
                Ensured::Matches => println!("stream {name}: exists and matches [ship]"),
                Ensured::Differs(d) => {
                    println!("stream {name}: exists, and differs from [ship] (not changed):");
                    for l in d {
                        println!("  {l}");
                    }
                    code = 2;
                }
            }
        }
        Ok(code)
    })
}

/// Runs the shipper until SIGTERM or SIGINT.
pub fn run(cfg: Config) -> Result<()> {
    let ship = ship_config(&cfg)?.clone();
    if let Some(c) = ship.core {
        ironhoard_dataplane::affinity::pin_current_thread(c).map_err(|e| anyhow::anyhow!("[ship] core = {c}: {e}"))?;
    }
    let status = Arc::new(Status::new(&ship.host_id, &ship.stream));
    let shipper = Shipper::new(ship.clone(), &cfg.log_dir, Arc::clone(&status))?;
    let listener = crate::control::bind(&ship.stats_socket, cfg.stats_group.as_deref())?;
    {
        let st = Arc::clone(&status);
        std::thread::Builder::new().name("ih-ship-stats".into()).spawn(move || crate::control::serve_with(listener, move |l| answer(&st, l)))?;
    }
    if let Some(addr) = ship.prometheus_listen {
        let l = std::net::TcpListener::bind(addr).with_context(|| format!("[ship] prometheus_listen = {addr}: bind"))?;
        let st = Arc::clone(&status);
        std::thread::Builder::new().name("ih-ship-metrics".into()).spawn(move || crate::prometheus::serve_http(l, move || render_prometheus(&st)))?;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handlers")?;
    }
    let resume: Vec<String> = shipper.resume_positions().iter().map(|(q, o)| format!("q{q}:{o}")).collect();
    log::info!(
        "ship: host {} → stream {} on {} (subjects {}.<game_id>), log {}, resuming at {}, stats {}",
        ship.host_id,
        ship.stream,
        ship.servers.join(","),
        ship.subject_prefix,
        cfg.log_dir.display(),
        if resume.is_empty() { "the start".to_string() } else { resume.join(" ") },
        ship.stats_socket.display()
    );
    let rt = runtime()?;
    let r = rt.block_on(async {
        let client = connect(&ship, Some(Arc::clone(&status)), true).await?;
        check_window(&client, &ship).await;
        crate::notify::notify("READY=1");
        shipper.run(client, Arc::clone(&stop)).await?;
        anyhow::Ok(())
    });
    crate::notify::notify("STOPPING=1");
    let _ = std::fs::remove_file(&ship.stats_socket);
    r
}

/// Warns when the stream's duplicate window is shorter than what a replay
/// after a crash needs, or missing (not fatal: the cluster may be down).
async fn check_window(client: &async_nats::Client, ship: &ShipConfig) {
    let js = async_nats::jetstream::new(client.clone());
    // every partition's stream is made alike: the first one speaks for all
    let first = ironhoard_ship::stream::stream_names(ship).swap_remove(0);
    let info = tokio::time::timeout(Duration::from_secs(2), async { js.get_stream(&first).await.map(|s| s.cached_info().config.clone()) }).await;
    match info {
        Ok(Ok(c)) => {
            if c.duplicate_window < ship.replay_span() {
                log::warn!(
                    "ship: stream {first} has a duplicate window of {:?}, shorter than a replay after a crash can span ({:?}): moves may be stored twice",
                    c.duplicate_window,
                    ship.replay_span()
                );
            }
            if let Ok(ck) = ironhoard_ship::checkpoint::Checkpoint::load(&ship.checkpoint, &ship.host_id, &ship.stream) {
                let down = Duration::from_nanos(unix_ns().saturating_sub(ck.written_unix_ns));
                if ck.written_unix_ns > 0 && down + ship.replay_span() > c.duplicate_window {
                    log::warn!(
                        "ship: the checkpoint was written {:.0} s ago, longer than the stream's duplicate window ({} s) allows: records published just before the last stop and published again now may be stored twice",
                        down.as_secs_f64(),
                        c.duplicate_window.as_secs()
                    );
                }
            }
        }
        Ok(Err(e)) => log::warn!("ship: stream {first}: {e} (create it with `ironhoard ship --ensure-stream`)"),
        Err(_) => log::warn!("ship: the cluster does not answer yet; shipping starts when it does"),
    }
}

fn answer(st: &Status, line: &str) -> Value {
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        [] | ["show", "stats"] => st.json(unix_ns()),
        ["show", "metrics"] => json!({"prometheus": render_prometheus(st)}),
        _ => json!({"error": format!("unknown command {line:?}; the shipper answers: show stats | show metrics")}),
    }
}

/// The shipper's Prometheus exposition.
pub fn render_prometheus(st: &Status) -> String {
    let v = st.json(unix_ns());
    let mut e = Exposition::default();
    let labels = [("host", v["host_id"].as_str().unwrap_or("")), ("stream", v["stream"].as_str().unwrap_or(""))];
    let num = |x: &Value| x.as_f64().unwrap_or(0.0);
    let counters: [(&str, &str, &str); 12] = [
        ("sent", "ironhoard_ship_sent_total", "Publishes sent to JetStream."),
        ("published", "ironhoard_ship_published_total", "PubAcks received: the move is in the stream."),
        ("duplicates", "ironhoard_ship_duplicates_total", "PubAcks saying the stream already held the move (absorbed by its duplicate window)."),
        ("errors", "ironhoard_ship_errors_total", "Publishes that got no PubAck (timeout, connection lost)."),
        ("rejected", "ironhoard_ship_rejected_total", "Publishes the stream refused (no stream, limits, another stream took the subject)."),
        ("retries", "ironhoard_ship_retries_total", "Partitions gone back to their first unacknowledged record."),
        ("disconnects", "ironhoard_ship_disconnects_total", "Connections to the cluster lost."),
        ("reconnects", "ironhoard_ship_reconnects_total", "Connections to the cluster regained."),
        ("log_damage", "ironhoard_ship_log_damage_total", "Damaged move log records reported and stepped over."),
        ("log_gaps", "ironhoard_ship_log_gaps_total", "Gaps in the move log (removed or set-aside segments)."),
        ("checkpoint_errors", "ironhoard_ship_checkpoint_errors_total", "Failed checkpoint writes."),
        ("rewinds", "ironhoard_ship_checkpoint_rewinds_total", "Partitions whose checkpoint was past the log's end at start (records lost after they were published): shipping resumed at the end."),
    ];
    for (key, name, help) in counters {
        e.family(name, "counter", help);
        e.sample(name, &labels, num(&v[key]));
    }
    e.family("ironhoard_ship_connected", "gauge", "1 while connected to the cluster.");
    e.sample("ironhoard_ship_connected", &labels, if v["connected"].as_bool() == Some(true) { 1.0 } else { 0.0 });
    let qs = v["queues"].as_array().cloned().unwrap_or_default();
    let per_queue: [(&str, &str, &str, &str); 4] = [
        ("shipped_offset", "ironhoard_ship_shipped_offset", "gauge", "First log offset of the partition not yet in the stream."),
        ("log_end", "ironhoard_ship_log_end_offset", "gauge", "One past the last record of the partition."),
        ("lag_records", "ironhoard_ship_lag_records", "gauge", "Records in the log not yet in the stream."),
        ("lag_seconds", "ironhoard_ship_lag_seconds", "gauge", "Age of the oldest record not yet in the stream."),
    ];
    for (key, name, kind, help) in per_queue {
        e.family(name, kind, help);
        for q in &qs {
            let queue = q["queue"].as_u64().unwrap_or(0).to_string();
            e.sample(name, &[labels[0], labels[1], ("queue", &queue)], num(&q[key]));
        }
    }
    for (name, key, help) in [
        ("ironhoard_ship_ack_lag_microseconds", "ack_lag_us", "Server receive time to PubAck, percentiles since start."),
        ("ironhoard_ship_read_lag_microseconds", "read_lag_us", "Server receive time to the publish (the shipper's part of the journey), percentiles since start."),
    ] {
        e.family(name, "gauge", help);
        for p in ["p50", "p99", "p999", "max"] {
            if let Some(x) = v[key][p].as_f64() {
                e.sample(name, &[labels[0], labels[1], ("quantile", p)], x);
            }
        }
    }
    e.finish()
}

/// The table `ironhoard stats` prints for a shipper's socket.
pub fn render_table(v: &Value) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "shipper {} → stream {}: {}, up {:.0} s",
        v["host_id"].as_str().unwrap_or("?"),
        v["stream"].as_str().unwrap_or("?"),
        if v["connected"].as_bool() == Some(true) { "connected" } else { "NOT CONNECTED" },
        v["uptime_s"].as_f64().unwrap_or(0.0)
    );
    let _ = writeln!(
        s,
        "published {}  duplicates {}  errors {}  rejected {}  retries {}  reconnects {}",
        v["published"], v["duplicates"], v["errors"], v["rejected"], v["retries"], v["reconnects"]
    );
    let _ = writeln!(s, "lag: {} record(s), {:.3} s", v["lag_records"], v["lag_seconds"].as_f64().unwrap_or(0.0));
    let l = &v["ack_lag_us"];
    if l["count"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(s, "receive → PubAck (µs): p50 {}  p99 {}  p99.9 {}  max {}", l["p50"], l["p99"], l["p999"], l["max"]);
    }
    let l = &v["read_lag_us"];
    if l["count"].as_u64().unwrap_or(0) > 0 {
        let _ = writeln!(s, "receive → publish (µs): p50 {}  p99 {}  p99.9 {}  max {}", l["p50"], l["p99"], l["p999"], l["max"]);
    }
    let _ = writeln!(s, "\n{:>6} {:>14} {:>14} {:>14} {:>10} {:>9}", "queue", "shipped", "checkpoint", "log end", "lag", "in flight");
    for q in v["queues"].as_array().cloned().unwrap_or_default() {
        let n = |k: &str| q[k].as_u64().unwrap_or(0);
        let _ = writeln!(
            s,
            "{:>6} {:>14} {:>14} {:>14} {:>10} {:>9}",
            n("queue"),
            n("shipped_offset"),
            n("checkpoint_offset"),
            n("log_end"),
            n("lag_records"),
            n("in_flight")
        );
    }
    if let Some(e) = v["last_error"].as_str() {
        let _ = writeln!(s, "\nlast error: {e}");
    }
    s
}
