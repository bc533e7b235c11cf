//! The search and read features FHIR clients rely on, over real HTTP: lenient and
//! strict handling of parameters, `_summary=count`, `_total`, `_sort`, `_lastUpdated`,
//! `_include`/`_revinclude`, chains, `_elements`, `POST _search`, conditional reads
//! and content negotiation.

#[path = "fhir_common/mod.rs"]
mod common;

use common::{A01, OTHER, Repo, entries};
use serde_json::Value;

const ORU: &str = "MSH|^~\\&|LAB|GHH|EHR|GHH|20240105120000+0100||ORU^R01^ORU_R01|ORU-1|P|2.5.1
PID|1||P100^^^GHH^MR||EVERYWOMAN^EVE^E||19800312|F
OBR|1|PLACER1^EHR|FILL1^LAB|24331-1^Lipid panel^LN|||20240105110000+0100
OBX|1|NM|2093-3^Cholesterol^LN||196|mg/dL^^UCUM|<200||||F|||20240105110000+0100
OBX|2|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|12-16||||F|||20240105110000+0100";

/// Seven patients PAGE^P0..P6, born in 1990 + (n * 3 % 7), applied one second apart.
fn seven_patients(repo: &Repo) -> Vec<(String, i32)> {
    (0..7)
        .map(|n| {
            let year = 1990 + (n * 3 % 7);
            let (bundle, _) = repo.apply(&format!(
                "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240103083000+0100||ADT^A04^ADT_A01|P-{n}|P|2.5.1
PID|1||PG{n}^^^GHH^MR||PAGE^P{n}||{year}0101|F"
            ));
            (bundle.patient_id().unwrap().to_owned(), year)
        })
        .collect()
}

fn ids(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["search"]["mode"] == "match")
                .map(|e| e["resource"]["id"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn link(bundle: &Value, relation: &str) -> Option<String> {
    bundle["link"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["relation"] == relation)
        .map(|l| l["url"].as_str().unwrap().to_owned())
}

fn path_of(url: &str) -> String {
    format!("/fhir{}", url.split_once("/fhir").unwrap().1)
}

fn outcome_entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["search"]["mode"] == "outcome")
                .map(|e| e["resource"].clone())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn unknown_parameters_are_ignored_and_named_unless_the_client_is_strict() {
    let repo = Repo::start();
    repo.apply(A01);
    repo.apply(OTHER);
    let page = repo.ok("/fhir/Patient?family=every&shoe-size=42&family:contains=x");
    assert_eq!(page["total"], 2);
    let this = link(&page, "self").unwrap();
    assert!(this.contains("family=every"), "{this}");
    assert!(
        !this.contains("shoe-size") && !this.contains("contains"),
        "{this}"
    );
    let outcomes = outcome_entries(&page);
    assert_eq!(outcomes.len(), 1, "{page}");
    assert_eq!(outcomes[0]["resourceType"], "OperationOutcome");
    let issues = outcomes[0]["issue"].as_array().unwrap();
    assert_eq!(issues.len(), 2);
    assert_eq!(issues[0]["severity"], "warning");
    assert_eq!(issues[0]["location"][0], "http.shoe-size");
    assert_eq!(issues[1]["location"][0], "http.family:contains");

    // fhirpy's count(): `_count=0&_totalMethod=count`.
    let counted = repo.ok("/fhir/Patient?_count=0&_totalMethod=count");
    assert_eq!(counted["total"], 2);
    assert!(ids(&counted).is_empty());

    for query in [
        "shoe-size=42",
        "family:contains=x",
        "_sort=shoe-size",
        "_summary=text",
    ] {
        let body = repo.get_with(
            &format!("/fhir/Patient?{query}"),
            &["Prefer: handling=strict"],
            400,
        );
        let name = query.split('=').next().unwrap();
        assert!(
            body["issue"][0]["diagnostics"]
                .as_str()
                .unwrap()
                .contains(name),
            "{body}"
        );
    }
    // Lenient said out loud is lenient.
    let page = repo.get_with(
        "/fhir/Patient?shoe-size=42",
        &["Prefer: handling=lenient"],
        200,
    );
    assert_eq!(page["total"], 2);
    // A bad value of a known parameter is an error either way.
    repo.get_with("/fhir/Patient?birthdate=yesterday", &[], 400);
}

#[test]
fn summary_count_and_total_control_the_count() {
    let repo = Repo::start();
    seven_patients(&repo);
    let counted = repo.ok("/fhir/Patient?family=page&_summary=count");
    assert_eq!(counted["total"], 7);
    assert!(counted.get("entry").is_none(), "{counted}");
    assert!(link(&counted, "next").is_none());

    let page = repo.ok("/fhir/Patient?family=page&_total=none&_count=3");
    assert!(page.get("total").is_none(), "{page}");
    assert_eq!(ids(&page).len(), 3);
    assert!(link(&page, "next").is_some());
    let last = repo.ok("/fhir/Patient?family=page&_total=none&_count=3&_offset=6");
    assert_eq!(ids(&last).len(), 1);
    assert!(link(&last, "next").is_none());
    assert_eq!(repo.ok("/fhir/Patient?_total=accurate")["total"], 7);
    repo.get_with("/fhir/Patient?_total=lots", &[], 400);
}

#[test]
fn sort_orders_by_indexed_values_and_paging_follows_it() {
    let repo = Repo::start();
    let patients = seven_patients(&repo);
    let mut by_birth = patients.clone();
    by_birth.sort_by_key(|(_, year)| *year);
    let oldest_first: Vec<String> = by_birth.iter().map(|(id, _)| id.clone()).collect();
    let page = repo.ok("/fhir/Patient?_sort=birthdate");
    assert_eq!(ids(&page), oldest_first);
    let mut youngest_first = oldest_first.clone();
    youngest_first.reverse();
    assert_eq!(
        ids(&repo.ok("/fhir/Patient?_sort=-birthdate")),
        youngest_first
    );

    // Applied one second apart, so _lastUpdated is the order they came in.
    let arrival: Vec<String> = patients.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids(&repo.ok("/fhir/Patient?_sort=_lastUpdated")), arrival);
    let mut latest = arrival.clone();
    latest.reverse();
    assert_eq!(ids(&repo.ok("/fhir/Patient?_sort=-_lastUpdated")), latest);
    // given P0..P6 sorts like arrival; the family name is the same for all.
    assert_eq!(ids(&repo.ok("/fhir/Patient?_sort=family,-given")), latest);

    // Walking the pages of a sorted search sees each match once, in order.
    let mut seen = Vec::new();
    let mut next = Some("/fhir/Patient?_sort=-birthdate&_count=3".to_owned());
    while let Some(path) = next {
        let page = repo.ok(&path);
        seen.extend(ids(&page));
        next = link(&page, "next").map(|u| path_of(&u));
        if let Some(n) = &next {
            assert!(n.contains("_sort=-birthdate"), "{n}");
        }
    }
    assert_eq!(seen, youngest_first);
}

