//! The IronHoard shipper (`ironhoard ship`): follows every partition of the
//! move log from its checkpoint and publishes each record to a NATS
//! JetStream stream, one message per accepted move (docs/shipping.md).
//!
//! At least once from the log, exactly once in the stream: publishes are
//! pipelined (a window of outstanding PubAcks), the checkpoint only moves
//! past records whose PubAck arrived, and each message carries the move's
//! identity as `Nats-Msg-Id`, so what a restarted shipper (or a second edge
//! host) publishes again is absorbed by the stream's duplicate window. The
//! appliance never waits for the shipper: the move log is the buffer.
//!
//! - [`message`]: subject, message id, headers and payload of a record;
//! - [`checkpoint`]: the per-partition resume offsets, written atomically;
//! - [`shipper`]: the publishing loop (reconnects, retries, go-back on error);
//! - [`stream`]: `--ensure-stream`, creating or checking the stream;
//! - [`status`]: counters and lag, read by the stats socket.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub mod checkpoint;
pub mod message;
#[cfg(feature = "client")]
pub mod shipper;
pub mod status;
#[cfg(feature = "client")]
pub mod stream;
#[cfg(feature = "client")]
pub mod wake;

/// `[ship]` of the config file, validated (the keys are documented in
/// `config/ironhoard.example.toml`).
#[derive(Debug, Clone, PartialEq)]
pub struct ShipConfig {
    /// `nats://host:port` (or `tls://`) URLs of the cluster's servers.
    pub servers: Vec<String>,
    pub stream: String,
    pub subject_prefix: String,
    pub host_id: String,
    pub checkpoint: PathBuf,
    /// A NATS credentials file (JWT and nkey seed), mode 0600.
    pub creds: Option<PathBuf>,
    /// A file holding an nkey seed (`SU…`), mode 0600.
    pub nkey: Option<PathBuf>,
    /// CA certificate(s) to verify the servers with; TLS is then required.
    pub tls_ca: Option<PathBuf>,
    /// Publishes awaiting their PubAck, at most.
    pub in_flight: usize,
    /// How long a PubAck is waited for before the publish counts as failed.
    pub ack_timeout: Duration,
    /// How often the checkpoint is written (when it moved).
    pub checkpoint_interval: Duration,
    /// While moves flow, how often the published end of each partition is
    /// checked once everything is shipped: a new record waits at most this
    /// long (plus the scheduler's latency) before it is published.
    pub wake_interval: Duration,
    /// After a second with no new record, the check backs off to at most
    /// this interval: an idle shipper wakes this often.
    pub poll_interval: Duration,
    /// Streams (and subject partitions) the moves are spread over: 1 keeps
    /// one stream `stream` on `<prefix>.<game>`; N > 1 makes streams
    /// `<stream>_<p>` on `<prefix>.<p>.<game>`, p a stable hash of the game.
    pub partitions: u16,
    /// `--ensure-stream`: replicas, duplicate window, max age.
    pub replicas: usize,
    pub duplicate_window: Duration,
    pub max_age: Duration,
    /// Core the shipper runs on (one thread).
    pub core: Option<usize>,
    pub stats_socket: PathBuf,
    pub prometheus_listen: Option<SocketAddr>,
}

/// Whether `s` is a server URL the shipper takes: `nats://HOST:PORT` or
/// `tls://HOST:PORT` (HOST a name, an IPv4 address or a bracketed IPv6
/// address).
pub fn valid_server(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("nats://").or_else(|| s.strip_prefix("tls://")) else { return false };
    let Some((host, port)) = rest.rsplit_once(':') else { return false };
    let host_ok = if let Some(h) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        h.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty() && host.len() <= 253 && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    host_ok && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// Default stats socket of the shipper.
pub const DEFAULT_STATS_SOCKET: &str = "/run/ironhoard-ship/ship.sock";

impl ShipConfig {
    /// The longest a record published before a crash can wait to be
    /// published again by the restarted shipper, not counting how long the
    /// shipper stays down: one checkpoint interval plus one ack timeout. The
    /// stream's duplicate window must be longer than this plus the
    /// longest outage it should absorb.
    pub fn replay_span(&self) -> Duration {
        self.checkpoint_interval + self.ack_timeout
    }
}

/// Wall-clock time, Unix ns.
pub fn unix_ns() -> u64 {
    ironhoard_movelog::unix_ns()
}

#[cfg(test)]
mod tests {
    #[test]
    fn server_urls() {
        for ok in ["nats://127.0.0.1:4222", "tls://nats-1.example:4222", "nats://[::1]:4222"] {
            assert!(super::valid_server(ok), "{ok}");
        }
        for bad in ["127.0.0.1:4222", "http://h:1", "nats://h", "nats://h:0", "nats://h:99999", "nats://:4222", "nats://h:1/x", "nats://a b:1"] {
            assert!(!super::valid_server(bad), "{bad}");
        }
    }
}
