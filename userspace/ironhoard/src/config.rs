//! The TOML configuration (SPEC §2; every key is documented in
//! `config/ironhoard.example.toml`) and the secret files it names.
//!
//! Errors are one line and name the file, the key and the value at fault.

use std::fmt;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::EngineConfig;
use serde::Deserialize;


/// `[interface] umem_frames` and `ring_size` when absent (the data path's
/// `xsk::DEFAULT_FRAMES` / `DEFAULT_RING`; a test keeps them equal).
const DEFAULT_UMEM_FRAMES: i64 = 8192;
const DEFAULT_RING_SIZE: i64 = 4096;
/// `[interface] busy_poll_usecs` and `busy_poll_budget` when absent.
pub const DEFAULT_BUSY_POLL_USECS: i64 = 20;
pub const DEFAULT_BUSY_POLL_BUDGET: i64 = 64;
/// `[interface] idle_spin_us` when absent (the data path's
/// `xsk::DEFAULT_IDLE_SPIN`; a test keeps them equal).
pub const DEFAULT_IDLE_SPIN_US: i64 = 2000;
pub use ironhoard_ship::ShipConfig;

/// Default players per worker table.
pub const DEFAULT_PLAYERS_PER_WORKER: usize = 65_536;

/// A configuration problem, naming where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: cannot read: {err}")]
    Read { path: PathBuf, err: std::io::Error },
    #[error("config {path}:{line}: {msg}")]
    Parse { path: PathBuf, line: usize, msg: String },
    #[error("config {path}: {key} = {value}: {why}")]
    Invalid { path: PathBuf, key: String, value: String, why: String },
    #[error("config {path}: {key}: secret file {file}: {why}")]
    Secret { path: PathBuf, key: String, file: PathBuf, why: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpMode {
    Auto,
    Native,
    Skb,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopy {
    Auto,
    On,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Xdp,
    Socket,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Xdp => "xdp",
            Backend::Socket => "socket",
        })
    }
}

/// `queues = 2` (queues 0 and 1) or `queues = [0, 3]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Queues {
    Count(i64),
    List(Vec<i64>),
}

/// What every section's validation needs: the file (named in errors, and
/// the base of relative paths).
struct Ctx<'a> {
    path: &'a Path,
    base: PathBuf,
}

impl Ctx<'_> {
    fn bad(&self, key: &str, value: &dyn fmt::Debug, why: &str) -> ConfigError {
        ConfigError::Invalid { path: self.path.into(), key: key.into(), value: format!("{value:?}"), why: why.into() }
    }

    /// `p`, resolved against the config file's directory if relative.
    fn abs(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// `v` (or `default`) within `lo..=hi`.
    fn range(&self, key: &str, v: Option<i64>, default: i64, lo: i64, hi: i64) -> Result<u64, ConfigError> {
        let v = v.unwrap_or(default);
        if (lo..=hi).contains(&v) {
            Ok(v as u64)
        } else {
            Err(self.bad(key, &v, &format!("must be between {lo} and {hi}")))
        }
    }

    /// A listen address: a bare port is loopback (reachable from elsewhere
    /// only when an address says so).
    fn listen(&self, key: &str, a: &Option<String>) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        let Some(a) = a else { return Ok(None) };
        Ok(Some(match a.parse::<u16>() {
            Ok(p) if p > 0 => std::net::SocketAddr::from(([127, 0, 0, 1], p)),
            _ => a.parse::<std::net::SocketAddr>().map_err(|_| {
                self.bad(key, a, "must be a port (on 127.0.0.1) or an IP:PORT address, e.g. \"127.0.0.1:9477\"")
            })?,
        }))
    }

    /// A core number for a helper thread, never a poller's.
    fn helper_core(&self, key: &str, c: Option<i64>, pollers: &[usize], who: &str) -> Result<Option<usize>, ConfigError> {
        let Some(c) = c else { return Ok(None) };
        if !(0..=1023).contains(&c) {
            return Err(self.bad(key, &c, "must be a core number 0..=1023"));
        }
        if pollers.contains(&(c as usize)) {
            return Err(self.bad(key, &c, &format!("is a poller's core (interface.cores): {who} must not preempt a poller")));
        }
        Ok(Some(c as usize))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: String,
    queues: Queues,
    cores: Vec<i64>,
    xdp_mode: XdpMode,
    zero_copy: ZeroCopy,
    #[serde(default)]
    backend: Option<Backend>,
    #[serde(default)]
    rx_vlan_offload: Option<VlanOffload>,
    #[serde(default)]
    umem_frames: Option<i64>,
    #[serde(default)]
    ring_size: Option<i64>,
    #[serde(default)]
    busy_poll: Option<bool>,
    #[serde(default)]
    busy_poll_usecs: Option<i64>,
    #[serde(default)]
    busy_poll_budget: Option<i64>,
    #[serde(default)]
    idle_spin_us: Option<i64>,
}

/// `[interface]`, validated.
struct Interface {
    name: String,
    queues: Vec<u32>,
    cores: Vec<usize>,
    xdp_mode: XdpMode,
    zero_copy: ZeroCopy,
    backend: Backend,
    rx_vlan_offload: VlanOffload,
    umem_frames: u32,
    ring_size: u32,
    busy_poll: bool,
    busy_poll_usecs: u32,
    busy_poll_budget: u32,
    idle_spin_us: u32,
}

