//! CDS Hooks on a real repository: discovery, order-select and order-sign requests shaped
//! like the specification's examples (cds-hooks.hl7.org, the order-select hook: a
//! `draftOrders` Bundle of a NutritionOrder and a MedicationRequest for amoxicillin with
//! clavulanate, RxNorm 617993, `selections` naming them), answered with cards for the
//! allergy and duplicate-test rules; malformed requests get 400 naming what is wrong.

mod fhir_common;

use fhir_common::Repo;
use serde_json::{Value, json};

/// The patient's ADT with a penicillin allergy, and a full blood count resulted an hour
/// ago (the duplicate-test window for it is 24 hours).
fn record(repo: &Repo) -> String {
    let hour_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        - 3600;
    let dtm = datetime::hl7::format_dtm_utc(hour_ago);
    let (bundle, _) = repo.apply(&format!(
        "MSH|^~\\&|ADT1|GHH|EHR|GHH|{dtm}||ADT^A01^ADT_A01|A01-1|P|2.5.1
EVN|A01|{dtm}
PID|1||P100^^^GHH^MR||EVERYWOMAN^EVE||19800312|F
PV1|1|I
AL1|1|DA|^Penicillin^|SV|hives"
    ));
    let patient = bundle.patient_id().unwrap().to_owned();
    repo.apply(&format!(
        "MSH|^~\\&|LAB|GHH|EHR|GHH|{dtm}||ORU^R01^ORU_R01|ORU-1|P|2.5.1
PID|1||P100^^^GHH^MR||EVERYWOMAN^EVE||19800312|F
OBR|1|PL1|FL1|58410-2^CBC panel^LN|||{dtm}
OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL|||||F|||{dtm}"
    ));
    patient
}

/// An order-select request after the specification's example, for `patient`.
fn order_select(patient: &str) -> Value {
    json!({
        "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
        "fhirServer": "http://hooks.smarthealthit.org:9080",
        "hook": "order-select",
        "context": {
            "userId": "Practitioner/123",
            "patientId": patient,
            "encounterId": "89284",
            "selections": ["NutritionOrder/pureeddiet-NutritionOrder", "MedicationRequest/smart-MedicationRequest-103"],
            "draftOrders": {
                "resourceType": "Bundle",
                "entry": [
                    { "resource": {
                        "resourceType": "NutritionOrder", "id": "pureeddiet-NutritionOrder",
                        "status": "draft", "intent": "order",
                        "patient": { "reference": format!("Patient/{patient}") },
                        "dateTime": "2023-01-01T12:00:00Z",
                        "oralDiet": { "type": [ { "coding": [ { "system": "http://snomed.info/sct", "code": "226211001", "display": "Pureed diet" } ] } ] }
                    } },
                    { "resource": {
                        "resourceType": "MedicationRequest", "id": "smart-MedicationRequest-103",
                        "status": "draft", "intent": "order",
                        "medicationCodeableConcept": {
                            "coding": [ { "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "617993",
                                "display": "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension" } ],
                            "text": "Amoxicillin 120 MG/ML / clavulanate potassium 8.58 MG/ML Oral Suspension"
                        },
                        "subject": { "reference": format!("Patient/{patient}") }
                    } }
                ]
            }
        }
    })
}

fn post(repo: &Repo, service: &str, body: &str) -> (u16, Value) {
    let (status, _, text) = repo.send(
        "POST",
        &format!("/cds-services/{service}"),
        &["Content-Type: application/json"],
        body,
    );
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    (status, value)
}

