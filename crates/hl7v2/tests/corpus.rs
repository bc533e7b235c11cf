//! Every message of the public corpus (tests/corpus/public) parses, except
//! those the corpus marks malformed, which give a clear error and never a
//! panic.

use std::path::{Path, PathBuf};

use hl7v2::{Batch, Message, OwnedMessage, StreamItem, split_stream};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public")
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
fn marked_malformed(path: &Path) -> bool {
    let rel = path
        .strip_prefix(corpus_dir())
        .unwrap()
        .to_string_lossy()
        .to_string();
    rel.split('/').any(|part| part.starts_with("malformed"))
        || ["Invalid", "Bad", "bad", "error"]
            .iter()
            .any(|w| path.file_name().unwrap().to_string_lossy().contains(w))
}

fn all_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    files(&corpus_dir(), &mut out);
    assert!(
        out.len() > 250,
        "the corpus is incomplete: {} files",
        out.len()
    );
    out
}

/// The message written back with every segment ending in CR.
fn normalized(message: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    for segment in message.segments() {
        out.extend_from_slice(segment.as_bytes());
        out.push(b'\r');
    }
    out
}

#[test]
fn every_valid_corpus_message_parses_and_round_trips() {
    let mut messages = 0;
    for path in all_files().into_iter().filter(|p| !marked_malformed(p)) {
        let bytes = std::fs::read(&path).unwrap();
        let batch = Batch::parse(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!batch.messages.is_empty(), "{}: no message", path.display());
        for (n, (raw, _, _)) in batch.messages.iter().enumerate() {
            let message = Message::parse(raw)
                .unwrap_or_else(|e| panic!("{} message {}: {e}", path.display(), n + 1));
            assert!(!message.is_empty());
            let owned = OwnedMessage::from(&message);
            assert_eq!(owned.to_bytes(), normalized(&message), "{}", path.display());
            // Every element can be reached and decoded.
            for segment in message.segments() {
                for field in segment.fields() {
                    for rep in field.children() {
                        for comp in rep.children() {
                            for sub in comp.children() {
                                let _ = sub.text();
                            }
                        }
                    }
                }
            }
            messages += 1;
        }
    }
    assert!(messages > 250, "only {messages} messages were read");
}

#[test]
fn malformed_corpus_inputs_give_clear_errors_or_parse_and_never_panic() {
    let mut rejected = 0;
    for path in all_files().into_iter().filter(|p| marked_malformed(p)) {
        let bytes = std::fs::read(&path).unwrap();
        let batch_error = Batch::parse(&bytes).err();
        for item in split_stream(&bytes) {
            if let StreamItem::Message { bytes, .. } = item {
                match Message::parse(bytes) {
                    Ok(m) => {
                        // Whatever parses can be walked and written again.
                        let _ = OwnedMessage::from(&m).to_bytes();
                    }
                    Err(e) => {
                        let words = e.to_string();
                        assert!(
                            words.len() > 20,
                            "{}: unclear error {words:?}",
                            path.display()
                        );
                        rejected += 1;
                    }
                }
            }
        }
        if let Some(e) = batch_error {
            assert!(!e.to_string().is_empty());
            rejected += 1;
        }
    }
    assert!(
        rejected >= 10,
        "only {rejected} malformed inputs were rejected"
    );
}

#[test]
fn python_hl7_bad_batches_are_rejected_with_the_line() {
    let dir = corpus_dir().join("python-hl7/malformed");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let e = Batch::parse(&bytes).expect_err(&path.display().to_string());
        assert!(e.to_string().contains("line "), "{}: {e}", path.display());
        count += 1;
    }
    assert_eq!(count, 6);
}

#[test]
fn bad_delimiters_are_named() {
    let bytes = std::fs::read(
        corpus_dir().join("cdc-data-exchange-hl7/malformed/Lyme_WithBadDelimiters.hl7"),
    )
    .unwrap();
    let e = Message::parse(&bytes).unwrap_err();
    assert!(
        e.to_string().contains("MSH-2") || e.to_string().contains("field 2"),
        "{e}"
    );
}
