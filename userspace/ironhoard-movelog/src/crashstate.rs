//! The crash-state harness: what a power cut can leave of a partition, and
//! what recovery must make of it (in the manner of ALICE and CrashMonkey).
//!
//! A real writer (the poller's `Partition`, the keeper, the sync policy
//! under test) appends records. The harness records the partition's bytes
//! at its last durable point — when `synced_offset` last moved: the msync or
//! fdatasync returned — and now. A power cut leaves each 4 KiB page written
//! since then either old or new, in any combination, and a page can be torn
//! at 512-byte sectors (some sectors old, some new). For each such state
//! the harness runs recovery on a copy and checks:
//!
//! 1. every record below the durable point is there, byte for byte, and
//!    read by the reader the shipper and `tail` use, and counted by
//!    `partition_end` (what the shipper compares its checkpoint with);
//! 2. no torn record is accepted: whatever the reader returns is a record
//!    the writer wrote, at its offset;
//! 3. nothing readable is destroyed: every CRC-valid record the state held
//!    before recovery is read in place or kept in a set-aside file
//!    (`ironhoard tail --file`);
//! 4. the log opens again for appending, past every offset still held.
//!
//! A few small cases are checked exhaustively (every old/new combination of
//! the dirty pages, and each page torn at every single sector both ways);
//! property tests draw random states over longer runs with rotations. Long
//! runs: `PROPTEST_CASES=5000 cargo test --release -p ironhoard-movelog crashstate`
//! (docs/movelog.md).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::*;

const PAGE: usize = 4096;
const SECTOR: usize = 512;
/// 128 slots a segment: a segment spans four pages (the last partial).
const SEG: u64 = (HEADER_LEN + 128 * RECORD_LEN) as u64;

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let p = std::env::temp_dir().join(format!("ih-crash-{tag}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    None,
    Interval,
    Batch,
}

/// File name → bytes, for the files of partition q0.
type Files = BTreeMap<String, Vec<u8>>;

/// What a run left: the bytes at the durable point and now, the durable
/// offset, and every record appended (offset → record).
struct Capture {
    old: Files,
    new: Files,
    durable: u64,
    appended: BTreeMap<u64, Record>,
    /// The head file as the writer left it: after the power cut it can
    /// name offsets the log no longer holds.
    head: Vec<u8>,
}

fn record(i: u64) -> Accepted {
    let mut mv = [0u8; 64];
    mv[..8].copy_from_slice(&i.to_be_bytes());
    for (k, b) in mv[8..].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(31).wrapping_add(k as u8) | 1;
    }
    Accepted { recv_unix_ns: 1_000_000 + i, queue: 0, mv }
}

fn snapshot(pdir: &Path) -> Files {
    let mut f = Files::new();
    for e in fs::read_dir(pdir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().into_owned();
        if parse_segment_name(&name).is_some() {
            f.insert(name, fs::read(e.path()).unwrap());
        }
    }
    f
}

