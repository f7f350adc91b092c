//! Reading the move log: one partition from any offset, or every partition
//! merged by server time; following live segments as they grow.
//!
//! Readers never skip silently: damage (a bad header, a bad record, a
//! record with the wrong offset) and gaps (offsets no segment holds) come
//! back as non-fatal [`ReadError`]s naming file and byte, and the next call
//! goes on after them. A bad record at the live end of the newest segment is
//! a write in progress while the appliance runs (it holds the log's lock),
//! and a torn tail — reported once — when it does not.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use crate::head::HeadReader;
use crate::{decode_header, decode_slot, read_full, parse_partition_name, parse_segment_name, partition_name, Header, Record, Slot, HEADER_LEN, RECORD_LEN};

/// A segment file of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub first: u64,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The log cannot be read at all.
    #[error("move log {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    /// Damaged bytes, reported and stepped over.
    #[error("move log {path}: damaged at byte {byte} (offset {offset}): {why}")]
    Damage { path: PathBuf, byte: u64, offset: u64, why: String },
    /// Offsets `from..to` are in no segment (removed by retention, or set
    /// aside as damaged); reading goes on at `to`.
    #[error("move log {dir}: offsets {from}..{to} are not in the log (removed, or set aside as damaged); continuing at {to}")]
    Gap { dir: PathBuf, from: u64, to: u64 },
    /// A torn record at the end of a log no appliance is writing (it is cut
    /// when the appliance starts); reading waits there.
    #[error("move log {path}: torn record at byte {byte} (offset {offset}) at the end of a log no appliance is writing")]
    Torn { path: PathBuf, byte: u64, offset: u64 },
}

impl ReadError {
    /// Whether reading can go on after this error.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ReadError::Io { .. })
    }
}

