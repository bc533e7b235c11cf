//! `corridor v2`: FHIR R4 JSON in, HL7 v2 messages out, through the real
//! binary; a Bundle `corridor fhir` made gives its message back.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn corridor(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn corpus(rel: &str) -> String {
    format!(
        "{}/../../tests/corpus/public/{rel}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn a_bundle_from_corridor_fhir_gives_its_message_back() {
    let bundle = corridor(&["fhir", &corpus("hapi-hl7v2/docs_ADT_A01.hl7")], b"");
    assert_eq!(bundle.status.code(), Some(0), "{}", text(&bundle.stderr));
    let o = corridor(&["v2", "--facility", "HOSP", "-"], &bundle.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let segments: Vec<Vec<&str>> = out.lines().map(|l| l.split('|').collect()).collect();
    let names: Vec<&str> = segments.iter().map(|s| s[0]).collect();
    assert_eq!(names, ["MSH", "EVN", "PID", "PV1", "IN1"], "{out}");
    assert_eq!(segments[0][3], "HOSP");
    assert_eq!(segments[0][8], "ADT^A01^ADT_A01");
    assert_eq!(segments[2][5], "Duck^Donald^^MR.^MR.");
    assert_eq!(segments[2][7], "19720227");
    assert_eq!(segments[3][19], "211004554^^^^VN");
    // The coverage the IN1 made comes back as the patient's IN1.
    assert_eq!(segments[4][3], "001001", "{out}");
    assert_eq!(segments[4][4], "OHIP", "{out}");
    let err = text(&o.stderr);
    assert!(!err.lines().any(|l| l.contains("Coverage/")), "{err}");
    // The output is messages `corridor get` reads.
    let get = corridor(&["get", "-", "PID-5.1"], &o.stdout);
    assert_eq!(text(&get.stdout).trim(), "Duck");
}

#[test]
fn a_file_that_is_not_fhir_is_named_and_the_others_are_still_made() {
    let dir = std::env::temp_dir().join(format!("corridor-cli-v2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(
        &bad,
        br#"{"resourceType": "Bundle", "entry": [{"request": {}}]}"#,
    )
    .unwrap();
    let good = dir.join("patient.json");
    std::fs::write(
        &good,
        br#"{"resourceType": "Patient", "id": "p", "name": [{"family": "ROE"}], "gender": "male"}"#,
    )
    .unwrap();
    let o = corridor(&["v2", bad.to_str().unwrap(), good.to_str().unwrap()], b"");
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains("bad.json") && err.contains("Bundle.entry[0].resource"),
        "{err}"
    );
    let out = text(&o.stdout);
    assert!(out.contains("ADT^A28^ADT_A05"), "{out}");
    assert!(out.lines().any(|l| l == "PID|1||||ROE|||M"), "{out}");
}

#[test]
fn the_messages_made_back_pass_corridor_validate() {
    for message in [
        "hapi-hl7v2/docs_ADT_A01.hl7",
        "cdc-data-exchange-hl7/COVID19_ELR_01.hl7",
        "izgateway-v2tofhir/msg_002.hl7",
    ] {
        let bundle = corridor(&["fhir", "--ndjson", &corpus(message)], b"");
        assert_eq!(bundle.status.code(), Some(0), "{}", text(&bundle.stderr));
        let back = corridor(&["v2", "-"], &bundle.stdout);
        assert_eq!(back.status.code(), Some(0), "{}", text(&back.stderr));
        assert!(text(&back.stdout).starts_with("MSH|"), "{message}");
        let checked = corridor(&["validate", "-"], &back.stdout);
        assert_eq!(
            checked.status.code(),
            Some(0),
            "{message}:\n{}\n{}",
            text(&back.stdout),
            text(&checked.stdout)
        );
    }
}

#[test]
fn ndjson_and_arrays_of_bundles_give_a_message_each() {
    let files = [
        corpus("hapi-hl7v2/docs_ADT_A01.hl7"),
        corpus("cdc-data-exchange-hl7/COVID19_ELR_01.hl7"),
    ];
    for layout in [&["fhir", "--ndjson"][..], &["fhir"][..]] {
        let mut args = layout.to_vec();
        args.extend(files.iter().map(String::as_str));
        let bundles = corridor(&args, b"");
        assert_eq!(bundles.status.code(), Some(0), "{}", text(&bundles.stderr));
        let back = corridor(&["v2", "-"], &bundles.stdout);
        assert_eq!(back.status.code(), Some(0), "{}", text(&back.stderr));
        let types: Vec<String> = text(&back.stdout)
            .lines()
            .filter(|l| l.starts_with("MSH|"))
            .map(|l| l.split('|').nth(8).unwrap().to_string())
            .collect();
        assert_eq!(types, ["ADT^A01^ADT_A01", "ORU^R01^ORU_R01"], "{layout:?}");
    }
}

#[test]
fn every_message_of_a_run_has_its_own_control_id() {
    let bundles = corridor(
        &[
            "fhir",
            "--ndjson",
            &corpus("hapi-hl7v2/docs_ADT_A01.hl7"),
            &corpus("cdc-data-exchange-hl7/COVID19_ELR_01.hl7"),
            &corpus("hapi-hl7v2/docs_ADT_A01.hl7"),
        ],
        b"",
    );
    assert_eq!(bundles.status.code(), Some(0), "{}", text(&bundles.stderr));
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("a.ndjson"), dir.path().join("b.ndjson"));
    std::fs::write(&first, &bundles.stdout).unwrap();
    std::fs::write(&second, &bundles.stdout).unwrap();
    let back = corridor(
        &["v2", first.to_str().unwrap(), second.to_str().unwrap()],
        b"",
    );
    assert_eq!(back.status.code(), Some(0), "{}", text(&back.stderr));
    let ids: Vec<String> = text(&back.stdout)
        .lines()
        .filter(|l| l.starts_with("MSH|"))
        .map(|l| l.split('|').nth(9).unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 6, "{ids:?}");
    let unique: std::collections::BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "MSH-10 repeated: {ids:?}");
    assert!(
        ids.iter().all(|id| id.len() <= 20),
        "MSH-10 over 20 characters: {ids:?}"
    );
}
