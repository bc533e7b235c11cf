//! A message `corridor run` acknowledged reaches its destination, in order, even when
//! the engine is killed (SIGKILL) under load between receiving and delivering.
//!
//! `corridor send` pushes messages over 4 connections into a channel with one MLLP
//! destination (a recording MLLP server); the engine is killed at a random moment while
//! messages arrive and are being delivered, restarted on the same data directory, and
//! the sender resends what was not acknowledged. At the end the destination has every
//! acknowledged message, and the first time it saw each one follows the journal's
//! (receive) order. A message may arrive twice (at-least-once): only those in flight to
//! the destination at the kill, whose answer was never recorded.
//! `CORRIDOR_CRASH_SEED` repeats a run.

#[path = "send_support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::*;

const MESSAGES: usize = 4_000;

#[test]
fn acknowledged_messages_reach_the_destination_in_order_after_a_sigkill() {
    let seed = test_support::crash_seed("route");
    let pause = Duration::from_millis(seed % 1500);

    let destination = TestServer::plain(|_| Answer::Accept);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = format!(
        "{}[[channels.lab.destinations]]\nname = \"ehr\"\ntype = \"mllp\"\nto = \"{}\"\n\
         retry = {{ max_attempts = 1000, initial_backoff = \"50ms\", max_backoff = \"500ms\" }}\n",
        lab_config(""),
        destination.addr
    );
    let all: Vec<String> = (0..MESSAGES).map(|i| format!("R-{i:05}")).collect();
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
    let delivered_before_restart = destination.all_received().len();

    let run = Run::start(&data, &config);
    resend_unacknowledged(dir.path(), &run.addr, &all, &mut acknowledged);
    assert_eq!(acknowledged.len(), MESSAGES);

    wait_until_received(&destination, &acknowledged, Duration::from_secs(120));
    assert_eq!(run.terminate(), Some(0));

    // The first arrival of each message follows the journal's order.
    let journal_order: Vec<String> = journal(&data).into_iter().map(|(id, _, _)| id).collect();
    let mut seen = BTreeSet::new();
    let first_arrivals: Vec<String> = destination
        .all_received()
        .into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect();
    assert_eq!(
        first_arrivals, journal_order,
        "delivery order = receive order"
    );
    let twice = destination.all_received().len() - first_arrivals.len();
    eprintln!(
        "killed {pause:?} after the first row: {before_kill} acknowledged and \
         {delivered_before_restart} delivered before the kill, {} resent by the sender, \
         {twice} delivered twice",
        MESSAGES - before_kill
    );
}
