//! Hostile HTTP clients against `corridor run`, on the API port and on an HTTP
//! source: thousands of idle connections, headers that never end, a client that
//! writes one byte a second, a body that trickles in, connections kept alive and
//! left idle. Meanwhile a sender that opens a new MLLP connection for every
//! message and a monitor that asks `/health` on a new connection every few
//! milliseconds must be answered throughout.

#[path = "send_support.rs"]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::*;

/// Idle connections opened against the API port: far more than the engine's 1,024 files.
const IDLE_FLOOD: usize = 3000;
/// The engine's open-file limit (soft and hard) in these tests.
const ENGINE_OPEN_FILES: u64 = 1024;
/// How long a probe waits to connect, and then for its answer. Generous: while the
/// flood fills the listen backlog, the kernel drops SYNs and the client resends them
/// after 1 s, then 2 s more.
const PROBE_PATIENCE: Duration = Duration::from_secs(10);

/// Raises this process's soft open-file limit to what the test needs, or fails saying why.
fn allow_open_files(needed: u64) {
    let soft = rlimit::increase_nofile_limit(needed).unwrap_or(0);
    assert!(
        soft >= needed,
        "this test opens {needed} sockets, but the open-file limit can only be raised to {soft} (the hard limit); raise it with `ulimit -Hn`"
    );
}

/// The address after `NAME=http://` in the "corridor is listening" line (`http` for the API).
fn http_addr(run: &Run, name: &str) -> SocketAddr {
    let line = run
        .log_lines("corridor is listening")
        .pop()
        .expect("no listening line");
    let needle = format!("{name}=http://");
    let at = line.find(&needle).expect(&needle) + needle.len();
    line[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn connect(addr: SocketAddr) -> (TcpStream, String) {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    let peer = format!("peer={}", stream.local_addr().unwrap());
    (stream, peer)
}

/// Reads one HTTP/1.1 response (a `Content-Length` body); `(status, body)`.
fn read_response(stream: &mut TcpStream) -> Result<(u16, String), String> {
    let mut bytes = Vec::new();
    let mut byte = [0u8; 1];
    while !bytes.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => return Err(format!("closed after {:?}", text(&bytes))),
            Ok(_) => bytes.push(byte[0]),
            Err(e) => return Err(format!("reading the head: {e}")),
        }
    }
    let head = text(&bytes).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head:?}"))?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("no content-length in {head:?}"))?;
    let mut body = vec![0u8; length];
    stream
        .read_exact(&mut body)
        .map_err(|e| format!("reading the body: {e}"))?;
    Ok((status, text(&body)))
}

/// `GET /health` on a new connection; Ok when answered 200 with status ok.
fn health(api: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&api, PROBE_PATIENCE).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(PROBE_PATIENCE)).unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: corridor\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("writing: {e}"))?;
    match read_response(&mut stream)? {
        (200, body) if body.contains("\"status\":\"ok\"") => Ok(()),
        other => Err(format!("answered {other:?}")),
    }
}

/// One message on a new MLLP connection; Ok when acknowledged AA for it.
fn mllp_message(addr: &str, id: &str) -> Result<(), String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let mut stream =
        TcpStream::connect_timeout(&addr, PROBE_PATIENCE).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(PROBE_PATIENCE)).unwrap();
    let frame = [&b"\x0b"[..], oru(id).as_bytes(), b"\x1c\x0d"].concat();
    stream
        .write_all(&frame)
        .map_err(|e| format!("writing: {e}"))?;
    let mut ack = Vec::new();
    let mut byte = [0u8; 1];
    while !ack.ends_with(b"\x1c\x0d") {
        match stream.read(&mut byte) {
            Ok(0) => return Err("closed without an ACK".to_owned()),
            Ok(_) => ack.push(byte[0]),
            Err(e) => return Err(format!("no ACK: {e}")),
        }
    }
    let ack = text(&ack);
    if ack.contains(&format!("MSA|AA|{id}")) {
        Ok(())
    } else {
        Err(format!("answered {ack:?}"))
    }
}

/// Does something every few milliseconds on its own thread until stopped, keeping
/// the failures and the slowest success.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Outcome>,
}

#[derive(Debug)]
struct Outcome {
    answered: u64,
    failures: Vec<String>,
    slowest: Duration,
}

impl Prober {
    fn start(probe: impl Fn(u64) -> Result<(), String> + Send + 'static) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut outcome = Outcome {
                answered: 0,
                failures: Vec::new(),
                slowest: Duration::ZERO,
            };
            let mut n = 0;
            while !stopping.load(Ordering::Relaxed) {
                n += 1;
                let started = Instant::now();
                match probe(n) {
                    Ok(()) => {
                        outcome.answered += 1;
                        outcome.slowest = outcome.slowest.max(started.elapsed());
                    }
                    Err(why) => outcome.failures.push(format!("#{n}: {why}")),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            outcome
        });
        Prober { stop, thread }
    }

    fn finish(self) -> Outcome {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// True once the server has closed `stream` (EOF or reset), reading what it sends.
fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// True when the server has already closed `stream` (without waiting).
fn already_closed(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let closed = matches!(stream.read(&mut buf), Ok(0))
        || matches!(stream.read(&mut buf), Err(e) if e.kind() == ErrorKind::ConnectionReset);
    stream.set_nonblocking(false).unwrap();
    closed
}

/// The number of files the process `pid` has open.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |dir| dir.count())
}

