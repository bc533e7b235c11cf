//! Load run: builds an index of synthetic patients one record at a time, then measures
//! the latency of each further incoming record and the memory held.
//!
//! ```text
//! cargo run --release -p mpi --example mpi_load -- [PATIENTS] [PROBES]
//! ```
//!
//! PATIENTS (default 1,000,000) people are generated; 30% of them get a second record
//! from another source (with typos, nicknames, transposed dates, moved addresses). The
//! model is estimated by EM on the first 50,000 records. Then PROBES (default 100,000)
//! incoming records (half of them new people, half variants of indexed ones) are
//! ingested one by one and timed.

use cpu_time::{ProcessTime, ThreadTime};
use mpi::rng::SplitMix64;
use mpi::synthetic::{SyntheticOptions, SyntheticPopulation};
use mpi::{MatchModel, MatcherConfig, Mpi, Outcome, PatientRecord, TrainingOptions};
use std::time::Instant;

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn record(pop: &SyntheticPopulation, n: u64) -> PatientRecord {
    // Every third person also has a record at the lab.
    let person = n / 2;
    if n % 2 == 0 {
        pop.variant(person, "EHR", &format!("E{person}"), 1)
    } else {
        pop.variant(person, "LAB", &format!("L{person}"), 2)
    }
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.replace('_', "").parse().ok())
        .collect();
    let patients = args.first().copied().unwrap_or(1_000_000);
    let probes = args.get(1).copied().unwrap_or(100_000);
    let pop = SyntheticPopulation::new(SyntheticOptions::default());
    let rss_start = rss_kib().unwrap_or(0);

    // The stream: each person's EHR record, and for 30% a lab record too.
    let mut rng = SplitMix64::new(99);
    let stream: Vec<u64> = (0..patients)
        .flat_map(|p| {
            let with_lab = rng.chance(0.3);
            std::iter::once(2 * p).chain(with_lab.then_some(2 * p + 1))
        })
        .collect();

    let sample: Vec<PatientRecord> = stream
        .iter()
        .take(50_000)
        .map(|&n| record(&pop, n))
        .collect();
    let t = Instant::now();
    let (model, report) = MatchModel::estimate(&sample, &TrainingOptions::default());
    println!(
        "model estimated on {} records ({} blocked pairs) in {:.2}s, prior {:.3}",
        report.records,
        report.blocked_pairs,
        t.elapsed().as_secs_f64(),
        report.prior
    );
    drop(sample);

    let config = MatcherConfig {
        keep_history: false,
        ..MatcherConfig::default()
    };
    let mut mpi = Mpi::new(config, model).unwrap();
    let mut ingest_time = 0.0;
    let mut decisions = Vec::with_capacity(stream.len());
    let mut ingest_cpu = 0.0;
    for chunk in stream.chunks(10_000) {
        let records: Vec<PatientRecord> = chunk.iter().map(|&n| record(&pop, n)).collect();
        let t = Instant::now();
        let cpu = ProcessTime::now();
        for r in records {
            let d = mpi.ingest(r).unwrap();
            decisions.push((d.outcome, d.enterprise));
        }
        ingest_time += t.elapsed().as_secs_f64();
        ingest_cpu += cpu.elapsed().as_secs_f64();
    }
    // Truth: a lab record belongs with its person's EHR record, an EHR record is new.
    let (mut linked, mut right_links, mut ehr_linked) = (0u64, 0u64, 0u64);
    let mut ehr_enterprise = std::collections::HashMap::new();
    for (&n, &(outcome, enterprise)) in stream.iter().zip(&decisions) {
        if n % 2 == 0 {
            ehr_enterprise.insert(n / 2, enterprise);
            ehr_linked += u64::from(outcome == Outcome::Link);
        } else if outcome == Outcome::Link {
            linked += 1;
            right_links += u64::from(ehr_enterprise.get(&(n / 2)) == Some(&enterprise));
        }
    }
    let lab_records = stream.iter().filter(|n| *n % 2 == 1).count() as u64;
    println!(
        "indexed {} records of {} patients in {:.1}s: {:.0} records/s ({:.0} per CPU-second)\n  second records linked: {} of {} ({} to the right patient); first records wrongly linked: {}",
        mpi.len(),
        patients,
        ingest_time,
        mpi.len() as f64 / ingest_time,
        mpi.len() as f64 / ingest_cpu,
        linked,
        lab_records,
        right_links,
        ehr_linked
    );
    let stats = mpi.stats();
    let rss = rss_kib().unwrap_or(0);
    println!(
        "memory: RSS {} MiB ({} MiB above start), index estimate {} MiB, {} interned strings, {} enterprise patients",
        rss / 1024,
        rss.saturating_sub(rss_start) / 1024,
        stats.approx_heap_bytes / (1 << 20),
        stats.interned_strings,
        stats.enterprises
    );

    // Probes: half new people, half a third record of an indexed person.
    let mut probe_records = Vec::with_capacity(probes as usize);
    for i in 0..probes {
        if i % 2 == 0 {
            let person = patients + i;
            probe_records.push(pop.variant(person, "RIS", &format!("R{person}"), 3));
        } else {
            let person = rng.below(patients);
            probe_records.push(pop.variant(person, "RIS", &format!("R{person}-{i}"), 3 + i));
        }
    }
    let mut latencies: Vec<f64> = Vec::with_capacity(probes as usize);
    // CPU time of this thread per record: on a shared machine wall time also counts
    // the moments the scheduler gave the core to someone else.
    let mut cpu_latencies: Vec<f64> = Vec::with_capacity(probes as usize);
    let mut compared = 0usize;
    let mut found = 0u64;
    let t_all = Instant::now();
    for (i, r) in probe_records.into_iter().enumerate() {
        let cpu = ThreadTime::now();
        let t = Instant::now();
        let d = mpi.ingest(r).unwrap();
        latencies.push(t.elapsed().as_secs_f64() * 1e6);
        cpu_latencies.push(cpu.elapsed().as_secs_f64() * 1e6);
        if std::env::var_os("MPI_LOAD_DEBUG").is_some() && *latencies.last().unwrap() > 2000.0 {
            eprintln!(
                "slow: {:.0} µs, {} compared, {:?}",
                latencies.last().unwrap(),
                d.compared,
                d.outcome
            );
        }
        compared += d.compared;
        if i % 2 == 1 && d.outcome == Outcome::Link {
            found += 1;
        }
    }
    let total = t_all.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    cpu_latencies.sort_by(f64::total_cmp);
    let pct = |v: &[f64], p: f64| v[((v.len() as f64 - 1.0) * p) as usize];
    let describe = |v: &[f64]| {
        format!(
            "p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs",
            pct(v, 0.5),
            pct(v, 0.9),
            pct(v, 0.99),
            pct(v, 0.999),
            v.last().copied().unwrap_or(0.0)
        )
    };
    println!(
        "{} incoming records against {} indexed:\n  wall {}\n  cpu  {}\n  {:.0} records/s; {:.1} candidates/lookup; {:.1}% of known people linked",
        latencies.len(),
        mpi.len() - latencies.len(),
        describe(&latencies),
        describe(&cpu_latencies),
        latencies.len() as f64 / total,
        compared as f64 / latencies.len() as f64,
        100.0 * found as f64 / (probes / 2) as f64
    );
}
