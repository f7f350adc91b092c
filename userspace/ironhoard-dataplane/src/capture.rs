//! Capture: copies of what a poller received (the whole Ethernet frame as
//! it arrived in the UMEM, before it became the ack) and, if asked, of the
//! acks it sent, for `ironhoard capture`.
//!
//! Each poller gets its own bounded ring ([`CaptureRing`], allocated once
//! when a capture starts) through [`WorkerShared`](crate::WorkerShared);
//! the poller pushes fixed-size [`Record`]s (no allocation, no lock, no
//! system call) and the control plane pops them. A push that finds the
//! ring full is counted (`capture_skipped`) and the poller goes on: a
//! capture never slows the data path down to the reader's pace.

use crossbeam_queue::ArrayQueue;
use ironhoard_wire::{Status, ACK_LEN};

/// Frame bytes kept per record: the classifier serves nothing longer
/// (Ethernet + 802.1Q + IPv6 + UDP + a 64-byte move; see mesh.rs).
pub const CAPTURE_MAX: usize = crate::mesh::HANDOFF_MAX;

/// The status of a record that has none: a move dropped without an ack
/// (bad tag, wrong length, ...).
pub const NO_STATUS: u8 = 0xff;

/// Records a ring holds by default (per poller).
pub const DEFAULT_RING: usize = 8192;

/// What a record is a copy of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A frame as received (or handed over by another poller).
    Move = 0,
    /// An ack as it goes on the TX ring.
    Ack = 1,
}

impl RecordKind {
    pub fn from_u8(v: u8) -> Option<RecordKind> {
        match v {
            0 => Some(RecordKind::Move),
            1 => Some(RecordKind::Ack),
            _ => None,
        }
    }
}

/// One captured frame: at most [`CAPTURE_MAX`] bytes of it, its length on
/// the wire, when it was received (CLOCK_MONOTONIC, ns), what it is and
/// the status of the ack it got (or sent), [`NO_STATUS`] without one.
#[derive(Clone, Copy)]
pub struct Record {
    pub mono_ns: u64,
    /// The frame's length (may exceed the bytes kept).
    pub len: u16,
    pub kind: RecordKind,
    pub status: u8,
    data: [u8; CAPTURE_MAX],
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Record {{ {:?}, status {}, len {}, at {} }}", self.kind, self.status, self.len, self.mono_ns)
    }
}

impl Record {
    /// A copy of (the first [`CAPTURE_MAX`] bytes of) `frame`.
    #[inline]
    pub fn new(kind: RecordKind, status: u8, mono_ns: u64, frame: &[u8]) -> Record {
        let mut r = Record { mono_ns, len: frame.len().min(u16::MAX as usize) as u16, kind, status, data: [0; CAPTURE_MAX] };
        let n = frame.len().min(CAPTURE_MAX);
        r.data[..n].copy_from_slice(&frame[..n]);
        r
    }

    /// The bytes kept.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..(self.len as usize).min(CAPTURE_MAX)]
    }
}

/// The status byte of an ack frame of `len` bytes (the ack is the frame's
/// last [`ACK_LEN`] bytes; status at offset 4).
#[inline]
pub fn ack_status(frame: &[u8]) -> u8 {
    match frame.len().checked_sub(ACK_LEN) {
        Some(p) => frame[p + 4],
        None => NO_STATUS,
    }
}

/// One poller's capture ring and what it is to keep.
pub struct CaptureRing {
    ring: ArrayQueue<Record>,
    /// Also keep the acks sent.
    pub acks: bool,
    /// Keep only moves (and acks) with this status.
    pub status: Option<u8>,
}

impl std::fmt::Debug for CaptureRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CaptureRing {{ {}/{} records, acks {}, status {:?} }}", self.ring.len(), self.ring.capacity(), self.acks, self.status)
    }
}

impl CaptureRing {
    /// A ring of `capacity` records (allocated here, once).
    pub fn new(capacity: usize, acks: bool, status: Option<u8>) -> CaptureRing {
        CaptureRing { ring: ArrayQueue::new(capacity.max(1)), acks, status }
    }

