//! Field-level behaviour per message type, against the guide's tables: a
//! message in, the expected FHIR values out.

mod common;

use common::{all, one, reference_of, seg};
use serde_json::json;
use v2_fhir::{Bundle, Converter, Identifier, Options, Zone};

fn parse_and_convert(text: &str, options: Options) -> Bundle {
    let bytes = text.replace('\n', "\r").into_bytes();
    let message = hl7v2::Message::parse(&bytes).unwrap();
    Converter::new(options).convert(&message).unwrap()
}

fn convert(text: &str) -> Bundle {
    parse_and_convert(text, Options::default())
}

fn adt_a01() -> String {
    [
        "MSH|^~\\&|ADT1|GOOD HEALTH HOSPITAL|GHH LAB|GHH|20240102083000-0500||ADT^A01^ADT_A01|MSG00001|P|2.5.1".to_string(),
        "EVN|A01|20240102082900-0500|||OP1^OPERATOR^OLIVE".to_string(),
        seg("PID", &[
            (1, "1"),
            (3, "PATID1234^^^GHH&2.16.840.1.113883.19.5&ISO^MR~123-45-6789^^^USSSA^SS"),
            (5, "EVERYWOMAN^EVE^E^^^^L"),
            (7, "19620320"),
            (8, "F"),
            (11, "2222 HOME STREET^^GREENSBORO^NC^27401-1020^USA^H"),
            (13, "^PRN^PH^^1^555^5552004"),
            (14, "^WPN^PH^^1^555^5553001"),
            (15, "EN^English^ISO639"),
            (16, "M^Married^HL70002"),
            (18, "AC555444444^^^GHH^AN"),
            (30, "N"),
        ]),
        seg("NK1", &[(1, "1"), (2, "EVERYMAN^ADAM^A"), (3, "SPO^Spouse^HL70063"), (5, "^PRN^PH^^1^555^5552005")]),
        seg("PV1", &[
            (1, "1"),
            (2, "I"),
            (3, "2000^2012^01^GHH"),
            (7, "004777^ATTEND^AARON^A"),
            (10, "SUR"),
            (14, "7"),
            (17, "004777^ATTEND^AARON^A"),
            (19, "V1001^^^GHH^VN"),
            (44, "20240102080000-0500"),
        ]),
        seg("AL1", &[(1, "1"), (2, "DA"), (3, "1605^Penicillin^RXNORM"), (4, "SV"), (5, "Hives~Rash")]),
        seg("DG1", &[(1, "1"), (3, "I10^Essential hypertension^I10"), (5, "20240102"), (6, "A")]),
        seg("PR1", &[(1, "1"), (3, "0DTJ4ZZ^Appendectomy^I10P"), (5, "20240102073000-0500")]),
        seg("IN1", &[
            (1, "1"),
            (2, "PPO1^Gold PPO"),
            (3, "IC123^^^GHH"),
            (4, "ACME INSURANCE"),
            (8, "GRP77"),
            (12, "20240101"),
            (13, "20241231"),
            (17, "SEL"),
            (36, "POL-998877"),
        ]),
        seg("GT1", &[(1, "1"), (2, "G1^^^GHH"), (3, "EVERYMAN^ADAM"), (5, "2222 HOME STREET^^GREENSBORO^NC^27401"), (11, "SPO")]),
    ]
    .join("\n")
}

const ADT_A40: &str = "MSH|^~\\&|ADT1|GHH|MPI|GHH|20240102083000||ADT^A40^ADT_A39|MSG9|P|2.5.1
EVN|A40|20240102083000
PID|1||KEEP1^^^GHH^MR||EVERYWOMAN^EVE
MRG|GONE2^^^GHH^MR";

const ADT_A60: &str = "MSH|^~\\&|EHR|GHH|REC|GHH|20240102083000+0000||ADT^A60^ADT_A60|MSG60|P|2.5.1
EVN|A60|20240102083000+0000
PID|1||P60^^^GHH^MR||DOE^JOHN
IAM|1|FA|256349002^Peanut^SCT|MO|Anaphylaxis|A|ALG-7^GHH||||20230101";

const ORM_O01: &str = "MSH|^~\\&|EHR|GHH|LAB|GHH|20240102080000+0000||ORM^O01|ORD1|P|2.3
PID|1||777^^^GHH^MR||ROE^RICHARD
ORC|NW|PLAC1^EHR||GRP1^EHR|||^^^^^S|||||4444^DOC^DAN
OBR|1|PLAC1^EHR||80053^Comprehensive metabolic panel^C4|||20240102073000+0000
NTE|1||Patient on warfarin";

const OML_O21: &str = "MSH|^~\\&|EHR|GHH|LAB|GHH|20240102080000+0000||OML^O21^OML_O21|ORD2|P|2.5.1
PID|1||778^^^GHH^MR||ROE^RITA
ORC|NW|PLAC2^EHR
TQ1|1||||||20240103080000+0000||R
OBR|1|PLAC2^EHR||2345-7^Glucose^LN
SPM|1|SPX^EHR||122555007^Venous blood specimen^SCT";

const RDE_O11: &str = "MSH|^~\\&|CPOE|GHH|PHARM|GHH|20240102080000+0000||RDE^O11^RDE_O11|RX1|P|2.5.1
PID|1||900^^^GHH^MR||POE^PAT
ORC|NW|RXP1^CPOE|RXF1^PHARM|||||||||5555^PRESCRIBER^PAM
RXE|^^^20240102^^R|197361^Amlodipine 5 MG Oral Tablet^RXNORM|5||mg^milligram^UCUM|||||30^tablet|TAB|3
RXR|PO^Oral^HL70162";

