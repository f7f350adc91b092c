//! An example game server: consumes the moves of one or more games from
//! NATS JetStream with `ironhoard-consumer`, verifies each, "applies" it
//! (counts it, optionally writes it to --moves-out) and acks it after.
//!
//! ```text
//! ironhoard-game-server --server nats://10.0.0.5:4222 --game 7 --game 9 \
//!     --durable arena --secret 0=/etc/ironhoard/secret0.hex --idle 0
//! ```
//!
//! One stderr line `REFUSED game G stream seq S: <why>` per refused
//! message; the last stderr line is the summary JSON. Exit 0 when nothing
//! was refused, 1 otherwise, 2 on a usage or connection error.
#![forbid(unsafe_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use ironhoard_consumer::{prometheus_text, ConsumerConfig, GameConsumer, GameMetrics, Keyring, Refused, ShippedMove, Summary};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(about = "Example IronHoard game server: consumes, verifies and acks moves from NATS JetStream")]
struct Args {
    /// NATS server URL (nats://host:port); repeatable
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    /// Stream base name (with partitions: <stream>_<partition>)
    #[arg(long, default_value = "MOVES")]
    stream: String,
    /// Subject prefix
    #[arg(long, default_value = "ih.moves")]
    prefix: String,
    /// The shipper's partition count
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    partitions: u16,
    /// A game to consume (one durable consumer per game); repeatable
    #[arg(long = "game", required = true)]
    games: Vec<u32>,
    /// Durable name; game G's consumer is <durable>-G
    #[arg(long)]
    durable: String,
    /// K=FILE: key_id K's master secret, 64 hex characters; repeatable
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// Exit after this many seconds with no message (0: until SIGINT/SIGTERM)
    #[arg(long, default_value_t = 2.0)]
    idle: f64,
    /// Exit once this many moves were consumed in total (0: no limit)
    #[arg(long, default_value_t = 0)]
    count: u64,
    /// Write "key_id game_id player_id seq" per consumed move
    #[arg(long)]
    moves_out: Option<PathBuf>,
    /// Serve GET /metrics (Prometheus text) on this address
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Also write the final summary JSON to this file
    #[arg(long)]
    report: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(summary) => {
            if summary.refused == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn keyring(secrets: &[String]) -> anyhow::Result<Keyring> {
    let mut keys = Keyring::new();
    for s in secrets {
        let Some((k, file)) = s.split_once('=') else { bail!("--secret {s:?}: expected K=FILE") };
        let k: u8 = k.parse().with_context(|| format!("--secret {s:?}: key_id {k:?} is not 0..=255"))?;
        keys.insert_file(k, file)?;
    }
    if secrets.is_empty() {
        bail!("no --secret: every move would be refused");
    }
    Ok(keys)
}

/// What the consumers share with the main task.
struct Shared {
    consumed: AtomicU64,
    last_activity: Mutex<Instant>,
    moves_out: Option<Mutex<std::io::BufWriter<std::fs::File>>>,
    moves_out_path: Option<PathBuf>,
    moves_out_error: Mutex<Option<String>>,
}

impl Shared {
    fn touch(&self) {
        *self.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// The game's "apply": count the move, log it.
    fn apply(&self, mv: &ShippedMove) -> Result<(), String> {
        if let Some(out) = &self.moves_out {
            let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = writeln!(out, "{} {} {} {}", mv.repr.key_id, mv.repr.game_id, mv.repr.player_id, mv.repr.seq) {
                let why = format!("{}: {e}", self.moves_out_path.as_deref().unwrap_or_else(|| "?".as_ref()).display());
                *self.moves_out_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(why.clone());
                return Err(why);
            }
        }
        self.consumed.fetch_add(1, Ordering::Relaxed);
        self.touch();
        Ok(())
    }
}

async fn run(args: Args) -> anyhow::Result<Summary> {
    if !args.idle.is_finite() || args.idle < 0.0 {
        bail!("--idle {}: expected seconds >= 0", args.idle);
    }
    let keys = Arc::new(keyring(&args.secrets)?);
    let moves_out = match &args.moves_out {
        Some(p) => Some(Mutex::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("--moves-out {}", p.display()))?,
        ))),
        None => None,
    };
    let servers = args.servers.join(",");
    let client = ironhoard_consumer::connect(&args.servers, &format!("ironhoard-game-server {}", args.durable)).await?;

