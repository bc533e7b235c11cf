//! The patient index inside a running engine: messages arriving over MLLP are linked to
//! an enterprise patient, a transformer writes the enterprise id into the copy each
//! destination gets, the index answers over the engine's HTTP port, and a restart
//! keeps the same enterprise id.

mod common;

use std::time::Duration;

use common::{Api, send_all, start_engine, wait_for};
use engine::Engine;

fn adt(event: &str, control: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^{event}^ADT_A01|{control}|P|2.5.1\r\
         EVN|{event}|20240101120000\r\
         PID|1||MRN77^^^HOSP&1.2.3&ISO^MR||RIVERA^ANA^M||19750312|F|||12 OAK ST^^SPRINGFIELD^IL^62704||^PRN^PH^^^217^5550100\r\
         PV1|1|I\r"
    )
    .into_bytes()
}

async fn start(dir: &std::path::Path) -> Engine {
    start_engine(
        dir,
        "data",
        Api::On,
        r#"
[mpi]
enabled = true
[channels.adt]
source = { type = "mllp", listen = "127.0.0.1:0" }
transforms = [ { set = "PID-3[2].1", value = "{enterprise_id}" }, { set = "PID-3[2].5", value = "EI" } ]
[[channels.adt.destinations]]
name = "archive"
type = "file"
path = "archive"
file_name = "{control_id}.hl7"
"#,
    )
    .await
}

/// PID-3[2].1 of the file the destination wrote for `control`, once it is there.
async fn delivered_enterprise_id(dir: &std::path::Path, control: &str) -> String {
    let file = dir.join("archive").join(format!("{control}.hl7"));
    wait_for(
        &format!("{control} to be delivered"),
        Duration::from_secs(30),
        || file.exists(),
    )
    .await;
    let raw = std::fs::read(&file).unwrap();
    let message = hl7v2::Message::parse(&raw).unwrap();
    message.get_str("PID-3[2].1").unwrap().unwrap().into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_carry_their_enterprise_id_to_the_destinations() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start(dir.path()).await;
    send_all(
        engine.listeners()[0].addr,
        &[adt("A01", "ADMIT-1"), adt("A08", "UPDATE-1")],
    )
    .await;
    let admitted = delivered_enterprise_id(dir.path(), "ADMIT-1").await;
    let updated = delivered_enterprise_id(dir.path(), "UPDATE-1").await;
    assert!(!admitted.is_empty());
    assert_eq!(
        admitted, updated,
        "the same patient, the same enterprise id"
    );

    let http = engine.http_addr().unwrap();
    let answer = common::get(http, &format!("/mpi/patients/{admitted}")).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.contains("MRN77"), "{}", answer.body);
    let answer = common::get(
        http,
        // PID-3's authority `HOSP&1.2.3&ISO` is the system the FHIR Patient shows.
        "/mpi/fhir/Patient/$ihe-pix?sourceIdentifier=urn:oid:1.2.3%7CMRN77",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    engine.shutdown().await;

    // After a restart the index is rebuilt from its log: the next message of the same
    // patient gets the same enterprise id.
    let engine = start(dir.path()).await;
    send_all(engine.listeners()[0].addr, &[adt("A08", "UPDATE-2")]).await;
    assert_eq!(
        delivered_enterprise_id(dir.path(), "UPDATE-2").await,
        admitted
    );
    engine.shutdown().await;
}

/// An HTTP GET answered 200, as JSON.
async fn json(http: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let answer = common::get(http, path).await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.body);
    answer.json()
}

/// `system|value` for a query string.
fn token(identifier: &serde_json::Value) -> String {
    format!(
        "{}%7C{}",
        identifier["system"].as_str().unwrap(),
        identifier["value"].as_str().unwrap()
    )
}

/// Issue 17 item 5: the identifier systems the FHIR API shows are the ones the
/// patient index answers PIXm and PDQm for (an authority with an OID, and an
/// identifier without authority, named by its sender), and an A40 keeps the
/// retired Patient's content in its new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fhir_patients_identifiers_are_the_ones_the_patient_index_answers_for() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(
        dir.path(),
        "data",
        Api::On,
        r#"
