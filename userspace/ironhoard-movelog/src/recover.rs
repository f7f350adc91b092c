//! Opening a partition after a stop, a crash or a power cut: every segment
//! is scanned once, for its dense run of good records from the first slot
//! and what follows it.
//!
//! - The newest segment holding data, and any segment with a hole (a
//!   never-written slot followed by data: writeback out of order before a
//!   power cut), is cut after its run: the run stays in place, readable;
//!   the written slots after it are first copied, with the header, to
//!   `…ihlog.damaged-<unix s>` beside it (a lone torn record is simply
//!   cut), then zeroed. Every record below the last durable point is in the
//!   run (the crash-state harness, `crashstate.rs`, checks it).
//! - Bad slots between good records of an older segment with no hole are
//!   damage at rest: kept in place and reported; readers step over them.
//! - A bad header, or a file shorter or longer than its header says: the
//!   segment is set aside whole (renamed `…ihlog.damaged-<unix s>`).
//!
//! Appending continues after the highest good offset seen anywhere, set-
//! aside files included, so offsets are never reused while a record holds
//! one. Segments that hold no record (prepared, never used) are removed.
//! Nothing readable is ever destroyed: what is zeroed was copied first.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{decode_header, decode_slot, read_full, SEGMENT_PREFIX, parse_segment_name, Header, Record, Slot, DAMAGED_INFIX, HEADER_LEN, RECORD_LEN};

/// Suffix of a segment being prepared (renamed into place when complete).
pub const TMP_SUFFIX: &str = ".tmp";

/// Damage found in a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    /// Byte position in the file.
    pub byte: u64,
    pub why: String,
    /// Where the damaged segment was moved (if it was set aside).
    pub set_aside: Option<PathBuf>,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}: {}", self.path.display(), self.byte, self.why)?;
        if let Some(p) = &self.set_aside {
            write!(f, " (set aside as {})", p.display())?;
        }
        Ok(())
    }
}

/// What opening a partition found and did.
#[derive(Debug, Default)]
pub struct Recovery {
    /// The offset the next appended record gets.
    pub next_offset: u64,
    /// Keep appending in this segment at this slot (else start a new
    /// segment at `next_offset`).
    pub resume: Option<(PathBuf, Header, u64)>,
    /// Valid records found (in kept and set-aside segments).
    pub records: u64,
    pub damage: Vec<Damage>,
    /// A torn record cut at the end: (segment, byte).
    pub torn_cut: Option<(PathBuf, u64)>,
    /// Offsets no kept segment covers (first, end exclusive): records lost
    /// before this start or set aside with a damaged segment.
    pub gaps: Vec<(u64, u64)>,
    /// Segments with no record, and half-prepared ones, removed.
    pub removed_empty: Vec<PathBuf>,
    /// Segments set aside at an earlier start (their records still count:
    /// they rebuild windows, and their offsets are never reused).
    pub set_aside_earlier: Vec<PathBuf>,
    /// Files in the partition directory that are not segments (left alone).
    pub stray: Vec<PathBuf>,
}

/// How a segment's record area ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Every slot holds a good record.
    Full,
    /// Good records, then only never-written slots.
    Open,
    /// Good records, then something else before the last non-empty slot.
    Tail(Tail),
    /// The file is shorter or longer than its header says.
    Damaged { byte: u64, why: String },
}

/// What follows a segment's dense run of good records.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Tail {
    /// Byte of the first slot that is not a good record.
    byte: u64,
    /// What that slot is.
    why: String,
    /// A never-written slot with data after it: the mark of writeback out
    /// of order (a power cut), or of a zeroed page.
    hole: bool,
    /// CRC-valid records after the run (whatever their offset).
    valid: u64,
    /// Non-empty slots after the run.
    nonempty: u64,
    /// One past the last non-empty slot.
    end_slot: u64,
    /// Bytes of every bad slot after the run, for the report.
    bad_bytes: Vec<u64>,
}

struct Scan {
    path: PathBuf,
    header: Header,
    good: u64,
    end: End,
}

