//! Appending to the move log: one partition per poller, written through a
//! memory-mapped, preallocated segment, and a keeper thread that prepares
//! segments ahead, syncs per policy and retires full ones.
//!
//! The poller's [`Partition::append`] is a 96-byte copy into the mapping
//! (plus a CRC): no system call, no lock, no allocation. Once it returns the
//! record is in the page cache, so it survives the death of the process;
//! the poller sends the move's ack after that. When a segment is full the
//! poller takes the next one from a lock-free queue the [`Keeper`] keeps
//! filled (created, fallocated, header written, file and directory fsynced,
//! mapped and prefaulted — all off the poller's core); if none is ready (disk
//! full, directory unwritable) `append` refuses and the move is BUSY.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use memmap2::{Advice, MmapMut, MmapOptions};

use crate::head::HeadWriter;
use crate::pace::{in_steps, Pacer};
use crate::recover::{recover_partition, sync_dir, Recovery, TMP_SUFFIX};
use crate::{encode_header, encode_record, partition_name, records_per_segment, segment_name, unix_ns, Accepted, DirLock, Header, Record, HEADER_LEN, MIN_SEGMENT_BYTES, RECORD_LEN};

/// Prepared segments kept ready per partition.
const READY_DEPTH: usize = 2;
/// Full segments a partition can hand back before the keeper takes them.
const RETIRED_DEPTH: usize = 16;
/// After a failed preparation, try again this much later.
const RETRY: Duration = Duration::from_secs(1);

/// When records are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// The segment being written is left to kernel writeback (within ~30 s
    /// by default); full segments are fsynced when retired, and a clean
    /// stop fsyncs the rest.
    None,
    /// The keeper thread fdatasyncs each partition's segment at most this
    /// long after it was written.
    Interval(Duration),
    /// The poller msyncs the records of each batch before the batch's acks
    /// are sent.
    EveryBatch,
}

impl SyncPolicy {
    pub fn name(&self) -> &'static str {
        match self {
            SyncPolicy::None => "none",
            SyncPolicy::Interval(_) => "interval",
            SyncPolicy::EveryBatch => "batch",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LogConfig {
    pub dir: PathBuf,
    /// Size of each new segment file (preallocated).
    pub segment_bytes: u64,
    pub sync: SyncPolicy,
}

/// A mapped segment in a poller's hands.
pub struct Mapped {
    map: MmapMut,
    first: u64,
    cap: u64,
}

/// What a partition shares with its keeper and the stats.
#[derive(Debug)]
pub struct PartitionShared {
    pub queue: u16,
    pub dir: PathBuf,
    ready: ArrayQueue<Mapped>,
    retired: ArrayQueue<Mapped>,
    /// Records appended since start.
    pub records: AtomicU64,
    /// Offset the next record gets, published (Release) once per batch
    /// after the batch's record bytes: every record below it is whole.
    pub next_offset: AtomicU64,
    /// Every record below this offset was on stable storage when it was
    /// published (msync/fdatasync returned), per the sync policy.
    pub synced_offset: AtomicU64,
    /// Batches with new records the poller committed (before their acks).
    pub commits: AtomicU64,
    /// Of those, the ones whose records the poller msynced before their
    /// acks (batch policy: every one).
    pub batch_syncs: AtomicU64,
    /// First offset of the segment being written (`u64::MAX`: none).
    pub segment_first: AtomicU64,
    /// Appends refused: no segment ready (moves answered BUSY).
    pub refused: AtomicU64,
    pub rotations: AtomicU64,
    /// Segments the keeper prefaulted in 2 MiB folios ([`large_folios`]),
    /// and in single pages.
    pub folio_segments: AtomicU64,
    pub page_segments: AtomicU64,
    pub syncs: AtomicU64,
    /// msync failures of the batch policy.
    pub sync_errors: AtomicU64,
}

impl std::fmt::Debug for Mapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Mapped(first {}, {} slots)", self.first, self.cap)
    }
}

impl PartitionShared {
    /// A partition's shared state, its next record at offset `next`.
    fn new(queue: u16, dir: PathBuf, next: u64) -> PartitionShared {
        PartitionShared {
            queue,
            dir,
            ready: ArrayQueue::new(READY_DEPTH),
            retired: ArrayQueue::new(RETIRED_DEPTH),
            records: AtomicU64::new(0),
            next_offset: AtomicU64::new(next),
            synced_offset: AtomicU64::new(next),
            commits: AtomicU64::new(0),
            batch_syncs: AtomicU64::new(0),
            segment_first: AtomicU64::new(u64::MAX),
            refused: AtomicU64::new(0),
            rotations: AtomicU64::new(0),
            folio_segments: AtomicU64::new(0),
            page_segments: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            sync_errors: AtomicU64::new(0),
        }
    }
    /// Prepared segments waiting.
    pub fn ready(&self) -> usize {
        self.ready.len()
    }
}

/// Log-wide state: the partitions, the keeper's health, the stop flag.
#[derive(Debug)]
pub struct LogShared {
    pub dir: PathBuf,
    pub sync: SyncPolicy,
    pub segment_bytes: u64,
    pub partitions: Vec<Arc<PartitionShared>>,
    /// False while the keeper cannot prepare or sync segments.
    pub healthy: AtomicBool,
    pub errors: AtomicU64,
    pub last_error: Mutex<Option<String>>,
    /// What opening the log found (torn tails cut, damage set aside, ...).
    pub recovery: Mutex<Vec<String>>,
    /// Set once the pollers stopped: the keeper syncs everything and exits.
    pub stop: AtomicBool,
    keeper: OnceLock<Thread>,
    /// The directory lock, held while any partition or the keeper lives.
    /// The directory lock: released by the keeper once it has synced
    /// everything at stop (a successor may open the log from then on,
    /// while this process is still exiting).
    lock: Mutex<Option<DirLock>>,
}

impl LogShared {
    fn error(&self, msg: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        self.healthy.store(false, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(msg);
    }

    /// Records appended since start, all partitions.
    pub fn records(&self) -> u64 {
        self.partitions.iter().map(|p| p.records.load(Ordering::Relaxed)).sum()
    }

    fn wake_keeper(&self) {
        if let Some(t) = self.keeper.get() {
            t.unpark();
        }
    }

    /// Asks the keeper to sync and exit (after the pollers stopped).
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.wake_keeper();
    }
}

/// A poller's partition: appends records into its current mapped segment.
pub struct Partition {
    shared: Arc<PartitionShared>,
    log: Arc<LogShared>,
    cur: Option<Mapped>,
    slot: u64,
    next_offset: u64,
    records: u64,
    refused: u64,
    batch_sync: bool,
    /// Batch policy: first slot of the current segment not yet msynced.
    dirty_from: u64,
    /// The next offset at the last commit.
    committed: u64,
    commits: u64,
    batch_syncs: u64,
    /// Batch policy: the msync at a rotation inside this batch failed.
    sync_failed: bool,
    /// Shared with readers in other processes: the published head.
    head: HeadWriter,
}

impl Partition {
    pub fn queue(&self) -> u16 {
        self.shared.queue
    }

    /// Offset the next record gets.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Appends a record; `false` if there is no room (no segment ready):
    /// nothing was written, the move must be answered BUSY.
    #[inline]
    pub fn append(&mut self, a: &Accepted) -> bool {
        let full = match &self.cur {
            Some(c) => self.slot >= c.cap,
            None => true,
        };
        if full && !self.rotate() {
            self.refused += 1;
            self.shared.refused.store(self.refused, Ordering::Relaxed);
            return false;
        }
        let Some(c) = self.cur.as_mut() else { return false };
        let pos = HEADER_LEN + self.slot as usize * RECORD_LEN;
        let out: &mut [u8; RECORD_LEN] = (&mut c.map[pos..pos + RECORD_LEN]).try_into().expect("record slot");
        encode_record(self.next_offset, a, out);
        self.slot += 1;
        self.next_offset += 1;
        self.records += 1;
        true
    }