#[test]
fn thousands_of_idle_api_connections_leave_mllp_and_health_answered() {
    allow_open_files(IDLE_FLOOD as u64 + 256);
    let dir = tempfile::tempdir().unwrap();
    // Every limit at its default: the engine must fit them into its 1,024 files.
    let config = "[http]\nlisten = \"127.0.0.1:0\"\n[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n";
    let run = Run::start_with_open_files(&dir.path().join("data"), config, ENGINE_OPEN_FILES);
    let api = http_addr(&run, "http");
    let mllp = run.addr.clone();
    health(api).expect("/health before the flood");

    let monitor = Prober::start(move |_| health(api));
    let sender = Prober::start(move |n| mllp_message(&mllp, &format!("NEWCONN{n}")));

    let flood_ends = Instant::now() + Duration::from_secs(30);
    let mut idle = Vec::new();
    let mut not_connected = 0;
    while idle.len() + not_connected < IDLE_FLOOD && Instant::now() < flood_ends {
        match TcpStream::connect_timeout(&api, Duration::from_secs(2)) {
            Ok(stream) => idle.push(stream),
            Err(_) => not_connected += 1,
        }
    }
    // Held a while, so the monitor and the sender keep working against a full listener.
    std::thread::sleep(Duration::from_secs(3));
    let engine_files = open_files(run.pid());
    let closed = idle.iter().filter(|s| already_closed(s)).count();

    let monitor = monitor.finish();
    let sender = sender.finish();
    eprintln!(
        "{} idle connections ({not_connected} not connected), {closed} closed by the engine, which had {engine_files} files open; /health: {} answered, {} not, slowest {:?}; MLLP: {} answered, {} not, slowest {:?}",
        idle.len(),
        monitor.answered,
        monitor.failures.len(),
        monitor.slowest,
        sender.answered,
        sender.failures.len(),
        sender.slowest
    );
    assert!(
        monitor.failures.is_empty(),
        "/health went unanswered: {:?}",
        &monitor.failures[..monitor.failures.len().min(5)]
    );
    assert!(
        sender.failures.is_empty(),
        "MLLP senders got no ACK: {:?}",
        &sender.failures[..sender.failures.len().min(5)]
    );
    assert!(monitor.answered >= 20 && sender.answered >= 20);
    assert_eq!(
        idle.len(),
        IDLE_FLOOD,
        "the engine stopped taking connections"
    );
    // The engine cannot hold them all: those it did not keep were closed, not left waiting.
    assert!(
        closed >= IDLE_FLOOD - ENGINE_OPEN_FILES as usize,
        "only {closed} of {IDLE_FLOOD} idle connections were closed"
    );
    assert!(!run.log_lines("connection limit reached").is_empty());
    // The default caps (1,024 MLLP, 256 API) do not fit in 1,024 files: they were lowered.
    let lowered = run.log_lines("lowered in proportion");
    assert!(
        lowered.len() == 1 && lowered[0].contains("http.max_connections 256 -> "),
        "{lowered:?}"
    );
    drop(idle);
    assert_eq!(run.terminate(), Some(0));
}

/// Opens the hostile connections of one listener at once; each is checked after.
struct Hostile {
    unfinished_head: (TcpStream, String),
    silent: (TcpStream, String),
    kept_alive: (TcpStream, String),
    slow_body: (TcpStream, String),
    byte_a_second: std::thread::JoinHandle<Duration>,
}

