//! `ironhoard run`: builds the workers for the configured backend, serves
//! the stats socket, and stops everything cleanly on SIGTERM/SIGINT.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ironhoard_dataplane::xsk::{self, XskSocket, ZeroCopyWant};
use ironhoard_dataplane::dispatch::{LogDispatch, WallClock};
use ironhoard_dataplane::{affinity, mesh, socket, WorkerShared};
use ironhoard_movelog::{open_log, Keeper, LogConfig, LogShared, Record, SyncPolicy};
use ironhoard_loader::{AttachedMode, Steering, WantMode};
use ironhoard_engine::{keycache, Engine, EngineConfig, KeyCache, Keyring};
use log::{error, info, warn};

use crate::notify;
use crate::handover::{self, Inherited};
use crate::rebuild::{Rebuild, Restored};
use crate::config::{Backend, Config, LogSync, XdpMode, ZeroCopy};
use crate::control;
use crate::stats::{Info, StatsSource, WorkerInfo};

/// Moves each poller's mailbox holds: 4096. A debug build (the one the lab
/// tests run) reads IRONHOARD_MESH_DEPTH, a test knob: a tiny mailbox makes
/// the full-mailbox path reachable in a lab. A release build never looks.
fn mesh_depth() -> usize {
    const DEPTH: usize = 4096;
    if cfg!(debug_assertions) {
        if let Some(d) = std::env::var("IRONHOARD_MESH_DEPTH").ok().and_then(|v| v.parse().ok()) {
            return d;
        }
    }
    DEPTH
}

/// Moves arriving on an rx queue without a poller are dropped by the XDP
/// program (counted as `no_socket`): say so at start.
fn warn_unserved_queues(iface: &str, served: &[u32]) {
    let dir = format!("/sys/class/net/{iface}/queues");
    let Ok(rd) = std::fs::read_dir(&dir) else { return };
    let rx: Vec<u32> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("rx-")?.parse().ok())
        .collect();
    let unserved: Vec<u32> = rx.iter().copied().filter(|q| !served.contains(q)).collect();
    if !unserved.is_empty() {
        warn!(
            "{iface} has {} rx queues and only {:?} are served: moves hashed to {:?} are dropped (counted as no_socket). \
             Serve every queue, or steer the move port to a served one (ethtool -N {iface} flow-type udp4 dst-port PORT action Q)",
            rx.len(),
            served,
            unserved
        );
    }
}

/// NIC receive VLAN offload strips 802.1Q tags before XDP sees the frame:
/// an ack built from it would leave untagged. Warn, or turn it off.
fn check_vlan_offload(iface: &str, want: crate::config::VlanOffload) {
    use crate::config::VlanOffload;
    use ironhoard_dataplane::nic;
    if want == VlanOffload::Ignore || nic::rx_vlan_offload(iface) != Some(true) {
        return;
    }
    if want == VlanOffload::Off {
        match nic::disable_rx_vlan_offload(iface) {
            Ok(()) => info!("{iface}: receive VLAN offload turned off ([interface] rx_vlan_offload = \"off\")"),
            Err(e) => warn!("{iface}: could not turn receive VLAN offload off ({e}): acks to 802.1Q-tagged clients may leave untagged"),
        }
    } else {
        warn!(
            "{iface}: receive VLAN offload is on: if clients send 802.1Q-tagged moves, the NIC may strip the tag before XDP and their \
             acks would leave untagged. Turn it off (ethtool -K {iface} rxvlan off, or [interface] rx_vlan_offload = \"off\"), \
             or set rx_vlan_offload = \"ignore\" if no client is tagged"
        );
    }
}

/// AF_XDP UMEM pages are charged to RLIMIT_MEMLOCK on kernels and setups
/// that account it; lift it (root/CAP_IPC_LOCK may; otherwise the service
/// needs LimitMEMLOCK=infinity).
fn raise_memlock_limit() {
    let inf = libc::rlimit { rlim_cur: libc::RLIM_INFINITY, rlim_max: libc::RLIM_INFINITY };
    // SAFETY: setrlimit with a valid rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &inf) } == 0 {
        return;
    }
    let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with valid rlimit structs: raise the soft
    // limit to the hard one when the hard one cannot be lifted.
    unsafe {
        libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur);
        cur.rlim_cur = cur.rlim_max;
        libc::setrlimit(libc::RLIMIT_MEMLOCK, &cur);
    }
    log::debug!("RLIMIT_MEMLOCK is {} bytes (hard limit)", cur.rlim_max);
}

fn random_seed() -> Result<u64> {
    let mut b = [0u8; 8];
    getrandom::getrandom(&mut b).context("reading random bytes for the player-table hash seed")?;
    Ok(u64::from_ne_bytes(b))
}

