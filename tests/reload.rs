//! SIGHUP and `ironhoard reload` against a running appliance in a lab, on
//! both backends: key_ids added and re-keyed, board and limits changed,
//! with the pollers running and a generator sending throughout — no
//! restart, no move lost, every window kept; a bad config or a change that
//! needs a restart is refused with the reason and the old one keeps serving.
//! Then key rotation end to end, with restarts on the same log: one
//! anti-replay window per player whatever the key_id (SPEC §1), and the
//! documented procedure (docs/operations.md) leaves an appliance that
//! restarts with only the players of live keys in its table.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ironhoard_labtests::logcheck::read_log;
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

/// Lists `secret1.hex` (the test secret of key_id 1, written next to
/// `secret0.hex`) as key_id 1 and reloads.
fn add_key_1(a: &Appliance) {
    let sec0 = a.dir.0.join("secret0.hex").display().to_string();
    let sec1 = a.dir.0.join("secret1.hex");
    write_secret(&sec1, &secret(1));
    let text = fs::read_to_string(&a.config).unwrap();
    let two = text.replace(&format!("secrets = [\"{sec0}\"]"), &format!("secrets = [\"{sec0}\", \"{}\"]", sec1.display()));
    assert_ne!(two, text);
    fs::write(&a.config, two).unwrap();
    let (rc, msg) = reload_cmd(a);
    assert_eq!(rc, 0, "{msg}");
    assert!(msg.contains("added [1]"), "{msg}");
}

/// Retires key_id 0 the documented way (docs/operations.md): its file (in
/// `dir`) replaced by a fresh secret from `ironhoard keygen` (same path,
/// same place in the list), then a reload of `a`.
fn retire_key_0(dir: &std::path::Path, a: &Appliance) {
    let sec0 = dir.join("secret0.hex");
    let new = dir.join("secret0.hex.new");
    let o = Command::new(bin("ironhoard")).args(["keygen", "--out"]).arg(&new).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    fs::rename(&new, &sec0).unwrap();
    let (rc, msg) = reload_cmd(a);
    assert_eq!(rc, 0, "{msg}");
    assert!(msg.contains("re-keyed [0]"), "{msg}");
}

/// Stops `a` (SIGTERM) and starts the appliance again on the same config,
/// secrets and log (they stay in `a`'s directory: keep `a`).
fn restart(lab: &Lab, a: &mut Appliance) -> Appliance {
    let (st, _) = a.stop();
    assert!(st.success(), "{}", a.log());
    let text = fs::read_to_string(&a.config).unwrap();
    Appliance::start_with(lab, a.settings.clone(), move |_| text)
}

/// Sends every datagram of `moves`, then asserts that nothing came back.
fn expect_no_answer(c: &Client, moves: &[[u8; 64]], what: &str) {
    for mv in moves {
        c.send_raw(mv);
    }
    c.sock.set_read_timeout(Some(ironhoard_labtests::SILENCE_WAIT)).unwrap();
    let got = c.recv();
    c.sock.set_read_timeout(Some(ironhoard_labtests::ACK_WAIT)).unwrap();
    assert!(got.is_none(), "{what}");
}

