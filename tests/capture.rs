//! `ironhoard capture` against the XDP backend in a lab (needs root): the
//! moves in the pcap are byte for byte what pktgen sent, tshark reads it,
//! pktgen replays it (every move a DUPLICATE), `--acks --status` keeps the
//! right frames, and a capture never outlives its client.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironhoard_labtests::{bin, dies_with_test, sh, Appliance, ChildGuard, Lab, Settings};
use serde_json::Value;

fn xdp() -> Settings {
    Settings { backend: "xdp", ..Default::default() }
}

/// ironhoard-pktgen in the lab's namespace; returns its report.
fn pktgen(lab: &Lab, a: &Appliance, tag: &str, args: &[&str]) -> Value {
    let report = a.dir.0.join(format!("report-{tag}.json"));
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns])
        .arg(bin("ironhoard-pktgen"))
        .arg("--target")
        .arg(format!("{}:{}", lab.host_v4, a.settings.port))
        .arg("--secret-file")
        .arg(a.dir.0.join("secret0.hex"))
        .arg("--report")
        .arg(&report)
        .args(["--quiet", "--board", &format!("{}x{}", a.settings.board.0, a.settings.board.1)])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "pktgen failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

/// Starts `ironhoard capture` and waits until it says it captures.
fn start_capture(a: &Appliance, out: &Path, args: &[&str]) -> ChildGuard {
    let mut c = dies_with_test(&mut Command::new(bin("ironhoard")))
        .arg("capture")
        .arg("--socket")
        .arg(&a.stats_socket)
        .arg("--out")
        .arg(out)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ironhoard capture");
    let err = c.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            eprintln!("capture: {l}");
            if l.contains("capturing on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap_or_else(|_| panic!("ironhoard capture did not start; appliance log: {}", a.log()));
    ChildGuard(Some(c))
}

/// Waits for the capture to exit by itself; its JSON summary.
fn finish(mut g: ChildGuard, within: Duration) -> Value {
    let mut c: Child = g.0.take().unwrap();
    let t0 = Instant::now();
    let st = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > within {
            let _ = c.kill();
            panic!("ironhoard capture still running after {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut s = String::new();
    std::io::Read::read_to_string(&mut c.stdout.take().unwrap(), &mut s).unwrap();
    assert!(st.success(), "ironhoard capture exited {st}: {s}");
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("summary {s:?}: {e}"))
}

/// A pcap's records: (linktype, [(ts_ns, orig_len, bytes)]), read here
/// independently of the code under test.
fn read_pcap(p: &Path) -> (u32, Vec<(u64, u32, Vec<u8>)>) {
    let b = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    assert!(b.len() >= 24, "{}: no pcap header", p.display());
    let le32 = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
    let ns = match le32(0) {
        0xa1b2_3c4d => true,
        0xa1b2_c3d4 => false,
        m => panic!("{}: magic {m:#x}", p.display()),
    };
    let mut v = Vec::new();
    let mut o = 24;
    while o < b.len() {
        let (sec, frac, incl, orig) = (le32(o) as u64, le32(o + 4) as u64, le32(o + 8) as usize, le32(o + 12));
        let ts = sec * 1_000_000_000 + if ns { frac } else { frac * 1000 };
        v.push((ts, orig, b[o + 16..o + 16 + incl].to_vec()));
        o += 16 + incl;
    }
    assert_eq!(o, b.len(), "{}: a truncated record", p.display());
    (le32(20), v)
}

/// The UDP payload of an untagged IPv4 Ethernet frame (what the lab sends).
fn udp_payload(f: &[u8]) -> &[u8] {
    assert_eq!(&f[12..14], &[0x08, 0x00], "IPv4 frame");
    let ihl = (f[14] & 0x0f) as usize * 4;
    assert_eq!(f[14 + 9], 17, "UDP");
    let l4 = 14 + ihl;
    let ulen = u16::from_be_bytes([f[l4 + 4], f[l4 + 5]]) as usize;
    &f[l4 + 8..l4 + ulen]
}

fn capture_active(a: &Appliance) -> (bool, Value) {
    let s = a.stats();
    let on = s["queues"].as_array().unwrap().iter().any(|q| q["capture_active"] == true);
    (on, s["capture"].clone())
}

#[test]
fn captured_moves_are_what_pktgen_sent_and_replay_as_duplicates() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, xdp());
    let f: PathBuf = a.dir.0.join("cap.pcap");
    let sent_pcap = a.dir.0.join("sent.pcap");
    let n = 300u64;
    let cap = start_capture(&a, &f, &["--count", &n.to_string()]);
    let r = pktgen(&lab, &a, "gen", &["--rate", "5000", "--count", &n.to_string(), "--players", "20", "--write-pcap", sent_pcap.to_str().unwrap()]);
    assert_eq!((r["sent"].as_u64(), r["acked"].as_u64()), (Some(n), Some(n)), "{r}");
    let s = finish(cap, Duration::from_secs(10));
    assert_eq!(s["frames"].as_u64(), Some(n), "{s}");
    assert_eq!((s["moves"].as_u64(), s["acks"].as_u64(), s["skipped"].as_u64()), (Some(n), Some(0), Some(0)), "{s}");
    assert_eq!(s["reason"], "count", "{s}");
    assert_eq!(s["queues"]["0"]["frames"].as_u64(), Some(n), "{s}");
    assert_eq!(s["file"], f.display().to_string());

    // byte for byte the moves pktgen sent, in order
    let (lt, got) = read_pcap(&f);
    assert_eq!(lt, 1, "Ethernet link type");
    let (_, want) = read_pcap(&sent_pcap);
    assert_eq!(got.len(), n as usize);
    assert_eq!(want.len(), n as usize);
    for (i, ((ts, orig, g), (_, _, w))) in got.iter().zip(&want).enumerate() {
        assert_eq!(udp_payload(g), udp_payload(w), "move {i}");
        assert_eq!(udp_payload(g).len(), 64);
        assert_eq!(*orig as usize, g.len(), "whole frame kept");
        // the frame as it arrived: to the appliance's MAC and address
        assert_eq!(&g[30..34], &lab.host_v4.octets(), "destination address of move {i}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        assert!(*ts <= now && now - ts < 60_000_000_000, "timestamp {ts} is wall-clock time");
    }
    assert!(got.windows(2).all(|w| w[0].0 <= w[1].0), "timestamps in order");

    // tshark reads it
    if Path::new("/usr/bin/tshark").exists() {
        let t = sh(&["tshark", "-r", f.to_str().unwrap(), "-T", "fields", "-e", "udp.dstport", "-e", "udp.length"]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), n as usize, "{t}");
        assert!(lines.iter().all(|l| l.split_whitespace().collect::<Vec<_>>() == ["7777", "72"]), "{t}");
    } else {
        eprintln!("tshark not installed: skipping the tshark check");
    }

    // pktgen replays it; meanwhile a capture of DUPLICATEs with their acks
    let f2 = a.dir.0.join("dup.pcap");
    let cap2 = start_capture(&a, &f2, &["--acks", "--status", "duplicate", "--count", "40"]);
    let accepted = a.stats()["accepted"].as_u64().unwrap();
    let rr = pktgen(&lab, &a, "replay", &["--replay", f.to_str().unwrap(), "--replay-rate", "3000"]);
    assert_eq!(rr["sent"].as_u64(), Some(n), "{rr}");
    assert_eq!(rr["by_status"]["duplicate"].as_u64(), Some(n), "every replayed move is a DUPLICATE: {rr}");
    assert_eq!(a.stats()["accepted"].as_u64(), Some(accepted), "nothing accepted twice");
    let s2 = finish(cap2, Duration::from_secs(10));
    assert_eq!((s2["frames"].as_u64(), s2["moves"].as_u64(), s2["acks"].as_u64()), (Some(40), Some(20), Some(20)), "{s2}");
    let (_, recs) = read_pcap(&f2);
    assert_eq!(recs.len(), 40);
    for (i, pair) in recs.chunks(2).enumerate() {
        let (mv, ack) = (udp_payload(&pair[0].2), udp_payload(&pair[1].2));
        assert_eq!((mv.len(), &mv[0..2]), (64, &b"IH"[..]), "record {} is a move", 2 * i);
        assert_eq!((ack.len(), &ack[0..2]), (48, &b"IA"[..]), "record {} is its ack", 2 * i + 1);
        assert_eq!(ack[4], 1, "ack status DUPLICATE");
        assert_eq!(&ack[8..32], &mv[8..32], "the ack echoes its move");
        assert!(want.iter().any(|(_, _, w)| udp_payload(w) == mv), "a move pktgen sent");
        // the ack goes back where the move came from
        assert_eq!(&pair[1].2[26..30], &pair[0].2[30..34]);
        assert_eq!(&pair[1].2[30..34], &pair[0].2[26..30]);
    }
    assert_eq!(capture_active(&a), (false, Value::Null), "no capture left running");
}

