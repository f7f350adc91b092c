//! One accepted move as a JetStream message (docs/shipping.md). The layout
//! is the wire crate's ([`ironhoard_wire::shipped`], shared with the
//! consumer libraries); this module makes it of a log record:
//!
//! - subject `<subject_prefix>.<game_id>` (game id in decimal), or with
//!   `[ship] partitions = N` > 1, `<subject_prefix>.<p>.<game_id>`, p the
//!   game's partition ([`ironhoard_wire::shipped::partition`]);
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
use ironhoard_wire::shipped::{self, MsgId, Shipped, ShippedRepr, Subject};
use ironhoard_wire::Move;

pub use ironhoard_wire::shipped::{HOST_HEADER, OFFSET_HEADER, PAYLOAD_LEN, QUEUE_HEADER};

/// The move's identity, (game_id, player_id, seq) whatever the key_id:
/// what `Nats-Msg-Id` carries.
pub fn msg_id(mv: &[u8; 64]) -> String {
    MsgId::of(&Move::new_unchecked(&mv[..])).to_string()
}

/// The subject a move is published on, with `partitions` streams.
pub fn subject(prefix: &str, partitions: u16, mv: &[u8; 64]) -> String {
    Subject { prefix, game_id: Move::new_unchecked(&mv[..]).game_id(), partitions }.to_string()
}

/// The partition (stream index) of a move's game.
pub fn partition_of(partitions: u16, mv: &[u8; 64]) -> u16 {
    shipped::partition(Move::new_unchecked(&mv[..]).game_id(), partitions)
}

/// The payload of a record.
pub fn payload(r: &Record) -> [u8; PAYLOAD_LEN] {
    ShippedRepr { mv: r.mv, recv_unix_ns: r.recv_unix_ns, queue: r.queue, offset: r.offset }.to_bytes()
}

/// A payload read back (consumers, tests): `None` when it is not a
/// shipped move ([`PAYLOAD_LEN`] bytes, a move's magic and version).
pub fn decode(p: &[u8]) -> Option<Record> {
    let r = ShippedRepr::parse(&Shipped::new_checked(p).ok()?).ok()?;
    Some(Record { mv: r.mv, recv_unix_ns: r.recv_unix_ns, queue: r.queue, offset: r.offset })
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
        assert_eq!(subject("ih.moves", 1, &r.mv), "ih.moves.70000");
        // fnv1a32("70000") % 3, as tools/gen_shipped_vectors.py computes it
        let p3 = partition_of(3, &r.mv);
        assert_eq!(subject("ih.moves", 3, &r.mv), format!("ih.moves.{p3}.70000"));
        assert_eq!(partition_of(1, &r.mv), 0);
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
