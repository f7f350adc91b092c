//! A shipped move, parsed into an owned struct, and why one is refused.

use ironhoard_wire::{Kind, MoveRepr, Shipped, ShippedRepr, TAG_LEN};

use crate::Keyring;

/// Why a message is refused (terminated, never handed to the game).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not a shipped move payload (length, magic, version).
    #[error("malformed payload: {0}")]
    Malformed(ironhoard_wire::Error),
    /// No master secret for the move's key_id.
    #[error("no master secret for key_id {0}")]
    UnknownKey(u8),
    /// The tag does not verify under the player key of its key_id.
    #[error("tag does not verify (key_id {key_id}, game {game_id}, player {player_id}, seq {seq})")]
    BadTag { key_id: u8, game_id: u32, player_id: u32, seq: u64 },
    /// The move is of another game than the consumer's.
    #[error("move of game {found} on the subject of game {want}")]
    WrongGame { found: u32, want: u32 },
}

/// One shipped move with every field (docs/protocol.md, docs/shipping.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShippedMove {
    /// The move's fields (key_id, kind as its raw byte — see
    /// [`ShippedMove::kind`] —, flags, game_id, player_id, seq, client_ts,
    /// x, y, payload), as the wire crate parses them.
    pub repr: MoveRepr,
    pub tag: [u8; TAG_LEN],
    /// The 64 move bytes as received by the appliance.
    pub raw: [u8; 64],
    /// Appliance receive time, Unix ns.
    pub recv_unix_ns: u64,
    /// Move log queue and offset on the shipping host.
    pub queue: u16,
    pub offset: u64,
    /// `Ironhoard-Host` header, if any.
    pub host: Option<String>,
    /// `Nats-Msg-Id` header, if any (`ih1.<game>.<player>.<seq>`).
    pub msg_id: Option<String>,
    /// JetStream stream sequence (0 when not from a stream).
    pub stream_seq: u64,
    /// Set by the consumer: seq not above the last seen for this player.
    pub out_of_order: bool,
}

impl ShippedMove {
    /// Parses a payload (length, magic and version checked; the tag is not:
    /// see [`ShippedMove::verify`]).
    pub fn parse(payload: &[u8]) -> Result<ShippedMove, Refusal> {
        let s = Shipped::new_checked(payload).map_err(Refusal::Malformed)?;
        let r = ShippedRepr::parse(&s).map_err(Refusal::Malformed)?;
        let mv = s.mv();
        let m = MoveRepr::parse(&mv).map_err(Refusal::Malformed)?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(mv.tag());
        Ok(ShippedMove {
            repr: m,
            tag,
            raw: r.mv,
            recv_unix_ns: r.recv_unix_ns,
            queue: r.queue,
            offset: r.offset,
            host: None,
            msg_id: None,
            stream_seq: 0,
            out_of_order: false,
        })
    }

    /// Checks the tag with the player key derived from the master secret
    /// of the move's key_id.
    pub fn verify(&self, keys: &Keyring) -> Result<(), Refusal> {
        let mac = keys.player_mac(self.repr.key_id, self.repr.game_id, self.repr.player_id).ok_or(Refusal::UnknownKey(self.repr.key_id))?;
        if ironhoard_wire::Move::new_unchecked(&self.raw[..]).verify_tag(&mac) {
            Ok(())
        } else {
            Err(Refusal::BadTag { key_id: self.repr.key_id, game_id: self.repr.game_id, player_id: self.repr.player_id, seq: self.repr.seq })
        }
    }

    /// The kind, if it is a known one.
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.repr.kind)
    }

    /// The move's identity as the shipper computes it (`ih1.<game>.<player>.<seq>`).
    pub fn identity(&self) -> String {
        ironhoard_wire::MsgId { game_id: self.repr.game_id, player_id: self.repr.player_id, seq: self.repr.seq }.to_string()
    }

    /// The payload again (82 bytes), as shipped.
    pub fn to_payload(&self) -> [u8; ironhoard_wire::PAYLOAD_LEN] {
        ShippedRepr { mv: self.raw, recv_unix_ns: self.recv_unix_ns, queue: self.queue, offset: self.offset }.to_bytes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ironhoard_wire::{MasterKey, Move};

    /// A signed payload under `secret` (tests of this crate).
    pub(crate) fn payload(secret: &[u8; 32], key_id: u8, game: u32, player: u32, seq: u64) -> [u8; 82] {
        let m = MoveRepr { key_id, kind: 2, game_id: game, player_id: player, seq, client_ts: 11, x: 3, y: 4, payload: [9; 12], ..Default::default() };
        let mut mv = [0u8; 64];
        m.emit(&mut Move::new_unchecked(&mut mv[..]), &MasterKey::new(secret).player_mac(game, player));
        ShippedRepr { mv, recv_unix_ns: 1_700_000_000_000_000_123, queue: 2, offset: 99 }.to_bytes()
    }

    #[test]
    fn parses_every_field() {
        let p = payload(&[1; 32], 4, 7, 8, 9);
        let m = ShippedMove::parse(&p).unwrap();
        let r = &m.repr;
        assert_eq!((r.key_id, r.kind, r.flags, r.game_id, r.player_id, r.seq), (4, 2, 0, 7, 8, 9));
        assert_eq!((r.client_ts, r.x, r.y, r.payload), (11, 3, 4, [9; 12]));
        assert_eq!(&m.tag[..], &p[48..64]);
        assert_eq!(&m.raw[..], &p[..64]);
        assert_eq!((m.recv_unix_ns, m.queue, m.offset), (1_700_000_000_000_000_123, 2, 99));
        assert_eq!(m.kind(), Some(Kind::Dig));
        assert_eq!(m.identity(), "ih1.7.8.9");
        assert_eq!(m.to_payload(), p);
    }

    #[test]
    fn refuses_malformed() {
        let p = payload(&[1; 32], 4, 7, 8, 9);
        assert_eq!(ShippedMove::parse(&p[..81]), Err(Refusal::Malformed(ironhoard_wire::Error::WrongLength(81))));
        let mut bad = p;
        bad[1] = 0;
        assert!(matches!(ShippedMove::parse(&bad), Err(Refusal::Malformed(ironhoard_wire::Error::BadMagic(_)))));
    }

    #[test]
    fn verifies_only_the_right_key() {
        let p = payload(&[1; 32], 4, 7, 8, 9);
        let m = ShippedMove::parse(&p).unwrap();
        let mut k = Keyring::new();
        assert_eq!(m.verify(&k), Err(Refusal::UnknownKey(4)));
        k.insert(4, &[2; 32]);
        assert!(matches!(m.verify(&k), Err(Refusal::BadTag { seq: 9, .. })));
        k.insert(4, &[1; 32]);
        assert_eq!(m.verify(&k), Ok(()));
        // any flipped bit of the move is refused, the trailer is not signed
        for i in 0..64 {
            let mut f = p;
            f[i] ^= 1;
            if let Ok(fm) = ShippedMove::parse(&f) {
                assert!(fm.verify(&k).is_err(), "byte {i}");
            }
        }
        let mut f = p;
        f[70] ^= 1;
        assert_eq!(ShippedMove::parse(&f).unwrap().verify(&k), Ok(()));
    }
}
