//! Clinical correctness: one test per rule a clinical reviewer checks, each
//! with the v2 message that shows it and the FHIR elements it must produce.
//! The messages follow public samples (tests/corpus/public), cut to the
//! segments each rule needs. Every Bundle made here is also checked against
//! both R4 validators (`every_bundle_of_this_suite_is_valid_r4`).

mod common;

use common::{all, one, seg};
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

/// An electronic lab report that names its systems by OID, as the CDC's
/// guides ask (cdc-prime-reportstream samples).
const ORU_WITH_OID_SYSTEMS: &str = "
MSH|^~\\&|LAB^2.16.840.1.114222.4.1.1^ISO|LAB^05D0000000^CLIA|PH|PH|20240105120000-0500||ORU^R01^ORU_R01|ELR-1|P|2.5.1
PID|1||E77^^^LAB&2.16.840.1.114222.4.1.1&ISO^MR||DOE^JOHN||19700101|M
ORC|RE||F-9^LAB|||||||||1234567893^WELBY^MARCUS^^^^^^NPI&2.16.840.1.113883.4.6&ISO^L^^^NPI
OBR|1||F-9^LAB|94500-6^SARS-CoV-2 RNA^2.16.840.1.113883.6.1|||20240104083000-0500
OBX|1|CWE|94500-6^SARS-CoV-2 RNA^2.16.840.1.113883.6.1||260373001^Detected^2.16.840.1.113883.6.96||||||F
OBX|2|NM|33914-3^eGFR^2.16.840.1.113883.6.1||>60|mL/min/{1.73_m2}^mL/min/1.73m2^2.16.840.1.113883.6.8|||||F";

#[test]
fn coded_systems_given_as_oids_use_their_fhir_uris() {
    let bundle = convert(ORU_WITH_OID_SYSTEMS);
    let observations = all(&bundle, "Observation");
    assert_eq!(
        observations[0]["code"]["coding"][0]["system"],
        "http://loinc.org"
    );
    assert_eq!(
        observations[0]["valueCodeableConcept"]["coding"][0]["system"],
        "http://snomed.info/sct"
    );
    assert_eq!(
        observations[1]["valueQuantity"]["system"],
        "http://unitsofmeasure.org"
    );
    let practitioner = one(&bundle, "Practitioner");
    assert_eq!(
        practitioner["identifier"][0]["system"],
        "http://hl7.org/fhir/sid/us-npi"
    );
    assert_eq!(practitioner["identifier"][0]["value"], "1234567893");
}

#[test]
fn a_bounded_result_keeps_its_comparator_and_units() {
    let bundle = convert(ORU_WITH_OID_SYSTEMS);
    let egfr = &all(&bundle, "Observation")[1];
    assert!(egfr.get("valueString").is_none(), "{egfr:#}");
    let quantity = &egfr["valueQuantity"];
    assert_eq!(quantity["comparator"], ">");
    assert_eq!(quantity["value"], 60);
    assert_eq!(quantity["code"], "mL/min/{1.73_m2}");
    assert_eq!(quantity["unit"], "mL/min/1.73m2");
}

/// A urine culture: two isolates (OBX-4 sub-ids 1 and 2), then the
/// susceptibility order of the first (OBR-26 names the isolate's OBX-3 and
/// sub-id, OBR-29 the culture's order numbers).
fn oru_culture_with_susceptibilities() -> String {
    [
        "MSH|^~\\&|LAB|GHH LAB|EHR|GHH|20240110120000-0500||ORU^R01^ORU_R01|MICRO-1|P|2.5.1"
            .to_string(),
        "PID|1||M55^^^GHH^MR||DOE^JANE||19800101|F".to_string(),
        seg(
            "OBR",
            &[
                (1, "1"),
                (2, "P-100^EHR"),
                (3, "F-100^LAB"),
                (4, "630-4^Bacteria identified in Urine by Culture^LN"),
                (7, "20240108090000"),
                (24, "MB"),
                (25, "F"),
            ],
        ),
        "OBX|1|CWE|11475-1^Microorganism identified^LN|1|112283007^Escherichia coli^SCT||||||F"
            .to_string(),
        "OBX|2|CWE|11475-1^Microorganism identified^LN|2|3092008^Staphylococcus aureus^SCT||||||F"
            .to_string(),
        seg(
            "OBR",
            &[
                (1, "2"),
                (2, "P-100^EHR"),
                (3, "F-101^LAB"),
                (4, "29576-6^Bacterial susceptibility panel^LN"),
                (7, "20240108090000"),
                (24, "MB"),
                (25, "F"),
                (26, "11475-1&Microorganism identified&LN^1^Escherichia coli"),
                (29, "P-100&EHR^F-100&LAB"),
            ],
        ),
        "OBX|1|SN|18862-3^Amoxicillin+Clavulanate [Susceptibility]^LN|1|<=^2|ug/mL^^UCUM|||S|||F"
            .to_string(),
        "OBX|2|SN|18864-9^Ampicillin [Susceptibility]^LN|1|>=^32|ug/mL^^UCUM|||R|||F".to_string(),
    ]
    .join("\n")
}

