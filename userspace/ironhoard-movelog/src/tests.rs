//! Writer, keeper, recovery and readers together, on real files.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::*;

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("ih-movelog-{tag}-{}-{}", std::process::id(), unix_ns()));
        let _ = fs::remove_dir_all(&p);
        Dir(p)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Room for 10 records per segment.
const SEG10: u64 = (HEADER_LEN + 10 * RECORD_LEN) as u64;

fn acc(q: u16, i: u64) -> Accepted {
    let mut mv = [0u8; 64];
    mv[..8].copy_from_slice(&i.to_be_bytes());
    mv[8] = q as u8;
    Accepted { recv_unix_ns: 1000 + i * 10 + q as u64, queue: q, mv }
}

struct Open {
    parts: Vec<Partition>,
    shared: Arc<LogShared>,
    keeper: Option<JoinHandle<()>>,
    rec: Vec<(u16, Recovery)>,
    visited: Vec<Record>,
}

fn open(dir: &Path, queues: &[u16], seg: u64, run_keeper: bool) -> std::io::Result<Open> {
    let mut visited = Vec::new();
    let cfg = LogConfig { dir: dir.into(), segment_bytes: seg, sync: SyncPolicy::EveryBatch };
    let (parts, keeper, shared, rec) = open_log(&cfg, queues, &mut |r| visited.push(*r))?;
    let keeper = if run_keeper { Some(std::thread::spawn(move || keeper.run())) } else { std::mem::forget(keeper); None };
    Ok(Open { parts, shared, keeper, rec, visited })
}

impl Open {
    fn close(mut self) {
        self.parts.clear();
        self.shared.request_stop();
        if let Some(k) = self.keeper.take() {
            k.join().unwrap();
        }
    }
    /// Appends, waiting for the keeper when no segment is ready.
    fn append(&mut self, i: usize, a: &Accepted) {
        let t0 = std::time::Instant::now();
        while !self.parts[i].append(a) {
            assert!(t0.elapsed().as_secs() < 5, "no segment prepared: {:?}", self.shared.last_error.lock().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.parts[i].commit();
    }
}

fn read_partition(dir: &Path, q: u16, from: u64) -> (Vec<Record>, Vec<String>) {
    let mut r = PartitionReader::open(dir, q, from);
    let (mut v, mut errs) = (Vec::new(), Vec::new());
    loop {
        match r.next() {
            Ok(Some(x)) => v.push(x),
            Ok(None) => break,
            Err(e) if !e.is_fatal() => errs.push(e.to_string()),
            Err(e) => panic!("{e}"),
        }
        assert!(errs.len() < 100, "{errs:?}");
    }
    (v, errs)
}

fn seg_path(dir: &Path, q: u16, first: u64) -> PathBuf {
    dir.join(partition_name(q)).join(segment_name(first))
}

#[test]
fn partitions_rotate_resume_and_merge_by_time() {
    let d = Dir::new("rot");
    let mut o = open(&d.0, &[0, 1], SEG10, true).unwrap();
    for i in 0..35 {
        o.append(0, &acc(0, i));
        if i < 12 {
            o.append(1, &acc(1, i));
        }
    }
    assert_eq!(o.shared.records(), 47);
    o.close();
    let (r0, e0) = read_partition(&d.0, 0, 0);
    assert!(e0.is_empty(), "{e0:?}");
    assert_eq!(r0.len(), 35);
    for (i, r) in r0.iter().enumerate() {
        assert_eq!((r.offset, r.mv, r.queue), (i as u64, acc(0, i as u64).mv, 0));
    }
    assert_eq!(read_partition(&d.0, 0, 23).0.first().unwrap().offset, 23, "resume at an offset");
    // merged: by server time across partitions
    let mut m = LogReader::open(&d.0, &[], None).unwrap();
    let mut all = Vec::new();
    while let Some(r) = m.next().unwrap() {
        all.push(r);
    }
    assert_eq!(all.len(), 47);
    assert!(all.windows(2).all(|w| (w[0].recv_unix_ns, w[0].queue) <= (w[1].recv_unix_ns, w[1].queue)));
    // reopen: each partition continues its own offsets, in the same segment
    let mut o = open(&d.0, &[0, 1], SEG10, true).unwrap();
    assert_eq!(o.visited.len(), 47, "recovery visits every record");
    assert_eq!((o.parts[0].next_offset(), o.parts[1].next_offset()), (35, 12));
    assert!(o.rec.iter().all(|(_, r)| r.damage.is_empty() && r.torn_cut.is_none()));
    o.append(0, &acc(0, 35));
    o.close();
    assert_eq!(read_partition(&d.0, 0, 0).0.len(), 36);
    // only whole segments and the resumed one: no empty leftovers
    let n = fs::read_dir(d.0.join("q0")).unwrap().filter(|e| e.as_ref().unwrap().file_name() != crate::head::HEAD_FILE).count();
    assert!((4..=6).contains(&n), "{n} files");
}

#[test]
fn a_second_writer_is_refused() {
    let d = Dir::new("lock");
    let o = open(&d.0, &[0], SEG10, false).unwrap();
    let e = open(&d.0, &[0], SEG10, false).err().unwrap();
    assert!(e.to_string().contains("locked by another running appliance"), "{e}");
    assert!(writer_alive(&d.0));
    drop(o);
}

#[test]
fn no_prepared_segment_refuses_until_one_is() {
    let d = Dir::new("norot");
    let mut o = open(&d.0, &[0], SEG10, false).unwrap(); // keeper not running
    // at open: only the segment being written (the running keeper prepares
    // the spares: a restart serves sooner)
    let mut n = 0;
    while o.parts[0].append(&acc(0, n)) {
        n += 1;
    }
    assert_eq!(n, 10, "one segment of 10");
    assert_eq!(o.shared.partitions[0].refused.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(read_partition(&d.0, 0, 0).0.len(), 0, "readers see nothing the writer has not published");
    o.parts[0].commit();
    assert_eq!(read_partition(&d.0, 0, 0).0.len(), 10, "nothing written for the refused one");
}

#[test]
fn torn_tail_is_reported_by_readers_and_cut_at_start() {
    let d = Dir::new("torn");
    let mut o = open(&d.0, &[0], SEG10, true).unwrap();
    for i in 0..14 {
        o.append(0, &acc(0, i));
    }
    o.close();
    // a crash mid-copy: part of record 14 in its slot
    let seg = seg_path(&d.0, 0, 10);
    let f = fs::OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xAB; 40], (HEADER_LEN + 4 * RECORD_LEN) as u64).unwrap();
    let (v, errs) = read_partition(&d.0, 0, 0);
    assert_eq!(v.len(), 14);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains("torn record") && errs[0].contains(&seg.display().to_string()), "{errs:?}");
    let mut o = open(&d.0, &[0], SEG10, true).unwrap();
    let r = &o.rec[0].1;
    assert_eq!(r.torn_cut, Some((seg.clone(), (HEADER_LEN + 4 * RECORD_LEN) as u64)));
    assert!(r.damage.is_empty());
    assert_eq!(o.parts[0].next_offset(), 14);
    o.append(0, &acc(0, 14));
    o.close();
    let (v, errs) = read_partition(&d.0, 0, 0);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(v.len(), 15);
    assert_eq!(v[14].mv, acc(0, 14).mv);
}