fn io_err(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Scans one segment, calling `visit` on every valid record (also those
/// after damage: they were accepted moves). `Err(why)` for a bad header.
fn scan_segment(path: &Path, name_first: u64, partition: u16, visit: &mut dyn FnMut(&Record)) -> io::Result<Result<Scan, (u64, String)>> {
    let mut f = File::open(path).map_err(|e| io_err(path, "opening", e))?;
    let len = f.metadata().map_err(|e| io_err(path, "stat", e))?.len();
    let header = match read_header(&mut f, len, name_first, partition) {
        Ok(h) => h,
        Err(bad) => return Ok(Err(bad)),
    };
    let cap = header.capacity();
    let mut t = Tracker { first: header.first, good: 0, tail: None, empty_pending: false };
    let mut buf = vec![0u8; RECORD_LEN * 4096];
    let mut slot = 0u64;
    let mut pos = HEADER_LEN as u64;
    while slot < cap {
        let want = ((cap - slot) as usize).min(4096) * RECORD_LEN;
        let got = read_full(&f, &mut buf[..want], pos).map_err(|e| io_err(path, "reading", e))?;
        let whole = got / RECORD_LEN;
        // Past the dense run, a never-written stretch (most of an open
        // segment) only marks the tail's pending empty slot: decided for
        // the whole chunk at once (a restart reads an open segment fast).
        if t.tail.is_some() && all_zero(&buf[..whole * RECORD_LEN]) {
            t.empty_pending |= whole > 0;
            slot += whole as u64;
            pos += (whole * RECORD_LEN) as u64;
            if got < want {
                break;
            }
            continue;
        }
        for i in 0..whole {
            let b: &[u8; RECORD_LEN] = buf[i * RECORD_LEN..(i + 1) * RECORD_LEN].try_into().expect("record size");
            let s = slot + i as u64;
            let byte = HEADER_LEN as u64 + s * RECORD_LEN as u64;
            let d = decode_slot(b);
            if let Slot::Valid(r) = &d {
                visit(r);
            }
            t.step(s, byte, d);
        }
        slot += whole as u64;
        pos += (whole * RECORD_LEN) as u64;
        if got < want {
            break; // file ends early
        }
    }
    let end = if len != header.segment_bytes {
        End::Damaged { byte: len.min(header.segment_bytes), why: format!("file is {len} bytes, its header says {}", header.segment_bytes) }
    } else {
        match t.tail {
            None => End::Full,
            Some(t) if t.nonempty == 0 => End::Open,
            Some(t) => End::Tail(t),
        }
    };
    Ok(Ok(Scan { path: path.to_path_buf(), header, good: t.good, end }))
}

/// Reads and checks a segment's header against its file name and
/// directory: the header, or where (byte) and why it is bad.
fn read_header(f: &mut File, len: u64, name_first: u64, partition: u16) -> Result<Header, (u64, String)> {
    let mut hb = [0u8; HEADER_LEN];
    if len < HEADER_LEN as u64 || f.read_exact(&mut hb).is_err() {
        return Err((0, format!("file of {len} bytes has no whole header")));
    }
    let header = decode_header(&hb).map_err(|why| (0, why))?;
    if header.first != name_first {
        return Err((16, format!("header says first offset {}, the name {name_first}", header.first)));
    }
    if header.partition != partition {
        return Err((32, format!("header says partition {}, the directory q{partition}", header.partition)));
    }
    Ok(header)
}

/// A segment's slots, one at a time: the dense run of good records from
/// the start, then the tail after it (see [`Tail`]).
struct Tracker {
    /// The segment's first offset.
    first: u64,
    /// Records in the dense run.
    good: u64,
    tail: Option<Tail>,
    /// Inside the tail: an empty slot seen since the last non-empty one.
    empty_pending: bool,
}

impl Tracker {
    /// Slot `s` (at file byte `byte`) decoded as `d`.
    fn step(&mut self, s: u64, byte: u64, d: Slot) {
        let first = self.first;
        match (&mut self.tail, d) {
            (None, Slot::Valid(r)) if r.offset == first + s => self.good += 1,
            (None, slot) => {
                let (why, nonempty, valid) = match slot {
                    Slot::Valid(r) => (format!("slot {s} holds offset {}, expected {}", r.offset, first + s), 1, 1),
                    Slot::Bad => (format!("record at slot {s} (offset {}) fails its CRC", first + s), 1, 0),
                    Slot::Empty => (format!("never-written slot at offset {}", first + s), 0, 0),
                };
                self.empty_pending = nonempty == 0;
                let bad_bytes = if nonempty == 1 && valid == 0 { vec![byte] } else { Vec::new() };
                let end_slot = if nonempty == 1 { s + 1 } else { s };
                self.tail = Some(Tail { byte, why, hole: false, valid, nonempty, end_slot, bad_bytes });
            }
            (Some(_), Slot::Empty) => self.empty_pending = true,
            (Some(t), other) => {
                t.hole |= self.empty_pending;
                self.empty_pending = false;
                t.nonempty += 1;
                t.end_slot = s + 1;
                match other {
                    Slot::Valid(_) => t.valid += 1,
                    _ => t.bad_bytes.push(byte),
                }
            }
        }
    }
}

/// Whether every byte of `b` is zero (eight at a time).
fn all_zero(b: &[u8]) -> bool {
    let (head, words, tail) = {
        // SAFETY: reinterpreting initialized bytes as u64 words is sound for
        // any bit pattern; align_to puts the unaligned ends in head/tail.
        unsafe { b.align_to::<u64>() }
    };
    head.iter().all(|&x| x == 0) && words.iter().all(|&w| w == 0) && tail.iter().all(|&x| x == 0)
}

/// Visits every CRC-valid record in a file's slots, whatever its header says.
pub(crate) fn visit_slots(path: &Path, visit: &mut dyn FnMut(&Record)) -> io::Result<()> {
    let f = File::open(path).map_err(|e| io_err(path, "opening", e))?;
    let mut buf = vec![0u8; RECORD_LEN * 4096];
    let mut pos = HEADER_LEN as u64;
    loop {
        let got = read_full(&f, &mut buf, pos).map_err(|e| io_err(path, "reading", e))?;
        for c in buf[..got - got % RECORD_LEN].chunks_exact(RECORD_LEN) {
            if let Slot::Valid(r) = decode_slot(c.try_into().expect("record size")) {
                visit(&r);
            }
        }
        if got < buf.len() {
            return Ok(());
        }
        pos += got as u64;
    }
}


/// A free name `<path>.damaged-<unix s>[.n]` beside a segment.
fn aside_name(path: &Path) -> PathBuf {
    let secs = crate::unix_ns() / 1_000_000_000;
    let mut to = PathBuf::from(format!("{}{DAMAGED_INFIX}{secs}", path.display()));
    let mut n = 1;
    while to.exists() || PathBuf::from(format!("{}{TMP_SUFFIX}", to.display())).exists() {
        to = PathBuf::from(format!("{}{DAMAGED_INFIX}{secs}.{n}", path.display()));
        n += 1;
    }
    to
}

fn set_aside(path: &Path) -> io::Result<PathBuf> {
    let to = aside_name(path);
    fs::rename(path, &to).map_err(|e| io_err(path, "setting aside (rename)", e))?;
    Ok(to)
}

/// Copies slots `from..to` of a segment (with its header; the slots before
/// them zero) to a new file beside it, `…ihlog.damaged-<unix s>`, and makes
/// it durable: every record it holds stays readable (`ironhoard tail
/// --file`), rebuilds windows at every start and keeps its offset from
/// being reused.
fn copy_tail_aside(path: &Path, from: u64, to: u64) -> io::Result<PathBuf> {
    let src = File::open(path).map_err(|e| io_err(path, "opening", e))?;
    let len = src.metadata().map_err(|e| io_err(path, "stat", e))?.len();
    let mut header = [0u8; HEADER_LEN];
    read_full(&src, &mut header, 0).map_err(|e| io_err(path, "reading", e))?;
    let start = HEADER_LEN as u64 + from * RECORD_LEN as u64;
    let mut tail = vec![0u8; ((to - from) as usize) * RECORD_LEN];
    let got = read_full(&src, &mut tail, start).map_err(|e| io_err(path, "reading", e))?;
    tail.truncate(got);
    let dest = aside_name(path);
    let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", dest.display()));
    let f = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| io_err(&tmp, "creating", e))?;
    let res = (|| {
        f.write_all_at(&header, 0)?;
        f.write_all_at(&tail, start)?;
        f.set_len(len)?;
        f.sync_all()?;
        fs::rename(&tmp, &dest)
    })();
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(io_err(&dest, "copying a cut tail aside to", e));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(dest)
}

/// Zeroes slots `from..to` of a segment in place and makes it durable.
fn zero_slots(path: &Path, from: u64, to: u64) -> io::Result<()> {
    if to <= from {
        return Ok(());
    }
    let f = OpenOptions::new().write(true).open(path).map_err(|e| io_err(path, "opening", e))?;
    let zeros = vec![0u8; ((to - from) as usize) * RECORD_LEN];
    f.write_all_at(&zeros, HEADER_LEN as u64 + from * RECORD_LEN as u64).map_err(|e| io_err(path, "cutting (zeroing) after the good records of", e))?;
    f.sync_data().map_err(|e| io_err(path, "fsync", e))
}

/// fsyncs a directory (after creating, renaming or removing entries).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err(dir, "fsync of directory", e))
}

