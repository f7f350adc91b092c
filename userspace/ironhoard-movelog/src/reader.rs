//! Reading the move log from any offset, and following it as it grows.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::{decode_header, decode_record, parse_segment_name, Record, HEADER_LEN, RECORD_LEN};

/// A segment file of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub first: u64,
    pub path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("move log {dir}: {source}")]
    Io { dir: PathBuf, source: io::Error },
    #[error("move log segment {path}: {why}")]
    Bad { path: PathBuf, why: String },
}

/// The segments in `dir`, by first offset.
pub fn segments(dir: &Path) -> Result<Vec<Segment>, ReadError> {
    let rd = fs::read_dir(dir).map_err(|source| ReadError::Io { dir: dir.into(), source })?;
    let mut v: Vec<Segment> = rd
        .filter_map(|e| {
            let e = e.ok()?;
            Some(Segment { first: parse_segment_name(e.file_name().to_str()?)?, path: e.path() })
        })
        .collect();
    v.sort_by_key(|s| s.first);
    Ok(v)
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_up_to(f: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads records in offset order starting at a given offset. `next`
/// returns `Ok(None)` at the current end of the log; call it again later to
/// follow a live log. A torn record at the end of the newest segment is
/// treated as the end (it is either being written or will be cut away).
pub struct Reader {
    dir: PathBuf,
    cur: Option<(File, Segment)>,
    next_offset: u64,
    /// Torn records skipped at the end of older segments (crash recovery).
    pub torn_skipped: u64,
}

impl Reader {
    pub fn open(dir: &Path, from: u64) -> Reader {
        Reader { dir: dir.into(), cur: None, next_offset: from, torn_skipped: 0 }
    }

    /// The offset of the record `next` will return.
    pub fn position(&self) -> u64 {
        self.next_offset
    }

    fn seek_to(&mut self) -> Result<bool, ReadError> {
        let segs = segments(&self.dir)?;
        // the last segment starting at or before the wanted offset
        let Some(s) = segs.iter().rev().find(|s| s.first <= self.next_offset).or(segs.first()).cloned() else {
            return Ok(false);
        };
        if s.first > self.next_offset {
            // older records were removed (retention): start at what exists
            self.next_offset = s.first;
        }
        let mut f = File::open(&s.path).map_err(|source| ReadError::Io { dir: s.path.clone(), source })?;
        let mut h = [0u8; HEADER_LEN];
        if f.read_exact(&mut h).is_err() {
            return Ok(false); // header not written yet
        }
        let (first, _) = decode_header(&h).map_err(|why| ReadError::Bad { path: s.path.clone(), why })?;
        if first != s.first {
            return Err(ReadError::Bad { path: s.path.clone(), why: format!("header says first offset {first}") });
        }
        let pos = HEADER_LEN as u64 + (self.next_offset - s.first) * RECORD_LEN as u64;
        f.seek(SeekFrom::Start(pos)).map_err(|source| ReadError::Io { dir: s.path.clone(), source })?;
        self.cur = Some((f, s));
        Ok(true)
    }

    /// The next record, or `None` at the (current) end of the log.
    pub fn next(&mut self) -> Result<Option<Record>, ReadError> {
        loop {
            if self.cur.is_none() && !self.seek_to()? {
                return Ok(None);
            }
            let (f, s) = self.cur.as_mut().expect("positioned");
            let mut rec = [0u8; RECORD_LEN];
            let got = read_up_to(f, &mut rec).map_err(|source| ReadError::Io { dir: s.path.clone(), source })?;
            let valid = (got == RECORD_LEN).then(|| decode_record(&rec)).flatten();
            match valid {
                Some(r) if r.offset == self.next_offset => {
                    self.next_offset += 1;
                    return Ok(Some(r));
                }
                Some(r) => {
                    return Err(ReadError::Bad {
                        path: s.path.clone(),
                        why: format!("record at offset {} says {}", self.next_offset, r.offset),
                    })
                }
                None => {
                    // End of this segment (or a torn record). Move on if a
                    // newer segment continues the log; otherwise wait here.
                    let segs = segments(&self.dir)?;
                    let newer = segs.iter().find(|n| n.first > s.first).cloned();
                    if let Some(n) = &newer {
                        if n.first <= self.next_offset {
                            // our position lies in a later segment
                            self.cur = None;
                            continue;
                        }
                        // The writer finishes a segment before it creates
                        // the next: read here once more, in case the rest
                        // of this record (or more records) landed meanwhile.
                        let _ = f.seek(SeekFrom::Current(-(got as i64)));
                        let mut again = [0u8; RECORD_LEN];
                        let g2 = read_up_to(f, &mut again).map_err(|source| ReadError::Io { dir: s.path.clone(), source })?;
                        if g2 == RECORD_LEN {
                            if let Some(r) = decode_record(&again) {
                                if r.offset == self.next_offset {
                                    self.next_offset += 1;
                                    return Ok(Some(r));
                                }
                            }
                        }
                        let _ = f.seek(SeekFrom::Current(-(g2 as i64)));
                    }
                    match newer {
                        Some(n) if n.first >= self.next_offset => {
                            if got > 0 || n.first > self.next_offset {
                                // a torn tail in an older segment, cut by a crash
                                self.torn_skipped += n.first.saturating_sub(self.next_offset).max(1);
                            }
                            self.next_offset = n.first;
                            self.cur = None;
                            continue;
                        }
                        _ => {
                            // rewind to the record start so a later call re-reads it
                            let back = got as i64;
                            let _ = f.seek(SeekFrom::Current(-back));
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Accepted, SyncPolicy, Writer, WriterConfig};

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("ih-movelog-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    fn acc(i: u64) -> Accepted {
        let mut mv = [0u8; 64];
        mv[..8].copy_from_slice(&i.to_be_bytes());
        Accepted { recv_unix_ns: 1000 + i, queue: (i % 3) as u16, mv }
    }

    fn writer(dir: &Path, seg: u64) -> Writer {
        Writer::open(WriterConfig { dir: dir.into(), segment_bytes: seg, sync: SyncPolicy::EveryBatch }).unwrap()
    }

    fn read_all(dir: &Path, from: u64) -> Vec<Record> {
        let mut r = Reader::open(dir, from);
        let mut v = Vec::new();
        while let Some(x) = r.next().unwrap() {
            v.push(x);
        }
        v
    }

    #[test]
    fn write_rotate_read_resume() {
        let d = tmp("rot");
        let mut w = writer(&d, 64 + 96 * 10);
        for i in 0..35 {
            assert_eq!(w.append(&acc(i)), i);
            if i % 7 == 0 {
                w.flush().unwrap();
            }
        }
        w.flush().unwrap();
        assert_eq!(segments(&d).unwrap().len(), 4, "rotated every 10 records");
        let all = read_all(&d, 0);
        assert_eq!(all.len(), 35);
        for (i, r) in all.iter().enumerate() {
            assert_eq!(r.offset, i as u64);
            assert_eq!(r.mv, acc(i as u64).mv);
            assert_eq!(r.queue, (i % 3) as u16);
        }
        assert_eq!(read_all(&d, 23).first().unwrap().offset, 23);
        drop(w);
        // reopen: continues at 35
        let mut w = writer(&d, 64 + 96 * 10);
        assert_eq!(w.next_offset(), 35);
        w.append(&acc(35));
        w.flush().unwrap();
        assert_eq!(read_all(&d, 0).len(), 36);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_tail_is_skipped_by_readers_and_cut_by_the_writer() {
        let d = tmp("torn");
        let mut w = writer(&d, 1 << 20);
        for i in 0..10 {
            w.append(&acc(i));
        }
        w.flush().unwrap();
        let seg = w.segment().to_path_buf();
        drop(w);
        // a crash mid-write: half a record, then a garbage whole record
        let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
        std::io::Write::write_all(&mut f, &[0xAB; 40]).unwrap();
        drop(f);
        assert_eq!(read_all(&d, 0).len(), 10, "partial record ignored");
        let mut f = fs::OpenOptions::new().append(true).open(&seg).unwrap();
        std::io::Write::write_all(&mut f, &[0xCD; 96]).unwrap();
        drop(f);
        assert_eq!(read_all(&d, 0).len(), 10, "a record with a bad CRC is not misread");
        let mut w = writer(&d, 1 << 20);
        assert_eq!(w.next_offset(), 10);
        assert_eq!(w.recovered_torn_bytes, 136);
        w.append(&acc(10));
        w.flush().unwrap();
        let all = read_all(&d, 0);
        assert_eq!(all.len(), 11);
        assert_eq!(all[10].mv, acc(10).mv);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn follow_sees_new_records_and_segments() {
        let d = tmp("follow");
        let mut w = writer(&d, 64 + 96 * 4);
        let mut r = Reader::open(&d, 0);
        assert!(r.next().unwrap().is_none());
        for round in 0..3u64 {
            for i in 0..3 {
                w.append(&acc(round * 3 + i));
            }
            w.flush().unwrap();
            for i in 0..3 {
                assert_eq!(r.next().unwrap().unwrap().offset, round * 3 + i);
            }
            assert!(r.next().unwrap().is_none());
        }
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_segment_with_a_broken_header_is_rewritten_in_place() {
        let d = tmp("hdr");
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join(crate::segment_name(0)), [0x77u8; 64]).unwrap();
        let mut w = writer(&d, 1 << 20);
        w.append(&acc(0));
        w.flush().unwrap();
        drop(w);
        assert_eq!(read_all(&d, 0).len(), 1);
        let mut w = writer(&d, 1 << 20);
        assert_eq!(w.next_offset(), 1, "a reopen keeps it");
        w.append(&acc(1));
        w.flush().unwrap();
        assert_eq!(read_all(&d, 0).len(), 2);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_follower_ahead_of_the_log_finds_its_record_in_a_later_segment() {
        let d = tmp("ahead");
        let mut w = writer(&d, 64 + 96 * 4);
        for i in 0..2 {
            w.append(&acc(i));
        }
        w.flush().unwrap();
        let mut r = Reader::open(&d, 6);
        assert!(r.next().unwrap().is_none());
        for i in 2..10 {
            w.append(&acc(i));
        }
        w.flush().unwrap();
        assert_eq!(r.next().unwrap().unwrap().offset, 6);
        assert_eq!(r.next().unwrap().unwrap().offset, 7);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unwritable_directory_is_an_error_naming_it() {
        let d = tmp("file");
        fs::write(&d, b"not a dir").unwrap();
        let e = Writer::open(WriterConfig { dir: d.join("log"), segment_bytes: 1 << 20, sync: SyncPolicy::None }).err().unwrap();
        assert!(e.to_string().contains(&d.display().to_string()), "{e}");
        fs::remove_file(&d).unwrap();
    }
}
