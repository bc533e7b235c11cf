//! Spot checks of the generated definitions against the printed standard.
//! Each assertion names a fact a reader can look up in the HL7 v2 chapters.

use hl7v2_spec::{
    GroupKind, KNOWN_VERSIONS, Optionality, Repetition, Spec, StructureNode, StructureSource,
};

#[test]
fn every_known_version_loads_with_plausible_contents() {
    for v in KNOWN_VERSIONS {
        let spec = Spec::version(v).unwrap_or_else(|| panic!("{v} not found"));
        assert_eq!(spec.version(), v);
        let segments = spec.segments().count();
        let structures = spec.structures().count();
        let types = spec.datatypes().count();
        assert!(segments >= 38, "{v}: only {segments} segments");
        assert!(structures >= 39, "{v}: only {structures} structures");
        assert!(types >= 10, "{v}: only {types} data types");
        for needed in ["MSH", "PID", "PV1", "OBR", "OBX", "NK1"] {
            assert!(spec.segment(needed).is_some(), "{v}: no {needed}");
        }
        assert!(spec.structure("ADT_A01").is_some(), "{v}: no ADT_A01");
        assert!(spec.structure("ORU_R01").is_some(), "{v}: no ORU_R01");
    }
}

#[test]
fn segment_and_structure_counts_grow_with_the_standard() {
    let count = |v| {
        let s = Spec::version(v).unwrap();
        (s.segments().count(), s.structures().count())
    };
    // Figures of the generated data; each version adds segments to the last.
    assert_eq!(count("2.1"), (38, 39));
    assert_eq!(count("2.3.1"), (110, 124));
    assert_eq!(count("2.5.1"), (150, 216));
    assert_eq!(count("2.8.2"), (184, 222));
    let mut last = 0;
    for v in KNOWN_VERSIONS {
        let (segments, _) = count(v);
        assert!(
            segments + 5 >= last,
            "{v} lost segments: {segments} < {last}"
        );
        last = segments;
    }
}

#[test]
fn pid_3_in_2_5_1_is_a_required_repeating_cx() {
    let pid3 = Spec::version("2.5.1").unwrap().field("PID", 3).unwrap();
    assert_eq!(pid3.name, "Patient Identifier List");
    assert_eq!(pid3.data_type, "CX");
    assert_eq!(pid3.optionality, Optionality::Required);
    assert_eq!(pid3.repetition, Repetition::Unbounded);
    assert_eq!(pid3.max_length, Some(250));
}

#[test]
fn every_segment_field_has_a_human_name() {
    for spec in Spec::all() {
        for seg in spec.segments() {
            for f in &seg.fields {
                assert!(
                    !f.name.is_empty(),
                    "{} {}-{} has no name",
                    spec.version(),
                    seg.id,
                    f.seq
                );
                assert!(
                    !f.data_type.is_empty(),
                    "{} {}-{} has no type",
                    spec.version(),
                    seg.id,
                    f.seq
                );
            }
        }
    }
    let pid5 = Spec::version("2.8.2").unwrap().field("PID", 5).unwrap();
    assert_eq!(pid5.label(), "PID-5 Patient Name");
}

#[test]
fn msh_9_is_msg_in_2_5_but_a_cm_in_2_3() {
    let msh9_25 = Spec::version("2.5").unwrap().field("MSH", 9).unwrap();
    assert_eq!(msh9_25.data_type, "MSG");
    assert_eq!(msh9_25.optionality, Optionality::Required);
    let msg = Spec::version("2.5").unwrap().datatype("MSG").unwrap();
    let names: Vec<_> = msg.components.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        ["Message Code", "Trigger Event", "Message Structure"]
    );
    assert_eq!(msg.components[0].table, Some(76));

    // The HL7 database names 2.3's CM by its use: CM_MSG (type and event only).
    let msh9_23 = Spec::version("2.3").unwrap().field("MSH", 9).unwrap();
    assert!(msh9_23.data_type.starts_with("CM"), "{}", msh9_23.data_type);
    let cm = Spec::version("2.3")
        .unwrap()
        .datatype(msh9_23.data_type)
        .unwrap();
    assert_eq!(cm.components.len(), 2);
}

#[test]
fn table_0001_holds_the_administrative_sex_codes() {
    for v in KNOWN_VERSIONS {
        let table = Spec::version(v)
            .unwrap()
            .table(1)
            .unwrap_or_else(|| panic!("{v}: no table 0001"));
        assert!(
            table.contains("F") && table.contains("M"),
            "{v}: {:?}",
            table.values
        );
        assert!(!table.contains("X"), "{v}");
        assert_eq!(table.hl7_id(), "HL70001");
    }
    let t = Spec::version("2.5.1").unwrap().table(1).unwrap();
    assert_eq!(t.name, "Administrative Sex");
    assert_eq!(t.get("F").unwrap().description, "Female");
}