/// Opens partition directory `pdir` of queue `partition` for appending:
/// scans every segment (calling `visit` on every valid record), cuts a torn
/// tail, sets damaged segments aside, removes empty ones, and says where
/// appending continues. Creates the directory if missing.
pub fn recover_partition(pdir: &Path, partition: u16, visit: &mut dyn FnMut(&Record)) -> io::Result<Recovery> {
    fs::create_dir_all(pdir).map_err(|e| io_err(pdir, "creating partition directory", e))?;
    let mut rec = Recovery::default();
    let segs = list_partition(pdir, &mut rec)?;
    let mut count = 0u64;
    let mut highest: Option<u64> = None;
    let mut visit_all = |r: &Record| {
        count += 1;
        highest = Some(highest.map_or(r.offset, |h: u64| h.max(r.offset)));
        visit(r);
    };
    for p in &rec.set_aside_earlier {
        visit_slots(p, &mut visit_all)?;
    }
    let mut kept: Vec<Scan> = Vec::new();
    for (first, path) in &segs {
        match scan_segment(path, *first, partition, &mut visit_all)? {
            Err((byte, why)) => {
                // the header cannot be trusted, but every record that passes
                // its CRC is an accepted move: remember it
                visit_slots(path, &mut visit_all)?;
                let to = set_aside(path)?;
                rec.damage.push(Damage { path: path.clone(), byte, why: format!("bad header: {why}"), set_aside: Some(to) });
            }
            Ok(s) => kept.push(s),
        }
    }
    let last_data = kept.iter().rposition(|s| s.good > 0 || !matches!(s.end, End::Open));
    let (resume, keep) = settle(&kept, last_data, &mut rec)?;
    rec.records = count;
    rec.next_offset = highest.map_or(0, |h| h.saturating_add(1));
    if highest.is_none() {
        // no record anywhere: continue where the newest segment starts
        rec.next_offset = kept.iter().map(|s| s.header.first).max().unwrap_or(0);
    }
    choose_resume(&kept, resume, last_data, &mut rec)?;
    find_gaps(&keep, highest.is_some(), &mut rec);
    if !rec.damage.is_empty() || !rec.removed_empty.is_empty() || rec.torn_cut.is_some() {
        sync_dir(pdir)?;
    }
    Ok(rec)
}

