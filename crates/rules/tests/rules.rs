//! Each rule with the HL7 v2 messages that trigger it and the ones that
//! must not: values at and beside limits, windows' edges, corrected and
//! cancelled results, units in other spellings.

use rules::scenario::Replay;
use rules::{
    AlertKind, ClinicalFacts, Evidence, InMemoryHistory, ObservationStatus, PatientId, Rules,
    RulesConfig, Severity, Suppression, Timestamp, Window, extract,
};

fn patient() -> PatientId {
    PatientId("E-1".to_owned())
}

fn replay() -> Replay {
    Replay::new(Rules::new(&RulesConfig::default()).unwrap())
}

fn replay_with(config: &str) -> Replay {
    Replay::new(Rules::new(&RulesConfig::from_toml(config).unwrap()).unwrap())
}

/// An ORU with one OBR and the given OBX lines (`code|name|value|unit|flag|status`).
fn oru(control: &str, time: &str, results: &[&str]) -> String {
    let mut text = format!(
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|{time}||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||12345^^^HOSP^MR||DOE^JANE\r\
         OBR|1|P{control}|F{control}|24323-8^Metabolic panel^LN|||{time}"
    );
    for (i, r) in results.iter().enumerate() {
        let parts: Vec<&str> = r.split('|').collect();
        let [code, name, value, unit, flag, status] = parts[..] else {
            panic!("six parts: {r}");
        };
        text.push_str(&format!(
            "\rOBX|{}|NM|{code}^{name}^LN||{value}|{unit}||{flag}|||{status}|||{time}",
            i + 1
        ));
    }
    text
}

fn fire(replay: &mut Replay, message: &str) -> Vec<(AlertKind, String)> {
    replay
        .receive(&patient(), message.as_bytes())
        .unwrap()
        .into_iter()
        .map(|a| (a.rule, a.key))
        .collect()
}

fn facts(message: &str) -> ClinicalFacts {
    extract(&hl7v2::Message::parse(message.as_bytes()).unwrap())
}

// ---- critical values ----

#[test]
fn potassium_above_6_1_is_critical_and_6_1_itself_is_not() {
    let mut r = replay();
    assert!(
        fire(
            &mut r,
            &oru("K1", "20260301080000", &["2823-3|Potassium|6.1|mmol/L|H|F"])
        )
        .is_empty()
    );
    assert_eq!(
        fire(
            &mut r,
            &oru("K2", "20260301090000", &["2823-3|Potassium|6.2|mmol/L|H|F"])
        ),
        [(AlertKind::CriticalValue, "2823-3:high".to_owned())]
    );
}

#[test]
fn potassium_in_milliequivalents_is_compared_as_millimoles() {
    let mut r = replay();
    assert_eq!(
        fire(
            &mut r,
            &oru("K1", "20260301080000", &["2823-3|Potassium|2.9|mEq/L||F"])
        ),
        [(AlertKind::CriticalValue, "2823-3:low".to_owned())]
    );
}

#[test]
fn haemoglobin_at_7_is_critical_because_the_limit_includes_it() {
    let mut r = replay();
    assert_eq!(
        fire(
            &mut r,
            &oru("H1", "20260301080000", &["718-7|Hemoglobin|70|g/L||F"])
        ),
        [(AlertKind::CriticalValue, "718-7:low".to_owned())]
    );
    let mut r = replay();
    assert!(
        fire(
            &mut r,
            &oru("H2", "20260301080000", &["718-7|Hemoglobin|7.1|g/dL|L|F"])
        )
        .is_empty()
    );
}

#[test]
fn glucose_in_mmol_per_l_is_compared_in_mg_per_dl() {
    // 2.9 mmol/L is 52.2 mg/dL, below the limit of 55.
    let mut r = replay();
    assert_eq!(
        fire(
            &mut r,
            &oru("G1", "20260301080000", &["2345-7|Glucose|2.9|mmol/L||F"])
        ),
        [(AlertKind::CriticalValue, "2345-7:low".to_owned())]
    );
    let mut r = replay();
    assert!(
        fire(
            &mut r,
            &oru("G2", "20260301080000", &["2345-7|Glucose|3.1|mmol/L||F"])
        )
        .is_empty()
    );
}

#[test]
fn a_corrected_critical_result_fires_and_a_cancelled_one_does_not() {
    let mut r = replay();
    assert_eq!(
        fire(
            &mut r,
            &oru(
                "K1",
                "20260301080000",
                &["2823-3|Potassium|6.8|mmol/L|HH|C"]
            )
        ),
        [(AlertKind::CriticalValue, "2823-3:high".to_owned())]
    );
    let mut r = replay();
    assert!(
        fire(
            &mut r,
            &oru(
                "K2",
                "20260301080000",
                &["2823-3|Potassium|6.8|mmol/L|HH|X"]
            )
        )
        .is_empty()
    );
    let mut r = replay();
    assert!(
        fire(
            &mut r,
            &oru(
                "K3",
                "20260301080000",
                &["2823-3|Potassium|6.8|mmol/L|HH|W"]
            )
        )
        .is_empty()
    );
}