    /// Whether a move whose ack had `status` is kept.
    #[inline]
    pub fn wants(&self, status: u8) -> bool {
        self.status.is_none_or(|s| s == status)
    }

    /// Adds a record; false when the ring is full (the record is lost).
    #[inline]
    pub fn push(&self, r: Record) -> bool {
        self.ring.push(r).is_ok()
    }

    /// The oldest record, if any (the control plane's side).
    pub fn pop(&self) -> Option<Record> {
        self.ring.pop()
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }
}

/// A `--status` value: a status name (any case, `rate-limited` too) or
/// its number.
pub fn parse_status(s: &str) -> Result<u8, CaptureError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u8>() {
        return Status::from_u8(n).map(|st| st as u8).ok_or_else(|| CaptureError::Status(s.to_string()));
    }
    let norm = t.to_ascii_lowercase().replace('-', "_");
    Status::ALL.iter().find(|st| st.name() == norm).map(|st| *st as u8).ok_or_else(|| CaptureError::Status(s.to_string()))
}

/// The name of a record's status (`none` for [`NO_STATUS`]).
pub fn status_name(s: u8) -> &'static str {
    Status::from_u8(s).map(|st| st.name()).unwrap_or("none")
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("status {0:?}: give ACCEPTED, DUPLICATE, STALE, INVALID, RATE_LIMITED, BUSY (any case) or 0..5")]
    Status(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_the_frame_up_to_the_limit() {
        let f: Vec<u8> = (0..106u8).collect();
        let r = Record::new(RecordKind::Move, NO_STATUS, 7, &f);
        assert_eq!(r.bytes(), &f[..]);
        assert_eq!((r.len, r.mono_ns, r.kind), (106, 7, RecordKind::Move));
        let long = vec![0xabu8; 300];
        let r = Record::new(RecordKind::Ack, 1, 0, &long);
        assert_eq!(r.len, 300);
        assert_eq!(r.bytes().len(), CAPTURE_MAX);
    }

    #[test]
    fn a_full_ring_refuses_and_keeps_order() {
        let ring = CaptureRing::new(3, false, None);
        for i in 0..3u8 {
            assert!(ring.push(Record::new(RecordKind::Move, 0, i as u64, &[i; 10])));
        }
        assert!(!ring.push(Record::new(RecordKind::Move, 0, 9, &[9; 10])), "full ring must refuse");
        assert_eq!(ring.len(), 3);
        for i in 0..3u8 {
            let r = ring.pop().unwrap();
            assert_eq!((r.mono_ns, r.bytes()), (i as u64, &[i; 10][..]));
        }
        assert!(ring.pop().is_none());
    }

    #[test]
    fn status_filter() {
        let all = CaptureRing::new(1, false, None);
        assert!(all.wants(0) && all.wants(NO_STATUS));
        let dup = CaptureRing::new(1, true, Some(Status::Duplicate as u8));
        assert!(dup.wants(1));
        assert!(!dup.wants(0) && !dup.wants(NO_STATUS));
    }

    #[test]
    fn status_names_and_numbers() {
        assert_eq!(parse_status("ACCEPTED").unwrap(), 0);
        assert_eq!(parse_status("duplicate").unwrap(), 1);
        assert_eq!(parse_status("Stale").unwrap(), 2);
        assert_eq!(parse_status("INVALID").unwrap(), 3);
        assert_eq!(parse_status("RATE_LIMITED").unwrap(), 4);
        assert_eq!(parse_status("rate-limited").unwrap(), 4);
        assert_eq!(parse_status("busy").unwrap(), 5);
        assert_eq!(parse_status("5").unwrap(), 5);
        assert!(parse_status("6").is_err());
        assert!(parse_status("accept").is_err());
        assert!(parse_status("").is_err());
        assert_eq!(status_name(4), "rate_limited");
        assert_eq!(status_name(NO_STATUS), "none");
    }

    #[test]
    fn ack_status_is_read_from_the_frame_end() {
        let mut f = vec![0u8; 14 + 20 + 8 + ACK_LEN];
        let p = f.len() - ACK_LEN;
        f[p + 4] = 2;
        assert_eq!(ack_status(&f), 2);
        assert_eq!(ack_status(&[0u8; 10]), NO_STATUS);
    }
}
