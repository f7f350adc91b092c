//! ironhoard-pktgen against the appliance in a lab (needs root): every
//! ACCEPTED counted once on both sides, hostile traffic never answered,
//! report fields consistent, pcap out readable by tshark and replayable by
//! tcpreplay, and replay of a tcpdump capture.

use std::process::{Command, Stdio};
use std::time::Duration;

use ironhoard_labtests::logcheck::assert_log_matches_client;
use ironhoard_labtests::{bin, sh, Appliance, Lab, Settings};
use serde_json::Value;

fn pktgen(lab: &Lab, a: &Appliance, args: &[&str]) -> Value {
    let suffix = rand_suffix();
    let report = a.dir.0.join(format!("report-{suffix}.json"));
    let accepted = a.dir.0.join(format!("accepted-{suffix}.txt"));
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
        "--accepted-out".into(),
        accepted.display().to_string(),
        "--board".into(),
        format!("{}x{}", a.settings.board.0, a.settings.board.1),
    ];
    v.extend(args.iter().map(|s| s.to_string()));
    let out = Command::new(&v[0]).args(&v[1..]).stdin(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "pktgen failed ({}): {err}", out.status);
    assert!(err.contains("safety: no forged"), "{err}");
    let mut r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    r["accepted_file"] = accepted.display().to_string().into();
    r
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
        o.remove("histogram_kernel_ns");
        o.remove("queues");
    }
    v
}

