//! One accepted move as a JetStream message (docs/shipping.md, "The
//! messages"): the payload layout, the message identity and the routing
//! rule (subject and stream, with or without partitions), shared by the
//! shipper and the consumers.
//!
//! Payload, [`PAYLOAD_LEN`] bytes, big-endian:
//!
//! | bytes  | field                                              |
//! |--------|----------------------------------------------------|
//! | 0..64  | the 64 move bytes exactly as received, tag included |
//! | 64..72 | server receive time, u64, Unix ns                  |
//! | 72..74 | queue (log partition), u16                         |
//! | 74..82 | log offset, u64                                    |
//!
//! Routing: with `partitions = 1` a game's moves go to subject
//! `<prefix>.<game>` in stream `<stream>`; with `partitions = N > 1` to
//! `<prefix>.<p>.<game>` in stream `<stream>_<p>`, where
//! `p = `[`partition`]`(game, N)` (FNV-1a 32 of the decimal game id mod N,
//! as NATS's `{{partition(N,1)}}` subject mapping computes it).
//!
//! The formatting helpers ([`Subject`], [`StreamName`], [`PartitionStream`],
//! [`PartitionSubjects`], [`MsgId`]) implement [`core::fmt::Display`], so
//! callers format with `to_string()`/`write!` without allocating here.

use core::fmt;

use crate::{Error, Move, MOVE_LEN};

/// Payload length: move (64) + receive time (8) + queue (2) + offset (8).
pub const PAYLOAD_LEN: usize = 82;
/// Header carrying the `[ship] host_id` of the edge host that shipped it.
pub const HOST_HEADER: &str = "Ironhoard-Host";
/// Header carrying the move log queue (partition) of the record.
pub const QUEUE_HEADER: &str = "Ironhoard-Queue";
/// Header carrying the move log offset of the record.
pub const OFFSET_HEADER: &str = "Ironhoard-Offset";

mod field {
    use core::ops::Range;
    pub const MOVE: Range<usize> = 0..64;
    pub const RECV_UNIX_NS: Range<usize> = 64..72;
    pub const QUEUE: Range<usize> = 72..74;
    pub const OFFSET: Range<usize> = 74..82;
}