const RAS_O17: &str = "MSH|^~\\&|MAR|GHH|EHR|GHH|20240102100000+0000||RAS^O17^RAS_O17|RX2|P|2.5.1
PID|1||900^^^GHH^MR||POE^PAT
ORC|RE|RXP1^CPOE|RXF1^PHARM
RXE|^^^20240102^^R|197361^Amlodipine 5 MG Oral Tablet^RXNORM|5||mg^milligram^UCUM
RXA|0|1|20240102090000+0000||197361^Amlodipine 5 MG Oral Tablet^RXNORM|5|mg^milligram^UCUM||||||||||||CP
RXR|PO^Oral^HL70162";

const VXU_V04: &str = "MSH|^~\\&|EHR|CLINIC|IIS|STATE|20240102100000-0500||VXU^V04^VXU_V04|VX1|P|2.5.1
PID|1||KID1^^^CLINIC^MR||CHILD^CASEY||20200101|M
ORC|RE||IMM-55^CLINIC
RXA|0|1|20240102093000-0500||08^Hep B, adolescent or pediatric^CVX|0.5|mL^milliliter^UCUM||00^New immunization record^NIP001|7777^NURSE^NINA|||||LOT123|20251231|MSD^Merck and Co^MVX|||CP|A
RXR|IM^Intramuscular^HL70162|LA^Left Arm^HL70163
OBX|1|CE|64994-7^Vaccine funding program eligibility category^LN|1|V02^VFC eligible^HL70064||||||F";

const SIU_S12: &str = "MSH|^~\\&|SCHED|GHH|EHR|GHH|20240102100000+0000||SIU^S12|SC1|P|2.5.1
SCH|APT-P1^SCHED|APT-F1^SCHED|||||CHECKUP^Annual checkup^L|ROUTINE^Routine^HL70276|30|min|^^^20240110090000+0000^20240110093000+0000
NTE|1||Bring prior records
PID|1||123^^^GHH^MR||DOE^JOHN
RGS|1
AIS|1||99213^Office visit^C4
AIL|1||CLINIC^101^^GHH
AIP|1||9999^PRIMARY^PAT|ATT^Attending^HL70443";

const SIU_S15: &str = "MSH|^~\\&|SCHED|GHH|EHR|GHH|20240102100000+0000||SIU^S15|SC2|P|2.5.1
SCH|APT-P1^SCHED|APT-F1^SCHED
PID|1||123^^^GHH^MR||DOE^JOHN";

const MDM_T02: &str = "MSH|^~\\&|TRANS|GHH|EHR|GHH|20240102100000+0000||MDM^T02^MDM_T02|DOC1|P|2.5.1
EVN|T02|20240102100000+0000
PID|1||123^^^GHH^MR||DOE^JOHN
PV1|1|O
TXA|1|DS^Discharge summary^HL70270|TX|20240102095000+0000|||||8888^AUTHOR^ANN|||DOC-77^TRANS|||||AU||AV
OBX|1|TX|DS^Discharge summary||Patient discharged home.
OBX|2|TX|DS^Discharge summary||Follow up in 2 weeks.";

const DFT_P03: &str = "MSH|^~\\&|BILL|GHH|FIN|GHH|20240102100000+0000||DFT^P03^DFT_P03|FIN1|P|2.5.1
EVN|P03|20240102100000+0000
PID|1||123^^^GHH^MR||DOE^JOHN|||||||||||||ACC-1^^^GHH^AN
PV1|1|O|||||||||||||||||V9^^^GHH^VN
FT1|1|TX-1||20240102|20240102|CG|99213^Office visit^C4|||2|150.00&USD||||||||J45.909^Asthma^I10|7777^DOC^DEB
IN1|1|PLAN9|INS1^^^GHH|MEDICO|||||||||||||SEL||||||||||||||||||MEM-1";

const BAR_P01: &str = "MSH|^~\\&|BILL|GHH|FIN|GHH|20240102100000+0000||BAR^P01^BAR_P01|FIN2|P|2.5.1
EVN|P01|20240102100000+0000
PID|1||123^^^GHH^MR||DOE^JOHN|||||||||||||ACC-1^^^GHH^AN
PV1|1|O
DG1|1||J45.909^Asthma^I10
GT1|1||DOE^JOHN||||||||SEL";

const ACK_R01: &str = "MSH|^~\\&|LAB|GHH|EHR|GHH|20240102100000+0000||ACK^R01^ACK|ACK1|P|2.5.1
MSA|AE|LAB0001
ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 is empty";

#[test]
fn adt_a01_patient_identifiers_names_and_demographics_follow_pid_patient() {
    let bundle = convert(&adt_a01());
    let patient = one(&bundle, "Patient");
    assert_eq!(
        patient["identifier"][0],
        json!({
            "system": "urn:oid:2.16.840.1.113883.19.5",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical record number"}]},
            "value": "PATID1234"
        })
    );
    assert_eq!(patient["identifier"][1]["system"], "urn:corridor:id/USSSA");
    assert_eq!(patient["identifier"][1]["type"]["coding"][0]["code"], "SS");
    assert_eq!(
        patient["name"][0],
        json!({"family": "EVERYWOMAN", "given": ["EVE", "E"], "use": "official"})
    );
    assert_eq!(patient["gender"], "female");
    assert_eq!(patient["birthDate"], "1962-03-20");
    assert_eq!(patient["address"][0]["postalCode"], "27401-1020");
    assert_eq!(patient["address"][0]["use"], "home");
    assert_eq!(
        patient["telecom"][0],
        json!({"system": "phone", "value": "+1 (555) 5552004", "use": "home"})
    );
    assert_eq!(patient["telecom"][1]["use"], "work");
    assert_eq!(
        patient["maritalStatus"]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus"
    );
    assert_eq!(patient["maritalStatus"]["coding"][0]["code"], "M");
    assert_eq!(
        patient["communication"][0]["language"]["coding"][0]["system"],
        "urn:ietf:bcp:47"
    );
    assert_eq!(patient["deceasedBoolean"], false);
    assert_eq!(patient["contact"][0]["name"]["family"], "EVERYMAN");
    assert_eq!(
        patient["contact"][0]["relationship"][0]["coding"][0]["code"],
        "SPS"
    );
}