#[test]
fn a_client_that_goes_away_stops_the_capture() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, xdp());
    let f = a.dir.0.join("gone.pcap");
    let mut cap = start_capture(&a, &f, &[]);
    let (on, what) = capture_active(&a);
    assert!(on, "the poller holds a ring while the capture runs");
    let pid = cap.0.as_ref().unwrap().id();
    assert!(what.as_str().unwrap().contains(&format!("pid {pid}")), "{what}");

    // a second capture is refused, naming the first
    let out = Command::new(bin("ironhoard"))
        .args(["capture", "--count", "1", "--socket"])
        .arg(&a.stats_socket)
        .arg("--out")
        .arg(a.dir.0.join("second.pcap"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a second capture must be refused");
    assert!(err.contains("already running") && err.contains(&format!("pid {pid}")), "{err}");
    assert!(!a.dir.0.join("second.pcap").exists(), "a refused capture leaves no file");

    // kill -9: no goodbye; the appliance notices and removes the ring
    let mut c = cap.0.take().unwrap();
    c.kill().unwrap();
    c.wait().unwrap();
    let t0 = Instant::now();
    loop {
        if capture_active(&a) == (false, Value::Null) {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(3), "capture still active 3 s after its client died: {}", a.stats());
        std::thread::sleep(Duration::from_millis(20));
    }

    // the slot is free again; Ctrl-C ends a capture with a complete file
    let f3 = a.dir.0.join("sigint.pcap");
    let cap3 = start_capture(&a, &f3, &[]);
    pktgen(&lab, &a, "few", &["--rate", "1000", "--count", "10", "--players", "5"]);
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(cap3.0.as_ref().unwrap().id() as i32, libc::SIGINT) };
    let s = finish(cap3, Duration::from_secs(10));
    assert_eq!(s["frames"].as_u64(), Some(10), "{s}");
    assert_eq!(s["reason"], "interrupted", "{s}");
    assert_eq!(s["complete"], true, "{s}");
    assert_eq!(read_pcap(&f3).1.len(), 10);
    assert_eq!(capture_active(&a), (false, Value::Null));
}

#[test]
fn capture_options_are_checked() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, xdp());
    let run = |args: &[&str]| {
        let out = Command::new(bin("ironhoard"))
            .arg("capture")
            .arg("--socket")
            .arg(&a.stats_socket)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?} must fail");
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let out = a.dir.0.join("x.pcap");
    let o = out.to_str().unwrap();
    assert!(run(&["--queue", "5", "--out", o]).contains("queue 5"));
    assert!(run(&["--status", "ACCEPT", "--out", o]).contains("ACCEPT"));
    assert!(run(&["--duration=0", "--out", o]).contains("--duration"));
    assert!(run(&["--out", "/nonexistent/dir/x.pcap"]).contains("/nonexistent/dir/x.pcap"));
    assert_eq!(capture_active(&a), (false, Value::Null));
}
