//! The frame path as a number that carries over to real NICs: a batch of
//! 64 received frames (Ethernet + IPv4 + UDP + move, as they sit in UMEM)
//! through the poller's per-frame steps — its prefetch hints for the player
//! table, classify (the shared classifier),
//! engine (tag, anti-replay window, board, rate limit, signed ack in
//! place), ack rewrite (addresses swapped, checksums) — and the move log
//! append, then the batch's commit. Reported per frame (criterion's
//! elements/s), warm (the same 4096 players over and over: their table
//! slots and keys in cache) and cold (64 MiB walked between batches, so
//! the player table, the key cache and the log mapping come from memory).
//! `cargo bench -p ironhoard-dataplane --bench frame_path` (pinned to core 1).

mod common;

use std::net::SocketAddr;

use common::{engine, pin, BenchLog, Moves, BATCH, PLAYERS};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ironhoard_classify::{classify, rewrite_to_ack, Class};
use ironhoard_dataplane::frame::{build_udp, FrameSpec};
use ironhoard_engine::{Dispatch, Engine, Verdict};
use ironhoard_movelog::SyncPolicy;
use ironhoard_wire::Status;

const PORT: u16 = 7777;
const MOVE_LEN: usize = 64;

/// Fresh frames: each player's next seq, signed and framed outside the
/// measurement.
struct Source {
    moves: Moves,
    spec: FrameSpec,
}

impl Source {
    fn new() -> Source {
        let spec = FrameSpec {
            src_mac: [2, 0, 0, 0, 0, 2],
            dst_mac: [2, 0, 0, 0, 0, 1],
            vlan: None,
            src: "198.18.200.2:40000".parse::<SocketAddr>().unwrap(),
            dst: "198.18.200.1:7777".parse::<SocketAddr>().unwrap(),
            ipv4_options: 0,
        };
        Source { moves: Moves::new(), spec }
    }
    fn batch(&mut self) -> Vec<([u8; 128], usize)> {
        (0..BATCH)
            .map(|_| {
                let mv = self.moves.next();
                let mut f = [0u8; 128];
                let n = build_udp(&mut f, &self.spec, &mv);
                (f, n)
            })
            .collect()
    }
}

/// A received frame's move, as the poller finds it for its prefetch hints:
/// the frame's last MOVE_LEN bytes.
fn tail((f, n): &([u8; 128], usize)) -> &[u8] {
    &f[n - MOVE_LEN..*n]
}

/// What the poller does with a batch of received frames.
fn run<D: Dispatch>(e: &mut Engine, d: &mut D, batch: &mut [([u8; 128], usize)]) {
    let len = batch.len();
    e.prefetch_batch(len, |i| tail(&batch[i]));
    for i in 0..len {
        e.prefetch_ahead(i, len, |j| tail(&batch[j]));
        let (f, n) = &mut batch[i];
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

fn bench(c: &mut Criterion) {
    pin(1);
    let mut log = BenchLog::open("frame", SyncPolicy::Interval(std::time::Duration::from_millis(200)));
    let d = &mut log.dispatch;
    let (mut e, mut src) = (engine(), Source::new());
    for _ in 0..(PLAYERS as usize / BATCH) {
        run(&mut e, d, &mut src.batch());
    }
    let mut g = c.benchmark_group("frame_path");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("64_frames_warm", |b| b.iter_batched_ref(|| src.batch(), |batch| run(&mut e, d, batch), BatchSize::SmallInput));
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
            |batch| run(&mut e, d, batch),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    log.close();
}

criterion_group!(b, bench);
criterion_main!(b);