#[test]
fn laboratory_critical_flags_fire_for_codes_without_a_limit() {
    for flag in ["HH", "LL", "AA", ">", "<"] {
        let mut r = replay();
        let message = oru(
            "F1",
            "20260301080000",
            &[&format!("6301-6|INR|7.2|{{INR}}|{flag}|F")],
        );
        assert_eq!(
            fire(&mut r, &message),
            [(AlertKind::CriticalValue, format!("6301-6:flag-{flag}"))],
            "{flag}"
        );
    }
    for flag in ["H", "L", "A", "N", ""] {
        let mut r = replay();
        let message = oru(
            "F2",
            "20260301080000",
            &[&format!("6301-6|INR|7.2|{{INR}}|{flag}|F")],
        );
        assert!(fire(&mut r, &message).is_empty(), "{flag}");
    }
}

#[test]
fn flags_can_be_turned_off_leaving_the_table() {
    let mut r = replay_with("[critical_values]\nabnormal_flags = false");
    assert!(
        fire(
            &mut r,
            &oru("F1", "20260301080000", &["6301-6|INR|7.2|{INR}|HH|F"])
        )
        .is_empty()
    );
    assert_eq!(
        fire(
            &mut r,
            &oru("F2", "20260301090000", &["2823-3|Potassium|6.5|mmol/L||F"])
        )
        .len(),
        1
    );
}

#[test]
fn a_hospital_limit_replaces_the_shipped_one() {
    let mut r = replay_with(
        "[critical_values]\nlimits = [{ loinc = \"2823-3\", unit = \"mmol/L\", low = \"<2.8\", high = \">=6.5\", source = \"test lab\" }]",
    );
    assert!(
        fire(
            &mut r,
            &oru("K1", "20260301080000", &["2823-3|Potassium|6.4|mmol/L||F"])
        )
        .is_empty()
    );
    assert_eq!(
        fire(
            &mut r,
            &oru("K2", "20260301090000", &["2823-3|Potassium|6.5|mmol/L||F"])
        )
        .len(),
        1
    );
}

#[test]
fn the_same_critical_value_does_not_fire_again_within_six_hours() {
    let mut r = replay();
    assert_eq!(
        fire(
            &mut r,
            &oru("K1", "20260301080000", &["2823-3|Potassium|6.5|mmol/L||F"])
        )
        .len(),
        1
    );
    assert!(
        fire(
            &mut r,
            &oru("K2", "20260301140000", &["2823-3|Potassium|6.6|mmol/L||F"])
        )
        .is_empty()
    );
    assert_eq!(
        fire(
            &mut r,
            &oru("K3", "20260301140100", &["2823-3|Potassium|6.6|mmol/L||F"])
        )
        .len(),
        1
    );
    // A low value is another condition.
    assert_eq!(
        fire(
            &mut r,
            &oru("K4", "20260301140200", &["2823-3|Potassium|2.5|mmol/L||F"])
        )
        .len(),
        1
    );
}

#[test]
fn the_alert_carries_its_evidence_and_no_patient_name() {
    let mut r = replay();
    let alerts = r
        .receive(
            &patient(),
            oru(
                "K9",
                "20260301080000",
                &["2823-3|Potassium|7.0|mmol/L|HH|F"],
            )
            .as_bytes(),
        )
        .unwrap();
    let alert = &alerts[0];
    assert_eq!(
        (alert.rule_version, alert.severity),
        (1, Severity::Critical)
    );
    assert_eq!(alert.patient, patient());
    assert!(
        !alert.summary.contains("DOE") && !alert.summary.contains("12345"),
        "{}",
        alert.summary
    );
    let [Evidence::Observation(o)] = &alert.evidence[..] else {
        panic!("{:?}", alert.evidence);
    };
    assert_eq!(
        (
            o.source.control_id.as_str(),
            o.source.segment.as_str(),
            o.source.field.as_str()
        ),
        ("K9", "OBX[1]", "OBX[1]-5")
    );
    assert_eq!(alert.at, Timestamp::parse_hl7("20260301080000").unwrap());
}

// ---- delta checks ----

#[test]
fn creatinine_rising_0_3_within_48_hours_fires() {
    let mut r = replay();
    assert!(
        fire(
            &mut r,
            &oru("C1", "20260301080000", &["2160-0|Creatinine|1.0|mg/dL||F"])
        )
        .is_empty()
    );
    assert_eq!(
        fire(
            &mut r,
            &oru("C2", "20260303080000", &["2160-0|Creatinine|1.3|mg/dL||F"])
        ),
        [(AlertKind::DeltaCheck, "2160-0:rise".to_owned())]
    );
}