/// Puts the players rebuilt from the move log into a worker's engine (on
/// the worker's thread, before it serves).
fn restore_windows(engine: &mut Engine, queue: u32, restore: Vec<Restored>) -> Result<()> {
    let now = ironhoard_dataplane::monotonic_ns();
    let mut full = 0u64;
    let n = restore.len();
    for (id, w, keyed) in restore {
        match engine.restore(id, w, &keyed, now) {
            Ok(()) => {}
            // not handed over: players with no live key are left out at start
            Err(ironhoard_engine::RestoreError::NoKeyedState) => {}
            Err(ironhoard_engine::RestoreError::TableFull) => full += 1,
        }
    }
    if full > 0 {
        bail!("worker {queue}: player table too small for the {n} players in the move log ({full} not restored): raise [moves] players_per_worker");
    }
    Ok(())
}

/// Runs the appliance until SIGTERM or SIGINT, or until a successor takes
/// over: each step below is one stage of the start, the serving loop, and
/// the stop.
pub fn run(cfg: Config, overrides: crate::config::Overrides) -> Result<()> {
    check_cores(&cfg)?;
    let signals = Signals::install()?;
    let mut marks = Marks::new();
    // The XDP program is loaded (and verified) first: a successor does it
    // before it asks its predecessor to hand over, shortening the swap.
    let program = load_program(&cfg)?;
    marks.mark("program loaded");
    let mut inherited = take_over_or_start(&cfg, &mut marks)?;
    // Everything that can fail at start fails before the data path serves a
    // single move (after that, errors go through the stop-and-drain path).
    let (listener, metrics_listener) = open_listeners(&cfg, &mut inherited)?;
    let keys = keyring(&cfg);
    let workers: Vec<WorkerInfo> = cfg
        .queues
        .iter()
        .zip(&cfg.cores)
        .map(|(&queue, &core)| WorkerInfo { queue, core, shared: Arc::new(WorkerShared::default()) })
        .collect();
    let log = open_move_log(&cfg, &keys, &workers, &mut marks)?;
    pin_control_plane(&cfg);
    let keeper = thread::Builder::new().name("ih-logkeep".into()).spawn(move || log.keeper.run())?;
    let bridges = bridge_sockets(&cfg, &mut inherited, workers.len())?;
    let starts = worker_starts(&cfg, &workers, &keys, log.ends, log.restore)?;
    let started = match cfg.backend {
        Backend::Socket => start_socket_workers(&cfg, starts, &bridges)?,
        Backend::Xdp => {
            let program = program.expect("loaded at start for the XDP backend");
            start_pollers(&cfg, &workers, starts, &bridges, program, &mut inherited, &mut marks)?
        }
    };
    let stored = restart_fds(&cfg, &bridges, started.steering.as_ref());
    if started.error.is_none() {
        handover::store(&stored);
    }
    let stats_dup = listener.try_clone().context("duplicating the stats listener")?;
    let metrics_dup = metrics_listener.as_ref().map(|l| l.try_clone()).transpose().context("duplicating the metrics listener")?;
    let steering = started.steering.map(|s| Arc::new(std::sync::Mutex::new(s)));
    let reloader = Arc::new(crate::reload::Reloader::new(
        cfg.clone(),
        overrides,
        workers.iter().map(|w| Arc::clone(&w.shared)).collect(),
        steering.clone(),
    ));
    let src = stats_source(&cfg, workers, started.xdp_info, steering, &log.shared, &reloader, inherited.from.clone());
    let slot = Arc::new(handover::Slot::new(&cfg));
    spawn_control_threads(listener, metrics_listener, &src, &slot, &log.clock)?;

    let serving = Serving { cfg: &cfg, src: &src, handles: &started.handles, keeper: &keeper, bridges: &bridges };
    let stop = serving.until_stop(&signals, &reloader, &slot, started.error, inherited.from.is_none());
    // Stopping, or handing over: the moves go to the bridge (XDP) or queue
    // in the workers' sockets (socket backend) from now on; the workers
    // answer what they hold and their acks leave; the log is synced and
    // unlocked. A successor (or systemd's fd store) holds the bridge and
    // the link: nothing sent meanwhile is lost.
    let (result, drain_started) = drain_workers(&src, started.handles, &bridges, stop.bridge_shrunk);
    stop_move_log(keeper, &log.shared)?;
    let s = src.stats();
    info!("stopped: rx {} tx {} accepted {}; move log: {} records written", s["rx"], s["tx"], s["accepted"], log.shared.records());
    let mut fds = stored;
    fds.push(("stats".into(), stats_dup.as_raw_fd()));
    if let Some(m) = &metrics_dup {
        fds.push(("metrics".into(), m.as_raw_fd()));
    }
    hand_over_or_exit(&cfg, stop, result, &slot, &fds, drain_started)
}

