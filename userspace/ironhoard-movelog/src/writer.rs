//! Appending to the move log: batches, rotation by size, sync policy, and
//! recovery of a torn tail when reopening.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::{decode_header, decode_record, encode_header, encode_record, parse_segment_name, segment_name, unix_ns, Accepted, HEADER_LEN, RECORD_LEN};

/// When the writer calls fsync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// Never (the kernel writes back when it likes): fastest, a power loss
    /// can lose the last seconds.
    None,
    /// At most this long after a write. The fsync runs on a helper thread,
    /// so writing goes on meanwhile.
    Interval(Duration),
    /// After every batch written.
    EveryBatch,
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub dir: PathBuf,
    /// Rotate to a new segment when the current one would exceed this.
    pub segment_bytes: u64,
    pub sync: SyncPolicy,
}

/// The log writer. `append` encodes into a buffer; `flush` writes it.
pub struct Writer {
    cfg: WriterConfig,
    file: File,
    path: PathBuf,
    /// Length of the current segment that is known written.
    seg_len: u64,
    next_offset: u64,
    buf: Vec<u8>,
    last_sync: Instant,
    /// Written since the last synchronous fsync.
    unsynced: bool,
    /// Written since the last fsync handed to the syncer thread.
    async_dirty: bool,
    /// Synchronous fsyncs made here (the syncer counts its own).
    local_syncs: u64,
    /// fsync calls made.
    pub syncs: u64,
    /// Segments created by this writer.
    pub rotations: u64,
    /// Bytes of a torn tail cut away when the log was opened.
    pub recovered_torn_bytes: u64,
    /// Interval policy: the helper thread that fsyncs behind the writer.
    syncer: Option<Syncer>,
}

/// fsyncs a segment on its own thread (interval policy), so a slow device
/// flush never stalls the dispatcher. At most one request is outstanding.
struct Syncer {
    tx: std::sync::mpsc::SyncSender<File>,
    done: std::sync::Arc<std::sync::atomic::AtomicU64>,
    failed: std::sync::Arc<std::sync::Mutex<Option<String>>>,
}

impl Syncer {
    fn start() -> io::Result<Syncer> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<File>(1);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let failed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let (d, f) = (std::sync::Arc::clone(&done), std::sync::Arc::clone(&failed));
        std::thread::Builder::new().name("ih-logsync".into()).spawn(move || {
            for file in rx {
                match file.sync_data() {
                    Ok(()) => {
                        d.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => *f.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string()),
                }
            }
        })?;
        Ok(Syncer { tx, done, failed })
    }
}

