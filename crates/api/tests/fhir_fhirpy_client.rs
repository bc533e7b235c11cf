//! The repository's API through fhirpy, a FHIR client library from PyPI: search,
//! paging, `count()`, sort, include, chains, `_elements` and conditional reads, over
//! a real socket (`fhirpy_client.py` holds the checks).

#[path = "fhir_common/mod.rs"]
mod common;

use std::process::Command;

use common::{A01, Repo};

const ORU: &str = "MSH|^~\\&|LAB|GHH|EHR|GHH|20240105120000+0100||ORU^R01^ORU_R01|ORU-1|P|2.5.1
PID|1||P100^^^GHH^MR||EVERYWOMAN^EVE^E||19800312|F
OBR|1|PLACER1^EHR|FILL1^LAB|24331-1^Lipid panel^LN|||20240105110000+0100
OBX|1|NM|2093-3^Cholesterol^LN||196|mg/dL^^UCUM|<200||||F|||20240105110000+0100
OBX|2|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|12-16||||F|||20240105110000+0100";

#[test]
fn fhirpy_searches_pages_counts_sorts_includes_and_reads_conditionally() {
    let repo = Repo::start();
    let patient = repo.apply(A01).0.patient_id().unwrap().to_owned();
    repo.apply(ORU);
    // Messages 3..=9: PAGE^P0..P6, born 1990 + (n * 3 % 7), one second apart.
    let mut pages = Vec::new();
    for n in 0..7 {
        let year = 1990 + (n * 3 % 7);
        let (bundle, _) = repo.apply(&format!(
            "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240103083000+0100||ADT^A04^ADT_A01|P-{n}|P|2.5.1
PID|1||PG{n}^^^GHH^MR||PAGE^P{n}||{year}0101|F"
        ));
        pages.push((bundle.patient_id().unwrap().to_owned(), year));
    }
    let page_ids: Vec<&str> = pages.iter().map(|(id, _)| id.as_str()).collect();
    let mut by_birth = pages.clone();
    by_birth.sort_by_key(|(_, year)| std::cmp::Reverse(*year));
    let youngest_first: Vec<&str> = by_birth.iter().map(|(id, _)| id.as_str()).collect();
    let expected = serde_json::json!({
        "patient": patient,
        "page_ids": page_ids,
        "youngest_first": youngest_first,
        // The fifth PAGE patient is message 7, received at 12:00:07.
        "fifth_arrived": "2026-01-01T12:00:07Z",
    });
    let python = test_support::fhir::python_with_fhirpy();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fhirpy_client.py");
    let output = Command::new(python)
        .arg(script)
        .arg(format!("http://{}/fhir", repo.addr))
        .arg(expected.to_string())
        .output()
        .expect("the fhirpy script runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("checks passed"), "{stdout}\n{stderr}");
    println!("{stdout}");
}