/// After the drain: a successor is sent `fds` (the bridge, the link, the
/// listeners) and the stats socket file is its now; else the file goes,
/// and a failure is the exit's.
fn hand_over_or_exit(
    cfg: &Config,
    stop: Stop,
    result: Result<()>,
    slot: &handover::Slot,
    fds: &[(String, RawFd)],
    drain_started: Instant,
) -> Result<()> {
    match stop.successor {
        Some(pid) if result.is_ok() => {
            slot.complete(fds)?;
            info!("handed over to pid {pid} in {} ms: exiting", drain_started.elapsed().as_millis());
            return Ok(());
        }
        Some(_) => slot.refuse("the running appliance failed while draining; start again"),
        None => {}
    }
    let _ = std::fs::remove_file(&cfg.stats_socket);
    if let (Some(why), Ok(())) = (stop.failed, &result) {
        bail!("{why}");
    }
    result
}

/// The cores the pollers and the log keeper are configured on exist and
/// are allowed.
fn check_cores(cfg: &Config) -> Result<()> {
    let wanted: Vec<usize> = cfg.cores.iter().chain(cfg.log_core.iter()).copied().collect();
    affinity::check_cores(&wanted).map_err(|e| anyhow::anyhow!("config {}: interface.cores / log.core: {e}", cfg.path.display()))
}

/// SIGTERM/SIGINT (stop) and SIGHUP (reload), as flags the serving loop
/// reads.
struct Signals {
    term: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> Result<Signals> {
        let term = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            signal_hook::flag::register(sig, Arc::clone(&term)).context("installing signal handlers")?;
        }
        let hup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup)).context("installing the SIGHUP handler")?;
        Ok(Signals { term, hup })
    }
}

/// Where a successor's start-up time goes (logged once it steers).
struct Marks {
    start: Instant,
    marks: Vec<(&'static str, Duration)>,
}

impl Marks {
    fn new() -> Marks {
        Marks { start: Instant::now(), marks: Vec::new() }
    }

    fn mark(&mut self, what: &'static str) {
        self.marks.push((what, self.start.elapsed()));
    }

