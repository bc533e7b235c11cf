//! FHIR R4 to HL7 v2 (`v2_fhir::to_v2`): which message each resource
//! makes, the fields it fills, what it reports as having no place in v2,
//! and the errors that name the element at fault.

use hl7v2::Message;
use serde_json::{Value, json};
use v2_fhir::to_v2::{ToV2Options, to_v2};

fn options() -> ToV2Options {
    ToV2Options {
        sending_facility: "HOSP".into(),
        timestamp: "20240401120000+0200".into(),
        ..ToV2Options::default()
    }
}

fn translate(value: &Value) -> v2_fhir::to_v2::Translation {
    to_v2(value.to_string().as_bytes(), &options()).unwrap()
}

fn get(message: &str, path: &str) -> String {
    let m = Message::parse(message.as_bytes()).unwrap();
    m.get_str(path)
        .unwrap()
        .map(|v| v.into_owned())
        .unwrap_or_default()
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient", "id": "p1",
        "identifier": [{"system": "urn:corridor:id/HOSP", "value": "MRN1",
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}},
                       {"system": "http://hl7.org/fhir/sid/us-ssn", "value": "123-45-6789"}],
        "name": [{"family": "DOE", "given": ["JANE", "Q"]}],
        "gender": "female", "birthDate": "1980-01-02",
        "address": [{"line": ["1 MAIN ST"], "city": "SPRINGFIELD", "state": "IL", "postalCode": "62701"}],
        "telecom": [{"system": "phone", "value": "555-0100", "use": "home"}],
        "photo": [{"contentType": "image/png", "data": "AAAA"}]
    })
}

fn bundle(resources: &[Value]) -> Value {
    json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": resources.iter().map(|r| json!({
            "resource": r,
            "request": {"method": "PUT", "url": format!("{}/{}", r["resourceType"].as_str().unwrap(), r["id"].as_str().unwrap())}
        })).collect::<Vec<_>>()
    })
}

