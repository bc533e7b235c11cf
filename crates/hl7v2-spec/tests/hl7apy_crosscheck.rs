//! Cross-check with hl7apy (PyPI), the validator the issue names as the peer.
//!
//! The test installs hl7apy 1.3.5 into its own venv under target/, lets it
//! validate the corpus messages it can parse, and compares the findings both
//! tools attach to the same location: a missing required field (`PID-3`), a
//! missing required segment or group, a field or segment over its limit.
//! hl7apy's other complaints ("Invalid children detected", datatype notes)
//! have no location we could compare and are left out.
//!
//! On the corpus (199 messages hl7apy can parse): 162 locations found by
//! both, 76 by hl7apy only, 18 by Corridor only. The hl7apy-only ones are
//! listed one by one, under these causes, in `hl7apy/only_hl7apy.txt`, and
//! the test fails when they change. The disagreements, by cause:
//!
//! Only hl7apy:
//! - ORM_O01's choice <OBR|RQD|RQ1|RXO|ODS|ODT>: hl7apy checks a choice like
//!   a sequence and reports the five alternatives not sent as missing (7
//!   messages x 5); it names 2.3.1's choice group `CHOICE` where Corridor
//!   reports the enclosing ORDER_DETAIL.
//! - OML_O21/O33 with ORC after SPM: hl7apy's greedy group finder puts the
//!   ORC into PRIOR_RESULT and then misses OBSERVATION_PRIOR; Corridor's
//!   lookahead opens a new ORDER, where the following TQ1/OBR/SPM fit.
//! - hl7apy's own 2.2 ORM_O01 requires an NTE after OBX (the generator
//!   corrects that defect for Corridor).
//! - Components hl7apy's datatype model makes required (TS.2 in 2.2, CX.5 in
//!   the 2.7 RSP_K21 samples); the HL7 tables have them optional.
//! - Repetitions of fields hl7apy leaves untyped (2.5.1 OBX-20..22).
//! - Segments out of place (a WHOOPS segment in a VXU order, concatenated
//!   messages, a file using `^` as field separator): hl7apy then reports the
//!   group's required segments missing; Corridor reports the misplaced one.
//!
//! Only Corridor:
//! - Events sharing a structure (ADT^A04): hl7apy looks up MSH-9.1_MSH-9.2
//!   only and checks no segments; Corridor uses the event map and finds the
//!   missing PV1.
//! - RSP^K11 content: hl7apy's RSP_K11 lacks the query profile's segments
//!   and does not check them; Corridor checks every segment it defines
//!   (RXA-4, RXA-6, PID-5 empty).
//! - QPD-3 repeated in IHE PDQ queries: `varies`, not repeating, in 2.5.
//! - Segment order (an ORU with PD1 after PV1 and no PID before it; a
//!   second OBR in one ORM order): hl7apy does not check order, and reports
//!   neither; Corridor reports the misplaced segment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use hl7v2_spec::Spec;
use hl7v2_spec::validate::{FindingKind, SplitMessage, ValidationOptions, validate_message};

fn workspace() -> PathBuf {
    // Canonical, so the venv's own paths and the ones we run agree.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The venv's python, with hl7apy installed from PyPI (once).
fn hl7apy_python() -> PathBuf {
    test_support::python_peer("hl7apy")
}

fn corpus_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "hl7") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&workspace().join("tests/corpus/public"), &mut files);
    files.retain(|p| {
        let s = p.to_string_lossy().to_lowercase();
        ![
            "/malformed",
            "/batch",
            "testerror",
            "invalid",
            "bad",
            "error",
        ]
        .iter()
        .any(|w| s.contains(w))
    });
    files
}

/// A location both tools can name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    MissingField(String),
    MissingSegment(String),
    MissingGroup(String),
    FieldRepeats(String),
    SegmentRepeats(String),
}