impl Hostile {
    fn open(addr: SocketAddr, post_path: &str) -> Hostile {
        let (mut unfinished_head, peer) = connect(addr);
        unfinished_head
            .write_all(b"GET /health HTTP/1.1\r\nHost: corridor\r\n")
            .unwrap();
        let unfinished_head = (unfinished_head, peer);
        let silent = connect(addr);
        let (mut kept_alive, peer) = connect(addr);
        kept_alive
            .write_all(b"GET /health HTTP/1.1\r\nHost: corridor\r\n\r\n")
            .unwrap();
        kept_alive
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        read_response(&mut kept_alive).unwrap();
        let kept_alive = (kept_alive, peer);
        let (mut slow_body, peer) = connect(addr);
        slow_body
            .write_all(
                format!("POST {post_path} HTTP/1.1\r\nHost: corridor\r\nContent-Length: 1000\r\n\r\nMSH|").as_bytes(),
            )
            .unwrap();
        let slow_body = (slow_body, peer);
        let (slow, _) = connect(addr);
        let byte_a_second = std::thread::spawn(move || {
            let mut slow = slow;
            let started = Instant::now();
            for &byte in b"POST / HTTP/1.1\r\nHost: corridor\r\nContent-Length: 3\r\n\r\nMSH" {
                if slow.write_all(&[byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            started.elapsed()
        });
        Hostile {
            unfinished_head,
            silent,
            kept_alive,
            slow_body,
            byte_a_second,
        }
    }

    /// Checks each was cut off in time (read_timeout 2 s, idle_timeout 3 s), with its log line.
    fn check(self, run: &Run, opened: Instant, slow_body_status: Option<u16>) {
        let Hostile {
            mut unfinished_head,
            mut silent,
            mut kept_alive,
            mut slow_body,
            byte_a_second,
        } = self;
        assert!(closed_by_server(
            &mut unfinished_head.0,
            Duration::from_secs(6)
        ));
        assert!(closed_by_server(&mut silent.0, Duration::from_secs(6)));
        assert!(
            opened.elapsed() >= Duration::from_millis(1500),
            "cut before read_timeout"
        );
        line_for(
            run,
            "request not received within read_timeout",
            &unfinished_head.1,
        );
        line_for(run, "request not received within read_timeout", &silent.1);
        if let Some(expected) = slow_body_status {
            slow_body
                .0
                .set_read_timeout(Some(Duration::from_secs(6)))
                .unwrap();
            let (status, body) = read_response(&mut slow_body.0).unwrap();
            assert_eq!(status, expected, "{body}");
        }
        assert!(closed_by_server(&mut slow_body.0, Duration::from_secs(6)));
        let cut_after = byte_a_second.join().unwrap();
        assert!(
            cut_after < Duration::from_secs(10),
            "the one-byte-a-second client was never cut off"
        );
        assert!(closed_by_server(&mut kept_alive.0, Duration::from_secs(8)));
        assert!(
            opened.elapsed() >= Duration::from_millis(2500),
            "a kept-alive connection was closed before idle_timeout"
        );
    }
}

/// A configuration with the MLLP channel `lab` and `extra` appended.
fn with_lab(extra: &str) -> String {
    format!("[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n{extra}")
}

#[test]
fn api_requests_that_never_finish_are_cut_at_read_timeout_while_mllp_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_lab(
        "[http]\nlisten = \"127.0.0.1:0\"\nread_timeout = \"2s\"\nidle_timeout = \"3s\"\n",
    );
    let run = Run::start(&dir.path().join("data"), &config);
    let api = http_addr(&run, "http");
    let mllp = run.addr.clone();
    let sender = Prober::start(move |n| mllp_message(&mllp, &format!("STEADY{n}")));

    let opened = Instant::now();
    let hostile = Hostile::open(api, "/api/nothing-here");
    // A body the API does not read is answered without waiting for it; the
    // connection is closed, not kept waiting for the rest.
    hostile.check(&run, opened, None);
    health(api).expect("/health after the hostile clients");

    let sender = sender.finish();
    assert!(
        sender.failures.is_empty(),
        "MLLP senders got no ACK: {:?}",
        sender.failures
    );
    assert!(sender.answered >= 20);
    assert_eq!(run.terminate(), Some(0));
}

#[test]
fn http_source_requests_that_never_finish_are_cut_at_read_timeout_while_mllp_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let config = with_lab(
        "[http]\nenabled = false\n[channels.web]\nsource = { type = \"http\", listen = \"127.0.0.1:0\", read_timeout = \"2s\", idle_timeout = \"3s\", max_connections = 20 }\n",
    );
    let run = Run::start(&dir.path().join("data"), &config);
    let web = http_addr(&run, "web");
    let mllp = run.addr.clone();
    let sender = Prober::start(move |n| mllp_message(&mllp, &format!("STEADY{n}")));

    let opened = Instant::now();
    let hostile = Hostile::open(web, "/");
    // The source reads the body, and answers 408 once read_timeout has passed.
    hostile.check(&run, opened, Some(408));

    // Its 20 connections fill with idle ones; a sender that posts at once is still
    // answered, because connections that never sent a byte give way.
    let idle: Vec<TcpStream> = (0..60).map(|_| connect(web).0).collect();
    let (mut poster, _) = connect(web);
    let message = oru("POSTED1");
    poster
        .write_all(
            format!(
                "POST / HTTP/1.1\r\nHost: corridor\r\nContent-Length: {}\r\n\r\n{message}",
                message.len()
            )
            .as_bytes(),
        )
        .unwrap();
    poster
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let (status, body) = read_response(&mut poster).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("MSA|AA|POSTED1"), "{body}");
    drop(idle);

    let sender = sender.finish();
    assert!(
        sender.failures.is_empty(),
        "MLLP senders got no ACK: {:?}",
        sender.failures
    );
    assert!(sender.answered >= 20);
    assert_eq!(run.terminate(), Some(0));
}
