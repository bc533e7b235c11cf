//! Profiling throughput: messages of the public corpus through a `Profiler`, with and
//! without the validator. The target (BENCHMARKS.md) is 50,000 messages a second or more
//! on one core. Run: `cargo bench -p profile --bench profile`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

mod corpus;

fn bench(c: &mut Criterion) {
    let messages = corpus::corpus();
    let mut group = c.benchmark_group("profile");
    group.throughput(Throughput::Elements(messages.len() as u64));
    for (name, validate) in [("counts", false), ("counts_and_validation", true)] {
        group.bench_function(name, |b| {
            b.iter(|| corpus::profile_all(&messages, validate))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
