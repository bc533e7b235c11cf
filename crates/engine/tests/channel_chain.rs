//! Channel destinations (`type = "channel"`) through real sockets: a sender → channel
//! `a` → channel `b` (with a transformer) → an MLLP destination that is a second Corridor
//! engine. Every message arrives once, in order, transformed by `b`; a message handed to
//! a paused channel waits `received` until it is started; a channel destination's entry
//! is not resent; an unknown receiving channel and a cycle are refused at start and by a
//! reload.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{Api, count, raw_messages, send_all, wait_for};
use engine::{Config, ConfigFile, Engine};
use store::Store;

const LIMIT: Duration = Duration::from_secs(120);

fn oru(control: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||P1^^^HOSP^MR||DOE^JANE\r\
         OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL|||||F\r"
    )
    .into_bytes()
}

/// The control ids a store holds, in journal order, with MSH-5.
fn journal(store: &Store) -> Vec<(String, String)> {
    raw_messages(store)
        .iter()
        .map(|raw| {
            let m = hl7v2::Message::parse(raw).unwrap();
            (
                m.control_id().into_owned(),
                m.get_str("MSH-5").unwrap().unwrap_or_default().into_owned(),
            )
        })
        .collect()
}

/// Channel `a` hands every message to `b`, which changes MSH-5 and sends it to `down`.
fn chain(down: SocketAddr) -> String {
    format!(
        r#"
[channels.a]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}

[[channels.a.destinations]]
name = "to-b"
type = "channel"
channel = "b"

[channels.b]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
transforms = [ {{ set = "MSH-5", value = "CHART" }} ]

[[channels.b.destinations]]
name = "ehr"
type = "mllp"
to = "{down}"
"#
    )
}

async fn downstream(dir: &Path) -> Engine {
    common::start_engine(
        dir,
        "down",
        Api::Off,
        "[channels.ehr]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", duplicate_window = \"off\" }\n",
    )
    .await
}

fn listener(engine: &Engine, channel: &str) -> SocketAddr {
    engine
        .listeners()
        .iter()
        .find(|l| l.channel == channel)
        .unwrap()
        .addr
}

fn in_state(engine: &Engine, channel: &str, state: &str) -> i64 {
    count(
        engine.store(),
        &format!("SELECT count(*) FROM journal WHERE channel = '{channel}' AND state = '{state}'"),
    )
}

async fn post(engine: &Engine, path: &str) -> common::Answer {
    common::http(engine.http_addr().unwrap(), "POST", path, &[], b"").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_channels_delivers_every_message_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let down = downstream(dir.path()).await;
    let engine =
        common::start_engine(dir.path(), "up", Api::On, &chain(listener(&down, "ehr"))).await;
    let a = listener(&engine, "a");

    let expected: Vec<String> = (0..500).map(|i| format!("M{i:04}")).collect();
    let messages: Vec<Vec<u8>> = expected.iter().map(|c| oru(c)).collect();
    send_all(a, &messages).await;

    wait_for("the chain's deliveries", LIMIT, || {
        journal(down.store()).len() >= expected.len()
    })
    .await;
    let got = journal(down.store());
    let ids: Vec<String> = got.iter().map(|(c, _)| c.clone()).collect();
    assert_eq!(ids, expected, "once each, in the order sent");
    assert!(
        got.iter().all(|(_, msh5)| msh5 == "CHART"),
        "b's transformer ran"
    );

    // Each message is in both channels' journals: `a`'s handed over (delivered at once),
    // `b`'s received from `channel:a` with the original sender and delivered.
    wait_for("b's messages recorded delivered", LIMIT, || {
        in_state(&engine, "b", "delivered") == 500
    })
    .await;
    assert_eq!(in_state(&engine, "a", "delivered"), 500);
    assert_eq!(
        count(
            engine.store(),
            "SELECT count(*) FROM journal WHERE channel = 'b' AND peer = 'channel:a' \
             AND sending_application = 'LIS' AND control_id LIKE 'M%'"
        ),
        500
    );

    // A channel destination's entry is not resent: the refusal says why.
    let id = count(
        engine.store(),
        "SELECT min(id) FROM journal WHERE channel = 'a'",
    );
    let answer = post(
        &engine,
        &format!("/api/messages/{id}/resend?destination=to-b"),
    )
    .await;
    assert_eq!(answer.status, 409, "{}", answer.body);
    assert!(
        answer.body.contains("channel destination"),
        "{}",
        answer.body
    );
    assert_eq!(
        count(
            engine.store(),
            &format!("SELECT count(*) FROM delivery_queue WHERE message_id = {id}")
        ),
        1,
        "the refused resend added no entry"
    );

    // Handed to a paused channel, messages wait `received` in order; started, they go on.
    let answer = post(&engine, "/api/channels/b/pause").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let more: Vec<String> = (0..20).map(|i| format!("P{i:03}")).collect();
    send_all(a, &more.iter().map(|c| oru(c)).collect::<Vec<_>>()).await;
    wait_for("a hands the messages over", LIMIT, || {
        in_state(&engine, "a", "delivered") == 520
    })
    .await;
    assert_eq!(in_state(&engine, "b", "received"), 20);
    assert_eq!(
        journal(down.store()).len(),
        500,
        "nothing passed the paused channel"
    );
    let answer = post(&engine, "/api/channels/b/start").await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    wait_for("the paused messages' deliveries", LIMIT, || {
        journal(down.store()).len() >= 520
    })
    .await;
    let ids: Vec<String> = journal(down.store())
        .into_iter()
        .map(|(c, _)| c)
        .skip(500)
        .collect();
    assert_eq!(ids, more);

    engine.shutdown().await;
    down.shutdown().await;
}

