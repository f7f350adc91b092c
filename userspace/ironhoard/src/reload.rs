//! Reloading the configuration in a running appliance (SIGHUP, or
//! `ironhoard reload` through the stats socket): the file is read and
//! validated again; what a running data path can take — master secrets
//! (add, retire, re-key key_ids), board size, rate limits, the XDP
//! shield's limits — is handed to
//! every worker, which applies it between two batches (no restart, no
//! move dropped, every other player's window kept; players of a retired
//! or re-keyed key_id are reclaimed). Anything else changed, or a config
//! that does not validate, is refused with the reason, and the running
//! configuration keeps serving.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ironhoard_dataplane::{Reload, WorkerShared};
use ironhoard_engine::Keyring;
use serde_json::{json, Value};

use crate::config::{Config, Overrides};

/// Why a reload did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}; the running configuration is unchanged")]
    Invalid(String),
    #[error("{0} changed: that needs a restart (systemctl restart ironhoard); the running configuration is unchanged")]
    NeedsRestart(String),
    #[error("worker(s) {0:?} did not take the reload within 5 s")]
    Stuck(Vec<usize>),
}

pub struct Reloader {
    overrides: Overrides,
    current: Mutex<State>,
    workers: Vec<Arc<WorkerShared>>,
    /// The XDP program (backend xdp): its shield limits are reloadable.
    steering: Option<Arc<Mutex<ironhoard_loader::Steering>>>,
}

struct State {
    cfg: Config,
    generation: u64,
    reloads: u64,
    last: Option<String>,
}

/// The fields a running data path cannot change, by config key.
fn fixed(c: &Config) -> Vec<(&'static str, String)> {
    vec![
        ("interface.name", c.iface.clone()),
        ("interface.queues", format!("{:?}", c.queues)),
        ("interface.cores", format!("{:?}", c.cores)),
        ("interface.xdp_mode", format!("{:?}", c.xdp_mode)),
        ("interface.zero_copy", format!("{:?}", c.zero_copy)),
        ("interface.backend", c.backend.to_string()),
        ("moves.port", c.port.to_string()),
        ("moves.players_per_worker", c.players_per_worker.to_string()),
        ("stats.socket", c.stats_socket.display().to_string()),
        ("stats.group", format!("{:?}", c.stats_group)),
        ("stats.prometheus_listen", format!("{:?}", c.prometheus_listen)),
        ("log.dir", c.log_dir.display().to_string()),
        ("log.segment_bytes", c.log_segment_bytes.to_string()),
        ("log.sync", format!("{:?}", c.log_sync)),
        ("log.sync_interval_ms", c.log_sync_interval_ms.to_string()),
        ("log.core", format!("{:?}", c.log_core)),
        ("interface.rx_vlan_offload", format!("{:?}", c.rx_vlan_offload)),
        ("interface.umem_frames", c.umem_frames.to_string()),
        ("interface.ring_size", c.ring_size.to_string()),
        ("interface.busy_poll", c.busy_poll.to_string()),
        ("interface.busy_poll_usecs", c.busy_poll_usecs.to_string()),
        ("interface.busy_poll_budget", c.busy_poll_budget.to_string()),
        ("interface.idle_spin_us", c.idle_spin_us.to_string()),
    ]
}

impl Reloader {
    pub fn new(
        cfg: Config,
        overrides: Overrides,
        workers: Vec<Arc<WorkerShared>>,
        steering: Option<Arc<Mutex<ironhoard_loader::Steering>>>,
    ) -> Reloader {
        Reloader { overrides, current: Mutex::new(State { cfg, generation: 0, reloads: 0, last: None }), workers, steering }
    }

    /// Re-reads the file and applies it; returns what changed.
    pub fn reload(&self) -> Result<String, ReloadError> {
        let mut st = self.current.lock().unwrap_or_else(|e| e.into_inner());
        let r = self.reload_locked(&mut st);
        st.last = Some(match &r {
            Ok(m) => format!("ok: {m}"),
            Err(e) => format!("refused: {e}"),
        });
        r
    }

