//! What the shipper reports: counters, per-partition positions and lag,
//! and a histogram of the time from a move's server receive time to its
//! PubAck. Written by the shipping loop, read by the stats socket thread.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::{json, Value};

/// One partition's position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionStatus {
    pub queue: u16,
    /// First offset not yet known to be in the stream.
    pub shipped: u64,
    /// What the checkpoint file says.
    pub checkpointed: u64,
    /// One past the last record in the log (sampled each second).
    pub log_end: u64,
    /// Server receive time of the oldest record not yet shipped, if known.
    pub oldest_unshipped_ns: Option<u64>,
    pub in_flight: u64,
}

#[derive(Debug)]
pub struct Status {
    pub started: Instant,
    pub host_id: String,
    pub stream: String,
    pub connected: AtomicBool,
    /// Publishes sent.
    pub sent: AtomicU64,
    /// PubAcks received (stored, or reported duplicate).
    pub acked: AtomicU64,
    /// PubAcks saying the stream already held the message.
    pub duplicates: AtomicU64,
    /// Publishes that failed without an answer (timeout, connection lost).
    pub errors: AtomicU64,
    /// Publishes the stream refused (no such stream, limits, another stream).
    pub rejected: AtomicU64,
    /// Go-backs: a partition republished from its first unacknowledged record.
    pub retries: AtomicU64,
    pub disconnects: AtomicU64,
    pub reconnects: AtomicU64,
    pub log_damage: AtomicU64,
    pub log_gaps: AtomicU64,
    pub checkpoints: AtomicU64,
    pub checkpoint_errors: AtomicU64,
    /// Partitions whose checkpoint was past the log's end at start (records
    /// lost after they were published): shipping resumed at the end.
    pub rewinds: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    pub partitions: Mutex<Vec<PartitionStatus>>,
    /// Server receive time → PubAck, µs.
    pub lag_us: Mutex<hdrhistogram::Histogram<u64>>,
    /// Server receive time to the publish (the shipper read the record and
    /// handed it to the connection), µs: the shipper's own part of a move's
    /// journey (wake-up included).
    pub read_lag_us: Mutex<hdrhistogram::Histogram<u64>>,
}

impl Status {
    pub fn new(host_id: &str, stream: &str) -> Status {
        Status {
            started: Instant::now(),
            host_id: host_id.into(),
            stream: stream.into(),
            connected: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            disconnects: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            log_damage: AtomicU64::new(0),
            log_gaps: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            checkpoint_errors: AtomicU64::new(0),
            rewinds: AtomicU64::new(0),
            last_error: Mutex::new(None),
            partitions: Mutex::new(Vec::new()),
            lag_us: Mutex::new(new_hist()),
            read_lag_us: Mutex::new(new_hist()),
        }
    }

    pub fn set_error(&self, e: String) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }

    /// Everything as one JSON object (`show stats` on the shipper's socket).
    pub fn json(&self, now_unix_ns: u64) -> Value {
        let parts = self.partitions.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut lag_records = 0u64;
        let mut lag_ns = 0u64;
        let qs: Vec<Value> = parts
            .iter()
            .map(|p| {
                let records = p.log_end.saturating_sub(p.shipped);
                let secs_ns = match (records, p.oldest_unshipped_ns) {
                    (0, _) | (_, None) => 0,
                    (_, Some(t)) => now_unix_ns.saturating_sub(t),
                };
                lag_records += records;
                lag_ns = lag_ns.max(secs_ns);
                json!({
                    "queue": p.queue,
                    "shipped_offset": p.shipped,
                    "checkpoint_offset": p.checkpointed,
                    "log_end": p.log_end,
                    "in_flight": p.in_flight,
                    "lag_records": records,
                    "lag_seconds": secs_ns as f64 / 1e9,
                })
            })
            .collect();
        let summary = |h: &Mutex<hdrhistogram::Histogram<u64>>| percentiles(&h.lock().unwrap_or_else(|p| p.into_inner()));
        let lag = summary(&self.lag_us);
        let read_lag = summary(&self.read_lag_us);
        json!({
            "role": "ship",
            "host_id": self.host_id,
            "stream": self.stream,
            "uptime_s": self.started.elapsed().as_secs_f64(),
            "connected": self.connected.load(Relaxed),
            "sent": self.sent.load(Relaxed),
            "published": self.acked.load(Relaxed),
            "duplicates": self.duplicates.load(Relaxed),
            "errors": self.errors.load(Relaxed),
            "rejected": self.rejected.load(Relaxed),
            "retries": self.retries.load(Relaxed),
            "disconnects": self.disconnects.load(Relaxed),
            "reconnects": self.reconnects.load(Relaxed),
            "log_damage": self.log_damage.load(Relaxed),
            "log_gaps": self.log_gaps.load(Relaxed),
            "checkpoints": self.checkpoints.load(Relaxed),
            "checkpoint_errors": self.checkpoint_errors.load(Relaxed),
            "rewinds": self.rewinds.load(Relaxed),
            "lag_records": lag_records,
            "lag_seconds": lag_ns as f64 / 1e9,
            "ack_lag_us": lag,
            "read_lag_us": read_lag,
            "last_error": *self.last_error.lock().unwrap_or_else(|p| p.into_inner()),
            "queues": qs,
        })
    }
}

/// A histogram as our stats JSON gives it: count, p50, p90, p99, p99.9,
/// max and mean (`{"count": 0}` when empty); the appliance's stats use it
/// too.
pub fn percentiles(h: &hdrhistogram::Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "p50": h.value_at_quantile(0.5),
        "p90": h.value_at_quantile(0.9),
        "p99": h.value_at_quantile(0.99),
        "p999": h.value_at_quantile(0.999),
        "max": h.max(),
        "mean": h.mean().round(),
    })
}

pub fn new_hist() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 1u64 << 40, 2).expect("histogram bounds")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_is_records_behind_the_log_end_and_the_age_of_the_oldest() {
        let s = Status::new("edge-1", "MOVES");
        *s.partitions.lock().unwrap() = vec![
            PartitionStatus { queue: 0, shipped: 90, checkpointed: 80, log_end: 100, oldest_unshipped_ns: Some(1_000_000_000), in_flight: 10 },
            PartitionStatus { queue: 1, shipped: 50, checkpointed: 50, log_end: 50, oldest_unshipped_ns: Some(5), in_flight: 0 },
        ];
        let v = s.json(3_500_000_000);
        assert_eq!(v["lag_records"], 10);
        assert_eq!(v["lag_seconds"], 2.5);
        assert_eq!(v["queues"][1]["lag_seconds"], 0.0, "nothing behind: no age");
        assert_eq!(v["queues"][0]["checkpoint_offset"], 80);
        assert_eq!(v["role"], "ship");
    }
}