/// A view over the bytes of a shipped message's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shipped<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Shipped<T> {
    /// Wraps a buffer without checking it. Accessors may panic unless
    /// [`check_len`](Self::check_len) succeeded.
    pub const fn new_unchecked(buffer: T) -> Shipped<T> {
        Shipped { buffer }
    }

    /// Wraps a buffer after [`check_len`](Self::check_len) and the move's
    /// header check (magic and version, [`Move::check_header`]).
    pub fn new_checked(buffer: T) -> Result<Shipped<T>, Error> {
        let s = Shipped::new_unchecked(buffer);
        s.check_len()?;
        s.mv().check_header()?;
        Ok(s)
    }

    /// A payload is exactly [`PAYLOAD_LEN`] bytes long.
    pub fn check_len(&self) -> Result<(), Error> {
        let len = self.buffer.as_ref().len();
        if len == PAYLOAD_LEN {
            Ok(())
        } else {
            Err(Error::WrongLength(len))
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The underlying bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The 64 move bytes as received.
    pub fn move_bytes(&self) -> &[u8; MOVE_LEN] {
        let b = &self.buffer.as_ref()[field::MOVE];
        // infallible after check_len: the range is exactly 64 bytes
        b.try_into().unwrap_or_else(|_| unreachable!())
    }

    /// A [`Move`] view over the move bytes.
    pub fn mv(&self) -> Move<&[u8]> {
        Move::new_unchecked(&self.buffer.as_ref()[field::MOVE])
    }

    /// Server receive time, Unix ns.
    pub fn recv_unix_ns(&self) -> u64 {
        let b = &self.buffer.as_ref()[field::RECV_UNIX_NS];
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// The move log queue (partition) the record was in.
    pub fn queue(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::QUEUE];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// The record's offset in that queue.
    pub fn offset(&self) -> u64 {
        let b = &self.buffer.as_ref()[field::OFFSET];
        u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
    }

    /// The move's identity (what `Nats-Msg-Id` carries).
    pub fn msg_id(&self) -> MsgId {
        MsgId::of(&self.mv())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Shipped<T> {
    pub fn move_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::MOVE]
    }
    pub fn set_recv_unix_ns(&mut self, v: u64) {
        self.buffer.as_mut()[field::RECV_UNIX_NS].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_queue(&mut self, v: u16) {
        self.buffer.as_mut()[field::QUEUE].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_offset(&mut self, v: u64) {
        self.buffer.as_mut()[field::OFFSET].copy_from_slice(&v.to_be_bytes());
    }
}

/// The parsed form of a shipped payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShippedRepr {
    /// The 64 move bytes as received (tag included).
    pub mv: [u8; MOVE_LEN],
    pub recv_unix_ns: u64,
    pub queue: u16,
    pub offset: u64,
}

impl ShippedRepr {
    /// Parses a payload after checking its length and the move's magic and
    /// version. The tag is not checked (that needs the master secret).
    pub fn parse<T: AsRef<[u8]>>(s: &Shipped<T>) -> Result<ShippedRepr, Error> {
        s.check_len()?;
        s.mv().check_header()?;
        Ok(ShippedRepr { mv: *s.move_bytes(), recv_unix_ns: s.recv_unix_ns(), queue: s.queue(), offset: s.offset() })
    }

    /// Writes the payload into `buf`.
    pub fn emit(&self, buf: &mut [u8; PAYLOAD_LEN]) {
        let mut s = Shipped::new_unchecked(&mut buf[..]);
        s.move_bytes_mut().copy_from_slice(&self.mv);
        s.set_recv_unix_ns(self.recv_unix_ns);
        s.set_queue(self.queue);
        s.set_offset(self.offset);
    }

    /// The payload as an array.
    pub fn to_bytes(&self) -> [u8; PAYLOAD_LEN] {
        let mut b = [0u8; PAYLOAD_LEN];
        self.emit(&mut b);
        b
    }

    /// The move's identity (what `Nats-Msg-Id` carries).
    pub fn msg_id(&self) -> MsgId {
        MsgId::of(&Move::new_unchecked(&self.mv[..]))
    }
}

/// The decimal digits of `v`, without allocating.
struct Decimal {
    buf: [u8; 20],
    start: usize,
}

impl Decimal {
    fn new(mut v: u64) -> Decimal {
        let mut buf = [0u8; 20];
        let mut i = buf.len();
        loop {
            i -= 1;
            buf[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        Decimal { buf, start: i }
    }
    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..]
    }
}

/// FNV-1a, 32 bits.
fn fnv1a32(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// The partition of a game: FNV-1a 32 of its decimal id, mod `partitions`
/// (what NATS's `{{partition(N,1)}}` subject mapping computes of the
/// subject's game token). `partitions` 0 is taken as 1.
pub fn partition(game_id: u32, partitions: u16) -> u16 {
    let n = u32::from(partitions.max(1));
    (fnv1a32(Decimal::new(u64::from(game_id)).bytes()) % n) as u16
}

/// The subject a game's moves are published on: `<prefix>.<game>` when
/// `partitions` is 1 (or 0), else `<prefix>.<partition>.<game>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    pub prefix: &'a str,
    pub game_id: u32,
    pub partitions: u16,
}

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.partitions <= 1 {
            write!(f, "{}.{}", self.prefix, self.game_id)
        } else {
            write!(f, "{}.{}.{}", self.prefix, partition(self.game_id, self.partitions), self.game_id)
        }
    }
}

/// The stream holding a game's moves: `<stream>` when `partitions` is 1
/// (or 0), else `<stream>_<partition>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamName<'a> {
    pub stream: &'a str,
    pub game_id: u32,
    pub partitions: u16,
}

