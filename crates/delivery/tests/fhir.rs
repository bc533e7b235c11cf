//! FHIR destinations against a small real FHIR server: an axum handler on a TCP port
//! that checks each transaction Bundle and answers with a transaction-response.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::*;
use delivery::EntryState;
use serde_json::{Value, json};
use store::Store;

#[derive(Clone, Default)]
struct Server {
    /// Bundles taken, in arrival order.
    bundles: Arc<Mutex<Vec<Value>>>,
    /// Statuses to answer, in turn; a transaction-response once they run out.
    script: Arc<Mutex<Vec<u16>>>,
    /// Answer 200 with an OperationOutcome instead of a transaction-response.
    wrong_answer: bool,
}

/// What a FHIR server checks of a transaction before it applies it.
fn check(bundle: &Value) -> Result<Vec<Value>, String> {
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "transaction" {
        return Err("not a transaction Bundle".into());
    }
    let entries = bundle["entry"].as_array().ok_or("no entries")?;
    let mut answers = Vec::new();
    for entry in entries {
        let resource = &entry["resource"];
        let url = format!(
            "{}/{}",
            resource["resourceType"].as_str().ok_or("no resourceType")?,
            resource["id"].as_str().ok_or("no id")?
        );
        if entry["request"]["method"] != "PUT" || entry["request"]["url"] != url.as_str() {
            return Err(format!("entry {url} is not a PUT to itself"));
        }
        answers.push(
            json!({"response": {"status": "201 Created", "location": format!("{url}/_history/1")}}),
        );
    }
    Ok(answers)
}

async fn transaction(
    State(server): State<Server>,
    headers: HeaderMap,
    body: String,
) -> axum::response::Response {
    let scripted = server.script.lock().unwrap().pop();
    if let Some(code) = scripted {
        return StatusCode::from_u16(code).unwrap().into_response();
    }
    if headers["content-type"] != "application/fhir+json" {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "not FHIR JSON").into_response();
    }
    let bundle: Value = match serde_json::from_str(&body) {
        Ok(b) => b,
        Err(_) => return (StatusCode::BAD_REQUEST, "not JSON").into_response(),
    };
    let answers = match check(&bundle) {
        Ok(a) => a,
        Err(reason) => {
            let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": reason}]});
            return (StatusCode::BAD_REQUEST, outcome.to_string()).into_response();
        }
    };
    server.bundles.lock().unwrap().push(bundle);
    let answer = if server.wrong_answer {
        json!({"resourceType": "OperationOutcome", "issue": []})
    } else {
        json!({"resourceType": "Bundle", "type": "transaction-response", "entry": answers})
    };
    (
        [("content-type", "application/fhir+json")],
        answer.to_string(),
    )
        .into_response()
}

async fn fhir_server(server: Server) -> String {
    let app = axum::Router::new()
        .route("/r4", axum::routing::post(transaction))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/r4")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_reach_the_fhir_server_in_order_and_a_503_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = Server::default();
    server.script.lock().unwrap().push(503);
    let url = fhir_server(server.clone()).await;
    let configs = [config(&format!(
        "name = \"fhir\"\ntype = \"fhir\"\nurl = \"{url}\"\ntimezone = \"+01:00\"\n\
         identifier_base = \"https://id.example.org\"\n\
         retry = {{ max_attempts = 5, initial_backoff = \"10ms\", max_backoff = \"20ms\" }}"
    ))];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            ingest(
                &store,
                &router,
                message(&format!("F{i}"), &format!("P{i}")),
                None,
            )
            .await,
        );
    }
    // A message type without a FHIR mapping is filtered for this destination.
    let query = b"MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||QBP^Q22^QBP_Q21|Q1|P|2.5.1\rQPD|IHE PDQ Query|Q1\r".to_vec();
    let query_id = ingest(&store, &router, query, None).await;
    delivery.wake("lab");
    wait_for("5 transactions", Duration::from_secs(10), || {
        server.bundles.lock().unwrap().len() == 5
    })
    .await;
    wait_for("recorded", Duration::from_secs(5), || {
        count_in(&store, EntryState::Delivered) == 5
    })
    .await;
    let bundles = server.bundles.lock().unwrap().clone();
    for (i, bundle) in bundles.iter().enumerate() {
        let patient = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["resource"]["resourceType"] == "Patient")
            .unwrap();
        // In order, with the destination's identifier base.
        assert_eq!(
            patient["resource"]["identifier"][0]["value"],
            format!("P{i}")
        );
        assert_eq!(
            patient["resource"]["identifier"][0]["system"],
            "https://id.example.org/NORTH"
        );
        // The message time had no offset: the configured one was used.
        let header = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["resource"]["resourceType"] == "MessageHeader");
        assert!(header.is_some());
        assert_eq!(bundle["timestamp"], "2026-01-01T12:00:00+01:00");
    }
    let first = &entries(&store, ids[0])[0];
    assert_eq!(first.attempts, 2, "the 503 was retried");
    assert!(
        first
            .answer
            .as_deref()
            .unwrap()
            .contains("transaction-response"),
        "{:?}",
        first.answer
    );
    // The queue entry holds the Bundle that was sent.
    let payload: Value = serde_json::from_slice(&first.payload).unwrap();
    assert_eq!(payload, bundles[0]);
    let skipped = &entries(&store, query_id)[0];
    assert_eq!(skipped.state, EntryState::Filtered);
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2xx_without_a_transaction_response_is_a_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = Server {
        wrong_answer: true,
        ..Server::default()
    };
    let url = fhir_server(server.clone()).await;
    let configs = [config(&format!(
        "name = \"fhir\"\ntype = \"fhir\"\nurl = \"{url}\"\non_nak = \"error\""
    ))];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    let id = ingest(&store, &router, message("W1", "P1"), None).await;
    delivery.wake("lab");
    wait_for("errored", Duration::from_secs(10), || {
        count_in(&store, EntryState::Errored) == 1
    })
    .await;
    let entry = &entries(&store, id)[0];
    assert!(
        entry
            .state_reason
            .as_deref()
            .unwrap_or_default()
            .contains("transaction-response"),
        "{entry:?}"
    );
    delivery.shutdown().await;
}

#[test]
fn fhir_keys_are_checked_and_named() {
    let bad = config(
        "name = \"f\"\ntype = \"fhir\"\nurl = \"http://127.0.0.1:1/r4\"\ntimezone = \"later\"",
    );
    let error = bad.validate().unwrap_err().to_string();
    assert!(error.contains("timezone"), "{error}");
    let misplaced = |text: &str| {
        toml::from_str::<delivery::DestinationConfig>(text)
            .unwrap_err()
            .message()
            .to_owned()
    };
    assert_eq!(
        misplaced("name = \"f\"\ntype = \"fhir\"\nurl = \"http://127.0.0.1:1/r4\"\npath = \"out\""),
        "`path`: is not a key of a fhir destination (a file destination takes it)"
    );
    let bad = config("name = \"f\"\ntype = \"fhir\"");
    assert!(bad.validate().unwrap_err().to_string().contains("url"));
    assert_eq!(
        misplaced("name = \"h\"\ntype = \"http\"\nurl = \"http://127.0.0.1:1/\"\ntimezone = \"Z\""),
        "`timezone`: is not a key of a http destination (a fhir destination takes it)"
    );
    let good = config(
        "name = \"f\"\ntype = \"fhir\"\nurl = \"http://127.0.0.1:1/r4\"\nheaders = { Authorization = \"Bearer t\" }\ntimezone = \"Z\"",
    );
    good.validate().unwrap();
}
