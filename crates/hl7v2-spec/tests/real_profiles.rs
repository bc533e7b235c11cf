//! Real conformance profiles of real implementation guides, loaded from
//! `tests/profiles/real/` (byte-exact copies; see `tests/profiles/SOURCES.md`)
//! and applied to their own sample messages and to the public corpus.
//!
//! Every finding that remains on a message the corpus calls valid is
//! asserted and explained next to the assertion.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hl7v2_spec::validate::{MessageFields, Profile, Severity, SplitMessage, ValidationOptions};
use hl7v2_spec::{Spec, StructureNode};

const IZ: &str = "tests/profiles/real/iz/immunization-profile.xml";
const ELR: &str = "tests/profiles/real/elr/nist-elr-2.5.1.xml";
const ITI_8: &str = "tests/profiles/real/ihe/iti-8-adt-a40/1.3.6.1.4.12559.11.1.1.26.xml";
const ITI_9: &str = "tests/profiles/real/ihe/iti-9-rsp-k23/1.3.6.1.4.12559.11.1.1.30.xml";
const ITI_21: &str = "tests/profiles/real/ihe/iti-21-qbp-q22/1.3.6.1.4.12559.11.1.1.31.xml";
const CDC: &str = "../../tests/corpus/public/cdc-iis-open-tools";
const NIST_ELR: &str = "../../tests/corpus/public/nist-elr-via-node-hl7-complete";

fn here(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn load(rel: &str) -> Profile {
    Profile::load(here(rel)).unwrap()
}

/// `(severity, path, 0357 code)` of every finding, in order.
fn findings(profile: &Profile, rel: &str) -> Vec<(Severity, String, u16)> {
    let text = String::from_utf8_lossy(&std::fs::read(here(rel)).unwrap()).into_owned();
    findings_of_text(profile, &text)
}

fn findings_of_text(profile: &Profile, text: &str) -> Vec<(Severity, String, u16)> {
    let message = SplitMessage::parse(text).unwrap();
    let version = message.field(0, 12).unwrap_or("2.5.1").to_string();
    let spec = Spec::nearest(&version).unwrap().spec;
    profile
        .validate(spec, &message, &ValidationOptions::default())
        .into_iter()
        .map(|f| (f.severity, f.path, f.code.code()))
        .collect()
}

fn errors(profile: &Profile, rel: &str) -> Vec<(String, u16)> {
    only_errors(findings(profile, rel))
}

fn only_errors(all: Vec<(Severity, String, u16)>) -> Vec<(String, u16)> {
    all.into_iter()
        .filter(|f| f.0 == Severity::Error)
        .map(|f| (f.1, f.2))
        .collect()
}

fn owned(list: &[(&str, u16)]) -> Vec<(String, u16)> {
    list.iter().map(|(p, c)| (p.to_string(), *c)).collect()
}

/// Paths without repetition numbers (`OBX[2]-1` -> `OBX-1`), as a set.
fn distinct_paths(list: &[(String, u16)]) -> BTreeSet<String> {
    list.iter()
        .map(|(p, _)| {
            let mut out = String::new();
            let mut skip = false;
            for ch in p.chars() {
                match ch {
                    '[' => skip = true,
                    ']' => skip = false,
                    _ if !skip => out.push(ch),
                    _ => {}
                }
            }
            out
        })
        .collect()
}

fn files_in(rel: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(here(rel))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "hl7"))
        .map(|p| format!("{rel}/{}", p.file_name().unwrap().to_string_lossy()))
        .collect();
    out.sort();
    out
}

fn top_level(profile: &Profile) -> Vec<&str> {
    profile
        .structure()
        .unwrap()
        .children
        .iter()
        .map(StructureNode::name)
        .collect()
}

