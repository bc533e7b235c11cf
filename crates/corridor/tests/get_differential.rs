//! `corridor get` against python-hl7 (PyPI `hl7`) on the whole public corpus.
//!
//! For every message both can parse, the two must agree on MSH-9, MSH-10,
//! MSH-12, PID-3, PID-5, PID-7, PID-8, PV1-2, OBR-4, OBX-3, OBX-5 and OBX-6:
//! first segment of that name, first repetition, whole (with its component
//! separators), unescaped. Where they differ because python-hl7 is wrong, the
//! difference is listed in `PYTHON_HL7_IS_WRONG` with the reason; any other
//! difference fails the test, and so does a listed one that no longer occurs.
//!
//! The test makes its own virtual environment under target/py-venv-hl7 from
//! PyPI and runs one Python process over all the files.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PATHS: &[&str] = &[
    "MSH-9", "MSH-10", "MSH-12", "PID-3", "PID-5", "PID-7", "PID-8", "PV1-2", "OBR-4", "OBX-3",
    "OBX-5", "OBX-6",
];

/// The differences below were judged against the python-hl7 release of the `hl7`
/// peer in `tests/peers.txt` (0.4.5).
/// (file under tests/corpus/public, path, why python-hl7's value is wrong).
const PYTHON_HL7_IS_WRONG: &[(&str, &str, &str)] = &[];

/// The Python side: splits each file into messages, parses each with
/// python-hl7 and prints the values as JSON, one line per file.
const PYTHON_SIDE: &str = r#""""The python-hl7 side of Corridor's `get` differential test.

argv: the paths (SEG-n, first occurrence, first repetition). stdin: one file
name a line. stdout: one JSON object a line per file:
{"file": name, "messages": [{"values": {path: text}} | {"error": words}]}.

