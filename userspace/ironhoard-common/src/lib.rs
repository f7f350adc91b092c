//! Types shared by the XDP program (`xdp-prog/`, built for the BPF target)
//! and userspace (loader, engine, stats): the drop reasons and the
//! program's counters, its maps' names and layouts, its config slots, and
//! the wire constants it checks. `no_std`, no dependencies: only plain
//! constants and `#[repr(C)]` data that both sides agree on byte for byte.
//! The packet classifier both sides run is `ironhoard-classify`.
#![cfg_attr(not(test), no_std)]

/// The one table of drop reasons: each row is a variant, its index (in the
/// engine's and the XDP program's counter arrays), its name (stats JSON,
/// Prometheus `reason` labels, `show xdp`), and who gives it: `xdp` where
/// the XDP program counts it, `engine` where the userspace engine gives it
/// (`-` where not). Every list and lookup below is derived from it; the
/// docs' list of names is checked against it by `ironhoard`'s test
/// `the_docs_name_every_drop_reason`.
macro_rules! drop_reasons {
    ($( $(#[doc = $doc:literal])* $v:ident = $i:literal, $name:literal, $xdp:tt $engine:tt; )*) => {
        /// Reasons for which a datagram on the move port is dropped
        /// silently. The XDP program counts its early drops with these
        /// indices (a per-CPU array), and the userspace engine uses the same
        /// names for its own drop counters, so `show xdp` and `show stats`
        /// speak one language.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u32)]
        pub enum DropReason {
            $( $(#[doc = $doc])* $v = $i, )*
        }

        impl DropReason {
            /// All reasons in index order.
            pub const ALL: [DropReason; [$($i),*].len()] = [$(DropReason::$v),*];
            /// Number of reasons (size of the counter arrays).
            pub const COUNT: usize = DropReason::ALL.len();

            /// The name used in stats JSON and Prometheus labels.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$v => $name,)* }
            }

            /// Whether the XDP program counts this reason.
            pub const fn counted_by_xdp(self) -> bool {
                match self { $(DropReason::$v => drop_reasons!(@flag $xdp),)* }
            }

            /// Whether the userspace engine gives this reason (the rest are
            /// the frame's, the XDP program's or the shield's).
            pub const fn given_by_engine(self) -> bool {
                match self { $(DropReason::$v => drop_reasons!(@flag $engine),)* }
            }
        }

        /// What the XDP program counts, per CPU, for datagrams to the move
        /// port: one slot per [`DropReason`], at its index (the same name in
        /// `show xdp` and `show stats`; a reason the program never gives
        /// stays 0), then `Redirected` and `Bridged`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u32)]
        pub enum XdpCounter {
            $( $v = $i, )*
            /// Redirected to the AF_XDP socket of the rx queue.
            Redirected = DropReason::COUNT as u32,
            /// Passed to the kernel's UDP sockets (the bridge) during a handover.
            Bridged = DropReason::COUNT as u32 + 1,
        }

        impl XdpCounter {
            /// The counter of a drop reason (its slot has the reason's index).
            pub const fn of_drop(r: DropReason) -> XdpCounter {
                match r { $(DropReason::$v => XdpCounter::$v,)* }
            }

            /// The drop reason this counter is, if it is a drop.
            pub const fn drop_reason(self) -> Option<DropReason> {
                match self {
                    $(XdpCounter::$v => Some(DropReason::$v),)*
                    XdpCounter::Redirected | XdpCounter::Bridged => None,
                }
            }
        }
    };
    (@flag -) => { false };
    (@flag $yes:ident) => { true };
}

drop_reasons! {
    /// UDP payload is not exactly 64 bytes (XDP: the UDP length is not
    /// 8 + 64, or disagrees with the IP layer or the frame).
    WrongLength = 0, "wrong_length", xdp engine;
    /// Payload does not start with "IH".
    BadMagic = 1, "bad_magic", xdp engine;
    /// Version byte is not 1.
    BadVersion = 2, "bad_version", xdp engine;
    /// No master secret is configured for the key_id.
    UnknownKeyId = 3, "unknown_key_id", - engine;
    /// The tag does not verify under the player's key.
    BadTag = 4, "bad_tag", - engine;
    /// More than one VLAN tag (QinQ): acks would go out with one.
    VlanStack = 5, "vlan_stack", xdp -;
    /// IPv4 options or IPv6 extension headers: never echoed into an ack.
    IpOptions = 6, "ip_options", xdp -;
    /// IPv4 IHL < 5, wrong IP version, IP length past the frame or too
    /// short for UDP, or a bad IPv4 header checksum.
    BadIpHeader = 7, "bad_ip_header", xdp -;
    /// A fragment (a 64-byte move is never fragmented).
    Fragment = 8, "fragment", xdp -;
    /// Source MAC group or zero, or source IP unspecified, loopback,
    /// multicast, broadcast or otherwise martian: an ack would be a
    /// reflection.
    MartianSource = 9, "martian_source", xdp -;
    /// XDP: no AF_XDP socket on the rx queue (the kernel has no socket on
    /// the port either, and would answer with ICMP).
    NoSocket = 10, "no_socket", xdp -;
    /// A DUPLICATE or STALE answer beyond the player's token bucket: a
    /// captured move replayed (with spoofed sources) must not turn the
    /// appliance into a reflector of signed acks.
    ReplayOverLimit = 11, "replay_over_limit", - engine;
    /// XDP shield: the source (IPv4 address or IPv6 /64, and UDP port)
    /// sent faster than `[shield] rate_per_source`.
    SourceLimited = 12, "source_limited", xdp -;
    /// XDP shield: the source address (all its ports together) sent faster
    /// than `[shield] rate_per_address`.
    AddressLimited = 13, "address_limited", xdp -;
}

/// Which reasons a derived list keeps.
#[derive(Clone, Copy)]
enum GivenBy {
    Xdp,
    Engine,
}

const fn keep(r: DropReason, by: GivenBy) -> bool {
    match by {
        GivenBy::Xdp => r.counted_by_xdp(),
        GivenBy::Engine => r.given_by_engine(),
    }
}

/// The `N` reasons of [`DropReason::ALL`] given `by`, in index order (a
/// const filter: `N` must be their number, checked at compile time).
const fn reasons_where<const N: usize>(by: GivenBy) -> [DropReason; N] {
    let mut out = [DropReason::WrongLength; N];
    let (mut i, mut k) = (0, 0);
    while i < DropReason::COUNT {
        if keep(DropReason::ALL[i], by) {
            out[k] = DropReason::ALL[i];
            k += 1;
        }
        i += 1;
    }
    assert!(k == N, "reasons_where: N is not the number of reasons kept");
    out
}

const fn reasons_counted(by: GivenBy) -> usize {
    let (mut i, mut n) = (0, 0);
    while i < DropReason::COUNT {
        if keep(DropReason::ALL[i], by) {
            n += 1;
        }
        i += 1;
    }
    n
}

const ENGINE_REASONS: usize = reasons_counted(GivenBy::Engine);
const XDP_REASONS: usize = reasons_counted(GivenBy::Xdp);

impl DropReason {
    /// The reasons the engine itself gives, in index order.
    pub const ENGINE: [DropReason; ENGINE_REASONS] = reasons_where(GivenBy::Engine);
}

impl XdpCounter {
    /// Size of the per-CPU counter array.
    pub const COUNT: u32 = XdpCounter::Bridged as u32 + 1;
    /// The counters the program moves: its drop reasons, then
    /// `Redirected` and `Bridged`.
    pub const ALL: [XdpCounter; XDP_REASONS + 2] = {
        let drops: [DropReason; XDP_REASONS] = reasons_where(GivenBy::Xdp);
        let mut out = [XdpCounter::Redirected; XDP_REASONS + 2];
        let mut i = 0;
        while i < XDP_REASONS {
            out[i] = XdpCounter::of_drop(drops[i]);
            i += 1;
        }
        out[XDP_REASONS + 1] = XdpCounter::Bridged;
        out
    };

    pub const fn name(self) -> &'static str {
        match (self.drop_reason(), self) {
            (Some(r), _) => r.name(),
            (None, XdpCounter::Bridged) => "bridged",
            (None, _) => "redirected",
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

/// Bytes the program appends to an ack it steers to the generator (the
/// ack's arrival time, CLOCK_MONOTONIC ns, big-endian), past the IP
/// packet's end. Moves steered to the appliance get none.
pub const ARRIVAL_STAMP_LEN: usize = 8;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_table_is_dense_and_every_derived_list_follows_it() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i, "{} is not at its index", r.name());
            assert_eq!(XdpCounter::of_drop(*r) as usize, i, "{}'s counter slot", r.name());
            assert_eq!(XdpCounter::of_drop(*r).drop_reason(), Some(*r));
            assert!(r.counted_by_xdp() || r.given_by_engine(), "{} is given by no one", r.name());
        }
        assert_eq!(DropReason::COUNT, 14);
        assert_eq!(XdpCounter::COUNT, 16);
        assert_eq!((XdpCounter::Redirected as u32, XdpCounter::Bridged as u32), (14, 15));
        let names = |rs: &[DropReason]| rs.iter().map(|r| r.name()).collect::<Vec<_>>();
        let engine = ["wrong_length", "bad_magic", "bad_version", "unknown_key_id", "bad_tag", "replay_over_limit"];
        assert_eq!(names(&DropReason::ENGINE), engine);
        let xdp: Vec<&str> = XdpCounter::ALL.iter().map(|c| c.name()).collect();
        let program = ["wrong_length", "bad_magic", "bad_version", "vlan_stack", "ip_options", "bad_ip_header"];
        let program = program.into_iter().chain(["fragment", "martian_source", "no_socket", "source_limited"]);
        let program: Vec<&str> = program.chain(["address_limited", "redirected", "bridged"]).collect();
        assert_eq!(xdp, program);
        let mut all = names(&DropReason::ALL);
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), DropReason::COUNT, "two reasons share a name");
    }
}
