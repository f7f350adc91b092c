//! The frame path as a number that carries over to real NICs: a batch of
//! 64 received frames (Ethernet + IPv4 + UDP + move, as they sit in UMEM)
//! through the poller's per-frame steps — classify (the shared classifier),
//! engine (tag, anti-replay window, board, rate limit, signed ack in
//! place), ack rewrite (addresses swapped, checksums) — and the move log
//! append, then the batch's commit. Reported per frame (criterion's
//! elements/s), warm (the same 4096 players over and over: their table
//! slots and keys in cache) and cold (64 MiB walked between batches, so
//! the player table, the key cache and the log mapping come from memory).
//! `cargo bench -p ironhoard-dataplane --bench frame_path` (pinned to core 1).

use std::net::SocketAddr;
use std::sync::Arc;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ironhoard_common::frame::{classify, rewrite_to_ack, Class};
use ironhoard_dataplane::dispatch::{LogDispatch, WallClock};
use ironhoard_dataplane::frame::{build_udp, FrameSpec};
use ironhoard_engine::bucket::BucketConfig;
use ironhoard_engine::{Dispatch, Engine, EngineConfig, Keyring, Verdict};
use ironhoard_movelog::{open_log, LogConfig, SyncPolicy};
use ironhoard_wire::{MasterKey, MoveRepr, PlayerMac, Status};

const SECRET: [u8; 32] = [0x42; 32];
const PLAYERS: u32 = 4096;
const BATCH: usize = 64;
const PORT: u16 = 7777;
const MOVE_LEN: usize = 64;

fn engine() -> Engine {
    let cfg = EngineConfig {
        board_width: 1024,
        board_height: 1024,
        bucket: BucketConfig { rate_per_second: u32::MAX, burst: u32::MAX },
        players: 2 * PLAYERS as usize,
    };
    Engine::new(cfg, Arc::new(Keyring::from_secrets(&[SECRET])), 11)
}

/// Fresh frames: each player's next seq, signed and framed outside the
/// measurement.
struct Source {
    macs: Vec<PlayerMac>,
    seqs: Vec<u64>,
    next: u32,
    spec: FrameSpec,
}

impl Source {
    fn new() -> Source {
        let mk = MasterKey::new(&SECRET);
        let spec = FrameSpec {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 0, 1],
            vlan: None,
            src: "198.18.200.2:40000".parse::<SocketAddr>().unwrap(),
            dst: "198.18.200.1:7777".parse::<SocketAddr>().unwrap(),
            ipv4_options: 0,
        };
        Source { macs: (0..PLAYERS).map(|p| mk.player_mac(1, p)).collect(), seqs: vec![1; PLAYERS as usize], next: 0, spec }
    }
    fn batch(&mut self) -> Vec<([u8; 128], usize)> {
        (0..BATCH)
            .map(|_| {
                let p = self.next % PLAYERS;
                self.next = self.next.wrapping_add(1);
                self.seqs[p as usize] += 1;
                let s = self.seqs[p as usize];
                let mv = MoveRepr { key_id: 0, kind: 1, game_id: 1, player_id: p, seq: s, client_ts: s, x: 3, y: 4, ..Default::default() }
                    .to_bytes(&self.macs[p as usize]);
                let mut f = [0u8; 128];
                let n = build_udp(&mut f, &self.spec, &mv);
                (f, n)
            })
            .collect()
    }
}

/// What the poller does with a batch of received frames.
fn run<D: Dispatch>(e: &mut Engine, d: &mut D, batch: &mut [([u8; 128], usize)]) {
    for (f, n) in batch.iter_mut() {
        let f = &mut f[..*n];
        let acked = match classify(&*f, PORT, MOVE_LEN) {
            Class::Serve(u) => {
                let p = u.payload();
                match e.process(&mut f[p..p + u.payload_len], 1, d) {
                    Verdict::Ack(s) => {
                        debug_assert_eq!(s, Status::Accepted);
                        Some(rewrite_to_ack(f, &u))
                    }
                    Verdict::Drop(_) => None,
                }
            }
            _ => None,
        };
        debug_assert!(acked.is_some());
        black_box(acked);
    }
    d.commit();
}

/// Pins the calling thread to one core (best effort: a bench runs anyway).
fn pin(core: usize) {
    let _ = ironhoard_dataplane::affinity::pin_current_thread(core);
}

fn bench(c: &mut Criterion) {
    pin(1);
    let dir = std::env::temp_dir().join(format!("ih-frame-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = LogConfig { dir: dir.clone(), segment_bytes: 64 << 20, sync: SyncPolicy::Interval(std::time::Duration::from_millis(200)) };
    let (mut parts, keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
    // as in the appliance: the keeper on a core of its own (0)
    let k = std::thread::spawn(move || {
        pin(0);
        keeper.run()
    });
    let mut d = LogDispatch::new(parts.pop().unwrap(), Arc::new(WallClock::default()));
    let (mut e, mut src) = (engine(), Source::new());
    for _ in 0..(PLAYERS as usize / BATCH) {
        run(&mut e, &mut d, &mut src.batch());
    }
    let mut g = c.benchmark_group("frame_path");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("64_frames_warm", |b| b.iter_batched_ref(|| src.batch(), |batch| run(&mut e, &mut d, batch), BatchSize::SmallInput));
    // cold: 64 MiB walked between batches (outside the measurement)
    let mut evict = vec![0u8; 64 << 20];
    g.bench_function("64_frames_cold", |b| {
        b.iter_batched_ref(
            || {
                for i in (0..evict.len()).step_by(64) {
                    evict[i] = evict[i].wrapping_add(1);
                }
                black_box(&evict);
                src.batch()
            },
            |batch| run(&mut e, &mut d, batch),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    let refused = shared.partitions[0].refused.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(refused, 0, "no move was BUSY for want of a segment");
    drop(d);
    shared.request_stop();
    k.join().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(b, bench);
criterion_main!(b);