/// sent = acked + lost + silently dropped by design; hostile never acked;
/// no move accepted twice; the move log holds exactly what the client saw
/// ACCEPTED (plus, at most, moves whose ack was lost).
/// The appliance's own books, which hold whatever the network lost: every
/// datagram it received was either dropped (counted by reason) or acked
/// with exactly one status, and every ack was sent. Polls until the
/// counters (published after each batch's TX) settle.
fn appliance_accounting(a: &Appliance) -> Value {
    let t0 = std::time::Instant::now();
    loop {
        let s = a.stats();
        let statuses: u64 = ["accepted", "duplicate", "stale", "invalid", "rate_limited", "busy"].iter().map(|k| u(&s, k)).sum();
        let dropped: u64 = s["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
        if u(&s, "rx") == statuses + dropped && u(&s, "tx") == statuses {
            assert_eq!(u(&s, "tx_errors"), 0, "{}", brief(&s));
            return s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "appliance books do not balance: rx {} != statuses {statuses} + dropped {dropped}, or tx {} != statuses: {}",
            u(&s, "rx"),
            u(&s, "tx"),
            brief(&s)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_consistent(r: &Value, _stats: &Value, a: &Appliance) {
    let stats = &appliance_accounting(a);
    // what the client missed is explained by the network: datagrams that
    // never reached the appliance, and acks it sent that never came back
    let not_received = u(r, "sent").saturating_sub(u(stats, "rx"));
    let not_returned = u(stats, "tx").saturating_sub(u(r, "acked"));
    assert!(u(stats, "rx") <= u(r, "sent") && u(r, "acked") <= u(stats, "tx"), "{} {}", brief(r), brief(stats));
    assert!(u(r, "lost") <= not_received + not_returned, "lost {} > {not_received} never received + {not_returned} acks not returned", u(r, "lost"));
    let dropped: u64 = stats["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert!(dropped <= u(r, "silently_dropped_expected"), "the appliance dropped {dropped}, more than the {} hostile datagrams sent", u(r, "silently_dropped_expected"));
    assert_eq!(r["hostile"]["acked_when_it_must_not"], 0, "{}", brief(r));
    assert_eq!(r["hostile"]["accepted_twice"], 0, "{}", brief(r));
    assert_eq!(r["unverifiable_acks"], 0, "{}", brief(r));
    let by: u64 = r["by_status"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by, u(r, "acked"));
    let accepted_file = std::path::PathBuf::from(r["accepted_file"].as_str().unwrap());
    let (acked, logged) = assert_log_matches_client(&a.dir.0.join("log"), &accepted_file, u(r, "lost"));
    assert_eq!(acked as u64, r["by_status"]["accepted"].as_u64().unwrap(), "the client's accepted set is its ACCEPTED acks");
    assert_eq!(logged as u64, stats["accepted"].as_u64().unwrap(), "the appliance's counter agrees with its log");
    assert!(u(stats, "tx") >= u(r, "acked"), "the client cannot get more acks than were sent");
    for k in ["p50", "p99", "p999", "max"] {
        assert!(r["latency_ns"][k].as_u64().unwrap() > 0, "{k}");
    }
    assert!(!r["histogram_ns"].as_array().unwrap().is_empty());
}

/// A socket-mode run: every verified ack has a kernel RTT (its sendmsg's
/// TX stamp to its own RX stamp), never longer than the same ack's
/// user-space RTT (the kernel stamps lie inside the user-space interval).
fn check_kernel_rtt(r: &Value) {
    let k = &r["latency_kernel_ns"];
    assert!(k.is_object(), "no kernel RTT: {}", brief(r));
    // all but the first few: the kernel turns RX timestamping on through a
    // work item, so acks right after the socket asked may come unstamped
    let (stamped, acked) = (u(r, "kernel_stamped_acks"), u(r, "acked") - r["hostile"]["acked_when_it_must_not"].as_u64().unwrap());
    assert!(stamped <= acked && stamped * 100 >= acked * 99, "{stamped} of {acked} acks stamped: {}", brief(r));
    assert_eq!(r["tx_stamps"]["unreported"], 0, "{}", brief(r));
    for q in ["p50", "p99", "max"] {
        let (kq, uq) = (k[q].as_u64().unwrap(), r["latency_ns"][q].as_u64().unwrap());
        assert!(kq > 0 && kq <= uq + uq / 100, "kernel {q} {kq} ns vs user-space {uq} ns: {}", brief(r));
    }
    assert!(r["rx_wait_ns"]["p50"].as_u64().unwrap() > 0);
    assert!(!r["histogram_kernel_ns"].as_array().unwrap().is_empty());
}

fn hostile_run(backend: &'static str) {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend, players_per_worker: 4096, ..Default::default() });
    let r = pktgen(&lab, &a, &["--rate", "20000", "--count", "40000", "--duration", "60", "--games", "4", "--players", "50", "--invalid-ratio", "0.2"]);
    let s = a.stats();
    check_consistent(&r, &s, &a);
    check_kernel_rtt(&r);
    assert_eq!(u(&r, "sent"), 40_000, "{}", brief(&r));
    assert!(r["generated"]["forged"].as_u64().unwrap() > 1000);
    assert!(r["by_status"]["duplicate"].as_u64().unwrap() + r["by_status"]["stale"].as_u64().unwrap() > 1000, "replays answered as such");
    // the appliance dropped exactly the hostile datagrams that arrived
    let dropped: u64 = s["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    if u(&r, "lost") == 0 {
        assert_eq!(dropped, u(&r, "silently_dropped_expected"), "{}", brief(&s));
        assert_eq!(u(&s, "rx"), u(&r, "sent"), "{}", brief(&s));
    } else {
        eprintln!("{} datagrams lost on the way: the exact drop and rx counts cannot be checked, only the log (above)", u(&r, "lost"));
    }
}

#[test]
fn hostile_mix_against_the_xdp_backend() {
    hostile_run("xdp");
}

#[test]
fn hostile_mix_against_the_socket_backend() {
    hostile_run("socket");
}

/// pktgen receiving its acks through AF_XDP (`io`: its send and receive
/// paths, `send` socket or xdp) against the XDP backend: every ack back,
/// user-space RTT only, and the generator's XDP program gone with it.
fn xdp_receive_run(mode: &[&str], send: &str) {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend: "xdp", players_per_worker: 4096, ..Default::default() });
    let mut args = mode.to_vec();
    args.extend(["--iface", &lab.peer_if, "--rate", "20000", "--count", "40000", "--duration", "60", "--players", "100", "--invalid-ratio", "0.2"]);
    let r = pktgen(&lab, &a, &args);
    let s = a.stats();
    check_consistent(&r, &s, &a);
    assert_eq!((r["io"]["send"].as_str(), r["io"]["receive"].as_str()), (Some(send), Some("xdp")), "{}", brief(&r));
    if send == "socket" {
        // kernel UDP sends are stamped by the kernel, AF_XDP arrivals by our
        // XDP program: a kernel RTT for (nearly) every ack
        check_kernel_rtt(&r);
    } else {
        assert!(r["latency_kernel_ns"].is_null(), "AF_XDP sends have no kernel TX timestamps: {}", brief(&r));
    }
    assert_eq!(u(&r, "sent"), 40_000, "{}", brief(&r));
    let expected = u(&r, "sent") - u(&r, "silently_dropped_expected");
    assert!(u(&r, "acked") * 100 >= expected * 99, "the acks came back through AF_XDP: {}", brief(&r));
    assert!(r["rx_socket_drops"].is_u64(), "the AF_XDP receiver's own drops are known: {}", brief(&r));
    let link = lab.exec(&["ip", "-d", "link", "show", "dev", &lab.peer_if]);
    assert!(!link.contains("prog/xdp"), "the generator's XDP program is gone with it: {link}");
}

/// The AF_XDP receiver's own drops are reported (its socket's
/// XDP_STATISTICS): a receiver asleep 300 ms whenever its ring is empty
/// falls behind 50 k acks/s, and the acks its ring had no room for are
/// counted in rx_socket_drops, and among the lost.
#[test]
fn an_xdp_receiver_that_falls_behind_reports_its_own_drops() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend: "xdp", players_per_worker: 4096, ..Default::default() });
    let args = ["--rx-mode", "xdp", "--iface", &lab.peer_if, "--rx-idle-us", "300000", "--rate", "50000", "--count", "50000", "--duration", "10", "--players", "100"];
    let r = pktgen(&lab, &a, &args);
    let drops = u(&r, "rx_socket_drops");
    assert!(drops > 0, "a receiver asleep 300 ms at a time drops acks: {}", brief(&r));
    assert!(drops <= u(&r, "lost"), "its drops are among the lost: {}", brief(&r));
}

