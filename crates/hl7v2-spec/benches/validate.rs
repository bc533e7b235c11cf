//! Validation throughput for a 1.5 KB ORU^R01 (NIST ELR sample, 7 segments)
//! and a 21-segment ORU^R01 with two orders: structure alone, and full
//! validation of every field.
//! With conformance profiles: loading the 1 MB NIST ELR profile, and the
//! same message validated against it (base checks plus the profile's
//! structure and usage rules).
//! Run: `cargo bench -p hl7v2-spec --bench validate`
//!
//! The input is the list of segment ids (splitting the message is the
//! parser's job); the measured work is resolving MSH-9 to the structure and
//! matching the segments against it.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hl7v2_spec::Spec;
use hl7v2_spec::validate::{
    Profile, SplitMessage, ValidationOptions, validate_message, validate_segments,
};

fn segment_ids(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split(['\r', '\n'])
        .filter(|l| !l.is_empty())
        .map(|l| l[..3].to_string())
        .collect()
}

fn structural_validation(c: &mut Criterion) {
    let spec = Spec::version("2.5.1").unwrap();
    let nist = segment_ids(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/corpus/public/nist-elr-via-node-hl7-complete/ORU_R01_2.5.1_SampleTestCase1.hl7"
    ));
    let long: Vec<&str> =
        "MSH SFT PID PD1 NTE PV1 ORC OBR NTE TQ1 OBX NTE OBX OBX SPM OBX ORC OBR OBX OBX OBX"
            .split(' ')
            .collect();
    // Compile the structures outside the measurement.
    assert_eq!(
        validate_segments(spec, "ORU", "R01", Some("ORU_R01"), &nist),
        []
    );
    assert_eq!(validate_segments(spec, "ORU", "R01", None, &long[..]), []);

    let mut group = c.benchmark_group("validate_structure");
    group.throughput(Throughput::Elements(1));
    group.bench_function("oru_r01_nist_1.5kb", |b| {
        b.iter(|| {
            validate_segments(
                spec,
                "ORU",
                "R01",
                Some("ORU_R01"),
                std::hint::black_box(&nist),
            )
        })
    });
    group.bench_function("oru_r01_21_segments", |b| {
        b.iter(|| validate_segments(spec, "ORU", "R01", None, std::hint::black_box(&long[..])))
    });
    group.finish();

    // Everything: split the text into fields, resolve the structure, check
    // segment order and every field (formats, tables, lengths).
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/corpus/public/nist-elr-via-node-hl7-complete/ORU_R01_2.5.1_SampleTestCase1.hl7"
    ))
    .unwrap();
    let options = ValidationOptions::default();
    let mut group = c.benchmark_group("validate_message");
    group.throughput(Throughput::Elements(1));
    group.bench_function("oru_r01_nist_1.5kb_split_and_all_fields", |b| {
        b.iter(|| {
            let message = SplitMessage::parse(std::hint::black_box(&text)).unwrap();
            validate_message(spec, &message, &options)
        })
    });
    group.finish();
}

fn profile_validation(c: &mut Criterion) {
    let spec = Spec::version("2.5.1").unwrap();
    let xml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/profiles/real/elr/nist-elr-2.5.1.xml"
    ))
    .unwrap();
    let mut group = c.benchmark_group("conformance_profile");
    group.sample_size(10);
    group.bench_function("load_nist_elr_1mb", |b| {
        b.iter(|| Profile::from_conformance_xml(std::hint::black_box(&xml)).unwrap())
    });
    group.finish();

    let profile = Profile::from_conformance_xml(&xml).unwrap();
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/corpus/public/nist-elr-via-node-hl7-complete/ORU_R01_2.5.1_SampleTestCase1.hl7"
    ))
    .unwrap();
    let options = ValidationOptions::default();
    let mut group = c.benchmark_group("validate_message");
    group.throughput(Throughput::Elements(1));
    group.bench_function("oru_r01_nist_1.5kb_with_elr_profile", |b| {
        b.iter(|| {
            let message = SplitMessage::parse(std::hint::black_box(&text)).unwrap();
            profile.validate(spec, &message, &options)
        })
    });
    group.finish();
}

criterion_group!(benches, structural_validation, profile_validation);
criterion_main!(benches);
