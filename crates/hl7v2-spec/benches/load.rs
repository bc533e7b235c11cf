//! How long the first use of a version costs: parsing its embedded definitions.
//! Run: `cargo bench -p hl7v2-spec --bench load`

use criterion::{Criterion, criterion_group, criterion_main};
use hl7v2_spec::{KNOWN_VERSIONS, VersionSpec};

fn load_each_version(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group.sample_size(20);
    for v in KNOWN_VERSIONS {
        group.bench_function(v, |b| {
            b.iter(|| {
                VersionSpec::load_uncached(std::hint::black_box(v))
                    .unwrap()
                    .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, load_each_version);
criterion_main!(benches);
