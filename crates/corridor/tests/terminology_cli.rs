//! `corridor terminology load|list|unmapped` against a data directory, and `corridor
//! profile --suggest-profile` whose profile `corridor validate` accepts.

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
