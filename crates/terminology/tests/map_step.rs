//! The map step on a real ORU from the corpus (Mirth's `small.hl7`: CPT-like
//! local codes in system `GH`, units written `MG/DL`), the unmapped tally and
//! its CSV round trip, and the step's configuration.

use terminology::{
    Content, Decision, MapStep, MapStepConfig, SharedTerminology, UnmappedReason, UnmappedTally,
    concept_maps_from_csv, loinc_starter_map,
};

fn corpus(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../../tests/corpus/public/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn small() -> hl7v2::OwnedMessage {
    hl7v2::OwnedMessage::parse(&corpus("openintegrationengine/small.hl7")).unwrap()
}

const GH_MAP: &str = "\
source_system,source_code,target_system,target_code,target_display,equivalence,sender,field
GH,84295,http://loinc.org,2951-2,Sodium SerPl-sCnc,equivalent,MIRTH,OBX-3
GH,84132,http://loinc.org,2823-3,Potassium SerPl-sCnc,equivalent,MIRTH,OBX-3
GH,82947,http://loinc.org,2345-7,Glucose SerPl-mCnc,equivalent,,
GH,82565,http://loinc.org,2160-0,Creat SerPl-mCnc,equivalent,,
GH,82435,http://loinc.org,2075-0,Chloride SerPl-sCnc,disjoint,,
";

fn shared_with(csv: &str) -> SharedTerminology {
    let shared = SharedTerminology::new();
    shared.load(Content {
        concept_maps: concept_maps_from_csv("gh.csv", csv).unwrap(),
        ..Content::default()
    });
    shared
}

fn step(json: &str) -> MapStep {
    MapStep::new(&serde_json::from_str::<MapStepConfig>(json).unwrap()).unwrap()
}

fn get(m: &hl7v2::OwnedMessage, path: &str) -> String {
    m.get_text(&path.parse().unwrap()).unwrap_or_default()
}

#[test]
fn mapped_code_takes_components_1_to_3_and_the_original_moves_to_4_to_6() {
    let shared = shared_with(GH_MAP);
    let mut m = small();
    let outcome =
        step(r#"{"fields":["OBX-3"],"unmapped":"flag"}"#).apply(&shared.current(), &mut m);
    assert_eq!(
        get(&m, "OBX[1]-3"),
        "2951-2^Sodium SerPl-sCnc^LN^84295^SODIUM^GH"
    );
    assert_eq!(
        get(&m, "OBX[7]-3"),
        "2345-7^Glucose SerPl-mCnc^LN^82947^GLUCOSE^GH"
    );
    // OBX 6 already carried a LOINC alternate: it moves on to 10-12.
    assert_eq!(
        get(&m, "OBX[6]-3"),
        "2160-0^Creat SerPl-mCnc^LN^82565^CREATININE^GH^^^^2160-0^CREATININE:MCNC:PT:SER/PLAS:QN:^LN"
    );
    // Chloride's only target is disjoint: left as it is, and reported.
    assert_eq!(get(&m, "OBX[3]-3"), "82435^CHLORIDE^GH");
    assert!(outcome.unmapped.iter().any(|u| u.code == "82435"
        && u.field == "OBX-3"
        && u.sender == "MIRTH@MIRTH"
        && u.reason == UnmappedReason::NoMapping));
    assert_eq!(outcome.decision, Decision::Flag);
    assert_eq!(outcome.changes.len(), 4);
    assert_eq!(outcome.changes[0].path, "OBX-3[1]");
    assert_eq!(outcome.changes[0].before, "84295^SODIUM^GH");
}

#[test]
fn segments_the_step_does_not_map_come_out_byte_for_byte() {
    let shared = shared_with(GH_MAP);
    let original = small();
    let mut m = original.clone();
    step(r#"{"fields":["OBX-3"]}"#).apply(&shared.current(), &mut m);
    let lines = |m: &hl7v2::OwnedMessage| {
        m.to_bytes()
            .split(|&b| b == b'\r')
            .map(<[u8]>::to_vec)
            .collect::<Vec<_>>()
    };
    let (before, after) = (lines(&original), lines(&m));
    assert_eq!(before.len(), after.len());
    let changed: Vec<usize> = (0..before.len())
        .filter(|&i| before[i] != after[i])
        .collect();
    assert_eq!(
        changed.len(),
        4,
        "sodium, potassium, creatinine and glucose"
    );
    assert!(changed.iter().all(|&i| after[i].starts_with(b"OBX|")));
}

#[test]
fn a_sender_scoped_row_applies_to_that_sender_only() {
    let shared = shared_with(GH_MAP);
    let mut m = small();
    m.set_text(&"MSH-3".parse().unwrap(), "OTHERLAB").unwrap();
    let outcome = step(r#"{"fields":["OBX-3"]}"#).apply(&shared.current(), &mut m);
    assert_eq!(
        get(&m, "OBX[1]-3"),
        "84295^SODIUM^GH",
        "sodium's row is MIRTH's"
    );
    assert!(
        get(&m, "OBX[7]-3").starts_with("2345-7^"),
        "glucose's row is for everyone"
    );
    assert!(
        outcome
            .unmapped
            .iter()
            .any(|u| u.code == "84295" && u.sender == "OTHERLAB@MIRTH")
    );
    // Pass: unmapped codes are reported, the message goes on.
    assert_eq!(outcome.decision, Decision::Continue);
}

#[test]
fn quarantine_policy_stops_a_message_with_an_unmapped_code_only() {
    let shared = shared_with(GH_MAP);
    let quarantine = step(r#"{"fields":["OBX-3"],"unmapped":"quarantine"}"#);
    assert_eq!(
        quarantine.apply(&shared.current(), &mut small()).decision,
        Decision::Quarantine
    );
    let mut all_mapped = hl7v2::OwnedMessage::parse(
        b"MSH|^~\\&|MIRTH|MIRTH|||200612131519||ORU^R01|1|P|2.4\rOBX|1|NM|82947^GLUCOSE^GH||76|MG/DL\r",
    )
    .unwrap();
    assert_eq!(
        quarantine
            .apply(&shared.current(), &mut all_mapped)
            .decision,
        Decision::Continue
    );
}

#[test]
fn codes_already_in_a_target_system_are_left_alone() {
    let shared = shared_with(GH_MAP);
    let mut m = hl7v2::OwnedMessage::parse(
        b"MSH|^~\\&|LAB|H|||2024||ORU^R01|1|P|2.5.1\rOBX|1|NM|2345-7^Glucose^LN||76|mg/dL\r",
    )
    .unwrap();
    let outcome =
        step(r#"{"fields":["OBX-3"],"unmapped":"quarantine"}"#).apply(&shared.current(), &mut m);
    assert_eq!(get(&m, "OBX-3"), "2345-7^Glucose^LN");
    assert!(outcome.unmapped.is_empty());
    assert_eq!(outcome.decision, Decision::Continue);
}

#[test]
fn units_are_normalised_to_ucum_and_glucose_converted_keeping_the_original() {
    let shared = shared_with(GH_MAP);
    let mut m = small();
    let outcome = step(
        r#"{"fields":["OBX-3"],"units":true,"conversions":[
            {"system":"LN","code":"2345-7","from":"mg/dL","to":"mmol/L","divide_by":"18.016","decimals":2}]}"#,
    )
    .apply(&shared.current(), &mut m);
    assert_eq!(get(&m, "OBX[1]-6"), "mmol/L", "already UCUM: untouched");
    assert_eq!(get(&m, "OBX[5]-6"), "mg/dL^mg/dL^UCUM^MG/DL");
    // 76 / 18.016 = 4.2185..., rounded half away from zero to 4.22.
    assert_eq!(get(&m, "OBX[7]-5"), "4.22");
    assert_eq!(
        get(&m, "OBX[7]-6"),
        "mmol/L^mmol/L^UCUM^mg/dL^mg/dL^UCUM^^^^MG/DL"
    );
    let value_change = outcome
        .changes
        .iter()
        .find(|c| c.path == "OBX[7]-5[1]")
        .unwrap();
    assert_eq!(
        (value_change.before.as_str(), value_change.after.as_str()),
        ("76", "4.22")
    );
    // Creatinine is in mg/dL too but no conversion names it.
    assert_eq!(get(&m, "OBX[6]-5"), "1.3");
    // The original value and unit (the unit as normalised to UCUM before the
    // conversion) in an NTE right after the converted OBX.
    let names: Vec<&[u8]> = m.segment_names().collect();
    let obx7 = names
        .iter()
        .enumerate()
        .filter(|(_, n)| **n == b"OBX")
        .nth(6)
        .map(|(i, _)| i)
        .unwrap();
    assert_eq!(names[obx7 + 1], b"NTE");
    assert_eq!(names.iter().filter(|n| **n == b"NTE").count(), 1);
    assert_eq!(get(&m, "NTE-1"), "1");
    assert_eq!(get(&m, "NTE-2"), "O");
    assert_eq!(
        get(&m, "NTE-3"),
        "Original result: 76 mg/dL (converted to mmol/L by Corridor)"
    );
    assert_eq!(get(&m, "NTE-4"), "RE^Remark^HL70364");
    assert!(outcome.changes.iter().any(|c| c.path == "NTE[1]"
        && c.after == "NTE|1|O|Original result: 76 mg/dL (converted to mmol/L by Corridor)|RE^Remark^HL70364"));
    // Run again: nothing is converted twice, no second note.
    let again = m.clone();
    let outcome = step(
        r#"{"fields":["OBX-3"],"units":true,"conversions":[
            {"system":"LN","code":"2345-7","from":"mg/dL","to":"mmol/L","divide_by":"18.016","decimals":2}]}"#,
    )
    .apply(&shared.current(), &mut m);
    assert!(outcome.changes.is_empty(), "{:?}", outcome.changes);
    assert_eq!(m, again);
}

#[test]
fn the_original_note_follows_the_notes_already_on_the_obx() {
    let shared = shared_with(GH_MAP);
    let mut m = hl7v2::OwnedMessage::parse(
        b"MSH|^~\\&|LAB|H|||2024||ORU^R01|1|P|2.5.1\r\
OBX|1|NM|82947^GLUCOSE^GH||100|mg|dl\r\
NTE|1|L|Fasting\r\
OBX|2|NM|82947^GLUCOSE^GH||5|mmol/L\r\
OBX|3|NM|82947^GLUCOSE^GH||90|mg/dl\r\
NTE|1|L|Non-fasting\r\
NTE|2|L|Repeat\r",
    )
    .unwrap();
    let outcome = step(
        r#"{"fields":["OBX-3"],"conversions":[
            {"system":"LN","code":"2345-7","from":"mg/dL","to":"mmol/L","divide_by":"18.016","decimals":1}]}"#,
    )
    .apply(&shared.current(), &mut m);
    let names: Vec<String> = m
        .segment_names()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    // OBX-6 `mg|dl` is not a unit at all (`mg` in OBX-6, `dl` in OBX-7): no conversion.
    assert_eq!(get(&m, "OBX[1]-5"), "100");
    assert_eq!(get(&m, "OBX[2]-5"), "5");
    assert_eq!(get(&m, "OBX[3]-5"), "5.0");
    assert_eq!(
        names,
        ["MSH", "OBX", "NTE", "OBX", "OBX", "NTE", "NTE", "NTE"]
    );
    assert_eq!(get(&m, "NTE[4]-1"), "3");
    assert_eq!(
        get(&m, "NTE[4]-3"),
        "Original result: 90 mg/dl (converted to mmol/L by Corridor)"
    );
    assert!(outcome.changes.iter().any(|c| c.path == "NTE[4]"));
}

