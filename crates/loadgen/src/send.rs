//! Sending a plan over connections, closed or open loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mllp::{FrameReader, MllpClient, MllpConnector, MllpError};
use tokio::sync::mpsc;

use crate::plan::Plan;
use crate::tally::{Lines, Tally, judge};

/// Why a run could not go on at all (a refused message is counted, not an error).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A connection could not be opened before sending began.
    #[error(transparent)]
    Connect(#[from] MllpError),
    /// A connection's task panicked or was cancelled.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// A runtime sized for `connections`: one thread for one connection (the ping-pong
/// measure), else a worker per connection up to the machine's cores.
pub fn runtime(connections: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if connections <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores.min(connections))
            .enable_all()
            .build()
    }
}

/// Everything the connection tasks share.
pub struct Job {
    pub plan: Plan,
    pub connector: MllpConnector,
    /// The listener, `HOST:PORT`.
    pub to: String,
    /// Message i goes to connection i mod `connections`; each keeps its own order.
    pub connections: usize,
    /// Messages per second in total, open loop; `None` for closed loop.
    pub rate: Option<f64>,
    /// How long to wait for each ACK, and for a write in open loop.
    pub timeout: Duration,
    /// Print one line per ACK on standard output (`AA <control id>`, `NOACK ...`).
    pub print_each: bool,
}

/// What a run did: every message's outcome and the ACK latencies.
pub struct Report {
    pub(crate) tally: Tally,
    pub(crate) elapsed: Duration,
}

/// Connects every connection, then sends the plan over them and waits for the last
/// ACK (or its timeout).
pub async fn send_all(job: Arc<Job>) -> Result<Report, Error> {
    // Connect everything first so the clock measures sending, not handshakes.
    let mut clients = Vec::with_capacity(job.connections);
    for _ in 0..job.connections {
        clients.push(job.connector.connect(&job.to).await?);
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(job.connections);
    for (connection, client) in clients.into_iter().enumerate() {
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            match job.rate {
                None => closed_loop(connection, client, &job).await,
                Some(rate) => open_loop(connection, client, job.clone(), start, rate).await,
            }
        }));
    }
    let mut tally = Tally::new();
    for task in tasks {
        tally.merge(task.await?);
    }
    Ok(Report {
        tally,
        elapsed: start.elapsed(),
    })
}

/// One message at a time per connection: send, wait for its ACK, send the next.
async fn closed_loop(connection: usize, client: MllpClient, job: &Job) -> Tally {
    let mut client = client;
    let mut tally = Tally::new();
    let mut lines = Lines::new(job.print_each);
    let mut payload = Vec::new();
    let mut control_id = String::new();
    let mut indices = job.plan.indices(connection, job.connections);
    while let Some(index) = indices.next() {
        job.plan.fill(index, &mut payload, &mut control_id);
        let started = Instant::now();
        match client.send(&payload).await {
            Ok(ack) => {
                let verdict = judge(&ack, &control_id);
                tally.record(&verdict, started.elapsed(), &control_id, &mut lines);
            }
            Err(error) => {
                tally.record_failure(&error, job.timeout, &control_id, &mut lines);
                // A late answer would be read as the next message's ACK:
                // only a fresh connection can be trusted.
                match job.connector.connect(&job.to).await {
                    Ok(fresh) => client = fresh,
                    Err(error) => {
                        tally.abandon(indices.count() as u64, error.to_string());
                        lines.flush();
                        return tally;
                    }
                }
            }
        }
    }
    lines.flush();
    let _ = client.close().await;
    tally
}

/// A message written but not yet acknowledged, in the order written.
struct InFlight {
    scheduled: Instant,
    written: Instant,
    control_id: String,
}

/// A writer on schedule and a reader collecting ACKs, per connection.
async fn open_loop(
    connection: usize,
    client: MllpClient,
    job: Arc<Job>,
    start: Instant,
    rate: f64,
) -> Tally {
    let (mut writer, reader) = client.into_split();
    let (in_flight, waiting) = mpsc::unbounded_channel::<InFlight>();
    let broken = Arc::new(AtomicBool::new(false));
    let acks = tokio::spawn(collect_acks(reader, waiting, job.clone(), broken.clone()));

    // Connections take turns: together they send every 1/rate seconds.
    let interval = job.connections as f64 / rate;
    let offset = connection as f64 / rate;
    let mut payload = Vec::new();
    let mut control_id = String::new();
    let mut not_sent = 0;
    let mut stop_reason = None;
    let mut indices = job.plan.indices(connection, job.connections);
    let mut k = 0u64;
    while let Some(index) = indices.next() {
        if broken.load(Ordering::Relaxed) {
            not_sent = 1 + indices.count() as u64;
            break;
        }
        let scheduled = start + Duration::from_secs_f64(offset + k as f64 * interval);
        k += 1;
        if scheduled > Instant::now() {
            tokio::time::sleep_until(scheduled.into()).await;
        }
        job.plan.fill(index, &mut payload, &mut control_id);
        let written = Instant::now();
        let entry = InFlight {
            scheduled,
            written,
            control_id: control_id.clone(),
        };
        if in_flight.send(entry).is_err() {
            not_sent = 1 + indices.count() as u64;
            break;
        }
        match tokio::time::timeout(job.timeout, writer.send_frame(&payload)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                stop_reason = Some(error.to_string());
                not_sent = indices.count() as u64;
                break;
            }
            Err(_) => {
                stop_reason = Some(format!("could not write within {:?}", job.timeout));
                not_sent = indices.count() as u64;
                break;
            }
        }
    }
    drop(in_flight);
    let mut tally = match acks.await {
        Ok(tally) => tally,
        Err(error) => {
            let mut tally = Tally::new();
            tally.abandon(0, format!("ACK reader failed: {error}"));
            tally
        }
    };
    if not_sent > 0 || stop_reason.is_some() {
        let reason = stop_reason.unwrap_or_else(|| "connection broken".to_owned());
        tally.abandon(not_sent, reason);
    }
    let _ = writer.close().await;
    tally
}

async fn collect_acks(
    mut reader: FrameReader,
    mut waiting: mpsc::UnboundedReceiver<InFlight>,
    job: Arc<Job>,
    broken: Arc<AtomicBool>,
) -> Tally {
    let mut tally = Tally::new();
    let mut lines = Lines::new(job.print_each);
    let mut failed = false;
    while let Some(entry) = waiting.recv().await {
        if failed {
            tally.no_ack += 1;
            lines.line(format_args!("NOACK {}", entry.control_id));
            continue;
        }
        let deadline = entry.written + job.timeout;
        let error = match tokio::time::timeout_at(deadline.into(), reader.next_frame()).await {
            Ok(Ok(Some(ack))) => {
                let verdict = judge(&ack, &entry.control_id);
                tally.record(
                    &verdict,
                    entry.scheduled.elapsed(),
                    &entry.control_id,
                    &mut lines,
                );
                continue;
            }
            Ok(Ok(None)) => MllpError::ConnectionClosed,
            Ok(Err(error)) => error,
            Err(_) => MllpError::Timeout(job.timeout),
        };
        tally.record_failure(&error, job.timeout, &entry.control_id, &mut lines);
        failed = true;
        broken.store(true, Ordering::Relaxed);
    }
    lines.flush();
    tally
}
