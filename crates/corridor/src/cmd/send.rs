//! `corridor send`: delivers the messages of files to an MLLP listener and
//! checks every acknowledgement. With `--count`, `--connections`, `--rate`
//! and `--stats` it is also the load generator the benchmarks use, so the
//! sending path is kept lean: messages are laid out once, each send only
//! copies bytes into a reused buffer, and ACKs are judged without allocating
//! more than the line that reports them.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use hl7v2::{AckCode, Message, OwnedMessage};
use mllp::{FrameReader, MllpClient, MllpConnector, MllpError, TlsClientConfig};
use tokio::sync::mpsc;

use crate::input::{Input, Piece, message_error, stray_error};

#[derive(clap::Args)]
pub struct Args {
    /// The MLLP listener to send to.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:2575")]
    to: String,
    /// Send over TLS, trusting the CA certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<std::path::PathBuf>,
    /// Client certificate chain (PEM) for mutual TLS; needs --tls-key and --tls-ca.
    #[arg(long, value_name = "FILE", requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<std::path::PathBuf>,
    /// Private key (PEM) of the client certificate; needs --tls-cert.
    #[arg(long, value_name = "FILE", requires_all = ["tls_cert", "tls_ca"])]
    tls_key: Option<std::path::PathBuf>,
    /// Name the server certificate must carry (default: the host of --to).
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    tls_server_name: Option<String>,
    /// Spread the messages over this many connections (message i goes to
    /// connection i mod N; each connection keeps its own order).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    connections: u16,
    /// Send N messages in total, repeating the files' messages, each with a
    /// unique MSH-10.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Send open-loop at this many messages per second in total, without
    /// waiting for ACKs; latency is measured from each message's scheduled
    /// send time, so a slow receiver cannot hide behind a slow sender.
    #[arg(long, value_name = "MSGS_PER_S", value_parser = parse_rate)]
    rate: Option<f64>,
    /// Print a summary (throughput, ACK latency percentiles, outcomes)
    /// instead of one line per ACK.
    #[arg(long)]
    stats: bool,
    /// Seconds to wait for each ACK (and for connecting).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    timeout: Duration,
    /// Files of HL7 v2 messages (`-` for standard input). Batch envelopes are skipped.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<String>,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a positive number of messages per second"
        )),
    }
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 && seconds < 1e9 => {
            Ok(Duration::from_secs_f64(seconds))
        }
        _ => Err(format!("{text:?} is not a positive number of seconds")),
    }
}

/// Exit status for bad usage, as clap uses.
const USAGE: u8 = 2;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let plan = match Plan::from_files(&args.files, args.count) {
        Ok(plan) => plan,
        Err(reason) => {
            eprintln!("corridor send: {reason}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let tls = args.tls_ca.as_ref().map(|ca| TlsClientConfig {
        ca_path: ca.clone(),
        cert_path: args.tls_cert.clone(),
        key_path: args.tls_key.clone(),
        server_name: args.tls_server_name.clone(),
    });
    let connector = match MllpConnector::new(tls) {
        Ok(connector) => connector
            .response_timeout(args.timeout)
            .connect_timeout(args.timeout),
        Err(error) => {
            eprintln!("corridor send: {error}");
            return Ok(ExitCode::from(USAGE));
        }
    };
    let connections = usize::from(args.connections);
    let runtime = if connections == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cores.min(connections))
            .enable_all()
            .build()?
    };
    let job = Job {
        plan,
        connector,
        to: args.to,
        connections,
        rate: args.rate,
        timeout: args.timeout,
        print_each: !args.stats,
    };
    let report = runtime.block_on(send_all(Arc::new(job)))?;
    if args.stats {
        print!("{}", report.stats(connections, args.rate));
    }
    if report.tally.all_accepted() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("corridor send: {}", report.tally.failure_summary());
        Ok(ExitCode::from(1))
    }
}

/// Everything the connection tasks share.
struct Job {
    plan: Plan,
    connector: MllpConnector,
    to: String,
    connections: usize,
    rate: Option<f64>,
    timeout: Duration,
    print_each: bool,
}

struct Report {
    tally: Tally,
    elapsed: Duration,
}

