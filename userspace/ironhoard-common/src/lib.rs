//! Types shared by the XDP program (`xdp-prog/`, built for the BPF target)
//! and userspace (loader, stats). `no_std`, no dependencies: only plain
//! constants and `#[repr(C)]` data that both sides agree on byte for byte.
#![no_std]

/// Reasons for which a datagram on the move port is dropped before any key
/// is involved. The XDP program counts its early drops with these indices
/// (a per-CPU array), and the userspace engine uses the same names for its
/// own drop counters, so `show xdp` and `show stats` speak one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum DropReason {
    /// UDP payload is not exactly 64 bytes.
    WrongLength = 0,
    /// Payload does not start with "IH".
    BadMagic = 1,
    /// Version byte is not 1.
    BadVersion = 2,
    /// No master secret is configured for the key_id.
    UnknownKeyId = 3,
    /// The tag does not verify under the player's key.
    BadTag = 4,
}

impl DropReason {
    /// Number of reasons (size of the counter arrays).
    pub const COUNT: usize = 5;
    /// All reasons in index order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::WrongLength,
        DropReason::BadMagic,
        DropReason::BadVersion,
        DropReason::UnknownKeyId,
        DropReason::BadTag,
    ];

    /// The name used in stats JSON and Prometheus labels.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::WrongLength => "wrong_length",
            DropReason::BadMagic => "bad_magic",
            DropReason::BadVersion => "bad_version",
            DropReason::UnknownKeyId => "unknown_key_id",
            DropReason::BadTag => "bad_tag",
        }
    }
}
