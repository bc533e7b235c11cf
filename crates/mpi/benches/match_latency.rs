//! Match latency against a large index of synthetic patients.
//!
//! ```text
//! cargo bench -p mpi --bench match_latency            # 100,000 patients
//! MPI_BENCH_PATIENTS=1000000 cargo bench -p mpi --bench match_latency
//! ```
//!
//! Tail latency (p99) and ingest throughput at 1,000,000 come from the load run:
//! `cargo run --release -p mpi --example mpi_load`.

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mpi::rng::SplitMix64;
use mpi::synthetic::{SyntheticOptions, SyntheticPopulation};
use mpi::{MatchModel, MatcherConfig, Mpi, PatientRecord, TrainingOptions};
use std::cell::Cell;

fn build_index(pop: &SyntheticPopulation, patients: u64) -> Mpi {
    let sample: Vec<PatientRecord> = (0..patients.min(50_000))
        .map(|p| pop.variant(p, "EHR", &format!("E{p}"), 1))
        .collect();
    let (model, _) = MatchModel::estimate(&sample, &TrainingOptions::default());
    let config = MatcherConfig {
        keep_history: false,
        ..MatcherConfig::default()
    };
    let mut mpi = Mpi::new(config, model).unwrap();
    for p in 0..patients {
        mpi.ingest(pop.variant(p, "EHR", &format!("E{p}"), 1))
            .unwrap();
        if p % 3 == 0 {
            mpi.ingest(pop.variant(p, "LAB", &format!("L{p}"), 2))
                .unwrap();
        }
    }
    mpi
}

fn bench(c: &mut Criterion) {
    let patients: u64 = std::env::var("MPI_BENCH_PATIENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000);
    let pop = SyntheticPopulation::new(SyntheticOptions::default());
    let mut mpi = build_index(&pop, patients);
    let mut group = c.benchmark_group(format!("mpi_{patients}_patients"));

    let mut rng = SplitMix64::new(5);
    let known: Vec<PatientRecord> = (0..4096)
        .map(|i| {
            let p = rng.below(patients);
            pop.variant(p, "RIS", &format!("Q{p}"), 100 + i)
        })
        .collect();
    let next = Cell::new(0usize);
    group.bench_function("find_matches_known_patient", |b| {
        b.iter(|| {
            let i = next.get();
            next.set(i + 1);
            mpi.find_matches(&known[i % known.len()])
        })
    });

    let serial = Cell::new(patients);
    group.bench_function("ingest_new_patient", |b| {
        b.iter_batched(
            || {
                let p = serial.get();
                serial.set(p + 1);
                pop.variant(p, "RIS", &format!("R{p}"), 7)
            },
            |record| mpi.ingest(record).unwrap(),
            BatchSize::SmallInput,
        )
    });

    let visit = Cell::new(0u64);
    group.bench_function("ingest_known_patient_from_new_source", |b| {
        b.iter_batched(
            || {
                let v = visit.get();
                visit.set(v + 1);
                let p = v.wrapping_mul(2_654_435_761) % patients;
                pop.variant(p, "PHARM", &format!("P{v}"), 1000 + v)
            },
            |record| mpi.ingest(record).unwrap(),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
