//! The message journal on a real SQLite file.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use store::rusqlite::Connection;
use store::{
    Appended, Error, Journal, JournalFilter, MessageId, MessageState, NewMessage, SCHEMA_VERSION,
    Store, UnixMicros,
};

const HOUR: Option<Duration> = Some(Duration::from_secs(3600));

fn message(channel: &str, control_id: &str) -> NewMessage {
    let raw = format!(
        "MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01|{control_id}|P|2.5.1\rOBX|1|NM|x||1\r"
    );
    NewMessage {
        channel: Arc::from(channel),
        raw: raw.into(),
        received_at: UnixMicros::now(),
        peer: Arc::from("127.0.0.1:40000"),
        tls_identity: None,
        sending_application: "LAB".into(),
        sending_facility: "NORTH".into(),
        message_type: "ORU^R01".into(),
        control_id: control_id.into(),
        version: "2.5.1".into(),
        state: MessageState::Received,
        state_reason: None,
    }
}

fn open() -> (tempfile::TempDir, Journal) {
    let dir = tempfile::tempdir().unwrap();
    let journal = Store::open(dir.path()).unwrap().journal();
    (dir, journal)
}

fn append(journal: &Journal, message: NewMessage, window: Option<Duration>) -> Appended {
    journal.append(message, window).wait().unwrap()
}

#[test]
fn appended_message_reads_back_exactly_as_received() {
    let (_dir, journal) = open();
    let mut sent = message("lab", "A1");
    // Bytes that are not UTF-8 (Latin-1 é) and every segment terminator must survive.
    sent.raw = b"MSH|^~\\&|LAB|NORTH|||20260101||ADT^A01|A1|P|2.3\rPID|||1||Ren\xe9e\r\n"
        .to_vec()
        .into();
    sent.tls_identity = Some(Arc::from("CN=lab.north"));
    sent.state = MessageState::Rejected;
    sent.state_reason = Some("MSH-9 unknown".into());
    let before = UnixMicros::now();

    let id = match append(&journal, sent.clone(), None) {
        Appended::New(id) => id,
        other => panic!("expected a new entry, got {other:?}"),
    };
    let stored = journal.get(id).unwrap().unwrap();

    assert_eq!(stored.raw, sent.raw.to_vec());
    let entry = &stored.entry;
    assert_eq!(entry.id, id);
    assert_eq!(entry.channel, "lab");
    assert_eq!(entry.received_at, sent.received_at);
    assert!(entry.stored_at >= before && entry.stored_at <= UnixMicros::now());
    assert_eq!(entry.state_changed_at, entry.stored_at);
    assert_eq!(entry.peer, "127.0.0.1:40000");
    assert_eq!(entry.tls_identity.as_deref(), Some("CN=lab.north"));
    assert_eq!(entry.sending_application, "LAB");
    assert_eq!(entry.sending_facility, "NORTH");
    assert_eq!(entry.message_type, "ORU^R01");
    assert_eq!(entry.control_id, "A1");
    assert_eq!(entry.version, "2.5.1");
    assert_eq!(entry.state, MessageState::Rejected);
    assert_eq!(entry.state_reason.as_deref(), Some("MSH-9 unknown"));
    assert_eq!(entry.size, sent.raw.len() as u64);
    assert!(journal.get(MessageId(id.0 + 1)).unwrap().is_none());
}

#[test]
fn resend_inside_the_window_is_a_duplicate_of_the_first() {
    let (_dir, journal) = open();
    let first = append(&journal, message("lab", "C7"), HOUR);
    let again = append(&journal, message("lab", "C7"), HOUR);
    assert!(matches!(first, Appended::New(_)));
    assert_eq!(again, Appended::Duplicate(first.id()));
    assert_eq!(journal.count(&JournalFilter::default()).unwrap(), 1);
}

#[test]
fn resend_after_the_window_is_stored_again() {
    let (_dir, journal) = open();
    let window = Some(Duration::from_millis(30));
    let first = append(&journal, message("lab", "C8"), window);
    std::thread::sleep(Duration::from_millis(80));
    let later = append(&journal, message("lab", "C8"), window);
    assert!(
        matches!(later, Appended::New(id) if id > first.id()),
        "{later:?}"
    );
}

