//! A message `corridor run` acknowledged survives a SIGKILL: `corridor send`
//! pushes 20,000 messages over 8 connections, the engine is killed at a random
//! moment, restarted on the same data directory, and the sender resends what
//! was not acknowledged. At the end every message is in the journal exactly
//! once: the acknowledged ones because they were committed before their ACK,
//! the resent ones that had been stored but not acknowledged because
//! duplicate detection answers them without storing them again.
//!
//! Each loop sends 20,000 new messages, kills once, restarts and resends.
//! `CORRIDOR_CRASH_LOOPS=N` sets the number of loops, so of kills (default 3).

#[path = "send_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::*;

const MESSAGES: usize = 20_000;

/// A small xorshift generator seeded from the clock; the seed is printed so a
/// failing run can be repeated with `CORRIDOR_CRASH_SEED`.
struct Random(u64);

impl Random {
    fn new() -> Random {
        let seed = std::env::var("CORRIDOR_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("crash test seed {seed}");
        Random(seed)
    }

    fn below(&mut self, limit: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % limit
    }
}

#[test]
fn every_acknowledged_message_is_in_the_journal_exactly_once_after_sigkills() {
    let kills: usize = std::env::var("CORRIDOR_CRASH_LOOPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut random = Random::new();
    let dir = tempfile::tempdir().unwrap();
    // One data directory for every loop: each restart also reopens the
    // journal the earlier loops left.
    let data = dir.path().join("data");
    let started = Instant::now();
    let mut stored_unacknowledged = 0;
    for kill in 0..kills {
        let all: Vec<String> = (0..MESSAGES).map(|i| format!("K{kill}-{i:05}")).collect();
        let file = message_file(dir.path(), "all.hl7", &all);

        // Send everything; kill the engine at a random moment of the sending.
        let run = Run::start(&data, &lab_config(""));
        let before = journal_len(&data);
        let sender = send_child(&run.addr, &file);
        // Counted from the first row this loop adds: reading the file takes a while.
        let deadline = Instant::now() + Duration::from_secs(60);
        while journal_len(&data) == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let pause = Duration::from_millis(random.below(2000));
        std::thread::sleep(pause);
        run.kill();
        let output = wait_output(sender, Duration::from_secs(120));
        let mut acknowledged: BTreeSet<String> = accepted_ids(&output.stdout).into_iter().collect();
        let first = acknowledged.len();

        // Restart on the same data; resend what was not acknowledged.
        let run = Run::start(&data, &lab_config(""));
        let in_journal: BTreeSet<String> =
            journal(&data).into_iter().map(|(id, _, _)| id).collect();
        let remaining: Vec<String> = all
            .iter()
            .filter(|id| !acknowledged.contains(*id))
            .cloned()
            .collect();
        // Stored before the kill but never acknowledged: the resend must not store them again.
        stored_unacknowledged += remaining
            .iter()
            .filter(|id| in_journal.contains(*id))
            .count();
        if !remaining.is_empty() {
            let file = message_file(dir.path(), "rest.hl7", &remaining);
            let output = wait_output(send_child(&run.addr, &file), Duration::from_secs(120));
            assert!(
                output.status.success(),
                "resend failed: {}",
                text(&output.stderr)
            );
            acknowledged.extend(accepted_ids(&output.stdout));
        }
        assert_eq!(run.terminate(), Some(0), "SIGTERM is a clean exit");

        let mut stored: BTreeMap<String, usize> = BTreeMap::new();
        for (id, _, _) in journal(&data) {
            if id.starts_with(&format!("K{kill}-")) {
                *stored.entry(id).or_default() += 1;
            }
        }
        let missing: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !stored.contains_key(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "acknowledged but not in the journal: {missing:?}"
        );
        let repeated: Vec<(&String, &usize)> = stored.iter().filter(|(_, n)| **n > 1).collect();
        assert!(repeated.is_empty(), "stored more than once: {repeated:?}");
        assert_eq!(acknowledged.len(), MESSAGES);
        assert_eq!(stored.len(), MESSAGES);
        eprintln!(
            "kill {kill}: after {pause:?} past the first row; {first} acknowledged before it, {} resent",
            remaining.len()
        );
    }
    eprintln!(
        "{kills} kills of {MESSAGES} messages over 8 connections: every acknowledged message stored \
         exactly once ({stored_unacknowledged} stored but unacknowledged at a kill, resent, not stored again), \
         in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn send_child(addr: &str, file: &std::path::Path) -> std::process::Child {
    corridor()
        .args([
            "send",
            "--connections",
            "8",
            "--timeout",
            "10",
            "--to",
            addr,
        ])
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}
