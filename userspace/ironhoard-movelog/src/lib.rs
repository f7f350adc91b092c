//! The move log: every ACCEPTED move, once, in the partition of the poller
//! that accepted it.
//!
//! Layout (docs/movelog.md has the byte tables, for consumers in any
//! language). A log is a directory holding a `LOCK` file and one partition
//! directory per poller, `q<queue>/`. A partition is a sequence of segment
//! files named `moves-<first offset, 20 digits>.ihlog`, each preallocated to
//! its full size: a 64-byte header followed by fixed 96-byte record slots;
//! slots not yet written are zero.
//!
//! - header: magic `IHMLOG01`, format version (u32 = 2), record size
//!   (u32 = 96), offset of the first record (u64), creation time (u64, Unix
//!   ns), partition (u16), zero (u16), zero (u32), segment size in bytes
//!   (u64), zero padding, CRC-32 (IEEE) of bytes 0..60 at 60..64.
//! - record: offset (u64, the record's position in its partition, from 0,
//!   dense, continuing across segments), server receive time (u64, Unix ns),
//!   queue (u16), reserved (u16 = 0), CRC-32 of bytes 0..20 and 24..96, the
//!   64 signed move bytes exactly as received, 8 reserved zero bytes.
//!
//! All integers are big-endian. An all-zero slot is "not written yet"; a
//! non-zero slot whose CRC fails is a torn write (at the live end of the
//! newest segment) or damage (anywhere else).
//!
//! Writing ([`writer`]): each poller owns its partition and appends by
//! copying a record into a memory-mapped, preallocated segment — no system
//! call, lock or allocation — so the record is in the page cache, and
//! survives the death of the process, before the move's ack is sent. A
//! helper thread ([`writer::Keeper`]) prepares the next segment ahead of
//! time, fsyncs per policy, and retires full segments.

pub mod head;
pub mod lock;
mod pace;
pub mod reader;
pub mod recover;
pub mod writer;
#[cfg(test)]
mod crashstate;
#[cfg(test)]
mod tests;

pub use lock::{writer_alive, DirLock, WriterWatch};
pub use reader::{partitions, LogReader, PartitionReader, ReadError, Segment};
pub use recover::{recover_partition, Damage, Recovery};
pub use writer::{open_log, Keeper, LogConfig, LogShared, Partition, PartitionShared, SyncPolicy};

use ironhoard_wire::MOVE_LEN;

pub const MAGIC: [u8; 8] = *b"IHMLOG01";
pub const FORMAT_VERSION: u32 = 2;
pub const HEADER_LEN: usize = 64;
pub const RECORD_LEN: usize = 96;
pub const SEGMENT_PREFIX: &str = "moves-";
pub const SEGMENT_SUFFIX: &str = ".ihlog";
/// Suffix (before a Unix-time stamp) of a segment set aside as damaged.
pub const DAMAGED_INFIX: &str = ".damaged-";
/// The lock file in the log directory (flock'd by the running appliance).
pub const LOCK_FILE: &str = "LOCK";
/// Smallest segment: header plus a few records.
pub const MIN_SEGMENT_BYTES: u64 = (HEADER_LEN + 4 * RECORD_LEN) as u64;

/// One accepted move, as a poller appends it (the partition assigns the
/// offset).
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

/// A decoded segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub first: u64,
    pub created_unix_ns: u64,
    pub partition: u16,
    /// The segment file's full (preallocated) size.
    pub segment_bytes: u64,
}

impl Header {
    /// Record slots in the segment.
    pub fn capacity(&self) -> u64 {
        records_per_segment(self.segment_bytes)
    }
}

/// Record slots in a segment of `bytes`.
pub fn records_per_segment(bytes: u64) -> u64 {
    bytes.saturating_sub(HEADER_LEN as u64) / RECORD_LEN as u64
}

/// Segment file name for a first offset.
pub fn segment_name(first: u64) -> String {
    format!("{SEGMENT_PREFIX}{first:020}{SEGMENT_SUFFIX}")
}

/// The first offset in a segment file name, if it is one.
pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Partition directory name for a queue.
pub fn partition_name(queue: u16) -> String {
    format!("q{queue}")
}

/// The queue of a partition directory name.
pub fn parse_partition_name(name: &str) -> Option<u16> {
    let d = name.strip_prefix('q')?;
    if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) || (d.len() > 1 && d.starts_with('0')) {
        return None;
    }
    d.parse().ok()
}

fn crc_record(b: &[u8; RECORD_LEN]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&b[0..20]);
    h.update(&b[24..RECORD_LEN]);
    h.finalize()
}

/// Encodes a record into a slot.
#[inline]
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

/// What a record slot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    /// Never written (all zero).
    Empty,
    /// A record whose CRC holds.
    Valid(Record),
    /// Non-zero bytes whose CRC fails: torn or damaged.
    Bad,
}

/// Decodes a record slot.
pub fn decode_slot(b: &[u8; RECORD_LEN]) -> Slot {
    if b.iter().all(|&x| x == 0) {
        return Slot::Empty;
    }
    decode_record(b).map_or(Slot::Bad, Slot::Valid)
}

