//! A poller's batch with the move log off and on: 64 moves from warm
//! players, each ACCEPTED (verify, rules, signed ack in place), recorded in
//! the poller's partition (or not), then committed. The difference is what
//! the log costs the poller per batch.
//! `cargo bench -p ironhoard-dataplane --bench batch_log`.

mod common;

use common::{engine, pin, BenchLog, Moves, BATCH, PLAYERS};
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ironhoard_engine::{Dispatch, Engine, NoDispatch, Verdict};
use ironhoard_movelog::SyncPolicy;
use ironhoard_wire::Status;

/// Fresh moves, a batch at a time.
struct Source(Moves);

impl Source {
    fn new() -> Source {
        Source(Moves::new())
    }
    fn batch(&mut self) -> Vec<[u8; 64]> {
        (0..BATCH).map(|_| self.0.next()).collect()
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
        let mut log = BenchLog::open(&format!("batch-{name}"), sync);
        let d = &mut log.dispatch;
        let (mut e, mut src) = (engine(), Source::new());
        warm(&mut e, d, &mut src);
        g.bench_function(format!("64_accepted_log_on_sync_{name}"), |b| {
            b.iter_batched_ref(|| src.batch(), |batch| run(&mut e, d, batch), BatchSize::SmallInput)
        });
        log.close();
    }
    g.finish();
}

criterion_group!(b, bench);
criterion_main!(b);
