//! A chain of channels keeps at-least-once delivery and order end to end when
//! `corridor run` is killed (SIGKILL) under load.
//!
//! `corridor send` pushes messages over 4 connections into channel `lab`, which hands
//! each message to channel `chart` (a channel destination, `type = "channel"`); `chart`
//! changes MSH-5 and delivers to a recording MLLP server. The engine is killed at a
//! random moment while messages flow through the chain, restarted on the same data
//! directory, and the sender resends what was not acknowledged. At the end:
//! - `chart` holds each message `lab` processed exactly once, in `lab`'s order (the
//!   hand-over commits with the processing, so a crash neither loses nor doubles one);
//! - the destination has every acknowledged message, and the first time it saw each one
//!   follows `lab`'s (receive) order, so each sender's messages arrive in the order sent.
//!
//! `CORRIDOR_CRASH_SEED` repeats a run.

#[path = "send_support.rs"]
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::*;

const MESSAGES: usize = 2_000;

#[test]
fn acknowledged_messages_pass_a_chain_of_channels_in_order_after_a_sigkill() {
    let seed = test_support::crash_seed("channel");
    let pause = Duration::from_millis(seed % 1500);

    let destination = TestServer::plain(|_| Answer::Accept);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = format!(
        "{}[[channels.lab.destinations]]\nname = \"to-chart\"\ntype = \"channel\"\nchannel = \"chart\"\n\
         [channels.chart]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
         transforms = [ {{ set = \"MSH-5\", value = \"CHART\" }} ]\n\
         [[channels.chart.destinations]]\nname = \"ehr\"\ntype = \"mllp\"\nto = \"{}\"\n\
         retry = {{ max_attempts = 1000, initial_backoff = \"50ms\", max_backoff = \"500ms\" }}\n",
        lab_config(""),
        destination.addr
    );
    let all: Vec<String> = (0..MESSAGES).map(|i| format!("R-{i:05}")).collect();
    let file = message_file(dir.path(), "all.hl7", &all);

    let run = Run::start(&data, &config);
    let sender = send_in_background(&run.addr, &file);
    // Kill at a random moment once messages arrive (and pass on down the chain).
    let deadline = Instant::now() + Duration::from_secs(60);
    while journal_len(&data) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(pause);
    run.kill();
    let output = wait_output(sender, Duration::from_secs(120));
    let mut acknowledged: BTreeSet<String> = accepted_ids(&output.stdout).into_iter().collect();
    let before_kill = acknowledged.len();
    let handed_before_restart = journal_of(&data, "chart").len();
    let delivered_before_restart = destination.all_received().len();

    let run = Run::start(&data, &config);
    resend_unacknowledged(dir.path(), &run.addr, &all, &mut acknowledged);
    assert_eq!(acknowledged.len(), MESSAGES);

    wait_until_received(&destination, &acknowledged, Duration::from_secs(180));
    // The destination's answers are recorded: every message of both channels ends
    // `delivered`.
    let all_delivered = || {
        journal(&data)
            .iter()
            .all(|(_, state, _)| state == "delivered")
    };
    while !all_delivered() {
        assert!(
            Instant::now() < deadline,
            "messages not recorded delivered: {:?}",
            journal(&data)
                .into_iter()
                .filter(|(_, state, _)| state != "delivered")
                .take(5)
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(run.terminate(), Some(0));

    // Every message `lab` received was handed to `chart` once, in `lab`'s order.
    let lab = journal_of(&data, "lab");
    let chart = journal_of(&data, "chart");
    assert_eq!(chart, lab, "chart's journal = lab's, message for message");
    assert_eq!(lab.len(), MESSAGES, "each message received once");

    // The first arrival of each message follows the receive order.
    let mut seen = BTreeSet::new();
    let first_arrivals: Vec<String> = destination
        .all_received()
        .into_iter()
        .filter(|id| seen.insert(id.clone()))
        .collect();
    assert_eq!(first_arrivals, lab, "delivery order = receive order");
    let twice = destination.all_received().len() - first_arrivals.len();
    eprintln!(
        "killed {pause:?} after the first hand-over: {before_kill} acknowledged, \
         {handed_before_restart} handed over and {delivered_before_restart} delivered before \
         the kill, {} resent by the sender, {twice} delivered twice",
        MESSAGES - before_kill
    );
}