#[test]
fn a_patient_posted_alone_is_an_a28_with_its_pid() {
    let t = translate(&patient());
    assert_eq!(t.messages.len(), 1);
    let m = &t.messages[0];
    assert_eq!(get(m, "MSH-9"), "ADT^A28^ADT_A05");
    assert_eq!(get(m, "MSH-4"), "HOSP");
    assert_eq!(get(m, "MSH-7"), "20240401120000+0200");
    assert_eq!(get(m, "EVN-1"), "A28");
    assert_eq!(get(m, "PID-3[1]"), "MRN1^^^HOSP^MR");
    assert_eq!(get(m, "PID-3[2]"), "123-45-6789^^^USSSA");
    assert_eq!(get(m, "PID-5"), "DOE^JANE^Q");
    assert_eq!(get(m, "PID-7"), "19800102");
    assert_eq!(get(m, "PID-8"), "F");
    assert_eq!(get(m, "PID-11"), "1 MAIN ST^^SPRINGFIELD^IL^62701");
    assert_eq!(get(m, "PID-13.12"), "555-0100");
    // Patient.photo has no PID field: named in the OperationOutcome.
    let issues = t.outcome["issue"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{:#}", t.outcome);
    assert_eq!(issues[0]["expression"][0], "Patient.photo");
    assert_eq!(issues[0]["code"], "not-supported");
}

#[test]
fn a_patient_updated_in_a_bundle_is_an_a31() {
    let t = translate(&bundle(&[patient()]));
    assert_eq!(get(&t.messages[0], "MSH-9.2"), "A31");
}

#[test]
fn an_encounter_is_an_a01_a03_or_a08_by_its_status() {
    for (status, event) in [
        ("in-progress", "A01"),
        ("finished", "A03"),
        ("planned", "A08"),
    ] {
        let encounter = json!({
            "resourceType": "Encounter", "id": "e1", "status": status,
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/p1"},
            "identifier": [{"system": "urn:corridor:id/HOSP", "value": "V1",
                            "type": {"coding": [{"code": "VN"}]}}],
            "period": {"start": "2024-03-01T10:00:00-05:00"},
            "participant": [{"type": [{"coding": [{"code": "ATND"}]}],
                             "individual": {"reference": "Practitioner/d1"}}]
        });
        let doctor = json!({"resourceType": "Practitioner", "id": "d1",
            "identifier": [{"value": "1234"}], "name": [{"family": "WELBY", "given": ["MARCUS"]}]});
        let t = translate(&bundle(&[patient(), encounter, doctor]));
        assert_eq!(t.messages.len(), 1, "{:?}", t.messages);
        let m = &t.messages[0];
        assert_eq!(get(m, "MSH-9.2"), event);
        assert_eq!(get(m, "PID-3[1].1"), "MRN1");
        assert_eq!(get(m, "PV1-2"), "I");
        assert_eq!(get(m, "PV1-7"), "1234^WELBY^MARCUS");
        assert_eq!(get(m, "PV1-19"), "V1^^^HOSP^VN");
        assert_eq!(get(m, "PV1-44"), "20240301100000-0500");
    }
}

#[test]
fn a_report_and_its_observations_are_one_oru_with_the_order_numbers() {
    let order = json!({"resourceType": "ServiceRequest", "id": "s1", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "identifier": [{"system": "urn:corridor:id/EHR", "value": "PL1", "type": {"coding": [{"code": "PLAC"}]}},
                       {"system": "urn:corridor:id/LAB", "value": "FL1", "type": {"coding": [{"code": "FILL"}]}}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "24331-1", "display": "Lipid panel"}]}});
    let report = json!({"resourceType": "DiagnosticReport", "id": "r1", "status": "final",
        "basedOn": [{"reference": "ServiceRequest/s1"}], "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "24331-1", "display": "Lipid panel"}]},
        "effectiveDateTime": "2024-03-01T08:00:00Z",
        "result": [{"reference": "Observation/o1"}, {"reference": "Observation/o2"}]});
    let ldl = json!({"resourceType": "Observation", "id": "o1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "13457-7", "display": "LDL"}]},
        "valueQuantity": {"value": 130, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"},
        "interpretation": [{"coding": [{"code": "H"}]}],
        "referenceRange": [{"text": "<100"}]});
    let gfr = json!({"resourceType": "Observation", "id": "o2", "status": "preliminary",
        "code": {"coding": [{"system": "http://loinc.org", "code": "33914-3"}]},
        "valueQuantity": {"value": 60, "comparator": ">", "unit": "mL/min"}});
    let t = translate(&bundle(&[patient(), order, report, ldl, gfr]));
    assert_eq!(t.messages.len(), 1, "{:?}", t.messages);
    let m = &t.messages[0];
    assert_eq!(get(m, "MSH-9"), "ORU^R01^ORU_R01");
    assert_eq!(get(m, "ORC-2"), "PL1^EHR");
    assert_eq!(get(m, "OBR-3"), "FL1^LAB");
    assert_eq!(get(m, "OBR-4"), "24331-1^Lipid panel^LN");
    assert_eq!(get(m, "OBR-7"), "20240301080000+0000");
    assert_eq!(get(m, "OBR-25"), "F");
    assert_eq!(get(m, "OBX[1]-2"), "NM");
    assert_eq!(get(m, "OBX[1]-3"), "13457-7^LDL^LN");
    assert_eq!(get(m, "OBX[1]-5"), "130");
    assert_eq!(get(m, "OBX[1]-6"), "mg/dL^mg/dL^UCUM");
    assert_eq!(get(m, "OBX[1]-7"), "<100");
    assert_eq!(get(m, "OBX[1]-8"), "H");
    assert_eq!(get(m, "OBX[1]-11"), "F");
    assert_eq!(get(m, "OBX[2]-5"), ">60");
    assert_eq!(get(m, "OBX[2]-11"), "P");
    assert!(
        t.outcome["issue"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["expression"][0] != "ServiceRequest/s1")
    );
}

#[test]
fn an_order_medication_and_immunization_make_orm_rde_and_vxu() {
    let order = json!({"resourceType": "ServiceRequest", "id": "s2", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "identifier": [{"system": "urn:corridor:id/EHR", "value": "PL2", "type": {"coding": [{"code": "PLAC"}]}}],
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "71045"}]},
        "requester": {"reference": "Practitioner/d1"}});
    let doctor = json!({"resourceType": "Practitioner", "id": "d1",
        "identifier": [{"value": "1234"}], "name": [{"family": "WELBY", "given": ["MARCUS"]}]});
    let medication = json!({"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]},
        "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg"}}],
                               "route": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0162", "code": "PO"}]}}],
        "dispenseRequest": {"quantity": {"value": 30, "unit": "TAB"}, "numberOfRepeatsAllowed": 2}});
    let dose = json!({"resourceType": "Immunization", "id": "i1", "status": "completed",
        "patient": {"reference": "Patient/p1"},
        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "208", "display": "COVID-19"}]},
        "occurrenceDateTime": "2021-04-01", "lotNumber": "LOT1",
        "doseQuantity": {"value": 0.3, "unit": "mL"}});
    let plan =
        json!({"resourceType": "CarePlan", "id": "a1", "subject": {"reference": "Patient/p1"}});
    let t = translate(&bundle(&[patient(), order, doctor, medication, dose, plan]));
    let types: Vec<String> = t.messages.iter().map(|m| get(m, "MSH-9.1")).collect();
    assert_eq!(types, ["ORM", "RDE", "VXU"]);
    let orm = &t.messages[0];
    assert_eq!(get(orm, "ORC-1"), "NW");
    assert_eq!(get(orm, "ORC-12"), "1234^WELBY^MARCUS");
    assert_eq!(get(orm, "OBR-4"), "71045^^C4");
    let rde = &t.messages[1];
    assert_eq!(get(rde, "RXE-2"), "197361^^RXNORM");
    assert_eq!(get(rde, "RXE-3"), "5");
    assert_eq!(get(rde, "RXE-10"), "30");
    assert_eq!(get(rde, "RXE-12"), "2");
    assert_eq!(get(rde, "RXR-1"), "PO^^HL70162");
    let vxu = &t.messages[2];
    assert_eq!(get(vxu, "RXA-3"), "20210401");
    assert_eq!(get(vxu, "RXA-5"), "208^COVID-19^CVX");
    assert_eq!(get(vxu, "RXA-6"), "0.3");
    assert_eq!(get(vxu, "RXA-15"), "LOT1");
    assert_eq!(get(vxu, "RXA-20"), "CP");
    // Every message has the patient's PID; the care plan has no message.
    assert!(t.messages.iter().all(|m| get(m, "PID-3[1].1") == "MRN1"));
    let unplaced: Vec<&str> = t.outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["expression"][0].as_str())
        .collect();
    assert!(unplaced.contains(&"CarePlan/a1"), "{unplaced:?}");
}

