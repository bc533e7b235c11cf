//! The repository through its FHIR API: real SQLite, real HTTP on a TCP port.

#[path = "fhir_common/mod.rs"]
mod common;

use common::{A01, OTHER, Repo, entries};
use fhir_repo::Outcome;
use serde_json::Value;

const A08: &str = "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240102093000+0100||ADT^A08^ADT_A01|A08-1|P|2.5.1
EVN|A08|20240102093000+0100
PID|1||P100^^^GHH^MR||EVERYWOMAN^EVELYN^E||19800312|F|||9 Oak Ave^^Springfield^IL^62702
PV1|1|I|W2^202^1||||D1^DOCTOR^DAN||||||||||||V100^^^GHH^VN|||||||||||||||||||||||||20240102080000+0100";

const ORU: &str = "MSH|^~\\&|LAB|GHH|EHR|GHH|20240105120000+0100||ORU^R01^ORU_R01|ORU-1|P|2.5.1
PID|1||P100^^^GHH^MR||EVERYWOMAN^EVELYN^E||19800312|F
OBR|1|PLACER1^EHR|FILL1^LAB|24331-1^Lipid panel^LN|||20240105110000+0100
OBX|1|NM|2093-3^Cholesterol^LN||196|mg/dL^^UCUM|<200||||F|||20240105110000+0100
OBX|2|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|12-16||||F|||20240105110000+0100";