#[test]
fn creatinine_rising_just_outside_48_hours_or_by_less_than_0_3_does_not() {
    let mut r = replay();
    fire(
        &mut r,
        &oru("C1", "20260301080000", &["2160-0|Creatinine|1.0|mg/dL||F"]),
    );
    assert!(
        fire(
            &mut r,
            &oru("C2", "20260303080100", &["2160-0|Creatinine|1.5|mg/dL||F"])
        )
        .is_empty()
    );
    let mut r = replay();
    fire(
        &mut r,
        &oru("C3", "20260301080000", &["2160-0|Creatinine|1.0|mg/dL||F"]),
    );
    assert!(
        fire(
            &mut r,
            &oru("C4", "20260302080000", &["2160-0|Creatinine|1.29|mg/dL||F"])
        )
        .is_empty()
    );
}

#[test]
fn creatinine_in_micromoles_is_compared_in_mg_per_dl() {
    // 88.42 µmol/L is 1.0 mg/dL; 123.8 is 1.40.
    let mut r = replay();
    fire(
        &mut r,
        &oru(
            "C1",
            "20260301080000",
            &["2160-0|Creatinine|88.42|umol/L||F"],
        ),
    );
    assert_eq!(
        fire(
            &mut r,
            &oru(
                "C2",
                "20260301200000",
                &["2160-0|Creatinine|123.8|µmol/L||F"]
            )
        )
        .len(),
        1
    );
}

#[test]
fn haemoglobin_falling_2_within_a_day_fires_but_rising_2_does_not() {
    let mut r = replay();
    fire(
        &mut r,
        &oru("H1", "20260301080000", &["718-7|Hemoglobin|12.0|g/dL||F"]),
    );
    assert_eq!(
        fire(
            &mut r,
            &oru("H2", "20260301200000", &["718-7|Hemoglobin|10.0|g/dL||F"])
        ),
        [(AlertKind::DeltaCheck, "718-7:fall".to_owned())]
    );
    let mut r = replay();
    fire(
        &mut r,
        &oru("H3", "20260301080000", &["718-7|Hemoglobin|10.0|g/dL||F"]),
    );
    assert!(
        fire(
            &mut r,
            &oru("H4", "20260301200000", &["718-7|Hemoglobin|12.5|g/dL||F"])
        )
        .is_empty()
    );
}

#[test]
fn platelets_halving_within_a_week_fires_by_the_relative_limit() {
    let mut r = replay();
    fire(
        &mut r,
        &oru("P1", "20260301080000", &["777-3|Platelets|240|10*3/uL||F"]),
    );
    assert_eq!(
        fire(
            &mut r,
            &oru("P2", "20260305080000", &["777-3|Platelets|120|10^9/L||F"])
        ),
        [(AlertKind::DeltaCheck, "777-3:fall".to_owned())]
    );
    let mut r = replay();
    fire(
        &mut r,
        &oru("P3", "20260301080000", &["777-3|Platelets|240|10*3/uL||F"]),
    );
    assert!(
        fire(
            &mut r,
            &oru("P4", "20260305080000", &["777-3|Platelets|121|10*3/uL||F"])
        )
        .is_empty()
    );
    // The caret escaped as the standard has it reads the same.
    let mut r = replay();
    fire(
        &mut r,
        &oru("P5", "20260301080000", &["777-3|Platelets|240|10*3/uL||F"]),
    );
    assert_eq!(
        fire(
            &mut r,
            &oru(
                "P6",
                "20260305080000",
                &["777-3|Platelets|100|10\\S\\9/L||F"]
            )
        )
        .len(),
        1
    );
}

#[test]
fn a_cancelled_previous_result_is_not_a_baseline() {
    let mut r = replay();
    fire(
        &mut r,
        &oru("H1", "20260301080000", &["718-7|Hemoglobin|14.0|g/dL||X"]),
    );
    assert!(
        fire(
            &mut r,
            &oru("H2", "20260301200000", &["718-7|Hemoglobin|11.0|g/dL||F"])
        )
        .is_empty()
    );
}

// ---- sepsis screen ----

fn vitals(control: &str, time: &str, rows: &[&str]) -> String {
    oru(control, time, rows)
}

#[test]
fn fever_and_tachycardia_with_lactate_of_2_screen_positive() {
    let mut r = replay();
    assert!(
        fire(
            &mut r,
            &vitals(
                "V1",
                "20260301080000",
                &["8310-5|Temperature|101.5|[degF]||F"]
            )
        )
        .is_empty()
    );
    assert!(
        fire(
            &mut r,
            &vitals("V2", "20260301100000", &["8867-4|Heart rate|112|/min||F"])
        )
        .is_empty()
    );
    let alerts = r
        .receive(
            &patient(),
            oru("L1", "20260301120000", &["2524-7|Lactate|2.0|mmol/L||F"]).as_bytes(),
        )
        .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!(
        (alerts[0].rule, alerts[0].key.as_str()),
        (AlertKind::SepsisScreen, "sirs-lactate")
    );
    assert_eq!(alerts[0].evidence.len(), 3);
    assert!(
        alerts[0].summary.contains("temperature 38.61 Cel"),
        "{}",
        alerts[0].summary
    );
    assert!(
        alerts[0].summary.contains("lactate 2 mmol/L"),
        "{}",
        alerts[0].summary
    );
}

