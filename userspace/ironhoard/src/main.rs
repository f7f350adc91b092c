//! `ironhoard`: the appliance and its control commands (SPEC §2).

mod config;
mod prometheus;
mod run;
mod stats;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use config::{Config, Overrides};

#[derive(Parser)]
#[command(name = "ironhoard", version, about = "IronHoard: kernel-bypass move validation for real-time games")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the appliance.
    Run {
        #[arg(long)]
        config: PathBuf,
        /// Interface to serve (overrides [interface] name).
        #[arg(long)]
        iface: Option<String>,
        /// Move port (overrides [moves] port).
        #[arg(long)]
        port: Option<u16>,
        /// Stats socket path (overrides [stats] socket).
        #[arg(long)]
        stats_socket: Option<PathBuf>,
    },
    /// Validate a config file (and its secret files); exit non-zero on error.
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print a new random master secret (64 hex characters).
    Keygen {
        /// Write it to this file (created with mode 0600) instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the key of a player, derived from a master secret.
    PlayerKey {
        /// The master secret file.
        #[arg(long, required_unless_present = "config", conflicts_with = "config")]
        secret_file: Option<PathBuf>,
        /// Take the secret for --key-id from this config instead.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        game: u32,
        #[arg(long)]
        player: u32,
        /// key_id of the secret (selects it with --config).
        #[arg(long, default_value_t = 0)]
        key_id: u8,
    },
    /// Print the move log, one accepted move per line.
    Tail {
        /// The log directory ([log] dir).
        #[arg(long)]
        dir: PathBuf,
        /// Keep reading as the log grows (and rotates), like tail -f.
        #[arg(long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Start at this log offset (default: the beginning).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Read the running appliance's counters from its stats socket.
    Stats {
        #[arg(long, default_value = config::DEFAULT_STATS_SOCKET)]
        socket: PathBuf,
        /// One JSON object (SPEC counters, totals and per queue).
        #[arg(long, conflicts_with = "prometheus")]
        json: bool,
        /// Prometheus text exposition (HELP/TYPE, labels per queue and reason).
        #[arg(long)]
        prometheus: bool,
        /// Refresh every SECS seconds (default 1), like top.
        #[arg(long, num_args = 0..=1, default_missing_value = "1", value_name = "SECS")]
        watch: Option<f64>,
        /// Send a raw command (e.g. "show info") and print its JSON.
        #[arg(long)]
        command: Option<String>,
    },
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).format_target(false).init();
    let cli = Cli::parse();
    if let Err(e) = real_main(cli) {
        eprintln!("ironhoard: error: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Run { config, iface, port, stats_socket } => {
            let cfg = Config::load(&config, &Overrides { iface, port, stats_socket })?;
            run::run(cfg)
        }
        Cmd::CheckConfig { config } => {
            let c = Config::load(&config, &Overrides::default())?;
            println!(
                "{}: ok (backend {}, interface {}, {} queue(s), port {}, {} key_id(s))",
                config.display(),
                c.backend,
                c.iface,
                c.queues.len(),
                c.port,
                c.secrets.len()
            );
            Ok(())
        }
        Cmd::Keygen { out } => {
            let mut s = [0u8; 32];
            getrandom::getrandom(&mut s).context("reading random bytes")?;
            let line = format!("{}\n", hex::encode(s));
            match out {
                None => print!("{line}"),
                Some(p) => {
                    let mut f = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&p)
                        .with_context(|| format!("creating secret file {}", p.display()))?;
                    f.write_all(line.as_bytes()).with_context(|| format!("writing {}", p.display()))?;
                }
            }
            Ok(())
        }
        Cmd::PlayerKey { secret_file, config, game, player, key_id } => {
            let secret = match (secret_file, config) {
                (Some(f), _) => config::read_secret_file(&f).map_err(|why| anyhow::anyhow!("secret file {}: {why}", f.display()))?,
                (None, Some(c)) => {
                    let cfg = Config::load(&c, &Overrides::default())?;
                    match cfg.secrets.get(key_id as usize) {
                        Some(s) => *s,
                        None => bail!("config {}: no secret for key_id {key_id} ({} configured)", c.display(), cfg.secrets.len()),
                    }
                }
                (None, None) => bail!("give --secret-file or --config"),
            };
            let k = ironhoard_wire::MasterKey::new(&secret).player_key(game, player);
            println!("{}", hex::encode(k.0));
            Ok(())
        }
        Cmd::Tail { dir, follow, json, from, limit } => tail(&dir, follow, json, from, limit),
        Cmd::Stats { socket, json, prometheus, watch, command } => {
            let once = || -> Result<String> {
                if let Some(c) = &command {
                    return Ok(format!("{}\n", stats::query(&socket, c)?));
                }
                if prometheus {
                    let v = stats::query(&socket, "show metrics")?;
                    return Ok(v["prometheus"].as_str().unwrap_or_default().to_string());
                }
                let v = stats::query(&socket, "show stats")?;
                if json {
                    return Ok(format!("{v}\n"));
                }
                let lat = stats::query(&socket, "show latency").ok();
                Ok(stats::render_table(&v, lat.as_ref()))
            };
            match watch {
                None => print!("{}", once()?),
                Some(secs) => {
                    let every = std::time::Duration::from_secs_f64(secs.max(0.2));
                    loop {
                        let body = once()?;
                        // clear the screen and go home, like top
                        print!("\x1b[2J\x1b[H{} — every {:.1}s, Ctrl-C to quit\n\n{body}", socket.display(), every.as_secs_f64());
                        std::io::Write::flush(&mut std::io::stdout())?;
                        std::thread::sleep(every);
                    }
                }
            }
            Ok(())
        }
    }
}

