//! Classic pcap files (the format tcpdump, tcpreplay and tshark read and
//! write): a writer of Ethernet frames, and a reader that extracts UDP
//! datagrams from Ethernet, Linux cooked (SLL, SLL2) and raw-IP captures.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;

use anyhow::{bail, Context, Result};

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
pub const LINKTYPE_ETHERNET: u32 = 1;
const LINKTYPE_RAW: u32 = 101;
const LINKTYPE_LINUX_SLL: u32 = 113;
const LINKTYPE_LINUX_SLL2: u32 = 276;
const LINKTYPE_RAW_ALT: u32 = 12;

/// Writes Ethernet frames with nanosecond-free (microsecond) timestamps.
pub struct Writer {
    out: BufWriter<File>,
}

impl Writer {
    pub fn create(path: &Path) -> Result<Writer> {
        let f = File::create(path).with_context(|| format!("creating pcap {}", path.display()))?;
        let mut out = BufWriter::with_capacity(1 << 20, f);
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&MAGIC_US.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65535u32.to_le_bytes());
        h.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h).with_context(|| format!("writing pcap {}", path.display()))?;
        Ok(Writer { out })
    }

    /// Appends a frame captured at `ts_ns` (Unix time, nanoseconds).
    pub fn write(&mut self, ts_ns: u64, frame: &[u8]) -> io::Result<()> {
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((ts_ns / 1_000_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&(((ts_ns % 1_000_000_000) / 1000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        h[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(frame)
    }

    pub fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One UDP datagram found in a capture.
#[derive(Debug, Clone)]
pub struct Datagram {
    /// Capture time, nanoseconds since the first record.
    pub rel_ns: u64,
    pub dst: SocketAddr,
    pub payload: Vec<u8>,
}

/// Reads every UDP datagram of a capture (other records are skipped and
/// counted). Returns the datagrams and how many records were skipped.
pub fn read_udp(path: &Path) -> Result<(Vec<Datagram>, usize)> {
    let f = File::open(path).with_context(|| format!("opening pcap {}", path.display()))?;
    let mut r = BufReader::new(f);
    let mut gh = [0u8; 24];
    r.read_exact(&mut gh).with_context(|| format!("{}: too short for a pcap header", path.display()))?;
    let m = u32::from_le_bytes(gh[0..4].try_into().unwrap());
    let (le, ns) = match m {
        MAGIC_US => (true, false),
        MAGIC_NS => (true, true),
        _ if u32::from_be_bytes(gh[0..4].try_into().unwrap()) == MAGIC_US => (false, false),
        _ if u32::from_be_bytes(gh[0..4].try_into().unwrap()) == MAGIC_NS => (false, true),
        0x0a0d_0d0a => bail!("{}: pcapng is not supported; convert with: tshark -F pcap -r IN -w OUT", path.display()),
        _ => bail!("{}: not a pcap file (magic {m:#010x})", path.display()),
    };
    let u32_at = |b: &[u8], o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().unwrap();
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let linktype = u32_at(&gh, 20) & 0x0fff_ffff;
    let mut out = Vec::new();
    let mut skipped = 0usize;
    let mut first: Option<u64> = None;
    let mut rh = [0u8; 16];
    let mut buf = Vec::new();
    loop {
        match r.read_exact(&mut rh) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let sec = u32_at(&rh, 0) as u64;
        let frac = u32_at(&rh, 4) as u64;
        let ts = sec * 1_000_000_000 + if ns { frac } else { frac * 1000 };
        let incl = u32_at(&rh, 8) as usize;
        if incl > 1 << 20 {
            bail!("{}: record of {incl} bytes: corrupt capture", path.display());
        }
        buf.resize(incl, 0);
        r.read_exact(&mut buf).with_context(|| format!("{}: truncated record", path.display()))?;
        let base = *first.get_or_insert(ts);
        let l3 = match linktype {
            LINKTYPE_ETHERNET => ethernet_l3(&buf),
            LINKTYPE_RAW | LINKTYPE_RAW_ALT => Some(0),
            LINKTYPE_LINUX_SLL => (buf.len() >= 16).then_some(16),
            LINKTYPE_LINUX_SLL2 => (buf.len() >= 20).then_some(20),
            other => bail!("{}: link type {other} is not supported (Ethernet, raw IP, Linux cooked)", path.display()),
        };
        match l3.and_then(|o| udp_in_ip(&buf[o..])) {
            Some((_src, dst, payload)) => {
                out.push(Datagram { rel_ns: ts.saturating_sub(base), dst, payload: payload.to_vec() })
            }
            None => skipped += 1,
        }
    }
    Ok((out, skipped))
}

fn ethernet_l3(f: &[u8]) -> Option<usize> {
    if f.len() < 14 {
        return None;
    }
    let mut o = 12;
    let mut et = u16::from_be_bytes([f[o], f[o + 1]]);
    while et == 0x8100 || et == 0x88a8 {
        o += 4;
        if f.len() < o + 2 {
            return None;
        }
        et = u16::from_be_bytes([f[o], f[o + 1]]);
    }
    Some(o + 2)
}

fn udp_in_ip(p: &[u8]) -> Option<(SocketAddr, SocketAddr, &[u8])> {
    let v = p.first()? >> 4;
    let (src, dst, l4, end) = match v {
        4 => {
            if p.len() < 20 || p[9] != 17 {
                return None;
            }
            let ihl = (p[0] & 0x0f) as usize * 4;
            if ihl < 20 || u16::from_be_bytes([p[6], p[7]]) & 0x3fff != 0 {
                return None; // fragment
            }
            let tot = u16::from_be_bytes([p[2], p[3]]) as usize;
            let s = IpAddr::V4(Ipv4Addr::new(p[12], p[13], p[14], p[15]));
            let d = IpAddr::V4(Ipv4Addr::new(p[16], p[17], p[18], p[19]));
            (s, d, ihl, tot.min(p.len()))
        }
        6 => {
            if p.len() < 40 || p[6] != 17 {
                return None;
            }
            let s: [u8; 16] = p[8..24].try_into().ok()?;
            let d: [u8; 16] = p[24..40].try_into().ok()?;
            let plen = u16::from_be_bytes([p[4], p[5]]) as usize;
            (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d)), 40, (40 + plen).min(p.len()))
        }
        _ => return None,
    };
    if end < l4 + 8 {
        return None;
    }
    let u = &p[l4..end];
    let sp = u16::from_be_bytes([u[0], u[1]]);
    let dp = u16::from_be_bytes([u[2], u[3]]);
    let ulen = (u16::from_be_bytes([u[4], u[5]]) as usize).clamp(8, u.len());
    Some((SocketAddr::new(src, sp), SocketAddr::new(dst, dp), &u[8..ulen]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ironhoard_dataplane::frame::{build_udp, FrameSpec};

    #[test]
    fn write_then_read_back() {
        let dir = std::env::temp_dir().join(format!("ih-pcap-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.pcap");
        let mut w = Writer::create(&p).unwrap();
        for (i, v6) in [false, true, false].iter().enumerate() {
            let (src, dst) = if *v6 {
                ("[2001:2::2]:5000".parse().unwrap(), "[2001:2::1]:7777".parse().unwrap())
            } else {
                ("198.18.0.2:5000".parse().unwrap(), "198.18.0.1:7777".parse().unwrap())
            };
            let s = FrameSpec { src_mac: [2; 6], dst_mac: [4; 6], vlan: (i == 2).then_some(9), src, dst, ipv4_options: 0 };
            let mut f = [0u8; 200];
            let n = build_udp(&mut f, &s, &[i as u8; 64]);
            w.write(1_000_000_000 + i as u64 * 1_000_000, &f[..n]).unwrap();
        }
        w.write(0, &[0u8; 20]).unwrap(); // junk record
        w.finish().unwrap();
        let (d, skipped) = read_udp(&p).unwrap();
        assert_eq!(d.len(), 3);
        assert_eq!(skipped, 1);
        assert_eq!(d[1].payload, vec![1u8; 64]);
        assert_eq!(d[2].rel_ns, 2_000_000);
        assert_eq!(d[1].dst, "[2001:2::1]:7777".parse().unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