    /// Publishes the counts for the keeper, the stats and readers (once
    /// per batch: no cache line shared with another thread is written per
    /// record). Release: the records' bytes, written before, are seen by
    /// whoever loads the offset with Acquire (the keeper before its msync,
    /// readers in other processes through the head file).
    #[inline]
    fn publish(&self) {
        self.shared.records.store(self.records, Ordering::Relaxed);
        self.shared.next_offset.store(self.next_offset, Ordering::Release);
        self.head.publish(self.next_offset);
    }

    /// The address of the segment being written's mapping.
    #[cfg(test)]
    pub(crate) fn segment_addr(&self) -> Option<usize> {
        self.cur.as_ref().map(|c| c.map.as_ptr() as usize)
    }

    /// The first half of [`Self::publish`] alone: the interleaving where a
    /// keeper looks between the two stores.
    #[cfg(test)]
    pub(crate) fn publish_count_only(&mut self) {
        self.shared.records.store(self.records, Ordering::Relaxed);
    }

    /// Before a batch's acks are sent: with the batch policy, msyncs the
    /// records written since the last commit; then publishes the counts and
    /// the head (otherwise the records are already where they need to be:
    /// in the page cache).
    #[inline]
    pub fn commit(&mut self) {
        if self.next_offset == self.committed {
            return;
        }
        self.committed = self.next_offset;
        self.commits += 1;
        self.shared.commits.store(self.commits, Ordering::Relaxed);
        if self.batch_sync {
            let ok = match self.cur.is_some() && self.slot > self.dirty_from {
                true => self.sync_range(self.dirty_from, self.slot),
                // everything new went into a segment synced at rotation
                false => true,
            } && !std::mem::take(&mut self.sync_failed);
            self.dirty_from = self.slot;
            if ok {
                self.batch_syncs += 1;
                self.shared.batch_syncs.store(self.batch_syncs, Ordering::Relaxed);
                self.shared.synced_offset.store(self.next_offset, Ordering::Release);
            }
        }
        self.publish();
    }

    /// msyncs slots `from..to` of the current segment; `false` if it failed
    /// (counted and logged).
    fn sync_range(&self, from: u64, to: u64) -> bool {
        let Some(c) = &self.cur else { return false };
        let off = HEADER_LEN + from as usize * RECORD_LEN;
        let len = (to - from) as usize * RECORD_LEN;
        match c.map.flush_range(off, len) {
            Ok(()) => {
                self.shared.syncs.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(e) => {
                self.shared.sync_errors.fetch_add(1, Ordering::Relaxed);
                self.log.error(format!("msync of {} q{} segment {}: {e}", self.log.dir.display(), self.shared.queue, c.first));
                false
            }
        }
    }

    /// Switches to the next prepared segment (handing the full one back to
    /// the keeper). `false` if none is ready.
    #[cold]
    fn rotate(&mut self) -> bool {
        // the full segment must go back to the keeper (only it unmaps):
        // no room there (keeper far behind) is no room here
        if self.shared.retired.is_full() {
            self.log.wake_keeper();
            return false;
        }
        let Some(next) = self.shared.ready.pop() else {
            self.log.wake_keeper();
            return false;
        };
        debug_assert_eq!(next.first, self.next_offset, "prepared segment continues the partition");
        if self.batch_sync && self.cur.as_ref().is_some_and(|_| self.slot > self.dirty_from) {
            // a failure is counted; the batch's commit then marks nothing synced
            if !self.sync_range(self.dirty_from, self.slot) {
                self.sync_failed = true;
            }
        }
        self.shared.segment_first.store(next.first, Ordering::Relaxed);
        if let Some(old) = self.cur.replace(next) {
            // the keeper syncs it per policy and unmaps it, off this core
            if let Err(old) = self.shared.retired.push(old) {
                // not reachable (checked not full above, one producer);
                // leaking the mapping is safe, unmapping under the keeper is not
                std::mem::forget(old);
            }
        }
        self.slot = 0;
        self.dirty_from = 0;
        self.shared.rotations.fetch_add(1, Ordering::Relaxed);
        self.log.wake_keeper();
        true
    }
}

impl Drop for Partition {
    /// The segment being written goes back to the keeper, which syncs and
    /// unmaps it (it alone unmaps, so its msyncs never meet a gone mapping).
    fn drop(&mut self) {
        self.publish();
        if let Some(c) = self.cur.take() {
            if let Err(c) = self.shared.retired.push(c) {
                std::mem::forget(c); // never unmap under the keeper's feet
            }
        }
        self.log.wake_keeper();
    }
}

/// The keeper: prepares segments ahead, syncs per policy, retires full
/// segments. Runs on its own thread (never a poller's core).
pub struct Keeper {
    shared: Arc<LogShared>,
    parts: Vec<KeeperPart>,
    /// Its runs on its core, bounded once its thread runs ([`crate::pace`]).
    pacer: Pacer,
}

struct KeeperPart {
    sh: Arc<PartitionShared>,
    /// First offset of the next segment to prepare.
    next_first: u64,
    /// Open segment files (the one being written and the prepared ones),
    /// with their mapping's address range.
    files: VecDeque<(u64, File, MapAddr)>,
    /// Every record below this offset is synced (by the keeper: interval
    /// policy, retirement, stop).
    synced: u64,
    last_sync: Instant,
    /// The published offset at the last interval sync: unchanged at the
    /// next means the partition went quiet.
    seen_next: u64,
    /// The published offset at the keeper's last turn (is the writer
    /// moving: [`Keeper::populate_ahead`]).
    turn_next: u64,
    retry_at: Option<Instant>,
    /// The segment resumed at start, mapped without prefaulting (a restart
    /// serves sooner): the keeper takes its write faults in the background,
    /// 2 MiB per turn, from this byte on.
    populate: Option<(MapAddr, usize)>,
    /// The writer's records a second, over the last [`RATE_WINDOW`].
    rate: RecordRate,
}

impl KeeperPart {
    /// Whether the writer is past the first half of the segment it is in
    /// (or has none).
    fn writer_past_half(&self) -> bool {
        let next = self.sh.next_offset.load(Ordering::Acquire);
        match self.files.iter().find(|(first, _, m)| *first <= next && next < first + m.slots()) {
            Some((first, _, m)) => next - first >= m.slots() / 2,
            None => true,
        }
    }
}

/// How long the keeper measures a writer's rate over.
const RATE_WINDOW: Duration = Duration::from_millis(250);

/// A writer's records a second, measured over windows of [`RATE_WINDOW`]
/// (NaN until the first one ends).
#[derive(Debug, Clone, Copy)]
struct RecordRate {
    since: Instant,
    from: u64,
    per_sec: f64,
}

impl RecordRate {
    fn new(next: u64) -> RecordRate {
        RecordRate { since: Instant::now(), from: next, per_sec: f64::NAN }
    }

