//! Every message of the public corpus (tests/corpus/public), whatever its
//! type, converts, twice to the same bytes, and every Bundle is
//! valid FHIR R4 for the R4B models of `fhir.resources` (PyPI, in a venv this
//! test creates under target/py-venv-fhir) and for the validator of the npm
//! `fhir` package (installed under target/npm-fhir).

use std::path::{Path, PathBuf};

use hl7v2::{Message, StreamItem, split_stream};
use v2_fhir::{Converter, Options};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "hl7") {
            out.push(path);
        }
    }
}

/// The corpus's own rule: folders named `malformed*` and files with
/// Invalid/Bad/error in the name are deliberately broken.
fn marked_malformed(root: &Path, path: &Path) -> bool {
    let rel = path
        .strip_prefix(root)
        .unwrap()
        .to_string_lossy()
        .to_string();
    rel.split('/').any(|part| part.starts_with("malformed"))
        || ["Invalid", "Bad", "bad", "error"]
            .iter()
            .any(|w| path.file_name().unwrap().to_string_lossy().contains(w))
}

/// Every corpus message as (label, Bundle JSON).
fn convert_corpus() -> Vec<(String, String)> {
    let root = workspace().join("tests/corpus/public");
    let mut paths = Vec::new();
    files(&root, &mut paths);
    assert!(
        paths.len() > 250,
        "the corpus is incomplete: {} files",
        paths.len()
    );
    let converter = Converter::new(Options::default());
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for path in paths.iter().filter(|p| !marked_malformed(&root, p)) {
        let bytes = std::fs::read(path).unwrap();
        for (n, item) in split_stream(&bytes).into_iter().enumerate() {
            let StreamItem::Message { bytes, .. } = item else {
                continue;
            };
            let label = format!("{}#{}", path.strip_prefix(&root).unwrap().display(), n + 1);
            let message = Message::parse(bytes).unwrap_or_else(|e| panic!("{label}: {e}"));
            match converter.convert(&message) {
                Ok(bundle) => {
                    let json = bundle.to_json_string();
                    let again = converter.convert(&message).unwrap().to_json_string();
                    assert_eq!(json, again, "{label}: converting twice differs");
                    out.push((label, json));
                }
                Err(e) => refused.push((label, e, message.find_segment(b"PID", 1).is_some())),
            }
        }
    }
    // The only refusal allowed is the one FHIR forces: a message without a
    // PID that carries resources FHIR requires a patient for.
    for (label, error, has_pid) in &refused {
        assert!(
            !has_pid && error.to_string().contains("no PID"),
            "{label}: {error}"
        );
    }
    assert!(refused.len() <= 1, "too many refusals: {refused:?}");
    assert!(
        out.len() > 250,
        "only {} corpus messages converted",
        out.len()
    );
    out
}

#[test]
fn every_corpus_message_converts_to_a_valid_r4_bundle() {
    let bundles = convert_corpus();
    test_support::fhir::assert_valid_r4_both(&bundles);
}

#[test]
fn the_validator_reports_a_bundle_that_breaks_r4() {
    // An Observation without its required code: the check must
    // catch it, or its silence on the corpus would mean nothing.
    let broken = r#"{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Observation","id":"1"},"request":{"method":"PUT","url":"Observation/1"}}]}"#;
    let result = std::panic::catch_unwind(|| {
        test_support::fhir::assert_valid_r4(&[("broken".to_string(), broken.to_string())])
    });
    let message = result.expect_err("a broken Bundle passed validation");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        text.contains("broken") && text.contains("resource.code"),
        "{text}"
    );
}