#[test]
fn xdp_mode_generator_against_the_xdp_backend() {
    xdp_receive_run(&["--mode", "xdp"], "xdp");
}

#[test]
fn socket_sends_with_xdp_receive_against_the_xdp_backend() {
    xdp_receive_run(&["--rx-mode", "xdp"], "socket");
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
    let mut td = ironhoard_labtests::ChildGuard(Some(
        ironhoard_labtests::dies_with_test(&mut Command::new("ip"))
            .args(["netns", "exec", &lab.ns, "tcpdump", "-i", &lab.peer_if, "-w", cap.to_str().unwrap(), "-U", "udp and dst port 7777"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    // capture starts when tcpdump says it listens (not after a guessed delay)
    let err = td.0.as_mut().unwrap().stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if l.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30)).expect("tcpdump says it is listening");
    let r1 = pktgen(&lab, &a, &["--rate", "2000", "--count", "400", "--duration", "5", "--players", "10", "--forged-ratio", "0.1"]);
    std::thread::sleep(Duration::from_millis(300));
    let mut tdc = td.0.take().unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(tdc.id() as i32, libc::SIGINT) };
    tdc.wait().unwrap();
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
    check_consistent(&r, &s, &a);
    assert_eq!(u(&r, "sent"), 20001, "{}", brief(&r));
    check_kernel_rtt(&r);
    // each player's seqs come from one thread, in order: nothing is a duplicate
    assert_eq!(r["by_status"]["duplicate"], 0, "{}", brief(&r));
    assert_eq!(r["by_status"]["accepted"].as_u64().unwrap(), u(&r, "acked"));
}

/// How a test responder misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Responder {
    /// SPEC behaviour: a bad tag gets nothing; a seq is ACCEPTED once,
    /// DUPLICATE after.
    Honest,
    /// Also acks moves whose tag does not verify (forged, wrong key).
    AcksForged,
    /// Verifies tags, but ACCEPTS a replayed seq again.
    AcceptsTwice,
}

/// A small UDP responder on 127.0.0.1 (in this test, not the appliance),
/// answering as `mode` says, until dropped.
struct Fake {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Fake {
    fn start(mode: Responder, secret: [u8; 32]) -> Fake {
        use ironhoard_wire::{ack_in_place, MasterKey, Move, Status};
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let addr = sock.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let st = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mk = MasterKey::new(&secret);
            let mut seen: std::collections::HashSet<(u32, u32, u64)> = Default::default();
            let mut buf = [0u8; 2048];
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else { continue };
                let Ok(m) = Move::new_checked(&buf[..n]) else { continue };
                if m.check_header().is_err() {
                    continue;
                }
                let (g, p, s) = (m.game_id(), m.player_id(), m.seq());
                let mac = mk.player_mac(g, p);
                // one master secret, key_id 0: anything else is unknown
                if (m.key_id() != 0 || !m.verify_tag(&mac)) && mode != Responder::AcksForged {
                    continue;
                }
                let fresh = seen.insert((g, p, s));
                let status = if fresh || mode == Responder::AcceptsTwice { Status::Accepted } else { Status::Duplicate };
                ack_in_place(&mut buf[..n], status, &mac);
                let _ = sock.send_to(&buf[..48], from);
            }
        });
        Fake { addr, stop, thread: Some(thread) }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// ironhoard-pktgen with a hostile mix against a responder: exit code and stderr.
