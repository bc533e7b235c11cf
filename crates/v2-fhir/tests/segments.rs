//! The segments real feeds carry beside the guide's message maps (GT1,
//! IN1/IN2/IN3, ACC, PDA, DB1, ROL, PRT, RF1/PRD, PRB, RXD, ...) and the
//! message types that carry them (REF^I12, PPR^PC1, RDS^O13, OMG^O19,
//! RDE^O25, BAR^P05): each from a message that carries it, a public corpus
//! message where the corpus has one (tests/corpus/public), else a message
//! written here after the v2.5.1 structure. Every Bundle of this file is
//! checked by both R4 validators.

mod common;

use std::path::Path;

use common::{all, one, reference_of, seg};
use serde_json::Value;
use v2_fhir::{Bundle, Converter, Options, SegmentStatus};

fn convert(text: &str) -> Bundle {
    let bytes = text.trim().replace('\n', "\r").into_bytes();
    let message = hl7v2::Message::parse(&bytes).unwrap();
    Converter::new(Options::default())
        .convert(&message)
        .unwrap()
}

/// The first message of a public corpus file.
fn corpus(path: &str) -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/corpus/public")
        .join(path);
    let bytes = std::fs::read(&file).unwrap();
    let text = String::from_utf8_lossy(&bytes).replace("\r\n", "\r");
    text.split('\r')
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

fn with_code<'a>(resources: &'a [Value], code: &str) -> Vec<&'a Value> {
    resources
        .iter()
        .filter(|r| r["code"]["coding"][0]["code"] == code)
        .collect()
}

/// An emergency admission after a car accident: ROL, ACC, DB1, GT1 and an
/// IN1/IN2/IN3 group whose insured is the spouse.
fn adt_a01_accident() -> String {
    [
        "MSH|^~\\&|ADM|HOSP|EHR|HOSP|20240301101500-0500||ADT^A01^ADT_A01|ACC1|P|2.5.1".to_string(),
        "EVN|A01|20240301101500-0500".to_string(),
        seg(
            "PID",
            &[
                (1, "1"),
                (3, "MRN77^^^HOSP^MR"),
                (5, "ROE^RICHARD"),
                (7, "19700404"),
                (8, "M"),
                (18, "ACCT77^^^HOSP^AN"),
            ],
        ),
        seg(
            "PV1",
            &[
                (1, "1"),
                (2, "E"),
                (3, "ER^1^1^HOSP"),
                (7, "1234^WELBY^MARCUS"),
                (19, "V77^^^HOSP^VN"),
                (44, "20240301100000-0500"),
            ],
        ),
        seg(
            "ROL",
            &[
                (1, "1"),
                (2, "AD"),
                (3, "PP^Primary Care Provider^HL70443"),
                (4, "5678^KILDARE^JAMES^^^DR"),
                (5, "20200101"),
                (11, "100 MAIN ST^^SPRINGFIELD^IL^62701^USA^O"),
                (12, "^WPN^PH^^1^217^5550100"),
                (14, "CLINIC ONE^^^^^^^^^CLIN1"),
            ],
        ),
        seg(
            "ROL",
            &[
                (1, "2"),
                (2, "AD"),
                (3, "CP^Consulting Provider^HL70443"),
                (4, "9012^CASEY^BEN^^^DR"),
                (5, "20240301"),
            ],
        ),
        seg(
            "ACC",
            &[
                (1, "20240301083000-0500"),
                (2, "2^Auto accident^HL70050"),
                (3, "I-55 exit 90"),
                (4, "IL^Illinois^ISO3166-2"),
                (5, "N"),
                (6, "N"),
                (7, "1111^ENTERER^EVA"),
                (8, "Rear-ended at a stop light"),
                (10, "Y"),
            ],
        ),
        seg(
            "DB1",
            &[
                (1, "1"),
                (2, "PT"),
                (4, "Y"),
                (5, "20240301"),
                (6, "20240601"),
                (7, "20240701"),
                (8, "20240302"),
            ],
        ),
        seg(
            "GT1",
            &[
                (1, "1"),
                (2, "G55^^^HOSP"),
                (3, "ROE^RITA"),
                (5, "100 OAK ST^^SPRINGFIELD^IL^62701"),
                (8, "19720505"),
                (9, "F"),
                (11, "SPO"),
                (12, "123-45-6789"),
            ],
        ),
        seg(
            "IN1",
            &[
                (1, "1"),
                (2, "PLAN9^Gold PPO"),
                (3, "INS9^^^HOSP"),
                (4, "ACME INSURANCE"),
                (8, "GRP1"),
                (15, "PPO"),
                (16, "ROE^RITA"),
                (17, "SPO"),
                (18, "19720505"),
                (19, "100 OAK ST^^SPRINGFIELD^IL^62701"),
                (36, "POL-9"),
                (43, "F"),
                (49, "MEMB-9^^^ACME"),
            ],
        ),
        seg(
            "IN2",
            &[
                (1, "EMP-44"),
                (2, "987-65-4321"),
                (6, "1EG4-TE5-MK72"),
                (8, "MCD-555"),
                (61, "PM-77^^^ACME"),
            ],
        ),
        seg(
            "IN3",
            &[
                (1, "1"),
                (2, "CERT-1^^^ACME"),
                (3, "3333^CERTIFIER^CARL"),
                (9, "20240301"),
                (10, "20240331"),
                (14, "4444^REVIEWER^RAE"),
                (21, "5555^MANAGER^MAE"),
            ],
        ),
    ]
    .join("\n")
}