#[test]
fn adt_a01_encounter_follows_pv1_encounter_with_references() {
    let bundle = convert(&adt_a01());
    let patient = one(&bundle, "Patient");
    let encounter = one(&bundle, "Encounter");
    assert_eq!(encounter["status"], "in-progress");
    assert_eq!(
        encounter["class"],
        json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP", "display": "inpatient encounter"})
    );
    assert_eq!(encounter["subject"]["reference"], reference_of(&patient));
    assert_eq!(encounter["period"]["start"], "2024-01-02T08:00:00-05:00");
    assert_eq!(encounter["identifier"][0]["value"], "V1001");
    assert_eq!(
        encounter["identifier"][0]["type"]["coding"][0]["code"],
        "VN"
    );
    assert_eq!(
        encounter["participant"][0]["type"][0]["coding"][0]["code"],
        "ATND"
    );
    let practitioner = all(&bundle, "Practitioner")
        .into_iter()
        .find(|p| p["identifier"][0]["value"] == "004777")
        .unwrap();
    assert_eq!(
        encounter["participant"][0]["individual"]["reference"],
        reference_of(&practitioner)
    );
    assert_eq!(practitioner["name"][0]["family"], "ATTEND");
    let location = one(&bundle, "Location");
    assert_eq!(
        encounter["location"][0]["location"]["reference"],
        reference_of(&location)
    );
    assert_eq!(location["physicalType"]["coding"][0]["code"], "bd");
    assert_eq!(encounter["serviceType"]["coding"][0]["code"], "SUR");
}

#[test]
fn adt_a01_allergy_condition_procedure_coverage_and_guarantor() {
    let bundle = convert(&adt_a01());
    let patient = reference_of(&one(&bundle, "Patient"));
    let allergy = one(&bundle, "AllergyIntolerance");
    assert_eq!(allergy["patient"]["reference"], patient);
    assert_eq!(allergy["category"], json!(["medication"]));
    assert_eq!(allergy["type"], "allergy");
    assert_eq!(allergy["criticality"], "high");
    assert_eq!(
        allergy["code"]["coding"][0]["system"],
        "http://www.nlm.nih.gov/research/umls/rxnorm"
    );
    assert_eq!(allergy["reaction"][1]["manifestation"][0]["text"], "Rash");

    let condition = one(&bundle, "Condition");
    assert_eq!(
        condition["code"]["coding"][0]["system"],
        "http://hl7.org/fhir/sid/icd-10-cm"
    );
    assert_eq!(condition["code"]["coding"][0]["code"], "I10");
    assert_eq!(condition["subject"]["reference"], patient);
    let encounter = one(&bundle, "Encounter");
    assert_eq!(
        encounter["diagnosis"][0]["condition"]["reference"],
        reference_of(&condition)
    );
    assert_eq!(encounter["diagnosis"][0]["use"]["coding"][0]["code"], "AD");

    let procedure = one(&bundle, "Procedure");
    assert_eq!(procedure["performedDateTime"], "2024-01-02T07:30:00-05:00");
    assert_eq!(
        procedure["code"]["coding"][0]["system"],
        "http://www.cms.gov/Medicare/Coding/ICD10"
    );

    let coverage = one(&bundle, "Coverage");
    assert_eq!(coverage["beneficiary"]["reference"], patient);
    assert_eq!(coverage["subscriberId"], "POL-998877");
    assert_eq!(coverage["relationship"]["coding"][0]["code"], "self");
    assert_eq!(
        coverage["period"],
        json!({"start": "2024-01-01", "end": "2024-12-31"})
    );
    let payor = all(&bundle, "Organization")
        .into_iter()
        .find(|o| o["name"] == "ACME INSURANCE")
        .unwrap();
    assert_eq!(coverage["payor"][0]["reference"], reference_of(&payor));

    let account = one(&bundle, "Account");
    assert_eq!(account["identifier"][0]["value"], "AC555444444");
    assert_eq!(account["subject"][0]["reference"], patient);
    let guarantor = one(&bundle, "RelatedPerson");
    assert_eq!(
        account["guarantor"][0]["party"]["reference"],
        reference_of(&guarantor)
    );
    assert_eq!(guarantor["relationship"][0]["coding"][0]["code"], "SPS");
}

#[test]
fn message_header_and_provenance_record_the_source() {
    let bundle = convert(&adt_a01());
    let header = one(&bundle, "MessageHeader");
    assert_eq!(
        header["eventCoding"],
        json!({"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": "A01"})
    );
    assert_eq!(header["source"]["name"], "ADT1");
    assert_eq!(header["destination"][0]["name"], "GHH LAB");
    let provenance = one(&bundle, "Provenance");
    assert_eq!(provenance["recorded"], "2024-01-02T08:30:00-05:00");
    assert_eq!(provenance["occurredDateTime"], "2024-01-02T08:29:00-05:00");
    assert_eq!(
        provenance["entity"][0]["what"]["identifier"]["value"],
        "MSG00001"
    );
    let targets: Vec<&str> = provenance["target"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["reference"].as_str().unwrap())
        .collect();
    for entry in bundle
        .entries()
        .iter()
        .filter(|e| e.resource_type != "Provenance")
    {
        assert!(
            targets.contains(&entry.reference().as_str()),
            "{} is not a target",
            entry.reference()
        );
    }
    let json = bundle.to_json();
    assert_eq!(json["type"], "transaction");
    assert_eq!(json["timestamp"], "2024-01-02T08:30:00-05:00");
    for entry in json["entry"].as_array().unwrap() {
        assert_eq!(entry["request"]["method"], "PUT");
        let id = entry["resource"]["id"].as_str().unwrap();
        assert_eq!(
            entry["request"]["url"],
            format!(
                "{}/{id}",
                entry["resource"]["resourceType"].as_str().unwrap()
            )
        );
        assert_eq!(entry["fullUrl"], format!("urn:uuid:{id}"));
    }
}

