//! The audit trail's own retention, on a real data directory: message retention never
//! touches audit records, and the audit retention task drops only records past
//! `[audit] retention`, leaving a chain that still verifies.

mod common;

use std::sync::Arc;
use std::time::Duration;

use access::audit::{ActionKind, Audit, AuditRecord, DEFAULT_RETENTION};
use common::{count, wait_for};
use engine::audit_retention::AuditRetention;
use engine::retention::prune;
use engine::{ConfigDuration, RetentionConfig};
use store::{MessageState, NewMessage, UnixMicros};

const DAY: i64 = 86_400_000_000;

fn record(days_ago: i64, what: &str) -> AuditRecord {
    AuditRecord {
        at: UnixMicros::now().0 - days_ago * DAY,
        ..AuditRecord::cli("message.read", ActionKind::Read, what)
    }
}

#[tokio::test]
async fn audit_records_outlive_messages_and_are_pruned_only_past_their_own_retention() {
    let (_dir, store) = common::migrated_store().await;
    delivery::migrate(&store).await.unwrap();
    quarantine::Quarantine::migrate(&store).await.unwrap();
    let audit = Audit::open(store.clone()).await.unwrap();
    // Seven years ago, two years ago, and today.
    for (days, what) in [(7 * 366, "old"), (2 * 366, "recent"), (0, "today")] {
        audit.append(record(days, what)).await.unwrap();
    }
    // A delivered message from 400 days ago, read then.
    let message = NewMessage {
        channel: Arc::from("lab"),
        raw: b"MSH|^~\\&|LAB|F|EHR|F|20240101||ADT^A08|C1|P|2.5.1\rPID|1\r"
            .to_vec()
            .into(),
        received_at: UnixMicros(UnixMicros::now().0 - 400 * DAY),
        peer: Arc::from("127.0.0.1:1"),
        tls_identity: None,
        sending_application: "LAB".into(),
        sending_facility: "F".into(),
        message_type: "ADT^A08".into(),
        control_id: "C1".into(),
        version: "2.5.1".into(),
        state: MessageState::Delivered,
        state_reason: None,
    };
    store.journal().append(message, None).await.unwrap();
    // The three records folded from the audit file into `audit_log`.
    audit.fold().unwrap();

    // Message retention (30 days) deletes the message and no audit record.
    let policy = RetentionConfig {
        max_age: Some(ConfigDuration(Duration::from_secs(30 * 86_400))),
        max_messages: None,
        interval: ConfigDuration(Duration::from_secs(60)),
        batch_size: 100,
    };
    let (_stop, stopped) = tokio::sync::watch::channel(false);
    let pruned = prune(&store, "lab", &policy, UnixMicros::now(), &stopped)
        .await
        .unwrap();
    assert_eq!(pruned.messages, 1);
    assert_eq!(count(&store, "SELECT count(*) FROM journal"), 0);
    assert_eq!(count(&store, "SELECT count(*) FROM audit_log"), 3);

    // The audit retention task (six years) drops the seven-year-old record at once.
    let task = AuditRetention::spawn(audit.clone(), DEFAULT_RETENTION, Duration::from_secs(3600));
    wait_for(
        "the old audit record is dropped",
        Duration::from_secs(30),
        || count(&store, "SELECT count(*) FROM audit_log") == 2,
    )
    .await;
    task.shutdown().await;
    let kept: Vec<String> = common::rows(
        &store,
        "SELECT resource FROM audit_log ORDER BY seq",
        [],
        |row| row.get(0),
    );
    assert_eq!(kept, ["recent", "today"]);
    let verification = audit.verify().unwrap();
    assert_eq!(verification.broken, None);
    assert_eq!(verification.records, 2);
    // Appending goes on from the pruned chain.
    audit.append(record(0, "after")).await.unwrap();
    assert_eq!(audit.verify().unwrap().broken, None);
}
