//! The directory source with a real folder and a real data directory: files of many
//! messages and FHS/BHS batches are stored and moved to `done`; malformed files go to
//! `error` with a report naming the message and line; a file is moved only after its
//! messages are committed, and one read again (its move failed, as after a crash) is
//! not stored twice.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{adt_a08 as adt, wait_for};
use engine::ChannelMetrics;
use engine::source_dir::{DirectorySettings, DirectorySource};
use store::Store;

/// How long a wait may take before the test fails.
const MINUTE: Duration = Duration::from_secs(60);

struct Running {
    _data: tempfile::TempDir,
    inbox: tempfile::TempDir,
    store: Store,
    source: DirectorySource,
}

impl Running {
    fn inbox(&self) -> &Path {
        self.inbox.path()
    }
    fn done(&self) -> PathBuf {
        self.inbox.path().join("done")
    }
    fn error(&self) -> PathBuf {
        self.inbox.path().join("error")
    }
}

async fn start(pattern: &str) -> Running {
    let (data, store) = common::migrated_store().await;
    let inbox = tempfile::tempdir().unwrap();
    let intake = common::intake(
        "files",
        &store,
        Default::default(),
        Arc::new(ChannelMetrics::default()),
    );
    let mut settings = DirectorySettings::new(inbox.path());
    settings.pattern = pattern.to_owned();
    settings.poll_interval = Duration::from_millis(50);
    let source = DirectorySource::start(settings, intake).unwrap();
    Running {
        _data: data,
        inbox,
        store,
        source,
    }
}

/// (state, control id, peer) of every journal row, oldest first.
fn journal(store: &Store) -> Vec<(String, String, String)> {
    common::rows(
        store,
        "SELECT state, control_id, peer FROM journal ORDER BY id",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "done" && n != "error")
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn files_of_many_messages_and_batches_are_stored_then_moved_to_done() {
    let running = start("*.hl7").await;
    // Three messages one after another, with LF line ends as editors write them.
    let stream = format!("{}{}{}", adt("A1"), adt("A2"), adt("A3")).replace('\r', "\n");
    std::fs::write(running.inbox().join("a.hl7"), stream).unwrap();
    let batch = format!(
        "FHS|^~\\&|ADT|HOSP\rBHS|^~\\&|ADT|HOSP\r{}{}BTS|2\rFTS|1\r",
        adt("B1"),
        adt("B2")
    );
    std::fs::write(running.inbox().join("b.hl7"), batch).unwrap();
    std::fs::write(running.inbox().join("notes.txt"), "not for Corridor").unwrap();

    let done = running.done();
    wait_for("both files are in done", MINUTE, || names(&done).len() == 2).await;
    assert_eq!(names(&done), ["a.hl7", "b.hl7"]);
    // Moved only after the commit: every message is in the journal now.
    let rows = journal(&running.store);
    let mut ids: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["A1", "A2", "A3", "B1", "B2"]);
    assert!(rows.iter().all(|r| r.0 == "received"));
    assert!(rows.iter().any(|r| r.2 == "file:a.hl7"));
    // What the pattern does not name is left alone.
    assert_eq!(names(running.inbox()), ["notes.txt"]);
    assert!(names(&running.error()).is_empty());
    running.source.shutdown().await;
}

#[tokio::test]
async fn malformed_files_go_to_error_with_the_message_and_line() {
    let running = start("*.hl7").await;
    // Not a batch at all: a segment before any MSH. Nothing of it is stored.
    std::fs::write(
        running.inbox().join("stray.hl7"),
        format!("PID|1||P1\r{}", adt("X1")),
    )
    .unwrap();
    // A good message, then one with a bad segment name on line 4.
    std::fs::write(
        running.inbox().join("mixed.hl7"),
        format!(
            "{}MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101||ADT^A08|M2|P|2.5.1\rP@D|1\r",
            adt("M1")
        ),
    )
    .unwrap();

    let error = running.error();
    wait_for("both files are in error", MINUTE, || {
        names(&error)
            .iter()
            .filter(|n| !n.ends_with(".txt"))
            .count()
            == 2
    })
    .await;
    let stray = std::fs::read_to_string(error.join("stray.hl7.error.txt")).unwrap();
    assert!(stray.contains("line 1"), "{stray}");
    assert!(stray.contains("outside any message"), "{stray}");
    assert!(stray.contains("nothing was stored"), "{stray}");
    let mixed = std::fs::read_to_string(error.join("mixed.hl7.error.txt")).unwrap();
    assert!(
        mixed.contains("message 2 (line 4, MSH-10 \"M2\""),
        "{mixed}"
    );
    assert!(mixed.contains("P@D"), "{mixed}");
    assert!(
        !mixed.contains("M1"),
        "only the bad message is named: {mixed}"
    );

    let rows = journal(&running.store);
    let found: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    assert_eq!(found, [("received", "M1"), ("rejected", "M2")]);
    assert!(names(running.inbox()).is_empty());
    assert!(names(&running.done()).is_empty());
    running.source.shutdown().await;
}

#[tokio::test]
async fn a_file_moves_only_after_its_messages_are_committed_and_a_reread_stores_nothing_twice() {
    let running = start("*.hl7").await;
    // The move into done will fail: done is a file, not a folder (as if Corridor died
    // between the commit and the move).
    let done = running.done();
    std::fs::remove_dir(&done).unwrap();
    std::fs::write(&done, "in the way").unwrap();
    let file = running.inbox().join("c.hl7");
    std::fs::write(&file, format!("{}{}", adt("C1"), adt("C2"))).unwrap();

    let store = running.store.clone();
    wait_for("the messages are stored", MINUTE, || {
        journal(&store).len() == 2
    })
    .await;
    // Stored, and read again at later polls, yet never stored twice.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(file.exists(), "the file stays while it cannot be moved");
    }
    assert_eq!(journal(&running.store).len(), 2);

    // The folder is back: the next read moves the file, still without a second copy.
    std::fs::remove_file(&done).unwrap();
    std::fs::create_dir(&done).unwrap();
    wait_for("the file is in done", MINUTE, || {
        done.join("c.hl7").exists()
    })
    .await;
    assert!(!file.exists());
    let ids: Vec<String> = journal(&running.store).into_iter().map(|r| r.1).collect();
    assert_eq!(ids, ["C1", "C2"]);
    running.source.shutdown().await;
}
