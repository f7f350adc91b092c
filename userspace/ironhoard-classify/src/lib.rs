//! The one packet classifier, shared by the XDP program, the AF_XDP pollers
//! and the generator's pcap reader: given the bytes of an Ethernet frame
//! (through [`Bytes`], whose every read is bounds-checked — a slice in
//! userspace, the packet between `data` and `data_end` in XDP), decide
//! whether it is a UDP datagram to the move port that the appliance serves,
//! one it must drop (and why), or something else that belongs to the kernel.
//!
//! Every length field is checked against the frame and against the layer
//! around it. What is served is deliberately narrow: Ethernet with at most
//! one 802.1Q tag, IPv4 without options or IPv6 without extension headers,
//! unfragmented, from a unicast, non-martian source, with a valid IPv4
//! header checksum and consistent IP and UDP lengths. A datagram to the move
//! port outside that is dropped, counted by reason — never passed to the
//! kernel, whose closed port would answer the sender with ICMP. Traffic not
//! to the move port (and frames too short or too odd to tell) passes.

#![cfg_attr(not(test), no_std)]

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

use crate::net::{ETH_HLEN, ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_UDP, IPV6_HLEN, UDP_HLEN, VLAN_HLEN};
use ironhoard_common::DropReason;

/// 802.1ad service tag (QinQ outer tag).
pub const ETH_P_8021AD: u16 = 0x88A8;
/// IPv6 extension headers the classifier walks to find a UDP header behind.
const IPV6_HOPOPTS: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_DSTOPTS: u8 = 60;

/// Bounds-checked reads of a frame. `None` = beyond the frame's end.
pub trait Bytes {
    fn u8_at(&self, off: usize) -> Option<u8>;
    fn be16_at(&self, off: usize) -> Option<u16>;
    fn be32_at(&self, off: usize) -> Option<u32>;
    /// The frame's length in bytes.
    fn frame_len(&self) -> usize;
}

impl Bytes for [u8] {
    #[inline(always)]
    fn u8_at(&self, off: usize) -> Option<u8> {
        self.get(off).copied()
    }
    #[inline(always)]
    fn be16_at(&self, off: usize) -> Option<u16> {
        let b = self.get(off..off.checked_add(2)?)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    #[inline(always)]
    fn be32_at(&self, off: usize) -> Option<u32> {
        let b = self.get(off..off.checked_add(4)?)?;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    #[inline(always)]
    fn frame_len(&self) -> usize {
        self.len()
    }
}

/// Where a served datagram sits in its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Located {
    /// Offset of the IP header.
    pub l3: usize,
    /// Offset of the UDP header (the IP header is 20 or 40 bytes: no options).
    pub l4: usize,
    pub v6: bool,
    /// UDP payload length (checked equal to the expected one).
    pub payload_len: usize,
}

impl Located {
    /// Offset of the UDP payload.
    pub const fn payload(&self) -> usize {
        self.l4 + UDP_HLEN
    }
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Not a datagram to the move port (or not parseable far enough to
    /// tell): the kernel's.
    Pass,
    /// A datagram to the move port that is not served: drop, count.
    Drop(DropReason),
    /// A datagram to the move port with a payload of the expected length.
    Serve(Located),
}

/// Classifies `f` for UDP destination port `port`, whose datagrams must
/// carry exactly `payload_len` bytes (a move's 64; the generator steers
/// 48-byte acks with the same program).
#[inline(always)]
pub fn classify<B: Bytes + ?Sized>(f: &B, port: u16, payload_len: usize) -> Class {
    match classify_inner(f, port, payload_len) {
        Some(c) => c,
        None => Class::Pass,
    }
}

/// `None`: could not read far enough to see a move-port header: pass.
#[inline(always)]
fn classify_inner<B: Bytes + ?Sized>(f: &B, port: u16, plen: usize) -> Option<Class> {
    // Broadcast and multicast destinations are the kernel's (ARP, ND, ...).
    // (Read as 16 bits: the verifier learns no range from a one-byte
    // check at offset 0, which LLVM turns into `data >= data_end`.)
    if (f.be16_at(0)? >> 8) & 1 != 0 {
        return Some(Class::Pass);
    }
    let mut l3 = ETH_HLEN;
    let mut proto = f.be16_at(12)?;
    let mut tags = 0u8;
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        proto = f.be16_at(l3 + 2)?;
        l3 += VLAN_HLEN;
        tags += 1;
        if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
            proto = f.be16_at(l3 + 2)?;
            l3 += VLAN_HLEN;
            tags += 1;
        }
    }
    match proto {
        ETH_P_IP => ipv4(f, l3, tags, port, plen),
        ETH_P_IPV6 => ipv6(f, l3, tags, port, plen),
        _ => Some(Class::Pass),
    }
}

