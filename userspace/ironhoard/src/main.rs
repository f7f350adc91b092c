//! `ironhoard`: the appliance and its control commands (SPEC §2).

mod capture;
mod client;
mod cli;
mod config;
mod control;
mod handover;
mod notify;
mod prometheus;
mod rebuild;
mod reload;
mod run;
mod serve;
mod ship;
mod stats;

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{Cli, Cmd};
use config::{Config, Overrides};

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
        Cmd::Capture { socket, queue, count, duration, status, acks, ring, out } => {
            let opts = capture::Options { queue, count, duration, status, acks, ring, ..Default::default() };
            capture_cmd(&socket, opts, &out)
        }
        Cmd::Run { config, iface, port, stats_socket } => {
            let ov = Overrides { iface, port, stats_socket };
            let cfg = Config::load(&config, &ov)?;
            run::run(cfg, ov)
        }
        Cmd::CheckConfig { config, on_host } => check_config(&config, on_host),
        Cmd::Keygen { out } => keygen(out.as_deref()),
        Cmd::PlayerKey { secret_file, config, game, player, key_id } => {
            player_key(secret_file.as_deref(), config.as_deref(), game, player, key_id)
        }
        Cmd::Tail { dir, follow, json, queue, from, limit, file } => match file {
            Some(f) => tail_file(&f, json, limit),
            None => tail(dir.as_deref().expect("clap: --dir or --file"), follow, json, queue, &from, limit),
        },
        Cmd::Ship { config, ensure_stream } => {
            let cfg = Config::load(&config, &Overrides::default())?;
            if ensure_stream {
                let code = ship::ensure_stream(&cfg)?;
                std::process::exit(code);
            }
            ship::run(cfg)
        }
        Cmd::Reload { socket } => reload(&socket),
        Cmd::Stats { socket, json, prometheus, watch, command } => {
            let once = || stats_once(&socket, command.as_deref(), prometheus, json);
            match watch {
                None => print!("{}", once()?),
                Some(secs) => watch_stats(&socket, secs, once)?,
            }
            Ok(())
        }
    }
}

/// `ironhoard capture`: checks the options and the output file, then runs.
fn capture_cmd(socket: &std::path::Path, opts: capture::Options, out: &std::path::Path) -> Result<()> {
    if let Some(d) = opts.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration {d}: give a positive number of seconds");
        }
    }
    if opts.count == Some(0) {
        bail!("--count 0: give at least 1 frame");
    }
    let out = capture::check_out(out)?;
    let summary = capture::run_client(socket, opts, &out)?;
    println!("{summary}");
    Ok(())
}

/// `ironhoard check-config [--on-host]`.
fn check_config(config: &std::path::Path, on_host: bool) -> Result<()> {
    let c = Config::load(config, &Overrides::default())?;
    if on_host {
        host_check(&c).with_context(|| format!("config {} on this host", config.display()))?;
    }
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

/// `ironhoard keygen [--out FILE]`: a new master secret, in hex; a file is
/// created (never replaced) with mode 0600.
fn keygen(out: Option<&std::path::Path>) -> Result<()> {
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
                .open(p)
                .with_context(|| format!("creating secret file {}", p.display()))?;
            f.write_all(line.as_bytes()).with_context(|| format!("writing {}", p.display()))?;
        }
    }
    Ok(())
}

/// `ironhoard player-key`: a player's key under a secret file or a
/// config's key_id.
fn player_key(
    secret_file: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
    game: u32,
    player: u32,
    key_id: u8,
) -> Result<()> {
    let secret = match (secret_file, config) {
        (Some(f), _) => config::read_secret_file(f).map_err(|why| anyhow::anyhow!("secret file {}: {why}", f.display()))?,
        (None, Some(c)) => {
            let cfg = Config::load(c, &Overrides::default())?;
            match cfg.secrets.get(key_id as usize) {
                Some(s) => s.clone(),
                None => bail!("config {}: no secret for key_id {key_id} ({} configured)", c.display(), cfg.secrets.len()),
            }
        }
        (None, None) => bail!("give --secret-file or --config"),
    };
    let k = ironhoard_wire::MasterKey::new(&secret.0).player_key(game, player);
    println!("{}", hex::encode(k.0));
    Ok(())
}