impl RawInterface {
    fn validate(self, cx: &Ctx, ov: &Overrides) -> Result<Interface, ConfigError> {
        let name = ov.iface.clone().unwrap_or(self.name);
        if name.is_empty() || name.len() > 15 || name.contains('/') || name.contains(char::is_whitespace) {
            return Err(cx.bad("interface.name", &name, "must be a network interface name (1 to 15 characters)"));
        }
        let queues = queue_ids(cx, self.queues)?;
        let cores = self.cores;
        if cores.len() != queues.len() {
            let why = format!("must name one core per queue ({} queues, {} cores)", queues.len(), cores.len());
            return Err(cx.bad("interface.cores", &cores, &why));
        }
        let mut core_ids = Vec::new();
        for &c in &cores {
            if !(0..=1023).contains(&c) {
                return Err(cx.bad("interface.cores", &cores, &format!("core {c} is out of range 0..=1023")));
            }
            core_ids.push(c as usize);
        }
        // the same rule as the data path's (ironhoard_dataplane::xsk::XskSizes::check)
        let umem_frames = self.umem_frames.unwrap_or(DEFAULT_UMEM_FRAMES);
        if !(1024..=65536).contains(&umem_frames) || !(umem_frames as u64).is_power_of_two() {
            return Err(cx.bad("interface.umem_frames", &umem_frames, "must be a power of two from 1024 to 65536"));
        }
        let ring_size = self.ring_size.unwrap_or(DEFAULT_RING_SIZE);
        if !(64..=umem_frames / 2).contains(&ring_size) || !(ring_size as u64).is_power_of_two() {
            let why = format!("must be a power of two from 64 to umem_frames/2 ({})", umem_frames / 2);
            return Err(cx.bad("interface.ring_size", &ring_size, &why));
        }
        let busy_poll_usecs = self.busy_poll_usecs.unwrap_or(DEFAULT_BUSY_POLL_USECS);
        if !(1..=1000).contains(&busy_poll_usecs) {
            return Err(cx.bad("interface.busy_poll_usecs", &busy_poll_usecs, "must be between 1 and 1000 (microseconds)"));
        }
        let busy_poll_budget = self.busy_poll_budget.unwrap_or(DEFAULT_BUSY_POLL_BUDGET);
        if !(1..=1024).contains(&busy_poll_budget) {
            return Err(cx.bad("interface.busy_poll_budget", &busy_poll_budget, "must be between 1 and 1024 (packets per NAPI poll)"));
        }
        let idle_spin_us = self.idle_spin_us.unwrap_or(DEFAULT_IDLE_SPIN_US);
        if !(0..=1_000_000).contains(&idle_spin_us) {
            return Err(cx.bad("interface.idle_spin_us", &idle_spin_us, "must be between 0 and 1000000 (microseconds)"));
        }
        let busy_poll = self.busy_poll.unwrap_or(false);
        if busy_poll && self.backend == Some(Backend::Socket) {
            return Err(cx.bad(
                "interface.busy_poll",
                &busy_poll,
                "needs backend \"xdp\" (it sets preferred busy polling on the AF_XDP sockets); set it to false for backend \"socket\"",
            ));
        }
        Ok(Interface {
            name,
            queues,
            cores: core_ids,
            xdp_mode: self.xdp_mode,
            zero_copy: self.zero_copy,
            backend: self.backend.unwrap_or(Backend::Xdp),
            rx_vlan_offload: self.rx_vlan_offload.unwrap_or(VlanOffload::Warn),
            umem_frames: umem_frames as u32,
            ring_size: ring_size as u32,
            busy_poll,
            busy_poll_usecs: busy_poll_usecs as u32,
            busy_poll_budget: busy_poll_budget as u32,
            idle_spin_us: idle_spin_us as u32,
        })
    }
}

/// `[interface] queues`: 1 to 256 distinct queue ids.
fn queue_ids(cx: &Ctx, q: Queues) -> Result<Vec<u32>, ConfigError> {
    let queues: Vec<i64> = match q {
        Queues::Count(n) if (1..=256).contains(&n) => (0..n).collect(),
        Queues::Count(n) => return Err(cx.bad("interface.queues", &n, "must be 1 to 256, or a list of queue ids")),
        Queues::List(l) => l,
    };
    if queues.is_empty() || queues.len() > 256 {
        return Err(cx.bad("interface.queues", &queues, "must list 1 to 256 queue ids"));
    }
    let mut ids = Vec::new();
    for &q in &queues {
        if !(0..=255).contains(&q) {
            return Err(cx.bad("interface.queues", &queues, &format!("queue id {q} is out of range 0..=255")));
        }
        if ids.contains(&(q as u32)) {
            return Err(cx.bad("interface.queues", &queues, &format!("queue {q} is listed twice")));
        }
        ids.push(q as u32);
    }
    Ok(ids)
}

/// `[interface] rx_vlan_offload`: what to do when the NIC strips VLAN tags
/// before XDP (acks to tagged clients would leave untagged).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VlanOffload {
    /// Say so at start (default).
    Warn,
    /// Turn it off at start (CAP_NET_ADMIN, which the XDP backend has).
    Off,
    /// Say nothing: no client sends tagged frames.
    Ignore,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMoves {
    port: i64,
    secrets: Vec<String>,
    board_width: i64,
    board_height: i64,
    rate_per_second: i64,
    rate_burst: i64,
    #[serde(default)]
    players_per_worker: Option<i64>,
}

/// `[moves]`, validated, its secrets read.
struct Moves {
    port: u16,
    secret_files: Vec<PathBuf>,
    secrets: Vec<Secret>,
    board_width: u16,
    board_height: u16,
    rate_per_second: u32,
    rate_burst: u32,
    players_per_worker: usize,
}

impl RawMoves {
    fn validate(self, cx: &Ctx, ov: &Overrides) -> Result<Moves, ConfigError> {
        let port = ov.port.map(i64::from).unwrap_or(self.port);
        if !(1..=65535).contains(&port) {
            return Err(cx.bad("moves.port", &port, "must be between 1 and 65535"));
        }
        let board = |key: &str, v: i64| -> Result<u16, ConfigError> {
            if (1..=65535).contains(&v) {
                Ok(v as u16)
            } else {
                Err(cx.bad(key, &v, "must be between 1 and 65535"))
            }
        };
        let positive_u32 = |key: &str, v: i64| -> Result<u32, ConfigError> {
            if (1..=1_000_000_000).contains(&v) {
                Ok(v as u32)
            } else {
                Err(cx.bad(key, &v, "must be between 1 and 1000000000"))
            }
        };
        let players = self.players_per_worker.unwrap_or(DEFAULT_PLAYERS_PER_WORKER as i64);
        let (board_width, board_height) = (board("moves.board_width", self.board_width)?, board("moves.board_height", self.board_height)?);
        let rate_per_second = positive_u32("moves.rate_per_second", self.rate_per_second)?;
        let rate_burst = positive_u32("moves.rate_burst", self.rate_burst)?;
        if !(1..=(1 << 22)).contains(&players) {
            return Err(cx.bad("moves.players_per_worker", &players, "must be between 1 and 4194304"));
        }
        let (secret_files, secrets) = secrets(cx, &self.secrets)?;
        Ok(Moves {
            port: port as u16,
            secret_files,
            secrets,
            board_width,
            board_height,
            rate_per_second,
            rate_burst,
            players_per_worker: players as usize,
        })
    }
}