#[test]
fn a01_then_a08_updates_the_same_patient_and_encounter() {
    let repo = Repo::start();
    let (first, applied) = repo.apply(A01);
    assert!(
        applied
            .entries
            .iter()
            .all(|e| e.outcome == Outcome::Created)
    );
    let (second, applied) = repo.apply(A08);
    let patient = first.patient_id().unwrap();
    assert_eq!(second.patient_id().unwrap(), patient);
    let encounter = first.of_type("Encounter").next().unwrap().id.clone();
    assert_eq!(second.of_type("Encounter").next().unwrap().id, encounter);
    let outcome_of = |ty: &str| {
        applied
            .entries
            .iter()
            .find(|e| e.resource_type == ty)
            .map(|e| (e.outcome, e.version))
            .unwrap()
    };
    assert_eq!(outcome_of("Patient"), (Outcome::Updated, 2));
    assert_eq!(outcome_of("Encounter"), (Outcome::Updated, 2));

    let current = repo.ok(&format!("/fhir/Patient/{patient}"));
    assert_eq!(current["meta"]["versionId"], "2");
    assert_eq!(current["name"][0]["given"][0], "EVELYN");
    assert!(
        current["meta"]["lastUpdated"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let history = repo.ok(&format!("/fhir/Patient/{patient}/_history"));
    assert_eq!(history["type"], "history");
    assert_eq!(history["total"], 2);
    let versions: Vec<Value> = entries(&history)
        .iter()
        .map(|r| r["meta"]["versionId"].clone())
        .collect();
    assert_eq!(versions, ["2", "1"]);

    // vread of the old version still shows the admit's name and address.
    let old = repo.ok(&format!("/fhir/Patient/{patient}/_history/1"));
    assert_eq!(old["name"][0]["given"][0], "EVE");
    assert_eq!(old["address"][0]["line"][0], "1 Main St");
    let enc_history = repo.ok(&format!("/fhir/Encounter/{encounter}/_history"));
    assert_eq!(enc_history["total"], 2);

    // Still one Patient and one Encounter for this person.
    let found = repo.ok("/fhir/Patient?identifier=urn:corridor:id/GHH|P100");
    assert_eq!(found["total"], 1);
    let found = repo.ok(&format!("/fhir/Encounter?patient={patient}"));
    assert_eq!(found["total"], 1);
}

#[test]
fn the_same_message_twice_adds_nothing() {
    let repo = Repo::start();
    let (bundle, first) = repo.apply(ORU);
    let (_, again) = repo.apply(ORU);
    assert_eq!(again.entries.len(), first.entries.len());
    assert_eq!(again.unchanged(), again.entries.len());
    assert_eq!(again.created() + again.updated(), 0);
    let patient = bundle.patient_id().unwrap();
    let observations = repo.ok(&format!("/fhir/Observation?patient={patient}"));
    assert_eq!(observations["total"], 2);
    for observation in entries(&observations) {
        assert_eq!(observation["meta"]["versionId"], "1");
    }
    let history = repo.ok(&format!("/fhir/Patient/{patient}/_history"));
    assert_eq!(history["total"], 1);
    // The transaction-response names each resource's version.
    let response = again.transaction_response();
    assert_eq!(response["type"], "transaction-response");
    assert_eq!(
        response["entry"].as_array().unwrap().len(),
        bundle.entries().len()
    );
}

#[test]
fn observations_are_found_by_patient_code_date_and_category() {
    let repo = Repo::start();
    repo.apply(A01);
    let (bundle, _) = repo.apply(ORU);
    repo.apply(OTHER);
    let patient = bundle.patient_id().unwrap();
    let total = |query: &str| repo.ok(&format!("/fhir/Observation?{query}"))["total"].clone();
    assert_eq!(total(&format!("patient={patient}")), 2);
    assert_eq!(total(&format!("subject=Patient/{patient}")), 2);
    assert_eq!(total("code=http://loinc.org|718-7"), 1);
    assert_eq!(total("code=718-7"), 1);
    assert_eq!(
        total("code=http://loinc.org|718-7,http://loinc.org|2093-3"),
        2
    );
    assert_eq!(total("code=http://snomed.info/sct|718-7"), 0);
    assert_eq!(
        total(&format!("patient={patient}&code=http://loinc.org|2093-3")),
        1
    );
    assert_eq!(total("date=2024-01-05"), 2);
    assert_eq!(total("date=ge2024-01-05T10:00:00Z"), 2);
    assert_eq!(total("date=gt2024-01-05"), 0);
    assert_eq!(total("date=lt2024-01-05"), 0);
    assert_eq!(total("date=le2024-01"), 2);
    assert_eq!(total("date=2024-01-04"), 0);
    let other = common::convert(OTHER).patient_id().unwrap().to_owned();
    assert_eq!(total(&format!("patient={other}")), 0);

    assert_eq!(
        total("category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
        2
    );
    assert_eq!(total("category=laboratory"), 2);
    assert_eq!(total("category=http://example.org|nothing"), 0);

    // The report that groups them is found by patient too.
    let reports = repo.ok(&format!("/fhir/DiagnosticReport?patient={patient}"));
    assert_eq!(reports["total"], 1);
}

#[test]
fn patients_are_found_by_identifier_name_and_birthdate() {
    let repo = Repo::start();
    repo.apply(A01);
    repo.apply(OTHER);
    let total = |query: &str| repo.ok(&format!("/fhir/Patient?{query}"))["total"].clone();
    assert_eq!(total("identifier=urn:corridor:id/GHH|P100"), 1);
    assert_eq!(total("identifier=P200"), 1);
    assert_eq!(total("identifier=urn:corridor:id/OTHER|P100"), 0);
    assert_eq!(total("identifier=urn:corridor:id/GHH|"), 2);
    assert_eq!(total("family=every"), 2);
    assert_eq!(total("family=everywoman"), 1);
    assert_eq!(total("family:exact=every"), 0);
    assert_eq!(total("name=adam"), 1);
    assert_eq!(total("given=EVE"), 1);
    assert_eq!(total("birthdate=1980-03-12"), 1);
    assert_eq!(total("birthdate=1980"), 1);
    assert_eq!(total("birthdate=ge1970-01-01"), 1);
    assert_eq!(total("birthdate=le1970-01-01"), 1);
    assert_eq!(total("birthdate=lt1955-11-05"), 0);
    assert_eq!(total("birthdate=gt1955-11-05"), 1);
    assert_eq!(total("birthdate=eq1955-11-05"), 1);
    assert_eq!(total("gender=male"), 1);
    let id = common::convert(OTHER).patient_id().unwrap().to_owned();
    assert_eq!(total(&format!("_id={id}")), 1);
}

#[test]
fn paging_links_walk_every_match_once() {
    let repo = Repo::start();
    for n in 0..7 {
        repo.apply(&format!(
            "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240103083000+0100||ADT^A04^ADT_A01|P-{n}|P|2.5.1
PID|1||PG{n}^^^GHH^MR||PAGE^P{n}||19900101|F"
        ));
    }
    let mut seen = Vec::new();
    let mut next = Some(format!(
        "http://{}/fhir/Patient?family=page&_count=3",
        repo.addr
    ));
    while let Some(url) = next {
        let path = url
            .split_once("/fhir")
            .map(|(_, p)| format!("/fhir{p}"))
            .unwrap();
        let page = repo.ok(&path);
        assert_eq!(page["total"], 7);
        for resource in entries(&page) {
            seen.push(resource["id"].as_str().unwrap().to_owned());
        }
        next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
    }
    assert_eq!(seen.len(), 7);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 7);
}

#[test]
fn everything_returns_the_patients_resources() {
    let repo = Repo::start();
    repo.apply(A01);
    let (bundle, _) = repo.apply(ORU);
    repo.apply(OTHER);
    let patient = bundle.patient_id().unwrap();
    let everything = repo.ok(&format!("/fhir/Patient/{patient}/$everything"));
    assert_eq!(everything["type"], "searchset");
    let resources = entries(&everything);
    assert_eq!(resources[0]["resourceType"], "Patient");
    assert_eq!(resources[0]["id"], patient);
    let count = |ty: &str| resources.iter().filter(|r| r["resourceType"] == ty).count();
    assert_eq!(count("Patient"), 1);
    assert_eq!(count("Encounter"), 1);
    assert_eq!(count("Observation"), 2);
    assert_eq!(count("DiagnosticReport"), 1);
    assert_eq!(everything["total"], resources.len());
    // Nothing of the other patient.
    let other = common::convert(OTHER).patient_id().unwrap().to_owned();
    assert!(
        resources
            .iter()
            .all(|r| r["subject"]["reference"] != format!("Patient/{other}"))
    );
}

#[test]
fn a40_merge_marks_the_merged_patient_and_the_survivor_reaches_its_resources() {
    let repo = Repo::start();
    // Results for the patient that will be merged away.
    let gone_result = ORU.replace("P100^^^GHH^MR", "GONE2^^^GHH^MR");
    let (gone_bundle, _) = repo.apply(&gone_result);
    let gone = gone_bundle.patient_id().unwrap().to_owned();
    let (keep_bundle, _) = repo.apply(
        "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240102083000||ADT^A04^ADT_A01|K1|P|2.5.1
PID|1||KEEP1^^^GHH^MR||EVERYWOMAN^EVE",
    );
    let keep = keep_bundle.patient_id().unwrap().to_owned();
    assert_eq!(
        repo.ok(&format!("/fhir/Observation?patient={keep}"))["total"],
        0
    );

    repo.apply(
        "MSH|^~\\&|ADT1|GHH|MPI|GHH|20240106083000||ADT^A40^ADT_A39|MSG9|P|2.5.1
EVN|A40|20240106083000
PID|1||KEEP1^^^GHH^MR||EVERYWOMAN^EVE
MRG|GONE2^^^GHH^MR",
    );
    let merged = repo.ok(&format!("/fhir/Patient/{gone}"));
    assert_eq!(merged["active"], false);
    let link = &merged["link"][0];
    assert_eq!(link["type"], "replaced-by");
    assert_eq!(link["other"]["reference"], format!("Patient/{keep}"));
    assert_eq!(merged["meta"]["versionId"], "2");

    // The survivor's compartment now holds the merged patient's results.
    assert_eq!(
        repo.ok(&format!("/fhir/Observation?patient={keep}"))["total"],
        2
    );
    let everything = entries(&repo.ok(&format!("/fhir/Patient/{keep}/$everything")));
    assert_eq!(everything[0]["id"], keep);
    assert_eq!(
        everything
            .iter()
            .filter(|r| r["resourceType"] == "Observation")
            .count(),
        2
    );
    assert!(
        everything
            .iter()
            .any(|r| r["resourceType"] == "Patient" && r["id"] == gone)
    );
    // The merged patient's own compartment still holds them too.
    assert_eq!(
        repo.ok(&format!("/fhir/Observation?patient={gone}"))["total"],
        2
    );
}

#[test]
fn a37_after_an_a40_unlinks_the_two_patients() {
    let repo = Repo::start();
    let gone_result = ORU.replace("P100^^^GHH^MR", "GONE3^^^GHH^MR");
    let gone = repo.apply(&gone_result).0.patient_id().unwrap().to_owned();
    let keep = repo
        .apply(
            "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240102083000||ADT^A04^ADT_A01|K2|P|2.5.1
PID|1||KEEP3^^^GHH^MR||EVERYWOMAN^EVE",
        )
        .0
        .patient_id()
        .unwrap()
        .to_owned();
    repo.apply(
        "MSH|^~\\&|ADT1|GHH|MPI|GHH|20240106083000||ADT^A40^ADT_A39|MSG11|P|2.5.1
EVN|A40|20240106083000
PID|1||KEEP3^^^GHH^MR||EVERYWOMAN^EVE
MRG|GONE3^^^GHH^MR",
    );
    assert_eq!(
        repo.ok(&format!("/fhir/Observation?patient={keep}"))["total"],
        2
    );

    let (unlink, _) = repo.apply(
        "MSH|^~\\&|ADT1|GHH|MPI|GHH|20240107083000||ADT^A37^ADT_A37|MSG12|P|2.5.1
EVN|A37|20240107083000
PID|1||KEEP3^^^GHH^MR||EVERYWOMAN^EVE
PV1|1|I
PID|1||GONE3^^^GHH^MR||EVERYWOMAN^EVE
PV1|1|I",
    );
    assert_eq!(unlink.patient_id(), Some(keep.as_str()));
    for id in [&keep, &gone] {
        let patient = repo.ok(&format!("/fhir/Patient/{id}"));
        assert_eq!(patient["active"], true, "{patient}");
        assert!(patient.get("link").is_none(), "{patient}");
    }
    assert_eq!(
        repo.ok(&format!("/fhir/Patient/{gone}"))["meta"]["versionId"],
        "3"
    );
    // Each compartment holds its own resources again.
    assert_eq!(
        repo.ok(&format!("/fhir/Observation?patient={keep}"))["total"],
        0
    );
    assert_eq!(
        repo.ok(&format!("/fhir/Observation?patient={gone}"))["total"],
        2
    );
    let everything = entries(&repo.ok(&format!("/fhir/Patient/{keep}/$everything")));
    assert!(everything.iter().all(|r| r["id"] != gone.as_str()));
}

#[test]
fn errors_are_operation_outcomes() {
    let repo = Repo::start();
    repo.apply(A01);
    let (status, content_type, body) = repo.get("/fhir/Patient/no-such-id");
    assert_eq!(status, 404);
    assert!(content_type.starts_with("application/fhir+json"));
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert_eq!(body["issue"][0]["code"], "not-found");

    // An unknown parameter is an error when the client asks for strict handling.
    let body = repo.get_with(
        "/fhir/Patient?shoe-size=42",
        &["Prefer: handling=strict"],
        400,
    );
    assert_eq!(body["resourceType"], "OperationOutcome");
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("shoe-size")
    );

    let (status, _, body) = repo.get("/fhir/Patient?birthdate=yesterday");
    assert_eq!(status, 400);
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("birthdate")
    );

    let (status, _, body) = repo.get("/fhir/Patient?birthdate=sa2020");
    assert_eq!(status, 400);
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("sa")
    );

    let body = repo.get_with(
        "/fhir/Patient?family:contains=x",
        &["Prefer: handling=strict"],
        400,
    );
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("family:contains")
    );

    let (status, _, body) = repo.get("/fhir/Patient?_count=many");
    assert_eq!(status, 400);
    assert!(
        body["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("_count")
    );

    let (status, _, _) = repo.get("/fhir/Frobnicator?x=1");
    assert_eq!(status, 404);
    let patient = common::convert(A01).patient_id().unwrap().to_owned();
    let (status, _, body) = repo.get(&format!("/fhir/Patient/{patient}/_history/9"));
    assert_eq!(status, 404);
    assert_eq!(body["resourceType"], "OperationOutcome");
}