#[test]
fn unknown_units_are_reported() {
    let shared = shared_with(GH_MAP);
    let mut m = hl7v2::OwnedMessage::parse(
        b"MSH|^~\\&|LAB|H|||2024||ORU^R01|1|P|2.5.1\rOBX|1|NM|82947^GLUCOSE^GH||76|furlongs\r",
    )
    .unwrap();
    let outcome = step(r#"{"fields":["OBX-3"],"units":true,"unmapped":"flag"}"#)
        .apply(&shared.current(), &mut m);
    assert_eq!(outcome.unmapped.len(), 1);
    assert_eq!(outcome.unmapped[0].reason, UnmappedReason::UnknownUnit);
    assert_eq!(outcome.unmapped[0].field, "OBX-6");
    assert_eq!(get(&m, "OBX-6"), "furlongs");
}

#[test]
fn no_room_for_the_original_leaves_the_code_and_reports_it() {
    let shared = shared_with(GH_MAP);
    let mut m = hl7v2::OwnedMessage::parse(
        b"MSH|^~\\&|LAB|H|||2024||ORU^R01|1|P|2.7\rOBX|1|NM|82947^GLUCOSE^GH^A^a^X|||||^^^B^b^Y||76|mg/dL\r",
    )
    .unwrap();
    // Components 4-6 and 10-12 both taken.
    m.set_raw(
        &"OBX-3".parse().unwrap(),
        b"82947^GLUCOSE^GH^A^a^X^^^^B^b^Y",
    )
    .unwrap();
    let outcome = step(r#"{"fields":["OBX-3"]}"#).apply(&shared.current(), &mut m);
    assert_eq!(get(&m, "OBX-3"), "82947^GLUCOSE^GH^A^a^X^^^^B^b^Y");
    assert_eq!(
        outcome.unmapped[0].reason,
        UnmappedReason::NoRoomForOriginal
    );
}

#[test]
fn unmapped_tally_exports_a_csv_that_filled_in_loads_back_as_a_map() {
    let shared = shared_with(GH_MAP);
    let step = step(r#"{"fields":["OBX-3"],"unmapped":"flag"}"#);
    let mut tally = UnmappedTally::default();
    for (id, at) in [
        ("12345678", "2024-01-02T10:00:00Z"),
        ("12345679", "2024-01-02T11:00:00Z"),
    ] {
        let outcome = step.apply(&shared.current(), &mut small());
        for code in &outcome.unmapped {
            tally.record(code, id, at);
        }
    }
    let chloride = tally.get("MIRTH@MIRTH", "OBX-3", "GH", "82435").unwrap();
    assert_eq!(chloride.count, 2);
    assert_eq!(chloride.first_seen, "2024-01-02T10:00:00Z");
    assert_eq!(chloride.last_seen, "2024-01-02T11:00:00Z");
    assert_eq!(chloride.example_message_id, "12345679");
    assert_eq!(chloride.display.as_deref(), Some("CHLORIDE"));

    // The analyst fills in chloride's row and leaves the others empty.
    let export = tally.to_csv();
    assert!(export.starts_with(
        "source_system,source_code,source_display,target_system,target_code,target_display,equivalence,sender,field,comment,count,first_seen,last_seen,example_message_id\n"
    ));
    let filled: String = export
        .lines()
        .map(|line| {
            if line.starts_with("GH,82435,") {
                line.replacen(
                    "CHLORIDE,,,,,",
                    "CHLORIDE,http://loinc.org,2075-0,Chloride SerPl-sCnc,equivalent,",
                    1,
                )
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(filled, export.trim_end(), "the row was filled in");

    let mut maps = concept_maps_from_csv("gh.csv", GH_MAP).unwrap();
    let filled_maps = concept_maps_from_csv("unmapped-filled.csv", &filled).unwrap();
    assert_eq!(filled_maps.len(), 1, "one scope: MIRTH@MIRTH, OBX-3");
    assert_eq!(filled_maps[0].scope.sender.as_deref(), Some("MIRTH@MIRTH"));
    maps.extend(filled_maps);
    let version = shared.load(Content {
        concept_maps: maps,
        ..Content::default()
    });
    assert_eq!(version, 2);

    let mut m = small();
    let outcome = step.apply(&shared.current(), &mut m);
    assert_eq!(
        get(&m, "OBX[3]-3"),
        "2075-0^Chloride SerPl-sCnc^LN^82435^CHLORIDE^GH"
    );
    assert!(!outcome.unmapped.iter().any(|u| u.code == "82435"));
}

#[test]
fn the_tally_is_bounded() {
    let shared = shared_with(GH_MAP);
    let outcome = step(r#"{"fields":["OBX-3"]}"#).apply(&shared.current(), &mut small());
    assert!(outcome.unmapped.len() > 2);
    let mut tally = UnmappedTally::with_capacity(2);
    for code in &outcome.unmapped {
        tally.record(code, "1", "2024");
    }
    assert_eq!(tally.entries().count(), 2);
    assert_eq!(tally.dropped(), outcome.unmapped.len() as u64 - 2);
}

#[test]
fn the_starter_loinc_map_maps_local_mnemonics_and_carries_its_notice() {
    let maps = loinc_starter_map();
    let rows: usize = maps
        .iter()
        .flat_map(|m| &m.groups)
        .map(|g| g.elements.len())
        .sum();
    assert_eq!(rows, 34);
    for group in maps.iter().flat_map(|m| &m.groups) {
        assert_eq!(group.target, "http://loinc.org");
        for e in &group.elements {
            let t = &e.targets[0];
            let code = t.code.as_deref().unwrap();
            // Each row names its source.
            assert!(
                t.comment
                    .as_deref()
                    .unwrap()
                    .contains(&format!("https://loinc.org/{code}/"))
            );
        }
    }
    assert!(terminology::LOINC_NOTICE.contains("Regenstrief Institute"));
    assert!(terminology::LOINC_NOTICE.contains("https://loinc.org/license"));

    let shared = SharedTerminology::new();
    shared.load(Content {
        concept_maps: maps,
        ..Content::default()
    });
    let mut m = hl7v2::OwnedMessage::parse(
        b"MSH|^~\\&|LAB|H|||2024||ORU^R01|1|P|2.5.1\rOBX|1|NM|HGB^Hemoglobin^L||13.5|g/dl\rOBX|2|NM|GLU^Glucose^L||90|mg/dL\r",
    )
    .unwrap();
    let config = format!(
        r#"{{"fields":["OBX-3"],"maps":["{}"]}}"#,
        terminology::LOINC_STARTER_URL
    );
    let outcome = step(&config).apply(&shared.current(), &mut m);
    assert_eq!(
        get(&m, "OBX[1]-3"),
        "718-7^Hemoglobin [Mass/volume] in Blood^LN^HGB^Hemoglobin^L"
    );
    assert!(get(&m, "OBX[2]-3").starts_with("2345-7^"));
    assert!(outcome.unmapped.is_empty());
}

#[test]
fn configuration_errors_name_the_key() {
    let parse = |json: &str| serde_json::from_str::<MapStepConfig>(json).map_err(|e| e.to_string());
    let e = parse(r#"{"fields":["OBX-3"],"polcy":"flag"}"#).unwrap_err();
    assert!(e.contains("unknown field `polcy`"), "{e}");
    let e = parse(r#"{"fields":["OBX-3"],"unmapped":"drop"}"#).unwrap_err();
    assert!(e.contains("unmapped: \"drop\" is not a policy"), "{e}");

    let config = |json: &str| MapStep::new(&parse(json).unwrap()).unwrap_err();
    let e = config(r#"{"fields":["OBX-3","OBX-"]}"#);
    assert_eq!(e.place, "fields[1]");
    let e = config(r#"{"fields":["OBX[2]-3"]}"#);
    assert_eq!(e.place, "fields[0]");
    let e = config(r#"{"fields":[]}"#);
    assert_eq!(e.place, "fields");
    let e = config(
        r#"{"fields":["OBX-3"],"conversions":[{"from":"mg/dL","to":"mmol/L","divide_by":"eighteen"}]}"#,
    );
    assert_eq!(e.place, "conversions[0].divide_by");
    let e = config(
        r#"{"fields":["OBX-3"],"conversions":[{"from":"mg/dL","to":"furlongs","divide_by":"18"}]}"#,
    );
    assert_eq!(e.place, "conversions[0].to");
    let e = config(
        r#"{"fields":["OBX-3"],"conversions":[{"from":"mg/dL","to":"mmol/L","divide_by":"0"}]}"#,
    );
    assert_eq!(e.place, "conversions[0].divide_by");
    let e = config(r#"{"fields":["OBX-3"],"conversions":[{"from":"mg/dL","to":"mmol/L"}]}"#);
    assert_eq!(e.place, "conversions[0].multiply_by");
}

#[test]
fn csv_errors_name_the_line_and_column() {
    let header = "source_system,source_code,target_system,target_code,equivalence\n";
    let e = concept_maps_from_csv(
        "m.csv",
        &format!("{header}L,A,http://loinc.org,1-1,equivalent\nL,B,http://loinc.org,2-2,same\n"),
    )
    .unwrap_err();
    assert_eq!(e.place, "m.csv line 3, column equivalence");
    let e = concept_maps_from_csv(
        "m.csv",
        &format!("{header}L,,http://loinc.org,1-1,equivalent\n"),
    )
    .unwrap_err();
    assert_eq!(e.place, "m.csv line 2, column source_code");
    let e = concept_maps_from_csv(
        "m.csv",
        &format!("{header}L,A,http://loinc.org,,equivalent\n"),
    )
    .unwrap_err();
    assert_eq!(e.place, "m.csv line 2, column target_code");
    let e = concept_maps_from_csv(
        "m.csv",
        "source_system,source_code,target_system,target_code,equivalence,colour\n",
    )
    .unwrap_err();
    assert_eq!(e.place, "m.csv line 1, column 6");
    let e = concept_maps_from_csv(
        "m.csv",
        "source_system,source_code,target_code,equivalence\n",
    )
    .unwrap_err();
    assert!(e.message.contains("target_system"), "{e}");
    let e = concept_maps_from_csv("m.csv", &format!("{header}L,A,http://loinc.org\n")).unwrap_err();
    assert_eq!(e.place, "m.csv line 2");
    // A row not yet filled in is skipped; an explicit unmatched row needs no target.
    let maps = concept_maps_from_csv(
        "m.csv",
        &format!("{header}L,A,http://loinc.org,,\nL,B,http://loinc.org,,unmatched\n"),
    )
    .unwrap();
    let elements = &maps[0].groups[0].elements;
    assert_eq!(elements.len(), 1);
    assert_eq!(elements[0].code, "B");
}

#[test]
fn the_documented_toml_configuration_reads() {
    let text = r#"
fields = ["OBX-3", "OBR-4", "AL1-3"]
maps = ["corridor:starter/loinc-lab"]
unmapped = "flag"
units = true
[[conversions]]
system = "LN"
code = "2345-7"
from = "mg/dL"
to = "mmol/L"
divide_by = "18.016"
decimals = 2
"#;
    let config: MapStepConfig = toml::from_str(text).unwrap();
    assert_eq!(config.fields, ["OBX-3", "OBR-4", "AL1-3"]);
    assert_eq!(config.unmapped, terminology::UnmappedPolicy::Flag);
    assert_eq!(config.conversions[0].divide_by.as_deref(), Some("18.016"));
    assert!(MapStep::new(&config).is_ok());
    // TOML names the key of a bad value itself.
    let e =
        toml::from_str::<MapStepConfig>("fields = [\"OBX-3\"]\nunmapped = \"drop\"\n").unwrap_err();
    assert!(e.to_string().contains("unmapped"), "{e}");
}

#[test]
fn components_past_the_thirteenth_are_kept_and_targets_are_escaped() {
    let csv = "source_system,source_code,target_system,target_code,target_display,equivalence\n\
               GH,82947,http://loinc.org,2345-7,Glucose^Fasting|x,equivalent\n";
    let shared = shared_with(csv);
    let mut m = hl7v2::OwnedMessage::parse(
        b"MSH|^~\\&|LAB|H|||2024||ORU^R01|1|P|2.7\rOBX|1|NM|82947^GLUCOSE^GH^^^^^^^^^^^^Z15||76|mg/dL\r",
    )
    .unwrap();
    step(r#"{"fields":["OBX-3"]}"#).apply(&shared.current(), &mut m);
    let raw = m.get(&"OBX-3".parse().unwrap()).unwrap().raw().to_vec();
    assert_eq!(
        String::from_utf8(raw).unwrap(),
        "2345-7^Glucose\\S\\Fasting\\F\\x^LN^82947^GLUCOSE^GH^^^^^^^^^Z15"
    );
}

#[test]
fn an_unknown_unit_exported_and_filled_in_maps_next_time() {
    let message =
        b"MSH|^~\\&|LAB|H|||2024||ORU^R01|7|P|2.5.1\rOBX|1|NM|82947^GLUCOSE^GH||76|mgs per dl\r";
    let shared = shared_with(GH_MAP);
    let step = step(r#"{"fields":["OBX-3"],"units":true,"unmapped":"flag"}"#);
    let mut tally = UnmappedTally::default();
    let outcome = step.apply(
        &shared.current(),
        &mut hl7v2::OwnedMessage::parse(message).unwrap(),
    );
    for code in &outcome.unmapped {
        tally.record(code, "7", "2024-01-02T10:00:00Z");
    }
    let export = tally.to_csv();
    let row = export.lines().find(|l| l.contains("mgs per dl")).unwrap();
    assert_eq!(
        row,
        ",mgs per dl,,,,,,LAB@H,OBX-6,,1,2024-01-02T10:00:00Z,2024-01-02T10:00:00Z,7"
    );
    let filled = export.replace(
        ",mgs per dl,,,,,,",
        ",mgs per dl,,UCUM,mg/dL,mg/dL,equivalent,",
    );
    let mut maps = concept_maps_from_csv("gh.csv", GH_MAP).unwrap();
    maps.extend(concept_maps_from_csv("units.csv", &filled).unwrap());
    shared.load(Content {
        concept_maps: maps,
        ..Content::default()
    });
    let mut m = hl7v2::OwnedMessage::parse(message).unwrap();
    let outcome = step.apply(&shared.current(), &mut m);
    assert!(outcome.unmapped.is_empty(), "{:?}", outcome.unmapped);
    assert_eq!(get(&m, "OBX-6"), "mg/dL^mg/dL^UCUM^mgs per dl");
}

#[test]
fn every_repetition_of_a_coded_field_is_mapped_and_its_path_named() {
    let shared = SharedTerminology::new();
    shared.load(Content {
        concept_maps: loinc_starter_map(),
        ..Content::default()
    });
    let step = step(r#"{"fields": ["OBX-3"], "units": true}"#);
    let mut m = hl7v2::OwnedMessage::parse(
        b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102120000||ORU^R01|B1|P|2.5.1\r\
OBX|1|NM|GLU^Glucose^L~~NA^Sodium^L||90|mg/dl~MG/DL\r\
OBX|2|NM|K^Potassium^L||4|mmol/L\r",
    )
    .unwrap();
    let outcome = step.apply(&shared.current(), &mut m);
    let paths: Vec<&str> = outcome.changes.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "OBX-3[1]",
            "OBX-3[3]",
            "OBX[2]-3[1]",
            "OBX-6[1]",
            "OBX-6[2]"
        ]
    );
    assert_eq!(get(&m, "OBX-3[2]"), "");
    assert_eq!(get(&m, "OBX-3[1].4"), "GLU");
    assert_eq!(get(&m, "OBX-3[3].4"), "NA");
    assert_eq!(get(&m, "OBX[2]-3[1].4"), "K");
    assert_eq!(get(&m, "OBX-6[1].1"), "mg/dL");
    assert_eq!(get(&m, "OBX-6[2].4"), "MG/DL");
    assert_eq!(get(&m, "OBX[2]-6"), "mmol/L");
    assert_eq!(outcome.changes[0].after, get_raw(&m, "OBX-3[1]"));
    assert_eq!(outcome.changes[2].after, get_raw(&m, "OBX[2]-3"));
}

fn get_raw(m: &hl7v2::OwnedMessage, path: &str) -> String {
    String::from_utf8(m.get(&path.parse().unwrap()).unwrap().raw().to_vec()).unwrap()
}
