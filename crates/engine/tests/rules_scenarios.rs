//! The labelled scenarios (`rules::scenario`) replayed over MLLP through a running
//! engine with the clinical repository and the patient index on: every expected alert
//! fires with its evidence and no other does; each is stored (`/api/rules/alerts`) and
//! reaches a downstream MLLP listener as an ORU^R01 through the alerts channel.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::{Api, send_all, start_engine};
use rules::AlertKind;
use rules::scenario::{ExpectedAlert, generate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A downstream MLLP receiver: every frame it gets, each answered AA.
async fn mllp_receiver() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut decoder = mllp::FrameDecoder::new(1 << 20);
                let mut buf = BytesMut::new();
                loop {
                    while let Ok(Some(frame)) = decoder.decode(&mut buf) {
                        let text = String::from_utf8_lossy(&frame).into_owned();
                        let control = hl7v2::Message::parse(&frame)
                            .ok()
                            .and_then(|m| {
                                m.get_str("MSH-10").ok().flatten().map(|c| c.into_owned())
                            })
                            .unwrap_or_default();
                        keep.lock().unwrap().push(text);
                        let ack = format!(
                            "\x0bMSH|^~\\&|PAGER|WARD|CORRIDOR|RULES|20260101000000||ACK|A{control}|P|2.5.1\rMSA|AA|{control}\r\x1c\r"
                        );
                        if socket.write_all(ack.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    match socket.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            });
        }
    });
    (addr, got)
}

