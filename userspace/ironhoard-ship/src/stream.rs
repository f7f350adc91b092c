//! `ironhoard ship --ensure-stream`: creates the stream the shipper
//! publishes to, or checks an existing one and says what differs. The
//! shipper itself never creates or changes a stream.

use std::time::Duration;

use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
use async_nats::jetstream::{self, context::GetStreamErrorKind, ErrorCode};

use crate::ShipConfig;

/// The stream `[ship]` asks for.
pub fn wanted(cfg: &ShipConfig) -> Config {
    Config {
        name: cfg.stream.clone(),
        subjects: vec![subjects(cfg)],
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

/// `<subject_prefix>.*`: one subject per game.
pub fn subjects(cfg: &ShipConfig) -> String {
    format!("{}.*", cfg.subject_prefix)
}

/// What an existing stream's config differs in, one line each (empty: it
/// is what `[ship]` asks for).
pub fn differences(cfg: &ShipConfig, have: &Config) -> Vec<String> {
    let mut d = Vec::new();
    let want = subjects(cfg);
    let wide = format!("{}.>", cfg.subject_prefix);
    if !have.subjects.iter().any(|s| *s == want || *s == wide) {
        d.push(format!("subjects: {:?}, does not take {want} (the shipper publishes on <subject_prefix>.<game_id>)", have.subjects));
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

/// Creates the stream if it does not exist, else compares it.
pub async fn ensure(js: &jetstream::Context, cfg: &ShipConfig) -> Result<Ensured, String> {
    match js.get_stream(&cfg.stream).await {
        Ok(mut s) => {
            let info = s.info().await.map_err(|e| format!("stream {}: {e}", cfg.stream))?;
            let d = differences(cfg, &info.config);
            Ok(if d.is_empty() { Ensured::Matches } else { Ensured::Differs(d) })
        }
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND) => {
            js.create_stream(wanted(cfg)).await.map_err(|e| format!("creating stream {}: {e}", cfg.stream))?;
            Ok(Ensured::Created)
        }
        Err(e) => Err(format!("stream {}: {e}", cfg.stream)),
    }
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
            poll_interval: Duration::from_millis(2),
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
        let w = wanted(&c);
        assert_eq!(w.subjects, vec!["ih.moves.*".to_string()]);
        assert!(differences(&c, &w).is_empty());
    }

    #[test]
    fn each_difference_is_named() {
        let c = cfg();
        let mut have = wanted(&c);
        have.subjects = vec!["other.*".into()];
        have.num_replicas = 1;
        have.storage = StorageType::Memory;
        have.duplicate_window = Duration::from_secs(10);
        let d = differences(&c, &have).join("\n");
        for k in ["subjects", "replicas: 1", "storage", "duplicate_window: 10 s"] {
            assert!(d.contains(k), "{k} missing in {d}");
        }
        // a wider subject and a longer window are fine
        let mut ok = wanted(&c);
        ok.subjects = vec!["ih.moves.>".into()];
        ok.duplicate_window = Duration::from_secs(600);
        assert!(differences(&c, &ok).is_empty());
    }
}
