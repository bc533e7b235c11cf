//! Durability under a real crash: every acknowledged append survives SIGKILL, and so does
//! every unsynced write that was answered (`Store::write_unsynced`: committed, its fsync
//! left to a later commit; the process dying cannot lose it, only the machine).
//!
//! The parent re-runs this same binary as a child (selected by an environment variable).
//! The child appends from several tasks and prints `id control-id` only after `append`
//! returned, which is the moment Corridor would send its ACK; half of the tasks then move
//! the message to `processed` with an unsynced write and print `id control-id processed`
//! once it is answered. The parent kills the child
//! with SIGKILL at a random moment, reopens the store and checks that every printed id is
//! there, with its control id, exactly once. Rounds share one data directory, so each round
//! also recovers the WAL the previous kill left behind.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use store::{Journal, MessageId, MessageState, NewMessage, Store, UnixMicros};

const CHILD_DIR: &str = "CORRIDOR_STORE_CRASH_CHILD_DIR";
const CHILD_ROUND: &str = "CORRIDOR_STORE_CRASH_CHILD_ROUND";
const ROUNDS: u32 = 6;
const SENDERS: usize = 8;
/// A child that is never killed stops by itself after this long.
const CHILD_LIFETIME: Duration = Duration::from_secs(30);

fn main() {
    match (std::env::var(CHILD_DIR), std::env::var(CHILD_ROUND)) {
        (Ok(dir), Ok(round)) => append_until_killed(Path::new(&dir), &round),
        _ => {
            let verified = kill_and_verify_rounds();
            println!("crash durability: {verified} acknowledged messages survived SIGKILL");
            println!("crash: {ROUNDS} passed, 0 failed");
        }
    }
}

fn append_until_killed(dir: &Path, round: &str) {
    // A failed write in any task ends the child at once, so the parent notices.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("crash child failed: {info}");
        std::process::exit(101);
    }));
    let journal = Store::open(dir).unwrap().journal();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel: Arc<str> = Arc::from("crash");
        let peer: Arc<str> = Arc::from("127.0.0.1:1");
        for sender in 0..SENDERS {
            let journal = journal.clone();
            let (channel, peer) = (channel.clone(), peer.clone());
            let round = round.to_owned();
            tokio::spawn(async move {
                for n in 0u64.. {
                    let control_id = format!("r{round}-s{sender}-{n}");
                    let message = NewMessage {
                        channel: channel.clone(),
                        raw: format!(
                            "MSH|^~\\&|APP|FAC|||20260101||ADT^A01|{control_id}|P|2.5\r{}",
                            "X".repeat(1400)
                        )
                        .into(),
                        received_at: UnixMicros::now(),
                        peer: peer.clone(),
                        tls_identity: None,
                        sending_application: "APP".into(),
                        sending_facility: "FAC".into(),
                        message_type: "ADT^A01".into(),
                        control_id: control_id.clone(),
                        version: "2.5".into(),
                        state: MessageState::Received,
                        state_reason: None,
                    };
                    let id = journal
                        .append(message, Some(Duration::from_secs(3600)))
                        .await
                        .unwrap()
                        .id();
                    let processed = sender % 2 == 0;
                    if processed {
                        journal
                            .store()
                            .write_unsynced(move |conn| {
                                Journal::set_state_in(conn, id, MessageState::Processed, None)
                            })
                            .await
                            .unwrap();
                    }
                    // The acknowledgement: printed only once the append is durable.
                    let mut out = std::io::stdout().lock();
                    let state = if processed { " processed" } else { "" };
                    if writeln!(out, "{id} {control_id}{state}").is_err() {
                        std::process::exit(0);
                    }
                }
            });
        }
        tokio::time::sleep(CHILD_LIFETIME).await;
    });
}

/// Runs the rounds; returns how many acknowledged messages were checked in total.
fn kill_and_verify_rounds() -> usize {
    let dir = tempfile::tempdir().unwrap();
    let random = RandomState::new();
    let mut acknowledged: Vec<(MessageId, String, MessageState)> = Vec::new();
    for round in 0..ROUNDS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .env(CHILD_DIR, dir.path())
            .env(CHILD_ROUND, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_line, has_first_line) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut lines = Vec::new();
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            // Only complete lines count: a line cut by the kill was never fully "sent".
            while reader.read_line(&mut line).unwrap_or(0) > 0 && line.ends_with('\n') {
                if lines.is_empty() {
                    let _ = first_line.send(());
                }
                lines.push(line.trim_end().to_owned());
                line.clear();
            }
            lines
        });

        has_first_line
            .recv_timeout(Duration::from_secs(20))
            .expect("the child acknowledged nothing within 20 s");
        let delay = 5 + random.hash_one(round) % 200;
        std::thread::sleep(Duration::from_millis(delay));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child stopped before it was killed"
        );
        child.kill().unwrap(); // SIGKILL: no destructors, no flush, no goodbye.
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        assert!(!lines.is_empty());
        for line in &lines {
            let mut words = line.split(' ');
            let (id, control_id) = (words.next().unwrap(), words.next().unwrap());
            let state = match words.next() {
                Some("processed") => MessageState::Processed,
                _ => MessageState::Received,
            };
            acknowledged.push((MessageId(id.parse().unwrap()), control_id.to_owned(), state));
        }

        verify(dir.path(), &acknowledged);
        eprintln!(
            "round {round}: killed after {delay} ms, {} acknowledged this round",
            lines.len()
        );
    }
    acknowledged.len()
}

/// Every acknowledged message is present under its id, exactly once, in the state its
/// last answered write gave it.
fn verify(dir: &Path, acknowledged: &[(MessageId, String, MessageState)]) {
    let store = Store::open(dir).unwrap();
    let journal = store.journal();
    for (id, control_id, state) in acknowledged {
        let stored = journal
            .get(*id)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged message {id} ({control_id}) was lost"));
        assert_eq!(&stored.entry.control_id, control_id, "id {id}");
        assert!(stored.raw.ends_with(&[b'X'; 1400]), "id {id} body cut");
        assert_eq!(stored.entry.state, *state, "id {id}");
    }
    let (integrity, repeated): (String, i64) = store
        .read(|conn| {
            let integrity = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
            let repeated = conn.query_row(
                "SELECT count(*) FROM (SELECT control_id FROM journal \
                 GROUP BY control_id HAVING count(*) > 1)",
                [],
                |r| r.get(0),
            )?;
            Ok((integrity, repeated))
        })
        .unwrap();
    assert_eq!(integrity, "ok");
    assert_eq!(repeated, 0, "some message was stored more than once");
}
