//! `corridor test DIR` run as a process on the repository's `examples/`: every fixture
//! passes, and a copy with wrong expectations fails with a path-level diff and exit 1,
//! without touching the configured data directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn corridor_test(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corridor"))
        .arg("test")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Copies a directory tree (plain files and directories).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn edit(file: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains(from), "{} lacks {from:?}", file.display());
    std::fs::write(file, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn examples_pass() {
    let output = corridor_test(&examples());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for case in [
        "adt-a01-admit",
        "adt-a01-without-pid-quarantined",
        "orm-order-filtered",
        "oru-r01-result",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("pass ") && l.ends_with(case)),
            "{case} not listed as passed:\n{stdout}"
        );
    }
    assert!(
        stdout.ends_with("4 cases: 4 passed, 0 failed\n"),
        "{stdout}"
    );
}

#[test]
fn wrong_expectations_fail_with_a_path_level_diff() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&examples(), dir.path());
    let cases = dir.path().join("tests");
    // The transformer writes the family name in capitals; this expectation does not.
    edit(
        &cases.join("adt-a01-admit/out/ehr.hl7"),
        "DOE^Jane",
        "Doe^Jane",
    );
    // The archive's copy expected with a segment the channel drops, and without OBX.
    let archive = cases.join("oru-r01-result/out/results-archive.hl7");
    edit(&archive, "OBX|1|NM|", "ZPV|1|Drawn at bedside\rOBZ|1|NM|");
    // An order expected to pass the channel's filter.
    edit(
        &cases.join("orm-order-filtered/expect.toml"),
        "state = \"filtered\"",
        "state = \"processed\"",
    );

    let output = corridor_test(dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let expected = [
        "FAIL tests/adt-a01-admit",
        "    ehr: PID-5.1: expected \"Doe\", got \"DOE\"",
        "pass tests/adt-a01-without-pid-quarantined",
        "FAIL tests/orm-order-filtered",
        "    state: expected processed, got filtered (filtered by adt-and-results-only)",
        "FAIL tests/oru-r01-result",
        "    results-archive: segment ZPV missing",
        "    results-archive: segment OBZ missing",
        "    results-archive: extra segment OBX",
        "4 cases: 1 passed, 3 failed",
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stdout}");
    // The configuration's data directory was never created: each case had its own store.
    assert!(!dir.path().join("corridor-data").exists());
}

#[test]
fn a_destination_expected_to_receive_nothing_is_named_when_it_does() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&examples(), dir.path());
    std::fs::remove_file(dir.path().join("tests/oru-r01-result/out/ehr.hl7")).unwrap();
    std::fs::write(
        dir.path().join("tests/adt-a01-admit/out/lab.hl7"),
        "MSH|^~\\&|A|B\r",
    )
    .unwrap();
    let output = corridor_test(dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("    out/lab.hl7: the channel has no destination named \"lab\"\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    ehr: received a message, expected none\n"),
        "{stdout}"
    );
}

#[test]
fn a_script_error_names_the_step_and_the_line_of_the_script() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("corridor.toml"),
        r#"[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:0" }
transforms = [
    { name = "stamp", script = """
const facility = msg.get("ZPI-1");
  msg.set("MSH-5", facility.toLowerCase());
""" },
]
[[channels.lab.destinations]]
name = "ehr"
type = "file"
path = "out"
"#,
    )
    .unwrap();
    let case = dir.path().join("no-facility");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(
        case.join("in.hl7"),
        "MSH|^~\\&|LAB||EHR||20260101||ORU^R01|1|P|2.5.1\rPID|1\r",
    )
    .unwrap();
    // There is no ZPI segment: `facility` is null, and the script fails on its line 2.
    std::fs::write(case.join("expect.toml"), "state = \"processed\"\n").unwrap();
    let output = corridor_test(dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let state = stdout
        .lines()
        .find(|l| l.contains("state: expected processed, got errored"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        state.contains(
            "stamp: the script failed: Error: cannot read property 'toLowerCase' of null"
        ),
        "{state}"
    );
    assert!(
        state.contains("(line 2, column 7 of the script)"),
        "{state}"
    );
    assert!(!stdout.contains("eval_script"), "{stdout}");
}

#[test]
fn fhir_resources_are_matched_as_subsets_of_the_bundle_a_destination_receives() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("corridor.toml"),
        r#"[channels.adt]
source = { type = "mllp", listen = "127.0.0.1:0" }
transforms = [ { set = "PID-5.1", value = "DOE" } ]
[[channels.adt.destinations]]
name = "fhir"
type = "fhir"
url = "http://127.0.0.1:9/fhir"
timezone = "Z"
"#,
    )
    .unwrap();
    let case = |name: &str, expected: &str| {
        let case = dir.path().join(name);
        std::fs::create_dir_all(case.join("out")).unwrap();
        std::fs::write(
            case.join("in.hl7"),
            "MSH|^~\\&|REG|NORTH|EHR|NORTH|20260105083000||ADT^A01^ADT_A01|A1|P|2.5.1\r\
             EVN|A01|20260105083000\rPID|1||MRN1001^^^NORTH^MR||Doe^Jane||19800214|F\r\
             PV1|1|I|4W^401^A\r",
        )
        .unwrap();
        std::fs::write(case.join("expect.toml"), "state = \"processed\"\n").unwrap();
        std::fs::write(case.join("out/fhir.json"), expected).unwrap();
    };
    case(
        "a-fits",
        r#"[{"resourceType": "Patient", "name": [{"family": "DOE"}], "gender": "female", "birthDate": "1980-02-14"},
            {"resourceType": "Encounter"}]"#,
    );
    case(
        "b-wrong",
        r#"[{"resourceType": "Patient", "name": [{"family": "Doe"}]}, {"resourceType": "Observation"}]"#,
    );
    let output = corridor_test(dir.path());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    let expected = [
        "pass a-fits",
        "FAIL b-wrong",
        "    fhir: Patient (expected resource 1): name[0].family: expected \"Doe\", got \"DOE\"",
        "    fhir: Observation (expected resource 2): none in the Bundle",
        "2 cases: 1 passed, 1 failed",
    ];
    assert_eq!(stdout.lines().collect::<Vec<_>>(), expected, "{stdout}");
}
