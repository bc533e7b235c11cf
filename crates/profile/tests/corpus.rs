//! `Profiler` over the whole public corpus (tests/corpus/public): every segment and
//! populated field is in the report; the suggested profile is accepted by the validator,
//! validates the messages it was made from without errors, and flags a message with a
//! field never seen before.

use std::collections::BTreeSet;

use hl7v2_spec::validate::{self, Profile, Severity, ValidationOptions};

fn corpus() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "hl7") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut messages = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        for item in hl7v2::split_stream(&bytes) {
            if let hl7v2::StreamItem::Message { bytes, .. } = item {
                messages.push(bytes.to_vec());
            }
        }
    }
    messages
}

#[test]
fn the_whole_public_corpus_is_profiled_and_its_suggested_profile_holds() {
    let messages = corpus();
    assert!(messages.len() > 250, "{} messages", messages.len());
    let mut profiler = profile::Profiler::new(profile::Options::default(), None);
    for m in &messages {
        profiler.add(m);
    }
    let report = profiler.report();
    assert_eq!(report.messages + report.unparsed, messages.len() as u64);

    // Every segment and populated field, found independently.
    let mut expected = BTreeSet::new();
    let mut segments = BTreeSet::new();
    for raw in &messages {
        let Ok(m) = hl7v2::Message::parse(raw) else {
            continue;
        };
        for s in m.segments() {
            segments.insert(s.name_str().to_owned());
            for n in 1..=s.len() {
                if s.field(n).is_some_and(|f| !f.raw().is_empty()) {
                    expected.insert(format!("{}-{n}", s.name_str()));
                }
            }
        }
    }
    let listed: BTreeSet<String> = report.segments.iter().map(|s| s.id.clone()).collect();
    assert_eq!(listed, segments);
    let fields: BTreeSet<String> = report
        .segments
        .iter()
        .flat_map(|s| s.fields.iter().map(|f| f.path.clone()))
        .collect();
    assert_eq!(fields, expected);
    assert!(report.message_types.keys().any(|k| k == "ORU^R01"));
    assert!(!report.versions.is_empty() && !report.delimiters.is_empty());
    assert!(report.z_segments.iter().all(|z| z.starts_with('Z')));
    let html = report.to_html();
    assert!(html.contains("<h2 id=\"PID\">PID</h2>"));
    serde_json::to_string(&report).unwrap();

    // The suggested profile: accepted, and no errors on the messages it was made from.
    let text = profiler.suggest_profile("public corpus");
    let suggested = Profile::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let options = ValidationOptions::default();
    let mut checked = 0;
    for raw in &messages {
        let Ok(m) = hl7v2::Message::parse(raw) else {
            continue;
        };
        let spec = validate::spec_for(&m, None).spec;
        let errors: Vec<_> = suggested
            .validate(spec, &m, &options)
            .into_iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert!(
            errors.is_empty(),
            "{} has errors: {errors:#?}",
            m.control_id()
        );
        checked += 1;
    }
    assert_eq!(checked as u64, report.messages);

    // A message with a field never seen: PID-38 (Production Class Code) is in no message
    // of the corpus; set on an otherwise accepted message, it is an error.
    assert!(
        !fields.contains("PID-38"),
        "the corpus now has PID-38: pick another field"
    );
    let original = messages
        .iter()
        .find(|raw| hl7v2::Message::parse(raw).is_ok_and(|m| m.find_segment(b"PID", 1).is_some()))
        .unwrap();
    let mut changed = hl7v2::OwnedMessage::parse(original).unwrap();
    changed.set_text(&"PID-38".parse().unwrap(), "X").unwrap();
    let bytes = changed.to_bytes();
    let m = hl7v2::Message::parse(&bytes).unwrap();
    let spec = validate::spec_for(&m, None).spec;
    let errors: Vec<_> = suggested
        .validate(spec, &m, &options)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(
        errors
            .iter()
            .any(|f| f.message.contains("PID-38 was never seen")),
        "{errors:#?}"
    );
}

#[test]
fn unmapped_codes_are_counted_against_the_terminology() {
    let t = std::sync::Arc::new(terminology::Terminology::new(
        1,
        Vec::new(),
        terminology::loinc_starter_map(),
    ));
    let mut profiler = profile::Profiler::new(profile::Options::default(), Some(t));
    for control in ["1", "2"] {
        profiler.add(
            format!(
                "MSH|^~\\&|LIS|LAB|EHR|H|20240101||ORU^R01|{control}|P|2.5.1\rOBX|1|NM|GLU^Glucose^L||5\rOBX|2|NM|ODD^Odd^L||5\r"
            )
            .as_bytes(),
        );
    }
    let report = profiler.report();
    assert_eq!(report.unmapped.len(), 1, "{:?}", report.unmapped);
    let u = &report.unmapped[0];
    assert_eq!(
        (
            u.sender.as_str(),
            u.field.as_str(),
            u.code.as_str(),
            u.count
        ),
        ("LIS@LAB", "OBX-3", "ODD", 2)
    );
}
