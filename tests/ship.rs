//! `ironhoard ship` against real nats-server JetStream (tests/nats.rs): the
//! stream holds exactly the moves the appliance acked ACCEPTED, each once,
//! through a stream leader killed mid-run, a shipper killed between publish
//! and checkpoint, the same signed move accepted by two edge hosts (also
//! one seq accepted under two key_ids during a key rotation), the cluster
//! down for a while, and a missing stream.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ironhoard_labtests::logcheck::{assert_log_matches_client, check_records, id_of, read_log, MoveId};
use ironhoard_labtests::nats::{ensure_stream, finish, pktgen, settings, ship_section, start, Cluster, ShipProc, Stored};
use ironhoard_labtests::{bin, Appliance, Client, Lab, TempDir};
use ironhoard_movelog::Record;
use ironhoard_ship::message;
use serde_json::Value;

/// Every message decodes; subject, Nats-Msg-Id and host header are the
/// move's; no identity twice; tags verify. Returns the moves by identity.
fn check_stream(stored: &[Stored], hosts: &[&str]) -> HashMap<MoveId, Record> {
    let mut by_id = HashMap::new();
    let recs: Vec<Record> = stored
        .iter()
        .map(|s| {
            let r = message::decode(&s.payload).unwrap_or_else(|| panic!("message {} is not a move record ({} bytes)", s.seq, s.payload.len()));
            assert_eq!(s.msg_id, message::msg_id(&r.mv), "message {}: Nats-Msg-Id is the move's identity", s.seq);
            assert_eq!(s.subject, message::subject("ih.moves", 1, &r.mv), "message {}: subject", s.seq);
            assert!(hosts.contains(&s.host.as_str()), "message {}: host {:?}", s.seq, s.host);
            assert!(by_id.insert(id_of(&r), r).is_none(), "move {:?} is in the stream twice (seq {})", id_of(&r), s.seq);
            r
        })
        .collect();
    if hosts.len() == 1 {
        // one host: its log offsets, dense per partition, and every tag
        let mut sorted = recs.clone();
        sorted.sort_by_key(|r| (r.queue, r.offset));
        check_records(&sorted);
    }
    by_id
}

/// The stream and the log hold the same moves, byte for byte.
fn assert_stream_is_log(stored: &[Stored], logdir: &Path, host: &str) -> usize {
    let in_stream = check_stream(stored, &[host]);
    let log = read_log(logdir);
    let log_ids: HashSet<MoveId> = log.iter().map(id_of).collect();
    assert_eq!(log_ids.len(), log.len(), "the log holds each move once");
    let missing: Vec<_> = log.iter().filter(|r| !in_stream.contains_key(&id_of(r))).take(5).map(|r| (r.queue, r.offset, id_of(r))).collect();
    assert!(missing.is_empty(), "{} of {} logged moves are not in the stream, e.g. {missing:?}", log.len() - in_stream.len().min(log.len()), log.len());
    for r in &log {
        assert_eq!(in_stream[&id_of(r)], *r, "the stream's copy of q{}:{} differs", r.queue, r.offset);
    }
    assert_eq!(in_stream.len(), log.len(), "the stream holds moves the log does not");
    log.len()
}

