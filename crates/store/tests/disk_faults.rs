//! The writer and the sync thread on a failing disk. The test runs itself again as a
//! child process with `LD_PRELOAD` set to `test_support::disk_fault`'s library, which
//! makes the WAL's writes fail with EIO or ENOSPC, then its fsyncs with EIO, on the
//! child's command; the child checks each write's answer, prints the ones answered
//! `Ok`, and exits without closing the store. The parent reopens the database and finds
//! every one of them, and none of the writes refused after the failed fsync.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use store::{Error, Store, WriteFuture};
use test_support::disk_fault::DiskFault;

const CHILD_DIR: &str = "CORRIDOR_STORE_DISK_FAULT_CHILD_DIR";
const CHECKPOINT_CHILD_DIR: &str = "CORRIDOR_STORE_CHECKPOINT_FAULT_CHILD_DIR";
const WAL: &str = "corridor.db-wal";

fn insert(store: &Store, seq: i64) -> WriteFuture<()> {
    store.write(move |conn| {
        conn.execute("INSERT INTO note (seq) VALUES (?1)", [seq])?;
        Ok(())
    })
}

fn insert_unsynced(store: &Store, seq: i64) -> WriteFuture<()> {
    store.write_unsynced(move |conn| {
        conn.execute("INSERT INTO note (seq) VALUES (?1)", [seq])?;
        Ok(())
    })
}

fn refused_after_the_failed_sync(refused: &Error) {
    assert!(matches!(refused, Error::DiskSyncFailed(_)), "{refused}");
    let words = refused.to_string();
    assert!(words.contains("stopped taking writes"), "{words}");
    assert!(words.contains("restart"), "{words}");
}

fn run_child(dir: &Path) {
    let fault = DiskFault::new(dir, WAL);
    let store = Store::open(&dir.join("data")).unwrap();
    store
        .write_blocking(|conn| Ok(conn.execute_batch("CREATE TABLE note (seq INTEGER)")?))
        .unwrap();
    let mut answered_ok = Vec::new();
    for seq in 1..=5 {
        insert(&store, seq).wait().unwrap();
        answered_ok.push(seq);
    }

    // The commit itself fails: every request of the batch is refused, none kept. SQLite
    // rolled the transaction back and lost nothing, so the store goes on.
    fault.fail_writes();
    let batch: Vec<WriteFuture<()>> = (100..110).map(|seq| insert(&store, seq)).collect();
    for write in batch {
        let refused = write.wait().unwrap_err();
        assert!(matches!(refused, Error::CommitFailed(_)), "{refused}");
        assert!(
            refused.to_string().contains("nothing of it was stored"),
            "{refused}"
        );
    }
    assert!(store.writer_stats().failed_commits >= 1);
    assert!(
        fault.injected().iter().any(|call| call.contains("write")),
        "{:?}",
        fault.injected()
    );

    // The disk recovers: the same writer and sync thread answer the next writes.
    fault.clear();
    for seq in 6..=8 {
        insert(&store, seq).wait().unwrap();
        answered_ok.push(seq);
    }
    assert!(store.sync_failure().is_none());

    // A full disk fails writes too (ENOSPC): refused, nothing kept, and the store goes on.
    let earlier_faults = fault.injected().len();
    fault.fill_disk();
    let batch: Vec<WriteFuture<()>> = (150..160).map(|seq| insert(&store, seq)).collect();
    for write in batch {
        let refused = write.wait().unwrap_err();
        assert!(
            matches!(refused, Error::CommitFailed(_) | Error::Sqlite(_)),
            "{refused}"
        );
    }
    assert!(
        fault.injected().len() > earlier_faults,
        "no write failed on the full disk"
    );
    fault.clear();
    for seq in 9..=10 {
        insert(&store, seq).wait().unwrap();
        answered_ok.push(seq);
    }
    assert!(store.sync_failure().is_none());

    // The commit is made, its fsync fails: the synced write is refused as not durable
    // (by the sync thread, or by the store already stopped when the background
    // checkpoint's fsync failed first).
    let write_faults = fault.injected().len();
    fault.fail_syncs();
    let refused = insert(&store, 200).wait().unwrap_err();
    assert!(
        matches!(refused, Error::SyncFailed(_) | Error::DiskSyncFailed(_)),
        "{refused}"
    );
    assert!(
        fault.injected()[write_faults..]
            .iter()
            .any(|call| call.contains("sync")),
        "{:?}",
        fault.injected()
    );
    // From then on the store takes no write, synced or not, even once the disk works.
    refused_after_the_failed_sync(&insert(&store, 300).wait().unwrap_err());
    refused_after_the_failed_sync(&insert_unsynced(&store, 301).wait().unwrap_err());
    fault.clear();
    for seq in 302..310 {
        refused_after_the_failed_sync(&insert(&store, seq).wait().unwrap_err());
        refused_after_the_failed_sync(&insert_unsynced(&store, seq + 100).wait().unwrap_err());
    }
    let stopped = store.sync_failure().expect("the store says why it stopped");
    refused_after_the_failed_sync(&stopped);

    let listed: Vec<String> = answered_ok.iter().map(i64::to_string).collect();
    println!("answered ok: {}", listed.join(" "));
    // As a crash would: no clean shutdown, no checkpoint.
    std::process::exit(0);
}

