//! `ih-bench-tokio`: what most game backends would write, for the lab
//! benchmark only. A tokio UDP server: `recv_from` → the appliance's engine
//! (tag, anti-replay window, rules, rate limit), in place on the datagram
//! buffer → `send_to` the ack. No move log: accepted moves are only counted.
//! See the crate documentation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use ironhoard_contenders::read_secret;
use ironhoard_dataplane::monotonic_ns;
use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{DropReason, Dispatch, Engine, EngineConfig, Keyring, Verdict};
use ironhoard_wire::{Status, ACK_LEN, MOVE_LEN};
use tokio::net::UdpSocket;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser)]
#[command(
    name = "ih-bench-tokio",
    version,
    about = "Bench only: a plain tokio UDP server running the appliance's validation engine, with NO move log",
    long_about = "Bench only: what most game backends would write. One tokio UdpSocket; each datagram goes through \
                  the appliance's engine (tag, anti-replay window, rules, rate limit) in place and the ack is sent \
                  back with send_to. There is NO move log: accepted moves are counted, not recorded, so a restart \
                  forgets every window. One master secret (key_id 0). Runs until SIGINT/SIGTERM, then prints counts."
)]
struct Args {
    /// Address and UDP port to bind (ADDR:PORT, e.g. 198.18.200.1:7777; port
    /// 0 picks a free one, printed in the ready line).
    #[arg(long)]
    listen: SocketAddr,
    /// Master secret file for key_id 0 (the appliance's format).
    #[arg(long)]
    secret_file: PathBuf,
    /// Board size WIDTHxHEIGHT (moves off it are INVALID).
    #[arg(long, default_value = "16x16", value_parser = parse_board)]
    board: (u16, u16),
    /// Moves per second per player (token bucket rate).
    #[arg(long, default_value_t = 100_000)]
    rate_per_second: u32,
    /// Token bucket depth per player.
    #[arg(long, default_value_t = 100_000)]
    rate_burst: u32,
    /// Player table capacity (allocated at start).
    #[arg(long, default_value_t = 65_536)]
    players: usize,
}

fn parse_board(s: &str) -> Result<(u16, u16), String> {
    s.split_once('x')
        .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
        .filter(|&(w, h): &(u16, u16)| w > 0 && h > 0)
        .ok_or_else(|| format!("{s}: want WIDTHxHEIGHT, both at least 1"))
}

/// Accepts every move and keeps none of them (no move log).
#[derive(Default)]
struct CountOnly {
    accepted: u64,
}

impl Dispatch for CountOnly {
    fn offer(&mut self, _mv: &[u8; MOVE_LEN], _recv_ns: u64) -> bool {
        self.accepted += 1;
        true
    }
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("ih-bench-tokio: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(a: Args) -> Result<()> {
    let secret = read_secret(&a.secret_file)?;
    let cfg = EngineConfig {
        board_width: a.board.0,
        board_height: a.board.1,
        bucket: BucketConfig { rate_per_second: a.rate_per_second, burst: a.rate_burst },
        players: a.players,
    };
    let mut seed = [0u8; 8];
    getrandom::getrandom(&mut seed).context("random player-table hash seed")?;
    // secrets[i] is key_id i, as the appliance's [moves] secrets list
    let mut engine = Engine::new(cfg, Arc::new(Keyring::from_secrets(&[secret])), u64::from_ne_bytes(seed));
    let mut dispatch = CountOnly::default();
    let sock = UdpSocket::bind(a.listen).await.with_context(|| format!("binding {}", a.listen))?;
    let (mut int, mut term) = (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?);
    let stop = async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    };
    tokio::pin!(stop);
    eprintln!("ih-bench-tokio: listening on {} (no move log); ready", sock.local_addr()?);

    let mut buf = [0u8; 2048];
    let mut recv_errors = 0u64;
    loop {
        let (n, from) = tokio::select! {
            biased;
            _ = &mut stop => break,
            r = sock.recv_from(&mut buf) => match r {
                Ok(r) => r,
                Err(_) => {
                    recv_errors += 1;
                    continue;
                }
            },
        };
        engine.counters.rx += 1;
        if let Verdict::Ack(_) = engine.process(&mut buf[..n], monotonic_ns(), &mut dispatch) {
            match sock.send_to(&buf[..ACK_LEN], from).await {
                Ok(_) => engine.counters.tx += 1,
                Err(_) => engine.counters.tx_errors += 1,
            }
        }
    }

    let c = &engine.counters;
    let statuses: Vec<String> = Status::ALL.iter().map(|&s| format!("{} {}", s.name(), c.status(s))).collect();
    let drops: Vec<String> =
        DropReason::ALL.iter().filter(|&&r| c.drops(r) > 0).map(|&r| format!("{} {}", r.name(), c.drops(r))).collect();
    println!(
        "ih-bench-tokio: rx {} acked {} ({}); dropped {} ({}); send errors {}, receive errors {recv_errors}; \
         {} moves accepted (not logged: no move log)",
        c.rx,
        c.tx,
        statuses.join(", "),
        c.dropped.iter().sum::<u64>(),
        if drops.is_empty() { "none".to_string() } else { drops.join(", ") },
        c.tx_errors,
        dispatch.accepted,
    );
    Ok(())
}
