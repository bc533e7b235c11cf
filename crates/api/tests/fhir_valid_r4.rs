//! Every resource the API returns is valid FHIR R4: the corpus's messages go into the
//! repository, and each patient's `$everything`, history and search Bundles, with the
//! CapabilityStatement, pass the R4B models of fhir.resources.

#[path = "fhir_common/mod.rs"]
mod common;

use std::path::Path;

use common::Repo;
use hl7v2::{Message, StreamItem, split_stream};
use v2_fhir::Converter;

#[test]
fn corpus_everything_bundles_are_valid_r4() {
    let repo = Repo::start();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv")).unwrap();
    let mut patients = Vec::new();
    let mut types = std::collections::BTreeSet::new();
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
                types.insert(e.resource_type);
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
    assert!(
        patients.len() >= 40,
        "only {} patients from the corpus",
        patients.len()
    );
    assert!(
        types.contains("Observation") && types.contains("Immunization"),
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
