//! Dispatcher-side cost of the move log: records appended and written per
//! second under each sync policy. `cargo bench -p ironhoard-movelog`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ironhoard_movelog::{Accepted, SyncPolicy, Writer, WriterConfig};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("movelog");
    let batch = 1024u64;
    g.throughput(Throughput::Elements(batch));
    for (name, sync) in [
        ("none", SyncPolicy::None),
        ("interval_200ms", SyncPolicy::Interval(std::time::Duration::from_millis(200))),
        ("every_batch", SyncPolicy::EveryBatch),
    ] {
        let dir = std::env::temp_dir().join(format!("ih-movelog-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut w = Writer::open(WriterConfig { dir: dir.clone(), segment_bytes: 256 << 20, sync }).unwrap();
        let a = Accepted { recv_unix_ns: 1, queue: 0, mv: [7; 64] };
        g.bench_function(format!("append_flush_1024_sync_{name}"), |b| {
            b.iter_batched(
                || (),
                |_| {
                    for _ in 0..batch {
                        w.append(&a);
                    }
                    w.flush().unwrap();
                },
                BatchSize::SmallInput,
            )
        });
        drop(w);
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

criterion_group!(b, bench);
criterion_main!(b);
