//! One accepted move as a JetStream message (docs/shipping.md).
//!
//! - subject `<subject_prefix>.<game_id>` (game id in decimal);
//! - `Nats-Msg-Id` = the move's identity, `ih1.<game_id>.<player_id>.<seq>`
//!   (decimal), whatever the key_id (SPEC §1: one anti-replay window per
//!   player, so one seq is one move): the same move shipped twice — by a
//!   restarted shipper, or by two edge hosts, also when they accepted it
//!   under two key_ids during a rotation — is stored once within the
//!   stream's duplicate window;
//! - headers `Ironhoard-Host` (the `[ship] host_id`), `Ironhoard-Queue` and
//!   `Ironhoard-Offset` (where the record is in that host's move log);
//! - payload, [`PAYLOAD_LEN`] bytes: the 64 move bytes exactly as received
//!   (tag included, so a consumer holding the master secret re-verifies
//!   it), then the server receive time (u64, Unix ns), the queue (u16) and
//!   the log offset (u64), big-endian.

use ironhoard_movelog::Record;
use ironhoard_wire::Move;

/// Payload length: move (64) + receive time (8) + queue (2) + offset (8).
pub const PAYLOAD_LEN: usize = 82;
/// Header names.
pub const HOST_HEADER: &str = "Ironhoard-Host";
pub const QUEUE_HEADER: &str = "Ironhoard-Queue";
pub const OFFSET_HEADER: &str = "Ironhoard-Offset";

/// The move's identity, (game_id, player_id, seq) whatever the key_id:
/// what `Nats-Msg-Id` carries.
pub fn msg_id(mv: &[u8; 64]) -> String {
    let m = Move::new_unchecked(&mv[..]);
    format!("ih1.{}.{}.{}", m.game_id(), m.player_id(), m.seq())
}

/// The subject a move is published on.
pub fn subject(prefix: &str, mv: &[u8; 64]) -> String {
    format!("{prefix}.{}", Move::new_unchecked(&mv[..]).game_id())
}

/// The payload of a record.
pub fn payload(r: &Record) -> [u8; PAYLOAD_LEN] {
    let mut p = [0u8; PAYLOAD_LEN];
    p[..64].copy_from_slice(&r.mv);
    p[64..72].copy_from_slice(&r.recv_unix_ns.to_be_bytes());
    p[72..74].copy_from_slice(&r.queue.to_be_bytes());
    p[74..82].copy_from_slice(&r.offset.to_be_bytes());
    p
}

/// A payload read back (consumers, tests): `None` when it is not
/// [`PAYLOAD_LEN`] bytes.
pub fn decode(p: &[u8]) -> Option<Record> {
    if p.len() != PAYLOAD_LEN {
        return None;
    }
    let mut mv = [0u8; 64];
    mv.copy_from_slice(&p[..64]);
    Some(Record {
        mv,
        recv_unix_ns: u64::from_be_bytes(p[64..72].try_into().ok()?),
        queue: u16::from_be_bytes(p[72..74].try_into().ok()?),
        offset: u64::from_be_bytes(p[74..82].try_into().ok()?),
    })
}

/// Whether `s` can be a subject prefix: dot-separated tokens of letters,
/// digits, `-` and `_` (no wildcards, no empty token).
pub fn valid_prefix(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && s.split('.').all(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhoard_wire::{Kind, MasterKey, MoveRepr};

    fn record() -> Record {
        let repr = MoveRepr { key_id: 3, kind: Kind::Dig as u8, flags: 0, reserved: 0, game_id: 70_000, player_id: 4_000_000_000, seq: 1 << 40, client_ts: 9, x: 1, y: 2, payload: [7; 12] };
        let mut mv = [0u8; 64];
        let mac = MasterKey::new(&[9; 32]).player_mac(70_000, 4_000_000_000);
        repr.emit(&mut Move::new_unchecked(&mut mv[..]), &mac);
        Record { offset: 123_456_789_012, recv_unix_ns: 1_795_000_000_000_000_001, queue: 5, mv }
    }

    #[test]
    fn identity_subject_and_payload_round_trip() {
        let r = record();
        assert_eq!(msg_id(&r.mv), "ih1.70000.4000000000.1099511627776");
        assert_eq!(subject("ih.moves", &r.mv), "ih.moves.70000");
        let p = payload(&r);
        assert_eq!(&p[..64], &r.mv[..], "the move bytes come first, as received");
        assert_eq!(decode(&p), Some(r));
        assert_eq!(decode(&p[..81]), None);
    }

    #[test]
    fn identity_ignores_where_and_when_a_move_was_received() {
        let a = record();
        let b = Record { offset: 1, recv_unix_ns: 2, queue: 0, ..a };
        assert_eq!(msg_id(&a.mv), msg_id(&b.mv), "the same move from two hosts or two offsets");
        let mut c = a;
        c.mv[23] ^= 1; // another seq
        assert_ne!(msg_id(&a.mv), msg_id(&c.mv));
    }

    #[test]
    fn identity_is_the_same_under_any_key_id() {
        // one seq accepted under key 3 by one host and under key 4 by
        // another (a rotation): one move, one id, stored once
        let a = record();
        let mut repr = MoveRepr::parse(&Move::new_checked(&a.mv[..]).unwrap()).unwrap();
        repr.key_id = 4;
        let mut mv = [0u8; 64];
        repr.emit(&mut Move::new_unchecked(&mut mv[..]), &MasterKey::new(&[8; 32]).player_mac(70_000, 4_000_000_000));
        assert_ne!(mv, a.mv, "another key_id, another secret: other bytes");
        assert_eq!(msg_id(&mv), msg_id(&a.mv));
        for (i, other) in [(8, "game"), (12, "player"), (16, "seq")] {
            let mut c = a;
            c.mv[i + 3] ^= 1;
            assert_ne!(msg_id(&c.mv), msg_id(&a.mv), "another {other}");
        }
    }

    #[test]
    fn prefixes() {
        assert!(valid_prefix("ih.moves"));
        assert!(valid_prefix("edge-1_x"));
        for bad in ["", "a..b", "a.*", "a.>", "a b", ".a", "a."] {
            assert!(!valid_prefix(bad), "{bad:?}");
        }
    }
}
