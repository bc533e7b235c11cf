//! Field-level validation: required fields, repetitions, data type formats,
//! table values and lengths, located by group path and field position.

use hl7v2_spec::Spec;
use hl7v2_spec::validate::{
    ErrorCode, Finding, FindingKind, MessageFields, SegmentSequence, Severity, SplitMessage,
    ValidationOptions, validate_message,
};

const MSH_ADT: &str = "MSH|^~\\&|SEND|FAC|RECV|FAC|20240315143005||ADT^A01^ADT_A01|MSG0001|P|2.5.1";
const EVN: &str = "EVN|A01|20240315143005";
const PV1: &str = "PV1|1|I";

fn validate(lines: &[&str]) -> Vec<Finding> {
    let text = lines.join("\r");
    let message = SplitMessage::parse(&text).unwrap();
    let spec = Spec::version("2.5.1").unwrap();
    // Strict: the base standard to the letter, so every check shows as an error.
    validate_message(spec, &message, &ValidationOptions::strict())
}

fn errors(findings: &[Finding]) -> Vec<(FindingKind, &str)> {
    findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| (f.kind, f.path.as_str()))
        .collect()
}

#[test]
fn a_complete_admission_has_no_errors() {
    let findings = validate(&[
        MSH_ADT,
        EVN,
        "PID|1||12345^^^HOSP^MR||Doe^Jane||19800102|F",
        PV1,
    ]);
    assert_eq!(errors(&findings), []);
}

#[test]
fn an_empty_required_field_is_101_at_its_path() {
    let findings = validate(&[MSH_ADT, EVN, "PID|1||||Doe^Jane", PV1]);
    assert_eq!(
        errors(&findings),
        [(FindingKind::RequiredFieldMissing, "ADT_A01.PID-3")]
    );
    assert_eq!(findings[0].code, ErrorCode::RequiredFieldMissing);
    assert_eq!(findings[0].segment_index, Some(2));
    assert!(
        findings[0]
            .message
            .contains("PID-3 Patient Identifier List"),
        "{}",
        findings[0].message
    );
}

#[test]
fn impossible_dates_and_times_are_data_type_errors() {
    let findings = validate(&[
        MSH_ADT,
        EVN,
        "PID|1||12345^^^HOSP^MR||Doe^Jane||19800231",
        PV1,
    ]);
    assert_eq!(
        errors(&findings),
        [(FindingKind::InvalidFormat, "ADT_A01.PID-7.1")]
    );
    assert_eq!(findings[0].code.code(), 102);
    // A date/time with a bad offset in EVN-2.
    let findings = validate(&[
        MSH_ADT,
        "EVN|A01|20240315143005+99",
        "PID|1||1^^^H^MR||D^J",
        PV1,
    ]);
    assert_eq!(
        errors(&findings),
        [(FindingKind::InvalidFormat, "ADT_A01.EVN-2.1")]
    );
}

#[test]
fn coded_values_are_checked_against_their_hl7_table() {
    // MSH-11.1 (processing ID) must be D, P or T (table 0103).
    let msh = MSH_ADT.replace("|P|2.5.1", "|Q|2.5.1");
    let findings = validate(&[&msh, EVN, "PID|1||1^^^H^MR||D^J", PV1]);
    assert_eq!(
        errors(&findings),
        [(FindingKind::NotInTable, "ADT_A01.MSH-11.1")]
    );
    assert_eq!(findings[0].code, ErrorCode::TableValueNotFound);
    assert!(
        findings[0].message.contains("table 0103"),
        "{}",
        findings[0].message
    );
}

#[test]
fn a_non_repeating_field_sent_twice_is_reported() {
    let findings = validate(&[MSH_ADT, EVN, "PID|1||1^^^H^MR||D^J||19800102|F~M", PV1]);
    assert_eq!(
        errors(&findings),
        [(FindingKind::TooManyFieldRepetitions, "ADT_A01.PID-8")]
    );
}

#[test]
fn repetitions_of_a_repeating_field_are_numbered() {
    let findings = validate(&[MSH_ADT, EVN, "PID|1||1^^^H^MR~2^^^H^MR^^20241301||D^J", PV1]);
    assert_eq!(
        errors(&findings),
        [(FindingKind::InvalidFormat, "ADT_A01.PID-3[2].7")]
    );
}

#[test]
fn obx_5_is_checked_as_the_type_obx_2_names() {
    let msh = "MSH|^~\\&|LAB|FAC|EHR|FAC|20240315143005||ORU^R01^ORU_R01|MSG2|P|2.5.1";
    let findings = validate(&[
        msh,
        "PID|1||1^^^H^MR||D^J",
        "OBR|1||F1|1234-5^Test^LN",
        "OBX|1|NM|1234-5^Test^LN||7.5||||||F",
        "OBR|2||F2|1234-5^Test^LN",
        "OBX|1|NM|1234-5^Test^LN||7.5||||||F",
        "OBX|2|NM|1234-5^Test^LN||high||||||F",
        "OBX|3|ST|1234-5^Test^LN||high||||||F",
    ]);
    assert_eq!(
        errors(&findings),
        [(
            FindingKind::InvalidFormat,
            "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBSERVATION[2].OBX-5"
        )]
    );
}