    fn summary(&self) -> String {
        self.marks.iter().map(|(k, t)| format!("{k} {}", t.as_millis())).collect::<Vec<_>>().join(", ")
    }
}

fn load_program(cfg: &Config) -> Result<Option<Steering>> {
    match cfg.backend {
        Backend::Xdp => Ok(Some(Steering::load(cfg.port).context("loading the XDP program")?)),
        Backend::Socket => Ok(None),
    }
}

/// The stats socket doubles as the single-instance lock. A second
/// `ironhoard run` finds the first there and asks it to hand over
/// (handover.rs): the first drains, syncs the move log and sends its XDP
/// link, bridge sockets and listeners; only then does this one go on.
/// Without a predecessor, what systemd's fd store holds is taken.
fn take_over_or_start(cfg: &Config, marks: &mut Marks) -> Result<Inherited> {
    if crate::client::is_live(&cfg.stats_socket) {
        info!("an appliance serves {}: asking it to hand over", cfg.stats_socket.display());
        let inh = Inherited::request(&cfg.stats_socket, cfg)?;
        marks.mark("released");
        info!("handed over by {}", inh.from.as_deref().unwrap_or("?"));
        Ok(inh)
    } else {
        let inh = Inherited::from_systemd(cfg);
        handover::unstore(&inh.stale);
        Ok(inh)
    }
}

/// The stats socket and the Prometheus listener: inherited where the
/// predecessor's match, else bound.
fn open_listeners(cfg: &Config, inherited: &mut Inherited) -> Result<(UnixListener, Option<TcpListener>)> {
    let listener = match inherited.stats.take() {
        Some(l) => l,
        None => control::bind(&cfg.stats_socket, cfg.stats_group.as_deref())?,
    };
    info!("stats socket at {} (mode 0660)", cfg.stats_socket.display());
    let metrics = match cfg.prometheus_listen {
        Some(addr) if inherited.metrics.as_ref().and_then(|m| m.local_addr().ok()) == Some(addr) => {
            info!("Prometheus metrics at http://{addr}/metrics (listener handed over)");
            inherited.metrics.take()
        }
        Some(addr) => {
            let l = TcpListener::bind(addr).with_context(|| format!("[stats] prometheus_listen = \"{addr}\": bind"))?;
            info!("Prometheus metrics at http://{addr}/metrics");
            if !addr.ip().is_loopback() {
                warn!("[stats] prometheus_listen = {addr}: /metrics is reachable from the network (no authentication); prefer a loopback address and a scraper on the host");
            }
            Some(l)
        }
        None => None,
    };
    Ok((listener, metrics))
}

/// The keyring of the configured secrets (the config's copies wiped).
fn keyring(cfg: &Config) -> Arc<Keyring> {
    let mut raw: Vec<[u8; 32]> = cfg.secrets.iter().map(|s| s.0).collect();
    let k = Arc::new(Keyring::from_secrets(&raw));
    raw.iter_mut().for_each(|s| crate::config::wipe(s));
    k
}

/// The move log, opened: one dispatcher and one list of players to
/// restore per worker, the keeper (not yet running), the shared state.
struct OpenedLog {
    ends: Vec<LogDispatch>,
    restore: Vec<Vec<Restored>>,
    keeper: Keeper,
    shared: Arc<LogShared>,
    clock: Arc<WallClock>,
}

/// Locks the log's directory, recovers every partition, and rebuilds each
/// player's anti-replay window from the records (so a move accepted before
/// a restart is never accepted again). Fails the start, before anything is
/// served, if the log cannot be opened or holds more players than fit.
fn open_move_log(cfg: &Config, keys: &Keyring, workers: &[WorkerInfo], marks: &mut Marks) -> Result<OpenedLog> {
    let lcfg = LogConfig {
        dir: cfg.log_dir.clone(),
        segment_bytes: cfg.log_segment_bytes,
        sync: match cfg.log_sync {
            LogSync::None => SyncPolicy::None,
            LogSync::Interval => SyncPolicy::Interval(Duration::from_millis(cfg.log_sync_interval_ms)),
            LogSync::Batch => SyncPolicy::EveryBatch,
        },
    };
    let t0 = Instant::now();
    let mut rebuild = Rebuild::default();
    let part_ids: Vec<u16> = workers.iter().map(|w| w.queue as u16).collect();
    let (parts, keeper, shared, recoveries) = open_log(&lcfg, &part_ids, &mut |r: &Record| rebuild.visit(r))
        .with_context(|| format!("opening the move log ([log] dir = {})", cfg.log_dir.display()))?;
    let found: u64 = recoveries.iter().map(|(_, r)| r.records).sum();
    let t_read = t0.elapsed();
    // Only players with a live key take a slot (and count below): one key
    // check per (player, key_id), on every core (nothing is served yet).
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    marks.mark("log read");
    let (restore, sum) = rebuild.finish(keys, workers.len(), threads);
    marks.mark("keys checked");
    info!(
        "move log {}: {} partition(s), {found} records of {} players, {} restored (windows and keyed states), \
         {} with no live key left out ({} of {} keyed states retired or re-keyed); read in {} ms, keys checked in {} ms",
        cfg.log_dir.display(),
        recoveries.len(),
        sum.players,
        sum.restored,
        sum.players - sum.restored,
        sum.dead_states,
        sum.keyed_states,
        t_read.as_millis(),
        (t0.elapsed() - t_read).as_millis()
    );
    for (w, r) in workers.iter().zip(&restore) {
        if r.len() > cfg.players_per_worker {
            bail!(
                "the move log {} holds {} players with a live key owned by queue {}'s worker, more than [moves] players_per_worker = {}: \
                 raise it (players that do not fit could have their logged moves accepted again)",
                cfg.log_dir.display(),
                r.len(),
                w.queue,
                cfg.players_per_worker
            );
        }
    }
    let clock = Arc::new(WallClock::default());
    let ends = parts.into_iter().map(|p| LogDispatch::new(p, Arc::clone(&clock))).collect();
    Ok(OpenedLog { ends, restore, keeper, shared, clock })
}

/// Helper threads (log keeper, stats, sampler, metrics) stay off the
/// pollers' cores: this thread is pinned to the others before spawning them.
fn pin_control_plane(cfg: &Config) {
    match affinity::isolate_control_plane(&cfg.cores, cfg.log_core) {
        Ok(set) if set.is_empty() => warn!(
            "every allowed core runs a poller ({:?}): the log keeper and the stats threads will share them; \
             leave a core free (or set [log] core) so no helper preempts a poller",
            cfg.cores
        ),
        Ok(set) => info!("control plane (log keeper, stats) on cores {set:?}; pollers on {:?}", cfg.cores),
        Err(e) => warn!("control plane: {e}; helper threads unpinned"),
    }
}

/// The bridge: the move port's SO_REUSEPORT group, steered by player like
/// the mesh (socket i feeds worker i). With the socket backend it is the
/// workers' sockets; with XDP it is the port's sink (an open port: the
/// kernel never answers a sender with ICMP) and, during a handover, where
/// the moves queue for the successor. Inherited sockets are kept when they
/// match the workers, so nothing they hold is lost.
fn bridge_sockets(cfg: &Config, inherited: &mut Inherited, workers: usize) -> Result<Vec<socket2::Socket>> {
    let inh = std::mem::take(&mut inherited.bridges);
    if !inh.is_empty() && inh.len() == workers {
        info!("bridge: {} inherited socket(s) on UDP port {}", inh.len(), cfg.port);
        return Ok(inh);
    }
    if !inh.is_empty() {
        warn!("bridge: {} inherited socket(s) for {workers} worker(s): closed (what they held is lost), new ones bound", inh.len());
        handover::unstore(&(0..inh.len()).map(|i| format!("{}{i}", handover::bridge_prefix(cfg))).collect::<Vec<_>>());
        drop(inh);
        // systemd closes its copies a little later: a group bound before
        // that would join the old one
        socket::wait_port_free(&cfg.iface, cfg.port, Duration::from_secs(5)).context("bridge: the old sockets do not go away")?;
    }
    let b = socket::bind_group(Some(&cfg.iface), cfg.port, workers)?;
    if cfg.backend == Backend::Xdp {
        socket::close_bridge(&b, 0).context("bridge: SO_RCVBUF")?;
    }
    Ok(b)
}

/// What one worker thread starts from.
struct WorkerStart {
    queue: u32,
    core: usize,
    shared: Arc<WorkerShared>,
    keys: Arc<Keyring>,
    ecfg: EngineConfig,
    seed: u64,
    /// Slots of the engine's key cache (for moves handed to another poller).
    cache_slots: usize,
    dispatch: LogDispatch,
    restore: Vec<Restored>,
}

fn worker_starts(
    cfg: &Config,
    workers: &[WorkerInfo],
    keys: &Arc<Keyring>,
    ends: Vec<LogDispatch>,
    restore: Vec<Vec<Restored>>,
) -> Result<Vec<WorkerStart>> {
    let ecfg = cfg.engine_config();
    let cache_slots = match cfg.backend {
        Backend::Xdp => keycache::slots_for(ecfg.players, workers.len()),
        // the kernel steers by player: nothing is handed over, no cache
        Backend::Socket => 0,
    };
    let mut starts = Vec::with_capacity(workers.len());
    for ((w, dispatch), restore) in workers.iter().zip(ends).zip(restore) {
        let (queue, core, shared, keys) = (w.queue, w.core, Arc::clone(&w.shared), Arc::clone(keys));
        starts.push(WorkerStart { queue, core, shared, keys, ecfg, seed: random_seed()?, cache_slots, dispatch, restore });
    }
    Ok(starts)
}

/// Spawns a worker: pinned to its core, its engine allocated (and first
/// touched) there with the players from the log restored, then `serve`.
/// One path for both backends' workers (`kind`: "worker" or "poller").
fn spawn_worker<F>(kind: &'static str, w: WorkerStart, serve: F) -> Result<JoinHandle<Result<()>>>
where
    F: FnOnce(&mut Engine, &mut LogDispatch, &Arc<WorkerShared>) -> std::io::Result<()> + Send + 'static,
{
    let WorkerStart { queue, core, shared, keys, ecfg, seed, cache_slots, mut dispatch, restore } = w;
    thread::Builder::new()
        .name(format!("ih-{kind}-{queue}"))
        .spawn(move || -> Result<()> {
            affinity::pin_current_thread(core)?;
            let mut engine = Engine::with_key_cache(ecfg, keys, seed, cache_slots);
            restore_windows(&mut engine, queue, restore)?;
            let cached = match cache_slots {
                0 => String::new(),
                n => format!(
                    ", keys of {n} of the other pollers' players cached ({:.1} MiB)",
                    KeyCache::bytes(n) as f64 / (1 << 20) as f64
                ),
            };
            let pages = match engine.table_hugepage_advised() {
                Some(true) => "advised for transparent 2 MiB pages",
                Some(false) => "not eligible for transparent hugepages: on 4 KiB pages",
                None => "page size unknown",
            };
            info!("{kind} {queue}: pinned to core {core}, room for {} players ({pages}){cached}", ecfg.players);
            shared.serving.store(true, Ordering::Release);
            serve(&mut engine, &mut dispatch, &shared).with_context(|| format!("{kind} {queue} (core {core})"))
        })
        .with_context(|| format!("spawning {kind} thread"))
}

/// What starting the workers gave.
struct Started {
    handles: Vec<JoinHandle<Result<()>>>,
    /// The XDP program (XDP backend), attached unless `error`.
    steering: Option<Steering>,
    /// `show info`'s `xdp`: sockets' modes, sizes, busy polling, attach mode.
    xdp_info: serde_json::Value,
    /// The workers run but the program could not steer to them: the
    /// appliance stops through the drain path.
    error: Option<anyhow::Error>,
}

fn start_socket_workers(cfg: &Config, starts: Vec<WorkerStart>, bridges: &[socket2::Socket]) -> Result<Started> {
    info!("socket backend: {} worker(s) on {} UDP port {} (IPv4 and IPv6), steered by player", starts.len(), cfg.iface, cfg.port);
    let mut handles = Vec::new();
    for (w, sock) in starts.into_iter().zip(bridges) {
        let sock = sock.try_clone().context("duplicating a worker socket")?;
        handles.push(spawn_worker("worker", w, move |engine, dispatch, shared| socket::serve(sock, engine, dispatch, shared))?);
    }
    Ok(Started { handles, steering: None, xdp_info: serde_json::Value::Null, error: None })
}

/// The XDP backend: the shield configured, one AF_XDP socket per queue
/// registered, a poller per socket spawned, and, once every poller serves,
/// the program steering to them.
fn start_pollers(
    cfg: &Config,
    workers: &[WorkerInfo],
    starts: Vec<WorkerStart>,
    bridges: &[socket2::Socket],
    mut st: Steering,
    inherited: &mut Inherited,
    marks: &mut Marks,
) -> Result<Started> {
    raise_memlock_limit();
    warn_unserved_queues(&cfg.iface, &cfg.queues);
    check_vlan_offload(&cfg.iface, cfg.rx_vlan_offload);
    st.set_shield(cfg.shield_source, cfg.shield_address).context("configuring the XDP shield")?;
    info!(
        "XDP shield: {}/s (burst {}) per source, {}/s (burst {}) per address (0 = off)",
        cfg.shield_source.0, cfg.shield_source.1, cfg.shield_address.0, cfg.shield_address.1
    );
    let socks = open_xsk_sockets(cfg, workers, &mut st)?;
    let mut xdp_info = xdp_info(cfg, &socks);
    // Several pollers: each player is owned by one of them (its window is
    // in one table); moves arriving elsewhere are handed over.
    let mesh = (workers.len() > 1).then(|| mesh::Mesh::new(workers.len(), mesh_depth()));
    // the pollers watch the bridge only after a handover (a fresh start's
    // bridge is only the port's sink)
    let inherited_bridge = inherited.from.is_some();
    let mut handles = Vec::new();
    for (i, (w, sock)) in starts.into_iter().zip(socks).enumerate() {
        let mesh = mesh.as_ref().map(|m| (Arc::clone(m), i));
        let port = cfg.port;
        let bridge = inherited_bridge.then(|| bridges[i].as_raw_fd());
        handles.push(spawn_worker("poller", w, move |engine, dispatch, shared| {
            sock.serve(engine, dispatch, shared, port, mesh, bridge)
        })?);
    }
    marks.mark("sockets open");
    let error = match steer(cfg, workers, &handles, &mut st, inherited) {
        Ok(mode) => {
            xdp_info["xdp_mode"] = mode.name().into();
            if let Some(from) = &inherited.from {
                marks.mark("pollers serving");
                info!("took over from {from}: own program steering {} ms after asking ({} ms)", marks.start.elapsed().as_millis(), marks.summary());
            }
            None
        }
        Err(e) => Some(e),
    };
    for w in workers {
        w.shared.bridge_closing.store(true, Ordering::Relaxed);
    }
    Ok(Started { handles, steering: Some(st), xdp_info, error })
}

/// One AF_XDP socket per worker's queue, registered in the program's map.
fn open_xsk_sockets(cfg: &Config, workers: &[WorkerInfo], st: &mut Steering) -> Result<Vec<XskSocket>> {
    let zc = match cfg.zero_copy {
        ZeroCopy::Auto => ZeroCopyWant::Auto,
        ZeroCopy::On => ZeroCopyWant::On,
        ZeroCopy::Off => ZeroCopyWant::Off,
    };
    let mut socks = Vec::new();
    for w in workers {
        let sizes = xsk::XskSizes { frames: cfg.umem_frames, ring: cfg.ring_size };
        let mut s = XskSocket::open(&cfg.iface, w.queue, zc, sizes)?;
        s.idle_spin = std::time::Duration::from_micros(cfg.idle_spin_us.into());
        if cfg.busy_poll {
            s.set_busy_poll(xsk::BusyPoll { usecs: cfg.busy_poll_usecs, budget: cfg.busy_poll_budget })?;
        }
        st.insert_socket(w.queue, s.fd()).with_context(|| format!("registering queue {}", w.queue))?;
        socks.push(s);
    }
    Ok(socks)
}

/// `show info`'s `xdp` object: as configured, and per queue as each socket
/// holds it (read back).
fn xdp_info(cfg: &Config, socks: &[XskSocket]) -> serde_json::Value {
    serde_json::json!({
        "zero_copy": socks.iter().all(|s| s.mode.zero_copy),
        "hugepages": socks.iter().all(|s| s.mode.hugepages),
        "umem_frames": cfg.umem_frames,
        "ring_size": cfg.ring_size,
        "idle_spin_us": cfg.idle_spin_us,
        "busy_poll": {
            "enabled": cfg.busy_poll,
            "usecs": cfg.busy_poll_usecs,
            "budget": cfg.busy_poll_budget,
            "queues": socks.iter().map(|s| match s.busy_poll {
                Some(b) => serde_json::json!({"queue": s.queue, "prefer_busy_poll": b.prefer, "usecs": b.usecs, "budget": b.budget}),
                None => serde_json::json!({"queue": s.queue, "prefer_busy_poll": false}),
            }).collect::<Vec<_>>(),
        },
    })
}

/// The program steers to the AF_XDP sockets once every poller serves (they
/// watch the bridge meanwhile): swapped into the inherited link, or
/// attached.
fn steer(
    cfg: &Config,
    workers: &[WorkerInfo],
    handles: &[JoinHandle<Result<()>>],
    st: &mut Steering,
    inherited: &mut Inherited,
) -> Result<AttachedMode> {
    while !workers.iter().all(|w| w.shared.serving.load(Ordering::Acquire)) && !handles.iter().any(|h| h.is_finished()) {
        thread::sleep(Duration::from_millis(1));
    }
    if handles.iter().any(|h| h.is_finished()) {
        bail!("a poller stopped before serving");
    }
    match inherited.link.take() {
        Some((link, mode)) => Ok(st.take_over(&cfg.iface, link, mode).map(|_| mode)?),
        None => {
            let want = match cfg.xdp_mode {
                XdpMode::Auto => WantMode::Auto,
                XdpMode::Native => WantMode::Native,
                XdpMode::Skb => WantMode::Skb,
            };
            Ok(st.attach(&cfg.iface, want)?)
        }
    }
}

/// What a restart under systemd hands to the next process: the bridge
/// sockets and the program's link.
fn restart_fds(cfg: &Config, bridges: &[socket2::Socket], steering: Option<&Steering>) -> Vec<(String, RawFd)> {
    let mut stored: Vec<(String, RawFd)> =
        bridges.iter().enumerate().map(|(i, b)| (format!("{}{i}", handover::bridge_prefix(cfg)), b.as_raw_fd())).collect();
    if let Some((fd, (_, mode))) = steering.and_then(|s| Some((s.link_fd()?, s.attached()?))) {
        stored.push((format!("{}{}", handover::link_prefix(cfg), mode.name()), fd.as_raw_fd()));
    }
    stored
}

fn stats_source(
    cfg: &Config,
    workers: Vec<WorkerInfo>,
    xdp_info: serde_json::Value,
    steering: Option<Arc<std::sync::Mutex<Steering>>>,
    log: &Arc<LogShared>,
    reloader: &Arc<crate::reload::Reloader>,
    handed_over_by: Option<String>,
) -> Arc<StatsSource> {
    Arc::new(StatsSource {
        info: Info {
            backend: cfg.backend.to_string(),
            iface: cfg.iface.clone(),
            port: cfg.port,
            config_path: cfg.path.clone(),
            players_per_worker: cfg.players_per_worker,
            key_ids: cfg.secrets.len(),
            secret_files: cfg.secret_files.clone(),
            log_dir: cfg.log_dir.clone(),
            handed_over_by,
        },
        workers,
        started: Instant::now(),
        xdp_info,
        steering,
        rates: Default::default(),
        log: Some(Arc::clone(log)),
        reloader: Some(Arc::clone(reloader) as Arc<dyn crate::stats::Reloadable>),
        capture: Default::default(),
    })
}

/// The stats socket's server, the per-second sampler (rates for `show
/// stats` and `--watch`, and the log's wall clock), and the metrics server.
fn spawn_control_threads(
    listener: UnixListener,
    metrics: Option<TcpListener>,
    src: &Arc<StatsSource>,
    slot: &Arc<handover::Slot>,
    clock: &Arc<WallClock>,
) -> Result<()> {
    let (s, h) = (Arc::clone(src), Arc::clone(slot));
    thread::Builder::new().name("ih-stats".into()).spawn(move || control::serve(listener, s, h))?;
    let (s, clock) = (Arc::clone(src), Arc::clone(clock));
    thread::Builder::new().name("ih-sampler".into()).spawn(move || loop {
        s.sample_rates();
        clock.refresh();
        thread::sleep(Duration::from_secs(1));
    })?;
    if let Some(l) = metrics {
        let s = Arc::clone(src);
        thread::Builder::new().name("ih-metrics".into()).spawn(move || crate::prometheus::serve_http(l, move || s.prometheus()))?;
    }
    Ok(())
}

/// The appliance while it serves: what the serving loop watches.
struct Serving<'a> {
    cfg: &'a Config,
    src: &'a Arc<StatsSource>,
    handles: &'a [JoinHandle<Result<()>>],
    keeper: &'a JoinHandle<()>,
    bridges: &'a [socket2::Socket],
}

/// Why the serving loop ended.
struct Stop {
    /// A worker or the keeper failed (or the program could not steer).
    failed: Option<String>,
    /// A successor asked to take over.
    successor: Option<u32>,
    /// The bridge is back to a sink (false: a handover's moves may still
    /// be in it).
    bridge_shrunk: bool,
}

impl Serving<'_> {
    /// Serves until a signal, a successor's request or a failure: reloads
    /// on SIGHUP, tells systemd once every worker serves, and shrinks an
    /// inherited bridge back to a sink once its moves are served.
    fn until_stop(
        &self,
        signals: &Signals,
        reloader: &crate::reload::Reloader,
        slot: &handover::Slot,
        start_error: Option<anyhow::Error>,
        fresh_start: bool,
    ) -> Stop {
        let mut stop = Stop { failed: start_error.map(|e| format!("{e:#}")), successor: None, bridge_shrunk: fresh_start };
        let mut ready = false;
        let swapped = Instant::now();
        while stop.failed.is_none() && !signals.term.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(20));
            if let Some(pid) = slot.requested() {
                info!("pid {pid} asks to take over (same config): handing over");
                stop.successor = Some(pid);
                break;
            }
            if signals.hup.swap(false, Ordering::Relaxed) {
                info!("SIGHUP: reloading {}", self.cfg.path.display());
                match reloader.reload() {
                    Ok(m) => info!("reloaded: {m}"),
                    Err(e) => error!("reload refused: {e}"),
                }
            }
            if !ready && self.src.workers.iter().all(|w| w.shared.serving.load(Ordering::Acquire)) {
                ready = true;
                self.tell_ready();
            }
            if !stop.bridge_shrunk && swapped.elapsed() > Duration::from_secs(2) {
                stop.bridge_shrunk = true;
                self.shrink_bridge();
            }
            stop.failed = self.failure();
        }
        stop
    }

    /// Every worker is in its serve loop (sockets bound, XDP attached,
    /// windows restored): `systemctl start` may return now.
    fn tell_ready(&self) {
        let cfg = self.cfg;
        let status =
            format!("serving {} queue(s) of {} on UDP port {} ({} backend)", self.src.workers.len(), cfg.iface, cfg.port, cfg.backend);
        info!("ready: {status}");
        notify::notify(&format!("READY=1\nSTATUS={status}\nMAINPID={}", std::process::id()));
    }

    /// The pollers have served what the bridge held: back to a sink.
    fn shrink_bridge(&self) {
        let n: u64 = self.src.workers.iter().map(|w| w.shared.bridged.load(Ordering::Relaxed)).sum();
        info!("handover complete: {n} move(s) served from the bridge");
        let everyday = if self.cfg.backend == Backend::Xdp { 0 } else { socket::WORKER_RCVBUF };
        if let Err(e) = socket::close_bridge(self.bridges, everyday) {
            warn!("bridge: {e}");
        }
    }

    fn failure(&self) -> Option<String> {
        if self.handles.iter().any(|h| h.is_finished()) {
            return Some("a worker stopped unexpectedly".into());
        }
        if self.keeper.is_finished() {
            return Some("the move log keeper stopped unexpectedly".into());
        }
        None
    }
}