/// `[channels.NAME]` with an MLLP source and a channel destination to each of `to`.
fn handing(name: &str, to: &[&str]) -> String {
    let mut text =
        format!("[channels.{name}]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n");
    for (i, to) in to.iter().enumerate() {
        text.push_str(&format!(
            "[[channels.{name}.destinations]]\nname = \"d{i}\"\ntype = \"channel\"\nchannel = \"{to}\"\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_channels_and_cycles_are_refused_at_start_and_by_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let text = |channels: &str| common::config_text(dir.path(), "data", Api::Off, channels);

    // At start (`corridor config check` reads the file the same way).
    let unknown = Config::from_toml_in(&text(&handing("a", &["nowhere"])), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        unknown.contains("channels.a.destinations[0].channel")
            && unknown.contains("no channel \"nowhere\""),
        "{unknown}"
    );
    let cycle = [
        handing("a", &["b"]),
        handing("b", &["c"]),
        handing("c", &["a"]),
    ]
    .concat();
    let refused = Config::from_toml_in(&text(&cycle), dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("channels.c.destinations[0].channel")
            && refused.contains("a -> b -> c -> a"),
        "{refused}"
    );

    // A running chain a -> b -> c; a reload that closes it into a cycle is refused
    // whole, and so is one naming a channel that does not exist.
    let file = dir.path().join("corridor.toml");
    let running = [
        handing("a", &["b"]),
        handing("b", &["c"]),
        handing("c", &[]),
    ]
    .concat();
    std::fs::write(&file, text(&running)).unwrap();
    let engine = Engine::start_from_file(ConfigFile::new(file.clone()))
        .await
        .unwrap();
    for (bad, key, words) in [
        (
            &cycle,
            "channels.c.destinations[0].channel",
            "a -> b -> c -> a",
        ),
        (
            &[
                handing("a", &["b"]),
                handing("b", &["gone"]),
                handing("c", &[]),
            ]
            .concat(),
            "channels.b.destinations[0].channel",
            "no channel \"gone\"",
        ),
    ] {
        std::fs::write(&file, text(bad)).unwrap();
        match engine.reload("test").await {
            Err(api::ReloadRefused::Invalid { problems, .. }) => assert!(
                problems
                    .iter()
                    .any(|p| p.key == key && p.message.contains(words)),
                "{problems:?}"
            ),
            other => panic!("the reload was not refused: {other:?}"),
        }
    }
    // Nothing of the refused files was applied: c still hands to no one.
    let c = listener(&engine, "c");
    send_all(c, &[oru("C1")]).await;
    wait_for("c's message processed", LIMIT, || {
        in_state(&engine, "c", "received") == 0 && in_state(&engine, "c", "processed") == 1
    })
    .await;
    assert_eq!(in_state(&engine, "a", "received"), 0);
    engine.shutdown().await;
}
