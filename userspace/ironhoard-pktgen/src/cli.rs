//! The `ironhoard-pktgen` command line: clap definitions only, so that
//! `ironhoard-docgen` renders the man page and shell completions the Debian
//! package ships from exactly what the binary parses.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Kernel UDP (UDP GSO sends, recvmmsg); portable.
    Socket,
    /// AF_XDP TX/RX on --iface (our XDP program steers the acks to it).
    Xdp,
}

/// How acks are received in socket mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RxMode {
    /// The kernel UDP socket (recvmmsg, kernel RX timestamps).
    Socket,
    /// AF_XDP on --iface, our XDP program steering the acks to it: far
    /// cheaper per ack for the generator's core. The program appends each
    /// ack's arrival time, its kernel RX timestamp. For throughput sweeps
    /// on a shared-core lab.
    Xdp,
}

#[derive(Parser, Debug)]
#[command(
    name = "ironhoard-pktgen",
    version,
    about = "IronHoard traffic generator and replayer",
    long_about = "Generates signed moves for many players (or replays a capture), sends them to an \
appliance at a controlled rate through kernel UDP or AF_XDP, receives and verifies every ack \
(its tag and its echo of the move), and writes a JSON report: moves sent and acked, lost, \
statuses, and RTT percentiles (kernel timestamps where the kernel gives them). A hostile mix \
(forged tags, wrong key_id, junk, replays) tests what the appliance must refuse."
)]
pub struct Args {
    /// The appliance: IP:PORT (IPv4 or [IPv6]).
    #[arg(long)]
    pub target: SocketAddr,
    /// Master secret file (64 hex) the appliance has for --key-id.
    #[arg(long)]
    pub secret_file: PathBuf,
    /// The key_id the moves carry (selects --secret-file on the appliance).
    #[arg(long, default_value_t = 0)]
    pub key_id: u8,
    /// Datagrams per second (0 = as fast as possible).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Seconds of sending (the run also stops after --count datagrams, and
    /// on SIGINT or SIGTERM: then the late acks are waited for and the
    /// report written as after a full run).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Stop after this many datagrams.
    #[arg(long)]
    pub count: Option<u64>,
    /// Send in bursts of N back to back, spaced to keep --rate on average.
    #[arg(long, default_value_t = 1)]
    pub burst: u64,
    /// Fall at most this far behind the --rate schedule (µs): when the
    /// sender's core was taken for longer, the sends it missed are skipped
    /// (counted in the report's `skipped_behind`), not made up in one burst
    /// at full speed. Many independent clients do not catch up together
    /// after one of them stalls; without it a stall of the generator's own
    /// core becomes a burst the target queues, and its RTT tail. Default:
    /// catch up in full (the offered rate stays the rate asked).
    #[arg(long)]
    pub max_lag_us: Option<u64>,
    /// Make up missed sends at most F times the --rate (F > 1), instead of
    /// at full speed: after its core was taken for D ms the sender owes
    /// D × rate moves, and sends them spread over D / (F − 1) ms on top of
    /// the schedule. Nothing is skipped (the offered rate stays the rate
    /// asked, but for what is still owed when the run ends), and the target
    /// is not handed a burst at the generator's full speed that no
    /// population of independent clients sends. F > 1, with a --rate.
    /// Default: catch up at full speed. With --max-lag-us, what lies beyond
    /// the lag is skipped first.
    #[arg(long, value_name = "F")]
    pub catch_up: Option<f64>,
    /// How many games the players are spread over.
    #[arg(long, default_value_t = 1)]
    pub games: u32,
    /// The first game id: games are GAME_BASE..GAME_BASE+games (a probe
    /// uses a game id of its own so its moves are told apart downstream).
    #[arg(long, default_value_t = 1)]
    pub game_base: u32,
    /// Every player's first seq (a probe starts above any seq it used
    /// before, e.g. the time in seconds, so its moves are ACCEPTED again).
    #[arg(long, default_value_t = 1)]
    pub first_seq: u64,
    /// Players per game, each with its own key and seq.
    #[arg(long, default_value_t = 100)]
    pub players: u32,
    /// Only the players that poller N of an appliance with Q queues owns
    /// (N/Q; the appliance's hash, (game_id XOR player_id) mod Q): on a
    /// Q-queue XDP backend every move that lands on another queue is handed
    /// over to poller N (bench/handoff-bench.sh).
    #[arg(long, value_name = "N/Q", value_parser = parse_poller)]
    pub players_of_poller: Option<(usize, usize)>,
    /// Board size the moves' x/y are drawn from (WIDTHxHEIGHT).
    #[arg(long, default_value = "64x64")]
    pub board: String,
    /// Fraction of hostile datagrams, split evenly among forged tags, wrong
    /// key_id, junk lengths and replays of old seqs (unless the finer flags are given).
    #[arg(long, default_value_t = 0.0)]
    pub invalid_ratio: f64,
    /// Fraction of moves with a forged tag (silently dropped).
    #[arg(long)]
    pub forged_ratio: Option<f64>,
    /// Fraction of moves signed for a key_id the appliance lacks (dropped).
    #[arg(long)]
    pub wrong_key_ratio: Option<f64>,
    /// Fraction of datagrams of a wrong length (dropped by the XDP program).
    #[arg(long)]
    pub junk_ratio: Option<f64>,
    /// Fraction of resent old moves (acked DUPLICATE or STALE).
    #[arg(long)]
    pub replay_ratio: Option<f64>,
    /// How to send and receive.
    #[arg(long, value_enum, default_value_t = Mode::Socket)]
    pub mode: Mode,
    /// --mode socket: how acks are received (xdp: AF_XDP on --iface, the
    /// sends still through kernel UDP).
    #[arg(long, value_enum, default_value_t = RxMode::Socket)]
    pub rx_mode: RxMode,
    /// AF_XDP receive (--mode xdp, --rx-mode xdp): with its RX ring empty
    /// the receiver sleeps this many µs on a timer and looks again; 0
    /// sleeps in poll(2) instead. A thread asleep in poll(2) is woken by
    /// every flush of the ring, and on a veth that wake-up is paid on the
    /// target's core (up to ~0.3 µs an ack at 400 k/s: docs/performance.md,
    /// "The generator's wake-ups"). The sleep adds up to N µs to the
    /// user-space RTT of an ack that finds the ring empty.
    #[arg(long, default_value_t = 20)]
    pub rx_idle_us: u64,
    /// Interface for --mode xdp and --rx-mode xdp.
    #[arg(long)]
    pub iface: Option<String>,
    /// --mode xdp: the next hop's MAC (default: the neighbour table's entry
    /// for --target, resolved if needed).
    #[arg(long)]
    pub dst_mac: Option<String>,
    /// Write the generated traffic to this pcap (Ethernet frames).
    #[arg(long)]
    pub write_pcap: Option<PathBuf>,
    /// Source MAC address of the frames in --write-pcap.
    #[arg(long, default_value = "02:00:00:00:00:02")]
    pub pcap_src_mac: String,
    /// Destination MAC address of the frames in --write-pcap.
    #[arg(long, default_value = "02:00:00:00:00:01")]
    pub pcap_dst_mac: String,
    /// Replay the UDP datagrams of a pcap to --target instead of generating.
    #[arg(long)]
    pub replay: Option<PathBuf>,
    /// Replay timing: original gaps divided by SPEED (ignored with --rate > 0
    /// given explicitly for replay via --replay-rate).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Replay at a set rate instead of the capture's timing.
    #[arg(long)]
    pub replay_rate: Option<u64>,
    /// Replay the capture this many times.
    #[arg(long = "loop", default_value_t = 1)]
    pub loops: u64,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: PathBuf,
    /// Pin the sender to this core (with --threads, thread i to cpu + i).
    #[arg(long)]
    pub cpu: Option<usize>,
    /// Sender threads (socket mode), each with its own socket and its own
    /// share of the players and of the rate.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pin the receiver to this core.
    #[arg(long)]
    pub rx_cpu: Option<usize>,
    /// Run the receiver SCHED_FIFO (latency runs).
    #[arg(long)]
    pub rx_fifo: bool,
    /// How long to wait for late acks after the last send (ms).
    #[arg(long, default_value_t = 500)]
    pub drain_ms: u64,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Write every move acked ACCEPTED here, one `key_id game_id player_id
    /// seq` line each (sorted): what the client saw, to check a move log
    /// against exactly.
    #[arg(long)]
    pub accepted_out: Option<PathBuf>,
}

/// `N/Q` for --players-of-poller: poller N of Q (N < Q).
pub fn parse_poller(s: &str) -> Result<(usize, usize), String> {
    let (n, q) = s.split_once('/').ok_or_else(|| format!("{s:?} is not N/Q (e.g. 1/2)"))?;
    let n: usize = n.trim().parse().map_err(|e| format!("poller {n:?} in {s:?}: {e}"))?;
    let q: usize = q.trim().parse().map_err(|e| format!("queue count {q:?} in {s:?}: {e}"))?;
    if q == 0 || n >= q {
        return Err(format!("{s:?}: the poller must be below the queue count (0..{q})"));
    }
    Ok((n, q))
}