/// `ironhoard reload`: exit 0 reloaded, 1 refused, 3 refused (a restart
/// is needed), 4 no answer.
fn reload(socket: &std::path::Path) -> Result<()> {
    let v = match client::query_with_timeout(socket, "reload", std::time::Duration::from_secs(15)) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ironhoard: reload: {e:#}");
            std::process::exit(4);
        }
    };
    if v["ok"].as_bool() == Some(true) {
        println!("reloaded: {}", v["message"].as_str().unwrap_or_default());
        Ok(())
    } else {
        eprintln!("ironhoard: reload refused: {}", v["error"].as_str().unwrap_or("unknown error"));
        std::process::exit(if v["restart_needed"].as_bool() == Some(true) { 3 } else { 1 });
    }
}

/// One `ironhoard stats` answer: a raw command's JSON, the Prometheus
/// text, the JSON, or the table (the appliance's or the shipper's).
fn stats_once(socket: &std::path::Path, command: Option<&str>, prometheus: bool, json: bool) -> Result<String> {
    if let Some(c) = command {
        return Ok(format!("{}\n", client::query(socket, c)?));
    }
    if prometheus {
        let v = client::query(socket, "show metrics")?;
        return Ok(v["prometheus"].as_str().unwrap_or_default().to_string());
    }
    let v = client::query(socket, "show stats")?;
    if json {
        return Ok(format!("{v}\n"));
    }
    if v["role"] == "ship" {
        return Ok(ship::render_table(&v));
    }
    let lat = client::query(socket, "show latency").ok();
    Ok(stats::render_table(&v, lat.as_ref()))
}

/// `ironhoard stats --watch SECS`: `once` redrawn every SECS, like top.
fn watch_stats(socket: &std::path::Path, secs: f64, once: impl Fn() -> Result<String>) -> Result<()> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        bail!("--watch {secs}: give a number of seconds between 0.2 and 86400");
    }
    let every = std::time::Duration::from_secs_f64(secs.max(0.2));
    loop {
        let body = once()?;
        // clear the screen and go home, like top
        print!("\x1b[2J\x1b[H{} — every {:.1}s, Ctrl-C to quit\n\n{body}", socket.display(), every.as_secs_f64());
        std::io::Write::flush(&mut std::io::stdout())?;
        std::thread::sleep(every);
    }
}

/// What `run` would refuse on this host, checked without starting: the
/// interface exists, it has every configured rx queue (XDP backend), and
/// every core named is online.
fn host_check(c: &Config) -> Result<()> {
    let dev = std::path::Path::new("/sys/class/net").join(&c.iface);
    if !dev.exists() {
        bail!("interface.name = \"{}\": no such network interface", c.iface);
    }
    if c.backend == config::Backend::Xdp {
        for q in &c.queues {
            if !dev.join(format!("queues/rx-{q}")).exists() {
                let n = std::fs::read_dir(dev.join("queues"))
                    .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with("rx-")).count())
                    .unwrap_or(0);
                bail!(
                    "interface.queues: {} has {n} rx queue(s), no queue {q} (raise its channels: ethtool -L {} combined N)",
                    c.iface,
                    c.iface
                );
            }
        }
    }
    let wanted: Vec<usize> = c.cores.iter().chain(c.log_core.iter()).copied().collect();
    ironhoard_dataplane::affinity::check_cores(&wanted).map_err(|e| anyhow::anyhow!("interface.cores / log.core: {e}"))?;
    Ok(())
}

/// One record as `tail` prints it.
fn record_line(rec: &ironhoard_movelog::Record, json: bool) -> String {
    let m = ironhoard_wire::Move::new_unchecked(&rec.mv[..]);
    let kind = ironhoard_wire::Kind::from_u8(m.kind()).map(|k| k.name()).unwrap_or("?");
    if json {
        serde_json::json!({
            "queue": rec.queue,
            "offset": rec.offset,
            "game_id": m.game_id(),
            "player_id": m.player_id(),
            "seq": m.seq(),
            "kind": kind,
            "x": m.x(),
            "y": m.y(),
            "payload": hex::encode(m.payload()),
            "server_ts_ns": rec.recv_unix_ns,
            "key_id": m.key_id(),
            "client_ts": m.client_ts(),
            "tag": hex::encode(m.tag()),
        })
        .to_string()
    } else {
        format!(
            "q{}:{} {} game {} player {} seq {} {} ({}, {}) payload {}",
            rec.queue,
            rec.offset,
            rec.recv_unix_ns,
            m.game_id(),
            m.player_id(),
            m.seq(),
            kind,
            m.x(),
            m.y(),
            hex::encode(m.payload()),
        )
    }
}

