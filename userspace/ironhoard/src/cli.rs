//! The `ironhoard` command line (SPEC §2): clap definitions only, so that
//! `ironhoard-docgen` renders the man pages and shell completions the
//! Debian package ships from exactly what the binary parses.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Where `ironhoard run` listens for stats, reload and capture commands
/// unless `[stats] socket` says otherwise.
pub const DEFAULT_STATS_SOCKET: &str = "/run/ironhoard/stats.sock";

#[derive(Parser)]
#[command(
    name = "ironhoard",
    version,
    about = "IronHoard: kernel-bypass move validation for real-time games",
    long_about = "IronHoard validates the authenticated UDP moves of game clients at the edge: an XDP \
program steers move datagrams into AF_XDP sockets, one per NIC queue; a pinned poller per queue checks \
each move's HMAC-SHA256 tag, anti-replay window, board rules and rate limit in place, appends the \
accepted ones to the move log, and sends the signed ack back from the same frame. `ironhoard ship` \
publishes the log to NATS JetStream for the game servers. The package runs both as systemd units \
(ironhoard.service, ironhoard-ship.service); each subcommand has its own page, e.g. ironhoard-run(1)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run the appliance.
    ///
    /// Loads the XDP program onto the interface ([interface] name), opens one
    /// AF_XDP socket and one pinned poller per queue (or, with backend
    /// "socket", one kernel UDP worker per queue), recovers the move log and
    /// serves moves until SIGTERM: each move is validated (tag, anti-replay
    /// window, board, rate), logged if ACCEPTED, and acked from the frame it
    /// arrived in. Started while another appliance serves the same
    /// interface, port, backend, queues and log directory, it takes over from
    /// it without losing a move (SPEC §2). Under systemd (ironhoard.service)
    /// it reports READY once its pollers serve.
    Run {
        /// The configuration file (/etc/ironhoard/ironhoard.toml).
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
    /// Validate a config file and its secret files.
    ///
    /// Exits non-zero, naming the key and the value at fault, on an error.
    CheckConfig {
        /// The configuration file to check.
        #[arg(long)]
        config: PathBuf,
        /// Also check it against this host: the interface and its rx queues
        /// exist, every core is online (what `run` would refuse at start).
        #[arg(long)]
        on_host: bool,
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
        /// The game id.
        #[arg(long)]
        game: u32,
        /// The player id.
        #[arg(long)]
        player: u32,
        /// key_id of the secret (selects it with --config).
        #[arg(long, default_value_t = 0)]
        key_id: u8,
    },
    /// Print the move log, one accepted move per line.
    ///
    /// Every partition merged by server time, or one with --queue. Damage and gaps are
    /// reported on stderr (exit 1 after damage), never skipped silently.
    Tail {
        /// The log directory ([log] dir).
        #[arg(long, required_unless_present = "file")]
        dir: Option<PathBuf>,
        /// Keep reading as the log grows (and rotates), like tail -f.
        #[arg(long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Only this partition (queue).
        #[arg(long)]
        queue: Option<u16>,
        /// Where to start: QUEUE:OFFSET (repeatable, or comma-separated;
        /// other partitions from 0), or a bare OFFSET with --queue.
        #[arg(long, value_delimiter = ',')]
        from: Vec<String>,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<u64>,
        /// Read one segment file instead (also a set-aside damaged one),
        /// slot by slot, reporting the bad ones.
        #[arg(long, conflicts_with_all = ["dir", "follow", "queue", "from"])]
        file: Option<PathBuf>,
    },
    /// Publish the move log to NATS JetStream.
    ///
    /// Reads [ship] of the config and publishes one message per accepted
    /// move, at least once from the log and exactly once in the stream.
    /// Runs until SIGTERM.
    Ship {
        /// The appliance's configuration file (its [ship] and [log] sections).
        #[arg(long)]
        config: PathBuf,
        /// Create the stream if it does not exist, or check it and say what
        /// differs (exit 2), then exit.
        #[arg(long)]
        ensure_stream: bool,
    },
    /// Make the running appliance re-read its config.
    ///
    /// As SIGHUP does: secrets, board and rate limits change without a
    /// restart. Exit 0 when applied, 1 when the new config is refused (the
    /// old one keeps serving), 3 when what changed needs a restart, 4 when
    /// no appliance answers on the socket.
    Reload {
        /// The appliance's stats socket ([stats] socket).
        #[arg(long, default_value = DEFAULT_STATS_SOCKET)]
        socket: PathBuf,
    },
    /// Write what the AF_XDP pollers receive to a pcap.
    ///
    /// The frames as they arrived, after the XDP redirect (which xdpdump
    /// cannot see) and, with --acks, the acks the pollers send, in a pcap
    /// (Ethernet, ns timestamps) that tshark and `ironhoard-pktgen --replay`
    /// read. Ends after --count frames, --duration seconds, or Ctrl-C;
    /// prints a one-line JSON summary.
    Capture {
        /// The appliance's stats socket ([stats] socket).
        #[arg(long, default_value = DEFAULT_STATS_SOCKET)]
        socket: PathBuf,
        /// Only this queue's poller (default: all).
        #[arg(long)]
        queue: Option<u32>,
        /// Stop after this many frames.
        #[arg(long, conflicts_with = "duration")]
        count: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        duration: Option<f64>,
        /// Only moves whose ack had this status (and those acks): ACCEPTED,
        /// DUPLICATE, STALE, INVALID, RATE_LIMITED, BUSY (any case) or 0..5.
        #[arg(long, value_parser = parse_status)]
        status: Option<u8>,
        /// Also the acks sent (the frames after the rewrite into an ack).
        #[arg(long)]
        acks: bool,
        /// Records each poller's ring holds (default 8192); more lose fewer
        /// records to a slow reader.
        #[arg(long)]
        ring: Option<usize>,
        /// The pcap file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// Read the running appliance's counters from its stats socket.
    Stats {
        /// The appliance's stats socket ([stats] socket).
        #[arg(long, default_value = DEFAULT_STATS_SOCKET)]
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

pub fn parse_status(s: &str) -> Result<u8, String> {
    ironhoard_dataplane::capture::parse_status(s).map_err(|e| e.to_string())
}
