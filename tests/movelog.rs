//! The move log through a lab (needs root): every ACCEPTED move recorded
//! exactly once with a tag that still verifies, clean stop, kill -9 and
//! torn-tail recovery, rotation, follow, unwritable and full log
//! directories.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironhoard_labtests::scenarios::{expect_status, Expect};
use ironhoard_labtests::{bin, secret, sh, Appliance, Client, Lab, Settings, TempDir};
use ironhoard_movelog::{Reader, Record};
use ironhoard_wire::{MasterKey, Move, Status};
use serde_json::Value;

fn read_log(dir: &Path) -> Vec<Record> {
    let mut r = Reader::open(dir, 0);
    let mut v = Vec::new();
    while let Some(x) = r.next().expect("log reads") {
        v.push(x);
    }
    v
}

fn with_log(extra: &str, dir: Option<&Path>) -> impl FnOnce(String) -> String {
    let extra = extra.to_string();
    let dir = dir.map(|d| d.display().to_string());
    move |c: String| {
        let mut out = String::new();
        for line in c.lines() {
            if line.starts_with("dir = ") {
                if let Some(d) = &dir {
                    out.push_str(&format!("dir = \"{d}\"\n"));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
                out.push_str(&extra);
                out.push('\n');
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

fn pktgen(lab: &Lab, a: &Appliance, args: &[&str]) -> Value {
    let report = a.dir.0.join("report.json");
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &lab.ns]).arg(bin("ironhoard-pktgen"));
    cmd.args(["--target", &format!("{}:{}", lab.host_v4, a.settings.port), "--quiet", "--board", "64x32"]);
    cmd.arg("--secret-file").arg(a.dir.0.join("secret0.hex")).arg("--report").arg(&report).args(args);
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "pktgen: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

/// Every record unique per (game, player, seq) and its tag verifies.
fn check_records(recs: &[Record]) {
    let mk = MasterKey::new(&secret(0));
    let mut seen = HashSet::new();
    for (i, r) in recs.iter().enumerate() {
        assert_eq!(r.offset, i as u64, "offsets are dense from 0");
        let m = Move::new_checked(&r.mv[..]).unwrap();
        assert!(seen.insert((m.game_id(), m.player_id(), m.key_id(), m.seq())), "record {i} twice");
        assert!(m.verify_tag(&mk.player_mac(m.game_id(), m.player_id())), "record {i}'s tag verifies");
        assert!(r.recv_unix_ns > 1_600_000_000_000_000_000, "server timestamp is wall-clock");
    }
}

#[test]
fn a_million_moves_with_retransmits_each_accepted_one_recorded_once() {
    let lab = Lab::new(1);
    let mut a = Appliance::start(&lab, Settings { backend: "xdp", players_per_worker: 8192, rate_per_second: 1_000_000, rate_burst: 1_000_000, ..Default::default() });
    let r = pktgen(
        &lab,
        &a,
        &["--rate", "60000", "--count", "1000000", "--duration", "40", "--games", "10", "--players", "200", "--replay-ratio", "0.1", "--invalid-ratio", "0.0"],
    );
    assert_eq!(r["sent"], 1_000_000);
    let accepted = a.stats()["accepted"].as_u64().unwrap();
    let (st, _) = a.stop();
    assert!(st.success(), "{}", a.log());
    let recs = read_log(&a.dir.0.join("log"));
    assert_eq!(recs.len() as u64, accepted, "records == ACCEPTED acks after a clean stop");
    assert!(r["by_status"]["accepted"].as_u64().unwrap() <= accepted);
    if r["lost"] == 0 {
        assert_eq!(r["by_status"]["accepted"].as_u64().unwrap(), accepted);
    }
    assert!(r["by_status"]["duplicate"].as_u64().unwrap() > 10_000, "retransmits were judged duplicates: {} lost {} generated {}", r["by_status"], r["lost"], r["generated"]);
    check_records(&recs);
}

#[test]
fn kill_9_leaves_a_readable_log_and_a_restart_continues_it() {
    let lab = Lab::new(1);
    let logdir = TempDir::new("log-k9");
    let mut a = Appliance::start_with(&lab, Settings { backend: "xdp", ..Default::default() }, with_log("sync = \"none\"", Some(&logdir.0)));
    let c = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    for s in 1..=500 {
        expect_status(&c, &mut e, &Client::mv(0, 3, 3, s), Status::Accepted, "before the crash");
    }
    // let the dispatcher write them (acks leave when moves are queued)
    let t0 = Instant::now();
    while a.stats()["log"]["records"].as_u64() != Some(500) {
        assert!(t0.elapsed() < Duration::from_secs(10), "dispatcher wrote {}", a.stats()["log"]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut child = a.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // a torn record at the end, as a crash mid-write would leave
    let seg = std::fs::read_dir(&logdir.0).unwrap().next().unwrap().unwrap().path();
    let mut f = std::fs::OpenOptions::new().append(true).open(&seg).unwrap();
    std::io::Write::write_all(&mut f, &[0x5a; 50]).unwrap();
    drop(f);
    let out = sh(&[bin("ironhoard").to_str().unwrap(), "tail", "--dir", logdir.0.to_str().unwrap(), "--json"]);
    assert_eq!(out.lines().count(), 500, "tail reads to the last whole record");
    let first: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    for k in ["game_id", "player_id", "seq", "kind", "x", "y", "payload", "server_ts_ns", "offset"] {
        assert!(first.get(k).is_some(), "tail --json has {k}: {first}");
    }
    // restart on the same log: the torn tail is cut, offsets continue
    let b = Appliance::start_with(&lab, Settings { backend: "xdp", ..Default::default() }, with_log("", Some(&logdir.0)));
    let c = Client::new(&lab, false, 7777);
    for s in 1..=10 {
        expect_status(&c, &mut e, &Client::mv(0, 4, 4, s), Status::Accepted, "after the restart");
    }
    drop(b);
    let recs = read_log(&logdir.0);
    assert_eq!(recs.len(), 510);
    check_records(&recs);
}

#[test]
fn rotation_and_follow() {
    let lab = Lab::new(1);
    let a = Appliance::start_with(&lab, Settings { backend: "socket", ..Default::default() }, with_log("segment_bytes = 65536\nsync = \"batch\"", None));
    let dir = a.dir.0.join("log");
    let mut follower = Command::new(bin("ironhoard"))
        .args(["tail", "--follow", "--json", "--dir"])
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let c = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    for p in 0..3u32 {
        for s in 1..=1000 {
            expect_status(&c, &mut e, &Client::mv(0, 9, p, s), Status::Accepted, "moves");
        }
    }
    // acks go out as soon as moves are queued for the dispatcher: wait
    // until it has written them all
    let t0 = Instant::now();
    while a.stats()["log"]["records"].as_u64() != Some(3000) {
        assert!(t0.elapsed() < Duration::from_secs(10), "dispatcher wrote {}", a.stats()["log"]);
        std::thread::sleep(Duration::from_millis(50));
    }
    let segs: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(segs.len() >= 4, "rotated by size: {} segments", segs.len());
    let recs = read_log(&dir);
    assert_eq!(recs.len(), 3000);
    check_records(&recs);
    // the follower saw all 3000, in order, across segments
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let t0 = Instant::now();
    for i in 0..3000u64 {
        let l = lines.next().unwrap().unwrap();
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["offset"].as_u64(), Some(i));
        assert!(t0.elapsed() < Duration::from_secs(20));
    }
    let _ = follower.kill();
    let _ = follower.wait();
    let s = a.stats();
    assert_eq!(s["log"]["records"], 3000);
    assert!(s["log"]["rotations"].as_u64().unwrap() >= 3);
}

#[test]
fn unwritable_log_directory_means_busy_and_a_loud_error() {
    let lab = Lab::new(1);
    let t = TempDir::new("log-unwritable");
    let file = t.0.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let a = Appliance::start_with(&lab, Settings { backend: "xdp", ..Default::default() }, with_log("", Some(&file.join("log"))));
    let c = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    for s in 1..=5 {
        expect_status(&c, &mut e, &Client::mv(0, 1, 1, s), Status::Busy, "log unwritable: BUSY, nothing recorded");
    }
    let s = a.stats();
    assert_eq!(s["log"]["healthy"], false);
    assert!(s["log"]["write_errors"].as_u64().unwrap() >= 1);
    assert!(s["log"]["last_error"].as_str().unwrap().contains("a-file"), "{}", s["log"]);
    assert_eq!(s["accepted"], 0);
    assert!(a.log().contains("cannot be written"), "{}", a.log());
}

/// A tmpfs of fixed size, unmounted on drop.
struct Tmpfs(PathBuf);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn full_disk_means_busy_and_nothing_acked_is_silently_lost() {
    let lab = Lab::new(1);
    let t = TempDir::new("log-full");
    let mnt = t.0.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    sh(&["mount", "-t", "tmpfs", "-o", "size=256k", "ihlogfull", mnt.to_str().unwrap()]);
    let _guard = Tmpfs(mnt.clone());
    let mut a = Appliance::start_with(&lab, Settings { backend: "xdp", ..Default::default() }, with_log("sync = \"batch\"", Some(&mnt)));
    let c = Client::new(&lab, false, 7777);
    let (mut acc, mut busy) = (0u64, 0u64);
    for s in 1..=6000u64 {
        let st = c.send(&Client::mv(0, 2, (s % 50) as u32, s)).expect("every authenticated move is answered");
        match st {
            Status::Accepted => acc += 1,
            Status::Busy => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(busy > 0, "the full disk turned moves BUSY ({acc} accepted)");
    let s = a.stats();
    assert!(s["log"]["write_errors"].as_u64().unwrap() >= 1, "{}", s["log"]);
    assert!(s["log"]["last_error"].as_str().unwrap_or("").contains("No space"), "{}", s["log"]);
    let (st, _) = a.stop();
    let recs = read_log(&mnt);
    check_records(&recs);
    if st.success() {
        assert_eq!(recs.len() as u64, acc, "clean stop: every accepted move on disk");
    } else {
        // could not write them all: said loudly, with the count
        let log = a.log();
        let line = log.lines().find(|l| l.contains("could not be written")).unwrap_or_else(|| panic!("{log}"));
        let unwritten: u64 = line.split_whitespace().find_map(|w| w.parse().ok()).unwrap();
        assert_eq!(recs.len() as u64 + unwritten, acc, "{line}");
    }
}