/// `[moves] secrets`: 1 to 256 files (index = key_id), each read.
fn secrets(cx: &Ctx, files: &[String]) -> Result<(Vec<PathBuf>, Vec<Secret>), ConfigError> {
    if files.is_empty() || files.len() > 256 {
        return Err(cx.bad("moves.secrets", &files, "must list 1 to 256 secret files (index = key_id)"));
    }
    let mut secret_files = Vec::new();
    let mut secrets = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let file = cx.abs(f);
        let s = read_secret_file(&file).map_err(|why| ConfigError::Secret {
            path: cx.path.into(),
            key: format!("moves.secrets[{i}]"),
            file: file.clone(),
            why,
        })?;
        secret_files.push(file);
        secrets.push(s);
    }
    Ok((secret_files, secrets))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStats {
    socket: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    prometheus_listen: Option<String>,
}

/// `[stats]`, validated.
struct Stats {
    socket: PathBuf,
    group: Option<String>,
    prometheus_listen: Option<std::net::SocketAddr>,
}

impl RawStats {
    fn validate(self, cx: &Ctx, ov: &Overrides) -> Result<Stats, ConfigError> {
        let socket = ov.stats_socket.clone().unwrap_or_else(|| PathBuf::from(self.socket));
        if socket.as_os_str().is_empty() {
            return Err(cx.bad("stats.socket", &socket, "must be a path"));
        }
        let prometheus_listen = cx.listen("stats.prometheus_listen", &self.prometheus_listen)?;
        if let Some(g) = &self.group {
            if g.is_empty() || g.contains(char::is_whitespace) {
                return Err(cx.bad("stats.group", g, "must be a group name or gid"));
            }
        }
        Ok(Stats { socket, group: self.group, prometheus_listen })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLog {
    dir: String,
    #[serde(default)]
    segment_bytes: Option<i64>,
    #[serde(default)]
    sync: Option<LogSync>,
    #[serde(default)]
    sync_interval_ms: Option<i64>,
    #[serde(default)]
    core: Option<i64>,
}

/// `[log]`, validated.
struct Log {
    dir: PathBuf,
    segment_bytes: u64,
    sync: LogSync,
    sync_interval_ms: u64,
    core: Option<usize>,
}

impl RawLog {
    fn validate(self, cx: &Ctx, pollers: &[usize]) -> Result<Log, ConfigError> {
        if self.dir.is_empty() {
            return Err(cx.bad("log.dir", &self.dir, "must be a directory path"));
        }
        let seg = self.segment_bytes.unwrap_or(64 << 20);
        if !((1 << 16)..=(1 << 32)).contains(&seg) {
            return Err(cx.bad("log.segment_bytes", &seg, "must be between 65536 and 4294967296"));
        }
        let sync_ms = self.sync_interval_ms.unwrap_or(200);
        if !(1..=60_000).contains(&sync_ms) {
            return Err(cx.bad("log.sync_interval_ms", &sync_ms, "must be between 1 and 60000"));
        }
        let core = cx.helper_core("log.core", self.core, pollers, "helper threads")?;
        Ok(Log {
            dir: cx.abs(&self.dir),
            segment_bytes: seg as u64,
            sync: self.sync.unwrap_or(LogSync::Interval),
            sync_interval_ms: sync_ms as u64,
            core,
        })
    }
}

/// `[log] sync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogSync {
    None,
    Interval,
    Batch,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShield {
    #[serde(default)]
    rate_per_source: Option<i64>,
    #[serde(default)]
    burst_per_source: Option<i64>,
    #[serde(default)]
    rate_per_address: Option<i64>,
    #[serde(default)]
    burst_per_address: Option<i64>,
}

/// `[shield]`, validated: (rate, burst), a rate of 0 off.
struct Shield {
    source: (u32, u32),
    address: (u32, u32),
}

impl RawShield {
    /// (rate, burst) per source and per address. Defaults: a source may
    /// send 4 players' worth; an address (a carrier-grade NAT) 50 000
    /// moves/s.
    fn validate(self, cx: &Ctx, moves: &Moves) -> Result<Shield, ConfigError> {
        let val = |key: &str, v: Option<i64>, default: u64| -> Result<u32, ConfigError> {
            let v = v.unwrap_or(default.min(1_000_000_000) as i64);
            if (0..=1_000_000_000).contains(&v) {
                Ok(v as u32)
            } else {
                Err(cx.bad(key, &v, "must be between 0 (off) and 1000000000"))
            }
        };
        let src_rate = val("shield.rate_per_source", self.rate_per_source, (moves.rate_per_second as u64 * 4).max(1000))?;
        let src_burst = val("shield.burst_per_source", self.burst_per_source, (moves.rate_burst as u64 * 4).max(src_rate as u64))?;
        let addr_rate = val("shield.rate_per_address", self.rate_per_address, 50_000)?;
        let addr_burst = val("shield.burst_per_address", self.burst_per_address, (addr_rate as u64).max(1))?;
        Ok(Shield { source: (src_rate, src_burst), address: (addr_rate, addr_burst) })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShip {
    servers: Vec<String>,
    stream: String,
    subject_prefix: String,
    host_id: String,
    checkpoint: String,
    #[serde(default)]
    creds: Option<String>,
    #[serde(default)]
    nkey: Option<String>,
    #[serde(default)]
    tls_ca: Option<String>,
    #[serde(default)]
    in_flight: Option<i64>,
    #[serde(default)]
    ack_timeout_ms: Option<i64>,
    #[serde(default)]
    checkpoint_interval_ms: Option<i64>,
    #[serde(default)]
    wake_interval_us: Option<i64>,
    #[serde(default)]
    poll_interval_ms: Option<i64>,
    #[serde(default)]
    partitions: Option<i64>,
    #[serde(default)]
    replicas: Option<i64>,
    #[serde(default)]
    duplicate_window_s: Option<i64>,
    #[serde(default)]
    max_age_s: Option<i64>,
    #[serde(default)]
    core: Option<i64>,
    #[serde(default)]
    stats_socket: Option<String>,
    #[serde(default)]
    prometheus_listen: Option<String>,
}

/// `[ship]`'s files: a creds or an nkey file, a CA file.
struct Credentials {
    creds: Option<PathBuf>,
    nkey: Option<PathBuf>,
    tls_ca: Option<PathBuf>,
}

impl RawShip {
    /// `[ship]`: the shipper's settings. `log_dir`, `pollers` and
    /// `stats_socket` are the appliance's, which the shipper's must not
    /// overlap.
    fn validate(self, cx: &Ctx, log_dir: &Path, pollers: &[usize], stats_socket: &Path) -> Result<ShipConfig, ConfigError> {
        self.check_names(cx)?;
        let checkpoint = cx.abs(&self.checkpoint);
        if checkpoint.starts_with(log_dir) {
            return Err(cx.bad("ship.checkpoint", &checkpoint, "must not be inside [log] dir (the log is the appliance's)"));
        }
        let Credentials { creds, nkey, tls_ca } = self.credentials(cx)?;
        let in_flight = cx.range("ship.in_flight", self.in_flight, 4096, 1, 65_536)?;
        let ack_ms = cx.range("ship.ack_timeout_ms", self.ack_timeout_ms, 5000, 100, 60_000)?;
        let ckpt_ms = cx.range("ship.checkpoint_interval_ms", self.checkpoint_interval_ms, 100, 10, 60_000)?;
        let wake_us = cx.range("ship.wake_interval_us", self.wake_interval_us, 200, 20, 100_000)?;
        let poll_ms = cx.range("ship.poll_interval_ms", self.poll_interval_ms, 20, 1, 1000)?;
        if poll_ms * 1000 < wake_us {
            return Err(cx.bad("ship.poll_interval_ms", &poll_ms, "must be at least wake_interval_us (the idle interval is the longer one)"));
        }
        let partitions = cx.range("ship.partitions", self.partitions, 1, 1, 64)?;
        let replicas = cx.range("ship.replicas", self.replicas, 3, 1, 5)?;
        let max_age = cx.range("ship.max_age_s", self.max_age_s, 7 * 86_400, 0, 10 * 365 * 86_400)?;
        // the window must cover a replay after a crash: one checkpoint
        // interval and one ack timeout, and a restart
        let min_dup = ((ckpt_ms + ack_ms) / 1000 + 30) as i64;
        let dup = cx.range("ship.duplicate_window_s", self.duplicate_window_s, 120.max(min_dup), min_dup, 86_400)?;
        if max_age != 0 && max_age < dup {
            return Err(cx.bad("ship.max_age_s", &max_age, "must be 0 (keep forever) or at least duplicate_window_s"));
        }
        let core = cx.helper_core("ship.core", self.core, pollers, "the shipper")?;
        let ship_socket = PathBuf::from(self.stats_socket.as_deref().unwrap_or(ironhoard_ship::DEFAULT_STATS_SOCKET));
        if ship_socket == stats_socket {
            return Err(cx.bad("ship.stats_socket", &ship_socket, "must differ from [stats] socket (the appliance's)"));
        }
        Ok(ShipConfig {
            servers: self.servers,
            stream: self.stream,
            subject_prefix: self.subject_prefix,
            host_id: self.host_id,
            checkpoint,
            creds,
            nkey,
            tls_ca,
            in_flight: in_flight as usize,
            ack_timeout: std::time::Duration::from_millis(ack_ms),
            checkpoint_interval: std::time::Duration::from_millis(ckpt_ms),
            wake_interval: std::time::Duration::from_micros(wake_us),
            poll_interval: std::time::Duration::from_millis(poll_ms),
            partitions: partitions as u16,
            replicas: replicas as usize,
            duplicate_window: std::time::Duration::from_secs(dup),
            max_age: std::time::Duration::from_secs(max_age),
            core,
            stats_socket: ship_socket,
            prometheus_listen: cx.listen("ship.prometheus_listen", &self.prometheus_listen)?,
        })
    }

    /// Servers, stream, subject prefix, host id and checkpoint are given and
    /// well formed.
    fn check_names(&self, cx: &Ctx) -> Result<(), ConfigError> {
        if self.servers.is_empty() {
            return Err(cx.bad("ship.servers", &self.servers, "must list at least one server, e.g. [\"nats://10.0.0.5:4222\"]"));
        }
        for s in &self.servers {
            if !ironhoard_ship::valid_server(s) {
                return Err(cx.bad("ship.servers", s, "must be nats://HOST:PORT or tls://HOST:PORT"));
            }
        }
        let name_ok = |v: &str| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !name_ok(&self.stream) {
            return Err(cx.bad("ship.stream", &self.stream, "must be 1 to 64 letters, digits, - or _"));
        }
        if !ironhoard_ship::message::valid_prefix(&self.subject_prefix) {
            return Err(cx.bad("ship.subject_prefix", &self.subject_prefix, "must be dot-separated tokens of letters, digits, - or _ (no wildcards), e.g. \"ih.moves\""));
        }
        if !name_ok(&self.host_id) {
            return Err(cx.bad("ship.host_id", &self.host_id, "must be 1 to 64 letters, digits, - or _ (unique per edge host)"));
        }
        if self.checkpoint.is_empty() {
            return Err(cx.bad("ship.checkpoint", &self.checkpoint, "must be a file path"));
        }
        Ok(())
    }

    /// The creds or nkey file (private: checked like a secret file) and the
    /// TLS CA file, if given.
    fn credentials(&self, cx: &Ctx) -> Result<Credentials, ConfigError> {
        if self.creds.is_some() && self.nkey.is_some() {
            return Err(cx.bad("ship.nkey", &self.nkey, "give creds or nkey, not both"));
        }
        let private = |key: &str, f: &Option<String>| -> Result<Option<PathBuf>, ConfigError> {
            let Some(f) = f else { return Ok(None) };
            let file = cx.abs(f);
            check_private_file(&file).map_err(|why| ConfigError::Secret { path: cx.path.into(), key: key.into(), file: file.clone(), why })?;
            Ok(Some(file))
        };
        let creds = private("ship.creds", &self.creds)?;
        let nkey = private("ship.nkey", &self.nkey)?;
        let tls_ca = match &self.tls_ca {
            None => None,
            Some(f) => {
                let f = cx.abs(f);
                if !f.is_file() {
                    return Err(cx.bad("ship.tls_ca", &f, "is not a readable file (PEM CA certificates)"));
                }
                Some(f)
            }
        };
        Ok(Credentials { creds, nkey, tls_ca })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    interface: RawInterface,
    moves: RawMoves,
    stats: RawStats,
    log: RawLog,
    #[serde(default)]
    shield: RawShield,
    #[serde(default)]
    ship: Option<RawShip>,
}

/// A validated configuration, secrets loaded.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub iface: String,
    /// Queue ids served, one worker each.
    pub queues: Vec<u32>,
    /// Core of each worker (same length as `queues`).
    pub cores: Vec<usize>,
    pub xdp_mode: XdpMode,
    pub zero_copy: ZeroCopy,
    pub backend: Backend,
    pub port: u16,
    /// Secret files, index = key_id (absolute paths).
    pub secret_files: Vec<PathBuf>,
    /// The master secrets, index = key_id.
    pub secrets: Vec<Secret>,
    pub board_width: u16,
    pub board_height: u16,
    pub rate_per_second: u32,
    pub rate_burst: u32,
    pub players_per_worker: usize,
    pub stats_socket: PathBuf,
    /// Group given the stats socket (mode 0660), if any.
    pub stats_group: Option<String>,
    /// Address of the HTTP /metrics endpoint, if any.
    pub prometheus_listen: Option<std::net::SocketAddr>,
    pub log_dir: PathBuf,
    pub log_segment_bytes: u64,
    pub log_sync: LogSync,
    pub log_sync_interval_ms: u64,
    /// Core for the helper threads (log keeper, stats); by default every
    /// allowed core that runs no poller.
    pub log_core: Option<usize>,
    /// XDP shield: (rate, burst) per source (address or /64, and port) and
    /// per address; a rate of 0 is off.
    pub shield_source: (u32, u32),
    pub shield_address: (u32, u32),
    pub rx_vlan_offload: VlanOffload,
    /// XDP backend: UMEM frames (2 KiB each) and RX/TX ring entries per
    /// queue's AF_XDP socket.
    pub umem_frames: u32,
    pub ring_size: u32,
    /// XDP backend: preferred busy polling on each AF_XDP socket
    /// (SO_PREFER_BUSY_POLL, SO_BUSY_POLL = `busy_poll_usecs`,
    /// SO_BUSY_POLL_BUDGET = `busy_poll_budget`), the pollers driving the
    /// NIC's NAPI loop. Off by default.
    pub busy_poll: bool,
    pub busy_poll_usecs: u32,
    pub busy_poll_budget: u32,
    /// XDP backend: how long a poller spins on an empty RX ring before it
    /// sleeps in poll(2), µs (0: sleeps at once).
    pub idle_spin_us: u32,
    /// `[ship]`: the shipper's settings (`ironhoard ship`), if any.
    pub ship: Option<ShipConfig>,
}

/// Command-line values that replace the file's (SPEC §2).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub iface: Option<String>,
    pub port: Option<u16>,
    pub stats_socket: Option<PathBuf>,
}

impl Config {
    /// The rules and limits each worker's engine enforces.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            board_width: self.board_width,
            board_height: self.board_height,
            bucket: BucketConfig { rate_per_second: self.rate_per_second, burst: self.rate_burst },
            players: self.players_per_worker,
        }
    }

    /// Reads, parses and validates `path`, applies `ov`, loads the secrets.
    pub fn load(path: &Path, ov: &Overrides) -> Result<Config, ConfigError> {
        let text = fs::read_to_string(path).map_err(|err| ConfigError::Read { path: path.into(), err })?;
        Config::parse(&text, path, ov)
    }

    /// Parses and validates `text` read from `path` (relative secret paths
    /// are resolved against the file's directory).
    pub fn parse(text: &str, path: &Path, ov: &Overrides) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1)).unwrap_or(0);
            ConfigError::Parse { path: path.into(), line, msg: e.message().replace('\n', " ") }
        })?;
        let cx = Ctx { path, base: path.parent().map(Path::to_path_buf).unwrap_or_default() };
        let interface = raw.interface.validate(&cx, ov)?;
        let moves = raw.moves.validate(&cx, ov)?;
        let stats = raw.stats.validate(&cx, ov)?;
        let log = raw.log.validate(&cx, &interface.cores)?;
        let shield = raw.shield.validate(&cx, &moves)?;
        let ship = raw.ship.map(|r| r.validate(&cx, &log.dir, &interface.cores, &stats.socket)).transpose()?;
        Ok(Config {
            path: path.into(),
            iface: interface.name,
            queues: interface.queues,
            cores: interface.cores,
            xdp_mode: interface.xdp_mode,
            zero_copy: interface.zero_copy,
            backend: interface.backend,
            port: moves.port,
            secret_files: moves.secret_files,
            secrets: moves.secrets,
            board_width: moves.board_width,
            board_height: moves.board_height,
            rate_per_second: moves.rate_per_second,
            rate_burst: moves.rate_burst,
            players_per_worker: moves.players_per_worker,
            stats_socket: stats.socket,
            stats_group: stats.group,
            prometheus_listen: stats.prometheus_listen,
            log_dir: log.dir,
            log_segment_bytes: log.segment_bytes,
            log_sync: log.sync,
            log_sync_interval_ms: log.sync_interval_ms,
            log_core: log.core,
            rx_vlan_offload: interface.rx_vlan_offload,
            umem_frames: interface.umem_frames,
            ring_size: interface.ring_size,
            busy_poll: interface.busy_poll,
            busy_poll_usecs: interface.busy_poll_usecs,
            busy_poll_budget: interface.busy_poll_budget,
            idle_spin_us: interface.idle_spin_us,
            shield_source: shield.source,
            shield_address: shield.address,
            ship,
        })
    }
}