#[test]
fn text_with_delimiters_is_escaped() {
    let mut p = patient();
    p["name"][0]["family"] = json!("O'NEIL|SMITH^JR");
    let t = translate(&p);
    assert_eq!(get(&t.messages[0], "PID-5.1"), "O'NEIL|SMITH^JR");
}

#[test]
fn input_that_is_not_fhir_names_what_is_wrong() {
    let e = to_v2(b"{not json", &options()).unwrap_err();
    assert!(e.to_string().starts_with("not JSON"), "{e}");
    let e = to_v2(br#"{"id": "x"}"#, &options()).unwrap_err();
    assert!(e.to_string().contains("resourceType"), "{e}");
    let e = to_v2(
        br#"{"resourceType": "Bundle", "type": "transaction", "entry": [{"resource": {"resourceType": "Patient"}}, {"fullUrl": "x"}]}"#,
        &options(),
    )
    .unwrap_err();
    assert_eq!(e.element, "Bundle.entry[1].resource");
    let e = to_v2(br#"{"resourceType": "Bundle", "entry": {}}"#, &options()).unwrap_err();
    assert_eq!(e.element, "Bundle.entry");
}

#[test]
fn a_patients_contacts_allergies_diagnoses_and_coverage_go_in_its_adt_message() {
    let mut p = patient();
    p["contact"] = json!([{
        "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0131", "code": "N"}]}],
        "name": {"family": "DOE", "given": ["JOHN"]},
        "telecom": [{"system": "phone", "value": "555-0199"}],
        "address": {"line": ["1 MAIN ST"], "city": "SPRINGFIELD"}
    }]);
    let encounter = json!({"resourceType": "Encounter", "id": "e1", "status": "in-progress",
        "class": {"code": "IMP"}, "subject": {"reference": "Patient/p1"},
        "diagnosis": [{"condition": {"reference": "Condition/c1"},
                       "use": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/diagnosis-role", "code": "AD"}]}}]});
    let allergy = json!({"resourceType": "AllergyIntolerance", "id": "a1",
        "patient": {"reference": "Patient/p1"}, "category": ["medication"], "criticality": "high",
        "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980", "display": "Penicillin G"}]},
        "reaction": [{"manifestation": [{"text": "HIVES"}]}],
        "onsetDateTime": "2020-05-01"});
    let condition = json!({"resourceType": "Condition", "id": "c1",
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J18.9", "display": "Pneumonia"}]},
        "onsetDateTime": "2024-03-01"});
    let insurer = json!({"resourceType": "Organization", "id": "o1",
        "identifier": [{"value": "INS-7"}], "name": "ACME HEALTH"});
    let coverage = json!({"resourceType": "Coverage", "id": "cv1", "status": "active",
        "beneficiary": {"reference": "Patient/p1"}, "payor": [{"reference": "Organization/o1"}],
        "identifier": [{"type": {"coding": [{"code": "MB"}]}, "value": "POL-123"}],
        "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "group"}]},
                   "value": "GRP9", "name": "STAFF"}],
        "period": {"start": "2024-01-01"}});
    let t = translate(&bundle(&[
        p, encounter, allergy, condition, insurer, coverage,
    ]));
    assert_eq!(t.messages.len(), 1, "{:?}", t.messages);
    let m = &t.messages[0];
    assert_eq!(get(m, "MSH-9.2"), "A01");
    let names: Vec<&str> = m
        .split('\r')
        .filter(|s| !s.is_empty())
        .map(|s| &s[..3])
        .collect();
    assert_eq!(
        names,
        ["MSH", "EVN", "PID", "NK1", "PV1", "AL1", "DG1", "IN1"]
    );
    assert_eq!(get(m, "NK1-2"), "DOE^JOHN");
    assert_eq!(get(m, "NK1-3"), "");
    assert_eq!(get(m, "NK1-7"), "N^^HL70131");
    assert_eq!(get(m, "NK1-5.12"), "555-0199");
    assert_eq!(get(m, "AL1-2"), "DA");
    assert_eq!(get(m, "AL1-3"), "7980^Penicillin G^RXNORM");
    assert_eq!(get(m, "AL1-4"), "SV");
    assert_eq!(get(m, "AL1-5"), "HIVES");
    assert_eq!(get(m, "AL1-6"), "20200501");
    assert_eq!(get(m, "DG1-3"), "J18.9^Pneumonia^I10");
    assert_eq!(get(m, "DG1-5"), "20240301");
    assert_eq!(get(m, "DG1-6"), "A");
    assert_eq!(get(m, "IN1-3"), "INS-7");
    assert_eq!(get(m, "IN1-4"), "ACME HEALTH");
    assert_eq!(get(m, "IN1-8"), "GRP9");
    assert_eq!(get(m, "IN1-9"), "STAFF");
    assert_eq!(get(m, "IN1-12"), "20240101");
    assert_eq!(get(m, "IN1-36"), "POL-123");
    let unplaced: Vec<&str> = t.outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["expression"][0].as_str())
        .collect();
    assert_eq!(
        unplaced,
        ["Patient.photo", "Encounter.diagnosis"],
        "{:#}",
        t.outcome
    );
}

