//! The SFTP source against a real OpenSSH `sshd` on a loopback port
//! (`test_support::sshd`) and a real data directory: files of one message and FHS/BHS
//! batches are stored and renamed into `done` after the commit; a bad file goes to
//! `error` with its report; a symbolic link is never read; a file still growing is not
//! taken early; a server whose host key is not the pinned one is never read from; a
//! server that stops holds the files until it is back.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{adt_a08 as adt, wait_for};
use conf::ByteSize;
use engine::ChannelMetrics;
use engine::sources::sftp::{SftpSource, SftpSourceConfig};
use store::Store;
use test_support::sshd::Sshd;

/// How long a wait may take before the test fails.
const MINUTE: Duration = Duration::from_secs(60);

struct Running {
    dir: tempfile::TempDir,
    _data: tempfile::TempDir,
    sshd: Sshd,
    store: Store,
    source: Option<SftpSource>,
    pattern: String,
}

impl Running {
    fn inbox(&self) -> PathBuf {
        self.dir.path().join("inbox")
    }
    fn done(&self) -> PathBuf {
        self.inbox().join("done")
    }
    fn error(&self) -> PathBuf {
        self.inbox().join("error")
    }
    async fn stop(&mut self) {
        if let Some(source) = self.source.take() {
            source.shutdown().await;
        }
    }
}

/// An sshd and a data directory, no source yet.
async fn setup(pattern: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    let (data, store) = common::migrated_store().await;
    Running {
        dir,
        _data: data,
        sshd,
        store,
        source: None,
        pattern: pattern.to_owned(),
    }
}

impl Running {
    /// Starts a source reading `DIR/inbox` through `server` (a `server = {}` table).
    fn read_with(&mut self, server: &str) {
        let intake = common::intake(
            "files",
            &self.store,
            Default::default(),
            Arc::new(ChannelMetrics::default()),
        );
        let config: SftpSourceConfig = toml::from_str(&format!(
            "server = {server}\npath = \"{}\"\npattern = \"{}\"\npoll_interval = \"100ms\"",
            self.inbox().display(),
            self.pattern
        ))
        .unwrap();
        let source =
            SftpSource::start(&config, ByteSize(1 << 20), self.dir.path(), intake).expect("starts");
        self.source = Some(source);
    }
}