/// The players gauge once it reads `want` (the workers publish it after
/// their batches), or what it reads after 3 s.
fn players(a: &Appliance, want: u64) -> u64 {
    let t0 = Instant::now();
    loop {
        let n = a.stats()["players"].as_u64().unwrap();
        if n == want || t0.elapsed() > Duration::from_secs(3) {
            return n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SPEC §1: the anti-replay window is per (game_id, player_id), whatever
/// the key_id. A seq accepted under key 0 is DUPLICATE under key 1 once
/// key 1 is added, and the other way round; after a restart on that log
/// too; the log holds each seq once.
fn one_window_per_player_across_a_rotation_and_a_restart(backend: &'static str) {
    let lab = Lab::new(1);
    let mut a = Appliance::start(&lab, Settings { backend, key_ids: 1, ..Default::default() });
    let c = Client::new(&lab, false, 7777);
    for s in 1..=2 {
        assert_eq!(c.send(&Client::mv(0, 1, 1, s)), Some(Status::Accepted));
    }
    add_key_1(&a);
    assert_eq!(c.send(&Client::mv(1, 1, 1, 2)), Some(Status::Duplicate), "seq 2 accepted under key 0, resent under key 1");
    assert_eq!(c.send(&Client::mv(1, 1, 1, 3)), Some(Status::Accepted), "a new seq under key 1");
    assert_eq!(c.send(&Client::mv(0, 1, 1, 3)), Some(Status::Duplicate), "seq 3 accepted under key 1, resent under key 0");
    assert_eq!(players(&a, 1), 1, "one entry for the player");

    let b = restart(&lab, &mut a);
    for (k, s) in [(0, 1), (0, 2), (0, 3), (1, 1), (1, 2), (1, 3)] {
        assert_eq!(c.send(&Client::mv(k, 1, 1, s)), Some(Status::Duplicate), "after the restart: seq {s} under key {k}");
    }
    assert_eq!(c.send(&Client::mv(1, 1, 1, 4)), Some(Status::Accepted));
    assert_eq!(players(&b, 1), 1);
    drop(b);
    let mut seqs: Vec<(u8, u64)> = read_log(&a.dir.0.join("log"))
        .iter()
        .map(|r| {
            let m = ironhoard_wire::Move::new_unchecked(&r.mv[..]);
            (m.key_id(), m.seq())
        })
        .collect();
    seqs.sort_by_key(|&(_, s)| s);
    assert_eq!(seqs, [(0, 1), (0, 2), (1, 3), (1, 4)], "each seq recorded once");
}

#[test]
fn socket_one_window_per_player_across_a_rotation_and_a_restart() {
    one_window_per_player_across_a_rotation_and_a_restart("socket");
}

#[test]
fn xdp_one_window_per_player_across_a_rotation_and_a_restart() {
    one_window_per_player_across_a_rotation_and_a_restart("xdp");
}

/// The rotation procedure of docs/operations.md end to end, with restarts:
/// 40 players under key 0 in a 64-player table; key 1 added; 20 of them
/// move to key 1; restart (both keys live: every window back); key 0
/// retired (a fresh secret at its place); 40 new players under key 1 (the
/// table holds 60); restart: it starts (the log's key 0 records are of a
/// retired secret and take no slot), the 60 live players are back, and
/// replays of the old moves are still refused.
fn key_rotation_procedure_with_restarts(backend: &'static str) {
    let lab = Lab::new(1);
    let s = Settings { backend, key_ids: 1, players_per_worker: 64, rate_per_second: 100_000, rate_burst: 100_000, ..Default::default() };
    let mut a = Appliance::start(&lab, s);
    let c = Client::new(&lab, false, 7777);
    let (old, moved, new) = (0..40u32, 0..20u32, 100..140u32);
    let mut old_moves = Vec::new();
    for p in old.clone() {
        for s in 1..=3 {
            let r = Client::mv(0, 1, p, s);
            assert_eq!(c.send(&r), Some(Status::Accepted), "player {p} seq {s} under key 0");
            old_moves.push(r.to_bytes(&Client::mac(0, 1, p)));
        }
    }
    // 1. add key 1
    add_key_1(&a);
    // 2. clients move to key 1 (half of them before the old key goes)
    for p in moved.clone() {
        assert_eq!(c.send(&Client::mv(1, 1, p, 4)), Some(Status::Accepted), "player {p} under key 1");
    }
    assert_eq!(players(&a, 40), 40);
    let b = restart(&lab, &mut a);
    assert_eq!(c.send(&Client::mv(0, 1, 25, 3)), Some(Status::Duplicate), "key 0 window back");
    assert_eq!(c.send(&Client::mv(1, 1, 5, 4)), Some(Status::Duplicate), "key 1 window back");
    assert_eq!(c.send(&Client::mv(1, 1, 25, 3)), Some(Status::Duplicate), "a key 0 seq resent under key 1");
    assert_eq!(players(&b, 40), 40, "both keys live: every player is back: {}", b.log());
    // 3. retire key 0: the players that did not move are freed
    retire_key_0(&a.dir.0, &b);
    assert_eq!(players(&b, 20), 20, "the players that moved to key 1 keep their entry");
    expect_no_answer(&c, &old_moves, "an old move (key 0, retired secret) was answered");
    for p in new.clone() {
        assert_eq!(c.send(&Client::mv(1, 1, p, 1)), Some(Status::Accepted), "new player {p} under key 1");
    }
    assert_eq!(players(&b, 60), 60);

    // restart: 40 + 20 + 40 players in the log, 60 with a live key
    let mut b = b;
    let d = restart(&lab, &mut b);
    assert!(d.log().contains("60 restored") && d.log().contains("20 with no live key left out"), "{}", d.log());
    // replays of old moves are still refused: silently (their tag no longer verifies)
    expect_no_answer(&c, &old_moves, "an old move was answered after the restart");
    assert!(d.stats()["dropped"]["bad_tag"].as_u64().unwrap() >= old_moves.len() as u64, "{}", d.stats());
    // the live players' windows are back, with the seqs they had under key 0
    for p in moved.clone() {
        for s in 1..=4 {
            assert_eq!(c.send(&Client::mv(1, 1, p, s)), Some(Status::Duplicate), "moved player {p} seq {s}");
        }
        assert_eq!(c.send(&Client::mv(1, 1, p, 5)), Some(Status::Accepted));
    }
    for p in new.clone() {
        assert_eq!(c.send(&Client::mv(1, 1, p, 1)), Some(Status::Duplicate), "new player {p}");
    }
    assert_eq!(players(&d, 60), 60, "only the players of live keys take a slot: {}", d.log());
    // and the room the retired players left is there: 4 more fit, then BUSY
    for p in 200..204u32 {
        assert_eq!(c.send(&Client::mv(1, 1, p, 1)), Some(Status::Accepted));
    }
    assert_eq!(c.send(&Client::mv(1, 1, 204, 1)), Some(Status::Busy), "the table holds 64");
}

#[test]
fn socket_key_rotation_procedure_with_restarts() {
    key_rotation_procedure_with_restarts("socket");
}

#[test]
fn xdp_key_rotation_procedure_with_restarts() {
    key_rotation_procedure_with_restarts("xdp");
}

/// Issue 21 item 5, as measured there (smaller): 40 players under key 0 in
/// a 64-player table; key 1 added, key 0 retired by reloads; 40 other
/// players under key 1; then a restart. The log holds 80 players, 40 of
/// them with a live key: it starts (it used to refuse: "holds 80 players
/// … more than 64"), and none of the old moves is answered.
#[test]
fn socket_a_restart_after_a_key_rotation_starts() {
    let lab = Lab::new(1);
    let s = Settings { backend: "socket", key_ids: 1, players_per_worker: 64, rate_per_second: 100_000, rate_burst: 100_000, ..Default::default() };
    let mut a = Appliance::start(&lab, s);
    let c = Client::new(&lab, false, 7777);
    let mut old_moves = Vec::new();
    for p in 0..40u32 {
        let r = Client::mv(0, 1, p, 1);
        assert_eq!(c.send(&r), Some(Status::Accepted));
        old_moves.push(r.to_bytes(&Client::mac(0, 1, p)));
    }
    add_key_1(&a);
    retire_key_0(&a.dir.0, &a);
    for p in 1000..1040u32 {
        assert_eq!(c.send(&Client::mv(1, 1, p, 1)), Some(Status::Accepted));
    }
    let b = restart(&lab, &mut a);
    expect_no_answer(&c, &old_moves, "an old move was answered after the restart");
    for p in 1000..1040u32 {
        assert_eq!(c.send(&Client::mv(1, 1, p, 1)), Some(Status::Duplicate), "player {p}");
    }
    assert_eq!(players(&b, 40), 40, "{}", b.log());
}