#[test]
fn an_allergy_posted_with_its_patient_makes_an_a31() {
    let allergy = json!({"resourceType": "AllergyIntolerance", "id": "a1",
        "patient": {"reference": "Patient/p1"},
        "code": {"text": "LATEX"}});
    let t = translate(&bundle(&[patient(), allergy]));
    assert_eq!(t.messages.len(), 1, "{:?}", t.messages);
    assert_eq!(get(&t.messages[0], "MSH-9"), "ADT^A31^ADT_A05");
    assert_eq!(get(&t.messages[0], "AL1-3"), "^LATEX");
}

#[test]
fn medication_timing_and_priority_become_a_tq1() {
    let medication = json!({"resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "priority": "stat",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}]},
        "dosageInstruction": [{
            "timing": {"repeat": {"frequency": 1, "period": 6, "periodUnit": "h",
                                  "boundsPeriod": {"start": "2024-03-01T08:00:00-05:00", "end": "2024-03-08T08:00:00-05:00"}}},
            "asNeededBoolean": true,
            "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "mg"}}],
            "route": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0162", "code": "PO"}]}}]});
    let t = translate(&bundle(&[patient(), medication.clone()]));
    let m = &t.messages[0];
    let names: Vec<&str> = m
        .split('\r')
        .filter(|s| !s.is_empty())
        .map(|s| &s[..3])
        .collect();
    assert_eq!(names, ["MSH", "PID", "ORC", "RXE", "TQ1", "RXR"]);
    assert_eq!(get(m, "TQ1-3.1.1"), "Q6H PRN");
    assert_eq!(get(m, "TQ1-7"), "20240301080000-0500");
    assert_eq!(get(m, "TQ1-8"), "20240308080000-0500");
    assert_eq!(get(m, "TQ1-9"), "S");
    // A coded timing keeps its code; the converter reads the TQ1 back.
    let mut coded = medication;
    coded["dosageInstruction"][0]["timing"] = json!({"code": {"coding": [
        {"system": "http://terminology.hl7.org/CodeSystem/v2-0335", "code": "BID", "display": "twice a day"}]}});
    let t = translate(&bundle(&[patient(), coded]));
    let m = &t.messages[0];
    assert_eq!(get(m, "TQ1-3.1.1"), "BID");
    assert_eq!(get(m, "TQ1-3.1.2"), "twice a day");
    let parsed = Message::parse(m.as_bytes()).unwrap();
    let back = v2_fhir::Converter::new(v2_fhir::Options::default())
        .convert(&parsed)
        .unwrap();
    let request = back.of_type("MedicationRequest").next().unwrap();
    let timing = &request.resource["dosageInstruction"][0]["timing"];
    assert_eq!(timing["code"]["coding"][0]["code"], "BID", "{timing}");
    assert_eq!(timing["repeat"]["frequency"], 2, "{timing}");
    assert_eq!(request.resource["priority"], "stat");
}

#[test]
fn an_order_from_an_oml_bundle_is_an_oml_o21() {
    let header = json!({"resourceType": "MessageHeader", "id": "h1",
        "eventCoding": {"system": "http://terminology.hl7.org/CodeSystem/v2-0003", "code": "O21"},
        "source": {"endpoint": "urn:x"}});
    let order = json!({"resourceType": "ServiceRequest", "id": "s1", "status": "active", "intent": "order",
        "subject": {"reference": "Patient/p1"},
        "identifier": [{"system": "urn:corridor:id/EHR", "value": "PL1", "type": {"coding": [{"code": "PLAC"}]}}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}});
    let t = translate(&bundle(&[header, patient(), order]));
    assert_eq!(get(&t.messages[0], "MSH-9"), "OML^O21^OML_O21");
    assert_eq!(get(&t.messages[0], "ORC-2"), "PL1^EHR");
    assert_eq!(get(&t.messages[0], "OBR-4"), "2345-7^^LN");
}

#[test]
fn invalid_r4_is_refused_naming_the_element() {
    let mut p = patient();
    p["birthDate"] = json!("19800102");
    let e = to_v2(p.to_string().as_bytes(), &options()).unwrap_err();
    assert_eq!(e.element, "Patient.birthDate", "{e}");
    let mut p = patient();
    p["gender"] = json!("F");
    let e = to_v2(bundle(&[p]).to_string().as_bytes(), &options()).unwrap_err();
    assert_eq!(e.element, "Bundle.entry[0].resource.Patient.gender", "{e}");
    let observation = json!({"resourceType": "Observation", "id": "o1",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}});
    let e = to_v2(observation.to_string().as_bytes(), &options()).unwrap_err();
    assert_eq!(e.element, "Observation.status", "{e}");
    let mut b = bundle(&[patient()]);
    b["type"] = json!("bag");
    let e = to_v2(b.to_string().as_bytes(), &options()).unwrap_err();
    assert_eq!(e.element, "Bundle.type", "{e}");
}

/// An R4 Subscription notification (Subscriptions R5 Backport): a `history`
/// Bundle whose first entry is the status `Parameters`.
fn notification(kind: &str, entries: Vec<Value>) -> Value {
    let mut all = vec![json!({
        "fullUrl": "urn:uuid:385b23bd-6d03-462e-894d-a0694045d65c",
        "resource": {"resourceType": "Parameters", "id": "385b23bd-6d03-462e-894d-a0694045d65c",
            "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4"]},
            "parameter": [
                {"name": "subscription", "valueReference": {"reference": "https://example.org/fhir/Subscription/admission"}},
                {"name": "topic", "valueCanonical": "http://hl7.org/SubscriptionTopic/admission"},
                {"name": "status", "valueCode": "active"},
                {"name": "type", "valueCode": kind},
                {"name": "notification-event", "part": [
                    {"name": "event-number", "valueString": "2"},
                    {"name": "focus", "valueReference": {"reference": "https://example.org/fhir/Patient/p1"}}]}]},
        "request": {"method": "GET", "url": "https://example.org/fhir/Subscription/admission/$status"},
        "response": {"status": "200"}
    })];
    all.extend(entries);
    json!({"resourceType": "Bundle", "type": "history", "timestamp": "2020-05-29T11:44:13-05:00", "entry": all})
}

#[test]
fn a_subscription_notification_translates_its_resources_not_its_status() {
    let full = notification(
        "event-notification",
        vec![
            json!({"fullUrl": "https://example.org/fhir/Patient/p1", "resource": patient(),
                    "request": {"method": "PUT", "url": "Patient/p1"}, "response": {"status": "200"}}),
        ],
    );
    let t = translate(&full);
    assert_eq!(t.notification.as_deref(), Some("event-notification"));
    assert_eq!(t.messages.len(), 1, "{:?}", t.messages);
    assert_eq!(get(&t.messages[0], "MSH-9"), "ADT^A31^ADT_A05");
    assert!(
        t.outcome["issue"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| !i["expression"][0]
                .as_str()
                .unwrap()
                .starts_with("Parameters")),
        "{:#}",
        t.outcome
    );
    // A heartbeat carries nothing to translate.
    let t = translate(&notification("heartbeat", vec![]));
    assert_eq!(t.notification.as_deref(), Some("heartbeat"));
    assert!(t.messages.is_empty());
    // An id-only payload names what it did not send.
    let id_only = notification(
        "event-notification",
        vec![json!({"fullUrl": "https://example.org/fhir/Encounter/e9",
                    "request": {"method": "PUT", "url": "Encounter/e9"}, "response": {"status": "200"}})],
    );
    let t = translate(&id_only);
    assert!(t.messages.is_empty());
    let issue = &t.outcome["issue"][0];
    assert_eq!(issue["code"], "incomplete");
    assert_eq!(issue["expression"][0], "Bundle.entry[1]");
    assert!(
        issue["diagnostics"]
            .as_str()
            .unwrap()
            .contains("https://example.org/fhir/Encounter/e9")
    );
}
