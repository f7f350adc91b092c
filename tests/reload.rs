//! SIGHUP and `ironhoard reload` against a running appliance in a lab, on
//! both backends: key_ids added and re-keyed, board and limits changed,
//! with the pollers running and a generator sending throughout — no
//! restart, no move lost, every window kept; a bad config or a change that
//! needs a restart is refused with the reason and the old one keeps serving.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironhoard_labtests::{bin, secret, Appliance, Client, Lab, Settings};
use ironhoard_wire::{MasterKey, Status};

fn write_secret(path: &std::path::Path, s: &[u8; 32]) {
    let mut f = fs::File::create(path).unwrap();
    writeln!(f, "{}", hex::encode(s)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

fn reload_cmd(a: &Appliance) -> (i32, String) {
    let o = Command::new(bin("ironhoard")).arg("reload").arg("--socket").arg(&a.stats_socket).output().unwrap();
    (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn reloads(a: &Appliance) -> u64 {
    a.command("show info")["config_in_force"]["reloads"].as_u64().unwrap()
}

fn reload_without_restart(backend: &'static str) {
    let lab = Lab::new(1);
    let a = Appliance::start(&lab, Settings { backend, key_ids: 1, rate_per_second: 100_000, rate_burst: 100_000, ..Default::default() });
    let pid = a.command("show info")["pid"].as_u64().unwrap();
    let c = Client::new(&lab, false, 7777);
    for s in 1..=5 {
        assert_eq!(c.send(&Client::mv(0, 1, 1, s)), Some(Status::Accepted));
    }
    // key_id 1 is not configured yet: silently dropped
    let k1 = Client::mv(1, 1, 2, 1);
    c.send_raw(&k1.to_bytes(&Client::mac(1, 1, 2)));
    assert!(c.recv().is_none(), "key_id 1 answered before it was configured");
    let mut wide = Client::mv(0, 1, 1, 6);
    wide.x = 80;
    assert_eq!(c.send(&wide), Some(Status::Invalid), "x = 80 on a 64-wide board");

    // a generator sends throughout the reload
    let out = a.dir.0.join("pktgen.json");
    let mut gen = Command::new("ip");
    ironhoard_labtests::dies_with_test(&mut gen);
    let gen = gen
        .args(["netns", "exec", &lab.ns])
        .arg(bin("ironhoard-pktgen"))
        .args(["--target", &format!("{}:7777", lab.host_v4), "--quiet", "--board", "64x32", "--rate", "2000", "--duration", "3"])
        .args(["--game-base", "500", "--players", "50"])
        .arg("--secret-file")
        .arg(a.dir.0.join("secret0.hex"))
        .arg("--report")
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));

    // add key_id 1, widen the board: SIGHUP
    write_secret(&a.dir.0.join("secret1.hex"), &secret(1));
    let text = fs::read_to_string(&a.config).unwrap();
    let sec0 = a.dir.0.join("secret0.hex").display().to_string();
    let sec1 = a.dir.0.join("secret1.hex").display().to_string();
    let two = text.replace(&format!("secrets = [\"{sec0}\"]"), &format!("secrets = [\"{sec0}\", \"{sec1}\"]")).replace("board_width = 64", "board_width = 100");
    assert_ne!(two, text);
    fs::write(&a.config, &two).unwrap();
    // SAFETY: signalling the appliance child we started.
    unsafe { libc::kill(pid as i32, libc::SIGHUP) };
    let t0 = Instant::now();
    while reloads(&a) == 0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "SIGHUP not applied: {}", a.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.send(&k1), Some(Status::Accepted), "key_id 1 after the reload");
    assert_eq!(c.send(&wide), Some(Status::Accepted), "x = 80 on the 100-wide board");
    assert_eq!(c.send(&Client::mv(0, 1, 1, 3)), Some(Status::Duplicate), "the window survived the reload");
    assert_eq!(a.command("show info")["pid"].as_u64(), Some(pid), "no restart");
    assert!(a.log().contains("reloaded: key_ids 2 (added [1]"), "{}", a.log());

    let o = gen.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&fs::read(&out).unwrap()).unwrap();
    let sent = r["sent"].as_u64().unwrap();
    assert!(sent > 3000, "{r}");
    assert_eq!(r["acked"], r["sent"], "a move went unanswered across the reload: {r}");
    assert_eq!(r["by_status"]["accepted"], r["sent"], "{r}");

    // a bad config is refused, naming the key; the old one keeps serving
    fs::write(&a.config, two.replace("rate_per_second = 100000", "rate_per_second = 0")).unwrap();
    let (rc, msg) = reload_cmd(&a);
    assert_eq!(rc, 1, "{msg}");
    assert!(msg.contains("moves.rate_per_second") && msg.contains("unchanged"), "{msg}");
    assert_eq!(c.send(&Client::mv(1, 1, 2, 2)), Some(Status::Accepted));
    // a change a running data path cannot take: exit 3, named
    fs::write(&a.config, two.replace("port = 7777", "port = 7778")).unwrap();
    let (rc, msg) = reload_cmd(&a);
    assert_eq!(rc, 3, "{msg}");
    assert!(msg.contains("moves.port (7777 -> 7778)") && msg.contains("restart"), "{msg}");
    assert_eq!(c.send(&Client::mv(1, 1, 2, 3)), Some(Status::Accepted));

    // re-key key_id 0: its players are reclaimed; moves signed with the old
    // secret no longer verify; key_id 1's player keeps its window
    let players_before = a.stats()["players"].as_u64().unwrap();
    let mut new0 = secret(7);
    new0[0] ^= 0x42;
    write_secret(&a.dir.0.join("secret0.hex"), &new0);
    fs::write(&a.config, &two).unwrap();
    let (rc, msg) = reload_cmd(&a);
    assert_eq!(rc, 0, "{msg}");
    assert!(msg.contains("re-keyed [0]"), "{msg}");
    let players_after = a.stats()["players"].as_u64().unwrap();
    assert!(players_after < players_before, "players {players_before} -> {players_after}: key_id 0's not reclaimed");
    let old = Client::mv(0, 1, 1, 100);
    c.send_raw(&old.to_bytes(&Client::mac(0, 1, 1)));
    assert!(c.recv().is_none(), "a move signed with the replaced secret was answered");
    let mac = MasterKey::new(&new0).player_mac(1, 1);
    c.send_raw(&old.to_bytes(&mac));
    assert!(c.recv().is_some(), "a move signed with the new secret was not answered");
    assert_eq!(c.send(&Client::mv(1, 1, 2, 2)), Some(Status::Duplicate), "key_id 1's window kept");
    assert_eq!(a.command("show info")["pid"].as_u64(), Some(pid), "no restart");
}

#[test]
fn xdp_reload_without_restart() {
    reload_without_restart("xdp");
}

#[test]
fn socket_reload_without_restart() {
    reload_without_restart("socket");
}