    let mut games = args.games.clone();
    games.sort_unstable();
    games.dedup();
    let mut consumers = Vec::new();
    for &game in &games {
        let cfg = ConsumerConfig {
            stream: args.stream.clone(),
            prefix: args.prefix.clone(),
            partitions: args.partitions,
            ..ConsumerConfig::new(game, format!("{}-{game}", args.durable))
        };
        consumers.push(GameConsumer::bind(client.clone(), &servers, cfg, keys.clone()).await?);
    }
    let metrics: Vec<Arc<GameMetrics>> = consumers.iter().map(GameConsumer::metrics).collect();

    if let Some(addr) = &args.metrics_listen {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("--metrics-listen {addr}"))?;
        tokio::spawn(serve_metrics(listener, metrics.clone()));
    }

    let shared = Arc::new(Shared {
        consumed: AtomicU64::new(0),
        last_activity: Mutex::new(Instant::now()),
        moves_out,
        moves_out_path: args.moves_out.clone(),
        moves_out_error: Mutex::new(None),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for mut c in consumers {
        let shared = shared.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let refused_shared = shared.clone();
            c.run(
                move |mv: ShippedMove| {
                    let r = shared.apply(&mv);
                    async move { r }
                },
                move |r: &Refused| {
                    eprintln!("REFUSED game {} stream seq {}: {}", r.game_id, r.stream_seq, r.reason);
                    refused_shared.touch();
                },
                async move {
                    let _ = stop.wait_for(|s| *s).await;
                },
            )
            .await
        }));
    }

    // until --count, --idle, a signal, or a consumer's error
    let idle = (args.idle > 0.0).then(|| Duration::from_secs_f64(args.idle));
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("SIGTERM handler")?;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            _ = tick.tick() => {}
        }
        if args.count > 0 && shared.consumed.load(Ordering::Relaxed) >= args.count {
            break;
        }
        if let Some(idle) = idle {
            if shared.last_activity.lock().unwrap_or_else(|e| e.into_inner()).elapsed() >= idle {
                break;
            }
        }
        if tasks.iter().any(|t| t.is_finished()) {
            break;
        }
    }
    let _ = stop_tx.send(true);
    let mut failure = None;
    for t in tasks {
        match t.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failure = Some(anyhow::Error::new(e)),
            Err(e) => failure = Some(anyhow::anyhow!("consumer task: {e}")),
        }
    }
    // the acks are published without waiting: send them before leaving
    client.flush().await.with_context(|| format!("flushing acks to {servers}"))?;
    if let Some(out) = &shared.moves_out {
        out.lock().unwrap_or_else(|e| e.into_inner()).flush().with_context(|| {
            format!("--moves-out {}", args.moves_out.as_deref().unwrap_or_else(|| "?".as_ref()).display())
        })?;
    }
    let summary = Summary::of(metrics.iter().map(|m| &**m));
    let json = serde_json::to_string(&summary)?;
    if let Some(p) = &args.report {
        std::fs::write(p, format!("{json}\n")).with_context(|| format!("--report {}", p.display()))?;
    }
    if let Some(e) = failure {
        eprintln!("error: {e:#}");
    }
    if let Some(e) = shared.moves_out_error.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
        eprintln!("error: --moves-out {e}");
    }
    eprintln!("{json}");
    Ok(summary)
}

/// A minimal HTTP/1.1 responder: GET /metrics → Prometheus text, else 404.
async fn serve_metrics(listener: tokio::net::TcpListener, metrics: Vec<Arc<GameMetrics>>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut req = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            // read the request head (up to 16 KiB, 5 s)
            let head = tokio::time::timeout(Duration::from_secs(5), async {
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 16 * 1024 {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                true
            })
            .await;
            if head != Ok(true) {
                return;
            }
            let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
            let mut parts = line.split(|&b| b == b' ');
            let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
            let (status, body) = if method == b"GET" && (path == b"/metrics" || path.starts_with(b"/metrics?")) {
                ("200 OK", prometheus_text(metrics.iter().map(|m| &**m)))
            } else {
                ("404 Not Found", "not found\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}