#[test]
fn all_five_real_profiles_load_with_their_structure() {
    let iz = load(IZ);
    assert_eq!(iz.name, "Immunization Messaging");
    assert_eq!(iz.structure().unwrap().id, "VXU_V04");
    // NIST's flattened VXU: PV1/PV2 at the top, INSURANCE and ORDER groups.
    let iz_top = top_level(&iz);
    assert_eq!(iz_top[..3], ["MSH", "SFT", "PID"]);
    assert!(iz_top.contains(&"INSURANCE") && iz_top.contains(&"ORDER"));
    let order = iz.structure().unwrap().group(&["ORDER"]).unwrap();
    assert!(!order.cardinality.is_required() && order.cardinality.is_repeating());
    let rxa = iz.segments().iter().find(|s| s.id == "RXA").unwrap();
    // NIST's CE_IZ is checked as the base CE.
    assert_eq!(rxa.field(5).unwrap().data_type, "CE");
    assert_eq!(
        rxa.field(5).unwrap().max_length,
        Some(483),
        "MaxLength is read"
    );

    let elr = load(ELR);
    assert_eq!(elr.name, "Electronic Laboratory Results");
    let s = elr.structure().unwrap();
    assert_eq!(s.id, "ORU_R01");
    for path in [
        &["PATIENT_RESULT"][..],
        &["PATIENT_RESULT", "PATIENT"],
        &["PATIENT_RESULT", "PATIENT", "VISIT"],
        &["PATIENT_RESULT", "ORDER_OBSERVATION"],
        &["PATIENT_RESULT", "ORDER_OBSERVATION", "TIMING_QTY"],
        &["PATIENT_RESULT", "ORDER_OBSERVATION", "OBSERVATION"],
        &["PATIENT_RESULT", "ORDER_OBSERVATION", "SPECIMEN"],
    ] {
        assert!(s.group(path).is_some(), "ELR group {path:?}");
    }
    // DSC has usage X (0..0): it is not part of the structure.
    assert!(!top_level(&elr).contains(&"DSC"));

    let iti8 = load(ITI_8);
    assert_eq!(iti8.structure().unwrap().id, "ADT_A39");
    assert_eq!(top_level(&iti8), ["MSH", "EVN", "PATIENT"]);
    let iti9 = load(ITI_9);
    assert_eq!(iti9.structure().unwrap().id, "RSP_K23");
    assert!(top_level(&iti9).contains(&"QUERY_RESPONSE"));
    let iti21 = load(ITI_21);
    assert_eq!(iti21.structure().unwrap().id, "QBP_Q21");
    assert_eq!(top_level(&iti21)[0], "MSH");
    assert!(top_level(&iti21).contains(&"QPD") && top_level(&iti21).contains(&"RCP"));
}

#[test]
fn iz_profile_accepts_the_cdc_z22_adult_vxus() {
    let iz = load(IZ);
    let adults: Vec<String> = files_in(CDC)
        .into_iter()
        .filter(|f| f.contains("Adult_z22"))
        .collect();
    assert_eq!(adults.len(), 4);
    for file in &adults {
        let all = findings(&iz, file);
        assert_eq!(only_errors(all.clone()), [], "{file}");
        // The only warnings are values the HL7 tables do not list: coding
        // systems (CDCREC in PID-10.3/22.3, CDCPHINVS and NullFlavor in
        // OBX-5.3; CVX, MVX, NCIT in RXA and RXR) are names that table
        // 0396 of 2.5.1 lacks, and PID-11.11 and RXA-11.14 hold FIPS county
        // codes (table 0289 is user-defined).
        for (severity, path, code) in all {
            assert_eq!(severity, Severity::Warning);
            assert!(
                (path.ends_with(".3")
                    || path.ends_with("PID-11.11")
                    || path.ends_with("RXA-11.14"))
                    && code == 103,
                "{file}: {path}"
            );
        }
    }
}

