//! Per-move costs of the engine: warm ACCEPTED (player in the table, a
//! fresh seq each time), the same during a key rotation (each player's
//! moves alternating between two key_ids, both keyed states cached), warm
//! forged (a bad tag from a known player), cold (key derived), the ack
//! emit alone, and the tag check alone and with the ACCEPTED ack signed
//! alongside it; and a move handed between two pollers (the non-owner
//! authenticates it, the owner judges it), before the key cache and the
//! owner's trust (key derived and tag checked on the non-owner, tag checked
//! again on the owner) and after (the cached key's check on the non-owner,
//! the ack's signature alone on the owner). `cargo bench -p ironhoard-engine`.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{Engine, EngineConfig, Keyring, NoDispatch};
use ironhoard_wire::{ack_in_place, MasterKey, MoveRepr, Status};

const SECRET: [u8; 32] = [0x42; 32];
const SECRET1: [u8; 32] = [0x43; 32];

fn engine(players: usize) -> Engine {
    engine_with_cache(players, ironhoard_engine::DEFAULT_KEY_CACHE_SLOTS)
}

fn engine_with_cache(players: usize, key_cache_slots: usize) -> Engine {
    let cfg = EngineConfig {
        board_width: 1024,
        board_height: 1024,
        bucket: BucketConfig { rate_per_second: u32::MAX, burst: u32::MAX },
        players,
    };
    Engine::with_key_cache(cfg, Arc::new(Keyring::from_secrets(&[SECRET, SECRET1])), 11, key_cache_slots)
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

/// A move handed from the poller that received it (`peer`) to the one
/// owning its player (`owner`, warm: 1024 players in its table), per move.
fn handoff(c: &mut Criterion) {
    let mk = MasterKey::new(&SECRET);
    let mut g = c.benchmark_group("handoff");
    g.throughput(Throughput::Elements(1));
    let players = 1024u32;
    let macs: Vec<_> = (0..players).map(|p| mk.player_mac(1, p)).collect();
    for (name, cache_slots, trusted) in [("handoff_before_key_derived_tag_checked_twice", 0, false), ("handoff_after_key_cached_owner_trusts", 4096, true)] {
        let mut peer = engine_with_cache(4096, cache_slots);
        let mut owner = engine(4096);
        for p in 0..players {
            let mut b = repr(p, 1).to_bytes(&macs[p as usize]);
            peer.authenticate(&b).expect("genuine");
            owner.process(&mut b, 0, &mut NoDispatch);
        }
        let mut next = vec![2u64; players as usize];
        let mut i = 0usize;
        let macs = macs.clone();
        let mut fresh = move || {
            let p = i % players as usize;
            i += 1;
            next[p] += 1;
            repr(p as u32, next[p]).to_bytes(&macs[p])
        };
        g.bench_function(name, |bch| {
            bch.iter_batched_ref(
                &mut fresh,
                |b| {
                    peer.authenticate(b).expect("genuine");
                    black_box(owner.process_handed(b, 0, &mut NoDispatch, trusted))
                },
                BatchSize::SmallInput,
            )
        });
        let accepted = owner.counters.status(Status::Accepted);
        assert_eq!(owner.counters.status.iter().sum::<u64>(), accepted, "{name}: every handed move ACCEPTED");
    }
    g.finish();
}

/// A poller's batch of 64 moves from a lab-sized crowd (10 games of 1000
/// players, spread over a table of the default 65 536 players, so the keys
/// and states cover far more memory than the players do), each move a
/// fresh seq (ACCEPTED), with the caches disturbed between batches as the
/// kernel's receive and transmit work disturbs them (a 4 MiB sweep in the
/// setup, not measured): judged as they come, and with the poller's
/// prefetch hints (`Engine::prefetch_batch` / `prefetch_ahead`).
fn scattered(c: &mut Criterion) {
    const GAMES: u32 = 10;
    const PER_GAME: u32 = 1000;
    const BATCH: usize = 64;
    let mk = MasterKey::new(&SECRET);
    let macs: Vec<_> = (0..GAMES * PER_GAME).map(|i| mk.player_mac(i / PER_GAME + 1, i % PER_GAME)).collect();
    let mv = |i: u32, seq: u64| {
        let r = MoveRepr { game_id: i / PER_GAME + 1, player_id: i % PER_GAME, ..repr(0, seq) };
        r.to_bytes(&macs[i as usize])
    };
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    for prefetch in [false, true] {
        let mut e = engine(65_536);
        for i in 0..GAMES * PER_GAME {
            e.process(&mut mv(i, 1), 0, &mut NoDispatch);
        }
        let mut next = vec![1u64; (GAMES * PER_GAME) as usize];
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        let mut sweep = vec![0u8; 4 << 20];
        let mut setup = move || {
            for l in sweep.chunks_mut(64) {
                l[0] = l[0].wrapping_add(1);
            }
            black_box(&sweep);
            (0..BATCH)
                .map(|_| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let i = (rng % (GAMES * PER_GAME) as u64) as u32;
                    next[i as usize] += 1;
                    mv(i, next[i as usize])
                })
                .collect::<Vec<_>>()
        };
        let name = if prefetch { "process_64_scattered_prefetched" } else { "process_64_scattered" };
        g.bench_function(name, |bch| {
            bch.iter_batched_ref(
                &mut setup,
                |batch| {
                    let n = batch.len();
                    if prefetch {
                        e.prefetch_batch(n, |i| &batch[i]);
                    }
                    for k in 0..n {
                        if prefetch {
                            e.prefetch_ahead(k, n, |j| &batch[j]);
                        }
                        black_box(e.process(&mut batch[k], 0, &mut NoDispatch));
                    }
                },
                BatchSize::SmallInput,
            )
        });
        assert_eq!(e.counters.status.iter().sum::<u64>(), e.counters.status(Status::Accepted), "every move ACCEPTED");
    }
}

criterion_group!(b, benches, handoff, scattered);
criterion_main!(b);