    /// The writer's next offset is `next` at `now`.
    fn update(&mut self, next: u64, now: Instant) {
        let dt = now.saturating_duration_since(self.since);
        if dt >= RATE_WINDOW {
            let dt = dt.as_secs_f64();
            self.per_sec = next.saturating_sub(self.from) as f64 / dt;
            (self.since, self.from) = (now, next);
        }
    }
}

fn io_err(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Reserves `len` bytes for `f` so later stores into its mapping cannot
/// meet a full disk (SIGBUS): fallocate, or, where the file system has
/// none (ext4 without extents, NFSv3), zeros written over bytes
/// `from..len` only. Bytes below `from` are never written: in a segment
/// appending resumes in they hold records, which must survive the restart
/// (recovery guarantees every slot from `from` on is empty).
fn preallocate(f: &File, path: &Path, from: u64, len: u64) -> io::Result<()> {
    // SAFETY: fallocate on a descriptor we own; no memory is passed. Mode 0
    // allocates without changing a byte already in the file.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len as libc::off_t) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() != Some(libc::EOPNOTSUPP) {
        return Err(io_err(path, "fallocate", e));
    }
    zero_fill(f, path, from, len)
}

/// The fallback of [`preallocate`]: zeros over `from..len`, skipping what
/// is already allocated when the file system can say (SEEK_HOLE), so a
/// resumed, fully written segment costs no write at all.
fn zero_fill(f: &File, path: &Path, from: u64, len: u64) -> io::Result<()> {
    let zeros = vec![0u8; 1 << 20];
    let mut pos = from;
    while pos < len {
        // the next hole at or after pos (the file's end if none)
        // SAFETY: lseek on a descriptor we own; the offset is checked below.
        let hole = unsafe { libc::lseek(f.as_raw_fd(), pos as libc::off_t, libc::SEEK_HOLE) };
        let start = if hole < 0 { pos } else { (hole as u64).max(pos) };
        if start >= len {
            break;
        }
        // SAFETY: as above; SEEK_DATA fails with ENXIO past the last data
        let data = unsafe { libc::lseek(f.as_raw_fd(), start as libc::off_t, libc::SEEK_DATA) };
        let end = if hole < 0 || data < 0 { len } else { (data as u64).min(len) };
        let mut p = start;
        while p < end {
            let n = ((end - p) as usize).min(zeros.len());
            f.write_all_at(&zeros[..n], p).map_err(|e| io_err(path, "preallocating (writing zeros)", e))?;
            p += n as u64;
        }
        if end <= pos {
            break;
        }
        pos = end;
    }
    Ok(())
}

/// Step of the keeper's prefaulting of a resumed segment, one per turn
/// (MADV_POPULATE_WRITE, itself in paced [`crate::pace::STEP`]s).
const POPULATE_STEP: usize = 2 << 20;
/// How far ahead of each writer the keeper keeps the log's pages writable
/// ([`Keeper::populate_ahead`]): 2 MiB, 0.1 s of records at 200 k moves/s
/// on one queue, ten of the keeper's turns while it moves. (8 MiB cost the
/// keeper ~0.9 ms a turn, walking pages already writable.)
const AHEAD: usize = 2 << 20;
/// The keeper's longest nap while a writer is moving: the kernel's
/// writeback of the pages ahead of it (every few seconds, over a second
/// or so) costs the writer the faults of at most this long (~50 pages at
/// 200 k moves/s) before the keeper makes them writable again.
const BUSY_NAP: Duration = Duration::from_millis(10);
/// The page size msync and the write faults work in.
const PAGE: usize = 4096;
/// The largest page-cache folio of a file mapping (a PMD, 2 MiB on x86-64).
/// Writeback write-protects a whole folio, and ext4 (since 6.16) and xfs
/// cache a log segment in large folios: syncing the pages just behind the
/// writer writes back the folio the writer is in, and it then faults on
/// each of that folio's pages it writes next (about five faults per
/// interval sync at 200 k moves/s). A sync that ends on a 2 MiB boundary
/// never splits a folio, so never touches the writer's.
const FOLIO_MAX: usize = 2 << 20;

/// Maps a new segment, advised `MADV_RANDOM`: a new segment holds nothing
/// to read, and a fault's readahead zero-fills up to read_ahead_kb of it
/// at once, one long run on the keeper's core that its paced steps cannot
/// break. (Not for a resumed segment, [`map_lazy`]: its written part is
/// read back in as it is populated.) The keeper then prefaults it
/// ([`MapAddr::prefault`], [`Keeper::prepare`]).
fn map(f: &File, path: &Path, len: u64) -> io::Result<MmapMut> {
    let m = map_lazy(f, path, len)?;
    if let Err(e) = m.advise(Advice::Random) {
        log::debug!("madvise(MADV_RANDOM) on {}: {e}", path.display());
    }
    Ok(m)
}

/// Whether a segment about to be prefaulted is cached in 2 MiB folios, for
/// a writer appending `per_sec` records a second under `sync`.
///
/// A 2 MiB folio is dirtied, written back and write-protected whole (ext4
/// and xfs mark the whole folio dirty at a write fault). Populating and
/// writing back a segment in folios costs the keeper about 40 % of what
/// single pages do at saturation, and this VM's host a third of the steal
/// (docs/performance.md, "The log's page cache in 2 MiB folios, for a
/// fast writer"). But an interval sync that ends inside the folio the
/// writer is filling writes all 2 MiB, and the writer then faults on it
/// again: ten times the log's bytes at 10 k moves/s. So: folios when every
/// interval sync can end on a
/// 2 MiB boundary behind the writer (it crosses one per interval, with a
/// margin of half again), or when only the kernel's writeback (every
/// ~30 s) touches the segment being written; never for the batch policy
/// (an msync per batch would write the whole folio).
pub(crate) fn large_folios(sync: SyncPolicy, per_sec: f64) -> bool {
    match sync {
        SyncPolicy::EveryBatch => false,
        SyncPolicy::None => true,
        SyncPolicy::Interval(d) => per_sec * d.as_secs_f64() >= 1.5 * (FOLIO_MAX / RECORD_LEN) as f64,
    }
}

/// The mapping alone, without [`map`]'s `MADV_RANDOM` (a resumed segment's
/// written part is read back in): the pages fault in as they are written,
/// or as the keeper populates them.
fn map_lazy(f: &File, path: &Path, len: u64) -> io::Result<MmapMut> {
    // SAFETY: the file is ours (the directory lock keeps other appliances
    // out) and preallocated to `len`; nothing truncates it while mapped.
    // Stores through the mapping are plain memory writes into page-cache
    // pages; other processes reading the file see bytes, not Rust objects.
    unsafe { MmapOptions::new().len(len as usize).map_mut(f) }.map_err(|e| io_err(path, "mmap", e))
}

/// The madvise(2) advice the keeper gives a segment's mapping ([`MapAddr`]):
/// none changes a byte of a shared file mapping.
#[derive(Debug, Clone, Copy)]
#[repr(i32)]
enum KeepBytes {
    /// Cache the file in 2 MiB folios where the file system can.
    HugePage = libc::MADV_HUGEPAGE,
    /// Single pages.
    NoHugePage = libc::MADV_NOHUGEPAGE,
    /// Take the write faults now.
    PopulateWrite = libc::MADV_POPULATE_WRITE,
    /// Drop the page table entries (MADV_DONTNEED): on a shared file
    /// mapping the pages stay in the page cache, dirty if they were.
    DropPtes = libc::MADV_DONTNEED,
}

/// A mapped segment's address range, for the keeper's msync of what was
/// written (the keeper alone unmaps segments, so the range stays mapped
/// while it holds this).
#[derive(Debug, Clone, Copy)]
struct MapAddr {
    addr: usize,
    len: usize,
}

impl MapAddr {
    fn of(m: &MmapMut) -> MapAddr {
        MapAddr { addr: m.as_ptr() as usize, len: m.len() }
    }