#[test]
fn iz_profile_flags_its_own_sample_where_it_breaks_the_guide() {
    // The repository does not claim the sample conforms; each finding is
    // real against IZ MU 2014 1.1.
    let iz = load(IZ);
    assert_eq!(
        errors(&iz, "tests/profiles/real/iz/hl7DtapMessage.txt"),
        owned(&[
            ("VXU_V04.PID-3.4", 101),  // no assigning authority (CX.4 is R)
            ("VXU_V04.PID-9", 102),    // patient alias: usage X, but sent
            ("VXU_V04.PID-10.3", 101), // race without its coding system
            ("VXU_V04.PID-13.1", 102), // XTN.1 (old phone format) is X
            ("VXU_V04.PID-13[2].1", 102),
            ("VXU_V04.PID-13.2", 101), // telecom use code is R
            ("VXU_V04.PID-13[2].2", 101),
            ("VXU_V04.PID-22.3", 101), // ethnicity without its coding system
            ("VXU_V04.NK1-1", 101),    // NK1 set id is R
            ("VXU_V04.NK1-3.3", 101),  // relationship without coding system
            ("VXU_V04.ORDER.ORC-3.2", 101), // C: EI.2 is R when EI.3 is empty
            ("VXU_V04.ORDER.RXA-2", 103), // 999; statement IZ-29 says "1"
            ("VXU_V04.ORDER.RXA-7.3", 101),
            ("VXU_V04.ORDER.RXA-10.9", 101), // C: XCN.9 is R when XCN.1 is valued
            ("VXU_V04.ORDER.RXA-17.3", 101),
            ("VXU_V04.ORDER.RXR-1.3", 101),
            ("VXU_V04.ORDER.RXR-2.3", 101), // C: CE.3 is R when CE.1 is valued
            ("VXU_V04.ORDER.OBX-4", 101),   // observation sub-id is R
            ("VXU_V04.ORDER.OBX-11", 101),  // result status is R
        ])
    );
}

/// What the IZ profile requires and the CDC COVID-19 extract messages
/// (MSH-21 `COVID-A`, a de-identified reporting format) leave out: set ids
/// (ORC-1 is "order control" R, RXA-1/2 sub-id and dose number, OBX-1/4),
/// administered amount RXA-6, result status OBX-11, PID-3 assigning
/// authority and identifier type, PID-11.7 address type. They are true
/// findings: these messages follow the extract's rules
/// (`cdc_covid_extract.toml`), not the IZ guide.
///
/// Conditional usage adds ORC-3.2: the filler order number
/// (`good1_sample1`) has neither namespace (EI.2) nor OID (EI.3), and EI.2
/// is R when EI.3 is empty.
const COVID_EXTRACT_GAPS: [&str; 11] = [
    "VXU_V04.ORDER.OBX-1",
    "VXU_V04.ORDER.OBX-11",
    "VXU_V04.ORDER.OBX-4",
    "VXU_V04.ORDER.ORC-1",
    "VXU_V04.ORDER.ORC-3.2",
    "VXU_V04.ORDER.RXA-1",
    "VXU_V04.ORDER.RXA-2",
    "VXU_V04.ORDER.RXA-6",
    "VXU_V04.PID-11.7",
    "VXU_V04.PID-3.4",
    "VXU_V04.PID-3.5",
];

#[test]
fn iz_profile_reports_only_the_fields_the_covid_extract_omits() {
    let iz = load(IZ);
    let gaps: BTreeSet<String> = COVID_EXTRACT_GAPS.iter().map(|s| s.to_string()).collect();
    let mut files = files_in(&format!("{CDC}/testgood"));
    files.extend(files_in(&format!("{CDC}/testdefault")));
    assert_eq!(files.len(), 14);
    for file in &files {
        let errs = errors(&iz, file);
        assert!(
            errs.iter().all(|(_, code)| [101, 102, 103].contains(code)),
            "{file}: {errs:?}"
        );
        let mut paths = distinct_paths(&errs);
        // testdefault 02, 04, 06, 07 also send an OBX without OBX-5, which
        // the profile requires (R): a true finding.
        paths.remove("VXU_V04.ORDER.OBX-5");
        // Where RXA-11.4 names the facility `Luna&999999`, its universal id
        // is not an OID, as the profile's conformance statement requires,
        // and HD.3 (universal id type) is R once HD.2 is valued.
        if paths.remove("VXU_V04.ORDER.RXA-11.4.2") {
            assert!(errs.contains(&("VXU_V04.ORDER.RXA-11.4.2".into(), 102)));
            assert!(paths.remove("VXU_V04.ORDER.RXA-11.4.3"));
        }
        assert_eq!(paths, gaps, "{file}");
    }
}

