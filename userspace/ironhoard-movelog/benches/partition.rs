//! A poller's cost of the move log: 64 records appended to its partition
//! and committed (what one RX batch of accepted moves costs), under each
//! sync policy, with the keeper thread preparing segments behind it; and
//! one record's encoding (its CRC) alone.
//! `cargo bench -p ironhoard-movelog --bench partition`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ironhoard_movelog::{encode_record, open_log, Accepted, LogConfig, SyncPolicy, RECORD_LEN};

const BATCH: u64 = 64;

/// Pins the calling thread to one core (best effort).
fn pin(core: usize) {
    // SAFETY: cpu_set_t is plain data; CPU_SET stays in bounds (core < 2 here);
    // sched_setaffinity reads the set for this thread.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn bench(c: &mut Criterion) {
    pin(1);
    let mut g = c.benchmark_group("partition");
    g.throughput(Throughput::Elements(BATCH));
    for (name, sync) in [
        ("none", SyncPolicy::None),
        ("interval_200ms", SyncPolicy::Interval(std::time::Duration::from_millis(200))),
        ("batch", SyncPolicy::EveryBatch),
    ] {
        let dir = std::env::temp_dir().join(format!("ih-partition-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cfg = LogConfig { dir: dir.clone(), segment_bytes: 64 << 20, sync };
        let (mut parts, keeper, shared, _) = open_log(&cfg, &[0], &mut |_| {}).unwrap();
        // as in the appliance: the keeper on a core of its own (0), the
        // measured poller on core 1
        let k = std::thread::spawn(move || {
            pin(0);
            keeper.run()
        });
        let mut p = parts.pop().unwrap();
        let mut a = Accepted { recv_unix_ns: 1, queue: 0, mv: [7; 64] };
        g.bench_function(format!("append_commit_64_sync_{name}"), |b| {
            b.iter(|| {
                for _ in 0..BATCH {
                    a.recv_unix_ns += 1;
                    while !p.append(&a) {
                        std::hint::spin_loop(); // keeper behind: not expected with 64 MiB segments
                    }
                }
                p.commit();
            })
        });
        eprintln!("{name}: refused (no segment ready) {}", shared.partitions[0].refused.load(std::sync::atomic::Ordering::Relaxed));
        drop(p);
        shared.request_stop();
        k.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
    let mut g = c.benchmark_group("record");
    g.throughput(Throughput::Elements(1));
    let mut a = Accepted { recv_unix_ns: 1, queue: 0, mv: [7; 64] };
    let mut out = [0u8; RECORD_LEN];
    g.bench_function("encode", |b| {
        b.iter(|| {
            a.recv_unix_ns += 1;
            encode_record(std::hint::black_box(a.recv_unix_ns), &a, &mut out);
            std::hint::black_box(&out);
        })
    });
    g.finish();
}

criterion_group!(b, bench);
criterion_main!(b);