#[test]
fn every_entry_knows_its_patient_for_storage() {
    let bundle = convert(&adt_a01());
    let patient_id = bundle.patient_id().unwrap().to_string();
    for entry in bundle.entries() {
        match entry.resource_type {
            "Practitioner" | "Organization" | "Location" | "MessageHeader" | "Provenance" => {
                assert_eq!(entry.patient_id, None, "{}", entry.resource_type)
            }
            _ => assert_eq!(
                entry.patient_id.as_deref(),
                Some(patient_id.as_str()),
                "{}",
                entry.resource_type
            ),
        }
    }
}

#[test]
fn same_message_twice_gives_byte_identical_bundles() {
    assert_eq!(
        convert(&adt_a01()).to_json_string(),
        convert(&adt_a01()).to_json_string()
    );
}

#[test]
fn a08_after_a01_and_a03_update_the_same_patient_and_encounter() {
    let a01 = convert(&adt_a01());
    let a08 = convert(
        &adt_a01()
            .replace("ADT^A01^ADT_A01|MSG00001", "ADT^A08^ADT_A01|MSG00002")
            .replace("EVN|A01", "EVN|A08")
            .replace("EVERYWOMAN^EVE^E", "EVERYWOMAN^EVELYN^E"),
    );
    let a03 = convert(
        &adt_a01()
            .replace("ADT^A01^ADT_A01|MSG00001", "ADT^A03^ADT_A03|MSG00003")
            .replace("EVN|A01", "EVN|A03")
            .replace(
                "|20240102080000-0500\nAL1",
                "|20240102080000-0500|20240105120000-0500\nAL1",
            ),
    );
    let ids = |b: &Bundle, t: &str| b.of_type(t).map(|e| e.id.clone()).collect::<Vec<_>>();
    for t in [
        "Patient",
        "Encounter",
        "AllergyIntolerance",
        "Condition",
        "Coverage",
        "Account",
    ] {
        assert_eq!(ids(&a01, t), ids(&a08, t), "{t}");
        assert_eq!(ids(&a01, t), ids(&a03, t), "{t}");
    }
    assert_ne!(ids(&a01, "MessageHeader"), ids(&a08, "MessageHeader"));
    assert_eq!(one(&a08, "Patient")["name"][0]["given"][0], "EVELYN");
    // A08 does not say where the visit stands: the class decides.
    assert_eq!(one(&a08, "Encounter")["status"], "in-progress");
    let discharged = one(&a03, "Encounter");
    assert_eq!(discharged["status"], "finished");
    assert_eq!(discharged["period"]["end"], "2024-01-05T12:00:00-05:00");
}

#[test]
fn a40_merge_links_the_surviving_and_the_merged_patient() {
    let bundle = convert(ADT_A40);
    let patients = all(&bundle, "Patient");
    assert_eq!(patients.len(), 2);
    let survivor = patients
        .iter()
        .find(|p| p["identifier"][0]["value"] == "KEEP1")
        .unwrap();
    let merged = patients
        .iter()
        .find(|p| p["identifier"][0]["value"] == "GONE2")
        .unwrap();
    assert_eq!(
        survivor["link"][0],
        json!({"other": {"reference": reference_of(merged)}, "type": "replaces"})
    );
    assert_eq!(
        merged["link"][0],
        json!({"other": {"reference": reference_of(survivor)}, "type": "replaced-by"})
    );
    assert_eq!(merged["active"], false);
    // The merged patient has the id its own messages gave it.
    let earlier = convert(&adt_a01().replace(
        "PATID1234^^^GHH&2.16.840.1.113883.19.5&ISO^MR~123-45-6789^^^USSSA^SS",
        "GONE2^^^GHH^MR",
    ));
    assert_eq!(one(&earlier, "Patient")["id"], merged["id"]);
}

#[test]
fn a40_with_two_pairs_merges_each_pair() {
    let bundle = convert(
        "MSH|^~\\&|ADT1|GHH|MPI|GHH|20240102083000||ADT^A40^ADT_A39|MSG10|P|2.5.1
EVN|A40|20240102083000
PID|1||KEEP1^^^GHH^MR||EVERYWOMAN^EVE
MRG|GONE2^^^GHH^MR
PID|1||KEEP3^^^GHH^MR||EVERYMAN^ADAM
MRG|GONE4^^^GHH^MR",
    );
    let patients = all(&bundle, "Patient");
    assert_eq!(patients.len(), 4);
    let by_value = |v: &str| {
        patients
            .iter()
            .find(|p| p["identifier"][0]["value"] == v)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_value("KEEP1")["link"][0]["other"]["reference"],
        reference_of(&by_value("GONE2"))
    );
    assert_eq!(
        by_value("KEEP3")["link"][0]["other"]["reference"],
        reference_of(&by_value("GONE4"))
    );
    assert_eq!(
        by_value("GONE4")["link"][0]["other"]["reference"],
        reference_of(&by_value("KEEP3"))
    );
    assert_eq!(bundle.patient_id(), by_value("KEEP1")["id"].as_str());
}

#[test]
fn a60_iam_maps_to_allergy_with_identifier_and_status() {
    let bundle = convert(ADT_A60);
    let allergy = one(&bundle, "AllergyIntolerance");
    assert_eq!(allergy["category"], json!(["food"]));
    assert_eq!(
        allergy["code"]["coding"][0],
        json!({"system": "http://snomed.info/sct", "code": "256349002", "display": "Peanut"})
    );
    assert_eq!(
        allergy["identifier"][0],
        json!({"system": "urn:corridor:id/GHH", "value": "ALG-7"})
    );
    assert_eq!(allergy["reaction"][0]["severity"], "moderate");
    assert_eq!(allergy["onsetDateTime"], "2023-01-01");
    assert_eq!(allergy["clinicalStatus"]["coding"][0]["code"], "active");
}