/// Opens the bridge, turns the XDP program's handover on, lets every worker
/// answer what it holds, and joins them: the workers' result, and when the
/// drain began.
fn drain_workers(
    src: &StatsSource,
    handles: Vec<JoinHandle<Result<()>>>,
    bridges: &[socket2::Socket],
    bridge_shrunk: bool,
) -> (Result<()>, Instant) {
    info!("stopping workers");
    notify::notify("STOPPING=1\nSTATUS=stopping: draining the workers and syncing the move log");
    // (the XDP backend's sink junk is thrown away, unless the pollers may
    // still be serving an inherited queue from it)
    match socket::open_bridge(bridges, src.steering.is_some() && bridge_shrunk) {
        Ok(b) if b < socket::BRIDGE_RCVBUF => {
            warn!("bridge: receive buffers of {b} bytes (wanted {}): a long handover may overflow them", socket::BRIDGE_RCVBUF)
        }
        Ok(_) => {}
        Err(e) => warn!("bridge: {e}"),
    }
    if let Some(st) = &src.steering {
        let t = Instant::now();
        match st.lock().map_err(|_| anyhow::anyhow!("steering lock poisoned")).and_then(|mut s| Ok(s.set_handover(true)?)) {
            Ok(()) => info!("XDP program steers the moves to the bridge ({} µs)", t.elapsed().as_micros()),
            Err(e) => warn!("could not turn the XDP program's handover on: {e:#}"),
        }
        // redirects already under way land in the RX rings, which the
        // pollers drain next
        thread::sleep(Duration::from_millis(2));
    }
    for w in &src.workers {
        w.shared.begin_drain();
    }
    let t = Instant::now();
    while !src.workers.iter().all(|w| w.shared.drained.load(Ordering::Acquire)) && t.elapsed() < Duration::from_secs(3) {
        if handles.iter().all(|h| h.is_finished()) {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    for w in &src.workers {
        w.shared.release();
    }
    let mut result = Ok(());
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                error!("{e:#}");
                result = Err(e);
            }
            Err(_) => result = Err(anyhow::anyhow!("a worker panicked")),
        }
    }
    info!("workers drained in {} ms", t.elapsed().as_millis());
    (result, t)
}

/// The pollers are stopped (their records are in the page cache): the
/// keeper fsyncs every partition, whatever the policy, and releases the
/// lock.
fn stop_move_log(keeper: JoinHandle<()>, log: &LogShared) -> Result<()> {
    log.request_stop();
    keeper.join().map_err(|_| anyhow::anyhow!("the move log keeper panicked"))?;
    let errors = log.errors.load(Ordering::Relaxed);
    if errors > 0 {
        let last = log.last_error.lock().map(|e| e.clone().unwrap_or_default()).unwrap_or_default();
        warn!("move log: {errors} error(s) while running; last: {last}");
    }
    Ok(())
}
