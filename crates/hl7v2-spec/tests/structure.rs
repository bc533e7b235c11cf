//! Structural validation: segment order, presence and repetition against the
//! message structures of the standard, with group paths and 0357 codes.

use hl7v2_spec::Spec;
use hl7v2_spec::validate::{ErrorCode, Finding, FindingKind, StructureOptions, validate_segments};

fn check(version: &str, msh9: &str, segments: &str) -> Vec<Finding> {
    let spec = Spec::version(version).unwrap();
    let parts: Vec<&str> = msh9.split('^').collect();
    let segs: Vec<&str> = segments.split_whitespace().collect();
    validate_segments(spec, parts[0], parts[1], parts.get(2).copied(), &segs[..])
}

fn paths(findings: &[Finding]) -> Vec<(FindingKind, &str)> {
    findings.iter().map(|f| (f.kind, f.path.as_str())).collect()
}

#[test]
fn a_well_formed_lab_result_has_no_findings() {
    let findings = check(
        "2.5.1",
        "ORU^R01^ORU_R01",
        "MSH SFT PID PD1 NTE PV1 ORC OBR NTE TQ1 OBX NTE OBX OBX SPM OBX OBR OBX PID OBR OBX",
    );
    assert_eq!(findings, []);
}

#[test]
fn findings_name_the_group_path_with_repetitions() {
    // Second order, third observation, then a segment ORU_R01 does not contain.
    let findings = check(
        "2.5.1",
        "ORU^R01",
        "MSH PID OBR OBX OBR OBX OBX OBX EVN OBX",
    );
    assert_eq!(
        paths(&findings),
        [(
            FindingKind::UnexpectedSegment,
            "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBSERVATION[3].EVN"
        )]
    );
    let f = &findings[0];
    assert_eq!(f.code, ErrorCode::SegmentSequenceError);
    assert_eq!(f.code.code(), 100);
    assert_eq!(f.segment_index, Some(8));
    assert_eq!(f.segment_id, "EVN");
}

#[test]
fn missing_required_segment_is_reported_where_it_was_expected() {
    let findings = check("2.5", "ADT^A04", "MSH PID PV1");
    assert_eq!(
        paths(&findings),
        [(FindingKind::MissingSegment, "ADT_A01.EVN")]
    );
    assert_eq!(findings[0].segment_index, Some(1));
    assert!(
        findings[0].message.contains("before segment 2 (PID)"),
        "{}",
        findings[0].message
    );
}

#[test]
fn missing_required_group_at_the_end_names_its_first_segment() {
    let findings = check("2.5.1", "ORU^R01", "MSH PID PV1");
    assert_eq!(
        paths(&findings),
        [(
            FindingKind::MissingSegment,
            "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION"
        )]
    );
    assert_eq!(findings[0].segment_id, "OBR");
    assert_eq!(findings[0].segment_index, None);
}

#[test]
fn a_segment_repeated_beyond_its_maximum_is_too_many() {
    let findings = check("2.5", "ADT^A01", "MSH EVN PID PID PV1");
    assert_eq!(
        paths(&findings),
        [(FindingKind::TooManyRepetitions, "ADT_A01.PID[2]")]
    );
    assert_eq!(findings[0].segment_index, Some(3));
}

#[test]
fn a_segment_before_its_place_is_out_of_order() {
    // PID before EVN: EVN is skipped (missing), then found too late (out of order).
    let findings = check("2.5", "ADT^A01", "MSH PID EVN PV1");
    assert_eq!(
        paths(&findings),
        [
            (FindingKind::MissingSegment, "ADT_A01.EVN"),
            (FindingKind::SegmentOutOfOrder, "ADT_A01.EVN")
        ]
    );
    assert_eq!(findings[1].segment_index, Some(2));
}

