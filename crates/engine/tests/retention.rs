//! Retention on a real data directory: finished messages past the channel's age or count
//! are deleted with their queue rows, quarantine entries and owed acknowledgements;
//! messages not finished, still queued somewhere, or open in quarantine stay.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::count;
use engine::retention::{Pruned, Retention, prune};
use engine::{ConfigDuration, RetentionConfig};
use store::{MessageId, MessageState, NewMessage, Store, UnixMicros};

const DAY: i64 = 86_400_000_000;

struct Db {
    _dir: tempfile::TempDir,
    store: Store,
}

async fn db() -> Db {
    let (dir, store) = common::migrated_store().await;
    delivery::migrate(&store).await.unwrap();
    quarantine::Quarantine::migrate(&store).await.unwrap();
    Db { _dir: dir, store }
}

/// Appends a message of `channel` in `state`, received `days_ago`; returns its id.
async fn add(
    store: &Store,
    channel: &str,
    control: &str,
    state: MessageState,
    days_ago: i64,
) -> i64 {
    let message = NewMessage {
        channel: Arc::from(channel),
        raw: format!("MSH|^~\\&|LAB|F|EHR|F|20240101||ADT^A08|{control}|P|2.5.1\rPID|1\r")
            .into_bytes()
            .into(),
        received_at: UnixMicros(UnixMicros::now().0 - days_ago * DAY),
        peer: Arc::from("127.0.0.1:1"),
        tls_identity: None,
        sending_application: "LAB".into(),
        sending_facility: "F".into(),
        message_type: "ADT^A08".into(),
        control_id: control.into(),
        version: "2.5.1".into(),
        state,
        state_reason: None,
    };
    store.journal().append(message, None).await.unwrap().id().0
}

