//! The queue tables' migrations on a real database file.

use delivery::{EntryId, EntryState, MIGRATIONS};
use store::rusqlite::params;
use store::{Migration, Store};

/// The queue as the first release wrote it: payloads inside the rows.
static FIRST_RELEASE: &[Migration] = &[MIGRATIONS[0]];

#[tokio::test]
async fn payloads_written_in_the_rows_move_to_their_own_table() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store
            .migrate_component(delivery::COMPONENT, FIRST_RELEASE)
            .await
            .unwrap(),
        1
    );
    store
        .write(|conn| {
            let mut insert = conn.prepare(
                "INSERT INTO delivery_queue (message_id, channel, destination, state, \
                 next_attempt_at, queued_at, state_changed_at, payload) \
                 VALUES (?1, 'lab', 'ehr', ?2, 1, 1, 1, ?3)",
            )?;
            insert.execute(params![7, "queued", b"MSH|^~\\&|LAB\r".as_slice()])?;
            insert.execute(params![8, "filtered", b"".as_slice()])?;
            insert.execute(params![9, "errored", b"".as_slice()])?;
            Ok(())
        })
        .await
        .unwrap();

    // Upgraded to the latest version.
    assert_eq!(
        delivery::migrate(&store).await.unwrap(),
        MIGRATIONS.last().unwrap().version
    );
    let (queued, filtered) = store
        .read(|conn| {
            Ok((
                delivery::entry(conn, EntryId(1))?.unwrap(),
                delivery::entry(conn, EntryId(2))?.unwrap(),
            ))
        })
        .unwrap();
    assert_eq!(queued.state, EntryState::Queued);
    assert_eq!(queued.payload, b"MSH|^~\\&|LAB\r");
    assert_eq!(filtered.state, EntryState::Filtered);
    assert!(filtered.payload.is_empty());

    // An entry with nothing to send cannot be resent; the refusal leaves no new entry.
    let refused = store
        .write(|conn| delivery::resend_in(conn, EntryId(3)))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("nothing to send"), "{refused}");
    let entries: i64 = store
        .read(|conn| Ok(conn.query_row("SELECT count(*) FROM delivery_queue", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(entries, 3);

    // Deleting an entry deletes its payload.
    store
        .write(|conn| Ok(conn.execute("DELETE FROM delivery_queue WHERE id = 1", [])?))
        .await
        .unwrap();
    let payloads: i64 = store
        .read(|conn| Ok(conn.query_row("SELECT count(*) FROM delivery_payload", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(payloads, 0);
}