#[inline(always)]
fn ipv4<B: Bytes + ?Sized>(f: &B, l3: usize, tags: u8, port: u16, plen: usize) -> Option<Class> {
    let vihl = f.u8_at(l3)?;
    if f.u8_at(l3 + 9)? != IPPROTO_UDP {
        return Some(Class::Pass);
    }
    let frag = f.be16_at(l3 + 6)?;
    if frag & 0x1fff != 0 {
        // a non-first fragment carries no UDP header: the kernel's (it
        // reassembles; the appliance's sink socket keeps the port open)
        return Some(Class::Pass);
    }
    // With IHL < 5 the UDP header would be inside the IP header: look
    // where it would be without options to see whether it is ours.
    let ihl = (vihl & 0x0f) as usize * 4;
    let l4 = if ihl < 20 { l3 + 20 } else { l3 + ihl };
    if f.be16_at(l4 + 2)? != port {
        return Some(Class::Pass);
    }
    // To the move port: from here on every outcome is ours.
    if tags > 1 {
        return Some(Class::Drop(DropReason::VlanStack));
    }
    if vihl >> 4 != 4 || ihl < 20 {
        return Some(Class::Drop(DropReason::BadIpHeader));
    }
    if ihl != 20 {
        return Some(Class::Drop(DropReason::IpOptions));
    }
    if frag & 0x2000 != 0 {
        return Some(Class::Drop(DropReason::Fragment));
    }
    let total = f.be16_at(l3 + 2)? as usize;
    if total < 20 + UDP_HLEN || l3 + total > f.frame_len() || !ipv4_header_ok(f, l3) {
        return Some(Class::Drop(DropReason::BadIpHeader));
    }
    let src = f.be32_at(l3 + 12)?;
    if martian_mac(f) || martian_v4(src) {
        return Some(Class::Drop(DropReason::MartianSource));
    }
    Some(udp(f, l3, l4, l3 + total, false, plen))
}

/// What follows an IPv6 fixed header once up to three extension headers
/// are walked.
struct Ipv6Walk {
    /// The next header after them, and where it starts.
    next: u8,
    l4: usize,
    /// Any extension header seen; a fragment header among them.
    ext: bool,
    fragment: bool,
    /// A non-first fragment: no transport header follows.
    non_first: bool,
}

/// Walks up to three IPv6 extension headers, unrolled (the verifier wants
/// no unbounded loop): enough to see the port of anything a client sends.
/// `None`: the frame ends first.
#[inline(always)]
fn ipv6_walk<B: Bytes + ?Sized>(f: &B, l3: usize) -> Option<Ipv6Walk> {
    let mut w = Ipv6Walk { next: f.u8_at(l3 + 6)?, l4: l3 + IPV6_HLEN, ext: false, fragment: false, non_first: false };
    let mut i = 0;
    while i < 3 {
        match w.next {
            IPV6_HOPOPTS | IPV6_ROUTING | IPV6_DSTOPTS => {
                w.next = f.u8_at(w.l4)?;
                w.l4 += (f.u8_at(w.l4 + 1)? as usize + 1) * 8;
                w.ext = true;
            }
            IPV6_FRAGMENT => {
                if f.be16_at(w.l4 + 2)? & 0xfff8 != 0 {
                    w.non_first = true;
                    return Some(w);
                }
                w.next = f.u8_at(w.l4)?;
                w.l4 += 8;
                w.ext = true;
                w.fragment = true;
            }
            _ => break,
        }
        i += 1;
    }
    Some(w)
}

