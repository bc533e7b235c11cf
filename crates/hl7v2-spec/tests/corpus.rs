//! Structural validation of the public sample corpus (tests/corpus/public).
//!
//! The messages are split into segments here with a few lines of code (the
//! segment id is what comes before the first field separator), so this test
//! depends on nothing but the corpus files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hl7v2_spec::Spec;
use hl7v2_spec::validate::{
    Finding, FindingKind, Severity, SplitMessage, ValidationOptions, validate_message,
    validate_segments,
};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public")
}

fn hl7_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            hl7_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "hl7") {
            out.push(path);
        }
    }
}

/// Deliberately broken samples, by the corpus's own conventions.
fn marked_invalid(path: &Path) -> bool {
    let text = path.to_string_lossy();
    let name = path.file_name().unwrap().to_string_lossy().to_lowercase();
    text.contains("/malformed")
        || text.contains("/batch")
        || text.contains("testerror")
        || ["invalid", "bad", "error"].iter().any(|w| name.contains(w))
}

struct Sample {
    segments: Vec<String>,
    msh9: Vec<String>,
    version: String,
}

fn split(bytes: &[u8]) -> Option<Sample> {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_start_matches('\u{feff}');
    let lines: Vec<&str> = text
        .split(['\r', '\n'])
        .filter(|l| !l.trim().is_empty())
        .collect();
    let msh = *lines.first()?;
    if !msh.starts_with("MSH") || msh.len() < 8 {
        return None;
    }
    let field_sep = msh[3..].chars().next()?;
    let component_sep = msh[4..].chars().next()?;
    let fields: Vec<&str> = msh.split(field_sep).collect();
    // fields[0] = "MSH", fields[1] = MSH-2, so MSH-n is fields[n - 1].
    let msh9 = fields
        .get(8)?
        .split(component_sep)
        .map(str::to_string)
        .collect();
    let version = fields
        .get(11)
        .map(|v| v.split(component_sep).next().unwrap_or(""))
        .unwrap_or("");
    let segments = lines
        .iter()
        .map(|l| l.split(field_sep).next().unwrap_or("").to_string())
        .collect();
    Some(Sample {
        segments,
        msh9,
        version: version.to_string(),
    })
}

fn check(sample: &Sample) -> Vec<Finding> {
    let spec = Spec::nearest(&sample.version)
        .map(|m| m.spec)
        .unwrap_or(Spec::version("2.5.1").unwrap());
    let get = |i: usize| sample.msh9.get(i).map(String::as_str).unwrap_or("");
    validate_segments(spec, get(0), get(1), Some(get(2)), &sample.segments)
}

fn validate_file(path: &Path) -> Vec<Finding> {
    let sample = split(&std::fs::read(path).unwrap())
        .unwrap_or_else(|| panic!("{} has no MSH", path.display()));
    check(&sample)
}

#[test]
fn nist_elr_and_cdc_immunization_samples_are_structurally_clean() {
    let mut files = Vec::new();
    hl7_files(
        &corpus_dir().join("nist-elr-via-node-hl7-complete"),
        &mut files,
    );
    hl7_files(&corpus_dir().join("cdc-iis-open-tools"), &mut files);
    files.retain(|p| !marked_invalid(p) && !p.to_string_lossy().contains("testencoding"));
    assert!(files.len() >= 20, "{}", files.len());
    for path in &files {
        assert_eq!(validate_file(path), vec![], "{}", path.display());
    }
}

#[test]
fn nist_elr_samples_pass_full_validation_with_warnings_only() {
    let mut files = Vec::new();
    hl7_files(
        &corpus_dir().join("nist-elr-via-node-hl7-complete"),
        &mut files,
    );
    assert_eq!(files.len(), 6);
    let spec = Spec::version("2.5.1").unwrap();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        let message = SplitMessage::parse(&text).unwrap();
        let findings = validate_message(spec, &message, &ValidationOptions::default());
        let errors: Vec<_> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .collect();
        assert_eq!(errors, Vec::<&Finding>::new(), "{}", path.display());
        // The one warning: OBR-3 is longer than 2.5.1's 22 characters.
        assert!(
            findings.iter().all(|f| f.kind == FindingKind::TooLong),
            "{findings:?}"
        );
    }
}

#[test]
fn known_structural_defects_of_the_corpus_are_found_where_they_are() {
    let dir = corpus_dir();
    // A segment named WHOOPS inside a VXU^V04 order.
    let f = validate_file(&dir.join("cdc-iis-open-tools/testencoding/testencoding_01.hl7"));
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].kind, f[0].path.as_str()),
        (FindingKind::UnexpectedSegment, "VXU_V04.ORDER.WHOOPS")
    );
    // PRT is a 2.7 segment; this message says it is 2.5.1.
    let f = validate_file(&dir.join(
        "cdc-data-exchange-hl7/InterPartner_CELR_TX_AIMSPlatform_Prod_Prod_202104050139_STOP_ATVersion251.hl7",
    ));
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].path, "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.PRT");
    // ADT^A01 samples without the required PV1.
    let f = validate_file(&dir.join("openintegrationengine/TestADT/TestADT_001.hl7"));
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].kind, f[0].path.as_str()),
        (FindingKind::MissingSegment, "ADT_A01.PV1")
    );
}

/// Most corpus messages are structurally clean. The rest, by cause (run with
/// `--nocapture` to list them): test files that are not conformant on purpose
/// or by accident (MSH-only samples, ORM without ORDER, ADT without PV1,
/// WHOOPS/SCT segments, 2.7 segments in 2.5.1 messages, ORM^O01 sent as 2.7
/// where ORM no longer exists); CDC IIS RSP^K11 responses put ERR after QAK
/// (the standard has it before); hl7apy's test RSP^K21 messages omit QRI,
/// which RSP_K21 requires; the HAPI OML_O21 example concatenates several
/// messages.
#[test]
fn corpus_findings_summary() {
    let mut files = Vec::new();
    hl7_files(&corpus_dir(), &mut files);
    assert!(
        files.len() > 200,
        "corpus not found at {}",
        corpus_dir().display()
    );
    let mut clean = 0;
    let mut report = BTreeMap::new();
    for path in files.iter().filter(|p| !marked_invalid(p)) {
        let Some(sample) = split(&std::fs::read(path).unwrap()) else {
            continue;
        };
        let findings = check(&sample);
        if findings.is_empty() {
            clean += 1;
        } else {
            let lines = findings.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            report.insert(path.clone(), lines);
        }
    }
    for (path, findings) in &report {
        println!(
            "{}: {}",
            path.strip_prefix(corpus_dir()).unwrap().display(),
            findings.join(" | ")
        );
    }
    println!("clean: {clean}, with findings: {}", report.len());
    // A regression guard: the matcher may improve, never silently worsen.
    assert!(clean >= 169, "only {clean} clean messages");
}
