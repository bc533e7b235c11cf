//! Validation over the `hl7v2` crate's parsed messages gives the same
//! findings as over the validator's own minimal splitter.

use std::path::{Path, PathBuf};

use hl7v2_spec::validate::{
    FindingKind, MessageFields, SegmentSequence, SplitMessage, ValidationOptions, spec_for,
    validate_message,
};

fn corpus_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "hl7") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public"),
        &mut files,
    );
    files.retain(|p| {
        let s = p.to_string_lossy().to_lowercase();
        ![
            "/malformed",
            "/batch",
            "testerror",
            "invalid",
            "bad",
            "error",
        ]
        .iter()
        .any(|w| s.contains(w))
    });
    files
}

#[test]
fn parsed_and_split_messages_validate_alike_across_the_corpus() {
    let options = ValidationOptions::default();
    let mut compared = 0;
    for path in corpus_files() {
        let bytes = std::fs::read(&path).unwrap();
        let Ok(parsed) = hl7v2::Message::parse(&bytes) else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(&bytes) else {
            continue;
        };
        let Some(split) = SplitMessage::parse(text) else {
            continue;
        };
        if parsed.segment_count() != split.segment_count() {
            continue; // the two read a malformed file differently; not this test's concern
        }
        let spec = spec_for(&parsed, None);
        assert_eq!(
            spec.spec.version(),
            spec_for(&split, None).spec.version(),
            "{}",
            path.display()
        );
        let a = validate_message(spec.spec, &parsed, &options);
        let b = validate_message(spec.spec, &split, &options);
        assert_eq!(a, b, "{}", path.display());
        compared += 1;
    }
    assert!(compared >= 200, "compared only {compared}");
}

#[test]
fn a_parsed_message_reports_field_findings_at_their_paths() {
    let text = "MSH|^~\\&|LAB|F|EHR|F|20240315||ORU^R01^ORU_R01|1|P|2.5.1\r\
                PID|1||42^^^H^MR||Doe^Jane||19801399\r\
                OBR|1||F1|1234-5^Test^LN\r\
                OBX|1|NM|1234-5^Test^LN||7.5||||||F";
    let message = hl7v2::Message::parse(text.as_bytes()).unwrap();
    assert_eq!(message.field(0, 1), Some("|"));
    assert_eq!(message.field(0, 2), Some("^~\\&"));
    let spec = spec_for(&message, None);
    assert!(spec.exact);
    let findings = validate_message(spec.spec, &message, &ValidationOptions::default());
    let found: Vec<_> = findings.iter().map(|f| (f.kind, f.path.as_str())).collect();
    assert_eq!(
        found,
        [(
            FindingKind::InvalidFormat,
            "ORU_R01.PATIENT_RESULT.PATIENT.PID-7.1"
        )]
    );
}

#[test]
fn the_version_comes_from_the_caller_then_msh_12_then_2_5_1() {
    let with = |v: &str| format!("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|{v}\rEVN|A01");
    let text = with("2.3.1");
    let m = hl7v2::Message::parse(text.as_bytes()).unwrap();
    assert_eq!(spec_for(&m, None).spec.version(), "2.3.1");
    assert_eq!(spec_for(&m, Some("2.5")).spec.version(), "2.5");
    let text = with("2.7.1");
    let m = hl7v2::Message::parse(text.as_bytes()).unwrap();
    let nearest = spec_for(&m, None);
    assert_eq!((nearest.spec.version(), nearest.exact), ("2.7", false));
    let text = with("");
    let m = hl7v2::Message::parse(text.as_bytes()).unwrap();
    assert_eq!(spec_for(&m, None).spec.version(), "2.5.1");
}
