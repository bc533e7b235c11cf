//! Clinical correctness: one test per rule a clinical reviewer checks, each
//! with the v2 message that shows it and the FHIR elements it must produce.
//! The messages follow public samples (tests/corpus/public), cut to the
//! segments each rule needs. Every Bundle made here is also checked against
//! both R4 validators (`every_bundle_of_this_suite_is_valid_r4`).

use serde_json::Value;
use v2_fhir::{Bundle, ConvertErrorKind, Converter, Options};

fn convert_with(text: &str, options: Options) -> Bundle {
    let bytes = text.trim().replace('\n', "\r").into_bytes();
    let message = hl7v2::Message::parse(&bytes).unwrap();
    Converter::new(options).convert(&message).unwrap()
}

fn convert(text: &str) -> Bundle {
    convert_with(text, Options::default())
}

fn all(bundle: &Bundle, resource_type: &str) -> Vec<Value> {
    bundle
        .of_type(resource_type)
        .map(|e| e.resource.clone())
        .collect()
}

fn one(bundle: &Bundle, resource_type: &str) -> Value {
    let found = all(bundle, resource_type);
    assert_eq!(found.len(), 1, "expected one {resource_type}: {found:#?}");
    found.into_iter().next().unwrap()
}

fn ids(bundle: &Bundle, resource_type: &str) -> Vec<String> {
    bundle
        .of_type(resource_type)
        .map(|e| e.id.clone())
        .collect()
}

/// A VXU reporting a patient's history under one ORC-3, as an immunization
/// registry's answer does (izgateway-v2tofhir/msg_002.hl7).
const VXU_HISTORY_UNDER_ONE_ORDER: &str = "
MSH|^~\\&|MYEHR|DCS|MYIIS||20240618083102-0400||VXU^V04^VXU_V04|HIST-1|P|2.5.1
PID|1||234815^^^MYEHR^MR||FAGEN^CHRISTOS||20040315|M
ORC|RE||65930^DCS
RXA|0|1|20040315||08^Hep B, adolescent or pediatric^CVX|0.5|mL^^UCUM||01^historical^NIP001||||||||||CP|A
RXA|0|1|20040515||116^Rotavirus, pentavalent^CVX|999|||01^historical^NIP001||||||||||CP|A
RXA|0|1|20040515||49^Hib (PRP-OMP)^CVX|999|||01^historical^NIP001||||||||||CP|A
OBX|1|CE|30963-3^Vaccine funding source^LN|1|VXC2^State funds^CDCPHINVS||||||F";