    /// Advises the whole mapping's page cache folios: 2 MiB ones
    /// (`MADV_HUGEPAGE`: a fault fills the one aligned 2 MiB folio around
    /// it, and with `MADV_RANDOM` no more) or single pages
    /// (`MADV_NOHUGEPAGE`), for the faults to come ([`large_folios`]).
    /// Where the file system caches files in single pages, or without
    /// transparent hugepages, the kernel gives single pages either way.
    fn advise_folios(&self, large: bool) -> io::Result<()> {
        self.advise(0, self.len, if large { KeepBytes::HugePage } else { KeepBytes::NoHugePage })
    }

    /// madvise(2) of bytes `from..from + n` of the mapping, with one of
    /// the pieces of advice that change no byte of a shared file mapping.
    fn advise(&self, from: usize, n: usize, advice: KeepBytes) -> io::Result<()> {
        // SAFETY: [addr+from, +n) lies inside a shared file mapping only the
        // keeper (the caller) unmaps, and no KeepBytes advice changes a byte
        // of it: folio sizes, faults taken ahead, page table entries dropped
        // (the pages' contents stay in the page cache, mapped back on the
        // next access).
        match unsafe { libc::madvise((self.addr + from) as *mut libc::c_void, n, advice as libc::c_int) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    /// Prefaults the whole segment in `large` folios or single pages, in
    /// paced steps: every page's write fault taken here, on the keeper's
    /// core, not in the poller's hot loop (on ext4 a first write to a page
    /// costs microseconds). A failure is only logged: pages then fault in
    /// as records are written.
    fn prefault(&self, large: bool, pacer: &mut Pacer) {
        if let Err(e) = self.advise_folios(large) {
            log::debug!("move log: madvise of a segment's folios: {e}");
        }
        if let Err(e) = self.populate_range(0, self.len, pacer) {
            log::debug!("move log: madvise(MADV_POPULATE_WRITE) of a segment: {e}; pages will fault in as records are written");
        }
    }

    /// Takes the write faults of bytes `from..from + POPULATE_STEP`
    /// (MADV_POPULATE_WRITE); returns where the next step starts, or None
    /// when the range is done (or the kernel cannot: pages then fault in
    /// as they are written).
    fn populate_step(&self, from: usize, pacer: &mut Pacer) -> Option<usize> {
        let n = POPULATE_STEP.min(self.len.saturating_sub(from));
        if n == 0 {
            return None;
        }
        let ok = self.populate_range(from, n, pacer).is_ok();
        (ok && from + n < self.len).then_some(from + n)
    }

    /// MADV_POPULATE_WRITE over bytes `from..from + n` (page aligned `from`,
    /// clipped to the mapping), in paced steps: their write faults taken
    /// now, by the caller.
    fn populate_range(&self, from: usize, n: usize, pacer: &mut Pacer) -> io::Result<()> {
        let n = n.min(self.len.saturating_sub(from));
        in_steps(n, pacer, |off, k| self.advise(from + off, k, KeepBytes::PopulateWrite))
    }

    /// MADV_DONTNEED over bytes `from..from + n` (whole pages): the page
    /// table entries go, with one TLB flush; the pages stay in the page
    /// cache, dirty if they were, and a later touch maps them back.
    fn drop_ptes(&self, from: usize, n: usize) -> io::Result<()> {
        self.advise(from, n, KeepBytes::DropPtes)
    }

    /// Record slots in the mapped segment.
    fn slots(&self) -> u64 {
        records_per_segment(self.len as u64)
    }

    /// msync(MS_SYNC) of bytes `from..to` (widened to pages) of the
    /// mapping of `f`: writes back and waits for just that range, and the
    /// metadata needed to read it. The whole pages of it below byte `left`
    /// (where the writer is) are unmapped from the page tables first
    /// ([`Self::drop_ptes`]), so their writeback has no mapping to
    /// write-protect. The writeback is started first in paced
    /// steps (sync_file_range), so the msync that then waits for it and
    /// flushes has little left to do on the keeper's core in one run.
    fn sync(&self, f: &File, from: usize, to: usize, left: usize, pacer: &mut Pacer) -> io::Result<()> {
        let start = from / PAGE * PAGE;
        let end = to.min(self.len);
        if end <= start {
            return Ok(());
        }
        // the writer's page table entries over the whole pages it has left
        // behind dropped first (one TLB flush), so writing them back below
        // finds no mapping to write-protect (a flush each, to every core)
        let behind = end.next_multiple_of(PAGE).min(left) / PAGE * PAGE;
        if behind > start {
            let _ = in_steps(behind - start, pacer, |off, n| self.drop_ptes(start + off, n));
        }
        // the mapping covers the file from byte 0: its offsets are the file's
        let _ = in_steps(end - start, pacer, |off, n| {
            // SAFETY: a plain syscall on our open fd; it reads no memory of ours.
            let rc = unsafe { libc::sync_file_range(f.as_raw_fd(), (start + off) as i64, n as i64, libc::SYNC_FILE_RANGE_WRITE) };
            if rc == 0 {
                Ok(())
            } else {
                Err(())
            }
        });
        pacer.step();
        // SAFETY: [addr+start, addr+end) lies inside a mapping that is only
        // unmapped by the keeper thread, which is the caller; msync reads no
        // memory, it writes back page-cache pages.
        let rc = unsafe { libc::msync((self.addr + start) as *mut libc::c_void, end - start, libc::MS_SYNC) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

impl Keeper {
    /// Creates, reserves (fallocate), fsyncs (file and directory) and maps
    /// the partition's next segment, and
    /// prefaults it in folios or single pages by the writer's rate now
    /// ([`large_folios`]): at start, and then as the writer rotates, two
    /// segments ahead of it (READY_DEPTH). A rate that falls leaves at
    /// most those two and the current one in folios.
    fn prepare(shared: &LogShared, p: &mut KeeperPart, pacer: &mut Pacer) -> io::Result<Mapped> {
        let bytes = shared.segment_bytes;
        let path = p.sh.dir.join(segment_name(p.next_first));
        // Built under a temporary name and renamed into place once complete,
        // so a crash mid-way never leaves a segment without its header.
        let tmp = p.sh.dir.join(format!("{}{TMP_SUFFIX}", segment_name(p.next_first)));
        let _ = std::fs::remove_file(&tmp);
        let f = OpenOptions::new().read(true).write(true).create_new(true).open(&tmp).map_err(|e| io_err(&tmp, "creating segment", e))?;
        let res = (|| {
            preallocate(&f, &tmp, 0, bytes)?;
            let h = Header { first: p.next_first, created_unix_ns: unix_ns(), partition: p.sh.queue, segment_bytes: bytes };
            f.write_all_at(&encode_header(&h), 0).map_err(|e| io_err(&tmp, "writing header", e))?;
            f.sync_all().map_err(|e| io_err(&tmp, "fsync", e))?;
            if path.exists() {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("segment {} already exists", path.display())));
            }
            std::fs::rename(&tmp, &path).map_err(|e| io_err(&path, "renaming new segment into place", e))?;
            sync_dir(&p.sh.dir)?;
            let m = map(&f, &path, bytes)?;
            // no rate yet (NaN): single pages, unless the policy allows folios at any rate
            let large = large_folios(shared.sync, p.rate.per_sec);
            MapAddr::of(&m).prefault(large, pacer);
            let c = if large { &p.sh.folio_segments } else { &p.sh.page_segments };
            c.fetch_add(1, Ordering::Relaxed);
            Ok(m)
        })();
        match res {
            Ok(m) => {
                let cap = records_per_segment(bytes);
                let mapped = Mapped { map: m, first: p.next_first, cap };
                p.files.push_back((p.next_first, f, MapAddr::of(&mapped.map)));
                p.next_first += cap;
                Ok(mapped)
            }
            Err(e) => {
                // it holds no record: remove it, try again later
                let _ = std::fs::remove_file(&tmp);
                if !path.exists() || std::fs::metadata(&path).map(|m| m.ino()).ok() == f.metadata().map(|m| m.ino()).ok() {
                    let _ = std::fs::remove_file(&path);
                }
                Err(e)
            }
        }
    }

    /// Prepares what is missing (at most a partition's ready depth per
    /// call, retiring handed-back segments between preparations, so a
    /// poller outrunning the keeper never starves retirement and syncs).
    fn fill(&mut self) {
        self.fill_when(false);
    }

    /// [`Self::fill`]; unless `now_or_never`, at start (before the writer's
    /// first rotation) a partition's second spare waits while its writer is
    /// in the first half of its segment and its rate (over [`RATE_WINDOW`])
    /// does not yet call for folios that the policy allows: it is then
    /// prepared in the folios the writer's traffic calls for, not in the
    /// pages of an idle writer. The first spare never waits (a writer never
    /// finds none for this).
    fn fill_when(&mut self, now_or_never: bool) {
        let now = Instant::now();
        for i in 0..self.parts.len() {
            for _ in 0..READY_DEPTH {
                self.retire();
                let p = &mut self.parts[i];
                if p.retry_at.is_some_and(|t| now < t) || p.sh.ready.len() >= READY_DEPTH {
                    break;
                }
                let sync = self.shared.sync;
                let waits = large_folios(sync, f64::INFINITY) && !large_folios(sync, p.rate.per_sec);
                // only in the first segment since start; never the only
                // spare, nor once the writer has found none
                let start = p.sh.rotations.load(Ordering::Relaxed) == 0;
                let lone = p.sh.ready.is_empty() || p.sh.refused.load(Ordering::Relaxed) > 0;
                if !now_or_never && start && waits && !lone && !p.writer_past_half() {
                    break;
                }
                p.retry_at = None;
                match Self::prepare(&self.shared, p, &mut self.pacer) {
                    Ok(m) => {
                        let _ = p.sh.ready.push(m);
                        if !self.shared.healthy.swap(true, Ordering::Relaxed) {
                            log::info!("move log {}: segments can be prepared again", self.shared.dir.display());
                        }
                    }
                    Err(e) => {
                        if self.shared.healthy.load(Ordering::Relaxed) {
                            log::error!("move log: {e}; once the current segment is full, moves are answered BUSY until a segment can be prepared");
                        }
                        self.shared.error(e.to_string());
                        p.retry_at = Some(now + RETRY);
                        break;
                    }
                }
            }
        }
    }

    /// Segments handed back by pollers (full, or at stop): fdatasynced
    /// (every policy: a full segment is never left to writeback alone),
    /// unmapped, closed.
    fn retire(&mut self) {
        for p in &mut self.parts {
            while let Some(old) = p.sh.retired.pop() {
                let first = old.first;
                drop(old); // munmap
                if let Some(i) = p.files.iter().position(|(f, _, _)| *f == first) {
                    let (_, f, m) = p.files.remove(i).expect("index found");
                    match f.sync_data() {
                        Ok(()) => {
                            p.sh.syncs.fetch_add(1, Ordering::Relaxed);
                            // whole below its end, if synced up to its start
                            if p.synced >= first {
                                let next = p.sh.next_offset.load(Ordering::Acquire);
                                p.synced = p.synced.max((first + m.slots()).min(next));
                                p.sh.synced_offset.fetch_max(p.synced, Ordering::Release);
                            }
                        }
                        Err(e) => self.shared.error(format!("fsync of {} segment {first}: {e}", p.sh.dir.display())),
                    }
                }
            }
        }
    }

    /// Interval policy: once the interval has passed, msync the records
    /// published since the last sync, in whichever mapped segments hold
    /// them (a rotation since included), and mark exactly what was synced.
    /// The offset is loaded once, with Acquire, so the range synced and
    /// the offset marked agree.
    ///
    /// Only pages the writer has left behind: an msync write-protects the
    /// pages it writes back, and the poller's next store into the page it
    /// is filling would then take a page_mkwrite fault in its hot loop (on
    /// ext4 it can wait on the journal). So the page being written is held
    /// back while the writer is still in it and has left another page
    /// behind since the last sync. The sync goes to the published offset
    /// when the partition is quiet (nothing published for an interval) or
    /// when the writer is still in the page it was in at the last sync (a
    /// slow writer: at most one fault per interval). A fast writer's sync
    /// stops on the last 2 MiB boundary behind it instead ([`FOLIO_MAX`]:
    /// the page cache's large folios are written back, and write-protected,
    /// whole). A record is thus synced within two intervals (three if the
    /// writer had just crossed a 2 MiB boundary), where it was within one.
    /// Pages prepared ahead are never synced here either (they stay dirty
    /// and writable).
    ///
    /// Before a range is written back, the writer's page table entries
    /// over the whole pages of it the writer has left behind are dropped
    /// (MADV_DONTNEED, [`MapAddr::drop_ptes`]: one TLB flush for the
    /// range). Writing back a page still mapped write-protects its entry,
    /// and that costs a TLB shootdown, an interrupt on the poller's core,
    /// for each page (or folio): ~2 000 a second at saturation, where the
    /// dropped ranges cost ~150 (docs/performance.md, "No TLB shootdowns
    /// from the log's writeback").
    pub(crate) fn sync_due(&mut self, every: Duration) {
        for p in &mut self.parts {
            if p.last_sync.elapsed() < every {
                continue;
            }
            let next = p.sh.next_offset.load(Ordering::Acquire);
            let quiet = next == p.seen_next;
            p.seen_next = next;
            if next <= p.synced {
                continue;
            }
            // the records below the last `align` boundary of the segment
            // being written (next falls in it)
            let whole = |align: usize| {
                p.files.iter().find(|(first, _, m)| next > *first && next <= first + m.slots()).map_or(next, |(first, _, _)| {
                    let to = (HEADER_LEN + (next - first) as usize * RECORD_LEN) / align * align;
                    (first + (to.saturating_sub(HEADER_LEN) / RECORD_LEN) as u64).max(*first)
                })
            };
            // Up to the last 2 MiB boundary behind the writer when that syncs
            // anything new (a fast writer: no folio of its is written back),
            // else the last whole page (a slower one: a few faults, at a rate
            // that can afford them), else, or when the writer is quiet,
            // everything: a record waits at most two intervals either way.
            let (folios, pages) = (whole(FOLIO_MAX), whole(PAGE));
            let upto = if quiet {
                next
            } else if folios > p.synced {
                folios
            } else if pages > p.synced {
                pages
            } else {
                next
            };
            let mut ok = true;
            for (first, f, m) in &p.files {
                let cap = m.slots();
                let (lo, hi) = (p.synced.max(*first), upto.min(first + cap));
                if lo >= hi {
                    continue;
                }
                let (from, to) = (HEADER_LEN + (lo - first) as usize * RECORD_LEN, HEADER_LEN + (hi - first) as usize * RECORD_LEN);
                // where the writer is in this segment (past it: all of it left behind)
                let left = if next >= first + cap { m.len } else { HEADER_LEN + next.saturating_sub(*first) as usize * RECORD_LEN };
                if let Err(e) = m.sync(f, from, to, left, &mut self.pacer) {
                    ok = false;
                    self.shared.error(format!("msync of {} segment {first}: {e}", p.sh.dir.display()));
                }
            }
            if ok {
                p.sh.syncs.fetch_add(1, Ordering::Relaxed);
                p.synced = upto;
                p.sh.synced_offset.fetch_max(upto, Ordering::Release);
            }
            p.last_sync = Instant::now();
        }
    }

    /// Keeps the pages just ahead of each writer writable: the kernel's
    /// flusher writes a dirty page back (write-protecting it) once its file
    /// has been dirty for dirty_expire (~30 s), prepared pages included, so
    /// without this the poller would take a page_mkwrite fault on each
    /// page it reaches after that. MADV_POPULATE_WRITE over the next
    /// [`AHEAD`] bytes (into the next prepared segment near the end) takes
    /// those faults here, on the keeper's core; on pages still writable it
    /// only walks their page table entries. Returns whether any writer
    /// moved since the last turn (the keeper then turns again sooner).
    pub(crate) fn populate_ahead(&mut self) -> bool {
        let mut moving = false;
        let now = Instant::now();
        for p in &mut self.parts {
            let next = p.sh.next_offset.load(Ordering::Acquire);
            p.rate.update(next, now);
            moving |= next != p.turn_next;
            p.turn_next = next;
            let mut want = AHEAD;
            for (first, _, m) in &p.files {
                if want == 0 {
                    break;
                }
                let cap = m.slots();
                if next >= first + cap {
                    continue; // full, waiting to be retired
                }
                let pos = if next > *first { HEADER_LEN + (next - first) as usize * RECORD_LEN } else { 0 };
                let start = pos / PAGE * PAGE;
                let n = want.min(m.len.saturating_sub(start));
                if n > 0 {
                    let _ = m.populate_range(start, n, &mut self.pacer);
                }
                want -= n;
            }
        }
        moving
    }

    /// At stop: fdatasync every segment that holds records (not the
    /// prepared, empty ones), whatever the policy.
    fn sync_all(&mut self) {
        for p in &mut self.parts {
            let next = p.sh.next_offset.load(Ordering::Acquire);
            let mut ok = true;
            let cur = p.sh.segment_first.load(Ordering::Relaxed);
            for (first, f, _) in &p.files {
                if *first > cur && cur != u64::MAX {
                    continue; // prepared, never written
                }
                match f.sync_data() {
                    Ok(()) => {
                        p.sh.syncs.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        ok = false;
                        self.shared.error(format!("fsync of {} segment {first}: {e}", p.sh.dir.display()));
                    }
                }
            }
            if ok {
                p.synced = p.synced.max(next);
                p.sh.synced_offset.fetch_max(next, Ordering::Release);
            }
        }
    }

    /// Runs until [`LogShared::request_stop`]: then retires and fsyncs
    /// everything (whatever the policy) and returns.
    pub fn run(mut self) {
        let _ = self.shared.keeper.set(std::thread::current());
        self.pacer = Pacer::paced();
        let interval = match self.shared.sync {
            SyncPolicy::Interval(d) => Some(d),
            _ => None,
        };
        loop {
            let stop = self.shared.stop.load(Ordering::Acquire);
            self.retire();
            if stop {
                self.sync_all();
                drop(self.shared.lock.lock().unwrap_or_else(|e| e.into_inner()).take());
                return;
            }
            self.fill();
            if let Some(d) = interval {
                self.sync_due(d);
            }
            let moving = self.populate_ahead();
            if self.populate() {
                std::thread::yield_now();
                continue;
            }
            // while moves are logged, a turn every BUSY_NAP: pages the kernel
            // wrote back ahead of a writer are writable again before it
            // reaches most of them
            let most = if moving { BUSY_NAP } else { Duration::from_millis(100) };
            let nap = interval.unwrap_or(most).min(most);
            std::thread::park_timeout(nap);
            self.pacer.slept();
        }
    }

    /// Prepares segments now (at start, so the first moves find one).
    pub fn prime(&mut self) {
        self.fill_when(true);
    }

    /// One prefaulting step for each partition whose resumed segment is
    /// not yet populated; true while any is left.
    fn populate(&mut self) -> bool {
        let mut left = false;
        for p in &mut self.parts {
            if let Some((m, from)) = p.populate {
                // retired meanwhile (full, handed back): nothing to do
                let live = p.files.iter().any(|(_, _, a)| a.addr == m.addr);
                p.populate = live.then(|| m.populate_step(from, &mut self.pacer)).flatten().map(|next| (m, next));
                left |= p.populate.is_some();
            }
        }
        left
    }

    /// At start: one segment for each partition that does not resume in
    /// one, so its first moves find it; the spares are the keeper's to
    /// prepare once it runs (a restart serves sooner).
    fn prime_current(&mut self, parts: &mut [Partition]) {
        for (p, kp) in parts.iter_mut().zip(&mut self.parts) {
            if p.cur.is_some() {
                continue;
            }
            match Self::prepare(&self.shared, kp, &mut self.pacer) {
                Ok(m) => {
                    p.shared.segment_first.store(m.first, Ordering::Relaxed);
                    p.cur = Some(m);
                }
                Err(e) => {
                    log::error!("move log: {e}; moves are answered BUSY until a segment can be prepared");
                    self.shared.error(e.to_string());
                    kp.retry_at = Some(Instant::now() + RETRY);
                }
            }
        }
    }
}

/// Whether appending can continue at slot `slot` of an existing segment:
/// its blocks are reserved again first (a copied segment can be sparse, and
/// a store into a hole on a full disk would be a SIGBUS) without touching
/// a byte below that slot. If they cannot be, appending continues in a new
/// segment instead.
fn resumable(path: &Path, bytes: u64, slot: u64) -> bool {
    let from = HEADER_LEN as u64 + slot * RECORD_LEN as u64;
    let res = OpenOptions::new().write(true).open(path).and_then(|f| preallocate(&f, path, from, bytes));
    if let Err(e) = &res {
        log::warn!("move log {}: cannot reserve its blocks again ({e}); continuing in a new segment", path.display());
    }
    res.is_ok()
}

/// syncfs(2) on the file system holding `dir`.
fn sync_fs(dir: &Path) -> io::Result<()> {
    let d = File::open(dir).map_err(|e| io_err(dir, "opening", e))?;
    // SAFETY: syncfs on a descriptor we own; no memory is passed.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(io_err(dir, "syncfs of the file system holding", io::Error::last_os_error()));
    }
    Ok(())
}

/// Opens the log for the given queues: takes the directory lock, recovers
/// every partition (also ones no configured queue writes any more), calling
/// `visit` on every valid record, and prepares the first segments. Returns
/// one [`Partition`] per queue (in order), the keeper to run, the shared
/// state, and what recovery found per partition.
#[allow(clippy::type_complexity)]
pub fn open_log(
    cfg: &LogConfig,
    queues: &[u16],
    visit: &mut dyn FnMut(&Record),
) -> io::Result<(Vec<Partition>, Keeper, Arc<LogShared>, Vec<(u16, Recovery)>)> {
    if cfg.segment_bytes < MIN_SEGMENT_BYTES {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("segment size {} is below {MIN_SEGMENT_BYTES}", cfg.segment_bytes)));
    }
    std::fs::create_dir_all(&cfg.dir).map_err(|e| io_err(&cfg.dir, "creating log directory", e))?;
    let lock = DirLock::acquire(&cfg.dir)?;
    let (recoveries, resumes) = recover_all(cfg, queues, visit)?;
    // What the log holds now may be only in the page cache (the previous
    // process was killed, its last records not yet written back): make it
    // durable before a single new move is acked, so "synced" means synced
    // from the first record on.
    sync_fs(&cfg.dir)?;
    let parts_shared: Vec<Arc<PartitionShared>> =
        resumes.iter().map(|r| Arc::new(PartitionShared::new(r.queue, r.dir.clone(), r.next))).collect();
    let shared = Arc::new(LogShared {
        dir: cfg.dir.clone(),
        sync: cfg.sync,
        segment_bytes: cfg.segment_bytes,
        partitions: parts_shared.clone(),
        healthy: AtomicBool::new(true),
        errors: AtomicU64::new(0),
        last_error: Mutex::new(None),
        recovery: Mutex::new(recovery_notes(&recoveries)),
        stop: AtomicBool::new(false),
        keeper: OnceLock::new(),
        lock: Mutex::new(Some(lock)),
    });
    let mut parts = Vec::new();
    let mut kparts = Vec::new();
    for (r, sh) in resumes.into_iter().zip(&parts_shared) {
        let (p, kp) = open_partition(cfg, &shared, sh, r)?;
        parts.push(p);
        kparts.push(kp);
    }
    // unpaced until its thread runs: at start nothing else needs the core
    let mut keeper = Keeper { shared: Arc::clone(&shared), parts: kparts, pacer: Pacer::unpaced() };
    // a partition starting a new segment gets it now, so its first rotation
    // comes only when that segment is full; the keeper prepares the spares
    // (and prefaults a resumed segment) once it runs
    keeper.prime_current(&mut parts);
    Ok((parts, keeper, shared, recoveries))
}

/// Where a configured queue's partition goes on after recovery.
struct Resume {
    queue: u16,
    dir: PathBuf,
    /// The segment to append in, and at which slot (else a new segment).
    at: Option<(PathBuf, Header, u64)>,
    next: u64,
}

/// Recovers every partition on disk and every configured one (logging what
/// it found): what each holds, and where each configured one resumes.
#[allow(clippy::type_complexity)]
fn recover_all(cfg: &LogConfig, queues: &[u16], visit: &mut dyn FnMut(&Record)) -> io::Result<(Vec<(u16, Recovery)>, Vec<Resume>)> {
    // partitions on disk that no queue writes now: recovered and visited too
    let mut all: Vec<u16> = queues.to_vec();
    for q in crate::reader::partitions(&cfg.dir).map_err(|e| io::Error::other(e.to_string()))? {
        if !all.contains(&q) {
            all.push(q);
        }
    }
    let mut recoveries = Vec::new();
    let mut resumes = Vec::new();
    for &q in &all {
        let pdir = cfg.dir.join(partition_name(q));
        let r = recover_partition(&pdir, q, visit)?;
        for d in &r.damage {
            log::error!("move log: damage in {d}");
        }
        for s in &r.stray {
            log::warn!("move log: stray file {} (not a segment; left alone)", s.display());
        }
        for (a, b) in &r.gaps {
            log::warn!("move log {}: offsets {a}..{b} are not in any segment (removed, or set aside as damaged)", pdir.display());
        }
        if queues.contains(&q) {
            resumes.push(Resume { queue: q, dir: pdir, at: r.resume.clone(), next: r.next_offset });
        }
        recoveries.push((q, r));
    }
    Ok((recoveries, resumes))
}

/// What recovery did, one line each, for `show stats`.
fn recovery_notes(recoveries: &[(u16, Recovery)]) -> Vec<String> {
    let mut notes = Vec::new();
    for (q, r) in recoveries {
        if let Some((p, b)) = &r.torn_cut {
            notes.push(format!("q{q}: cut a torn record at byte {b} of {}", p.display()));
        }
        for d in &r.damage {
            notes.push(format!("q{q}: damage: {d}"));
        }
        for s in &r.stray {
            notes.push(format!("q{q}: stray file {}", s.display()));
        }
        for (a, b) in &r.gaps {
            notes.push(format!("q{q}: offsets {a}..{b} missing"));
        }
    }
    notes
}

/// A recovered partition's writer and its keeper's half: appending in the
/// segment recovery left open (mapped, to be prefaulted by the keeper) if
/// it can be, else in a new one.
fn open_partition(cfg: &LogConfig, log: &Arc<LogShared>, sh: &Arc<PartitionShared>, r: Resume) -> io::Result<(Partition, KeeperPart)> {
    let next = r.next;
    let mut files = VecDeque::new();
    let (cur, slot, next_first) = match r.at {
        Some((path, h, slot)) if resumable(&path, h.segment_bytes, slot) => {
            let f = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| io_err(&path, "opening", e))?;
            let m = map_lazy(&f, &path, h.segment_bytes)?;
            files.push_back((h.first, f, MapAddr::of(&m)));
            sh.segment_first.store(h.first, Ordering::Relaxed);
            log::info!("move log {}: appending at offset {next} in {}", sh.dir.display(), path.display());
            (Some(Mapped { map: m, first: h.first, cap: h.capacity() }), slot, h.first + h.capacity())
        }
        _ => {
            log::info!("move log {}: appending at offset {next} in a new segment", sh.dir.display());
            (None, 0, next)
        }
    };
    let populate = cur.as_ref().map(|m| (MapAddr::of(&m.map), 0));
    let head = HeadWriter::create(&sh.dir, next)?;
    let part = Partition {
        shared: Arc::clone(sh),
        log: Arc::clone(log),
        cur,
        slot,
        next_offset: next,
        records: 0,
        refused: 0,
        batch_sync: cfg.sync == SyncPolicy::EveryBatch,
        dirty_from: slot,
        committed: next,
        commits: 0,
        batch_syncs: 0,
        sync_failed: false,
        head,
    };
    let kpart = KeeperPart {
        sh: Arc::clone(sh),
        next_first,
        files,
        // recovery fsynced what it kept; what is on disk at start is where
        // it will stay
        synced: next,
        last_sync: Instant::now(),
        seen_next: 0,
        turn_next: 0,
        retry_at: None,
        populate,
        rate: RecordRate::new(next),
    };
    Ok((part, kpart))
}

