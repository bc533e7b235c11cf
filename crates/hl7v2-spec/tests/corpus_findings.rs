//! Every finding the validator reports over the whole public corpus
//! (tests/corpus/public), compared line by line with a recorded copy
//! (`tests/golden/corpus_findings.txt`): kind, code, severity, path,
//! segment index, id and occurrence, field position and message text.
//!
//! The recorded copy was written by the validator before its per-message
//! cost was cut; a change to what it reports shows here as a diff. After a
//! deliberate change, rewrite the copy with
//! `CORRIDOR_UPDATE_GOLDEN=1 cargo test -p hl7v2-spec --test corpus_findings`
//! and review the diff.
//!
//! Each message is validated through the `hl7v2` parser (what the profiler,
//! the channels and `corridor validate` use) with the default options (every
//! finding recorded) and with strict ones (errors and warnings counted), and
//! through [`SplitMessage`] with the default options (recorded in full where
//! they differ from the parser's).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hl7v2_spec::validate::{
    Finding, Severity, SplitMessage, ValidationOptions, spec_for, validate_message,
};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public")
}

fn golden_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/corpus_findings.txt")
}

fn hl7_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            hl7_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "hl7") {
            out.push(path);
        }
    }
}

fn line(out: &mut String, f: &Finding) {
    let pos = f
        .field
        .map(|p| {
            format!(
                "{}/{}/{}/{}",
                p.field, p.repetition, p.component, p.subcomponent
            )
        })
        .unwrap_or_default();
    writeln!(
        out,
        "  {:?}|{}|{:?}|{}|{:?}|{}|{:?}|{}|{}",
        f.kind,
        f.code.code(),
        f.severity,
        f.path,
        f.segment_index,
        f.segment_id,
        f.segment_sequence,
        pos,
        f.message
    )
    .unwrap();
}

fn report() -> (String, usize) {
    let root = corpus_dir();
    let mut files = Vec::new();
    hl7_files(&root, &mut files);
    let mut out = String::new();
    let mut messages = 0;
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.strip_prefix(&root).unwrap().display().to_string();
        for (n, item) in hl7v2::split_stream(&bytes).into_iter().enumerate() {
            let hl7v2::StreamItem::Message { bytes, .. } = item else {
                continue;
            };
            messages += 1;
            writeln!(out, "{name} #{n}").unwrap();
            let mut parsed = None;
            match hl7v2::Message::parse(bytes) {
                Ok(message) => {
                    let spec = spec_for(&message, None).spec;
                    let findings = validate_message(spec, &message, &ValidationOptions::default());
                    out.push_str(" parsed default\n");
                    for f in &findings {
                        line(&mut out, f);
                    }
                    let strict = validate_message(spec, &message, &ValidationOptions::strict());
                    let errors = strict
                        .iter()
                        .filter(|f| f.severity == Severity::Error)
                        .count();
                    writeln!(
                        out,
                        " parsed strict: {errors} errors, {} warnings",
                        strict.len() - errors
                    )
                    .unwrap();
                    parsed = Some(findings);
                }
                Err(_) => out.push_str(" does not parse\n"),
            }
            let text = String::from_utf8_lossy(bytes);
            match SplitMessage::parse(&text) {
                Some(split) => {
                    let spec = spec_for(&split, None).spec;
                    let findings = validate_message(spec, &split, &ValidationOptions::default());
                    if parsed.as_ref() == Some(&findings) {
                        out.push_str(" split default: as parsed\n");
                    } else {
                        out.push_str(" split default\n");
                        for f in &findings {
                            line(&mut out, f);
                        }
                    }
                }
                None => out.push_str(" does not split\n"),
            }
        }
    }
    (out, messages)
}

#[test]
fn findings_over_the_public_corpus_are_the_recorded_ones() {
    let (actual, messages) = report();
    assert!(messages > 300, "the corpus has {messages} messages");
    let path = golden_path();
    if std::env::var_os("CORRIDOR_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap();
    let findings = expected.lines().filter(|l| l.starts_with("  ")).count();
    assert!(findings > 1000, "only {findings} recorded findings");
    for (i, (a, e)) in actual.lines().zip(expected.lines()).enumerate() {
        assert_eq!(a, e, "line {} of {} differs", i + 1, path.display());
    }
    assert_eq!(
        actual.lines().count(),
        expected.lines().count(),
        "the report's length differs from {}",
        path.display()
    );
}

/// `MessageFields::segment_fields` of the parser's messages reads what
/// `MessageFields::field` reads, field by field, for every segment.
#[test]
fn a_segments_fields_at_once_are_its_fields_one_by_one() {
    use hl7v2_spec::validate::{MessageFields, SegmentSequence};
    let mut files = Vec::new();
    hl7_files(&corpus_dir(), &mut files);
    let mut segments = 0;
    for path in files {
        let bytes = std::fs::read(&path).unwrap();
        for item in hl7v2::split_stream(&bytes) {
            let hl7v2::StreamItem::Message { bytes, .. } = item else {
                continue;
            };
            let Ok(message) = hl7v2::Message::parse(bytes) else {
                continue;
            };
            for s in 0..message.segment_count() {
                let mut at_once = Vec::new();
                message.segment_fields(s, &mut at_once);
                let one_by_one: Vec<&str> = (1..).map_while(|n| message.field(s, n)).collect();
                assert_eq!(at_once, one_by_one, "{} segment {s}", path.display());
                segments += 1;
            }
        }
    }
    assert!(segments > 3000, "{segments} segments");
}
