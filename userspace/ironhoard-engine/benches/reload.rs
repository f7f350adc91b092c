//! What a reload costs the poller that applies it, with a full player table
//! of 1 M players (`players_per_worker = 1048576`, the maximum's order):
//! `reconfigure_same_keys` — a reload that changes limits, not keys — and,
//! after a key_id is re-keyed, `begin_reconfigure_rekey` (what the poller
//! does at once) and `sweep_slice` (one slice of the sweep that frees the
//! re-keyed players, done between two batches). The old engine walked the
//! whole table (twice) for every reload in one go.
//! `cargo bench -p ironhoard-engine --bench reload`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{Engine, EngineConfig, Keyring, NoDispatch};
use ironhoard_wire::{MasterKey, MoveRepr};

const PLAYERS: u32 = 1 << 20;

fn cfg() -> EngineConfig {
    EngineConfig { board_width: 64, board_height: 64, bucket: BucketConfig { rate_per_second: 100, burst: 100 }, players: PLAYERS as usize }
}

/// A full table: PLAYERS players of game 1 under key_id `key_id`.
fn full(secrets: &[[u8; 32]], key_id: u8) -> Engine {
    let mut e = Engine::new(cfg(), Arc::new(Keyring::from_secrets(secrets)), 5);
    let mk = MasterKey::new(&secrets[key_id as usize]);
    for p in 0..PLAYERS {
        let r = MoveRepr { key_id, kind: 1, game_id: 1, player_id: p, seq: 1, ..Default::default() };
        let mut b = r.to_bytes(&mk.player_mac(1, p));
        e.process(&mut b, 0, &mut NoDispatch);
    }
    assert_eq!(e.players(), PLAYERS as usize);
    e
}

fn benches(c: &mut Criterion) {
    let secrets = [[1u8; 32], [2u8; 32]];
    let mut g = c.benchmark_group("reload_1m_players");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    let mut e = full(&secrets, 0);
    g.bench_function("reconfigure_same_keys", |b| {
        b.iter(|| e.reconfigure(cfg(), Arc::new(Keyring::from_secrets(&secrets)), 0));
    });
    // key_id 1 re-keyed (no player of it): every reload sweeps the table
    g.bench_function("begin_reconfigure_rekey", |b| {
        let mut n = 0u8;
        b.iter(|| {
            n = n.wrapping_add(1);
            e.begin_reconfigure(cfg(), Arc::new(Keyring::from_secrets(&[secrets[0], [n | 0x40; 32]])))
        });
    });
    g.bench_function("sweep_slice", |b| {
        let mut n = 0u8;
        b.iter_custom(|iters| {
            let mut t = Duration::ZERO;
            for _ in 0..iters {
                if !e.sweeping() {
                    n = n.wrapping_add(1);
                    e.begin_reconfigure(cfg(), Arc::new(Keyring::from_secrets(&[secrets[0], [n & 0x7f; 32]])));
                }
                let t0 = Instant::now();
                e.sweep_step(ironhoard_engine::engine::SWEEP_SLOTS);
                t += t0.elapsed();
            }
            t
        });
    });
    // the whole sweep, slice by slice (what the poller spreads over turns)
    g.bench_function("sweep_whole_table_in_slices", |b| {
        let mut n = 0u8;
        b.iter(|| {
            n = n.wrapping_add(1);
            e.begin_reconfigure(cfg(), Arc::new(Keyring::from_secrets(&[secrets[0], [n | 0x80; 32]])));
            while e.sweeping() {
                e.sweep_step(ironhoard_engine::engine::SWEEP_SLOTS);
            }
        });
    });
    g.finish();
}

criterion_group!(b, benches);
criterion_main!(b);