#[test]
fn discovery_lists_both_services() {
    let repo = Repo::start();
    let (status, _, services) = repo.get("/cds-services");
    assert_eq!(status, 200);
    let hooks: Vec<(&str, &str)> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["id"].as_str().unwrap(), s["hook"].as_str().unwrap()))
        .collect();
    assert_eq!(
        hooks,
        [
            ("corridor-order-select", "order-select"),
            ("corridor-order-sign", "order-sign")
        ]
    );
    for s in services["services"].as_array().unwrap() {
        assert!(s["description"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

#[test]
fn the_specification_example_gets_an_allergy_card() {
    let repo = Repo::start();
    let patient = record(&repo);
    let (status, answer) = post(
        &repo,
        "corridor-order-select",
        &order_select(&patient).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let cards = answer["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "{answer}");
    assert_eq!(cards[0]["indicator"], "critical", "{answer}");
    assert_eq!(cards[0]["source"]["topic"]["code"], "allergy-medication");
    assert!(cards[0]["summary"].as_str().unwrap().chars().count() <= 140);
    let detail = cards[0]["detail"].as_str().unwrap();
    assert!(detail.contains("Penicillin"), "{detail}");
    assert!(
        detail.contains("MedicationRequest/smart-MedicationRequest-103"),
        "{detail}"
    );

    // Not selected: no card. Another patient (no allergy): no card.
    let mut unselected = order_select(&patient);
    unselected["context"]["selections"] = json!(["NutritionOrder/pureeddiet-NutritionOrder"]);
    let (status, answer) = post(&repo, "corridor-order-select", &unselected.to_string());
    assert_eq!(status, 200);
    assert_eq!(answer["cards"], json!([]), "{answer}");
    let (status, answer) = post(
        &repo,
        "corridor-order-select",
        &order_select("no-such-patient").to_string(),
    );
    assert_eq!(status, 200);
    assert_eq!(answer["cards"], json!([]), "{answer}");
}

/// An order-sign request for a full blood count and a CRP for `patient`.
fn order_sign(patient: &str) -> Value {
    json!({
        "hookInstance": "7a1b5b4e-7f0b-4f7e-9a4e-3c1f0e6f8a21",
        "hook": "order-sign",
        "context": {
            "userId": "PractitionerRole/A2340113",
            "patientId": patient,
            "draftOrders": { "resourceType": "Bundle", "entry": [
                { "resource": { "resourceType": "ServiceRequest", "id": "cbc-1", "status": "draft",
                    "intent": "order", "code": { "coding": [ { "system": "http://loinc.org", "code": "58410-2",
                    "display": "CBC panel - Blood by Automated count" } ] },
                    "subject": { "reference": format!("Patient/{patient}") } } },
                { "resource": { "resourceType": "ServiceRequest", "id": "crp-1", "status": "draft",
                    "intent": "order", "code": { "coding": [ { "system": "http://loinc.org", "code": "1988-5" } ] } } }
            ] }
        }
    })
}

#[test]
fn order_sign_warns_of_a_test_resulted_within_its_interval() {
    let repo = Repo::start();
    let patient = record(&repo);
    let request = order_sign(&patient);
    let (status, answer) = post(&repo, "corridor-order-sign", &request.to_string());
    assert_eq!(status, 200, "{answer}");
    let cards = answer["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "{answer}");
    assert_eq!(cards[0]["indicator"], "info");
    assert_eq!(cards[0]["source"]["topic"]["code"], "duplicate-test");
    assert!(
        cards[0]["summary"].as_str().unwrap().contains("resulted"),
        "{answer}"
    );
}

#[test]
fn malformed_requests_get_400_saying_what_is_wrong() {
    let repo = Repo::start();
    let good = order_select("p1");
    let cases: Vec<(String, &str)> = vec![
        ("not json".to_owned(), "not JSON"),
        ("[]".to_owned(), "JSON object"),
        (
            {
                let mut v = good.clone();
                v["hook"] = json!("patient-view");
                v.to_string()
            },
            "patient-view",
        ),
        (
            {
                let mut v = good.clone();
                v.as_object_mut().unwrap().remove("hookInstance");
                v.to_string()
            },
            "hookInstance",
        ),
        (
            {
                let mut v = good.clone();
                v["context"].as_object_mut().unwrap().remove("patientId");
                v.to_string()
            },
            "context.patientId",
        ),
        (
            {
                let mut v = good.clone();
                v["context"]["draftOrders"] = json!({"resourceType": "Patient"});
                v.to_string()
            },
            "draftOrders",
        ),
        (
            {
                let mut v = good.clone();
                v["context"].as_object_mut().unwrap().remove("selections");
                v.to_string()
            },
            "selections",
        ),
    ];
    for (body, says) in cases {
        let (status, answer) = post(&repo, "corridor-order-select", &body);
        assert_eq!(status, 400, "{body}: {answer}");
        let error = answer["error"].as_str().unwrap_or_default();
        assert!(error.contains(says), "{body}: {answer}");
    }
    let (status, _) = post(&repo, "no-such-service", &good.to_string());
    assert_eq!(status, 404);
}

/// The services answer with the live rules' settings (`[rules]`, given by the engine as
/// `Api::cds_rules`), not the defaults: a shorter retesting interval for the blood count
/// (30 minutes: the one resulted an hour ago no longer counts, though the default 24 h
/// would), a longer one configured for CRP, and the allergy rule turned off.
#[test]
fn the_services_use_the_configured_rules_not_the_defaults() {
    let config = rules::RulesConfig::from_toml(
        r#"
[allergy_medication]
enabled = false
[duplicate_test]
tests = [ { loinc = "58410-2", window = "30m", source = "our laboratory" } ]
"#,
    )
    .unwrap();
    let rules = api::cds_screening_rules(&config).unwrap();
    let repo = Repo::start_with(|api| api::Api {
        cds_rules: Some(std::sync::Arc::new(rules)),
        ..api
    });
    let patient = record(&repo);
    let (status, answer) = post(
        &repo,
        "corridor-order-sign",
        &order_sign(&patient).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["cards"], json!([]), "{answer}");
    let (status, answer) = post(
        &repo,
        "corridor-order-select",
        &order_select(&patient).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["cards"], json!([]), "{answer}");

    // A window longer than the hour: the card is back.
    let config = rules::RulesConfig::from_toml(
        r#"
[duplicate_test]
shipped_tests = false
tests = [ { loinc = "58410-2", window = "2h", source = "our laboratory" } ]
"#,
    )
    .unwrap();
    let rules = api::cds_screening_rules(&config).unwrap();
    let repo = Repo::start_with(|api| api::Api {
        cds_rules: Some(std::sync::Arc::new(rules)),
        ..api
    });
    let patient = record(&repo);
    let (status, answer) = post(
        &repo,
        "corridor-order-sign",
        &order_sign(&patient).to_string(),
    );
    assert_eq!(status, 200, "{answer}");
    let cards = answer["cards"].as_array().unwrap();
    assert_eq!(cards.len(), 1, "{answer}");
    assert_eq!(cards[0]["source"]["topic"]["code"], "duplicate-test");
}
