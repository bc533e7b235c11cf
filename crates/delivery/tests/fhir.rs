//! FHIR destinations against a small real FHIR server: an axum handler on a TCP port
//! that keeps resources by type and id with versions, answers a read with its `ETag`,
//! checks each transaction Bundle (a `PUT` per entry, `ifMatch` honoured with 412) and
//! applies it whole or not at all.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::*;
use delivery::EntryState;
use serde_json::{Value, json};
use store::Store;

#[derive(Clone, Default)]
struct Server {
    /// Every transaction Bundle received, applied or not, in arrival order.
    tried: Arc<Mutex<Vec<Value>>>,
    /// Bundles taken, in arrival order.
    bundles: Arc<Mutex<Vec<Value>>>,
    /// Statuses to answer transactions with, in turn; a transaction-response once they
    /// run out.
    script: Arc<Mutex<Vec<u16>>>,
    /// Answer 200 with an OperationOutcome instead of a transaction-response.
    wrong_answer: bool,
    /// The current version of each resource by `Type/id`, with its number.
    resources: Arc<Mutex<HashMap<String, (u64, Value)>>>,
    /// Reads answered, in arrival order (`Type/id`).
    reads: Arc<Mutex<Vec<String>>>,
    /// Answer every read with this status instead.
    failing_reads: Arc<Mutex<Option<u16>>>,
    /// How many of the next reads of a Patient another client follows with a change of
    /// its own (a new version with an identifier of its system).
    changes_after_read: Arc<Mutex<usize>>,
    /// Transactions refused with 412 (whole, or in an entry's response).
    conflicts: Arc<Mutex<usize>>,
    /// Answer a failed `ifMatch` as a server applying entries one by one does: 200 with
    /// a transaction-response whose entry says 412, the other entries applied.
    conflicts_in_entries: bool,
    /// Reads answer without an `ETag` header (the version is in `meta.versionId`).
    no_etag: bool,
    /// The server keeps no versions: reads answer without `ETag` and without `meta`.
    unversioned: bool,
    /// Answer every entry of the next transactions with this status, storing nothing.
    entry_status: Arc<Mutex<Option<&'static str>>>,
}

impl Server {
    /// Stores `resource` as the next version of `key`; its version number.
    fn put(&self, key: &str, mut resource: Value) -> u64 {
        let mut resources = self.resources.lock().unwrap();
        let version = resources.get(key).map_or(1, |(v, _)| v + 1);
        resource["meta"] = json!({"versionId": version.to_string()});
        resources.insert(key.to_owned(), (version, resource));
        version
    }

    fn resource(&self, key: &str) -> Value {
        self.resources.lock().unwrap()[key].1.clone()
    }
}

/// `W/"3"` or `"3"`: 3.
fn version_of(tag: &str) -> Option<u64> {
    tag.trim_start_matches("W/").trim_matches('"').parse().ok()
}

async fn read(
    State(server): State<Server>,
    Path((resource_type, id)): Path<(String, String)>,
) -> axum::response::Response {
    let key = format!("{resource_type}/{id}");
    server.reads.lock().unwrap().push(key.clone());
    if let Some(code) = *server.failing_reads.lock().unwrap() {
        return (StatusCode::from_u16(code).unwrap(), "read failed").into_response();
    }
    let current = server.resources.lock().unwrap().get(&key).cloned();
    let Some((version, resource)) = current else {
        let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]});
        return (StatusCode::NOT_FOUND, outcome.to_string()).into_response();
    };
    let change = resource_type == "Patient" && {
        let mut pending = server.changes_after_read.lock().unwrap();
        let change = *pending > 0;
        *pending = pending.saturating_sub(1);
        change
    };
    if change {
        // Another client updates the resource after this read was answered.
        let mut changed = resource.clone();
        changed["identifier"]
            .as_array_mut()
            .unwrap()
            .push(json!({"system": "urn:other-client", "value": "X-1"}));
        server.put(&key, changed);
    }
    let mut resource = resource;
    if server.unversioned {
        if let Value::Object(map) = &mut resource {
            map.remove("meta");
        }
    }
    let mut response = (
        [("content-type", "application/fhir+json")],
        resource.to_string(),
    )
        .into_response();
    if !server.no_etag && !server.unversioned {
        response
            .headers_mut()
            .insert("etag", format!("W/\"{version}\"").parse().unwrap());
    }
    response
}