#[test]
fn lactate_in_mg_per_dl_counts_once_converted() {
    // 18.0 mg/dL is 1.998 mmol/L: below 2. 18.1 is 2.009.
    let mut r = replay();
    fire(
        &mut r,
        &vitals(
            "V1",
            "20260301080000",
            &[
                "8310-5|Temperature|38.5|Cel||F",
                "8867-4|Heart rate|95|/min||F",
            ],
        ),
    );
    assert!(
        fire(
            &mut r,
            &oru("L1", "20260301090000", &["2524-7|Lactate|18.0|mg/dL||F"])
        )
        .is_empty()
    );
    assert_eq!(
        fire(
            &mut r,
            &oru("L2", "20260301091000", &["2524-7|Lactate|18.1|mg/dL||F"])
        )
        .len(),
        1
    );
}

#[test]
fn sirs_criteria_at_their_limits_do_not_count() {
    // Temperature 38.0, heart rate 90, respiration 20, white cells 12: all
    // at, none beyond, the consensus limits.
    let mut r = replay();
    fire(
        &mut r,
        &vitals(
            "V1",
            "20260301080000",
            &[
                "8310-5|Temperature|38.0|Cel||F",
                "8867-4|Heart rate|90|/min||F",
                "9279-1|Respiratory rate|20|/min||F",
            ],
        ),
    );
    fire(
        &mut r,
        &oru("W1", "20260301081000", &["6690-2|WBC|12.0|10*3/uL||F"]),
    );
    assert!(
        fire(
            &mut r,
            &oru("L1", "20260301082000", &["2524-7|Lactate|3.0|mmol/L||F"])
        )
        .is_empty()
    );
}

#[test]
fn criteria_six_hours_apart_count_and_a_minute_more_do_not() {
    let mut r = replay();
    fire(
        &mut r,
        &vitals("V1", "20260301080000", &["8310-5|Temperature|35.5|Cel||F"]),
    );
    assert_eq!(
        fire(
            &mut r,
            &vitals(
                "V2",
                "20260301140000",
                &[
                    "8867-4|Heart rate|120|/min||F",
                    "2524-7|Lactate|2.5|mmol/L||F"
                ]
            )
        ),
        [(AlertKind::SepsisScreen, "sirs-lactate".to_owned())]
    );
    let mut r = replay();
    fire(
        &mut r,
        &vitals("V3", "20260301080000", &["8310-5|Temperature|35.5|Cel||F"]),
    );
    assert!(
        fire(
            &mut r,
            &vitals(
                "V4",
                "20260301140100",
                &[
                    "8867-4|Heart rate|120|/min||F",
                    "2524-7|Lactate|2.5|mmol/L||F"
                ]
            )
        )
        .is_empty()
    );
}

#[test]
fn qsofa_fires_at_22_breaths_and_100_systolic_and_not_one_step_inside() {
    let mut r = replay();
    assert_eq!(
        fire(
            &mut r,
            &vitals(
                "V1",
                "20260301080000",
                &[
                    "9279-1|Respiratory rate|22|/min||F",
                    "8480-6|Systolic|100|mm[Hg]||F"
                ]
            )
        ),
        [(AlertKind::SepsisScreen, "qsofa".to_owned())]
    );
    let mut r = replay();
    assert!(
        fire(
            &mut r,
            &vitals(
                "V2",
                "20260301080000",
                &[
                    "9279-1|Respiratory rate|21|/min||F",
                    "8480-6|Systolic|101|mm[Hg]||F"
                ]
            )
        )
        .is_empty()
    );
}

#[test]
fn altered_mentation_coded_as_glasgow_below_15_counts_for_qsofa() {
    let mut r = replay();
    assert_eq!(
        fire(
            &mut r,
            &vitals(
                "V1",
                "20260301080000",
                &[
                    "9269-2|GCS total|14|{score}||F",
                    "8480-6|Systolic|95|mm[Hg]||F"
                ]
            )
        ),
        [(AlertKind::SepsisScreen, "qsofa".to_owned())]
    );
    let mut r = replay();
    assert!(
        fire(
            &mut r,
            &vitals(
                "V2",
                "20260301080000",
                &[
                    "9269-2|GCS total|15|{score}||F",
                    "8480-6|Systolic|95|mm[Hg]||F"
                ]
            )
        )
        .is_empty()
    );
}

#[test]
fn qsofa_can_be_turned_off() {
    let mut r = replay_with("[sepsis_screen]\nqsofa = false");
    assert!(
        fire(
            &mut r,
            &vitals(
                "V1",
                "20260301080000",
                &[
                    "9279-1|Respiratory rate|30|/min||F",
                    "8480-6|Systolic|80|mm[Hg]||F"
                ]
            )
        )
        .is_empty()
    );
}

// ---- allergy and medication ----

fn adt_with(control: &str, time: &str, segment: &str) -> String {
    format!(
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|{time}||ADT^A08^ADT_A01|{control}|P|2.5.1\rEVN|A08|{time}\r\
         PID|1||12345^^^HOSP^MR||DOE^JANE\rPV1|1|I\r{segment}"
    )
}