#[test]
fn iz_profile_flags_known_errors_at_their_location_where_it_has_a_rule() {
    let iz = load(IZ);
    let extra = |file: &str| -> BTreeSet<String> {
        let mut paths = distinct_paths(&errors(&iz, &format!("{CDC}/testerror/{file}")));
        for gap in COVID_EXTRACT_GAPS {
            paths.remove(gap);
        }
        // Not an OID in RXA-11.4.2, and no RXA-11.4.3, as in the good samples.
        paths.remove("VXU_V04.ORDER.RXA-11.4.2");
        paths.remove("VXU_V04.ORDER.RXA-11.4.3");
        paths
    };
    // DATA001_recip_dob: no birth date (PID-7 is R); the message also has no
    // vaccine code.
    assert_eq!(
        extra("testerror_01.hl7"),
        BTreeSet::from(["VXU_V04.PID-7".into(), "VXU_V04.ORDER.RXA-5".into()])
    );
    // DATA009_admin_date_1: no administration date (RXA-3 is R).
    assert!(extra("testerror_02.hl7").contains("VXU_V04.ORDER.RXA-3"));
    // DATA001_admin_date_2: dates cut to the month (RXA-3 `202010`, PID-7
    // `201508`). The IZ profile asks for a day only in the birth date
    // (statement IZ-26), so that is where it reports.
    assert_eq!(
        extra("testerror_03.hl7"),
        BTreeSet::from(["VXU_V04.PID-7.1".to_string()])
    );
    // The others break rules of the COVID extract that the IZ guide does not
    // have (an unredacted name, MSH-8 extract type, a second PID-3 id, a
    // city value): nothing beyond the common gaps, except testerror_05's
    // missing vaccine code.
    for file in ["testerror_04.hl7", "testerror_06.hl7", "testerror_07.hl7"] {
        assert_eq!(extra(file), BTreeSet::new(), "{file}");
    }
    assert_eq!(
        extra("testerror_05.hl7"),
        BTreeSet::from(["VXU_V04.ORDER.RXA-5".to_string()])
    );
    // The encoding test files are broken in structure.
    let e1 = errors(&iz, &format!("{CDC}/testencoding/testencoding_01.hl7"));
    assert!(e1.contains(&("VXU_V04.ORDER.WHOOPS".into(), 100)));
    let e2 = errors(&iz, &format!("{CDC}/testencoding/testencoding_02.hl7"));
    assert!(e2.contains(&("VXU_V04.PID".into(), 100)), "{e2:?}");
}

#[test]
fn elr_profile_accepts_its_own_elims_samples() {
    let elr = load(ELR);
    for file in files_in("tests/profiles/real/elr") {
        let all = findings(&elr, &file);
        // The only errors: addresses in Puerto Rico. Statement ELR-010
        // lists the states' FIPS 5-2 codes and leaves the territories out.
        for (path, code) in only_errors(all.clone()) {
            assert!(
                code == 103 && (path.ends_with("ORC-22.4") || path.ends_with("ORC-24.4")),
                "{file}: {path} {code}"
            );
        }
        // Warnings only for local coding systems and id types (CLIA, PLT)
        // that tables 0396 and 0301 do not list.
        assert!(
            all.iter()
                .filter(|f| f.0 == Severity::Warning)
                .all(|(_, p, c)| p.ends_with(".3") && *c == 103),
            "{file}: {all:?}"
        );
    }
}