fn err(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

impl Writer {
    /// Opens the log in `cfg.dir` (creating it), recovering from a crash:
    /// the last segment is scanned, a torn or corrupt tail is truncated, and
    /// appending continues at the next offset.
    pub fn open(cfg: WriterConfig) -> io::Result<Writer> {
        fs::create_dir_all(&cfg.dir).map_err(|e| err(&cfg.dir, "creating log directory", e))?;
        let mut segs: Vec<(u64, PathBuf)> = fs::read_dir(&cfg.dir)
            .map_err(|e| err(&cfg.dir, "listing", e))?
            .filter_map(|e| {
                let e = e.ok()?;
                Some((parse_segment_name(e.file_name().to_str()?)?, e.path()))
            })
            .collect();
        segs.sort();
        let mut recovered = 0;
        let (file, path, seg_len, next_offset) = match segs.last() {
            None => {
                let (f, p) = create_segment(&cfg.dir, 0)?;
                (f, p, HEADER_LEN as u64, 0)
            }
            Some((first, p)) => {
                let mut f = OpenOptions::new().read(true).write(true).open(p).map_err(|e| err(p, "opening", e))?;
                let mut h = [0u8; HEADER_LEN];
                let len = f.metadata().map_err(|e| err(p, "stat", e))?.len();
                if len < HEADER_LEN as u64 || f.read_exact(&mut h).is_err() || decode_header(&h).map(|x| x.0) != Ok(*first) {
                    // a segment whose header never made it: rewrite it
                    f.set_len(0).map_err(|e| err(p, "truncating", e))?;
                    f.seek(SeekFrom::Start(0)).map_err(|e| err(p, "seek", e))?;
                    f.write_all(&encode_header(*first, unix_ns())).map_err(|e| err(p, "writing header", e))?;
                    f.sync_all().map_err(|e| err(p, "fsync", e))?;
                    recovered += len;
                    (f, p.clone(), HEADER_LEN as u64, *first)
                } else {
                    // count whole, valid records; cut what follows
                    let mut good = 0u64;
                    let mut rec = [0u8; RECORD_LEN];
                    while f.read_exact(&mut rec).is_ok() {
                        match decode_record(&rec) {
                            Some(r) if r.offset == first + good => good += 1,
                            _ => break,
                        }
                    }
                    let keep = HEADER_LEN as u64 + good * RECORD_LEN as u64;
                    if keep < len {
                        log::warn!(
                            "move log {}: cut a torn tail of {} bytes after record {}",
                            p.display(),
                            len - keep,
                            first + good
                        );
                        recovered += len - keep;
                        f.set_len(keep).map_err(|e| err(p, "truncating torn tail", e))?;
                        f.sync_all().map_err(|e| err(p, "fsync", e))?;
                    }
                    f.seek(SeekFrom::Start(keep)).map_err(|e| err(p, "seek", e))?;
                    (f, p.clone(), keep, first + good)
                }
            }
        };
        let cfg_sync = cfg.sync;
        Ok(Writer {
            cfg,
            file,
            path,
            seg_len,
            next_offset,
            buf: Vec::with_capacity(4096 * RECORD_LEN),
            last_sync: Instant::now(),
            unsynced: false,
            async_dirty: false,
            local_syncs: 0,
            syncs: 0,
            rotations: 0,
            recovered_torn_bytes: recovered,
            syncer: match cfg_sync {
                SyncPolicy::Interval(_) => Some(Syncer::start()?),
                _ => None,
            },
        })
    }

    /// Offset the next appended record gets.
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    /// Records appended but not yet written.
    pub fn pending(&self) -> usize {
        self.buf.len() / RECORD_LEN
    }

    /// The segment being written.
    pub fn segment(&self) -> &Path {
        &self.path
    }

    /// Encodes a record into the write buffer; returns its offset.
    pub fn append(&mut self, a: &Accepted) -> u64 {
        let off = self.next_offset + self.pending() as u64;
        let mut rec = [0u8; RECORD_LEN];
        encode_record(off, a, &mut rec);
        self.buf.extend_from_slice(&rec);
        off
    }

    /// Writes the buffer (rotating as needed) and syncs per policy. On an
    /// error nothing is lost: the unwritten records stay buffered, any
    /// partial write is cut back, and the next call retries.
    pub fn flush(&mut self) -> io::Result<()> {
        let mut done = 0usize;
        let res = (|| -> io::Result<()> {
            while done < self.buf.len() {
                let room_recs = (self.cfg.segment_bytes.saturating_sub(self.seg_len) / RECORD_LEN as u64) as usize;
                if room_recs == 0 {
                    self.rotate()?;
                    continue;
                }
                let n = ((self.buf.len() - done) / RECORD_LEN).min(room_recs) * RECORD_LEN;
                if let Err(e) = self.file.write_all(&self.buf[done..done + n]) {
                    // cut any partial write so the segment ends on a record
                    let _ = self.file.set_len(self.seg_len);
                    let _ = self.file.seek(SeekFrom::Start(self.seg_len));
                    return Err(err(&self.path, "writing", e));
                }
                self.seg_len += n as u64;
                self.next_offset += (n / RECORD_LEN) as u64;
                done += n;
                self.unsynced = true;
                self.async_dirty = true;
            }
            Ok(())
        })();
        self.buf.drain(..done);
        res?;
        match self.cfg.sync {
            SyncPolicy::EveryBatch => self.sync()?,
            SyncPolicy::Interval(d) if self.async_dirty && self.last_sync.elapsed() >= d => self.sync_behind()?,
            _ => {}
        }
        Ok(())
    }

    /// Interval policy: hands the segment to the syncer thread (if it is
    /// not still busy with the previous one) and goes on writing.
    fn sync_behind(&mut self) -> io::Result<()> {
        let Some(s) = &self.syncer else { return self.sync() };
        if let Some(e) = s.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
            return Err(io::Error::other(format!("fsync {}: {e}", self.path.display())));
        }
        let f = self.file.try_clone().map_err(|e| err(&self.path, "dup for fsync", e))?;
        if s.tx.try_send(f).is_ok() {
            // `unsynced` stays set: only a synchronous sync (rotation,
            // shutdown) clears it, so the last records are always flushed.
            self.async_dirty = false;
        }
        self.last_sync = Instant::now();
        self.syncs = self.local_syncs + s.done.load(std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// fsync the current segment now if anything was written since the
    /// last (also used at shutdown and rotation, whatever the policy).
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(s) = &self.syncer {
            if let Some(e) = s.failed.lock().unwrap_or_else(|p| p.into_inner()).take() {
                return Err(io::Error::other(format!("fsync {}: {e}", self.path.display())));
            }
        }
        if self.unsynced {
            self.file.sync_data().map_err(|e| err(&self.path, "fsync", e))?;
            self.local_syncs += 1;
            self.unsynced = false;
            self.async_dirty = false;
        }
        self.syncs = self.local_syncs + self.syncer.as_ref().map_or(0, |s| s.done.load(std::sync::atomic::Ordering::Relaxed));
        self.last_sync = Instant::now();
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.cfg.sync != SyncPolicy::None {
            self.sync()?;
        }
        let (f, p) = create_segment(&self.cfg.dir, self.next_offset)?;
        self.file = f;
        self.path = p;
        self.seg_len = HEADER_LEN as u64;
        self.rotations += 1;
        Ok(())
    }
}

fn create_segment(dir: &Path, first: u64) -> io::Result<(File, PathBuf)> {
    let p = dir.join(segment_name(first));
    let mut f = OpenOptions::new().create(true).truncate(true).write(true).read(true).open(&p).map_err(|e| err(&p, "creating", e))?;
    f.write_all(&encode_header(first, unix_ns())).map_err(|e| err(&p, "writing header", e))?;
    Ok((f, p))
}
