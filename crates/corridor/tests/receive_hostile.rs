//! Hostile input against `corridor run`: garbage bytes, a frame that is not
//! HL7, a frame that never ends, a sender that writes one byte a second, a
//! 100 MB frame, several messages in one TCP write, and 1,000 idle
//! connections past which the connection limit refuses. Meanwhile a
//! well-behaved sender keeps sending and must be served throughout; the
//! engine's resident memory stays bounded, and each case leaves its log line.

#[path = "send_support.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::*;

const START: u8 = 0x0B;
const END: &[u8] = &[0x1C, 0x0D];

fn frame(payload: &[u8]) -> Vec<u8> {
    [&[START][..], payload, END].concat()
}

fn connect(addr: &str) -> (TcpStream, String) {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let peer = format!("peer={}", stream.local_addr().unwrap());
    (stream, peer)
}

/// Reads one MLLP frame's payload (test-side, byte by byte is fine here).
fn read_frame(stream: &mut TcpStream) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        stream.read_exact(&mut byte).unwrap();
        match byte[0] {
            START => payload.clear(),
            0x1C => {
                stream.read_exact(&mut byte).unwrap();
                return payload;
            }
            b => payload.push(b),
        }
    }
}

fn msa(ack: &[u8]) -> (String, String) {
    let message = hl7v2::Message::parse(ack).unwrap();
    let code = message.get_str("MSA-1").unwrap().unwrap_or_default();
    let id = message.get_str("MSA-2").unwrap().unwrap_or_default();
    (code.into_owned(), id.into_owned())
}

/// True once the server closed `stream` (EOF or reset) within `limit`.
fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// A sender that behaves: one message at a time until told to stop.
struct SteadySender {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Vec<String>, Duration)>,
}

impl SteadySender {
    fn start(addr: &str) -> SteadySender {
        let stop = Arc::new(AtomicBool::new(false));
        let addr = addr.to_owned();
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = connect(&addr);
            let (mut accepted, mut failures, mut slowest) = (0u64, Vec::new(), Duration::ZERO);
            let mut n = 0;
            while !stopping.load(Ordering::Relaxed) {
                n += 1;
                let id = format!("STEADY{n}");
                let started = Instant::now();
                stream.write_all(&frame(oru(&id).as_bytes())).unwrap();
                let (code, acknowledged) = msa(&read_frame(&mut stream));
                slowest = slowest.max(started.elapsed());
                if code == "AA" && acknowledged == id {
                    accepted += 1;
                } else {
                    failures.push(format!("{id}: {code} {acknowledged}"));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            (accepted, failures, slowest)
        });
        SteadySender { stop, thread }
    }