/// The partitions (queues) of a log directory, in order.
pub fn partitions(dir: &Path) -> Result<Vec<u16>, ReadError> {
    let rd = fs::read_dir(dir).map_err(|source| ReadError::Io { path: dir.into(), source })?;
    let mut v: Vec<u16> = rd
        .filter_map(|e| {
            let e = e.ok()?;
            if !e.file_type().ok()?.is_dir() {
                return None;
            }
            parse_partition_name(e.file_name().to_str()?)
        })
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// The segments of a partition directory, by first offset.
pub fn segments(pdir: &Path) -> Result<Vec<Segment>, ReadError> {
    let rd = fs::read_dir(pdir).map_err(|source| ReadError::Io { path: pdir.into(), source })?;
    let mut v: Vec<Segment> = rd
        .filter_map(|e| {
            let e = e.ok()?;
            Some(Segment { first: parse_segment_name(e.file_name().to_str()?)?, path: e.path() })
        })
        .collect();
    v.sort_by_key(|s| s.first);
    Ok(v)
}

struct Open {
    file: File,
    header: Header,
    path: PathBuf,
}

/// What one slot gave [`PartitionReader::next`]: its answer, or look again
/// (at the next segment).
enum Next {
    Done(Option<Record>),
    Again,
}

/// Reads one partition in offset order from a given offset. `next` returns
/// `Ok(None)` at the current end; call it again later to follow.
pub struct PartitionReader {
    dir: PathBuf,
    queue: u16,
    cur: Option<Open>,
    next_offset: u64,
    /// The torn record already reported (offset), so it is reported once.
    torn_reported: Option<u64>,
    /// A newest segment with a bad header already reported.
    header_reported: Option<PathBuf>,
    /// With no live writer, the offset past which the rest of the segment
    /// was already found empty (so following a stopped log does not reread
    /// it on every poll).
    end_scanned: Option<u64>,
    /// The writer's published head (see [`crate::head`]), once its file is there.
    head: Option<HeadReader>,
    head_tried: Option<std::time::Instant>,
    /// The writer's liveness, kept cheap to ask at the end of the log.
    watch: crate::WriterWatch,
}

impl PartitionReader {
    /// Reads partition `queue` of the log in `log_dir` from offset `from`.
    pub fn open(log_dir: &Path, queue: u16, from: u64) -> PartitionReader {
        PartitionReader {
            dir: log_dir.join(partition_name(queue)),
            queue,
            cur: None,
            next_offset: from,
            torn_reported: None,
            header_reported: None,
            end_scanned: None,
            head: None,
            head_tried: None,
            watch: crate::WriterWatch::new(log_dir),
        }
    }

    /// The head the writer published, if it keeps one.
    fn head(&mut self) -> Option<u64> {
        if self.head.is_none() && self.head_tried.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(1)) {
            self.head = HeadReader::open(&self.dir);
            self.head_tried = Some(std::time::Instant::now());
        }
        self.head.as_ref().map(|h| h.load())
    }

    /// Whether this reader is at the head a live writer published: the
    /// next record is not written yet. Costs an atomic load (and, every
    /// [`crate::lock::ALIVE_FOR`], a liveness check).
    pub fn caught_up(&mut self) -> bool {
        self.head().is_some_and(|h| self.next_offset >= h) && self.watch.alive()
    }

    /// The head the writer published (the offset its next record gets), if
    /// it keeps one; meaningful only while it lives.
    pub fn published_head(&mut self) -> Option<u64> {
        self.head()
    }

    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// The offset of the record `next` will return.
    pub fn position(&self) -> u64 {
        self.next_offset
    }

    fn io(&self, path: &Path, source: io::Error) -> ReadError {
        ReadError::Io { path: path.into(), source }
    }

    /// Opens the segment holding `next_offset`. `Ok(false)`: not there yet.
    fn seek(&mut self) -> Result<bool, ReadError> {
        if !self.dir.exists() {
            return Ok(false);
        }
        let segs = segments(&self.dir)?;
        let Some(i) = segs.iter().rposition(|s| s.first <= self.next_offset) else {
            return match segs.first() {
                Some(s) => {
                    let from = self.next_offset;
                    self.next_offset = s.first;
                    Err(ReadError::Gap { dir: self.dir.clone(), from, to: s.first })
                }
                None => Ok(false),
            };
        };
        let s = &segs[i];
        let file = File::open(&s.path).map_err(|e| self.io(&s.path, e))?;
        let mut hb = [0u8; HEADER_LEN];
        let got = read_full(&file, &mut hb, 0).map_err(|e| self.io(&s.path, e))?;
        let header = match (got == HEADER_LEN).then(|| decode_header(&hb)) {
            Some(Ok(h)) if h.first == s.first => h,
            other => {
                let why = match other {
                    Some(Ok(h)) => format!("header says first offset {}", h.first),
                    Some(Err(w)) => w,
                    None => format!("only {got} header bytes"),
                };
                // step over the whole segment: to the next one, if any
                let to = segs.get(i + 1).map(|n| n.first);
                let offset = self.next_offset;
                match to {
                    Some(t) => self.next_offset = t,
                    // the newest segment: report it once, then wait there
                    None if self.header_reported.as_ref() == Some(&s.path) => return Ok(false),
                    None => self.header_reported = Some(s.path.clone()),
                }
                return Err(ReadError::Damage { path: s.path.clone(), byte: 0, offset, why });
            }
        };
        if self.next_offset >= header.first + header.capacity() {
            // past this segment: the next one, if it exists
            return match segs.get(i + 1) {
                Some(n) => {
                    let from = self.next_offset;
                    self.next_offset = n.first;
                    if n.first > from {
                        Err(ReadError::Gap { dir: self.dir.clone(), from, to: n.first })
                    } else {
                        Ok(false)
                    }
                }
                None => Ok(false),
            };
        }
        self.cur = Some(Open { file, header, path: s.path.clone() });
        Ok(true)
    }

    /// The next record, `Ok(None)` at the current end of the partition, or
    /// a non-fatal error (see [`ReadError::is_fatal`]) after which the next
    /// call continues.
    #[allow(clippy::should_implement_trait)] // fallible, and resumable after an error
    pub fn next(&mut self) -> Result<Option<Record>, ReadError> {
        // Caught up with a live writer: nothing to read, and nothing to ask
        // the file system (no directory listing, no read): one atomic load.
        if self.caught_up() {
            return Ok(None);
        }
        for _ in 0..1024 {
            if self.cur.is_none() && !self.seek()? {
                return Ok(None);
            }
            let Some(o) = self.cur.as_ref() else { continue };
            let end = o.header.first + o.header.capacity();
            if self.next_offset >= end {
                self.cur = None;
                continue;
            }
            let slot = self.next_offset - o.header.first;
            let byte = HEADER_LEN as u64 + slot * RECORD_LEN as u64;
            // Below the published head every slot is whole (the writer
            // stored the head with Release after the records; this load is
            // Acquire). At and past it, while the writer lives, a slot may
            // be half written: it is not read at all.
            // The head means something only while its writer lives: after a
            // crash or a power cut it can name records the log lost, until
            // the next appliance rewrites it.
            let head = self.head();
            let below_head = head.is_some_and(|h| self.next_offset < h);
            if head.is_some() && !below_head && self.watch.alive() {
                return Ok(None);
            }
            let Some(o) = self.cur.as_ref() else { continue };
            let mut b = [0u8; RECORD_LEN];
            let got = read_full(&o.file, &mut b, byte).map_err(|e| self.io(&o.path, e))?;
            let path = o.path.clone();
            let first = o.header.first;
            if got < RECORD_LEN {
                // the file ends before its header's size: truncated
                if let Some(t) = self.later_segment(first)? {
                    let from = self.next_offset;
                    self.next_offset = t;
                    self.cur = None;
                    return Err(ReadError::Damage { path, byte, offset: from, why: format!("file ends at byte {}: offsets {from}..{t} missing", byte + got as u64) });
                }
                return Ok(None);
            }
            let (slot_now, after, below_head) = self.recheck(decode_slot(&b), byte, &path, below_head)?;
            match self.verdict(slot_now, after, below_head, path, byte, first)? {
                Next::Done(r) => return Ok(r),
                Next::Again => continue,
            }
        }
        Ok(None)
    }

    /// A slot that is not a valid record is looked at again before it is
    /// judged: below a live writer's head, read once more after 1 ms (a read
    /// error, a page being brought in); past it, look for data after it and
    /// read it again (a record being written when first read is whole by
    /// the time a later one is seen). Returns the slot as last read,
    /// whether data follows it, and whether it counts as below the head
    /// (only while the head's writer lives).
    fn recheck(&mut self, mut slot_now: Slot, byte: u64, path: &Path, mut below_head: bool) -> Result<(Slot, bool, bool), ReadError> {
        let mut b = [0u8; RECORD_LEN];
        let mut after = false;
        if below_head && !matches!(slot_now, Slot::Valid(_)) && !self.watch.alive() {
            below_head = false;
        }
        if below_head && !matches!(slot_now, Slot::Valid(_)) {
            // published, so not being written: read once more (a read
            // error of the device, a page being brought in), then it is
            // damage (or, if empty, a cut or a gap: see below)
            std::thread::sleep(std::time::Duration::from_millis(1));
            let o = self.cur.as_ref().expect("positioned");
            if read_full(&o.file, &mut b, byte).map_err(|e| self.io(path, e))? == RECORD_LEN {
                slot_now = decode_slot(&b);
            }
            after = !matches!(slot_now, Slot::Empty);
        } else if !matches!(slot_now, Slot::Valid(_)) {
            // Look past it, then read it once more: a record being
            // written when first read is whole by the time a later one
            // is seen (the poller writes slots in order).
            // (a live writer fills slots in order: a short look suffices)
            let alive = self.watch.alive();
            after = if alive {
                self.data_after(byte, 16)?
            } else if self.end_scanned == Some(self.next_offset) {
                false
            } else {
                let a = self.data_after(byte, u64::MAX)?;
                if !a {
                    self.end_scanned = Some(self.next_offset);
                }
                a
            };
            let o = self.cur.as_ref().expect("positioned");
            if read_full(&o.file, &mut b, byte).map_err(|e| self.io(path, e))? == RECORD_LEN {
                slot_now = decode_slot(&b);
            }
        }
        Ok((slot_now, after, below_head))
    }

    /// What the slot at `byte` (of the segment starting at `first`) means
    /// for the reader: a record, the current end, or damage, a torn record
    /// or a gap (reported once, then stepped over where there is more).
    fn verdict(&mut self, slot_now: Slot, after: bool, below_head: bool, path: PathBuf, byte: u64, first: u64) -> Result<Next, ReadError> {
        match slot_now {
            Slot::Valid(r) if r.offset == self.next_offset => {
                self.next_offset += 1;
                Ok(Next::Done(Some(r)))
            }
            Slot::Valid(r) => {
                let offset = self.next_offset;
                self.next_offset += 1;
                Err(ReadError::Damage { path, byte, offset, why: format!("record says offset {}", r.offset) })
            }
            Slot::Empty if after && !below_head => {
                let offset = self.next_offset;
                self.next_offset += 1;
                Err(ReadError::Damage { path, byte, offset, why: "never-written record followed by data".into() })
            }
            Slot::Empty => {
                // the end, unless the writer has moved on past it
                if let Some(t) = self.later_segment(first)? {
                    let from = self.next_offset;
                    self.cur = None;
                    if t == from {
                        return Ok(Next::Again); // this segment was left unfilled, the next one continues it
                    }
                    if t < from {
                        // the later segment overlaps this one: read on from it
                        return Err(ReadError::Damage { path, byte, offset: from, why: format!("a later segment starts at offset {t}, inside this one") });
                    }
                    self.next_offset = t;
                    return Err(ReadError::Gap { dir: self.dir.clone(), from, to: t });
                }
                if below_head {
                    let offset = self.next_offset;
                    self.next_offset += 1;
                    return Err(ReadError::Damage { path, byte, offset, why: "never-written record below the writer's published head".into() });
                }
                Ok(Next::Done(None))
            }
            Slot::Bad => {
                if !after && self.later_segment(first)?.is_none() {
                    if self.watch.alive() {
                        return Ok(Next::Done(None)); // being written
                    }
                    if self.torn_reported == Some(self.next_offset) {
                        return Ok(Next::Done(None));
                    }
                    self.torn_reported = Some(self.next_offset);
                    return Err(ReadError::Torn { path, byte, offset: self.next_offset });
                }
                let offset = self.next_offset;
                self.next_offset += 1;
                Err(ReadError::Damage { path, byte, offset, why: "record fails its CRC".into() })
            }
        }
    }

    /// The first offset of a segment after the one starting at `first`
    /// that holds a record (a prepared, empty segment does not count).
    fn later_segment(&self, first: u64) -> Result<Option<u64>, ReadError> {
        for s in segments(&self.dir)?.into_iter().filter(|s| s.first > first) {
            let f = File::open(&s.path).map_err(|e| self.io(&s.path, e))?;
            let mut b = [0u8; RECORD_LEN];
            if read_full(&f, &mut b, HEADER_LEN as u64).map_err(|e| self.io(&s.path, e))? == RECORD_LEN && decode_slot(&b) != Slot::Empty {
                return Ok(Some(s.first));
            }
        }
        Ok(None)
    }

    /// Whether any of the `max_slots` slots after the one at `byte` in the
    /// current segment holds data.
    fn data_after(&self, byte: u64, max_slots: u64) -> Result<bool, ReadError> {
        let Some(o) = self.cur.as_ref() else { return Ok(false) };
        let end = (HEADER_LEN as u64 + o.header.capacity() * RECORD_LEN as u64)
            .min(byte.saturating_add(RECORD_LEN as u64).saturating_add(max_slots.saturating_mul(RECORD_LEN as u64)));
        let mut pos = byte + RECORD_LEN as u64;
        let mut buf = vec![0u8; 64 * 1024];
        while pos < end {
            let n = ((end - pos) as usize).min(buf.len());
            let got = read_full(&o.file, &mut buf[..n], pos).map_err(|e| self.io(&o.path, e))?;
            if buf[..got].iter().any(|&x| x != 0) {
                return Ok(true);
            }
            if got < n {
                break;
            }
            pos += n as u64;
        }
        Ok(false)
    }
}


