//! The HTTP and directory sources started by the engine from a configuration: messages
//! they store reach the channel's pipeline like those of an MLLP listener (or are
//! `processed` on receipt in a channel with nothing to process), validation before the
//! ACK applies to them, and their keys are checked with errors naming the key.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Api, oru_with_value as oru, wait_for};
use engine::{Config, Engine};
use store::Store;

async fn post(addr: std::net::SocketAddr, body: &str) -> (u16, String) {
    let answer = common::http(addr, "POST", "/", &[], body.as_bytes()).await;
    (answer.status, answer.body)
}

/// How long a wait may take before the test fails.
const MINUTE: Duration = Duration::from_secs(60);

/// (channel, control id, state) of every journal row.
fn journal(store: &Store) -> Vec<(String, String, String)> {
    common::rows(
        store,
        "SELECT channel, control_id, state FROM journal ORDER BY id",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The engine's configuration with `channels` from line 5 on, the HTTP API off.
fn config(dir: &Path, channels: &str) -> Result<Config, engine::ConfigErrors> {
    Config::from_toml_in(&common::config_text(dir, "data", Api::Off, channels), dir)
}

#[tokio::test]
async fn http_and_directory_sources_feed_their_channels_pipelines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("inbox")).unwrap();
    let config = config(
        dir.path(),
        r#"
        [channels.web]
        source = { type = "http", listen = "127.0.0.1:0" }
        [channels.web.validation]
        mode = "before_ack"
        [channels.files]
        source = { type = "directory", path = "inbox", pattern = "*.hl7", poll_interval = "50ms" }
        transforms = [ { set = "MSH-5", value = "ARCHIVE" } ]
        [channels.files.retention]
        max_age = "30d"
        "#,
    )
    .unwrap();
    let engine = Engine::start(config).await.unwrap();
    let http = engine.http_sources();
    assert_eq!(http.len(), 1);
    assert_eq!(http[0].channel, "web");
    assert!(
        engine.listeners().is_empty(),
        "no MLLP listener was asked for"
    );

    let (status, ack) = post(http[0].addr, &oru("W1", "13.2")).await;
    assert_eq!(status, 200, "{ack}");
    assert!(ack.contains("MSA|AA|W1"), "{ack}");
    // "web" has no stage and no destination: its message was stored `processed` in
    // the commit its ACK waited for, and counted as processed.
    let store = engine.store().clone();
    assert_eq!(
        journal(&store),
        [("web".to_owned(), "W1".to_owned(), "processed".to_owned())]
    );
    let web = engine.metrics().channel("web").unwrap().counts();
    assert_eq!((web.received, web.processed), (1, 1));
    let (status, ack) = post(http[0].addr, &oru("W2", "high")).await;
    assert_eq!(status, 422, "{ack}");
    assert!(ack.contains("MSA|AE|W2"), "{ack}");
    assert!(ack.contains("ERR||OBX^1^5"), "{ack}");

    std::fs::write(
        dir.path().join("inbox/f.hl7"),
        format!("{}{}", oru("F1", "1"), oru("F2", "2")),
    )
    .unwrap();
    wait_for("the file is in done", MINUTE, || {
        dir.path().join("inbox/done/f.hl7").exists()
    })
    .await;

    // The files went through their channel's pipeline (woken by the source), the
    // invalid message stays rejected.
    wait_for("every accepted message is processed", MINUTE, || {
        journal(&store)
            .iter()
            .all(|(_, _, state)| state != "received")
    })
    .await;
    let rows = journal(&store);
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|(_, id, state)| (id.as_str(), state.as_str()))
        .collect();
    assert_eq!(states.len(), 4, "{states:?}");
    assert!(states.contains(&("W2", "rejected")), "{states:?}");
    assert!(
        states
            .iter()
            .filter(|(id, _)| *id != "W2")
            .all(|(_, state)| *state != "rejected"),
        "{states:?}"
    );
    assert!(
        rows.iter()
            .any(|(channel, id, _)| channel == "files" && id == "F2")
    );
    // Counted after the commit that the journal already shows.
    let files = engine.metrics().channel("files").unwrap();
    wait_for("both files' messages are counted", MINUTE, || {
        files.counts().processed == 2
    })
    .await;
    assert_eq!(files.counts().received, 2);
    engine.shutdown().await;
}

#[tokio::test]
async fn source_keys_are_checked_by_kind_with_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let errors = |channels: &str| -> Vec<String> {
        config(dir.path(), channels)
            .unwrap_err()
            .errors
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let found = errors("[channels.web]\nsource = { type = \"http\" }\n");
    assert_eq!(
        found,
        ["line 6: channels.web.source.listen: a http source needs listen = \"IP:port\""]
    );
    let found = errors("[channels.f]\nsource = { type = \"directory\", path = \"nowhere\" }\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("line 6: channels.f.source.path: folder ")
            && found[0].ends_with("does not exist"),
        "{found:?}"
    );
    let found = errors(
        "[channels.f]\nsource = { type = \"directory\", path = \".\", listen = \"127.0.0.1:0\", pattern = \"a/*\", poll_interval = \"0s\" }\n",
    );
    assert_eq!(
        found,
        [
            "line 6: channels.f.source.listen: is not a key of a directory source (mllp, http and fhir sources take it)",
            "line 6: channels.f.source.pattern: \"a/*\" is not a file name pattern (e.g. \"*.hl7\")",
            "line 6: channels.f.source.poll_interval: must be longer than 0"
        ]
    );
    let found = errors(
        "[channels.m]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", path = \"x\" }\n[channels.m.retention]\nbatch_size = 0\n[channels.m.validation]\nmode = \"sometimes\"\n",
    );
    // A value the types refuse does not hide the problems the checks find.
    assert_eq!(found.len(), 4, "{found:?}");
    assert!(
        found[0].starts_with("line 6: channels.m.source.path"),
        "{found:?}"
    );
    assert!(
        found[3].starts_with("line 10: channels.m.validation.mode: unknown variant"),
        "{found:?}"
    );
    let found = errors(
        "[channels.m]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", path = \"x\" }\n[channels.m.retention]\nbatch_size = 0\n",
    );
    assert_eq!(
        found,
        [
            "line 6: channels.m.source.path: is not a key of a mllp source (directory and sftp sources take it)",
            "line 7: channels.m.retention: set max_age (e.g. \"30d\") or max_messages, or leave the section out",
            "line 8: channels.m.retention.batch_size: must be at least 1"
        ]
    );
}