/// Each entry applied on its own, a failed `ifMatch` answered 412 in its entry.
fn apply_entries(server: &Server, bundle: &Value) -> Vec<Value> {
    let mut answers = Vec::new();
    for entry in bundle["entry"].as_array().unwrap() {
        let url = entry["request"]["url"].as_str().unwrap().to_owned();
        let current = server.resources.lock().unwrap().get(&url).map(|(v, _)| *v);
        let stale = entry["request"]["ifMatch"]
            .as_str()
            .is_some_and(|tag| current.is_none() || current != version_of(tag));
        if stale {
            *server.conflicts.lock().unwrap() += 1;
            answers.push(json!({"response": {"status": "412 Precondition Failed",
                "outcome": {"resourceType": "OperationOutcome", "issue": [{"severity": "error",
                    "code": "conflict", "diagnostics": format!("{url} is at version {current:?}")}]}}}));
            continue;
        }
        let version = server.put(&url, entry["resource"].clone());
        answers.push(json!({"response": {"status": "200 OK",
            "location": format!("{url}/_history/{version}")}}));
    }
    answers
}

/// What a FHIR server checks of a transaction before it applies it: the entries to
/// store, or the status and reason of its refusal.
fn check(server: &Server, bundle: &Value) -> Result<Vec<(String, Value)>, (StatusCode, String)> {
    let invalid = |reason: String| (StatusCode::BAD_REQUEST, reason);
    if bundle["resourceType"] != "Bundle" || bundle["type"] != "transaction" {
        return Err(invalid("not a transaction Bundle".into()));
    }
    let entries = bundle["entry"]
        .as_array()
        .ok_or_else(|| invalid("no entries".into()))?;
    let resources = server.resources.lock().unwrap();
    let mut puts = Vec::new();
    for entry in entries {
        let resource = &entry["resource"];
        let url = format!(
            "{}/{}",
            resource["resourceType"]
                .as_str()
                .ok_or_else(|| invalid("no resourceType".into()))?,
            resource["id"]
                .as_str()
                .ok_or_else(|| invalid("no id".into()))?
        );
        if entry["request"]["method"] != "PUT" || entry["request"]["url"] != url.as_str() {
            return Err(invalid(format!("entry {url} is not a PUT to itself")));
        }
        if let Some(tag) = entry["request"]["ifMatch"].as_str() {
            let current = resources.get(&url).map(|(v, _)| *v);
            if current.is_none() || current != version_of(tag) {
                return Err((
                    StatusCode::PRECONDITION_FAILED,
                    format!("{url} is at version {current:?}, not {tag}"),
                ));
            }
        }
        puts.push((url, resource.clone()));
    }
    Ok(puts)
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
    server.tried.lock().unwrap().push(bundle.clone());
    if let Some(status) = *server.entry_status.lock().unwrap() {
        let answers: Vec<Value> = bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|_| json!({"response": {"status": status}}))
            .collect();
        let answer =
            json!({"resourceType": "Bundle", "type": "transaction-response", "entry": answers});
        return (
            [("content-type", "application/fhir+json")],
            answer.to_string(),
        )
            .into_response();
    }
    if server.conflicts_in_entries {
        let answers = apply_entries(&server, &bundle);
        server.bundles.lock().unwrap().push(bundle);
        let answer =
            json!({"resourceType": "Bundle", "type": "transaction-response", "entry": answers});
        return (
            [("content-type", "application/fhir+json")],
            answer.to_string(),
        )
            .into_response();
    }
    let puts = match check(&server, &bundle) {
        Ok(puts) => puts,
        Err((status, reason)) => {
            if status == StatusCode::PRECONDITION_FAILED {
                *server.conflicts.lock().unwrap() += 1;
            }
            let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "invalid", "diagnostics": reason}]});
            return (status, outcome.to_string()).into_response();
        }
    };
    let answers: Vec<Value> = puts
        .into_iter()
        .map(|(url, resource)| {
            let version = server.put(&url, resource);
            let status = if version == 1 {
                "201 Created"
            } else {
                "200 OK"
            };
            json!({"response": {"status": status,
                "location": format!("{url}/_history/{version}"),
                "etag": format!("W/\"{version}\"")}})
        })
        .collect();
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
        .route("/r4/{resource_type}/{id}", axum::routing::get(read))
        .with_state(server);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/r4")
}

