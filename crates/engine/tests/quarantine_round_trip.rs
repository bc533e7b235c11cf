//! The quarantine round trip through a running engine, real sockets and the real NIST IZ
//! conformance profile:
//!
//! - after the ACK: a CDC immunization message without its birth date is acknowledged,
//!   fails the profile in the pipeline and waits in quarantine with its findings (counted
//!   in data quality and /metrics), while a valid one reaches the file destination; the
//!   analyst corrects and reprocesses it through the HTTP API, and it is delivered;
//! - before the ACK: the sender gets AE with an ERR segment at PID-7, the message is
//!   stored as rejected and quarantined; corrected and reprocessed through the API, it is
//!   delivered.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Api, mllp_client, send_all, send_expecting, start_engine, wait_for};
use engine::Engine;
use serde_json::Value;
use store::{MessageId, MessageState, Store};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn iz_profile() -> PathBuf {
    crates_dir().join("hl7v2-spec/tests/profiles/real/iz/immunization-profile.xml")
}

fn adult(name: &str) -> Vec<u8> {
    std::fs::read(crates_dir().join(format!("../tests/corpus/public/cdc-iis-open-tools/{name}")))
        .unwrap()
}

fn without_birth_date(message: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(message.to_vec()).unwrap();
    assert_eq!(text.matches("|19840615|").count(), 1);
    text.replacen("|19840615|", "||", 1).into_bytes()
}

/// One HTTP/1.1 request on a fresh connection: the status and the body (its JSON object,
/// but for /metrics).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let answer = common::http(addr, method, path, headers, body).await;
    let body = if path.starts_with("/metrics") {
        &answer.body
    } else {
        answer.json_text()
    };
    (answer.status, body.to_owned())
}

fn state_of(store: &Store, id: MessageId) -> MessageState {
    store.journal().get(id).unwrap().unwrap().entry.state
}

/// How long a wait may take before the test fails.
const LIMIT: Duration = Duration::from_secs(30);

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

/// The files the destination wrote, by name (the journal id), as text.
fn delivered_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    files
        .iter()
        .map(|p| text(&std::fs::read(p).unwrap()))
        .collect()
}

