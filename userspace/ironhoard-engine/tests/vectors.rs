//! The wire test vectors' scenarios (tools/gen_test_vectors.py, an
//! independent Python implementation of SPEC §1) replayed through the real
//! engine: a stated config, a datagram sequence, and for each step the
//! expected status with its exact ack bytes, or the silent-drop reason.

use std::sync::Arc;

use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{Engine, EngineConfig, Keyring, NoDispatch, Verdict};
use serde_json::Value;

fn vectors() -> Value {
    serde_json::from_str(include_str!("../../ironhoard-wire/testdata/vectors-v1.json")).unwrap()
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("config key {k}"))
}

#[test]
fn every_status_and_drop_reason_as_the_independent_generator_says() {
    let f = vectors();
    let scenarios = f["scenarios"].as_array().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for sc in scenarios {
        let name = sc["name"].as_str().unwrap();
        let c = &sc["config"];
        let cfg = EngineConfig {
            board_width: u(c, "board_width") as u16,
            board_height: u(c, "board_height") as u16,
            bucket: BucketConfig { rate_per_second: u(c, "rate_per_second") as u32, burst: u(c, "rate_burst") as u32 },
            players: u(c, "players") as usize,
        };
        let secrets: Vec<[u8; 32]> =
            sc["master_secrets_hex"].as_array().unwrap().iter().map(|h| hex::decode(h.as_str().unwrap()).unwrap().try_into().unwrap()).collect();
        let mut e = Engine::new(cfg, Arc::new(Keyring::from_secrets(&secrets)), 5);
        // the engine's clock is monotonic ns; the scenario's t_ns is relative
        let t0 = 1_000_000_000_000u64;
        for (i, st) in sc["steps"].as_array().unwrap().iter().enumerate() {
            let mut buf = hex::decode(st["datagram_hex"].as_str().unwrap()).unwrap();
            let expect = st["expect"].as_str().unwrap();
            let v = e.process(&mut buf, t0 + st["t_ns"].as_u64().unwrap(), &mut NoDispatch);
            let got = match v {
                Verdict::Ack(s) => s.name().to_string(),
                Verdict::Drop(r) => format!("drop:{}", r.name()),
            };
            assert_eq!(got, expect, "scenario {name} step {i}");
            if let Verdict::Ack(_) = v {
                assert_eq!(hex::encode(&buf[..48]), st["ack_hex"].as_str().unwrap(), "scenario {name} step {i}: ack bytes");
            }
            seen.insert(got);
        }
    }
    for want in ["accepted", "duplicate", "stale", "invalid", "rate_limited", "busy"]
        .into_iter()
        .map(String::from)
        .chain(ironhoard_engine::DropReason::ENGINE.iter().map(|r| format!("drop:{}", r.name())))
    {
        assert!(seen.contains(&want), "the vectors exercise {want}");
    }
}
