//! Checked views over move and ack bytes, and their parsed representations.

use crate::keys::{PlayerMac, TAG_LEN};
use crate::{Error, Kind, Status, ACK_LEN, ACK_MAGIC, ACK_SIGNED_LEN, MOVE_LEN, MOVE_MAGIC, MOVE_SIGNED_LEN, VERSION};

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const KEY_ID: usize = 3;
    // move
    pub const KIND: usize = 4;
    pub const FLAGS: usize = 5;
    pub const RESERVED: Range<usize> = 6..8;
    // ack
    pub const STATUS: usize = 4;
    pub const ACK_ZERO: Range<usize> = 5..8;
    // both
    pub const GAME_ID: Range<usize> = 8..12;
    pub const PLAYER_ID: Range<usize> = 12..16;
    pub const SEQ: Range<usize> = 16..24;
    pub const CLIENT_TS: Range<usize> = 24..32;
    // move
    pub const X: Range<usize> = 32..34;
    pub const Y: Range<usize> = 34..36;
    pub const PAYLOAD: Range<usize> = 36..48;
    pub const MOVE_TAG: Range<usize> = 48..64;
    // ack
    pub const ACK_TAG: Range<usize> = 32..48;
}

#[inline]
fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}
#[inline]
fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}
#[inline]
fn be64(b: &[u8]) -> u64 {
    u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// `Error::WrongLength` unless `buf` is exactly `len` bytes.
#[inline]
fn check_exact_len(buf: &[u8], len: usize) -> Result<(), Error> {
    if buf.len() == len {
        Ok(())
    } else {
        Err(Error::WrongLength(buf.len()))
    }
}

/// Length, magic and version, in that order (the order the appliance
/// counts its drops): the stateless, keyless checks of a move or an ack.
#[inline]
fn check_header(buf: &[u8], len: usize, magic: [u8; 2]) -> Result<(), Error> {
    check_exact_len(buf, len)?;
    let got = [buf[field::MAGIC.start], buf[field::MAGIC.start + 1]];
    if got != magic {
        return Err(Error::BadMagic(u16::from_be_bytes(got)));
    }
    if buf[field::VERSION] != VERSION {
        return Err(Error::BadVersion(buf[field::VERSION]));
    }
    Ok(())
}

/// Accessors for the fields moves and acks share, at the same offsets:
/// magic, version, key_id, and the echoed game_id, player_id, seq, client_ts.
macro_rules! header_accessors {
    () => {
        pub fn into_inner(self) -> T {
            self.buffer
        }
        /// The underlying bytes.
        pub fn as_bytes(&self) -> &[u8] {
            self.buffer.as_ref()
        }
        pub fn magic(&self) -> [u8; 2] {
            let b = self.buffer.as_ref();
            [b[0], b[1]]
        }
        pub fn version(&self) -> u8 {
            self.buffer.as_ref()[field::VERSION]
        }
        pub fn key_id(&self) -> u8 {
            self.buffer.as_ref()[field::KEY_ID]
        }
        pub fn game_id(&self) -> u32 {
            be32(&self.buffer.as_ref()[field::GAME_ID])
        }
        pub fn player_id(&self) -> u32 {
            be32(&self.buffer.as_ref()[field::PLAYER_ID])
        }
        pub fn seq(&self) -> u64 {
            be64(&self.buffer.as_ref()[field::SEQ])
        }
        pub fn client_ts(&self) -> u64 {
            be64(&self.buffer.as_ref()[field::CLIENT_TS])
        }
    };
}

/// A view over the 64 bytes of a move datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Move<T> {
    /// Wraps a buffer without checking it. Accessors may panic unless
    /// [`check_len`](Self::check_len) succeeded.
    pub const fn new_unchecked(buffer: T) -> Move<T> {
        Move { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Move<T>, Error> {
        let m = Move::new_unchecked(buffer);
        m.check_len()?;
        Ok(m)
    }

    /// A datagram is a move only if it is exactly 64 bytes long.
    pub fn check_len(&self) -> Result<(), Error> {
        check_exact_len(self.buffer.as_ref(), MOVE_LEN)
    }

    /// Checks length, magic and version: the stateless, keyless checks, in
    /// the order the appliance counts its drops.
    pub fn check_header(&self) -> Result<(), Error> {
        check_header(self.buffer.as_ref(), MOVE_LEN, MOVE_MAGIC)
    }

    header_accessors!();
    /// Raw kind byte (see [`Kind::from_u8`]).
    pub fn kind(&self) -> u8 {
        self.buffer.as_ref()[field::KIND]
    }
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }
    pub fn reserved(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::RESERVED])
    }
    pub fn x(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::X])
    }
    pub fn y(&self) -> u16 {
        be16(&self.buffer.as_ref()[field::Y])
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
    pub fn tag(&self) -> &[u8] {
        &self.buffer.as_ref()[field::MOVE_TAG]
    }
    /// The bytes covered by the tag (0..48).
    pub fn signed_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..MOVE_SIGNED_LEN]
    }
    /// Constant-time check of the tag against the player's MAC.
    pub fn verify_tag(&self, mac: &PlayerMac) -> bool {
        mac.verify(self.signed_bytes(), self.tag())
    }
    /// [`verify_tag`](Self::verify_tag), and in the same pass the tag of
    /// the ACCEPTED ack to this move (see [`PlayerMac::verify_and_tag`]):
    /// an accepted move then costs about 1.4 tags' time instead of two.
    /// `None` when the tag does not verify. Hand the result to
    /// [`ack_in_place_presigned`].
    pub fn verify_tag_presign(&self, mac: &PlayerMac) -> Option<Presigned> {
        let accepted = ack_header(self.buffer.as_ref(), Status::Accepted);
        mac.verify_and_tag(self.signed_bytes(), self.tag(), &accepted).map(|accepted| Presigned { accepted })
    }
}

