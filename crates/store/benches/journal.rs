//! Durable appends to the journal: throughput from 8 concurrent senders (group commit) and
//! the commit latency a single sender sees.
//!
//! Run: `cargo bench -p store --bench journal`
//!
//! Each append stores a 1.5 KB message with duplicate detection on, and returns only after
//! the fsync'd commit, exactly as the MLLP source uses it before sending its ACK. The
//! numbers are bound by the disk's fsync time: to see the CPU cost alone, put the database
//! on tmpfs (where fsync is free) with `STORE_BENCH_DIR=/dev/shm`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use store::{Journal, MessageState, NewMessage, Store, UnixMicros};

const MESSAGE_BYTES: usize = 1536;
const WINDOW: Option<Duration> = Some(Duration::from_secs(3600));

struct Sender {
    channel: Arc<str>,
    peer: Arc<str>,
    raw: Bytes,
}

impl Sender {
    fn new(sender: usize) -> Sender {
        let mut raw = String::from(
            "MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01^ORU_R01|000000|P|2.5.1\r\
             PID|1||123456^^^NORTH^MR||DOE^JANE||19700101|F\r",
        );
        while raw.len() < MESSAGE_BYTES - 1 {
            raw.push_str("OBX|1|NM|2345-7^Glucose^LN||105|mg/dL|70-99|H|||F\r");
        }
        raw.truncate(MESSAGE_BYTES - 1);
        raw.push('\r');
        Sender {
            channel: Arc::from("lab"),
            peer: Arc::from(format!("10.0.0.{sender}:5000").as_str()),
            raw: Bytes::from(raw),
        }
    }

    fn message(&self, control_id: String) -> NewMessage {
        NewMessage {
            channel: self.channel.clone(),
            raw: self.raw.clone(),
            received_at: UnixMicros::now(),
            peer: self.peer.clone(),
            tls_identity: None,
            sending_application: "LAB".into(),
            sending_facility: "NORTH".into(),
            message_type: "ORU^R01^ORU_R01".into(),
            control_id,
            version: "2.5.1".into(),
            state: MessageState::Received,
            state_reason: None,
        }
    }
}

fn data_dir() -> tempfile::TempDir {
    match std::env::var_os("STORE_BENCH_DIR") {
        Some(parent) => tempfile::tempdir_in(parent).unwrap(),
        None => tempfile::tempdir().unwrap(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn eight_concurrent_senders(c: &mut Criterion) {
    let dir = data_dir();
    let journal = Store::open(dir.path()).unwrap().journal();
    let runtime = runtime();
    let mut round = 0u64;
    let mut group = c.benchmark_group("journal_append");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("8_concurrent_senders_1.5KB", |b| {
        b.iter_custom(|iters| {
            round += 1;
            let journal = journal.clone();
            runtime.block_on(send_from(journal, 8, iters, round))
        })
    });
    group.finish();
    report_files(dir.path(), &journal);
}

/// The WAL must stay bounded under sustained load: the checkpoints keep up.
fn report_files(dir: &std::path::Path, journal: &Journal) {
    let size = |name: &str| {
        std::fs::metadata(dir.join(name))
            .map(|m| m.len() / 1024)
            .unwrap_or(0)
    };
    let stats = journal.store().writer_stats();
    println!(
        "after the run: {} commits for {} appends ({:.1} per commit); corridor.db {} KiB, WAL {} KiB",
        stats.commits,
        stats.requests,
        stats.requests as f64 / stats.commits.max(1) as f64,
        size(Store::DATABASE_FILE),
        size("corridor.db-wal"),
    );
}

/// `senders` tasks append `total` messages between them, each awaiting its own commit.
async fn send_from(journal: Journal, senders: usize, total: u64, round: u64) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..senders)
        .map(|sender| {
            let journal = journal.clone();
            let share =
                total / senders as u64 + u64::from((sender as u64) < total % senders as u64);
            tokio::spawn(async move {
                let source = Sender::new(sender);
                for n in 0..share {
                    let message = source.message(format!("{round}-{sender}-{n}"));
                    journal.append(message, WINDOW).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

fn single_sender_latency(c: &mut Criterion) {
    let dir = data_dir();
    let journal = Store::open(dir.path()).unwrap().journal();
    let runtime = runtime();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let mut round = 0u64;
    let mut group = c.benchmark_group("journal_append");
    group.throughput(Throughput::Elements(1));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("single_sender_1.5KB", |b| {
        b.iter_custom(|iters| {
            round += 1;
            let journal = journal.clone();
            let latencies = Arc::clone(&latencies);
            runtime.block_on(async move {
                let source = Sender::new(0);
                let mut seen = Vec::with_capacity(iters as usize);
                let started = Instant::now();
                for n in 0..iters {
                    let message = source.message(format!("single-{round}-{n}"));
                    let sent = Instant::now();
                    journal.append(message, WINDOW).await.unwrap();
                    seen.push(sent.elapsed());
                }
                let elapsed = started.elapsed();
                latencies.lock().unwrap().extend(seen);
                elapsed
            })
        })
    });
    group.finish();

    report_files(dir.path(), &journal);
    let mut latencies = latencies.lock().unwrap();
    latencies.sort_unstable();
    if !latencies.is_empty() {
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "single sender commit latency over {} appends: p50 {:?}  p99 {:?}  p99.9 {:?}  max {:?}",
            latencies.len(),
            at(0.50),
            at(0.99),
            at(0.999),
            latencies[latencies.len() - 1]
        );
    }
}

criterion_group!(benches, eight_concurrent_senders, single_sender_latency);
criterion_main!(benches);
