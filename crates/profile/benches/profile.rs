//! Profiling throughput: messages of the public corpus through a `Profiler`, with and
//! without the validator. The target (BENCHMARKS.md) is 50,000 messages a second or more
//! on one core. Run: `cargo bench -p profile --bench profile`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn corpus() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    let mut messages = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "hl7")
                && let Ok(bytes) = std::fs::read(&path)
            {
                for item in hl7v2::split_stream(&bytes) {
                    if let hl7v2::StreamItem::Message { bytes, .. } = item {
                        messages.push(bytes.to_vec());
                    }
                }
            }
        }
    }
    messages
}

fn bench(c: &mut Criterion) {
    let messages = corpus();
    let mut group = c.benchmark_group("profile");
    group.throughput(Throughput::Elements(messages.len() as u64));
    for (name, validate) in [("counts", false), ("counts_and_validation", true)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut p = profile::Profiler::new(
                    profile::Options {
                        validate,
                        ..profile::Options::default()
                    },
                    None,
                );
                for m in &messages {
                    p.add(m);
                }
                p.messages()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