#[test]
fn long_values_are_warnings_not_errors() {
    let long_id = "9".repeat(300);
    let pid = format!("PID|1||{long_id}^^^H^MR||D^J");
    let findings = validate(&[MSH_ADT, EVN, &pid, PV1]);
    assert_eq!(errors(&findings), []);
    let long: Vec<_> = findings
        .iter()
        .filter(|f| f.kind == FindingKind::TooLong)
        .collect();
    assert_eq!(long.len(), 1, "{findings:?}");
    assert_eq!(
        (long[0].path.as_str(), long[0].code.code()),
        ("ADT_A01.PID-3", 104)
    );
    let quiet = ValidationOptions {
        lengths: false,
        ..ValidationOptions::strict()
    };
    let text = [MSH_ADT, EVN, &pid, PV1].join("\r");
    let message = SplitMessage::parse(&text).unwrap();
    let findings = validate_message(Spec::version("2.5.1").unwrap(), &message, &quiet);
    assert!(findings.iter().all(|f| f.kind != FindingKind::TooLong));
}

#[test]
fn structural_and_field_findings_come_in_segment_order() {
    let findings = validate(&[MSH_ADT, "PID|1||||D^J", PV1]);
    let kinds: Vec<_> = findings.iter().map(|f| (f.kind, f.path.as_str())).collect();
    assert_eq!(
        kinds,
        [
            (FindingKind::MissingSegment, "ADT_A01.EVN"),
            (FindingKind::RequiredFieldMissing, "ADT_A01.PID-3"),
        ]
    );
}

#[test]
fn split_message_reads_its_own_separators() {
    let text = "MSH$%~\\&$A$B$C$D$20240101$$ADT%A01$1$P$2.5.1\nPID$1$$42%%%H%MR";
    let m = SplitMessage::parse(text).unwrap();
    assert_eq!(m.segment_count(), 2);
    assert_eq!(m.field(0, 1), Some("$"));
    assert_eq!(m.field(0, 2), Some("%~\\&"));
    assert_eq!(m.field(0, 9), Some("ADT%A01"));
    assert_eq!(m.separators().component, '%');
    assert_eq!(m.field(1, 3), Some("42%%%H%MR"));
    assert_eq!(m.field(1, 30), None);
    assert!(SplitMessage::parse("PID|1").is_none());
}

#[test]
fn findings_become_err_segments_for_the_nak() {
    let findings = validate(&[
        MSH_ADT,
        EVN,
        "PID|1||||D^J",
        "PID|2||1^^^H^MR||D^J|||F~M",
        PV1,
    ]);
    let seps = hl7v2_spec::validate::Separators::default();
    let err: Vec<String> = findings
        .iter()
        .map(|f| f.to_err_segment("2.5.1", seps))
        .collect();
    assert_eq!(
        err[0],
        "ERR||PID^1^3^1|101^Required field missing^HL70357|E||||required field PID-3 Patient Identifier List is empty"
    );
    // The second PID is one too many (a segment finding), and its PID-8 repeats.
    assert!(
        err[1].starts_with("ERR||PID^2|100^Segment sequence error^HL70357|E|"),
        "{}",
        err[1]
    );
    assert!(
        err[2].starts_with("ERR||PID^2^8^1|102^Data type error^HL70357|E|"),
        "{}",
        err[2]
    );
    // Before 2.5 the location and code go into ERR-1.
    assert_eq!(
        findings[0].to_err_segment("2.3.1", seps),
        "ERR|PID^1^3^101&Required field missing&HL70357"
    );
}

#[test]
fn by_default_required_fields_and_table_values_are_warnings() {
    let msh = MSH_ADT.replace("|P|2.5.1", "|Q|2.5.1");
    let text = [msh.as_str(), EVN, "PID|1||||Doe^Jane||19800231", PV1].join("\r");
    let message = SplitMessage::parse(&text).unwrap();
    let spec = Spec::version("2.5.1").unwrap();
    let findings = validate_message(spec, &message, &ValidationOptions::default());
    let seen: Vec<_> = findings.iter().map(|f| (f.kind, f.severity)).collect();
    assert_eq!(
        seen,
        [
            (FindingKind::NotInTable, Severity::Warning),
            (FindingKind::RequiredFieldMissing, Severity::Warning),
            (FindingKind::InvalidFormat, Severity::Error),
        ]
    );
}

#[test]
fn findings_serialize_to_json_for_the_cli_and_the_api() {
    let findings = validate(&[MSH_ADT, EVN, "PID|1||||Doe^Jane", PV1]);
    let json = serde_json::to_value(&findings[0]).unwrap();
    assert_eq!(json["kind"], "required_field_missing");
    assert_eq!(json["code"], 101);
    assert_eq!(json["severity"], "error");
    assert_eq!(json["path"], "ADT_A01.PID-3");
    assert_eq!(json["segment_index"], 2);
    assert_eq!(json["field"]["field"], 3);
}
