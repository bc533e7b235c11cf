//! HL7 v2 XML conformance profiles (the NIST / IGAMT format) applied to messages.

use hl7v2_spec::validate::{FindingKind, Profile, Severity, SplitMessage, ValidationOptions};
use hl7v2_spec::{Spec, StructureNode};

fn profile() -> Profile {
    let xml = include_str!("profiles/vxu_v04_test_profile.xml");
    Profile::from_conformance_xml(xml).unwrap()
}

const MSH: &str =
    "MSH|^~\\&|EHR|CLINIC^1.2.3^ISO|IIS|STATE|20240315143005||VXU^V04^VXU_V04|M1|P|2.5.1";
const PID: &str = "PID|1||42^^^CLINIC^MR||Doe^Jane||20200102|F";
const ORC: &str = "ORC|RE||F-1^CLINIC";
const RXA: &str = "RXA|0|1|20240301||08^HepB^CVX|0.5";
const OBX: &str = "OBX|1|CE|64994-7^Funding^LN|1|V02^VFC^HL70064";

fn errors(lines: &[&str]) -> Vec<(FindingKind, String)> {
    let text = lines.join("\r");
    let message = SplitMessage::parse(&text).unwrap();
    let spec = Spec::version("2.5.1").unwrap();
    profile()
        .validate(spec, &message, &ValidationOptions::default())
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .map(|f| (f.kind, f.path))
        .collect()
}

#[test]
fn the_profile_describes_its_message_and_structure() {
    let p = profile();
    assert_eq!(p.name, "VXU^V04 test profile");
    let structure = p.structure().unwrap();
    assert_eq!(structure.id, "VXU_V04");
    let top: Vec<_> = structure.children.iter().map(StructureNode::name).collect();
    // PV1 has usage X, so it is not part of the structure at all.
    assert_eq!(top, ["MSH", "PID", "ORDER"]);
    let order = structure.group(&["ORDER"]).unwrap();
    assert!(order.cardinality.is_required() && order.cardinality.is_repeating());
    let pid = p.segments().iter().find(|s| s.id == "PID").unwrap();
    assert_eq!(
        pid.field(3).unwrap().label(),
        "PID-3 Patient Identifier List"
    );
    assert_eq!(pid.field(8).unwrap().table, Some(1));
}

#[test]
fn a_conformant_message_has_no_errors() {
    assert_eq!(
        errors(&[MSH, PID, ORC, RXA, "RXR|IM^Intramuscular^HL70162", OBX]),
        []
    );
}

#[test]
fn usage_r_and_x_are_enforced_at_every_level() {
    let findings = errors(&[
        "MSH|^~\\&|EHR|CLINIC^1.2.3^ISO|IIS|STATE|20240315143005|secret|VXU^V04|M1|P|2.5.1",
        "PID|1|OLD-ID|42^^^^MR||Doe^Jane||20200102|F",
        ORC,
        "RXA|0|1|20240301||08^HepB^CVX",
        OBX,
    ]);
    assert_eq!(
        findings,
        [
            (FindingKind::ProfileRule, "VXU_V04.MSH-8".to_string()),
            (FindingKind::ProfileRule, "VXU_V04.MSH-9.3".to_string()),
            (FindingKind::ProfileRule, "VXU_V04.PID-2".to_string()),
            (FindingKind::ProfileRule, "VXU_V04.PID-3.4".to_string()),
            (FindingKind::ProfileRule, "VXU_V04.ORDER.RXA-6".to_string()),
        ]
    );
}

#[test]
fn segments_the_profile_excludes_or_requires_are_structural_findings() {
    let findings = errors(&[MSH, PID, "PV1|1|O", ORC, OBX]);
    assert_eq!(
        findings,
        [
            (FindingKind::UnexpectedSegment, "VXU_V04.PV1".to_string()),
            (FindingKind::MissingSegment, "VXU_V04.ORDER.RXA".to_string()),
        ]
    );
}

#[test]
fn a_message_of_another_type_is_refused_by_name() {
    let text = [
        "MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1",
        "EVN|A01",
        PID,
    ]
    .join("\r");
    let message = SplitMessage::parse(&text).unwrap();
    let findings = profile().validate(
        Spec::version("2.5.1").unwrap(),
        &message,
        &ValidationOptions::default(),
    );
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].kind, FindingKind::UnknownStructure);
    assert_eq!(findings[0].code.code(), 200);
    assert!(
        findings[0].message.contains("VXU^V04"),
        "{}",
        findings[0].message
    );
}

#[test]
fn malformed_profiles_are_errors_in_words() {
    let err = |xml: &str| {
        Profile::from_conformance_xml(xml)
            .err()
            .unwrap()
            .to_string()
    };
    assert!(err("<Other/>").contains("HL7v2xConformanceProfile"));
    assert!(
        err("<HL7v2xConformanceProfile></HL7v2xConformanceProfile>").contains("HL7v2xStaticDef")
    );
    assert!(err("<HL7v2xConformanceProfile><HL7v2xStaticDef MsgType=\"ADT\"").contains("XML"));
}