#[test]
fn a_susceptibility_is_tied_to_its_isolate() {
    let bundle = convert(&oru_culture_with_susceptibilities());
    let observations = all(&bundle, "Observation");
    assert_eq!(observations.len(), 4);
    let reference = |o: &Value| format!("Observation/{}", o["id"].as_str().unwrap());
    let sub_id = |o: &Value| o["extension"][0]["valueString"].clone();
    let (e_coli, staph) = (&observations[0], &observations[1]);
    assert_eq!(
        e_coli["extension"][0]["url"],
        "http://hl7.org/fhir/StructureDefinition/observation-v2-subid"
    );
    assert_eq!((sub_id(e_coli), sub_id(staph)), ("1".into(), "2".into()));
    for susceptibility in &observations[2..] {
        assert_eq!(
            susceptibility["derivedFrom"][0]["reference"],
            reference(e_coli)
        );
    }
    let members: Vec<&Value> = e_coli["hasMember"].as_array().unwrap().iter().collect();
    assert_eq!(members.len(), 2);
    assert!(staph.get("hasMember").is_none());
    assert_eq!(observations[3]["valueQuantity"]["comparator"], ">=");
    // The susceptibility order is based on the culture's order.
    let requests = all(&bundle, "ServiceRequest");
    assert_eq!(
        requests[1]["basedOn"][0]["reference"],
        format!("ServiceRequest/{}", requests[0]["id"].as_str().unwrap())
    );
}

/// A pharmacy order whose timing is in RXE-1 (the TQ of 2.3-2.4), and one
/// whose timing is in TQ1 (2.5 and later).
fn rde_with_timing(version: &str) -> String {
    let timing = if version == "2.4" {
        vec![
            "ORC|NW|RX-1^EHR".to_string(),
            seg(
                "RXE",
                &[
                    (1, "1^Q6H^^20240102080000^20240109080000^R"),
                    (2, "00069-3150-83^Amoxicillin 500 mg^NDC"),
                    (3, "500"),
                    (5, "mg^^UCUM"),
                ],
            ),
        ]
    } else {
        vec![
            "ORC|NW|RX-1^EHR".to_string(),
            seg(
                "RXE",
                &[
                    (2, "00069-3150-83^Amoxicillin 500 mg^NDC"),
                    (3, "500"),
                    (5, "mg^^UCUM"),
                ],
            ),
            seg(
                "TQ1",
                &[
                    (1, "1"),
                    (3, "BID&twice a day&HL70335"),
                    (6, "10^d"),
                    (9, "S"),
                ],
            ),
        ]
    };
    let mut lines = vec![
        format!(
            "MSH|^~\\&|PHARM|GHH|EHR|GHH|20240102070000-0500||RDE^O11^RDE_O11|RX-{version}|P|{version}"
        ),
        "PID|1||P1^^^GHH^MR||DOE^JANE".to_string(),
    ];
    lines.extend(timing);
    lines.join("\n")
}

#[test]
fn medication_timing_is_kept_from_rxe_1_and_from_tq1() {
    let old = one(&convert(&rde_with_timing("2.4")), "MedicationRequest");
    let dosage = &old["dosageInstruction"][0];
    assert_eq!(dosage["doseAndRate"][0]["doseQuantity"]["value"], 500);
    let timing = &dosage["timing"];
    assert_eq!(timing["code"]["coding"][0]["code"], "Q6H");
    assert_eq!(
        (
            &timing["repeat"]["frequency"],
            &timing["repeat"]["period"],
            &timing["repeat"]["periodUnit"]
        ),
        (&1.into(), &6.into(), &"h".into())
    );
    assert_eq!(
        timing["repeat"]["boundsPeriod"]["start"],
        "2024-01-02T08:00:00-05:00"
    );
    assert_eq!(
        timing["repeat"]["boundsPeriod"]["end"],
        "2024-01-09T08:00:00-05:00"
    );
    assert_eq!(old["priority"], "routine");
    assert_eq!(old["dosageInstruction"].as_array().unwrap().len(), 1);

    let new = one(&convert(&rde_with_timing("2.5.1")), "MedicationRequest");
    let dosage = &new["dosageInstruction"][0];
    assert_eq!(
        new["dosageInstruction"].as_array().unwrap().len(),
        1,
        "one instruction, not one per segment"
    );
    assert_eq!(dosage["doseAndRate"][0]["doseQuantity"]["value"], 500);
    let timing = &dosage["timing"];
    assert_eq!(timing["code"]["text"], "twice a day");
    assert_eq!(
        (
            &timing["repeat"]["frequency"],
            &timing["repeat"]["periodUnit"]
        ),
        (&2.into(), &"d".into())
    );
    assert_eq!(timing["repeat"]["boundsDuration"]["value"], 10);
    assert_eq!(timing["repeat"]["boundsDuration"]["code"], "d");
    assert_eq!(new["priority"], "stat");
}