impl StreamName<'_> {
    /// The stream of the game's partition.
    pub fn partition_stream(&self) -> PartitionStream<'_> {
        PartitionStream { stream: self.stream, partitions: self.partitions, partition: partition(self.game_id, self.partitions) }
    }
}

impl fmt::Display for StreamName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.partition_stream().fmt(f)
    }
}

/// The stream of partition `partition` (of `partitions`): `<stream>` when
/// `partitions` is 1 (or 0), else `<stream>_<partition>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionStream<'a> {
    pub stream: &'a str,
    pub partitions: u16,
    pub partition: u16,
}

impl fmt::Display for PartitionStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.partitions <= 1 {
            f.write_str(self.stream)
        } else {
            write!(f, "{}_{}", self.stream, self.partition)
        }
    }
}

/// The subjects of partition `partition` (of `partitions`), as a stream's
/// subject filter: `<prefix>.*` when `partitions` is 1 (or 0), else
/// `<prefix>.<partition>.*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionSubjects<'a> {
    pub prefix: &'a str,
    pub partitions: u16,
    pub partition: u16,
}

impl fmt::Display for PartitionSubjects<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.partitions <= 1 {
            write!(f, "{}.*", self.prefix)
        } else {
            write!(f, "{}.{}.*", self.prefix, self.partition)
        }
    }
}

/// A move's identity, `ih1.<game>.<player>.<seq>` (decimal), whatever its
/// key_id: the `Nats-Msg-Id` of its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MsgId {
    pub game_id: u32,
    pub player_id: u32,
    pub seq: u64,
}

impl MsgId {
    /// The identity of a move (the view must be 64 bytes long).
    pub fn of<T: AsRef<[u8]>>(m: &Move<T>) -> MsgId {
        MsgId { game_id: m.game_id(), player_id: m.player_id(), seq: m.seq() }
    }
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ih1.{}.{}.{}", self.game_id, self.player_id, self.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Kind, MasterKey, MoveRepr};
    use core::fmt::Write;