#[test]
fn without_a_window_the_same_control_id_is_stored_every_time() {
    let (_dir, journal) = open();
    let first = append(&journal, message("lab", "C9"), None);
    let second = append(&journal, message("lab", "C9"), None);
    assert!(matches!(second, Appended::New(id) if id != first.id()));
}

#[test]
fn duplicates_are_per_channel_sender_and_facility() {
    let (_dir, journal) = open();
    let original = append(&journal, message("lab", "D1"), HOUR);
    let mut other_app = message("lab", "D1");
    other_app.sending_application = "RIS".into();
    let mut other_facility = message("lab", "D1");
    other_facility.sending_facility = "SOUTH".into();
    for distinct in [
        message("adt", "D1"),
        other_app,
        other_facility,
        message("lab", "D2"),
    ] {
        let appended = append(&journal, distinct, HOUR);
        assert!(
            matches!(appended, Appended::New(id) if id != original.id()),
            "{appended:?}"
        );
    }
}

#[test]
fn a_rejected_message_does_not_block_its_corrected_resend() {
    let (_dir, journal) = open();
    let mut refused = message("lab", "R1");
    refused.state = MessageState::Rejected;
    let refused = append(&journal, refused, HOUR);
    let corrected = append(&journal, message("lab", "R1"), HOUR);
    assert!(matches!(corrected, Appended::New(id) if id != refused.id()));
    // The accepted copy is now the one later resends point to.
    assert_eq!(
        append(&journal, message("lab", "R1"), HOUR),
        Appended::Duplicate(corrected.id())
    );
}

