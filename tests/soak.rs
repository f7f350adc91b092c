//! Soak: the XDP appliance (release build, core 0) under a generator
//! (release build, core 1) at 80 % of the maximum sustained rate measured
//! on this machine (docs/performance.md: ~200 k moves/s → 160 k/s), with a
//! 10 % hostile mix (forged tags, wrong key_ids, junk, replays), and a key
//! rotation in the middle (key_id 1 added by SIGHUP, the second half signed
//! with it). Then: no forged or replayed move accepted (the generator's own
//! detectors), every ACCEPTED move in the log exactly once with a valid
//! tag, the appliance's anonymous memory flat, its books balanced.
//!
//! SOAK_SECS (default 20: the short run of make test; docs/hardening.md
//! has the long one) and SOAK_RATE (default 160000) tune it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ironhoard_labtests::logcheck::assert_log_matches_client;
use ironhoard_labtests::{bin, secret, Appliance, Lab, Settings, TempDir};
use serde_json::Value;

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn rss_anon_kib(pid: u32) -> u64 {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines().find(|l| l.starts_with("RssAnon:")).and_then(|l| l.split_whitespace().nth(1)).unwrap().parse().unwrap()
}

fn pktgen(lab: &Lab, secret_file: &Path, key_id: u8, out: &Path, secs: u64, rate: u64) -> std::process::Child {
    let mut cmd = Command::new("ip");
    ironhoard_labtests::dies_with_test(&mut cmd);
    cmd.args(["netns", "exec", &lab.ns])
        .arg(bin("ironhoard-pktgen"))
        .args(["--target", &format!("{}:7777", lab.host_v4), "--quiet", "--board", "64x32", "--cpu", "1"])
        .args(["--rate", &rate.to_string(), "--duration", &secs.to_string(), "--games", "20", "--players", "500"])
        .args(["--invalid-ratio", "0.1", "--key-id", &key_id.to_string()])
        // the players go on under the new key_id with higher seqs: a seq
        // is one move whatever the key_id (SPEC §1), so the first half's
        // seqs would be DUPLICATE under key_id 1
        .args(["--first-seq", &(1 + key_id as u64 * 1_000_000_000).to_string()])
        .arg("--secret-file")
        .arg(secret_file)
        .arg("--report")
        .arg(out.join("report.json"))
        .arg("--accepted-out")
        .arg(out.join("accepted.txt"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(p: std::process::Child, out: &Path) -> Value {
    let o = p.wait_with_output().unwrap();
    // exit 3: the generator saw a forged or replayed move answered/accepted
    assert!(o.status.success(), "pktgen exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    let r: Value = serde_json::from_str(&fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(r["hostile"]["accepted_twice"].as_u64(), Some(0), "{r}");
    r
}

#[test]
fn soak_xdp_hostile_mix_with_a_key_rotation() {
    // the release builds: the measured maximum is theirs
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target/release");
    for (var, name) in [("IRONHOARD_BIN", "ironhoard"), ("IRONHOARD_PKTGEN_BIN", "ironhoard-pktgen")] {
        if std::env::var(var).is_err() && root.join(name).exists() {
            // SAFETY: set before any thread of this test process reads the environment.
            unsafe { std::env::set_var(var, root.join(name)) };
        }
    }
    let secs = env_u64("SOAK_SECS", 20).max(4);
    let rate = env_u64("SOAK_RATE", 160_000);
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings {
        backend: "xdp",
        key_ids: 1,
        rate_per_second: 1_000_000,
        rate_burst: 1_000_000,
        players_per_worker: 65536,
        ..Default::default()
    });
    let pid = a.child.as_ref().unwrap().id();
    let half = secs / 2;
    let (o1, o2) = (TempDir::new("soak-1"), TempDir::new("soak-2"));
    let g1 = pktgen(&lab, &a.dir.0.join("secret0.hex"), 0, &o1.0, half, rate);
    std::thread::sleep(Duration::from_secs(half.min(4) / 2).max(Duration::from_millis(1500)));
    let rss_early = rss_anon_kib(pid);

    let r1 = finish(g1, &o1.0);
    // the key rotation: key_id 1 added by SIGHUP while nothing is lost
    let s1 = a.dir.0.join("secret1.hex");
    let mut f = fs::File::create(&s1).unwrap();
    writeln!(f, "{}", hex::encode(secret(1))).unwrap();
    fs::set_permissions(&s1, fs::Permissions::from_mode(0o600)).unwrap();
    let text = fs::read_to_string(&a.config).unwrap();
    let s0 = a.dir.0.join("secret0.hex").display().to_string();
    fs::write(&a.config, text.replace(&format!("secrets = [\"{s0}\"]"), &format!("secrets = [\"{s0}\", \"{}\"]", s1.display()))).unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let t0 = std::time::Instant::now();
    while a.command("show info")["key_ids"].as_u64() != Some(2) {
        assert!(t0.elapsed() < Duration::from_secs(5), "rotation not applied: {}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let g2 = pktgen(&lab, &s1, 1, &o2.0, secs - half, rate);
    let r2 = finish(g2, &o2.0);
    let rss_late = rss_anon_kib(pid);

    // books balance
    let s = a.stats();
    let n = |k: &str| s[k].as_u64().unwrap();
    let statuses: u64 = ["accepted", "duplicate", "stale", "invalid", "rate_limited", "busy"].iter().map(|k| n(k)).sum();
    let dropped: u64 = s["dropped"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(n("rx"), statuses + dropped, "rx = statuses + drops: {s}");
    assert_eq!(n("tx"), statuses, "tx = statuses: {s}");
    // every ACCEPTED move once in the log, tags valid (both halves)
    let mut all = fs::read_to_string(o1.0.join("accepted.txt")).unwrap();
    all.push_str(&fs::read_to_string(o2.0.join("accepted.txt")).unwrap());
    let both = o1.0.join("both.txt");
    fs::write(&both, all).unwrap();
    let lost = r1["lost"].as_u64().unwrap() + r2["lost"].as_u64().unwrap();
    let (acked, logged) = assert_log_matches_client(&a.dir.0.join("log"), &both, lost);
    assert!(acked > 0 && r2["by_status"]["accepted"].as_u64().unwrap() > 0, "the second half (key_id 1) was accepted");
    // anonymous memory flat: nothing grows with traffic (the log is mapped files)
    assert!(rss_late <= rss_early + rss_early / 10 + 4096, "RssAnon grew from {rss_early} KiB to {rss_late} KiB");
    eprintln!(
        "soak {secs}s at {rate}/s: sent {} + {}, accepted {acked} (logged {logged}), acks lost {lost}, RssAnon {rss_early} -> {rss_late} KiB, drops {}",
        r1["sent"], r2["sent"], s["dropped"]
    );
}
