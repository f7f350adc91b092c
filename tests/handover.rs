//! Restart without loss (SPEC §2): `ironhoard run` started while another
//! appliance serves the same config takes over from it. Under load, with 5 %
//! of the datagrams retransmits of earlier moves: the old appliance exits 0
//! by itself, the generator loses nothing (every move sent across the
//! handover is answered), the moves queued during the swap were served
//! from the bridge, and every move the client saw ACCEPTED is in the log
//! exactly once (a retransmit of a move the old one accepted is never
//! accepted again by the new one). Both backends.

use std::process::Command;
use std::time::{Duration, Instant};

use ironhoard_labtests::logcheck::assert_log_matches_client;
use ironhoard_labtests::nats::{finish, pktgen_with, settings};
use ironhoard_labtests::{bin, dies_with_test, Appliance, ChildGuard, Lab, Settings, TempDir};

fn take_over_under_load(backend: &'static str, queues: u32) {
    ironhoard_labtests::require_root();
    let lab = Lab::new(queues);
    let mut a = Appliance::start(&lab, Settings { queues, ..settings(backend) });
    let out = TempDir::new("handover");
    let secret = a.dir.0.join("secret0.hex");
    // 60 000 moves at 20 000/s: the handover happens about a second in.
    // The generator waits up to 10 s for the last acks: the successor opens
    // (and prefaults) the move log before it serves what queued meanwhile,
    // which takes seconds with the test's debug build.
    // IH_HANDOVER_RATE: a heavier run by hand (the count is three seconds' worth)
    let rate: u64 = std::env::var("IH_HANDOVER_RATE").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let gen = pktgen_with(&lab, &secret, &out.0, rate, 3 * rate, "socket", &["--drain-ms", "10000"]);
    std::thread::sleep(Duration::from_millis(1000));
    let before = a.stats();
    assert!(before["accepted"].as_u64().unwrap() > 0, "the old appliance serves before the handover: {before}");

    // the successor: same config, same stats socket
    let log_b = std::fs::File::create(a.dir.0.join("successor.log")).unwrap();
    let t0 = Instant::now();
    let b = dies_with_test(&mut Command::new(bin("ironhoard")))
        .args(["run", "--config"])
        .arg(&a.config)
        .arg("--stats-socket")
        .arg(&a.stats_socket)
        .stdout(log_b.try_clone().unwrap())
        .stderr(log_b)
        .spawn()
        .unwrap();
    let mut b = ChildGuard(Some(b));
    // the old one hands over and exits 0 by itself
    let mut old = a.child.take().unwrap();
    let st = loop {
        if let Some(st) = old.try_wait().unwrap() {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "the old appliance did not exit: {}", a.log());
        std::thread::sleep(Duration::from_millis(10));
    };
    let succ_log = || std::fs::read_to_string(a.dir.0.join("successor.log")).unwrap_or_default();
    assert!(st.success(), "the old appliance exited with {st}: {}\nsuccessor: {}", a.log(), succ_log());
    assert!(a.log().contains("handed over to pid"), "old appliance's log: {}", a.log());

    let report = finish(gen, &out.0);
    let cmd = format!("grep '^Udp:' /proc/net/snmp; ip -s link show {}; ip netns exec {} ip -s link show {}", lab.host_if, lab.ns, lab.peer_if);
    eprintln!("kernel:\n{}", ironhoard_labtests::sh(&["sh", "-c", &cmd]));
    eprintln!("pktgen: {report}");
    let after = a.stats();
    eprintln!("successor: {after}");
    let info = a.command("show info");
    assert!(info["handed_over_by"].as_str().unwrap_or("").starts_with("pid "), "show info: {info}\n{}", succ_log());
    assert_eq!(report["lost"].as_u64(), Some(0), "moves sent across the handover went unanswered: {report}\nold: {}\nnew: {}", a.log(), succ_log());
    if backend == "xdp" {
        let bridged: u64 = after["queues"].as_array().unwrap().iter().map(|q| q["bridged"].as_u64().unwrap()).sum();
        assert!(bridged > 0, "no move was served from the bridge: the handover was not exercised under load: {after}");
        assert_eq!(after["xdp"]["no_socket"].as_u64(), Some(0), "moves dropped for want of a socket: {after}");
    }
    // every ACCEPTED move once in the log, nothing accepted twice
    let (acked, logged) = assert_log_matches_client(&a.dir.0.join("log"), &out.0.join("accepted.txt"), 0);
    eprintln!("{backend}: {acked} moves acked ACCEPTED, {logged} in the log");
    assert!(acked as u64 > 5 * rate / 2, "too few moves accepted: {acked}");

    // the sequence, for the record
    for l in a.log().lines().chain(succ_log().lines()) {
        if ["handed over", "drained in", "read in", "took over", "handover complete", "steers the moves", "move log "].iter().any(|k| l.contains(k)) {
            eprintln!("{l}");
        }
    }
    // the successor stops cleanly like any appliance
    let mut c = b.0.take().unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
    let st = c.wait().unwrap();
    assert!(st.success(), "successor exit {st}: {}", succ_log());
}

#[test]
fn xdp_backend_hands_over_under_load_and_loses_nothing() {
    take_over_under_load("xdp", 2);
}

#[test]
fn socket_backend_hands_over_under_load_and_loses_nothing() {
    take_over_under_load("socket", 2);
}

/// A successor whose config differs in what a handover keeps (here the
/// move port) is refused: the running appliance serves on.
#[test]
fn a_successor_with_another_port_is_refused_and_the_running_one_serves_on() {
    ironhoard_labtests::require_root();
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, settings("xdp"));
    let out = Command::new(bin("ironhoard"))
        .args(["run", "--config"])
        .arg(&a.config)
        .arg("--stats-socket")
        .arg(&a.stats_socket)
        .args(["--port", "7778"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the successor should fail: {err}");
    assert!(err.contains("refused the handover") && err.contains("7778"), "{err}");
    let s = a.stats();
    assert_eq!(s["backend"], "xdp", "{s}");
    // still serving
    let c = ironhoard_labtests::Client::new(&lab, false, 7777);
    let r = ironhoard_labtests::Client::mv(0, 1, 1, 1);
    assert_eq!(c.send(&r), Some(ironhoard_wire::Status::Accepted), "{}", a.log());
}
