//! The game server's side: the Go package (clients/go) and the Rust crate
//! (ironhoard-consumer), through their example game servers
//! (examples/go-game-server, examples/game-server), consume what a lab
//! appliance and its shipper put in the stream: exactly the moves the
//! client saw ACCEPTED (and the log holds), each once, every tag verified
//! by the consumer, a forged message refused and never applied. With
//! `[ship] partitions = 3` on a 3-node cluster, through one partition's
//! stream leader SIGKILLed mid-run: every move once, in its game's stream,
//! and the game servers find their games there without knowing partitions.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ironhoard_labtests::logcheck::{assert_log_matches_client, id_of, read_log, MoveId};
use ironhoard_labtests::nats::{block_on, finish, pktgen, start, Cluster, Stored};
use ironhoard_labtests::{bin, Lab, TempDir};
use ironhoard_ship::message;
use serde_json::Value;

const GAMES: std::ops::RangeInclusive<u32> = 1..=16; // pktgen --games 16

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The Go example game server, built by `scripts/go.sh build` (make build
/// does it; built here if missing).
fn go_game_server() -> PathBuf {
    let p = root().join("target/go/bin/ironhoard-go-game-server");
    if !p.exists() {
        let o = Command::new("bash").arg(root().join("scripts/go.sh")).arg("build").output().unwrap();
        assert!(o.status.success(), "scripts/go.sh build: {}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    }
    p
}

struct Consumed {
    code: i32,
    summary: Value,
    /// Every move the game server applied, in order, as listed by --moves-out.
    moves: Vec<MoveId>,
    stderr: String,
}

/// Runs a game server over every game until it has been idle for 2 s.
fn consume(gs: &Path, urls: &[String], partitions: u16, durable: &str, secret: &Path, out: &Path) -> Consumed {
    let moves_out = out.join(format!("{durable}.moves"));
    let _ = std::fs::remove_file(&moves_out);
    let mut cmd = Command::new(gs);
    for u in urls {
        cmd.args(["--server", u]);
    }
    for g in GAMES {
        cmd.args(["--game", &g.to_string()]);
    }
    let o = cmd
        .args(["--stream", "MOVES", "--prefix", "ih.moves", "--partitions", &partitions.to_string(), "--durable", durable, "--idle", "2"])
        .arg("--secret")
        .arg(format!("0={}", secret.display()))
        .arg("--moves-out")
        .arg(&moves_out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let summary = stderr.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or_else(|| panic!("{}: no summary: {stderr}", gs.display()));
    let moves = std::fs::read_to_string(&moves_out)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Vec<u64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            (v[0] as u8, v[1] as u32, v[2] as u32, v[3])
        })
        .collect();
    Consumed { code: o.status.code().unwrap_or(-1), summary, moves, stderr }
}

/// The game server applied exactly the logged moves, each once.
fn assert_consumed_is_log(name: &str, c: &Consumed, log: &BTreeSet<MoveId>) {
    assert_eq!(c.code, 0, "{name}: exit status; {}", c.stderr.lines().rev().take(5).collect::<Vec<_>>().join("\n"));
    let set: BTreeSet<MoveId> = c.moves.iter().copied().collect();
    assert_eq!(set.len(), c.moves.len(), "{name}: a move applied twice");
    let missing: Vec<_> = log.difference(&set).take(5).collect();
    let extra: Vec<_> = set.difference(log).take(5).collect();
    assert!(missing.is_empty() && extra.is_empty(), "{name}: {} logged moves not applied (e.g. {missing:?}), {} applied moves not in the log (e.g. {extra:?})", log.len() - log.intersection(&set).count(), set.len() - log.intersection(&set).count());
    assert_eq!(c.summary["consumed"].as_u64(), Some(log.len() as u64), "{name}: {}", c.summary);
    assert_eq!(c.summary["refused"].as_u64(), Some(0), "{name}: every tag verified: {}", c.summary);
    assert_eq!(c.summary["journey_us"]["count"].as_u64(), Some(log.len() as u64), "{name}: one journey per move: {}", c.summary);
}

/// Every stored message is a logged move, once, on its game's subject in
/// its game's partition stream.
fn assert_streams_are_log(streams: &[(String, Vec<Stored>)], partitions: u16, logdir: &Path) -> usize {
    let mut by_id = HashMap::new();
    for (name, stored) in streams {
        for s in stored {
            let r = message::decode(&s.payload).unwrap_or_else(|| panic!("{name} seq {}: not a move record", s.seq));
            assert_eq!(s.msg_id, message::msg_id(&r.mv), "{name} seq {}: Nats-Msg-Id", s.seq);
            assert_eq!(s.subject, message::subject("ih.moves", partitions, &r.mv), "{name} seq {}: subject", s.seq);
            let p = message::partition_of(partitions, &r.mv);
            assert_eq!(*name, if partitions > 1 { format!("MOVES_{p}") } else { "MOVES".into() }, "seq {}: the move of game {} is in its partition's stream", s.seq, s.subject);
            assert!(by_id.insert(id_of(&r), r).is_none(), "move {:?} stored twice ({name} seq {})", id_of(&r), s.seq);
        }
    }
    let log = read_log(logdir);
    assert_eq!(by_id.len(), log.len(), "the streams hold {} moves, the log {}", by_id.len(), log.len());
    for r in &log {
        assert_eq!(by_id.get(&id_of(r)), Some(r), "the streams' copy of q{}:{} (missing or different)", r.queue, r.offset);
    }
    log.len()
}

#[test]
fn go_and_rust_game_servers_apply_exactly_the_accepted_moves_once_and_refuse_a_forgery() {
    let go = go_game_server();
    let rust = bin("ironhoard-game-server");
    let lab = Lab::new(1);
    let cluster = Cluster::start(1);
    let (a, ship, _d) = start(&lab, &cluster, "socket", "edge-a", 1, "");
    let out = TempDir::new("consumers");
    let secret = a.dir.0.join("secret0.hex");
    let g = pktgen(&lab, &secret, &out.0, 20_000, 60_000, "socket");
    // the game servers run while the moves come in, from the first
    let early = std::thread::spawn({
        let (go, urls, secret, out) = (go.clone(), cluster.urls(), secret.clone(), out.0.clone());
        move || consume(&go, &urls, 1, "live-go", &secret, &out)
    });
    let r = finish(g, &out.0);
    let (acked, logged) = assert_log_matches_client(&a.dir.0.join("log"), &out.0.join("accepted.txt"), r["lost"].as_u64().unwrap());
    ship.wait_drained(logged as u64, Duration::from_secs(60));
    let log: BTreeSet<MoveId> = read_log(&a.dir.0.join("log")).iter().map(id_of).collect();
    assert_streams_are_log(&[("MOVES".into(), cluster.read_stream("MOVES"))], 1, &a.dir.0.join("log"));
    let live = early.join().unwrap();
    assert_consumed_is_log("go, consuming while the moves came in", &live, &log);
    for (name, gs, durable) in [("go", &go, "gs-go"), ("rust", &rust, "gs-rust")] {
        let c = consume(gs, &cluster.urls(), 1, durable, &secret, &out.0);
        assert_consumed_is_log(name, &c, &log);
        eprintln!("{name}: {} moves applied once each, journey {}", c.moves.len(), c.summary["journey_us"]);
        // a durable consumer remembers what was acked
        let again = consume(gs, &cluster.urls(), 1, durable, &secret, &out.0);
        assert_eq!((again.code, again.moves.len()), (0, 0), "{name}: a second run applies nothing: {}", again.summary);
    }
    eprintln!("{acked} acked ACCEPTED, {logged} logged, each applied once by the Go and the Rust game server");

    // a message whose move was altered after signing: refused (termed),
    // never applied, by both
    let stored = cluster.read_stream("MOVES");
    let mut forged = stored[0].payload.clone();
    forged[40] ^= 1;
    let (url, subject) = (cluster.urls()[0].clone(), stored[0].subject.clone());
    block_on(async move {
        let c = async_nats::connect(url).await.unwrap();
        async_nats::jetstream::new(c).publish(subject, forged.into()).await.unwrap().await.unwrap();
    });
    for (name, gs, durable) in [("go", &go, "gs-go"), ("rust", &rust, "gs-rust")] {
        let c = consume(gs, &cluster.urls(), 1, durable, &secret, &out.0);
        assert_eq!((c.code, c.moves.len(), c.summary["refused"].as_u64()), (1, 0, Some(1)), "{name}: the forgery refused: {}", c.stderr);
        assert!(c.stderr.contains("REFUSED"), "{name}: said so: {}", c.stderr);
        let again = consume(gs, &cluster.urls(), 1, durable, &secret, &out.0);
        assert_eq!((again.code, again.summary["refused"].as_u64()), (0, Some(0)), "{name}: termed, not redelivered: {}", again.stderr);
    }
}

#[test]
fn three_partitions_on_an_r3_cluster_store_each_move_once_through_a_leader_kill() {
    let lab = Lab::new(1);
    let mut cluster = Cluster::start(3);
    let (a, ship, _d) = start(&lab, &cluster, "socket", "edge-a", 3, "partitions = 3");
    let streams: Vec<String> = (0..3).map(|p| format!("MOVES_{p}")).collect();
    let out = TempDir::new("partitions");
    let secret = a.dir.0.join("secret0.hex");
    let n = 120_000u64;
    let g = pktgen(&lab, &secret, &out.0, 20_000, n, "socket");
    // 2 s in: SIGKILL the leader of the stream with the most games, bring
    // it back 3 s later
    std::thread::sleep(Duration::from_secs(2));
    let busiest = (0..3u16).max_by_key(|p| GAMES.filter(|g| ironhoard_wire::shipped::partition(*g, 3) == *p).count()).unwrap();
    let (leader, t_kill) = cluster.kill_leader_for(&streams[busiest as usize], Duration::from_secs(3));
    let r = finish(g, &out.0);
    let (acked, logged) = assert_log_matches_client(&a.dir.0.join("log"), &out.0.join("accepted.txt"), r["lost"].as_u64().unwrap());
    let s = ship.wait_drained(logged as u64, Duration::from_secs(120));
    let stored: Vec<(String, Vec<Stored>)> = streams.iter().map(|n| (n.clone(), cluster.read_stream(n))).collect();
    let moves = assert_streams_are_log(&stored, 3, &a.dir.0.join("log"));
    let per: Vec<usize> = stored.iter().map(|(_, v)| v.len()).collect();
    assert!(per.iter().all(|&k| k > 0), "every partition's stream holds moves: {per:?}");
    let log: BTreeSet<MoveId> = read_log(&a.dir.0.join("log")).iter().map(id_of).collect();
    for (name, gs) in [("rust", bin("ironhoard-game-server")), ("go", go_game_server())] {
        let c = consume(&gs, &cluster.urls(), 3, &format!("p3-{name}"), &secret, &out.0);
        assert_consumed_is_log(name, &c, &log);
    }
    eprintln!(
        "{acked} acked ACCEPTED, {logged} logged, {moves} in 3 streams {per:?}, each once; leader {leader} of {} SIGKILLed 2 s in ({:?} ago); shipper: retries {} duplicates {}; the Go and Rust game servers applied each once",
        streams[busiest as usize],
        t_kill.elapsed(),
        s["retries"],
        s["duplicates"]
    );
}
