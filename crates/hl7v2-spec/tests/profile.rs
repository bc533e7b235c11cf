//! TOML profiles: rules on values, severities per kind of finding, Z-segments.

use hl7v2_spec::Spec;
use hl7v2_spec::validate::{
    ErrorCode, Finding, FindingKind, Profile, Severity, SplitMessage, ValidationOptions, ValuePath,
};

const MSH: &str =
    "MSH|^~\\&|SEND|ACME^1.2.3^ISO|RECV|FAC|20240315143005||ADT^A01^ADT_A01|MSG1|P|2.5.1";
const EVN: &str = "EVN|A01|20240315143005";
const PV1: &str = "PV1|1|I";

fn run(profile: &str, lines: &[&str]) -> Vec<Finding> {
    let profile = Profile::from_toml(profile).unwrap();
    let text = lines.join("\r");
    let message = SplitMessage::parse(&text).unwrap();
    profile.validate(
        Spec::version("2.5.1").unwrap(),
        &message,
        &ValidationOptions::default(),
    )
}

fn kinds(findings: &[Finding]) -> Vec<(FindingKind, &str, Severity)> {
    findings
        .iter()
        .map(|f| (f.kind, f.path.as_str(), f.severity))
        .collect()
}

#[test]
fn required_allowed_value_set_and_pattern_rules_apply_at_their_paths() {
    let profile = r#"
        name = "ACME ADT"
        [[rule]]
        path = "PID-3.4"
        required = true
        [[rule]]
        path = "PID-8"
        allowed = ["F", "M"]
        [[rule]]
        path = "PID-10.3"
        value_set = "race_systems"
        severity = "warning"
        [[rule]]
        path = "MSH-4.2"
        pattern = "[0-9]+(\\.[0-9]+)+"
        message = "MSH-4.2 must be an OID"
        [value_sets]
        race_systems = ["CDCREC", "HL70005"]
    "#;
    let clean = run(
        profile,
        &[
            MSH,
            EVN,
            "PID|1||42^^^HOSP^MR||Doe^Jane||19800102|F||2106-3^White^HL70005",
            PV1,
        ],
    );
    assert_eq!(kinds(&clean), []);

    let msh = MSH.replace("ACME^1.2.3^ISO", "ACME^acme.org^DNS");
    let findings = run(
        profile,
        &[
            &msh,
            EVN,
            "PID|1||42^^^^MR||Doe^Jane||19800102|X||2106-3^White^99RACE",
            PV1,
        ],
    );
    assert_eq!(
        kinds(&findings),
        [
            (FindingKind::ProfileRule, "ADT_A01.MSH-4.2", Severity::Error),
            (FindingKind::ProfileRule, "ADT_A01.PID-3.4", Severity::Error),
            (FindingKind::ProfileRule, "ADT_A01.PID-8", Severity::Error),
            (
                FindingKind::ProfileRule,
                "ADT_A01.PID-10.3",
                Severity::Warning
            ),
        ]
    );
    assert_eq!(findings[0].message, "MSH-4.2 must be an OID");
    assert_eq!(findings[0].code, ErrorCode::DataTypeError);
    assert_eq!(findings[1].code, ErrorCode::RequiredFieldMissing);
    assert_eq!(findings[2].code, ErrorCode::TableValueNotFound);
}

#[test]
fn a_required_rule_on_an_absent_segment_is_a_finding() {
    let profile = "[[rule]]\npath = \"PV2-3\"\nrequired = true\n";
    let findings = run(profile, &[MSH, EVN, "PID|1||42^^^H^MR||Doe^Jane", PV1]);
    assert_eq!(
        kinds(&findings),
        [(FindingKind::ProfileRule, "PV2-3", Severity::Error)]
    );
    assert_eq!(findings[0].segment_index, None);
}

#[test]
fn severity_overrides_relax_or_silence_kinds_of_finding() {
    let long_id = "9".repeat(300);
    let pid = format!("PID|1||{long_id}^^^H^MR||Doe^Jane");
    let base = run("", &[MSH, EVN, &pid]);
    assert_eq!(
        kinds(&base),
        [
            (FindingKind::TooLong, "ADT_A01.PID-3", Severity::Warning),
            (FindingKind::MissingSegment, "ADT_A01.PV1", Severity::Error),
        ]
    );
    let relaxed = run(
        "[severity]\ntoo_long = \"off\"\nmissing_segment = \"warning\"\n",
        &[MSH, EVN, &pid],
    );
    assert_eq!(
        kinds(&relaxed),
        [(
            FindingKind::MissingSegment,
            "ADT_A01.PV1",
            Severity::Warning
        )]
    );
}

