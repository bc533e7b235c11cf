//! The commands that read messages stream them: `corridor fhir` holds one
//! message at a time however large its input, and every such command takes
//! many files, naming the file in each error.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn corridor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
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

const ORU: &str = "cdc-data-exchange-hl7/COVID19_ELR_01.hl7";
const ADT: &str = "hapi-hl7v2/docs_ADT_A01.hl7";

/// A child's peak resident memory so far, in kB (0 once it is gone).
fn peak_resident_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn fhir_ndjson_on_a_large_input_keeps_memory_flat_and_prints_every_bundle() {
    // 48 MB of ORU^R01 messages through standard input: more than the bound
    // itself, so a command that read its whole input first could not pass.
    const INPUT_BYTES: usize = 48 << 20;
    const BOUND_KB: u64 = 40 << 10;
    let message = std::fs::read(corpus(ORU)).unwrap();
    let copies = INPUT_BYTES / message.len();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["fhir", "--ndjson", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut input = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        for _ in 0..copies {
            input.write_all(&message).unwrap();
            input.write_all(b"\r").unwrap();
        }
    });
    // VmHWM only grows; sampled while the child runs, the last sample is
    // its peak up to a moment before it exits.
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = std::thread::spawn({
        let (done, peak) = (done.clone(), peak.clone());
        move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(peak_resident_kb(pid), Ordering::Relaxed);
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    });
    let mut bundles = 0;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        let bundle: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(bundle["resourceType"], "Bundle", "line {}", bundles + 1);
        assert_eq!(bundle["type"], "transaction");
        bundles += 1;
    }
    peak.fetch_max(peak_resident_kb(pid), Ordering::Relaxed);
    done.store(true, Ordering::Relaxed);
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    sampler.join().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(bundles, copies);
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak > 0 && peak < BOUND_KB,
        "peak resident memory {peak} kB on {INPUT_BYTES} bytes of input"
    );
}

#[test]
fn fhir_resources_prints_each_entry_of_each_bundle_on_its_own_line() {
    let bundles = corridor(&["fhir", "--ndjson", &corpus(ORU), &corpus(ADT)]);
    let resources = corridor(&["fhir", "--resources", &corpus(ORU), &corpus(ADT)]);
    assert_eq!(resources.status.code(), Some(0), "{}", stderr(&resources));
    let expected: Vec<serde_json::Value> = stdout(&bundles)
        .lines()
        .flat_map(|line| {
            let bundle: serde_json::Value = serde_json::from_str(line).unwrap();
            let entries = bundle["entry"].as_array().unwrap().clone();
            entries.into_iter().map(|entry| entry["resource"].clone())
        })
        .collect();
    let printed: Vec<serde_json::Value> = stdout(&resources)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(expected.len() > 2);
    assert_eq!(printed, expected);
}