const ADT_A03_DEATH: &str = "
MSH|^~\\&|ADM|HOSP|EHR|HOSP|20240310120000-0500||ADT^A03^ADT_A03|PDA1|P|2.5.1
PID|1||MRN78^^^HOSP^MR||DOE^JOHN||19400101|M
PV1|1|I|ICU^2^1^HOSP|||||||||||||||||V78^^^HOSP^VN
PDA|I21.9^Acute myocardial infarction^I10~I50.9^Heart failure^I10|ICU^2^1^HOSP|Y|20240310113000-0500|6666^CERTIFY^CORA|Y|20240311090000-0500^20240311120000-0500|7777^PATH^PAT|N";

const REF_I12: &str = "
MSH|^~\\&|REFAPP|CLINIC|SPEC|HOSP|20240315090000-0500||REF^I12^REF_I12|REF1|P|2.5.1
RF1|P^Pending^HL70283|S^STAT^HL70280|Med^Medical^HL70281||O^Outpatient^HL70284|R-100^^REFAPP|20240315|20240615|20240315|CARD^Cardiology evaluation^L|X-9^^PAYER
PRD|RP^Referring Provider^HL70286|GOOD^GARY^^^DR|1 MAIN ST^^SPRINGFIELD^IL^62701||^WPN^PH^^1^217^5550123||1234567890^NPI
PRD|RT^Referred to Provider^HL70286|HART^HELEN^^^DR|2 HEART AVE^^SPRINGFIELD^IL^62702||||2222222222^NPI
PID|1||MRN79^^^HOSP^MR||POE^PAT||19800808|F
DG1|1||I48.91^Atrial fibrillation^I10
NTE|1||Palpitations for two weeks";

const PPR_PC1: &str = "
MSH|^~\\&|EHR|HOSP|PL|HOSP|20240320100000-0500||PPR^PC1^PPR_PC1|PPR1|P|2.5.1
PID|1||MRN80^^^HOSP^MR||LEE^LOU||19600606|M
PV1|1|O|||||||||||||||||V80^^^HOSP^VN
PRB|AD|20240320|44054006^Diabetes mellitus type 2^SCT|P-1^EHR||||||||||A^Active^HL70287||20190101
NTE|1||Diet controlled
PRB|AD|20240320|38341003^Hypertension^SCT|P-2^EHR|||20150301||20240301|||||||20150101";

