//! The move log through a lab (needs root): every move the client saw
//! ACCEPTED is in the log, exactly once, with a tag that still verifies —
//! after a clean run, after kill -9 under load (several moments, both
//! backends), after corruption of the log at rest, through a full disk and
//! an unwritable directory.

use std::collections::{BTreeSet, HashSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironhoard_labtests::logcheck::{assert_log_matches_client, check_records, id_of, read_accepted, read_log, MoveId};
use ironhoard_labtests::scenarios::{expect_status, Expect};
use ironhoard_labtests::{bin, sh, Appliance, ChildGuard, Client, Lab, Settings, TempDir};
use ironhoard_movelog::LogReader;
use ironhoard_wire::Status;
use serde_json::Value;

fn with_log(extra: &str, dir: Option<&Path>) -> impl FnOnce(String) -> String {
    let extra = extra.to_string();
    let dir = dir.map(|d| d.display().to_string());
    move |c: String| {
        let mut out = String::new();
        for line in c.lines() {
            if line.starts_with("dir = ") {
                match &dir {
                    Some(d) => out.push_str(&format!("dir = \"{d}\"\n")),
                    None => {
                        out.push_str(line);
                        out.push('\n');
                    }
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

/// ironhoard-pktgen against `target` from the lab's namespace, writing its
/// report and the set of moves it saw ACCEPTED into `out`.
fn pktgen_cmd(lab: &Lab, port: u16, secret_file: &Path, out: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("ip");
    ironhoard_labtests::dies_with_test(&mut cmd);
    cmd.args(["netns", "exec", &lab.ns]).arg(bin("ironhoard-pktgen"));
    cmd.args(["--target", &format!("{}:{port}", lab.host_v4), "--quiet", "--board", "64x32"]);
    cmd.arg("--secret-file").arg(secret_file);
    cmd.arg("--report").arg(out.join("report.json")).arg("--accepted-out").arg(out.join("accepted.txt"));
    cmd.args(args).stdout(Stdio::null()).stderr(Stdio::piped());
    cmd
}


fn settings(backend: &'static str) -> Settings {
    Settings { backend, players_per_worker: 8192, rate_per_second: 1_000_000, rate_burst: 1_000_000, ..Default::default() }
}

/// A clean run with retransmits: the log is exactly what the client saw
/// ACCEPTED plus, at most, the accepted moves whose ack was lost.
fn clean_run_matches_the_clients_view(backend: &'static str) {
    let lab = Lab::new(1);
    let mut a = Appliance::start_with(&lab, settings(backend), with_log("segment_bytes = 1048576", None));
    let out = TempDir::new("clean-out");
    let o = pktgen_cmd(&lab, 7777, &a.dir.0.join("secret0.hex"), &out.0, &[
        "--rate", "50000", "--count", "200000", "--duration", "30", "--games", "10", "--players", "200", "--replay-ratio", "0.1",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "pktgen: {}", String::from_utf8_lossy(&o.stderr));
    let (st, _) = a.stop();
    assert!(st.success(), "{}", a.log());
    let rep: Value = serde_json::from_str(&std::fs::read_to_string(out.0.join("report.json")).unwrap()).unwrap();
    let (acked, logged) = assert_log_matches_client(&a.dir.0.join("log"), &out.0.join("accepted.txt"), rep["lost"].as_u64().unwrap());
    assert_eq!(acked as u64, rep["by_status"]["accepted"].as_u64().unwrap(), "the accepted set is every ACCEPTED ack");
    assert!(rep["by_status"]["duplicate"].as_u64().unwrap() > 1000, "retransmits were judged: {}", rep["by_status"]);
    eprintln!("{backend}: {acked} accepted, {logged} logged, {} acks lost", rep["lost"]);
}

#[test]
fn clean_run_socket() {
    clean_run_matches_the_clients_view("socket");
}

#[test]
fn clean_run_xdp() {
    clean_run_matches_the_clients_view("xdp");
}

/// A pseudo-random number in `lo..hi` (printed, so a failure can be rerun).
fn random_in(lo: u64, hi: u64) -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b)).unwrap();
    lo + u64::from_ne_bytes(b) % (hi - lo)
}

/// Under load with retransmits, kill -9 the appliance at random moments and
/// restart it on the same log while the generator keeps sending: every
/// move the generator saw ACCEPTED is in the log, none twice (the restarted
/// appliance rebuilt its windows from the log), every tag verifies.
fn kill_9_under_load(backend: &'static str) {
    kill_9_under_load_in(backend, None)
}

/// The same, with the log on a loop-mounted file system image of `fs`
/// (ext4, ext4 without extents, xfs, btrfs).
fn kill_9_under_load_in(backend: &'static str, fs: Option<&str>) {
    let lab = Lab::new(1);
    let image = fs.map(LoopFs::new);
    let tmp_log = TempDir::new("k9-log");
    let logdir = match &image {
        Some(i) => i.mnt.join("log"),
        None => tmp_log.0.clone(),
    };
    let out = TempDir::new("k9-out");
    // small segments: kills land around rotations too
    let cfg = "sync = \"none\"\nsegment_bytes = 262144";
    let mut a = Appliance::start_with(&lab, settings(backend), with_log(cfg, Some(&logdir)));
    let secret_file = out.0.join("secret0.hex");
    std::fs::copy(a.dir.0.join("secret0.hex"), &secret_file).unwrap();
    let mut gen = ChildGuard(Some(
        pktgen_cmd(&lab, 7777, &secret_file, &out.0, &[
            "--rate", "100000", "--count", "600000", "--duration", "300", "--games", "10", "--players", "300", "--replay-ratio", "0.1",
            "--drain-ms", "300",
        ])
        .spawn()
        .unwrap(),
    ));
    // each kill comes once this appliance has accepted a random number of
    // moves (not after a time, so a slow machine still kills under load),
    // and only while the generator is still sending
    let mut moments = Vec::new();
    for _ in 0..3 {
        let at = random_in(20_000, 60_000);
        moments.push(at);
        let t0 = Instant::now();
        while a.stats()["accepted"].as_u64().unwrap_or(0) < at {
            if gen.0.as_mut().unwrap().try_wait().unwrap().is_some() {
                let o = gen.0.take().unwrap().wait_with_output().unwrap();
                panic!("the generator finished before the kill at {at} accepted moves: {}", String::from_utf8_lossy(&o.stderr));
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "the appliance never reached {at} accepted moves: {}", a.stats());
            // (each look is a process on the generator's core: not too often)
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(gen.0.as_mut().unwrap().try_wait().unwrap().is_none(), "the generator is still sending at the kill");
        let mut child = a.child.take().unwrap();
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        a = Appliance::start_with(&lab, settings(backend), with_log(cfg, Some(&logdir)));
    }
    eprintln!("{backend}: killed at {moments:?} accepted moves");
    let gen_out = gen.0.take().unwrap().wait_with_output().unwrap();
    let (st, _) = a.stop();
    assert!(st.success(), "{}", a.log());
    let acked = read_accepted(&out.0.join("accepted.txt"));
    let recs = read_log(&logdir);
    let missing: Vec<_> = {
        let logged: HashSet<MoveId> = recs.iter().map(id_of).collect();
        acked.iter().filter(|m| !logged.contains(m)).copied().collect()
    };
    assert!(missing.is_empty(), "kill -9 at {moments:?} accepted moves lost {} moves acked ACCEPTED, e.g. {:?} (of {})", missing.len(), &missing[..missing.len().min(5)], acked.len());
    let logged = check_records(&recs);
    assert!(gen_out.status.success(), "pktgen (exit 3 = a move accepted twice or a hostile ack): {}", String::from_utf8_lossy(&gen_out.stderr));
    let rep: Value = serde_json::from_str(&std::fs::read_to_string(out.0.join("report.json")).unwrap()).unwrap();
    assert!(rep["by_status"]["duplicate"].as_u64().unwrap() > 1000, "retransmits judged across restarts: {}", rep["by_status"]);
    eprintln!("{backend}: {} acked ACCEPTED, {} in the log, report {}", acked.len(), logged.len(), rep["by_status"]);
}

#[test]
fn kill_9_under_load_socket() {
    kill_9_under_load("socket");
}

#[test]
fn kill_9_under_load_xdp() {
    kill_9_under_load("xdp");
}

/// ext4 made without extents has no fallocate (nor has NFSv3): a restart
/// must not "reserve the blocks again" of the segment it resumes by
/// writing zeros over its records.
#[test]
fn kill_9_under_load_on_ext4_without_extents() {
    kill_9_under_load_in("socket", Some("ext4-noextent"));
}

#[test]
fn kill_9_under_load_on_ext4() {
    kill_9_under_load_in("socket", Some("ext4"));
}

#[test]
fn kill_9_under_load_on_xfs() {
    kill_9_under_load_in("socket", Some("xfs"));
}

#[test]
fn kill_9_under_load_on_btrfs() {
    kill_9_under_load_in("socket", Some("btrfs"));
}

/// A file system image (sparse file, 512 MiB) loop-mounted in a temporary
/// directory; unmounted on drop, and by scripts/sweep-labs.sh if the test
/// is killed.
struct LoopFs {
    mnt: PathBuf,
    _reg: ironhoard_labtests::Registered,
    _t: TempDir,
}

impl LoopFs {
    fn new(kind: &str) -> LoopFs {
        let t = TempDir::new(&format!("fs-{kind}"));
        let img = t.0.join("image");
        let mnt = t.0.join("mnt");
        std::fs::create_dir_all(&mnt).unwrap();
        std::fs::File::create(&img).unwrap().set_len(512 << 20).unwrap();
        let img_s = img.to_str().unwrap();
        match kind {
            "ext4" => sh(&["mkfs.ext4", "-q", "-F", img_s]),
            "ext4-noextent" => sh(&["mkfs.ext4", "-q", "-F", "-O", "^extent,^64bit", img_s]),
            "xfs" => sh(&["mkfs.xfs", "-q", "-f", img_s]),
            "btrfs" => sh(&["mkfs.btrfs", "-q", "-f", img_s]),
            other => panic!("no such file system kind {other}"),
        };
        let reg = ironhoard_labtests::register(ironhoard_labtests::Undo::Mount, &[mnt.to_str().unwrap()]);
        sh(&["mount", "-o", "loop", img_s, mnt.to_str().unwrap()]);
        let fs = LoopFs { mnt, _reg: reg, _t: t };
        // the point of the no-extent image: the log's fallback path runs
        let probe = fs.mnt.join("probe");
        let f = std::fs::File::create(&probe).unwrap();
        let falloc = Command::new("fallocate").args(["-l", "1M"]).arg(&probe).status().unwrap();
        drop(f);
        std::fs::remove_file(&probe).unwrap();
        assert_eq!(falloc.success(), kind != "ext4-noextent", "fallocate on {kind}");
        fs
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// With `sync = "batch"` a batch's records are msynced before its acks
/// leave: traced from outside (strace on the running appliance), every
/// sendmmsg of a poller thread that carries acks comes after an msync of
/// that thread since its previous one.
#[test]
fn the_batch_policy_msyncs_before_each_ack_leaves() {
    let lab = Lab::new(1);
    let a = Appliance::start_with(&lab, settings("socket"), with_log("segment_bytes = 65536\nsync = \"batch\"", None));
    let pid = a.child.as_ref().unwrap().id();
    let t = TempDir::new("strace");
    let trace = t.0.join("trace");
    let mut st = ChildGuard(Some(
        ironhoard_labtests::dies_with_test(&mut Command::new("strace"))
            .args(["-f", "-qq", "-e", "trace=msync,sendmmsg", "-o"])
            .arg(&trace)
            .args(["-p", &pid.to_string()])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    // strace attaches every thread before the first move
    std::thread::sleep(Duration::from_millis(1500));
    let c = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    for s in 1..=200 {
        expect_status(&c, &mut e, &Client::mv(0, 3, 1, s), Status::Accepted, "moves");
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY-free: a signal to our own child
    let _ = Command::new("kill").args(["-INT", &st.0.as_ref().unwrap().id().to_string()]).status();
    let _ = st.0.take().unwrap().wait();
    let text = std::fs::read_to_string(&trace).unwrap();
    let mut synced: std::collections::HashMap<String, bool> = Default::default();
    let (mut acks, mut syncs) = (0, 0);
    for l in text.lines() {
        let (tid, rest) = l.split_once(' ').unwrap_or(("", l));
        let rest = rest.trim_start();
        if rest.starts_with("msync(") && !rest.contains("= -1") {
            syncs += 1;
            synced.insert(tid.into(), true);
        } else if rest.starts_with("sendmmsg(") {
            acks += 1;
            let had = synced.insert(tid.into(), false).unwrap_or(false);
            assert!(had, "thread {tid} sent acks with no msync since its last send:\n{}", text.lines().take(40).collect::<Vec<_>>().join("\n"));
        }
    }
    assert!(acks >= 200 && syncs >= 200, "{acks} ack sends, {syncs} msyncs traced:\n{}", text.lines().take(20).collect::<Vec<_>>().join("\n"));
    let st = a.stats();
    assert_eq!(st["log"]["commits"], 200, "{}", st["log"]);
    assert_eq!(st["log"]["batch_syncs"], 200, "every batch with an accepted move synced: {}", st["log"]);
}

/// A log damaged at rest: bad header, flipped byte mid-segment, truncated
/// middle segment, stray file. The appliance starts, reports each, sets the
/// unreadable-as-a-whole segments aside (never deleted; the flipped byte's
/// segment stays in place, its bad slot reported), keeps every valid record readable
/// (`tail --file` on the set-aside ones) and still knows those moves.
#[test]
fn damaged_log_at_rest_starts_reports_and_loses_nothing() {
    let lab = Lab::new(1);
    let logdir = TempDir::new("dmg-log");
    let cfg = "segment_bytes = 65536"; // 682 records per segment
    let mut a = Appliance::start_with(&lab, settings("xdp"), with_log(cfg, Some(&logdir.0)));
    let c = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    for s in 1..=4000u64 {
        expect_status(&c, &mut e, &Client::mv(0, 5, ((s - 1) / 500) as u32, s), Status::Accepted, "filling the log");
    }
    let (st, _) = a.stop();
    assert!(st.success());
    let before = check_records(&read_log(&logdir.0));
    assert_eq!(before.len(), 4000);
    let q0 = logdir.0.join("q0");
    let mut segs: Vec<PathBuf> = std::fs::read_dir(&q0).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "ihlog")).collect();
    segs.sort();
    assert!(segs.len() >= 5, "{segs:?}");
    let patch = |p: &Path, at: u64, b: &[u8]| {
        let f = std::fs::OpenOptions::new().write(true).open(p).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, b, at).unwrap();
    };
    patch(&segs[0], 3, b"X"); // bad header
    patch(&segs[1], 64 + 96 * 100 + 50, &[0xEE]); // a flipped byte mid-segment
    std::fs::OpenOptions::new().write(true).open(&segs[2]).unwrap().set_len(64 + 96 * 300 + 17).unwrap(); // truncated
    std::fs::write(q0.join("README.operator"), b"stray").unwrap();
    // readers report the damage (exit 1) and still print every readable record
    let o = Command::new(bin("ironhoard")).args(["tail", "--json", "--dir"]).arg(&logdir.0).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&segs[0].display().to_string()) && err.contains(&segs[1].display().to_string()), "{err}");
    let mut b = Appliance::start_with(&lab, settings("xdp"), with_log(cfg, Some(&logdir.0)));
    let rec = b.stats()["log"]["recovery"].clone();
    let rtext = rec.to_string();
    for (s, what) in [(&segs[0], "bad header"), (&segs[1], "CRC"), (&segs[2], "bytes")] {
        assert!(rtext.contains(&s.display().to_string()) && rtext.contains(what), "{what} of {} reported: {rec}", s.display());
    }
    assert!(rtext.contains("README.operator"), "stray file reported: {rec}");
    assert!(b.log().contains("damage in"), "{}", b.log());
    // every move is still known (windows rebuilt from the set-aside
    // segments too): replays are DUPLICATE, new seqs accepted. Players own
    // 500 seqs each, so each replay is inside its player's window.
    for s in [1u64, 400, 700, 1500, 1600, 3999] {
        expect_status(&c, &mut e, &Client::mv(0, 5, ((s - 1) / 500) as u32, s), Status::Duplicate, "a move from a damaged segment replayed");
    }
    expect_status(&c, &mut e, &Client::mv(0, 5, 7, 4001), Status::Accepted, "after recovery");
    let (st, _) = b.stop();
    assert!(st.success());
    // nothing readable lost: the live log plus the set-aside files hold every record but the one flipped
    let mut all: HashSet<MoveId> = HashSet::new();
    let mut r = LogReader::open(&logdir.0, &[], None).unwrap();
    loop {
        match r.next() {
            Ok(Some(x)) => {
                all.insert(id_of(&x));
            }
            Ok(None) => break,
            Err(e) => assert!(!e.is_fatal(), "{e}"),
        }
    }
    let aside: Vec<PathBuf> = std::fs::read_dir(&q0).unwrap().map(|e| e.unwrap().path()).filter(|p| p.to_string_lossy().contains(".damaged-")).collect();
    // the bad header and the truncated segment are set aside; the flipped
    // byte is one bad slot between good records of an older segment: that
    // segment stays where readers find its other records
    assert_eq!(aside.len(), 2, "two segments set aside: {aside:?}");
    assert!(segs[1].exists(), "the segment with one flipped byte is kept in place");
    for p in &aside {
        let o = Command::new(bin("ironhoard")).args(["tail", "--json", "--file"]).arg(p).output().unwrap();
        for l in String::from_utf8_lossy(&o.stdout).lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            all.insert((v["key_id"].as_u64().unwrap() as u8, v["game_id"].as_u64().unwrap() as u32, v["player_id"].as_u64().unwrap() as u32, v["seq"].as_u64().unwrap()));
        }
    }
    // unreadable: the record whose byte was flipped, and the 382 slots the
    // truncation cut off (682 per segment, 300 left)
    let lost: Vec<_> = before.iter().filter(|m| !all.contains(m)).collect();
    assert_eq!(lost.len(), 1 + 382, "only the flipped record and the truncated ones are unreadable");
    assert!(q0.join("README.operator").exists());
}

/// Two appliances with different stats sockets cannot write one log.
#[test]
fn a_second_appliance_on_the_same_log_is_refused() {
    let lab = Lab::new(1);
    let logdir = TempDir::new("lock-log");
    let _a = Appliance::start_with(&lab, settings("socket"), with_log("", Some(&logdir.0)));
    let t = TempDir::new("lock-b");
    let cfg = std::fs::read_to_string(_a.config.clone()).unwrap().replace("port = 7777", "port = 7778");
    let p = t.0.join("b.toml");
    std::fs::write(&p, cfg).unwrap();
    let o = Command::new(bin("ironhoard")).args(["run", "--config"]).arg(&p).arg("--stats-socket").arg(t.0.join("b.sock")).output().unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("locked by another running appliance") && err.contains(&logdir.0.display().to_string()), "{err}");
}

#[test]
fn rotation_and_follow_across_partitions() {
    let lab = Lab::new(2);
    let mut s = settings("socket");
    s.queues = 2;
    let a = Appliance::start_with(&lab, s, with_log("segment_bytes = 65536\nsync = \"batch\"", None));
    let dir = a.dir.0.join("log");
    let mut follower = ChildGuard(Some(ironhoard_labtests::dies_with_test(&mut Command::new(bin("ironhoard"))).args(["tail", "--follow", "--json", "--dir"]).arg(&dir).stdout(Stdio::piped()).spawn().unwrap()));
    let c = Client::new(&lab, false, 7777);
    let mut e = Expect::new();
    for p in 0..3u32 {
        for s in 1..=1000 {
            expect_status(&c, &mut e, &Client::mv(0, 9, p, s), Status::Accepted, "moves");
        }
    }
    // acked means written: no waiting needed
    let recs = read_log(&dir);
    assert_eq!(recs.len(), 3000);
    check_records(&recs);
    let parts: HashSet<u16> = recs.iter().map(|r| r.queue).collect();
    assert_eq!(parts.len(), 2, "both workers' partitions hold moves");
    let st = a.stats();
    assert!(st["log"]["rotations"].as_u64().unwrap() >= 3, "{}", st["log"]);
    assert_eq!(st["log"]["records"], 3000);
    // one move per batch here: every batch synced before its ack
    assert_eq!(st["log"]["commits"], 3000, "{}", st["log"]);
    assert_eq!(st["log"]["batch_syncs"], 3000, "batch policy: a sync per batch with an accepted move: {}", st["log"]);
    // an msync per batch would write a whole 2 MiB folio: single pages only
    assert_eq!(st["log"]["segments_in_folios"], 0, "{}", st["log"]);
    assert!(st["log"]["segments_in_pages"].as_u64().unwrap() >= 2, "each worker's first segment at least: {}", st["log"]);
    // the follower saw all 3000 once, each partition in offset order
    // read on a thread, so a follower that stalls fails here, by name, not
    // by hanging the run
    let stdout = follower.0.as_mut().unwrap().stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines() {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut last: std::collections::HashMap<u64, u64> = Default::default();
    let mut seen = HashSet::new();
    for _ in 0..3000 {
        let l = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("tail --follow stalled after {} lines", seen.len()));
        let v: Value = serde_json::from_str(&l.unwrap()).unwrap();
        let (q, off) = (v["queue"].as_u64().unwrap(), v["offset"].as_u64().unwrap());
        if let Some(prev) = last.insert(q, off) {
            assert_eq!(off, prev + 1, "q{q} in order");
        }
        assert!(seen.insert((v["player_id"].as_u64().unwrap(), v["seq"].as_u64().unwrap())));
    }
    // resume one partition from an offset
    let o = sh(&[bin("ironhoard").to_str().unwrap(), "tail", "--json", "--dir", dir.to_str().unwrap(), "--queue", "1", "--from", "5", "--limit", "1"]);
    let v: Value = serde_json::from_str(o.lines().next().unwrap()).unwrap();
    assert_eq!((v["queue"].as_u64(), v["offset"].as_u64()), (Some(1), Some(5)));
}

#[test]
fn unwritable_log_directory_fails_the_start_naming_it() {
    let lab = Lab::new(1);
    let t = TempDir::new("log-unwritable");
    let file = t.0.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let s = Settings { backend: "xdp", ..Default::default() };
    let a = std::panic::catch_unwind(|| Appliance::start_with(&lab, s, with_log("", Some(&file.join("log")))));
    let msg = match a {
        Ok(_) => panic!("started on an unwritable log directory"),
        Err(p) => p.downcast_ref::<String>().cloned().unwrap_or_default(),
    };
    assert!(msg.contains("exited early") && msg.contains("a-file") && msg.contains("[log] dir"), "{msg}");
}

/// Sends moves for fresh players until `n` were answered; returns the counts.
fn send_counting(c: &Client, base: u64, n: u64, acc: &mut BTreeSet<MoveId>) -> (u64, u64) {
    let (mut ok, mut busy) = (0, 0);
    for s in base..base + n {
        let p = (s % 50) as u32;
        match c.send(&Client::mv(0, 2, p, s)).expect("every authenticated move is answered") {
            Status::Accepted => {
                ok += 1;
                acc.insert((0, 2, p, s));
            }
            Status::Busy => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    (ok, busy)
}

/// After the cause of BUSY went away: moves are ACCEPTED again within 5 s
/// (the keeper retries every second); then, after a clean stop, the log is
/// exactly the moves acked ACCEPTED.
fn accepted_again_then_exact(a: &mut Appliance, c: &Client, mut acc: BTreeSet<MoveId>, dir: &Path, after: &str) {
    let t0 = Instant::now();
    loop {
        let (ok, _) = send_counting(c, 10_000 + t0.elapsed().as_millis() as u64 * 100, 20, &mut acc);
        if ok == 20 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "still BUSY 5 s after {after}: {}", a.stats()["log"]);
        std::thread::sleep(Duration::from_millis(100));
    }
    let (st, _) = a.stop();
    assert!(st.success(), "{}", a.log());
    let want: HashSet<MoveId> = acc.into_iter().collect();
    assert_eq!(check_records(&read_log(dir)), want, "the log is exactly the moves acked ACCEPTED");
}

/// A tmpfs of fixed size, unmounted on drop.
struct Tmpfs(PathBuf, #[allow(dead_code)] ironhoard_labtests::Registered);
impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Disk full: once the prepared segments are used up, moves are BUSY (none
/// acked without a record); when space returns, ACCEPTED again.
#[test]
fn full_disk_means_busy_then_recovers_when_space_returns() {
    let lab = Lab::new(1);
    let t = TempDir::new("log-full");
    let mnt = t.0.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let reg = ironhoard_labtests::register(ironhoard_labtests::Undo::Mount, &[mnt.to_str().unwrap()]);
    sh(&["mount", "-t", "tmpfs", "-o", "size=256k", "ihlogfull", mnt.to_str().unwrap()]);
    let _guard = Tmpfs(mnt.clone(), reg);
    let mut a = Appliance::start_with(&lab, settings("xdp"), with_log("sync = \"batch\"\nsegment_bytes = 65536", Some(&mnt)));
    let c = Client::new(&lab, false, 7777);
    let mut acc = BTreeSet::new();
    let (ok, busy) = send_counting(&c, 1, 4000, &mut acc);
    assert!(busy > 0 && ok > 0, "the full disk turned moves BUSY ({ok} accepted, {busy} busy)");
    let s = a.stats();
    assert!(s["log"]["last_error"].as_str().unwrap_or("").contains("No space"), "{}", s["log"]);
    assert_eq!(s["log"]["healthy"], false);
    assert!(s["queues"][0]["log_refused"].as_u64().unwrap() >= busy);
    sh(&["mount", "-o", "remount,size=2m", mnt.to_str().unwrap()]);
    accepted_again_then_exact(&mut a, &c, acc, &mnt, "space returned");
}

/// A partition directory that stops taking new files (immutable): BUSY once
/// the prepared segments are full, ACCEPTED again when it is writable.
#[test]
fn unwritable_partition_at_runtime_means_busy_then_recovers() {
    let lab = Lab::new(1);
    let logdir = TempDir::new("imm-log");
    let mut a = Appliance::start_with(&lab, settings("socket"), with_log("segment_bytes = 65536", Some(&logdir.0)));
    let q0 = logdir.0.join("q0");
    struct Mutable(PathBuf, #[allow(dead_code)] ironhoard_labtests::Registered);
    impl Drop for Mutable {
        fn drop(&mut self) {
            let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
        }
    }
    let reg = ironhoard_labtests::register(ironhoard_labtests::Undo::Immutable, &[q0.to_str().unwrap()]);
    sh(&["chattr", "+i", q0.to_str().unwrap()]);
    let guard = Mutable(q0.clone(), reg);
    let c = Client::new(&lab, false, 7777);
    let mut acc = BTreeSet::new();
    let (ok, busy) = send_counting(&c, 1, 3000, &mut acc);
    assert!(busy > 0 && ok >= 682, "{ok} accepted, {busy} busy");
    assert!(a.stats()["log"]["last_error"].as_str().unwrap_or("").contains(q0.to_str().unwrap()), "{}", a.stats()["log"]);
    drop(guard);
    accepted_again_then_exact(&mut a, &c, acc, &logdir.0, "the directory became writable");
}
