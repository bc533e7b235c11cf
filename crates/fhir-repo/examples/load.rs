//! Loads synthetic ORU^R01 results into a repository and measures apply throughput and
//! search latency:
//!
//! ```text
//! cargo run --release -p fhir-repo --example load -- [MESSAGES] [DIR]
//! ```
//!
//! Each message (one patient of 2,000, an order with three results) converts to about
//! ten resources; 10,000 messages give about 100,000 resources. Bundles are converted
//! first (conversion has its own benchmark in v2-fhir); the clock runs over the
//! applies only, 64 writes in flight so the store's group commit batches them as the
//! engine's pipeline does. Then each search runs 200 times on a read connection.

use std::time::{Duration, Instant};

use store::{MessageId, Store, UnixMicros};
use v2_fhir::{Converter, Options};

fn message(n: usize) -> String {
    let patient = n % 2000;
    let day = 1 + n % 28;
    format!(
        "MSH|^~\\&|LAB|GHH|EHR|GHH|202401{day:02}120000+0100||ORU^R01^ORU_R01|M{n}|P|2.5.1\r\
         PID|1||P{patient}^^^GHH^MR||FAMILY{patient}^GIVEN{}||19{:02}0101|F\r\
         PV1|1|O|||||||||||||||||V{n}^^^GHH^VN\r\
         OBR|1|PL{n}^EHR|FI{n}^LAB|24331-1^Lipid panel^LN|||202401{day:02}110000+0100\r\
         OBX|1|NM|2093-3^Cholesterol^LN||{}|mg/dL^^UCUM|<200||||F|||202401{day:02}110000+0100\r\
         OBX|2|NM|2571-8^Triglyceride^LN||{}|mg/dL^^UCUM|<150||||F|||202401{day:02}110000+0100\r\
         OBX|3|NM|718-7^Hemoglobin^LN||{}.{}|g/dL^^UCUM|12-16||||F|||202401{day:02}110000+0100\r",
        patient % 7,
        patient % 90 + 10,
        150 + n % 90,
        100 + n % 80,
        11 + n % 5,
        n % 10
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let messages: usize = args
        .get(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10_000);
    let temp = tempfile::tempdir()?;
    let dir = args
        .get(2)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| temp.path().to_owned());
    let store = Store::open(&dir)?;
    fhir_repo::migrate_blocking(&store)?;
    let converter = Converter::new(Options::default());
    let bundles: Vec<v2_fhir::Bundle> = (0..messages)
        .map(|n| {
            let text = message(n);
            let parsed = hl7v2::Message::parse(text.as_bytes()).expect("synthetic message parses");
            converter
                .convert(&parsed)
                .expect("synthetic message converts")
        })
        .collect();
    let resources: usize = bundles.iter().map(|b| b.entries().len()).sum();

    let started = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    for (n, bundle) in bundles.into_iter().enumerate() {
        let id = MessageId(n as i64 + 1);
        let at = UnixMicros(1_767_268_800_000_000 + n as i64);
        pending.push_back(store.write(move |conn| {
            fhir_repo::apply_bundle_in(conn, &bundle, id, at).map(|a| a.entries.len())
        }));
        if pending.len() >= 64 {
            pending.pop_front().expect("non-empty").wait()?;
        }
    }
    while let Some(write) = pending.pop_front() {
        write.wait()?;
    }
    let elapsed = started.elapsed();
    let stored: i64 = store
        .read(|c| Ok(c.query_row("SELECT COUNT(*) FROM fhir_resources", [], |r| r.get(0))?))?;
    let stats = store.writer_stats();
    println!(
        "applied {messages} bundles ({resources} resource entries, {stored} distinct resources) in {:.2?}: {:.0} bundles/s, {:.0} resources/s; {} commits",
        elapsed,
        messages as f64 / elapsed.as_secs_f64(),
        resources as f64 / elapsed.as_secs_f64(),
        stats.commits,
    );

    let patient = converter
        .convert(&hl7v2::Message::parse(message(1234).as_bytes())?)?
        .patient_id()
        .unwrap_or_default()
        .to_owned();
    type Search = (&'static str, String, Vec<(String, String)>);
    let searches: Vec<Search> = vec![
        (
            "Patient?identifier=system|value",
            "Patient".into(),
            vec![("identifier".into(), "urn:corridor:id/GHH|P1234".into())],
        ),
        (
            "Patient?family=family12",
            "Patient".into(),
            vec![("family".into(), "family12".into())],
        ),
        (
            "Patient?birthdate=ge1990-01-01",
            "Patient".into(),
            vec![("birthdate".into(), "ge1990-01-01".into())],
        ),
        (
            "Observation?patient=ID",
            "Observation".into(),
            vec![("patient".into(), patient.clone())],
        ),
        (
            "Observation?patient=ID&code=loinc|718-7",
            "Observation".into(),
            vec![
                ("patient".into(), patient.clone()),
                ("code".into(), "http://loinc.org|718-7".into()),
            ],
        ),
        (
            "Observation?code=loinc|718-7&date=2024-01-05",
            "Observation".into(),
            vec![
                ("code".into(), "http://loinc.org|718-7".into()),
                ("date".into(), "2024-01-05".into()),
            ],
        ),
    ];
    for (label, ty, query) in &searches {
        let mut times = Vec::new();
        let mut total = 0;
        for _ in 0..200 {
            let t = Instant::now();
            let page = store.read(|c| {
                let search = fhir_repo::query::Search::new(query.clone(), 50);
                fhir_repo::query::search_in(c, ty, &search)
                    .map_err(|e| store::Error::Refused(e.to_string()))
            })?;
            times.push(t.elapsed());
            total = page.total.unwrap_or_default();
        }
        times.sort();
        println!(
            "search {label}: {total} matches, p50 {:.2?}, p99 {:.2?}",
            percentile(&times, 0.5),
            percentile(&times, 0.99)
        );
    }
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..200 {
        let t = Instant::now();
        count = store
            .read(|c| fhir_repo::query::everything_in(c, &patient))?
            .map_or(0, |r| r.len());
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "Patient/ID/$everything: {count} resources, p50 {:.2?}, p99 {:.2?}",
        percentile(&times, 0.5),
        percentile(&times, 0.99)
    );
    Ok(())
}