    fn reload_locked(&self, st: &mut State) -> Result<String, ReloadError> {
        let path = st.cfg.path.clone();
        let new = Config::load(&path, &self.overrides).map_err(|e| ReloadError::Invalid(e.to_string()))?;
        let changed: Vec<String> = fixed(&st.cfg)
            .into_iter()
            .zip(fixed(&new))
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, b)| format!("{} ({} -> {})", a.0, a.1, b.1))
            .collect();
        if !changed.is_empty() {
            return Err(ReloadError::NeedsRestart(changed.join(", ")));
        }
        let mut raw: Vec<[u8; 32]> = new.secrets.iter().map(|s| s.0).collect();
        let keys = Arc::new(Keyring::from_secrets(&raw));
        raw.iter_mut().for_each(|s| crate::config::wipe(s));
        let old_keys = {
            let mut raw: Vec<[u8; 32]> = st.cfg.secrets.iter().map(|s| s.0).collect();
            let k = Keyring::from_secrets(&raw);
            raw.iter_mut().for_each(|s| crate::config::wipe(s));
            k
        };
        // the shield's limits: one map write each
        if (new.shield_source, new.shield_address) != (st.cfg.shield_source, st.cfg.shield_address) {
            if let Some(sg) = &self.steering {
                sg.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .set_shield(new.shield_source, new.shield_address)
                    .map_err(|e| ReloadError::Invalid(format!("setting the XDP shield: {e}")))?;
            }
        }
        let reload = Reload { cfg: new.engine_config(), keys: Arc::clone(&keys) };
        st.generation += 1;
        let g = st.generation;
        let before: u64 = self.workers.iter().map(|w| w.reclaimed.load(Ordering::Relaxed)).sum();
        for w in &self.workers {
            *w.reload.lock().unwrap_or_else(|e| e.into_inner()) = Some(reload.clone());
            w.reload_gen.store(g, Ordering::Release);
        }
        let t0 = Instant::now();
        loop {
            let behind: Vec<usize> =
                (0..self.workers.len()).filter(|&i| self.workers[i].reload_applied.load(Ordering::Acquire) < g).collect();
            if behind.is_empty() {
                break;
            }
            if t0.elapsed() > Duration::from_secs(5) {
                return Err(ReloadError::Stuck(behind));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let reclaimed: u64 = self.workers.iter().map(|w| w.reclaimed.load(Ordering::Relaxed)).sum::<u64>() - before;
        let added: Vec<u8> = keys.ids().filter(|&i| old_keys.get(i).is_none()).collect();
        let retired: Vec<u8> = old_keys.ids().filter(|&i| keys.get(i).is_none()).collect();
        let rekeyed: Vec<u8> = keys.ids().filter(|&i| old_keys.get(i).is_some() && !old_keys.same_secret(&keys, i)).collect();
        let msg = format!(
            "key_ids {} (added {added:?}, retired {retired:?}, re-keyed {rekeyed:?}), {reclaimed} player(s) reclaimed; \
             board {}x{}, rate {}/s burst {}; shield {:?}/{:?}; applied by {} worker(s) in {} ms",
            keys.len(),
            new.board_width,
            new.board_height,
            new.rate_per_second,
            new.rate_burst,
            new.shield_source,
            new.shield_address,
            self.workers.len(),
            t0.elapsed().as_millis()
        );
        st.cfg = new;
        st.reloads += 1;
        Ok(msg)
    }

}

impl crate::stats::Reloadable for Reloader {
    /// The stats socket's `reload` answer.
    fn reload_json(&self) -> Value {
        match self.reload() {
            Ok(m) => json!({"ok": true, "message": m}),
            Err(e) => json!({"ok": false, "restart_needed": matches!(e, ReloadError::NeedsRestart(_)), "error": e.to_string()}),
        }
    }

    /// For `show info`.
    fn info(&self) -> Value {
        let st = self.current.lock().unwrap_or_else(|e| e.into_inner());
        json!({
            "key_ids": st.cfg.secrets.len(),
            "secret_files": st.cfg.secret_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "board": [st.cfg.board_width, st.cfg.board_height],
            "rate_per_second": st.cfg.rate_per_second,
            "rate_burst": st.cfg.rate_burst,
            "reloads": st.reloads,
            "last_reload": st.last,
        })
    }
}