#[test]
fn a_million_moves_with_retransmits_reach_an_r3_stream_once_through_a_leader_kill() {
    // the release build, as deployed (make test builds it)
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target/release");
    for (var, name) in [("IRONHOARD_BIN", "ironhoard"), ("IRONHOARD_PKTGEN_BIN", "ironhoard-pktgen")] {
        if std::env::var(var).is_err() && root.join(name).exists() {
            // SAFETY: set before any thread of this test process reads the environment
            unsafe { std::env::set_var(var, root.join(name)) };
        }
    }
    let lab = Lab::new(1);
    let mut cluster = Cluster::start(3);
    let (a, ship, _d) = start(&lab, &cluster, "xdp", "edge-a", 3, "");
    let out = TempDir::new("ship-1m");
    let n = std::env::var("SHIP_MOVES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000u64);
    let g = pktgen(&lab, &a.dir.0.join("secret0.hex"), &out.0, 100_000, n, "xdp");
    // mid-run: SIGKILL the stream's leader, bring it back a little later
    std::thread::sleep(Duration::from_secs(4));
    let (leader, t_kill) = cluster.kill_leader_for("MOVES", Duration::from_secs(3));
    let r = finish(g, &out.0);
    assert!(r["sent"].as_u64().unwrap() >= n, "{r}");
    assert!(r["by_status"]["duplicate"].as_u64().unwrap() > 0, "retransmits were answered DUPLICATE: {r}");
    let lost = r["lost"].as_u64().unwrap();
    let (acked, logged) = assert_log_matches_client(&a.dir.0.join("log"), &out.0.join("accepted.txt"), lost);
    let s = ship.wait_drained(logged as u64, Duration::from_secs(240));
    let new_leader = cluster.leader("MOVES");
    let stored = cluster.read_stream("MOVES");
    let moves = assert_stream_is_log(&stored, &a.dir.0.join("log"), "edge-a");
    assert_eq!(stored.len(), moves);
    eprintln!(
        "{} datagrams, {acked} acked ACCEPTED, {logged} logged, {} in the R3 stream; leader {leader} SIGKILLed 4 s into the run (leader now {new_leader:?}, {:?} after the kill); shipper: {}",
        r["sent"],
        stored.len(),
        t_kill.elapsed(),
        s
    );
}

#[test]
fn a_shipper_killed_between_publish_and_checkpoint_resumes_without_a_double() {
    let lab = Lab::new(1);
    let cluster = Cluster::start(1);
    // a checkpoint every 3 s: a kill lands after publishes it does not cover
    let (a, mut ship, _d) = start(&lab, &cluster, "socket", "edge-a", 1, "checkpoint_interval_ms = 3000");
    let out = TempDir::new("ship-kill");
    let g = pktgen(&lab, &a.dir.0.join("secret0.hex"), &out.0, 20_000, 120_000, "socket");
    std::thread::sleep(Duration::from_millis(2500));
    let before = ship.stats();
    ship.kill();
    let published = before["published"].as_u64().unwrap();
    let r = finish(g, &out.0);
    let (_, logged) = assert_log_matches_client(&a.dir.0.join("log"), &out.0.join("accepted.txt"), r["lost"].as_u64().unwrap());
    let ckpt_file = fs::read_dir(ship.socket.parent().unwrap()).unwrap().flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "ckpt"));
    let checkpointed: u64 = match &ckpt_file {
        Some(p) => serde_json::from_str::<Value>(&fs::read_to_string(p).unwrap()).unwrap()["positions"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum(),
        None => 0,
    };
    assert!(published > checkpointed, "the kill came after publishes the checkpoint does not cover: {published} published, {checkpointed} checkpointed");
    let ship2 = ShipProc::start(&ship.config, &ship.socket, &a.dir.0.join("ship2.log"));
    let s = ship2.wait_drained(logged as u64, Duration::from_secs(60));
    let dups = s["duplicates"].as_u64().unwrap();
    assert!(dups > 0, "the restarted shipper published records again and the stream absorbed them: {s}");
    let stored = cluster.read_stream("MOVES");
    let moves = assert_stream_is_log(&stored, &a.dir.0.join("log"), "edge-a");
    eprintln!("killed after {published} PubAcks, checkpoint at {checkpointed}: {dups} duplicates absorbed, {moves} moves in the stream once each");
}

