//! Prometheus text exposition (format 0.0.4) of the appliance's counters,
//! and a minimal HTTP `/metrics` endpoint served off the hot path.

use std::fmt::Write as _;

use std::net::TcpListener;


use serde_json::Value;


/// Builds exposition text: HELP and TYPE once per family, then samples.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Exposition {
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape(val));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {v}");
    }

    pub fn finish(self) -> String {
        self.out
    }
}

const STATUSES: [&str; 6] = ["accepted", "duplicate", "stale", "invalid", "rate_limited", "busy"];

/// Renders the appliance's `show stats`, `show latency` and `show info`
/// answers (counters, latency, players, the XDP program's counters).
pub fn render(stats: &Value, lat: &Value, info: &Value) -> String {
    let mut e = Exposition::default();
    let qs = stats["queues"].as_array().cloned().unwrap_or_default();
    render_info(&mut e, stats, info);
    render_queues(&mut e, &qs);
    e.family("ironhoard_players_capacity", "gauge", "Player table capacity per queue.");
    e.sample("ironhoard_players_capacity", &[], num(&info["players_per_worker"]));
    render_xdp(&mut e, stats, &qs);
    render_log(&mut e, stats, &qs);
    render_latency(&mut e, lat);
    e.finish()
}

fn q_label(q: &Value) -> String {
    q["queue"].as_u64().unwrap_or(0).to_string()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

/// What runs, and since when.
fn render_info(e: &mut Exposition, stats: &Value, info: &Value) {
    e.family("ironhoard_info", "gauge", "What is running (value is always 1).");
    let xdp_mode = info["xdp"]["xdp_mode"].as_str().unwrap_or("none").to_string();
    let zc = info["xdp"]["zero_copy"].as_bool().map(|b| b.to_string()).unwrap_or_else(|| "none".into());
    let backend = info["backend"].as_str().unwrap_or("").to_string();
    let version = info["version"].as_str().unwrap_or("").to_string();
    e.sample(
        "ironhoard_info",
        &[("version", &version), ("backend", &backend), ("xdp_mode", &xdp_mode), ("zero_copy", &zc)],
        1.0,
    );
    e.family("ironhoard_uptime_seconds", "gauge", "Seconds since the appliance started.");
    e.sample("ironhoard_uptime_seconds", &[], num(&stats["uptime_secs"]));
}

/// The per-queue counters: one sample per queue, acks by status, drops by
/// reason.
fn render_queues(e: &mut Exposition, qs: &[Value]) {
    // families with one sample per queue, read from the queue's key
    for (name, kind, help, key) in [
        ("ironhoard_rx_total", "counter", "Datagrams received on the move port by the queue's worker.", "rx"),
        ("ironhoard_tx_total", "counter", "Acks sent.", "tx"),
        ("ironhoard_tx_errors_total", "counter", "Acks that could not be sent.", "tx_errors"),
        ("ironhoard_players", "gauge", "Players in the queue's table.", "players"),
        ("ironhoard_wakeups_total", "counter", "System calls to kick the kernel or sleep (need_wakeup, idle poll).", "wakeups"),
        ("ironhoard_handoffs_total", "counter", "Moves handed to the poller owning their player (several AF_XDP queues).", "handoffs"),
        ("ironhoard_handoffs_dropped_total", "counter", "Moves not handed over: the owner's mailbox was full (no answer; the client retransmits).", "handoffs_dropped"),
        ("ironhoard_key_cache_hits_total", "counter", "Moves of another poller's players authenticated with a cached player key.", "key_cache_hits"),
        ("ironhoard_key_cache_misses_total", "counter", "Moves of another poller's players whose player key had to be derived.", "key_cache_misses"),
        ("ironhoard_busy_polls_total", "counter", "recvfrom calls made on an empty RX ring to run the queue's NAPI poll (preferred busy polling).", "busy_polls"),
    ] {
        e.family(name, kind, help);
        for q in qs {
            e.sample(name, &[("queue", &q_label(q))], num(&q[key]));
        }
    }
    e.family("ironhoard_acks_total", "counter", "Acks sent, by status.");
    for q in qs {
        for s in STATUSES {
            e.sample("ironhoard_acks_total", &[("queue", &q_label(q)), ("status", s)], num(&q[s]));
        }
    }
    e.family("ironhoard_dropped_total", "counter", "Datagrams dropped silently by the queue's worker, by reason.");
    for q in qs {
        if let Some(d) = q["dropped"].as_object() {
            for (r, v) in d {
                e.sample("ironhoard_dropped_total", &[("queue", &q_label(q)), ("reason", r)], num(v));
            }
        }
    }
}

/// The kernel's XDP_STATISTICS per queue and the XDP program's counters.
fn render_xdp(e: &mut Exposition, stats: &Value, qs: &[Value]) {
    if qs.iter().any(|q| q.get("xsk").is_some()) {
        e.family("ironhoard_xsk_total", "counter", "The kernel's XDP_STATISTICS for the queue's AF_XDP socket, by statistic.");
        for q in qs {
            if let Some(x) = q["xsk"].as_object() {
                for (k, v) in x {
                    e.sample("ironhoard_xsk_total", &[("queue", &q_label(q)), ("stat", k)], num(v));
                }
            }
        }
    }
    if let Some(x) = stats["xdp"].as_object() {
        e.family("ironhoard_xdp_total", "counter", "The XDP program's counters (all CPUs): early drops by reason, redirected, no_socket.");
        for (k, v) in x {
            e.sample("ironhoard_xdp_total", &[("counter", k)], num(v));
        }
    }
}

/// The move log's counters (when there is one).
fn render_log(e: &mut Exposition, stats: &Value, qs: &[Value]) {
    if let Some(l) = stats.get("log") {
        e.family("ironhoard_log_records_total", "counter", "Accepted moves written to the move log.");
        e.sample("ironhoard_log_records_total", &[], num(&l["records"]));
        e.family("ironhoard_log_write_errors_total", "counter", "Failed writes (or opens) of the move log.");
        e.sample("ironhoard_log_write_errors_total", &[], num(&l["write_errors"]));
        e.family("ironhoard_log_syncs_total", "counter", "fsync/msync calls made for the move log (per sync policy, and at rotation and stop).");
        e.sample("ironhoard_log_syncs_total", &[], num(&l["syncs"]));
        e.family("ironhoard_log_healthy", "gauge", "1 while the move log is writable (else moves are answered BUSY).");
        e.sample("ironhoard_log_healthy", &[], if l["healthy"].as_bool() == Some(true) { 1.0 } else { 0.0 });
        e.family("ironhoard_log_refused_total", "counter", "Moves answered BUSY because their log partition had no segment ready (disk full, directory unwritable).");
        for q in qs {
            e.sample("ironhoard_log_refused_total", &[("queue", &q_label(q))], num(&q["log_refused"]));
        }
    }
}

/// Service time per move and per batch, per queue, as summaries.
fn render_latency(e: &mut Exposition, lat: &Value) {
    for (key, name, help) in [
        ("move_ns", "ironhoard_move_service_seconds", "Service time per move (batch time over its datagrams)."),
        ("batch_ns", "ironhoard_batch_seconds", "Time to process one batch, receive to send."),
    ] {
        e.family(name, "summary", help);
        for q in lat["queues"].as_array().cloned().unwrap_or_default() {
            let l = &q[key];
            let ql = q_label(&q);
            for (qn, k) in [("0.5", "p50"), ("0.9", "p90"), ("0.99", "p99"), ("0.999", "p999")] {
                if let Some(v) = l[k].as_f64() {
                    e.sample(name, &[("queue", &ql), ("quantile", qn)], v / 1e9);
                }
            }
            let count = num(&l["count"]);
            e.sample(&format!("{name}_sum"), &[("queue", &ql)], num(&l["mean"]) * count / 1e9);
            e.sample(&format!("{name}_count"), &[("queue", &ql)], count);
        }
    }
}

/// Serves `GET /metrics` on `listener` until the process ends, the body
/// `render`'s exposition (the appliance's or the shipper's): each
/// connection on its own thread, at most 8 at once (then 503), 2 s for the
/// whole exchange, 8 KiB of request at most (`crate::serve`).
pub fn serve_http(listener: TcpListener, render: impl Fn() -> String + Send + Sync + 'static) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let limits = crate::serve::Limits::CONTROL;
    crate::serve::serve("metrics", listener.incoming(), limits, Some(BUSY), move |c, deadline| {
        let end_of_headers = |b: &[u8]| b.windows(4).any(|w| w == b"\r\n\r\n") || b.windows(2).any(|w| w == b"\n\n");
        let Ok(req) = crate::serve::read_request(c, deadline, limits.max_request, end_of_headers) else { return };
        let text = String::from_utf8_lossy(&req);
        let line = text.lines().next().unwrap_or("");
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let resp = if method == "GET" && (path == "/metrics" || path.starts_with("/metrics?")) {
            let body = render();
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
        } else {
            let body = "not found: try /metrics\n";
            format!("HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len())
        };
        let _ = crate::serve::write_answer(c, deadline, resp.as_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_and_labels_are_rendered() {
        let mut e = Exposition::default();
        e.family("a_total", "counter", "A.");
        e.sample("a_total", &[("q", "0"), ("r", "x\"y")], 3.0);
        e.sample("b", &[], 1.5);
        let t = e.finish();
        assert_eq!(t, "# HELP a_total A.\n# TYPE a_total counter\na_total{q=\"0\",r=\"x\\\"y\"} 3\nb 1.5\n");
    }

    /// Metric names in `text`: `ironhoard_` followed by [a-z_].
    fn names(text: &str) -> std::collections::BTreeSet<String> {
        let mut out = std::collections::BTreeSet::new();
        let mut rest = text;
        while let Some(i) = rest.find("ironhoard_") {
            let tail = &rest[i..];
            let n = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
            out.insert(tail[..n].to_string());
            rest = &tail[n..];
        }
        out
    }

    #[test]
    fn the_grafana_dashboard_uses_only_metrics_we_export() {
        let dash = include_str!("../../../ansible/roles/ironhoard/files/grafana-ironhoard.json");
        let v: Value = serde_json::from_str(dash).expect("the dashboard is JSON");
        let exprs: Vec<String> = v["panels"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
            .map(|t| t["expr"].as_str().unwrap().to_string())
            .collect();
        let used = names(&exprs.join("\n"));
        let exported = names(&[include_str!("prometheus.rs"), include_str!("ship.rs")].join("\n"));
        for m in &used {
            let base = m.trim_end_matches("_sum").trim_end_matches("_count");
            assert!(exported.contains(base), "the dashboard queries {m}, which the appliance and shipper do not export");
        }
        // what an SRE opens first is on it
        for m in ["ironhoard_acks_total", "ironhoard_dropped_total", "ironhoard_xdp_total", "ironhoard_xsk_total", "ironhoard_batch_seconds", "ironhoard_ship_lag_seconds"] {
            assert!(used.contains(m), "the dashboard has no panel on {m}");
        }
    }
}