/// Two corpus messages in one file, LF between them.
fn both_in_one_file(name: &str) -> PathBuf {
    let path =
        std::env::temp_dir().join(format!("corridor-cli-stream-{}-{name}", std::process::id()));
    let mut bytes = std::fs::read(corpus(ORU)).unwrap();
    bytes.push(b'\n');
    bytes.extend(std::fs::read(corpus(ADT)).unwrap());
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn fhir_on_two_files_prints_what_it_prints_for_one_file_holding_both() {
    let both = both_in_one_file("fhir");
    let one_file = corridor(&["fhir", both.to_str().unwrap()]);
    let two_files = corridor(&["fhir", &corpus(ORU), &corpus(ADT)]);
    std::fs::remove_file(&both).unwrap();
    assert_eq!(two_files.status.code(), Some(0), "{}", stderr(&two_files));
    assert!(stdout(&two_files).starts_with("[\n  {\n"));
    let array: serde_json::Value = serde_json::from_str(&stdout(&two_files)).unwrap();
    assert_eq!(array.as_array().unwrap().len(), 2);
    assert_eq!(stdout(&two_files), stdout(&one_file));
}

#[test]
fn fhir_on_one_message_prints_one_bundle_object() {
    let o = corridor(&["fhir", &corpus(ADT)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let bundle: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
}

#[test]
fn get_reads_every_file_given_before_the_paths() {
    let o = corridor(&["get", &corpus(ORU), &corpus(ADT), "MSH-9.1", "MSH-9.2"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "ORU\nR01\nADT\nA01\n");
}

#[test]
fn a_file_that_cannot_be_read_is_named_and_the_others_are_still_read() {
    let (missing, oru) = (corpus("no-such-file.hl7"), corpus(ORU));
    for command in ["get", "parse", "fhir", "validate"] {
        let mut args = vec![command, &missing, &oru];
        if command == "get" {
            args.push("MSH-9.1");
        }
        let o = corridor(&args);
        assert_eq!(o.status.code(), Some(1), "{command}");
        assert!(
            stderr(&o).contains(&format!("cannot read {missing}")),
            "{command}: {}",
            stderr(&o)
        );
        assert!(
            !o.stdout.is_empty(),
            "{command} printed nothing for the file it could read"
        );
    }
}

#[test]
fn lines_outside_any_message_are_reported_with_their_file_and_line() {
    let path =
        std::env::temp_dir().join(format!("corridor-cli-stream-{}-stray", std::process::id()));
    std::fs::write(&path, b"PID|1\nMSH|^~\\&|A|B|||||ADT^A01|7|P|2.5\n").unwrap();
    let o = corridor(&["get", path.to_str().unwrap(), &corpus(ADT), "MSH-10"]);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{}: line 1: \"PID\"", path.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o).lines().next(), Some("7"));
}

#[test]
fn get_without_a_file_or_a_path_is_bad_usage() {
    let o = corridor(&["get", "MSH-10", "PID-3"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no FILE before the paths"),
        "{}",
        stderr(&o)
    );
    let o = corridor(&["get", &corpus(ADT), "PID-3x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("\"PID-3x\" is not a path"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn parse_json_on_several_files_names_the_file_of_each_message() {
    let o = corridor(&["parse", "--json", &corpus(ORU), &corpus(ADT)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let messages: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let files: Vec<&str> = messages
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, [corpus(ORU), corpus(ADT)]);
}

const THREE_OBX: &[u8] = b"MSH|^~\\&|LAB|H|EHR|H|20240101||ORU^R01|C1|P|2.5.1\rPID|1||111^^^H^MR~222^^^SSA^SS\rOBX|1|NM|WBC||7.5\rOBX|2|ST|NOTE||a\\F\\b\rOBX|3|ST|X||two~reps\r";

fn with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn get_prints_every_value_a_star_path_selects_on_a_line_of_its_own() {
    let o = with_stdin(
        &[
            "get",
            "-",
            "MSH-10",
            "OBX[*]-5",
            "PID-3[*].1",
            "OBX[*]-5[*]",
            "NTE[*]-3",
            "PID-9",
        ],
        THREE_OBX,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // MSH-10; OBX-5 of each OBX (first repetition); each PID-3.1; every
    // repetition of every OBX-5; no NTE: no line; absent plain path: "".
    assert_eq!(
        stdout(&o),
        "C1\n7.5\na|b\ntwo\n111\n222\n7.5\na|b\ntwo\nreps\n\n"
    );
}

#[test]
fn get_prints_every_segment_a_star_segment_path_selects() {
    let o = with_stdin(&["get", "-", "OBX[*]"], THREE_OBX);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "OBX|1|NM|WBC||7.5\nOBX|2|ST|NOTE||a\\F\\b\nOBX|3|ST|X||two~reps\n"
    );
}

#[test]
fn fhir_progress_when_asked_ends_with_the_count_of_messages() {
    let o = corridor(&["fhir", "--ndjson", "--progress", &corpus(ORU), &corpus(ADT)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let last = stderr(&o).lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("corridor: 2 messages in "), "{last}");
    // Without --progress (and stderr not a terminal) nothing is said.
    let o = corridor(&["fhir", "--ndjson", &corpus(ORU)]);
    assert_eq!(stderr(&o), "");
}

#[test]
fn fhir_names_a_file_without_messages_and_converts_the_others() {
    let empty =
        std::env::temp_dir().join(format!("corridor-cli-stream-{}-empty", std::process::id()));
    std::fs::write(&empty, b"\n\n").unwrap();
    let o = corridor(&["fhir", "--ndjson", empty.to_str().unwrap(), &corpus(ADT)]);
    std::fs::remove_file(&empty).unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!("{}: no HL7 v2 message in it", empty.display())),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o).lines().count(), 1);
}

#[test]
fn an_error_far_into_a_stream_names_its_message_number_and_line() {
    // 2,000 messages of three LF-ended lines (well past the first chunk
    // read), the 1,500th with a segment name that is not one.
    let mut input = Vec::new();
    for n in 1..=2000 {
        let pid = if n == 1500 { "P@D|1" } else { "PID|1" };
        input.extend_from_slice(
            format!("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|{n}|P|2.5\n{pid}\nPV1|1|I\n").as_bytes(),
        );
    }
    let o = with_stdin(&["get", "-", "MSH-10"], &input);
    assert_eq!(o.status.code(), Some(1));
    let line = 3 * 1499 + 1;
    assert!(
        stderr(&o).starts_with(&format!("corridor: <stdin>: message 1500 (line {line}): ")),
        "{}",
        stderr(&o)
    );
    let printed = stdout(&o);
    let values: Vec<&str> = printed.lines().collect();
    assert_eq!(values.len(), 2000);
    assert_eq!(
        (values[1498], values[1499], values[1500]),
        ("1499", "", "1501")
    );
}

#[test]
fn parse_on_several_files_names_the_file_before_each_message() {
    let o = corridor(&["parse", &corpus(ORU), &corpus(ADT)]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let heads: Vec<String> = stdout(&o)
        .lines()
        .filter(|line| line.contains(": message 1: "))
        .map(|line| line.split(": message").next().unwrap().to_string())
        .collect();
    assert_eq!(heads, [corpus(ORU), corpus(ADT)]);
    // One file: the tree starts as it always has.
    let o = corridor(&["parse", &corpus(ADT)]);
    assert!(
        stdout(&o).starts_with("message 1: ADT^A01"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn fhir_coverage_prints_per_message_what_was_mapped_skipped_or_unknown() {
    let site =
        std::env::temp_dir().join(format!("corridor-cli-stream-{}-zseg", std::process::id()));
    std::fs::write(
        &site,
        b"MSH|^~\\&|A|B|C|D|20240102||QBP^Q22^QBP_Q21|Q1|P|2.5.1\r\
          QPD|IHE PDQ Query|Q1|@PID.5.1^DOE\r\
          PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F\r\
          ZPI|1|site data\r",
    )
    .unwrap();
    let o = corridor(&["fhir", "--coverage", &corpus(ADT), site.to_str().unwrap()]);
    std::fs::remove_file(&site).unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", stdout(&o));
    let segment = |line: &serde_json::Value, name: &str| {
        line["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["segment"] == name)
            .cloned()
            .unwrap()
    };
    let adt = &lines[0];
    assert_eq!(adt["type"], "ADT^A01^ADT_A01");
    assert_eq!(adt["message"], 1);
    assert_eq!(adt["converted"], true);
    let pid = segment(adt, "PID");
    assert_eq!(pid["status"], "mapped");
    assert!(pid["mapped"].as_array().unwrap().contains(&"PID-5".into()));
    let query = &lines[1];
    assert_eq!(query["type"], "QBP^Q22^QBP_Q21");
    assert_eq!(segment(query, "PID")["status"], "mapped");
    let qpd = segment(query, "QPD");
    assert_eq!(qpd["status"], "skipped");
    assert_eq!(
        qpd["skipped"],
        serde_json::json!(["QPD-1", "QPD-2", "QPD-3"])
    );
    let zpi = segment(query, "ZPI");
    assert_eq!(zpi["status"], "unknown");
    assert_eq!(zpi["position"], 4);
    let total = |line: &serde_json::Value, key: &str| line[key].as_u64().unwrap();
    assert!(total(query, "mapped_fields") >= 4);
    // PID-1 (set id) and MSH-11/12 change nothing in a Bundle, nor does a
    // date-only MSH-7 (not an instant): with QPD's 3 and ZPI's 2, 9 fields.
    assert_eq!(
        segment(query, "PID")["skipped"],
        serde_json::json!(["PID-1"])
    );
    assert_eq!(total(query, "skipped_fields"), 9);
}

#[test]
fn fhir_coverage_is_not_mixed_with_bundle_layouts() {
    let o = corridor(&["fhir", "--coverage", "--ndjson", &corpus(ADT)]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