#[test]
fn each_dose_under_one_order_number_is_its_own_immunization() {
    let bundle = convert(VXU_HISTORY_UNDER_ONE_ORDER);
    let doses = all(&bundle, "Immunization");
    assert_eq!(doses.len(), 3, "{doses:#?}");
    let vaccines: Vec<(&str, &str)> = doses
        .iter()
        .map(|d| {
            (
                d["vaccineCode"]["coding"][0]["code"].as_str().unwrap(),
                d["occurrenceDateTime"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        vaccines,
        [
            ("08", "2004-03-15"),
            ("116", "2004-05-15"),
            ("49", "2004-05-15")
        ]
    );
    // No dose takes another's fields: only the first carries a dose quantity.
    assert_eq!(doses[0]["doseQuantity"]["value"], 0.5);
    assert!(doses[1].get("doseQuantity").is_none());
    // Each keeps the order number it was reported under.
    for dose in &doses {
        assert_eq!(dose["identifier"][0]["value"], "65930");
    }
    // The OBX after the third RXA belongs to the third dose.
    let observation = one(&bundle, "Observation");
    assert_eq!(
        observation["partOf"][0]["reference"],
        format!("Immunization/{}", doses[2]["id"].as_str().unwrap())
    );
}

#[test]
fn the_same_vxu_converted_twice_gives_the_same_ids() {
    let first = convert(VXU_HISTORY_UNDER_ONE_ORDER);
    let again = convert(VXU_HISTORY_UNDER_ONE_ORDER);
    assert_eq!(ids(&first, "Immunization"), ids(&again, "Immunization"));
    assert_eq!(ids(&first, "Observation"), ids(&again, "Observation"));
}

/// Two patients' VXUs with the placeholder ORC-3 `9999` the CDC test
/// messages use (cdc-iis-open-tools/Adult_z22_*.hl7).
fn vxu_with_placeholder_order(mrn: &str, family: &str) -> String {
    format!(
        "
MSH|^~\\&|Test EHR Application|X68||NIST Test Iz Reg|20190701082240-0500||VXU^V04^VXU_V04|NIST-{mrn}|P|2.5.1
PID|1||{mrn}^^^MYEHR^MR||{family}^DOROTHY||19840615|F
ORC|RE||9999^OP
RXA|0|1|20201215||208^COVID-19, mRNA^CVX|0.3|mL^^UCUM||00^new^NIP001||||||||||CP|A
OBX|1|CE|64994-7^Vaccine funding program eligibility category^LN|1|V01^Not VFC eligible^HL70064||||||F"
    )
}

#[test]
fn two_patients_sharing_a_placeholder_order_number_get_their_own_records() {
    let first = convert(&vxu_with_placeholder_order("123456", "WINCHESTER"));
    let second = convert(&vxu_with_placeholder_order("654321", "SMITH"));
    assert_ne!(first.patient_id(), second.patient_id());
    for resource_type in ["Immunization", "Observation"] {
        let (a, b) = (ids(&first, resource_type), ids(&second, resource_type));
        assert_eq!((a.len(), b.len()), (1, 1), "{resource_type}");
        assert_ne!(a, b, "{resource_type} ids are shared between two patients");
    }
    for bundle in [&first, &second] {
        let immunization = one(bundle, "Immunization");
        assert_eq!(
            immunization["patient"]["reference"],
            format!("Patient/{}", bundle.patient_id().unwrap())
        );
    }
}

#[test]
fn two_orders_with_one_filler_number_in_a_message_stay_two_requests() {
    // A case notification: the person subject and the notification share
    // OBR-3 (cdc-data-exchange-hl7/ARBOVIRAL_V1_3_TM_CN_TC04.hl7).
    let bundle = convert(
        "
MSH|^~\\&|SendApp|Sending-Facility|CDC|PHIN|20071225120030-0500||ORU^R01^ORU_R01|ARBO-4|P|2.5
PID|1||Arboviral_TC04^^^SendApp&2.16.840.1.114222.1222&ISO||DOE^JANE||19900104|F
OBR|1||Arboviral_TC04^SendAppName|PERSUBJ^Person Subject^2.16.840.1.114222.4.5.274|||20150612140000-0500
OBX|1|CWE|NOT109^Reporting State^2.16.840.1.114222.4.5.232||48^Texas^2.16.840.1.113883.6.92||||||F
OBR|2||Arboviral_TC04^SendAppName|NOTF^Individual Case Notification^2.16.840.1.114222.4.5.274|||20150612140000-0500
OBX|1|CWE|NOT109^Reporting State^2.16.840.1.114222.4.5.232||48^Texas^2.16.840.1.113883.6.92||||||F",
    );
    let requests = all(&bundle, "ServiceRequest");
    let codes: Vec<&str> = requests
        .iter()
        .map(|r| r["code"]["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["PERSUBJ", "NOTF"]);
    assert_eq!(all(&bundle, "DiagnosticReport").len(), 2);
    assert_eq!(all(&bundle, "Observation").len(), 2);
}

#[test]
fn a_record_that_would_share_an_id_is_reported_not_merged() {
    // Two RDE orders with one placer number: two prescriptions the message
    // cannot tell apart. Merging them would mix their doses.
    let bytes = "MSH|^~\\&|PHARM|HOSP|EHR|HOSP|20240102120000-0500||RDE^O11^RDE_O11|RDE-1|P|2.5.1\r\
PID|1||P1^^^HOSP^MR||DOE^JANE\r\
ORC|NW|ORD-7\r\
RXE||00069-3150-83^Amoxicillin 500 mg^NDC|500||mg\r\
ORC|NW|ORD-7\r\
RXE||00093-4155-73^Warfarin 5 mg^NDC|5||mg\r";
    let message = hl7v2::Message::parse(bytes.as_bytes()).unwrap();
    let error = Converter::new(Options::default())
        .convert(&message)
        .unwrap_err();
    assert_eq!(
        error.kind,
        ConvertErrorKind::DuplicateRecord {
            resource_type: "MedicationRequest",
            first_segment: 4,
        }
    );
    assert_eq!(error.segment, Some((6, "RXE".to_string())));
}

/// Every message of this suite that converts, for the validators.
fn suite_messages() -> Vec<String> {
    vec![
        VXU_HISTORY_UNDER_ONE_ORDER.to_string(),
        vxu_with_placeholder_order("123456", "WINCHESTER"),
        oru_with_local_times("20240102120000-0500", "20240102093000", "202401021015"),
        SIU_BOOKED_WITHOUT_OFFSETS.to_string(),
    ]
}

#[test]
fn every_bundle_of_this_suite_is_valid_r4() {
    let bundles: Vec<(String, String)> = suite_messages()
        .iter()
        .enumerate()
        .map(|(n, text)| (format!("clinical#{n}"), convert(text).to_json_string()))
        .collect();
    test_support::fhir::assert_valid_r4_both(&bundles);
}

/// A result whose OBR-7 and OBX-14 carry no offset, as most senders send
/// them (286 of 597 OBX-14 in the corpus).
fn oru_with_local_times(msh7: &str, collected: &str, observed: &str) -> String {
    format!(
        "
MSH|^~\\&|LAB|GHH LAB|EHR|GHH|{msh7}||ORU^R01^ORU_R01|LAB-T1|P|2.5.1
PID|1||555^^^GHH^MR||DOE^JOHN||19700101|M
OBR|1||F-77^LAB|57021-8^CBC^LN|||{collected}
OBX|1|NM|718-7^Hemoglobin^LN||13.2|g/dL^^UCUM|||||F|||{observed}"
    )
}

fn effective_times(bundle: &Bundle) -> (Value, Value) {
    (
        one(bundle, "DiagnosticReport")["effectiveDateTime"].clone(),
        one(bundle, "Observation")["effectiveDateTime"].clone(),
    )
}

#[test]
fn times_without_an_offset_take_the_offset_of_msh7() {
    let text = oru_with_local_times("20240102120000-0500", "20240102093000", "202401021015");
    let plain = convert(&text);
    let options = Options {
        timezone: Some("Europe/Paris".parse().unwrap()),
        ..Options::default()
    };
    for bundle in [plain, convert_with(&text, options)] {
        assert_eq!(
            effective_times(&bundle),
            (
                "2024-01-02T09:30:00-05:00".into(),
                "2024-01-02T10:15:00-05:00".into()
            )
        );
    }
}

#[test]
fn times_without_any_offset_take_the_configured_zone_with_daylight_saving() {
    let text = oru_with_local_times("20240702120000", "20240102093000", "20240702101500");
    let options = Options {
        timezone: Some("America/New_York".parse().unwrap()),
        ..Options::default()
    };
    let bundle = convert_with(&text, options);
    assert_eq!(
        effective_times(&bundle),
        (
            "2024-01-02T09:30:00-05:00".into(),
            "2024-07-02T10:15:00-04:00".into()
        )
    );
    let provenance = one(&bundle, "Provenance");
    assert_eq!(provenance["recorded"], "2024-07-02T12:00:00-04:00");
    assert!(provenance.get("_recorded").is_none());
}

/// A booking whose SCH-11 times carry no offset, from a sender whose MSH-7
/// has none either and with no zone configured.
const SIU_BOOKED_WITHOUT_OFFSETS: &str = "
MSH|^~\\&|SCHED|GHH|EHR|GHH|20240110090000||SIU^S12^SIU_S12|SCH-9|P|2.5.1
SCH|10345^SCHED|20345^SCHED||||ROUTINE^Routine visit|NORMAL^Normal||30|MIN|^^30^20240115090000^20240115093000|||||^BOOKER^BEA|||||^BOOKER^BEA|||||Booked
PID|1||P100^^^GHH^MR||DOE^JANE||19800101|F";

#[test]
fn a_booked_appointment_keeps_its_start_and_end() {
    let bundle = convert(SIU_BOOKED_WITHOUT_OFFSETS);
    let appointment = one(&bundle, "Appointment");
    assert_eq!(appointment["status"], "booked");
    assert_eq!(appointment["start"], "2024-01-15T09:00:00+00:00");
    assert_eq!(appointment["end"], "2024-01-15T09:30:00+00:00");
    // The reader is told these times were read as UTC, not guessed silently.
    let provenance = one(&bundle, "Provenance");
    assert_eq!(provenance["recorded"], "2024-01-10T09:00:00+00:00");
    assert_eq!(
        provenance["_recorded"]["extension"][0]["url"],
        "urn:corridor:id/StructureDefinition/assumed-utc"
    );
}