#[test]
fn the_same_signed_move_accepted_by_two_edge_hosts_is_stored_once() {
    let (lab1, lab2) = (Lab::new(1), Lab::new(1));
    let cluster = Cluster::start(1);
    let (a1, s1, _d1) = start(&lab1, &cluster, "socket", "edge-a", 1, "");
    let (a2, s2, _d2) = start(&lab2, &cluster, "socket", "edge-b", 1, "");
    let (c1, c2) = (Client::new(&lab1, false, 7777), Client::new(&lab2, false, 7777));
    let n = 300u32;
    for p in 0..n {
        let r = Client::mv(0, 9, p, 1);
        // the same signed bytes to both hosts: each accepts it (each has
        // its own anti-replay window)
        assert_eq!(c1.send(&r), Some(ironhoard_wire::Status::Accepted));
        assert_eq!(c2.send(&r), Some(ironhoard_wire::Status::Accepted));
    }
    let (x1, x2) = (s1.wait_drained(n as u64, Duration::from_secs(30)), s2.wait_drained(n as u64, Duration::from_secs(30)));
    let stored = cluster.read_stream("MOVES");
    let moves = check_stream(&stored, &["edge-a", "edge-b"]);
    assert_eq!(moves.len(), n as usize, "each move once");
    assert_eq!(stored.len(), n as usize);
    let dups = x1["duplicates"].as_u64().unwrap() + x2["duplicates"].as_u64().unwrap();
    assert_eq!(dups, n as u64, "every second copy was reported a duplicate: {x1} {x2}");
    assert_eq!(x1["published"].as_u64().unwrap() + x2["published"].as_u64().unwrap(), 2 * n as u64);

    // a key rotation under way: edge-b takes key_id 1 too, and each player
    // sends its next seq under key 0 to edge-a and under key 1 to edge-b.
    // A seq is one move whatever the key_id (SPEC §1): the message id is
    // (game, player, seq), so the stream stores it once.
    let sec1 = a2.dir.0.join("secret1.hex");
    {
        let mut f = fs::File::create(&sec1).unwrap();
        std::io::Write::write_all(&mut f, format!("{}\n", hex::encode(ironhoard_labtests::secret(1))).as_bytes()).unwrap();
        fs::set_permissions(&sec1, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let sec0 = a2.dir.0.join("secret0.hex").display().to_string();
        let text = fs::read_to_string(&a2.config).unwrap();
        let two = text.replace(&format!("secrets = [\"{sec0}\"]"), &format!("secrets = [\"{sec0}\", \"{}\"]", sec1.display()));
        assert_ne!(two, text);
        fs::write(&a2.config, two).unwrap();
        let o = Command::new(bin("ironhoard")).arg("reload").arg("--socket").arg(&a2.stats_socket).output().unwrap();
        assert!(o.status.success(), "reload: {}", String::from_utf8_lossy(&o.stderr));
    }
    for p in 0..n {
        assert_eq!(c1.send(&Client::mv(0, 9, p, 2)), Some(ironhoard_wire::Status::Accepted));
        assert_eq!(c2.send(&Client::mv(1, 9, p, 2)), Some(ironhoard_wire::Status::Accepted));
    }
    let (x1, x2) = (s1.wait_drained(2 * n as u64, Duration::from_secs(30)), s2.wait_drained(2 * n as u64, Duration::from_secs(30)));
    let stored = cluster.read_stream("MOVES");
    check_stream(&stored, &["edge-a", "edge-b"]);
    assert_eq!(stored.len(), 2 * n as usize, "one seq accepted under two key_ids by two hosts is stored once");
    let dups = x1["duplicates"].as_u64().unwrap() + x2["duplicates"].as_u64().unwrap();
    assert_eq!(dups, 2 * n as u64, "{x1} {x2}");

    // the example consumer a game server copies: pulls game 9 with a
    // durable consumer, verifies every tag, acks; a second run has nothing
    let consumer = |a: &Appliance| -> (i32, Value) {
        let o = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("examples/consumer.py"))
            .args(["--server", &cluster.urls()[0], "--stream", "MOVES", "--game", "9", "--durable", "game-9", "--idle", "1"])
            .arg("--secret")
            .arg(format!("0={}", a.dir.0.join("secret0.hex").display()))
            .arg("--secret")
            .arg(format!("1={}", sec1.display()))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        let summary = err.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or_else(|| panic!("consumer.py: {err}"));
        (o.status.code().unwrap_or(-1), summary)
    };
    let (code, v) = consumer(&a1);
    assert_eq!((code, v["consumed"].as_u64(), v["refused"].as_u64()), (0, Some(2 * n as u64), Some(0)), "{v}");
    let (code, v) = consumer(&a1);
    assert_eq!((code, v["consumed"].as_u64()), (0, Some(0)), "the durable consumer remembers what it acked: {v}");
    // a message whose move was altered after signing is refused
    let mut forged = stored[0].payload.clone();
    forged[40] ^= 1;
    let url = cluster.urls()[0].clone();
    ironhoard_labtests::nats::block_on(async move {
        let c = async_nats::connect(url).await.unwrap();
        async_nats::jetstream::new(c).publish("ih.moves.9", forged.into()).await.unwrap().await.unwrap();
    });
    let (code, v) = consumer(&a1);
    assert_eq!((code, v["refused"].as_u64()), (1, Some(1)), "{v}");
    drop((a1, a2));
}