async fn send_all(job: Arc<Job>) -> anyhow::Result<Report> {
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

/// What an ACK said about the message it answers.
enum Verdict<'a> {
    Accepted(AckCode),
    Negative(AckCode, String),
    /// MSA-2 names another message.
    Mismatch(AckCode, String),
    Unreadable(&'a str),
}

fn judge<'a>(ack: &[u8], sent_control_id: &str) -> Verdict<'a> {
    let Ok(message) = Message::parse(ack) else {
        return Verdict::Unreadable("not an HL7 message");
    };
    let Some(msa) = message.find_segment(b"MSA", 1) else {
        return Verdict::Unreadable("no MSA segment");
    };
    let text = |n: usize| msa.field(n).map(|f| f.text()).unwrap_or_default();
    let Some(code) = AckCode::parse(&text(1)) else {
        return Verdict::Unreadable("MSA-1 is not an acknowledgement code");
    };
    let acknowledged = text(2);
    if acknowledged != sent_control_id {
        return Verdict::Mismatch(code, acknowledged.into_owned());
    }
    if code.is_positive() {
        Verdict::Accepted(code)
    } else {
        Verdict::Negative(code, text(3).into_owned())
    }
}

/// Counts and latencies of one connection, or of all of them once merged.
struct Tally {
    accepted: u64,
    negative: u64,
    mismatched: u64,
    unreadable: u64,
    timed_out: u64,
    /// Written, but the connection failed before the ACK came.
    no_ack: u64,
    /// Never written, because the connection failed and could not be reopened.
    not_sent: u64,
    /// Why a connection gave up, the first time one did.
    abandoned_because: Option<String>,
    latency_us: Histogram<u64>,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            accepted: 0,
            negative: 0,
            mismatched: 0,
            unreadable: 0,
            timed_out: 0,
            no_ack: 0,
            not_sent: 0,
            abandoned_because: None,
            // 1 µs to one hour, three significant digits.
            latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .unwrap_or_else(|_| unreachable!("the bounds are valid")),
        }
    }

    fn total(&self) -> u64 {
        self.accepted
            + self.negative
            + self.mismatched
            + self.unreadable
            + self.timed_out
            + self.no_ack
            + self.not_sent
    }

    fn all_accepted(&self) -> bool {
        self.accepted == self.total()
    }

    fn record(
        &mut self,
        verdict: &Verdict,
        latency: Duration,
        control_id: &str,
        lines: &mut Lines,
    ) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.latency_us.saturating_record(micros.max(1));
        match verdict {
            Verdict::Accepted(code) => {
                self.accepted += 1;
                lines.line(format_args!("{} {control_id}", code.as_str()));
            }
            Verdict::Negative(code, text) => {
                self.negative += 1;
                lines.line(format_args!("{} {control_id} {text}", code.as_str()));
            }
            Verdict::Mismatch(code, acknowledged) => {
                self.mismatched += 1;
                lines.line(format_args!(
                    "MISMATCH {control_id} answered by {} for {acknowledged:?}",
                    code.as_str()
                ));
            }
            Verdict::Unreadable(why) => {
                self.unreadable += 1;
                lines.line(format_args!("BADACK {control_id} {why}"));
            }
        }
    }

    fn record_failure(
        &mut self,
        error: &MllpError,
        timeout: Duration,
        control_id: &str,
        lines: &mut Lines,
    ) {
        if matches!(error, MllpError::Timeout(_)) {
            self.timed_out += 1;
            lines.line(format_args!(
                "TIMEOUT {control_id} no ACK within {:.3} s",
                timeout.as_secs_f64()
            ));
        } else {
            self.no_ack += 1;
            lines.line(format_args!("NOACK {control_id} {error}"));
        }
    }

    fn abandon(&mut self, not_sent: u64, reason: String) {
        self.not_sent += not_sent;
        self.abandoned_because.get_or_insert(reason);
    }

    fn merge(&mut self, other: Tally) {
        self.accepted += other.accepted;
        self.negative += other.negative;
        self.mismatched += other.mismatched;
        self.unreadable += other.unreadable;
        self.timed_out += other.timed_out;
        self.no_ack += other.no_ack;
        self.not_sent += other.not_sent;
        if self.abandoned_because.is_none() {
            self.abandoned_because = other.abandoned_because;
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }

    fn outcomes(&self) -> String {
        let mut text = format!(
            "{} accepted, {} negative, {} mismatched, {} unreadable, {} timed out, {} without ACK, {} not sent",
            self.accepted,
            self.negative,
            self.mismatched,
            self.unreadable,
            self.timed_out,
            self.no_ack,
            self.not_sent
        );
        if let Some(reason) = &self.abandoned_because {
            text.push_str(&format!(" (a connection gave up: {reason})"));
        }
        text
    }

    fn failure_summary(&self) -> String {
        format!(
            "{} of {} messages were not acknowledged positively: {}",
            self.total() - self.accepted,
            self.total(),
            self.outcomes()
        )
    }
}