#[test]
fn metadata_lists_what_is_supported() {
    let repo = Repo::start();
    let capability = repo.ok("/fhir/metadata");
    assert_eq!(capability["resourceType"], "CapabilityStatement");
    assert_eq!(capability["fhirVersion"], "4.0.1");
    let resources = capability["rest"][0]["resource"].as_array().unwrap();
    let types: Vec<&str> = resources
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for ty in [
        "Patient",
        "Encounter",
        "Observation",
        "DiagnosticReport",
        "AllergyIntolerance",
        "MedicationRequest",
        "Immunization",
        "Condition",
        "ServiceRequest",
        "DocumentReference",
    ] {
        assert!(types.contains(&ty), "{ty} missing");
    }
    // Every parameter listed is used by search (strict handling refuses any other).
    let searchable = resources.iter().filter(|r| {
        r["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["code"] == "search-type")
    });
    for resource in searchable {
        let ty = resource["type"].as_str().unwrap();
        for param in resource["searchParam"].as_array().unwrap() {
            let name = param["name"].as_str().unwrap();
            let value = match param["type"].as_str().unwrap() {
                "date" => "2024",
                _ => "x",
            };
            let page = repo.get_with(
                &format!("/fhir/{ty}?{name}={value}"),
                &["Prefer: handling=strict"],
                200,
            );
            let this = page["link"][0]["url"].as_str().unwrap();
            assert!(this.contains(&format!("{name}=")), "{ty}?{name}: {this}");
        }
        let body = repo.get_with(
            &format!("/fhir/{ty}?not-listed=x"),
            &["Prefer: handling=strict"],
            400,
        );
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
    // So is every result parameter listed for all types.
    for param in capability["rest"][0]["searchParam"].as_array().unwrap() {
        let query = match param["name"].as_str().unwrap() {
            "_sort" => "_sort=-_lastUpdated",
            "_count" => "_count=2",
            "_offset" => "_offset=1",
            "_summary" => "_summary=count",
            "_total" => "_total=none",
            "_elements" => "_elements=gender",
            other => panic!("{other} is listed but not checked here"),
        };
        repo.get_with(
            &format!("/fhir/Patient?{query}"),
            &["Prefer: handling=strict"],
            200,
        );
    }
    let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
    assert_eq!(patient["operation"][0]["name"], "everything");
}