/// An engine with its HTTP API and channel `iz`: an MLLP source (with `source_options`
/// added to its table), the IZ profile checked at `mode`, and a file destination writing
/// `registry/{message_id}.hl7`.
async fn start_iz(dir: &Path, source_options: &str, mode: &str) -> Engine {
    let toml = format!(
        r#"
[channels.iz]
source = {{ type = "mllp", listen = "127.0.0.1:0"{source_options} }}
[channels.iz.validation]
mode = "{mode}"
profile = {profile:?}
[[channels.iz.destinations]]
name = "registry"
type = "file"
path = "registry"
file_name = "{{message_id}}.hl7"
"#,
        profile = iz_profile().display().to_string(),
    );
    start_engine(dir, "data", Api::On, &toml).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_failing_its_profile_after_the_ack_is_quarantined_fixed_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    // The CDC samples share one control id; here they are different messages.
    let engine = start_iz(dir.path(), r#", duplicate_window = "off""#, "after_ack").await;
    let store = engine.store().clone();
    let addr = engine.listeners()[0].addr;
    let out = dir.path().join("registry");

    let good = adult("Adult_z22_New_Covid_vaccine.hl7");
    let bad = without_birth_date(&adult("Adult_z22_non-vaccination_deferral.hl7"));
    // Validation comes after the ACK: both are accepted once stored.
    send_all(addr, &[&bad, &good]).await;
    let (bad_id, good_id) = (MessageId(1), MessageId(2));
    wait_for("the bad message to be quarantined", LIMIT, || {
        state_of(&store, bad_id) == MessageState::Quarantined
    })
    .await;
    wait_for("the good message to be delivered", LIMIT, || {
        state_of(&store, good_id) == MessageState::Delivered
    })
    .await;
    let reason = store
        .journal()
        .get(bad_id)
        .unwrap()
        .unwrap()
        .entry
        .state_reason;
    assert!(reason.unwrap().contains("VXU_V04.PID-7"));
    assert_eq!(delivered_files(&out), [text(&good)]);

    let http = engine.http_addr().unwrap();

    // The analyst finds it through the engine's HTTP API.
    let (status, list) = call(
        http,
        "GET",
        "/api/quarantine?channel=iz&status=open",
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["total"], 1);
    let entry = &list["entries"][0];
    assert_eq!(entry["message_id"], bad_id.0);
    assert_eq!(entry["first_errors"][0]["path"], "VXU_V04.PID-7");
    let id = entry["id"].as_i64().unwrap();

    // Both messages were counted, in the transactions that processed them.
    let (_, quality) = call(http, "GET", "/api/data-quality?channel=iz", &[], b"").await;
    let quality: Value = serde_json::from_str(&quality).unwrap();
    assert_eq!(quality["messages"][0]["validated"], 2);
    assert_eq!(quality["messages"][0]["with_errors"], 1);
    let pid7 = quality["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "VXU_V04.PID-7")
        .expect("the missing birth date is counted")
        .clone();
    assert_eq!(
        (pid7["count"].as_i64(), pid7["severity"].as_str()),
        (Some(1), Some("error"))
    );
    let (_, metrics) = call(http, "GET", "/metrics", &[], b"").await;
    assert!(
        metrics.contains(
            "corridor_findings_total{channel=\"iz\",sender=\"Test EHR Application\",\
             message_type=\"VXU^V04\",path=\"VXU_V04.PID-7\",code=\"101\",severity=\"error\"} 1\n"
        ),
        "{metrics}"
    );
    assert!(metrics.contains("corridor_quarantine_entries{channel=\"iz\",status=\"open\"} 1\n"));

    // The analyst puts the birth date back (checked with the channel's own profile) and
    // reprocesses; the channel's pipeline is woken and delivers it.
    let fixed = adult("Adult_z22_non-vaccination_deferral.hl7");
    let user = ("X-Corridor-User", "ana");
    let (status, edited) = call(
        http,
        "PUT",
        &format!("/api/quarantine/{id}"),
        &[
            user,
            ("X-Corridor-Reason", "birth date from the registration desk"),
        ],
        &fixed,
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    let edited: Value = serde_json::from_str(&edited).unwrap();
    assert_eq!(edited["valid"], true, "{edited}");
    // Revalidating the corrected content finds it valid too.
    let (status, body) = call(
        http,
        "POST",
        &format!("/api/quarantine/{id}/revalidate"),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["valid"], true);
    let (status, done) = call(
        http,
        "POST",
        &format!("/api/quarantine/{id}/reprocess"),
        &[user],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{done}");
    let done: Value = serde_json::from_str(&done).unwrap();
    let new_id = MessageId(done["message_id"].as_i64().unwrap());
    wait_for("the corrected message to be delivered", LIMIT, || {
        state_of(&store, new_id) == MessageState::Delivered
    })
    .await;
    // The correction as stored: segment ends CR, no trailing blank line.
    let corrected = quarantine::normalize_content(&fixed);
    assert_ne!(corrected, fixed, "the sample ends with an empty line");
    assert_eq!(delivered_files(&out), [text(&good), text(&corrected)]);
    // The original stays as it came, quarantined; the entry says where it went.
    assert_eq!(state_of(&store, bad_id), MessageState::Quarantined);
    assert_eq!(store.journal().get(bad_id).unwrap().unwrap().raw, bad);
    let (_, detail) = call(http, "GET", &format!("/api/quarantine/{id}"), &[], b"").await;
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["status"], "reprocessed");
    assert_eq!(detail["reprocessed_as"], new_id.0);
    assert_eq!(detail["history"][0]["edited_by"], "ana");
    let (_, quality) = call(http, "GET", "/api/data-quality?channel=iz", &[], b"").await;
    let quality: Value = serde_json::from_str(&quality).unwrap();
    assert_eq!(quality["messages"][0]["validated"], 3);
    assert_eq!(quality["messages"][0]["with_errors"], 1);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_rejected_before_the_ack_is_fixed_through_the_api_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let engine = start_iz(dir.path(), "", "before_ack").await;
    let store = engine.store().clone();
    let http = engine.http_addr().unwrap();
    let out = dir.path().join("registry");

    // The sender is told what is wrong: AE with an ERR segment at PID-7.
    let fixed = adult("Adult_z22_serologic_evidence_covid.hl7");
    let bad = without_birth_date(&fixed);
    let mut client = mllp_client(engine.listeners()[0].addr).await;
    let ack = send_expecting(&mut client, &bad, "AE").await;
    let ack = hl7v2::Message::parse(&ack).unwrap();
    // One ERR per finding (warnings too); the error is at PID-7, code 101, severity E.
    let errs: Vec<[String; 4]> = (1..=50)
        .map_while(|n| {
            let get = |path: &str| {
                ack.get_str(&format!("ERR[{n}]-{path}"))
                    .unwrap()
                    .map(|v| v.into_owned())
            };
            get("2.1").map(|segment| {
                [
                    segment,
                    get("2.3").unwrap_or_default(),
                    get("3.1").unwrap_or_default(),
                    get("4").unwrap_or_default(),
                ]
            })
        })
        .collect();
    let errors: Vec<_> = errs.iter().filter(|e| e[3] == "E").collect();
    assert_eq!(errors.len(), 1, "{errs:?}");
    assert_eq!(errors[0][..3], ["PID", "7", "101"]);
    assert_eq!(state_of(&store, MessageId(1)), MessageState::Rejected);

    let (_, list) = call(http, "GET", "/api/quarantine?channel=iz", &[], b"").await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["total"], 1, "{list}");
    let id = list["entries"][0]["id"].as_i64().unwrap();
    let (_, detail) = call(http, "GET", &format!("/api/quarantine/{id}"), &[], b"").await;
    let detail: Value = serde_json::from_str(&detail).unwrap();
    assert_eq!(detail["original"]["state"], "rejected");

    let user = ("X-Corridor-User", "ana");
    let (status, edited) = call(
        http,
        "PUT",
        &format!("/api/quarantine/{id}?reason=DOB%20confirmed"),
        &[user],
        &fixed,
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    let (status, done) = call(
        http,
        "POST",
        "/api/quarantine/reprocess",
        &[user],
        br#"{"channel": "iz"}"#,
    )
    .await;
    assert_eq!(status, 200, "{done}");
    let done: Value = serde_json::from_str(&done).unwrap();
    assert_eq!(done["reprocessed"], 1, "{done}");
    let new_id = MessageId(done["results"][0]["message_id"].as_i64().unwrap());
    wait_for("the corrected message to be delivered", LIMIT, || {
        state_of(&store, new_id) == MessageState::Delivered
    })
    .await;
    assert_eq!(
        delivered_files(&out),
        [text(&quarantine::normalize_content(&fixed))]
    );
    engine.shutdown().await;
}
