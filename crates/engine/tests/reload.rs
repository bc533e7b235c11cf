//! Live reload under load, over real sockets and a real SQLite file: a sender keeps
//! sending to channel `a` at a steady rate on one connection while channel `b`'s
//! transformer is changed, channel `c` is added and then removed, and broken
//! configurations are tried, each reload asked for through `POST /api/config/reload`
//! with the first admin token.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{count, http, mllp_client, send_expecting, wait_for};
use engine::{ConfigFile, Engine};
use serde_json::Value;

/// The configuration file: `a` an archive, `b` setting MSH-5 to `b_value` and writing
/// each message to `out/CONTROL.hl7`, and `extra` appended as written.
fn config(dir: &Path, b_value: &str, extra: &str) -> String {
    format!(
        r#"[data]
dir = "data"
[http]
listen = "127.0.0.1:0"

[channels.a]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}

[channels.b]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
transforms = [ {{ set = "MSH-5", value = "{b_value}" }} ]

[[channels.b.destinations]]
name = "out"
type = "file"
path = {out:?}
file_name = "{{control_id}}.hl7"
{extra}"#,
        out = dir.join("out").display().to_string(),
    )
}

const CHANNEL_C: &str = r#"
[channels.c]
source = { type = "mllp", listen = "127.0.0.1:0" }
"#;

fn message(control: &str) -> String {
    format!(
        "MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01|{control}|P|2.5.1\rPID|1||42^^^H^MR\r"
    )
}

/// `POST /api/config/reload` as the first admin; the status and the JSON body.
async fn reload(api: SocketAddr, token: &str) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let answer = http(
        api,
        "POST",
        "/api/config/reload",
        &[("Authorization", &bearer)],
        b"",
    )
    .await;
    (answer.status, answer.json())
}

async fn get_json(api: SocketAddr, token: &str, path: &str) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let answer = http(api, "GET", path, &[("Authorization", &bearer)], b"").await;
    (answer.status, answer.json())
}

fn listener(engine: &Engine, channel: &str) -> Option<SocketAddr> {
    engine
        .listeners()
        .into_iter()
        .find(|l| l.channel == channel)
        .map(|l| l.addr)
}