#[inline(always)]
fn ipv6<B: Bytes + ?Sized>(f: &B, l3: usize, tags: u8, port: u16, plen: usize) -> Option<Class> {
    let Ipv6Walk { next, l4, ext, fragment, non_first } = ipv6_walk(f, l3)?;
    if non_first {
        return Some(Class::Pass); // non-first fragment: the kernel's
    }
    if next != IPPROTO_UDP || f.be16_at(l4 + 2)? != port {
        return Some(Class::Pass);
    }
    if tags > 1 {
        return Some(Class::Drop(DropReason::VlanStack));
    }
    if f.u8_at(l3)? >> 4 != 6 {
        return Some(Class::Drop(DropReason::BadIpHeader));
    }
    if fragment {
        return Some(Class::Drop(DropReason::Fragment));
    }
    if ext {
        return Some(Class::Drop(DropReason::IpOptions));
    }
    let end = l3 + IPV6_HLEN + f.be16_at(l3 + 4)? as usize;
    if end > f.frame_len() {
        return Some(Class::Drop(DropReason::BadIpHeader));
    }
    let s0 = f.be32_at(l3 + 8)?;
    let s1 = f.be32_at(l3 + 12)?;
    let s2 = f.be32_at(l3 + 16)?;
    let s3 = f.be32_at(l3 + 20)?;
    if martian_mac(f) || martian_v6([s0, s1, s2, s3]) {
        return Some(Class::Drop(DropReason::MartianSource));
    }
    Some(udp(f, l3, l4, end, true, plen))
}

/// The UDP header at `l4` inside an IP payload ending at `ip_end`.
#[inline(always)]
fn udp<B: Bytes + ?Sized>(f: &B, l3: usize, l4: usize, ip_end: usize, v6: bool, plen: usize) -> Class {
    let Some(udp_len) = f.be16_at(l4 + 4) else { return Class::Drop(DropReason::WrongLength) };
    let udp_len = udp_len as usize;
    // The UDP length must describe exactly what the IP layer carries
    // (less, and the rest would be trailing bytes nobody signed; more, and
    // it would run past the datagram), and that must be a whole move.
    if udp_len != UDP_HLEN + plen || l4 + udp_len > ip_end || l4 + udp_len > f.frame_len() {
        return Class::Drop(DropReason::WrongLength);
    }
    Class::Serve(Located { l3, l4, v6, payload_len: plen })
}

/// The IPv4 header (20 bytes, no options) sums to 0xffff.
#[inline(always)]
fn ipv4_header_ok<B: Bytes + ?Sized>(f: &B, l3: usize) -> bool {
    let mut acc = 0u32;
    let mut i = 0;
    while i < 10 {
        match f.be16_at(l3 + 2 * i) {
            Some(w) => acc += w as u32,
            None => return false,
        }
        i += 1;
    }
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    acc == 0xffff
}

/// A source MAC no ack may be sent to: group (multicast/broadcast) or zero.
#[inline(always)]
fn martian_mac<B: Bytes + ?Sized>(f: &B) -> bool {
    match (f.u8_at(6), f.be16_at(8), f.be16_at(10)) {
        (Some(a), Some(b), Some(c)) => a & 1 != 0 || (a == 0 && f.u8_at(7) == Some(0) && b == 0 && c == 0),
        _ => true,
    }
}

/// An IPv4 source no ack may be sent to: "this network" 0/8, loopback
/// 127/8, multicast 224/4, reserved 240/4 (with limited broadcast).
#[inline(always)]
pub const fn martian_v4(src: u32) -> bool {
    let a = (src >> 24) as u8;
    a == 0 || a == 127 || a >= 224
}

/// An IPv6 source no ack may be sent to: unspecified `::`, loopback `::1`,
/// multicast ff00::/8, IPv4-mapped ::ffff:0:0/96.
#[inline(always)]
pub const fn martian_v6(w: [u32; 4]) -> bool {
    let low = w[0] == 0 && w[1] == 0;
    (low && w[2] == 0 && (w[3] == 0 || w[3] == 1)) || (w[0] >> 24) == 0xff || (low && w[2] == 0xffff)
}

