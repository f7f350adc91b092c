//! The consumer against a real nats-server (2.15, JetStream): the vector
//! payloads and forged ones, published as the shipper does.
//!
//! Skips only when no nats-server binary is found ($NATS_SERVER, the
//! Python scripts directory where setup.sh installs it, or $PATH).

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use async_nats::HeaderMap;
use ironhoard_consumer::{ConsumerConfig, GameConsumer, GameMetrics, Keyring, Refusal, Refused, ShippedMove};
use ironhoard_wire::{PartitionStream, PartitionSubjects, Subject};

fn nats_server_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return Some(p.into());
    }
    let scripts = Command::new("python3")
        .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
        .output()
        .ok()
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("nats-server"));
    if let Some(p) = scripts.filter(|p| p.is_file()) {
        return Some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join("nats-server")).find(|p| p.is_file())
}

/// A nats-server with JetStream in a temporary directory, killed on drop
/// (also when a test panics).
struct NatsServer {
    child: Child,
    dir: PathBuf,
    url: String,
}

impl NatsServer {
    fn start(bin: &PathBuf) -> NatsServer {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("ih-consumer-nats-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let s = NatsServer { child, dir, url: format!("nats://127.0.0.1:{port}") };
        let t0 = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "nats-server on port {port} did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        s
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[derive(serde::Deserialize)]
struct Vectors {
    cases: Vec<Case>,
    forged: Vec<Forged>,
    malformed: Vec<Forged>,
}
#[derive(serde::Deserialize)]
struct Case {
    master_secret_hex: String,
    payload_hex: String,
    msg_id: String,
}
#[derive(serde::Deserialize)]
struct Forged {
    payload_hex: String,
}

fn vectors() -> Vectors {
    serde_json::from_str(include_str!("../../../clients/testdata/shipped-v1.json")).unwrap()
}

fn keyring(v: &Vectors) -> Keyring {
    let mut k = Keyring::new();
    let mut seen = std::collections::HashMap::new();
    for c in &v.cases {
        let p = hex::decode(&c.payload_hex).unwrap();
        let secret: [u8; 32] = hex::decode(&c.master_secret_hex).unwrap().try_into().unwrap();
        assert_eq!(*seen.entry(p[3]).or_insert(secret), secret, "one secret per key_id in the vectors");
        k.insert(p[3], &secret);
    }
    k
}

fn game_of(payload: &[u8]) -> u32 {
    u32::from_be_bytes(payload[8..12].try_into().unwrap())
}

async fn publish(js: &jetstream::Context, subject: String, msg_id: Option<String>, payload: Vec<u8>) {
    let mut h = HeaderMap::new();
    if let Some(id) = msg_id {
        h.insert("Nats-Msg-Id", id.as_str());
    }
    h.insert("Ironhoard-Host", "edge-test");
    h.insert("Ironhoard-Queue", "0");
    h.insert("Ironhoard-Offset", "7");
    js.publish_with_headers(subject, h, payload.into()).await.unwrap().await.unwrap();
}

struct Outcome {
    moves: Vec<ShippedMove>,
    refused: Vec<Refused>,
    metrics: Arc<GameMetrics>,
    pending: (usize, u64),
}

/// Runs game `cfg.game_id`'s consumer until `events` moves + refusals
/// were seen (or 15 s), then `linger` more; `fail_first` nak's the first
/// delivery of each move.
async fn run_game(client: &async_nats::Client, url: &str, cfg: ConsumerConfig, keys: Arc<Keyring>, events: usize, linger: Duration, fail_first: bool) -> Outcome {
    let mut c = GameConsumer::bind(client.clone(), url, cfg.clone(), keys).await.unwrap();
    let moves = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let shutdown = {
        let (moves, refused) = (moves.clone(), refused.clone());
        async move {
            let t0 = Instant::now();
            while moves.lock().unwrap().len() + refused.lock().unwrap().len() < events && t0.elapsed() < Duration::from_secs(15) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::sleep(linger).await;
        }
    };
    let end = c
        .run(
            |mv: ShippedMove| {
                let (moves, seen) = (moves.clone(), seen.clone());
                async move {
                    let first = seen.lock().unwrap().insert(mv.repr.seq);
                    moves.lock().unwrap().push(mv);
                    if fail_first && first {
                        Err("not now")
                    } else {
                        Ok(())
                    }
                }
            },
            |r: &Refused| refused.lock().unwrap().push(r.clone()),
            shutdown,
        )
        .await
        .unwrap();
    assert_eq!(end, ironhoard_consumer::RunEnd::Shutdown);
    client.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let js = jetstream::new(client.clone());
    let mut info_consumer: jetstream::consumer::PullConsumer =
        js.get_stream(cfg.stream_name()).await.unwrap().get_consumer(&cfg.durable).await.unwrap();
    let info = info_consumer.info().await.unwrap();
    let pending = (info.num_ack_pending, info.num_pending);
    let moves = moves.lock().unwrap().clone();
    let refused = refused.lock().unwrap().clone();
    Outcome { moves, refused, metrics: c.metrics(), pending }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vectors_are_consumed_once_forged_and_malformed_are_terminated() {
    let Some(bin) = nats_server_binary() else {
        eprintln!("SKIP: no nats-server binary");
        return;
    };
    let server = NatsServer::start(&bin);
    let client = async_nats::connect(&server.url).await.unwrap();
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config { name: "MOVES".into(), subjects: vec!["ih.moves.*".into()], ..Default::default() })
        .await
        .unwrap();
    let v = vectors();
    let keys = Arc::new(keyring(&v));
    for c in &v.cases {
        let p = hex::decode(&c.payload_hex).unwrap();
        publish(&js, format!("ih.moves.{}", game_of(&p)), Some(c.msg_id.clone()), p).await;
    }
    // the forged ones and the malformed ones (all of game 1's subject); no
    // msg id, or the stream would take them for the valid move's duplicates
    let game1 = game_of(&hex::decode(&v.cases[0].payload_hex).unwrap());
    let mut bad = 0;
    for f in v.forged.iter().chain(&v.malformed) {
        publish(&js, format!("ih.moves.{game1}"), None, hex::decode(&f.payload_hex).unwrap()).await;
        bad += 1;
    }
    for c in &v.cases {
        let p = hex::decode(&c.payload_hex).unwrap();
        let game = game_of(&p);
        let is1 = game == game1;
        let cfg = ConsumerConfig::new(game, format!("test-{game}"));
        let o = run_game(&client, &server.url, cfg.clone(), keys.clone(), 1 + if is1 { bad } else { 0 }, Duration::from_millis(300), false).await;
        assert_eq!(o.moves.len(), 1, "game {game}: the one valid move, once");
        let m = &o.moves[0];
        assert_eq!(&m.to_payload()[..], &p[..]);
        assert_eq!(m.msg_id.as_deref(), Some(c.msg_id.as_str()));
        assert_eq!(m.identity(), c.msg_id);
        assert_eq!(m.host.as_deref(), Some("edge-test"));
        assert!(!m.out_of_order);
        assert!(m.stream_seq > 0);
        if is1 {
            assert_eq!(o.refused.len(), bad, "every forged and malformed message refused");
            let bad_tags = o.refused.iter().filter(|r| matches!(r.reason, Refusal::BadTag { .. })).count();
            let malformed = o.refused.iter().filter(|r| matches!(r.reason, Refusal::Malformed(_))).count();
            // the forged game_id bit moves the move to another game
            let wrong_game = o.refused.iter().filter(|r| matches!(r.reason, Refusal::WrongGame { .. })).count();
            assert_eq!((bad_tags + wrong_game, malformed), (v.forged.len(), v.malformed.len()), "{:?}", o.refused);
        } else {
            assert!(o.refused.is_empty(), "game {game}: {:?}", o.refused);
        }
        assert_eq!(o.metrics.moves(), 1);
        assert_eq!(o.metrics.refused(), o.refused.len() as u64);
        assert_eq!(o.metrics.journey().count, 1);
        assert!(o.metrics.journey().max > 0);
        assert_eq!(o.pending, (0, 0), "game {game}: everything acked or terminated");
        // the same durable again: nothing left
        let again = run_game(&client, &server.url, cfg, keys.clone(), 0, Duration::from_millis(700), false).await;
        assert!(again.moves.is_empty() && again.refused.is_empty(), "game {game}: delivered again");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_streams_nak_redelivers_and_out_of_order_is_flagged() {
    let Some(bin) = nats_server_binary() else {
        eprintln!("SKIP: no nats-server binary");
        return;
    };
    let server = NatsServer::start(&bin);
    let client = async_nats::connect(&server.url).await.unwrap();
    let js = jetstream::new(client.clone());
    let n = 3u16;
    for p in 0..n {
        let name = PartitionStream { stream: "PM", partitions: n, partition: p }.to_string();
        let subjects = PartitionSubjects { prefix: "g.mv", partitions: n, partition: p }.to_string();
        js.create_stream(stream::Config { name, subjects: vec![subjects], ..Default::default() }).await.unwrap();
    }
    let secret = [7u8; 32];
    let mut keys = Keyring::new();
    keys.insert(2, &secret);
    let keys = Arc::new(keys);
    let game = 70_000;
    let master = ironhoard_wire::MasterKey::new(&secret);
    let subject = Subject { prefix: "g.mv", game_id: game, partitions: n }.to_string();
    let send = |seq: u64| {
        let m = ironhoard_wire::MoveRepr { key_id: 2, kind: 1, game_id: game, player_id: 5, seq, ..Default::default() };
        let mut mv = [0u8; 64];
        m.emit(&mut ironhoard_wire::Move::new_unchecked(&mut mv[..]), &master.player_mac(game, 5));
        let p = ironhoard_wire::ShippedRepr { mv, recv_unix_ns: ironhoard_consumer::now_unix_ns(), queue: 1, offset: seq }.to_bytes();
        publish(&js, subject.clone(), Some(format!("ih1.{game}.5.{seq}")), p.to_vec())
    };
    // seqs 1, 3, 2 of one player: 2 arrives after 3
    for seq in [1u64, 3, 2] {
        send(seq).await;
    }
    let cfg = ConsumerConfig { stream: "PM".into(), prefix: "g.mv".into(), partitions: n, ..ConsumerConfig::new(game, "part") };
    assert_eq!(cfg.stream_name(), format!("PM_{}", ironhoard_wire::partition(game, n)));
    let o = run_game(&client, &server.url, cfg.clone(), keys.clone(), 3, Duration::from_millis(300), false).await;
    let seqs: Vec<(u64, bool)> = o.moves.iter().map(|m| (m.repr.seq, m.out_of_order)).collect();
    assert_eq!(seqs, [(1, false), (3, false), (2, true)], "in stream order, 2 flagged");
    assert_eq!((o.metrics.moves(), o.metrics.out_of_order(), o.metrics.refused()), (3, 1, 0));
    assert_eq!(o.pending, (0, 0));
    // each move's first delivery fails (nak): yielded twice, applied once
    for seq in [4u64, 5] {
        send(seq).await;
    }
    let o = run_game(&client, &server.url, cfg.clone(), keys.clone(), 4, Duration::from_millis(300), true).await;
    let mut seqs: Vec<u64> = o.moves.iter().map(|m| m.repr.seq).collect();
    seqs.sort();
    assert_eq!(seqs, [4, 4, 5, 5]);
    assert_eq!(o.metrics.moves(), 2);
    assert_eq!(o.pending, (0, 0));
    let again = run_game(&client, &server.url, cfg, keys, 0, Duration::from_millis(700), false).await;
    assert!(again.moves.is_empty());
}
