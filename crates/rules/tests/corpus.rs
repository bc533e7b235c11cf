//! Public sample messages from `tests/corpus/public` (sources and licences
//! in its SOURCES.md), read by the rules as they come.

use std::path::PathBuf;

use rules::scenario::Replay;
use rules::{AlertKind, PatientId, Rules, RulesConfig, extract};

fn corpus(path: &str) -> Vec<u8> {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/public")
        .join(path);
    std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn messages(bytes: &[u8]) -> Vec<&[u8]> {
    hl7v2::split_stream(bytes)
        .into_iter()
        .filter_map(|item| match item {
            hl7v2::StreamItem::Message { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect()
}

#[test]
fn a_mirth_cbc_with_local_codes_and_loinc_alternates_reads_in_rule_units() {
    // OBX|1|NM|wbc^Wbc^Local^6690-2^Wbc^LN||7.0|/nl ... OBX|9|NM|hgb^Hgb^Local^718-7^Hgb^LN||13.7|g/dl
    let bytes = corpus("openintegrationengine/filereader_08.hl7");
    let message = hl7v2::Message::parse(messages(&bytes)[0]).unwrap();
    let facts = extract(&message);
    let wbc = facts
        .observations
        .iter()
        .find(|o| o.code.is_loinc("6690-2"))
        .unwrap();
    assert_eq!(
        wbc.normalised.as_ref().map(|q| (q.value, q.unit.as_str())),
        Some((7.0, "10*3/uL"))
    );
    let hgb = facts
        .observations
        .iter()
        .find(|o| o.code.is_loinc("718-7"))
        .unwrap();
    assert_eq!(
        hgb.normalised.as_ref().map(|q| (q.value, q.unit.as_str())),
        Some((13.7, "g/dL"))
    );
    assert_eq!(hgb.source.field, "OBX[9]-5");
    // Normal values: nothing fires, nothing is unreadable.
    assert!(facts.findings.is_empty(), "{:#?}", facts.findings);
    let mut replay = Replay::new(Rules::new(&RulesConfig::default()).unwrap());
    let alerts = replay
        .receive(&PatientId("E-1".into()), messages(&bytes)[0])
        .unwrap();
    assert!(alerts.is_empty(), "{alerts:#?}");
}

#[test]
fn a_white_cell_count_per_cubic_millimetre_is_read_in_thousands_per_microlitre() {
    // OBX|4|NM|409^LEUCOCITOS RECUENTO^ LAB_COD^6690-2^...^LN||7350.00|/mm3
    let bytes = corpus("hapi-hl7v2/example_oml_o21.hl7");
    let message = messages(&bytes)
        .into_iter()
        .find(|m| m.windows(9).any(|w| w == b"LAB562901"))
        .unwrap();
    let facts = extract(&hl7v2::Message::parse(message).unwrap());
    let wbc = facts
        .observations
        .iter()
        .find(|o| o.code.is_loinc("6690-2"))
        .unwrap();
    let value = wbc.normalised.as_ref().unwrap().value;
    assert!((value - 7.35).abs() < 1e-9, "{value}");
}

#[test]
fn the_wikipedia_admission_s_aspirin_allergy_matches_an_aspirin_order() {
    // AL1|1||^ASPIRIN, uncoded and not in the class table.
    let bytes = corpus("elixir-hl7/wikipedia_sample_hl7.hl7");
    let admission = messages(&bytes)[0];
    let facts = extract(&hl7v2::Message::parse(admission).unwrap());
    assert_eq!(facts.allergies.len(), 1);
    assert_eq!(facts.allergies[0].code.text, "ASPIRIN");

    let patient = PatientId("E-1".into());
    let mut replay = Replay::new(Rules::new(&RulesConfig::default()).unwrap());
    replay.receive(&patient, admission).unwrap();
    let order = "MSH|^~\\&|CPOE|XYZHospC|PHARM|XYZHospC|20060529100000||RDE^O11|O1|P|2.5\r\
                 PID|||56782445^^^UAReg^PI\rORC|NW|RX1\rRXE|1|ASA81^Aspirin 81 mg chewable tablet^LOCAL|81||mg";
    let alerts = replay.receive(&patient, order.as_bytes()).unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        (alerts[0].rule, alerts[0].key.as_str()),
        (AlertKind::AllergyMedication, "ingredient:aspirin")
    );
    // Another drug does not.
    let other = order.replace("O1", "O2").replace(
        "ASA81^Aspirin 81 mg chewable tablet",
        "PCM^Paracetamol 500 mg",
    );
    assert!(
        replay
            .receive(&patient, other.as_bytes())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn every_public_sample_is_read_without_a_panic() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public");
    let mut stack = vec![root];
    let mut read = 0;
    let rules = Rules::new(&RulesConfig::default()).unwrap();
    let history = rules::InMemoryHistory::new();
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            for m in messages(&bytes) {
                if let Ok(message) = hl7v2::Message::parse(m) {
                    let facts = extract(&message);
                    let _ = rules.evaluate(
                        &PatientId("E".into()),
                        &facts,
                        &history,
                        rules::Timestamp::from_unix_seconds(0),
                    );
                    read += 1;
                }
            }
        }
    }
    assert!(read > 100, "{read}");
}