/// The scenario (by its MRN, the prefix of its messages' control ids) an alert belongs
/// to: the evidence read from the triggering message names its control id.
fn scenario_of(alert: &serde_json::Value) -> Option<String> {
    alert["evidence"].as_array()?.iter().find_map(|e| {
        let fact = e.as_object()?.values().next()?;
        let control = fact["source"]["control_id"].as_str()?;
        control
            .rsplit_once('-')
            .map(|(mrn, _)| mrn.to_owned())
            .filter(|mrn| mrn.starts_with("SYN"))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_labelled_scenarios_fire_exactly_their_alerts_through_a_running_engine() {
    let scenarios = generate(0x5EED_2026, 48);
    let expected_total: usize = scenarios.iter().map(|s| s.expected.len()).sum();
    let (pager, received) = mllp_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(
        dir.path(),
        "data",
        Api::On,
        &format!(
            r#"
[mpi]
enabled = true

[rules]
destinations = [ {{ name = "pager", type = "mllp", to = "{pager}" }} ]

[channels.clinical]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
fhir = {{ repository = true }}
"#
        ),
    )
    .await;
    let source = engine.listeners()[0].addr;
    for scenario in &scenarios {
        send_all(source, &scenario.messages).await;
    }

    // Every expected alert downstream, then a moment for any that should not come.
    let started = Instant::now();
    while received.lock().unwrap().len() < expected_total
        && started.elapsed() < Duration::from_secs(120)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let http = engine.http_addr().unwrap();
    let answer = common::get(http, "/api/rules/alerts?limit=500").await;
    assert_eq!(answer.status, 200, "{}", answer.json_text());
    let stored = answer.json()["alerts"].as_array().unwrap().clone();

    let mut fired: BTreeMap<String, Vec<ExpectedAlert>> = BTreeMap::new();
    for alert in &stored {
        let mrn =
            scenario_of(alert).unwrap_or_else(|| panic!("alert without its trigger: {alert}"));
        assert!(
            !alert["evidence"].as_array().unwrap().is_empty(),
            "an alert without evidence: {alert}"
        );
        assert_eq!(alert["rule_version"], 1);
        assert_ne!(alert["delivery"], "none", "{alert}");
        fired.entry(mrn).or_default().push(ExpectedAlert {
            rule: AlertKind::parse(alert["rule"].as_str().unwrap()).unwrap(),
            key: alert["key"].as_str().unwrap().to_owned(),
        });
    }
    let mut wrong = Vec::new();
    for scenario in &scenarios {
        let mrn = scenario.patient.0.trim_start_matches("E-");
        let mut got = fired.remove(mrn).unwrap_or_default();
        got.sort();
        if got != scenario.expected {
            wrong.push(format!(
                "{mrn} {:?}: expected {:?}, fired {:?}",
                scenario.events, scenario.expected, got
            ));
        }
    }
    assert!(fired.is_empty(), "alerts for no scenario: {fired:?}");
    assert!(
        wrong.is_empty(),
        "{} scenarios wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // Downstream: one ORU^R01 per alert, each naming its rule and condition.
    let frames = received.lock().unwrap().clone();
    assert_eq!(frames.len(), stored.len(), "{frames:#?}");
    for alert in &stored {
        let obx = format!(
            "|ST|{}^{} v1^CORRIDOR-RULES|{}|",
            alert["rule"].as_str().unwrap(),
            alert["rule"].as_str().unwrap(),
            // The key's `|` travels escaped.
            alert["key"].as_str().unwrap().replace('|', "\\F\\")
        );
        assert!(
            frames
                .iter()
                .any(|f| f.contains("ORU^R01") && f.contains(&obx)),
            "{obx} not received downstream"
        );
    }
    // Resolving: once, then a conflict.
    let id = stored[0]["id"].as_i64().unwrap();
    let path = format!("/api/rules/alerts/{id}/resolve");
    let answer = common::http(
        http,
        "POST",
        &path,
        &[("X-Corridor-User", "nurse")],
        b"{\"note\": \"seen\"}",
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json_text());
    let again = common::http(http, "POST", &path, &[("X-Corridor-User", "nurse")], b"").await;
    assert_eq!(again.status, 409, "{}", again.json_text());
    let open = common::get(http, "/api/rules/alerts?open=true&limit=500")
        .await
        .json();
    assert_eq!(open["alerts"].as_array().unwrap().len(), stored.len() - 1);
    engine.shutdown().await;
}

/// A critical potassium of patient `mrn` at `time` (HL7 DTM), control id `control`.
fn potassium(mrn: &str, control: &str, time: &str) -> String {
    format!(
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|{time}||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||{mrn}^^^HOSP^MR||RESTART^PATIENT||19700101|F\r\
         OBR|1||F{control}|2823-3^Potassium^LN|||{time}\r\
         OBX|1|NM|2823-3^Potassium^LN||6.9|mmol/L|3.5-5.1|HH|||F|||{time}\r"
    )
}

async fn alerts(http: SocketAddr) -> Vec<serde_json::Value> {
    let answer = common::get(http, "/api/rules/alerts?limit=500").await;
    assert_eq!(answer.status, 200, "{}", answer.json_text());
    answer.json()["alerts"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_condition_stays_quiet_within_its_window_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let config = r#"
[mpi]
enabled = true
[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:0" }
fhir = { repository = true }
"#;
    let engine = start_engine(dir.path(), "data", Api::On, config).await;
    send_all(
        engine.listeners()[0].addr,
        &[potassium("R1", "K1", "20260301100000")],
    )
    .await;
    let http = engine.http_addr().unwrap();
    let started = Instant::now();
    while alerts(http).await.is_empty() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(alerts(http).await.len(), 1);
    engine.shutdown().await;

    // After a restart: one hour later is within the 6 h window, quiet; seven hours
    // later fires again.
    let engine = start_engine(dir.path(), "data", Api::On, config).await;
    send_all(
        engine.listeners()[0].addr,
        &[
            potassium("R1", "K2", "20260301110000"),
            potassium("R1", "K3", "20260301170000"),
        ],
    )
    .await;
    let http = engine.http_addr().unwrap();
    let started = Instant::now();
    while alerts(http).await.len() < 2 && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = alerts(http).await;
    let triggers: Vec<String> = all
        .iter()
        .map(|a| scenario_trigger(a).unwrap_or_default())
        .collect();
    assert_eq!(triggers, ["K3", "K1"], "{all:#?}");
    engine.shutdown().await;
}

/// The control id of the message that triggered an alert.
fn scenario_trigger(alert: &serde_json::Value) -> Option<String> {
    alert["evidence"].as_array()?.iter().find_map(|e| {
        let fact = e.as_object()?.values().next()?;
        fact["source"]["control_id"]
            .as_str()
            .filter(|c| !c.starts_with("message "))
            .map(str::to_owned)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cds_hooks_on_a_running_engine_read_the_record_by_enterprise_id() {
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
    send_all(
        engine.listeners()[0].addr,
        &[
            "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20260301090000||ADT^A08^ADT_A01|C1|P|2.5.1\r\
           EVN|A08|20260301090000\r\
           PID|1||CDS1^^^HOSP^MR||HOOKS^CARRIE||19700101|F\r\
           PV1|1|I\r\
           AL1|1|DA|^Penicillin^|SV|hives\r",
        ],
    )
    .await;
    let http = engine.http_addr().unwrap();
    let started = Instant::now();
    let patient = loop {
        let answer = common::get(http, "/fhir/Patient?family=HOOKS").await;
        let bundle = answer.json();
        if bundle["total"].as_u64() == Some(1) {
            break bundle["entry"][0]["resource"].clone();
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{bundle}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The index gave the Patient its enterprise identifier.
    assert!(
        patient["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["system"] == "urn:corridor:mpi"),
        "{patient}"
    );
    let id = patient["id"].as_str().unwrap();
    let request = serde_json::json!({
        "hookInstance": "0b7a3b6a-3e8f-4f39-9d3c-6b1d1f3f9a10",
        "hook": "order-sign",
        "context": {
            "userId": "Practitioner/123",
            "patientId": id,
            "draftOrders": { "resourceType": "Bundle", "entry": [ { "resource": {
                "resourceType": "MedicationRequest", "id": "m1", "status": "draft", "intent": "order",
                "medicationCodeableConcept": { "coding": [ { "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                    "code": "723", "display": "amoxicillin" } ] } } } ] }
        }
    });
    let answer = common::http(
        http,
        "POST",
        "/cds-services/corridor-order-sign",
        &[("Content-Type", "application/json")],
        request.to_string().as_bytes(),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.json_text());
    let cards = answer.json()["cards"].as_array().unwrap().clone();
    assert_eq!(cards.len(), 1, "{cards:?}");
    assert_eq!(cards[0]["source"]["topic"]["code"], "allergy-medication");
    engine.shutdown().await;
}