#[test]
fn last_updated_searches_each_resources_current_version() {
    let repo = Repo::start();
    let patients = seven_patients(&repo);
    // The test store receives message n at 2026-01-01T12:00:0nZ.
    let total = |q: &str| repo.ok(&format!("/fhir/Patient?{q}"))["total"].clone();
    assert_eq!(total("_lastUpdated=ge2026-01-01T12:00:04Z"), 4);
    assert_eq!(total("_lastUpdated=lt2026-01-01T12:00:04Z"), 3);
    assert_eq!(total("_lastUpdated=2026-01-01"), 7);
    assert_eq!(total("_lastUpdated=2025"), 0);
    let read = repo.ok(&format!("/fhir/Patient/{}", patients[2].0));
    assert_eq!(read["meta"]["lastUpdated"], "2026-01-01T12:00:03.000Z");
    assert_eq!(total("_lastUpdated=2026-01-01T12:00:03Z"), 1);
    // An update moves it.
    repo.apply(
        "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240103083000+0100||ADT^A08^ADT_A01|P-2b|P|2.5.1
PID|1||PG2^^^GHH^MR||PAGE^P2^X||19960101|F",
    );
    assert_eq!(total("_lastUpdated=2026-01-01T12:00:03Z"), 0);
    assert_eq!(total("_lastUpdated=2026-01-01T12:00:08Z"), 1);
}