/// Runs a writer under `policy`: `before` records (in batches of `batch`),
/// the durable point, then `after` more records — with the batch policy
/// the last `after` are one batch appended but not yet committed (its acks
/// not sent), with the others committed.
fn capture(policy: Policy, before: u64, after: u64, batch: u64) -> Capture {
    let d = Dir::new("run");
    let sync = match policy {
        Policy::None => SyncPolicy::None,
        Policy::Interval => SyncPolicy::Interval(Duration::from_millis(300)),
        Policy::Batch => SyncPolicy::EveryBatch,
    };
    let cfg = LogConfig { dir: d.0.clone(), segment_bytes: SEG, sync };
    let (mut parts, keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
    let k = std::thread::spawn(move || keeper.run());
    let sh = Arc::clone(&shared.partitions[0]);
    let pdir = d.0.join("q0");
    let mut appended = BTreeMap::new();
    let mut next = 0u64;
    let mut append = |p: &mut Partition, n: u64, commit: bool| {
        for j in 0..n {
            let a = record(next);
            let t0 = Instant::now();
            while !p.append(&a) {
                assert!(t0.elapsed() < Duration::from_secs(5), "no segment prepared");
                std::thread::sleep(Duration::from_millis(1));
            }
            appended.insert(next, Record { offset: next, recv_unix_ns: a.recv_unix_ns, queue: 0, mv: a.mv });
            next += 1;
            if commit && ((j + 1) % batch == 0 || j + 1 == n) {
                p.commit();
            }
        }
    };
    let p = &mut parts[0];
    append(p, before, true);
    if policy == Policy::Interval {
        let t0 = Instant::now();
        while sh.synced_offset.load(Ordering::Acquire) < before {
            assert!(t0.elapsed() < Duration::from_secs(5), "the keeper never synced the interval's records");
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    // the keeper may still be preparing: let it finish, so the old state
    // has the files it will have
    std::thread::sleep(Duration::from_millis(20));
    let durable = sh.synced_offset.load(Ordering::Acquire);
    let old = snapshot(&pdir);
    append(p, after, policy != Policy::Batch);
    let new = snapshot(&pdir);
    let head = fs::read(pdir.join(head::HEAD_FILE)).unwrap();
    parts.clear();
    shared.request_stop();
    k.join().unwrap();
    Capture { old, new, durable, appended, head }
}

/// How one dirty page comes back after the power cut.
#[derive(Debug, Clone, Copy)]
enum Page {
    Old,
    New,
    /// Sector s is new where bit s is set.
    Torn(u8),
}

/// The dirty pages of a capture: (file, page index), in order.
fn dirty(c: &Capture) -> Vec<(String, usize)> {
    let mut v = Vec::new();
    for (name, new) in &c.new {
        let old = old_of(c, name);
        for (i, (o, n)) in old.chunks(PAGE).zip(new.chunks(PAGE)).enumerate() {
            if o != n {
                v.push((name.clone(), i));
            }
        }
    }
    v
}

/// A file's bytes at the durable point: a segment prepared since had its
/// header fsynced before it was renamed into place, and nothing else.
fn old_of(c: &Capture, name: &str) -> Vec<u8> {
    c.old.get(name).cloned().unwrap_or_else(|| {
        let n = &c.new[name];
        let mut v = vec![0u8; n.len()];
        v[..HEADER_LEN].copy_from_slice(&n[..HEADER_LEN]);
        v
    })
}

/// Builds the state `choice` (one entry per dirty page) in `pdir`.
fn build(c: &Capture, pages: &[(String, usize)], choice: &[Page], pdir: &Path) -> Files {
    let mut files: Files = c.new.keys().map(|n| (n.clone(), old_of(c, n))).collect();
    for ((name, i), ch) in pages.iter().zip(choice) {
        let new = &c.new[name];
        let f = files.get_mut(name).unwrap();
        let (lo, hi) = (i * PAGE, ((i + 1) * PAGE).min(new.len()));
        match ch {
            Page::Old => {}
            Page::New => f[lo..hi].copy_from_slice(&new[lo..hi]),
            Page::Torn(mask) => {
                for s in 0..PAGE / SECTOR {
                    let (a, b) = (lo + s * SECTOR, (lo + (s + 1) * SECTOR).min(hi));
                    if a < b && mask & (1 << s) != 0 {
                        f[a..b].copy_from_slice(&new[a..b]);
                    }
                }
            }
        }
    }
    fs::create_dir_all(pdir).unwrap();
    for (name, bytes) in &files {
        fs::write(pdir.join(name), bytes).unwrap();
    }
    fs::write(pdir.join(head::HEAD_FILE), &c.head).unwrap();
    files
}

/// Every CRC-valid record in a set of files.
fn valid_records(files: &Files) -> BTreeSet<(u64, [u8; 64])> {
    let mut v = BTreeSet::new();
    for bytes in files.values() {
        for c in bytes[HEADER_LEN..].chunks_exact(RECORD_LEN) {
            if let Slot::Valid(r) = decode_slot(c.try_into().unwrap()) {
                v.insert((r.offset, r.mv));
            }
        }
    }
    v
}

/// Recovers the state in `pdir` and checks the four promises.
fn check_state(c: &Capture, pages: &[(String, usize)], choice: &[Page]) {
    let d = Dir::new("state");
    let pdir = d.0.join("q0");
    let files = build(c, pages, choice, &pdir);
    let before = valid_records(&files);
    let ctx = || format!("durable {}, written {}, dirty pages {pages:?}, state {choice:?}", c.durable, c.appended.len());
    let rec = recover::recover_partition(&pdir, 0, &mut |_| {}).unwrap_or_else(|e| panic!("recovery failed: {e}; {}", ctx()));
    // what the shipper and tail read (no appliance alive)
    let mut r = PartitionReader::open(&d.0, 0, 0);
    let mut read = BTreeMap::new();
    for _ in 0..100_000 {
        match r.next() {
            Ok(Some(x)) => {
                assert!(read.insert(x.offset, x).is_none(), "offset {} read twice; {}", x.offset, ctx());
            }
            Ok(None) => break,
            Err(e) => assert!(!e.is_fatal(), "{e}; {}", ctx()),
        }
    }
    // 1. every durable record, in place and readable
    for off in 0..c.durable {
        assert_eq!(read.get(&off), c.appended.get(&off), "durable record {off} not read back; recovery {rec:?}; {}", ctx());
    }
    // 2. nothing torn or invented
    for (off, x) in &read {
        assert_eq!(Some(x), c.appended.get(off), "read a record the writer never wrote at {off}; {}", ctx());
    }
    // 3. nothing readable destroyed: in place, or in a file set aside
    let mut kept: BTreeSet<(u64, [u8; 64])> = read.values().map(|x| (x.offset, x.mv)).collect();
    for e in fs::read_dir(&pdir).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().contains(DAMAGED_INFIX) {
            recover::visit_slots(&p, &mut |x: &Record| {
                kept.insert((x.offset, x.mv));
            })
            .unwrap();
        }
    }
    let lost: Vec<u64> = before.difference(&kept).map(|x| x.0).collect();
    assert!(lost.is_empty(), "readable records destroyed: offsets {lost:?}; recovery {rec:?}; {}", ctx());
    // the shipper's idea of the end counts everything held
    let end = reader::partition_end(&d.0, 0).unwrap();
    let highest = before.iter().map(|x| x.0 + 1).max().unwrap_or(0);
    assert!(end >= highest && end >= c.durable, "partition_end {end} below what the log holds ({highest}); {}", ctx());
    // 4. appending resumes past every offset still held
    let cfg = LogConfig { dir: d.0.clone(), segment_bytes: SEG, sync: SyncPolicy::None };
    let (mut parts, mut keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
    assert!(parts[0].next_offset() >= highest, "appending at {} would reuse an offset up to {highest}; {}", parts[0].next_offset(), ctx());
    // and a reader that read to the end (the shipper) is not past where
    // new records go: it would skip them
    assert!(r.position() <= parts[0].next_offset(), "the reader stopped at {}, past the next append at {}; {}", r.position(), parts[0].next_offset(), ctx());
    keeper.prime();
    parts.clear();
    shared.request_stop();
    keeper.run();
}

/// Every combination of old/new for the dirty pages, then each page torn
/// at every single sector both ways (the others old, then new).
fn exhaustive(c: &Capture) -> usize {
    let pages = dirty(c);
    assert!(pages.len() <= 6, "{} dirty pages: too many to enumerate", pages.len());
    let mut n = 0;
    for bits in 0u32..(1 << pages.len()) {
        let choice: Vec<Page> = (0..pages.len()).map(|i| if bits & (1 << i) != 0 { Page::New } else { Page::Old }).collect();
        check_state(c, &pages, &choice);
        n += 1;
    }
    for t in 0..pages.len() {
        for rest in [Page::Old, Page::New] {
            for s in 0..(PAGE / SECTOR) as u8 {
                for mask in [1u8 << s, !(1u8 << s)] {
                    let mut choice = vec![rest; pages.len()];
                    choice[t] = Page::Torn(mask);
                    check_state(c, &pages, &choice);
                    n += 1;
                }
            }
        }
    }
    n
}

#[test]
fn exhaustive_batch_policy_in_flight_batch() {
    // 100 records synced batch by batch, then a batch of 60 in flight
    // (written, not yet committed: its acks were not sent)
    let c = capture(Policy::Batch, 100, 60, 7);
    assert_eq!(c.durable, 100, "the batch policy syncs every committed batch");
    let n = exhaustive(&c);
    assert!(n > 16, "{n} states");
}

#[test]
fn exhaustive_batch_policy_across_a_rotation() {
    // the in-flight batch crosses into the next segment
    let c = capture(Policy::Batch, 120, 20, 5);
    assert_eq!(c.durable, 120);
    assert!(dirty(&c).iter().map(|p| &p.0).collect::<BTreeSet<_>>().len() == 2, "{:?}", dirty(&c));
    exhaustive(&c);
}

#[test]
fn exhaustive_interval_policy() {
    let c = capture(Policy::Interval, 90, 80, 9);
    assert!(c.durable >= 90, "the keeper synced the first records: {}", c.durable);
    exhaustive(&c);
}

#[test]
fn exhaustive_none_policy() {
    // nothing is synced while running: the durable point is the start
    let c = capture(Policy::None, 40, 60, 8);
    exhaustive(&c);
}

fn policy() -> impl Strategy<Value = Policy> {
    prop_oneof![Just(Policy::None), Just(Policy::Interval), Just(Policy::Batch)]
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Longer runs, several rotations, random states.
    #[test]
    fn random_power_cuts(policy in policy(), before in 0u64..400, after in 1u64..300, batch in 1u64..64, seed in any::<u64>()) {
        let c = capture(policy, before, after, batch);
        let pages = dirty(&c);
        let mut x = seed | 1;
        let mut rnd = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
        for _ in 0..16 {
            let choice: Vec<Page> = pages.iter().map(|_| match rnd() % 4 {
                0 => Page::Old,
                1 | 2 => Page::New,
                _ => Page::Torn(rnd() as u8),
            }).collect();
            check_state(&c, &pages, &choice);
        }
    }
}
