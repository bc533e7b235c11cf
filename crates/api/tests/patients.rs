//! The patient index's HTTP API over a real socket, on a real store.

use mpi::hl7::action_of;
use mpi::{MpiConfig, MpiService};
use serde_json::{Value, json};
use std::net::SocketAddr;
use store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn feed(service: &MpiService, control: &str, pid: &str) {
    let raw = format!(
        "MSH|^~\\&|ADT|NORTH|CORRIDOR|HUB|20260101120000||ADT^A04^ADT_A01|{control}|P|2.5.1\r{pid}\r"
    );
    let message = hl7v2::Message::parse(raw.as_bytes()).unwrap();
    let action = action_of(&message).unwrap().unwrap();
    let applied = service.apply_message(action, control, "A04");
    let events = applied.events;
    service
        .store()
        .write(move |conn| mpi::persist::append_events_in(conn, &events))
        .wait()
        .unwrap();
    applied.result.unwrap();
}

const SMITH: &str = "PID|1||4711^^^NORTH^MR~123-45-6789^^^SSA^SS||Smith^John^Q^^^^L||19800312|M|||12 High St^^Springfield^IL^62701^USA||555-0100||||||123456789";
const SMITH_LAB: &str = "PID|1||L-77^^^LAB^MR||Smith^Jon||19800312|M|||12 High St^^Springfield^IL^62701||||||||123456789";
const NGUYEN: &str =
    "PID|1||5000^^^NORTH^MR||Nguyen^Anh||19920704|F|||1 Lake Rd^^Portland^OR^97201||555-0199";

struct Api {
    addr: SocketAddr,
}