/// Writes 35 records in 4 segments (10, 10, 10, 5), closes.
fn four_segments(d: &Path) {
    let mut o = open(d, &[0], SEG10, true).unwrap();
    for i in 0..35 {
        o.append(0, &acc(0, i));
    }
    o.close();
}

fn set_aside_files(d: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(d.join("q0")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().contains(DAMAGED_INFIX)).collect();
    v.sort();
    v
}

#[test]
fn a_bad_header_sets_the_segment_aside_and_loses_nothing_readable() {
    let d = Dir::new("hdr");
    four_segments(&d.0);
    let mid = seg_path(&d.0, 0, 10);
    let f = fs::OpenOptions::new().write(true).open(&mid).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"XX", 0).unwrap();
    let mut o = open(&d.0, &[0], SEG10, true).unwrap();
    let r = &o.rec[0].1;
    assert_eq!(r.damage.len(), 1, "{:?}", r.damage);
    assert!(r.damage[0].to_string().contains("bad header") && r.damage[0].path == mid, "{}", r.damage[0]);
    assert_eq!(r.gaps, vec![(10, 20)]);
    assert_eq!(o.visited.len(), 35, "records of the bad-header segment are visited too (they were accepted)");
    assert_eq!(o.parts[0].next_offset(), 35, "appending continues after the highest offset");
    o.append(0, &acc(0, 35));
    o.close();
    let aside = set_aside_files(&d.0);
    assert_eq!(aside.len(), 1);
    assert!(fs::metadata(&aside[0]).unwrap().len() == SEG10, "set aside whole, never deleted");
    let (v, errs) = read_partition(&d.0, 0, 0);
    assert_eq!(v.len(), 26);
    assert_eq!(errs.len(), 1, "the gap is reported: {errs:?}");
    assert!(errs[0].contains("offsets 10..20"), "{errs:?}");
}