/// `--from` values: QUEUE:OFFSET pairs, or one bare OFFSET with --queue.
fn parse_from(from: &[String], queue: Option<u16>) -> Result<Vec<(u16, u64)>> {
    let mut v = Vec::new();
    for f in from {
        match f.split_once(':') {
            Some((q, o)) => {
                let q = q.trim_start_matches('q');
                v.push((q.parse().with_context(|| format!("--from {f}: bad queue"))?, o.parse().with_context(|| format!("--from {f}: bad offset"))?));
            }
            None => match queue {
                Some(q) => v.push((q, f.parse().with_context(|| format!("--from {f}: bad offset"))?)),
                None => bail!("--from {f}: give QUEUE:OFFSET (offsets are per partition), or use --queue"),
            },
        }
    }
    Ok(v)
}

/// `ironhoard tail`: the move log, one accepted move per line.
fn tail(dir: &std::path::Path, follow: bool, json: bool, queue: Option<u16>, from: &[String], limit: Option<u64>) -> Result<()> {
    use std::io::Write as _;
    if !dir.is_dir() {
        bail!("move log directory {} does not exist", dir.display());
    }
    let from = parse_from(from, queue)?;
    if let Some(q) = queue {
        if !dir.join(ironhoard_movelog::partition_name(q)).is_dir() && !follow {
            bail!("move log {}: no partition q{q}", dir.display());
        }
    }
    let mut r = ironhoard_movelog::LogReader::open(dir, &from, queue)?;
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let (mut n, mut damaged) = (0u64, 0u64);
    loop {
        match r.next() {
            Ok(Some(rec)) => {
                if writeln!(out, "{}", record_line(&rec, json)).is_err() {
                    return Ok(()); // reader went away (e.g. | head)
                }
                n += 1;
                if limit.is_some_and(|l| n >= l) {
                    break;
                }
            }
            Ok(None) if follow => {
                out.flush()?;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Ok(None) => break,
            Err(e) if !e.is_fatal() => {
                out.flush()?;
                if matches!(e, ironhoard_movelog::ReadError::Damage { .. }) {
                    damaged += 1;
                }
                eprintln!("ironhoard tail: {e}");
            }
            Err(e) => return Err(e.into()),
        }
    }
    out.flush()?;
    if damaged > 0 {
        bail!("{damaged} damaged record(s) or segment(s) reported above (readable records were all printed)");
    }
    Ok(())
}

/// `ironhoard tail --file`: one segment file, slot by slot.
fn tail_file(path: &std::path::Path, json: bool, limit: Option<u64>) -> Result<()> {
    use ironhoard_movelog::{decode_header, decode_slot, Slot, HEADER_LEN, RECORD_LEN};
    use std::io::Write as _;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut bad = 0u64;
    let hb: [u8; HEADER_LEN] = bytes.get(..HEADER_LEN).and_then(|b| b.try_into().ok()).with_context(|| format!("{}: shorter than a header", path.display()))?;
    match decode_header(&hb) {
        Ok(h) => eprintln!("ironhoard tail: {}: partition q{}, first offset {}, {} slots", path.display(), h.partition, h.first, h.capacity()),
        Err(why) => {
            bad += 1;
            eprintln!("ironhoard tail: {}: bad header ({why}); reading its slots anyway", path.display());
        }
    }
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let mut n = 0u64;
    for (i, c) in bytes[HEADER_LEN..].chunks(RECORD_LEN).enumerate() {
        let byte = HEADER_LEN + i * RECORD_LEN;
        let Ok(slot) = <&[u8; RECORD_LEN]>::try_from(c) else {
            eprintln!("ironhoard tail: {}: {} stray bytes at byte {byte}", path.display(), c.len());
            bad += 1;
            break;
        };
        match decode_slot(slot) {
            Slot::Valid(rec) => {
                if writeln!(out, "{}", record_line(&rec, json)).is_err() {
                    return Ok(());
                }
                n += 1;
                if limit.is_some_and(|l| n >= l) {
                    break;
                }
            }
            Slot::Empty => {}
            Slot::Bad => {
                bad += 1;
                out.flush()?;
                eprintln!("ironhoard tail: {}: bad record at byte {byte} (slot {i})", path.display());
            }
        }
    }
    out.flush()?;
    if bad > 0 {
        bail!("{bad} bad slot(s) reported above");
    }
    Ok(())
}