    /// A fixed-size string for Display output in a no_std test.
    struct Buf {
        b: [u8; 128],
        n: usize,
    }
    impl Buf {
        fn of(d: impl fmt::Display) -> Buf {
            let mut s = Buf { b: [0; 128], n: 0 };
            write!(s, "{d}").unwrap();
            s
        }
        fn as_str(&self) -> &str {
            core::str::from_utf8(&self.b[..self.n]).unwrap()
        }
    }
    impl Write for Buf {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let end = self.n + s.len();
            self.b.get_mut(self.n..end).ok_or(fmt::Error)?.copy_from_slice(s.as_bytes());
            self.n = end;
            Ok(())
        }
    }

    fn repr() -> ShippedRepr {
        let m = MoveRepr {
            key_id: 3,
            kind: Kind::Dig as u8,
            flags: 0,
            reserved: 0,
            game_id: 70_000,
            player_id: 4_000_000_000,
            seq: 1 << 40,
            client_ts: 9,
            x: 1,
            y: 2,
            payload: [7; 12],
        };
        let mut mv = [0u8; 64];
        m.emit(&mut Move::new_unchecked(&mut mv[..]), &MasterKey::new(&[9; 32]).player_mac(70_000, 4_000_000_000));
        ShippedRepr { mv, recv_unix_ns: 1_795_000_000_000_000_001, queue: 5, offset: 123_456_789_012 }
    }

    #[test]
    fn layout_round_trip() {
        let r = repr();
        let b = r.to_bytes();
        assert_eq!(&b[..64], &r.mv[..], "the move bytes come first, as received");
        assert_eq!(&b[64..72], &1_795_000_000_000_000_001u64.to_be_bytes());
        assert_eq!(&b[72..74], &[0, 5]);
        assert_eq!(&b[74..82], &123_456_789_012u64.to_be_bytes());
        let s = Shipped::new_checked(&b[..]).unwrap();
        assert_eq!(s.recv_unix_ns(), r.recv_unix_ns);
        assert_eq!(s.queue(), 5);
        assert_eq!(s.offset(), r.offset);
        assert_eq!(s.move_bytes(), &r.mv);
        assert_eq!(s.mv().seq(), 1 << 40);
        assert_eq!(ShippedRepr::parse(&s), Ok(r));
        assert_eq!(Buf::of(s.msg_id()).as_str(), "ih1.70000.4000000000.1099511627776");
        assert_eq!(r.msg_id(), s.msg_id());
    }

    #[test]
    fn checked_refuses_bad_lengths_and_headers() {
        let b = repr().to_bytes();
        assert_eq!(Shipped::new_checked(&b[..81]).err(), Some(Error::WrongLength(81)));
        let mut long = [0u8; 83];
        long[..82].copy_from_slice(&b);
        assert_eq!(Shipped::new_checked(&long[..]).err(), Some(Error::WrongLength(83)));
        assert_eq!(Shipped::new_checked(&[][..]).err(), Some(Error::WrongLength(0)));
        let mut bad = b;
        bad[0] = b'X';
        assert_eq!(Shipped::new_checked(&bad[..]).err(), Some(Error::BadMagic(0x5848)));
        let mut bad = b;
        bad[2] = 2;
        assert_eq!(Shipped::new_checked(&bad[..]).err(), Some(Error::BadVersion(2)));
        assert_eq!(ShippedRepr::parse(&Shipped::new_unchecked(&bad[..])).err(), Some(Error::BadVersion(2)));
    }

    #[test]
    fn fnv_and_partitions() {
        // FNV-1a 32 reference values
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
        assert_eq!(Decimal::new(0).bytes(), b"0");
        assert_eq!(Decimal::new(u64::MAX).bytes(), b"18446744073709551615");
        assert_eq!(partition(4_294_967_295, 1), 0);
        assert_eq!(partition(12345, 0), 0);
        // "1" = 0x31: (0x811c9dc5 ^ 0x31) * 0x01000193
        let h1 = (0x811c_9dc5u32 ^ 0x31).wrapping_mul(0x0100_0193);
        assert_eq!(partition(1, 8), (h1 % 8) as u16);
        for g in [0, 1, 7, 70_000, u32::MAX] {
            for n in [2u16, 3, 8, 64, u16::MAX] {
                assert!(partition(g, n) < n);
            }
        }
    }

    #[test]
    fn routes() {
        let p = partition(7, 3);
        let s = Buf::of(Subject { prefix: "ih.moves", game_id: 7, partitions: 1 });
        assert_eq!(s.as_str(), "ih.moves.7");
        let s = Buf::of(Subject { prefix: "ih.moves", game_id: 7, partitions: 3 });
        let want = Buf::of(format_args!("ih.moves.{p}.7"));
        assert_eq!(s.as_str(), want.as_str());
        assert_eq!(Buf::of(StreamName { stream: "MOVES", game_id: 7, partitions: 1 }).as_str(), "MOVES");
        let want = Buf::of(format_args!("MOVES_{p}"));
        assert_eq!(Buf::of(StreamName { stream: "MOVES", game_id: 7, partitions: 3 }).as_str(), want.as_str());
        assert_eq!(Buf::of(PartitionStream { stream: "M", partitions: 1, partition: 0 }).as_str(), "M");
        assert_eq!(Buf::of(PartitionStream { stream: "M", partitions: 4, partition: 2 }).as_str(), "M_2");
        assert_eq!(Buf::of(PartitionSubjects { prefix: "a.b", partitions: 1, partition: 0 }).as_str(), "a.b.*");
        assert_eq!(Buf::of(PartitionSubjects { prefix: "a.b", partitions: 4, partition: 2 }).as_str(), "a.b.2.*");
    }
}
