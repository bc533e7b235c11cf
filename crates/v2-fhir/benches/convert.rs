//! Conversion throughput: a 1.5 KB ORU^R01 to a FHIR transaction Bundle.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use v2_fhir::{Converter, Options};

fn convert(c: &mut Criterion) {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hl7v2/tests/data/oru_r01_1500.hl7"
    ))
    .expect("the ORU^R01 sample of the hl7v2 crate");
    let converter = Converter::new(Options::default());
    let mut group = c.benchmark_group("fhir");
    group.throughput(Throughput::Elements(1));
    group.bench_function("oru_r01_1500_to_bundle", |b| {
        b.iter(|| {
            let message = hl7v2::Message::parse(&bytes).unwrap();
            converter.convert(&message).unwrap()
        })
    });
    group.bench_function("oru_r01_1500_to_json", |b| {
        b.iter(|| {
            let message = hl7v2::Message::parse(&bytes).unwrap();
            converter.convert(&message).unwrap().to_json_string()
        })
    });
    group.finish();
}

criterion_group!(benches, convert);
criterion_main!(benches);