#[cfg(test)]
mod prealloc_tests {
    use super::*;

    #[test]
    fn the_zero_fill_fallback_never_writes_below_where_appending_resumes() {
        let p = std::env::temp_dir().join(format!("ih-zfill-{}", std::process::id()));
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        let len = 3 << 20;
        f.set_len(len).unwrap(); // sparse: a copied segment
        let records = vec![0xA5u8; 5000];
        f.write_all_at(&records, 64).unwrap();
        let from = 64 + 5000;
        zero_fill(&f, &p, from, len).unwrap();
        let mut back = vec![0u8; 5000];
        f.read_exact_at(&mut back, 64).unwrap();
        assert_eq!(back, records, "records below the resume point untouched");
        // every block from there on is allocated (a store cannot meet ENOSPC)
        let blocks = f.metadata().unwrap().blocks() * 512;
        assert!(blocks >= len - from, "{blocks} bytes allocated of {len}");
        // SAFETY: lseek on our own descriptor.
        let hole = unsafe { libc::lseek(f.as_raw_fd(), from as libc::off_t, libc::SEEK_HOLE) };
        assert_eq!(hole as u64, len, "no hole left after {from}");
        std::fs::remove_file(&p).unwrap();
    }
}

#[cfg(test)]
mod pace_tests {
    use super::*;