fn oru_r01() -> String {
    [
        "MSH|^~\\&|LAB|GHH LAB|EHR|GHH|20240102120000+0100||ORU^R01^ORU_R01|LAB0001|P|2.5.1"
            .to_string(),
        seg(
            "PID",
            &[
                (1, "1"),
                (3, "555^^^GHH^MR"),
                (5, "DOE^JANE"),
                (7, "19800101"),
                (8, "F"),
            ],
        ),
        seg("PV1", &[(1, "1"), (2, "O"), (19, "V100^^^GHH^VN")]),
        seg(
            "ORC",
            &[
                (1, "RE"),
                (2, "PL77^EHR"),
                (3, "FL88^LAB"),
                (5, "CM"),
                (9, "20240102100000+0100"),
                (12, "1234^ORDER^OLGA"),
            ],
        ),
        seg(
            "OBR",
            &[
                (1, "1"),
                (2, "PL77^EHR"),
                (3, "FL88^LAB"),
                (4, "24331-1^Lipid panel^LN"),
                (7, "20240102093000+0100"),
                (22, "20240102113000+0100"),
                (24, "CH"),
                (25, "F"),
            ],
        ),
        seg(
            "OBX",
            &[
                (1, "1"),
                (2, "NM"),
                (3, "2093-3^Cholesterol^LN"),
                (5, "212"),
                (6, "mg/dL^milligram per deciliter^UCUM"),
                (7, "<200"),
                (8, "H"),
                (11, "F"),
                (14, "20240102093000+0100"),
            ],
        ),
        "NTE|1||Fasting sample".to_string(),
        seg(
            "OBX",
            &[
                (1, "2"),
                (2, "SN"),
                (3, "2571-8^Triglyceride^LN"),
                (5, "<^150"),
                (6, "mg/dL^^UCUM"),
                (11, "F"),
            ],
        ),
        seg(
            "OBX",
            &[
                (1, "3"),
                (2, "CWE"),
                (3, "5778-6^Color^LN"),
                (5, "YEL^Yellow^L"),
                (11, "F"),
            ],
        ),
        seg(
            "OBX",
            &[
                (1, "4"),
                (2, "ST"),
                (3, "8251-1^Comment^LN"),
                (5, "Specimen slightly lipemic"),
                (11, "P"),
            ],
        ),
        seg(
            "SPM",
            &[
                (1, "1"),
                (2, "SP9&EHR&1.2.3&ISO^FS9&LAB"),
                (4, "119297000^Blood specimen^SCT"),
                (17, "20240102093000+0100"),
                (18, "20240102094500+0100"),
            ],
        ),
    ]
    .join("\n")
}

#[test]
fn oru_r01_report_observations_specimen_and_notes() {
    let bundle = convert(&oru_r01());
    let patient = reference_of(&one(&bundle, "Patient"));
    let encounter = reference_of(&one(&bundle, "Encounter"));
    let report = one(&bundle, "DiagnosticReport");
    let request = one(&bundle, "ServiceRequest");
    let specimen = one(&bundle, "Specimen");
    let observations = all(&bundle, "Observation");
    assert_eq!(observations.len(), 4);
    assert_eq!(report["status"], "final");
    assert_eq!(
        report["code"]["coding"][0],
        json!({"system": "http://loinc.org", "code": "24331-1", "display": "Lipid panel"})
    );
    assert_eq!(report["subject"]["reference"], patient);
    assert_eq!(report["encounter"]["reference"], encounter);
    assert_eq!(report["basedOn"][0]["reference"], reference_of(&request));
    assert_eq!(report["effectiveDateTime"], "2024-01-02T09:30:00+01:00");
    assert_eq!(report["issued"], "2024-01-02T11:30:00+01:00");
    assert_eq!(report["category"][0]["coding"][0]["code"], "CH");
    let results: Vec<String> = report["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reference"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        results,
        observations.iter().map(reference_of).collect::<Vec<_>>()
    );
    assert_eq!(report["specimen"][0]["reference"], reference_of(&specimen));

    let cholesterol = &observations[0];
    assert_eq!(cholesterol["status"], "final");
    assert_eq!(
        cholesterol["valueQuantity"],
        json!({"value": 212, "unit": "milligram per deciliter", "system": "http://unitsofmeasure.org", "code": "mg/dL"})
    );
    assert_eq!(cholesterol["referenceRange"][0]["high"]["value"], 200);
    assert_eq!(
        cholesterol["interpretation"][0]["coding"][0],
        json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": "H", "display": "High"})
    );
    assert_eq!(cholesterol["note"][0]["text"], "Fasting sample");
    assert_eq!(
        cholesterol["specimen"]["reference"],
        reference_of(&specimen)
    );
    assert_eq!(cholesterol["subject"]["reference"], patient);
    assert_eq!(
        cholesterol["category"][0]["coding"][0]["code"],
        "laboratory"
    );
    assert_eq!(observations[1]["valueQuantity"]["comparator"], "<");
    assert_eq!(observations[1]["valueQuantity"]["value"], 150);
    assert_eq!(
        observations[2]["valueCodeableConcept"]["coding"][0]["code"],
        "YEL"
    );
    assert_eq!(observations[3]["valueString"], "Specimen slightly lipemic");
    assert_eq!(observations[3]["status"], "preliminary");

    assert_eq!(
        request["identifier"][0]["type"]["coding"][0]["code"],
        "FILL"
    );
    assert_eq!(request["identifier"][0]["value"], "FL88");
    assert_eq!(
        request["identifier"][1]["type"]["coding"][0]["code"],
        "PLAC"
    );
    assert_eq!(request["status"], "completed");
    assert_eq!(request["requester"]["display"], "OLGA ORDER");

    assert_eq!(
        specimen["type"]["coding"][0]["system"],
        "http://snomed.info/sct"
    );
    assert_eq!(specimen["identifier"][0]["value"], "FS9");
    assert_eq!(specimen["identifier"][1]["system"], "urn:oid:1.2.3");
    assert_eq!(
        specimen["collection"]["collectedDateTime"],
        "2024-01-02T09:30:00+01:00"
    );
    assert_eq!(specimen["receivedTime"], "2024-01-02T09:45:00+01:00");
}