/// Decodes a record; `None` if its CRC fails (a torn or corrupt record).
pub fn decode_record(b: &[u8; RECORD_LEN]) -> Option<Record> {
    let crc = u32::from_be_bytes([b[20], b[21], b[22], b[23]]);
    if crc != crc_record(b) {
        return None;
    }
    let mut mv = [0u8; MOVE_LEN];
    mv.copy_from_slice(&b[24..88]);
    Some(Record {
        offset: be64(&b[0..8]),
        recv_unix_ns: be64(&b[8..16]),
        queue: u16::from_be_bytes([b[16], b[17]]),
        mv,
    })
}

fn be64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[..8]);
    u64::from_be_bytes(x)
}

/// Encodes a segment header.
pub fn encode_header(h: &Header) -> [u8; HEADER_LEN] {
    let mut b = [0u8; HEADER_LEN];
    b[0..8].copy_from_slice(&MAGIC);
    b[8..12].copy_from_slice(&FORMAT_VERSION.to_be_bytes());
    b[12..16].copy_from_slice(&(RECORD_LEN as u32).to_be_bytes());
    b[16..24].copy_from_slice(&h.first.to_be_bytes());
    b[24..32].copy_from_slice(&h.created_unix_ns.to_be_bytes());
    b[32..34].copy_from_slice(&h.partition.to_be_bytes());
    b[40..48].copy_from_slice(&h.segment_bytes.to_be_bytes());
    let c = crc32fast::hash(&b[0..60]);
    b[60..64].copy_from_slice(&c.to_be_bytes());
    b
}

/// Decodes a segment header, saying what is wrong with a bad one.
pub fn decode_header(b: &[u8; HEADER_LEN]) -> Result<Header, String> {
    if b[0..8] != MAGIC {
        return Err("not a move log segment (bad magic)".into());
    }
    let v = u32::from_be_bytes([b[8], b[9], b[10], b[11]]);
    if v != FORMAT_VERSION {
        return Err(format!("unsupported format version {v} (this build reads {FORMAT_VERSION})"));
    }
    let rl = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
    if rl as usize != RECORD_LEN {
        return Err(format!("unsupported record size {rl}"));
    }
    if u32::from_be_bytes([b[60], b[61], b[62], b[63]]) != crc32fast::hash(&b[0..60]) {
        return Err("header checksum mismatch".into());
    }
    let h = Header {
        first: be64(&b[16..24]),
        created_unix_ns: be64(&b[24..32]),
        partition: u16::from_be_bytes([b[32], b[33]]),
        segment_bytes: be64(&b[40..48]),
    };
    if h.segment_bytes < MIN_SEGMENT_BYTES {
        return Err(format!("segment size {} is below the minimum {MIN_SEGMENT_BYTES}", h.segment_bytes));
    }
    Ok(h)
}

/// Reads at `pos` until `buf` is full or the file ends; returns the bytes read.
pub(crate) fn read_full(f: &std::fs::File, buf: &mut [u8], mut pos: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match std::os::unix::fs::FileExt::read_at(f, &mut buf[got..], pos) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                pos += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Now, Unix ns.
pub fn unix_ns() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

#[cfg(test)]
mod format_tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_corruption() {
        let a = Accepted { recv_unix_ns: 123, queue: 7, mv: [9; 64] };
        let mut b = [0u8; RECORD_LEN];
        encode_record(42, &a, &mut b);
        let r = decode_record(&b).unwrap();
        assert_eq!((r.offset, r.recv_unix_ns, r.queue, r.mv), (42, 123, 7, [9; 64]));
        assert_eq!(decode_slot(&b), Slot::Valid(r));
        for i in 0..RECORD_LEN {
            let mut c = b;
            c[i] ^= 0x10;
            assert!(decode_record(&c).is_none(), "flip at {i} detected");
            assert_eq!(decode_slot(&c), Slot::Bad);
        }
        assert_eq!(decode_slot(&[0; RECORD_LEN]), Slot::Empty);
    }

    #[test]
    fn header_roundtrip_and_every_field_checked() {
        let h = Header { first: 1000, created_unix_ns: 5, partition: 3, segment_bytes: 1 << 20 };
        let b = encode_header(&h);
        assert_eq!(decode_header(&b), Ok(h));
        assert_eq!(h.capacity(), ((1 << 20) - 64) / 96);
        for i in 0..HEADER_LEN {
            let mut bad = b;
            bad[i] ^= 1;
            assert!(decode_header(&bad).is_err(), "flip at {i} detected");
        }
    }

    #[test]
    fn names() {
        assert_eq!(parse_segment_name(&segment_name(77)), Some(77));
        assert_eq!(parse_segment_name("moves-x.ihlog"), None);
        assert_eq!(parse_segment_name("moves-77.ihlog"), None, "20 digits only");
        assert_eq!(parse_segment_name(&format!("{}{}1", segment_name(3), DAMAGED_INFIX)), None);
        assert_eq!(parse_partition_name(&partition_name(12)), Some(12));
        assert_eq!(parse_partition_name("q"), None);
        assert_eq!(parse_partition_name("q01"), None);
        assert_eq!(parse_partition_name("x1"), None);
    }
}
