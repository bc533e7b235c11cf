//! A failing disk under `corridor run`: a shared library loaded with
//! `LD_PRELOAD` (`test_support::disk_fault`) makes the fsyncs, then the
//! writes, of the database's write-ahead log fail with EIO while a sender
//! keeps sending over MLLP. No message sent while the disk fails may be
//! acknowledged positively; once the disk works again the engine accepts
//! messages again; and after a kill -9, every message that got an AA is in the
//! journal.

#[path = "send_support.rs"]
mod support;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::*;
use test_support::disk_fault::DiskFault;

/// A sender with one message in flight, as an interface engine's peer sends.
struct Sender {
    addr: String,
    stream: Option<TcpStream>,
}

impl Sender {
    fn new(addr: &str) -> Sender {
        Sender {
            addr: addr.to_owned(),
            stream: None,
        }
    }

    /// MSA-1 of the answer to the message `id`; None when no answer came within
    /// 10 s or the connection closed (the next send opens a new one).
    fn send(&mut self, id: &str) -> Option<String> {
        let answer = self.exchange(id);
        if answer.is_none() {
            self.stream = None;
        }
        answer
    }

    fn exchange(&mut self, id: &str) -> Option<String> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(&self.addr).ok()?;
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .ok()?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut()?;
        let mut frame = vec![0x0B];
        frame.extend_from_slice(oru(id).as_bytes());
        frame.extend_from_slice(&[0x1C, 0x0D]);
        stream.write_all(&frame).ok()?;
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        while !answer.ends_with(&[0x1C, 0x0D]) {
            match stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return None,
            }
        }
        let text = String::from_utf8_lossy(&answer).into_owned();
        let msa = text.split('\r').find(|s| s.starts_with("MSA|"))?;
        let mut fields = msa.split('|').skip(1);
        let code = fields.next()?.to_owned();
        assert_eq!(
            fields.next(),
            Some(id),
            "an answer to another message: {text}"
        );
        Some(code)
    }
}

/// Sends `ids` one by one; returns each id with the code it was answered with.
fn send_all(sender: &mut Sender, ids: &[String]) -> Vec<(String, Option<String>)> {
    ids.iter().map(|id| (id.clone(), sender.send(id))).collect()
}

fn named(prefix: &str, n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("{prefix}{i:02}")).collect()
}

fn positively_acknowledged(answers: &[(String, Option<String>)]) -> Vec<String> {
    answers
        .iter()
        .filter(|(_, code)| code.as_deref() == Some("AA"))
        .map(|(id, _)| id.clone())
        .collect()
}

#[test]
fn no_message_is_acknowledged_while_the_log_cannot_be_synced_or_written_and_none_acknowledged_is_lost()
 {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fault = DiskFault::new(dir.path(), "corridor.db-wal");
    let run = Run::start_with_env(&data, &lab_config(""), &fault.env());
    let mut sender = Sender::new(&run.addr);
    let mut acknowledged = Vec::new();

    let before = send_all(&mut sender, &named("OK", 10));
    assert_eq!(positively_acknowledged(&before).len(), 10, "{before:?}");
    acknowledged.extend(positively_acknowledged(&before));

    // Spread over about half a second, so background checkpoints meet the fault too.
    fault.fail_syncs();
    let during_sync_fault: Vec<_> = named("SYNC", 10)
        .into_iter()
        .map(|id| {
            std::thread::sleep(Duration::from_millis(50));
            let answer = sender.send(&id);
            (id, answer)
        })
        .collect();
    let synced_faults = fault.injected().len();
    assert!(synced_faults > 0, "no fsync of the WAL failed");
    assert_eq!(
        positively_acknowledged(&during_sync_fault),
        Vec::<String>::new(),
        "acknowledged although the WAL was not synced: {during_sync_fault:?}"
    );

    fault.fail_writes();
    let during_write_fault = send_all(&mut sender, &named("WRITE", 10));
    assert!(
        fault.injected()[synced_faults..]
            .iter()
            .any(|call| call.contains("write")),
        "no write to the WAL failed: {:?}",
        fault.injected()
    );
    assert_eq!(
        positively_acknowledged(&during_write_fault),
        Vec::<String>::new(),
        "acknowledged although the WAL could not be written: {during_write_fault:?}"
    );
    // Four connections keeping messages in flight: batches of many messages share a
    // failing commit, and each of them is refused.
    let many = named("MANY", 200);
    let file = message_file(dir.path(), "many.hl7", &many);
    let output = send(
        &[
            "--to",
            &run.addr,
            "--connections",
            "4",
            file.to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    let stdout = text(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert_eq!(
        accepted_ids(&output.stdout),
        Vec::<String>::new(),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("AE ")).count(),
        200,
        "{stdout}"
    );

    let log = run.log();
    assert!(
        log.contains("could not store messages; answering with negative acknowledgements"),
        "{log}"
    );

    // The disk works again: the sender sends every refused message again, then new
    // ones, and each is accepted (the first may still meet the fault's aftermath).
    fault.clear();
    let refused: Vec<String> = during_sync_fault
        .iter()
        .chain(&during_write_fault)
        .map(|(id, _)| id.clone())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut resent = Vec::new();
    for id in refused.iter().chain(&named("AFTER", 10)) {
        loop {
            let answer = sender.send(id);
            if answer.as_deref() == Some("AA") {
                resent.push(id.clone());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} still not accepted 30 s after the disk recovered (last answer {answer:?}): {}",
                run.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    acknowledged.extend(resent);

    eprintln!(
        "while syncs failed: {during_sync_fault:?}\nwhile writes failed: {during_write_fault:?}\n\
         calls made to fail: {}\nlog:\n{}",
        fault.injected().len(),
        run.log()
    );
    run.kill();
    let stored: BTreeSet<String> = journal(&data).into_iter().map(|(id, _, _)| id).collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");
    assert_eq!(acknowledged.len(), 10 + 20 + 10);
}