fn rde(control: &str, time: &str, order_control: &str, give: &str, components: &[&str]) -> String {
    let mut text = format!(
        "MSH|^~\\&|CPOE|HOSP|PHARM|HOSP|{time}||RDE^O11^RDE_O11|{control}|P|2.5.1\r\
         PID|1||12345^^^HOSP^MR||DOE^JANE\r\
         ORC|{order_control}|RX{control}||||||||{time}\r\
         RXE|1^^^{time}|{give}|1||TAB"
    );
    for c in components {
        text.push_str(&format!("\rRXC|B|{c}|1|TAB"));
    }
    text
}

#[test]
fn amoxicillin_ordered_for_a_patient_allergic_to_penicillin_fires() {
    let mut r = replay();
    fire(
        &mut r,
        &adt_with("A1", "20260301080000", "AL1|1|DA|^PENICILLIN^|SV|hives"),
    );
    let alerts = r
        .receive(
            &patient(),
            rde(
                "O1",
                "20260301090000",
                "NW",
                "723^Amoxicillin 500 MG Oral Capsule^RXNORM",
                &[],
            )
            .as_bytes(),
        )
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        (alerts[0].key.as_str(), alerts[0].severity),
        ("class:penicillins", Severity::Critical)
    );
    assert!(matches!(
        &alerts[0].evidence[..],
        [Evidence::Allergy(_), Evidence::Medication(_)]
    ));
}

#[test]
fn an_uncoded_drug_is_recognised_by_an_ingredient_in_its_text() {
    let mut r = replay();
    fire(
        &mut r,
        &adt_with(
            "A1",
            "20260301080000",
            "AL1|1|DA|7258^Naproxen^RXNORM|MO|rash",
        ),
    );
    assert_eq!(
        fire(
            &mut r,
            &rde(
                "O1",
                "20260301090000",
                "NW",
                "IBU400^Ibuprofen 400 mg tablet^LOCAL",
                &[]
            )
        ),
        [(AlertKind::AllergyMedication, "class:nsaids".to_owned())]
    );
}

#[test]
fn an_ingredient_listed_in_rxc_matches_the_allergy() {
    let mut r = replay();
    fire(
        &mut r,
        &adt_with(
            "A1",
            "20260301080000",
            "AL1|1|DA|10180^Sulfamethoxazole^RXNORM|SV|SJS",
        ),
    );
    assert_eq!(
        fire(
            &mut r,
            &rde(
                "O1",
                "20260301090000",
                "NW",
                "BACT^Co-trimoxazole 960^LOCAL",
                &["10180^Sulfamethoxazole^RXNORM", "10829^Trimethoprim^RXNORM"]
            )
        ),
        [(AlertKind::AllergyMedication, "code:RXNORM|10180".to_owned())]
    );
}

#[test]
fn a_cephalosporin_for_a_penicillin_allergy_does_not_fire() {
    let mut r = replay();
    fire(
        &mut r,
        &adt_with("A1", "20260301080000", "AL1|1|DA|^Penicillin^|SV|hives"),
    );
    assert!(
        fire(
            &mut r,
            &rde("O1", "20260301090000", "NW", "2193^Ceftriaxone^RXNORM", &[])
        )
        .is_empty()
    );
}

#[test]
fn a_deleted_allergy_or_a_cancelled_order_does_not_fire() {
    let mut r = replay();
    fire(
        &mut r,
        &adt_with(
            "A1",
            "20260301080000",
            "IAM|1|DA|723^Amoxicillin^RXNORM|SV|hives|A|1",
        ),
    );
    fire(
        &mut r,
        &adt_with(
            "A2",
            "20260301083000",
            "IAM|1|DA|723^Amoxicillin^RXNORM|SV|hives|D|1",
        ),
    );
    assert!(
        fire(
            &mut r,
            &rde("O1", "20260301090000", "NW", "723^Amoxicillin^RXNORM", &[])
        )
        .is_empty()
    );

    let mut r = replay();
    fire(
        &mut r,
        &adt_with(
            "A3",
            "20260301080000",
            "AL1|1|DA|723^Amoxicillin^RXNORM|SV|hives",
        ),
    );
    assert!(
        fire(
            &mut r,
            &rde("O2", "20260301090000", "DC", "723^Amoxicillin^RXNORM", &[])
        )
        .is_empty()
    );
}

#[test]
fn an_allergy_sent_in_the_order_message_itself_counts() {
    let mut r = replay();
    let message = rde(
        "O1",
        "20260301090000",
        "NW",
        "7980^Penicillin G^RXNORM",
        &[],
    )
    .replacen("\rORC", "\rAL1|1|DA|^penicillins^|SV|hives\rORC", 1);
    assert_eq!(
        fire(&mut r, &message),
        [(AlertKind::AllergyMedication, "class:penicillins".to_owned())]
    );
}

