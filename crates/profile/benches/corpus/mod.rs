//! The profiling bench's input, shared by the Criterion bench (`benches/profile.rs`)
//! and the callgrind loop (`examples/profile_loop.rs`), so both measure the same: every
//! message of the public corpus (tests/corpus/public), in file order.

pub fn corpus() -> Vec<Vec<u8>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    let mut files = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
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
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for item in hl7v2::split_stream(&bytes) {
            if let hl7v2::StreamItem::Message { bytes, .. } = item {
                messages.push(bytes.to_vec());
            }
        }
    }
    messages
}

/// Profiles `messages` once, as `corridor profile` does (validation as `validate` says).
pub fn profile_all(messages: &[Vec<u8>], validate: bool) -> u64 {
    let mut p = profile::Profiler::new(
        profile::Options {
            validate,
            ..profile::Options::default()
        },
        None,
    );
    for m in messages {
        p.add(m);
    }
    p.messages()
}
