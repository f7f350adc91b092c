//! Per-move costs of the engine: warm (player in the table), cold (key
//! derived), and the ack emit alone. `cargo bench -p ironhoard-engine`.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{Engine, EngineConfig, Keyring, NoDispatch};
use ironhoard_wire::{ack_in_place, MasterKey, MoveRepr, Status};

const SECRET: [u8; 32] = [0x42; 32];

fn engine(players: usize) -> Engine {
    let cfg = EngineConfig {
        board_width: 1024,
        board_height: 1024,
        bucket: BucketConfig { rate_per_second: u32::MAX, burst: u32::MAX },
        players,
    };
    Engine::new(cfg, Arc::new(Keyring::from_secrets(&[SECRET])), 11)
}

fn repr(player: u32, seq: u64) -> MoveRepr {
    MoveRepr { key_id: 0, kind: 1, game_id: 1, player_id: player, seq, client_ts: seq, x: 3, y: 4, ..Default::default() }
}

fn benches(c: &mut Criterion) {
    let mk = MasterKey::new(&SECRET);
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));

    // warm: 1024 players already in the table, each move a new seq -> ACCEPTED
    {
        let players = 1024u32;
        let macs: Vec<_> = (0..players).map(|p| mk.player_mac(1, p)).collect();
        let mut e = engine(4096);
        let mut seq = 1u64;
        for p in 0..players {
            let mut b = repr(p, seq).to_bytes(&macs[p as usize]);
            e.process(&mut b, 0, &mut NoDispatch);
        }
        // pre-sign a ring of moves so signing is not measured
        let ring: Vec<[u8; 64]> = (0..65536u64)
            .map(|i| {
                let p = (i % players as u64) as u32;
                repr(p, 2 + i / players as u64).to_bytes(&macs[p as usize])
            })
            .collect();
        let mut i = 0usize;
        g.bench_function("process_warm_accepted", |bch| {
            bch.iter_batched_ref(
                || {
                    let b = ring[i % ring.len()];
                    i += 1;
                    if i % ring.len() == 0 {
                        seq += 1; // the ring wraps: later runs see duplicates, still warm
                    }
                    b
                },
                |b| black_box(e.process(b, 0, &mut NoDispatch)),
                BatchSize::SmallInput,
            )
        });
    }

    // cold: a player never seen (table stays empty: every move is INVALID
    // after the key derivation and tag check, so the table never fills)
    {
        let mut e = engine(16);
        let mut p = 0u32;
        g.bench_function("process_cold_derive_key", |bch| {
            bch.iter_batched_ref(
                || {
                    p = p.wrapping_add(1);
                    let mut r = repr(p, 1);
                    r.x = 5000; // off the board: INVALID, no slot taken
                    r.to_bytes(&mk.player_mac(1, p))
                },
                |b| black_box(e.process(b, 0, &mut NoDispatch)),
                BatchSize::SmallInput,
            )
        });
    }

    // the ack alone: rewrite + one HMAC with a cached keyed state
    {
        let mac = mk.player_mac(1, 1);
        let mv = repr(1, 1).to_bytes(&mac);
        g.bench_function("ack_emit_in_place", |bch| {
            bch.iter_batched_ref(|| mv, |b| ack_in_place(black_box(b), Status::Accepted, &mac), BatchSize::SmallInput)
        });
        g.bench_function("tag_verify", |bch| {
            bch.iter(|| black_box(ironhoard_wire::Move::new_unchecked(black_box(&mv[..])).verify_tag(&mac)))
        });
    }
    g.finish();
}

criterion_group!(b, benches);
criterion_main!(b);
