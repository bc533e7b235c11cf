//! Conversion throughput: a 1.5 KB ORU^R01 to a FHIR transaction Bundle,
//! and that Bundle's JSON back to v2 (`to_v2`), with an ADT^A01 Bundle
//! (NK1, AL1, DG1) back to v2 too: FHIR to v2 throughput.
//!
//! Measured twice: wall time (Criterion's default) and the CPU time of the
//! benchmarking thread (`CLOCK_THREAD_CPUTIME_ID`), because the
//! shared build machine is often busy and wall time then counts the time
//! the thread waited for a core, not the time conversion takes on one.

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use v2_fhir::{Converter, Options};

/// CPU time consumed by the current thread, in nanoseconds.
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call, and
    // CLOCK_THREAD_CPUTIME_ID is a clock every Linux supports; the call only
    // writes into `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }
    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns() - start
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, value: &u64) -> f64 {
        *value as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        for v in values.iter_mut() {
            *v /= 1000.0;
        }
        "µs (cpu)"
    }
    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let per = match throughput {
            Throughput::Elements(n) => *n as f64,
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => *n as f64,
        };
        for v in values.iter_mut() {
            *v = per * 1e9 / *v;
        }
        "elem/s (cpu)"
    }
    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

fn sample() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hl7v2/tests/data/oru_r01_1500.hl7"
    ))
    .expect("the ORU^R01 sample of the hl7v2 crate")
}

fn bench_conversion<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let bytes = sample();
    let converter = Converter::new(Options::default());
    let mut group = c.benchmark_group(group_name);
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
    let json = {
        let message = hl7v2::Message::parse(&bytes).unwrap();
        converter.convert(&message).unwrap().to_json_string()
    };
    let options = v2_fhir::to_v2::ToV2Options {
        timestamp: "20240101000000+0000".into(),
        ..Default::default()
    };
    let mut group = c.benchmark_group(format!("{group_name}_to_v2"));
    group.throughput(Throughput::Elements(1));
    group.bench_function("oru_r01_1500_bundle_to_v2", |b| {
        b.iter(|| v2_fhir::to_v2::to_v2(json.as_bytes(), &options).unwrap())
    });
    // An ADT with next of kin, an allergy and a diagnosis: PID, NK1, PV1, AL1
    // and DG1 back (what the `fhir` source does per registration).
    let adt = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/corpus/public/elixir-hl7/wikipedia_sample_hl7.hl7"
    ))
    .expect("the Wikipedia ADT sample of the public corpus");
    let adt: Vec<u8> = adt
        .split(|&b| b == b'\n' || b == b'\r')
        .filter(|l| !l.is_empty())
        .flat_map(|l| l.iter().copied().chain([b'\r']))
        .collect();
    let adt_json = {
        let message = hl7v2::Message::parse(&adt).unwrap();
        converter.convert(&message).unwrap().to_json_string()
    };
    group.bench_function("adt_a01_bundle_to_v2", |b| {
        b.iter(|| v2_fhir::to_v2::to_v2(adt_json.as_bytes(), &options).unwrap())
    });
    group.finish();
}

fn wall(c: &mut Criterion) {
    bench_conversion(c, "fhir");
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    bench_conversion(c, "fhir_cpu");
}

criterion_group!(wall_time, wall);
criterion_group! {
    name = cpu_time;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_time, cpu_time);
