//! `corridor parse` and `corridor get` as a user runs them: exit status 0 on
//! success, 1 with a message naming the file, message and location on
//! malformed input, 2 on bad usage.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn corridor(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    // A command that never reads its input closes the pipe early; that is fine.
    let _ = pipe.write_all(stdin.unwrap_or_default());
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn corpus(rel: &str) -> String {
    format!(
        "{}/../../tests/corpus/public/{rel}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

const TWO: &[u8] = b"MSH|^~\\&|LAB|H|EHR|H|20240101||ORU^R01|C1|P|2.5.1\nPID|1||111^^^H^MR~222^^^SSA^SS||DOE^JANE\nOBX|1|NM|WBC||7.5\nOBX|2|ST|NOTE||a\\F\\b\n\nMSH|^~\\&|LAB|H|EHR|H|20240101||ADT^A01|C2|P|2.3\r\nPID|1||333||ROE^RICHARD\r\n";

#[test]
fn get_prints_one_line_per_message_and_path() {
    let o = corridor(
        &["get", "-", "MSH-10", "PID-3[2].1", "OBX[2]-5", "PID-5.2"],
        Some(TWO),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "C1\n222\na|b\nJANE\nC2\n\n\nRICHARD\n");
}

#[test]
fn get_reads_msh_1_and_msh_2_as_the_standard_numbers_them() {
    let o = corridor(&["get", "-", "MSH-1", "MSH-2", "MSH-3"], Some(TWO));
    assert_eq!(
        stdout(&o).lines().take(3).collect::<Vec<_>>(),
        ["|", "^~\\&", "LAB"]
    );
}

#[test]
fn get_on_a_batch_file_reads_every_message() {
    let o = corridor(
        &[
            "get",
            &corpus("python-hl7/batch/samples_sample_file1_L147.hl7"),
            "MSH-9",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3);
}

#[test]
fn malformed_input_exits_1_naming_file_message_and_location() {
    let input = b"MSH|^~\\&|A|B|||||ADT^A01|1|P|2.5\rPID|1\rMSH|^~\\&|A\rP@D|x\r";
    let o = corridor(&["get", "-", "MSH-10"], Some(input));
    assert_eq!(o.status.code(), Some(1));
    // The good message still prints; the bad one keeps its line empty.
    assert_eq!(stdout(&o), "1\n\n");
    let err = stderr(&o);
    assert!(err.contains("<stdin>: message 2"), "{err}");
    assert!(err.contains("segment 2"), "{err}");
}

#[test]
fn bad_delimiters_exit_1_with_the_field() {
    let file = corpus("cdc-data-exchange-hl7/malformed/Lyme_WithBadDelimiters.hl7");
    let o = corridor(&["parse", &file], None);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("Lyme_WithBadDelimiters.hl7: message 1"),
        "{err}"
    );
    assert!(err.contains("MSH-2"), "{err}");
}

#[test]
fn not_hl7_at_all_exits_1() {
    let o = corridor(&["parse", "-"], Some(b"hello, world\n"));
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 1"), "{}", stderr(&o));
}

#[test]
fn bad_usage_exits_2() {
    assert_eq!(
        corridor(&["get", "-", "PID-0"], Some(TWO)).status.code(),
        Some(2)
    );
    assert_eq!(corridor(&["get", "-"], Some(TWO)).status.code(), Some(2));
    assert_eq!(corridor(&["parse"], None).status.code(), Some(2));
    assert_eq!(corridor(&["frobnicate"], None).status.code(), Some(2));
}

#[test]
fn missing_file_exits_1_naming_it() {
    let o = corridor(&["parse", "/nonexistent/x.hl7"], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("/nonexistent/x.hl7"));
}

#[test]
fn parse_tree_names_segments_and_fields() {
    let file = corpus("nist-elr-via-node-hl7-complete/ORU_R01_2.5.1_SampleTestCase1.hl7");
    let o = corridor(&["parse", &file], None);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tree = stdout(&o);
    assert!(tree.contains("PID  Patient Identification"), "{tree}");
    assert!(tree.contains("PID-5     Patient Name"), "{tree}");
    assert!(tree.contains("Family Name"), "{tree}");
    assert!(tree.contains("OBX  Observation/Result"), "{tree}");
}

#[test]
fn parse_json_nests_fields_repetitions_components_subcomponents() {
    let o = corridor(&["parse", "--json", "-"], Some(TWO));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let pid = &v[0]["segments"][1];
    assert_eq!(pid["name"], "PID");
    // PID-3, second repetition, fourth component, first subcomponent.
    assert_eq!(pid["fields"][2][1][3][0], "SSA");
    assert_eq!(v[0]["segments"][0]["fields"][0][0][0][0], "|");
    assert_eq!(v[0]["segments"][3]["fields"][4][0][0][0], "a|b");
}

#[test]
fn every_corpus_file_parses_or_fails_cleanly() {
    let root = corpus("");
    let mut stack = vec![std::path::PathBuf::from(root)];
    let mut files = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "hl7") {
                let o = corridor(&["parse", "--json", path.to_str().unwrap()], None);
                let code = o.status.code();
                assert!(
                    code == Some(0) || code == Some(1),
                    "{}: {code:?}",
                    path.display()
                );
                if code == Some(1) {
                    assert!(
                        stderr(&o).contains(path.to_str().unwrap()),
                        "{}",
                        stderr(&o)
                    );
                }
                files += 1;
            }
        }
    }
    assert!(files > 250);
}