#[test]
fn a_flipped_byte_mid_segment_is_reported_and_kept_in_place() {
    let d = Dir::new("flip");
    four_segments(&d.0);
    let mid = seg_path(&d.0, 0, 10);
    let byte = (HEADER_LEN + 3 * RECORD_LEN + 40) as u64;
    let f = fs::OpenOptions::new().write(true).open(&mid).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xFF], byte).unwrap();
    drop(f);
    // a reader reports it, steps over, and reads everything else
    let (v, errs) = read_partition(&d.0, 0, 0);
    assert_eq!(v.len(), 34);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].contains(&mid.display().to_string()) && errs[0].contains("offset 13"), "{errs:?}");
    let o = open(&d.0, &[0], SEG10, true).unwrap();
    let r = &o.rec[0].1;
    assert_eq!(r.damage.len(), 1);
    assert_eq!(r.damage[0].byte, (HEADER_LEN + 3 * RECORD_LEN) as u64);
    assert!(r.damage[0].why.contains("CRC") && r.damage[0].set_aside.is_none(), "{}", r.damage[0]);
    assert!(r.gaps.is_empty(), "{:?}", r.gaps);
    assert_eq!(o.visited.len(), 34, "the 9 good records of the damaged segment are visited too");
    assert_eq!(o.parts[0].next_offset(), 35);
    o.close();
    assert_eq!(set_aside_files(&d.0).len(), 0, "an older segment with one bad slot stays where readers find its 9 good records");
    let (v, errs) = read_partition(&d.0, 0, 0);
    assert_eq!((v.len(), errs.len()), (34, 1), "{errs:?}");
}

#[test]
fn a_truncated_middle_segment_and_a_stray_file() {
    let d = Dir::new("trunc");
    four_segments(&d.0);
    let mid = seg_path(&d.0, 0, 20);
    let f = fs::OpenOptions::new().write(true).open(&mid).unwrap();
    f.set_len((HEADER_LEN + 4 * RECORD_LEN + 10) as u64).unwrap();
    drop(f);
    fs::write(d.0.join("q0").join("notes.txt"), b"operator was here").unwrap();
    let (v, errs) = read_partition(&d.0, 0, 0);
    assert_eq!(v.len(), 29, "4 of the truncated segment's records still read");
    assert_eq!(errs.len(), 1, "{errs:?}");
    let o = open(&d.0, &[0], SEG10, true).unwrap();
    let r = &o.rec[0].1;
    assert_eq!(r.damage.len(), 1, "{:?}", r.damage);
    assert!(r.damage[0].why.contains("bytes"), "{}", r.damage[0]);
    assert_eq!(r.stray, vec![d.0.join("q0").join("notes.txt")]);
    assert_eq!(o.visited.len(), 29);
    assert_eq!(o.parts[0].next_offset(), 35);
    o.close();
    assert!(d.0.join("q0").join("notes.txt").exists(), "stray file left alone");
}

#[test]
fn damage_in_the_newest_segment_continues_after_the_highest_offset() {
    let d = Dir::new("newest");
    four_segments(&d.0);
    // slot 1 of the last segment (offset 31) flipped: good records follow
    let last = seg_path(&d.0, 0, 30);
    let f = fs::OpenOptions::new().write(true).open(&last).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0x01], (HEADER_LEN + RECORD_LEN + 30) as u64).unwrap();
    let mut o = open(&d.0, &[0], SEG10, true).unwrap();
    assert_eq!(o.rec[0].1.damage.len(), 1);
    assert!(o.rec[0].1.torn_cut.is_none(), "good records after it: damage, not a torn tail");
    assert_eq!(o.parts[0].next_offset(), 35, "offsets 32..35 are never reused");
    o.append(0, &acc(0, 35));
    o.close();
    let (v, _) = read_partition(&d.0, 0, 0);
    assert_eq!(v.last().unwrap().offset, 35);
}

#[test]
fn partitions_no_queue_writes_are_recovered_and_visited() {
    let d = Dir::new("oldq");
    let mut o = open(&d.0, &[0, 1], SEG10, true).unwrap();
    for i in 0..5 {
        o.append(1, &acc(1, i));
    }
    o.close();
    let o = open(&d.0, &[0], SEG10, true).unwrap();
    assert_eq!(o.visited.len(), 5);
    assert_eq!(o.parts.len(), 1);
    o.close();
}

// Regressions found in review: each failed before its fix.

#[test]
fn a_segment_set_aside_earlier_still_counts_at_the_next_start() {
    let d = Dir::new("reuse");
    four_segments(&d.0);
    let f = fs::OpenOptions::new().write(true).open(seg_path(&d.0, 0, 30)).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[1], (HEADER_LEN + RECORD_LEN + 30) as u64).unwrap();
    drop(f);
    let o = open(&d.0, &[0], SEG10, true).unwrap();
    assert_eq!((o.parts[0].next_offset(), o.visited.len()), (35, 34));
    o.close(); // restart again before any move is accepted
    let mut o = open(&d.0, &[0], SEG10, true).unwrap();
    assert_eq!(o.parts[0].next_offset(), 35, "offsets of the set-aside segment are never reused");
    assert_eq!(o.visited.len(), 34, "its records still rebuild windows");
    assert_eq!(o.rec[0].1.set_aside_earlier.len(), 1);
    o.append(0, &acc(0, 35));
    o.close();
}

