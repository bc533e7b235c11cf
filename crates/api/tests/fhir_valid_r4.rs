//! Every resource the API returns is valid FHIR R4: the corpus's messages go into the
//! repository, and each patient's `$everything`, history and search Bundles, with the
//! CapabilityStatement, pass the R4B models of fhir.resources.

#[path = "fhir_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::Repo;
use hl7v2::{Message, StreamItem, split_stream};
use v2_fhir::Converter;

/// Every message of the public corpus that converts, applied to the repository: the
/// patients' ids, and for each resource type stored the id of one resource of it.
fn load_corpus(repo: &Repo) -> (Vec<String>, BTreeMap<&'static str, String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let mut patients = Vec::new();
    let mut types = BTreeMap::new();
    for line in manifest.lines().skip(1) {
        let file = line.split('\t').next().unwrap();
        let lower = file.to_ascii_lowercase();
        if lower.contains("malformed")
            || lower.contains("invalid")
            || lower.contains("bad")
            || lower.contains("error")
        {
            continue;
        }
        let Ok(bytes) = std::fs::read(root.join(file)) else {
            continue;
        };
        for item in split_stream(&bytes) {
            let StreamItem::Message { bytes: raw, .. } = item else {
                continue;
            };
            let Ok(message) = Message::parse(raw) else {
                continue;
            };
            if !Converter::supports(&message) {
                continue;
            }
            let Ok(bundle) = Converter::new(v2_fhir::Options::default()).convert(&message) else {
                continue;
            };
            if let Some(p) = bundle.patient_id() {
                patients.push(p.to_owned());
            }
            for e in bundle.entries() {
                types.entry(e.resource_type).or_insert_with(|| e.id.clone());
            }
            let n = patients.len() as i64;
            repo.store
                .write_blocking(move |conn| {
                    fhir_repo::apply_bundle_in(
                        conn,
                        &bundle,
                        store::MessageId(n),
                        store::UnixMicros(1_767_268_800_000_000 + n),
                    )
                })
                .unwrap();
        }
    }
    patients.sort();
    patients.dedup();
    (patients, types)
}

#[test]
fn corpus_everything_bundles_are_valid_r4() {
    let repo = Repo::start();
    let (patients, types) = load_corpus(&repo);
    assert!(
        patients.len() >= 40,
        "only {} patients from the corpus",
        patients.len()
    );
    assert!(
        types.contains_key("Observation") && types.contains_key("Immunization"),
        "{types:?}"
    );

    let mut bundles = Vec::new();
    for patient in &patients {
        let everything = repo.ok(&format!("/fhir/Patient/{patient}/$everything"));
        assert!(everything["total"].as_u64().unwrap() >= 1);
        bundles.push((format!("$everything {patient}"), everything.to_string()));
        let history = repo.ok(&format!("/fhir/Patient/{patient}/_history"));
        bundles.push((format!("history {patient}"), history.to_string()));
    }
    for query in [
        "Observation?_count=200",
        "Immunization?_count=200",
        "DiagnosticReport?_count=200",
        "ServiceRequest?_count=200",
        "Encounter?_count=200",
        "Patient?_count=5",
        // Includes, an outcome entry for the ignored parameter, subsetted resources.
        "Observation?_count=20&_include=Observation:patient&_include=Observation:encounter&shoe-size=1",
        "Patient?_count=5&_revinclude=Observation:patient&_sort=-_lastUpdated",
        "Observation?_count=20&_elements=valueQuantity",
        "Immunization?_count=20&_elements=lotNumber",
        "Encounter?_count=20&_elements=period",
        "Patient?_summary=count",
    ] {
        let page = repo.ok(&format!("/fhir/{query}"));
        bundles.push((query.to_owned(), page.to_string()));
    }
    let capability = repo.ok("/fhir/metadata");
    let wrapped = serde_json::json!({
        "resourceType": "Bundle", "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:7d1e6c1a-0000-4000-8000-000000000001", "resource": capability}],
    });
    bundles.push(("metadata".to_owned(), wrapped.to_string()));
    test_support::fhir::assert_valid_r4(&bundles);
}

/// The CapabilityStatement says exactly what is served: every resource type the corpus
/// stores is listed, each interaction listed for it answers, search answers exactly
/// for the types listed with `search-type`, and nothing the API refuses (writes, the
/// terminology when it does not run) is listed.
#[test]
fn the_capability_statement_lists_exactly_what_is_served() {
    let repo = Repo::start();
    let (_, stored) = load_corpus(&repo);
    assert!(stored.len() >= 15, "{stored:?}");
    let capability = repo.ok("/fhir/metadata");
    let listed: BTreeMap<&str, Vec<&str>> = capability["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let codes = r["interaction"]
                .as_array()
                .map(|i| i.iter().filter_map(|i| i["code"].as_str()).collect())
                .unwrap_or_default();
            (r["type"].as_str().unwrap(), codes)
        })
        .collect();
    for codes in listed.values() {
        for code in codes {
            assert!(
                ["read", "vread", "history-instance", "search-type"].contains(code),
                "{code} is listed but not served"
            );
        }
    }
    assert!(!listed.contains_key("ConceptMap"), "{listed:?}");
    for (ty, id) in &stored {
        let codes = listed
            .get(ty)
            .unwrap_or_else(|| panic!("{ty} is stored but not in the CapabilityStatement"));
        for (code, path) in [
            ("read", format!("/fhir/{ty}/{id}")),
            ("vread", format!("/fhir/{ty}/{id}/_history/1")),
            ("history-instance", format!("/fhir/{ty}/{id}/_history")),
        ] {
            assert!(codes.contains(&code), "{ty}: {code} not listed");
            let (status, _, body) = repo.get(&path);
            assert_eq!(status, 200, "{path}: {body}");
        }
        let (status, _, body) = repo.get(&format!("/fhir/{ty}?_count=1"));
        assert_eq!(
            status == 200,
            codes.contains(&"search-type"),
            "{ty}: search answered {status} {body}"
        );
        let (status, _, _) = repo.send(
            "PUT",
            &format!("/fhir/{ty}/{id}"),
            &["Content-Type: application/fhir+json"],
            "{}",
        );
        assert_eq!(status, 405, "{ty}: a write is not listed, so not served");
    }
}