/// The partition's segments by first offset; what else is there sorted into
/// `rec` (stray files, copies set aside earlier), and half-prepared
/// segments a crash left removed.
fn list_partition(pdir: &Path, rec: &mut Recovery) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut segs: Vec<(u64, PathBuf)> = Vec::new();
    let mut tmp = Vec::new();
    for e in fs::read_dir(pdir).map_err(|e| io_err(pdir, "listing", e))? {
        let e = e.map_err(|e| io_err(pdir, "listing", e))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let is_file = e.file_type().map(|t| t.is_file()).unwrap_or(false);
        match parse_segment_name(&name) {
            Some(first) if is_file => segs.push((first, e.path())),
            // the head readers follow (rewritten by the writer at start)
            _ if is_file && name == crate::head::HEAD_FILE => {}
            // a copy aside that a crash interrupted: the segment still holds it
            _ if is_file && name.contains(DAMAGED_INFIX) && name.ends_with(TMP_SUFFIX) => tmp.push(e.path()),
            _ if is_file && name.contains(DAMAGED_INFIX) && name.starts_with(SEGMENT_PREFIX) => rec.set_aside_earlier.push(e.path()),
            _ if is_file && name.ends_with(TMP_SUFFIX) && name.strip_suffix(TMP_SUFFIX).and_then(parse_segment_name).is_some() => tmp.push(e.path()),
            _ => rec.stray.push(e.path()),
        }
    }
    segs.sort();
    rec.stray.sort();
    rec.set_aside_earlier.sort();
    // a segment whose preparation a crash interrupted: never handed to a
    // poller (it is renamed into place only when complete), holds nothing
    for t in tmp {
        fs::remove_file(&t).map_err(|e| io_err(&t, "removing half-prepared segment", e))?;
        rec.removed_empty.push(t);
    }
    Ok(segs)
}

