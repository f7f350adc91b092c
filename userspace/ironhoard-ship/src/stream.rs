//! `ironhoard ship --ensure-stream`: creates the stream the shipper
//! publishes to, or checks an existing one and says what differs. The
//! shipper itself never creates or changes a stream.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
use async_nats::jetstream::{self, context::GetStreamErrorKind, ErrorCode};

use ironhoard_wire::shipped::{PartitionStream, PartitionSubjects};

use crate::ShipConfig;

/// The streams `[ship]` asks for, one per partition: `stream` when
/// `partitions` is 1, else `<stream>_0` .. `<stream>_<N-1>`.
pub fn stream_names(cfg: &ShipConfig) -> Vec<String> {
    (0..cfg.partitions.max(1)).map(|p| PartitionStream { stream: &cfg.stream, partitions: cfg.partitions, partition: p }.to_string()).collect()
}

/// The stream of partition `p` as `[ship]` asks for it.
pub fn wanted(cfg: &ShipConfig, p: u16) -> Config {
    Config {
        name: PartitionStream { stream: &cfg.stream, partitions: cfg.partitions, partition: p }.to_string(),
        subjects: vec![subjects(cfg, p)],
        num_replicas: cfg.replicas,
        storage: StorageType::File,
        duplicate_window: cfg.duplicate_window,
        max_age: cfg.max_age,
        discard: DiscardPolicy::Old,
        // consumers can fetch one message by sequence or subject cheaply
        allow_direct: true,
        ..Default::default()
    }
}

/// The subjects of partition `p`'s stream: `<subject_prefix>.*` (one
/// subject per game) with one partition, else `<subject_prefix>.<p>.*`.
pub fn subjects(cfg: &ShipConfig, p: u16) -> String {
    PartitionSubjects { prefix: &cfg.subject_prefix, partitions: cfg.partitions, partition: p }.to_string()
}

/// What an existing stream's config differs in, one line each (empty: it
/// is what `[ship]` asks for).
pub fn differences(cfg: &ShipConfig, p: u16, have: &Config) -> Vec<String> {
    let mut d = Vec::new();
    let want = subjects(cfg, p);
    let wide = format!("{}.>", want.trim_end_matches(".*"));
    if !have.subjects.iter().any(|s| *s == want || *s == wide) {
        let on = if cfg.partitions > 1 { "<subject_prefix>.<partition>.<game_id>" } else { "<subject_prefix>.<game_id>" };
        d.push(format!("subjects: {:?}, does not take {want} (the shipper publishes on {on})", have.subjects));
    }
    if have.num_replicas.max(1) != cfg.replicas {
        d.push(format!("replicas: {}, [ship] replicas = {}", have.num_replicas.max(1), cfg.replicas));
    }
    if have.storage != StorageType::File {
        d.push(format!("storage: {:?}, must be file (moves must survive a server restart)", have.storage));
    }
    if have.duplicate_window < cfg.duplicate_window {
        d.push(format!(
            "duplicate_window: {} s, [ship] duplicate_window_s = {} (a shorter window lets a replayed move be stored twice)",
            have.duplicate_window.as_secs_f64(),
            cfg.duplicate_window.as_secs()
        ));
    }
    if have.max_age != cfg.max_age {
        d.push(format!("max_age: {} s, [ship] max_age_s = {}", have.max_age.as_secs(), cfg.max_age.as_secs()));
    }
    if have.discard != DiscardPolicy::Old && (have.max_messages > 0 || have.max_bytes > 0 || have.max_age > Duration::ZERO) {
        d.push("discard: new: a full stream refuses moves (the shipper then stops and lag grows)".into());
    }
    d
}

#[derive(Debug, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Matches,
    Differs(Vec<String>),
}

/// Creates each stream that does not exist, else compares it: one answer
/// per stream, in partition order.
pub async fn ensure(js: &jetstream::Context, cfg: &ShipConfig) -> Result<Vec<(String, Ensured)>, String> {
    let mut out = Vec::new();
    for p in 0..cfg.partitions.max(1) {
        let want = wanted(cfg, p);
        let name = want.name.clone();
        let e = match js.get_stream(&name).await {
            Ok(mut s) => {
                let info = s.info().await.map_err(|e| format!("stream {name}: {e}"))?;
                let d = differences(cfg, p, &info.config);
                if d.is_empty() {
                    Ensured::Matches
                } else {
                    Ensured::Differs(d)
                }
            }
            Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) => {
                js.create_stream(want).await.map_err(|e| format!("creating stream {name}: {e}"))?;
                Ensured::Created
            }
            Err(e) => return Err(format!("stream {name}: {e}")),
        };
        out.push((name, e));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn cfg() -> ShipConfig {
        ShipConfig {
            servers: vec!["nats://127.0.0.1:4222".into()],
            stream: "MOVES".into(),
            subject_prefix: "ih.moves".into(),
            host_id: "edge-1".into(),
            checkpoint: "/tmp/x".into(),
            creds: None,
            nkey: None,
            tls_ca: None,
            in_flight: 1024,
            ack_timeout: Duration::from_secs(5),
            checkpoint_interval: Duration::from_millis(100),
            wake_interval: Duration::from_micros(200),
            poll_interval: Duration::from_millis(2),
            partitions: 1,
            replicas: 3,
            duplicate_window: Duration::from_secs(120),
            max_age: Duration::from_secs(86_400),
            core: None,
            stats_socket: "/tmp/s".into(),
            prometheus_listen: None,
        }
    }

    #[test]
    fn the_wanted_stream_has_no_differences() {
        let c = cfg();
        let w = wanted(&c, 0);
        assert_eq!((w.name.as_str(), w.subjects.clone()), ("MOVES", vec!["ih.moves.*".to_string()]));
        assert!(differences(&c, 0, &w).is_empty());
        assert_eq!(stream_names(&c), ["MOVES"]);
    }

    #[test]
    fn partitions_make_one_stream_each_on_their_own_subjects() {
        let c = ShipConfig { partitions: 3, ..cfg() };
        assert_eq!(stream_names(&c), ["MOVES_0", "MOVES_1", "MOVES_2"]);
        for p in 0..3 {
            let w = wanted(&c, p);
            assert_eq!(w.subjects, vec![format!("ih.moves.{p}.*")]);
            assert!(differences(&c, p, &w).is_empty());
            // another partition's stream does not take this one's subjects
            let other = wanted(&c, (p + 1) % 3);
            assert!(differences(&c, p, &other).join("").contains("does not take"), "{p}");
        }
        // the stream of one partition with N = 1 does not serve N = 3
        assert!(!differences(&c, 0, &wanted(&cfg(), 0)).is_empty());
    }

    #[test]
    fn each_difference_is_named() {
        let c = cfg();
        let mut have = wanted(&c, 0);
        have.subjects = vec!["other.*".into()];
        have.num_replicas = 1;
        have.storage = StorageType::Memory;
        have.duplicate_window = Duration::from_secs(10);
        let d = differences(&c, 0, &have).join("\n");
        for k in ["subjects", "replicas: 1", "storage", "duplicate_window: 10 s"] {
            assert!(d.contains(k), "{k} missing in {d}");
        }
        // a wider subject and a longer window are fine
        let mut ok = wanted(&c, 0);
        ok.subjects = vec!["ih.moves.>".into()];
        ok.duplicate_window = Duration::from_secs(600);
        assert!(differences(&c, 0, &ok).is_empty());
    }
}