[mpi]
enabled = true
[channels.adt]
source = { type = "mllp", listen = "127.0.0.1:0" }
fhir = { repository = true }
"#,
    )
    .await;
    let lab = "MSH|^~\\&|LAB|NORTH|EHR|HOSP|20240101120500||ADT^A04^ADT_A01|LAB-1|P|2.5.1\r\
         EVN|A04|20240101120500\r\
         PID|1||L-9^^^^MR||RIVERA^ANA^M||19750312|F|||12 OAK ST^^SPRINGFIELD^IL^62704||^PRN^PH^^^217^5550100\r";
    send_all(
        engine.listeners()[0].addr,
        &[adt("A04", "ADMIT-1"), lab.as_bytes().to_vec()],
    )
    .await;
    let http = engine.http_addr().unwrap();
    let mut patients = serde_json::Value::Null;
    for _ in 0..600 {
        patients = json(http, "/fhir/Patient?family=RIVERA").await;
        if patients["total"].as_u64() == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(patients["total"], 2, "{patients}");
    let identifier_of = |value: &str| {
        patients["entry"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|e| e["resource"]["identifier"].as_array().unwrap().iter())
            .find(|i| i["value"] == value)
            .cloned()
            .unwrap_or_else(|| panic!("no identifier {value} in {patients}"))
    };
    let hospital = identifier_of("MRN77");
    assert_eq!(hospital["system"], "urn:oid:1.2.3");
    let sender = identifier_of("L-9");
    assert_eq!(sender["system"], "urn:corridor:id/LAB%40NORTH");

    // PIXm with each identifier as the FHIR API shows it: known, and answered with
    // the other in the same form.
    let pix = json(
        http,
        &format!(
            "/mpi/fhir/Patient/$ihe-pix?sourceIdentifier={}",
            token(&sender)
        ),
    )
    .await;
    let targets: Vec<&serde_json::Value> = pix["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "targetIdentifier")
        .map(|p| &p["valueIdentifier"])
        .collect();
    assert!(
        targets
            .iter()
            .any(|t| t["system"] == hospital["system"] && t["value"] == "MRN77"),
        "{pix}"
    );
    let pix = json(
        http,
        &format!(
            "/mpi/fhir/Patient/$ihe-pix?sourceIdentifier={}",
            token(&hospital)
        ),
    )
    .await;
    assert!(
        pix["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["valueIdentifier"]["system"] == sender["system"]),
        "{pix}"
    );
    // PDQm by the same identifier.
    let found = json(
        http,
        &format!("/mpi/fhir/Patient?identifier={}", token(&hospital)),
    )
    .await;
    assert_eq!(found["total"], 1, "{found}");

    // An A40 merges MRN77 into KEEP1: the retired Patient's new version keeps
    // its name and the rest, and says who replaced it.
    let retired_id = patients["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .find(|r| {
            r["identifier"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["value"] == "MRN77")
        })
        .and_then(|r| r["id"].as_str())
        .unwrap()
        .to_owned();
    let merge = "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240102120000||ADT^A40^ADT_A39|MERGE-1|P|2.5.1\r\
         EVN|A40|20240102120000\r\
         PID|1||KEEP1^^^HOSP&1.2.3&ISO^MR||RIVERA^ANA\r\
         MRG|MRN77^^^HOSP&1.2.3&ISO^MR\r";
    send_all(engine.listeners()[0].addr, &[merge.as_bytes().to_vec()]).await;
    let path = format!("/fhir/Patient/{retired_id}");
    let mut retired = serde_json::Value::Null;
    for _ in 0..600 {
        retired = json(http, &path).await;
        if retired["active"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(retired["active"], false, "{retired}");
    assert_eq!(retired["meta"]["versionId"], "2", "{retired}");
    assert_eq!(retired["link"][0]["type"], "replaced-by", "{retired}");
    assert_eq!(retired["name"][0]["family"], "RIVERA", "{retired}");
    assert_eq!(retired["name"][0]["given"][0], "ANA", "{retired}");
    assert_eq!(retired["birthDate"], "1975-03-12", "{retired}");
    assert_eq!(retired["address"][0]["city"], "SPRINGFIELD", "{retired}");
    engine.shutdown().await;
}