/// An sshd and a source reading `DIR/inbox` through it, its host key pinned by its
/// known_hosts.
async fn start(pattern: &str) -> Running {
    let mut running = setup(pattern).await;
    let server = running.sshd.server_toml();
    running.read_with(&server);
    running
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
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "done" && n != "error")
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_message_and_a_batch_are_stored_then_renamed_into_done() {
    let mut running = start("*.hl7").await;
    let single = adt("A1");
    std::fs::write(running.inbox().join("a.hl7"), &single).unwrap();
    let batch = format!(
        "FHS|^~\\&|ADT|HOSP\nBHS|^~\\&|ADT|HOSP\n{}{}BTS|2\nFTS|1\n",
        adt("B1").replace('\r', "\n"),
        adt("B2").replace('\r', "\n")
    );
    std::fs::write(running.inbox().join("b.hl7"), &batch).unwrap();
    std::fs::write(running.inbox().join("notes.txt"), "not for Corridor").unwrap();

    let done = running.done();
    wait_for("both files are in done", MINUTE, || names(&done).len() == 2).await;
    assert_eq!(names(&done), ["a.hl7", "b.hl7"]);
    // Renamed only after the commit: every message is in the journal now.
    let rows = journal(&running.store);
    let mut ids: Vec<&str> = rows.iter().map(|r| r.1.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["A1", "B1", "B2"]);
    assert!(rows.iter().all(|r| r.0 == "received"), "{rows:?}");
    assert!(rows.iter().any(|r| r.2 == "file:a.hl7"), "{rows:?}");
    // A file of one message is stored byte for byte; done holds the files unchanged.
    assert!(
        common::raw_messages(&running.store).contains(&single.as_bytes().to_vec()),
        "the single message is stored as the file was"
    );
    assert_eq!(std::fs::read(done.join("b.hl7")).unwrap(), batch.as_bytes());
    assert_eq!(names(&running.inbox()), ["notes.txt"]);
    assert!(names(&running.error()).is_empty());

    // The same file again (as after a crash between the commit and the rename): its
    // message is a duplicate, not stored twice, and the file gets a numbered name.
    std::fs::write(running.inbox().join("a.hl7"), &single).unwrap();
    wait_for("the repeated file is in done", MINUTE, || {
        names(&done).len() == 3
    })
    .await;
    assert_eq!(names(&done), ["a.hl7", "a.hl7.1", "b.hl7"]);
    assert_eq!(journal(&running.store).len(), 3, "no message stored twice");
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_goes_to_error_with_its_report() {
    let mut running = start("*.hl7").await;
    // A good message, then one with a bad segment name on line 4.
    std::fs::write(
        running.inbox().join("mixed.hl7"),
        format!(
            "{}MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101||ADT^A08|M2|P|2.5.1\rP@D|1\r",
            adt("M1")
        ),
    )
    .unwrap();
    // Not a batch at all: a segment before any MSH. Nothing of it is stored.
    std::fs::write(
        running.inbox().join("stray.hl7"),
        format!("PID|1||P1\r{}", adt("X1")),
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
    let mixed = std::fs::read_to_string(error.join("mixed.hl7.error.txt")).unwrap();
    assert!(mixed.contains("message 2"), "{mixed}");
    assert!(mixed.contains("line 4"), "{mixed}");
    assert!(mixed.contains("\"M2\""), "{mixed}");
    let stray = std::fs::read_to_string(error.join("stray.hl7.error.txt")).unwrap();
    assert!(stray.contains("line 1"), "{stray}");
    assert!(stray.contains("nothing was stored"), "{stray}");
    // The good message and the rejected one are stored; nothing of the stray file.
    let rows = journal(&running.store);
    let states: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    assert_eq!(states, [("received", "M1"), ("rejected", "M2")]);
    assert!(names(&running.done()).is_empty());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbolic_link_is_never_read() {
    let mut running = start("*.hl7").await;
    // A message outside the folder, and a link to it in the folder.
    let outside = running.dir.path().join("outside.hl7");
    std::fs::write(&outside, adt("SECRET")).unwrap();
    std::os::unix::fs::symlink(&outside, running.inbox().join("link.hl7")).unwrap();
    std::fs::write(running.inbox().join("real.hl7"), adt("R1")).unwrap();

    let error = running.error();
    wait_for("the link is in error", MINUTE, || {
        names(&error).contains(&"link.hl7".to_owned())
    })
    .await;
    wait_for("the file is in done", MINUTE, || {
        names(&running.done()) == ["real.hl7"]
    })
    .await;
    // Renamed as it is: still a link, its target untouched and never stored.
    let moved = std::fs::symlink_metadata(error.join("link.hl7")).unwrap();
    assert!(moved.file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), adt("SECRET"));
    let report = std::fs::read_to_string(error.join("link.hl7.error.txt")).unwrap();
    assert!(report.contains("a symbolic link"), "{report}");
    let ids: Vec<String> = journal(&running.store).into_iter().map(|r| r.1).collect();
    assert_eq!(ids, ["R1"]);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_still_growing_is_not_taken_early() {
    let mut running = start("*.hl7").await;
    let path = running.inbox().join("growing.hl7");
    let mut written = String::new();
    // A message every 60 ms for 1.5 s: the size changes between every two polls.
    for n in 0..25 {
        written.push_str(&adt(&format!("G{n}")));
        std::fs::write(&path, &written).unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(
            journal(&running.store).is_empty(),
            "a message was stored while the file grew"
        );
    }
    wait_for("the file is in done", MINUTE, || {
        names(&running.done()) == ["growing.hl7"]
    })
    .await;
    let ids: Vec<String> = journal(&running.store).into_iter().map(|r| r.1).collect();
    let expected: Vec<String> = (0..25).map(|n| format!("G{n}")).collect();
    assert_eq!(
        ids, expected,
        "every message, once, when the file was whole"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_host_key_is_not_pinned_is_never_read() {
    let mut running = setup("*.hl7").await;
    // The client key's fingerprint: a key, but not the server's.
    let other = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(running.sshd.client_key.with_extension("pub"))
        .output()
        .unwrap();
    let other = String::from_utf8(other.stdout).unwrap();
    let other = other.split_whitespace().nth(1).unwrap().to_owned();
    assert_ne!(other, running.sshd.fingerprint);
    let server = format!(
        "{{ host = \"127.0.0.1\", port = {}, username = \"{}\", private_key = \"{}\", host_key_fingerprint = \"{other}\" }}",
        running.sshd.port,
        running.sshd.user,
        running.sshd.client_key.display()
    );
    running.read_with(&server);
    std::fs::write(running.inbox().join("a.hl7"), adt("A1")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(journal(&running.store).is_empty(), "nothing read");
    assert_eq!(names(&running.inbox()), ["a.hl7"], "the file stays");
    assert!(
        !running.done().exists() && !running.error().exists(),
        "nothing was made on the server"
    );
    running.stop().await;

    // Pinned by its fingerprint, the same server is read.
    let server = format!(
        "{{ host = \"127.0.0.1\", port = {}, username = \"{}\", private_key = \"{}\", host_key_fingerprint = \"{}\" }}",
        running.sshd.port,
        running.sshd.user,
        running.sshd.client_key.display(),
        running.sshd.fingerprint
    );
    running.read_with(&server);
    wait_for("the file is in done", MINUTE, || {
        names(&running.done()) == ["a.hl7"]
    })
    .await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_holds_the_files_until_it_is_back() {
    let mut running = start("*.hl7").await;
    std::fs::write(running.inbox().join("1.hl7"), adt("S1")).unwrap();
    wait_for("the first file is in done", MINUTE, || {
        names(&running.done()) == ["1.hl7"]
    })
    .await;

    running.sshd.stop();
    std::fs::write(running.inbox().join("2.hl7"), adt("S2")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        names(&running.inbox()),
        ["2.hl7"],
        "held while the server is down"
    );
    assert_eq!(journal(&running.store).len(), 1);

    running.sshd.resume();
    wait_for("the held file is in done", MINUTE, || {
        names(&running.done()) == ["1.hl7", "2.hl7"]
    })
    .await;
    let ids: Vec<String> = journal(&running.store).into_iter().map(|r| r.1).collect();
    assert_eq!(ids, ["S1", "S2"]);
    running.stop().await;
}

#[test]
fn a_configuration_without_a_pinned_host_key_fails_naming_the_key() {
    let error = engine::Config::from_toml(
        "[channels.lab]\nsource = { type = \"sftp\", path = \"/in\", server = { host = \"sftp.example.org\", username = \"corridor\", password_env = \"SFTP_PASSWORD\" } }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("channels.lab.source.server.known_hosts"),
        "{error}"
    );
    let error = engine::Config::from_toml(
        "[channels.lab]\nsource = { type = \"sftp\", server = { host = \"h\", username = \"u\", password_env = \"P\", host_key_fingerprint = \"SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s\" }, poll_interval = \"5s\", max_files = 3 }\n",
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("channels.lab.source.max_files"), "{error}");
    assert!(error.contains("channels.lab.source.path"), "{error}");
}