/// The destination port and UDP length of the datagram in an Ethernet
/// frame, found the way [`classify`] finds them (at most two tags, IPv4 of
/// any IHL, IPv6 behind up to three extension headers, first fragments
/// only). With [`classify_udp`], other tools judge any datagram by the
/// appliance's own rules.
pub fn udp_port_and_len<B: Bytes + ?Sized>(f: &B) -> Option<(u16, usize)> {
    let mut l3 = ETH_HLEN;
    let mut proto = f.be16_at(12)?;
    let mut tags = 0;
    while (proto == ETH_P_8021Q || proto == ETH_P_8021AD) && tags < 2 {
        proto = f.be16_at(l3 + 2)?;
        l3 += VLAN_HLEN;
        tags += 1;
    }
    let l4 = match proto {
        ETH_P_IP => {
            if f.u8_at(l3 + 9)? != IPPROTO_UDP || f.be16_at(l3 + 6)? & 0x1fff != 0 {
                return None;
            }
            let ihl = (f.u8_at(l3)? & 0x0f) as usize * 4;
            if ihl < 20 { l3 + 20 } else { l3 + ihl }
        }
        ETH_P_IPV6 => {
            let w = ipv6_walk(f, l3)?;
            if w.non_first || w.next != IPPROTO_UDP {
                return None;
            }
            w.l4
        }
        _ => return None,
    };
    Some((f.be16_at(l4 + 2)?, f.be16_at(l4 + 4)? as usize))
}

/// [`classify`] for whatever port and payload length the frame's own UDP
/// header names: `Pass` for what is not UDP.
pub fn classify_udp<B: Bytes + ?Sized>(f: &B) -> Class {
    match udp_port_and_len(f) {
        Some((port, len)) if len >= UDP_HLEN => classify(f, port, len - UDP_HLEN),
        Some(_) => Class::Drop(DropReason::WrongLength),
        None => Class::Pass,
    }
}

/// TTL / hop limit of every ack.
pub const ACK_TTL: u8 = 64;

/// Ones' complement sum of 16-bit big-endian words (odd tail padded).
#[inline]
pub fn sum16(b: &[u8], mut acc: u32) -> u32 {
    let mut chunks = b.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        acc += (*last as u32) << 8;
    }
    acc
}

#[inline]
pub fn fold(mut acc: u32) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The IPv4 header checksum of `h` (its checksum field must be zero).
pub fn ipv4_checksum(h: &[u8]) -> u16 {
    fold(sum16(h, 0))
}