#[test]
fn adt_a04_resolves_to_adt_a01_from_2_3_on() {
    for v in [
        "2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.8.1", "2.8.2",
    ] {
        let spec = Spec::version(v).unwrap();
        assert_eq!(spec.event_structure("ADT", "A04"), Some("ADT_A01"), "{v}");
        assert_eq!(spec.event_structure("ADT", "A08"), Some("ADT_A01"), "{v}");
        assert_eq!(spec.event_structure("ADT", "A07"), Some("ADT_A06"), "{v}");
    }
    // 2.1 and 2.2 define one structure per event.
    assert_eq!(
        Spec::version("2.2").unwrap().event_structure("ADT", "A04"),
        Some("ADT_A04")
    );
    // Before 2.4 a pre-admit (A05) shared ADT_A01; 2.4 gave it ADT_A05.
    assert_eq!(
        Spec::version("2.3.1")
            .unwrap()
            .event_structure("ADT", "A05"),
        Some("ADT_A01")
    );
    assert_eq!(
        Spec::version("2.5").unwrap().event_structure("ADT", "A05"),
        Some("ADT_A05")
    );
}

#[test]
fn structure_resolution_prefers_msh_9_3_then_the_event_map() {
    let spec = Spec::version("2.5").unwrap();
    let by_93 = spec.structure_for("ADT", "A04", Some("ADT_A05")).unwrap();
    assert_eq!(
        (by_93.structure.id, by_93.source),
        ("ADT_A05", StructureSource::Msh93)
    );

    let unknown_93 = spec.structure_for("ADT", "A04", Some("ZZZ_Z99")).unwrap();
    assert_eq!(
        (unknown_93.structure.id, unknown_93.source),
        ("ADT_A01", StructureSource::EventMap)
    );

    let ack = spec.structure_for("ACK", "A01", None).unwrap();
    assert_eq!(
        (ack.structure.id, ack.source),
        ("ACK", StructureSource::TypeOnly)
    );

    assert!(spec.structure_for("ZZZ", "Z01", None).is_none());
}

#[test]
fn oru_r01_in_2_5_1_nests_observation_under_order_observation_under_patient_result() {
    let oru = Spec::version("2.5.1")
        .unwrap()
        .structure("ORU_R01")
        .unwrap();
    let top: Vec<_> = oru.children.iter().map(StructureNode::name).collect();
    assert_eq!(top, ["MSH", "SFT", "PATIENT_RESULT", "DSC"]);

    let patient_result = oru.group(&["PATIENT_RESULT"]).unwrap();
    assert_eq!(patient_result.kind, GroupKind::Sequence);
    assert!(patient_result.cardinality.is_required() && patient_result.cardinality.is_repeating());

    let order = oru.group(&["PATIENT_RESULT", "ORDER_OBSERVATION"]).unwrap();
    let names: Vec<_> = order.children.iter().map(StructureNode::name).collect();
    assert_eq!(
        names,
        [
            "ORC",
            "OBR",
            "NTE",
            "TIMING_QTY",
            "CTD",
            "OBSERVATION",
            "FT1",
            "CTI",
            "SPECIMEN"
        ]
    );
    let observation = oru
        .group(&["PATIENT_RESULT", "ORDER_OBSERVATION", "OBSERVATION"])
        .unwrap();
    assert_eq!(observation.cardinality.to_string(), "[0..*]");
    match &observation.children[0] {
        StructureNode::Segment(obx) => {
            assert_eq!(obx.id, "OBX");
            assert_eq!(obx.cardinality.to_string(), "[1..1]");
        }
        other => panic!("OBSERVATION starts with {other:?}"),
    }
}

#[test]
fn orm_o01_keeps_its_choice_group() {
    let orm = Spec::version("2.5.1")
        .unwrap()
        .structure("ORM_O01")
        .unwrap();
    // hl7apy names the unnamed choice bracket; it stays a group of kind Choice.
    let detail = orm.group(&["ORDER", "ORDER_DETAIL"]).unwrap();
    let choice = detail
        .children
        .iter()
        .find_map(|c| match c {
            StructureNode::Group(g) if g.kind == GroupKind::Choice => Some(g),
            _ => None,
        })
        .unwrap();
    let names: Vec<_> = choice.children.iter().map(StructureNode::name).collect();
    assert_eq!(names, ["OBR", "RQD", "RQ1", "RXO", "ODS", "ODT"]);
}