/// Every partition of a log, merged by server receive time (ties by
/// queue). While following, records are merged among those available: a
/// partition that is behind is not waited for.
pub struct LogReader {
    dir: PathBuf,
    parts: Vec<(PartitionReader, Option<Record>)>,
    /// Starting offsets for partitions that appear later.
    from: Vec<(u16, u64)>,
    only: Option<u16>,
}

impl LogReader {
    /// Reads `dir` from the given per-partition offsets (others from 0);
    /// `only`: just that partition.
    pub fn open(dir: &Path, from: &[(u16, u64)], only: Option<u16>) -> Result<LogReader, ReadError> {
        let mut r = LogReader { dir: dir.into(), parts: Vec::new(), from: from.to_vec(), only };
        r.discover()?;
        Ok(r)
    }

    /// Picks up partitions created since.
    fn discover(&mut self) -> Result<(), ReadError> {
        let mut qs = partitions(&self.dir)?;
        if let Some(q) = self.only {
            qs = vec![q];
        }
        for q in qs {
            if !self.parts.iter().any(|(p, _)| p.queue() == q) {
                let from = self.from.iter().find(|(fq, _)| *fq == q).map_or(0, |x| x.1);
                self.parts.push((PartitionReader::open(&self.dir, q, from), None));
            }
        }
        self.parts.sort_by_key(|(p, _)| p.queue());
        Ok(())
    }

