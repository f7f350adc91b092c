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
    /// More than one VLAN tag (QinQ): acks would go out with one.
    VlanStack = 5,
    /// IPv4 options or IPv6 extension headers: never echoed into an ack.
    IpOptions = 6,
    /// IPv4 IHL < 5, wrong IP version, IP length past the frame or too
    /// short for UDP, or a bad IPv4 header checksum.
    BadIpHeader = 7,
    /// A fragment (a 64-byte move is never fragmented).
    Fragment = 8,
    /// Source MAC group or zero, or source IP unspecified, loopback,
    /// multicast, broadcast or otherwise martian: an ack would be a
    /// reflection.
    MartianSource = 9,
    /// XDP: no AF_XDP socket on the rx queue.
    NoSocket = 10,
    /// A DUPLICATE or STALE answer beyond the player's token bucket: a
    /// captured move replayed (with spoofed sources) must not turn the
    /// appliance into a reflector of signed acks.
    ReplayOverLimit = 11,
    /// XDP shield: the source (IPv4 address or IPv6 /64, and UDP port)
    /// sent faster than `[shield] rate_per_source`.
    SourceLimited = 12,
    /// XDP shield: the source address (all its ports together) sent faster
    /// than `[shield] rate_per_address`.
    AddressLimited = 13,
}

impl DropReason {
    /// Number of reasons (size of the counter arrays).
    pub const COUNT: usize = 14;
    /// All reasons in index order.
    pub const ALL: [DropReason; DropReason::COUNT] = [
        DropReason::WrongLength,
        DropReason::BadMagic,
        DropReason::BadVersion,
        DropReason::UnknownKeyId,
        DropReason::BadTag,
        DropReason::VlanStack,
        DropReason::IpOptions,
        DropReason::BadIpHeader,
        DropReason::Fragment,
        DropReason::MartianSource,
        DropReason::NoSocket,
        DropReason::ReplayOverLimit,
        DropReason::SourceLimited,
        DropReason::AddressLimited,
    ];
    /// The reasons the engine itself gives (the rest are the frame's).
    pub const ENGINE: [DropReason; 6] = [
        DropReason::WrongLength,
        DropReason::BadMagic,
        DropReason::BadVersion,
        DropReason::UnknownKeyId,
        DropReason::BadTag,
        DropReason::ReplayOverLimit,
    ];

    /// The name used in stats JSON and Prometheus labels.
    pub const fn name(self) -> &'static str {
        match self {
            DropReason::WrongLength => "wrong_length",
            DropReason::BadMagic => "bad_magic",
            DropReason::BadVersion => "bad_version",
            DropReason::UnknownKeyId => "unknown_key_id",
            DropReason::BadTag => "bad_tag",
            DropReason::VlanStack => "vlan_stack",
            DropReason::IpOptions => "ip_options",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::Fragment => "fragment",
            DropReason::MartianSource => "martian_source",
            DropReason::NoSocket => "no_socket",
            DropReason::ReplayOverLimit => "replay_over_limit",
            DropReason::SourceLimited => "source_limited",
            DropReason::AddressLimited => "address_limited",
        }
    }
}

/// Name of the XDP program in the object (the Rust function name).
pub const XDP_PROGRAM: &str = "ironhoard_xdp";
/// XSKMAP: index = rx queue id, value = AF_XDP socket fd.
pub const MAP_XSKS: &str = "XSKS";
/// Array<u32> of [`XdpConfig`] slots.
pub const MAP_CONFIG: &str = "CONFIG";
/// PerCpuArray<u64> indexed by [`XdpCounter`].
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Size of the XSKMAP: queue ids `0..MAX_QUEUES`.
pub const MAX_QUEUES: u32 = 256;

/// Slots of the CONFIG array (each a u32, host byte order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum XdpConfig {
    /// The steered UDP destination port; 0 = steer nothing (all passes).
    MovePort = 0,
    /// Expected magic (big-endian u16 in the low bits); 0 = a move's "IH".
    /// The generator sets an ack's "IA" to steer acks to its own socket.
    Magic = 1,
    /// Expected UDP payload length; 0 = a move's 64. The generator sets 48.
    PayloadLen = 2,
    /// Shield: moves per second per source (address or /64, and port); 0 = off.
    SourceRate = 3,
    SourceBurst = 4,
    /// Shield: moves per second per source address (all ports); 0 = off.
    AddressRate = 5,
    AddressBurst = 6,
    /// Nonzero while the appliance hands over to its successor: moves that
    /// pass the shield go to the kernel (XDP_PASS), where the UDP sockets
    /// of the bridge queue them for the successor, instead of to the
    /// AF_XDP sockets being closed (docs/operations.md, "Restart and
    /// upgrade").
    Handover = 7,
}

impl XdpConfig {
    pub const COUNT: u32 = 8;
}

/// Key of the shield's per-source LRU map: an IPv4 address or an IPv6 /64
/// (family 4 or 6), and a UDP source port (0 in the per-address entry).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldKey {
    pub family: u8,
    pub _pad: u8,
    pub port: u16,
    pub addr: [u8; 8],
}

/// A token bucket in the shield map: tokens in 1e-9 units, last refill.
///
/// Every CPU's XDP program takes from the same bucket (a source's moves
/// may arrive on several rx queues), so once in the map a bucket's fields
/// are only read and written with 64-bit atomic operations (the program's
/// compare-exchange, see `shield_take` in `xdp-prog`), each on its own
/// 8-byte-aligned `u64`: keep both fields `u64` and the layout `repr(C)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ShieldBucket {
    pub units: u64,
    pub last_ns: u64,
}

