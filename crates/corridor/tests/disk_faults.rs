//! A failing disk under `corridor run`: a shared library loaded with
//! `LD_PRELOAD` (`test_support::disk_fault`) makes the writes (EIO, then
//! ENOSPC), then the fsyncs (EIO), of the database's write-ahead log fail
//! while a sender keeps sending over MLLP. No message sent while the disk fails may be
//! acknowledged positively. A failed write rolls its commit back and the engine
//! accepts messages again once the disk works; a failed fsync is fatal (a later
//! fsync could succeed without the pages the failed one dropped): the engine
//! answers nothing positively from then on and exits, and a restarted engine
//! accepts again. After all that and a kill -9, every message that got an AA
//! is in the journal.

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

/// Sends `ids` one by one until each is answered AA, for at most 30 s in all
/// (the first may still meet the fault's aftermath); returns them.
fn send_until_accepted(
    sender: &mut Sender,
    ids: &[String],
    log: impl Fn() -> String,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut accepted = Vec::new();
    for id in ids {
        loop {
            let answer = sender.send(id);
            if answer.as_deref() == Some("AA") {
                accepted.push(id.clone());
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{id} still not accepted 30 s after the disk recovered (last answer {answer:?}): {}",
                log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    accepted
}

#[test]
fn no_message_is_acknowledged_while_the_log_cannot_be_written_or_after_its_fsync_failed_and_none_acknowledged_is_lost()
 {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let fault = DiskFault::new(dir.path(), "corridor.db-wal");
    let mut run = Run::start_with_env(&data, &lab_config(""), &fault.env());
    let mut sender = Sender::new(&run.addr);
    let mut acknowledged = Vec::new();

    let before = send_all(&mut sender, &named("OK", 10));
    assert_eq!(positively_acknowledged(&before).len(), 10, "{before:?}");
    acknowledged.extend(positively_acknowledged(&before));

    // A failed write: SQLite rolls the commit back, nothing is lost from its cache.
    fault.fail_writes();
    let during_write_fault = send_all(&mut sender, &named("WRITE", 10));
    assert!(
        fault.injected().iter().any(|call| call.contains("write")),
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

    // The disk works again: the same process accepts the refused messages, then new ones.
    fault.clear();
    let refused: Vec<String> = during_write_fault
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    let again: Vec<String> = refused.into_iter().chain(named("AFTER", 10)).collect();
    acknowledged.extend(send_until_accepted(&mut sender, &again, || run.log()));
    assert!(
        run.wait_for_exit(Duration::ZERO).is_none(),
        "the engine stopped after a failed write: {}",
        run.log()
    );

    // A full disk (ENOSPC on write) is the same: AE while it is full, AA once it has room.
    let write_faults = fault.injected().len();
    fault.fill_disk();
    let while_full = send_all(&mut sender, &named("FULL", 5));
    assert!(
        fault.injected().len() > write_faults,
        "no write to the WAL failed on the full disk"
    );
    assert_eq!(
        positively_acknowledged(&while_full),
        Vec::<String>::new(),
        "acknowledged although the disk was full: {while_full:?}"
    );
    fault.clear();
    let again: Vec<String> = while_full.iter().map(|(id, _)| id.clone()).collect();
    acknowledged.extend(send_until_accepted(&mut sender, &again, || run.log()));
    assert!(
        run.wait_for_exit(Duration::ZERO).is_none(),
        "the engine stopped after a full disk: {}",
        run.log()
    );
    let write_faults = fault.injected().len();

    // A failed fsync: nothing from then on is acknowledged, even once the disk works
    // again, and the process exits so that a supervisor restarts it.
    fault.fail_syncs();
    let sync_failed_at = Instant::now();
    let mut during_sync_fault = Vec::new();
    for id in named("SYNC", 10) {
        std::thread::sleep(Duration::from_millis(50));
        let answer = sender.send(&id);
        during_sync_fault.push((id, answer));
    }
    assert!(
        fault.injected()[write_faults..]
            .iter()
            .any(|call| call.contains("sync")),
        "no fsync of the WAL failed: {:?}",
        fault.injected()
    );
    fault.clear();
    let after_recovery = send_all(&mut sender, &named("HEALED", 5));
    assert_eq!(
        positively_acknowledged(&during_sync_fault),
        Vec::<String>::new(),
        "acknowledged although an fsync of the WAL failed: {during_sync_fault:?}"
    );
    assert_eq!(
        positively_acknowledged(&after_recovery),
        Vec::<String>::new(),
        "acknowledged after a failed fsync, without a restart: {after_recovery:?}"
    );
    let status = run
        .wait_for_exit(Duration::from_secs(5))
        .unwrap_or_else(|| panic!("still running after a failed fsync: {}", run.log()));
    let exited_after = sync_failed_at.elapsed();
    assert!(
        status.code().is_some_and(|code| code != 0),
        "{status:?}: {}",
        run.log()
    );
    assert!(exited_after < Duration::from_secs(10), "{exited_after:?}");
    let stopped = run.log_lines("an fsync of the database failed");
    assert_eq!(stopped.len(), 1, "{}", run.log());
    assert!(
        stopped[0].contains("ERROR") && stopped[0].contains("restart"),
        "{stopped:?}"
    );

    // Restarted on the same data directory, the engine accepts again: the refused
    // messages, then new ones.
    let run = Run::start(&data, &lab_config(""));
    let mut sender = Sender::new(&run.addr);
    let refused: Vec<String> = during_sync_fault
        .iter()
        .chain(&after_recovery)
        .map(|(id, _)| id.clone())
        .collect();
    let again: Vec<String> = refused.into_iter().chain(named("RESTARTED", 10)).collect();
    acknowledged.extend(send_until_accepted(&mut sender, &again, || run.log()));

    eprintln!(
        "while writes failed: {during_write_fault:?}\nwhile syncs failed: {during_sync_fault:?}\n\
         after the disk recovered: {after_recovery:?}\nexited {exited_after:?} after the fault with {status:?}, having logged:\n{}\n\
         calls made to fail: {}\nlog after the restart:\n{}",
        stopped[0],
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
    assert_eq!(acknowledged.len(), 10 + 20 + 5 + 15 + 10);
}
