//! Parsing throughput on a 1.5 KB ORU^R01.
//!
//! `cargo bench -p hl7v2 --bench parse`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hl7v2::{Message, OwnedMessage};
use std::hint::black_box;

const ORU: &[u8] = include_bytes!("../tests/data/oru_r01_1500.hl7");

/// Visits every repetition, component and subcomponent of every field, so
/// that every delimiter in the message is found.
fn walk_everything(message: &Message<'_>) -> usize {
    let mut leaves = 0;
    for segment in message.segments() {
        for field in segment.fields() {
            for repetition in field.children() {
                for component in repetition.children() {
                    for sub in component.children() {
                        leaves += sub.raw().len() + 1;
                    }
                }
            }
        }
    }
    leaves
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("oru_r01_1.5KB");
    group.throughput(Throughput::Bytes(ORU.len() as u64));
    group.bench_function("parse (segments and fields indexed)", |b| {
        b.iter(|| Message::parse(black_box(ORU)).map(|m| m.len()))
    });
    group.bench_function("parse and walk every subcomponent", |b| {
        b.iter(|| Message::parse(black_box(ORU)).map(|m| walk_everything(&m)))
    });
    group.bench_function("parse and get 12 paths", |b| {
        let paths: Vec<hl7v2::Path> = [
            "MSH-9", "MSH-10", "MSH-12", "PID-3", "PID-5", "PID-7", "PID-8", "PV1-2", "OBR-4",
            "OBX-3", "OBX-5", "OBX-6",
        ]
        .iter()
        .map(|p| p.parse().unwrap())
        .collect();
        b.iter(|| {
            let m = Message::parse(black_box(ORU)).unwrap();
            paths
                .iter()
                .filter_map(|p| m.get(p))
                .map(|e| e.text().len())
                .sum::<usize>()
        })
    });
    group.bench_function("owned copy and serialize", |b| {
        let m = Message::parse(ORU).unwrap();
        b.iter(|| OwnedMessage::from(black_box(&m)).to_bytes())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
