//! MLLP destinations against real MLLP receivers, with a real SQLite store.

mod common;

use std::time::Duration;

use common::*;
use delivery::EntryState;
use hl7v2::AckCode;
use store::{MessageState, Store};

fn mllp(to: &str, extra: &str) -> delivery::DestinationConfig {
    config(&format!(
        "name = \"ehr\"\ntype = \"mllp\"\nto = \"{to}\"\ntimeout = \"2s\"\n{extra}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_arrives_once_in_order_with_transforms_applied() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let received = Received::default();
    let server = receiver("127.0.0.1:0", received.clone(), always_aa()).await;
    let configs = [mllp(
        &server.local_addr().to_string(),
        "transforms = [ { set = \"MSH-5\", value = \"EHR2\" } ]",
    )];
    let (delivery, router) = start(&store, &configs, dir.path()).await;

    let mut ids = Vec::new();
    for i in 0..600 {
        ids.push(ingest(&store, &router, message(&format!("C{i}"), "P1"), None).await);
        if i % 50 == 0 {
            delivery.wake("lab");
        }
    }
    delivery.wake("lab");
    wait_for("600 deliveries", Duration::from_secs(30), || {
        received.len() >= 600
    })
    .await;
    // Give a duplicate the chance to show up.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let expected: Vec<String> = (0..600).map(|i| format!("C{i}")).collect();
    assert_eq!(received.ids(), expected);

    wait_for("delivered state", Duration::from_secs(10), || {
        count_in(&store, EntryState::Delivered) == 600
    })
    .await;
    let entry = &entries(&store, ids[7])[0];
    assert_eq!(entry.state, EntryState::Delivered);
    assert_eq!(entry.attempts, 1);
    assert!(entry.answer.as_deref().unwrap().contains("MSA|AA|C7"));
    let (queued, sent, acked) = (
        entry.queued_at,
        entry.sent_at.unwrap(),
        entry.acked_at.unwrap(),
    );
    assert!(
        queued <= sent && sent <= acked,
        "{queued:?} {sent:?} {acked:?}"
    );
    assert!(String::from_utf8_lossy(&entry.payload).contains("|EHR2|"));
    assert_eq!(journal_state(&store, ids[599]), MessageState::Delivered);

    let stats = delivery.stats().unwrap();
    assert_eq!(stats[0].counts.delivered, 600);
    assert_eq!(stats[0].counts.depth, 0);
    assert_eq!(stats[0].oldest_queued_age, None);
    delivery.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nak_with_on_nak_error_marks_the_message_errored_and_moves_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let received = Received::default();
    let answer: Answer = std::sync::Arc::new(|control: &str, _| {
        Some(match control {
            "BAD1" => AckCode::AE,
            "BAD2" => AckCode::AR,
            _ => AckCode::AA,
        })
    });
    let server = receiver("127.0.0.1:0", received.clone(), answer).await;
    let configs = [mllp(
        &server.local_addr().to_string(),
        "on_nak = \"error\"\npipeline = 1",
    )];
    let (delivery, router) = start(&store, &configs, dir.path()).await;

    let mut ids = Vec::new();
    for control in ["OK1", "BAD1", "OK2", "BAD2", "OK3"] {
        ids.push(ingest(&store, &router, message(control, "P1"), None).await);
    }
    delivery.wake("lab");
    wait_for("three accepted", Duration::from_secs(10), || {
        received.len() == 3
    })
    .await;
    wait_for("two errored", Duration::from_secs(10), || {
        count_in(&store, EntryState::Errored) == 2
    })
    .await;
    assert_eq!(received.ids(), ["OK1", "OK2", "OK3"]);
    let bad = &entries(&store, ids[1])[0];
    assert_eq!(bad.state, EntryState::Errored);
    assert_eq!(bad.attempts, 1);
    assert!(
        bad.state_reason.as_deref().unwrap().contains("AE"),
        "{:?}",
        bad.state_reason
    );
    assert!(bad.answer.as_deref().unwrap().contains("MSA|AE|BAD1"));
    let rejected = &entries(&store, ids[3])[0];
    assert!(rejected.state_reason.as_deref().unwrap().contains("AR"));
    wait_for("journal settled", Duration::from_secs(5), || {
        journal_state(&store, ids[4]) == MessageState::Delivered
    })
    .await;
    assert_eq!(journal_state(&store, ids[1]), MessageState::DeadLettered);
    delivery.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nak_with_on_nak_retry_is_sent_again_until_accepted_and_order_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let received = Received::default();
    // M2 is refused twice, then accepted.
    let answer: Answer = std::sync::Arc::new(|control: &str, seen| {
        Some(if control == "M2" && seen <= 2 {
            AckCode::AE
        } else {
            AckCode::AA
        })
    });
    let server = receiver("127.0.0.1:0", received.clone(), answer).await;
    let configs = [mllp(
        &server.local_addr().to_string(),
        "pipeline = 1\nretry = { max_attempts = 5, initial_backoff = \"20ms\", max_backoff = \"50ms\" }",
    )];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    let mut ids = Vec::new();
    for control in ["M1", "M2", "M3", "M4"] {
        ids.push(ingest(&store, &router, message(control, "P1"), None).await);
    }
    delivery.wake("lab");
    wait_for("four accepted", Duration::from_secs(10), || {
        received.len() == 4
    })
    .await;
    assert_eq!(received.ids(), ["M1", "M2", "M3", "M4"]);
    wait_for("recorded", Duration::from_secs(5), || {
        count_in(&store, EntryState::Delivered) == 4
    })
    .await;
    let retried = &entries(&store, ids[1])[0];
    assert_eq!(retried.attempts, 3);
    assert!(retried.last_error.as_deref().unwrap().contains("AE"));
    delivery.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_outage_mid_stream_loses_nothing_reorders_nothing_and_sends_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let received = Received::default();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let server = receiver(&addr, received.clone(), always_aa()).await;
    let configs = [mllp(
        &addr,
        "retry = { max_attempts = 1000, initial_backoff = \"10ms\", max_backoff = \"100ms\" }",
    )];
    let (delivery, router) = start(&store, &configs, dir.path()).await;

    let total = 1500;
    let producer = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..total {
                ids.push(ingest(&store, &router, message(&format!("O{i}"), "P1"), None).await);
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            ids
        })
    };
    let waker = tokio::spawn({
        let delivery_wake = std::sync::Arc::new(delivery);
        let d = delivery_wake.clone();
        async move {
            for _ in 0..400 {
                d.wake("lab");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            d
        }
    });

    wait_for("some deliveries", Duration::from_secs(20), || {
        received.len() >= 200
    })
    .await;
    server.shutdown().await;
    let during_outage = received.len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        received.len(),
        during_outage,
        "nothing arrives while the receiver is down"
    );
    let server = receiver(&addr, received.clone(), always_aa()).await;

    let ids = producer.await.unwrap();
    wait_for("every delivery", Duration::from_secs(30), || {
        received.len() >= total
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let expected: Vec<String> = (0..total).map(|i| format!("O{i}")).collect();
    assert_eq!(received.ids(), expected, "every message once, in order");
    wait_for("recorded", Duration::from_secs(10), || {
        count_in(&store, EntryState::Delivered) == total as i64
    })
    .await;
    assert_eq!(
        journal_state(&store, ids[total - 1]),
        MessageState::Delivered
    );
    let delivery = std::sync::Arc::into_inner(waker.await.unwrap()).unwrap();
    assert!(
        delivery.stats().unwrap()[0].failures_since_start > 0,
        "the outage was felt"
    );
    delivery.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_after_max_attempts_then_retry_by_hand_delivers_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let configs = [mllp(
        &addr,
        "retry = { max_attempts = 3, initial_backoff = \"10ms\", max_backoff = \"20ms\" }",
    )];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    let mut ids = Vec::new();
    for control in ["D1", "D2", "D3"] {
        ids.push(ingest(&store, &router, message(control, "P1"), None).await);
    }
    delivery.wake("lab");
    wait_for("three dead letters", Duration::from_secs(10), || {
        count_in(&store, EntryState::DeadLettered) == 3
    })
    .await;
    for id in &ids {
        let entry = &entries(&store, *id)[0];
        assert_eq!(entry.attempts, 3);
        let reason = entry.state_reason.as_deref().unwrap();
        assert!(
            reason.starts_with("gave up after 3 attempts: cannot connect"),
            "{reason}"
        );
        assert_eq!(journal_state(&store, *id), MessageState::DeadLettered);
    }
    assert_eq!(delivery.stats().unwrap()[0].counts.dead_lettered, 3);

    let received = Received::default();
    let server = receiver(&addr, received.clone(), always_aa()).await;
    assert_eq!(delivery.retry_dead_lettered("lab", "ehr").await.unwrap(), 3);
    wait_for("redelivery", Duration::from_secs(10), || {
        received.len() == 3
    })
    .await;
    assert_eq!(received.ids(), ["D1", "D2", "D3"]);
    wait_for("journal delivered", Duration::from_secs(5), || {
        journal_state(&store, ids[2]) == MessageState::Delivered
    })
    .await;

    // A delivered entry can be resent: a new entry at the end of the queue.
    let first = entries(&store, ids[0])[0].id;
    let copy = delivery.resend(first).await.unwrap();
    assert!(copy > first);
    wait_for("resend", Duration::from_secs(10), || received.len() == 4).await;
    assert_eq!(received.ids()[3], "D1");

    // Once the copy is recorded delivered, it can be resent in turn.
    wait_for("copy recorded", Duration::from_secs(5), || {
        entries(&store, ids[0])
            .iter()
            .any(|e| e.id == copy && e.state == EntryState::Delivered)
    })
    .await;
    let copy_of_copy = delivery.resend(copy).await.unwrap();
    assert!(copy_of_copy > copy);
    wait_for("second resend", Duration::from_secs(10), || {
        received.len() == 5
    })
    .await;
    assert_eq!(received.ids()[4], "D1");
    delivery.shutdown().await;
    server.shutdown().await;

    // With no worker to take it, a resent entry stays queued: resending it is refused,
    // as is resending an entry that does not exist, and neither adds a row.
    let queued = store
        .write(move |c| delivery::resend_in(c, copy))
        .await
        .unwrap();
    let before = entries(&store, ids[0]).len();
    assert_eq!(before, 4);
    let refusal = store
        .write(move |c| delivery::resend_in(c, queued))
        .await
        .unwrap_err()
        .to_string();
    assert!(refusal.contains("is queued"), "{refusal}");
    let missing = delivery::EntryId(queued.0 + 1000);
    let refusal = store
        .write(move |c| delivery::resend_in(c, missing))
        .await
        .unwrap_err()
        .to_string();
    assert!(refusal.contains("does not exist"), "{refusal}");
    assert_eq!(entries(&store, ids[0]).len(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_order_waits_at_the_head_raises_an_alert_and_never_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let configs = [mllp(
        &addr,
        "on_failure = \"wait\"\nretry = { max_attempts = 2, initial_backoff = \"10ms\", max_backoff = \"50ms\" }",
    )];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    for control in ["W1", "W2", "W3"] {
        ingest(&store, &router, message(control, "P1"), None).await;
    }
    delivery.wake("lab");
    wait_for("alert", Duration::from_secs(10), || {
        delivery.stats().unwrap()[0].alert.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = delivery.stats().unwrap();
    assert_eq!(stats[0].counts.dead_lettered, 0);
    assert_eq!(stats[0].counts.depth, 3);
    assert!(stats[0].oldest_queued_age.unwrap() >= Duration::from_millis(300));
    assert!(
        stats[0]
            .alert
            .as_deref()
            .unwrap()
            .contains("failed attempts")
    );
    // Only the head was tried; the others wait behind it untouched.
    let attempts: Vec<i64> = store
        .read(|c| {
            let mut s = c.prepare("SELECT attempts FROM delivery_queue ORDER BY id")?;
            let v = s
                .query_map([], |r| r.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(v)
        })
        .unwrap();
    assert!(attempts[0] > 2, "{attempts:?}");
    assert_eq!(&attempts[1..], &[0, 0]);

    let received = Received::default();
    let server = receiver(&addr, received.clone(), always_aa()).await;
    wait_for("delivery after the outage", Duration::from_secs(10), || {
        received.len() == 3
    })
    .await;
    assert_eq!(received.ids(), ["W1", "W2", "W3"]);
    wait_for("alert cleared", Duration::from_secs(5), || {
        delivery.stats().unwrap()[0].alert.is_none()
    })
    .await;
    delivery.shutdown().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_left_sending_by_a_stopped_worker_are_delivered_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let silent_received = Received::default();
    let silent = receiver(
        "127.0.0.1:0",
        silent_received.clone(),
        std::sync::Arc::new(|_, _| None),
    )
    .await;
    let configs = [mllp(&silent.local_addr().to_string(), "")];
    let configs = [delivery::DestinationConfig {
        timeout: Duration::from_secs(30),
        ..configs[0].clone()
    }];
    // Queued before the worker starts, so its first poll takes all three in one
    // batch; a worker polling between two ingests would take a partial batch and
    // block on the silent receiver with the rest still `queued`.
    delivery::migrate(&store).await.unwrap();
    let router = delivery::Router::compile("lab", &configs, dir.path()).unwrap();
    for control in ["S1", "S2", "S3"] {
        ingest(&store, &router, message(control, "P1"), None).await;
    }
    let (delivery, _router) = start(&store, &configs, dir.path()).await;
    // Generous: on a loaded CI machine the first poll of the worker can be slow.
    wait_for("sending", Duration::from_secs(30), || {
        count_in(&store, EntryState::Sending) == 3
    })
    .await;
    assert!(
        !delivery.shutdown_within(Duration::from_millis(100)).await,
        "the worker was cut off mid-send"
    );
    assert_eq!(count_in(&store, EntryState::Sending), 3);

    let received = Received::default();
    let server = receiver("127.0.0.1:0", received.clone(), always_aa()).await;
    let configs = [mllp(&server.local_addr().to_string(), "")];
    let (delivery, _router) = start(&store, &configs, dir.path()).await;
    wait_for("redelivery", Duration::from_secs(10), || {
        received.len() == 3
    })
    .await;
    assert_eq!(received.ids(), ["S1", "S2", "S3"]);
    wait_for("recorded", Duration::from_secs(5), || {
        count_in(&store, EntryState::Delivered) == 3
    })
    .await;
    delivery.shutdown().await;
    server.shutdown().await;
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_keys_let_other_patients_pass_a_patient_whose_messages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let received = Received::default();
    // Patient A's messages (control ids A*) are refused until each was seen 3 times.
    let answer: Answer = std::sync::Arc::new(|control: &str, seen| {
        Some(if control.starts_with('A') && seen < 3 {
            AckCode::AE
        } else {
            AckCode::AA
        })
    });
    let server = receiver("127.0.0.1:0", received.clone(), answer).await;
    let configs = [mllp(
        &server.local_addr().to_string(),
        "pipeline = 1\nretry = { max_attempts = 10, initial_backoff = \"100ms\", max_backoff = \"100ms\" }",
    )];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    for i in 0..3 {
        ingest(
            &store,
            &router,
            message(&format!("A{i}"), "PA"),
            Some("PA".into()),
        )
        .await;
        ingest(
            &store,
            &router,
            message(&format!("B{i}"), "PB"),
            Some("PB".into()),
        )
        .await;
    }
    delivery.wake("lab");
    wait_for("patient B", Duration::from_secs(10), || {
        received.ids().iter().filter(|c| c.starts_with('B')).count() == 3
    })
    .await;
    let early = received.ids();
    let a_early = early.iter().filter(|c| c.starts_with('A')).count();
    assert!(
        a_early < 3,
        "B went through while A was still retrying: {early:?}"
    );
    wait_for("patient A", Duration::from_secs(10), || received.len() == 6).await;
    let ids = received.ids();
    let a: Vec<&String> = ids.iter().filter(|c| c.starts_with('A')).collect();
    let b: Vec<&String> = ids.iter().filter(|c| c.starts_with('B')).collect();
    assert_eq!(a, ["A0", "A1", "A2"]);
    assert_eq!(b, ["B0", "B1", "B2"]);
    delivery.shutdown().await;
    server.shutdown().await;
}
