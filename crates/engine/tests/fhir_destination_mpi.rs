//! A FHIR destination in a channel with the patient index on: the transaction Bundle
//! POSTed to a real FHIR endpoint (an axum handler on a local port) gives the Patient the
//! enterprise identifier the index linked the message to, as the engine's own FHIR stage
//! does.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use engine::{Config, Engine};
use mllp::MllpClient;
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
[data]
dir = {:?}
[http]
listen = "127.0.0.1:0"
[mpi]
enabled = true
[channels.adt]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
[[channels.adt.destinations]]
name = "fhir-server"
type = "fhir"
url = "http://{server_addr}/fhir"
"#,
        dir.path().join("data").display().to_string()
    );
    let engine = Engine::start(Config::from_toml_in(&text, dir.path()).unwrap())
        .await
        .unwrap();
    let mut client = MllpClient::connect(&engine.listeners()[0].addr.to_string(), None)
        .await
        .unwrap();
    for (event, control) in [("A01", "ADMIT-1"), ("A08", "UPDATE-1")] {
        let ack = client.send(&adt(event, control)).await.unwrap();
        let ack = hl7v2::Message::parse(&ack).unwrap();
        assert_eq!(ack.get_str("MSA-1").unwrap().as_deref(), Some("AA"));
    }

    let started = Instant::now();
    while bundles.lock().unwrap().len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the FHIR server got {} of 2 Bundles",
            bundles.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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
    let mut stream = tokio::net::TcpStream::connect(http).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(
            format!(
                "GET /mpi/patients/{admitted} HTTP/1.1\r\nHost: corridor\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("MRN77"), "{answer}");
    engine.shutdown().await;
}
