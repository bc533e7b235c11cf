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
use engine::sources::directory::{DirectorySettings, DirectorySource};
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

/// A whole engine reading `inbox` (a directory source on channel `files`, polled every
/// 50 ms) with `extra` keys in its source table; data under `dir`.
async fn start_engine_reading(dir: &Path, inbox: &Path, extra: &str) -> engine::Engine {
    let toml = format!(
        "[channels.files]\nsource = {{ type = \"directory\", path = {:?}, poll_interval = \"50ms\"{extra} }}\n",
        inbox.display().to_string()
    );
    common::start_engine(dir, "data", common::Api::Off, &toml).await
}

/// The control ids in the journal, oldest first.
fn control_ids(store: &Store) -> Vec<String> {
    journal(store).into_iter().map(|r| r.1).collect()
}

#[tokio::test]
async fn a_file_swapped_for_a_symlink_after_it_was_listed_is_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    // A file the engine must never read: outside the folder, readable by its owner only.
    let secret = outside.join("secret.hl7");
    std::fs::write(&secret, adt("SECRET")).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // Two files ready at the same poll: a long one, stored first (it is older), and b,
    // swapped for a link to the secret while a is being stored, after both were listed.
    let long: String = (0..30_000).map(|i| adt(&format!("A{i}"))).collect();
    std::fs::write(inbox.join("a.hl7"), long).unwrap();
    let b = inbox.join("b.hl7");
    std::fs::write(&b, adt("B1")).unwrap();
    let a_time = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(inbox.join("a.hl7"))
        .unwrap()
        .set_modified(a_time)
        .unwrap();

    let engine = start_engine_reading(dir.path(), &inbox, "").await;
    let store = engine.store().clone();
    wait_for("a's messages are being stored", MINUTE, || {
        !journal(&store).is_empty()
    })
    .await;
    assert!(
        inbox.join("a.hl7").exists(),
        "a is still being stored when b is swapped"
    );
    std::fs::remove_file(&b).unwrap();
    std::os::unix::fs::symlink(&secret, &b).unwrap();

    let error = inbox.join("error");
    wait_for("the link is moved to error", MINUTE, || {
        std::fs::symlink_metadata(error.join("b.hl7")).is_ok()
    })
    .await;
    let report = std::fs::read_to_string(error.join("b.hl7.error.txt")).unwrap();
    assert!(report.contains("a symbolic link"), "{report}");
    assert!(report.contains("nothing was read"), "{report}");
    // Moved as it is: the link itself, its target untouched and never stored.
    let moved = std::fs::symlink_metadata(error.join("b.hl7")).unwrap();
    assert!(moved.file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), adt("SECRET"));
    wait_for("a is in done", MINUTE, || inbox.join("done/a.hl7").exists()).await;
    let ids = control_ids(&store);
    assert_eq!(ids.len(), 30_000);
    assert!(
        !ids.iter().any(|id| id == "SECRET" || id == "B1"),
        "the secret was stored"
    );
    engine.shutdown().await;
}

