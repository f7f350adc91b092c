//! After warm-up, moves through the engine allocate nothing: a counting
//! global allocator sees zero allocations across every verdict, and across
//! a key rotation (players signing under three key_ids in turn: keyed
//! states derived, cached and replaced in their entry).

use std::sync::Arc;

use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::testing::CountingAlloc;
use ironhoard_engine::{Engine, EngineConfig, Keyring, NoDispatch, Verdict};
use ironhoard_wire::{MasterKey, MoveRepr};

#[global_allocator]
static A: CountingAlloc = CountingAlloc::new();

#[test]
fn engine_allocates_nothing_per_move() {
    let secrets = [[5u8; 32], [6u8; 32], [7u8; 32]];
    let cfg = EngineConfig {
        board_width: 64,
        board_height: 64,
        bucket: BucketConfig { rate_per_second: 1_000_000, burst: 1_000_000 },
        players: 1024,
    };
    let mut e = Engine::new(cfg, Arc::new(Keyring::from_secrets(&secrets)), 3);
    let mks: Vec<MasterKey> = secrets.iter().map(MasterKey::new).collect();
    // pre-build every datagram (the test's own allocations happen here)
    let mut moves = Vec::new();
    for p in 0..512u32 {
        for seq in 1..=20u64 {
            // a quarter of the players rotate through the three key_ids
            let key_id = if p % 4 == 0 { (seq % 3) as u8 } else { 0 };
            let mac = mks[key_id as usize].player_mac(1, p);
            let r = MoveRepr {
                key_id,
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
        let mac = mks[0].player_mac(1, p);
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

    // the handoff path: a peer authenticates (key cache misses and hits,
    // forgeries), the owner judges what it trusts, or answers BUSY
    let mut peer = Engine::new(cfg, Arc::new(Keyring::from_secrets(&secrets)), 4);
    let mut owner = Engine::new(cfg, Arc::new(Keyring::from_secrets(&secrets)), 5);
    let mut scratch = moves.clone();
    let before = A.count();
    let mut handed = 0u64;
    for (i, b) in scratch.iter_mut().enumerate() {
        if peer.authenticate(b).is_ok() {
            handed += 1;
            if i % 97 == 0 {
                peer.answer_busy(b);
            } else {
                owner.process_handed(b, i as u64 * 1000, &mut NoDispatch, true);
            }
        }
    }
    let after = A.count();
    assert!(handed > 5000 && peer.key_cache_stats().0 > 4000, "the run exercised the key cache ({handed} handed, {:?})", peer.key_cache_stats());
    assert_eq!(after - before, 0, "allocations during {} handoffs", scratch.len());
}
