//! FHIR R4 back to HL7 v2.5.1: the guide's mappings read backwards.
//!
//! Bytes of JSON in (one resource, or a Bundle of any type), messages and an
//! `OperationOutcome` out ([`to_v2`]), so an HTTP source and the command
//! line call the same thing. Which message a resource makes:
//!
//! | FHIR                                     | v2                                  |
//! |------------------------------------------|-------------------------------------|
//! | DiagnosticReport (+ its Observations)    | ORU^R01: ORC, OBR, OBX per result   |
//! | Observation in no report                 | ORU^R01: OBR from its code, OBX     |
//! | ServiceRequest no report is based on     | ORM^O01: ORC, OBR (OML^O21 when the Bundle's MessageHeader says O21) |
//! | MedicationRequest                        | RDE^O11: ORC, RXE, TQ1 (timing, priority), RXR |
//! | Immunization                             | VXU^V04: ORC, RXA, RXR              |
//! | Encounter no other message carries       | ADT^A01 (in progress), A03 (finished), A08 |
//! | Patient no other message carries         | ADT^A28 (a create, `POST`), else A31 |
//! | Patient.contact                          | NK1 in the patient's ADT message    |
//! | AllergyIntolerance, Condition, Coverage  | AL1, DG1, IN1 in the patient's ADT message (an A31 made for them when no other ADT carries the patient) |
//!
//! Each message carries the PID of its patient and the PV1 of its encounter;
//! the messages of one patient and family share one message (an ORU with
//! several reports), so a Bundle converted from one v2 message gives that
//! message back. A Bundle's MessageHeader event (v2 table 0003) names the
//! ADT event when there is one. Practitioners, Organizations, Locations and
//! the like become the fields that refer to them. Every resource no message
//! carries, and every element of a carried resource that no field holds, is
//! named in the OperationOutcome (`information`, code `not-supported`).
//!
//! The fields written, and so the ones a round trip v2 -> FHIR -> v2 keeps:
//! PID-3 (identifiers with authority and type), PID-5, PID-7, PID-8,
//! PID-11, PID-13, PID-16, PID-29, PID-30; NK1-2, NK1-3, NK1-4, NK1-5,
//! NK1-8, NK1-9, NK1-15; PV1-2, PV1-3.1, PV1-7, PV1-19, PV1-44, PV1-45;
//! AL1-2, AL1-3, AL1-4, AL1-5, AL1-6; DG1-3, DG1-5, DG1-6, DG1-19, DG1-20;
//! IN1-2, IN1-3, IN1-4, IN1-8, IN1-9, IN1-12, IN1-13, IN1-15, IN1-36;
//! ORC-1, ORC-2, ORC-3, ORC-12; OBR-2, OBR-3, OBR-4, OBR-7,
//! OBR-22, OBR-25; OBX-2, OBX-3, OBX-5, OBX-6, OBX-7, OBX-8, OBX-11, OBX-14;
//! RXE-2, RXE-3, RXE-5, RXE-10, RXE-11, RXE-12; TQ1-3, TQ1-6, TQ1-7, TQ1-8,
//! TQ1-9; RXA-3, RXA-5, RXA-6, RXA-7, RXA-15, RXA-16, RXA-20; RXR-1.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::Options;

mod datatypes;
mod input;
mod segments;

pub use datatypes::dtm;
use datatypes::{array, control_id, cwe, escape, fields};

/// What the messages say about themselves.
#[derive(Clone, Debug)]
pub struct ToV2Options {
    /// MSH-3 and MSH-4.
    pub sending_application: String,
    pub sending_facility: String,
    /// MSH-7, a v2 DTM (`20240102120000+0100`): the caller's clock, so the
    /// translation itself is the same on every run.
    pub timestamp: String,
    /// The base of identifier and code systems the v2-to-FHIR direction
    /// made from local names (`{base}/HOSP` is authority `HOSP`).
    pub identifier_base: String,
    /// The start of each MSH-10, followed by the message's number in the
    /// translation (`{start}001`). Without it, `F` and MSH-7's digits: unique
    /// per translation only, so a caller translating more than once a second
    /// (a `fhir` source) gives its own, unique per translation.
    pub control_id_start: Option<String>,
}

impl Default for ToV2Options {
    fn default() -> ToV2Options {
        ToV2Options {
            sending_application: "CORRIDOR".into(),
            sending_facility: String::new(),
            timestamp: String::new(),
            identifier_base: Options::default().identifier_base,
            control_id_start: None,
        }
    }
}