#[tokio::test]
async fn links_planted_in_error_and_done_are_never_written_through_or_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    let outside = dir.path().join("outside");
    for folder in [&inbox, &outside, &inbox.join("error"), &inbox.join("done")] {
        std::fs::create_dir_all(folder).unwrap();
    }
    // Dangling links where the report of bad.hl7 and the moved good.hl7 would go.
    let planted_report = outside.join("report-written-here");
    let planted_file = outside.join("file-moved-here");
    std::os::unix::fs::symlink(&planted_report, inbox.join("error/bad.hl7.error.txt")).unwrap();
    std::os::unix::fs::symlink(&planted_file, inbox.join("done/good.hl7")).unwrap();
    std::fs::write(inbox.join("bad.hl7"), "PID|1||P1\r").unwrap();
    std::fs::write(inbox.join("good.hl7"), adt("G1")).unwrap();

    let engine = start_engine_reading(dir.path(), &inbox, "").await;
    let (error, done) = (inbox.join("error"), inbox.join("done"));
    wait_for("both files are moved", MINUTE, || {
        error.join("bad.hl7.1").exists() && done.join("good.hl7.1").exists()
    })
    .await;
    assert!(
        !planted_report.exists(),
        "the report was written through a link"
    );
    assert!(!planted_file.exists());
    // The planted links are still there, as they were: a numbered name was taken.
    for link in [error.join("bad.hl7.error.txt"), done.join("good.hl7")] {
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
    let report = std::fs::read_to_string(error.join("bad.hl7.1.error.txt")).unwrap();
    assert!(report.contains("outside any message"), "{report}");
    assert_eq!(
        std::fs::read_to_string(done.join("good.hl7.1")).unwrap(),
        adt("G1")
    );
    assert_eq!(control_ids(engine.store()), ["G1"]);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_hard_link_to_a_file_elsewhere_is_refused_unless_hard_links_are_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("secret.hl7");
    std::fs::write(&secret, adt("SECRET")).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::hard_link(&secret, inbox.join("linked.hl7")).unwrap();

    let engine = start_engine_reading(dir.path(), &inbox, "").await;
    let error = inbox.join("error");
    wait_for("the hard link is moved to error", MINUTE, || {
        error.join("linked.hl7").exists()
    })
    .await;
    let report = std::fs::read_to_string(error.join("linked.hl7.error.txt")).unwrap();
    assert!(report.contains("2 hard links"), "{report}");
    assert!(report.contains("allow_hard_links = true"), "{report}");
    assert!(control_ids(engine.store()).is_empty());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), adt("SECRET"));
    engine.shutdown().await;

    // Allowed: the same kind of file is read.
    let allowed = tempfile::tempdir().unwrap();
    let inbox = allowed.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::hard_link(&secret, inbox.join("linked.hl7")).unwrap();
    let engine = start_engine_reading(allowed.path(), &inbox, ", allow_hard_links = true").await;
    wait_for("the hard link is read", MINUTE, || {
        inbox.join("done/linked.hl7").exists()
    })
    .await;
    assert_eq!(control_ids(engine.store()), ["SECRET"]);
    engine.shutdown().await;
}

#[tokio::test]
async fn files_too_large_and_messages_too_large_go_to_error_with_nothing_stored() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    std::fs::write(inbox.join("big.hl7"), vec![b'x'; 2 << 20]).unwrap();
    // A good message, then one that never ends within max_frame_size.
    let mut endless = adt("E1").into_bytes();
    endless.extend_from_slice(b"MSH|^~\\&|ADT|HOSP|EHR|HOSP|2024||ADT^A08|E2|P|2.5.1\rNTE|1||");
    endless.extend(std::iter::repeat_n(b'y', 300_000));
    std::fs::write(inbox.join("endless.hl7"), endless).unwrap();

    let engine = start_engine_reading(
        dir.path(),
        &inbox,
        ", max_file_size = \"1MiB\", max_frame_size = \"64KiB\"",
    )
    .await;
    let error = inbox.join("error");
    wait_for("both files are in error", MINUTE, || {
        error.join("big.hl7").exists() && error.join("endless.hl7").exists()
    })
    .await;
    let big = std::fs::read_to_string(error.join("big.hl7.error.txt")).unwrap();
    assert!(
        big.contains("larger than max_file_size (1048576 bytes)"),
        "{big}"
    );
    let endless = std::fs::read_to_string(error.join("endless.hl7.error.txt")).unwrap();
    assert!(
        endless.contains(
            "message 2 (line 4) is larger than max_frame_size (65536 bytes); nothing was stored"
        ),
        "{endless}"
    );
    assert!(control_ids(engine.store()).is_empty());
    engine.shutdown().await;
}

#[tokio::test]
async fn a_named_pipe_in_the_folder_is_moved_to_error_unopened_and_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    let fifo = inbox.join("pipe.hl7");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    std::fs::write(inbox.join("good.hl7"), adt("G1")).unwrap();

    let engine = start_engine_reading(dir.path(), &inbox, "").await;
    let error = inbox.join("error");
    wait_for("the pipe is in error and the file in done", MINUTE, || {
        std::fs::symlink_metadata(error.join("pipe.hl7")).is_ok()
            && inbox.join("done/good.hl7").exists()
    })
    .await;
    let report = std::fs::read_to_string(error.join("pipe.hl7.error.txt")).unwrap();
    assert!(report.contains("not a regular file"), "{report}");
    assert_eq!(control_ids(engine.store()), ["G1"]);
    engine.shutdown().await;
}
