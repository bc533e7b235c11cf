//! The HTTP and directory sources started by the engine from a configuration: messages
//! they store reach the channel's pipeline like those of an MLLP listener (or are
//! `processed` on receipt in a channel with nothing to process), validation before the
//! ACK applies to them, and their keys are checked with errors naming the key.

use std::path::Path;
use std::time::Duration;

use engine::{Config, Engine};
use store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn oru(control: &str, value: &str) -> String {
    format!(
        "MSH|^~\\&|LAB|F|EHR|F|20240315||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||42^^^H^MR||Doe^Jane\r\
         OBR|1||F1|1234-5^Test^LN\r\
         OBX|1|NM|1234-5^Test^LN||{value}||||||F\r"
    )
}

async fn post(addr: std::net::SocketAddr, body: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

/// (channel, control id, state) of every journal row.
fn journal(store: &Store) -> Vec<(String, String, String)> {
    store
        .read(|conn| {
            let mut stmt =
                conn.prepare("SELECT channel, control_id, state FROM journal ORDER BY id")?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .unwrap()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting until {what}");
}

fn config(dir: &Path, channels: &str) -> Result<Config, engine::ConfigErrors> {
    let text = format!(
        "[data]\ndir = {:?}\n[http]\nenabled = false\n{channels}",
        dir.join("data").display().to_string()
    );
    Config::from_toml_in(&text, dir)
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
    wait_until("the file is in done", || {
        dir.path().join("inbox/done/f.hl7").exists()
    })
    .await;

    // The files went through their channel's pipeline (woken by the source), the
    // invalid message stays rejected.
    wait_until("every accepted message is processed", || {
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
    wait_until("both files' messages are counted", || {
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
            "line 6: channels.f.source.listen: is not a key of a directory source",
            "line 6: channels.f.source.pattern: \"a/*\" is not a file name pattern (e.g. \"*.hl7\")",
            "line 6: channels.f.source.poll_interval: must be longer than 0"
        ]
    );
    let found = errors(
        "[channels.m]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", path = \"x\" }\n[channels.m.retention]\nbatch_size = 0\n[channels.m.validation]\nmode = \"sometimes\"\n",
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("channels.m.validation.mode"), "{found:?}");
    assert!(found[0].starts_with("line 10: "), "{found:?}");
    let found = errors(
        "[channels.m]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", path = \"x\" }\n[channels.m.retention]\nbatch_size = 0\n",
    );
    assert_eq!(
        found,
        [
            "line 6: channels.m.source.path: is not a key of a mllp source",
            "line 7: channels.m.retention: set max_age (e.g. \"30d\") or max_messages, or leave the section out",
            "line 8: channels.m.retention.batch_size: must be at least 1"
        ]
    );
}