/// `ironhoard tail`: the move log, one accepted move per line.
fn tail(dir: &std::path::Path, follow: bool, json: bool, from: u64, limit: Option<u64>) -> Result<()> {
    use std::io::Write as _;
    if !dir.is_dir() {
        bail!("move log directory {} does not exist", dir.display());
    }
    let mut r = ironhoard_movelog::Reader::open(dir, from);
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut n = 0u64;
    loop {
        match r.next()? {
            Some(rec) => {
                let m = ironhoard_wire::Move::new_unchecked(&rec.mv[..]);
                let kind = ironhoard_wire::Kind::from_u8(m.kind()).map(|k| k.name()).unwrap_or("?");
                let line = if json {
                    serde_json::json!({
                        "offset": rec.offset,
                        "game_id": m.game_id(),
                        "player_id": m.player_id(),
                        "seq": m.seq(),
                        "kind": kind,
                        "x": m.x(),
                        "y": m.y(),
                        "payload": hex::encode(m.payload()),
                        "server_ts_ns": rec.recv_unix_ns,
                        "queue": rec.queue,
                        "key_id": m.key_id(),
                        "client_ts": m.client_ts(),
                        "tag": hex::encode(m.tag()),
                    })
                    .to_string()
                } else {
                    format!(
                        "{} {} game {} player {} seq {} {} ({}, {}) payload {} queue {}",
                        rec.offset,
                        rec.recv_unix_ns,
                        m.game_id(),
                        m.player_id(),
                        m.seq(),
                        kind,
                        m.x(),
                        m.y(),
                        hex::encode(m.payload()),
                        rec.queue
                    )
                };
                if writeln!(out, "{line}").is_err() {
                    return Ok(()); // reader went away (e.g. | head)
                }
                n += 1;
                if limit.is_some_and(|l| n >= l) {
                    break;
                }
            }
            None if follow => {
                out.flush()?;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            None => break,
        }
    }
    out.flush()?;
    if r.torn_skipped > 0 {
        eprintln!("ironhoard tail: skipped {} torn record(s) left by a crash", r.torn_skipped);
    }
    Ok(())
}