#[test]
fn composite_components_carry_names_types_and_tables() {
    let cx = Spec::version("2.5.1").unwrap().datatype("CX").unwrap();
    assert!(cx.is_composite());
    let c1 = cx.component(1).unwrap();
    assert_eq!((c1.name, c1.data_type), ("ID Number", "ST"));
    let c4 = cx.component(4).unwrap();
    assert_eq!((c4.name, c4.data_type), ("Assigning Authority", "HD"));
    let c5 = cx.component(5).unwrap();
    assert_eq!(c5.table, Some(203));
    let st = Spec::version("2.5.1").unwrap().datatype("ST").unwrap();
    assert!(!st.is_composite());
}

#[test]
fn version_strings_are_normalized_and_unknown_ones_go_to_the_nearest() {
    for text in ["2.5.1", " v2.5.1 ", "V2.5.1", "2.5.1^HL7", "2.5.1.0"] {
        assert_eq!(
            Spec::version(text).map(|s| s.version()),
            Some("2.5.1"),
            "{text:?}"
        );
    }
    assert!(Spec::version("2.7.1").is_none());
    assert!(Spec::version("banana").is_none());
    let cases = [
        ("2.7.1", "2.7"),
        ("2.9", "2.8.2"),
        ("2.0", "2.1"),
        ("2.4.1", "2.4"),
        ("2.5", "2.5"),
    ];
    for (asked, got) in cases {
        let m = Spec::nearest(asked).unwrap();
        assert_eq!(m.spec.version(), got, "{asked}");
        assert_eq!(m.exact, asked == got, "{asked}");
        assert_eq!(m.note().is_some(), asked != got, "{asked}");
    }
    assert!(Spec::nearest("3.0").is_none());
    assert!(Spec::nearest("").is_none());
}

#[test]
fn every_structure_names_only_defined_segments() {
    for spec in Spec::all() {
        for st in spec.structures() {
            for id in st.segment_ids() {
                assert!(
                    id == "ANYHL7SEGMENT" || spec.segment(id).is_some(),
                    "{} {} names undefined segment {id}",
                    spec.version(),
                    st.id
                );
            }
        }
    }
}

#[test]
fn every_event_map_entry_points_at_a_structure_of_its_version() {
    for spec in Spec::all() {
        let mut n = 0;
        for (msg_type, event, structure) in spec.events() {
            assert!(
                spec.structure(structure).is_some(),
                "{} {msg_type}^{event} -> {structure}",
                spec.version()
            );
            n += 1;
        }
        assert!(n >= 39, "{}: only {n} events", spec.version());
    }
}

#[test]
fn withdrawn_elements_keep_their_numbers() {
    // hl7apy drops withdrawn elements; later ones must not shift into their place.
    let evn = Spec::version("2.8").unwrap().segment("EVN").unwrap();
    assert_eq!(evn.field(1).unwrap().optionality, Optionality::Withdrawn);
    assert_eq!(
        (evn.field(2).unwrap().name, evn.field(2).unwrap().data_type),
        ("Recorded Date/Time", "DTM")
    );
    let xtn = Spec::version("2.6").unwrap().datatype("XTN").unwrap();
    assert_eq!(
        xtn.component(1).unwrap().optionality,
        Optionality::Withdrawn
    );
    assert_eq!(
        (
            xtn.component(4).unwrap().name,
            xtn.component(4).unwrap().data_type
        ),
        ("Email Address", "ST")
    );
    assert_eq!(xtn.component(6).unwrap().data_type, "NM");
    let obr4 = Spec::version("2.8.2").unwrap().field("OBR", 4).unwrap();
    assert_eq!(
        (obr4.name, obr4.data_type),
        ("Universal Service Identifier", "CWE")
    );
}

#[test]
fn events_with_a_layout_of_their_own_get_their_own_structure() {
    // 2.5 RSP^K22 (find candidates) is not RSP_K21: QRI is optional and the
    // query response repeats. hl7apy lacks it; the dictionary has its layout.
    let v25 = Spec::version("2.5").unwrap();
    assert_eq!(v25.event_structure("RSP", "K22"), Some("RSP_K22"));
    let k22 = v25.structure("RSP_K22").unwrap();
    let response = k22.group(&["QUERY_RESPONSE"]).unwrap();
    assert!(response.cardinality.is_repeating());
    let qri = response
        .children
        .iter()
        .find(|c| c.name() == "QRI")
        .unwrap();
    assert!(!qri.cardinality().is_required());
    let k21 = v25
        .structure("RSP_K21")
        .unwrap()
        .group(&["QUERY_RESPONSE"])
        .unwrap();
    let qri = k21.children.iter().find(|c| c.name() == "QRI").unwrap();
    assert!(qri.cardinality().is_required());
}
