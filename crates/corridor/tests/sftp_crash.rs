//! SFTP connectors across SIGKILLs of `corridor run`, against a real OpenSSH `sshd` on a
//! loopback port (`test_support::sshd`).
//!
//! - The SFTP destination: messages stream into channel `lab` and each is written as a
//!   file to a folder on the server. The engine is killed while it uploads, restarted on
//!   the same data directory, and the sender resends what was not acknowledged. At the
//!   end every acknowledged message's file is there exactly once and whole, and no
//!   name but a message's own (a hidden `.NAME.partial` may be left by the kill) is in
//!   the folder.
//! - The SFTP source: files of many messages wait in a folder on the server. The engine
//!   is killed again and again while it takes them, restarted each time. At the end
//!   every message of every file is in the journal exactly once and every file is in
//!   `done`.
//!
//! `CORRIDOR_CRASH_SEED` repeats a run.

#[path = "send_support.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;
use test_support::sshd::Sshd;

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_acknowledged_message_is_one_whole_file_after_a_sigkill_during_uploads() {
    const MESSAGES: usize = 1_000;
    let seed = test_support::crash_seed("sftp destination");
    let pause = Duration::from_millis(seed % 700);

    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let data = dir.path().join("data");
    let config = format!(
        "{}[[channels.lab.destinations]]\nname = \"partner\"\ntype = \"sftp\"\npath = \"{}\"\n\
         file_name = \"{{control_id}}.hl7\"\nserver = {}\n\
         retry = {{ max_attempts = 1000, initial_backoff = \"50ms\", max_backoff = \"500ms\" }}\n",
        lab_config(""),
        out.display(),
        sshd.server_toml()
    );
    let all: Vec<String> = (0..MESSAGES).map(|i| format!("U-{i:05}")).collect();
    let file = message_file(dir.path(), "all.hl7", &all);

    let run = Run::start(&data, &config);
    let sender = send_in_background(&run.addr, &file);
    // Kill at a random moment once files are being written.
    let deadline = Instant::now() + Duration::from_secs(60);
    while names(&out).len() < 2 {
        assert!(Instant::now() < deadline, "no file was uploaded");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(pause);
    run.kill();
    let output = wait_output(sender, Duration::from_secs(120));
    let mut acknowledged: BTreeSet<String> = accepted_ids(&output.stdout).into_iter().collect();
    let before_kill = acknowledged.len();
    let files_before_restart = names(&out).len();

    let run = Run::start(&data, &config);
    resend_unacknowledged(dir.path(), &run.addr, &all, &mut acknowledged);
    assert_eq!(acknowledged.len(), MESSAGES);

    let expected: BTreeSet<String> = acknowledged.iter().map(|id| format!("{id}.hl7")).collect();
    let deadline = Instant::now() + Duration::from_secs(180);
    let delivered = |data: &Path| {
        journal(data)
            .iter()
            .all(|(_, state, _)| state == "delivered")
    };
    loop {
        let finals: BTreeSet<String> = names(&out)
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect();
        if finals == expected && delivered(&data) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} files, {} names that are no message's, journal all delivered: {}",
            finals.intersection(&expected).count(),
            expected.len(),
            finals.difference(&expected).count(),
            delivered(&data)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(run.terminate(), Some(0));

    // Each file whole: exactly the message received, byte for byte.
    for id in &acknowledged {
        let written = std::fs::read_to_string(out.join(format!("{id}.hl7"))).unwrap();
        assert_eq!(written, oru(id), "{id}.hl7 is not the whole message");
    }
    // Each message received once (the resent ones were duplicates).
    assert_eq!(journal(&data).len(), MESSAGES);
    // What else is in the folder is a temporary name only a kill left behind.
    let others: Vec<String> = names(&out)
        .into_iter()
        .filter(|n| !expected.contains(n))
        .collect();
    assert!(
        others
            .iter()
            .all(|n| n.starts_with('.') && n.ends_with(".partial")),
        "{others:?}"
    );
    eprintln!(
        "killed {pause:?} after the first upload: {before_kill} acknowledged and \
         {files_before_restart} files before the kill, {} partial files left",
        others.len()
    );
}

#[test]
fn every_message_of_every_file_is_stored_once_across_sigkills_while_the_source_reads() {
    const FILES: usize = 120;
    const PER_FILE: usize = 25;
    const KILLS: u64 = 3;
    let seed = test_support::crash_seed("sftp source");

    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let data = dir.path().join("data");
    // Every file written before the engine starts, so every one is ready at its second
    // poll; a file per poll interval would be slow, so the source polls often.
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in 0..FILES {
        let name = format!("batch-{f:03}.hl7");
        let ids: Vec<String> = (0..PER_FILE).map(|m| format!("F{f:03}-{m:03}")).collect();
        message_file(&inbox, &name, &ids);
        expected.insert(name, ids);
    }
    let config = format!(
        "{}[channels.inbound]\nsource = {{ type = \"sftp\", path = \"{}\", pattern = \"*.hl7\", \
         poll_interval = \"50ms\", server = {} }}\n",
        lab_config(""),
        inbox.display(),
        sshd.server_toml()
    );
    let done = inbox.join("done");
    let stored = |data: &Path| journal(data).len();

    for kill in 0..KILLS {
        let run = Run::start(&data, &config);
        let before = if data.join("corridor.db").exists() {
            stored(&data)
        } else {
            0
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while stored(&data) == before && before < FILES * PER_FILE {
            assert!(Instant::now() < deadline, "run {kill} stored nothing");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis((seed + kill * 337) % 150));
        run.kill();
        eprintln!(
            "kill {kill}: {} messages stored, {} files in done",
            stored(&data),
            names(&done).len()
        );
    }

    let run = Run::start(&data, &config);
    let deadline = Instant::now() + Duration::from_secs(180);
    while names(&done).len() < FILES {
        assert!(
            Instant::now() < deadline,
            "only {} of {FILES} files in done, {} messages stored",
            names(&done).len(),
            stored(&data)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // File names may say whom a file is about: never logged at the default level.
    let log = run.log();
    assert!(log.contains("sftp source reading"), "{log}");
    assert!(!log.contains("batch-"), "a file name was logged:\n{log}");
    assert_eq!(run.terminate(), Some(0));

    // Every file in done, under its own name; none left, none in error.
    let files: Vec<String> = expected.keys().cloned().collect();
    assert_eq!(names(&done), files);
    assert!(!names(&inbox).iter().any(|n| n.ends_with(".hl7")));
    assert!(names(&inbox.join("error")).is_empty());
    // Every message once.
    let ids: Vec<String> = journal(&data).into_iter().map(|(id, _, _)| id).collect();
    let mut seen = BTreeSet::new();
    let twice: Vec<&String> = ids.iter().filter(|id| !seen.insert(*id)).collect();
    assert!(twice.is_empty(), "stored twice: {twice:?}");
    let all: BTreeSet<String> = expected.into_values().flatten().collect();
    assert_eq!(seen.into_iter().cloned().collect::<BTreeSet<_>>(), all);
}