/// MSH-5 of what `b`'s destination wrote for `control`.
fn delivered_msh5(dir: &Path, control: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("out").join(format!("{control}.hl7"))).ok()?;
    let message = hl7v2::Message::parse(text.as_bytes()).ok()?;
    message
        .get_str("MSH-5")
        .ok()
        .flatten()
        .map(|s| s.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_change_under_load_without_losing_refusing_or_dropping_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corridor.toml");
    std::fs::write(&path, config(dir.path(), "OLD", "")).unwrap();
    let engine = Engine::start_from_file(ConfigFile::new(&path))
        .await
        .unwrap();
    let api = engine.http_addr().unwrap();
    let token = engine.first_admin().unwrap().secret.clone();
    let a = listener(&engine, "a").unwrap();
    let b = listener(&engine, "b").unwrap();

    // The steady sender: one connection to `a`, a message every 5 ms, every ACK checked.
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut client = mllp_client(a).await;
            let mut sent = 0u32;
            let mut interval = tokio::time::interval(Duration::from_millis(5));
            while !stop.load(Ordering::Relaxed) {
                interval.tick().await;
                sent += 1;
                // A dropped connection or a NAK fails here.
                send_expecting(&mut client, message(&format!("A{sent}")).as_bytes(), "AA").await;
            }
            sent
        })
    };
    let sent_to_a = || {
        count(
            engine.store(),
            "SELECT COUNT(*) FROM journal WHERE channel = 'a'",
        )
    };

    // b before any reload: the old transformation.
    let mut to_b = mllp_client(b).await;
    send_expecting(&mut to_b, message("B1").as_bytes(), "AA").await;
    wait_for(
        "b's first message delivered",
        Duration::from_secs(30),
        || delivered_msh5(dir.path(), "B1").is_some(),
    )
    .await;
    assert_eq!(delivered_msh5(dir.path(), "B1").as_deref(), Some("OLD"));

    // 1. b's transformer changes and c is added.
    std::fs::write(&path, config(dir.path(), "NEW", CHANNEL_C)).unwrap();
    let before = sent_to_a();
    let (status, body) = reload(api, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["reload"]["changed"],
        serde_json::json!(["b"]),
        "{body}"
    );
    assert_eq!(body["reload"]["added"], serde_json::json!(["c"]), "{body}");
    assert_eq!(
        body["reload"]["unchanged"],
        serde_json::json!(["a"]),
        "{body}"
    );
    assert_eq!(body["reload"]["version"], 2, "{body}");
    // b's source was not restarted: its connection and address are the same.
    assert_eq!(listener(&engine, "b"), Some(b));
    send_expecting(&mut to_b, message("B2").as_bytes(), "AA").await;
    wait_for(
        "b's second message delivered",
        Duration::from_secs(30),
        || delivered_msh5(dir.path(), "B2").is_some(),
    )
    .await;
    assert_eq!(delivered_msh5(dir.path(), "B2").as_deref(), Some("NEW"));
    let c = listener(&engine, "c").expect("c listens after the reload");
    let mut to_c = mllp_client(c).await;
    send_expecting(&mut to_c, message("C1").as_bytes(), "AA").await;
    drop(to_c);

    // 2. c is removed: its listener closes.
    std::fs::write(&path, config(dir.path(), "NEW", "")).unwrap();
    let (status, body) = reload(api, &token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["reload"]["removed"],
        serde_json::json!(["c"]),
        "{body}"
    );
    assert_eq!(listener(&engine, "c"), None);
    assert!(
        tokio::net::TcpStream::connect(c).await.is_err(),
        "c's port still answers"
    );

    // 3. A broken configuration is refused whole, naming its key; nothing changes.
    let broken = config(dir.path(), "BROKEN", CHANNEL_C).replace(
        "[channels.a]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }",
        "[channels.a]\nsource = { type = \"mllp\", listen = \"nonsense\" }",
    );
    std::fs::write(&path, &broken).unwrap();
    let (status, body) = reload(api, &token).await;
    assert_eq!(status, 422, "{body}");
    let errors = body["errors"].as_array().unwrap();
    assert!(
        errors
            .iter()
            .any(|e| e["key"] == "channels.a.source.listen" && e["line"] == 7),
        "{body}"
    );
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("channels.a.source.listen"),
        "{body}"
    );
    assert_eq!(
        listener(&engine, "c"),
        None,
        "nothing of the broken file was applied"
    );
    // A setting that needs a restart is refused naming it.
    std::fs::write(
        &path,
        config(dir.path(), "NEW", "").replace("dir = \"data\"", "dir = \"elsewhere\""),
    )
    .unwrap();
    let (status, body) = reload(api, &token).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["key"], "data.dir", "{body}");

    // Traffic goes on: a's count keeps growing after the refusals.
    let after_refusals = sent_to_a();
    wait_for("a keeps receiving", Duration::from_secs(30), || {
        sent_to_a() > after_refusals + 20
    })
    .await;
    assert!(after_refusals > before);
    // b still runs the applied (not the broken) transformation.
    send_expecting(&mut to_b, message("B3").as_bytes(), "AA").await;
    wait_for(
        "b's third message delivered",
        Duration::from_secs(30),
        || delivered_msh5(dir.path(), "B3").is_some(),
    )
    .await;
    assert_eq!(delivered_msh5(dir.path(), "B3").as_deref(), Some("NEW"));

    stop.store(true, Ordering::Relaxed);
    let sent = sender
        .await
        .expect("a's sender never saw a NAK or a dropped connection");
    // Zero lost: every message acknowledged to a is stored, once, and processed.
    assert_eq!(sent_to_a(), i64::from(sent));
    assert_eq!(
        count(
            engine.store(),
            "SELECT COUNT(DISTINCT control_id) FROM journal WHERE channel = 'a' AND state = 'processed'"
        ),
        i64::from(sent)
    );
    // b: each message processed once, under the old or the new configuration, and
    // delivered.
    let b_delivered = || {
        count(
            engine.store(),
            "SELECT COUNT(*) FROM journal WHERE channel = 'b' AND state = 'delivered'",
        )
    };
    wait_for("b's deliveries recorded", Duration::from_secs(30), || {
        b_delivered() >= 3
    })
    .await;
    assert_eq!(b_delivered(), 3);
    assert_eq!(
        count(engine.store(), "SELECT COUNT(*) FROM delivery_queue"),
        3,
        "one queue entry per message of b"
    );

    // The history: the start, b changed with c added, c removed; the refused files are
    // not in it.
    let (status, history) = get_json(api, &token, "/api/config/history").await;
    assert_eq!(status, 200, "{history}");
    let versions = history["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 3, "{history}");
    assert_eq!(versions[0]["applied_by"], "start");
    assert!(
        versions[1]["applied_by"]
            .as_str()
            .unwrap()
            .ends_with("(admin)"),
        "{history}"
    );
    // Each time as RFC 3339 in UTC beside the microseconds, the same instant.
    for v in versions {
        let applied = v["applied"].as_str().unwrap();
        assert!(applied.ends_with('Z'), "{history}");
        assert_eq!(
            datetime::rfc3339::parse_time_or_date(applied),
            Ok(v["applied_at"].as_i64().unwrap()),
            "{history}"
        );
    }
    let (status, second) = get_json(api, &token, "/api/config/history/2").await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["applied"], versions[1]["applied"], "{second}");
    assert_eq!(second["applied_at"], versions[1]["applied_at"], "{second}");
    let diff = second["diff"].as_str().unwrap();
    assert!(
        diff.contains("-transforms = [ { set = \"MSH-5\", value = \"OLD\" } ]"),
        "{diff}"
    );
    assert!(
        diff.contains("+transforms = [ { set = \"MSH-5\", value = \"NEW\" } ]"),
        "{diff}"
    );
    assert!(diff.contains("+[channels.c]"), "{diff}");
    assert!(second["config"].as_str().unwrap().contains("[channels.c]"));
    let (status, _) = get_json(api, &token, "/api/config/history/9").await;
    assert_eq!(status, 404);
    // Each reload, refused or not, is in the audit trail (folded from the audit file).
    access::audit::Audit::open(engine.store().clone())
        .await
        .unwrap()
        .fold()
        .unwrap();
    let reloads = count(
        engine.store(),
        "SELECT COUNT(*) FROM audit_log WHERE action = 'POST /api/config/reload'",
    );
    assert_eq!(reloads, 4);

    engine.shutdown().await;
}
