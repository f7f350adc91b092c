//! The published head of a partition: the offset below which every record
//! is whole, shared with readers in other processes.
//!
//! A poller writes records into its mapped segment with plain stores; a
//! reader in another process (`ironhoard tail`, the shipper) reads the same
//! page-cache pages with `pread`. Without an order between the two, a reader
//! can see a slot half written — on any architecture once the compiler
//! reorders, and on every arm64 edge host in hardware — and take a record
//! being written for damage. So the writer publishes, once per batch and
//! after the batch's record bytes, the offset the next record gets, with a
//! Release store into a small shared file `q<queue>/head`; a reader loads it
//! with Acquire and reads only below it. Every slot below the head is whole;
//! the slots at and past it are never read while the writer lives.
//!
//! File layout (4096 bytes): magic `IHHEAD01` (0..8), then the next offset
//! as a native-endian (little-endian on every target we build) u64 at
//! 8..16, stored and loaded atomically. The file is rewritten at every
//! start; it means nothing while no appliance holds the log's lock.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use memmap2::{Mmap, MmapMut, MmapOptions};

/// Name of the head file in a partition directory.
pub const HEAD_FILE: &str = "head";
pub const HEAD_MAGIC: [u8; 8] = *b"IHHEAD01";
const HEAD_LEN: usize = 4096;

fn io_err(path: &Path, what: &str, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// The writer's side: publishes the head.
pub struct HeadWriter {
    map: MmapMut,
}

impl std::fmt::Debug for HeadWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeadWriter({})", self.get())
    }
}

impl HeadWriter {
    /// Creates (or rewrites) `pdir/head` holding `next`. Called under the
    /// log's directory lock.
    pub fn create(pdir: &Path, next: u64) -> io::Result<HeadWriter> {
        let path = pdir.join(HEAD_FILE);
        let f = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| io_err(&path, "opening", e))?;
        f.set_len(HEAD_LEN as u64).map_err(|e| io_err(&path, "sizing", e))?;
        // SAFETY: the file is the appliance's own (the directory lock keeps
        // other writers out) and HEAD_LEN long; nothing truncates it while
        // mapped. Readers in other processes map it read-only and load the
        // offset atomically.
        let mut map = unsafe { MmapOptions::new().len(HEAD_LEN).map_mut(&f) }.map_err(|e| io_err(&path, "mmap", e))?;
        map[0..8].copy_from_slice(&HEAD_MAGIC);
        let h = HeadWriter { map };
        h.publish(next);
        Ok(h)
    }

    fn cell(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned and HEAD_LEN long, so bytes
        // 8..16 are an 8-aligned u64 inside it; it lives as long as `self`.
        // Every access to these bytes, in any process, is atomic.
        unsafe { &*(self.map.as_ptr().add(8) as *const AtomicU64) }
    }

    /// Publishes `next`: every record below it is whole. Release: the
    /// record bytes written before this store are seen by a reader that
    /// loads it with Acquire.
    #[inline]
    pub fn publish(&self, next: u64) {
        self.cell().store(next, Ordering::Release);
    }

    pub fn get(&self) -> u64 {
        self.cell().load(Ordering::Relaxed)
    }
}

/// A reader's view of a partition's head.
pub struct HeadReader {
    map: Mmap,
}

impl HeadReader {
    /// Maps `pdir/head` read-only; `None` if there is none (a log written
    /// by an older appliance) or it is not a head file.
    pub fn open(pdir: &Path) -> Option<HeadReader> {
        let f = File::open(pdir.join(HEAD_FILE)).ok()?;
        if f.metadata().ok()?.len() < HEAD_LEN as u64 {
            return None;
        }
        // SAFETY: a read-only shared mapping of HEAD_LEN bytes of a file at
        // least that long; the writer never shrinks it. Bytes 8..16 are
        // only ever accessed atomically (HeadWriter::publish).
        let map = unsafe { MmapOptions::new().len(HEAD_LEN).map(&f) }.ok()?;
        (map[0..8] == HEAD_MAGIC).then_some(HeadReader { map })
    }

    /// The published head. Acquire: every slot below it reads whole.
    #[inline]
    pub fn load(&self) -> u64 {
        // SAFETY: as in HeadWriter::cell: an 8-aligned u64 inside a live
        // page-aligned mapping, only accessed atomically.
        let cell = unsafe { &*(self.map.as_ptr().add(8) as *const AtomicU64) };
        cell.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_sees_what_the_writer_publishes() {
        let d = std::env::temp_dir().join(format!("ih-head-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let w = HeadWriter::create(&d, 7).unwrap();
        let r = HeadReader::open(&d).unwrap();
        assert_eq!(r.load(), 7);
        w.publish(1234);
        assert_eq!(r.load(), 1234);
        drop(w);
        // rewritten at the next start, keeping what readers map
        let w = HeadWriter::create(&d, 99).unwrap();
        assert_eq!(r.load(), 99);
        drop(w);
        drop(r);
        std::fs::write(d.join(HEAD_FILE), b"not a head").unwrap();
        assert!(HeadReader::open(&d).is_none());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