/// The registration that records the patient's SSN, driver's licence and next of kin.
const ADT_A04: &str = "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240102083000-0500||ADT^A04^ADT_A01|REG-1|P|2.5.1\r\
PID|1||PAT77^^^GHH^MR||EVERYWOMAN^EVE^E||19620320|F|||2222 HOME STREET^^GREENSBORO^NC^27401||^PRN^PH^^1^555^5552004||||||123-45-6789|S99-1234^NC\r\
NK1|1|EVERYMAN^ADAM|SPO^Spouse^HL70063|2222 HOME STREET^^GREENSBORO^NC^27401|^PRN^PH^^1^555^5552005\r";

/// A later immunization whose PID carries the MR, a registry id and the name (with a
/// new middle name), and whose NK1 names the patient's mother.
const VXU: &str = "MSH|^~\\&|MYEHR|GHH|MYIIS||20240301100000-0500||VXU^V04^VXU_V04|IZ-1|P|2.5.1\r\
PID|1||PAT77^^^GHH^MR~IIS-5^^^MYIIS^SR||EVERYWOMAN^EVE^F||19620320|F\r\
NK1|1|EVERYWOMAN^MARY|MTH^Mother^HL70063|2222 HOME STREET^^GREENSBORO^NC^27401\r\
ORC|RE||IZ-1^GHH\r\
RXA|0|1|20240301||140^Influenza^CVX|0.5|mL^^UCUM||00^new^NIP001||||||||||CP|A\r";

fn identifier_values(patient: &Value) -> Vec<&str> {
    patient["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect()
}

fn contact_names(patient: &Value) -> Vec<&str> {
    patient["contact"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"]["given"][0].as_str().unwrap())
        .collect()
}

/// The entry of `resource_type` in a Bundle.
fn entry_of<'a>(bundle: &'a Value, resource_type: &str) -> &'a Value {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == resource_type)
        .unwrap()
}

