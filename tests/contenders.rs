//! The lab benchmark's contenders (bench/contenders) in a veth/netns lab
//! (needs root): `ih-bench-reflector` answers every move with an ack whose
//! tag verifies, and `ih-bench-tokio` answers every move and, running the
//! appliance's engine, never a forged one. The binaries are the workspace's
//! build (`cargo build --workspace` builds them: `make test` does).

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironhoard_labtests::{bin, cpu_ms, dies_with_test, secret, ChildGuard, Lab, TempDir};
use serde_json::Value;

/// A contender running on a lab's host side; killed on drop (also when a
/// test panics) unless [`stop`](Self::stop)ped.
struct Contender {
    name: &'static str,
    child: ChildGuard,
    out: PathBuf,
    err: PathBuf,
}

impl Contender {
    /// Starts `name` with `args` and waits until it says it is ready.
    fn start(dir: &TempDir, name: &'static str, args: &[&str]) -> Contender {
        let (out, err) = (dir.0.join(format!("{name}.out")), dir.0.join(format!("{name}.err")));
        let child = dies_with_test(&mut Command::new(bin(name)))
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let mut c = Contender { name, child: ChildGuard(Some(child)), out, err };
        let t0 = Instant::now();
        while !c.stderr().contains("; ready") {
            if let Some(st) = c.child.0.as_mut().unwrap().try_wait().unwrap() {
                panic!("{name} exited early ({st}): {}", c.stderr());
            }
            assert!(t0.elapsed() < Duration::from_secs(15), "{name} did not come up: {}", c.stderr());
            std::thread::sleep(Duration::from_millis(50));
        }
        c
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// SIGTERM: it must exit 0 within 5 s; returns what it printed on stdout.
    fn stop(mut self) -> String {
        let mut child = self.child.0.take().expect("running");
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        let st = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{} did not stop within 5 s of SIGTERM: {}", self.name, self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(st.success(), "{} exited with {st}: {}", self.name, self.stderr());
        fs::read_to_string(&self.out).unwrap()
    }
}

/// The test secret for key_id 0, in a 0600 file.
fn secret_file(dir: &TempDir) -> String {
    let p = dir.0.join("secret0.hex");
    fs::write(&p, format!("{}\n", hex::encode(secret(0)))).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    p.display().to_string()
}

/// ~2000 moves (20000/s for 0.1 s, 10 games × 100 players) from the lab's
/// namespace to `target`: pktgen's exit code, report and stderr.
fn pktgen(lab: &Lab, dir: &TempDir, sf: &str, target: SocketAddr, extra: &[&str]) -> (Option<i32>, Value, String) {
    let report = dir.0.join("report.json");
    let _ = fs::remove_file(&report);
    let out = Command::new("ip")
        .args(["netns", "exec", &lab.ns])
        .arg(bin("ironhoard-pktgen"))
        .args(["--target", &target.to_string(), "--secret-file", sf, "--quiet", "--board", "16x16"])
        // a correctness check, not a load test: the debug-built contenders lose
        // acks to a full socket buffer at 20 000/s on a busy CI machine
        .args(["--rate", "5000", "--duration", "0.4", "--games", "10", "--players", "100", "--report"])
        .arg(&report)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let text = fs::read_to_string(&report).unwrap_or_else(|e| panic!("no pktgen report ({e}); pktgen {}: {err}", out.status));
    (out.status.code(), serde_json::from_str(&text).unwrap(), err)
}

fn u(v: &Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// Every move answered ACCEPTED, every ack tag verified by the generator;
/// then, with nothing to do, it sleeps as the appliance's poller does (the
/// ring code they share: spin 2 ms, then poll(2), and no spin again after
/// a poll that timed out).
#[test]
fn the_reflector_answers_every_move_with_an_ack_that_verifies() {
    let lab = Lab::new(1);
    let dir = TempDir::new("contenders");
    let sf = secret_file(&dir);
    let r = Contender::start(&dir, "ih-bench-reflector", &["--iface", &lab.host_if, "--port", "7777", "--secret-file", &sf, "--core", "0"]);
    assert!(r.stderr().contains("AF_XDP copy mode"), "veth is copy mode: {}", r.stderr());
    let (code, rep, err) = pktgen(&lab, &dir, &sf, lab.target(false, 7777), &[]);
    let sent = u(&rep, "sent");
    assert!(sent >= 1500, "{rep}");
    assert_eq!(rep["unverifiable_acks"], 0, "every ack tag verifies under the player's key: {err}");
    assert_eq!(rep["lost"], 0, "every move answered: {err}");
    assert_eq!(rep["by_status"]["accepted"], sent, "{rep}");
    assert_eq!(code, Some(0), "pktgen: {err}");
    let stat = PathBuf::from(format!("/proc/{}/stat", r.child.0.as_ref().unwrap().id()));
    std::thread::sleep(Duration::from_millis(200));
    let c0 = cpu_ms(&stat);
    std::thread::sleep(Duration::from_secs(1));
    let idle_cpu = cpu_ms(&stat) - c0;
    assert!(idle_cpu <= 50, "idle, the reflector took {idle_cpu} ms of CPU in 1 s: it spins instead of sleeping");
    // SIGUSR1: its counters, and it goes on
    let pid = r.child.0.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-USR1", &pid]).status().unwrap().success());
    let t0 = Instant::now();
    while !fs::read_to_string(&r.out).unwrap().contains("counters {") {
        assert!(t0.elapsed() < Duration::from_secs(2), "no counters line within 2 s of SIGUSR1: {}", r.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = r.stop();
    assert!(out.contains(&format!(" {sent} frames reflected")), "{out}");
    // one counters line on SIGUSR1, one at exit: the frames and the socket's XDP_STATISTICS
    let counters: Vec<Value> = out
        .lines()
        .filter_map(|l| l.strip_prefix("ih-bench-reflector: counters "))
        .map(|j| serde_json::from_str(j).unwrap_or_else(|e| panic!("{e}: {j}")))
        .collect();
    assert_eq!(counters.len(), 2, "{out}");
    for c in &counters {
        assert_eq!(c["reflected"], sent, "{c}");
        assert_eq!(c["not_reflected"], 0, "{c}");
        assert_eq!(c["xsk"]["rx_ring_full"], 0, "5 000 moves/s fill no ring: {c}");
        assert_eq!(c["xsk"].as_object().map(|o| o.len()), Some(6), "the six XDP_STATISTICS: {c}");
    }
}

/// Every move answered (statuses from the engine), no forged one answered.
#[test]
fn the_tokio_server_answers_every_move_and_no_forged_one() {
    let lab = Lab::new(1);
    let dir = TempDir::new("contenders");
    let sf = secret_file(&dir);
    // a free port: the root namespace's 7777 may be taken by another run
    let t = Contender::start(
        &dir,
        "ih-bench-tokio",
        &["--listen", &format!("{}:0", lab.host_v4), "--secret-file", &sf, "--board", "16x16", "--rate-per-second", "100000", "--rate-burst", "100000"],
    );
    let listen: SocketAddr = t
        .stderr()
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no address in the ready line: {}", t.stderr()));
    assert_eq!(listen.ip(), lab.host_v4, "{}", t.stderr());
    let (code, rep, err) = pktgen(&lab, &dir, &sf, listen, &["--forged-ratio", "0.1"]);
    let (sent, forged) = (u(&rep, "sent"), rep["generated"]["forged"].as_u64().unwrap());
    assert!(sent >= 1500 && forged >= 50, "{rep}");
    assert_eq!(rep["hostile"]["acked_when_it_must_not"], 0, "a forged move was answered: {err}");
    assert_eq!(rep["unverifiable_acks"], 0, "{err}");
    assert_eq!(rep["lost"], 0, "every authentic move answered: {err}");
    assert_eq!(rep["by_status"]["accepted"], sent - forged, "{rep}");
    assert_eq!(code, Some(0), "pktgen: {err}");
    let line = t.stop();
    for want in [format!("accepted {}", sent - forged), format!("bad_tag {forged}"), format!("rx {sent} ")] {
        assert!(line.contains(&want), "{want:?} in {line}");
    }
}
