//! A FHIR destination in a channel with the patient index on: the transaction Bundle
//! POSTed to a real FHIR endpoint (an axum handler on a local port) gives the Patient the
//! enterprise identifier the index linked the message to, as the engine's own FHIR stage
//! does.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::{Api, send_all, start_engine, wait_for};
use serde_json::{Value, json};

fn adt(event: &str, control: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^{event}^ADT_A01|{control}|P|2.5.1\r\
         EVN|{event}|20240101120000\r\
         PID|1||MRN77^^^HOSP&1.2.3&ISO^MR||RIVERA^ANA^M||19750312|F\r\
         PV1|1|I\r"
    )
    .into_bytes()
}

/// Takes transaction Bundles and answers each with a transaction-response.
async fn transaction(
    State(bundles): State<Arc<Mutex<Vec<Value>>>>,
    body: String,
) -> axum::response::Response {
    let Ok(bundle) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let answers: Vec<Value> = bundle["entry"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|_| json!({"response": {"status": "200 OK"}}))
                .collect()
        })
        .unwrap_or_default();
    bundles.lock().unwrap().push(bundle);
    (
        StatusCode::OK,
        [("content-type", "application/fhir+json")],
        json!({"resourceType": "Bundle", "type": "transaction-response", "entry": answers})
            .to_string(),
    )
        .into_response()
}

/// The value of the Patient's identifier in `system`, in the Bundle of `control`.
fn patient_identifier(bundles: &[Value], control: &str, system: &str) -> Option<String> {
    let bundle = bundles
        .iter()
        .find(|b| b["identifier"]["value"] == control)?;
    let patient = bundle["entry"]
        .as_array()?
        .iter()
        .map(|e| &e["resource"])
        .find(|r| r["resourceType"] == "Patient")?;
    patient["identifier"]
        .as_array()?
        .iter()
        .find(|i| i["system"] == system)
        .and_then(|i| i["value"].as_str())
        .map(str::to_string)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_destinations_send_the_enterprise_identifier_of_the_patient() {
    let bundles: Arc<Mutex<Vec<Value>>> = Arc::default();
    let app = axum::Router::new()
        .route("/fhir", axum::routing::post(transaction))
        .with_state(bundles.clone());
    let server_addr = common::serve(app).await;

    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[mpi]
enabled = true
[channels.adt]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
[[channels.adt.destinations]]
name = "fhir-server"
type = "fhir"
url = "http://{server_addr}/fhir"
"#
    );
    let engine = start_engine(dir.path(), "data", Api::On, &toml).await;
    send_all(
        engine.listeners()[0].addr,
        &[adt("A01", "ADMIT-1"), adt("A08", "UPDATE-1")],
    )
    .await;

    wait_for(
        "two Bundles at the FHIR server",
        Duration::from_secs(30),
        || bundles.lock().unwrap().len() >= 2,
    )
    .await;
    let bundles = bundles.lock().unwrap().clone();
    let system = "urn:corridor:mpi";
    let admitted = patient_identifier(&bundles, "ADMIT-1", system);
    let updated = patient_identifier(&bundles, "UPDATE-1", system);
    let admitted = admitted.unwrap_or_else(|| {
        panic!("no {system} identifier on the Patient: {bundles:?}");
    });
    assert!(!admitted.is_empty());
    assert_eq!(
        updated.as_deref(),
        Some(admitted.as_str()),
        "the same patient, the same enterprise id"
    );
    // The local identifier is still there beside it.
    assert_eq!(
        patient_identifier(&bundles, "ADMIT-1", "urn:oid:1.2.3").as_deref(),
        Some("MRN77")
    );

    // The index knows the patient by that enterprise id.
    let http = engine.http_addr().unwrap();
    let answer = common::get(http, &format!("/mpi/patients/{admitted}")).await;
    assert!(answer.head.starts_with("HTTP/1.1 200"), "{}", answer.head);
    assert!(answer.body.contains("MRN77"), "{}", answer.body);
    engine.shutdown().await;
}
