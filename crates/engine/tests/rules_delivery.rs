//! The rules on a running engine: alerts to a webhook as JSON (a real HTTP receiver
//! started by the test), and times sent without an offset read as the FHIR conversion
//! reads them (the channel's `fhir.timezone`), so a result compared with the record
//! across midnight lands on the right side of the window.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Api, send_all, start_engine};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP request as the receiver got it.
#[derive(Clone, Debug)]
struct Request {
    head: String,
    body: Vec<u8>,
}

/// An HTTP/1.1 receiver: every request it gets (keep-alive), each answered 200 with a
/// FHIR transaction-response Bundle (what a FHIR server answers; a webhook's answer
/// body is not read).
async fn http_receiver() -> (SocketAddr, Arc<Mutex<Vec<Request>>>) {
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
                let mut buf: Vec<u8> = Vec::new();
                loop {
                    // A whole request: head, then Content-Length bytes.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        let length = head
                            .lines()
                            .find_map(|l| {
                                let (name, value) = l.split_once(':')?;
                                name.eq_ignore_ascii_case("content-length")
                                    .then(|| value.trim().parse::<usize>().ok())
                                    .flatten()
                            })
                            .unwrap_or(0);
                        if buf.len() < end + 4 + length {
                            break;
                        }
                        let body = buf[end + 4..end + 4 + length].to_vec();
                        buf.drain(..end + 4 + length);
                        keep.lock().unwrap().push(Request { head, body });
                        let body =
                            r#"{"resourceType":"Bundle","type":"transaction-response","entry":[]}"#;
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/fhir+json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                    let mut chunk = [0u8; 8192];
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (addr, got)
}

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const POTASSIUM: &str = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102103000||ORU^R01^ORU_R01|K-1|P|2.5.1\r\
PID|1||MRN-K^^^HOSP^MR||DOE^JANE\r\
OBR|1||FK1|2823-3^Potassium^LN|||20240102101500\r\
OBX|1|NM|2823-3^Potassium^LN||6.4|mmol/L|3.5-5.1|HH|||F\r";

/// A webhook gets the alert as JSON and, beside it, a FHIR server gets it as a
/// `DetectedIssue` transaction Bundle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_receives_the_alert_as_json() {
    let (hook, received) = http_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = start_engine(
        dir.path(),
        "data",
        Api::On,
        &format!(
            r#"
[rules]
destinations = [
  {{ name = "hook", type = "http", url = "http://{hook}/alerts" }},
  {{ name = "fhir", type = "fhir", url = "http://{hook}/fhir" }},
]

[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
fhir = {{ repository = true }}
"#
        ),
    )
    .await;
    send_all(engine.listeners()[0].addr, &[POTASSIUM]).await;
    wait_until(Duration::from_secs(30), || {
        received.lock().unwrap().len() >= 2
    })
    .await;
    // A moment for a third request that must not come.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let requests = received.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let request = requests
        .iter()
        .find(|r| r.head.starts_with("POST /alerts "))
        .unwrap_or_else(|| panic!("no webhook request: {requests:?}"));
    assert!(
        request.head.starts_with("POST /alerts HTTP/1.1"),
        "{}",
        request.head
    );
    assert!(
        request
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{}",
        request.head
    );
    let alert: Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(alert["rule"], "critical-value", "{alert}");
    assert_eq!(alert["version"], 1);
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["key"], "2823-3:high");
    assert!(
        alert["patient"]["id"]
            .as_str()
            .is_some_and(|p| p.starts_with("Patient/")),
        "{alert}"
    );
    assert_eq!(alert["at"], "2024-01-02T10:15:00Z");
    assert!(
        alert["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(alert["channel"], "lab");
    let evidence = alert["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 1, "{alert}");
    assert_eq!(
        evidence[0]["Observation"]["source"]["control_id"], "K-1",
        "{alert}"
    );
    // No HL7 in the body: it is the alert, not the ORU.
    assert!(!String::from_utf8_lossy(&request.body).contains("MSH|"));

    let fhir = requests
        .iter()
        .find(|r| r.head.starts_with("POST /fhir "))
        .unwrap_or_else(|| panic!("no FHIR request: {requests:?}"));
    let bundle: Value = serde_json::from_slice(&fhir.body).unwrap();
    assert_eq!(bundle["type"], "transaction", "{bundle}");
    let issue = &bundle["entry"][0]["resource"];
    assert_eq!(issue["resourceType"], "DetectedIssue", "{bundle}");
    assert_eq!(issue["code"]["coding"][0]["code"], "critical-value");
    assert_eq!(issue["severity"], "high");
    assert_eq!(issue["identifiedDateTime"], "2024-01-02T10:15:00Z");

    // The stored alert says it was delivered through the alerts channel.
    let http = engine.http_addr().unwrap();
    let listed = common::get(http, "/api/rules/alerts").await.json();
    assert_eq!(listed["alerts"][0]["id"], alert["id"]);
    assert_ne!(listed["alerts"][0]["delivery"], "none");
    engine.shutdown().await;
}

/// A haemoglobin of patient `mrn` at local time `time` (no offset anywhere).
fn haemoglobin(mrn: &str, control: &str, time: &str, value: &str) -> String {
    format!(
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|{time}||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||{mrn}^^^HOSP^MR||ZONE^PATIENT||19700101|F\r\
         OBR|1||F{control}|718-7^Hemoglobin^LN|||{time}\r\
         OBX|1|NM|718-7^Hemoglobin^LN||{value}|g/dL|12-16||||F|||{time}\r"
    )
}

/// The channel's `fhir.timezone` is five hours behind UTC. The repository stores each
/// result at its local time in that zone; the rules must read the new message's times
/// in it too. Read as UTC (as before), a result two hours after one at 23:30 would fall
/// three hours *before* it and no delta check would compare them, and one 26 hours
/// after another would seem 21 hours after it, inside the 24-hour window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_without_an_offset_are_read_in_the_channel_s_zone() {
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
    let source = engine.listeners()[0].addr;
    // Across midnight, two hours apart: a fall of 2.5 g/dL within 24 hours fires.
    send_all(
        source,
        &[
            haemoglobin("MRN-A", "A-1", "20240102233000", "12.0"),
            haemoglobin("MRN-A", "A-2", "20240103013000", "9.5"),
        ],
    )
    .await;
    // 26 hours apart: outside the window, nothing fires.
    send_all(
        source,
        &[
            haemoglobin("MRN-B", "B-1", "20240105220000", "12.0"),
            haemoglobin("MRN-B", "B-2", "20240107000000", "9.5"),
        ],
    )
    .await;
    let http = engine.http_addr().unwrap();
    wait_until(Duration::from_secs(30), || {
        common::count(
            engine.store(),
            "SELECT COUNT(*) FROM journal WHERE channel = 'lab' AND state <> 'received'",
        ) >= 4
    })
    .await;
    let listed = common::get(http, "/api/rules/alerts").await.json();
    let alerts = listed["alerts"].as_array().unwrap();
    let fired: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            let trigger = a["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|e| e["Observation"]["source"]["control_id"].as_str())
                .collect::<Vec<_>>()
                .join(",");
            (a["key"].as_str().unwrap().to_owned(), trigger)
        })
        .collect();
    assert_eq!(fired.len(), 1, "{listed}");
    assert_eq!(fired[0].0, "718-7:fall", "{listed}");
    assert!(fired[0].1.contains("A-2"), "{listed}");
    // The alert's time is the result's instant: 01:30 at -05:00 is 06:30 UTC.
    assert_eq!(alerts[0]["at"], "20240103063000+0000", "{listed}");
    engine.shutdown().await;
}

/// A custom rule (the example of docs/rules.md) on a running engine: it reads the
/// patient's earlier potassium from the repository (`record.resources`), fires on the
/// fall, and its alert is stored with the rule's name and the script's hash as version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_rule_reads_the_repository_record_and_stores_its_version() {
    let doc = include_str!("../../../docs/rules.md");
    let start = doc.find("```js\n").unwrap() + "```js\n".len();
    let script = &doc[start..start + doc[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("falling.js"), script).unwrap();
    let engine = start_engine(
        dir.path(),
        "data",
        Api::On,
        r#"
[[rules.custom]]
name = "potassium-falling"
script_file = "falling.js"

[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:0" }
fhir = { repository = true }
"#,
    )
    .await;
    let potassium = |control: &str, time: &str, value: &str| {
        format!(
            "MSH|^~\\&|LAB|HOSP|EHR|HOSP|{time}||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
             PID|1||MRN-F^^^HOSP^MR||FALL^PATIENT||19700101|F\r\
             OBR|1||F{control}|2823-3^Potassium^LN|||{time}\r\
             OBX|1|NM|2823-3^Potassium^LN||{value}|mmol/L|3.5-5.1||||F|||{time}\r"
        )
    };
    let source = engine.listeners()[0].addr;
    // One at a time, so the first is in the repository when the second is decided.
    send_all(source, &[potassium("F-1", "20240102080000", "4.6")]).await;
    wait_until(Duration::from_secs(30), || {
        common::count(
            engine.store(),
            "SELECT COUNT(*) FROM journal WHERE channel = 'lab' AND state <> 'received'",
        ) >= 1
    })
    .await;
    send_all(source, &[potassium("F-2", "20240102100000", "3.2")]).await;
    wait_until(Duration::from_secs(30), || {
        common::count(
            engine.store(),
            "SELECT COUNT(*) FROM journal WHERE channel = 'lab' AND state <> 'received'",
        ) >= 2
    })
    .await;
    let http = engine.http_addr().unwrap();
    let listed = common::get(http, "/api/rules/alerts").await.json();
    let alerts = listed["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{listed}");
    let alert = &alerts[0];
    assert_eq!(alert["rule"], "potassium-falling", "{alert}");
    assert_eq!(
        alert["rule_version"],
        rules::custom::script_version(script.as_bytes()),
        "{alert}"
    );
    assert_eq!(alert["key"], "2823-3:falling-low");
    assert_eq!(alert["summary"], "Potassium 3.2 mmol/L, down from 4.6");
    // The evidence: the script's own value, and the repository's Observation of F-1.
    assert_eq!(alert["evidence"][0]["Custom"]["potassium"], 3.2, "{alert}");
    let earlier = &alert["evidence"][1]["Custom"];
    assert_eq!(earlier["resourceType"], "Observation", "{alert}");
    assert_eq!(earlier["valueQuantity"]["value"], 4.6, "{alert}");
    // The rule filter of the API takes a custom rule's name.
    let by_rule = common::get(http, "/api/rules/alerts?rule=potassium-falling")
        .await
        .json();
    assert_eq!(by_rule["alerts"].as_array().unwrap().len(), 1);
    engine.shutdown().await;
}