#[test]
fn with_nats_down_the_appliance_keeps_acking_and_the_lag_drains_when_it_returns() {
    let lab = Lab::new(1);
    let mut cluster = Cluster::start(1);
    let (a, ship, _d) = start(&lab, &cluster, "socket", "edge-a", 1, "ack_timeout_ms = 1000");
    let out1 = TempDir::new("ship-down-1");
    let r1 = finish(pktgen(&lab, &a.dir.0.join("secret0.hex"), &out1.0, 20_000, 40_000, "socket"), &out1.0);
    ship.wait_drained(1, Duration::from_secs(30));
    cluster.kill(0);
    let out2 = TempDir::new("ship-down-2");
    let r2 = finish(pktgen(&lab, &a.dir.0.join("secret0.hex"), &out2.0, 20_000, 60_000, "socket"), &out2.0);
    assert_eq!(r2["by_status"]["busy"], 0, "no BUSY while NATS is down: {r2}");
    assert!(r2["by_status"]["accepted"].as_u64().unwrap() > 50_000, "the appliance kept accepting: {r2}");
    std::thread::sleep(Duration::from_millis(1500));
    let down = ship.stats();
    assert_eq!(down["connected"], false, "{down}");
    assert!(down["lag_records"].as_u64().unwrap() >= r2["by_status"]["accepted"].as_u64().unwrap(), "lag grew by what was accepted: {down}");
    assert!(down["lag_seconds"].as_f64().unwrap() > 1.0, "{down}");
    cluster.restart(0);
    let s = ship.wait_drained(1, Duration::from_secs(60));
    assert_eq!(s["connected"], true);
    assert!(s["reconnects"].as_u64().unwrap() >= 1, "{s}");
    let stored = cluster.read_stream("MOVES");
    let moves = assert_stream_is_log(&stored, &a.dir.0.join("log"), "edge-a");
    let accepted = r1["by_status"]["accepted"].as_u64().unwrap() + r2["by_status"]["accepted"].as_u64().unwrap();
    assert!(moves as u64 >= accepted - r1["lost"].as_u64().unwrap() - r2["lost"].as_u64().unwrap());
    eprintln!("down: {down}\nafter: {s}");
}

#[test]
fn a_stream_that_refuses_is_reported_and_nothing_is_skipped() {
    let lab = Lab::new(1);
    let cluster = Cluster::start(1);
    let holder = TempDir::new("ship");
    let dir = holder.0.clone();
    let a = Appliance::start_with(&lab, settings("socket"), |c| c + &ship_section(&cluster, &dir, "edge-a", 1, "ack_timeout_ms = 1000"));
    // no stream yet: the shipper starts anyway, and reports
    let ship = ShipProc::start(&a.config, &dir.join("edge-a.sock"), &a.dir.0.join("ship.log"));
    let c = Client::new(&lab, false, 7777);
    for p in 0..50 {
        assert_eq!(c.send(&Client::mv(0, 3, p, 1)), Some(ironhoard_wire::Status::Accepted));
    }
    let t0 = Instant::now();
    let s = loop {
        let s = ship.stats();
        if s["rejected"].as_u64().unwrap() > 0 && s["lag_records"] == 50 {
            break s;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "no rejection reported: {s}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(s["last_error"].as_str().unwrap().contains("--ensure-stream"), "{s}");
    assert_eq!(s["published"], 0);
    let table = Command::new(bin("ironhoard")).args(["stats", "--socket"]).arg(&ship.socket).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("rejected") && table.contains("last error"), "{table}");
    // a wrong stream is named, difference by difference, and not changed
    let (code, out) = ensure_stream(&a.config);
    assert_eq!(code, 0, "{out}");
    let s = ship.wait_drained(50, Duration::from_secs(30));
    assert_eq!(s["published"], 50, "{s}");
    let stored = cluster.read_stream("MOVES");
    assert_eq!(assert_stream_is_log(&stored, &a.dir.0.join("log"), "edge-a"), 50);
    let text = fs::read_to_string(&a.config).unwrap().replace("replicas = 1", "replicas = 3");
    fs::write(&a.config, text).unwrap();
    let (code, out) = ensure_stream(&a.config);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("replicas: 1, [ship] replicas = 3"), "{out}");
    // metrics
    let m = Command::new(bin("ironhoard")).args(["stats", "--prometheus", "--socket"]).arg(&ship.socket).output().unwrap();
    let m = String::from_utf8_lossy(&m.stdout);
    ironhoard_labtests::check_exposition(&m).unwrap();
    assert!(m.contains("ironhoard_ship_published_total{host=\"edge-a\",stream=\"MOVES\"} 50"), "{m}");
    assert!(m.contains("ironhoard_ship_lag_records{host=\"edge-a\",stream=\"MOVES\",queue=\"0\"} 0"), "{m}");
    drop(holder);
}

