//! The writer thread: group commit, savepoint isolation, ordering, shutdown.

use std::sync::mpsc;

use std::time::Duration;
use store::rusqlite::{Connection, params};

use store::{Error, Store, StoreOptions, WriteFuture};

fn open_with_notes() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .write_blocking(|conn| {
            conn.execute_batch("CREATE TABLE note (seq INTEGER NOT NULL, body TEXT NOT NULL)")?;
            Ok(())
        })
        .unwrap();
    (dir, store)
}

fn insert_note(store: &Store, seq: i64) -> WriteFuture<()> {
    store.write(move |conn| {
        conn.prepare_cached("INSERT INTO note (seq, body) VALUES (?1, 'x')")?
            .execute([seq])?;
        Ok(())
    })
}

fn insert_note_unsynced(store: &Store, seq: i64) -> WriteFuture<()> {
    store.write_unsynced(move |conn| {
        conn.prepare_cached("INSERT INTO note (seq, body) VALUES (?1, 'u')")?
            .execute([seq])?;
        Ok(())
    })
}

fn notes(store: &Store) -> Vec<i64> {
    store
        .read(|conn| {
            let mut statement = conn.prepare("SELECT seq FROM note ORDER BY rowid")?;
            let seqs = statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(seqs)
        })
        .unwrap()
}

/// Holds the writer inside a request until the returned sender is used (or dropped), so the
/// requests queued meanwhile are committed together as one batch.
fn hold_writer(store: &Store) -> (mpsc::Sender<()>, WriteFuture<()>) {
    hold_writer_in(store, false)
}

/// [`hold_writer`] with the holding request synced or not.
fn hold_writer_in(store: &Store, unsynced: bool) -> (mpsc::Sender<()>, WriteFuture<()>) {
    let (release, released) = mpsc::channel::<()>();
    let (entered, has_entered) = mpsc::channel::<()>();
    let work = move |_conn: &Connection| {
        entered.send(()).unwrap();
        let _ = released.recv();
        Ok(())
    };
    let held = if unsynced {
        store.write_unsynced(work)
    } else {
        store.write(work)
    };
    has_entered.recv().unwrap();
    (release, held)
}

#[test]
fn one_failing_request_does_not_lose_the_others_in_its_batch() {
    let (_dir, store) = open_with_notes();
    let before = store.writer_stats();
    let (release, held) = hold_writer(&store);

    let first = insert_note(&store, 1);
    let failing = store.write(|conn| {
        conn.execute("INSERT INTO note (seq, body) VALUES (2, 'x')", [])?;
        // Fails after a successful insert: that insert must be rolled back alone.
        conn.execute("INSERT INTO no_such_table VALUES (1)", [])?;
        Ok(())
    });
    let panicking = store.write(|conn| -> store::Result<()> {
        conn.execute("INSERT INTO note (seq, body) VALUES (3, 'x')", [])?;
        panic!("transform bug");
    });
    let refusing = store.write(|conn| -> store::Result<()> {
        conn.execute("INSERT INTO note (seq, body) VALUES (4, 'x')", [])?;
        Err(Error::Refused("queue is full".into()))
    });
    let last = insert_note(&store, 5);
    drop(release);

    held.wait().unwrap();
    first.wait().unwrap();
    assert!(matches!(failing.wait(), Err(Error::Sqlite(_))));
    match panicking.wait() {
        Err(Error::WritePanicked(words)) => assert!(words.contains("transform bug"), "{words}"),
        other => panic!("expected a panic report, got {other:?}"),
    }
    assert!(matches!(refusing.wait(), Err(Error::Refused(words)) if words == "queue is full"));
    last.wait().unwrap();

    assert_eq!(notes(&store), vec![1, 5]);
    let after = store.writer_stats();
    // The five queued while the first ran joined its transaction: one commit for all six.
    assert_eq!(after.commits - before.commits, 1);
    assert_eq!(after.requests - before.requests, 6);
}

