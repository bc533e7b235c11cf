//! `corridor send`: delivers the messages of files to an MLLP listener and
//! checks every acknowledgement. With `--count`, `--connections`, `--rate`
//! and `--stats` it is also the load generator the benchmarks use; the
//! sending itself is the `loadgen` crate's.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use loadgen::{Job, Origin, Outgoing, Plan};
use mllp::{MllpConnector, TlsClientConfig};

use crate::input::{Input, Piece, stray_error};

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
    let plan = match read_plan(&args.files, args.count) {
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
    let runtime = loadgen::runtime(connections)?;
    let job = Job {
        plan,
        connector,
        to: args.to,
        connections,
        rate: args.rate,
        timeout: args.timeout,
        print_each: !args.stats,
    };
    let report = runtime.block_on(loadgen::send_all(Arc::new(job)))?;
    if args.stats {
        print!("{}", report.stats(connections, args.rate));
    }
    if report.all_accepted() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("corridor send: {}", report.failure_summary());
        Ok(ExitCode::from(1))
    }
}

/// The messages of `files`, laid out to send; a stray line is reported and skipped.
fn read_plan(files: &[String], count: Option<u64>) -> Result<Plan, String> {
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
                    let origin = Origin {
                        file: input.name.clone(),
                        number,
                        line,
                    };
                    messages.push((Outgoing::new(bytes, &origin)?, origin));
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
    Plan::new(messages, count)
}