#[test]
fn with_sync_none_a_clean_stop_syncs_every_segment_written() {
    let d = Dir::new("none");
    let cfg = LogConfig { dir: d.0.clone(), segment_bytes: SEG10, sync: SyncPolicy::None };
    let (mut parts, keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
    let k = std::thread::spawn(move || keeper.run());
    let t0 = std::time::Instant::now();
    for i in 0..35 {
        while !parts[0].append(&acc(0, i)) {
            assert!(t0.elapsed().as_secs() < 10, "no segment prepared: {:?}", shared.last_error.lock().unwrap());
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    let sh = Arc::clone(&shared.partitions[0]);
    drop(parts);
    shared.request_stop();
    k.join().unwrap();
    assert!(sh.syncs.load(std::sync::atomic::Ordering::Relaxed) >= 4, "the three full segments and the last one were fsynced");
}

#[test]
fn a_reader_reports_a_bad_newest_header_once() {
    let d = Dir::new("loop");
    let mut o = open(&d.0, &[0], SEG10, true).unwrap();
    for i in 0..15 {
        o.append(0, &acc(0, i));
    }
    o.close();
    for first in [20u64, 30] {
        let _ = fs::remove_file(seg_path(&d.0, 0, first)); // the prepared, empty ones
    }
    let f = fs::OpenOptions::new().write(true).open(seg_path(&d.0, 0, 10)).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"X", 0).unwrap();
    drop(f);
    let (v, errs) = read_partition(&d.0, 0, 0);
    assert_eq!(v.len(), 10);
    assert_eq!(errs.len(), 1, "{errs:?}");
}

fn open_segment_fds(dir: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|p| p.starts_with(dir))
        .count()
}

#[test]
fn a_poller_outrunning_the_keeper_leaks_nothing_and_is_never_unmapped_under_it() {
    let d = Dir::new("ovf");
    let cfg = LogConfig { dir: d.0.clone(), segment_bytes: 65536, sync: SyncPolicy::Interval(std::time::Duration::from_millis(1)) };
    let (mut parts, keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
    let k = std::thread::spawn(move || keeper.run());
    let (mut ok, mut busy) = (0u64, 0u64);
    while ok < 200_000 {
        if parts[0].append(&acc(0, ok)) {
            ok += 1;
        } else {
            busy += 1;
        }
    }
    let sh = Arc::clone(&shared.partitions[0]);
    drop(parts);
    shared.request_stop();
    k.join().unwrap();
    eprintln!("200000 appended, {busy} refused, {} rotations", sh.rotations.load(std::sync::atomic::Ordering::Relaxed));
    drop(shared);
    assert_eq!(open_segment_fds(&d.0), 0, "every segment file closed");
    let (v, errs) = read_partition(&d.0, 0, 0);
    assert!(errs.is_empty(), "{errs:?}");
    assert_eq!(v.len(), 200_000);
}

#[test]
fn a_half_prepared_segment_is_removed_not_reported_as_damage() {
    let d = Dir::new("half");
    let mut o = open(&d.0, &[0], SEG10, true).unwrap();
    for i in 0..5 {
        o.append(0, &acc(0, i));
    }
    o.close();
    // a crash between creating and renaming a segment
    let tmp = d.0.join("q0").join(format!("{}{}", segment_name(30), crate::recover::TMP_SUFFIX));
    fs::File::create(&tmp).unwrap().set_len(SEG10).unwrap();
    let o = open(&d.0, &[0], SEG10, true).unwrap();
    let r = &o.rec[0].1;
    assert!(r.damage.is_empty(), "{:?}", r.damage);
    assert!(r.removed_empty.contains(&tmp));
    assert!(!tmp.exists());
    o.close();
}

#[test]
fn partition_end_finds_the_last_record_across_prepared_segments() {
    let d = Dir::new("end");
    assert_eq!(reader::partition_end(&d.0, 0).unwrap(), 0, "no log yet");
    let mut o = open(&d.0, &[0, 1], SEG10, true).unwrap();
    assert_eq!(reader::partition_end(&d.0, 0).unwrap(), 0, "prepared segments only");
    for n in 1..=23u64 {
        o.append(0, &acc(0, n - 1));
        // every count, across segment boundaries, with empty prepared
        // segments after the current one
        assert_eq!(reader::partition_end(&d.0, 0).unwrap(), n);
    }
    assert_eq!(reader::partition_end(&d.0, 1).unwrap(), 0);
    assert_eq!(reader::partition_end(&d.0, 7).unwrap(), 0, "a partition that does not exist");
    o.close();
    // retention removed the oldest segments: the end stays
    fs::remove_file(seg_path(&d.0, 0, 0)).unwrap();
    assert_eq!(reader::partition_end(&d.0, 0).unwrap(), 23);
}

#[test]
fn a_slot_that_looks_bad_past_the_published_head_is_waited_for_not_skipped() {
    // A record whose bytes are not all visible yet, with later records
    // already visible (compiler reordering, or any arm64 host): the writer
    // has not published any of them, so a reader waits; nothing is damage.
    let d = Dir::new("head");
    let mut o = open(&d.0, &[0], SEG10 * 4, false).unwrap();
    for i in 0..5 {
        o.parts[0].append(&acc(0, i));
    }
    o.parts[0].commit();
    for i in 5..8 {
        o.parts[0].append(&acc(0, i));
    }
    let seg = seg_path(&d.0, 0, 0);
    let slot5 = (HEADER_LEN + 5 * RECORD_LEN) as u64;
    let f = fs::OpenOptions::new().read(true).write(true).open(&seg).unwrap();
    let mut whole = [0u8; RECORD_LEN];
    std::os::unix::fs::FileExt::read_exact_at(&f, &mut whole, slot5).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0u8; 24], slot5).unwrap();
    assert_eq!(crate::decode_slot(&{ let mut b = [0u8; RECORD_LEN]; std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, slot5).unwrap(); b }), Slot::Bad);
    let mut r = PartitionReader::open(&d.0, 0, 0);
    for i in 0..5 {
        assert_eq!(r.next().unwrap().unwrap().offset, i);
    }
    for _ in 0..3 {
        match r.next() {
            Ok(None) => {}
            other => panic!("a record being written was judged: {other:?}"),
        }
    }
    assert_eq!(r.position(), 5, "nothing skipped");
    // its bytes land, the batch is committed: read in order
    std::os::unix::fs::FileExt::write_all_at(&f, &whole, slot5).unwrap();
    o.parts[0].commit();
    for i in 5..8 {
        assert_eq!(r.next().unwrap().unwrap().offset, i);
    }
    assert!(matches!(r.next(), Ok(None)));
    // below the head, a bad slot is damage (re-read once), reported and stepped over
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xEE], slot5 + 30).unwrap();
    let (v, errs) = read_partition(&d.0, 0, 0);
    assert_eq!(v.len(), 7);
    assert!(errs.len() == 1 && errs[0].contains("offset 5"), "{errs:?}");
}