#[test]
fn a_dispense_is_checked_like_an_order() {
    let mut r = replay();
    fire(
        &mut r,
        &adt_with("A1", "20260301080000", "AL1|1|DA|^Sulfa^|SV|rash"),
    );
    let rds = "MSH|^~\\&|PHARM|HOSP|EHR|HOSP|20260301100000||RDS^O13^RDS_O13|D1|P|2.5.1\r\
               PID|1||12345^^^HOSP^MR||DOE^JANE\rORC|RE|RX9\r\
               RXD|1|10180^Sulfamethoxazole^RXNORM|20260301100000|1|TAB";
    assert_eq!(
        fire(&mut r, rds),
        [(
            AlertKind::AllergyMedication,
            "class:sulfonamides".to_owned()
        )]
    );
}

// ---- duplicate tests ----

fn orm(control: &str, time: &str, placer: &str, test: &str) -> String {
    format!(
        "MSH|^~\\&|CPOE|HOSP|LAB|HOSP|{time}||ORM^O01^ORM_O01|{control}|P|2.5.1\r\
         PID|1||12345^^^HOSP^MR||DOE^JANE\r\
         ORC|NW|{placer}||||||||{time}\r\
         OBR|1|{placer}||{test}"
    )
}

#[test]
fn hba1c_ordered_again_within_40_days_is_a_duplicate() {
    let mut r = replay();
    assert!(
        fire(
            &mut r,
            &orm("O1", "20260301080000", "P1", "4548-4^HbA1c^LN")
        )
        .is_empty()
    );
    assert_eq!(
        fire(
            &mut r,
            &orm("O2", "20260410080000", "P2", "4548-4^HbA1c^LN")
        ),
        [(AlertKind::DuplicateTest, "4548-4".to_owned())]
    );
    let mut r = replay();
    fire(
        &mut r,
        &orm("O3", "20260301080000", "P3", "4548-4^HbA1c^LN"),
    );
    assert!(
        fire(
            &mut r,
            &orm("O4", "20260410080100", "P4", "4548-4^HbA1c^LN")
        )
        .is_empty()
    );
}

#[test]
fn an_order_for_a_test_already_resulted_is_a_duplicate() {
    let mut r = replay();
    let result = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260301080000||ORU^R01|R1|P|2.5.1\r\
                  PID|1||12345^^^HOSP^MR||DOE^JANE\r\
                  OBR|1|P1|F1|1988-5^CRP^LN|||20260301070000\r\
                  OBX|1|NM|1988-5^CRP^LN||12|mg/L||H|||F";
    fire(&mut r, result);
    let alerts = r
        .receive(
            &patient(),
            orm("O2", "20260302080000", "P2", "1988-5^CRP^LN").as_bytes(),
        )
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert!(
        alerts[0].summary.contains("was resulted"),
        "{}",
        alerts[0].summary
    );
}

#[test]
fn the_same_order_sent_again_or_an_unlisted_test_is_not_a_duplicate() {
    let mut r = replay();
    fire(&mut r, &orm("O1", "20260301080000", "P1", "58410-2^CBC^LN"));
    assert!(fire(&mut r, &orm("O2", "20260301090000", "P1", "58410-2^CBC^LN")).is_empty());
    fire(
        &mut r,
        &orm("O3", "20260301080000", "P3", "2345-7^Glucose^LN"),
    );
    assert!(
        fire(
            &mut r,
            &orm("O4", "20260301090000", "P4", "2345-7^Glucose^LN")
        )
        .is_empty()
    );
}

#[test]
fn a_cancelled_order_is_not_a_previous_order() {
    let mut r = replay();
    let cancel = orm("O1", "20260301080000", "P1", "58410-2^CBC^LN").replace("ORC|NW", "ORC|CA");
    fire(&mut r, &cancel);
    assert!(fire(&mut r, &orm("O2", "20260301090000", "P2", "58410-2^CBC^LN")).is_empty());
}

// ---- configuration and suppression ----

#[test]
fn rules_turned_off_do_not_run() {
    let mut r = replay_with("enabled = false");
    assert!(
        fire(
            &mut r,
            &oru(
                "K1",
                "20260301080000",
                &["2823-3|Potassium|7.5|mmol/L|HH|F"]
            )
        )
        .is_empty()
    );
    let mut r = replay_with("[critical_values]\nenabled = false");
    assert!(
        fire(
            &mut r,
            &oru(
                "K2",
                "20260301080000",
                &["2823-3|Potassium|7.5|mmol/L|HH|F"]
            )
        )
        .is_empty()
    );
}

#[test]
fn suppression_is_per_rule_patient_and_key() {
    let rules = Rules::new(&RulesConfig::default()).unwrap();
    let message = oru(
        "K1",
        "20260301080000",
        &["2823-3|Potassium|7.0|mmol/L|HH|F"],
    );
    let now = Timestamp::parse_hl7("20260301080000").unwrap();
    let history = InMemoryHistory::new();
    let first = rules.evaluate(&patient(), &facts(&message), &history, now);
    assert_eq!(first.len(), 1);
    let suppression = Suppression::new([(AlertKind::CriticalValue, Window::hours(6))]);
    assert!(suppression.filter(first.clone(), &first).is_empty());
    let other = PatientId("E-2".to_owned());
    let theirs = rules.evaluate(&other, &facts(&message), &history, now);
    assert_eq!(suppression.filter(theirs, &first).len(), 1);
    // A rule with no window is never suppressed.
    assert_eq!(Suppression::new([]).filter(first.clone(), &first).len(), 1);
}