    /// A new segment's prefault is done in paced steps (the keeper sleeps
    /// between them once it has run RUN_MAX), and still leaves every page
    /// of the segment resident.
    #[test]
    fn a_segment_is_prefaulted_whole_in_paced_steps() {
        let len: u64 = 16 << 20;
        let (p, f) = preallocated("ih-pace", len);
        let mut pacer = Pacer::every_step();
        let m = map(&f, &p, len).unwrap();
        MapAddr::of(&m).prefault(false, &mut pacer);
        let pages = len as usize / PAGE;
        let mut vec = vec![0u8; pages];
        // SAFETY: the range is our live mapping; vec has a byte per page.
        let rc = unsafe { libc::mincore(m.as_ptr() as *mut libc::c_void, len as usize, vec.as_mut_ptr()) };
        assert_eq!(rc, 0);
        assert_eq!(vec.iter().filter(|&&b| b & 1 == 1).count(), pages, "every page resident after map");
        let steps = (len as usize).div_ceil(crate::pace::STEP) as u64;
        assert_eq!(pacer.breaths(), steps - 1, "a breath between every two of the {steps} steps");
        drop(m);
        std::fs::remove_file(&p).unwrap();
    }

    /// A new file `NAME-<pid>` in the temp directory, preallocated to `len`.
    fn preallocated(name: &str, len: u64) -> (PathBuf, File) {
        let p = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&p).unwrap();
        preallocate(&f, &p, 0, len).unwrap();
        (p, f)
    }

    /// The folio choice: never with the batch policy, always with none,
    /// and with the interval policy from 1.5 folios of records an interval.
    #[test]
    fn folios_for_a_writer_crossing_a_2_mib_boundary_every_interval_with_a_margin() {
        use std::time::Duration;
        assert!(!large_folios(SyncPolicy::EveryBatch, 1e9));
        assert!(large_folios(SyncPolicy::None, 0.0));
        let i = SyncPolicy::Interval(Duration::from_millis(200));
        // 2 MiB / 96 B = 21 845 records; x 1.5 / 0.2 s = 163 837.5 a second
        assert!(!large_folios(i, 163_000.0) && large_folios(i, 164_000.0));
        // a longer interval: fewer records a second cross a folio in one
        let i = SyncPolicy::Interval(Duration::from_secs(1));
        assert!(!large_folios(i, 32_000.0) && large_folios(i, 33_000.0));
    }

    /// A segment prefaulted as advised: in folios, its mapping is
    /// `MADV_HUGEPAGE` (and `MADV_RANDOM`, no readahead beyond one), and,
    /// where the kernel caches files in large folios, its pages are in
    /// 2 MiB compound pages; in single pages, `MADV_NOHUGEPAGE` and no
    /// compound page.
    #[test]
    fn a_segment_is_prefaulted_in_2_mib_folios_or_single_pages_as_advised() {
        let len: u64 = 4 << 20;
        let (p, f) = preallocated("ih-folio", len);
        let (q, g) = preallocated("ih-pages", len);
        let (m, n) = (map(&f, &p, len).unwrap(), map(&g, &q, len).unwrap());
        MapAddr::of(&m).prefault(true, &mut Pacer::unpaced());
        MapAddr::of(&n).prefault(false, &mut Pacer::unpaced());
        let (a, b) = (m.as_ptr() as usize, n.as_ptr() as usize);
        let (fa, fb) = (vm_flags(a).expect("in /proc/self/smaps"), vm_flags(b).expect("in /proc/self/smaps"));
        assert!(has(&fa, "rr") && has(&fb, "rr"), "MADV_RANDOM: VmFlags {fa:?}, {fb:?}");
        // (a kernel without transparent hugepages refuses both advices)
        if Path::new("/sys/kernel/mm/transparent_hugepage").exists() {
            assert!(has(&fa, "hg"), "MADV_HUGEPAGE: VmFlags {fa:?}");
            assert!(has(&fb, "nh"), "MADV_NOHUGEPAGE: VmFlags {fb:?}");
        }
        let flags = [a, a + PAGE, a + FOLIO_MAX - PAGE, a + FOLIO_MAX, b].map(page_flags);
        match large_folio_checkable(&p) {
            Some(why) => eprintln!("folio sizes not checked: {why}"),
            None if flags.iter().any(Option::is_none) => eprintln!("folio sizes not checked: page frames hidden (no CAP_SYS_ADMIN)"),
            None => {
                let [f0, f1, f511, f512, single] = flags.map(Option::unwrap);
                let folio = [f0, f1, f511, f512];
                let heads = folio.map(|x| x & KPF_COMPOUND_HEAD != 0);
                let tails = folio.map(|x| x & KPF_COMPOUND_TAIL != 0);
                assert_eq!((heads, tails), ([true, false, false, true], [false, true, true, false]), "two 2 MiB folios: kpageflags {folio:x?}");
                assert_eq!(single & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL), 0, "a single page: kpageflags {single:#x}");
            }
        }
        drop((m, n));
        std::fs::remove_file(&p).unwrap();
        std::fs::remove_file(&q).unwrap();
    }

    const KPF_COMPOUND_HEAD: u64 = 1 << 15;
    const KPF_COMPOUND_TAIL: u64 = 1 << 16;

    fn has(flags: &[String], f: &str) -> bool {
        flags.iter().any(|x| x == f)
    }

    /// The VmFlags of the mapping holding `addr` (/proc/self/smaps).
    fn vm_flags(addr: usize) -> Option<Vec<String>> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ').filter(|(r, _)| r.contains('-') && !r.ends_with(':')) {
                let (a, b) = range.split_once('-')?;
                inside = (usize::from_str_radix(a, 16).ok()?..usize::from_str_radix(b, 16).ok()?).contains(&addr);
            } else if let Some(v) = line.strip_prefix("VmFlags:").filter(|_| inside) {
                return Some(v.split_whitespace().map(str::to_string).collect());
            }
        }
        None
    }

    /// Why folio sizes in `p`'s directory cannot be checked here, if they
    /// cannot: /proc/kpageflags needs root, transparent hugepages must not
    /// be "never", and only xfs (Linux 5.18 on) and ext4 (6.16 on) cache
    /// files in large folios.
    fn large_folio_checkable(p: &Path) -> Option<String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Some("not root".into());
        }
        if File::open("/proc/kpageflags").is_err() {
            return Some("/proc/kpageflags cannot be read".into());
        }
        let thp = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
        if thp.is_empty() || thp.contains("[never]") {
            return Some(format!("transparent hugepages: {}", thp.trim()));
        }
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: an all-zero statfs is valid; statfs writes it.
        let mut st: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: `c` is a NUL-terminated path, `st` a writable statfs.
        if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
            return Some(format!("statfs: {}", io::Error::last_os_error()));
        }
        const EXT4: i64 = 0xEF53;
        const XFS: i64 = 0x5846_5342;
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut v = release.split(|c: char| !c.is_ascii_digit()).filter_map(|x| x.parse::<u32>().ok());
        let version = (v.next().unwrap_or(0), v.next().unwrap_or(0));
        match st.f_type as i64 {
            XFS if version >= (5, 18) => None,
            XFS => Some(format!("xfs on Linux {} (large folios from 5.18)", release.trim())),
            EXT4 if version >= (6, 16) => None,
            EXT4 => Some(format!("ext4 on Linux {} (large folios from 6.16)", release.trim())),
            t => Some(format!("file system {t:#x} is neither ext4 nor xfs")),
        }
    }

    /// The kernel's page flags of the page mapped at `addr` (root): None if
    /// it is not present or its frame number is hidden (no CAP_SYS_ADMIN).
    fn page_flags(addr: usize) -> Option<u64> {
        let mut b = [0u8; 8];
        File::open("/proc/self/pagemap").ok()?.read_exact_at(&mut b, (addr / PAGE * 8) as u64).ok()?;
        let e = u64::from_le_bytes(b);
        let pfn = e & ((1 << 55) - 1);
        if e >> 63 == 0 || pfn == 0 {
            return None;
        }
        File::open("/proc/kpageflags").ok()?.read_exact_at(&mut b, pfn * 8).ok()?;
        Some(u64::from_le_bytes(b))
    }
}