/// A CA and a server certificate for 127.0.0.1, made with openssl.
fn certificates(dir: &Path) {
    let run = |args: &[&str]| {
        let o = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(o.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    };
    run(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=ironhoard test CA"]);
    run(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    fs::write(dir.join("ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "ext"]);
}

#[test]
fn the_shipper_authenticates_with_an_nkey_over_tls() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new(1);
    let certs = TempDir::new("ship-tls");
    certificates(&certs.0);
    let user = nkeys::KeyPair::new_user();
    let cluster = Cluster::start_with_config(&format!(
        "tls {{ cert_file: \"{0}/server.pem\", key_file: \"{0}/server.key\" }}\nauthorization {{ users: [ {{ nkey: \"{1}\" }} ] }}",
        certs.0.display(),
        user.public_key()
    ));
    let seed = certs.0.join("edge.nk");
    fs::write(&seed, format!("{}\n", user.seed().unwrap())).unwrap();
    fs::set_permissions(&seed, fs::Permissions::from_mode(0o600)).unwrap();
    let port = cluster.nodes[0].port;
    let section = |servers: &str, nkey: &Path, ca: bool| {
        format!(
            "\n[ship]\nservers = [\"{servers}\"]\nstream = \"MOVES\"\nsubject_prefix = \"ih.moves\"\nhost_id = \"edge-a\"\ncheckpoint = \"{d}/edge-a.ckpt\"\nstats_socket = \"{d}/edge-a.sock\"\nreplicas = 1\nnkey = \"{}\"\n{}",
            nkey.display(),
            if ca { format!("tls_ca = \"{}/ca.pem\"\n", certs.0.display()) } else { String::new() },
            d = certs.0.display(),
        )
    };
    let url = format!("tls://127.0.0.1:{port}");
    let a = Appliance::start_with(&lab, settings("socket"), |c| c + &section(&url, &seed, true));
    let t0 = Instant::now();
    loop {
        let (code, out) = ensure_stream(&a.config);
        if code == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "--ensure-stream over TLS with the nkey: {out}\n{}", cluster.logs());
        std::thread::sleep(Duration::from_millis(300));
    }
    let ship = ShipProc::start(&a.config, &certs.0.join("edge-a.sock"), &a.dir.0.join("ship.log"));
    let c = Client::new(&lab, false, 7777);
    for p in 0..30 {
        assert_eq!(c.send(&Client::mv(0, 5, p, 1)), Some(ironhoard_wire::Status::Accepted));
    }
    let s = ship.wait_drained(30, Duration::from_secs(20));
    assert_eq!((s["published"].as_u64(), s["rejected"].as_u64()), (Some(30), Some(0)), "{s}");
    drop(ship);
    // another nkey is refused by the server; so is a client that does not
    // know the CA, and one that does not speak TLS
    let other = certs.0.join("other.nk");
    fs::write(&other, format!("{}\n", nkeys::KeyPair::new_user().seed().unwrap())).unwrap();
    fs::set_permissions(&other, fs::Permissions::from_mode(0o600)).unwrap();
    let text = fs::read_to_string(&a.config).unwrap();
    let base = &text[..text.find("\n[ship]").unwrap()];
    for (servers, nkey, ca, what) in [
        (url.as_str(), &other, true, "another nkey"),
        (url.as_str(), &seed, false, "no CA"),
        (&format!("nats://127.0.0.1:{port}")[..], &seed, false, "plain text"),
    ] {
        fs::write(&a.config, format!("{base}{}", section(servers, nkey, ca))).unwrap();
        let (code, out) = ensure_stream(&a.config);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.contains("NATS tls://127.0.0.1") || out.contains("NATS nats://127.0.0.1"), "{what}: the error names the servers: {out}");
    }
}