/// An admission whose PID and PV1 carry the fields the guide maps beyond the
/// usual ones.
fn adt_with_demographics_and_arrangements(event: &str, control: &str) -> String {
    [
        format!(
            "MSH|^~\\&|ADT1|GHH|EHR|GHH|20240102083000-0500||ADT^{event}^ADT_A01|{control}|P|2.5.1"
        ),
        seg(
            "PID",
            &[
                (1, "1"),
                (3, "PAT9^^^GHH^MR"),
                (5, "EVERYWOMAN^EVE"),
                (7, "19620320"),
                (8, "F"),
                (10, "2106-3^White^CDCREC"),
                (22, "2186-5^Not Hispanic or Latino^CDCREC"),
                (23, "Greensboro, NC"),
            ],
        ),
        seg(
            "PV1",
            &[
                (1, "1"),
                (2, "I"),
                (3, "4E^401^1^GHH"),
                (15, "A2^Ambulates with assistance^HL70009"),
                (16, "VIP"),
            ],
        ),
    ]
    .join("\n")
}

#[test]
fn race_ethnicity_and_birth_place_are_kept() {
    let patient = one(
        &convert(&adt_with_demographics_and_arrangements("A01", "ADM-1")),
        "Patient",
    );
    let extension = |url: &str| {
        patient["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == url)
            .cloned()
            .unwrap_or_else(|| panic!("no {url} in {patient:#}"))
    };
    let race = extension("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race");
    assert_eq!(race["extension"][0]["url"], "ombCategory");
    assert_eq!(race["extension"][0]["valueCoding"]["code"], "2106-3");
    assert_eq!(race["extension"][1]["valueString"], "White");
    let ethnicity = extension("http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity");
    assert_eq!(ethnicity["extension"][0]["valueCoding"]["code"], "2186-5");
    let birth_place = extension("http://hl7.org/fhir/StructureDefinition/patient-birthPlace");
    assert_eq!(birth_place["valueAddress"]["text"], "Greensboro, NC");
}

#[test]
fn ambulatory_status_and_vip_are_kept_on_the_encounter() {
    let encounter = one(
        &convert(&adt_with_demographics_and_arrangements("A01", "ADM-1")),
        "Encounter",
    );
    let hospitalization = &encounter["hospitalization"];
    assert_eq!(
        hospitalization["specialArrangement"][0]["coding"][0]["code"],
        "A2"
    );
    assert_eq!(
        hospitalization["specialCourtesy"][0]["coding"][0]["code"],
        "VIP"
    );
    assert_eq!(
        hospitalization["specialCourtesy"][0]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0099"
    );
}

#[test]
fn an_encounter_without_a_visit_number_keeps_its_id_across_messages() {
    let admit = convert(&adt_with_demographics_and_arrangements("A01", "ADM-1"));
    let update = convert(&adt_with_demographics_and_arrangements("A08", "UPD-2"));
    assert_eq!(ids(&admit, "Encounter"), ids(&update, "Encounter"));
}

/// A result with the order's clinical information and callback number, and
/// the result's equipment, analysis time and performing laboratory.
fn oru_with_lab_details() -> String {
    [
        "MSH|^~\\&|LAB|GHH LAB|EHR|GHH|20240105120000-0500||ORU^R01^ORU_R01|LAB-D1|P|2.5.1"
            .to_string(),
        "PID|1||555^^^GHH^MR||DOE^JOHN||19700101|M".to_string(),
        seg(
            "OBR",
            &[
                (1, "1"),
                (3, "F-55^LAB"),
                (4, "2345-7^Glucose^LN"),
                (7, "20240105073000"),
                (13, "Fasting 12 hours"),
                (16, "1234^WELBY^MARCUS"),
                (17, "^WPN^PH^^1^555^5550100"),
            ],
        ),
        seg(
            "OBX",
            &[
                (1, "1"),
                (2, "NM"),
                (3, "2345-7^Glucose^LN"),
                (5, "95"),
                (6, "mg/dL^^UCUM"),
                (11, "F"),
                (18, "AU5800-77^^1.2.840.114350^ISO"),
                (19, "20240105081500"),
                (
                    23,
                    "GHH Laboratory^L^^^^CLIA&2.16.840.1.113883.4.7&ISO^XX^^^05D0000000",
                ),
                (24, "1 Lab Way^^Greensboro^NC^27401"),
                (25, "9876^PATHOLOGIST^PAT"),
            ],
        ),
    ]
    .join("\n")
}

#[test]
fn order_and_result_details_the_guide_maps_are_kept() {
    let bundle = convert(&oru_with_lab_details());
    let request = one(&bundle, "ServiceRequest");
    assert_eq!(request["supportingInfo"][0]["display"], "Fasting 12 hours");
    let callback = &request["requester"]["extension"][0];
    assert_eq!(
        callback["url"],
        "http://hl7.org/fhir/StructureDefinition/servicerequest-order-callback-phone-number"
    );
    assert_eq!(callback["valueContactPoint"]["value"], "+1 (555) 5550100");

    let observation = one(&bundle, "Observation");
    assert_eq!(
        observation["extension"][0]["url"],
        "http://hl7.org/fhir/StructureDefinition/observation-analysis-date-time"
    );
    assert_eq!(
        observation["extension"][0]["valueDateTime"],
        "2024-01-05T08:15:00-05:00"
    );
    let device = one(&bundle, "Device");
    assert_eq!(
        observation["device"]["reference"],
        format!("Device/{}", device["id"].as_str().unwrap())
    );
    assert_eq!(device["identifier"][0]["value"], "AU5800-77");
    let role = one(&bundle, "PractitionerRole");
    assert_eq!(
        observation["performer"][0]["reference"],
        format!("PractitionerRole/{}", role["id"].as_str().unwrap())
    );
    assert_eq!(role["code"][0]["coding"][0]["code"], "MDIR");
    let lab = all(&bundle, "Organization")
        .into_iter()
        .find(|o| o["name"] == "GHH Laboratory")
        .unwrap();
    assert_eq!(
        role["organization"]["reference"],
        format!("Organization/{}", lab["id"].as_str().unwrap())
    );
    assert_eq!(lab["address"][0]["city"], "Greensboro");
}

/// A charge from a US sender that, like most, sends the amount without
/// its denomination (FT1-11 `150.00`, no MO.2), and one that names it.
fn dft_charge(amount: &str) -> String {
    [
        "MSH|^~\\&|BILL|GHH|FIN|GHH|20240102120000-0500||DFT^P03^DFT_P03|DFT-1|P|2.5.1|||||USA"
            .to_string(),
        "PID|1||P1^^^GHH^MR||DOE^JANE".to_string(),
        seg(
            "FT1",
            &[
                (1, "1"),
                (2, "TX-1"),
                (4, "20240102"),
                (6, "CG"),
                (7, "99213^Office visit^C4"),
                (10, "1"),
                (11, amount),
            ],
        ),
    ]
    .join("\n")
}

#[test]
fn money_has_a_currency() {
    let charge = one(&convert(&dft_charge("150.00")), "ChargeItem");
    assert_eq!(charge["priceOverride"]["value"], 150.0);
    assert_eq!(charge["priceOverride"]["currency"], "USD");
    let named = one(&convert(&dft_charge("150.00&CAD")), "ChargeItem");
    assert_eq!(named["priceOverride"]["currency"], "CAD");
}

/// Every message of this suite that converts, for the validators.
fn suite_messages() -> Vec<String> {
    vec![
        VXU_HISTORY_UNDER_ONE_ORDER.to_string(),
        vxu_with_placeholder_order("123456", "WINCHESTER"),
        oru_with_local_times("20240102120000-0500", "20240102093000", "202401021015"),
        SIU_BOOKED_WITHOUT_OFFSETS.to_string(),
        ORU_WITH_OID_SYSTEMS.to_string(),
        oru_culture_with_susceptibilities(),
        rde_with_timing("2.4"),
        rde_with_timing("2.5.1"),
        adt_with_demographics_and_arrangements("A01", "ADM-1"),
        oru_with_lab_details(),
        dft_charge("150.00"),
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
fn two_patients_sharing_a_placeholder_appointment_id_get_their_own_appointments() {
    // The scheduler sends SCH-2 `0` for everyone; SCH comes before PID.
    let booking = |mrn: &str| {
        SIU_BOOKED_WITHOUT_OFFSETS
            .replace("20345^SCHED", "0^SCHED")
            .replace("P100", mrn)
    };
    let (first, second) = (convert(&booking("P100")), convert(&booking("P200")));
    assert_ne!(ids(&first, "Appointment"), ids(&second, "Appointment"));
    assert_eq!(
        ids(&first, "Appointment"),
        ids(&convert(&booking("P100")), "Appointment")
    );
}

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
