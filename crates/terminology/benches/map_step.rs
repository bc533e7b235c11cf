//! The map step on an ORU with ten coded OBX-3 fields (local codes mapped
//! to LOINC through the starter map) and their OBX-6 units normalised.
//! Target: at most 5 µs per message.
//!
//! It times `MapStep::apply_without_changes`, what the engine's map stage
//! runs, on a message already parsed (as the stage gets it): each input is a
//! clone of the parsed message made, and dropped, outside the timing.
//!
//! cargo bench -p terminology --bench map_step

use criterion::{BatchSize, Criterion, black_box, criterion_group, criterion_main};

mod workload;

fn bench(c: &mut Criterion) {
    let (step, terminology, original) = workload::workload();
    c.bench_function("map_step_ten_coded_fields", |b| {
        b.iter_batched_ref(
            || original.clone(),
            |m| black_box(step.apply_without_changes(&terminology, m)),
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