impl Report {
    fn stats(&self, connections: usize, rate: Option<f64>) -> String {
        let seconds = self.elapsed.as_secs_f64();
        let acknowledged = self.tally.latency_us.len();
        let per_second = if seconds > 0.0 {
            acknowledged as f64 / seconds
        } else {
            0.0
        };
        let mode = match rate {
            None => "closed loop, one message in flight per connection".to_owned(),
            Some(rate) => format!("open loop at {rate} msgs/s, latency from scheduled send times"),
        };
        let h = &self.tally.latency_us;
        let ms = |micros: u64| micros as f64 / 1000.0;
        format!(
            "messages     {} over {connections} connection(s) in {seconds:.3} s ({mode})\n\
             throughput   {per_second:.0} msgs/s\n\
             ACK latency  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms\n\
             outcomes     {}\n",
            self.tally.total(),
            ms(h.value_at_quantile(0.50)),
            ms(h.value_at_quantile(0.90)),
            ms(h.value_at_quantile(0.99)),
            ms(h.max()),
            self.tally.outcomes(),
        )
    }
}

/// One line per ACK on standard output, written in blocks: connections
/// interleave whole lines, never parts of them.
struct Lines {
    enabled: bool,
    buffer: String,
}

impl Lines {
    const BLOCK: usize = 32 * 1024;

    fn new(enabled: bool) -> Lines {
        Lines {
            enabled,
            buffer: String::new(),
        }
    }

    fn line(&mut self, text: std::fmt::Arguments) {
        if self.enabled {
            use std::fmt::Write as _;
            let _ = self.buffer.write_fmt(text);
            self.buffer.push('\n');
            if self.buffer.len() >= Self::BLOCK {
                self.flush();
            }
        }
    }

    fn flush(&mut self) {
        if !self.buffer.is_empty() {
            // A closed standard output (`| head`) must not stop the sending.
            let _ = std::io::stdout().lock().write_all(self.buffer.as_bytes());
            self.buffer.clear();
        }
    }
}

/// The messages to send, laid out once.
enum Plan {
    /// Each message of the files once, as read (segments ending in CR).
    AsRead(Vec<Outgoing>),
    /// `total` messages cycling through the files' messages, each with a
    /// unique MSH-10: `<run tag>-<index>`.
    Numbered {
        templates: Vec<Template>,
        total: u64,
        run_tag: String,
    },
}

struct Outgoing {
    payload: Vec<u8>,
    control_id: String,
}

/// A message cut around its MSH-10, so a new control id is two copies away.
struct Template {
    before_id: Vec<u8>,
    after_id: Vec<u8>,
}

/// Stands in for MSH-10 while a template is cut; letters and digits only, so
/// escaping leaves it as is.
const ID_MARKER: &str = "CORRIDORSENDCONTROLID";

impl Plan {
    fn from_files(files: &[String], count: Option<u64>) -> Result<Plan, String> {
        let mut messages = Vec::new();
        for file in files {
            let input = Input::read(file).map_err(|error| format!("{error:#}"))?;
            for piece in input.pieces() {
                match piece {
                    Piece::Message {
                        number,
                        bytes,
                        line,
                    } => {
                        let payload = with_cr_segments(bytes);
                        if let Some(offset) = payload.iter().position(|&b| b == 0x0B || b == 0x1C) {
                            return Err(format!(
                                "{}: message {number} (line {line}): byte 0x{:02X} at offset {offset} cannot be sent over MLLP",
                                input.name, payload[offset]
                            ));
                        }
                        let control_id = Message::parse(&payload)
                            .map_err(|error| message_error(&input.name, number, line, &error))?
                            .control_id()
                            .into_owned();
                        messages.push((
                            Outgoing {
                                payload,
                                control_id,
                            },
                            (input.name.clone(), number, line),
                        ));
                    }
                    Piece::Stray { bytes, line } => {
                        eprintln!(
                            "corridor send: skipped: {}",
                            stray_error(&input.name, line, bytes)
                        );
                    }
                }
            }
        }
        if messages.is_empty() {
            return Err(format!("no HL7 v2 messages in {}", files.join(", ")));
        }
        let Some(total) = count else {
            return Ok(Plan::AsRead(messages.into_iter().map(|(m, _)| m).collect()));
        };
        let msh_10: hl7v2::Path = "MSH-10"
            .parse()
            .map_err(|error| format!("MSH-10 path: {error}"))?;
        let mut templates = Vec::with_capacity(messages.len());
        for (message, (file, number, line)) in messages {
            let mut owned = OwnedMessage::parse(&message.payload)
                .map_err(|error| message_error(&file, number, line, &error))?;
            owned
                .set_text(&msh_10, ID_MARKER)
                .map_err(|error| message_error(&file, number, line, &error))?;
            let bytes = owned.to_bytes();
            let Some(at) = bytes
                .windows(ID_MARKER.len())
                .position(|w| w == ID_MARKER.as_bytes())
            else {
                return Err(format!(
                    "{file}: message {number} (line {line}): cannot rewrite MSH-10"
                ));
            };
            templates.push(Template {
                before_id: bytes[..at].to_vec(),
                after_id: bytes[at + ID_MARKER.len()..].to_vec(),
            });
        }
        Ok(Plan::Numbered {
            templates,
            total,
            run_tag: run_tag(),
        })
    }