const RDS_O13: &str = "
MSH|^~\\&|PHARM|HOSP|EHR|HOSP|20240321080000-0500||RDS^O13^RDS_O13|RDS1|P|2.5.1
PID|1||MRN81^^^HOSP^MR||KIM^KAY||19900909|F
PV1|1|I|W^1^1^HOSP|||||||||||||||||V81^^^HOSP^VN
ORC|RE|PL-1^EHR|FL-1^PHARM
RXO|197361^Amlodipine 5 MG Oral Tablet^RXNORM|5||mg
RXE|^QD^^20240321|197361^Amlodipine 5 MG Oral Tablet^RXNORM|5||mg|||||30|TAB|2
RXD|1|197361^Amlodipine 5 MG Oral Tablet^RXNORM|20240321075500-0500|30|TAB^Tablet^HL70292||RX-555|||8888^DISPENSE^DAN
RXR|PO^Oral^HL70162";

const OMG_O19: &str = "
MSH|^~\\&|EHR|HOSP|RAD|HOSP|20240322080000-0500||OMG^O19^OMG_O19|OMG1|P|2.5.1
PID|1||MRN82^^^HOSP^MR||MOE^MAX||19850505|M
PV1|1|O|||||||||||||||||V82^^^HOSP^VN
ORC|NW|PL-2^EHR||||||||||1234^WELBY^MARCUS
TQ1|1||||||20240322090000-0500||R
OBR|1|PL-2^EHR||71045^Chest X-ray single view^C4|||20240322083000-0500
NTE|1||Rule out pneumonia
PRT|1|AD||RCT^Result Copies To^HL70912|5678^KILDARE^JAMES^^^DR";

const RDE_O25: &str = "
MSH|^~\\&|EHR|HOSP|PHARM|HOSP|20240323080000-0500||RDE^O25^RDE_O25|RDE25|P|2.5.1
PID|1||MRN83^^^HOSP^MR||NOE^NED||19750707|M
ORC|XO|PL-3^EHR|FL-3^PHARM
RXE||1049221^Acetaminophen 325 MG Oral Tablet^RXNORM|650||mg|||||20|TAB|0
TQ1|1||Q6H^Every 6 hours^HL70335";

const BAR_P05: &str = "
MSH|^~\\&|PAS|HOSP|BILL|HOSP|20240324080000-0500||BAR^P05^BAR_P05|BAR5|P|2.5.1|||||USA
EVN|P05|20240324080000-0500
PID|1||MRN84^^^HOSP^MR||ZOE^ZED||19650303|M||||||||||ACCT84^^^HOSP^AN
PV1|1|O|||||||||||||||||V84^^^HOSP^VN
DG1|1||E11.9^Type 2 diabetes mellitus without complications^I10
PR1|1||99213^Office visit^C4||20240320
GT1|1||ZOE^ZED||||||||SEL
FT1|1|T-84||20240320|20240321|CG|99213^Office visit^C4|||1|150.00&USD";