/// A destination queue row of message `id` in `state`.
async fn queue_row(store: &Store, id: i64, channel: &str, state: &str) {
    let (channel, state) = (channel.to_owned(), state.to_owned());
    store
        .write(move |conn| {
            conn.execute(
                "INSERT INTO delivery_queue (message_id, channel, destination, state, \
                 next_attempt_at, queued_at, state_changed_at) \
                 VALUES (?1, ?2, 'ehr', ?3, 0, 0, 0)",
                store::rusqlite::params![id, channel, state],
            )?;
            conn.execute(
                "INSERT INTO delivery_payload (entry_id, payload) \
                 VALUES (last_insert_rowid(), x'00')",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
}

/// Control ids of `channel` still in the journal, in order.
fn kept(store: &Store, channel: &str) -> Vec<String> {
    common::rows(
        store,
        "SELECT control_id FROM journal WHERE channel = ?1 ORDER BY id",
        [channel],
        |r| r.get(0),
    )
}

fn policy(
    max_age: Option<Duration>,
    max_messages: Option<u64>,
    batch_size: usize,
) -> RetentionConfig {
    RetentionConfig {
        max_age: max_age.map(ConfigDuration),
        max_messages,
        interval: ConfigDuration(Duration::from_millis(50)),
        batch_size,
    }
}

fn not_stopped() -> tokio::sync::watch::Receiver<bool> {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    std::mem::forget(stop);
    stopped
}

/// One pass over channel "lab" with max_age = 30d, in batches of 2.
async fn prune_lab_past_30_days(store: &Store) -> Pruned {
    prune(
        store,
        "lab",
        &policy(Some(Duration::from_secs(30 * 86_400)), None, 2),
        UnixMicros::now(),
        &not_stopped(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn old_finished_messages_go_and_unfinished_ones_stay() {
    let db = db().await;
    let store = &db.store;
    use MessageState::*;
    // 40 days old: finished, so pruned under max_age = 30d.
    let delivered = add(store, "lab", "delivered", Delivered, 40).await;
    queue_row(store, delivered, "lab", "delivered").await;
    add(store, "lab", "filtered", Filtered, 40).await;
    add(store, "lab", "dead", DeadLettered, 40).await;
    let rejected = add(store, "lab", "rejected-discarded", Rejected, 40).await;
    let open = add(store, "lab", "rejected-open", Rejected, 40).await;
    // 40 days old but not finished: kept, whatever their age.
    for (control, state) in [
        ("received", Received),
        ("processed", Processed),
        ("quarantined", Quarantined),
        ("errored", Errored),
    ] {
        add(store, "lab", control, state, 40).await;
    }
    // Finished, yet one destination still has it queued: kept.
    let waiting = add(store, "lab", "still-queued", DeadLettered, 40).await;
    queue_row(store, waiting, "lab", "dead_lettered").await;
    queue_row(store, waiting, "lab", "queued").await;
    // Recent: kept.
    add(store, "lab", "recent", Delivered, 1).await;
    // Received recently though stored before an old one (a clock set back): kept.
    add(store, "lab", "recent-early", Delivered, 0).await;
    add(store, "lab", "old-late", Delivered, 40).await;
    // Another channel without retention: untouched.
    add(store, "other", "other-old", Delivered, 400).await;

    // Quarantine entries of the two rejected messages: one discarded, one open.
    let validated = quarantine::Validated::new(
        "lab",
        quarantine::Header {
            sending_application: "LAB".into(),
            ..Default::default()
        },
        &[],
    );
    store
        .write(move |conn| {
            for id in [rejected, open] {
                quarantine::quarantine_in(conn, MessageId(id), &validated, UnixMicros::now())?;
            }
            conn.execute(
                "UPDATE quarantine SET status = 'discarded' WHERE message_id = ?1",
                [rejected],
            )?;
            conn.execute(
                "INSERT INTO application_acks_owed (message_id, condition, owed_since) VALUES (?1, 'AL', 0)",
                [delivered],
            )?;
            Ok(())
        })
        .await
        .unwrap();

    // Batches of 2: the pass takes several writes.
    let pruned = prune_lab_past_30_days(store).await;
    assert_eq!(pruned.messages, 5, "{pruned:?}");
    assert_eq!(pruned.queue_rows, 1);
    assert_eq!(
        kept(store, "lab"),
        [
            "rejected-open",
            "received",
            "processed",
            "quarantined",
            "errored",
            "still-queued",
            "recent",
            "recent-early"
        ]
    );
    assert_eq!(kept(store, "other"), ["other-old"]);
    // Their rows went with them; the kept message's queue rows stay.
    assert_eq!(count(store, "SELECT count(*) FROM delivery_queue"), 2);
    assert_eq!(count(store, "SELECT count(*) FROM quarantine"), 1);
    assert_eq!(
        count(store, "SELECT count(*) FROM application_acks_owed"),
        0
    );

    // The store's running counts lost exactly the pruned messages.
    let lab = &store
        .message_counts()
        .into_iter()
        .find(|(c, _)| c == "lab")
        .unwrap()
        .1;
    for (state, n) in MessageState::ALL.iter().zip(lab) {
        let sql = format!(
            "SELECT count(*) FROM journal WHERE channel = 'lab' AND state = '{}'",
            state.as_str()
        );
        assert_eq!(*n as i64, count(store, &sql), "{state}");
    }

    // A second pass finds nothing more.
    let again = prune_lab_past_30_days(store).await;
    assert_eq!(again.messages, 0);
}

#[tokio::test]
async fn the_background_task_keeps_the_newest_finished_messages() {
    let db = db().await;
    let store = &db.store;
    for n in 0..7 {
        add(store, "feed", &format!("D{n}"), MessageState::Delivered, 0).await;
    }
    add(store, "feed", "R", MessageState::Received, 0).await;
    let retention = Retention::spawn(
        store.clone(),
        vec![("feed".to_owned(), policy(None, Some(3), 2))],
    );
    for _ in 0..1200 {
        if kept(store, "feed").len() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    retention.shutdown().await;
    // The newest three finished messages, and the one not finished.
    assert_eq!(kept(store, "feed"), ["D4", "D5", "D6", "R"]);
}
