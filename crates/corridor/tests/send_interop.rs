//! `corridor send` against real peers: python-hl7's asyncio MLLP server (an
//! independent implementation from PyPI) and MLLP servers of the `mllp` crate
//! that answer AA, AE, a wrong MSA-2 or nothing, over TCP, TLS and mutual TLS.

#[path = "send_support.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const LIMIT: Duration = Duration::from_secs(60);

/// Answers each message with `msg.create_ack()` and appends its MSH-10 to a file.
const PYTHON_SERVER: &str = r#"
import asyncio, sys
import hl7
from hl7.mllp import start_hl7_server

log_path = sys.argv[1]

async def serve(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            with open(log_path, "a") as log:
                log.write(str(message.segment("MSH")[10]) + "\n")
            writer.writemessage(message.create_ack())
            await writer.drain()
    except asyncio.IncompleteReadError:
        if not writer.is_closing():
            writer.close()

async def main():
    server = await start_hl7_server(serve, host="127.0.0.1", port=0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()

asyncio.run(main())
"#;

struct PythonServer {
    child: Child,
    addr: String,
    log: std::path::PathBuf,
}

impl PythonServer {
    fn start(dir: &std::path::Path) -> PythonServer {
        let python = python_with_hl7();
        let log = dir.join("received.txt");
        let mut child = Command::new(python)
            .args(["-c", PYTHON_SERVER])
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut port = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut port)
            .unwrap();
        assert!(!port.trim().is_empty(), "python-hl7 server did not start");
        PythonServer {
            child,
            addr: format!("127.0.0.1:{}", port.trim()),
            log,
        }
    }

    fn received(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for PythonServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i}")).collect()
}

#[test]
fn delivers_a_file_to_python_hl7_server_and_prints_one_line_per_ack() {
    let dir = tempfile::tempdir().unwrap();
    let server = PythonServer::start(dir.path());
    let sent = ids("PY", 5);
    let file = message_file(dir.path(), "five.hl7", &sent);
    let output = send(
        &[
            "--to",
            &server.addr,
            "--connections",
            "2",
            file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut lines: Vec<String> = text(&output.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    let mut expected: Vec<String> = sent.iter().map(|id| format!("AA {id}")).collect();
    expected.sort();
    assert_eq!(lines, expected);
    let mut received = server.received();
    received.sort();
    let mut sent_sorted = sent.clone();
    sent_sorted.sort();
    assert_eq!(received, sent_sorted);
}

#[test]
fn count_repeats_the_messages_with_unique_control_ids_to_python_hl7() {
    let dir = tempfile::tempdir().unwrap();
    let server = PythonServer::start(dir.path());
    let output = send(
        &[
            "--to",
            &server.addr,
            "--connections",
            "4",
            "--count",
            "200",
            oru_1500().to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let accepted = accepted_ids(&output.stdout);
    assert_eq!(accepted.len(), 200);
    let unique: BTreeSet<&String> = accepted.iter().collect();
    assert_eq!(unique.len(), 200, "control ids repeat");
    let received: BTreeSet<String> = server.received().into_iter().collect();
    let accepted: BTreeSet<String> = accepted.into_iter().collect();
    assert_eq!(received, accepted);
}

/// The numbers of `corridor send --stats`, read back from its summary.
#[derive(Debug)]
struct Summary {
    messages: u64,
    seconds: f64,
    per_second: f64,
    p50_ms: f64,
    p90_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Summary {
    fn parse(stdout: &str) -> Summary {
        let after = |label: &str| -> f64 {
            let at = stdout
                .find(label)
                .unwrap_or_else(|| panic!("no {label:?} in {stdout}"));
            let number: String = stdout[at + label.len()..]
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            number
                .parse()
                .unwrap_or_else(|_| panic!("no number after {label:?} in {stdout}"))
        };
        Summary {
            messages: after("messages") as u64,
            seconds: after("connection(s) in"),
            per_second: after("throughput"),
            p50_ms: after("p50"),
            p90_ms: after("p90"),
            p99_ms: after("p99"),
            max_ms: after("max"),
        }
    }
}

#[test]
fn stats_match_a_known_schedule_of_answer_delays() {
    // One connection, one message in flight: 37 answers take 10 ms and three take
    // 200 ms, so p50 and p90 are fast answers, p99 and max slow ones, and the run
    // lasts at least 37 * 10 + 3 * 200 = 970 ms.
    let dir = tempfile::tempdir().unwrap();
    let slow = ["K05", "K20", "K33"];
    let server = TestServer::plain(move |id| {
        let delay = if slow.contains(&id) { 200 } else { 10 };
        Answer::AcceptAfter(Duration::from_millis(delay))
    });
    let sent: Vec<String> = (0..40).map(|i| format!("K{i:02}")).collect();
    let file = message_file(dir.path(), "schedule.hl7", &sent);
    let output = send(
        &["--to", &server.addr, "--stats", file.to_str().unwrap()],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let stats = Summary::parse(&stdout);
    assert_eq!(stats.messages, 40, "{stdout}");
    assert!(stats.seconds >= 0.97, "{stats:?}");
    // Throughput is what was acknowledged over the time it took, no more.
    let expected = 40.0 / stats.seconds;
    assert!((stats.per_second - expected).abs() <= 1.0, "{stats:?}");
    assert!(stats.per_second <= 41.3, "{stats:?}");
    // Generous upper bounds for a loaded machine, each below the next kind of answer.
    assert!((10.0..150.0).contains(&stats.p50_ms), "{stats:?}");
    assert!((10.0..150.0).contains(&stats.p90_ms), "{stats:?}");
    assert!((200.0..1000.0).contains(&stats.p99_ms), "{stats:?}");
    assert!(
        stats.max_ms >= stats.p99_ms && stats.max_ms < 1000.0,
        "{stats:?}"
    );
    assert!(
        stdout.contains("40 accepted, 0 negative, 0 mismatched"),
        "{stdout}"
    );
}

#[test]
fn open_loop_latency_counts_the_wait_behind_a_stalled_answer() {
    // At 100 msgs/s on one connection, the 300 ms answer to R10 holds back the answers
    // to the ~30 messages scheduled behind it, each answered at once once read. Their
    // latencies, from their scheduled times, include that wait: the five slowest of 50
    // (p90 and above) waited over 200 ms.
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::plain(|id| {
        if id == "R10" {
            Answer::AcceptAfter(Duration::from_millis(300))
        } else {
            Answer::Accept
        }
    });
    let file = message_file(dir.path(), "stall.hl7", &ids("R", 50));
    let output = send(
        &[
            "--to",
            &server.addr,
            "--stats",
            "--rate",
            "100",
            file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    let stats = Summary::parse(&stdout);
    assert_eq!(stats.messages, 50, "{stdout}");
    // The last of 50 is scheduled 490 ms after the first.
    assert!(stats.seconds >= 0.49, "{stats:?}");
    assert!(
        (stats.per_second - 50.0 / stats.seconds).abs() <= 1.0,
        "{stats:?}"
    );
    assert!(stats.p90_ms >= 200.0, "{stats:?}");
    assert!((300.0..2000.0).contains(&stats.max_ms), "{stats:?}");
    assert!(stats.p50_ms <= stats.p90_ms && stats.p90_ms <= stats.p99_ms);
    assert!(stdout.contains("50 accepted, 0 negative"), "{stdout}");
}

#[test]
fn stats_summarise_throughput_latency_and_outcomes() {
    let server = TestServer::plain(|_| Answer::Accept);
    let output = send(
        &[
            "--to",
            &server.addr,
            "--stats",
            "--connections",
            "3",
            "--count",
            "300",
            oru_1500().to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("messages     300 over 3 connection(s)"),
        "{stdout}"
    );
    assert!(stdout.contains("throughput "), "{stdout}");
    assert!(stdout.contains("p99 "), "{stdout}");
    assert!(stdout.contains("300 accepted, 0 negative"), "{stdout}");
    assert!(
        !stdout.contains("AA "),
        "no per-ACK lines with --stats: {stdout}"
    );
    assert_eq!(server.all_received().len(), 300);
}

#[test]
fn each_connection_keeps_its_own_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::plain(|_| Answer::Accept);
    let sent: Vec<String> = (0..12).map(|i| format!("ORD{i:02}")).collect();
    let file = message_file(dir.path(), "twelve.hl7", &sent);
    let output = send(
        &[
            "--to",
            &server.addr,
            "--connections",
            "3",
            file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let per_connection = server.received.lock().unwrap().clone();
    assert_eq!(per_connection.len(), 3);
    let mut all = Vec::new();
    for ids in per_connection.values() {
        assert_eq!(ids.len(), 4);
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, &sorted, "a connection's messages arrived out of order");
        all.extend(ids.iter().cloned());
    }
    all.sort();
    assert_eq!(all, sent);
}

#[test]
fn a_nak_makes_send_exit_1_with_a_summary() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::plain(|id| {
        if id == "N2" {
            Answer::Reject
        } else {
            Answer::Accept
        }
    });
    let file = message_file(dir.path(), "three.hl7", &ids("N", 3));
    let output = send(&["--to", &server.addr, file.to_str().unwrap()], LIMIT);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("AA N1\n"), "{stdout}");
    assert!(stdout.contains("AE N2 rejected by test\n"), "{stdout}");
    assert!(stdout.contains("AA N3\n"), "{stdout}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("1 of 3 messages were not acknowledged positively")
            && stderr.contains("1 negative"),
        "{stderr}"
    );
}

#[test]
fn an_ack_naming_another_message_is_a_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::plain(|_| Answer::WrongId);
    let file = message_file(dir.path(), "one.hl7", &ids("W", 1));
    let output = send(&["--to", &server.addr, file.to_str().unwrap()], LIMIT);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).contains("MISMATCH W1 answered by AA for \"SOMETHING-ELSE\""),
        "{}",
        text(&output.stdout)
    );
    assert!(
        text(&output.stderr).contains("1 mismatched"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_silent_server_times_out_and_send_moves_on_over_a_fresh_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::plain(|id| {
        if id == "S1" {
            Answer::Silence
        } else {
            Answer::Accept
        }
    });
    let file = message_file(dir.path(), "two.hl7", &ids("S", 2));
    let started = Instant::now();
    let output = send(
        &[
            "--to",
            &server.addr,
            "--timeout",
            "0.5",
            file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("TIMEOUT S1 no ACK within 0.500 s"),
        "{stdout}"
    );
    assert!(stdout.contains("AA S2"), "{stdout}");
    assert!(text(&output.stderr).contains("1 timed out"));
    assert!(started.elapsed() >= Duration::from_millis(500));
    // S2 went over a second connection: the first may still carry S1's late answer.
    assert_eq!(server.received.lock().unwrap().len(), 2);
}

#[test]
fn open_loop_rate_paces_the_sending() {
    let server = TestServer::plain(|_| Answer::Accept);
    let started = Instant::now();
    let output = send(
        &[
            "--to",
            &server.addr,
            "--stats",
            "--connections",
            "2",
            "--rate",
            "1000",
            "--count",
            "500",
            oru_1500().to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("open loop at 1000 msgs/s"), "{stdout}");
    assert!(stdout.contains("500 accepted"), "{stdout}");
    // 500 messages at 1000/s cannot all be sent in less than ~0.5 s.
    assert!(started.elapsed() >= Duration::from_millis(490), "{stdout}");
    assert_eq!(server.all_received().len(), 500);
}

#[test]
fn open_loop_reports_each_ack_and_a_nak() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::plain(|id| {
        if id == "R3" {
            Answer::Reject
        } else {
            Answer::Accept
        }
    });
    let file = message_file(dir.path(), "four.hl7", &ids("R", 4));
    let output = send(
        &[
            "--to",
            &server.addr,
            "--rate",
            "200",
            file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    for line in ["AA R1", "AA R2", "AE R3 rejected by test", "AA R4"] {
        assert!(stdout.contains(line), "{line} missing in {stdout}");
    }
}

#[test]
fn an_unreachable_listener_is_an_error_naming_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let file = message_file(dir.path(), "one.hl7", &ids("U", 1));
    // A port that was free a moment ago.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let to = format!("127.0.0.1:{port}");
    let output = send(&["--to", &to, file.to_str().unwrap()], LIMIT);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains(&format!("cannot connect to {to}")),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn bad_usage_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = message_file(dir.path(), "one.hl7", &ids("B", 1));
    let file = file.to_str().unwrap();
    let no_messages = dir.path().join("empty.hl7");
    std::fs::write(&no_messages, "\n\n").unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["/nonexistent/file.hl7"],
            "cannot read /nonexistent/file.hl7",
        ),
        (vec![no_messages.to_str().unwrap()], "no HL7 v2 messages"),
        (vec!["--connections", "0", file], "--connections"),
        (vec!["--rate", "0", file], "--rate"),
        (vec!["--tls-cert", "c.pem", file], "--tls-key"),
        (
            vec!["--tls-ca", "/nonexistent/ca.pem", file],
            "/nonexistent/ca.pem",
        ),
        (vec![], "FILE"),
    ];
    for (args, needle) in cases {
        let output = send(&args, LIMIT);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(
            text(&output.stderr).contains(needle),
            "{args:?}: {}",
            text(&output.stderr)
        );
    }
}

fn tls_server(pki: &Pki, mutual: bool) -> TestServer {
    let server_cert = pki.server();
    let mut config = mllp::MllpServerConfig::new("127.0.0.1:0");
    config.tls = Some(mllp::TlsServerConfig {
        cert_path: server_cert.cert_path,
        key_path: server_cert.key_path,
        client_ca_path: mutual.then(|| pki.ca_path.clone()),
    });
    TestServer::start(config, |_| Answer::Accept)
}

#[test]
fn sends_over_tls_trusting_the_given_ca() {
    let pki = Pki::new("Corridor Test CA");
    let server = tls_server(&pki, false);
    let file = message_file(pki.dir.path(), "two.hl7", &ids("T", 2));
    let output = send(
        &[
            "--to",
            &server.addr,
            "--tls-ca",
            pki.ca_path.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(accepted_ids(&output.stdout), ids("T", 2));
}

#[test]
fn tls_to_a_server_the_ca_did_not_sign_is_refused() {
    let pki = Pki::new("Corridor Test CA");
    let other = Pki::new("Someone Else's CA");
    let server = tls_server(&pki, false);
    let file = message_file(pki.dir.path(), "one.hl7", &ids("X", 1));
    let output = send(
        &[
            "--to",
            &server.addr,
            "--tls-ca",
            other.ca_path.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("TLS handshake with"), "{stderr}");
    assert!(server.all_received().is_empty());
}

#[test]
fn mutual_tls_needs_a_client_certificate_the_server_trusts() {
    let pki = Pki::new("Corridor Test CA");
    let server = tls_server(&pki, true);
    let file = message_file(pki.dir.path(), "one.hl7", &ids("M", 1));
    let file = file.to_str().unwrap();
    let ca = pki.ca_path.to_str().unwrap();

    let client = pki.client("lab-analyzer", "Hospital Lab");
    let output = send(
        &[
            "--to",
            &server.addr,
            "--tls-ca",
            ca,
            "--tls-cert",
            client.cert_path.to_str().unwrap(),
            "--tls-key",
            client.key_path.to_str().unwrap(),
            file,
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(accepted_ids(&output.stdout), ids("M", 1));

    // No certificate at all, then one from a CA the server does not trust.
    let stranger_ca = Pki::new("Stranger CA");
    let stranger = stranger_ca.client("intruder", "Nowhere");
    let without = send(&["--to", &server.addr, "--tls-ca", ca, file], LIMIT);
    let untrusted = send(
        &[
            "--to",
            &server.addr,
            "--tls-ca",
            ca,
            "--tls-cert",
            stranger.cert_path.to_str().unwrap(),
            "--tls-key",
            stranger.key_path.to_str().unwrap(),
            file,
        ],
        LIMIT,
    );
    for refused in [without, untrusted] {
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
        assert!(accepted_ids(&refused.stdout).is_empty());
    }
    assert_eq!(
        server.all_received().len(),
        1,
        "only the trusted client got through"
    );
    assert!(server.stats.read().tls_handshake_failures >= 2);
}

#[test]
fn python_hl7_mllp_send_delivers_to_corridor_run_into_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::start(&dir.path().join("data"), &lab_config(""));
    let sent = ids("PYSEND", 3);
    // `--loose` reads messages that start at "MSH|^~\&|" with CRLF segments.
    let file = dir.path().join("loose.hl7");
    let body: String = sent
        .iter()
        .map(|id| oru(id).replace('\r', "\r\n"))
        .collect();
    std::fs::write(&file, body).unwrap();
    let port = run.addr.rsplit_once(':').unwrap().1.to_owned();
    let child = Command::new(python_with_hl7())
        .args(["-c", "from hl7.client import mllp_send; mllp_send()"])
        .args(["--loose", "-p", &port, "-f"])
        .arg(&file)
        .arg("127.0.0.1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_output(child, LIMIT);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let acks = text(&output.stdout);
    for id in &sent {
        assert!(
            acks.contains(&format!("MSA|AA|{id}")),
            "no AA for {id}: {acks:?}"
        );
    }
    let stored: Vec<String> = journal(&run.data)
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(stored, sent);
}

#[test]
fn corridor_send_to_corridor_run_stores_every_accepted_message_once() {
    let dir = tempfile::tempdir().unwrap();
    let run = Run::start(&dir.path().join("data"), &lab_config(""));
    let output = send(
        &[
            "--to",
            &run.addr,
            "--connections",
            "4",
            "--count",
            "400",
            oru_1500().to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let mut accepted = accepted_ids(&output.stdout);
    accepted.sort();
    let mut stored: Vec<String> = journal(&run.data)
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    stored.sort();
    assert_eq!(accepted.len(), 400);
    assert_eq!(stored, accepted);
}

fn tls_run(dir: &std::path::Path, pki: &Pki, mutual: bool) -> Run {
    let server = pki.server();
    let client_ca = if mutual {
        format!(", client_ca = {:?}", pki.ca_path)
    } else {
        String::new()
    };
    let tls = format!(
        ", tls = {{ cert = {:?}, key = {:?}{client_ca} }}",
        server.cert_path, server.key_path
    );
    Run::start(&dir.join("data"), &lab_config(&tls))
}

#[test]
fn corridor_run_over_tls_accepts_corridor_send() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("Corridor Test CA");
    let run = tls_run(dir.path(), &pki, false);
    let file = message_file(dir.path(), "two.hl7", &ids("TLSRUN", 2));
    let output = send(
        &[
            "--to",
            &run.addr,
            "--tls-ca",
            pki.ca_path.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(accepted_ids(&output.stdout), ids("TLSRUN", 2));
    let stored: Vec<String> = journal(&run.data)
        .into_iter()
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(stored, ids("TLSRUN", 2));
}

#[test]
fn corridor_run_with_mutual_tls_records_the_sender_and_refuses_strangers_with_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new("Corridor Test CA");
    let run = tls_run(dir.path(), &pki, true);
    let ca = pki.ca_path.to_str().unwrap().to_owned();
    let file = message_file(dir.path(), "one.hl7", &ids("MTLS", 1));
    let file = file.to_str().unwrap();

    let client = pki.client("lab-analyzer", "Hospital Lab");
    let output = send(
        &[
            "--to",
            &run.addr,
            "--tls-ca",
            &ca,
            "--tls-cert",
            client.cert_path.to_str().unwrap(),
            "--tls-key",
            client.key_path.to_str().unwrap(),
            file,
        ],
        LIMIT,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let rows = journal(&run.data);
    assert_eq!(rows.len(), 1);
    let identity = rows[0].2.clone().unwrap_or_default();
    assert!(identity.contains("CN=lab-analyzer"), "{identity:?}");

    let refused = send(&["--to", &run.addr, "--tls-ca", &ca, file], LIMIT);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    let lines = run.log_lines("TLS handshake failed; connection refused");
    // TLS 1.3 lets the client finish its side before the server refuses, so
    // the sender may see the refusal on its first write and try once more:
    // one line per refused connection.
    assert!((1..=2).contains(&lines.len()), "{}", run.log());
    assert!(lines[0].contains("peer=127.0.0.1:"), "{}", lines[0]);
    assert_eq!(
        journal(&run.data).len(),
        1,
        "the refused client stored nothing"
    );
}

#[test]
fn batch_envelopes_are_skipped_in_files_with_lf_segments() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::plain(|_| Answer::Accept);
    let file = dir.path().join("batch.hl7");
    let body = format!(
        "FHS|^~\\&|LAB\nBHS|^~\\&|LAB\n{}{}BTS|2\nFTS|1\n",
        oru("BATCH1").replace('\r', "\n"),
        oru("BATCH2").replace('\r', "\n")
    );
    std::fs::write(&file, body).unwrap();
    let output = send(&["--to", &server.addr, file.to_str().unwrap()], LIMIT);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(accepted_ids(&output.stdout), ids("BATCH", 2));
    assert_eq!(server.all_received(), ids("BATCH", 2));
}

#[test]
fn open_loop_reports_a_missing_ack_as_a_mismatch_then_a_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // Silent for L2: the next ACK on the connection (L3's) arrives where L2's
    // was expected, and nothing is left for L3.
    let server = TestServer::plain(|id| {
        if id == "L2" {
            Answer::Silence
        } else {
            Answer::Accept
        }
    });
    let file = message_file(dir.path(), "three.hl7", &ids("L", 3));
    let output = send(
        &[
            "--to",
            &server.addr,
            "--rate",
            "100",
            "--timeout",
            "0.5",
            file.to_str().unwrap(),
        ],
        LIMIT,
    );
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(stdout.contains("AA L1\n"), "{stdout}");
    assert!(
        stdout.contains("MISMATCH L2 answered by AA for \"L3\""),
        "{stdout}"
    );
    assert!(stdout.contains("TIMEOUT L3"), "{stdout}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("2 of 3 messages were not acknowledged positively")
            && stderr.contains("1 mismatched")
            && stderr.contains("1 timed out"),
        "{stderr}"
    );
}
