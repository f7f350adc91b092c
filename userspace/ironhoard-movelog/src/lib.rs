//! The move log: every ACCEPTED move, once, in order of dispatch.
//!
//! Layout (docs/movelog.md has the byte tables, for consumers in any
//! language). A log is a directory of segment files named
//! `moves-<first offset, 20 digits>.ihlog`. Each segment is a 64-byte header
//! followed by 96-byte records:
//!
//! - header: magic `IHMLOG01`, format version (u32 = 1), record size
//!   (u32 = 96), offset of the first record (u64), creation time (u64, Unix
//!   ns), CRC-32 (IEEE) of the preceding 32 bytes, zero padding.
//! - record: offset (u64, the record's position in the whole log, from 0,
//!   continuing across segments), server receive time (u64, Unix ns), queue
//!   (u16), reserved (u16 = 0), CRC-32 of bytes 0..20 and 24..96, the 64
//!   signed move bytes exactly as received, 8 reserved zero bytes.
//!
//! All integers are big-endian. A record whose CRC fails, or a partial one
//! at the end of a segment, is a torn write (a crash mid-write): readers
//! stop there and the writer truncates it away when it reopens the log.

mod reader;
mod writer;

pub use reader::{Reader, ReadError, Segment};
pub use writer::{SyncPolicy, Writer, WriterConfig};

use ironhoard_wire::MOVE_LEN;

pub const MAGIC: [u8; 8] = *b"IHMLOG01";
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
pub const RECORD_LEN: usize = 96;
pub const SEGMENT_PREFIX: &str = "moves-";
pub const SEGMENT_SUFFIX: &str = ".ihlog";

/// One accepted move as the pollers hand it to the dispatcher (no offset
/// yet: the dispatcher assigns it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub recv_unix_ns: u64,
    pub queue: u16,
    pub mv: [u8; MOVE_LEN],
}

/// A record read back from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub offset: u64,
    pub recv_unix_ns: u64,
    pub queue: u16,
    pub mv: [u8; MOVE_LEN],
}

/// Segment file name for a first offset.
pub fn segment_name(first: u64) -> String {
    format!("{SEGMENT_PREFIX}{first:020}{SEGMENT_SUFFIX}")
}

/// The first offset in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    name.strip_prefix(SEGMENT_PREFIX)?.strip_suffix(SEGMENT_SUFFIX)?.parse().ok()
}

fn crc_record(b: &[u8; RECORD_LEN]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[0..20]);
    h.update(&b[24..RECORD_LEN]);
    h.finalize()
}

/// Encodes a record.
pub fn encode_record(offset: u64, a: &Accepted, out: &mut [u8; RECORD_LEN]) {
    out[0..8].copy_from_slice(&offset.to_be_bytes());
    out[8..16].copy_from_slice(&a.recv_unix_ns.to_be_bytes());
    out[16..18].copy_from_slice(&a.queue.to_be_bytes());
    out[18..20].copy_from_slice(&[0, 0]);
    out[24..88].copy_from_slice(&a.mv);
    out[88..96].fill(0);
    let c = crc_record(out);
    out[20..24].copy_from_slice(&c.to_be_bytes());
}

/// Decodes a record; `None` if its CRC fails (a torn or corrupt record).
pub fn decode_record(b: &[u8; RECORD_LEN]) -> Option<Record> {
    let crc = u32::from_be_bytes(b[20..24].try_into().unwrap());
    if crc != crc_record(b) {
        return None;
    }
    let mut mv = [0u8; MOVE_LEN];
    mv.copy_from_slice(&b[24..88]);
    Some(Record {
        offset: u64::from_be_bytes(b[0..8].try_into().unwrap()),
        recv_unix_ns: u64::from_be_bytes(b[8..16].try_into().unwrap()),
        queue: u16::from_be_bytes(b[16..18].try_into().unwrap()),
        mv,
    })
}

/// Encodes a segment header.
pub fn encode_header(first: u64, created_unix_ns: u64) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    h[12..16].copy_from_slice(&(RECORD_LEN as u32).to_be_bytes());
    h[16..24].copy_from_slice(&first.to_be_bytes());
    h[24..32].copy_from_slice(&created_unix_ns.to_be_bytes());
    let c = crc32fast::hash(&h[0..32]);
    h[32..36].copy_from_slice(&c.to_be_bytes());
    h
}

/// Decodes a segment header: (first offset, created).
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Result<(u64, u64), String> {
    if h[0..8] != MAGIC {
        return Err("not a move log segment (bad magic)".into());
    }
    let v = u32::from_be_bytes(h[8..12].try_into().unwrap());
    if v != FORMAT_VERSION {
        return Err(format!("unsupported format version {v}"));
    }
    let rl = u32::from_be_bytes(h[12..16].try_into().unwrap());
    if rl as usize != RECORD_LEN {
        return Err(format!("unsupported record size {rl}"));
    }
    if u32::from_be_bytes(h[32..36].try_into().unwrap()) != crc32fast::hash(&h[0..32]) {
        return Err("header checksum mismatch".into());
    }
    Ok((u64::from_be_bytes(h[16..24].try_into().unwrap()), u64::from_be_bytes(h[24..32].try_into().unwrap())))
}

/// Now, Unix ns.
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_corruption() {
        let a = Accepted { recv_unix_ns: 123, queue: 7, mv: [9; 64] };
        let mut b = [0u8; RECORD_LEN];
        encode_record(42, &a, &mut b);
        let r = decode_record(&b).unwrap();
        assert_eq!((r.offset, r.recv_unix_ns, r.queue, r.mv), (42, 123, 7, [9; 64]));
        for i in 0..RECORD_LEN {
            let mut c = b;
            c[i] ^= 0x10;
            assert!(decode_record(&c).is_none(), "flip at {i} detected");
        }
    }

    #[test]
    fn header_roundtrip() {
        let h = encode_header(1000, 5);
        assert_eq!(decode_header(&h), Ok((1000, 5)));
        let mut bad = h;
        bad[20] ^= 1;
        assert!(decode_header(&bad).is_err());
        assert_eq!(parse_segment_name(&segment_name(77)), Some(77));
        assert_eq!(parse_segment_name("moves-x.ihlog"), None);
    }
}