/// The tag of the ACCEPTED ack to one verified move, computed while its
/// tag was checked ([`Move::verify_tag_presign`]). It fits that move only.
#[derive(Clone, Copy)]
pub struct Presigned {
    accepted: [u8; TAG_LEN],
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Move<T> {
    pub fn set_magic(&mut self) {
        self.buffer.as_mut()[field::MAGIC].copy_from_slice(&MOVE_MAGIC);
    }
    pub fn set_version(&mut self, v: u8) {
        self.buffer.as_mut()[field::VERSION] = v;
    }
    pub fn set_key_id(&mut self, v: u8) {
        self.buffer.as_mut()[field::KEY_ID] = v;
    }
    pub fn set_kind(&mut self, v: u8) {
        self.buffer.as_mut()[field::KIND] = v;
    }
    pub fn set_flags(&mut self, v: u8) {
        self.buffer.as_mut()[field::FLAGS] = v;
    }
    pub fn set_reserved(&mut self, v: u16) {
        self.buffer.as_mut()[field::RESERVED].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_game_id(&mut self, v: u32) {
        self.buffer.as_mut()[field::GAME_ID].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_player_id(&mut self, v: u32) {
        self.buffer.as_mut()[field::PLAYER_ID].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_seq(&mut self, v: u64) {
        self.buffer.as_mut()[field::SEQ].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_client_ts(&mut self, v: u64) {
        self.buffer.as_mut()[field::CLIENT_TS].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_x(&mut self, v: u16) {
        self.buffer.as_mut()[field::X].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_y(&mut self, v: u16) {
        self.buffer.as_mut()[field::Y].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_payload(&mut self, v: &[u8; 12]) {
        self.buffer.as_mut()[field::PAYLOAD].copy_from_slice(v);
    }
    pub fn tag_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::MOVE_TAG]
    }
    /// Computes the tag over bytes 0..48 and writes it at 48..64.
    pub fn fill_tag(&mut self, mac: &PlayerMac) {
        let t = mac.tag(self.signed_bytes());
        self.tag_mut().copy_from_slice(&t);
    }
}

/// The parsed form of a move (the fields a client chooses).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoveRepr {
    pub key_id: u8,
    /// Raw kind byte: a client (or a test) may send kinds the server rejects.
    pub kind: u8,
    pub flags: u8,
    pub reserved: u16,
    pub game_id: u32,
    pub player_id: u32,
    pub seq: u64,
    pub client_ts: u64,
    pub x: u16,
    pub y: u16,
    pub payload: [u8; 12],
}

impl MoveRepr {
    /// Parses a move after checking its length, magic and version. The tag
    /// is not checked here (that needs the player's key).
    pub fn parse<T: AsRef<[u8]>>(m: &Move<T>) -> Result<MoveRepr, Error> {
        m.check_header()?;
        let mut payload = [0u8; 12];
        payload.copy_from_slice(m.payload());
        Ok(MoveRepr {
            key_id: m.key_id(),
            kind: m.kind(),
            flags: m.flags(),
            reserved: m.reserved(),
            game_id: m.game_id(),
            player_id: m.player_id(),
            seq: m.seq(),
            client_ts: m.client_ts(),
            x: m.x(),
            y: m.y(),
            payload,
        })
    }

    /// Writes the move, tag included, into a 64-byte buffer.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, m: &mut Move<T>, mac: &PlayerMac) {
        m.set_magic();
        m.set_version(VERSION);
        m.set_key_id(self.key_id);
        m.set_kind(self.kind);
        m.set_flags(self.flags);
        m.set_reserved(self.reserved);
        m.set_game_id(self.game_id);
        m.set_player_id(self.player_id);
        m.set_seq(self.seq);
        m.set_client_ts(self.client_ts);
        m.set_x(self.x);
        m.set_y(self.y);
        m.set_payload(&self.payload);
        m.fill_tag(mac);
    }

    /// Convenience: the 64 signed bytes of this move.
    pub fn to_bytes(&self, mac: &PlayerMac) -> [u8; MOVE_LEN] {
        let mut buf = [0u8; MOVE_LEN];
        self.emit(&mut Move::new_unchecked(&mut buf[..]), mac);
        buf
    }

    /// The kind, if it is one of the v1 kinds.
    pub fn kind(&self) -> Option<Kind> {
        Kind::from_u8(self.kind)
    }
}

/// A view over the 48 bytes of an ack datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ack<T> {
    pub const fn new_unchecked(buffer: T) -> Ack<T> {
        Ack { buffer }
    }

    pub fn new_checked(buffer: T) -> Result<Ack<T>, Error> {
        let a = Ack::new_unchecked(buffer);
        a.check_len()?;
        Ok(a)
    }

    /// An ack is exactly 48 bytes.
    pub fn check_len(&self) -> Result<(), Error> {
        check_exact_len(self.buffer.as_ref(), ACK_LEN)
    }

    /// Length, magic and version.
    pub fn check_header(&self) -> Result<(), Error> {
        check_header(self.buffer.as_ref(), ACK_LEN, ACK_MAGIC)
    }

    header_accessors!();
    /// Raw status byte (see [`Status::from_u8`]).
    pub fn status(&self) -> u8 {
        self.buffer.as_ref()[field::STATUS]
    }
    pub fn zero(&self) -> [u8; 3] {
        let b = &self.buffer.as_ref()[field::ACK_ZERO];
        [b[0], b[1], b[2]]
    }
    pub fn tag(&self) -> &[u8] {
        &self.buffer.as_ref()[field::ACK_TAG]
    }
    pub fn signed_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..ACK_SIGNED_LEN]
    }
    /// Constant-time check of the tag against the player's MAC.
    pub fn verify_tag(&self, mac: &PlayerMac) -> bool {
        mac.verify(self.signed_bytes(), self.tag())
    }
}

/// The parsed form of an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckRepr {
    pub key_id: u8,
    pub status: Status,
    pub game_id: u32,
    pub player_id: u32,
    pub seq: u64,
    pub client_ts: u64,
}