Messages are cut from each file as Corridor cuts them (a message starts at each
line beginning MSH; CR, LF or CRLF; FHS/BHS/BTS/FTS lines and blank lines are
not part of any message), then handed to hl7.parse one at a time with CR
between segments, which is all python-hl7 accepts.
"""
import json
import re
import sys

import hl7

ENVELOPE = (b"FHS", b"BHS", b"BTS", b"FTS")


def messages(data):
    current = None
    for line in re.split(rb"\r\n|\r|\n", data):
        if line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not line.strip():
            continue
        if line[:3] in ENVELOPE:
            if current is not None:
                yield current
            current = None
        elif line.startswith(b"MSH"):
            if current is not None:
                yield current
            current = [line]
        elif current is not None:
            current.append(line)
    if current is not None:
        yield current


def value(message, path):
    name, field = path.split("-")
    try:
        segment = message.segment(name)
    except KeyError:
        return ""
    n = int(field)
    if n >= len(segment):
        return ""
    element = segment[n]
    first = element[0] if len(element) else ""
    return message.unescape(str(first))


def main():
    paths = sys.argv[1:]
    for name in sys.stdin.read().splitlines():
        with open(name, "rb") as f:
            data = f.read()
        out = []
        for lines in messages(data):
            raw = b"\r".join(lines)
            try:
                text = raw.decode("latin-1" if b"|8859/1" in lines[0] else "utf-8")
                message = hl7.parse(text)
                out.append({"values": {p: value(message, p) for p in paths}})
            except Exception as e:  # python-hl7 cannot read it
                out.append({"error": "%s: %s" % (type(e).__name__, e)})
        print(json.dumps({"file": name, "messages": out}))


if __name__ == "__main__":
    main()
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn corpus_dir() -> PathBuf {
    workspace().join("tests/corpus/public")
}

fn corpus_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "hl7") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&corpus_dir(), &mut files);
    files.sort();
    assert!(
        files.len() > 250,
        "the corpus is incomplete: {}",
        files.len()
    );
    files
}

/// The venv's python, with python-hl7 installed from PyPI (once).
fn python_with_hl7() -> PathBuf {
    test_support::python_peer("hl7")
}

/// What one side read from one message: the values, or why it could not.
type Reading = Result<BTreeMap<String, String>, String>;

fn python_readings(files: &[PathBuf]) -> BTreeMap<PathBuf, Vec<Reading>> {
    let python = python_with_hl7();
    let script = workspace().join("target/py-venv-hl7/corridor_get_values.py");
    std::fs::write(&script, PYTHON_SIDE).unwrap();
    let mut child = Command::new(python)
        .arg(&script)
        .args(PATHS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let list: String = files.iter().map(|f| format!("{}\n", f.display())).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "the python side failed");
    let mut readings = BTreeMap::new();
    for line in String::from_utf8(output.stdout).unwrap().lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        let messages = record["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| match m.get("error") {
                Some(e) => Err(e.as_str().unwrap().to_string()),
                None => Ok(m["values"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), as_get_prints(v.as_str().unwrap())))
                    .collect()),
            })
            .collect();
        readings.insert(PathBuf::from(record["file"].as_str().unwrap()), messages);
    }
    assert_eq!(readings.len(), files.len(), "python read every file");
    readings
}

/// `get` prints line breaks inside a value as `\n`, to keep one line per value.
fn as_get_prints(value: &str) -> String {
    value.replace("\r\n", "\\n").replace(['\r', '\n'], "\\n")
}

fn corridor_readings(file: &Path) -> Vec<Reading> {
    let output = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .arg("get")
        .arg(file)
        .args(PATHS)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stdout.split_terminator('\n').collect();
    assert_eq!(
        lines.len() % PATHS.len(),
        0,
        "{}: {} lines is not a whole number of messages",
        file.display(),
        lines.len()
    );
    // Messages that do not parse are named on standard error.
    let failed: BTreeMap<usize, String> = stderr
        .lines()
        .filter_map(|l| {
            let (_, after) = l.split_once(": message ")?;
            let (number, _) = after.split_once(' ')?;
            Some((number.parse().ok()?, l.to_string()))
        })
        .collect();
    assert_eq!(
        output.status.code(),
        Some(if stderr.is_empty() { 0 } else { 1 }),
        "{}: {stderr}",
        file.display()
    );
    lines
        .chunks(PATHS.len())
        .enumerate()
        .map(|(i, values)| match failed.get(&(i + 1)) {
            Some(error) => Err(error.clone()),
            None => Ok(PATHS
                .iter()
                .zip(values)
                .map(|(p, v)| (p.to_string(), v.to_string()))
                .collect()),
        })
        .collect()
}

#[test]
fn corridor_get_agrees_with_python_hl7_on_the_corpus() {
    let files = corpus_files();
    let python = python_readings(&files);
    let mut used = BTreeSet::new();
    let mut unexplained = Vec::new();
    let (mut compared, mut values) = (0, 0);
    let (mut refused, mut python_cannot) = (0, Vec::new());
    let mut non_empty = 0;
    for file in &files {
        let rel = file
            .strip_prefix(corpus_dir())
            .unwrap()
            .to_string_lossy()
            .to_string();
        let ours = corridor_readings(file);
        let theirs = &python[file];
        assert_eq!(
            ours.len(),
            theirs.len(),
            "{rel}: corridor found {} messages, the python side {}",
            ours.len(),
            theirs.len()
        );
        for (n, (ours, theirs)) in ours.iter().zip(theirs).enumerate() {
            let (ours, theirs) = match (ours, theirs) {
                (Ok(ours), Ok(theirs)) => (ours, theirs),
                (Err(error), _) => {
                    // Only the corpus's deliberately broken messages may be
                    // refused; every other one must parse.
                    assert!(
                        rel.split('/').any(|part| part.starts_with("malformed")),
                        "corridor refused a valid message: {error}"
                    );
                    refused += 1;
                    continue;
                }
                (Ok(_), Err(error)) => {
                    python_cannot.push(format!("{rel} message {}: {error}", n + 1));
                    continue;
                }
            };
            compared += 1;
            for path in PATHS {
                values += 1;
                non_empty += usize::from(!ours[*path].is_empty());
                if ours[*path] == theirs[*path] {
                    continue;
                }
                let explained = PYTHON_HL7_IS_WRONG
                    .iter()
                    .position(|&(f, p, _)| f == rel && p == *path);
                if let Some(i) = explained {
                    used.insert(i);
                    continue;
                }
                unexplained.push(format!(
                    "{rel} message {} {path}:\n  corridor:   {:?}\n  python-hl7: {:?}",
                    n + 1,
                    ours[*path],
                    theirs[*path]
                ));
            }
        }
    }
    assert!(
        unexplained.is_empty(),
        "{} unexplained differences:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    let stale: Vec<_> = (0..PYTHON_HL7_IS_WRONG.len())
        .filter(|i| !used.contains(i))
        .map(|i| PYTHON_HL7_IS_WRONG[i])
        .collect();
    assert!(
        stale.is_empty(),
        "explained differences that no longer occur: {stale:?}"
    );
    // The comparison is not vacuous: most messages, many values.
    assert!(compared > 300, "only {compared} messages were compared");
    assert!(
        non_empty > 2000,
        "only {non_empty} non-empty values were compared"
    );
    eprintln!(
        "compared {values} values ({non_empty} non-empty) in {compared} messages; \
         corridor refused {refused} malformed messages; python-hl7 could not read {}:\n{}",
        python_cannot.len(),
        python_cannot.join("\n")
    );
}
