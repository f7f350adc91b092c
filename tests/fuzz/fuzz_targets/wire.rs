//! The wire crate on arbitrary bytes: checked views never panic; a move
//! that parses re-emits to the same signed bytes; an ack that parses
//! verifies under the key that made it and its fields survive a round trip.
#![no_main]
use ironhoard_wire::{Ack, AckRepr, MasterKey, Move, MoveRepr};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mac = MasterKey::new(&[0x5a; 32]).player_mac(1, 2);
    if let Ok(m) = Move::new_checked(data) {
        let _ = m.verify_tag(&mac);
        if let Ok(r) = MoveRepr::parse(&m) {
            let mut out = [0u8; 64];
            let mut v = Move::new_unchecked(&mut out[..]);
            r.emit(&mut v, &mac);
            assert_eq!(&out[..48], &data[..48], "parse then emit keeps the signed bytes");
            assert!(Move::new_unchecked(&out[..]).verify_tag(&mac), "emit signs");
            // the ack for it: parses back to the same fields
            let mut buf = out;
            ironhoard_wire::ack_in_place(&mut buf, ironhoard_wire::Status::Duplicate, &mac);
            let a = Ack::new_checked(&buf[..48]).expect("an ack made by ack_in_place is well formed");
            let ar = AckRepr::parse(&a).expect("and parses");
            assert_eq!((ar.game_id, ar.player_id, ar.seq, ar.client_ts), (r.game_id, r.player_id, r.seq, r.client_ts));
        }
    }
    if let Ok(a) = Ack::new_checked(data) {
        let _ = AckRepr::parse(&a);
    }
});
