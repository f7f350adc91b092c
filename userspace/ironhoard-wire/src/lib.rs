//! IronHoard wire protocol v1 (see `docs/protocol.md` and SPEC §1).
//!
//! In the style of smoltcp's `wire` module:
//! - [`Move`] and [`Ack`] are views over any byte buffer (`T: AsRef<[u8]>`).
//!   [`Move::new_checked`] runs [`Move::check_len`] once; after that every
//!   accessor is infallible (no panics, no bounds errors).
//! - [`MoveRepr`] / [`AckRepr`] are the parsed, high-level forms with
//!   `parse` and `emit`.
//! - [`shipped`] is the JetStream message the shipper makes of an accepted
//!   move: the 82-byte payload ([`Shipped`] / [`ShippedRepr`]), the message
//!   id ([`MsgId`]) and the subject/stream routing with partitions.
//! - [`keys`] derives player keys and computes/verifies the truncated
//!   HMAC-SHA256 tags; a [`keys::PlayerMac`] caches the keyed HMAC state so a
//!   tag costs two SHA-256 compressions.
//!
//! The crate is `no_std`, has no `unsafe` and never allocates: it is shared
//! by the XDP program's constants, the appliance's engine and the generator.
#![no_std]
#![forbid(unsafe_code)]

pub mod keys;
mod packet;
pub mod shipped;

pub use keys::{MasterKey, PlayerKey, PlayerMac, TAG_LEN};
pub use packet::{
    ack_in_place, ack_in_place_presigned, Ack, AckError, AckRepr, Move, MoveRepr, Presigned,
};
pub use shipped::{
    partition, MsgId, PartitionStream, PartitionSubjects, Shipped, ShippedRepr, StreamName, Subject, PAYLOAD_LEN,
};

/// Length of a move datagram payload, in bytes.
pub const MOVE_LEN: usize = 64;
/// Length of an ack datagram payload, in bytes.
pub const ACK_LEN: usize = 48;
/// Bytes of a move covered by its tag.
pub const MOVE_SIGNED_LEN: usize = 48;
/// Bytes of an ack covered by its tag.
pub const ACK_SIGNED_LEN: usize = 32;
/// "IH"
pub const MOVE_MAGIC: [u8; 2] = [0x49, 0x48];
/// "IA"
pub const ACK_MAGIC: [u8; 2] = [0x49, 0x41];
/// The only protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Width of the anti-replay window, in sequence numbers.
pub const REPLAY_WINDOW: u64 = 1024;

/// Why a buffer is not a well-formed move or ack header.
///
/// These are exactly the reasons for which the appliance drops a datagram
/// before any key is involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The datagram is not exactly 64 (move) / 48 (ack) bytes long.
    #[error("wrong length: {0} bytes")]
    WrongLength(usize),
    /// The first two bytes are not the expected magic.
    #[error("bad magic {0:#06x}")]
    BadMagic(u16),
    /// The version byte is not 1.
    #[error("unsupported version {0}")]
    BadVersion(u8),
}

/// Ack status codes (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Status {
    /// New move, handed to the dispatcher.
    Accepted = 0,
    /// This seq was already accepted (a retransmit).
    Duplicate = 1,
    /// seq at or below highest accepted - 1024.
    Stale = 2,
    /// seq 0, unknown kind, nonzero flags/reserved, or off the board.
    Invalid = 3,
    /// The player's token bucket is empty.
    RateLimited = 4,
    /// No room (dispatch queue or player table full).
    Busy = 5,
}

impl Status {
    /// All statuses, in code order.
    pub const ALL: [Status; 6] = [
        Status::Accepted,
        Status::Duplicate,
        Status::Stale,
        Status::Invalid,
        Status::RateLimited,
        Status::Busy,
    ];

    /// The status for a wire code, if it is one.
    pub const fn from_u8(v: u8) -> Option<Status> {
        match v {
            0 => Some(Status::Accepted),
            1 => Some(Status::Duplicate),
            2 => Some(Status::Stale),
            3 => Some(Status::Invalid),
            4 => Some(Status::RateLimited),
            5 => Some(Status::Busy),
            _ => None,
        }
    }

    /// Lowercase name used in reports and stats (`rate_limited`, ...).
    pub const fn name(self) -> &'static str {
        match self {
            Status::Accepted => "accepted",
            Status::Duplicate => "duplicate",
            Status::Stale => "stale",
            Status::Invalid => "invalid",
            Status::RateLimited => "rate_limited",
            Status::Busy => "busy",
        }
    }
}

/// Move kinds (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Step = 1,
    Dig = 2,
    Claim = 3,
}

impl Kind {
    /// The kind for a wire code, if it is one.
    pub const fn from_u8(v: u8) -> Option<Kind> {
        match v {
            1 => Some(Kind::Step),
            2 => Some(Kind::Dig),
            3 => Some(Kind::Claim),
            _ => None,
        }
    }

    /// Lowercase name (`step`, `dig`, `claim`).
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Step => "step",
            Kind::Dig => "dig",
            Kind::Claim => "claim",
        }
    }
}