    /// Where each partition resumes: (queue, next offset not yet returned).
    pub fn positions(&self) -> Vec<(u16, u64)> {
        self.parts.iter().map(|(p, h)| (p.queue(), h.map_or(p.position(), |r| r.offset))).collect()
    }

    /// The next record in server-time order, `Ok(None)` at the current end,
    /// or a non-fatal error after which the next call continues.
    #[allow(clippy::should_implement_trait)] // fallible, and resumable after an error
    pub fn next(&mut self) -> Result<Option<Record>, ReadError> {
        let mut any_empty = false;
        for (p, head) in &mut self.parts {
            if head.is_none() {
                *head = p.next()?;
                any_empty |= head.is_none();
            }
        }
        let best = self
            .parts
            .iter()
            .enumerate()
            .filter_map(|(i, (_, h))| h.map(|r| (r.recv_unix_ns, r.queue, i)))
            .min()
            .map(|x| x.2);
        match best {
            Some(i) => Ok(self.parts[i].1.take()),
            None => {
                if any_empty || self.parts.is_empty() {
                    self.discover()?;
                }
                Ok(None)
            }
        }
    }
}

/// The end of partition `queue` of the log in `log_dir`: one past the
/// highest offset it has used, 0 when it holds none. That is the offset of
/// its last written record plus one, found without reading the records
/// (the newest segment that holds one, then a binary search for its last
/// written slot: slots are written in order), or one past the highest
/// record in a file set aside (`…damaged-…`: what recovery cut off after a
/// power cut keeps its offsets), whichever is higher. A partition that does
/// not exist yet ends at 0.
pub fn partition_end(log_dir: &Path, queue: u16) -> Result<u64, ReadError> {
    let dir = log_dir.join(partition_name(queue));
    if !dir.exists() {
        return Ok(0);
    }
    let io = |path: &Path, source: io::Error| ReadError::Io { path: path.into(), source };
    let mut aside_end = 0u64;
    for e in fs::read_dir(&dir).map_err(|source| ReadError::Io { path: dir.clone(), source })?.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(crate::SEGMENT_PREFIX) && name.contains(crate::DAMAGED_INFIX) && !name.ends_with(crate::recover::TMP_SUFFIX) {
            crate::recover::visit_slots(&e.path(), &mut |r: &Record| aside_end = aside_end.max(r.offset + 1)).map_err(|source| ReadError::Io { path: e.path(), source })?;
        }
    }
    let end = partition_end_in_segments(&dir, io)?;
    Ok(end.max(aside_end))
}

fn partition_end_in_segments(dir: &Path, io: impl Fn(&Path, io::Error) -> ReadError) -> Result<u64, ReadError> {
    for s in segments(dir)?.iter().rev() {
        let file = match File::open(&s.path) {
            Ok(f) => f,
            // removed by retention since the listing
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&s.path, e)),
        };
        let mut hb = [0u8; HEADER_LEN];
        if read_full(&file, &mut hb, 0).map_err(|e| io(&s.path, e))? < HEADER_LEN {
            continue;
        }
        let Ok(h) = decode_header(&hb) else { continue };
        let written = |slot: u64| -> Result<bool, ReadError> {
            let mut b = [0u8; RECORD_LEN];
            let got = read_full(&file, &mut b, HEADER_LEN as u64 + slot * RECORD_LEN as u64).map_err(|e| io(&s.path, e))?;
            Ok(got == RECORD_LEN && decode_slot(&b) != Slot::Empty)
        };
        // the number of written slots: the first empty one
        let (mut lo, mut hi) = (0u64, h.capacity());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if written(mid)? {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo > 0 {
            return Ok(h.first + lo);
        }
    }
    Ok(0)
}