#[test]
fn writes_commit_in_the_order_they_were_requested() {
    let (_dir, store) = open_with_notes();
    let pending: Vec<_> = (0..200).map(|seq| insert_note(&store, seq)).collect();
    for write in pending {
        write.wait().unwrap();
    }
    assert_eq!(notes(&store), (0..200).collect::<Vec<_>>());
}

#[test]
fn concurrent_writers_share_commits() {
    let (_dir, store) = open_with_notes();
    let before = store.writer_stats();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let tasks: Vec<_> = (0..32)
            .map(|task| {
                let store = store.clone();
                tokio::spawn(async move {
                    for n in 0..40 {
                        insert_note(&store, task * 1000 + n).await.unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
    let after = store.writer_stats();
    let requests = after.requests - before.requests;
    let commits = after.commits - before.commits;
    assert_eq!(requests, 32 * 40);
    assert!(
        commits < requests / 2,
        "{requests} requests took {commits} commits: group commit is not grouping"
    );
    assert_eq!(notes(&store).len(), 32 * 40);
}

#[test]
fn a_committed_write_is_visible_to_the_next_read() {
    let (_dir, store) = open_with_notes();
    for seq in 0..20 {
        insert_note(&store, seq).wait().unwrap();
        let count: i64 = store
            .read(|conn| Ok(conn.query_row("SELECT count(*) FROM note", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(count, seq + 1);
    }
}

#[test]
fn dropping_the_store_finishes_queued_writes() {
    let dir = tempfile::tempdir().unwrap();
    let pending: Vec<WriteFuture<()>> = {
        let store = Store::open(dir.path()).unwrap();
        store
            .write_blocking(|conn| Ok(conn.execute_batch("CREATE TABLE note (seq INTEGER)")?))
            .unwrap();
        (0..50)
            .map(|seq| {
                store.write(move |conn| {
                    conn.execute("INSERT INTO note (seq) VALUES (?1)", params![seq])?;
                    Ok(())
                })
            })
            .collect()
    };
    for write in pending {
        write.wait().unwrap();
    }
    let conn = Connection::open(dir.path().join(Store::DATABASE_FILE)).unwrap();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM note", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 50);
}

#[test]
fn a_closure_owning_the_last_store_handle_does_not_hang_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let inner = store.clone();
    let pending = store.write(move |conn| {
        let _keep = &inner;
        Ok(conn.query_row("SELECT 7", [], |r| r.get::<_, i64>(0))?)
    });
    drop(store);
    assert_eq!(pending.wait().unwrap(), 7);
}

#[test]
fn database_runs_in_wal_mode_and_a_synced_write_is_answered_after_an_fsync() {
    let (dir, store) = open_with_notes();
    let mode: String = store
        .read(|conn| Ok(conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(mode, "wal");
    // Commits do not sync themselves (NORMAL): the sync thread does, for those who ask.
    let synchronous: i64 = store
        .write_blocking(|conn| Ok(conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(synchronous, 1, "synchronous must be NORMAL (1)");
    let before = store.writer_stats();
    insert_note(&store, 1).wait().unwrap();
    let after = store.writer_stats();
    assert_eq!(after.synced_commits - before.synced_commits, 1);
    assert_eq!(after.syncs - before.syncs, 1, "answered before its fsync");
    assert!(dir.path().join("corridor.db").exists());
    // Reads are refused writes: they go to read-only connections.
    let err = store
        .read(|conn| Ok(conn.execute("INSERT INTO note (seq, body) VALUES (1, 'x')", [])?))
        .unwrap_err();
    assert!(err.to_string().contains("readonly"), "{err}");
}

#[test]
fn a_batch_that_cannot_commit_fails_every_request_and_the_writer_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::default();
    options.busy_timeout = Duration::from_millis(50);
    let store = Store::open_with(dir.path(), options).unwrap();
    store
        .write_blocking(|conn| Ok(conn.execute_batch("CREATE TABLE note (seq INTEGER)")?))
        .unwrap();

    // Someone else (say, sqlite3 in a terminal) holds the write lock.
    let intruder = Connection::open(store.path()).unwrap();
    intruder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let refused = store
        .write_blocking(|conn| Ok(conn.execute("INSERT INTO note (seq) VALUES (1)", [])?))
        .unwrap_err();
    assert!(matches!(refused, Error::CommitFailed(_)), "{refused}");
    assert!(
        refused.to_string().contains("nothing of it was stored"),
        "{refused}"
    );
    assert_eq!(store.writer_stats().failed_commits, 1);

    intruder.execute_batch("ROLLBACK").unwrap();
    store
        .write_blocking(|conn| Ok(conn.execute("INSERT INTO note (seq) VALUES (2)", [])?))
        .unwrap();
    let seqs: Vec<i64> = store
        .read(|conn| {
            let mut statement = conn.prepare("SELECT seq FROM note")?;
            let seqs = statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(seqs)
        })
        .unwrap();
    assert_eq!(seqs, vec![2]);
}

#[test]
fn reads_never_wait_for_the_writer_and_see_only_committed_rows() {
    let (_dir, store) = open_with_notes();
    insert_note(&store, 1).wait().unwrap();
    let (release, entered) = (mpsc::channel::<()>(), mpsc::channel::<()>());
    let (release_tx, release_rx) = release;
    let (entered_tx, entered_rx) = entered;
    let held = store.write(move |conn| {
        conn.execute("INSERT INTO note (seq, body) VALUES (2, 'x')", [])?;
        entered_tx.send(()).unwrap();
        let _ = release_rx.recv();
        Ok(())
    });
    entered_rx.recv().unwrap();

    // The writer sits inside an open transaction; a read must neither block nor see it.
    assert_eq!(notes(&store), vec![1]);

    release_tx.send(()).unwrap();
    held.wait().unwrap();
    assert_eq!(notes(&store), vec![1, 2]);
}

#[test]
fn a_failing_first_request_takes_only_its_own_changes_down() {
    let (_dir, store) = open_with_notes();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    // The first request of the batch writes, then fails while the others queue up.
    let first = store.write(move |conn| -> store::Result<()> {
        conn.execute("INSERT INTO note (seq, body) VALUES (1, 'x')", [])?;
        entered_tx.send(()).unwrap();
        let _ = release_rx.recv();
        Err(Error::Refused("first one fails".into()))
    });
    entered_rx.recv().unwrap();
    let second = insert_note(&store, 2);
    let third = store.write(|conn| -> store::Result<()> {
        conn.execute("INSERT INTO note (seq, body) VALUES (3, 'x')", [])?;
        Err(Error::Refused("third one fails".into()))
    });
    let fourth = insert_note(&store, 4);
    drop(release_tx);

    assert!(matches!(first.wait(), Err(Error::Refused(words)) if words == "first one fails"));
    second.wait().unwrap();
    assert!(matches!(third.wait(), Err(Error::Refused(_))));
    fourth.wait().unwrap();
    assert_eq!(notes(&store), vec![2, 4]);
}

#[test]
fn unsynced_writes_commit_without_a_sync_and_a_synced_write_syncs_the_batch_it_joins() {
    let (_dir, store) = open_with_notes();
    let before = store.writer_stats();
    for seq in 0..3 {
        insert_note_unsynced(&store, seq).wait().unwrap();
    }
    let after = store.writer_stats();
    assert_eq!(after.commits - before.commits, 3);
    assert_eq!(after.synced_commits, before.synced_commits);
    assert_eq!(after.syncs, before.syncs);
    assert_eq!(notes(&store), [0, 1, 2]);

    // Hold the writer inside an unsynced batch, then queue unsynced, synced, unsynced.
    let (release, held) = hold_writer_in(&store, true);
    let before = store.writer_stats();
    let first = insert_note_unsynced(&store, 3);
    let synced = insert_note(&store, 4);
    let last = insert_note_unsynced(&store, 5);
    release.send(()).unwrap();
    for write in [held, first, synced, last] {
        write.wait().unwrap();
    }
    let after = store.writer_stats();
    // All four in one commit, synced once for the one write that asked.
    assert_eq!(after.commits - before.commits, 1);
    assert_eq!(after.synced_commits - before.synced_commits, 1);
    assert_eq!(after.syncs - before.syncs, 1);
    assert_eq!(notes(&store), [0, 1, 2, 3, 4, 5]);
}

#[test]
fn an_unsynced_write_waits_for_a_synced_one_and_shares_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut options = StoreOptions::default();
    // Long enough that only the synced write can end the wait.
    options.unsynced_delay = Duration::from_secs(30);
    let store = Store::open_with(dir.path(), options).unwrap();
    store
        .write_blocking(|conn| {
            conn.execute_batch("CREATE TABLE note (seq INTEGER NOT NULL, body TEXT NOT NULL)")?;
            Ok(())
        })
        .unwrap();
    let before = store.writer_stats();
    let started = std::time::Instant::now();
    let unsynced = insert_note_unsynced(&store, 1);
    std::thread::sleep(Duration::from_millis(50));
    insert_note(&store, 2).wait().unwrap();
    unsynced.wait().unwrap();
    let after = store.writer_stats();
    assert_eq!(after.commits - before.commits, 1);
    assert_eq!(after.synced_commits - before.synced_commits, 1);
    assert_eq!(after.syncs - before.syncs, 1);
    assert_eq!(notes(&store), [1, 2]);
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn a_failing_savepoint_takes_back_only_its_own_changes() {
    let (_dir, store) = open_with_notes();
    let outcomes = store
        .write_blocking(|conn| {
            conn.execute("INSERT INTO note (seq, body) VALUES (1, 'before')", [])?;
            let failed = store::in_savepoint(conn, |conn| {
                conn.execute("INSERT INTO note (seq, body) VALUES (2, 'taken back')", [])?;
                Err::<(), Error>(Error::Refused("no".into()))
            })?;
            let kept = store::in_savepoint(conn, |conn| {
                conn.execute("INSERT INTO note (seq, body) VALUES (3, 'kept')", [])?;
                Ok::<(), Error>(())
            })?;
            Ok((failed.is_err(), kept.is_ok()))
        })
        .unwrap();
    assert_eq!(outcomes, (true, true));
    assert_eq!(notes(&store), [1, 3]);
}

#[test]
fn a_committed_write_is_answered_at_its_commit_and_an_fsync_follows_unasked() {
    let (_dir, store) = open_with_notes();
    let before = store.writer_stats();
    store
        .write_committed(|conn| {
            conn.execute("INSERT INTO note (seq, body) VALUES (1, 'c')", [])?;
            Ok(())
        })
        .wait()
        .unwrap();
    // Visible once answered, and nobody waited for an fsync: not a synced commit.
    assert_eq!(notes(&store), vec![1]);
    let answered = store.writer_stats();
    assert_eq!(answered.commits - before.commits, 1);
    assert_eq!(answered.synced_commits, before.synced_commits);
    // The sync thread was handed the commit at once and syncs the WAL without anyone
    // asking again (waited for, not timed: the bound is only against a hang).
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.writer_stats().syncs == before.syncs {
        assert!(
            std::time::Instant::now() < give_up,
            "no fsync followed the commit"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // A committed write that fails is answered with its error and leaves nothing.
    let failed = store
        .write_committed(|conn| {
            conn.execute("INSERT INTO note (seq, body) VALUES (2, 'c')", [])?;
            conn.execute("INSERT INTO no_such_table VALUES (1)", [])?;
            Ok(())
        })
        .wait();
    assert!(matches!(failed, Err(Error::Sqlite(_))), "{failed:?}");
    assert_eq!(notes(&store), vec![1]);
}
