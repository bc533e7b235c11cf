//! What validation adds to the processing of a message: preparing its record outside the
//! writer (`Validated::new`), and the statements inside the writer's transaction
//! (`count_findings_in` for every message, `record_failure_in` for one that fails), on a
//! real SQLite store whose writes wait for their fsync; 1000 messages per write, so the
//! fsync is shared as the group commit shares it.
//! Run: `cargo bench -p quarantine --bench record`

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hl7v2_spec::validate::Profile;
use quarantine::{ChannelValidation, Header, Quarantine, Validated};
use store::{MessageId, Store, UnixMicros};

const BATCH: usize = 1000;

fn record(c: &mut Criterion) {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read(
        here.join("../hl7v2-spec/tests/profiles/real/elr/elims_2_40_05059364_34872_MIN.hl7"),
    )
    .unwrap();
    let message = hl7v2::Message::parse(&raw).unwrap();
    let profile =
        Profile::load(here.join("../hl7v2-spec/tests/profiles/real/elr/nist-elr-2.5.1.xml"))
            .unwrap();
    let validation = ChannelValidation {
        profile: Some(Arc::new(profile)),
        ..ChannelValidation::default()
    };
    let findings = validation.validate(&message);
    let validated = Validated::new("lab", Header::of(&message), &findings);
    assert!(validated.has_errors());

    let mut group = c.benchmark_group("quarantine_prepare");
    group.throughput(Throughput::Elements(1));
    group.bench_function("validated_new_elr_findings", |b| {
        b.iter(|| {
            Validated::new(
                "lab",
                Header::of(std::hint::black_box(&message)),
                std::hint::black_box(&findings),
            )
        })
    });
    group.finish();

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(Quarantine::migrate(&store)).unwrap();
    let shared = Arc::new(validated);

    let mut group = c.benchmark_group("quarantine_write");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.bench_function("count_findings_in_x1000", |b| {
        b.iter(|| {
            let v = Arc::clone(&shared);
            store
                .write_blocking(move |conn| {
                    for _ in 0..BATCH {
                        quarantine::count_findings_in(conn, &v, UnixMicros::now())?;
                    }
                    Ok(())
                })
                .unwrap()
        })
    });
    let mut next_id = 1i64;
    group.bench_function("record_failure_in_x1000", |b| {
        b.iter(|| {
            let v = Arc::clone(&shared);
            let first = next_id;
            next_id += BATCH as i64;
            store
                .write_blocking(move |conn| {
                    for i in 0..BATCH as i64 {
                        quarantine::record_failure_in(
                            conn,
                            MessageId(first + i),
                            &v,
                            UnixMicros::now(),
                        )?;
                    }
                    Ok(())
                })
                .unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, record);
criterion_main!(benches);
