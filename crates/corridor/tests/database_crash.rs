//! A message `corridor run` acknowledged has its rows in a database destination exactly
//! once, even when the engine is killed (SIGKILL) while it writes them.
//!
//! As in `route_crash.rs`: `corridor send` pushes messages into a channel whose one
//! destination writes into a real PostgreSQL (127.0.0.1:5432, a database of its own),
//! the engine is killed at a random moment, restarted on the same data directory, and
//! the sender resends what was not acknowledged. At the end every acknowledged message
//! has its row, and no message has two: a delivery tried again after the kill finds the
//! `corridor_delivered` marker its first transaction committed. `CORRIDOR_CRASH_SEED`
//! repeats a run.

#[path = "send_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use test_support::psql;

use support::*;

const MESSAGES: usize = 1_500;

#[test]
fn acknowledged_messages_have_their_rows_exactly_once_after_a_sigkill() {
    test_support::database_services();
    let seed = test_support::crash_seed("database");
    let pause = Duration::from_millis(seed % 1500);

    let database = test_support::ScratchDatabase::create("corridor_crash", seed);
    let url = database.url.clone();
    psql(
        &url,
        "create table results (control_id text, code text, value numeric)",
    );

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = format!(
        "{}[[channels.lab.destinations]]\nname = \"reporting\"\ntype = \"database\"\nurl = \"{url}\"\n\
         statement = \"insert into results (control_id, code, value) values ($1, $2, $3)\"\n\
         params = [\"MSH-10\", \"OBX-3.1\", \"OBX-5\"]\nfor_each = \"OBX\"\n\
         retry = {{ max_attempts = 1000, initial_backoff = \"50ms\", max_backoff = \"500ms\" }}\n",
        lab_config("")
    );
    let all: Vec<String> = (0..MESSAGES).map(|i| format!("D-{i:05}")).collect();
    let file = message_file(dir.path(), "all.hl7", &all);

    let run = Run::start(&data, &config);
    let sender = send_in_background(&run.addr, &file);
    let deadline = Instant::now() + Duration::from_secs(60);
    while journal_len(&data) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(pause);
    run.kill();
    let output = wait_output(sender, Duration::from_secs(120));
    let mut acknowledged: BTreeSet<String> = accepted_ids(&output.stdout).into_iter().collect();
    let before_kill = acknowledged.len();
    let rows_before_restart = psql(&url, "select count(*) from results");

    let run = Run::start(&data, &config);
    resend_unacknowledged(dir.path(), &run.addr, &all, &mut acknowledged);
    assert_eq!(acknowledged.len(), MESSAGES);

    let rows = || -> BTreeMap<String, u32> {
        psql(
            &url,
            "select control_id, count(*) from results group by control_id",
        )
        .lines()
        .filter_map(|line| line.split_once(','))
        .map(|(id, n)| (id.to_owned(), n.trim().parse().unwrap()))
        .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let got = rows();
        if acknowledged.iter().all(|id| got.contains_key(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged messages never had their rows written",
            acknowledged
                .iter()
                .filter(|id| !got.contains_key(*id))
                .count()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(run.terminate(), Some(0));
    let got = rows();
    let twice: Vec<_> = got.iter().filter(|(_, n)| **n != 1).collect();
    assert!(
        twice.is_empty(),
        "messages with more than one row: {twice:?}"
    );
    let journal: BTreeSet<String> = journal(&data).into_iter().map(|(id, _, _)| id).collect();
    assert!(
        got.keys().all(|id| journal.contains(id)),
        "a row for a message the journal does not hold"
    );
    let markers = psql(&url, "select count(*) from corridor_delivered");
    assert_eq!(markers.trim(), got.len().to_string());
    eprintln!(
        "killed {pause:?} after the first row: {before_kill} acknowledged and {} rows \
         written before the kill, {} resent by the sender",
        rows_before_restart.trim(),
        MESSAGES - before_kill
    );
}