#[test]
fn validate_reports_findings_with_group_paths_and_exit_status() {
    let good = corpus("nist-elr-via-node-hl7-complete/ORU_R01_2.5.1_SampleTestCase1.hl7");
    let o = corridor(&["validate", &good], None);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // An OBX before any OBR is out of order in ORU_R01.
    let bad = b"MSH|^~\\&|LAB|H|EHR|H|20240101||ORU^R01^ORU_R01|C1|P|2.5.1\rPID|1||1^^^H^MR||DOE^J\rOBX|1|NM|WBC^W^LN||abc\rOBR|1\r";
    let o = corridor(&["validate", "-"], Some(bad));
    assert_eq!(o.status.code(), Some(1));
    let out = stdout(&o);
    assert!(out.contains("<stdin>: message 1: ORU_R01"), "{out}");
    assert!(out.contains("error"), "{out}");
    let o = corridor(&["validate", "--json", "-"], Some(bad));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(!v[0]["findings"].as_array().unwrap().is_empty());
    assert_eq!(v[0]["version"], "2.5.1");
}

#[test]
fn validate_with_a_toml_profile_tightens_the_standard() {
    let dir = std::env::temp_dir().join(format!("corridor-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("p.toml");
    let msg = b"MSH|^~\\&|LAB|H|EHR|H|20240101||ADT^A01^ADT_A01|C1|P|2.5.1\rEVN|A01|20240101\rPID|1||1^^^H^MR||DOE^J\rPV1|1|I\r";
    let o = corridor(&["validate", "-"], Some(msg));
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    std::fs::write(&profile, "[[rule]]\npath = \"PID-8\"\nrequired = true\n").unwrap();
    let o = corridor(
        &["validate", "--profile", profile.to_str().unwrap(), "-"],
        Some(msg),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("PID-8"), "{out}");
    std::fs::write(&profile, "[[rule]]\npth = \"PID-8\"\n").unwrap();
    let o = corridor(
        &["validate", "--profile", profile.to_str().unwrap(), "-"],
        Some(msg),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("p.toml"), "{}", stderr(&o));
}

#[test]
fn fhir_reads_times_without_an_offset_in_the_zone_given() {
    // Neither MSH-7 nor the result times carry an offset; Chicago is -06:00 in
    // January and -05:00 in July.
    let message = b"MSH|^~\\&|LAB|GHH|EHR|GHH|20240702120000||ORU^R01^ORU_R01|Z1|P|2.5.1\r\
PID|1||555^^^GHH^MR||DOE^JOHN\r\
OBR|1||F1^LAB|718-7^Hemoglobin^LN|||20240102093000\r\
OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|||||F|||20240702101500\r";
    let out = corridor(&["fhir", "--zone", "America/Chicago", "-"], Some(message));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("\"2024-01-02T09:30:00-06:00\""), "{text}");
    assert!(text.contains("\"2024-07-02T10:15:00-05:00\""), "{text}");

    let bad = corridor(&["fhir", "--zone", "Mars/Olympus", "-"], Some(message));
    assert_eq!(bad.status.code(), Some(2));
    assert!(stderr(&bad).contains("IANA time zone"), "{}", stderr(&bad));
}

/// Runs `corridor args` and returns its output, failing the test if it is still running
/// after `limit` (it is killed first): for commands that must not hang.
fn corridor_within(args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            let output = child.wait_with_output().unwrap();
            panic!(
                "corridor {args:?} still ran after {limit:?}; stderr: {}",
                stderr(&output)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_script_that_runs_code_outside_its_function_fails_the_check_and_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("corridor.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndir = {:?}\n[http]\nenabled = false\n\
             [channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n\
             transforms = [ {{ set = \"MSH-5\", value = \"EHR\" }}, {{ script = \"}}); while (true) {{}} (function (m) {{\" }} ]\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    // Both hung with no output: the load ran the loop with no time limit.
    for args in [
        vec!["config", "check", config],
        vec!["run", "--config", config],
    ] {
        let o = corridor_within(&args, std::time::Duration::from_secs(60));
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("lab") && err.contains("transforms[1]"),
            "{args:?}: {err}"
        );
        assert!(err.contains("outside its function"), "{args:?}: {err}");
    }
}