/// This machine's clock now, as a v2 DTM with its offset (for
/// [`ToV2Options::timestamp`]).
pub fn now() -> String {
    datetime::hl7::now_dtm_local()
}

/// Input that is not FHIR R4 JSON this can read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ToV2Error {
    /// The element concerned (`Bundle.entry[2].resource`), when there is one.
    pub element: String,
    pub message: String,
}

impl fmt::Display for ToV2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.element.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.element, self.message)
        }
    }
}

impl std::error::Error for ToV2Error {}

/// The messages made, and what had no place in them.
#[derive(Clone, Debug)]
pub struct Translation {
    /// Each message's segments end in CR.
    pub messages: Vec<String>,
    /// An OperationOutcome (always present; no issue when nothing was left
    /// out).
    pub outcome: Value,
    /// The type of a Subscription notification (`event-notification`,
    /// `heartbeat`, `handshake`, ...) when the input was one.
    pub notification: Option<String>,
}

/// The message families, in the order messages are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Family {
    Results,
    Orders,
    Pharmacy,
    Vaccination,
    Visit,
    Person,
}

/// Elements each carried resource type has a field for; any other element
/// is reported as having no place in v2.
fn placed(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Patient" => &[
            "identifier",
            "name",
            "birthDate",
            "gender",
            "address",
            "telecom",
            "maritalStatus",
            "deceasedDateTime",
            "deceasedBoolean",
            "contact",
        ],
        "Encounter" => &[
            "identifier",
            "status",
            "class",
            "subject",
            "location",
            "participant",
            "period",
        ],
        "DiagnosticReport" => &[
            "identifier",
            "basedOn",
            "status",
            "code",
            "subject",
            "encounter",
            "effectiveDateTime",
            "issued",
            "result",
        ],
        "ServiceRequest" => &[
            "identifier",
            "status",
            "intent",
            "code",
            "subject",
            "encounter",
            "requester",
            "occurrenceDateTime",
        ],
        "Observation" => &[
            "basedOn",
            "status",
            "code",
            "subject",
            "encounter",
            "effectiveDateTime",
            "valueQuantity",
            "valueString",
            "valueCodeableConcept",
            "valueDateTime",
            "interpretation",
            "referenceRange",
        ],
        "MedicationRequest" => &[
            "identifier",
            "status",
            "intent",
            "medicationCodeableConcept",
            "subject",
            "encounter",
            "requester",
            "dosageInstruction",
            "dispenseRequest",
            "priority",
        ],
        "AllergyIntolerance" => &[
            "clinicalStatus",
            "category",
            "type",
            "code",
            "patient",
            "criticality",
            "reaction",
            "onsetDateTime",
        ],
        "Condition" => &[
            "category",
            "code",
            "subject",
            "encounter",
            "onsetDateTime",
            "recordedDate",
            "identifier",
        ],
        "Coverage" => &[
            "status",
            "identifier",
            "subscriberId",
            "beneficiary",
            "payor",
            "class",
            "period",
            "type",
        ],
        "Immunization" => &[
            "identifier",
            "status",
            "vaccineCode",
            "patient",
            "encounter",
            "occurrenceDateTime",
            "doseQuantity",
            "lotNumber",
            "expirationDate",
            "route",
        ],
        _ => &[],
    }
}

/// Resources a message refers to through a field (never reported).
const REFERRED: &[&str] = &[
    "Practitioner",
    "PractitionerRole",
    "Organization",
    "Location",
    "MessageHeader",
    "Provenance",
];

/// Translates FHIR R4 JSON (a resource, a Bundle of any type, or a
/// Subscription notification, as the `input` module reads it) to v2 messages. Input that is
/// not R4 in an element the translation reads is an error naming it.
pub fn to_v2(json: &[u8], options: &ToV2Options) -> Result<Translation, ToV2Error> {
    let input = input::read(json)?;
    let mut translation = Translator::new(input.resources, options).run();
    if let Some(Value::Array(issues)) = translation.outcome.get_mut("issue") {
        for (element, reference) in input.not_sent {
            let mut issue = Map::new();
            issue.insert("severity".into(), "warning".into());
            issue.insert("code".into(), "incomplete".into());
            issue.insert(
                "diagnostics".into(),
                format!(
                    "the notification names {reference} without sending it: nothing to translate"
                )
                .into(),
            );
            issue.insert("expression".into(), Value::Array(vec![element.into()]));
            issues.push(Value::Object(issue));
        }
    }
    translation.notification = input.notification;
    Ok(translation)
}