/// Decides each scanned segment's fate. The newest segment holding data is
/// where a power cut leaves its marks: pages written since the last sync
/// come back old or new in any combination. Its dense run of good records
/// is kept in place — every record below the last durable point is in it —
/// and it is cut after the run: what follows (records written after the
/// first hole) is copied aside for the operator, then zeroed. An older
/// segment is cut the same way only if it has a hole (it was retired, not
/// yet synced, when the power went); bad slots between good records of an
/// older segment are damage at rest: kept in place, readers report each
/// and step over it, so no good record around them is hidden. Returns the
/// segment to resume in, if any, and the kept segments with one past the
/// last offset of theirs readers can use.
#[allow(clippy::type_complexity)]
fn settle<'a>(kept: &'a [Scan], last_data: Option<usize>, rec: &mut Recovery) -> io::Result<(Option<usize>, Vec<(&'a Scan, u64)>)> {
    let mut resume = None;
    let mut keep: Vec<(&Scan, u64)> = Vec::new();
    for (i, s) in kept.iter().enumerate() {
        let newest = Some(i) == last_data;
        match &s.end {
            End::Damaged { byte, why } => {
                let to = set_aside(&s.path)?;
                rec.damage.push(Damage { path: s.path.clone(), byte: *byte, why: why.clone(), set_aside: Some(to) });
            }
            End::Tail(t) if newest || t.hole => {
                cut_tail(s, t, rec)?;
                zero_slots(&s.path, s.good, t.end_slot)?;
                if newest {
                    resume = Some(i);
                }
                keep.push((s, s.header.first + s.good));
            }
            End::Tail(t) => {
                rec.damage.push(Damage {
                    path: s.path.clone(),
                    byte: t.byte,
                    why: format!(
                        "{}; {} bad slot(s) in all (bytes {}), kept in place between good records: readers report and step over each",
                        t.why,
                        t.bad_bytes.len().max(1),
                        t.bad_bytes.iter().take(8).map(|b| b.to_string()).collect::<Vec<_>>().join(", ")
                    ),
                    set_aside: None,
                });
                keep.push((s, s.header.first + t.end_slot));
            }
            End::Open if s.good == 0 => {} // empty: decided below
            End::Open => {
                resume = Some(i);
                keep.push((s, s.header.first + s.good));
            }
            End::Full => keep.push((s, s.header.first + s.good)),
        }
    }
    Ok((resume, keep))
}

/// Cuts segment `s` after its dense run: a tail holding more than one torn
/// record is copied aside first (reported as damage), a torn record alone
/// is just cut. The caller zeroes the slots.
fn cut_tail(s: &Scan, t: &Tail, rec: &mut Recovery) -> io::Result<()> {
    if t.valid > 0 || t.nonempty > 1 {
        let to = copy_tail_aside(&s.path, s.good, t.end_slot)?;
        rec.damage.push(Damage {
            path: s.path.clone(),
            byte: t.byte,
            why: format!(
                "{}{}; cut there: the {} written slot(s) after it ({} valid record(s)) copied aside",
                t.why,
                if t.hole { ", with data after a never-written slot (writeback out of order: a power cut?)" } else { "" },
                t.nonempty,
                t.valid
            ),
            set_aside: Some(to),
        });
    } else {
        log::warn!("move log {}: cut a torn record at byte {} (offset {})", s.path.display(), t.byte, s.header.first + s.good);
        rec.torn_cut = Some((s.path.clone(), t.byte));
    }
    Ok(())
}

/// Where appending continues: in the newest written segment if it goes on
/// exactly at `next_offset`, or in an empty segment starting there; other
/// empty segments are removed.
fn choose_resume(kept: &[Scan], resume: Option<usize>, last_data: Option<usize>, rec: &mut Recovery) -> io::Result<()> {
    // resume in the newest written segment if it continues exactly there
    let mut resume_path = None;
    if let Some(i) = resume {
        let s = &kept[i];
        if s.header.first + s.good == rec.next_offset && Some(i) == last_data && s.path.exists() {
            rec.resume = Some((s.path.clone(), s.header, s.good));
            resume_path = Some(s.path.clone());
        }
    }
    // an empty segment at exactly next_offset is where appending continues
    for s in kept {
        if s.good == 0 && s.end == End::Open {
            if rec.resume.is_none() && s.header.first == rec.next_offset {
                rec.resume = Some((s.path.clone(), s.header, 0));
                resume_path = Some(s.path.clone());
            } else if resume_path.as_ref() != Some(&s.path) {
                fs::remove_file(&s.path).map_err(|e| io_err(&s.path, "removing empty segment", e))?;
                rec.removed_empty.push(s.path.clone());
            }
        }
    }
    Ok(())
}

/// Offsets in no kept segment: between them, before the first (if it does
/// not start at 0), and after the last up to `next_offset`.
fn find_gaps(keep: &[(&Scan, u64)], any_record: bool, rec: &mut Recovery) {
    // gaps between kept segments (and before the first, if it does not start at 0)
    let mut expect = 0u64;
    for (s, end) in keep.iter().filter(|(s, end)| *end > s.header.first) {
        if s.header.first > expect {
            rec.gaps.push((expect, s.header.first));
        }
        expect = *end;
    }
    if rec.next_offset > expect && any_record {
        rec.gaps.push((expect, rec.next_offset));
    }
}
