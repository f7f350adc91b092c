//! Frames built for the tests and the generator: a UDP datagram in
//! Ethernet (one optional 802.1Q tag) and IPv4 (optional options) or IPv6,
//! with valid checksums; and [`parse_udp`], the served datagram in a frame.
//! The classifier itself, which the XDP program, the pollers and the
//! generator share, is `ironhoard-classify`.

use ironhoard_classify::net::{ETH_P_8021Q, ETH_P_IP, ETH_P_IPV6, IPPROTO_UDP, UDP_HLEN};
use ironhoard_classify::{classify, ipv4_checksum, udp_checksum, Class, Located};

#[cfg(test)]
fn be16(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}

/// The datagram to `port` with a `payload_len`-byte payload that the
/// appliance serves (the same decision the XDP program makes: see
/// `ironhoard_classify`), or `None`.
pub fn parse_udp(f: &[u8], port: u16, payload_len: usize) -> Option<Located> {
    match classify(f, port, payload_len) {
        Class::Serve(u) => Some(u),
        _ => None,
    }
}

/// Addresses of a frame to build (tests, generator).
#[derive(Debug, Clone, Copy)]
pub struct FrameSpec {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub vlan: Option<u16>,
    pub src: std::net::SocketAddr,
    pub dst: std::net::SocketAddr,
    /// IPv4 options bytes to add (multiple of 4, at most 40).
    pub ipv4_options: usize,
}

