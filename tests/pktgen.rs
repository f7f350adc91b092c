//! ironhoard-pktgen against the appliance in a lab (needs root): every
//! ACCEPTED counted once on both sides, hostile traffic never answered,
//! report fields consistent, pcap out readable by tshark and replayable by
//! tcpreplay, and replay of a tcpdump capture.

use std::process::{Command, Stdio};
use std::time::Duration;

use ironhoard_labtests::{bin, sh, Appliance, Lab, Settings};
use serde_json::Value;

fn pktgen(lab: &Lab, a: &Appliance, args: &[&str]) -> Value {
    let report = a.dir.0.join(format!("report-{}.json", rand_suffix()));
    let secret = a.dir.0.join("secret0.hex");
    let target = format!("{}:{}", lab.host_v4, a.settings.port);
    let mut v: Vec<String> = vec![
        "ip".into(),
        "netns".into(),
        "exec".into(),
        lab.ns.clone(),
        bin("ironhoard-pktgen").display().to_string(),
        "--target".into(),
        target,
        "--secret-file".into(),
        secret.display().to_string(),
        "--report".into(),
        report.display().to_string(),
        "--quiet".into(),
        "--board".into(),
        format!("{}x{}", a.settings.board.0, a.settings.board.1),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    let out = Command::new(&v[0]).args(&v[1..]).stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pktgen failed ({}): {err}", out.status);
    assert!(err.contains("safety: no forged"), "{err}");
    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000_007
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {}", brief(v)))
}

/// A report without its histogram, for assertion messages.
fn brief(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("histogram_ns");
        o.remove("queues");
    }
    v
}

/// sent = acked + lost + silently dropped by design; hostile never acked;
/// no move accepted twice; the appliance accepted exactly what was acked.
fn check_consistent(r: &Value, stats: &Value) {
    assert_eq!(u(r, "sent"), u(r, "acked") + u(r, "lost") + u(r, "silently_dropped_expected"), "{}", brief(r));
    assert_eq!(r["hostile"]["acked_when_it_must_not"], 0, "{}", brief(r));
    assert_eq!(r["hostile"]["accepted_twice"], 0, "{}", brief(r));
    assert_eq!(r["unverifiable_acks"], 0, "{}", brief(r));
    let by: u64 = r["by_status"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by, u(r, "acked"));
    let (got, made) = (r["by_status"]["accepted"].as_u64().unwrap(), stats["accepted"].as_u64().unwrap());
    if u(r, "lost") == 0 {
        assert_eq!(got, made, "every ACCEPTED ack counted once on both sides");
    } else {
        assert!(got <= made, "never more ACCEPTED acks than the appliance accepted");
    }
    assert!(u(stats, "tx") >= u(r, "acked"), "the client cannot get more acks than were sent");
    for k in ["p50", "p99", "p999", "max"] {
        assert!(r["latency_ns"][k].as_u64().unwrap() > 0, "{k}");
    }
    assert!(!r["histogram_ns"].as_array().unwrap().is_empty());
}

fn hostile_run(backend: &'static str) {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend, players_per_worker: 4096, ..Default::default() });
    let r = pktgen(&lab, &a, &["--rate", "20000", "--duration", "2", "--games", "4", "--players", "50", "--invalid-ratio", "0.2"]);
    let s = a.stats();
    check_consistent(&r, &s);
    assert!(u(&r, "sent") > 30_000, "{}", brief(&r));
    assert!(r["generated"]["forged"].as_u64().unwrap() > 1000);
    assert!(r["by_status"]["duplicate"].as_u64().unwrap() + r["by_status"]["stale"].as_u64().unwrap() > 1000, "replays answered as such");
    // the appliance dropped exactly the hostile datagrams that arrived
    let dropped: u64 = s["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    if u(&r, "lost") == 0 {
        assert_eq!(dropped, u(&r, "silently_dropped_expected"), "{}", brief(&s));
        assert_eq!(u(&s, "rx"), u(&r, "sent"), "{}", brief(&s));
    }
    assert!((u(&r, "offered_pps") as f64) > 19_000.0, "{}", brief(&r));
}

#[test]
fn hostile_mix_against_the_xdp_backend() {
    hostile_run("xdp");
}

#[test]
fn hostile_mix_against_the_socket_backend() {
    hostile_run("socket");
}

#[test]
fn xdp_mode_generator_against_the_xdp_backend() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend: "xdp", players_per_worker: 4096, ..Default::default() });
    let r = pktgen(
        &lab,
        &a,
        &["--mode", "xdp", "--iface", &lab.peer_if, "--rate", "20000", "--duration", "2", "--players", "100", "--invalid-ratio", "0.2"],
    );
    let s = a.stats();
    check_consistent(&r, &s);
    assert!(u(&r, "acked") > 30_000, "{}", brief(&r));
    // the generator's own XDP program is gone with it
    let link = lab.exec(&["ip", "-d", "link", "show", "dev", &lab.peer_if]);
    assert!(!link.contains("prog/xdp"), "{link}");
}