#[test]
fn observation_ids_come_from_the_filler_number_and_obx_set_id() {
    let first = convert(&oru_r01());
    let resent = convert(
        &oru_r01()
            .replace("|LAB0001|", "|LAB0002|")
            .replace("||212|", "||215|"),
    );
    let ids = |b: &Bundle| {
        b.of_type("Observation")
            .map(|e| e.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&resent));
    assert_eq!(
        one(&resent, "DiagnosticReport")["id"],
        one(&first, "DiagnosticReport")["id"]
    );
}

#[test]
fn configured_timezone_is_used_only_for_times_without_offset() {
    // MSH-7 without an offset too: its offset would come first.
    let text = oru_r01()
        .replace("|20240102093000+0100|", "|20240102093000|")
        .replace("|20240102120000+0100|", "|20240102120000|");
    let without = convert(&text);
    assert_eq!(
        one(&without, "DiagnosticReport")["effectiveDateTime"],
        "2024-01-02T09:30:00+00:00"
    );
    let options = Options {
        timezone: Some("-05:00".parse::<Zone>().unwrap()),
        ..Options::default()
    };
    let with = parse_and_convert(&text, options);
    assert_eq!(
        one(&with, "DiagnosticReport")["effectiveDateTime"],
        "2024-01-02T09:30:00-05:00"
    );
    assert_eq!(
        one(&with, "DiagnosticReport")["issued"],
        "2024-01-02T11:30:00+01:00"
    );
}

#[test]
fn enterprise_identifier_is_added_to_the_patient() {
    let bytes = oru_r01().replace('\n', "\r").into_bytes();
    let message = hl7v2::Message::parse(&bytes).unwrap();
    let eid = Identifier {
        system: "urn:corridor:mpi".into(),
        value: "E-42".into(),
    };
    let bundle = Converter::new(Options::default())
        .convert_with_enterprise_id(&message, &eid)
        .unwrap();
    let patient = one(&bundle, "Patient");
    let ids = patient["identifier"].as_array().unwrap();
    assert!(
        ids.contains(&json!({"system": "urn:corridor:mpi", "value": "E-42", "use": "official"}))
    );
    // The id stays the one the sender's identifier gives.
    assert_eq!(patient["id"], one(&convert(&oru_r01()), "Patient")["id"]);
}

#[test]
fn orm_o01_and_oml_o21_become_service_requests() {
    let orm = convert(ORM_O01);
    let request = one(&orm, "ServiceRequest");
    assert_eq!(request["status"], "active");
    assert_eq!(request["intent"], "order");
    assert_eq!(request["priority"], "stat");
    assert_eq!(
        request["code"]["coding"][0]["system"],
        "http://www.ama-assn.org/go/cpt"
    );
    assert_eq!(request["identifier"][0]["value"], "PLAC1");
    assert_eq!(request["identifier"][0]["system"], "urn:corridor:id/EHR");
    assert_eq!(request["requisition"]["value"], "GRP1");
    assert_eq!(request["note"][0]["text"], "Patient on warfarin");
    assert_eq!(
        request["subject"]["reference"],
        reference_of(&one(&orm, "Patient"))
    );
    assert_eq!(
        request["requester"]["reference"],
        reference_of(&one(&orm, "Practitioner"))
    );

    let oml = convert(OML_O21);
    let request = one(&oml, "ServiceRequest");
    assert_eq!(request["code"]["coding"][0]["code"], "2345-7");
    let specimen = one(&oml, "Specimen");
    assert_eq!(specimen["request"][0]["reference"], reference_of(&request));
    assert_eq!(request["specimen"][0]["reference"], reference_of(&specimen));
}