#[test]
fn elr_profile_holds_the_2010_nist_samples_to_its_2015_rules() {
    // The NIST ELR sample test cases (2010) predate ELR MU 2015, which made
    // PID-1, ORC-3 and SPM-1/2/17/18 required: each finding is a field the
    // samples leave empty.
    let elr = load(ELR);
    let files = files_in(NIST_ELR);
    assert_eq!(files.len(), 6);
    for file in &files {
        let errs = errors(&elr, file);
        assert!(
            errs.iter().all(|(_, code)| [101, 102, 103].contains(code)),
            "{file}: {errs:?}"
        );
        let paths = distinct_paths(&errs);
        let mut expected: BTreeSet<String> = [
            // 2015 conformance statements: MSH-2 is `^~\\&#`, HD.3 is "ISO"
            // (the samples say "HL7").
            "ORU_R01.MSH-2",
            "ORU_R01.MSH-3.3",
            "ORU_R01.MSH-5.3",
            "ORU_R01.MSH-6.3",
            "ORU_R01.PATIENT_RESULT.PATIENT.PID-1",
            "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.SPECIMEN.SPM-1",
            "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.SPECIMEN.SPM-2",
            "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.SPECIMEN.SPM-17",
            "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.SPECIMEN.SPM-18",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // XAD.4 is a two-letter state code (ELR-010); test cases 1, 3 and
        // 6 spell the state out ("Colorado", "Alaska").
        if ["Case1.hl7", "Case3.hl7", "Case6.hl7"]
            .iter()
            .any(|c| file.ends_with(c))
        {
            expected.insert("ORU_R01.PATIENT_RESULT.PATIENT.PID-11.4".into());
        }
        // Conditional usage: XCN.13 (identifier type) is R once XCN.1 is
        // valued (ORC-12, OBR-16 ordering provider), and CWE.3 (coding
        // system) once CWE.1 is (OBX-8 abnormal flag `H` without `HL70078`).
        if !file.ends_with("Case6.hl7") {
            expected.insert("ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.OBR-16.13".into());
        }
        if ["Case1.hl7", "Case2.hl7", "Case3.hl7", "Case4.hl7"]
            .iter()
            .any(|c| file.ends_with(c))
        {
            expected.insert("ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.ORC-12.13".into());
        }
        if ["Case1.hl7", "Case2.hl7", "Case3.hl7", "Case5.hl7"]
            .iter()
            .any(|c| file.ends_with(c))
        {
            expected.insert("ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.OBX-8.3".into());
        }
        // Test case 5 carries a filler order number in ORC-3.
        if !file.ends_with("SampleTestCase5.hl7") {
            expected.insert("ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.ORC-3".into());
        }
        assert_eq!(paths, expected, "{file}");
    }
}

#[test]
fn ihe_profiles_judge_their_samples_as_ipf_does() {
    // IPF's ConformanceProfileRuleTest expects one error for iti-8.hl7 and
    // none for the other two. The one: PID-5.7 name type code, R in PIX.
    let iti8 = load(ITI_8);
    let file = "tests/profiles/real/ihe/iti-8-adt-a40/iti-8.hl7";
    assert_eq!(
        errors(&iti8, file),
        owned(&[("ADT_A39.PATIENT.PID-5.7", 101)])
    );
    // The profiles give MSH-9 a length of 13, but three-part MSH-9 values
    // (`ADT^A40^ADT_A39`) have 15: a warning, as lengths are.
    assert!(findings(&iti8, file).contains(&(Severity::Warning, "ADT_A39.MSH-9".into(), 104)));
    for (profile, file) in [
        (
            ITI_9,
            "tests/profiles/real/ihe/iti-9-rsp-k23/iti-9-response.hl7",
        ),
        (ITI_21, "tests/profiles/real/ihe/iti-21-qbp-q22/iti-21.hl7"),
    ] {
        assert_eq!(errors(&load(profile), file), [], "{file}");
    }
}

/// The first Adult_z22 VXU, which conforms, changed line by line.
fn adult_vxu() -> String {
    std::fs::read_to_string(here(&format!("{CDC}/Adult_z22_New_Covid_vaccine.hl7")))
        .unwrap()
        .replace("\r\n", "\r")
        .replace('\n', "\r")
}

fn with_segment(text: &str, id: &str, edit: impl Fn(&str) -> String) -> String {
    text.split('\r')
        .map(|line| {
            if line.starts_with(id) {
                edit(line)
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\r")
}

fn set_field(line: &str, n: usize, value: &str) -> String {
    let mut fields: Vec<String> = line.split('|').map(str::to_string).collect();
    while fields.len() <= n {
        fields.push(String::new());
    }
    fields[n] = value.to_string();
    fields.join("|")
}

#[test]
fn usage_re_may_be_empty_and_usage_x_may_not_be_sent() {
    let iz = load(IZ);
    let base = adult_vxu();
    assert_eq!(only_errors(findings_of_text(&iz, &base)), []);
    // MSH-3 sending application is RE: empty is fine.
    let re_empty = with_segment(&base, "MSH", |l| set_field(l, 2, ""));
    assert_eq!(only_errors(findings_of_text(&iz, &re_empty)), []);
    // PID-9 patient alias is X: a value is an error at PID-9.
    let x_sent = with_segment(&base, "PID", |l| set_field(l, 9, "Alias^Name"));
    assert_eq!(
        only_errors(findings_of_text(&iz, &x_sent)),
        owned(&[("VXU_V04.PID-9", 102)])
    );
}

#[test]
fn cardinality_is_checked_for_segments_fields_and_components() {
    let iz = load(IZ);
    let base = adult_vxu();
    // PID is R, 1..1: without it, a missing segment; twice, too many.
    let no_pid: String = base
        .split('\r')
        .filter(|l| !l.starts_with("PID"))
        .collect::<Vec<_>>()
        .join("\r");
    let errs = only_errors(findings_of_text(&iz, &no_pid));
    assert!(errs.contains(&("VXU_V04.PID".into(), 100)), "{errs:?}");
    let pid = base.split('\r').find(|l| l.starts_with("PID")).unwrap();
    let two_pids = base.replacen(pid, &format!("{pid}\r{pid}"), 1);
    let errs = only_errors(findings_of_text(&iz, &two_pids));
    assert!(
        errs.iter()
            .any(|(p, c)| p.starts_with("VXU_V04.PID") && *c == 100),
        "{errs:?}"
    );
    // PID-7 birth date is R and single: two repetitions are too many.
    let two_dobs = with_segment(&base, "PID", |l| set_field(l, 7, "20150826~20150827"));
    let errs = only_errors(findings_of_text(&iz, &two_dobs));
    assert!(
        errs.iter().any(|(p, _)| p.starts_with("VXU_V04.PID-7")),
        "{errs:?}"
    );
    // A component R (CE.1 of RXA-5) inside a valued field must be valued.
    let no_cvx_code = with_segment(&base, "RXA", |l| {
        let rxa5 = l.split('|').nth(5).unwrap().to_string();
        let rest = rxa5.split_once('^').unwrap().1.to_string();
        set_field(l, 5, &format!("^{rest}"))
    });
    let errs = only_errors(findings_of_text(&iz, &no_cvx_code));
    assert!(
        errs.contains(&("VXU_V04.ORDER.RXA-5.1".into(), 101)),
        "{errs:?}"
    );
}

#[test]
fn elr_rejects_a_segment_its_profile_excludes() {
    // DSC has usage X in the ELR profile.
    let elr = load(ELR);
    let text = std::fs::read_to_string(here("tests/profiles/real/elr/elims_40_4988249_33033.hl7"))
        .unwrap();
    let text = format!("{}\nDSC|1", text.trim_end());
    let errs = only_errors(findings_of_text(&elr, &text));
    assert!(
        errs.iter().any(|(p, c)| p.ends_with("DSC") && *c == 100),
        "{errs:?}"
    );
    assert!(
        findings_of_text(&elr, &text)
            .iter()
            .all(|f| f.0 == Severity::Warning || f.1.ends_with("DSC")),
    );
}

#[test]
fn conformance_statements_on_a_value_are_checked_where_it_is_valued() {
    let iz = load(IZ);
    let base = adult_vxu();
    // IZ-26: the birth date is accurate to the day (a regex on PID-7.1).
    let month_only = with_segment(&base, "PID", |l| set_field(l, 7, "201508"));
    assert_eq!(
        only_errors(findings_of_text(&iz, &month_only)),
        owned(&[("VXU_V04.PID-7.1", 102)])
    );
    // IZ-29: RXA-2 is the literal "1" (a PlainText).
    let sub_id = with_segment(&base, "RXA", |l| set_field(l, 2, "2"));
    assert_eq!(
        only_errors(findings_of_text(&iz, &sub_id)),
        owned(&[("VXU_V04.ORDER.RXA-2", 103)])
    );
}

#[test]
fn group_usage_and_cardinality_come_from_the_profile() {
    // VXU ORDER is RE (0..*): a VXU without any order is still conformant
    // in structure.
    let iz = load(IZ);
    let no_orders: String = adult_vxu()
        .split('\r')
        .filter(|l| {
            !["ORC", "RXA", "RXR", "OBX"]
                .iter()
                .any(|s| l.starts_with(s))
        })
        .collect::<Vec<_>>()
        .join("\r");
    let errs = only_errors(findings_of_text(&iz, &no_orders));
    assert!(!errs.iter().any(|(p, _)| p.contains("ORDER")), "{errs:?}");
    // ELR ORDER_OBSERVATION is R (1..*): without OBR the group is missing.
    let elr = load(ELR);
    let text = std::fs::read_to_string(here("tests/profiles/real/elr/elims_40_4988249_33033.hl7"))
        .unwrap();
    let no_obr: String = text
        .split(['\r', '\n'])
        .filter(|l| {
            !l.is_empty()
                && !["ORC", "OBR", "OBX", "NTE", "SPM", "TQ1"]
                    .iter()
                    .any(|s| l.starts_with(s))
        })
        .collect::<Vec<_>>()
        .join("\r");
    let errs = only_errors(findings_of_text(&elr, &no_obr));
    assert!(
        errs.iter()
            .any(|(p, c)| p.starts_with("ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION") && *c == 100),
        "{errs:?}"
    );
}

#[test]
fn conditional_usage_follows_the_sibling_its_predicate_names() {
    // EI in ORC-3: EI.2 is R when EI.3 is empty; EI.4 is R when EI.3 is
    // valued and X when it is not.
    let iz = load(IZ);
    let base = adult_vxu();
    let orc3 = |value: &str| {
        let text = with_segment(&base, "ORC", |l| set_field(l, 3, value));
        only_errors(findings_of_text(&iz, &text))
    };
    assert_eq!(orc3("ID123^CLINIC"), []);
    assert_eq!(orc3("ID123^^2.16.840.1.113883.19^ISO"), []);
    assert_eq!(orc3("ID123"), owned(&[("VXU_V04.ORDER.ORC-3.2", 101)]));
    assert_eq!(
        orc3("ID123^^2.16.840.1.113883.19"),
        owned(&[("VXU_V04.ORDER.ORC-3.4", 101)])
    );
    assert_eq!(
        orc3("ID123^CLINIC^^ISO"),
        owned(&[("VXU_V04.ORDER.ORC-3.4", 102)])
    );
}
