//! A poller's batch with the move log off and on: 64 moves from warm
//! players, each ACCEPTED (verify, rules, signed ack in place), recorded in
//! the poller's partition (or not), then committed. The difference is what
//! the log costs the poller per batch.
//! `cargo bench -p ironhoard-dataplane --bench batch_log`.

use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ironhoard_dataplane::dispatch::{LogDispatch, WallClock};
use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{Dispatch, Engine, EngineConfig, Keyring, NoDispatch, Verdict};
use ironhoard_movelog::{open_log, LogConfig, SyncPolicy};
use ironhoard_wire::{MasterKey, MoveRepr, PlayerMac, Status};

const SECRET: [u8; 32] = [0x42; 32];
const PLAYERS: u32 = 4096;
const BATCH: usize = 64;

fn engine() -> Engine {
    let cfg = EngineConfig {
        board_width: 1024,
        board_height: 1024,
        bucket: BucketConfig { rate_per_second: u32::MAX, burst: u32::MAX },
        players: 2 * PLAYERS as usize,
    };
    Engine::new(cfg, Arc::new(Keyring::from_secrets(&[SECRET])), 11)
}

fn repr(player: u32, seq: u64) -> MoveRepr {
    MoveRepr { key_id: 0, kind: 1, game_id: 1, player_id: player, seq, client_ts: seq, x: 3, y: 4, ..Default::default() }
}

/// Fresh moves: each player's next seq, signed outside the measurement.
struct Source {
    macs: Vec<PlayerMac>,
    seqs: Vec<u64>,
    next: u32,
}

impl Source {
    fn new() -> Source {
        let mk = MasterKey::new(&SECRET);
        Source { macs: (0..PLAYERS).map(|p| mk.player_mac(1, p)).collect(), seqs: vec![1; PLAYERS as usize], next: 0 }
    }
    fn batch(&mut self) -> Vec<[u8; 64]> {
        (0..BATCH)
            .map(|_| {
                let p = self.next % PLAYERS;
                self.next = self.next.wrapping_add(1);
                self.seqs[p as usize] += 1;
                repr(p, self.seqs[p as usize]).to_bytes(&self.macs[p as usize])
            })
            .collect()
    }
}

fn run<D: Dispatch>(e: &mut Engine, d: &mut D, batch: &mut [[u8; 64]]) {
    for b in batch.iter_mut() {
        let v = e.process(b, 1, d);
        debug_assert_eq!(v, Verdict::Ack(Status::Accepted));
        black_box(v);
    }
    d.commit();
}

fn warm<D: Dispatch>(e: &mut Engine, d: &mut D, src: &mut Source) {
    for _ in 0..(PLAYERS as usize / BATCH) {
        run(e, d, &mut src.batch());
    }
}

/// Pins the calling thread to one core (best effort: a bench runs anyway).
fn pin(core: usize) {
    let _ = ironhoard_dataplane::affinity::pin_current_thread(core);
}

fn bench(c: &mut Criterion) {
    pin(1);
    let mut g = c.benchmark_group("poller_batch");
    g.throughput(Throughput::Elements(BATCH as u64));
    {
        let (mut e, mut src) = (engine(), Source::new());
        warm(&mut e, &mut NoDispatch, &mut src);
        g.bench_function("64_accepted_log_off", |b| {
            b.iter_batched_ref(|| src.batch(), |batch| run(&mut e, &mut NoDispatch, batch), BatchSize::SmallInput)
        });
    }
    for (name, sync) in [
        ("none", SyncPolicy::None),
        ("interval_200ms", SyncPolicy::Interval(std::time::Duration::from_millis(200))),
        ("batch", SyncPolicy::EveryBatch),
    ] {
        let dir = std::env::temp_dir().join(format!("ih-batch-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = LogConfig { dir: dir.clone(), segment_bytes: 64 << 20, sync };
        let (mut parts, keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
        // as in the appliance: the keeper on a core of its own (0), the
        // measured poller on core 1
        let k = std::thread::spawn(move || {
            pin(0);
            keeper.run()
        });
        let mut d = LogDispatch::new(parts.pop().unwrap(), Arc::new(WallClock::default()));
        let (mut e, mut src) = (engine(), Source::new());
        warm(&mut e, &mut d, &mut src);
        g.bench_function(format!("64_accepted_log_on_sync_{name}"), |b| {
            b.iter_batched_ref(|| src.batch(), |batch| run(&mut e, &mut d, batch), BatchSize::SmallInput)
        });
        let refused = shared.partitions[0].refused.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(refused, 0, "no move was BUSY for want of a segment");
        drop(d);
        shared.request_stop();
        k.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

criterion_group!(b, bench);
criterion_main!(b);
