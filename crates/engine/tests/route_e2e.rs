//! Routing end to end, through real sockets: a sender → a Corridor channel (filter,
//! transformers, a script) → an MLLP destination that is a second Corridor engine, an
//! HTTP destination (an axum server recording what it gets) and a file destination.
//! Then an outage of the downstream listener under load, and the API's view of each
//! message's fate.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Api, raw_messages, send_all, wait_for};
use engine::Engine;
use store::{MessageState, Store};

fn oru(control: &str, patient: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|LIS|LAB|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||{patient}^^^HOSP^MR||DOE^JANE\r\
         OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL|||||F\r"
    )
    .into_bytes()
}

/// Starts an engine with its HTTP API from `toml` with relative files in `dir`.
async fn start(dir: &Path, data: &str, toml: &str) -> Engine {
    common::start_engine(dir, data, Api::On, toml).await
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

fn count_in(store: &Store, state: MessageState) -> usize {
    store
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM journal WHERE state = ?1",
                [state.as_str()],
                |r| r.get::<_, i64>(0),
            )? as usize)
        })
        .unwrap()
}

/// An HTTP receiver that records the control id of every body it is sent.
async fn http_receiver() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hl7",
        axum::routing::post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let m = hl7v2::Message::parse(&body).unwrap();
                seen.lock().unwrap().push(m.control_id().into_owned());
                axum::http::StatusCode::OK
            }
        }),
    );
    (common::serve(app).await, got)
}