#[test]
fn z_segments_pass_by_default_and_are_flagged_when_not_allowed() {
    let segs = ["MSH", "EVN", "PID", "ZPD", "PV1"];
    assert_eq!(check("2.5", "ADT^A01", &segs.join(" ")), []);
    let spec = Spec::version("2.5").unwrap();
    let strict = StructureOptions {
        allow_z_segments: false,
    };
    let findings = spec.matcher("ADT_A01").unwrap().validate(&segs[..], strict);
    assert_eq!(
        paths(&findings),
        [(FindingKind::UnexpectedSegment, "ADT_A01.ZPD")]
    );
}

#[test]
fn choice_groups_accept_any_one_alternative_and_stay_out_of_paths() {
    assert_eq!(check("2.5.1", "ORM^O01", "MSH PID ORC RXO ORC OBR OBX"), []);
    let findings = check("2.5.1", "ORM^O01", "MSH PID ORC RXO OBR");
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        !findings[0].path.contains("SUPPGRP"),
        "{}",
        findings[0].path
    );
}

#[test]
fn ambiguous_places_are_settled_by_the_segments_that_follow() {
    // After SPM, an ORC could open OML_O21's PRIOR_RESULT or a new ORDER;
    // only a new ORDER lets TQ1, OBR and SPM follow without errors.
    assert_eq!(
        check(
            "2.5",
            "OML^O21^OML_O21",
            "MSH PID PV1 ORC TQ1 OBR SPM ORC TQ1 OBR SPM"
        ),
        []
    );
}

#[test]
fn unknown_message_type_and_event_get_their_0357_codes() {
    let v25 = Spec::version("2.5").unwrap();
    let segs = ["MSH"];
    let mut found = validate_segments(v25, "ZZZ", "Z01", None, &segs[..]);
    assert_eq!(found.len(), 1);
    let unknown_type = found.remove(0);
    assert_eq!(unknown_type.kind, FindingKind::UnknownStructure);
    assert_eq!(unknown_type.code.code(), 200);
    let unknown_event = validate_segments(v25, "ADT", "Z99", None, &segs[..]).remove(0);
    assert_eq!(unknown_event.code, ErrorCode::UnsupportedEventCode);
    assert_eq!(unknown_event.code.code(), 201);
}

#[test]
fn every_structure_accepts_its_own_minimal_message() {
    // The required segments of each structure, in order, must validate clean:
    // this exercises every structure of every version.
    use hl7v2_spec::{Spec as S, StructureNode};
    fn required(nodes: &[StructureNode], choice: bool, out: &mut Vec<&'static str>) {
        for n in nodes {
            if !(choice || n.cardinality().is_required()) {
                continue;
            }
            match n {
                StructureNode::Segment(s) => {
                    out.push(if s.id == "ANYHL7SEGMENT" { "ZZZ" } else { s.id })
                }
                StructureNode::Group(g) => {
                    required(&g.children, g.kind == hl7v2_spec::GroupKind::Choice, out)
                }
            }
            if choice {
                break;
            }
        }
    }
    let mut checked = 0;
    for spec in S::all() {
        for st in spec.structures() {
            let mut segs = Vec::new();
            required(&st.children, false, &mut segs);
            let findings = spec
                .matcher(st.id)
                .unwrap()
                .validate(&segs, StructureOptions::default());
            assert_eq!(findings, [], "{} {} {segs:?}", spec.version(), st.id);
            checked += 1;
        }
    }
    assert!(checked > 2000, "{checked}");
}

#[test]
fn a_segment_after_its_place_is_out_of_order_not_a_new_group() {
    // PD1 belongs before PV1; it is not the start of a second patient.
    let findings = check("2.3", "ORU^R01", "MSH PID PV1 PD1 ORC OBR OBX NTE");
    assert_eq!(
        paths(&findings),
        [(
            FindingKind::SegmentOutOfOrder,
            "ORU_R01.RESPONSE.PATIENT.VISIT.PD1"
        )]
    );
}
