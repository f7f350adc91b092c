//! `ironhoard run`: builds the workers for the configured backend, serves
//! the stats socket, and stops everything cleanly on SIGTERM/SIGINT.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ironhoard_dataplane::xsk::{self, XskSocket, ZeroCopyWant};
use ironhoard_dataplane::dispatch::{LogDispatch, WallClock};
use ironhoard_dataplane::{affinity, socket, WorkerShared};
use ironhoard_movelog::{open_log, LogConfig, Record, SyncPolicy};
use ironhoard_loader::{Steering, WantMode};
use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{Engine, EngineConfig, Keyring};
use log::{error, info, warn};

use crate::notify;
use crate::rebuild::{Rebuild, Restored};
use crate::config::{Backend, Config, LogSync, XdpMode, ZeroCopy};
use crate::stats::{self, Info, StatsSource, WorkerInfo};

pub fn engine_config(cfg: &Config) -> EngineConfig {
    EngineConfig {
        board_width: cfg.board_width,
        board_height: cfg.board_height,
        bucket: BucketConfig { rate_per_second: cfg.rate_per_second, burst: cfg.rate_burst },
        players: cfg.players_per_worker,
    }
}

/// Moves arriving on an rx queue without a poller are passed to the kernel
/// (which has no socket on the port with this backend): say so at start.
fn warn_unserved_queues(iface: &str, served: &[u32]) {
    let dir = format!("/sys/class/net/{iface}/queues");
    let Ok(rd) = std::fs::read_dir(&dir) else { return };
    let rx: Vec<u32> = rd
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_prefix("rx-")?.parse().ok())
        .collect();
    let unserved: Vec<u32> = rx.iter().copied().filter(|q| !served.contains(q)).collect();
    if !unserved.is_empty() {
        warn!(
            "{iface} has {} rx queues and only {:?} are served: moves hashed to {:?} reach the kernel instead. \
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

/// Runs the appliance until SIGTERM or SIGINT.
pub fn run(cfg: Config, overrides: crate::config::Overrides) -> Result<()> {
    let wanted: Vec<usize> = cfg.cores.iter().chain(cfg.log_core.iter()).copied().collect();
    affinity::check_cores(&wanted).map_err(|e| anyhow::anyhow!("config {}: interface.cores / log.core: {e}", cfg.path.display()))?;
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, Arc::clone(&term)).context("installing signal handlers")?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup)).context("installing the SIGHUP handler")?;

    // The stats socket first: it doubles as the single-instance lock, so a
    // second `ironhoard run` stops here before touching the data path
    // (joining the SO_REUSEPORT group, replacing the XDP program).
    let listener = stats::bind(&cfg.stats_socket, cfg.stats_group.as_deref())?;
    info!("stats socket at {} (mode 0660)", cfg.stats_socket.display());
    // Everything that can fail at start fails before the data path serves a
    // single move (after that, errors go through the stop-and-drain path).
    let metrics_listener = match cfg.prometheus_listen {
        Some(addr) => {
            let l = std::net::TcpListener::bind(addr).with_context(|| format!("[stats] prometheus_listen = \"{addr}\": bind"))?;
            info!("Prometheus metrics at http://{addr}/metrics");
            if !addr.ip().is_loopback() {
                warn!("[stats] prometheus_listen = {addr}: /metrics is reachable from the network (no authentication); prefer a loopback address and a scraper on the host");
            }
            Some(l)
        }
        None => None,
    };
    let mut seeds = Vec::new();
    for _ in &cfg.queues {
        seeds.push(random_seed()?);
    }
    let mut seeds = seeds.into_iter();
    let keys = {
        let mut raw: Vec<[u8; 32]> = cfg.secrets.iter().map(|s| s.0).collect();
        let k = Arc::new(Keyring::from_secrets(&raw));
        raw.iter_mut().for_each(|s| crate::config::wipe(s));
        k
    };
    let ecfg = engine_config(&cfg);
    let workers: Vec<WorkerInfo> = cfg
        .queues
        .iter()
        .zip(&cfg.cores)
        .map(|(&queue, &core)| WorkerInfo { queue, core, shared: Arc::new(WorkerShared::default()) })
        .collect();

    // The move log: lock its directory, recover every partition, and rebuild
    // each player's anti-replay window from the records (so a move accepted
    // before a restart is never accepted again). Fails the start, before
    // anything is served, if the log cannot be opened.
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
    let (parts, keeper, lshared, recoveries) = open_log(&lcfg, &part_ids, &mut |r: &Record| rebuild.visit(r))
        .with_context(|| format!("opening the move log ([log] dir = {})", cfg.log_dir.display()))?;
    let found: u64 = recoveries.iter().map(|(_, r)| r.records).sum();
    let t_read = t0.elapsed();
    // Only players with a live key take a slot (and count below): one key
    // check per (player, key_id), on every core (nothing is served yet).
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let (restore, sum) = rebuild.finish(&keys, workers.len(), threads);
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
    let mut ends = parts.into_iter().map(|p| LogDispatch::new(p, Arc::clone(&clock))).collect::<Vec<_>>().into_iter();
    let mut restore = restore.into_iter();

    // Helper threads (log keeper, stats, sampler, metrics) stay off the
    // pollers' cores: this thread is pinned to the others before spawning them.
    match affinity::isolate_control_plane(&cfg.cores, cfg.log_core) {
        Ok(set) if set.is_empty() => warn!(
            "every allowed core runs a poller ({:?}): the log keeper and the stats threads will share them; \
             leave a core free (or set [log] core) so no helper preempts a poller",
            cfg.cores
        ),
        Ok(set) => info!("control plane (log keeper, stats) on cores {set:?}; pollers on {:?}", cfg.cores),
        Err(e) => warn!("control plane: {e}; helper threads unpinned"),
    }
    let keeper_handle = thread::Builder::new().name("ih-logkeep".into()).spawn(move || keeper.run())?;

    // The XDP program stays attached while `steering` lives (bpf_link: the
    // kernel also detaches it if this process is killed).
    // Declared before the steering: dropped after it, so the move port
    // stays open until the XDP program is gone.
    let mut _sink = None;
    let mut _sink_held: Vec<std::os::fd::OwnedFd> = Vec::new();
    let mut steering: Option<Steering> = None;
    let mut xdp_info = serde_json::Value::Null;
    let handles: Vec<JoinHandle<Result<()>>> = match cfg.backend {
        Backend::Socket => {
            let socks = socket::bind_group(Some(&cfg.iface), cfg.port, workers.len())?;
            // A duplicate of each socket stays open until the process ends:
            // while the workers have stopped and the log is being synced,
            // datagrams queue unread instead of meeting a closed port (ICMP).
            for s in &socks {
                _sink_held.push(std::os::fd::OwnedFd::from(s.try_clone().context("duplicating a worker socket")?));
            }
            info!(
                "socket backend: {} worker(s) on {} UDP port {} (IPv4 and IPv6), steered by player",
                workers.len(),
                cfg.iface,
                cfg.port
            );
            let mut hs = Vec::new();
            for (w, sock) in workers.iter().zip(socks) {
                let (shared, core, queue, keys) = (Arc::clone(&w.shared), w.core, w.queue, Arc::clone(&keys));
                let mut disp = ends.next().expect("one log partition per worker");
                let restore = restore.next().expect("one restore list per worker");
                let seed = seeds.next().expect("one seed per worker");
                let h = thread::Builder::new()
                    .name(format!("ih-worker-{queue}"))
                    .spawn(move || -> Result<()> {
                        affinity::pin_current_thread(core)?;
                        // The table is allocated (and first touched) on the
                        // worker's own core.
                        let mut engine = Engine::new(ecfg, keys, seed);
                        restore_windows(&mut engine, queue, restore)?;
                        info!("worker {queue}: pinned to core {core}, room for {} players", ecfg.players);
                        shared.serving.store(true, Ordering::Release);
                        socket::serve(sock, &mut engine, &mut disp, &shared)
                            .with_context(|| format!("worker {queue} (core {core})"))
                    })
                    .context("spawning worker thread")?;
                hs.push(h);
            }
            hs
        }
        Backend::Xdp => {
            raise_memlock_limit();
            warn_unserved_queues(&cfg.iface, &cfg.queues);
            check_vlan_offload(&cfg.iface, cfg.rx_vlan_offload);
            match socket::bind_sink(&cfg.iface, cfg.port) {
                Ok(s) => _sink = Some(s),
                Err(e) => warn!(
                    "{e}: move-port datagrams the XDP program passes to the kernel (non-first fragments) \
                     may be answered with ICMP port unreachable"
                ),
            }
            let mut st = Steering::load(cfg.port).context("loading the XDP program")?;
            st.set_shield(cfg.shield_source, cfg.shield_address).context("configuring the XDP shield")?;
            info!(
                "XDP shield: {}/s (burst {}) per source, {}/s (burst {}) per address (0 = off)",
                cfg.shield_source.0, cfg.shield_source.1, cfg.shield_address.0, cfg.shield_address.1
            );
            let zc = match cfg.zero_copy {
                ZeroCopy::Auto => ZeroCopyWant::Auto,
                ZeroCopy::On => ZeroCopyWant::On,
                ZeroCopy::Off => ZeroCopyWant::Off,
            };
            let mut socks = Vec::new();
            for w in &workers {
                let sizes = xsk::XskSizes { frames: cfg.umem_frames, ring: cfg.ring_size };
                let s = XskSocket::open(&cfg.iface, w.queue, zc, sizes)?;
                st.insert_socket(w.queue, s.fd()).with_context(|| format!("registering queue {}", w.queue))?;
                socks.push(s);
            }
            let want = match cfg.xdp_mode {
                XdpMode::Auto => WantMode::Auto,
                XdpMode::Native => WantMode::Native,
                XdpMode::Skb => WantMode::Skb,
            };
            let mode = st.attach(&cfg.iface, want)?;
            xdp_info = serde_json::json!({
                "xdp_mode": mode.name(),
                "zero_copy": socks.iter().all(|s| s.mode.zero_copy),
                "hugepages": socks.iter().all(|s| s.mode.hugepages),
                "umem_frames": cfg.umem_frames,
                "ring_size": cfg.ring_size,
            });
            // Several pollers: each player is owned by one of them (its
            // window is in one table); moves arriving elsewhere are handed over.
            // IRONHOARD_MESH_DEPTH: a test knob (a tiny mailbox makes the
            // full-mailbox path reachable in a lab); 4096 otherwise.
            let depth = std::env::var("IRONHOARD_MESH_DEPTH").ok().and_then(|v| v.parse().ok()).unwrap_or(4096usize);
            let mesh = (workers.len() > 1).then(|| xsk::Mesh::new(workers.len(), depth));
            let mut hs = Vec::new();
            for (i, (w, sock)) in workers.iter().zip(socks).enumerate() {
                let mesh = mesh.as_ref().map(|m| (Arc::clone(m), i));
                let (shared, core, queue, keys, port) = (Arc::clone(&w.shared), w.core, w.queue, Arc::clone(&keys), cfg.port);
                let mut disp = ends.next().expect("one log partition per worker");
                let restore = restore.next().expect("one restore list per worker");
                let seed = seeds.next().expect("one seed per worker");
                let h = thread::Builder::new()
                    .name(format!("ih-poller-{queue}"))
                    .spawn(move || -> Result<()> {
                        affinity::pin_current_thread(core)?;
                        let mut engine = Engine::new(ecfg, keys, seed);
                        restore_windows(&mut engine, queue, restore)?;
                        info!("poller {queue}: pinned to core {core}, room for {} players", ecfg.players);
                        shared.serving.store(true, Ordering::Release);
                        sock.serve(&mut engine, &mut disp, &shared, port, mesh)
                            .with_context(|| format!("poller {queue} (core {core})"))
                    })
                    .context("spawning poller thread")?;
                hs.push(h);
            }
            steering = Some(st);
            hs
        }
    };
    let steering = steering.map(|s| Arc::new(std::sync::Mutex::new(s)));

    let reloader = Arc::new(crate::reload::Reloader::new(
        cfg.clone(),
        overrides,
        workers.iter().map(|w| Arc::clone(&w.shared)).collect(),
        steering.clone(),
    ));
    let src = Arc::new(StatsSource {
        info: Info {
            backend: cfg.backend.to_string(),
            iface: cfg.iface.clone(),
            port: cfg.port,
            config_path: cfg.path.clone(),
            players_per_worker: cfg.players_per_worker,
            key_ids: cfg.secrets.len(),
            secret_files: cfg.secret_files.clone(),
            log_dir: cfg.log_dir.clone(),
        },
        workers,
        started: Instant::now(),
        xdp_info,
        steering,
        rates: Default::default(),
        log: Some(Arc::clone(&lshared)),
        reloader: Some(Arc::clone(&reloader)),
    });
    {
        let src = Arc::clone(&src);
        thread::Builder::new().name("ih-stats".into()).spawn(move || stats::serve(listener, src))?;
    }
    {
        // per-second rates for `show stats` and `--watch`
        let src = Arc::clone(&src);
        let clock = Arc::clone(&clock);
        thread::Builder::new().name("ih-sampler".into()).spawn(move || loop {
            src.sample_rates();
            clock.refresh();
            thread::sleep(Duration::from_secs(1));
        })?;
    }
    if let Some(l) = metrics_listener {
        let src = Arc::clone(&src);
        thread::Builder::new().name("ih-metrics".into()).spawn(move || crate::prometheus::serve_http(l, src))?;
    }

    let mut failed = None;
    let mut ready = false;
    while !term.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(50));
        if hup.swap(false, Ordering::Relaxed) {
            info!("SIGHUP: reloading {}", cfg.path.display());
            match reloader.reload() {
                Ok(m) => info!("reloaded: {m}"),
                Err(e) => error!("reload refused: {e}"),
            }
        }
        if !ready && src.workers.iter().all(|w| w.shared.serving.load(Ordering::Acquire)) {
            // Every worker is in its serve loop (sockets bound, XDP attached,
            // windows restored): `systemctl start` may return now.
            ready = true;
            let status = format!(
                "serving {} queue(s) of {} on UDP port {} ({} backend)",
                src.workers.len(),
                cfg.iface,
                cfg.port,
                cfg.backend
            );
            info!("ready: {status}");
            notify::notify(&format!("READY=1\nSTATUS={status}\nMAINPID={}", std::process::id()));
        }
        if handles.iter().any(|h| h.is_finished()) {
            failed = Some("a worker stopped unexpectedly");
            break;
        }
        if keeper_handle.is_finished() {
            failed = Some("the move log keeper stopped unexpectedly");
            break;
        }
    }
    info!("stopping workers");
    notify::notify("STOPPING=1\nSTATUS=stopping: draining the workers and syncing the move log");
    for w in &src.workers {
        w.shared.request_stop();
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
    // Pollers are stopped: drain every dispatch queue into the log and sync.
    // Pollers are stopped (their records are in the page cache): the keeper
    // fsyncs every partition, whatever the policy, and releases the lock.
    lshared.request_stop();
    keeper_handle.join().map_err(|_| anyhow::anyhow!("the move log keeper panicked"))?;
    if lshared.errors.load(Ordering::Relaxed) > 0 {
        warn!(
            "move log: {} error(s) while running; last: {}",
            lshared.errors.load(Ordering::Relaxed),
            lshared.last_error.lock().map(|e| e.clone().unwrap_or_default()).unwrap_or_default()
        );
    }
    let _ = std::fs::remove_file(&cfg.stats_socket);
    let s = src.stats();
    info!(
        "stopped: rx {} tx {} accepted {}; move log: {} records written",
        s["rx"], s["tx"], s["accepted"], lshared.records()
    );
    if let (Some(why), Ok(())) = (failed, &result) {
        bail!("{why}");
    }
    result
}