impl Api {
    async fn start(service: MpiService) -> Api {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let state = api::Api {
                patient_index: Some(service.clone()),
                ..api::Api::new(service.store().clone())
            };
            axum::serve(listener, api::router(state)).await.unwrap()
        });
        Api { addr }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        user: Option<&str>,
        body: &Value,
    ) -> (u16, Value) {
        let body = if body.is_null() {
            Vec::new()
        } else {
            serde_json::to_vec(body).unwrap()
        };
        let mut stream = tokio::net::TcpStream::connect(self.addr).await.unwrap();
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(user) = user {
            request.push_str(&format!("X-Corridor-User: {user}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8(response).unwrap();
        let status: u16 = text[9..12].parse().unwrap();
        let start = text.find("\r\n\r\n").unwrap() + 4;
        let value = serde_json::from_str(&text[start..])
            .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", &text[start..]));
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.call("GET", path, None, &Value::Null).await
    }
}

fn service(dir: &std::path::Path, link_threshold: f64) -> MpiService {
    let config = MpiConfig {
        enabled: true,
        link_threshold,
        ..MpiConfig::default()
    };
    MpiService::open_blocking(Store::open(dir).unwrap(), config).unwrap()
}

fn entries(bundle: &Value) -> Vec<Value> {
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "searchset");
    bundle["entry"].as_array().cloned().unwrap_or_default()
}

fn has_identifier(patient: &Value, system: &str, value: &str) -> bool {
    patient["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["system"] == system && i["value"] == value)
}

#[test]
fn search_match_and_pix() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), 12.0);
    feed(&service, "1", SMITH);
    feed(&service, "2", SMITH_LAB);
    feed(&service, "3", NGUYEN);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let api = Api::start(service).await;

        // PDQm search by demographics.
        let (status, bundle) = api
            .get("/mpi/fhir/Patient?family=smith&birthdate=1980-03-12")
            .await;
        assert_eq!(status, 200, "{bundle}");
        let found = entries(&bundle);
        assert_eq!(found.len(), 1, "one enterprise patient: {bundle}");
        let patient = &found[0]["resource"];
        assert_eq!(patient["resourceType"], "Patient");
        assert_eq!(patient["birthDate"], "1980-03-12");
        assert_eq!(patient["gender"], "male");
        assert!(has_identifier(patient, "urn:corridor:id/NORTH", "4711"));
        assert!(has_identifier(patient, "urn:corridor:id/LAB", "L-77"));
        assert!(has_identifier(patient, "urn:corridor:mpi", patient["id"].as_str().unwrap()));
        // By identifier (system|value), and a filter that excludes.
        let (_, bundle) = api.get("/mpi/fhir/Patient?identifier=SSA|123-45-6789").await;
        assert_eq!(entries(&bundle).len(), 1);
        assert_eq!(entries(&bundle)[0]["resource"]["id"], patient["id"]);
        let (_, bundle) = api
            .get("/mpi/fhir/Patient?identifier=urn:corridor:id/SSA%7C123-45-6789")
            .await;
        assert_eq!(entries(&bundle)[0]["resource"]["id"], patient["id"]);
        let (_, bundle) = api.get("/mpi/fhir/Patient?family=Smith&gender=female").await;
        assert_eq!(entries(&bundle).len(), 0);
        let (_, bundle) = api.get("/mpi/fhir/Patient?given=anh").await;
        assert_eq!(entries(&bundle).len(), 1);
        let (status, _) = api.get("/mpi/fhir/Patient?identifier=4711").await;
        assert_eq!(status, 400, "a bare number is not an identifier");
        let (status, _) = api.get("/mpi/fhir/Patient").await;
        assert_eq!(status, 400);

        // $match: the same person scores certain; a weaker resemblance less.
        let params = |p: Value| {
            json!({ "resourceType": "Parameters", "parameter": [
                { "name": "resource", "resource": p },
                { "name": "count", "valueInteger": 5 } ] })
        };
        let (status, bundle) = api
            .call(
                "POST",
                "/mpi/fhir/Patient/$match",
                None,
                &params(json!({ "resourceType": "Patient",
                    "name": [{ "family": "Smith", "given": ["John"] }],
                    "gender": "male", "birthDate": "1980-03-12",
                    "address": [{ "line": ["12 High St"], "city": "Springfield", "postalCode": "62701" }] })),
            )
            .await;
        assert_eq!(status, 200, "{bundle}");
        let found = entries(&bundle);
        assert!(!found.is_empty());
        assert_eq!(found[0]["resource"]["id"], patient["id"]);
        assert_eq!(found[0]["search"]["mode"], "match");
        let grade_of = |e: &Value| {
            e["search"]["extension"][0]["valueCode"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            found[0]["search"]["extension"][0]["url"],
            "http://hl7.org/fhir/StructureDefinition/match-grade"
        );
        assert_eq!(grade_of(&found[0]), "certain");
        let score = found[0]["search"]["score"].as_f64().unwrap();
        assert!(score > 0.9 && score <= 1.0, "{score}");

        let (_, bundle) = api
            .call(
                "POST",
                "/mpi/fhir/Patient/$match",
                None,
                &params(json!({ "resourceType": "Patient",
                    "name": [{ "family": "Smith", "given": ["John"] }],
                    "address": [{ "postalCode": "62701" }] })),
            )
            .await;
        let weaker = entries(&bundle);
        assert!(!weaker.is_empty(), "{bundle}");
        assert_ne!(grade_of(&weaker[0]), "certain", "{bundle}");
        assert!(weaker[0]["search"]["score"].as_f64().unwrap() < score);

        let (status, _) = api
            .call("POST", "/mpi/fhir/Patient/$match", None, &json!({ "resourceType": "Patient" }))
            .await;
        assert_eq!(status, 400);

        // $ihe-pix: every other identifier of the patient.
        let (status, params) = api
            .get("/mpi/fhir/Patient/$ihe-pix?sourceIdentifier=NORTH|4711")
            .await;
        assert_eq!(status, 200, "{params}");
        assert_eq!(params["resourceType"], "Parameters");
        let targets: Vec<(String, String)> = params["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["name"] == "targetIdentifier")
            .map(|p| {
                (
                    p["valueIdentifier"]["system"].as_str().unwrap().to_string(),
                    p["valueIdentifier"]["value"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        // Systems as the FHIR API shows them (`mpi::identity`).
        let system = |name: &str| format!("urn:corridor:id/{name}");
        assert!(targets.contains(&(system("LAB"), "L-77".into())), "{targets:?}");
        assert!(targets.contains(&(system("SSA"), "123-45-6789".into())));
        assert!(!targets.contains(&(system("NORTH"), "4711".into())), "not the one asked");
        assert!(!targets.iter().any(|t| t.1 == "5000"), "not another patient's");
        let (_, params) = api
            .get("/mpi/fhir/Patient/$ihe-pix?sourceIdentifier=NORTH|4711&targetSystem=LAB")
            .await;
        let names: Vec<&str> = params["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, vec!["targetIdentifier", "targetId"]);
        assert_eq!(params["parameter"][0]["valueIdentifier"]["value"], "L-77");
        // The system the FHIR API shows is asked as it is, in either place.
        let (_, by_system) = api
            .get("/mpi/fhir/Patient/$ihe-pix?sourceIdentifier=urn:corridor:id/NORTH%7C4711&targetSystem=urn:corridor:id/LAB")
            .await;
        assert_eq!(by_system, params);
        let (status, _) = api
            .get("/mpi/fhir/Patient/$ihe-pix?sourceIdentifier=NORTH|0000")
            .await;
        assert_eq!(status, 404);
    });
}

#[test]
fn reviews_accept_and_reject() {
    let dir = tempfile::tempdir().unwrap();
    // A high link threshold: resemblance without an identifier waits for a person.
    let service = service(dir.path(), 40.0);
    feed(&service, "1", SMITH);
    feed(
        &service,
        "2",
        "PID|1||R-1^^^CLINIC^MR||Smith^John||19800312|M|||99 Low Rd^^Shelbyville^IL^62565",
    );
    feed(
        &service,
        "3",
        "PID|1||R-2^^^CLINIC^MR||Smith^John||19800312|M|||7 Other Rd^^Chicago^IL^60601",
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let svc = service.clone();
    runtime.block_on(async {
        let api = Api::start(service).await;
        let (status, list) = api.get("/mpi/reviews").await;
        assert_eq!(status, 200);
        let reviews = list["reviews"].as_array().unwrap().clone();
        assert_eq!(reviews.len(), 2, "{list}");
        let first = reviews[0]["id"].as_u64().unwrap();
        let second = reviews[1]["id"].as_u64().unwrap();
        assert!(!reviews[0]["candidates"].as_array().unwrap().is_empty());
        let best = reviews[0]["candidates"][0]["enterprise_id"]
            .as_str()
            .unwrap()
            .to_string();

        // Who decided is required.
        let (status, _) = api
            .call(
                "POST",
                &format!("/mpi/reviews/{first}/accept"),
                None,
                &json!({}),
            )
            .await;
        assert_eq!(status, 400);
        let (status, event) = api
            .call(
                "POST",
                &format!("/mpi/reviews/{first}/accept"),
                Some("alice"),
                &json!({ "note": "same address and birth date" }),
            )
            .await;
        assert_eq!(status, 200, "{event}");
        assert_eq!(event["kind"], "review_accepted");
        assert_eq!(event["actor"], "person:alice");
        let (status, event) = api
            .call(
                "POST",
                &format!("/mpi/reviews/{second}/reject"),
                Some("bob"),
                &json!({ "user": "mallory", "note": "different person" }),
            )
            .await;
        assert_eq!(status, 200, "{event}");
        assert_eq!(event["actor"], "person:bob");
        let (_, list) = api.get("/mpi/reviews").await;
        assert_eq!(list["reviews"].as_array().unwrap().len(), 0);
        let (status, _) = api
            .call(
                "POST",
                &format!("/mpi/reviews/{first}/accept"),
                Some("alice"),
                &Value::Null,
            )
            .await;
        assert_eq!(status, 404, "a decided review is gone");

        let (_, p) = api.get(&format!("/mpi/patients/{best}")).await;
        let sources: Vec<&str> = p["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert!(sources.contains(&"4711") && sources.contains(&"R-1"), "{p}");
        assert!(!sources.contains(&"R-2"));
        assert!(
            p["history"].as_array().unwrap().iter().any(
                |e| e["kind"] == "review_accepted" && e["why"] == "same address and birth date"
            )
        );
    });
    // Decisions are durable: a restart sees them (once the server, which holds the
    // index and its lock, is gone).
    drop(runtime);
    drop(svc);
    let again = self::service(dir.path(), 40.0);
    again.read(|m| {
        assert_eq!(m.reviews().count(), 0);
        let a = m.enterprise_of(&mpi::SourceKey::new("NORTH", "4711"));
        assert_eq!(a, m.enterprise_of(&mpi::SourceKey::new("CLINIC", "R-1")));
        assert_ne!(a, m.enterprise_of(&mpi::SourceKey::new("CLINIC", "R-2")));
    });
}

#[test]
fn link_unlink_merge_unmerge_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), 12.0);
    feed(&service, "1", SMITH);
    feed(&service, "2", SMITH_LAB);
    feed(&service, "3", NGUYEN);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let api = Api::start(service).await;
        let (_, pix) = api
            .get("/mpi/fhir/Patient/$ihe-pix?sourceIdentifier=NORTH|4711")
            .await;
        let smith = pix["parameter"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "targetId")
            .unwrap()["valueReference"]["reference"]
            .as_str()
            .unwrap()
            .trim_start_matches("Patient/")
            .to_string();
        let (_, pix) = api
            .get("/mpi/fhir/Patient/$ihe-pix?sourceIdentifier=NORTH|5000")
            .await;
        let nguyen = pix["parameter"][pix["parameter"].as_array().unwrap().len() - 1]
            ["valueReference"]["reference"]
            .as_str()
            .unwrap()
            .trim_start_matches("Patient/")
            .to_string();
        assert_ne!(smith, nguyen);

        // Unlink the lab record: a patient of its own.
        let (status, _) = api
            .call("POST", "/mpi/unlink", None, &json!({ "source": "LAB", "id": "L-77" }))
            .await;
        assert_eq!(status, 400, "who is required");
        let (status, ev) = api
            .call(
                "POST",
                "/mpi/unlink",
                Some("carol"),
                &json!({ "source": "LAB", "id": "L-77", "note": "different person" }),
            )
            .await;
        assert_eq!(status, 200, "{ev}");
        assert_eq!(ev["kind"], "unlinked");
        let own = ev["change"]["RecordUnlinked"]["to"].as_u64().unwrap();
        // Link it back.
        let (status, ev) = api
            .call(
                "POST",
                "/mpi/link",
                Some("carol"),
                &json!({ "source": "LAB", "id": "L-77", "enterprise_id": smith, "note": "same after all" }),
            )
            .await;
        assert_eq!(status, 200, "{ev}");
        let (status, _) = api
            .call(
                "POST",
                "/mpi/link",
                Some("carol"),
                &json!({ "source": "LAB", "id": "L-77", "enterprise_id": smith }),
            )
            .await;
        assert_eq!(status, 409, "already linked");
        let (status, _) = api
            .call(
                "POST",
                "/mpi/link",
                Some("carol"),
                &json!({ "source": "LAB", "id": "nope", "enterprise_id": smith }),
            )
            .await;
        assert_eq!(status, 404);

        // Merge Nguyen into Smith, then undo it.
        let (status, ev) = api
            .call(
                "POST",
                "/mpi/merge",
                Some("dave"),
                &json!({ "survivor": smith, "merged": nguyen, "note": "test merge" }),
            )
            .await;
        assert_eq!(status, 200, "{ev}");
        assert_eq!(ev["kind"], "merged");
        let merge_seq = ev["seq"].as_u64().unwrap();
        let (_, p) = api.get(&format!("/mpi/patients/{nguyen}")).await;
        assert_eq!(p["enterprise_id"], smith, "a merged id leads to its survivor");
        assert_eq!(p["sources"].as_array().unwrap().len(), 3);
        let (status, ev) = api
            .call(
                "POST",
                "/mpi/unmerge",
                Some("dave"),
                &json!({ "merge_event": merge_seq, "note": "wrong merge" }),
            )
            .await;
        assert_eq!(status, 200, "{ev}");
        let (status, _) = api
            .call("POST", "/mpi/unmerge", Some("dave"), &json!({ "merge_event": merge_seq }))
            .await;
        assert_eq!(status, 409, "already undone");

        let (status, p) = api.get(&format!("/mpi/patients/{smith}")).await;
        assert_eq!(status, 200);
        assert_eq!(p["enterprise_id"], smith);
        let ids: Vec<&str> = p["sources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&"4711") && ids.contains(&"L-77"));
        assert_eq!(p["golden_record"]["record"]["family"], "Smith");
        let history: Vec<(String, String)> = p["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    e["actor"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        for expected in [
            ("record_added", "matcher"),
            ("unlinked", "person:carol"),
            ("linked", "person:carol"),
            ("merged", "person:dave"),
            ("unmerged", "person:dave"),
        ] {
            assert!(
                history.contains(&(expected.0.to_string(), expected.1.to_string())),
                "{expected:?} in {history:?}"
            );
        }
        let (_, p) = api.get(&format!("/mpi/patients/E{own}")).await;
        assert!(p["history"].as_array().unwrap().iter().any(|e| e["kind"] == "unlinked"));
        let (status, _) = api.get("/mpi/patients/E999").await;
        assert_eq!(status, 404);
        let (status, _) = api.get("/mpi/patients/nonsense").await;
        assert_eq!(status, 400);
    });
}

#[test]
fn the_review_queue_names_the_guard_that_held_a_pair_and_match_is_not_certain() {
    let dir = tempfile::tempdir().unwrap();
    let service = service(dir.path(), 12.0);
    // Twins registered at two hospitals: one family, birth date, address and phone;
    // two given names.
    let twin = |mrn: &str, given: &str| {
        format!(
            "PID|1||{mrn}||Okafor^{given}||20110407|F|||4 Elm Row^^Springfield^IL^62701||555-0142"
        )
    };
    feed(&service, "1", &twin("900^^^NORTH^MR", "Adaeze"));
    feed(&service, "2", &twin("901^^^SOUTH^MR", "Chioma"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let api = Api::start(service).await;
        let (status, list) = api.get("/mpi/reviews").await;
        assert_eq!(status, 200);
        let review = &list["reviews"][0];
        assert_eq!(review["record"]["id"], "901", "{list}");
        assert_eq!(review["guard"]["name"], "possible_twin", "{list}");
        assert!(review["guard"]["why"].as_str().unwrap().contains("twin"));
        assert_eq!(review["candidates"][0]["guard"], "possible_twin");

        // $match scores the twin high but never grades her a certain match.
        let query = json!({
            "resourceType": "Parameters",
            "parameter": [{ "name": "resource", "resource": {
                "resourceType": "Patient",
                "name": [{ "family": "Okafor", "given": ["Ngozi"] }],
                "birthDate": "2011-04-07",
                "gender": "female",
                "address": [{ "line": ["4 Elm Row"], "city": "Springfield", "state": "IL", "postalCode": "62701" }],
                "telecom": [{ "system": "phone", "value": "555-0142" }],
            }}],
        });
        let (status, bundle) = api
            .call("POST", "/mpi/fhir/Patient/$match", None, &query)
            .await;
        assert_eq!(status, 200, "{bundle}");
        let grades: Vec<Value> = entries(&bundle)
            .iter()
            .map(|e| e["search"]["extension"][0]["valueCode"].clone())
            .collect();
        assert!(!grades.is_empty(), "{bundle}");
        assert!(grades.iter().all(|g| g != "certain"), "{bundle}");
    });
}