/// A master secret: redacted in Debug, zeroed when dropped.
#[derive(Clone)]
pub struct Secret(pub [u8; 32]);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        wipe(&mut self.0);
    }
}

/// Overwrites `b` with zeros in a way the optimizer keeps.
pub(crate) fn wipe(b: &mut [u8]) {
    for x in b.iter_mut() {
        // SAFETY: a valid, aligned, exclusive reference to one byte.
        unsafe { std::ptr::write_volatile(x, 0) };
    }
    std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
}

/// Reads a master secret: 64 lowercase hex characters on one line, in a
/// regular file owned by this process's user, root, or (for root) a system
/// account, that no one else
/// may read or write. The file is opened once, without following a
/// symlink, and every check is made on the open descriptor (no window
/// between check and read); at most 80 bytes are read; the text is wiped
/// after parsing; a degenerate secret (a repeated byte, too few distinct
/// bytes to be random) is refused. Returns why not, in words.
pub fn read_secret_file(file: &Path) -> Result<Secret, String> {
    use std::io::Read;
    let mut f = open_private(file)?;
    let mut text = [0u8; 80];
    let mut n = 0;
    loop {
        match f.read(&mut text[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                if n == text.len() {
                    wipe(&mut text);
                    return Err("longer than one line of 64 hex characters".into());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let r = std::str::from_utf8(&text[..n]).map_err(|_| "not text".to_string()).and_then(parse_secret_hex);
    wipe(&mut text);
    let s = Secret(r?);
    let mut seen = [false; 256];
    s.0.iter().for_each(|&b| seen[b as usize] = true);
    let distinct = seen.iter().filter(|&&x| x).count();
    if distinct < 8 {
        return Err(format!(
            "holds only {distinct} distinct byte value(s): not a random secret (make one with: ironhoard keygen --out FILE)"
        ));
    }
    Ok(s)
}

/// Checks a credentials file (`[ship] creds`, `nkey`) the way secret
/// files are checked: a regular file, not a symlink, owned by this
/// process's user or root (or, for root, a system account), that group and
/// others can neither read nor write. Returns why not, in words.
pub fn check_private_file(file: &Path) -> Result<(), String> {
    open_private(file).map(drop)
}

/// Opens a private file — a secret, a credentials file — once, without
/// following a symlink, and checks it on the open descriptor (no window
/// between check and use): a regular file, mode 0600 or stricter, owned by
/// this process's user, root, or (for root) a system account. Returns why
/// not, in words.
fn open_private(file: &Path) -> Result<fs::File, String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(file)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => "is a symbolic link (give the file itself)".to_string(),
            _ => e.to_string(),
        })?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {mode:04o} lets group or others read or write it; run: chmod 600 {}",
            file.display()
        ));
    }
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    // Whoever owns the file chose its content. The service's own user and
    // root are trusted; root (check-config in a deployment, or an appliance
    // run as root) also trusts system accounts (uid < 1000: the service
    // user), never a login user who could have planted a known secret.
    let owner = meta.uid();
    let trusted = owner == euid || owner == 0 || (euid == 0 && owner < 1000);
    if !trusted {
        return Err(format!(
            "owned by uid {owner}, not by this process's user (uid {euid}), root{}",
            if euid == 0 { " or a system account (uid < 1000)" } else { "" }
        ));
    }
    Ok(f)
}

