//! The poller's per-frame work — parse Ethernet/VLAN/IP/UDP, validate in
//! place with the engine, rewrite the frame into the ack — allocates
//! nothing after warm-up (counting global allocator). The rings around it
//! are fixed arrays and a stash whose capacity is the frame count.

use std::sync::Arc;

use ironhoard_classify::rewrite_to_ack;
use ironhoard_dataplane::frame::{build_udp, parse_udp, FrameSpec};
use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::testing::CountingAlloc;
use ironhoard_engine::{Engine, EngineConfig, Keyring, NoDispatch, Verdict};
use ironhoard_wire::{MasterKey, MoveRepr};

#[global_allocator]
static A: CountingAlloc = CountingAlloc::new();

#[test]
fn frame_path_allocates_nothing() {
    let secret = [9u8; 32];
    let cfg = EngineConfig {
        board_width: 64,
        board_height: 64,
        bucket: BucketConfig { rate_per_second: 1_000_000, burst: 1_000_000 },
        players: 256,
    };
    let mut e = Engine::new(cfg, Arc::new(Keyring::from_secrets(&[secret])), 1);
    let mk = MasterKey::new(&secret);
    let mut frames = Vec::new();
    for p in 0..128u32 {
        let mac = mk.player_mac(3, p);
        for seq in 1..=8u64 {
            let mv = MoveRepr { key_id: 0, kind: 1, game_id: 3, player_id: p, seq, x: 1, y: 1, ..Default::default() }.to_bytes(&mac);
            let (src, dst) = if p % 2 == 0 {
                ("198.18.0.2:4000".parse().unwrap(), "198.18.0.1:7777".parse().unwrap())
            } else {
                ("[2001:2::2]:4000".parse().unwrap(), "[2001:2::1]:7777".parse().unwrap())
            };
            let s = FrameSpec { src_mac: [2; 6], dst_mac: [4; 6], vlan: (p % 3 == 0).then_some(5), src, dst, ipv4_options: 0 };
            let mut f = [0u8; 2048];
            build_udp(&mut f, &s, &mv);
            frames.push(f);
        }
    }
    let mut work = frames.clone();
    for f in work.iter_mut().take(64) {
        let u = parse_udp(f, 7777, 64).unwrap();
        e.process(&mut f[u.payload()..u.payload() + u.payload_len], 0, &mut NoDispatch);
    }
    let mut work = frames.clone();
    let before = A.count();
    let mut acks = 0;
    for f in work.iter_mut() {
        let u = parse_udp(f, 7777, 64).expect("parses");
        let p = u.payload();
        if let Verdict::Ack(_) = e.process(&mut f[p..p + u.payload_len], 1000, &mut NoDispatch) {
            rewrite_to_ack(f, &u);
            acks += 1;
        }
    }
    assert_eq!(acks, frames.len());
    assert_eq!(A.count() - before, 0, "allocations on the frame path");
}