// ---- extraction ----

#[test]
fn a_value_that_cannot_be_read_is_a_finding_not_a_crash() {
    let message = oru(
        "B1",
        "20260301080000",
        &[
            "2823-3|Potassium|six|mmol/L||F",
            "8310-5|Temperature|38.5|kelvin||F",
            "2951-2|Sodium|140|mmol/L||F",
        ],
    );
    let facts = facts(&message);
    assert_eq!(facts.findings.len(), 2, "{:#?}", facts.findings);
    assert_eq!(facts.findings[0].source.field, "OBX[1]-5");
    assert!(facts.findings[1].problem.contains("kelvin"));
    // The sodium is still read; the temperature is kept without a value the
    // rules compare.
    assert_eq!(facts.observations.len(), 2);
    assert_eq!(facts.observations[0].normalised, None);
    assert_eq!(facts.observations[1].actionable_number(), Some(140.0));
}

#[test]
fn a_local_code_with_a_loinc_alternate_is_read_as_loinc() {
    let message = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260301080000||ORU^R01|X1|P|2.5.1\r\
                   PID|1||1^^^HOSP^MR\rOBR|1||F1|BMP^Basic panel^L\r\
                   OBX|1|NM|K^Potassium^L^2823-3^Potassium^LN||6.6|mmol/L||HH|||F|||20260301075500";
    let facts = facts(message);
    let o = &facts.observations[0];
    assert!(o.code.is_loinc("2823-3"));
    assert_eq!(o.status, ObservationStatus::Final);
    assert_eq!(o.effective, Timestamp::parse_hl7("20260301075500"));
    assert_eq!(o.order_code.as_ref().map(|c| c.code.as_str()), Some("BMP"));
}

#[test]
fn structured_numeric_values_are_read() {
    let message = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260301080000||ORU^R01|X1|P|2.5.1\r\
                   PID|1||1^^^HOSP^MR\rOBR|1||F1|10839-9^TnI^LN\r\
                   OBX|1|SN|10839-9^Troponin I^LN||>^0.30|ng/mL||HH|||F";
    let mut r = replay();
    assert_eq!(
        fire(&mut r, message),
        [(AlertKind::CriticalValue, "10839-9:high".to_owned())]
    );
}

#[test]
fn messages_with_missing_fields_extract_what_is_there() {
    for text in [
        "MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5.1\rOBX",
        "MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5.1\rOBX|1|NM",
        "MSH|^~\\&|A|B|C|D|||ORU^R01|1|P|2.5.1\rOBX|1|NM|2823-3^K^LN",
        "MSH|^~\\&|A|B|C|D|||RDE^O11|1|P|2.5.1\rRXC|B|723^A^RXNORM\rRXE\rAL1|1\rIAM|1|DA|||||D",
        "MSH|^~\\&|A|B|C|D|||ORM^O01|1|P|2.5.1\rORC|NW\rOBR|1",
    ] {
        let facts = facts(text);
        let rules = Rules::new(&RulesConfig::default()).unwrap();
        let now = Timestamp::from_unix_seconds(0);
        let _ = rules.evaluate(&patient(), &facts, &InMemoryHistory::new(), now);
    }
}

#[test]
fn the_configuration_example_in_the_docs_is_valid() {
    let doc = include_str!("../../../docs/rules.md");
    let start = doc.find("```toml\n").unwrap() + "```toml\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let config = RulesConfig::from_toml(&doc[start..end]).unwrap();
    assert_eq!(config.critical_values.limits.len(), 1);
    assert_eq!(config.allergy_medication.classes[0].members.len(), 2);
    // The example's classes replace the shipped NSAIDs, adding aspirin.
    let mut r = Replay::new(Rules::new(&config).unwrap());
    fire(
        &mut r,
        &adt_with("A1", "20260301080000", "AL1|1|DA|^NSAID^|SV|asthma"),
    );
    assert_eq!(
        fire(
            &mut r,
            &rde("O1", "20260301090000", "NW", "1191^Aspirin^RXNORM", &[])
        ),
        [(AlertKind::AllergyMedication, "class:nsaids".to_owned())]
    );
}

#[test]
fn a_corrected_result_is_not_compared_with_the_value_it_corrects() {
    // The correction has the original's observation time (OBX-14): it is
    // not a change in the patient.
    let mut r = replay();
    fire(
        &mut r,
        &oru("H1", "20260301080000", &["718-7|Hemoglobin|12.0|g/dL||F"]),
    );
    let corrected = oru("H2", "20260301080000", &["718-7|Hemoglobin|9.5|g/dL||C"]).replace(
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260301080000",
        "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20260301100000",
    );
    assert!(fire(&mut r, &corrected).is_empty());
}

