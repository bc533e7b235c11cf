//! The map step on an ORU with ten coded OBX-3 fields (local codes mapped
//! to LOINC through the starter map) and their OBX-6 units normalised.
//! Target: at most 5 µs per message.
//!
//! cargo bench -p terminology --bench map_step

use criterion::{Criterion, black_box, criterion_group, criterion_main};

mod workload;

fn bench(c: &mut Criterion) {
    let (step, terminology, original) = workload::workload();
    c.bench_function("map_step_ten_coded_fields", |b| {
        b.iter(|| {
            let mut m = original.clone();
            black_box(step.apply(&terminology, &mut m));
            m
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