/// Why bytes that look like an ack could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    #[error(transparent)]
    Header(#[from] Error),
    #[error("unknown status {0}")]
    UnknownStatus(u8),
}

impl AckRepr {
    /// Parses an ack (length, magic, version, status). The tag is not
    /// checked here.
    pub fn parse<T: AsRef<[u8]>>(a: &Ack<T>) -> Result<AckRepr, AckError> {
        a.check_header()?;
        let status = Status::from_u8(a.status()).ok_or(AckError::UnknownStatus(a.status()))?;
        Ok(AckRepr {
            key_id: a.key_id(),
            status,
            game_id: a.game_id(),
            player_id: a.player_id(),
            seq: a.seq(),
            client_ts: a.client_ts(),
        })
    }

    /// The ack for a move: echoes key_id, game_id, player_id, seq, client_ts.
    pub fn for_move<T: AsRef<[u8]>>(m: &Move<T>, status: Status) -> AckRepr {
        AckRepr {
            key_id: m.key_id(),
            status,
            game_id: m.game_id(),
            player_id: m.player_id(),
            seq: m.seq(),
            client_ts: m.client_ts(),
        }
    }

    /// Writes the 48 ack bytes, tag included, into `buf[..48]`.
    ///
    /// `buf` may be the very buffer the move arrived in: every field of the
    /// ack is taken from `self`, so the move bytes may be overwritten.
    ///
    /// # Panics
    /// If `buf` is shorter than 48 bytes.
    pub fn emit(&self, buf: &mut [u8], mac: &PlayerMac) {
        let b = &mut buf[..ACK_LEN];
        b[field::MAGIC].copy_from_slice(&ACK_MAGIC);
        b[field::VERSION] = VERSION;
        b[field::KEY_ID] = self.key_id;
        b[field::STATUS] = self.status as u8;
        b[field::ACK_ZERO].copy_from_slice(&[0, 0, 0]);
        b[field::GAME_ID].copy_from_slice(&self.game_id.to_be_bytes());
        b[field::PLAYER_ID].copy_from_slice(&self.player_id.to_be_bytes());
        b[field::SEQ].copy_from_slice(&self.seq.to_be_bytes());
        b[field::CLIENT_TS].copy_from_slice(&self.client_ts.to_be_bytes());
        let t = mac.tag(&b[..ACK_SIGNED_LEN]);
        b[field::ACK_TAG].copy_from_slice(&t);
    }
}

