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
        // Every record is judged by the appliance's own classifier
        // (ironhoard_classify): IP records get an Ethernet header
        // first. What the appliance would not serve is skipped and counted.
        let frame: std::borrow::Cow<'_, [u8]> = match linktype {
            LINKTYPE_ETHERNET => std::borrow::Cow::Borrowed(&buf[..]),
            LINKTYPE_RAW | LINKTYPE_RAW_ALT => with_ethernet(&buf[..]),
            LINKTYPE_LINUX_SLL if buf.len() >= 16 => with_ethernet(&buf[16..]),
            LINKTYPE_LINUX_SLL2 if buf.len() >= 20 => with_ethernet(&buf[20..]),
            LINKTYPE_LINUX_SLL | LINKTYPE_LINUX_SLL2 => {
                skipped += 1;
                continue;
            }
            other => bail!("{}: link type {other} is not supported (Ethernet, raw IP, Linux cooked)", path.display()),
        };
        match ironhoard_classify::classify_udp(&frame[..]) {
            ironhoard_classify::Class::Serve(at) => {
                let f = &frame[..];
                let dst_ip = if at.v6 {
                    IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&f[at.l3 + 24..at.l3 + 40]).expect("16 bytes")))
                } else {
                    IpAddr::V4(Ipv4Addr::new(f[at.l3 + 16], f[at.l3 + 17], f[at.l3 + 18], f[at.l3 + 19]))
                };
                let dport = u16::from_be_bytes([f[at.l4 + 2], f[at.l4 + 3]]);
                let payload = f[at.payload()..at.payload() + at.payload_len].to_vec();
                out.push(Datagram { rel_ns: ts.saturating_sub(base), dst: SocketAddr::new(dst_ip, dport), payload })
            }
            _ => skipped += 1,
        }
    }
    Ok((out, skipped))
}

/// An IP packet behind a made-up Ethernet header (unicast MACs, the
/// ethertype from the IP version), so one classifier judges every link type.
fn with_ethernet(ip: &[u8]) -> std::borrow::Cow<'static, [u8]> {
    let et: u16 = if ip.first().map(|b| b >> 4) == Some(6) { 0x86dd } else { 0x0800 };
    let mut f = Vec::with_capacity(14 + ip.len());
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(ip);
    std::borrow::Cow::Owned(f)
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