#[test]
fn reads_answer_conditional_requests() {
    let repo = Repo::start();
    let (bundle, _) = repo.apply(A01);
    let patient = bundle.patient_id().unwrap().to_owned();
    let path = format!("/fhir/Patient/{patient}");
    let (status, head, _) = repo.send("GET", &path, &[], "");
    assert_eq!(status, 200);
    assert!(head.contains("etag: w/\"1\""), "{head}");
    assert!(
        head.contains("last-modified: thu, 01 jan 2026 12:00:01 gmt"),
        "{head}"
    );
    for tag in ["W/\"1\"", "\"1\"", "1", "*", "W/\"7\", W/\"1\""] {
        let (status, head, body) = repo.send("GET", &path, &[&format!("If-None-Match: {tag}")], "");
        assert_eq!(status, 304, "{tag}");
        assert!(body.is_empty());
        assert!(head.contains("etag: w/\"1\""), "{head}");
    }
    let (status, _, _) = repo.send("GET", &path, &["If-None-Match: W/\"2\""], "");
    assert_eq!(status, 200);
    let (status, _, _) = repo.send(
        "GET",
        &path,
        &["If-Modified-Since: Thu, 01 Jan 2026 12:00:01 GMT"],
        "",
    );
    assert_eq!(status, 304);
    let (status, _, _) = repo.send(
        "GET",
        &path,
        &["If-Modified-Since: Thu, 01 Jan 2026 12:00:00 GMT"],
        "",
    );
    assert_eq!(status, 200);
    // A newer version makes the old tag stale.
    repo.apply(&A01.replace("EVE^E", "EVELYN^E"));
    let (status, head, _) = repo.send("GET", &path, &["If-None-Match: W/\"1\""], "");
    assert_eq!(status, 200);
    assert!(head.contains("etag: w/\"2\""), "{head}");
    let (status, _, _) = repo.send(
        "GET",
        &format!("{path}/_history/1"),
        &["If-None-Match: W/\"1\""],
        "",
    );
    assert_eq!(status, 304);
}

#[test]
fn xml_is_not_acceptable() {
    let repo = Repo::start();
    let (bundle, _) = repo.apply(A01);
    let patient = bundle.patient_id().unwrap().to_owned();
    let path = format!("/fhir/Patient/{patient}");
    for accept in [
        "application/fhir+xml",
        "application/xml, text/xml",
        "text/turtle",
    ] {
        let body = repo.get_with(&path, &[&format!("Accept: {accept}")], 406);
        assert_eq!(body["resourceType"], "OperationOutcome");
    }
    let body = repo.get_with(&format!("{path}?_format=xml"), &[], 406);
    assert_eq!(body["issue"][0]["code"], "not-supported");
    repo.get_with("/fhir/metadata?_format=application/fhir%2Bxml", &[], 406);
    for accept in [
        "application/fhir+json",
        "application/json",
        "application/fhir+xml;q=1.0, application/fhir+json;q=0.9",
        "text/html,application/xhtml+xml,*/*;q=0.8",
    ] {
        repo.get_with(&path, &[&format!("Accept: {accept}")], 200);
    }
    // _format wins over Accept.
    repo.get_with(
        &format!("{path}?_format=json"),
        &["Accept: application/fhir+xml"],
        200,
    );
}

#[test]
fn post_search_takes_a_form_body() {
    let repo = Repo::start();
    repo.apply(ORU);
    let (status, head, body) = repo.send(
        "POST",
        "/fhir/Observation/_search?_count=5",
        &["Content-Type: application/x-www-form-urlencoded"],
        "code=http%3A%2F%2Floinc.org%7C718-7&shoe=1",
    );
    assert_eq!(status, 200, "{body}");
    assert!(head.contains("application/fhir+json"));
    let page: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(page["total"], 1);
    let this = link(&page, "self").unwrap();
    assert!(
        this.contains("code=http:%2F%2Floinc.org%7C718-7") && this.contains("_count=5"),
        "{this}"
    );
    assert_eq!(outcome_entries(&page).len(), 1);
    let (status, _, _) = repo.send(
        "POST",
        "/fhir/Observation/_search",
        &["Content-Type: application/json"],
        "{\"code\": \"718-7\"}",
    );
    assert_eq!(status, 415);
}

