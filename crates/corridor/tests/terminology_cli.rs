//! `corridor terminology load|list|unmapped` against a data directory, `corridor
//! profile --suggest-profile` whose profile `corridor validate` accepts, and `corridor
//! profile --json` over the whole public corpus listing every segment and field in it.

use std::process::{Command, Output};

fn corridor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn loads_are_versioned_listed_and_bad_ones_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let map = dir.path().join("lab.csv");
    std::fs::write(
        &map,
        "source_system,source_code,target_system,target_code,equivalence\nL,A1C7,LN,4548-4,equivalent\n",
    )
    .unwrap();
    let map = map.to_str().unwrap();
    for _ in 0..2 {
        let out = corridor(&["terminology", "load", "--data", data, "--name", "lab", map]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "source_system,source_code\nL,A\n").unwrap();
    let out = corridor(&["terminology", "load", "--data", data, bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out).contains("bad.csv line 1"), "{}", text(&out));
    let out = corridor(&["terminology", "list", "--data", data]);
    let listing = text(&out);
    assert!(out.status.success(), "{listing}");
    let rows: Vec<&str> = listing.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{listing}");
    assert!(
        rows[0].starts_with("2\tlab\t") && rows[0].contains("\tyes\t"),
        "{listing}"
    );
    assert!(
        rows[1].starts_with("1\tlab\t") && rows[1].contains("\tno\t"),
        "{listing}"
    );
    let out = corridor(&["terminology", "unmapped", "--data", data]);
    assert!(
        text(&out).starts_with("source_system,source_code"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_suggested_profile_is_accepted_by_validate() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/public/cdc-data-exchange-hl7");
    let files: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .filter(|p| p.ends_with(".hl7"))
        .collect();
    let suggested = dir.path().join("profile.toml");
    let html = dir.path().join("profile.html");
    let mut args = vec![
        "profile".to_owned(),
        "--suggest-profile".to_owned(),
        suggested.display().to_string(),
        "--html".to_owned(),
        html.display().to_string(),
    ];
    args.extend(files.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = corridor(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("message types: "), "{}", text(&out));
    assert!(
        std::fs::read_to_string(&html)
            .unwrap()
            .contains("<h2 id=\"MSH\">MSH</h2>")
    );
    let mut args = vec![
        "validate".to_owned(),
        "--profile".to_owned(),
        suggested.display().to_string(),
    ];
    args.extend(files);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = corridor(&args);
    assert!(out.status.success(), "{}", text(&out));
}

/// Every `.hl7` file under tests/corpus/public, sorted.
fn public_corpus() -> Vec<std::path::PathBuf> {
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
    files
}

#[test]
fn the_whole_public_corpus_is_profiled_listing_every_segment_and_field_present() {
    let files = public_corpus();
    assert!(files.len() > 50, "{} files", files.len());
    let mut args = vec!["profile".to_owned(), "--json".to_owned()];
    args.extend(files.iter().map(|p| p.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = corridor(&args);
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out)));

    // What the corpus holds, found independently: every segment, and every field
    // populated in at least one of its messages.
    let (mut messages, mut unparsed) = (0u64, 0u64);
    let mut segments = std::collections::BTreeSet::new();
    let mut fields = std::collections::BTreeSet::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        for item in hl7v2::split_stream(&bytes) {
            let hl7v2::StreamItem::Message { bytes, .. } = item else {
                continue;
            };
            let Ok(m) = hl7v2::Message::parse(bytes) else {
                unparsed += 1;
                continue;
            };
            messages += 1;
            for s in m.segments() {
                segments.insert(s.name_str().to_owned());
                for n in 1..=s.len() {
                    if s.field(n).is_some_and(|f| !f.raw().is_empty()) {
                        fields.insert(format!("{}-{n}", s.name_str()));
                    }
                }
            }
        }
    }
    assert!(messages > 250, "{messages} messages");
    assert_eq!(report["messages"], messages, "{}", text(&out));
    assert_eq!(report["unparsed"], unparsed);
    let listed: std::collections::BTreeSet<String> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, segments);
    let listed_fields: std::collections::BTreeSet<String> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["fields"].as_array().unwrap().iter())
        .map(|f| f["path"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed_fields, fields);
    assert!(fields.contains("OBX-5") && fields.contains("PID-3"));
}