#[test]
fn rol_primary_care_is_the_general_practitioner_and_others_take_part_in_the_encounter() {
    let bundle = convert(&adt_a01_accident());
    let patient = one(&bundle, "Patient");
    let roles = all(&bundle, "PractitionerRole");
    let gp = roles
        .iter()
        .find(|r| patient["generalPractitioner"][0]["reference"] == reference_of(r).as_str())
        .expect("ROL PP is the generalPractitioner");
    assert_eq!(gp["code"][0]["coding"][0]["code"], "PP");
    assert_eq!(gp["period"]["start"], "2020-01-01");
    assert_eq!(gp["organization"]["display"], "CLINIC ONE");
    assert_eq!(gp["telecom"][0]["value"], "+1 (217) 5550100");
    let kildare = all(&bundle, "Practitioner")
        .into_iter()
        .find(|p| p["name"][0]["family"] == "KILDARE")
        .unwrap();
    assert_eq!(kildare["address"][0]["line"][0], "100 MAIN ST");
    let encounter = one(&bundle, "Encounter");
    let consultant = encounter["participant"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"][0]["coding"][0]["code"] == "CP")
        .expect("ROL CP takes part in the encounter");
    assert_eq!(consultant["individual"]["display"], "BEN CASEY");
    assert_eq!(consultant["period"]["start"], "2024-03-01");
}

#[test]
fn acc_is_an_accident_observation_of_the_encounter() {
    let bundle = convert(&adt_a01_accident());
    let observations = all(&bundle, "Observation");
    let accident = with_code(&observations, "11374-6");
    let accident = accident.first().expect("an accident Observation");
    assert_eq!(accident["effectiveDateTime"], "2024-03-01T08:30:00-05:00");
    assert_eq!(accident["valueCodeableConcept"]["coding"][0]["code"], "2");
    assert_eq!(
        accident["valueCodeableConcept"]["coding"][0]["system"],
        "http://terminology.hl7.org/CodeSystem/v2-0050"
    );
    assert_eq!(accident["note"][0]["text"], "Rear-ended at a stop light");
    let component = |name: &str| {
        accident["component"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["code"]["text"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(
        component("Accident location")["valueString"],
        "I-55 exit 90"
    );
    assert_eq!(component("Job related")["valueBoolean"], false);
    assert_eq!(component("Police notified")["valueBoolean"], true);
    assert_eq!(accident["performer"][0]["display"], "EVA ENTERER");
    assert_eq!(
        accident["encounter"]["reference"],
        reference_of(&one(&bundle, "Encounter"))
    );
}

#[test]
fn db1_is_a_disability_observation_with_its_period() {
    let bundle = convert(&adt_a01_accident());
    let disability = all(&bundle, "Observation")
        .into_iter()
        .find(|o| o["code"]["text"] == "Disability")
        .expect("a disability Observation");
    assert_eq!(disability["valueBoolean"], true);
    assert_eq!(disability["effectivePeriod"]["start"], "2024-03-01");
    assert_eq!(disability["effectivePeriod"]["end"], "2024-06-01");
    assert_eq!(
        disability["subject"]["reference"],
        reference_of(&one(&bundle, "Patient"))
    );
}

#[test]
fn gt1_and_in1_in2_in3_give_guarantor_subscriber_identifiers_and_certification() {
    let bundle = convert(&adt_a01_accident());
    let people = all(&bundle, "RelatedPerson");
    let with_identifier = |value: &str| {
        people
            .iter()
            .find(|p| {
                p["identifier"]
                    .as_array()
                    .is_some_and(|ids| ids.iter().any(|i| i["value"] == value))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no RelatedPerson with {value}: {people:#?}"))
    };
    // GT1-12: the guarantor's SSN
    let guarantor = with_identifier("123-45-6789");
    assert_eq!(
        one(&bundle, "Account")["guarantor"][0]["party"]["reference"],
        reference_of(&guarantor)
    );
    // IN1-16..19, 49: the insured spouse is the Coverage's subscriber
    let coverage = one(&bundle, "Coverage");
    let insured = with_identifier("MEMB-9");
    assert_eq!(coverage["subscriber"]["reference"], reference_of(&insured));
    assert_eq!(insured["birthDate"], "1972-05-05");
    assert_eq!(insured["gender"], "female");
    assert_eq!(insured["relationship"][0]["coding"][0]["code"], "SPS");
    assert_eq!(coverage["relationship"]["coding"][0]["code"], "spouse");
    // IN2: the insured's employee number, SSN, Medicare and Medicaid numbers
    let types: Vec<(&str, &str)> = insured["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| {
            Some((
                i["type"]["coding"][0]["code"].as_str()?,
                i["value"].as_str()?,
            ))
        })
        .collect();
    for expected in [
        ("EI", "EMP-44"),
        ("SS", "987-65-4321"),
        ("MC", "1EG4-TE5-MK72"),
        ("MA", "MCD-555"),
    ] {
        assert!(types.contains(&expected), "{expected:?} in {types:?}");
    }
    // IN2-61: the patient's member number is the Patient's
    let patient = one(&bundle, "Patient");
    assert!(
        patient["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["value"] == "PM-77" && i["type"]["coding"][0]["code"] == "MB"),
        "{patient:#}"
    );
    // IN3: the certification as a CareTeam the Coverage points to
    let team = one(&bundle, "CareTeam");
    assert_eq!(team["identifier"][0]["value"], "CERT-1");
    assert_eq!(team["period"]["end"], "2024-03-31");
    assert_eq!(team["subject"]["reference"], reference_of(&patient));
    let roles: Vec<&str> = team["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["certifier", "physician reviewer", "case manager"]);
    assert_eq!(
        coverage["extension"][0]["valueReference"]["reference"],
        reference_of(&team)
    );
}

#[test]
fn gt1_of_a_corpus_adt_carries_the_guarantor_ssn() {
    // openintegrationengine/TestADT/TestADT_009.hl7: GT1-12 000231564
    let bundle = convert(&corpus("openintegrationengine/TestADT/TestADT_009.hl7"));
    let guarantor = one(&bundle, "RelatedPerson");
    assert!(
        guarantor["identifier"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["value"] == "000231564" && i["system"] == "http://hl7.org/fhir/sid/us-ssn"),
        "{guarantor:#}"
    );
    // IN1-16 names the insured: the subscriber of the first Coverage
    let coverages = all(&bundle, "Coverage");
    assert_eq!(
        coverages[0]["subscriber"]["reference"],
        reference_of(&guarantor)
    );
    // DG1 in an ADT: a Condition and the Encounter's diagnosis
    let condition = one(&bundle, "Condition");
    assert_eq!(condition["code"]["coding"][0]["code"], "64410");
    assert_eq!(
        one(&bundle, "Encounter")["diagnosis"][0]["condition"]["reference"],
        reference_of(&condition)
    );
}

#[test]
fn pda_marks_the_patient_deceased_with_causes_and_autopsy() {
    let bundle = convert(ADT_A03_DEATH);
    assert_eq!(one(&bundle, "Patient")["deceasedBoolean"], true);
    let observations = all(&bundle, "Observation");
    let causes = with_code(&observations, "69453-9");
    let codes: Vec<&Value> = causes
        .iter()
        .map(|c| &c["valueCodeableConcept"]["coding"][0]["code"])
        .collect();
    assert_eq!(codes, ["I21.9", "I50.9"]);
    assert_ne!(causes[0]["id"], causes[1]["id"]);
    assert_eq!(causes[0]["effectiveDateTime"], "2024-03-10T11:30:00-05:00");
    assert_eq!(causes[0]["performer"][0]["display"], "CORA CERTIFY");
    let autopsy = with_code(&observations, "85699-7");
    assert_eq!(autopsy.len(), 1);
    assert_eq!(autopsy[0]["valueCodeableConcept"]["coding"][0]["code"], "Y");
    assert_eq!(
        autopsy[0]["effectivePeriod"]["end"],
        "2024-03-11T12:00:00-05:00"
    );
    assert_eq!(autopsy[0]["performer"][0]["display"], "PAT PATH");
}

#[test]
fn pda_keeps_the_death_time_pid_29_gives() {
    let text = ADT_A03_DEATH.replace(
        "PID|1||MRN78^^^HOSP^MR||DOE^JOHN||19400101|M",
        &seg(
            "PID",
            &[
                (1, "1"),
                (3, "MRN78^^^HOSP^MR"),
                (5, "DOE^JOHN"),
                (29, "20240310110000-0500"),
            ],
        ),
    );
    let patient = one(&convert(&text), "Patient");
    assert_eq!(patient["deceasedDateTime"], "2024-03-10T11:00:00-05:00");
    assert!(patient.get("deceasedBoolean").is_none(), "{patient:#}");
}

#[test]
fn ref_i12_is_a_referral_with_its_providers() {
    let bundle = convert(REF_I12);
    let referral = one(&bundle, "ServiceRequest");
    assert_eq!(referral["status"], "draft");
    assert_eq!(referral["intent"], "order");
    assert_eq!(referral["priority"], "stat");
    assert_eq!(referral["category"][0]["coding"][0]["code"], "3457005");
    assert_eq!(referral["identifier"][0]["value"], "R-100");
    assert_eq!(referral["occurrencePeriod"]["end"], "2024-06-15");
    assert_eq!(referral["reasonCode"][0]["coding"][0]["code"], "CARD");
    let patient = one(&bundle, "Patient");
    assert_eq!(referral["subject"]["reference"], reference_of(&patient));
    let practitioners = all(&bundle, "Practitioner");
    let by_name = |family: &str| {
        practitioners
            .iter()
            .find(|p| p["name"][0]["family"] == family)
            .unwrap()
    };
    assert_eq!(
        referral["requester"]["reference"],
        reference_of(by_name("GOOD"))
    );
    assert_eq!(
        referral["performer"][0]["reference"],
        reference_of(by_name("HART"))
    );
    assert_eq!(
        by_name("GOOD")["identifier"][0]["system"],
        "http://hl7.org/fhir/sid/us-npi"
    );
    assert_eq!(
        one(&bundle, "Condition")["code"]["coding"][0]["code"],
        "I48.91"
    );
}

#[test]
fn ppr_pc1_problems_are_problem_list_conditions() {
    let bundle = convert(PPR_PC1);
    let conditions = all(&bundle, "Condition");
    assert_eq!(conditions.len(), 2);
    let diabetes = &conditions[0];
    assert_eq!(
        diabetes["category"][0]["coding"][0]["code"],
        "problem-list-item"
    );
    assert_eq!(diabetes["clinicalStatus"]["coding"][0]["code"], "active");
    assert_eq!(diabetes["onsetDateTime"], "2019-01-01");
    assert_eq!(diabetes["note"][0]["text"], "Diet controlled");
    let hypertension = &conditions[1];
    assert_eq!(hypertension["recordedDate"], "2015-03-01");
    assert_eq!(hypertension["abatementDateTime"], "2024-03-01");
    assert_eq!(
        hypertension["clinicalStatus"]["coding"][0]["code"],
        "resolved"
    );
}

#[test]
fn rds_o13_is_one_request_and_its_dispense() {
    let bundle = convert(RDS_O13);
    // RXO and RXE of one order are one MedicationRequest.
    let request = one(&bundle, "MedicationRequest");
    assert_eq!(request["dispenseRequest"]["quantity"]["value"], 30);
    let dispense = one(&bundle, "MedicationDispense");
    assert_eq!(dispense["status"], "completed");
    assert_eq!(
        dispense["medicationCodeableConcept"]["coding"][0]["code"],
        "197361"
    );
    assert_eq!(dispense["whenHandedOver"], "2024-03-21T07:55:00-05:00");
    assert_eq!(dispense["quantity"]["value"], 30);
    assert_eq!(dispense["identifier"][0]["value"], "RX-555");
    assert_eq!(
        dispense["authorizingPrescription"][0]["reference"],
        reference_of(&request)
    );
    assert_eq!(dispense["performer"][0]["actor"]["display"], "DAN DISPENSE");
    assert_eq!(
        dispense["subject"]["reference"],
        reference_of(&one(&bundle, "Patient"))
    );
}

#[test]
fn omg_o19_is_an_order_with_its_participants() {
    let bundle = convert(OMG_O19);
    let order = one(&bundle, "ServiceRequest");
    assert_eq!(order["code"]["coding"][0]["code"], "71045");
    assert_eq!(order["note"][0]["text"], "Rule out pneumonia");
    assert_eq!(order["requester"]["display"], "MARCUS WELBY");
    let copies_to = one(&bundle, "PractitionerRole");
    assert_eq!(copies_to["code"][0]["coding"][0]["code"], "RCT");
    assert_eq!(order["performer"][0]["reference"], reference_of(&copies_to));
}

#[test]
fn prt_of_a_corpus_lab_result_names_the_ordering_organization() {
    // cdc-data-exchange-hl7/...ATVersion251.hl7: PRT-4 OPO, PRT-8 the facility
    let bundle = convert(&corpus(
        "cdc-data-exchange-hl7/InterPartner_CELR_TX_AIMSPlatform_Prod_Prod_202104050139_STOP_ATVersion251.hl7",
    ));
    let order = &all(&bundle, "ServiceRequest")[0];
    let requester = order["requester"]["reference"].as_str().unwrap();
    let organization = all(&bundle, "Organization")
        .into_iter()
        .find(|o| reference_of(o) == requester)
        .expect("the requester is an Organization");
    assert!(
        organization["name"]
            .as_str()
            .unwrap()
            .starts_with("Essentia Health"),
        "{organization:#}"
    );
}

#[test]
fn rde_o25_and_bar_p05_convert_like_their_families() {
    let rde = convert(RDE_O25);
    let request = one(&rde, "MedicationRequest");
    assert_eq!(
        request["dosageInstruction"][0]["timing"]["code"]["coding"][0]["code"],
        "Q6H"
    );
    let bar = convert(BAR_P05);
    let charge = one(&bar, "ChargeItem");
    assert_eq!(charge["priceOverride"]["currency"], "USD");
    assert_eq!(
        one(&bar, "Account")["guarantor"][0]["party"]["reference"],
        reference_of(&one(&bar, "Patient"))
    );
    assert_eq!(one(&bar, "Procedure")["code"]["coding"][0]["code"], "99213");
    assert_eq!(one(&bar, "Condition")["code"]["coding"][0]["code"], "E11.9");
}

/// `message` with MSH-9 `from` replaced by `to`.
fn as_event(message: &str, from: &str, to: &str) -> String {
    assert!(message.contains(from), "{from}");
    message.replacen(from, to, 1)
}

/// The other events of the REF, BAR and PPR families the issue names: REF^I13 to
/// I15, BAR^P02 and P06, PPR^PC2 and PC3, each with the segments of the family's
/// sample.
fn other_events() -> Vec<(String, String, &'static str)> {
    let mut events = Vec::new();
    for event in ["I13", "I14", "I15"] {
        let text = as_event(REF_I12, "REF^I12^REF_I12", &format!("REF^{event}^REF_I12"));
        events.push((format!("REF^{event}"), text, "ServiceRequest"));
    }
    for event in ["P02", "P06"] {
        let text = as_event(BAR_P05, "BAR^P05^BAR_P05", &format!("BAR^{event}^BAR_P05"))
            .replace("EVN|P05|", &format!("EVN|{event}|"));
        events.push((format!("BAR^{event}"), text, "Account"));
    }
    for event in ["PC2", "PC3"] {
        let text = as_event(PPR_PC1, "PPR^PC1^PPR_PC1", &format!("PPR^{event}^PPR_PC1"));
        events.push((format!("PPR^{event}"), text, "Condition"));
    }
    events
}

#[test]
fn the_other_ref_bar_and_ppr_events_convert_like_their_families() {
    for (name, text, resource_type) in other_events() {
        let bytes = text.trim().replace('\n', "\r").into_bytes();
        let message = hl7v2::Message::parse(&bytes).unwrap();
        assert!(Converter::supports(&message), "{name} is not mapped");
        let bundle = convert(&text);
        assert!(
            bundle.of_type(resource_type).count() >= 1,
            "{name}: no {resource_type}"
        );
        // Mapped, so nothing is named as skipped.
        assert_eq!(bundle.of_type("OperationOutcome").count(), 0, "{name}");
        assert_eq!(
            reference_of(&one(&bundle, "Patient")),
            bundle
                .of_type(resource_type)
                .next()
                .map(|e| {
                    let r = &e.resource;
                    r["subject"]["reference"]
                        .as_str()
                        .or(r["patient"]["reference"].as_str())
                        .or(r["guarantor"][0]["party"]["reference"].as_str())
                        .unwrap_or_default()
                        .to_owned()
                })
                .unwrap_or_default(),
            "{name}: the {resource_type} is not the patient's"
        );
    }
}

#[test]
fn coverage_tells_mapped_skipped_and_unknown_apart() {
    let text = format!("{}\nZPX|1|site data", REF_I12.trim());
    let bytes = text.replace('\n', "\r").into_bytes();
    let message = hl7v2::Message::parse(&bytes).unwrap();
    let coverage = Converter::new(Options::default()).coverage(&message);
    assert!(coverage.converted);
    assert_eq!(coverage.message_type, "REF^I12^REF_I12");
    let segment = |name: &str| {
        coverage
            .segments
            .iter()
            .find(|s| s.segment == name)
            .unwrap()
    };
    let rf1 = segment("RF1");
    assert_eq!(rf1.status, SegmentStatus::Mapped);
    for field in ["RF1-1", "RF1-2", "RF1-6", "RF1-10"] {
        assert!(rf1.mapped.iter().any(|f| f == field), "{rf1:?}");
    }
    // RF1-4 (disposition) is not mapped: reported as skipped.
    let text = text.replace("|Med^Medical^HL70281||", "|Med^Medical^HL70281|D1|");
    let bytes = text.replace('\n', "\r").into_bytes();
    let message = hl7v2::Message::parse(&bytes).unwrap();
    let coverage = Converter::new(Options::default()).coverage(&message);
    let rf1 = coverage
        .segments
        .iter()
        .find(|s| s.segment == "RF1")
        .unwrap();
    assert!(rf1.skipped.iter().any(|f| f == "RF1-4"), "{rf1:?}");
    let zpx = coverage
        .segments
        .iter()
        .find(|s| s.segment == "ZPX")
        .unwrap();
    assert_eq!(zpx.status, SegmentStatus::Unknown);
    assert_eq!(zpx.skipped, ["ZPX-1", "ZPX-2"]);
    let msh = &coverage.segments[0];
    assert!(msh.mapped.iter().any(|f| f == "MSH-10"), "{msh:?}");
    let (mapped, skipped) = coverage.field_counts();
    assert!(mapped > 20 && skipped >= 3, "{mapped} {skipped}");
}

#[test]
fn every_bundle_of_this_file_is_valid_r4() {
    let mut bundles = vec![("adt_a01_accident".to_string(), convert(&adt_a01_accident()))];
    for (name, text) in [
        ("adt_a03_death", ADT_A03_DEATH),
        ("ref_i12", REF_I12),
        ("ppr_pc1", PPR_PC1),
        ("rds_o13", RDS_O13),
        ("omg_o19", OMG_O19),
        ("rde_o25", RDE_O25),
        ("bar_p05", BAR_P05),
    ] {
        bundles.push((name.to_string(), convert(text)));
    }
    for (name, text, _) in other_events() {
        bundles.push((name, convert(&text)));
    }
    let bundles: Vec<(String, String)> = bundles
        .into_iter()
        .map(|(name, bundle)| (name, bundle.to_json_string()))
        .collect();
    test_support::fhir::assert_valid_r4_both(&bundles);
}