/// Rewrites a move, in place, into its ack: the ack header reuses the move's
/// echoed fields (key_id 3, game_id 8..12, player_id 12..16, seq 16..24,
/// client_ts 24..32 stand at the same offsets in both), so only magic,
/// status, the zero bytes and the tag are written. `buf` must hold a move
/// (at least 48 bytes); the first 48 bytes become the ack.
pub fn ack_in_place(buf: &mut [u8], status: Status, mac: &PlayerMac) {
    ack_in_place_presigned(buf, status, mac, None);
}

/// [`ack_in_place`] for a move checked with [`Move::verify_tag_presign`]:
/// an ACCEPTED ack takes the tag computed then; any other status, or no
/// `presigned`, is signed now. `presigned` must come from the move in `buf`.
pub fn ack_in_place_presigned(buf: &mut [u8], status: Status, mac: &PlayerMac, presigned: Option<&Presigned>) {
    let h = ack_header(buf, status);
    let t = match presigned {
        Some(p) if status == Status::Accepted => p.accepted,
        _ => mac.tag(&h),
    };
    let b = &mut buf[..ACK_LEN];
    b[..ACK_SIGNED_LEN].copy_from_slice(&h);
    b[field::ACK_TAG].copy_from_slice(&t);
}

/// The signed bytes of the ack to the move in `mv` (at least 32 bytes):
/// the echoed fields stay where they are, magic, version, status and the
/// zero bytes are the ack's.
fn ack_header(mv: &[u8], status: Status) -> [u8; ACK_SIGNED_LEN] {
    let mut h = [0u8; ACK_SIGNED_LEN];
    h.copy_from_slice(&mv[..ACK_SIGNED_LEN]);
    h[field::MAGIC].copy_from_slice(&ACK_MAGIC);
    h[field::VERSION] = VERSION;
    h[field::STATUS] = status as u8;
    h[field::ACK_ZERO].copy_from_slice(&[0, 0, 0]);
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MasterKey;

    fn mac() -> PlayerMac {
        MasterKey::new(&[7u8; 32]).player_mac(1, 2)
    }

    fn repr() -> MoveRepr {
        MoveRepr {
            key_id: 0,
            kind: 1,
            flags: 0,
            reserved: 0,
            game_id: 1,
            player_id: 2,
            seq: 9,
            client_ts: 77,
            x: 5,
            y: 6,
            payload: [3; 12],
        }
    }

    #[test]
    fn a_presigned_ack_is_the_ack_for_every_status() {
        let m = mac();
        let mv = repr().to_bytes(&m);
        let pre = Move::new_checked(&mv[..]).unwrap().verify_tag_presign(&m).expect("genuine move verifies");
        for status in
            [Status::Accepted, Status::Duplicate, Status::Stale, Status::Invalid, Status::RateLimited, Status::Busy]
        {
            let (mut want, mut got) = (mv, mv);
            ack_in_place(&mut want, status, &m);
            ack_in_place_presigned(&mut got, status, &m, Some(&pre));
            assert_eq!(got, want, "{status:?}");
            assert!(Ack::new_checked(&got[..ACK_LEN]).unwrap().verify_tag(&m), "{status:?}");
        }
    }

    #[test]
    fn a_forged_move_is_not_presigned() {
        let m = mac();
        let mut mv = repr().to_bytes(&m);
        for i in 0..MOVE_LEN {
            let mut bad = mv;
            bad[i] ^= 0x01;
            assert!(Move::new_checked(&bad[..]).unwrap().verify_tag_presign(&m).is_none(), "byte {i} flipped");
        }
        mv[63] ^= 0x80;
        assert!(Move::new_checked(&mv[..]).unwrap().verify_tag_presign(&m).is_none());
        let other = MasterKey::new(&[8u8; 32]).player_mac(1, 2);
        assert!(Move::new_checked(&repr().to_bytes(&m)[..]).unwrap().verify_tag_presign(&other).is_none());
    }

    #[test]
    fn check_len_rejects_every_other_length() {
        let buf = [0u8; 128];
        for len in 0..128 {
            let r = Move::new_checked(&buf[..len]);
            assert_eq!(r.is_ok(), len == MOVE_LEN, "len {len}");
            let r = Ack::new_checked(&buf[..len]);
            assert_eq!(r.is_ok(), len == ACK_LEN, "len {len}");
        }
    }

    #[test]
    fn header_errors_in_order() {
        let mut b = repr().to_bytes(&mac());
        assert_eq!(Move::new_unchecked(&b[..63]).check_header(), Err(Error::WrongLength(63)));
        b[2] = 2;
        assert_eq!(Move::new_unchecked(&b[..]).check_header(), Err(Error::BadVersion(2)));
        b[0] = 0x49;
        b[1] = 0x41; // an ack's magic is not a move's
        assert_eq!(Move::new_unchecked(&b[..]).check_header(), Err(Error::BadMagic(0x4941)));
    }

    #[test]
    fn roundtrip_and_fields() {
        let m = mac();
        let b = repr().to_bytes(&m);
        let v = Move::new_checked(&b[..]).unwrap();
        assert_eq!(MoveRepr::parse(&v).unwrap(), repr());
        assert_eq!(v.x(), 5);
        assert_eq!(v.y(), 6);
        assert!(v.verify_tag(&m));
        assert_eq!(repr().kind(), Some(Kind::Step));
    }

    #[test]
    fn ack_in_place_equals_emit() {
        let m = mac();
        let mut b = repr().to_bytes(&m);
        let mv = Move::new_checked(b).unwrap();
        for s in Status::ALL {
            let mut out = [0u8; ACK_LEN];
            AckRepr::for_move(&mv, s).emit(&mut out, &m);
            ack_in_place(&mut b, s, &m);
            assert_eq!(&b[..ACK_LEN], &out[..]);
            let a = Ack::new_checked(&out[..]).unwrap();
            assert_eq!(AckRepr::parse(&a).unwrap().status, s);
            assert_eq!(a.zero(), [0, 0, 0]);
            b = repr().to_bytes(&m);
        }
    }

    #[test]
    fn unknown_status_is_refused() {
        let m = mac();
        let mut out = [0u8; ACK_LEN];
        AckRepr::for_move(&Move::new_unchecked(repr().to_bytes(&m)), Status::Busy).emit(&mut out, &m);
        out[4] = 6;
        assert_eq!(AckRepr::parse(&Ack::new_unchecked(&out[..])), Err(AckError::UnknownStatus(6)));
    }

    #[test]
    fn verify_refuses_wrong_tag_lengths() {
        let m = mac();
        let t = m.tag(b"abc");
        assert!(m.verify(b"abc", &t));
        assert!(!m.verify(b"abc", &t[..15]));
        assert!(!m.verify(b"abd", &t));
    }
}