/// A failed fsync in the background checkpoint, with no synced write waiting, stops the
/// store as well: a later fsync of the sync thread could succeed without the pages it
/// dropped.
fn run_checkpoint_child(dir: &Path) {
    let fault = DiskFault::new(dir, WAL);
    let store = Store::open(&dir.join("data")).unwrap();
    store
        .write_blocking(|conn| Ok(conn.execute_batch("CREATE TABLE note (seq INTEGER)")?))
        .unwrap();
    for seq in 1..=3 {
        insert(&store, seq).wait().unwrap();
    }
    fault.fail_syncs();
    // Frames for the checkpoint to copy; nobody asks the sync thread for an fsync. (It
    // is refused if the checkpoint already failed on the earlier frames.)
    let _ = insert_unsynced(&store, 50).wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    let stopped = loop {
        if let Some(stopped) = store.sync_failure() {
            break stopped;
        }
        assert!(Instant::now() < deadline, "the store still takes writes");
        std::thread::sleep(Duration::from_millis(10));
    };
    refused_after_the_failed_sync(&stopped);
    assert!(stopped.to_string().contains("checkpoint"), "{stopped}");
    fault.clear();
    refused_after_the_failed_sync(&insert(&store, 60).wait().unwrap_err());
    // Closed, the store leaves the WAL for the next open to recover from: the last
    // connection to close would otherwise checkpoint it into the database file and
    // delete it.
    drop(store);
    let wal = dir.join("data").join(WAL);
    let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert!(
        left > 0,
        "{} is gone or empty after the close",
        wal.display()
    );
    println!("answered ok: 1 2 3");
    std::process::exit(0);
}

/// Runs the test `name` again as a child with the disk fault library, `child_dir` set to
/// a new directory; returns the directory and the writes the child saw answered `Ok`.
fn run_in_child(name: &str, child_dir: &str) -> (tempfile::TempDir, BTreeSet<i64>) {
    let dir = tempfile::tempdir().unwrap();
    let fault = DiskFault::new(dir.path(), WAL);
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture"])
        .env(child_dir, dir.path())
        .envs(fault.env())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "child failed:\n{stdout}\n{stderr}");
    let answered_ok = stdout
        .lines()
        .find_map(|line| line.strip_prefix("answered ok: "))
        .unwrap_or_else(|| panic!("the child printed no result:\n{stdout}\n{stderr}"))
        .split(' ')
        .map(|seq| seq.parse().unwrap())
        .collect();
    (dir, answered_ok)
}

/// The rows of a store the child left without closing it, as a crash would.
fn stored(dir: &Path) -> BTreeSet<i64> {
    let store = Store::open(&dir.join("data")).unwrap();
    store
        .read(|conn| {
            let mut query = conn.prepare("SELECT seq FROM note")?;
            let rows = query.query_map([], |row| row.get(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .unwrap()
}

#[test]
fn writes_on_a_failing_disk_are_refused_every_write_after_a_failed_fsync_too_and_none_answered_ok_is_lost()
 {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        run_child(Path::new(&dir));
    }
    let (dir, answered_ok) = run_in_child(
        "writes_on_a_failing_disk_are_refused_every_write_after_a_failed_fsync_too_and_none_answered_ok_is_lost",
        CHILD_DIR,
    );
    assert_eq!(answered_ok.len(), 10);
    let stored = stored(dir.path());
    let lost: Vec<&i64> = answered_ok.difference(&stored).collect();
    assert!(lost.is_empty(), "answered ok, then lost: {lost:?}");
    // A failed commit keeps nothing; a write refused after the failed fsync never ran.
    assert!(
        stored.iter().all(|seq| *seq < 100 || *seq == 200),
        "{stored:?}"
    );
}

#[test]
fn a_failed_fsync_in_a_background_checkpoint_stops_the_store_too() {
    if let Ok(dir) = std::env::var(CHECKPOINT_CHILD_DIR) {
        run_checkpoint_child(Path::new(&dir));
    }
    let (dir, answered_ok) = run_in_child(
        "a_failed_fsync_in_a_background_checkpoint_stops_the_store_too",
        CHECKPOINT_CHILD_DIR,
    );
    let stored = stored(dir.path());
    let lost: Vec<&i64> = answered_ok.difference(&stored).collect();
    assert!(lost.is_empty(), "answered ok, then lost: {lost:?}");
    assert!(!stored.contains(&60), "{stored:?}");
}
