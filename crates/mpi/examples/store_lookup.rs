//! Restart and look-up run on an index in a data directory (e.g. one filled by
//! `corridor mpi load` with the `synthetic_csv` files): rebuilds the index from the
//! store as the engine does at start, timing it, then times PROBES incoming records
//! (half new people, half a further record of an indexed person) through the matcher.
//! The probes' events are not written: the data directory is left as it was.
//!
//! ```text
//! cargo run --release -p mpi --example store_lookup -- DATA_DIR PEOPLE [PROBES]
//! ```
//!
//! PEOPLE is the number of people `synthetic_csv` generated (so new people can be
//! told from known ones).

use cpu_time::{ProcessTime, ThreadTime};
use mpi::rng::SplitMix64;
use mpi::synthetic::{SyntheticOptions, SyntheticPopulation};
use mpi::{MpiConfig, MpiService};
use std::time::Instant;

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = std::path::PathBuf::from(args.first().expect("DATA_DIR"));
    let people: u64 = args
        .get(1)
        .and_then(|a| a.replace('_', "").parse().ok())
        .expect("PEOPLE");
    let probes: u64 = args
        .get(2)
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(100_000);

    let store = store::Store::open(&dir).expect("data directory");
    let t = Instant::now();
    let cpu = ProcessTime::now();
    let config = MpiConfig {
        enabled: true,
        ..MpiConfig::default()
    };
    let service = MpiService::open_blocking(store, config).expect("index rebuilt");
    let records = service.read(|m| m.len());
    println!(
        "restart: {records} source records rebuilt from the store in {:.1}s wall, {:.1}s CPU; RSS {} MiB",
        t.elapsed().as_secs_f64(),
        cpu.elapsed().as_secs_f64(),
        rss_kib().unwrap_or(0) / 1024
    );

    let pop = SyntheticPopulation::new(SyntheticOptions::default());
    let mut rng = SplitMix64::new(4242);
    let probe_records: Vec<_> = (0..probes)
        .map(|i| {
            if i % 2 == 0 {
                let person = people + i;
                pop.variant(person, "RIS", &format!("R{person}"), 3)
            } else {
                let person = rng.below(people);
                pop.variant(person, "RIS", &format!("R{person}-{i}"), 3 + i)
            }
        })
        .collect();
    let mut wall = Vec::with_capacity(probes as usize);
    let mut cpu = Vec::with_capacity(probes as usize);
    let mut linked = 0u64;
    for r in probe_records {
        let t = Instant::now();
        let c = ThreadTime::now();
        let (d, _events) = service.with_index(|m| m.ingest(r));
        cpu.push(c.elapsed().as_secs_f64());
        wall.push(t.elapsed().as_secs_f64());
        linked += u64::from(d.expect("ingest").outcome == mpi::Outcome::Link);
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    for (name, v) in [("CPU", &cpu), ("wall", &wall)] {
        println!(
            "look-up + ingest per record ({name}): p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs",
            percentile(v, 0.5) * 1e6,
            percentile(v, 0.9) * 1e6,
            percentile(v, 0.99) * 1e6,
            percentile(v, 0.999) * 1e6
        );
    }
    println!("{linked} of {probes} probes linked (about half are known people)");
}