#[test]
fn pcap_out_reads_in_tshark_and_replays_with_tcpreplay() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend: "xdp", ..Default::default() });
    let pcap = a.dir.0.join("gen.pcap");
    let host_mac = std::fs::read_to_string(format!("/sys/class/net/{}/address", lab.host_if)).unwrap();
    let peer_mac = lab.exec(&["cat", &format!("/sys/class/net/{}/address", lab.peer_if)]);
    let r = pktgen(
        &lab,
        &a,
        &[
            "--rate", "5000", "--count", "300", "--duration", "5", "--players", "20",
            "--write-pcap", pcap.to_str().unwrap(),
            "--pcap-src-mac", peer_mac.trim(), "--pcap-dst-mac", host_mac.trim(),
        ],
    );
    assert_eq!(u(&r, "sent"), 300);
    assert_eq!(u(&r, "acked"), 300);
    // tshark decodes every frame as UDP to the move port with a 64-byte payload
    let t = sh(&["tshark", "-r", pcap.to_str().unwrap(), "-T", "fields", "-e", "udp.dstport", "-e", "udp.length"]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines.len(), 300, "{t}");
    assert!(lines.iter().all(|l| l.split_whitespace().collect::<Vec<_>>() == ["7777", "72"]), "{t}");
    // tcpreplay the capture into the lab: every move comes back as DUPLICATE
    let before = a.stats();
    lab.exec(&["tcpreplay", "-q", "-i", &lab.peer_if, pcap.to_str().unwrap()]);
    let t0 = std::time::Instant::now();
    loop {
        let s = a.stats();
        if u(&s, "duplicate") - u(&before, "duplicate") == 300 {
            assert_eq!(u(&s, "tx") - u(&before, "tx"), 300, "an ack for every replayed move");
            assert_eq!(s["accepted"], before["accepted"], "nothing accepted twice");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "tcpreplay'd moves not all answered: {s}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn replays_a_tcpdump_capture() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend: "xdp", ..Default::default() });
    let cap = a.dir.0.join("tcpdump.pcap");
    let mut td = Command::new("ip")
        .args(["netns", "exec", &lab.ns, "tcpdump", "-i", &lab.peer_if, "-w", cap.to_str().unwrap(), "-U", "udp and dst port 7777"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let r1 = pktgen(&lab, &a, &["--rate", "2000", "--count", "400", "--duration", "5", "--players", "10", "--forged-ratio", "0.1"]);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(td.id() as i32, libc::SIGINT) };
    td.wait().unwrap();
    let accepted_before = u(&a.stats(), "accepted");
    let r2 = pktgen(&lab, &a, &["--replay", cap.to_str().unwrap(), "--speed", "4"]);
    assert_eq!(u(&r2, "sent"), 400, "every captured datagram replayed: {r2}");
    let forged = r1["generated"]["forged"].as_u64().unwrap();
    assert_eq!(u(&r2, "silently_dropped_expected"), forged, "replay classifies forged moves by their tags");
    assert_eq!(u(&r2, "acked"), 400 - forged);
    assert_eq!(r2["by_status"]["duplicate"].as_u64().unwrap(), 400 - forged, "replayed moves are duplicates");
    assert_eq!(u(&a.stats(), "accepted"), accepted_before, "a replayed capture is never accepted again");
}

#[test]
fn a_rate_it_cannot_reach_is_reported_not_hidden() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend: "socket", ..Default::default() });
    let r = pktgen(&lab, &a, &["--rate", "50000000", "--duration", "1", "--players", "10", "--burst", "64"]);
    assert_eq!(r["rate_shortfall"], true, "{}", brief(&r));
    assert!(u(&r, "offered_pps") < 50_000_000);
    assert_eq!(u(&r, "asked_pps"), 50_000_000);
}

#[test]
fn two_sender_threads_share_players_rate_and_count() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend: "xdp", players_per_worker: 4096, ..Default::default() });
    let r = pktgen(&lab, &a, &["--threads", "2", "--rate", "20000", "--count", "20001", "--duration", "5", "--players", "100", "--burst", "8"]);
    let s = a.stats();
    check_consistent(&r, &s);
    assert_eq!(u(&r, "sent"), 20001, "{}", brief(&r));
    // each player's seqs come from one thread, in order: nothing is a duplicate
    assert_eq!(r["by_status"]["duplicate"], 0, "{}", brief(&r));
    assert_eq!(r["by_status"]["accepted"].as_u64().unwrap(), u(&r, "acked"));
}