/// Parses one line of 64 lowercase hex characters (a trailing newline is
/// allowed).
pub fn parse_secret_hex(text: &str) -> Result<[u8; 32], String> {
    let line = text.strip_suffix('\n').unwrap_or(text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.len() != 64 || !line.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return Err("must hold exactly 64 lowercase hex characters on one line".into());
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(line, &mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn secret_file(dir: &Path, name: &str, mode: u32, content: &str) -> PathBuf {
        let p = dir.join(name);
        let _ = fs::remove_file(&p);
        let mut f = fs::File::create(&p).unwrap();
        f.write_all(content.as_bytes()).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn good(dir: &Path) -> String {
        secret_file(dir, "s0.hex", 0o600, &format!("{HEX}\n"));
        r#"
[interface]
name = "ih0"
queues = 1
cores = [1]
xdp_mode = "auto"
zero_copy = "auto"
backend = "socket"
[moves]
port = 7777
secrets = ["s0.hex"]
board_width = 64
board_height = 32
rate_per_second = 100
rate_burst = 20
[stats]
socket = "/run/ironhoard/stats.sock"
[log]
dir = "/var/lib/ironhoard/moves"
"#
        .to_string()
    }

    fn parse(dir: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, &dir.join("c.toml"), &Overrides::default())
    }

    #[test]
    fn good_config_parses() {
        let d = tempfile::tempdir().unwrap();
        let c = parse(d.path(), &good(d.path())).unwrap();
        assert_eq!(c.queues, vec![0]);
        assert_eq!(c.cores, vec![1]);
        assert_eq!(c.port, 7777);
        assert_eq!(c.secrets.len(), 1);
        assert_eq!(c.secrets[0].0[1], 0x11);
        assert!(!format!("{c:?}").contains("17, 34"), "no raw secret bytes in Debug");
        assert!(format!("{c:?}").contains("Secret(<redacted>)"));
        assert_eq!(c.players_per_worker, DEFAULT_PLAYERS_PER_WORKER);
        assert_eq!(c.backend, Backend::Socket);
        let c = parse(d.path(), &good(d.path()).replace("backend = \"socket\"\n", "")).unwrap();
        assert_eq!(c.backend, Backend::Xdp, "xdp is the default backend");
    }

    #[test]
    fn overrides_win() {
        let d = tempfile::tempdir().unwrap();
        let ov = Overrides { iface: Some("ihX".into()), port: Some(9), stats_socket: Some("/tmp/x.sock".into()) };
        let c = Config::parse(&good(d.path()), &d.path().join("c.toml"), &ov).unwrap();
        assert_eq!((c.iface.as_str(), c.port), ("ihX", 9));
        assert_eq!(c.stats_socket, PathBuf::from("/tmp/x.sock"));
    }

    fn err(d: &Path, from: &str, to: &str) -> String {
        let t = good(d).replace(from, to);
        parse(d, &t).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_key_and_value() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let e = err(p, "port = 7777", "port = 0");
        assert!(e.contains("moves.port = 0") && e.contains("1 and 65535"), "{e}");
        let e = err(p, "port = 7777", "port = 70000");
        assert!(e.contains("moves.port = 70000"), "{e}");
        let e = err(p, "board_width = 64", "board_width = 0");
        assert!(e.contains("moves.board_width = 0"), "{e}");
        let e = err(p, "rate_burst = 20", "rate_burst = -1");
        assert!(e.contains("moves.rate_burst = -1"), "{e}");
        let e = err(p, "cores = [1]", "cores = [1, 2]");
        assert!(e.contains("interface.cores") && e.contains("one core per queue"), "{e}");
        let e = err(p, "queues = 1", "queues = [0, 0]");
        assert!(e.contains("listed twice"), "{e}");
        let e = err(p, "xdp_mode = \"auto\"", "xdp_mode = \"turbo\"");
        assert!(e.contains("c.toml:") && e.contains("turbo"), "{e}");
        let e = err(p, "rate_burst = 20", "rate_burst = 20\nturbo = true");
        assert!(e.contains("unknown field `turbo`"), "{e}");
        let e = err(p, "port = 7777\n", "");
        assert!(e.contains("missing field `port`"), "{e}");
        let e = err(p, "[log]\ndir = \"/var/lib/ironhoard/moves\"\n", "");
        assert!(e.contains("missing field `log`"), "{e}");
        let e = err(p, "port = 7777", "port = [");
        assert!(e.contains("c.toml:"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
    }

    #[test]
    fn secret_files_are_checked() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let t = good(p);
        secret_file(p, "s0.hex", 0o640, HEX);
        let e = parse(p, &t).unwrap_err().to_string();
        assert!(e.contains("moves.secrets[0]") && e.contains("0640") && e.contains("chmod 600"), "{e}");
        secret_file(p, "s0.hex", 0o604, HEX);
        assert!(parse(p, &t).is_err());
        secret_file(p, "s0.hex", 0o400, HEX);
        assert!(parse(p, &t).is_ok());
        secret_file(p, "s0.hex", 0o600, &HEX.to_uppercase());
        let e = parse(p, &t).unwrap_err().to_string();
        assert!(e.contains("lowercase hex"), "{e}");
        secret_file(p, "s0.hex", 0o600, &HEX[..62]);
        assert!(parse(p, &t).is_err());
        let e = err(p, "\"s0.hex\"", "\"missing.hex\"");
        assert!(e.contains("missing.hex") && e.contains("No such file"), "{e}");
        let e = err(p, "[\"s0.hex\"]", "[]");
        assert!(e.contains("moves.secrets"), "{e}");
        // degenerate secrets
        secret_file(p, "s0.hex", 0o600, &"00".repeat(32));
        let e = parse(p, &t).unwrap_err().to_string();
        assert!(e.contains("1 distinct byte"), "{e}");
        secret_file(p, "s0.hex", 0o600, &"0102".repeat(16));
        assert!(parse(p, &t).is_err());
        // a symlink to a good secret is refused; so is a file too long
        secret_file(p, "real.hex", 0o600, HEX);
        let _ = fs::remove_file(p.join("s0.hex"));
        std::os::unix::fs::symlink(p.join("real.hex"), p.join("s0.hex")).unwrap();
        let e = parse(p, &t).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let _ = fs::remove_file(p.join("s0.hex"));
        secret_file(p, "s0.hex", 0o600, &format!("{HEX}\n{}", "0".repeat(100)));
        let e = parse(p, &t).unwrap_err().to_string();
        assert!(e.contains("longer than one line"), "{e}");
        secret_file(p, "s0.hex", 0o600, HEX);
        assert!(parse(p, &t).is_ok());
        // the owner: as root, a login user's file is refused, a system
        // account's accepted (the service user)
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(p.join("s0.hex"), Some(1000), None).unwrap();
            let e = parse(p, &t).unwrap_err().to_string();
            assert!(e.contains("owned by uid 1000"), "{e}");
            std::os::unix::fs::chown(p.join("s0.hex"), Some(103), None).unwrap();
            assert!(parse(p, &t).is_ok());
        }
    }

    const SHIP: &str = "\n[ship]\nservers = [\"nats://10.0.0.5:4222\", \"tls://nats-2.example:4222\"]\nstream = \"MOVES\"\nsubject_prefix = \"ih.moves\"\nhost_id = \"edge-1\"\ncheckpoint = \"/var/lib/ironhoard/ship.checkpoint\"\n";

    #[test]
    fn ship_section_parses_with_defaults() {
        let d = tempfile::tempdir().unwrap();
        let c = parse(d.path(), &good(d.path())).unwrap();
        assert!(c.ship.is_none(), "[ship] is optional");
        let c = parse(d.path(), &(good(d.path()) + SHIP)).unwrap();
        let s = c.ship.unwrap();
        assert_eq!(s.servers.len(), 2);
        assert_eq!((s.stream.as_str(), s.subject_prefix.as_str(), s.host_id.as_str()), ("MOVES", "ih.moves", "edge-1"));
        assert_eq!(s.in_flight, 4096);
        assert_eq!(s.replicas, 3);
        assert_eq!(s.duplicate_window, std::time::Duration::from_secs(120));
        assert_eq!(s.stats_socket, PathBuf::from(ironhoard_ship::DEFAULT_STATS_SOCKET));
        assert!(s.duplicate_window > s.replay_span());
        assert_eq!((s.partitions, s.wake_interval, s.poll_interval), (1, std::time::Duration::from_micros(200), std::time::Duration::from_millis(20)));
        let c = parse(d.path(), &(good(d.path()) + &SHIP.replace("host_id = \"edge-1\"", "host_id = \"edge-1\"\npartitions = 3\nwake_interval_us = 500"))).unwrap();
        let s = c.ship.unwrap();
        assert_eq!((s.partitions, s.wake_interval), (3, std::time::Duration::from_micros(500)));
    }

    #[test]
    fn ship_errors_name_key_and_value() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let e = |from: &str, to: &str| parse(p, &(good(p) + &SHIP.replace(from, to))).unwrap_err().to_string();
        let x = e("\"nats://10.0.0.5:4222\", ", "\"http://10.0.0.5:4222\", ");
        assert!(x.contains("ship.servers") && x.contains("http://"), "{x}");
        let x = e("servers = [\"nats://10.0.0.5:4222\", \"tls://nats-2.example:4222\"]", "servers = []");
        assert!(x.contains("ship.servers"), "{x}");
        let x = e("subject_prefix = \"ih.moves\"", "subject_prefix = \"ih.*\"");
        assert!(x.contains("ship.subject_prefix = \"ih.*\""), "{x}");
        let x = e("stream = \"MOVES\"", "stream = \"MO.VES\"");
        assert!(x.contains("ship.stream"), "{x}");
        let x = e("host_id = \"edge-1\"", "host_id = \"\"");
        assert!(x.contains("ship.host_id"), "{x}");
        let x = e("checkpoint = \"/var/lib/ironhoard/ship.checkpoint\"", "checkpoint = \"/var/lib/ironhoard/moves/ckpt\"");
        assert!(x.contains("inside [log] dir"), "{x}");
        let x = e("host_id = \"edge-1\"", "host_id = \"edge-1\"\nduplicate_window_s = 5");
        assert!(x.contains("ship.duplicate_window_s = 5") && x.contains("between 35"), "{x}");
        let x = e("host_id = \"edge-1\"", "host_id = \"edge-1\"\ncore = 1");
        assert!(x.contains("ship.core = 1") && x.contains("poller"), "{x}");
        let x = e("host_id = \"edge-1\"", "host_id = \"edge-1\"\nin_flight = 0");
        assert!(x.contains("ship.in_flight = 0"), "{x}");
        let x = e("host_id = \"edge-1\"", "host_id = \"edge-1\"\npartitions = 0");
        assert!(x.contains("ship.partitions = 0") && x.contains("between 1 and 64"), "{x}");
        let x = e("host_id = \"edge-1\"", "host_id = \"edge-1\"\nwake_interval_us = 5000\npoll_interval_ms = 2");
        assert!(x.contains("ship.poll_interval_ms = 2") && x.contains("wake_interval_us"), "{x}");
        let x = e("host_id = \"edge-1\"", "host_id = \"edge-1\"\nwindow = 3");
        assert!(x.contains("unknown field `window`"), "{x}");
        let x = e("host_id = \"edge-1\"", "host_id = \"edge-1\"\nstats_socket = \"/run/ironhoard/stats.sock\"");
        assert!(x.contains("must differ from [stats] socket"), "{x}");
    }

    #[test]
    fn ship_credentials_must_be_private() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        secret_file(p, "edge.creds", 0o644, "-----BEGIN NATS USER JWT-----\n");
        let t = good(p) + SHIP + "creds = \"edge.creds\"\n";
        let x = parse(p, &t).unwrap_err().to_string();
        assert!(x.contains("ship.creds") && x.contains("edge.creds") && x.contains("chmod 600"), "{x}");
        std::fs::set_permissions(p.join("edge.creds"), std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(parse(p, &t).unwrap().ship.unwrap().creds, Some(p.join("edge.creds")));
        secret_file(p, "seed.nk", 0o640, "SUAB\n");
        let x = parse(p, &(good(p) + SHIP + "nkey = \"seed.nk\"\n")).unwrap_err().to_string();
        assert!(x.contains("ship.nkey") && x.contains("0640"), "{x}");
        let x = parse(p, &(good(p) + SHIP + "nkey = \"missing.nk\"\n")).unwrap_err().to_string();
        assert!(x.contains("ship.nkey") && x.contains("missing.nk"), "{x}");
        std::os::unix::fs::symlink(p.join("edge.creds"), p.join("link.creds")).unwrap();
        let x = parse(p, &(good(p) + SHIP + "creds = \"link.creds\"\n")).unwrap_err().to_string();
        assert!(x.contains("symbolic link"), "{x}");
    }

    #[test]
    fn umem_and_ring_sizes() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let c = parse(p, &good(p)).unwrap();
        assert_eq!((c.umem_frames, c.ring_size), (8192, 4096), "defaults");
        // the data path's own defaults (this file is also built without it, by the config fuzz target)
        assert_eq!((DEFAULT_UMEM_FRAMES, DEFAULT_RING_SIZE), (ironhoard_dataplane::xsk::DEFAULT_FRAMES as i64, ironhoard_dataplane::xsk::DEFAULT_RING as i64));
        let c = parse(p, &good(p).replace("backend = \"socket\"\n", "backend = \"socket\"\numem_frames = 4096\nring_size = 2048\n")).unwrap();
        assert_eq!((c.umem_frames, c.ring_size), (4096, 2048));
        for (frames, ring, key) in [(3000, 1024, "interface.umem_frames = 3000"), (512, 64, "interface.umem_frames = 512"), (4096, 4096, "interface.ring_size = 4096"), (4096, 100, "interface.ring_size = 100"), (4096, 32, "interface.ring_size = 32")] {
            let e = parse(p, &good(p).replace("backend = \"socket\"\n", &format!("backend = \"socket\"\numem_frames = {frames}\nring_size = {ring}\n"))).unwrap_err().to_string();
            assert!(e.contains(key), "{frames}/{ring}: {e}");
        }
    }

    #[test]
    fn idle_spin_key() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let with = |extra: &str| good(p).replace("backend = \"socket\"\n", &format!("backend = \"xdp\"\n{extra}"));
        assert_eq!(parse(p, &with("")).unwrap().idle_spin_us, 2000, "default");
        // the data path's own default
        assert_eq!(DEFAULT_IDLE_SPIN_US as u128, ironhoard_dataplane::xsk::DEFAULT_IDLE_SPIN.as_micros());
        assert_eq!(parse(p, &with("idle_spin_us = 0\n")).unwrap().idle_spin_us, 0);
        assert_eq!(parse(p, &with("idle_spin_us = 50\n")).unwrap().idle_spin_us, 50);
        for (v, want) in [("-1", "interface.idle_spin_us = -1"), ("1000001", "interface.idle_spin_us = 1000001")] {
            let e = parse(p, &with(&format!("idle_spin_us = {v}\n"))).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("must be between 0 and 1000000"), "{v}: {e}");
        }
    }

    #[test]
    fn busy_poll_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path();
        let xdp = |extra: &str| good(p).replace("backend = \"socket\"\n", &format!("backend = \"xdp\"\n{extra}"));
        let c = parse(p, &xdp("")).unwrap();
        assert_eq!((c.busy_poll, c.busy_poll_usecs, c.busy_poll_budget), (false, 20, 64), "off by default, with the defaults");
        let c = parse(p, &xdp("busy_poll = true\nbusy_poll_usecs = 50\nbusy_poll_budget = 256\n")).unwrap();
        assert_eq!((c.busy_poll, c.busy_poll_usecs, c.busy_poll_budget), (true, 50, 256));
        let c = parse(p, &xdp("busy_poll = true\n")).unwrap();
        assert_eq!((c.busy_poll, c.busy_poll_usecs, c.busy_poll_budget), (true, 20, 64));
        // the default backend is xdp
        assert!(parse(p, &good(p).replace("backend = \"socket\"\n", "busy_poll = true\n")).unwrap().busy_poll);
        for (extra, want) in [
            ("busy_poll_usecs = 0", "interface.busy_poll_usecs = 0"),
            ("busy_poll_usecs = 1001", "interface.busy_poll_usecs = 1001"),
            ("busy_poll_budget = 0", "interface.busy_poll_budget = 0"),
            ("busy_poll_budget = 1025", "interface.busy_poll_budget = 1025"),
            ("busy_poll_budget = -1", "interface.busy_poll_budget = -1"),
        ] {
            let e = parse(p, &xdp(&format!("busy_poll = true\n{extra}\n"))).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("must be between"), "{extra}: {e}");
        }
        let e = parse(p, &xdp("busy_poll = \"yes\"\n")).unwrap_err().to_string();
        assert!(e.contains("c.toml:") && e.contains("bool"), "{e}");
        // backend socket: refused, naming the key
        let e = err(p, "backend = \"socket\"\n", "backend = \"socket\"\nbusy_poll = true\n");
        assert!(e.contains("interface.busy_poll = true") && e.contains("backend \"xdp\""), "{e}");
        // off, the other keys are still checked but do nothing
        let c = parse(p, &good(p).replace("backend = \"socket\"\n", "backend = \"socket\"\nbusy_poll = false\nbusy_poll_usecs = 10\n")).unwrap();
        assert!(!c.busy_poll);
    }
}