#[test]
fn suppression_looks_both_ways_in_time_for_messages_out_of_order() {
    let mut r = replay();
    assert_eq!(
        fire(
            &mut r,
            &oru("K1", "20260301120000", &["2823-3|Potassium|6.5|mmol/L||F"])
        )
        .len(),
        1
    );
    // An earlier result arriving late, within the window of the alert.
    assert!(
        fire(
            &mut r,
            &oru("K0", "20260301070000", &["2823-3|Potassium|6.4|mmol/L||F"])
        )
        .is_empty()
    );
    // One from the day before is another episode.
    assert_eq!(
        fire(
            &mut r,
            &oru("K2", "20260228070000", &["2823-3|Potassium|6.4|mmol/L||F"])
        )
        .len(),
        1
    );
}

#[test]
fn a_hospital_can_read_altered_mentation_as_glasgow_13_or_less() {
    let mut r = replay_with("[sepsis_screen]\nglasgow_below = 14");
    let gcs_14 = [
        "9269-2|GCS total|14|{score}||F",
        "8480-6|Systolic|95|mm[Hg]||F",
    ];
    assert!(fire(&mut r, &vitals("V1", "20260301080000", &gcs_14)).is_empty());
    let gcs_13 = [
        "9269-2|GCS total|13|{score}||F",
        "8480-6|Systolic|95|mm[Hg]||F",
    ];
    assert_eq!(
        fire(&mut r, &vitals("V2", "20260301090000", &gcs_13)).len(),
        1
    );
    assert!(
        RulesConfig::from_toml("[sepsis_screen]\nglasgow_below = 16")
            .unwrap_err()
            .0
            .contains("sepsis_screen.glasgow_below")
    );
}

#[test]
fn an_omp_or_orm_pharmacy_order_with_rxo_is_checked() {
    for (kind, control) in [("OMP^O09^OMP_O09", "M1"), ("ORM^O01^ORM_O01", "M2")] {
        let mut r = replay();
        fire(
            &mut r,
            &adt_with("A1", "20260301080000", "AL1|1|DA|^Penicillin^|SV|hives"),
        );
        let order = format!(
            "MSH|^~\\&|CPOE|HOSP|PHARM|HOSP|20260301090000||{kind}|{control}|P|2.5.1\r\
             PID|1||12345^^^HOSP^MR||DOE^JANE\rORC|NW|RX1\r\
             RXO|733^Ampicillin^RXNORM|1||g"
        );
        assert_eq!(
            fire(&mut r, &order),
            [(AlertKind::AllergyMedication, "class:penicillins".to_owned())],
            "{kind}"
        );
    }
}

#[test]
fn an_rde_echoing_its_order_in_rxo_is_one_medication() {
    let message = "MSH|^~\\&|CPOE|HOSP|PHARM|HOSP|20260301090000||RDE^O11|R1|P|2.5.1\r\
                   PID|1||12345^^^HOSP^MR\rORC|NW|RX1\rRXO|723^Amoxicillin^RXNORM|500||mg\r\
                   RXE|1|723^Amoxicillin 500 MG Oral Capsule^RXNORM|500||mg\r\
                   RXC|B|723^Amoxicillin^RXNORM|500|mg";
    let facts = facts(message);
    assert_eq!(facts.medication_orders.len(), 1);
    let order = &facts.medication_orders[0];
    assert_eq!(order.source.segment, "RXE[1]");
    assert_eq!(order.ingredients.len(), 1);
    assert_eq!(order.order_control.as_deref(), Some("NW"));
}

#[test]
fn each_obr_has_its_own_placer_number_or_its_orc_s() {
    let message = "MSH|^~\\&|CPOE|HOSP|LAB|HOSP|20260301090000||ORM^O01|M1|P|2.5.1\r\
                   PID|1||12345^^^HOSP^MR\r\
                   ORC|NW|G1\rOBR|1|P1||1988-5^CRP^LN\rOBR|2|||4548-4^HbA1c^LN\r\
                   ORC|NW\rOBR|1|||2276-4^Ferritin^LN";
    let facts = facts(message);
    let placers: Vec<Option<&str>> = facts
        .test_orders
        .iter()
        .map(|o| o.placer_order_number.as_deref())
        .collect();
    assert_eq!(placers, [Some("P1"), Some("G1"), None]);
}

#[test]
fn the_configuration_chooses_which_rules_run() {
    let all = Rules::new(&RulesConfig::default()).unwrap().kinds();
    assert_eq!(all.len(), 5);
    let config = RulesConfig::from_toml(
        "[sepsis_screen]\nenabled = false\n[duplicate_test]\nenabled = false",
    )
    .unwrap();
    assert_eq!(
        Rules::new(&config).unwrap().kinds(),
        [
            AlertKind::CriticalValue,
            AlertKind::DeltaCheck,
            AlertKind::AllergyMedication
        ]
    );
    assert!(
        Rules::new(&RulesConfig::from_toml("enabled = false").unwrap())
            .unwrap()
            .kinds()
            .is_empty()
    );
}