/// Writes an Ethernet/IP/UDP frame carrying `payload` into `out` with
/// correct checksums; returns its length. `src` and `dst` must be the same
/// family.
pub fn build_udp(out: &mut [u8], s: &FrameSpec, payload: &[u8]) -> usize {
    use std::net::SocketAddr::{V4, V6};
    out[0..6].copy_from_slice(&s.dst_mac);
    out[6..12].copy_from_slice(&s.src_mac);
    let mut l3 = 12;
    if let Some(v) = s.vlan {
        out[12..14].copy_from_slice(&ETH_P_8021Q.to_be_bytes());
        out[14..16].copy_from_slice(&(v & 0x0fff).to_be_bytes());
        l3 += 4;
    }
    let udp_len = UDP_HLEN + payload.len();
    let l4 = match (s.src, s.dst) {
        (V4(a), V4(b)) => {
            out[l3..l3 + 2].copy_from_slice(&ETH_P_IP.to_be_bytes());
            l3 += 2;
            let ihl = 20 + s.ipv4_options;
            let h = &mut out[l3..l3 + ihl];
            h.fill(0);
            h[0] = 0x40 | (ihl / 4) as u8;
            h[2..4].copy_from_slice(&((ihl + udp_len) as u16).to_be_bytes());
            h[6] = 0x40;
            h[8] = 64;
            h[9] = IPPROTO_UDP;
            h[12..16].copy_from_slice(&a.ip().octets());
            h[16..20].copy_from_slice(&b.ip().octets());
            if s.ipv4_options > 0 {
                h[20..ihl].fill(1); // NOP options
            }
            let c = ipv4_checksum(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            l3 + ihl
        }
        (V6(a), V6(b)) => {
            out[l3..l3 + 2].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
            l3 += 2;
            let h = &mut out[l3..l3 + 40];
            h.fill(0);
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            h[6] = IPPROTO_UDP;
            h[7] = 64;
            h[8..24].copy_from_slice(&a.ip().octets());
            h[24..40].copy_from_slice(&b.ip().octets());
            l3 + 40
        }
        _ => panic!("build_udp: mixed address families"),
    };
    out[l4..l4 + 2].copy_from_slice(&s.src.port().to_be_bytes());
    out[l4 + 2..l4 + 4].copy_from_slice(&s.dst.port().to_be_bytes());
    out[l4 + 4..l4 + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    out[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
    out[l4 + 8..l4 + udp_len].copy_from_slice(payload);
    let (ip, udp) = out.split_at_mut(l4);
    let c = match (s.src, s.dst) {
        (V4(_), _) => udp_checksum(&ip[l3 + 12..l3 + 16], &ip[l3 + 16..l3 + 20], &udp[..udp_len]),
        _ => udp_checksum(&ip[l3 + 8..l3 + 24], &ip[l3 + 24..l3 + 40], &udp[..udp_len]),
    };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    l4 + udp_len
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhoard_classify::{fold, rewrite_to_ack, sum16};

    fn spec(v6: bool, vlan: Option<u16>, opts: usize) -> FrameSpec {
        let (src, dst) = if v6 {
            ("[2001:2::2]:40000".parse().unwrap(), "[2001:2::1]:7777".parse().unwrap())
        } else {
            ("198.18.0.2:40000".parse().unwrap(), "198.18.0.1:7777".parse().unwrap())
        };
        FrameSpec { src_mac: [2, 0, 0, 0, 0, 2], dst_mac: [2, 0, 0, 0, 0, 1], vlan, src, dst, ipv4_options: opts }
    }

    fn verify_checksums(f: &[u8], u: &Located) {
        if !u.v6 {
            assert_eq!(ipv4_checksum(&f[u.l3..u.l4]), 0, "IPv4 header checksum verifies");
        }
        let udp_len = be16(f, u.l4 + 4) as usize;
        let (s, d) = if u.v6 { (&f[u.l3 + 8..u.l3 + 24], &f[u.l3 + 24..u.l3 + 40]) } else { (&f[u.l3 + 12..u.l3 + 16], &f[u.l3 + 16..u.l3 + 20]) };
        // summing a packet including its checksum gives 0 (or 0xffff folded)
        let mut acc = sum16(s, 0);
        acc = sum16(d, acc) + 17 + udp_len as u32;
        acc = sum16(&f[u.l4..u.l4 + udp_len], acc);
        assert_eq!(fold(acc), 0, "UDP checksum verifies");
    }

    #[test]
    fn parse_build_roundtrip_and_ack_rewrite() {
        for v6 in [false, true] {
            for vlan in [None, Some(42)] {
                for opts in if v6 { vec![0] } else { vec![0, 4, 40] } {
                    let s = spec(v6, vlan, opts);
                    let mut f = [0u8; 256];
                    let payload = [0xabu8; 64];
                    let n = build_udp(&mut f, &s, &payload);
                    if opts > 0 {
                        // options are never served (nor echoed into an ack)
                        assert_eq!(classify(&f[..n], 7777, 64), Class::Drop(ironhoard_common::DropReason::IpOptions));
                        continue;
                    }
                    let u = parse_udp(&f[..n], 7777, 64).expect("parses");
                    assert_eq!(u.payload_len, 64);
                    assert_eq!(&f[u.payload()..u.payload() + 64], &payload[..]);
                    verify_checksums(&f[..n], &u);
                    assert_eq!(classify(&f[..n], 7778, 64), Class::Pass, "other port");
                    // the engine writes the ack over the payload
                    f[u.payload()..u.payload() + 48].fill(0x5a);
                    let m = rewrite_to_ack(&mut f, &u);
                    assert_eq!(m, u.payload() + 48);
                    let back = parse_udp(&f[..m], 40000, 48).expect("ack parses, to the client port");
                    assert_eq!(back.payload_len, 48);
                    assert_eq!(&f[0..6], &s.src_mac);
                    assert_eq!(&f[6..12], &s.dst_mac);
                    if let Some(v) = vlan {
                        assert_eq!(be16(&f, 14), v, "VLAN kept");
                    }
                    verify_checksums(&f[..m], &back);
                    // addresses swapped, TTL 64
                    let mut want = [0u8; 256];
                    let sw = FrameSpec { src_mac: s.dst_mac, dst_mac: s.src_mac, src: s.dst, dst: s.src, ..s };
                    let k = build_udp(&mut want, &sw, &[0x5a; 48]);
                    assert_eq!(k, m);
                    if v6 {
                        assert_eq!(&f[..m], &want[..m]);
                    } else {
                        assert_eq!(f[u.l3 + 8], 64);
                        assert_eq!(&f[u.l3 + 12..u.l3 + 20], &want[u.l3 + 12..u.l3 + 20]);
                        assert_eq!(&f[u.l4..m], &want[u.l4..m]);
                    }
                }
            }
        }
    }

    #[test]
    fn truncations_and_other_protocols_are_not_served() {
        use ironhoard_common::DropReason;
        let s = spec(false, Some(1), 0);
        let mut f = [0u8; 256];
        let n = build_udp(&mut f, &s, &[1; 64]);
        let u = parse_udp(&f[..n], 7777, 64).unwrap();
        for cut in 0..n {
            assert!(parse_udp(&f[..cut], 7777, 64).is_none(), "cut at {cut}");
        }
        // a frame shorter than its IP length
        assert_eq!(classify(&f[..u.payload() + 10], 7777, 64), Class::Drop(DropReason::BadIpHeader));
        let mut g = f;
        g[u.l3 + 9] = 6; // TCP
        assert_eq!(classify(&g[..n], 7777, 64), Class::Pass);
        let mut g = f;
        g[u.l3 + 6] = 0x20; // MF: a first fragment (checksum now wrong too: either is a drop)
        assert!(matches!(classify(&g[..n], 7777, 64), Class::Drop(_)));
        let mut g = f;
        g[0] = 0xff; // broadcast destination MAC
        assert_eq!(classify(&g[..n], 7777, 64), Class::Pass);
    }
}