/// A JSON API call: the status and the JSON object of the answer.
async fn api(addr: SocketAddr, method: &str, path: &str) -> (u16, serde_json::Value) {
    let answer = common::http(addr, method, path, &[], b"").await;
    (answer.status, answer.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_every_destination_once_in_order_transformed() {
    let dir = tempfile::tempdir().unwrap();
    let downstream = start(
        dir.path(),
        "down",
        "[channels.ehr]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\", duplicate_window = \"off\" }\n",
    )
    .await;
    let down_addr = downstream.listeners()[0].addr;
    let (http_addr, http_got) = http_receiver().await;
    let upstream = start(
        dir.path(),
        "up",
        &format!(
            r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
filters = [ {{ name = "results only", path = "MSH-9.1", in = ["ORU"] }} ]
transforms = [
  {{ set = "MSH-5", value = "CHART" }},
  {{ name = "refuse BAD", script = "if (msg.get('MSH-10') === 'BAD-1') throw new Error('control id BAD-1 is refused'); " }},
]
ordering_key = "PID-3.1"

[[channels.lab.destinations]]
name = "ehr"
type = "mllp"
to = "{down_addr}"

[[channels.lab.destinations]]
name = "api"
type = "http"
url = "http://{http_addr}/hl7"

[[channels.lab.destinations]]
name = "archive"
type = "file"
path = "archive"
file_name = "{{message_id}}.hl7"
"#
        ),
    )
    .await;
    let up_addr = upstream.listeners()[0].addr;

    let mut messages: Vec<Vec<u8>> = (0..60)
        .map(|i| oru(&format!("M{i:03}"), &format!("P{}", i % 4)))
        .collect();
    messages.insert(10, common::adt_a08("ADT-1").into_bytes());
    messages.insert(20, oru("BAD-1", "P9"));
    send_all(up_addr, &messages).await;

    let expected: Vec<String> = (0..60).map(|i| format!("M{i:03}")).collect();
    wait_for("the MLLP destination", Duration::from_secs(30), || {
        journal(downstream.store()).len() >= expected.len()
    })
    .await;
    wait_for("the HTTP destination", Duration::from_secs(30), || {
        http_got.lock().unwrap().len() >= expected.len()
    })
    .await;

    // Each patient's messages arrive in order; no message twice; the transformer ran.
    let down = journal(downstream.store());
    assert_eq!(down.len(), expected.len(), "{down:?}");
    assert!(down.iter().all(|(_, msh5)| msh5 == "CHART"), "{down:?}");
    let mut got: Vec<String> = down.iter().map(|(c, _)| c.clone()).collect();
    for patient in 0..4 {
        let of = |ids: &[String]| -> Vec<String> {
            ids.iter()
                .filter(|c| c[1..].parse::<usize>().is_ok_and(|n| n % 4 == patient))
                .cloned()
                .collect()
        };
        assert_eq!(of(&got), of(&expected), "patient {patient} via MLLP");
        assert_eq!(
            of(&http_got.lock().unwrap()),
            of(&expected),
            "patient {patient} via HTTP"
        );
    }
    got.sort();
    got.dedup();
    assert_eq!(got.len(), expected.len());
    // The file destination has its own queue: wait for it as for the other two
    // (counting whole files, not one still under its `.partial` name).
    let archived = || {
        std::fs::read_dir(dir.path().join("archive"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                    .count()
            })
            .unwrap_or(0)
    };
    wait_for("the file destination", Duration::from_secs(30), || {
        archived() >= expected.len()
    })
    .await;
    assert_eq!(archived(), expected.len());

    // The filtered ADT and the refused message are visible with their reasons.
    let store = upstream.store();
    wait_for("every message delivered", Duration::from_secs(30), || {
        count_in(store, MessageState::Delivered) == expected.len()
    })
    .await;
    assert_eq!(count_in(store, MessageState::Filtered), 1);
    assert_eq!(count_in(store, MessageState::Errored), 1);
    let http = upstream.http_addr().unwrap();
    let (status, list) = api(http, "GET", "/api/messages?state=errored").await;
    assert_eq!(status, 200);
    let errored = &list["messages"][0];
    assert!(
        errored["state_reason"]
            .as_str()
            .unwrap()
            .contains("control id BAD-1 is refused"),
        "{errored}"
    );
    let (_, list) = api(http, "GET", "/api/messages?state=filtered").await;
    assert_eq!(
        list["messages"][0]["state_reason"].as_str(),
        Some("filtered by results only")
    );

    // One message with each destination's entry and the hop timestamps.
    let (_, list) = api(http, "GET", "/api/messages?state=delivered&limit=1").await;
    let id = list["messages"][0]["id"].as_i64().unwrap();
    let (status, one) = api(http, "GET", &format!("/api/messages/{id}")).await;
    assert_eq!(status, 200);
    let destinations = one["destinations"].as_array().unwrap();
    assert_eq!(destinations.len(), 3, "{one}");
    for d in destinations {
        assert_eq!(d["state"], "delivered", "{d}");
        let queued = d["queued_at"].as_i64().unwrap();
        let sent = d["sent_at"].as_i64().unwrap();
        let acked = d["acked_at"].as_i64().unwrap();
        assert!(one["received_at"].as_i64().unwrap() <= queued);
        assert!(queued <= sent && sent <= acked, "{d}");
    }

    // Resend puts one destination's copy at the end of its queue.
    let (status, _) = api(
        http,
        "POST",
        &format!("/api/messages/{id}/resend?destination=api"),
    )
    .await;
    assert_eq!(status, 202);
    wait_for("the resend", Duration::from_secs(30), || {
        http_got.lock().unwrap().len() == expected.len() + 1
    })
    .await;

    // Reprocess runs a message through the channel again: a new copy for each
    // destination.
    let (status, _) = api(http, "POST", &format!("/api/messages/{id}/reprocess")).await;
    assert_eq!(status, 202);
    wait_for("the reprocessed copy", Duration::from_secs(30), || {
        journal(downstream.store()).len() == expected.len() + 1
    })
    .await;
    wait_for(
        "the reprocessed copy at every destination",
        Duration::from_secs(30),
        || count_in(store, MessageState::Delivered) == expected.len(),
    )
    .await;
    let (status, _) = api(http, "POST", "/api/messages/999999/reprocess").await;
    assert_eq!(status, 404);

    // Per-stage metrics (the HTTP destination has the 60, the resend and the
    // reprocessed copy; the others the 60 and the reprocessed copy).
    let metrics = common::get(http, "/metrics").await.body;
    assert!(
        metrics.contains("corridor_messages_processed_total{channel=\"lab\"} 61"),
        "{metrics}"
    );
    assert!(metrics.contains("corridor_messages_filtered_total{channel=\"lab\"} 1"));
    assert!(metrics.contains("corridor_processing_latency_seconds_count{channel=\"lab\"} 63"));
    assert!(
        metrics.contains(
            "corridor_destination_delivered_total{channel=\"lab\",destination=\"api\"} 62"
        ),
        "{metrics}"
    );
    assert!(metrics.contains(
        "corridor_destination_answer_latency_seconds_count{channel=\"lab\",destination=\"ehr\"} 61"
    ));
    assert!(metrics.contains(
        "corridor_destination_entries{channel=\"lab\",destination=\"archive\",state=\"delivered\"} 61"
    ));
    // The store's writer: every commit carried at least one request; processing and
    // delivery outcomes are committed without a sync of their own.
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing: {metrics}"))
    };
    let commits = value("corridor_store_commits_total");
    let synced = value("corridor_store_synced_commits_total");
    let requests = value("corridor_store_write_requests_total");
    assert!(
        0 < synced && synced < commits && commits <= requests,
        "{synced} synced of {commits} commits, {requests} requests"
    );

    upstream.shutdown().await;
    downstream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_downstream_delays_but_never_loses_or_reorders() {
    let dir = tempfile::tempdir().unwrap();
    let down_toml = |port: u16| {
        format!(
            "[channels.ehr]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:{port}\", duplicate_window = \"off\" }}\n"
        )
    };
    let downstream = start(dir.path(), "down", &down_toml(0)).await;
    let down_addr = downstream.listeners()[0].addr;
    let upstream = start(
        dir.path(),
        "up",
        &format!(
            r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
[[channels.lab.destinations]]
name = "ehr"
type = "mllp"
to = "{down_addr}"
retry = {{ max_attempts = 1000, initial_backoff = "50ms", max_backoff = "200ms" }}
"#
        ),
    )
    .await;
    let up_addr = upstream.listeners()[0].addr;
    let all: Vec<Vec<u8>> = (0..300).map(|i| oru(&format!("O{i:04}"), "P1")).collect();

    send_all(up_addr, &all[..100]).await;
    wait_for("the first hundred", Duration::from_secs(30), || {
        journal(downstream.store()).len() == 100
    })
    .await;
    let first = journal(downstream.store());
    downstream.shutdown().await;

    // The downstream listener is gone; the source still acknowledges every message
    // (send_all checks each AA).
    send_all(up_addr, &all[100..250]).await;
    assert_eq!(
        count_in(upstream.store(), MessageState::Delivered),
        100,
        "nothing can be delivered during the outage"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Back on the same port and data directory.
    let downstream = start(dir.path(), "down", &down_toml(down_addr.port())).await;
    send_all(up_addr, &all[250..]).await;
    wait_for(
        "everything after the outage",
        Duration::from_secs(60),
        || journal(downstream.store()).len() == 300,
    )
    .await;
    let got: Vec<String> = journal(downstream.store())
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    let expected: Vec<String> = (0..300).map(|i| format!("O{i:04}")).collect();
    assert_eq!(got, expected, "in order, each once");
    assert_eq!(first.len(), 100);
    upstream.shutdown().await;
    downstream.shutdown().await;
}