#[test]
fn rde_o11_and_ras_o17_become_medication_request_and_administration() {
    let rde = convert(RDE_O11);
    let request = one(&rde, "MedicationRequest");
    assert_eq!(request["status"], "active");
    assert_eq!(
        request["medicationCodeableConcept"]["coding"][0]["system"],
        "http://www.nlm.nih.gov/research/umls/rxnorm"
    );
    assert_eq!(
        request["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["code"],
        "mg"
    );
    assert_eq!(
        request["dosageInstruction"][0]["route"]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0162"
    );
    assert_eq!(request["dispenseRequest"]["numberOfRepeatsAllowed"], 3);
    assert_eq!(request["dispenseRequest"]["quantity"]["value"], 30);
    assert_eq!(request["requester"]["display"], "PAM PRESCRIBER");
    assert_eq!(request["identifier"][0]["value"], "RXF1");

    let ras = convert(RAS_O17);
    let administration = one(&ras, "MedicationAdministration");
    assert_eq!(administration["status"], "completed");
    assert_eq!(
        administration["effectiveDateTime"],
        "2024-01-02T09:00:00+00:00"
    );
    assert_eq!(administration["dosage"]["dose"]["value"], 5);
    assert_eq!(administration["dosage"]["route"]["coding"][0]["code"], "PO");
    assert_eq!(
        administration["request"]["reference"],
        reference_of(&one(&ras, "MedicationRequest"))
    );
    // The same order in both messages: the same MedicationRequest.
    assert_eq!(one(&ras, "MedicationRequest")["id"], request["id"]);
}

#[test]
fn vxu_v04_becomes_an_immunization() {
    let bundle = convert(VXU_V04);
    let immunization = one(&bundle, "Immunization");
    assert_eq!(immunization["status"], "completed");
    assert_eq!(
        immunization["vaccineCode"]["coding"][0],
        json!({"system": "http://hl7.org/fhir/sid/cvx", "code": "08", "display": "Hep B, adolescent or pediatric"})
    );
    assert_eq!(
        immunization["occurrenceDateTime"],
        "2024-01-02T09:30:00-05:00"
    );
    assert_eq!(
        immunization["doseQuantity"],
        json!({"value": 0.5, "unit": "milliliter", "system": "http://unitsofmeasure.org", "code": "mL"})
    );
    assert_eq!(immunization["lotNumber"], "LOT123");
    assert_eq!(immunization["expirationDate"], "2025-12-31");
    assert_eq!(immunization["primarySource"], true);
    assert_eq!(immunization["route"]["coding"][0]["code"], "IM");
    assert_eq!(immunization["site"]["coding"][0]["code"], "LA");
    assert_eq!(
        immunization["patient"]["reference"],
        reference_of(&one(&bundle, "Patient"))
    );
    let manufacturer = all(&bundle, "Organization")
        .into_iter()
        .find(|o| o["name"] == "Merck and Co")
        .unwrap();
    assert_eq!(
        manufacturer["identifier"][0],
        json!({"system": "http://terminology.hl7.org/CodeSystem/MVX", "value": "MSD"})
    );
    assert_eq!(
        immunization["manufacturer"]["reference"],
        reference_of(&manufacturer)
    );
    assert_eq!(
        immunization["performer"][0]["function"]["coding"][0]["code"],
        "AP"
    );
    let observation = one(&bundle, "Observation");
    assert_eq!(
        observation["partOf"][0]["reference"],
        reference_of(&immunization)
    );
}

#[test]
fn siu_s12_becomes_a_booked_appointment_with_participants() {
    let bundle = convert(SIU_S12);
    let appointment = one(&bundle, "Appointment");
    assert_eq!(appointment["status"], "booked");
    assert_eq!(appointment["start"], "2024-01-10T09:00:00+00:00");
    assert_eq!(appointment["end"], "2024-01-10T09:30:00+00:00");
    assert_eq!(appointment["minutesDuration"], 30);
    assert_eq!(appointment["comment"], "Bring prior records");
    assert_eq!(appointment["identifier"][0]["value"], "APT-F1");
    assert_eq!(appointment["serviceType"][0]["coding"][0]["code"], "99213");
    let actors: Vec<&str> = appointment["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["actor"]["reference"].as_str().unwrap())
        .collect();
    assert!(actors.contains(&reference_of(&one(&bundle, "Patient")).as_str()));
    assert!(actors.contains(&reference_of(&one(&bundle, "Location")).as_str()));
    assert!(actors.contains(&reference_of(&one(&bundle, "Practitioner")).as_str()));
    let cancelled = convert(SIU_S15);
    assert_eq!(one(&cancelled, "Appointment")["status"], "cancelled");
    assert_eq!(one(&cancelled, "Appointment")["id"], appointment["id"]);
}

#[test]
fn mdm_t02_embeds_the_document_as_an_attachment() {
    let bundle = convert(MDM_T02);
    let document = one(&bundle, "DocumentReference");
    assert_eq!(document["status"], "current");
    assert_eq!(document["docStatus"], "final");
    assert_eq!(document["masterIdentifier"]["value"], "DOC-77");
    assert_eq!(
        document["type"]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0270"
    );
    assert_eq!(document["date"], "2024-01-02T09:50:00+00:00");
    assert_eq!(document["author"][0]["display"], "ANN AUTHOR");
    assert_eq!(
        document["subject"]["reference"],
        reference_of(&one(&bundle, "Patient"))
    );
    let attachment = &document["content"][0]["attachment"];
    assert_eq!(attachment["contentType"], "text/plain; charset=utf-8");
    // base64 of the two lines
    assert_eq!(
        attachment["data"],
        "UGF0aWVudCBkaXNjaGFyZ2VkIGhvbWUuCkZvbGxvdyB1cCBpbiAyIHdlZWtzLg=="
    );
    assert!(all(&bundle, "Observation").is_empty());
}

#[test]
fn dft_p03_and_bar_p01_become_charges_accounts_and_coverage() {
    let dft = convert(DFT_P03);
    let charge = one(&dft, "ChargeItem");
    assert_eq!(charge["status"], "billable");
    assert_eq!(charge["code"]["coding"][0]["code"], "99213");
    assert_eq!(charge["quantity"]["value"], 2);
    assert_eq!(
        charge["priceOverride"],
        json!({"value": 150.0, "currency": "USD"})
    );
    assert_eq!(charge["occurrenceDateTime"], "2024-01-02");
    assert_eq!(
        charge["reason"][0]["coding"][0]["system"],
        "http://hl7.org/fhir/sid/icd-10-cm"
    );
    let account = one(&dft, "Account");
    assert_eq!(charge["account"][0]["reference"], reference_of(&account));
    assert_eq!(
        charge["subject"]["reference"],
        reference_of(&one(&dft, "Patient"))
    );
    assert_eq!(
        charge["context"]["reference"],
        reference_of(&one(&dft, "Encounter"))
    );
    let coverage = one(&dft, "Coverage");
    assert_eq!(
        account["coverage"][0]["coverage"]["reference"],
        reference_of(&coverage)
    );

    let bar = convert(BAR_P01);
    let account = one(&bar, "Account");
    assert_eq!(account["id"], one(&dft, "Account")["id"]);
    assert_eq!(
        account["guarantor"][0]["party"]["reference"],
        reference_of(&one(&bar, "Patient"))
    );
    assert_eq!(
        one(&bar, "Condition")["code"]["coding"][0]["code"],
        "J45.909"
    );
}

#[test]
fn ack_becomes_a_message_header_response_with_an_outcome() {
    let bundle = convert(ACK_R01);
    let header = one(&bundle, "MessageHeader");
    assert_eq!(header["response"]["identifier"], "LAB0001");
    assert_eq!(header["response"]["code"], "transient-error");
    let outcome = one(&bundle, "OperationOutcome");
    assert_eq!(
        header["response"]["details"]["reference"],
        reference_of(&outcome)
    );
    assert_eq!(outcome["issue"][0]["severity"], "error");
    assert_eq!(outcome["issue"][0]["details"]["text"], "PID-3 is empty");
    assert_eq!(outcome["issue"][0]["details"]["coding"][0]["code"], "101");
}

#[test]
fn a_type_without_a_map_converts_its_segments_and_names_the_rest() {
    // A query response the guide has no message map for: its PID is still
    // a Patient; QAK and QPD are named as not converted.
    let bytes = b"MSH|^~\\&|A|B|C|D|20240102||RSP^K22^RSP_K21|Q1|P|2.5.1\r\
                  MSA|AA|Q0\r\
                  QAK|Q0|OK\r\
                  QPD|IHE PDQ Query|Q0|@PID.5.1^DOE\r\
                  PID|1||123^^^HOSP^MR||DOE^JANE||19800101|F\r"
        .to_vec();
    let message = hl7v2::Message::parse(&bytes).unwrap();
    assert!(!Converter::supports(&message));
    let bundle = Converter::new(Options::default())
        .convert(&message)
        .unwrap();
    let patient = one(&bundle, "Patient");
    assert_eq!(patient["name"][0]["family"], "DOE");
    let outcome = one(&bundle, "OperationOutcome");
    let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert_eq!(outcome["issue"][0]["code"], "not-supported");
    assert!(diagnostics.contains("RSP^K22^RSP_K21"), "{diagnostics}");
    assert!(diagnostics.contains("QAK (segment 3)"), "{diagnostics}");
    assert!(diagnostics.contains("QPD (segment 4)"), "{diagnostics}");
    assert!(!diagnostics.contains("PID"), "{diagnostics}");
    assert!(!diagnostics.contains("MSA"), "{diagnostics}");
}

#[test]
fn a_response_listing_two_patients_files_each_record_under_its_own() {
    let bytes = b"MSH|^~\\&|A|B|C|D|20240102||RSP^K11^RSP_K11|Q2|P|2.5.1\r\
                  MSA|AA|Q0\r\
                  PID|1||111^^^HOSP^MR||DOE^JANE||19800101|F\r\
                  NK1|1|DOE^JOHN|SPO\r\
                  PID|2||222^^^HOSP^MR||ROE^RICK||19700101|M\r\
                  NK1|1|ROE^RUTH|SPO\r\
                  OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||F\r"
        .to_vec();
    let message = hl7v2::Message::parse(&bytes).unwrap();
    let bundle = Converter::new(Options::default())
        .convert(&message)
        .unwrap();
    let patients = all(&bundle, "Patient");
    assert_eq!(patients.len(), 2);
    let (jane, rick) = (&patients[0], &patients[1]);
    assert_eq!(jane["contact"][0]["name"]["family"], "DOE");
    assert_eq!(rick["contact"][0]["name"]["family"], "ROE");
    assert_eq!(jane["contact"].as_array().unwrap().len(), 1);
    let observation = one(&bundle, "Observation");
    assert_eq!(observation["subject"]["reference"], reference_of(rick));
    let filed = bundle
        .of_type("Observation")
        .map(|e| e.patient_id.clone())
        .collect::<Vec<_>>();
    assert_eq!(filed, [rick["id"].as_str().map(str::to_string)]);
    assert_eq!(bundle.patient_id(), jane["id"].as_str());
}

#[test]
fn a_type_without_a_map_and_without_a_pid_leaves_out_what_needs_a_patient() {
    let bytes = b"MSH|^~\\&|A|B|C|D|20240102||ZZZ^Z01|Z1|P|2.5.1\r\
                  IN1|1|PLAN1|ACME^^^^^^^^^^|ACME INSURANCE\r\
                  ZZZ|1|secret\r"
        .to_vec();
    let message = hl7v2::Message::parse(&bytes).unwrap();
    let bundle = Converter::new(Options::default())
        .convert(&message)
        .unwrap();
    assert!(all(&bundle, "Coverage").is_empty());
    let outcome = one(&bundle, "OperationOutcome");
    let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
    assert!(diagnostics.contains("Coverage"), "{diagnostics}");
    assert!(diagnostics.contains("ZZZ (segment 3)"), "{diagnostics}");
    assert!(!diagnostics.contains("secret"), "{diagnostics}");
}

#[test]
fn every_example_message_gives_a_valid_r4_bundle() {
    let mut bundles = vec![
        ("ADT_A01".to_string(), convert(&adt_a01()).to_json_string()),
        ("ORU_R01".to_string(), convert(&oru_r01()).to_json_string()),
    ];
    for (name, text) in [
        ("ADT_A40", ADT_A40),
        ("ADT_A60", ADT_A60),
        ("ORM_O01", ORM_O01),
        ("OML_O21", OML_O21),
        ("RDE_O11", RDE_O11),
        ("RAS_O17", RAS_O17),
        ("VXU_V04", VXU_V04),
        ("SIU_S12", SIU_S12),
        ("SIU_S15", SIU_S15),
        ("MDM_T02", MDM_T02),
        ("DFT_P03", DFT_P03),
        ("BAR_P01", BAR_P01),
        ("ACK_R01", ACK_R01),
    ] {
        bundles.push((name.to_string(), convert(text).to_json_string()));
    }
    test_support::fhir::assert_valid_r4_both(&bundles);
}