/// The UDP checksum over the pseudo-header and `udp` (header + payload,
/// checksum field zero). 0 is sent as 0xffff.
pub fn udp_checksum(src: &[u8], dst: &[u8], udp: &[u8]) -> u16 {
    let mut acc = sum16(src, 0);
    acc = sum16(dst, acc);
    acc += IPPROTO_UDP as u32;
    acc += udp.len() as u32;
    acc = sum16(udp, acc);
    match fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

/// A header checksum after one 16-bit word of the header went from `old`
/// to `new`: RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m').
#[inline]
pub fn checksum_update(hc: u16, old: u16, new: u16) -> u16 {
    let mut acc = (!hc) as u32 + (!old) as u32 + new as u32;
    acc = (acc & 0xffff) + (acc >> 16);
    acc = (acc & 0xffff) + (acc >> 16);
    !(acc as u16)
}

/// Turns the frame of a received move, whose UDP payload already holds the
/// 48-byte ack (written by the engine), into the ack frame: MACs, IP
/// addresses and ports swapped, VLAN tag kept, lengths set, TTL / hop limit
/// 64, IPv4 header checksum and UDP checksum computed. Returns the new
/// frame length. Only frames the classifier served reach it: IPv4 without
/// options (IHL 5), IPv6 without extension headers, unicast non-martian
/// sources — so nothing the sender chose beyond addresses and ports is
/// echoed.
pub fn rewrite_to_ack(f: &mut [u8], u: &Located) -> usize {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&f[0..6]);
    f.copy_within(6..12, 0);
    f[6..12].copy_from_slice(&mac);
    let udp_len = UDP_HLEN + ironhoard_common::wire::ACK_LEN;
    let l3 = u.l3;
    if u.v6 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&f[l3 + 8..l3 + 24]);
        f.copy_within(l3 + 24..l3 + 40, l3 + 8);
        f[l3 + 24..l3 + 40].copy_from_slice(&a);
        f[l3 + 4..l3 + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        f[l3 + 7] = ACK_TTL;
        f[l3 + 1] &= 0xcf; // ECN of the traffic class: not ECN-capable
    } else {
        let ihl = u.l4 - l3;
        let mut a = [0u8; 4];
        a.copy_from_slice(&f[l3 + 12..l3 + 16]);
        f.copy_within(l3 + 16..l3 + 20, l3 + 12);
        f[l3 + 16..l3 + 20].copy_from_slice(&a);
        // The classifier verified the header's checksum, and swapping the
        // addresses leaves the sum alone: the four 16-bit words that change
        // update it incrementally (RFC 1624), no pass over the header.
        let word = |f: &[u8], i: usize| u16::from_be_bytes([f[l3 + i], f[l3 + i + 1]]);
        let old = [word(f, 0), word(f, 2), word(f, 6), word(f, 8)];
        f[l3 + 1] &= 0xfc; // ECN: not ECN-capable
        f[l3 + 2..l3 + 4].copy_from_slice(&((ihl + udp_len) as u16).to_be_bytes());
        f[l3 + 6] &= 0x40; // keep DF, clear MF and offset
        f[l3 + 7] = 0;
        f[l3 + 8] = ACK_TTL;
        let mut c = word(f, 10);
        for (o, i) in old.into_iter().zip([0, 2, 6, 8]) {
            c = checksum_update(c, o, word(f, i));
        }
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    let l4 = u.l4;
    let mut p = [0u8; 2];
    p.copy_from_slice(&f[l4..l4 + 2]);
    f.copy_within(l4 + 2..l4 + 4, l4);
    f[l4 + 2..l4 + 4].copy_from_slice(&p);
    f[l4 + 4..l4 + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    f[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
    let end = l4 + udp_len;
    let c = if u.v6 {
        let (ip, udp) = f.split_at(l4);
        udp_checksum(&ip[l3 + 8..l3 + 24], &ip[l3 + 24..l3 + 40], &udp[..udp_len])
    } else {
        let (ip, udp) = f.split_at(l4);
        udp_checksum(&ip[l3 + 12..l3 + 16], &ip[l3 + 16..l3 + 20], &udp[..udp_len])
    };
    f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid IPv4/UDP move frame to 7777 (checksum filled in).
    fn v4_frame() -> [u8; 14 + 20 + 8 + 64] {
        let mut f = [0u8; 106];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&ETH_P_IP.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&92u16.to_be_bytes());
        f[22] = 64;
        f[23] = IPPROTO_UDP;
        f[26..30].copy_from_slice(&[198, 18, 0, 2]);
        f[30..34].copy_from_slice(&[198, 18, 0, 1]);
        fix_v4_checksum(&mut f, 14);
        f[34..36].copy_from_slice(&40000u16.to_be_bytes());
        f[36..38].copy_from_slice(&7777u16.to_be_bytes());
        f[38..40].copy_from_slice(&72u16.to_be_bytes());
        f
    }

    /// The incrementally updated header checksum of an ack equals a full
    /// recompute, over many headers (ids, TOS/ECN, flags, fragment bits,
    /// TTLs, addresses): the update is only right if every changed word is in it.
    #[test]
    fn ack_ipv4_checksum_matches_a_full_recompute() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut f = v4_frame();
            let r = next();
            f[15] = r as u8; // TOS + ECN
            f[18..20].copy_from_slice(&((r >> 8) as u16).to_be_bytes()); // id
            f[20] = ((r >> 24) as u8) & 0x40; // DF or not (fragments are never served)
            f[22] = (r >> 32) as u8 | 1; // TTL
            f[26..34].copy_from_slice(&next().to_be_bytes()); // addresses
            fix_v4_checksum(&mut f, 14);
            let Class::Serve(u) = classify(&f[..], 7777, 64) else { continue };
            rewrite_to_ack(&mut f, &u);
            let got = u16::from_be_bytes([f[24], f[25]]);
            let mut h = [0u8; 20];
            h.copy_from_slice(&f[14..34]);
            h[10..12].copy_from_slice(&[0, 0]);
            assert_eq!(got, ipv4_checksum(&h), "header {:02x?}", &f[14..34]);
        }
    }

    fn fix_v4_checksum(f: &mut [u8], l3: usize) {
        f[l3 + 10] = 0;
        f[l3 + 11] = 0;
        let mut acc = 0u32;
        for i in 0..10 {
            acc += u16::from_be_bytes([f[l3 + 2 * i], f[l3 + 2 * i + 1]]) as u32;
        }
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        f[l3 + 10..l3 + 12].copy_from_slice(&(!(acc as u16)).to_be_bytes());
    }

    #[test]
    fn a_valid_frame_is_served_and_every_defect_has_its_reason() {
        let f = v4_frame();
        assert_eq!(classify(&f[..], 7777, 64), Class::Serve(Located { l3: 14, l4: 34, v6: false, payload_len: 64 }));
        assert_eq!(classify(&f[..], 7778, 64), Class::Pass, "other port");
        // total length past the frame
        let mut g = f;
        g[16..18].copy_from_slice(&600u16.to_be_bytes());
        fix_v4_checksum(&mut g, 14);
        assert_eq!(classify(&g[..], 7777, 64), Class::Drop(DropReason::BadIpHeader));
        // bad checksum
        let mut g = f;
        g[24] ^= 1;
        assert_eq!(classify(&g[..], 7777, 64), Class::Drop(DropReason::BadIpHeader));
        // first fragment
        let mut g = f;
        g[20] = 0x20;
        fix_v4_checksum(&mut g, 14);
        assert_eq!(classify(&g[..], 7777, 64), Class::Drop(DropReason::Fragment));
        // non-first fragment: the kernel's
        let mut g = f;
        g[21] = 8;
        fix_v4_checksum(&mut g, 14);
        assert_eq!(classify(&g[..], 7777, 64), Class::Pass);
        // IHL < 5 and a wrong version
        for b in [0x44u8, 0x65] {
            let mut g = f;
            g[14] = b;
            fix_v4_checksum(&mut g, 14);
            assert_eq!(classify(&g[..], 7777, 64), Class::Drop(DropReason::BadIpHeader), "{b:#x}");
        }
        // martian sources
        for src in [[0u8, 1, 2, 3], [127, 0, 0, 1], [224, 0, 0, 1], [255, 255, 255, 255], [240, 0, 0, 1]] {
            let mut g = f;
            g[26..30].copy_from_slice(&src);
            fix_v4_checksum(&mut g, 14);
            assert_eq!(classify(&g[..], 7777, 64), Class::Drop(DropReason::MartianSource), "{src:?}");
        }
        let mut g = f;
        g[6] = 1; // multicast source MAC
        assert_eq!(classify(&g[..], 7777, 64), Class::Drop(DropReason::MartianSource));
        // UDP length disagreeing with the IP layer, and a short payload
        let mut g = f;
        g[38..40].copy_from_slice(&70u16.to_be_bytes());
        assert_eq!(classify(&g[..], 7777, 64), Class::Drop(DropReason::WrongLength));
        assert_eq!(classify(&f[..], 7777, 48), Class::Drop(DropReason::WrongLength));
        // truncation anywhere never panics and never serves
        for cut in 0..f.len() {
            assert!(!matches!(classify(&f[..cut], 7777, 64), Class::Serve(_)), "cut {cut}");
        }
    }

    #[test]
    fn qinq_and_options_to_the_move_port_are_dropped_elsewhere_passed() {
        let f = v4_frame();
        // two tags
        let mut q = [0u8; 114];
        q[..12].copy_from_slice(&f[..12]);
        q[12..14].copy_from_slice(&ETH_P_8021AD.to_be_bytes());
        q[16..18].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
        q[20..22].copy_from_slice(&ETH_P_IP.to_be_bytes());
        q[22..].copy_from_slice(&f[14..]);
        assert_eq!(classify(&q[..], 7777, 64), Class::Drop(DropReason::VlanStack));
        assert_eq!(classify(&q[..], 53, 64), Class::Pass);
        // one tag is served
        let mut t = [0u8; 110];
        t[..12].copy_from_slice(&f[..12]);
        t[12..14].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
        t[16..18].copy_from_slice(&ETH_P_IP.to_be_bytes());
        t[18..].copy_from_slice(&f[14..]);
        assert!(matches!(classify(&t[..], 7777, 64), Class::Serve(Located { l3: 18, .. })));
        // IPv4 options (IHL 6)
        let mut o = [0u8; 110];
        o[..34].copy_from_slice(&f[..34]);
        o[14] = 0x46;
        o[16..18].copy_from_slice(&96u16.to_be_bytes());
        o[38..].copy_from_slice(&f[34..]);
        assert_eq!(classify(&o[..], 7777, 64), Class::Drop(DropReason::IpOptions));
        assert_eq!(classify(&o[..], 53, 64), Class::Pass);
    }

    #[test]
    fn ipv6_extension_headers_fragments_and_martians() {
        let mut f = [0u8; 14 + 40 + 8 + 64];
        f[0] = 2;
        f[6] = 2;
        f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
        f[14] = 0x60;
        f[18..20].copy_from_slice(&72u16.to_be_bytes());
        f[20] = IPPROTO_UDP;
        f[22..24].copy_from_slice(&[0x20, 0x01]);
        f[37] = 2;
        f[54 + 2..54 + 4].copy_from_slice(&7777u16.to_be_bytes());
        f[54 + 4..54 + 6].copy_from_slice(&72u16.to_be_bytes());
        assert!(matches!(classify(&f[..], 7777, 64), Class::Serve(Located { l4: 54, v6: true, .. })));
        let mut g = f;
        g[14] = 0x40; // version 4 in an IPv6 ethertype
        assert_eq!(classify(&g[..], 7777, 64), Class::Drop(DropReason::BadIpHeader));
        for (src, what) in [([0u8; 16], "::"), ([0xff; 16], "multicast")] {
            let mut g = f;
            g[22..38].copy_from_slice(&src);
            assert_eq!(classify(&g[..], 7777, 64), Class::Drop(DropReason::MartianSource), "{what}");
        }
        // a destination-options header in front of UDP, and a fragment header
        for (nh, frag) in [(IPV6_DSTOPTS, false), (IPV6_FRAGMENT, true)] {
            let mut e = [0u8; 14 + 40 + 8 + 8 + 64];
            e[..54].copy_from_slice(&f[..54]);
            e[20] = nh;
            e[18..20].copy_from_slice(&80u16.to_be_bytes());
            e[54] = IPPROTO_UDP;
            e[62..].copy_from_slice(&f[54..]);
            let want = if frag { DropReason::Fragment } else { DropReason::IpOptions };
            assert_eq!(classify(&e[..], 7777, 64), Class::Drop(want));
            assert_eq!(classify(&e[..], 53, 64), Class::Pass);
        }
    }

    #[test]
    fn martian_address_ranges() {
        assert!(martian_v4(0x7f000001) && martian_v4(0) && martian_v4(0xe0000001) && martian_v4(0xffffffff));
        assert!(!martian_v4(0xc6120002) && !martian_v4(0x0a000001));
        assert!(martian_v6([0, 0, 0, 0]) && martian_v6([0, 0, 0, 1]) && martian_v6([0xff02_0000, 0, 0, 1]));
        assert!(martian_v6([0, 0, 0xffff, 0x0a000001]));
        assert!(!martian_v6([0x2001_0db8, 0, 0, 1]) && !martian_v6([0xfe80_0000, 0, 0, 1]));
    }

    #[test]
    fn classify_udp_judges_any_port_and_length_by_the_same_rules() {
        let f = v4_frame();
        assert!(matches!(classify_udp(&f[..]), Class::Serve(Located { payload_len: 64, .. })));
        // another port and a 10-byte payload
        let mut g = [0u8; 14 + 20 + 8 + 10];
        g[..34].copy_from_slice(&f[..34]);
        g[16..18].copy_from_slice(&38u16.to_be_bytes());
        fix_v4_checksum(&mut g, 14);
        g[34..36].copy_from_slice(&40000u16.to_be_bytes());
        g[36..38].copy_from_slice(&53u16.to_be_bytes());
        g[38..40].copy_from_slice(&18u16.to_be_bytes());
        assert!(matches!(classify_udp(&g[..]), Class::Serve(Located { payload_len: 10, .. })));
        assert_eq!(udp_port_and_len(&g[..]), Some((53, 18)));
        // a martian source is judged as the appliance judges it
        let mut m = g;
        m[26..30].copy_from_slice(&[127, 0, 0, 1]);
        fix_v4_checksum(&mut m, 14);
        assert_eq!(classify_udp(&m[..]), Class::Drop(DropReason::MartianSource));
        // TCP is not UDP
        let mut t = g;
        t[23] = 6;
        assert_eq!(classify_udp(&t[..]), Class::Pass);
    }
}