#[test]
fn include_and_revinclude_add_entries_in_include_mode() {
    let repo = Repo::start();
    repo.apply(A01);
    let (bundle, _) = repo.apply(ORU);
    repo.apply(OTHER);
    let patient = bundle.patient_id().unwrap().to_owned();
    let page = repo.ok("/fhir/Observation?code=718-7&_include=Observation:patient");
    let all = page["entry"].as_array().unwrap();
    assert_eq!(page["total"], 1, "the total counts matches only");
    assert_eq!(all.len(), 2, "{page}");
    assert_eq!(all[1]["search"]["mode"], "include");
    assert_eq!(all[1]["resource"]["resourceType"], "Patient");
    assert_eq!(all[1]["resource"]["id"], patient);
    // Both Observations name the same Patient: it is included once.
    let page = repo.ok("/fhir/Observation?_include=Observation:subject:Patient");
    assert_eq!(
        entries(&page)
            .iter()
            .filter(|r| r["resourceType"] == "Patient")
            .count(),
        1
    );

    let page = repo
        .ok("/fhir/Patient?_revinclude=Observation:patient&_revinclude=DiagnosticReport:patient");
    let included: Vec<Value> = page["entry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["search"]["mode"] == "include")
        .map(|e| e["resource"].clone())
        .collect();
    assert_eq!(page["total"], 2);
    assert_eq!(
        included
            .iter()
            .filter(|r| r["resourceType"] == "Observation")
            .count(),
        2
    );
    assert_eq!(
        included
            .iter()
            .filter(|r| r["resourceType"] == "DiagnosticReport")
            .count(),
        1
    );
    assert!(
        included
            .iter()
            .all(|r| r["subject"]["reference"] == format!("Patient/{patient}"))
    );

    // GET [type]/_search is a search too.
    let page = repo.ok(&format!("/fhir/Patient/_search?_id={patient}"));
    assert_eq!(page["total"], 1);

    // An include that does not fit the search is named, not followed.
    let page = repo.ok("/fhir/Patient?_include=Observation:patient");
    assert_eq!(outcome_entries(&page).len(), 1);
    assert!(
        entries(&page)
            .iter()
            .all(|r| r["resourceType"] != "Observation")
    );
}

#[test]
fn revinclude_of_a_survivor_holds_the_merged_patients_resources() {
    let repo = Repo::start();
    let gone = repo
        .apply(&ORU.replace("P100^^^GHH^MR", "GONE^^^GHH^MR"))
        .0
        .patient_id()
        .unwrap()
        .to_owned();
    let keep = repo
        .apply(
            "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240102083000||ADT^A04^ADT_A01|K1|P|2.5.1
PID|1||KEEP^^^GHH^MR||EVERYWOMAN^EVE",
        )
        .0
        .patient_id()
        .unwrap()
        .to_owned();
    let observations = |id: &str| {
        let page = repo.ok(&format!(
            "/fhir/Patient?_id={id}&_revinclude=Observation:patient"
        ));
        entries(&page)
            .iter()
            .filter(|r| r["resourceType"] == "Observation")
            .count()
    };
    assert_eq!(observations(&keep), 0);
    repo.apply(
        "MSH|^~\\&|ADT1|GHH|MPI|GHH|20240106083000||ADT^A40^ADT_A39|M1|P|2.5.1
EVN|A40|20240106083000
PID|1||KEEP^^^GHH^MR||EVERYWOMAN^EVE
MRG|GONE^^^GHH^MR",
    );
    // As Observation?patient= finds them.
    assert_eq!(observations(&keep), 2);
    assert_eq!(
        repo.ok(&format!("/fhir/Observation?patient={keep}"))["total"],
        2
    );
    assert_eq!(observations(&gone), 2);
}

#[test]
fn chained_patient_parameters_find_resources_by_their_patients() {
    let repo = Repo::start();
    repo.apply(A01);
    repo.apply(ORU);
    repo.apply(OTHER);
    // Strict, so a chain that were not understood could not pass by being ignored.
    let total = |q: &str| {
        repo.get_with(
            &format!("/fhir/Observation?{q}"),
            &["Prefer: handling=strict"],
            200,
        )["total"]
            .clone()
    };
    assert_eq!(total("patient.identifier=urn:corridor:id/GHH|P100"), 2);
    assert_eq!(total("patient.family:exact=everywoman"), 2);
    assert_eq!(total("patient.family:exact=every"), 0);
    assert_eq!(total("patient:Patient.family=everywoman&code=718-7"), 1);
    assert_eq!(total("patient:Patient.family=everyman&code=718-7"), 0);
    assert_eq!(total("subject.identifier=P100"), 2);
    assert_eq!(total("patient.identifier=urn:corridor:id/GHH|P200"), 0);
    assert_eq!(total("patient.birthdate=1980-03-12"), 2);
    for chain in [
        "patient.shoe=1",
        "patient:Group.name=x",
        "encounter.status=x",
        "patient.link.x=1",
    ] {
        repo.get_with(
            &format!("/fhir/Observation?{chain}"),
            &["Prefer: handling=strict"],
            400,
        );
    }
    repo.get_with("/fhir/Observation?patient.birthdate=soon", &[], 400);
}

#[test]
fn elements_returns_subsetted_resources() {
    let repo = Repo::start();
    repo.apply(A01);
    let page = repo.ok("/fhir/Patient?_elements=gender,birthDate");
    let patient = &entries(&page)[0];
    assert_eq!(patient["gender"], "female");
    assert_eq!(patient["birthDate"], "1980-03-12");
    assert!(patient.get("name").is_none(), "{patient}");
    assert!(patient.get("id").is_some());
    let tags = patient["meta"]["tag"].as_array().unwrap();
    assert!(tags.iter().any(|t| t["code"] == "SUBSETTED"), "{patient}");
    assert!(
        link(&page, "self")
            .unwrap()
            .contains("_elements=gender%2CbirthDate")
    );
    // The exclusion form is not supported: whole resources and a warning.
    let page = repo.ok("/fhir/Patient?_elements=-name");
    assert_eq!(entries(&page)[0]["name"][0]["family"], "EVERYWOMAN");
    assert_eq!(outcome_entries(&page).len(), 1);
    // What R4 requires stays: an Observation keeps its status and code.
    repo.apply(ORU);
    let page = repo.ok("/fhir/Observation?code=718-7&_elements=valueQuantity");
    let observation = &entries(&page)[0];
    assert_eq!(observation["valueQuantity"]["value"], 13.2);
    assert_eq!(observation["status"], "final");
    assert_eq!(observation["code"]["coding"][0]["code"], "718-7");
    assert!(observation.get("subject").is_none(), "{observation}");
}

#[test]
fn the_capability_statement_names_the_new_parameters() {
    let repo = Repo::start();
    let capability = repo.ok("/fhir/metadata");
    let rest = &capability["rest"][0];
    let names: Vec<&str> = rest["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["_sort", "_count", "_summary", "_total", "_elements"] {
        assert!(names.contains(&name), "{name}");
    }
    let searchable = rest["resource"].as_array().unwrap().iter().filter(|r| {
        r["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["code"] == "search-type")
    });
    for resource in searchable {
        let params = resource["searchParam"].as_array().unwrap();
        assert!(
            params.iter().any(|p| p["name"] == "_lastUpdated"),
            "{resource}"
        );
        assert_eq!(resource["conditionalRead"], "full-support");
        // Every include listed is followed without a warning.
        let ty = resource["type"].as_str().unwrap();
        for (list, key) in [
            ("searchInclude", "_include"),
            ("searchRevInclude", "_revinclude"),
        ] {
            for include in resource[list].as_array().unwrap() {
                let include = include.as_str().unwrap();
                let page = repo.get_with(
                    &format!("/fhir/{ty}?{key}={include}"),
                    &["Prefer: handling=strict"],
                    200,
                );
                assert_eq!(page["resourceType"], "Bundle");
            }
        }
    }
    let observation = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Observation")
        .unwrap();
    assert!(
        observation["searchInclude"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "Observation:patient")
    );
    let patient = rest["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap();
    assert!(
        patient["searchRevInclude"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i == "Observation:patient")
    );
}

#[test]
fn odd_parameters_are_answered_200_or_400_never_500() {
    let repo = Repo::start();
    repo.apply(A01);
    repo.apply(ORU);
    for query in [
        "_sort=-",
        "_sort=,",
        "_sort=--birthdate",
        "_include=:",
        "_include=Observation:",
        "_include=Observation:patient:Patient:x",
        "_revinclude=*",
        "_include:iterate=Observation:patient",
        "patient.=x",
        ".identifier=x",
        "patient..identifier=x",
        "patient:.identifier=x",
        "patient.identifier:Patient.x=1",
        "_elements=",
        "_elements=-",
        "_summary=",
        "_total=",
        "_lastUpdated=ge",
        "_lastUpdated=xx2024",
        "_lastUpdated:missing=true",
        "code=%7C",
        "code=|",
        "_id=",
        "_id:exact=x",
        "patient=Observation/1",
        "_count=-1",
        "_offset=99999999999999999999",
        "_format=",
        "%FF=1",
        "a=%E2%28",
        "_sort=_lastUpdated&_sort=-_id",
    ] {
        for headers in [&[][..], &["Prefer: handling=strict"][..]] {
            let (status, head, body) =
                repo.send("GET", &format!("/fhir/Observation?{query}"), headers, "");
            assert!(
                status == 200 || status == 400,
                "{query} {headers:?}: {status} {body}"
            );
            assert!(head.contains("application/fhir+json"), "{query}: {head}");
            let value: Value = serde_json::from_str(&body).unwrap();
            if status == 400 {
                assert_eq!(value["resourceType"], "OperationOutcome", "{query}");
            }
        }
    }
}
