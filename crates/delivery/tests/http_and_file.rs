//! HTTP destinations against a real HTTP server, file destinations into a real directory.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use delivery::EntryState;
use store::Store;

#[derive(Clone, Default)]
struct Inbox {
    bodies: Arc<Mutex<Vec<(HeaderMap, String)>>>,
    /// Status codes to answer, in turn; 200 once they run out.
    script: Arc<Mutex<Vec<u16>>>,
}

async fn take(State(inbox): State<Inbox>, headers: HeaderMap, body: String) -> StatusCode {
    let code = {
        let mut script = inbox.script.lock().unwrap();
        if script.is_empty() {
            200
        } else {
            script.remove(0)
        }
    };
    if (200..300).contains(&code) {
        inbox.bodies.lock().unwrap().push((headers, body));
    }
    StatusCode::from_u16(code).unwrap()
}

async fn http_server(inbox: Inbox) -> String {
    let app = axum::Router::new()
        .route("/hl7", axum::routing::post(take))
        .with_state(inbox);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hl7")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_destination_posts_each_message_in_order_with_headers_and_retries_a_503() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let inbox = Inbox::default();
    inbox.script.lock().unwrap().push(503);
    let url = http_server(inbox.clone()).await;
    let configs = [config(&format!(
        "name = \"api\"\ntype = \"http\"\nurl = \"{url}\"\nheaders = {{ \"X-Key\" = \"k1\" }}\n\
         retry = {{ max_attempts = 5, initial_backoff = \"10ms\", max_backoff = \"20ms\" }}"
    ))];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(ingest(&store, &router, message(&format!("H{i}"), "P1"), None).await);
    }
    delivery.wake("lab");
    wait_for("20 posts", Duration::from_secs(10), || {
        inbox.bodies.lock().unwrap().len() == 20
    })
    .await;
    let bodies = inbox.bodies.lock().unwrap().clone();
    for (i, (headers, body)) in bodies.iter().enumerate() {
        assert!(body.contains(&format!("|ORU^R01|H{i}|")), "{i}: {body}");
        assert_eq!(headers["x-key"], "k1");
        assert_eq!(headers["content-type"], "x-application/hl7-v2+er7");
    }
    wait_for("recorded", Duration::from_secs(5), || {
        count_in(&store, EntryState::Delivered) == 20
    })
    .await;
    let first = &entries(&store, ids[0])[0];
    assert_eq!(first.attempts, 2, "the 503 was retried");
    assert!(first.answer.as_deref().unwrap().starts_with("HTTP 200"));
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_4xx_outside_success_is_a_refusal_and_json_bodies_carry_the_message() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let inbox = Inbox::default();
    inbox.script.lock().unwrap().extend([201, 422, 202]);
    let url = http_server(inbox.clone()).await;
    let configs = [config(&format!(
        "name = \"api\"\ntype = \"http\"\nurl = \"{url}\"\nbody = \"json\"\non_nak = \"error\"\nsuccess = [201, 202]"
    ))];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    let mut ids = Vec::new();
    for control in ["J1", "J2", "J3"] {
        ids.push(ingest(&store, &router, message(control, "P1"), None).await);
    }
    delivery.wake("lab");
    wait_for("settled", Duration::from_secs(10), || {
        count_in(&store, EntryState::Delivered) == 2 && count_in(&store, EntryState::Errored) == 1
    })
    .await;
    let refused = &entries(&store, ids[1])[0];
    assert_eq!(refused.state, EntryState::Errored);
    assert!(refused.state_reason.as_deref().unwrap().contains("422"));
    let bodies = inbox.bodies.lock().unwrap().clone();
    assert_eq!(bodies.len(), 2);
    let json: serde_json::Value = serde_json::from_str(&bodies[1].1).unwrap();
    assert_eq!(json["control_id"], "J3");
    assert_eq!(json["channel"], "lab");
    assert_eq!(json["message_id"], ids[2].0);
    assert!(json["hl7"].as_str().unwrap().starts_with("MSH|"));
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_destination_writes_one_file_per_message_named_by_the_template() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let configs = [config(
        "name = \"archive\"\ntype = \"file\"\npath = \"out\"\nfile_name = \"{destination}-{message_id}-{control_id}.hl7\"\n\
         filters = [ { path = \"PID-3.1\", not_equals = \"SKIP\" } ]",
    )];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    let a = ingest(&store, &router, message("F/1", "P1"), None).await;
    let skipped = ingest(&store, &router, message("F2", "SKIP"), None).await;
    delivery.wake("lab");
    wait_for("written", Duration::from_secs(10), || {
        count_in(&store, EntryState::Delivered) == 1
    })
    .await;
    // The control id's slash cannot escape the directory.
    let written = std::fs::read(dir.path().join(format!("out/archive-{}-F_1.hl7", a.0))).unwrap();
    assert_eq!(written, message("F/1", "P1"));
    let names: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let filtered = &entries(&store, skipped)[0];
    assert_eq!(filtered.state, EntryState::Filtered);
    assert!(
        filtered
            .state_reason
            .as_deref()
            .unwrap()
            .starts_with("filtered by")
    );
    assert_eq!(
        journal_state(&store, skipped),
        store::MessageState::Filtered
    );
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_destination_in_append_mode_keeps_messages_in_order_one_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let configs = [config(
        "name = \"archive\"\ntype = \"file\"\npath = \"out\"\nmode = \"append\"\nfile_name = \"{channel}.hl7\"",
    )];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    for i in 0..50 {
        ingest(&store, &router, message(&format!("L{i}"), "P1"), None).await;
    }
    delivery.wake("lab");
    wait_for("written", Duration::from_secs(10), || {
        count_in(&store, EntryState::Delivered) == 50
    })
    .await;
    let text = std::fs::read_to_string(dir.path().join("out/lab.hl7")).unwrap();
    let controls: Vec<String> = text
        .lines()
        .map(|line| {
            line.split('\r')
                .next()
                .unwrap()
                .split('|')
                .nth(9)
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("L{i}")).collect();
    assert_eq!(controls, expected);
    // Each message reads back as it was sent.
    let batch = hl7v2::split_stream(text.as_bytes());
    assert!(batch.len() >= 50);
    delivery.shutdown().await;
}

#[test]
fn keys_of_another_kind_are_refused_with_the_key_named() {
    let misplaced = toml::from_str::<delivery::DestinationConfig>(
        "name = \"ehr\"\ntype = \"mllp\"\nto = \"h:1\"\nurl = \"http://x\"",
    )
    .unwrap_err();
    assert_eq!(
        misplaced.message(),
        "`url`: is not a key of a mllp destination (http, fhir, database and nats destinations take it)"
    );
    let unknown = toml::from_str::<delivery::DestinationConfig>(
        "name = \"x\"\ntype = \"mllp\"\nto = \"h:1\"\nretries = 3",
    )
    .unwrap_err();
    assert!(
        unknown.message().starts_with(
            "`retries`: unknown field `retries`, expected one of `to`, `tls`, `pipeline`"
        ),
        "{}",
        unknown.message()
    );
    let missing = config("name = \"f\"\ntype = \"file\"");
    assert!(
        missing
            .validate()
            .unwrap_err()
            .to_string()
            .contains("need `path`")
    );
}