fn pktgen_against(mode: Responder) -> (Option<i32>, String) {
    let t = ironhoard_labtests::TempDir::new("fake");
    let secret = ironhoard_labtests::secret(0);
    let sf = t.0.join("secret0.hex");
    std::fs::write(&sf, format!("{}\n", hex::encode(secret))).unwrap();
    sh(&["chmod", "600", sf.to_str().unwrap()]);
    let fake = Fake::start(mode, secret);
    let out = Command::new(bin("ironhoard-pktgen"))
        .args(["--target", &fake.addr.to_string(), "--quiet", "--rate", "2000", "--count", "3000", "--duration", "10"])
        .args(["--games", "2", "--players", "20", "--invalid-ratio", "0.2", "--replay-ratio", "0.2", "--drain-ms", "200"])
        .arg("--secret-file")
        .arg(&sf)
        .arg("--report")
        .arg(t.0.join("r.json"))
        .output()
        .unwrap();
    drop(fake);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The generator's safety detectors fire: a responder that acks forged
/// moves, and one that accepts a move twice, each make it exit 3; an honest
/// one does not (so the 0 reported against the appliance means "looked").
#[test]
fn the_generators_safety_detectors_fire() {
    let (code, err) = pktgen_against(Responder::Honest);
    assert_eq!(code, Some(0), "honest responder: {err}");
    assert!(err.contains("safety: no forged"), "{err}");
    let (code, err) = pktgen_against(Responder::AcksForged);
    assert_eq!(code, Some(3), "a responder acking forged moves: {err}");
    assert!(err.contains("SAFETY VIOLATION") && !err.contains(" 0 hostile datagrams answered"), "{err}");
    let (code, err) = pktgen_against(Responder::AcceptsTwice);
    assert_eq!(code, Some(3), "a responder accepting replays: {err}");
    assert!(err.contains("SAFETY VIOLATION") && !err.contains(" 0 moves accepted twice"), "{err}");
}

/// The independent Python client (scripts/demo_client.py: standard library
/// only, its own key derivation, move encoding and ack verification)
/// against a lab appliance: every ack verifies, replays are never accepted,
/// forged moves are never answered.
#[test]
fn the_independent_python_client_agrees_with_the_appliance() {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend: "xdp", players_per_worker: 4096, ..Default::default() });
    let report = a.dir.0.join("python-client.json");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/demo_client.py");
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns, "python3", script, "--target", &format!("{}:{}", lab.host_v4, a.settings.port)])
        .arg("--secret-file")
        .arg(a.dir.0.join("secret0.hex"))
        .args(["--players", "20", "--moves", "1500", "--hostile", "0.1", "--report"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(out.status.success(), "python client: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    for k in ["forged_acked", "replays_accepted", "bad_ack_tags", "lost"] {
        assert_eq!(r[k], 0, "{k}: {r}");
    }
    assert!(r["forged_sent"].as_u64().unwrap() > 10 && r["replays_sent"].as_u64().unwrap() > 10, "{r}");
    let by = &r["by_status"];
    let n = |k: &str| by[k].as_u64().unwrap();
    assert_eq!(n("accepted"), r["fresh_sent"].as_u64().unwrap(), "every fresh move ACCEPTED: {r}");
    assert_eq!(n("duplicate") + n("stale"), r["replays_sent"].as_u64().unwrap(), "every replay DUPLICATE or STALE: {r}");
    let s = appliance_accounting(&a);
    assert_eq!(s["accepted"], by["accepted"], "the appliance accepted exactly what the client saw accepted");
    assert_eq!(s["dropped"]["bad_tag"], r["forged_sent"], "every forged move dropped for its tag");
}