#[test]
fn interval_sync_marks_synced_exactly_what_it_synced_and_reaches_a_quiet_partitions_last_batch() {
    use std::sync::atomic::Ordering::Acquire;
    let d = Dir::new("interval");
    let cfg = LogConfig { dir: d.0.clone(), segment_bytes: SEG10 * 8, sync: SyncPolicy::Interval(std::time::Duration::from_millis(2)) };
    let (mut parts, keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
    let k = std::thread::spawn(move || keeper.run());
    let sh = Arc::clone(&shared.partitions[0]);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut n = 0u64;
    for round in 0..60 {
        // a burst of batches racing the keeper, then quiet
        for _ in 0..(x % 40) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for _ in 0..(1 + x % 5) {
                let t0 = std::time::Instant::now();
                while !parts[0].append(&acc(0, n)) {
                    assert!(t0.elapsed().as_secs() < 5);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                n += 1;
            }
            parts[0].commit();
            let synced = sh.synced_offset.load(Acquire);
            assert!(synced <= n, "synced {synced} beyond what was written ({n})");
        }
        let t0 = std::time::Instant::now();
        while sh.synced_offset.load(Acquire) != n {
            assert!(t0.elapsed() < std::time::Duration::from_millis(500), "round {round}: the quiet partition's last batch is not synced: synced {}, written {n}", sh.synced_offset.load(Acquire));
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    parts.clear();
    shared.request_stop();
    k.join().unwrap();
}

#[test]
fn the_batch_policy_syncs_every_batch_before_it_returns() {
    use std::sync::atomic::Ordering::Acquire;
    let d = Dir::new("batch");
    let mut o = open(&d.0, &[0], SEG10, true).unwrap();
    let sh = Arc::clone(&o.shared.partitions[0]);
    let mut n = 0;
    for b in 1..=25u64 {
        for _ in 0..(b % 4 + 1) {
            let t0 = std::time::Instant::now();
            while !o.parts[0].append(&acc(0, n)) {
                assert!(t0.elapsed().as_secs() < 5);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            n += 1;
        }
        o.parts[0].commit();
        // on return (before the acks): this batch's records are synced
        assert_eq!(sh.synced_offset.load(Acquire), n, "batch {b}");
        assert_eq!((sh.commits.load(Acquire), sh.batch_syncs.load(Acquire)), (b, b));
        o.parts[0].commit(); // nothing new: no sync, no count
        assert_eq!(sh.commits.load(Acquire), b);
    }
    o.close();
}

/// A one-partition log of `segment_bytes` segments whose keeper, driven
/// by the test (`sync_due`), syncs at every look; and its partition's
/// shared state.
fn interval_sync_log(d: &Dir, segment_bytes: u64) -> (Vec<Partition>, Keeper, Arc<LogShared>, Arc<PartitionShared>) {
    let cfg = LogConfig { dir: d.0.clone(), segment_bytes, sync: SyncPolicy::Interval(std::time::Duration::ZERO) };
    let (parts, keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
    let sh = Arc::clone(&shared.partitions[0]);
    (parts, keeper, shared, sh)
}

#[test]
fn a_fast_writers_interval_sync_ends_on_a_2_mib_boundary_and_a_quiet_one_syncs_all() {
    // The writer has passed a 2 MiB boundary of its segment since the last
    // sync: the sync stops there (never inside a large folio the writer is
    // still in), then the quiet partition's rest is synced. Behind no new
    // 2 MiB boundary, the last whole page is the limit.
    use std::sync::atomic::Ordering::Acquire;
    let d = Dir::new("folio");
    let (mut parts, mut keeper, shared, sh) = interval_sync_log(&d, 8 << 20);
    let at = |bytes: usize| ((bytes - HEADER_LEN) / RECORD_LEN) as u64; // records wholly below
    let mut n = 0u64;
    let mut append_to = |parts: &mut Vec<Partition>, records: u64| {
        while n < records {
            assert!(parts[0].append(&acc(0, n)));
            n += 1;
        }
        parts[0].commit();
    };
    // past the 2 MiB boundary by 100 pages
    let end = at((2 << 20) + 100 * 4096) + 7;
    append_to(&mut parts, end);
    keeper.sync_due(std::time::Duration::ZERO);
    assert_eq!(sh.synced_offset.load(Acquire), at(2 << 20), "synced up to the 2 MiB boundary");
    // 10 pages more, no new 2 MiB boundary: the last whole page
    let end2 = at((2 << 20) + 110 * 4096) + 3;
    append_to(&mut parts, end2);
    keeper.sync_due(std::time::Duration::ZERO);
    assert_eq!(sh.synced_offset.load(Acquire), at((2 << 20) + 110 * 4096), "synced up to the last whole page");
    // quiet: the rest
    keeper.sync_due(std::time::Duration::ZERO);
    assert_eq!(sh.synced_offset.load(Acquire), end2, "the quiet partition's last records");
    parts.clear();
    shared.request_stop();
    keeper.run();
}

/// Whether the page at `addr` has a page table entry in this process
/// (/proc/self/pagemap, bit 63; readable without privileges).
fn page_mapped(addr: usize) -> bool {
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 8];
    fs::File::open("/proc/self/pagemap").unwrap().read_exact_at(&mut b, (addr / 4096 * 8) as u64).unwrap();
    u64::from_le_bytes(b) >> 63 == 1
}

#[test]
fn an_interval_sync_unmaps_the_pages_the_writer_left_behind_before_writing_them_back() {
    // Writing back a page that is still mapped write-protects its page
    // table entry: a TLB shootdown interrupting the poller's core for each
    // page. The keeper drops the writer's entries over the whole pages it
    // syncs behind the writer first; the page the writer is in, and those
    // prepared ahead of it, stay mapped (no fault for the writer), and the
    // records stay whole in the file.
    use std::sync::atomic::Ordering::Acquire;
    let d = Dir::new("unmapped");
    let (mut parts, mut keeper, shared, sh) = interval_sync_log(&d, 8 << 20);
    let addr = parts[0].segment_addr().expect("a segment is being written");
    // 60 pages of records, the writer inside the 61st
    let n = ((60 * 4096 + 100 - HEADER_LEN) / RECORD_LEN) as u64;
    for i in 0..n {
        assert!(parts[0].append(&acc(0, i)));
    }
    parts[0].commit();
    let writer_page = (HEADER_LEN + n as usize * RECORD_LEN) / 4096;
    assert!((0..=writer_page + 2).all(|p| page_mapped(addr + p * 4096)), "the pages written and ahead are mapped before the sync");
    keeper.sync_due(std::time::Duration::ZERO);
    let synced = sh.synced_offset.load(Acquire);
    assert_eq!(synced, ((60 * 4096 - HEADER_LEN) / RECORD_LEN) as u64, "synced up to the last whole page");
    let unmapped: Vec<usize> = (0..writer_page + 3).filter(|&p| !page_mapped(addr + p * 4096)).collect();
    assert_eq!(unmapped, (0..60).collect::<Vec<_>>(), "exactly the 60 whole pages synced behind the writer are unmapped");
    // the records are intact in the file (what a restart reads) ...
    let seg = fs::read(d.0.join(partition_name(0)).join(segment_name(0))).unwrap();
    for i in [0, synced - 1, n - 1] {
        let pos = HEADER_LEN + i as usize * RECORD_LEN;
        let r = decode_record(seg[pos..pos + RECORD_LEN].try_into().unwrap()).expect("a whole record");
        assert_eq!(r.offset, i);
    }
    // ... and the writer goes on without touching the pages it left
    assert!(parts[0].append(&acc(0, n)));
    parts[0].commit();
    assert!(page_mapped(addr + writer_page * 4096) && !page_mapped(addr));
    // a sync into the page the writer is in (a slow writer's) leaves it mapped
    keeper.sync_due(std::time::Duration::ZERO);
    assert_eq!(sh.synced_offset.load(Acquire), n + 1, "synced into the writer's page");
    assert!(page_mapped(addr + writer_page * 4096), "the page the writer is in stays mapped");
    parts.clear();
    shared.request_stop();
    keeper.run();
    let all = fs::read(d.0.join(partition_name(0)).join(segment_name(0))).unwrap();
    let upto = HEADER_LEN + n as usize * RECORD_LEN;
    assert!(all[..upto] == seg[..upto], "no record changed after the sync");
    assert_eq!(decode_record(all[upto..upto + RECORD_LEN].try_into().unwrap()).map(|r| r.offset), Some(n), "the record written after it is whole");
}

#[test]
fn interval_sync_looking_between_the_writers_two_stores_still_syncs_the_batch() {
    // The keeper looks after the record count was published but before the
    // offset was (the interleaving the old keeper turned into a batch left
    // to writeback): the next look must sync it.
    use std::sync::atomic::Ordering::Acquire;
    let d = Dir::new("between");
    let (mut parts, mut keeper, shared, sh) = interval_sync_log(&d, SEG10 * 8);
    for i in 0..3 {
        assert!(parts[0].append(&acc(0, i)));
    }
    parts[0].commit();
    keeper.sync_due(std::time::Duration::ZERO);
    assert_eq!(sh.synced_offset.load(Acquire), 3);
    for i in 3..7 {
        assert!(parts[0].append(&acc(0, i)));
    }
    parts[0].publish_count_only();
    keeper.sync_due(std::time::Duration::ZERO);
    parts[0].commit();
    // the partition goes quiet: every later look must sync what was published
    keeper.sync_due(std::time::Duration::ZERO);
    keeper.sync_due(std::time::Duration::ZERO);
    assert_eq!(sh.synced_offset.load(Acquire), 7, "the quiet partition's last batch is synced");
    parts.clear();
    shared.request_stop();
    keeper.run();
}

/// Minor page faults taken by the calling thread so far.
fn thread_minflt() -> i64 {
    // SAFETY: getrusage fills the struct we pass; RUSAGE_THREAD is the caller.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) }, 0);
    u.ru_minflt
}

#[test]
fn interval_syncs_never_write_protect_the_page_the_writer_is_in() {
    // A writer appending steadily (this thread, whose page faults are
    // counted), the keeper syncing every interval in between, in lockstep
    // (its thread: each turn, as its loop does, the pages ahead kept
    // writable, then the interval sync). The writer takes no page fault
    // from the syncs, and every record is synced within two intervals.
    // Other processes' fsyncs on the same file system can make the kernel
    // write our dirty pages back (ext4 ordered data) between the keeper's
    // turn and the writer's next store: up to a quarter of the syncs may
    // see one for that (0 alone, ~50 beside the crate's other tests);
    // syncing the page being written faults at every sync (~400 alone).
    // That noise only ever adds faults: the test is judged on the best of
    // three runs (and nextest runs it alone, .config/nextest.toml).
    let mut runs = Vec::new();
    for run in 0..3 {
        let (faults, syncs) = writer_faults_across_interval_syncs(run);
        if faults < syncs as i64 / 4 {
            return;
        }
        runs.push((faults, syncs));
    }
    panic!("the writer took page faults at the interval syncs in every run: (faults, syncs) = {runs:?}");
}

/// One run of the test above: the writer's page faults and the number of
/// interval syncs, with every other property asserted.
fn writer_faults_across_interval_syncs(run: usize) -> (i64, usize) {
    use std::sync::atomic::Ordering::Acquire;
    use std::sync::mpsc;
    let d = Dir::new(&format!("nofault{run}"));
    let every = std::time::Duration::from_micros(300);
    let cfg = LogConfig { dir: d.0.clone(), segment_bytes: 8 << 20, sync: SyncPolicy::Interval(every) };
    let (mut parts, mut keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
    let sh = Arc::clone(&shared.partitions[0]);
    let (go_tx, go_rx) = mpsc::channel::<bool>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let k = std::thread::spawn(move || {
        while let Ok(more) = go_rx.recv() {
            std::thread::sleep(every);
            let _ = keeper.populate_ahead();
            keeper.sync_due(every);
            done_tx.send(()).unwrap();
            if !more {
                break;
            }
        }
        keeper
    });
    let mut n = 0u64;
    let batch = |parts: &mut Vec<Partition>, n: &mut u64| {
        // 50 records (4 800 bytes, more than a page) per interval: the
        // writer leaves a page behind between two syncs, as at any high
        // rate (200 k moves/s fill 4 600 pages per 200 ms interval)
        for _ in 0..50 {
            assert!(parts[0].append(&acc(0, *n)));
            *n += 1;
        }
        parts[0].commit();
    };
    // warm up: the first pages written, the pages ahead populated
    batch(&mut parts, &mut n);
    go_tx.send(true).unwrap();
    done_rx.recv().unwrap();
    let before = thread_minflt();
    let (mut syncs, mut lag_max) = (0, 0);
    for _ in 0..400 {
        batch(&mut parts, &mut n);
        let s0 = sh.synced_offset.load(Acquire);
        go_tx.send(true).unwrap();
        done_rx.recv().unwrap();
        let s1 = sh.synced_offset.load(Acquire);
        syncs += usize::from(s1 > s0);
        lag_max = lag_max.max(n - s1);
    }
    let faults = thread_minflt() - before;
    // quiet: the last page goes too
    go_tx.send(true).unwrap();
    done_rx.recv().unwrap();
    go_tx.send(false).unwrap();
    done_rx.recv().unwrap();
    let keeper = k.join().unwrap();
    assert!(syncs > 300, "the keeper synced as it went ({syncs} syncs)");
    assert!(lag_max < 150, "records waited for more than two intervals: {lag_max} behind");
    assert_eq!(sh.synced_offset.load(Acquire), n, "the quiet partition's last page is synced");
    parts.clear();
    shared.request_stop();
    keeper.run();
    (faults, syncs)
}

/// The keeper gives each segment its folios by the writer's rate when it
/// prepares it: single pages for the first (no rate yet) and for a slow
/// writer's, folios for a writer appending well over one folio per sync
/// interval (the second spare waits at start for the first rate). With a
/// 2 s interval the line is 16 384 records/s, so a debug build on a busy
/// disk is still far above it at full speed.
#[test]
fn the_keeper_prefaults_a_fast_writers_segments_in_folios_and_a_slow_ones_in_pages() {
    use std::sync::atomic::Ordering::Relaxed;
    use std::time::{Duration, Instant};
    let run = |per_sec: u64, secs: f64| {
        let d = Dir::new("folios");
        let cfg = LogConfig { dir: d.0.clone(), segment_bytes: 1 << 20, sync: SyncPolicy::Interval(Duration::from_secs(2)) };
        let (mut parts, keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
        let k = std::thread::spawn(move || keeper.run());
        let t0 = Instant::now();
        let mut n = 0u64;
        while t0.elapsed().as_secs_f64() < secs {
            // per_sec 0: as fast as appends go
            let due = if per_sec == 0 { n + 64 } else { (t0.elapsed().as_secs_f64() * per_sec as f64) as u64 };
            while n < due {
                if parts[0].append(&acc(0, n)) {
                    n += 1;
                } else {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
            parts[0].commit();
            if per_sec != 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let sh = Arc::clone(&shared.partitions[0]);
        drop(parts);
        shared.request_stop();
        k.join().unwrap();
        (sh.folio_segments.load(Relaxed), sh.page_segments.load(Relaxed), n)
    };
    // a slow writer (5 k/s): the second spare waits until it is half way
    // through its 1 MiB segment (5 461 of 10 922 records, ~1.1 s)
    let (folios, pages, n) = run(5_000, 1.6);
    assert_eq!(folios, 0, "a writer at 5 k records/s gets no folios ({pages} page segments, {n} records)");
    assert!(pages >= 3, "the first segment and both spares in single pages: {pages} ({n} records)");
    // a fast writer, for 2 s: a rate is known after a quarter of a second
    let (folios, pages, n) = run(0, 2.0);
    assert!(n as f64 / 2.0 > 50_000.0, "the writer was well above the line: {n} records in 2 s");
    assert!(folios >= 1, "a fast writer's later segments in folios: {folios} ({pages} in pages, {n} records)");
}