struct Translator<'o> {
    options: &'o ToV2Options,
    resources: Vec<(Value, Option<String>)>,
    by_reference: HashMap<String, usize>,
    used: Vec<bool>,
    issues: Vec<Value>,
    /// Observations of an order no report lists, by the order.
    results_of: HashMap<usize, Vec<usize>>,
    /// Allergies, conditions and coverages (AL1, DG1, IN1), by their Patient:
    /// they go in that patient's ADT message.
    adt_records: HashMap<usize, Vec<usize>>,
}

impl<'o> Translator<'o> {
    fn new(resources: Vec<(Value, Option<String>)>, options: &'o ToV2Options) -> Translator<'o> {
        let mut by_reference = HashMap::new();
        for (i, (r, _)) in resources.iter().enumerate() {
            if let (Some(t), Some(id)) = (r["resourceType"].as_str(), r["id"].as_str()) {
                by_reference.insert(format!("{t}/{id}"), i);
            }
        }
        let used = vec![false; resources.len()];
        Translator {
            options,
            resources,
            by_reference,
            used,
            issues: Vec::new(),
            results_of: HashMap::new(),
            adt_records: HashMap::new(),
        }
    }

    fn resolve(&self, reference: &Value) -> Option<usize> {
        let r = reference["reference"].as_str()?;
        self.by_reference.get(r).copied()
    }

    fn resource(&self, i: usize) -> &Value {
        &self.resources[i].0
    }

    fn type_of(&self, i: usize) -> &str {
        self.resources[i].0["resourceType"].as_str().unwrap_or("")
    }

    fn of_type(&self, t: &str) -> Vec<usize> {
        (0..self.resources.len())
            .filter(|&i| self.type_of(i) == t)
            .collect()
    }

    fn run(mut self) -> Translation {
        // Who refers to whom, to fold a report's order and a message's visit
        // into the message that carries them.
        let mut carried = vec![false; self.resources.len()];
        for r in self.of_type("DiagnosticReport") {
            for based in array(&self.resource(r)["basedOn"]) {
                if let Some(s) = self.resolve(based) {
                    carried[s] = true;
                }
            }
            for result in array(&self.resource(r)["result"]) {
                if let Some(o) = self.resolve(result) {
                    carried[o] = true;
                }
            }
        }
        // Results no report lists, of an order: OBX under that order's OBR.
        for o in self.of_type("Observation") {
            if carried[o] {
                continue;
            }
            let order = array(&self.resource(o)["basedOn"])
                .find_map(|b| self.resolve(b))
                .filter(|&s| self.type_of(s) == "ServiceRequest" && !carried[s]);
            if let Some(s) = order {
                carried[o] = true;
                self.results_of.entry(s).or_default().push(o);
            }
        }
        let header_event = self.header_event();
        // Family -> patient -> resources, in Bundle order.
        let mut groups: Vec<(Family, Option<usize>, Vec<usize>)> = Vec::new();
        let mut clinical_encounters = Vec::new();
        for (i, &carried_here) in carried.iter().enumerate() {
            let family = match self.type_of(i) {
                "DiagnosticReport" => Family::Results,
                "Observation" if !carried_here => Family::Results,
                // An order with results is a result message, unless the
                // Bundle came from an order message (MessageHeader O01, O21).
                "ServiceRequest"
                    if !carried_here
                        && self.results_of.contains_key(&i)
                        && !matches!(header_event.as_deref(), Some("O01" | "O21")) =>
                {
                    Family::Results
                }
                "ServiceRequest" if !carried_here => Family::Orders,
                "MedicationRequest" => Family::Pharmacy,
                "Immunization" => Family::Vaccination,
                _ => continue,
            };
            let r = self.resource(i);
            let patient = self.resolve(&r["subject"]).or(self.resolve(&r["patient"]));
            if let Some(e) = self.resolve(&r["encounter"]) {
                clinical_encounters.push(e);
            }
            match groups
                .iter_mut()
                .find(|(f, p, _)| *f == family && *p == patient)
            {
                Some((_, _, members)) => members.push(i),
                None => groups.push((family, patient, vec![i])),
            }
        }
        // A Bundle made from an ADT message gives the ADT back, whatever
        // else its records make.
        let adt = header_event.as_deref().is_some_and(|e| e.starts_with('A'));
        let mut with_visit = Vec::new();
        for e in self.of_type("Encounter") {
            if adt || !clinical_encounters.contains(&e) {
                let patient = self.resolve(&self.resource(e)["subject"]);
                with_visit.push(patient);
                groups.push((Family::Visit, patient, vec![e]));
            }
        }
        // Allergies, conditions and coverages of a Patient of the Bundle go in
        // its ADT message.
        for t in ["AllergyIntolerance", "Condition", "Coverage"] {
            for i in self.of_type(t) {
                let r = self.resource(i);
                let patient = [&r["patient"], &r["subject"], &r["beneficiary"]]
                    .into_iter()
                    .find_map(|reference| self.resolve(reference))
                    .filter(|&p| self.type_of(p) == "Patient");
                if let Some(p) = patient {
                    self.adt_records.entry(p).or_default().push(i);
                }
            }
        }
        for p in self.of_type("Patient") {
            let carried_by_other = !adt
                && !self.adt_records.contains_key(&p)
                && groups.iter().any(|(_, patient, _)| *patient == Some(p));
            if !carried_by_other && !with_visit.contains(&Some(p)) {
                groups.push((Family::Person, Some(p), vec![p]));
            }
        }
        groups.sort_by_key(|(f, _, _)| *f);
        let mut messages = Vec::new();
        for (n, (family, patient, members)) in groups.iter().enumerate() {
            messages.push(self.message(n + 1, *family, *patient, members));
        }
        for i in 0..self.resources.len() {
            let t = self.type_of(i).to_string();
            if !self.used[i] && !REFERRED.contains(&t.as_str()) {
                let id = self.resource(i)["id"].as_str().unwrap_or("").to_string();
                self.issue(
                    format!("{t}/{id}"),
                    "no HL7 v2 message carries this resource",
                );
            }
        }
        let mut outcome = Map::new();
        outcome.insert("resourceType".into(), "OperationOutcome".into());
        outcome.insert("issue".into(), Value::Array(self.issues));
        Translation {
            messages,
            outcome: Value::Object(outcome),
            notification: None,
        }
    }

    fn issue(&mut self, expression: String, diagnostics: &str) {
        let mut issue = Map::new();
        issue.insert("severity".into(), "information".into());
        issue.insert("code".into(), "not-supported".into());
        issue.insert("diagnostics".into(), diagnostics.into());
        issue.insert("expression".into(), Value::Array(vec![expression.into()]));
        self.issues.push(Value::Object(issue));
    }

    /// Marks a resource carried, reporting the elements no field holds.
    fn carry(&mut self, i: usize) {
        if self.used[i] {
            return;
        }
        self.used[i] = true;
        let t = self.type_of(i).to_string();
        let keep = placed(&t);
        let unplaced: Vec<String> = match self.resource(i) {
            Value::Object(o) => o
                .keys()
                .filter(|k| !matches!(k.as_str(), "resourceType" | "id" | "meta" | "text"))
                .filter(|k| !keep.contains(&k.as_str()))
                .map(|k| format!("{t}.{k}"))
                .collect(),
            _ => Vec::new(),
        };
        for element in unplaced {
            self.issue(element, "no HL7 v2 field holds this element");
        }
    }

    fn message(
        &mut self,
        number: usize,
        family: Family,
        patient: Option<usize>,
        members: &[usize],
    ) -> String {
        let (code, event, structure) = match family {
            Family::Results => ("ORU", "R01".to_string(), "ORU_R01"),
            Family::Orders if self.header_event().as_deref() == Some("O21") => {
                ("OML", "O21".to_string(), "OML_O21")
            }
            Family::Orders => ("ORM", "O01".to_string(), "ORM_O01"),
            Family::Pharmacy => ("RDE", "O11".to_string(), "RDE_O11"),
            Family::Vaccination => ("VXU", "V04".to_string(), "VXU_V04"),
            Family::Visit => ("ADT", self.visit_event(members[0]), "ADT_A01"),
            Family::Person => {
                let created = self.resources[members[0]].1.as_deref() == Some("POST");
                let event = if created { "A28" } else { "A31" };
                ("ADT", event.to_string(), "ADT_A05")
            }
        };
        let o = self.options;
        let mut segments = vec![fields(&[
            "MSH",
            "^~\\&",
            &escape(&o.sending_application),
            &escape(&o.sending_facility),
            "",
            "",
            &o.timestamp,
            "",
            &format!("{code}^{event}^{structure}"),
            &match &o.control_id_start {
                Some(start) => format!("{start}{number:03}"),
                None => control_id(&o.timestamp, number),
            },
            "P",
            "2.5.1",
        ])];
        if code == "ADT" {
            segments.push(fields(&["EVN", &event, &o.timestamp]));
        }
        if let Some(p) = patient {
            self.carry(p);
            segments.push(self.pid(p));
            if code == "ADT" {
                let contacts: Vec<Value> = array(&self.resource(p)["contact"]).cloned().collect();
                for (n, contact) in contacts.iter().enumerate() {
                    segments.push(self.nk1(n + 1, contact));
                }
            }
        }
        let encounter = members.iter().find_map(|&m| {
            if self.type_of(m) == "Encounter" {
                Some(m)
            } else {
                self.resolve(&self.resource(m)["encounter"])
            }
        });
        if let Some(e) = encounter {
            self.carry(e);
            segments.push(self.pv1(e));
        }
        if code == "ADT"
            && let Some(p) = patient
        {
            let records = self.adt_records.remove(&p).unwrap_or_default();
            let (mut allergies, mut diagnoses, mut coverages) =
                (Vec::new(), Vec::new(), Vec::new());
            for i in records {
                self.carry(i);
                match self.type_of(i) {
                    "AllergyIntolerance" => allergies.push(self.al1(allergies.len() + 1, i)),
                    "Condition" => diagnoses.push(self.dg1(diagnoses.len() + 1, i, encounter)),
                    _ => coverages.push(self.in1(coverages.len() + 1, i)),
                }
            }
            // In the order of the ADT structures: AL1, DG1, then IN1.
            segments.extend(allergies);
            segments.extend(diagnoses);
            segments.extend(coverages);
        }
        for &m in members {
            self.carry(m);
            match self.type_of(m) {
                "DiagnosticReport" => self.report(m, &mut segments),
                "Observation" => {
                    let obr = self.obr(1, self.resource(m), None);
                    segments.push(fields(&["ORC", "RE"]));
                    segments.push(obr);
                    segments.push(self.obx(1, m));
                }
                "ServiceRequest" => {
                    let control = if family == Family::Results {
                        "RE"
                    } else {
                        "NW"
                    };
                    segments.push(self.orc(control, m));
                    let set_id = segments.iter().filter(|s| s.starts_with("OBR|")).count() + 1;
                    segments.push(self.obr(set_id, &self.resource(m).clone(), Some(m)));
                    let results = self.results_of.get(&m).cloned().unwrap_or_default();
                    for (n, o) in results.into_iter().enumerate() {
                        self.carry(o);
                        segments.push(self.obx(n + 1, o));
                    }
                }
                "MedicationRequest" => {
                    segments.push(self.orc("NW", m));
                    segments.push(self.rxe(m));
                    if let Some(tq1) = self.tq1(m) {
                        segments.push(tq1);
                    }
                    let route = &self.resource(m)["dosageInstruction"][0]["route"];
                    if !route.is_null() {
                        segments.push(fields(&["RXR", &cwe(route, o)]));
                    }
                }
                "Immunization" => {
                    segments.push(self.orc("RE", m));
                    segments.push(self.rxa(m));
                    let route = &self.resource(m)["route"];
                    if !route.is_null() {
                        segments.push(fields(&["RXR", &cwe(route, o)]));
                    }
                }
                _ => {}
            }
        }
        let mut message = segments.join("\r");
        message.push('\r');
        message
    }

    /// The v2 event (table 0003) of the Bundle's MessageHeader, when it has
    /// one: the Bundle was made from that message.
    fn header_event(&self) -> Option<String> {
        self.of_type("MessageHeader").into_iter().find_map(|h| {
            let coding = &self.resource(h)["eventCoding"];
            let code = coding["code"].as_str()?;
            (coding["system"] == "http://terminology.hl7.org/CodeSystem/v2-0003")
                .then(|| code.to_string())
        })
    }

    /// The ADT event of an Encounter: the Bundle's MessageHeader's event
    /// when it is an ADT one, else from its status.
    fn visit_event(&self, e: usize) -> String {
        if let Some(event) = self.header_event().filter(|e| e.starts_with('A')) {
            return event;
        }
        match self.resource(e)["status"].as_str() {
            Some("in-progress") | Some("arrived") => "A01",
            Some("finished") => "A03",
            _ => "A08",
        }
        .to_string()
    }
}