fn is_segment_id(s: &str) -> bool {
    s.len() == 3
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl Key {
    /// As written in `tests/hl7apy/only_hl7apy.txt`: the kind, a space, the location.
    fn listed(&self) -> String {
        let (kind, location) = match self {
            Key::MissingField(l) => ("MissingField", l),
            Key::MissingSegment(l) => ("MissingSegment", l),
            Key::MissingGroup(l) => ("MissingGroup", l),
            Key::FieldRepeats(l) => ("FieldRepeats", l),
            Key::SegmentRepeats(l) => ("SegmentRepeats", l),
        };
        format!("{kind} {location}")
    }
}

/// The reviewed hl7apy-only findings: `file<TAB>finding` lines, `#` starting comments.
fn reviewed_only_hl7apy() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hl7apy/only_hl7apy.txt");
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// hl7apy's `[kind, parent, child]` as a key.
fn hl7apy_key(kind: &str, parent: &str, child: &str) -> Option<Key> {
    if let Some((seg, n)) = child.split_once('_') {
        if seg == parent && n.bytes().all(|b| b.is_ascii_digit()) {
            let field = format!("{seg}-{n}");
            return match kind {
                "missing" => Some(Key::MissingField(field)),
                "too_many" => Some(Key::FieldRepeats(field)),
                _ => None,
            };
        }
    }
    match (kind, is_segment_id(child)) {
        ("missing", true) => Some(Key::MissingSegment(child.to_string())),
        ("too_many", true) => Some(Key::SegmentRepeats(child.to_string())),
        // Group names carry the structure prefix: ORU_R01_OBSERVATION.
        ("missing", false) => Some(Key::MissingGroup(
            child.get(8..).unwrap_or(child).to_string(),
        )),
        _ => None,
    }
}

fn our_keys(version: &str, text: &str) -> BTreeSet<Key> {
    let Some(message) = SplitMessage::parse(text) else {
        return BTreeSet::new();
    };
    let spec = Spec::nearest(version).unwrap().spec;
    let mut keys = BTreeSet::new();
    for f in validate_message(spec, &message, &ValidationOptions::default()) {
        let field = f.field.map(|p| format!("{}-{}", f.segment_id, p.field));
        let last = f.path.rsplit('.').next().unwrap_or("").to_string();
        let key = match f.kind {
            FindingKind::RequiredFieldMissing => field.map(Key::MissingField),
            FindingKind::TooManyFieldRepetitions => field.map(Key::FieldRepeats),
            FindingKind::TooManyRepetitions => Some(Key::SegmentRepeats(f.segment_id.clone())),
            FindingKind::MissingSegment if is_segment_id(&last) => Some(Key::MissingSegment(last)),
            FindingKind::MissingSegment => Some(Key::MissingGroup(last)),
            _ => None,
        };
        keys.extend(key);
    }
    keys
}

struct Tally {
    both: usize,
    only_hl7apy: BTreeMap<String, Vec<Key>>,
    only_ours: BTreeMap<String, Vec<Key>>,
    files: usize,
}

fn cross_check() -> Tally {
    let python = hl7apy_python();
    let files = corpus_files();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hl7apy/crosscheck.py");
    let output = Command::new(python)
        .arg(script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut tally = Tally {
        both: 0,
        only_hl7apy: BTreeMap::new(),
        only_ours: BTreeMap::new(),
        files: 0,
    };
    for path in &files {
        let entry = &report[path.to_string_lossy().as_ref()];
        let Some(version) = entry["version"].as_str() else {
            continue;
        };
        if !entry["error"].is_null() {
            continue;
        }
        tally.files += 1;
        let theirs: BTreeSet<Key> = entry["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|f| hl7apy_key(f[0].as_str()?, f[1].as_str()?, f[2].as_str()?))
            .collect();
        let text = String::from_utf8_lossy(&std::fs::read(path).unwrap()).into_owned();
        let ours = our_keys(version, &text);
        let name = path
            .strip_prefix(workspace().join("tests/corpus/public"))
            .unwrap()
            .display()
            .to_string();
        tally.both += theirs.intersection(&ours).count();
        let a: Vec<Key> = theirs.difference(&ours).cloned().collect();
        let b: Vec<Key> = ours.difference(&theirs).cloned().collect();
        if !a.is_empty() {
            tally.only_hl7apy.insert(name.clone(), a);
        }
        if !b.is_empty() {
            tally.only_ours.insert(name, b);
        }
    }
    tally
}

#[test]
fn findings_agree_with_hl7apy_where_both_name_a_location() {
    let tally = cross_check();
    let only_theirs: usize = tally.only_hl7apy.values().map(Vec::len).sum();
    let only_ours: usize = tally.only_ours.values().map(Vec::len).sum();
    for (file, keys) in &tally.only_hl7apy {
        println!("only hl7apy  {file}: {keys:?}");
    }
    for (file, keys) in &tally.only_ours {
        println!("only Corridor {file}: {keys:?}");
    }
    println!(
        "{} messages compared; same location: {}, only hl7apy: {only_theirs}, only Corridor: {only_ours}",
        tally.files, tally.both
    );
    // Guards against drifting from the figures above.
    assert!(
        tally.files >= 190,
        "hl7apy parsed only {} messages",
        tally.files
    );
    assert!(tally.both >= 155, "only {} common findings", tally.both);
    assert!(
        only_ours <= 18,
        "{only_ours} findings hl7apy does not share"
    );

    // Every finding hl7apy makes alone was reviewed, and each reviewed one still occurs:
    // a validator change that loses a finding hl7apy has shows up here by name.
    let found: BTreeSet<String> = tally
        .only_hl7apy
        .iter()
        .flat_map(|(file, keys)| {
            keys.iter()
                .map(move |key| format!("{file}\t{}", key.listed()))
        })
        .collect();
    let reviewed = reviewed_only_hl7apy();
    let new: Vec<&String> = found.difference(&reviewed).collect();
    let gone: Vec<&String> = reviewed.difference(&found).collect();
    assert!(
        new.is_empty() && gone.is_empty(),
        "hl7apy-only findings differ from tests/hl7apy/only_hl7apy.txt\n\
         not reviewed: {new:#?}\nno longer found: {gone:#?}"
    );
    assert_eq!(only_theirs, reviewed.len());
}
