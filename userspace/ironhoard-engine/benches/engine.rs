//! Per-move costs of the engine: warm ACCEPTED (player in the table, a
//! fresh seq each time), the same during a key rotation (each player's
//! moves alternating between two key_ids, both keyed states cached), warm
//! forged (a bad tag from a known player), cold (key derived), the ack
//! emit alone, and the tag check alone and with the ACCEPTED ack signed
//! alongside it. `cargo bench -p ironhoard-engine`.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{Engine, EngineConfig, Keyring, NoDispatch};
use ironhoard_wire::{ack_in_place, MasterKey, MoveRepr, Status};

const SECRET: [u8; 32] = [0x42; 32];
const SECRET1: [u8; 32] = [0x43; 32];

fn engine(players: usize) -> Engine {
    let cfg = EngineConfig {
        board_width: 1024,
        board_height: 1024,
        bucket: BucketConfig { rate_per_second: u32::MAX, burst: u32::MAX },
        players,
    };
    Engine::new(cfg, Arc::new(Keyring::from_secrets(&[SECRET, SECRET1])), 11)
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
        for p in 0..players {
            let mut b = repr(p, 1).to_bytes(&macs[p as usize]);
            e.process(&mut b, 0, &mut NoDispatch);
        }
        // each iteration a fresh seq (signed in setup, not measured), so
        // every move is ACCEPTED however many iterations criterion runs
        let mut next = vec![2u64; players as usize];
        let mut i = 0usize;
        let mut fresh = move || {
            let p = i % players as usize;
            i += 1;
            next[p] += 1;
            repr(p as u32, next[p]).to_bytes(&macs[p])
        };
        g.bench_function("process_warm_accepted", |bch| {
            bch.iter_batched_ref(&mut fresh, |b| black_box(e.process(b, 0, &mut NoDispatch)), BatchSize::SmallInput)
        });
        assert_eq!(
            e.counters.status.iter().sum::<u64>(),
            e.counters.status(Status::Accepted),
            "every measured move was ACCEPTED"
        );
        // the same with a bad tag: a forgery from a known player
        g.bench_function("process_warm_forged", |bch| {
            bch.iter_batched_ref(
                || {
                    let mut b = fresh();
                    b[63] ^= 1;
                    b
                },
                |b| black_box(e.process(b, 0, &mut NoDispatch)),
                BatchSize::SmallInput,
            )
        });
    }

    // a key rotation: 1024 players, each move under the other key_id than
    // the player's last one (the worst case of the two cached keyed states)
    {
        let players = 1024u32;
        let mk1 = MasterKey::new(&SECRET1);
        let macs: Vec<_> = (0..players).map(|p| [mk.player_mac(1, p), mk1.player_mac(1, p)]).collect();
        let mut e = engine(4096);
        for p in 0..players {
            for (k, seq) in [(0u8, 1u64), (1, 2)] {
                let mut r = repr(p, seq);
                r.key_id = k;
                let mut b = r.to_bytes(&macs[p as usize][k as usize]);
                e.process(&mut b, 0, &mut NoDispatch);
            }
        }
        let mut next = vec![2u64; players as usize];
        let mut i = 0usize;
        let mut fresh = move || {
            let p = i % players as usize;
            i += 1;
            next[p] += 1;
            let mut r = repr(p as u32, next[p]);
            r.key_id = (next[p] % 2) as u8;
            r.to_bytes(&macs[p][r.key_id as usize])
        };
        g.bench_function("process_warm_accepted_two_key_ids", |bch| {
            bch.iter_batched_ref(&mut fresh, |b| black_box(e.process(b, 0, &mut NoDispatch)), BatchSize::SmallInput)
        });
        assert_eq!(
            e.counters.status.iter().sum::<u64>(),
            e.counters.status(Status::Accepted),
            "every measured move was ACCEPTED"
        );
        assert_eq!(e.players(), players as usize, "one entry per player");
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
        // the check and the ACCEPTED ack's tag side by side (the engine's path)
        g.bench_function("tag_verify_and_presign", |bch| {
            bch.iter(|| {
                black_box(ironhoard_wire::Move::new_unchecked(black_box(&mv[..])).verify_tag_presign(&mac).is_some())
            })
        });
        // a forgery: what a flood of bad tags costs per packet
        let mut forged = mv;
        forged[63] ^= 1;
        g.bench_function("tag_verify_forged_presign", |bch| {
            bch.iter(|| {
                black_box(
                    ironhoard_wire::Move::new_unchecked(black_box(&forged[..])).verify_tag_presign(&mac).is_some(),
                )
            })
        });
    }
    g.finish();
}

criterion_group!(b, benches);
criterion_main!(b);
