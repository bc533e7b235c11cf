//! HL7 v2 in, FHIR out, through a running engine: a lab result arriving over MLLP is
//! converted, stored in the clinical repository in the transaction that processes it,
//! and found by a FHIR client over the engine's HTTP port (patient by name, their
//! observations, `$everything`, the CapabilityStatement).

mod common;

use std::time::{Duration, Instant};

use common::{Api, send_all, start_engine};
use serde_json::Value;

const ORU: &[u8] = include_bytes!("../../hl7v2/tests/data/oru_r01_1500.hl7");

/// A FHIR read: the status and the JSON of the answer.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let answer = common::http(
        addr,
        "GET",
        path,
        &[("Accept", "application/fhir+json")],
        b"",
    )
    .await;
    (answer.status, answer.json())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lab_result_received_over_mllp_is_served_as_fhir() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(
        dir.path(),
        "data",
        Api::On,
        r#"
[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:0" }
fhir = { repository = true, timezone = "-05:00" }
"#,
    )
    .await;
    let raw: Vec<u8> = ORU
        .split(|&b| b == b'\n' || b == b'\r')
        .filter(|l| !l.is_empty())
        .flat_map(|l| l.iter().copied().chain([b'\r']))
        .collect();
    send_all(engine.listeners()[0].addr, &[raw]).await;

    let http = engine.http_addr().unwrap();
    let started = Instant::now();
    let patients = loop {
        let (status, bundle) = get(http, "/fhir/Patient?family=Johnson").await;
        assert_eq!(status, 200, "{bundle}");
        if bundle["total"].as_u64() == Some(1) {
            break bundle;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the patient never appeared: {bundle}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let patient = &patients["entry"][0]["resource"];
    assert_eq!(patient["resourceType"], "Patient");
    assert_eq!(patient["birthDate"], "2007-05-26");
    let id = patient["id"].as_str().unwrap();

    let (status, observations) =
        get(http, &format!("/fhir/Observation?patient=Patient/{id}")).await;
    assert_eq!(status, 200);
    let observation = &observations["entry"][0]["resource"];
    assert_eq!(
        observation["code"]["coding"][0]["code"], "10368-9",
        "{observations}"
    );
    assert_eq!(observation["valueQuantity"]["value"], 50, "{observation}");
    assert_eq!(
        observation["valueQuantity"]["code"], "ug/dL",
        "{observation}"
    );

    let (status, everything) = get(http, &format!("/fhir/Patient/{id}/$everything")).await;
    assert_eq!(status, 200);
    let types: Vec<&str> = everything["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["resource"]["resourceType"].as_str())
        .collect();
    for wanted in [
        "Patient",
        "Observation",
        "DiagnosticReport",
        "ServiceRequest",
    ] {
        assert!(types.contains(&wanted), "{wanted} missing from {types:?}");
    }
    let (status, metadata) = get(http, "/fhir/metadata").await;
    assert_eq!(status, 200);
    assert_eq!(metadata["resourceType"], "CapabilityStatement");
    engine.shutdown().await;
}
