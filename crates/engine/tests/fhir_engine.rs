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

/// A booking of patient `A1`, named `family`.
fn booking(family: &str, control: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|SCHED|GHH|EHR|GHH|20240110090000-0500||SIU^S12^SIU_S12|{control}|P|2.5.1\r\
         SCH||77^SCHED|||||ROUTINE^Routine visit|||||^^^20240115090000-0500^20240115093000-0500\r\
         PID|1||A1^^^GHH^MR||{family}^ANN\r"
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_of_another_patient_is_not_overwritten_and_the_message_ends_errored() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(
        dir.path(),
        "data",
        Api::On,
        r#"
[channels.sched]
source = { type = "mllp", listen = "127.0.0.1:0" }
fhir = { repository = true }
"#,
    )
    .await;
    let store = engine.store().clone();
    let states = || {
        common::rows(
            &store,
            "SELECT state, COALESCE(state_reason, '') FROM journal ORDER BY id",
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
        )
    };
    let source = engine.listeners()[0].addr;
    send_all(source, &[booking("FIRST", "S-1")]).await;
    common::wait_for("the booking processed", Duration::from_secs(30), || {
        states().iter().all(|(state, _)| state != "received")
    })
    .await;
    // The appointment's id is filed under another patient, as a repository filled
    // before ids were kept apart per patient can hold it.
    store
        .write(|conn| {
            conn.execute(
                "UPDATE fhir_resources SET patient = 'another-patient' WHERE type = 'Appointment'",
                [],
            )?;
            Ok(())
        })
        .await
        .unwrap();
    send_all(source, &[booking("RENAMED", "S-2")]).await;
    common::wait_for("the rebooking processed", Duration::from_secs(30), || {
        let states = states();
        states.len() == 2 && states.iter().all(|(state, _)| state != "received")
    })
    .await;
    let states = states();
    assert_eq!(states[0].0, "processed", "{states:?}");
    assert_eq!(states[1].0, "errored", "{states:?}");
    assert!(states[1].1.contains("not overwritten"), "{states:?}");

    let http = engine.http_addr().unwrap();
    let (_, renamed) = get(http, "/fhir/Patient?family=RENAMED").await;
    assert_eq!(
        renamed["total"], 0,
        "nothing of the refused message is stored"
    );
    let (_, first) = get(http, "/fhir/Patient?family=FIRST").await;
    assert_eq!(first["total"], 1);
    engine.shutdown().await;
}