/// Name of the shield's LRU map.
pub const MAP_SHIELD: &str = "SHIELD";
/// Sources the shield tracks at once (least recently seen evicted).
pub const SHIELD_ENTRIES: u32 = 65536;

/// What the XDP program counts, per CPU, for datagrams to the move port.
/// A drop counts at its [`DropReason`]'s index (the same name in `show
/// xdp` and `show stats`); `Redirected` after the last reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum XdpCounter {
    /// UDP length is not 8 + 64, or disagrees with the IP layer or the frame.
    WrongLength = 0,
    BadMagic = 1,
    BadVersion = 2,
    VlanStack = 5,
    IpOptions = 6,
    BadIpHeader = 7,
    Fragment = 8,
    MartianSource = 9,
    /// No socket bound on the rx queue: dropped (the kernel has no socket
    /// on the port either, and would answer with ICMP).
    NoSocket = 10,
    SourceLimited = 12,
    AddressLimited = 13,
    /// Redirected to the AF_XDP socket of the rx queue.
    Redirected = 14,
    /// Passed to the kernel's UDP sockets (the bridge) during a handover.
    Bridged = 15,
}

impl XdpCounter {
    /// Size of the per-CPU counter array (indices 3, 4 and 11 stay 0).
    pub const COUNT: u32 = 16;
    pub const ALL: [XdpCounter; 13] = [
        XdpCounter::WrongLength,
        XdpCounter::BadMagic,
        XdpCounter::BadVersion,
        XdpCounter::VlanStack,
        XdpCounter::IpOptions,
        XdpCounter::BadIpHeader,
        XdpCounter::Fragment,
        XdpCounter::MartianSource,
        XdpCounter::NoSocket,
        XdpCounter::SourceLimited,
        XdpCounter::AddressLimited,
        XdpCounter::Redirected,
        XdpCounter::Bridged,
    ];

    /// The counter of a drop reason the XDP program gives.
    pub const fn of_drop(r: DropReason) -> XdpCounter {
        match r {
            DropReason::WrongLength => XdpCounter::WrongLength,
            DropReason::BadMagic => XdpCounter::BadMagic,
            DropReason::BadVersion => XdpCounter::BadVersion,
            DropReason::VlanStack => XdpCounter::VlanStack,
            DropReason::IpOptions => XdpCounter::IpOptions,
            DropReason::BadIpHeader => XdpCounter::BadIpHeader,
            DropReason::Fragment => XdpCounter::Fragment,
            DropReason::MartianSource => XdpCounter::MartianSource,
            DropReason::SourceLimited => XdpCounter::SourceLimited,
            DropReason::AddressLimited => XdpCounter::AddressLimited,
            // never given by the program (key and tag checks are userspace's)
            _ => XdpCounter::NoSocket,
        }
    }

    pub const fn name(self) -> &'static str {
        match (self.drop_reason(), self) {
            (Some(r), _) => r.name(),
            (None, XdpCounter::Bridged) => "bridged",
            (None, _) => "redirected",
        }
    }

    /// The drop reason this counter is, if it is a drop.
    pub const fn drop_reason(self) -> Option<DropReason> {
        match self {
            XdpCounter::WrongLength => Some(DropReason::WrongLength),
            XdpCounter::BadMagic => Some(DropReason::BadMagic),
            XdpCounter::BadVersion => Some(DropReason::BadVersion),
            XdpCounter::VlanStack => Some(DropReason::VlanStack),
            XdpCounter::IpOptions => Some(DropReason::IpOptions),
            XdpCounter::BadIpHeader => Some(DropReason::BadIpHeader),
            XdpCounter::Fragment => Some(DropReason::Fragment),
            XdpCounter::MartianSource => Some(DropReason::MartianSource),
            XdpCounter::NoSocket => Some(DropReason::NoSocket),
            XdpCounter::SourceLimited => Some(DropReason::SourceLimited),
            XdpCounter::AddressLimited => Some(DropReason::AddressLimited),
            XdpCounter::Redirected | XdpCounter::Bridged => None,
        }
    }
}

pub mod frame;

/// Link, network and transport constants both the XDP program and the
/// userspace frame code parse by.
pub mod net {
    pub const ETH_HLEN: usize = 14;
    pub const VLAN_HLEN: usize = 4;
    pub const ETH_P_IP: u16 = 0x0800;
    pub const ETH_P_IPV6: u16 = 0x86DD;
    pub const ETH_P_8021Q: u16 = 0x8100;
    pub const IPPROTO_UDP: u8 = 17;
    pub const IPV6_HLEN: usize = 40;
    pub const UDP_HLEN: usize = 8;
}

/// Wire constants the XDP program checks (kept here, not taken from
/// `ironhoard-wire`, so the BPF build needs no crypto crates;
/// `ironhoard-dataplane`'s test
/// `the_xdp_programs_wire_constants_agree_with_the_wire_crate` checks they
/// agree).
pub mod wire {
    pub const MOVE_LEN: usize = 64;
    pub const ACK_LEN: usize = 48;
    pub const MOVE_MAGIC: [u8; 2] = [0x49, 0x48];
    pub const ACK_MAGIC: [u8; 2] = [0x49, 0x41];
    pub const VERSION: u8 = 1;
}