fn fhir_config(url: &str) -> delivery::DestinationConfig {
    config(&format!(
        "name = \"fhir\"\ntype = \"fhir\"\nurl = \"{url}\"\n\
         retry = {{ max_attempts = 1000, initial_backoff = \"10ms\", max_backoff = \"20ms\" }}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vxu_updates_the_servers_patient_and_keeps_what_the_adt_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = Server::default();
    let url = fhir_server(server.clone()).await;
    let (delivery, router) = start(&store, &[fhir_config(&url)], dir.path()).await;
    ingest(&store, &router, ADT_A04.as_bytes().to_vec(), None).await;
    let vxu = ingest(&store, &router, VXU.as_bytes().to_vec(), None).await;
    delivery.wake("lab");
    wait_for("both delivered", Duration::from_secs(20), || {
        count_in(&store, EntryState::Delivered) == 2
    })
    .await;
    let bundles = server.bundles.lock().unwrap().clone();
    let patient_id = entry_of(&bundles[0], "Patient")["resource"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = format!("Patient/{patient_id}");
    // The ADT created the Patient as it was; the VXU read it, then updated the version
    // it read.
    assert!(entry_of(&bundles[0], "Patient")["request"]["ifMatch"].is_null());
    assert_eq!(
        entry_of(&bundles[1], "Patient")["request"]["ifMatch"],
        "W/\"1\""
    );
    assert!(server.reads.lock().unwrap().contains(&key));
    let patient = server.resource(&key);
    assert_eq!(patient["meta"]["versionId"], "2");
    // The SSN and driver's licence stay, the registry id joins them.
    assert_eq!(
        identifier_values(&patient),
        ["PAT77", "IIS-5", "123-45-6789", "S99-1234"]
    );
    // The mother the VXU names joins the spouse the ADT recorded.
    assert_eq!(contact_names(&patient), ["MARY", "ADAM"]);
    // What the VXU did not carry is as the ADT left it; what it carried is its own.
    assert_eq!(patient["address"][0]["city"], "GREENSBORO");
    assert_eq!(patient["telecom"][0]["value"], "+1 (555) 5552004");
    assert_eq!(patient["name"][0]["given"], json!(["EVE", "F"]));
    // The queue entry keeps the Bundle made at routing: the VXU's Patient alone.
    let entry = &entries(&store, vxu)[0];
    let payload: Value = serde_json::from_slice(&entry.payload).unwrap();
    assert_eq!(
        identifier_values(&entry_of(&payload, "Patient")["resource"]),
        ["PAT77", "IIS-5"]
    );
    assert!(
        entry.answer.as_deref().unwrap().contains("merged"),
        "{:?}",
        entry.answer
    );
    delivery.shutdown().await;
}

/// The ADT delivered, then the VXU, whose read of the Patient another client follows
/// with a change: the VXU's first write is refused 412 (whole, or in its entry, as
/// `server` answers), and the retry reads again and merges into the other client's
/// version.
async fn a_change_between_the_read_and_the_write_is_retried(server: Server) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let url = fhir_server(server.clone()).await;
    let (delivery, router) = start(&store, &[fhir_config(&url)], dir.path()).await;
    ingest(&store, &router, ADT_A04.as_bytes().to_vec(), None).await;
    delivery.wake("lab");
    wait_for("the ADT delivered", Duration::from_secs(20), || {
        count_in(&store, EntryState::Delivered) == 1
    })
    .await;
    *server.changes_after_read.lock().unwrap() = 1;
    let vxu = ingest(&store, &router, VXU.as_bytes().to_vec(), None).await;
    delivery.wake("lab");
    wait_for("the VXU delivered", Duration::from_secs(20), || {
        count_in(&store, EntryState::Delivered) == 2
    })
    .await;
    assert_eq!(*server.conflicts.lock().unwrap(), 1);
    let entry = &entries(&store, vxu)[0];
    assert_eq!(entry.attempts, 2, "the 412 was retried");
    assert!(
        entry
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("412"),
        "{entry:?}"
    );
    let tried = server.tried.lock().unwrap().clone();
    let key = format!(
        "Patient/{}",
        entry_of(&tried[0], "Patient")["resource"]["id"]
            .as_str()
            .unwrap()
    );
    // ADT version 1 (no ifMatch: a create), the VXU's write of version 1 refused, the
    // other client's version 2, the VXU's version 3 on top of it.
    let if_matches: Vec<&Value> = tried
        .iter()
        .map(|b| &entry_of(b, "Patient")["request"]["ifMatch"])
        .collect();
    assert_eq!(
        if_matches,
        [&Value::Null, &json!("W/\"1\""), &json!("W/\"2\"")]
    );
    let patient = server.resource(&key);
    assert_eq!(patient["meta"]["versionId"], "3");
    assert_eq!(
        identifier_values(&patient),
        ["PAT77", "IIS-5", "123-45-6789", "S99-1234", "X-1"]
    );
    assert_eq!(contact_names(&patient), ["MARY", "ADAM"]);
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_between_the_read_and_the_write_is_a_412_and_the_retry_merges_again() {
    a_change_between_the_read_and_the_write_is_retried(Server::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_412_inside_a_transaction_response_entry_is_retried_and_merges_again() {
    a_change_between_the_read_and_the_write_is_retried(Server {
        conflicts_in_entries: true,
        ..Server::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_etag_the_version_read_is_meta_version_id() {
    a_change_between_the_read_and_the_write_is_retried(Server {
        no_etag: true,
        ..Server::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_versions_gets_the_merged_patient_without_if_match() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = Server {
        unversioned: true,
        ..Server::default()
    };
    let url = fhir_server(server.clone()).await;
    let (delivery, router) = start(&store, &[fhir_config(&url)], dir.path()).await;
    ingest(&store, &router, ADT_A04.as_bytes().to_vec(), None).await;
    let vxu = ingest(&store, &router, VXU.as_bytes().to_vec(), None).await;
    delivery.wake("lab");
    wait_for("both delivered", Duration::from_secs(20), || {
        count_in(&store, EntryState::Delivered) == 2
    })
    .await;
    let bundles = server.bundles.lock().unwrap().clone();
    let patient = &entry_of(&bundles[1], "Patient");
    // Nothing to make the write conditional on: the merge is sent as it is.
    assert!(patient["request"]["ifMatch"].is_null(), "{patient}");
    assert_eq!(
        identifier_values(&patient["resource"]),
        ["PAT77", "IIS-5", "123-45-6789", "S99-1234"]
    );
    let answer = entries(&store, vxu)[0].answer.clone().unwrap_or_default();
    assert!(
        answer.contains("merged") && answer.contains("no version"),
        "{answer}"
    );
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_answered_422_is_a_refusal_not_a_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = Server::default();
    *server.entry_status.lock().unwrap() = Some("422 Unprocessable Entity");
    let url = fhir_server(server.clone()).await;
    let configs = [config(&format!(
        "name = \"fhir\"\ntype = \"fhir\"\nurl = \"{url}\"\non_nak = \"error\""
    ))];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    let id = ingest(&store, &router, message("E1", "P1"), None).await;
    delivery.wake("lab");
    wait_for("errored", Duration::from_secs(10), || {
        count_in(&store, EntryState::Errored) == 1
    })
    .await;
    let entry = &entries(&store, id)[0];
    let reason = entry.state_reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("422") && reason.contains("entry"),
        "{entry:?}"
    );
    assert_eq!(count_in(&store, EntryState::Delivered), 0);
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_answered_503_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = Server::default();
    *server.entry_status.lock().unwrap() = Some("503 Service Unavailable");
    let url = fhir_server(server.clone()).await;
    let (delivery, router) = start(&store, &[fhir_config(&url)], dir.path()).await;
    let id = ingest(&store, &router, message("E2", "P2"), None).await;
    delivery.wake("lab");
    wait_for("two tries", Duration::from_secs(10), || {
        server.tried.lock().unwrap().len() >= 2
    })
    .await;
    assert_eq!(count_in(&store, EntryState::Delivered), 0);
    *server.entry_status.lock().unwrap() = None;
    wait_for("delivered", Duration::from_secs(10), || {
        count_in(&store, EntryState::Delivered) == 1
    })
    .await;
    let entry = &entries(&store, id)[0];
    assert!(entry.attempts >= 3, "{entry:?}");
    assert!(
        entry
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("503"),
        "{entry:?}"
    );
    delivery.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_answered_500_holds_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let server = Server::default();
    *server.failing_reads.lock().unwrap() = Some(500);
    let url = fhir_server(server.clone()).await;
    let (delivery, router) = start(&store, &[fhir_config(&url)], dir.path()).await;
    let first = ingest(&store, &router, message("H1", "P1"), None).await;
    let second = ingest(&store, &router, message("H2", "P2"), None).await;
    delivery.wake("lab");
    wait_for("three reads", Duration::from_secs(20), || {
        server.reads.lock().unwrap().len() >= 3
    })
    .await;
    // Nothing was written, the first message is retried and the second waits behind it.
    assert!(server.bundles.lock().unwrap().is_empty());
    assert_eq!(count_in(&store, EntryState::Delivered), 0);
    let held = &entries(&store, first)[0];
    assert!(
        held.last_error
            .as_deref()
            .unwrap_or_default()
            .contains("500"),
        "{held:?}"
    );
    assert_eq!(entries(&store, second)[0].attempts, 0);
    let reads = server.reads.lock().unwrap().clone();
    assert!(reads.iter().all(|r| r == &reads[0]), "{reads:?}");
    *server.failing_reads.lock().unwrap() = None;
    wait_for("both delivered", Duration::from_secs(20), || {
        count_in(&store, EntryState::Delivered) == 2
    })
    .await;
    let bundles = server.bundles.lock().unwrap().clone();
    assert_eq!(
        entry_of(&bundles[0], "Patient")["resource"]["identifier"][0]["value"],
        "P1"
    );
    assert_eq!(
        entry_of(&bundles[1], "Patient")["resource"]["identifier"][0]["value"],
        "P2"
    );
    delivery.shutdown().await;
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
        "`path`: is not a key of a fhir destination (file and sftp destinations take it)"
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