    fn finish(self) -> (u64, Vec<String>, Duration) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

#[test]
fn hostile_senders_are_cut_off_with_a_log_line_while_others_are_served() {
    // 1,030 idle sockets here, and their 1,010 accepted ends in corridor run, which
    // inherits the raised limit.
    test_support::raise_open_file_limit(1100);
    let dir = tempfile::tempdir().unwrap();
    let run = Run::start(
        &dir.path().join("data"),
        &lab_config(", read_timeout = \"2s\", max_connections = 1010"),
    );
    let steady = SteadySender::start(&run.addr);
    let mut peak_rss_kib = run.rss_kib();

    // Garbage before a frame is skipped, reported, and the frame is answered.
    let (mut garbage, peer) = connect(&run.addr);
    let junk: Vec<u8> = (0..4096u32).map(|i| b' ' + (i % 90) as u8).collect();
    garbage.write_all(&junk).unwrap();
    garbage
        .write_all(&frame(oru("AFTER-GARBAGE").as_bytes()))
        .unwrap();
    assert_eq!(
        msa(&read_frame(&mut garbage)),
        ("AA".to_owned(), "AFTER-GARBAGE".to_owned())
    );
    let line = line_for(&run, "skipped bytes outside MLLP frames", &peer);
    assert!(line.contains("skipped_bytes=4096"), "{line}");

    // A frame that is not HL7 at all gets a NAK and is kept as rejected.
    garbage
        .write_all(&frame(b"this is not an HL7 message"))
        .unwrap();
    let nak = read_frame(&mut garbage);
    let (code, _) = msa(&nak);
    assert!(code == "AR" || code == "AE", "{}", text(&nak));
    line_for(&run, "message rejected and stored for review", &peer);
    assert!(
        journal(&run.data)
            .iter()
            .any(|(_, state, _)| state == "rejected")
    );

    // A frame that never ends and a sender that writes one byte a second:
    // both are cut at read_timeout (2 s), each with its line.
    let (mut unfinished, unfinished_peer) = connect(&run.addr);
    unfinished.write_all(b"\x0bMSH|^~\\&|NEVER|ENDS").unwrap();
    let (slow, slow_peer) = connect(&run.addr);
    let slow_writer = std::thread::spawn(move || {
        let mut slow = slow;
        let started = Instant::now();
        for &byte in b"\x0bMSH|^~\\&|SLOW|LORIS|||20240101||ADT^A01|SLOW1|P|2.5\r".iter() {
            if slow.write_all(&[byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
            if started.elapsed() > Duration::from_secs(8) {
                break;
            }
        }
        started.elapsed()
    });
    let cut_at = Instant::now();
    assert!(closed_by_server(&mut unfinished, Duration::from_secs(6)));
    assert!(cut_at.elapsed() >= Duration::from_millis(1500));
    line_for(
        &run,
        "frame not finished within read_timeout",
        &unfinished_peer,
    );
    line_for(&run, "frame not finished within read_timeout", &slow_peer);
    assert!(
        slow_writer.join().unwrap() < Duration::from_secs(8),
        "the slow sender was never cut off"
    );

    // A 100 MB frame: the connection is closed at max_frame_size (16 MiB),
    // long before the sender is done, and nothing of it is kept.
    let rows_before = journal(&run.data).len();
    let (mut huge, huge_peer) = connect(&run.addr);
    let chunk = vec![b'A'; 1 << 20];
    let mut written = 0usize;
    huge.write_all(b"\x0bMSH|^~\\&|BIG|").unwrap();
    while written < 100 << 20 {
        if huge.write_all(&chunk).is_err() {
            break;
        }
        written += chunk.len();
        if written % (8 << 20) == 0 {
            peak_rss_kib = peak_rss_kib.max(run.rss_kib());
        }
    }
    assert!(
        written < 100 << 20,
        "the server took the whole 100 MB frame"
    );
    let line = line_for(&run, "frame exceeds max_frame_size", &huge_peer);
    assert!(line.contains("max_frame_size=16777216"), "{line}");
    peak_rss_kib = peak_rss_kib.max(run.rss_kib());

    // Several messages in one TCP write: one ACK each, in order.
    let (mut pipelined, _) = connect(&run.addr);
    let ids: Vec<String> = (1..=10).map(|i| format!("PIPE{i}")).collect();
    let burst: Vec<u8> = ids
        .iter()
        .flat_map(|id| frame(oru(id).as_bytes()))
        .collect();
    pipelined.write_all(&burst).unwrap();
    for id in &ids {
        assert_eq!(
            msa(&read_frame(&mut pipelined)),
            ("AA".to_owned(), id.clone())
        );
    }
    let stored: Vec<String> = journal(&run.data)
        .into_iter()
        .map(|(id, _, _)| id)
        .filter(|id| id.starts_with("PIPE"))
        .collect();
    assert_eq!(stored, ids);
    assert!(journal(&run.data).len() > rows_before);

    // 1,000 idle connections are held; past max_connections the rest are
    // refused at once, with a warning.
    let idle: Vec<TcpStream> = (0..1000).map(|_| connect(&run.addr).0).collect();
    let mut extra = Vec::new();
    for _ in 0..30 {
        extra.push(connect(&run.addr));
    }
    let refused = extra
        .iter_mut()
        .filter(|(stream, _)| {
            closed_by_server(&mut stream.try_clone().unwrap(), Duration::from_millis(500))
        })
        .count();
    assert!(
        refused >= 15,
        "only {refused} of 30 connections past the limit were refused"
    );
    let refusals = run.log_lines("max connections reached; connection refused");
    assert!(!refusals.is_empty() && refusals[0].contains("max_connections=1010"));
    peak_rss_kib = peak_rss_kib.max(run.rss_kib());
    drop(idle);
    drop(extra);

    let (accepted, failures, slowest) = steady.finish();
    assert!(failures.is_empty(), "the steady sender got: {failures:?}");
    assert!(
        accepted >= 100,
        "the steady sender was served only {accepted} times"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "the steady sender waited {slowest:?} for an ACK"
    );
    assert!(
        peak_rss_kib < 100 * 1024,
        "corridor run grew to {peak_rss_kib} KiB"
    );
    eprintln!(
        "steady sender: {accepted} accepted, slowest ACK {slowest:?}; peak RSS {peak_rss_kib} KiB"
    );
    assert_eq!(run.terminate(), Some(0));
}
