//! Per-game counters and the journey histogram (appliance receive time →
//! just before the game's callback), as JSON and Prometheus text.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;

/// Now, Unix ns (wall clock, as the appliance's receive time).
pub fn now_unix_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Journey times are kept from 1 µs to 1 h at 3 significant digits (longer
/// ones are recorded as 1 h).
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).unwrap_or_else(|_| unreachable!("constant bounds are valid"))
}

/// Percentiles of a journey histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JourneySnapshot {
    pub count: u64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl JourneySnapshot {
    pub fn of(h: &Histogram<u64>) -> JourneySnapshot {
        if h.is_empty() {
            return JourneySnapshot::default();
        }
        JourneySnapshot {
            count: h.len(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// What one game's consumer counted.
#[derive(Debug)]
pub struct GameMetrics {
    game_id: u32,
    moves: AtomicU64,
    refused: AtomicU64,
    out_of_order: AtomicU64,
    journey: Mutex<Histogram<u64>>,
}

impl GameMetrics {
    pub fn new(game_id: u32) -> GameMetrics {
        GameMetrics {
            game_id,
            moves: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            out_of_order: AtomicU64::new(0),
            journey: Mutex::new(histogram()),
        }
    }

    pub fn game_id(&self) -> u32 {
        self.game_id
    }

    /// A verified move about to be handed to the game, received by the
    /// appliance at `recv_unix_ns`; `now_ns` is the wall clock now.
    pub fn record_journey(&self, recv_unix_ns: u64, now_ns: u64) {
        let us = now_ns.saturating_sub(recv_unix_ns) / 1000;
        self.journey.lock().unwrap_or_else(|e| e.into_inner()).saturating_record(us.max(1));
    }

    /// A move the game applied.
    pub fn record_move(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }
    pub fn record_refused(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }
    pub fn record_out_of_order(&self) {
        self.out_of_order.fetch_add(1, Ordering::Relaxed);
    }

    pub fn moves(&self) -> u64 {
        self.moves.load(Ordering::Relaxed)
    }
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
    pub fn out_of_order(&self) -> u64 {
        self.out_of_order.load(Ordering::Relaxed)
    }

    pub fn journey(&self) -> JourneySnapshot {
        JourneySnapshot::of(&self.journey.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// This game's metrics as JSON.
    pub fn snapshot(&self) -> serde_json::Value {
        serde_json::json!({
            "game": self.game_id,
            "moves": self.moves(),
            "refused": self.refused(),
            "out_of_order": self.out_of_order(),
            "journey_us": self.journey(),
        })
    }
}

/// Totals over several games (the journey histograms merged).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub consumed: u64,
    pub refused: u64,
    pub out_of_order: u64,
    pub journey_us: JourneySnapshot,
}

impl Summary {
    pub fn of<'a>(games: impl IntoIterator<Item = &'a GameMetrics>) -> Summary {
        let mut h = histogram();
        let mut s = Summary::default();
        for g in games {
            s.consumed += g.moves();
            s.refused += g.refused();
            s.out_of_order += g.out_of_order();
            // same bounds: add cannot fail
            let _ = h.add(&*g.journey.lock().unwrap_or_else(|e| e.into_inner()));
        }
        s.journey_us = JourneySnapshot::of(&h);
        s
    }
}

type Quantile = (&'static str, fn(&JourneySnapshot) -> u64);
const QUANTILES: [Quantile; 4] =
    [("0.5", |j| j.p50), ("0.9", |j| j.p90), ("0.99", |j| j.p99), ("0.999", |j| j.p999)];

/// The metrics of several games in Prometheus text format.
pub fn prometheus_text<'a>(games: impl IntoIterator<Item = &'a GameMetrics> + Clone) -> String {
    let mut s = String::new();
    let mut family = |name: &str, kind: &str, help: &str, sample: &dyn Fn(&mut String, &GameMetrics)| {
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} {kind}");
        for g in games.clone() {
            sample(&mut s, g);
        }
    };
    family("ironhoard_consumer_moves_total", "counter", "Verified moves the game applied (acked).", &|s, g| {
        let _ = writeln!(s, "ironhoard_consumer_moves_total{{game=\"{}\"}} {}", g.game_id, g.moves());
    });
    family(
        "ironhoard_consumer_refused_total",
        "counter",
        "Messages refused (malformed or tag not verifying): terminated, never applied.",
        &|s, g| {
            let _ = writeln!(s, "ironhoard_consumer_refused_total{{game=\"{}\"}} {}", g.game_id, g.refused());
        },
    );
    family(
        "ironhoard_consumer_out_of_order_total",
        "counter",
        "Moves whose seq was not above the last seen for their player.",
        &|s, g| {
            let _ = writeln!(s, "ironhoard_consumer_out_of_order_total{{game=\"{}\"}} {}", g.game_id, g.out_of_order());
        },
    );
    family(
        "ironhoard_consumer_journey_microseconds",
        "gauge",
        "Appliance receive time to the game's callback, percentiles since start.",
        &|s, g| {
            let j = g.journey();
            for (q, f) in QUANTILES {
                let _ = writeln!(s, "ironhoard_consumer_journey_microseconds{{game=\"{}\",quantile=\"{q}\"}} {}", g.game_id, f(&j));
            }
        },
    );
    family(
        "ironhoard_consumer_journey_microseconds_count",
        "counter",
        "Moves measured by ironhoard_consumer_journey_microseconds.",
        &|s, g| {
            let _ = writeln!(s, "ironhoard_consumer_journey_microseconds_count{{game=\"{}\"}} {}", g.game_id, g.journey().count);
        },
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journey_percentiles_in_microseconds() {
        let g = GameMetrics::new(7);
        assert_eq!(g.journey(), JourneySnapshot::default());
        let t0 = 1_800_000_000_000_000_000;
        for us in 1..=1000u64 {
            g.record_journey(t0, t0 + us * 1000);
        }
        g.record_journey(t0 + 5, t0); // a clock step back: counted as 1 µs
        let j = g.journey();
        assert_eq!(j.count, 1001);
        assert!((499..=501).contains(&j.p50), "{j:?}");
        assert!((899..=901).contains(&j.p90), "{j:?}");
        assert!((989..=991).contains(&j.p99), "{j:?}");
        assert_eq!(j.max, 1000);
        let v = g.snapshot();
        assert_eq!(v["journey_us"]["count"], 1001);
        assert_eq!(v["journey_us"]["max"], 1000);
        for k in ["count", "p50", "p90", "p99", "p999", "max"] {
            assert!(v["journey_us"][k].is_u64(), "{k}");
        }
    }

    #[test]
    fn summary_adds_games() {
        let a = GameMetrics::new(1);
        let b = GameMetrics::new(2);
        a.record_move();
        a.record_move();
        b.record_move();
        b.record_refused();
        b.record_out_of_order();
        a.record_journey(0, 10_000);
        b.record_journey(0, 30_000);
        let s = Summary::of([&a, &b]);
        assert_eq!((s.consumed, s.refused, s.out_of_order, s.journey_us.count), (3, 1, 1, 2));
        assert_eq!(s.journey_us.max, 30);
        let v = serde_json::to_value(s).unwrap();
        assert_eq!(v["journey_us"]["p50"], 10);
    }

    #[test]
    fn prometheus_families_and_samples() {
        let a = GameMetrics::new(7);
        let b = GameMetrics::new(9);
        a.record_move();
        b.record_refused();
        b.record_out_of_order();
        a.record_journey(0, 250_000);
        let t = prometheus_text([&a, &b]);
        for line in [
            "# TYPE ironhoard_consumer_moves_total counter",
            "ironhoard_consumer_moves_total{game=\"7\"} 1",
            "ironhoard_consumer_moves_total{game=\"9\"} 0",
            "ironhoard_consumer_refused_total{game=\"9\"} 1",
            "ironhoard_consumer_out_of_order_total{game=\"9\"} 1",
            "# TYPE ironhoard_consumer_journey_microseconds gauge",
            "ironhoard_consumer_journey_microseconds{game=\"7\",quantile=\"0.5\"} 250",
            "ironhoard_consumer_journey_microseconds{game=\"7\",quantile=\"0.999\"} 250",
            "ironhoard_consumer_journey_microseconds{game=\"9\",quantile=\"0.9\"} 0",
            "ironhoard_consumer_journey_microseconds_count{game=\"7\"} 1",
        ] {
            assert!(t.lines().any(|l| l == line), "missing {line:?} in\n{t}");
        }
        // one HELP and one TYPE per family, every sample line well formed
        assert_eq!(t.lines().filter(|l| l.starts_with("# HELP")).count(), 5);
        assert_eq!(t.lines().filter(|l| l.starts_with("# TYPE")).count(), 5);
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = l.rsplit_once(' ').unwrap();
            assert!(name.starts_with("ironhoard_consumer_") && name.ends_with('}'), "{l}");
            value.parse::<u64>().unwrap();
        }
    }
}
