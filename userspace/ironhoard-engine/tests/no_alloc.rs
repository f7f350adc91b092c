//! After warm-up, moves through the engine allocate nothing: a counting
//! global allocator sees zero allocations across every verdict.

use std::sync::Arc;

use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::testing::CountingAlloc;
use ironhoard_engine::{Engine, EngineConfig, Keyring, NoDispatch, Verdict};
use ironhoard_wire::{MasterKey, MoveRepr};

#[global_allocator]
static A: CountingAlloc = CountingAlloc::new();

#[test]
fn engine_allocates_nothing_per_move() {
    let secret = [5u8; 32];
    let cfg = EngineConfig {
        board_width: 64,
        board_height: 64,
        bucket: BucketConfig { rate_per_second: 1_000_000, burst: 1_000_000 },
        players: 1024,
    };
    let mut e = Engine::new(cfg, Arc::new(Keyring::from_secrets(&[secret])), 3);
    let mk = MasterKey::new(&secret);
    // pre-build every datagram (the test's own allocations happen here)
    let mut moves = Vec::new();
    for p in 0..512u32 {
        let mac = mk.player_mac(1, p);
        for seq in 1..=20u64 {
            let r = MoveRepr {
                key_id: 0,
                kind: 1 + (seq % 3) as u8,
                flags: 0,
                reserved: 0,
                game_id: 1,
                player_id: p,
                seq,
                client_ts: seq,
                x: (seq % 70) as u16, // some off the board: INVALID
                y: 1,
                payload: [0; 12],
            };
            let mut b = r.to_bytes(&mac);
            if seq == 7 {
                b[60] ^= 1; // bad tag
            }
            moves.push(b);
            if seq % 5 == 0 {
                moves.push(r.to_bytes(&mac)); // duplicate
            }
        }
        moves.push(MoveRepr { player_id: p, seq: 1, ..MoveRepr { key_id: 9, ..Default::default() } }.to_bytes(&mac));
    }
    let mut scratch = moves.clone();
    // warm-up: every player enters the table
    for b in scratch.iter_mut().take(100) {
        e.process(b, 0, &mut NoDispatch);
    }
    let mut scratch = moves.clone();
    let before = A.count();
    let mut acks = 0u64;
    for (i, b) in scratch.iter_mut().enumerate() {
        if let Verdict::Ack(_) = e.process(b, i as u64 * 1000, &mut NoDispatch) {
            acks += 1;
        }
    }
    let after = A.count();
    assert!(acks > 5000, "the run exercised real acks ({acks})");
    assert_eq!(after - before, 0, "allocations during {} moves", scratch.len());
}