#[test]
fn messages_without_control_id_are_never_duplicates() {
    let (_dir, journal) = open();
    let first = append(&journal, message("lab", ""), HOUR);
    let second = append(&journal, message("lab", ""), HOUR);
    assert_ne!(first.id(), second.id());
    assert!(matches!(second, Appended::New(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_copies_on_many_connections_store_one() {
    let (_dir, journal) = open();
    let copies: Vec<_> = (0..16)
        .map(|_| {
            let journal = journal.clone();
            tokio::spawn(async move { journal.append(message("lab", "S1"), HOUR).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for copy in copies {
        outcomes.push(copy.await.unwrap().unwrap());
    }
    let new: Vec<_> = outcomes
        .iter()
        .filter(|a| matches!(a, Appended::New(_)))
        .collect();
    assert_eq!(new.len(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|a| a.id() == new[0].id()));
    assert_eq!(journal.count(&JournalFilter::default()).unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_from_many_tasks_are_all_kept_in_sender_order() {
    let (_dir, journal) = open();
    let senders: Vec<_> = (0..24)
        .map(|sender| {
            let journal = journal.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in 0..60 {
                    let appended = journal
                        .append(message("lab", &format!("{sender}-{n}")), HOUR)
                        .await
                        .unwrap();
                    match appended {
                        Appended::New(id) => ids.push(id),
                        other => panic!("distinct message seen as {other:?}"),
                    }
                }
                ids
            })
        })
        .collect();
    let mut all = HashSet::new();
    for sender in senders {
        let ids = sender.await.unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "sender order lost");
        all.extend(ids);
    }
    assert_eq!(all.len(), 24 * 60);
    assert_eq!(journal.count(&JournalFilter::default()).unwrap(), 24 * 60);
}

#[tokio::test]
async fn set_state_moves_the_message_and_stamps_the_change() {
    let (_dir, journal) = open();
    let id = journal
        .append(message("lab", "S2"), None)
        .await
        .unwrap()
        .id();
    let stored_at = journal.get(id).unwrap().unwrap().entry.stored_at;
    tokio::time::sleep(Duration::from_millis(2)).await;

    journal
        .set_state(
            id,
            MessageState::Filtered,
            Some("MSH-9.1 not in [ORU]".into()),
        )
        .await
        .unwrap();

    let entry = journal.get(id).unwrap().unwrap().entry;
    assert_eq!(entry.state, MessageState::Filtered);
    assert_eq!(entry.state_reason.as_deref(), Some("MSH-9.1 not in [ORU]"));
    assert!(entry.state_changed_at > stored_at);
    assert_eq!(entry.stored_at, stored_at);

    let missing = journal
        .set_state(MessageId(id.0 + 100), MessageState::Processed, None)
        .await;
    assert!(matches!(missing, Err(Error::NotFound(MessageId(n))) if n == id.0 + 100));
}

#[test]
fn list_filters_by_channel_state_and_time_newest_first() {
    let (_dir, journal) = open();
    let mut ids = Vec::new();
    for (n, channel) in ["lab", "adt", "lab", "lab", "adt", "lab"]
        .iter()
        .enumerate()
    {
        let mut m = message(channel, &format!("L{n}"));
        m.received_at = UnixMicros(1_000 + n as i64);
        ids.push(append(&journal, m, None).id());
    }
    journal
        .set_state(ids[2], MessageState::Errored, Some("no route".into()))
        .wait()
        .unwrap();
    journal
        .set_state(ids[4], MessageState::Errored, None)
        .wait()
        .unwrap();
    let listed = |filter: JournalFilter, limit| -> Vec<MessageId> {
        journal
            .list(&filter, limit)
            .unwrap()
            .into_iter()
            .map(|e| e.id)
            .collect()
    };

    assert_eq!(listed(JournalFilter::default(), 100), {
        let mut newest_first = ids.clone();
        newest_first.reverse();
        newest_first
    });
    let lab = || JournalFilter {
        channel: Some("lab".into()),
        ..JournalFilter::default()
    };
    assert_eq!(listed(lab(), 100), vec![ids[5], ids[3], ids[2], ids[0]]);
    assert_eq!(listed(lab(), 2), vec![ids[5], ids[3]]);
    let next_page = JournalFilter {
        before_id: Some(ids[3]),
        ..lab()
    };
    assert_eq!(listed(next_page, 2), vec![ids[2], ids[0]]);
    let errored = JournalFilter {
        state: Some(MessageState::Errored),
        ..JournalFilter::default()
    };
    assert_eq!(listed(errored.clone(), 100), vec![ids[4], ids[2]]);
    let lab_errored = JournalFilter {
        state: Some(MessageState::Errored),
        ..lab()
    };
    assert_eq!(listed(lab_errored, 100), vec![ids[2]]);
    let middle = JournalFilter {
        received_since: Some(UnixMicros(1_001)),
        received_before: Some(UnixMicros(1_004)),
        ..JournalFilter::default()
    };
    assert_eq!(listed(middle.clone(), 100), vec![ids[3], ids[2], ids[1]]);

    let received_lab = JournalFilter {
        state: Some(MessageState::Received),
        ..lab()
    };
    assert_eq!(
        listed_oldest(&journal, received_lab.clone(), 2),
        vec![ids[0], ids[3]]
    );
    let after = JournalFilter {
        after_id: Some(ids[3]),
        ..received_lab
    };
    assert_eq!(listed_oldest(&journal, after, 2), vec![ids[5]]);

    assert_eq!(journal.count(&lab()).unwrap(), 4);
    assert_eq!(journal.count(&errored).unwrap(), 2);
    assert_eq!(journal.count(&middle).unwrap(), 3);
    let mut by_state = journal.count_by_state(None).unwrap();
    by_state.sort_by_key(|(state, _)| state.as_str());
    assert_eq!(
        by_state,
        vec![(MessageState::Errored, 2), (MessageState::Received, 4)]
    );
    let mut lab_states = journal.count_by_state(Some("lab")).unwrap();
    lab_states.sort_by_key(|(state, _)| state.as_str());
    assert_eq!(
        lab_states,
        vec![(MessageState::Errored, 1), (MessageState::Received, 3)]
    );
}

fn listed_oldest(journal: &Journal, filter: JournalFilter, limit: usize) -> Vec<MessageId> {
    journal
        .list_oldest_first(&filter, limit)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect()
}

#[test]
fn appends_survive_reopening_and_ids_keep_growing() {
    let dir = tempfile::tempdir().unwrap();
    let first = {
        let journal = Store::open(dir.path()).unwrap().journal();
        append(&journal, message("lab", "P1"), None).id()
    };
    let journal = Store::open(dir.path()).unwrap().journal();
    assert_eq!(journal.get(first).unwrap().unwrap().entry.control_id, "P1");
    let second = append(&journal, message("lab", "P2"), None).id();
    assert!(second > first);
}

#[test]
fn fresh_database_is_at_the_current_schema_version() {
    let (dir, _journal) = open();
    let conn = Connection::open(dir.path().join(Store::DATABASE_FILE)).unwrap();
    let version: u32 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
}

#[test]
fn database_from_a_newer_corridor_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(dir.path().join(Store::DATABASE_FILE)).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(
        matches!(err, Error::SchemaTooNew { found, supported, .. }
            if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION),
        "{err}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn a_write_request_reads_and_restates_a_message_in_one_transaction() {
    let (_dir, journal) = open();
    let id = append(&journal, message("lab", "Q1"), None).id();
    let control_id = journal
        .store()
        .write_blocking(move |conn| {
            let stored = Journal::get_in(conn, id)?.ok_or(Error::NotFound(id))?;
            Journal::set_state_in(conn, id, MessageState::Quarantined, Some("held for review"))?;
            Ok(stored.entry.control_id)
        })
        .unwrap();
    assert_eq!(control_id, "Q1");
    let entry = journal.get(id).unwrap().unwrap().entry;
    assert_eq!(entry.state, MessageState::Quarantined);
    assert_eq!(entry.state_reason.as_deref(), Some("held for review"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_reads_run_off_the_async_workers() {
    let (_dir, journal) = open();
    for n in 0..5 {
        journal
            .append(message("lab", &format!("A{n}")), None)
            .await
            .unwrap();
    }
    let control_ids = journal
        .store()
        .read_async(|conn| {
            let mut statement = conn.prepare("SELECT control_id FROM journal ORDER BY id")?;
            let ids = statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(ids)
        })
        .await
        .unwrap();
    assert_eq!(control_ids, ["A0", "A1", "A2", "A3", "A4"]);
}

#[test]
fn a_data_directory_that_is_a_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_dir = dir.path().join("corridor-data");
    std::fs::write(&not_a_dir, b"oops").unwrap();
    let err = Store::open(&not_a_dir).unwrap_err();
    assert!(matches!(err, Error::DataDir { .. }), "{err}");
    assert!(err.to_string().contains("corridor-data"), "{err}");
}

/// The journal's counts per channel and state, counted by SQLite.
fn group_by(store: &Store) -> Vec<(String, [u64; MessageState::ALL.len()])> {
    let rows: Vec<(String, String, i64)> = store
        .read(|conn| {
            let mut statement = conn.prepare(
                "SELECT channel, state, count(*) FROM journal GROUP BY channel, state ORDER BY channel",
            )?;
            let rows = statement
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .unwrap();
    let mut counts: Vec<(String, [u64; MessageState::ALL.len()])> = Vec::new();
    for (channel, state, n) in rows {
        if counts.last().is_none_or(|(c, _)| *c != channel) {
            counts.push((channel, [0; MessageState::ALL.len()]));
        }
        let i = MessageState::ALL
            .iter()
            .position(|s| s.as_str() == state)
            .unwrap();
        counts.last_mut().unwrap().1[i] = n as u64;
    }
    counts
}

#[test]
fn message_counts_stay_equal_to_a_group_by_through_commits_rollbacks_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let journal = store.journal();
    let mut ids = Vec::new();
    for i in 0..60 {
        let channel = if i % 3 == 0 { "adt" } else { "lab" };
        let mut m = message(channel, &format!("C{i}"));
        if i % 10 == 9 {
            m.state = MessageState::Rejected;
        }
        ids.push(append(&journal, m, HOUR).id());
    }
    // A duplicate is not stored and not counted.
    append(&journal, message("lab", "C1"), HOUR);
    let states = [
        MessageState::Processed,
        MessageState::Filtered,
        MessageState::Quarantined,
        MessageState::Errored,
        MessageState::Delivered,
        MessageState::DeadLettered,
    ];
    let mut waits = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        waits.push(journal.set_state(*id, states[i % states.len()], None));
    }
    for w in waits {
        w.wait().unwrap();
    }
    // Reprocessed: back to received.
    for id in &ids[..6] {
        journal
            .set_state(*id, MessageState::Received, None)
            .wait()
            .unwrap();
    }
    // A request that changes the journal and then fails leaves no trace in the counts,
    // even sharing its transaction with requests that succeed.
    let failing = {
        let m = message("lab", "F1");
        let id = ids[10];
        store.write(move |conn| {
            Journal::append_in(conn, &m, None)?;
            Journal::set_state_in(conn, id, MessageState::Errored, None)?;
            Err::<(), _>(Error::NotFound(MessageId(-1)))
        })
    };
    let kept = {
        let m = message("lab", "K1");
        store.write(move |conn| Journal::append_in(conn, &m, None))
    };
    assert!(failing.wait().is_err());
    kept.wait().unwrap();
    // A savepoint rolled back inside a request that succeeds.
    let id = ids[11];
    store
        .write(move |conn| {
            let inner = store::in_savepoint(conn, |conn| {
                Journal::set_state_in(conn, id, MessageState::Quarantined, None)?;
                Err::<(), Error>(Error::NotFound(MessageId(-2)))
            })?;
            assert!(inner.is_err());
            Journal::set_state_in(conn, id, MessageState::Filtered, None)
        })
        .wait()
        .unwrap();
    // Deleting (retention) takes messages away; an unknown id is nothing.
    let (gone, missing) = (ids[20], MessageId(1_000_000));
    let deleted = store
        .write(move |conn| {
            conn.execute("DELETE FROM journal_raw WHERE id = ?1", [gone.0])?;
            Ok((
                Journal::delete_in(conn, gone)?,
                Journal::delete_in(conn, missing)?,
            ))
        })
        .wait()
        .unwrap();
    assert_eq!(deleted, (true, false));
    // Setting the state of a message that does not exist changes nothing.
    assert!(
        journal
            .set_state(missing, MessageState::Errored, None)
            .wait()
            .is_err()
    );

    let expected = group_by(&store);
    assert_eq!(store.message_counts(), expected);
    let total: u64 = expected.iter().flat_map(|(_, n)| n.iter()).sum();
    assert_eq!(total, 60 + 1 - 1, "60 appended, one kept, one deleted");
    let lab: Vec<(MessageState, u64)> = journal.count_by_state(Some("lab")).unwrap();
    let lab_expected = &expected.iter().find(|(c, _)| c == "lab").unwrap().1;
    for (state, n) in &lab {
        let i = MessageState::ALL.iter().position(|s| s == state).unwrap();
        assert_eq!(*n, lab_expected[i]);
    }
    // Rates over the last minute: lab stored 40 of the 60, and K1 (not the duplicate, not
    // the failed request's F1).
    let rates = store.message_rates();
    let lab = rates.iter().find(|(c, _)| c == "lab").unwrap().1;
    assert_eq!((lab.stored_per_second * 60.0).round(), 41.0, "{rates:?}");
    assert!(lab.processed_per_second > 0.0, "{rates:?}");
    // Each stored message's time from receipt to its commit, each processed one's to its
    // processing: observed once per message, at its commit.
    let hops = store.hop_latencies();
    let lab_hops = hops.iter().find(|(c, _)| c == "lab").unwrap().1;
    assert_eq!(lab_hops.stored.count, 41, "{hops:?}");
    assert!((lab_hops.processed.count as f64 / 60.0 - lab.processed_per_second).abs() < 1e-9);
    assert!(lab_hops.stored.quantile_micros(0.99).is_some());
    // Opened again, the store counts the same from the file.
    drop(journal);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.message_counts(), expected);
}
