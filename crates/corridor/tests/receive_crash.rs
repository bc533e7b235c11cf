//! A message `corridor run` acknowledged survives a SIGKILL: `corridor send`
//! pushes 20,000 messages over 8 connections, the engine is killed at a random
//! moment, restarted on the same data directory, and the sender resends what
//! was not acknowledged. At the end every message is in the journal exactly
//! once: the acknowledged ones because they were committed before their ACK,
//! the resent ones that had been stored but not acknowledged because
//! duplicate detection answers them without storing them again.
//!
//! `CORRIDOR_CRASH_LOOPS=N` sets the number of kills (default 3).

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
    let data = dir.path().join("data");
    let all: Vec<String> = (0..MESSAGES).map(|i| format!("CRASH{i:05}")).collect();
    let mut acknowledged = BTreeSet::new();
    let mut remaining = all.clone();
    let started = Instant::now();
    let mut round = 0;
    let mut stored_unacknowledged = 0;
    let mut kills_done = 0;
    while !remaining.is_empty() {
        assert!(
            round <= kills + 2,
            "messages still unacknowledged after every round"
        );
        let run = Run::start(&data, &lab_config(""));
        // Stored before a kill but never acknowledged: the resend must not store them again.
        let in_journal: BTreeSet<String> =
            journal(&data).into_iter().map(|(id, _, _)| id).collect();
        stored_unacknowledged += remaining
            .iter()
            .filter(|id| in_journal.contains(*id))
            .count();
        let file = message_file(dir.path(), &format!("round{round}.hl7"), &remaining);
        let sender = corridor()
            .args([
                "send",
                "--connections",
                "8",
                "--timeout",
                "10",
                "--to",
                &run.addr,
            ])
            .arg(&file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let killed = kills_done < kills;
        let mut delay = None;
        let still_running = if killed {
            // Somewhere in the sending (which takes seconds): counted from
            // the first row this round adds, as reading the file takes a while.
            let before = journal_len(&data);
            let deadline = Instant::now() + Duration::from_secs(60);
            while journal_len(&data) == before && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            // Up to about half of what the rest takes to send in a debug build.
            let pause = Duration::from_millis(20 + random.below(remaining.len() as u64 / 8 + 1));
            std::thread::sleep(pause);
            run.kill();
            kills_done += 1;
            delay = Some(pause);
            None
        } else {
            Some(run)
        };
        let output = wait_output(sender, Duration::from_secs(120));
        let accepted = accepted_ids(&output.stdout);
        if let Some(run) = still_running {
            assert!(
                output.status.success(),
                "round {round} without a kill failed: {}",
                text(&output.stderr)
            );
            assert_eq!(run.terminate(), Some(0), "SIGTERM is a clean exit");
        }
        eprintln!(
            "round {round}: sent {}, acknowledged {}, killed after {delay:?}",
            remaining.len(),
            accepted.len()
        );
        acknowledged.extend(accepted);
        remaining.retain(|id| !acknowledged.contains(id));
        round += 1;
    }

    // The last engine has stopped; read the journal it left.
    let mut stored: BTreeMap<String, usize> = BTreeMap::new();
    for (id, _, _) in journal(&data) {
        *stored.entry(id).or_default() += 1;
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
        "{kills_done} kills, {round} rounds, {MESSAGES} messages, each stored once \
         ({stored_unacknowledged} stored but unacknowledged at a kill, resent, not stored again), in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
