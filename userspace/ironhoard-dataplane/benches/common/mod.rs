//! What the data path's benches share: the engine they drive, a source of
//! fresh signed moves, and pinning.

use std::sync::Arc;

use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{Engine, EngineConfig, Keyring};
use ironhoard_wire::{MasterKey, MoveRepr, PlayerMac};

pub const SECRET: [u8; 32] = [0x42; 32];
pub const PLAYERS: u32 = 4096;
pub const BATCH: usize = 64;

/// An engine with room for every bench player and no rate limit in the way.
pub fn engine() -> Engine {
    let cfg = EngineConfig {
        board_width: 1024,
        board_height: 1024,
        bucket: BucketConfig { rate_per_second: u32::MAX, burst: u32::MAX },
        players: 2 * PLAYERS as usize,
    };
    Engine::new(cfg, Arc::new(Keyring::from_secrets(&[SECRET])), 11)
}

/// Fresh moves: each player's next seq, signed outside the measurement,
/// players in turn.
pub struct Moves {
    macs: Vec<PlayerMac>,
    seqs: Vec<u64>,
    next: u32,
}

impl Moves {
    pub fn new() -> Moves {
        let mk = MasterKey::new(&SECRET);
        Moves { macs: (0..PLAYERS).map(|p| mk.player_mac(1, p)).collect(), seqs: vec![1; PLAYERS as usize], next: 0 }
    }

    /// The next player's next move, signed.
    pub fn next(&mut self) -> [u8; 64] {
        let p = self.next % PLAYERS;
        self.next = self.next.wrapping_add(1);
        self.seqs[p as usize] += 1;
        let s = self.seqs[p as usize];
        MoveRepr { key_id: 0, kind: 1, game_id: 1, player_id: p, seq: s, client_ts: s, x: 3, y: 4, ..Default::default() }
            .to_bytes(&self.macs[p as usize])
    }
}

/// Pins the calling thread to one core (best effort: a bench runs anyway).
pub fn pin(core: usize) {
    let _ = ironhoard_dataplane::affinity::pin_current_thread(core);
}

/// A move log in a fresh temporary directory, one partition, its keeper
/// running on core 0 as in the appliance (the measured poller is on core 1).
pub struct BenchLog {
    pub dispatch: ironhoard_dataplane::dispatch::LogDispatch,
    shared: Arc<ironhoard_movelog::LogShared>,
    keeper: std::thread::JoinHandle<()>,
    dir: std::path::PathBuf,
}

impl BenchLog {
    pub fn open(tag: &str, sync: ironhoard_movelog::SyncPolicy) -> BenchLog {
        let dir = std::env::temp_dir().join(format!("ih-bench-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = ironhoard_movelog::LogConfig { dir: dir.clone(), segment_bytes: 64 << 20, sync };
        let (mut parts, keeper, shared, _) = ironhoard_movelog::open_log(&cfg, &[0], &mut |_| {}).unwrap();
        let keeper = std::thread::spawn(move || {
            pin(0);
            keeper.run()
        });
        let clock = Arc::new(ironhoard_dataplane::dispatch::WallClock::default());
        BenchLog { dispatch: ironhoard_dataplane::dispatch::LogDispatch::new(parts.pop().unwrap(), clock), shared, keeper, dir }
    }

    /// Checks that no move was refused for want of a segment, stops the
    /// keeper and removes the log.
    pub fn close(self) {
        let refused = self.shared.partitions[0].refused.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(refused, 0, "no move was BUSY for want of a segment");
        drop(self.dispatch);
        self.shared.request_stop();
        self.keeper.join().unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
