//! The map step over every message of the public corpus: it never panics,
//! every change it makes keeps the original code in components 4-6 (or the
//! value in the change record), the edited message still parses, and a
//! second run changes nothing.

use terminology::{
    Content, MapStep, MapStepConfig, SharedTerminology, concept_maps_from_csv, loinc_starter_map,
};

fn files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "hl7" || e == "txt") {
            out.push(path);
        }
    }
}

#[test]
fn every_corpus_message_maps_without_losing_an_original() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    let mut paths = Vec::new();
    files(&root, &mut paths);
    assert!(paths.len() > 100, "the corpus is there");

    let mut maps = loinc_starter_map();
    // Codes the corpus really carries (Mirth's small.hl7 and CDC samples).
    maps.extend(
        concept_maps_from_csv(
            "corpus.csv",
            "source_system,source_code,target_system,target_code,target_display,equivalence\n\
             GH,84295,http://loinc.org,2951-2,Sodium,equivalent\n\
             GH,82947,http://loinc.org,2345-7,Glucose,equivalent\n",
        )
        .unwrap(),
    );
    let shared = SharedTerminology::new();
    shared.load(Content {
        concept_maps: maps,
        ..Content::default()
    });
    let config: MapStepConfig = serde_json::from_str(
        r#"{"fields":["OBX-3","OBR-4","OBX-6","AL1-3","RXE-2","DG1-3"],"units":true,"unmapped":"flag",
            "conversions":[{"system":"LN","code":"2345-7","from":"mg/dL","to":"mmol/L","divide_by":"18.016"}]}"#,
    )
    .unwrap();
    let step = MapStep::new(&config).unwrap();
    let terminology = shared.current();

    let (mut messages, mut changes, mut unmapped) = (0, 0, 0);
    for path in &paths {
        let bytes = std::fs::read(path).unwrap();
        for item in hl7v2::split_stream(&bytes) {
            let hl7v2::StreamItem::Message { bytes, .. } = item else {
                continue;
            };
            let Ok(mut m) = hl7v2::OwnedMessage::parse(bytes) else {
                continue;
            };
            messages += 1;
            let mut quiet = m.clone();
            let outcome = step.apply(&terminology, &mut m);
            // What the engine runs: the same edits and codes, no change records.
            let unrecorded = step.apply_without_changes(&terminology, &mut quiet);
            assert_eq!(quiet, m, "{}", path.display());
            assert_eq!(unrecorded.unmapped, outcome.unmapped);
            assert_eq!(unrecorded.decision, outcome.decision);
            assert!(unrecorded.changes.is_empty());
            unmapped += outcome.unmapped.len();
            for c in &outcome.changes {
                changes += 1;
                if c.path.contains("-5[") || c.path.starts_with("NTE") {
                    // A converted value (the original is `before`) and the NTE that
                    // keeps it.
                    continue;
                }
                let before: Vec<&str> = c.before.split('^').collect();
                let after: Vec<&str> = c.after.split('^').collect();
                let kept = |i: usize| after.get(i).copied().unwrap_or_default();
                for i in 0..3 {
                    assert_eq!(
                        before.get(i).copied().unwrap_or_default(),
                        kept(i + 3),
                        "{}: {} component {} lost: {} -> {}",
                        path.display(),
                        c.path,
                        i + 1,
                        c.before,
                        c.after
                    );
                }
            }
            let written = m.to_bytes();
            assert!(
                hl7v2::Message::parse(&written).is_ok(),
                "{}",
                path.display()
            );
            // Reprocessing a mapped message maps nothing twice.
            let again = step.apply(&terminology, &mut m);
            assert!(
                again.changes.is_empty(),
                "{}: {:?}",
                path.display(),
                again.changes
            );
            assert_eq!(m.to_bytes(), written);
        }
    }
    assert!(messages > 300, "{messages} messages");
    assert!(changes > 100, "{changes} changes");
    assert!(unmapped > 1000, "{unmapped} unmapped codes");
}
