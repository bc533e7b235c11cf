//! The `fhir` source (issue 17 item 4) over real sockets: FHIR R4 `POST`ed to an
//! engine's FHIR listener becomes HL7 v2 messages, stored before the answer (an
//! OperationOutcome naming what had no place in v2), then routed like any received
//! message to an MLLP destination that is a second engine. Invalid R4 is answered 400
//! naming the element; a Subscription heartbeat stores nothing.

mod common;

use std::time::Duration;

use common::{Api, start_engine, wait_for};
use serde_json::{Value, json};

fn post(addr: std::net::SocketAddr, body: &Value) -> impl Future<Output = common::Answer> {
    let bytes = body.to_string().into_bytes();
    async move {
        common::http(
            addr,
            "POST",
            "/",
            &[("Content-Type", "application/fhir+json")],
            &bytes,
        )
        .await
    }
}

fn lab_bundle() -> Value {
    json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1",
                "identifier": [{"system": "urn:corridor:id/HOSP", "value": "MRN-FHIR-1",
                                "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}}],
                "name": [{"family": "LOVELACE", "given": ["ADA"]}], "gender": "female", "birthDate": "1815-12-10",
                "photo": [{"contentType": "image/png", "data": "AAAA"}]},
             "request": {"method": "PUT", "url": "Patient/p1"}},
            {"resource": {"resourceType": "Observation", "id": "o1", "status": "final",
                "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
                "valueQuantity": {"value": 5.4, "unit": "mmol/L", "system": "http://unitsofmeasure.org", "code": "mmol/L"},
                "effectiveDateTime": "2024-03-01T08:00:00Z"},
             "request": {"method": "POST", "url": "Observation"}}
        ]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fhir_posted_to_the_source_reaches_a_second_engine_as_hl7_v2() {
    let dir = tempfile::tempdir().unwrap();
    // Downstream: a second engine with an MLLP source that keeps what it receives.
    let downstream = start_engine(
        dir.path(),
        "down",
        Api::Off,
        r#"
[channels.ehr]
source = { type = "mllp", listen = "127.0.0.1:0" }
"#,
    )
    .await;
    let down_addr = downstream.listeners()[0].addr;
    let upstream = start_engine(
        dir.path(),
        "up",
        Api::Off,
        &format!(
            r#"
[channels.bridge]
source = {{ type = "fhir", listen = "127.0.0.1:0", sending_application = "FHIRGW", sending_facility = "HOSP" }}

[[channels.bridge.destinations]]
name = "ehr"
type = "mllp"
to = "{down_addr}"
"#
        ),
    )
    .await;
    let fhir_addr = upstream.http_sources()[0].addr;

    let answer = post(fhir_addr, &lab_bundle()).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(
        answer
            .head
            .to_ascii_lowercase()
            .contains("application/fhir+json"),
        "{}",
        answer.head
    );
    let outcome = answer.json();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    let issues = outcome["issue"].as_array().unwrap();
    assert!(
        issues[0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("ORU^R01^ORU_R01"),
        "{outcome}"
    );
    assert!(
        issues.iter().any(|i| i["expression"][0] == "Patient.photo"),
        "what has no place in v2 is named: {outcome}"
    );
    // Stored before the answer: the journal already holds it.
    let ids = answer
        .head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-corridor-message-ids:")
                .map(|v| v.trim().to_owned())
        })
        .expect("X-Corridor-Message-Ids");
    assert!(!ids.is_empty());
    assert_eq!(common::raw_messages(upstream.store()).len(), 1);

    // Routed to the second engine over MLLP.
    let store = downstream.store().clone();
    wait_for(
        "the ORU at the second engine",
        Duration::from_secs(30),
        || !common::raw_messages(&store).is_empty(),
    )
    .await;
    let raw = common::raw_messages(&store).remove(0);
    let message = hl7v2::Message::parse(&raw).unwrap();
    let get = |path: &str| {
        message
            .get_str(path)
            .unwrap()
            .unwrap_or_default()
            .into_owned()
    };
    assert_eq!(get("MSH-3"), "FHIRGW");
    assert_eq!(get("MSH-4"), "HOSP");
    assert_eq!(get("MSH-9"), "ORU^R01^ORU_R01");
    assert_eq!(get("PID-3.1"), "MRN-FHIR-1");
    assert_eq!(get("PID-3.4"), "HOSP");
    assert_eq!(get("PID-5"), "LOVELACE^ADA");
    assert_eq!(get("OBX-3.1"), "2345-7");
    assert_eq!(get("OBX-5"), "5.4");

    // The same content again within a second is a new message, not a duplicate.
    let again = post(fhir_addr, &lab_bundle()).await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert!(
        again.json()["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .starts_with("stored as message"),
        "{}",
        again.body
    );
    assert_eq!(common::raw_messages(upstream.store()).len(), 2);

    // Invalid R4: 400 naming the element; nothing stored.
    let mut bad = lab_bundle();
    bad["entry"][0]["resource"]["birthDate"] = json!("10/12/1815");
    let refused = post(fhir_addr, &bad).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let outcome = refused.json();
    assert_eq!(outcome["issue"][0]["severity"], "error");
    assert_eq!(
        outcome["issue"][0]["expression"][0],
        "Bundle.entry[0].resource.Patient.birthDate"
    );
    let not_json = common::http(fhir_addr, "POST", "/", &[], b"MSH|^~\\&|").await;
    assert_eq!(not_json.status, 400, "{}", not_json.body);
    assert_eq!(common::raw_messages(upstream.store()).len(), 2);

    // A Subscription heartbeat (R4 backport): answered, nothing stored.
    let heartbeat = json!({
        "resourceType": "Bundle", "type": "history", "timestamp": "2024-03-01T08:00:00Z",
        "entry": [{"fullUrl": "urn:uuid:385b23bd-6d03-462e-894d-a0694045d65c",
            "resource": {"resourceType": "Parameters", "parameter": [
                {"name": "subscription", "valueReference": {"reference": "https://example.org/fhir/Subscription/admission"}},
                {"name": "status", "valueCode": "active"},
                {"name": "type", "valueCode": "heartbeat"}]},
            "request": {"method": "GET", "url": "https://example.org/fhir/Subscription/admission/$status"},
            "response": {"status": "200"}}]
    });
    let answered = post(fhir_addr, &heartbeat).await;
    assert_eq!(answered.status, 200, "{}", answered.body);
    assert_eq!(common::raw_messages(upstream.store()).len(), 2);
    let get_answer = common::get(fhir_addr, "/").await;
    assert_eq!(get_answer.status, 405);

    upstream.shutdown().await;
    downstream.shutdown().await;
}

#[test]
fn a_key_of_another_kind_is_refused_naming_it() {
    let errors = engine::Config::from_toml(
        "[channels.bridge]\nsource = { type = \"fhir\", listen = \"127.0.0.1:0\", application_ack_to = \"x:1\" }\n",
    )
    .unwrap_err();
    assert!(
        errors.errors[0]
            .key
            .starts_with("channels.bridge.source.application_ack_to"),
        "{errors}"
    );
    let errors = engine::Config::from_toml(
        "[channels.bridge]\nsource = { type = \"fhir\", listen = \"127.0.0.1:0\", sending_facility = \"A|B\" }\n",
    )
    .unwrap_err();
    assert_eq!(
        errors.errors[0].key, "channels.bridge.source.sending_facility",
        "{errors}"
    );
}