    fn total(&self) -> u64 {
        match self {
            Plan::AsRead(messages) => messages.len() as u64,
            Plan::Numbered { total, .. } => *total,
        }
    }

    /// The indices connection `connection` of `connections` sends, in order.
    fn indices(&self, connection: usize, connections: usize) -> impl Iterator<Item = u64> {
        (connection as u64..self.total()).step_by(connections)
    }

    /// Writes message `index` into `payload` and its MSH-10 into `control_id`.
    fn fill(&self, index: u64, payload: &mut Vec<u8>, control_id: &mut String) {
        payload.clear();
        control_id.clear();
        match self {
            Plan::AsRead(messages) => {
                let message = &messages[index as usize];
                payload.extend_from_slice(&message.payload);
                control_id.push_str(&message.control_id);
            }
            Plan::Numbered {
                templates, run_tag, ..
            } => {
                use std::fmt::Write as _;
                let template = &templates[(index % templates.len() as u64) as usize];
                let _ = write!(control_id, "{run_tag}-{index}");
                payload.extend_from_slice(&template.before_id);
                payload.extend_from_slice(control_id.as_bytes());
                payload.extend_from_slice(&template.after_id);
            }
        }
    }
}

/// Segments joined by CR, as MLLP peers expect, whatever the file used.
fn with_cr_segments(bytes: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(bytes.len() + 1);
    for line in bytes.split(|&b| b == b'\r' || b == b'\n') {
        if !line.is_empty() {
            payload.extend_from_slice(line);
            payload.push(b'\r');
        }
    }
    payload
}

/// Six base-36 characters that differ between runs, so numbered control ids
/// of two runs do not collide in a receiver's duplicate detection.
fn run_tag() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // SplitMix64 finaliser: spreads nearby clocks and pids over the range.
    let mut x = nanos ^ (u64::from(std::process::id()) << 32);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^= x >> 31;
    const DIGITS: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..6)
        .map(|i| DIGITS[((x >> (i * 6)) % 36) as usize] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_end_in_cr_whatever_the_file_used() {
        assert_eq!(
            with_cr_segments(b"MSH|a\r\nPID|b\nOBX|c"),
            b"MSH|a\rPID|b\rOBX|c\r"
        );
    }

    #[test]
    fn numbered_messages_carry_their_own_control_id() {
        let template_text = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102||ORU^R01|ORIG|P|2.5.1\rPID|1\r";
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.hl7");
        std::fs::write(&path, template_text).unwrap();
        let plan = Plan::from_files(&[path.to_string_lossy().into_owned()], Some(3)).unwrap();
        let (mut payload, mut id) = (Vec::new(), String::new());
        plan.fill(2, &mut payload, &mut id);
        let message = Message::parse(&payload).unwrap();
        assert_eq!(message.control_id(), id.as_str());
        assert!(id.ends_with("-2"), "{id}");
        assert!(payload.ends_with(b"PID|1\r"));
    }

    #[test]
    fn connections_share_the_indices_round_robin() {
        let plan = Plan::AsRead(
            (0..5)
                .map(|i| Outgoing {
                    payload: vec![],
                    control_id: i.to_string(),
                })
                .collect(),
        );
        assert_eq!(plan.indices(1, 2).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(plan.indices(0, 2).collect::<Vec<_>>(), vec![0, 2, 4]);
    }

    #[test]
    fn ack_for_another_message_is_a_mismatch() {
        let ack = b"MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240102||ACK|A1|P|2.5.1\rMSA|AA|OTHER\r";
        assert!(
            matches!(judge(ack, "MINE"), Verdict::Mismatch(AckCode::AA, ref id) if id == "OTHER")
        );
        assert!(matches!(
            judge(ack, "OTHER"),
            Verdict::Accepted(AckCode::AA)
        ));
        let nak = b"MSH|^~\\&|EHR|HOSP|LAB|HOSP|20240102||ACK|A1|P|2.5.1\rMSA|AE|MINE|bad PID\r";
        assert!(
            matches!(judge(nak, "MINE"), Verdict::Negative(AckCode::AE, ref t) if t == "bad PID")
        );
    }
}