#[test]
fn z_segments_from_the_profile_are_validated_like_standard_ones() {
    let profile = r#"
        [severity]
        required_field_missing = "error"
        [[segment]]
        id = "ZPI"
        name = "Patient extras"
        fields = [
          { name = "Set ID", type = "SI", optionality = "R" },
          { name = "Last visit", type = "DT" },
          { name = "Nicknames", type = "ST", repeats = true, length = 10 },
        ]
    "#;
    let ok = run(
        profile,
        &[
            MSH,
            EVN,
            "PID|1||42^^^H^MR||Doe^Jane",
            "ZPI|1|20240101|Jo~Janie",
            PV1,
        ],
    );
    assert_eq!(kinds(&ok), []);
    let bad = run(
        profile,
        &[
            MSH,
            EVN,
            "PID|1||42^^^H^MR||Doe^Jane",
            "ZPI||20241399|Jo~Janie-the-great",
            PV1,
        ],
    );
    assert_eq!(
        kinds(&bad),
        [
            (
                FindingKind::RequiredFieldMissing,
                "ADT_A01.ZPI-1",
                Severity::Error
            ),
            (FindingKind::InvalidFormat, "ADT_A01.ZPI-2", Severity::Error),
            (FindingKind::TooLong, "ADT_A01.ZPI-3[2]", Severity::Warning),
        ]
    );
    assert!(
        bad[0].message.contains("ZPI-1 Set ID"),
        "{}",
        bad[0].message
    );
    let p = Profile::from_toml(profile).unwrap();
    assert_eq!(
        p.segments()[0].field(2).unwrap().label(),
        "ZPI-2 Last visit"
    );
}

#[test]
fn profile_mistakes_are_errors_that_name_them() {
    let err = |text: &str| Profile::from_toml(text).err().unwrap().to_string();
    assert!(err("colour = \"blue\"").contains("colour"));
    assert!(err("[[rule]]\npath = \"PID3\"\nrequired = true").contains("PID3"));
    assert!(err("[[rule]]\npath = \"PID-3\"").contains("needs required"));
    assert!(err("[[rule]]\npath = \"PID-3\"\nvalue_set = \"nope\"").contains("nope"));
    assert!(err("[[rule]]\npath = \"PID-3\"\npattern = \"(\"").contains("pattern"));
    assert!(err("[severity]\nsnoring = \"off\"").contains("snoring"));
    assert!(err("[severity]\ntoo_long = \"loud\"").contains("loud"));
    assert!(err("[[segment]]\nid = \"ZP\"").contains("ZP"));
}

#[test]
fn value_paths_parse_and_print_the_same() {
    for text in ["PID-3", "OBX[2]-5", "PID-3[2].1", "PID-3.4.2", "MSH-9.1"] {
        assert_eq!(ValuePath::parse(text).unwrap().to_string(), text);
    }
    let p = ValuePath::parse("OBX[2]-5[3].1.2").unwrap();
    assert_eq!(
        (
            p.segment.as_str(),
            p.occurrence,
            p.field,
            p.repetition,
            p.component,
            p.subcomponent
        ),
        ("OBX", Some(2), 5, Some(3), 1, 2)
    );
    for bad in ["PID", "PID-x", "PID-0", "PID[0]-1", "PIDX-1", "PID-1.2.3.4"] {
        assert!(ValuePath::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn load_picks_toml_or_xml_by_the_first_character() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/profiles");
    let toml = Profile::load(dir.join("cdc_covid_extract.toml")).unwrap();
    assert!(
        toml.structure().is_none(),
        "TOML profiles have no structure"
    );
    let xml = Profile::load(dir.join("vxu_v04_test_profile.xml")).unwrap();
    assert_eq!(xml.structure().unwrap().id, "VXU_V04");
    // Leading blank lines and a byte order mark do not hide the `<`.
    let text = std::fs::read_to_string(dir.join("vxu_v04_test_profile.xml")).unwrap();
    let padded = format!("\u{feff}\n  \t{text}");
    assert_eq!(Profile::parse(&padded).unwrap().name, xml.name);
    // Errors name the file and what is wrong with it.
    let missing = Profile::load(dir.join("no_such_profile.toml")).unwrap_err();
    assert!(missing.0.contains("no_such_profile.toml"), "{missing}");
    let not_xml = Profile::parse("<NotAProfile/>").unwrap_err();
    assert!(not_xml.0.contains("HL7v2xConformanceProfile"), "{not_xml}");
    let bad_toml = Profile::parse("name = \"x\"\nsurprise = 1").unwrap_err();
    assert!(bad_toml.0.contains("surprise"), "{bad_toml}");
}
