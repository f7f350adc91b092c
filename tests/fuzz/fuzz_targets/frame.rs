//! Frame bytes in, verdict and ack bytes out, through the shared packet
//! classifier, the real engine and the in-place ack rewrite — what a poller
//! does with a frame. Never panics; whatever is answered is a well-formed
//! ack frame: IPv4 header 20 bytes with a valid checksum or IPv6 without
//! extension headers, a valid UDP checksum, addresses and ports swapped, a
//! 48-byte ack that verifies under the player's key; nothing unauthenticated
//! is ever answered. The seed corpus holds correctly signed move frames so
//! the mutations reach the engine.
#![no_main]
use std::sync::Arc;

use ironhoard_classify::{classify, fold, rewrite_to_ack, sum16, Class};
use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{Engine, EngineConfig, Keyring, NoDispatch, Verdict};
use ironhoard_wire::{Ack, AckRepr, MasterKey, Move};
use libfuzzer_sys::fuzz_target;

/// The secret the seed corpus is signed with (tests/fuzz/make_corpus.py).
const SECRET: [u8; 32] = *b"ironhoard fuzz corpus secret 01!";

/// Recomputes the IPv4 header checksum of an untagged or singly tagged
/// IPv4 frame (so mutations of header fields are not all stopped by it).
fn fix_ipv4_checksum(f: &mut [u8]) {
    let l3 = match f.get(12..14) {
        Some([0x08, 0x00]) => 14,
        Some([0x81, 0x00]) if f.get(16..18) == Some(&[0x08, 0x00]) => 18,
        _ => return,
    };
    let Some(&vihl) = f.get(l3) else { return };
    let ihl = (vihl & 0x0f) as usize * 4;
    if ihl < 20 || f.len() < l3 + ihl {
        return;
    }
    f[l3 + 10] = 0;
    f[l3 + 11] = 0;
    let c = ironhoard_classify::ipv4_checksum(&f[l3..l3 + ihl]);
    f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
}

fuzz_target!(|input: &[u8]| {
    // first byte: bit 0 = recompute the IPv4 header checksum; the frame follows
    let Some((&mode, frame)) = input.split_first() else { return };
    let mut f = frame.to_vec();
    if mode & 1 != 0 {
        fix_ipv4_checksum(&mut f);
    }
    let orig_owned = f.clone();
    let orig = &orig_owned[..];
    let at = match classify(&f[..], 7777, 64) {
        Class::Serve(at) => at,
        _ => return,
    };
    assert!(at.payload() + 64 <= f.len());
    let keys = Arc::new(Keyring::from_secrets(&[SECRET]));
    let cfg = EngineConfig { board_width: 64, board_height: 64, bucket: BucketConfig { rate_per_second: 100, burst: 100 }, players: 64 };
    let mut e = Engine::new(cfg, keys, 1);
    let p = at.payload();
    let m = Move::new_unchecked(&orig[p..p + 64]);
    let authentic = m.check_header().is_ok()
        && m.key_id() == 0
        && m.verify_tag(&MasterKey::new(&SECRET).player_mac(m.game_id(), m.player_id()));
    match e.process(&mut f[p..p + 64], 1_000, &mut NoDispatch) {
        Verdict::Drop(_) => {}
        Verdict::Ack(_) => {
            assert!(authentic, "an unauthenticated move was answered");
            let n = rewrite_to_ack(&mut f, &at);
            assert_eq!(n, p + 48);
            let g = &f[..n];
            assert_eq!(&g[0..6], &orig[6..12], "ack to the sender's MAC");
            assert_eq!(&g[6..12], &orig[0..6]);
            let l3 = at.l3;
            if at.v6 {
                assert_eq!(g[l3 + 6], 17, "UDP right after the IPv6 header");
                assert_eq!(&g[l3 + 8..l3 + 24], &orig[l3 + 24..l3 + 40], "addresses swapped");
            } else {
                assert_eq!(g[l3], 0x45, "IPv4 without options");
                assert_eq!(fold(sum16(&g[l3..l3 + 20], 0)), 0, "IPv4 header checksum");
                assert_eq!(&g[l3 + 12..l3 + 16], &orig[l3 + 16..l3 + 20], "addresses swapped");
            }
            let l4 = at.l4;
            assert_eq!(&g[l4..l4 + 2], &orig[l4 + 2..l4 + 4], "ports swapped");
            let (s, d) = if at.v6 { (&g[l3 + 8..l3 + 24], &g[l3 + 24..l3 + 40]) } else { (&g[l3 + 12..l3 + 16], &g[l3 + 16..l3 + 20]) };
            let acc = sum16(&g[l4..n], sum16(d, sum16(s, 0)) + 17 + (n - l4) as u32);
            assert_eq!(fold(acc), 0, "UDP checksum");
            let a = Ack::new_checked(&g[p..n]).expect("a well-formed ack");
            let ar = AckRepr::parse(&a).expect("parses");
            assert!(a.verify_tag(&MasterKey::new(&SECRET).player_mac(ar.game_id, ar.player_id)), "the ack is signed by the player's key");
        }
    }
});
