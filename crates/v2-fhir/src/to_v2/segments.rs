//! One function per v2 segment made from a resource: PID, NK1, PV1, AL1,
//! DG1, IN1, ORC, OBR, OBX, RXE, TQ1, RXA.

use serde_json::Value;

use super::Translator;
use super::datatypes::{
    array, cwe, cx, dtm, escape, join_reps, number, reverse, trimmed, typed_ei, xad, xcn, xpn, xtn,
};
use crate::vocab::ConceptMap;

impl Translator<'_> {
    pub(super) fn pid(&self, p: usize) -> String {
        let o = self.options;
        let r = self.resource(p);
        let identifiers = join_reps(array(&r["identifier"]).map(|i| cx(i, o)));
        let names = join_reps(array(&r["name"]).map(xpn));
        let addresses = join_reps(array(&r["address"]).map(xad));
        let phones = join_reps(array(&r["telecom"]).map(xtn));
        let gender = r["gender"]
            .as_str()
            .and_then(|g| {
                reverse(
                    ConceptMap::AdministrativeSex,
                    &["F", "M", "O", "U", "A", "N"],
                    g,
                )
            })
            .unwrap_or_default();
        let marital = &r["maritalStatus"]["coding"][0]["code"];
        let deceased = match &r["deceasedBoolean"] {
            Value::Bool(true) => "Y",
            Value::Bool(false) => "N",
            _ if r["deceasedDateTime"].is_string() => "Y",
            _ => "",
        };
        let mut f = vec![String::new(); 31];
        f[0] = "PID".into();
        f[1] = "1".into();
        f[3] = identifiers;
        f[5] = names;
        f[7] = dtm(r["birthDate"].as_str().unwrap_or(""));
        f[8] = gender.to_string();
        f[11] = addresses;
        f[13] = phones;
        f[16] = escape(marital.as_str().unwrap_or(""));
        f[29] = dtm(r["deceasedDateTime"].as_str().unwrap_or(""));
        f[30] = deceased.into();
        trimmed(f)
    }

    pub(super) fn pv1(&self, e: usize) -> String {
        let o = self.options;
        let r = self.resource(e);
        let class = r["class"]["code"]
            .as_str()
            .and_then(|c| {
                reverse(
                    ConceptMap::PatientClassEncounterClass,
                    &["E", "I", "O", "P", "R", "B", "C", "N", "U"],
                    c,
                )
            })
            // PV1-2 is required: `U` (unknown) when the class has no v2 code.
            .unwrap_or("U");
        let visit = array(&r["identifier"])
            .find(|i| i["type"]["coding"][0]["code"] == "VN")
            .or_else(|| array(&r["identifier"]).next())
            .map(|i| cx(i, o))
            .unwrap_or_default();
        let attending = array(&r["participant"])
            .find(|p| p["type"][0]["coding"][0]["code"] == "ATND")
            .and_then(|p| self.resolve(&p["individual"]))
            .map(|i| xcn(self.resource(i)))
            .unwrap_or_default();
        let location = array(&r["location"])
            .next()
            .and_then(|l| l["location"]["display"].as_str())
            .map(escape)
            .unwrap_or_default();
        let mut f = vec![String::new(); 46];
        f[0] = "PV1".into();
        f[1] = "1".into();
        f[2] = class.to_string();
        f[3] = location;
        f[7] = attending;
        f[19] = visit;
        f[44] = dtm(r["period"]["start"].as_str().unwrap_or(""));
        f[45] = dtm(r["period"]["end"].as_str().unwrap_or(""));
        trimmed(f)
    }

    /// ORC from a request's (or report's) identifiers and requester.
    pub(super) fn orc(&self, control: &str, i: usize) -> String {
        let o = self.options;
        let r = self.resource(i);
        let requester = self
            .resolve(&r["requester"])
            .map(|p| xcn(self.resource(p)))
            .unwrap_or_default();
        let mut f = vec![String::new(); 13];
        f[0] = "ORC".into();
        f[1] = control.into();
        f[2] = typed_ei(r, "PLAC", o);
        f[3] = typed_ei(r, "FILL", o);
        f[12] = requester;
        trimmed(f)
    }

    pub(super) fn report(&mut self, d: usize, segments: &mut Vec<String>) {
        let report = self.resource(d).clone();
        let request = array(&report["basedOn"]).find_map(|b| self.resolve(b));
        if let Some(s) = request {
            self.carry(s);
        }
        segments.push(self.orc("RE", request.unwrap_or(d)));
        let set_id = segments.iter().filter(|s| s.starts_with("OBR|")).count() + 1;
        segments.push(self.obr(set_id, &report, request));
        let results: Vec<usize> = array(&report["result"])
            .filter_map(|r| self.resolve(r))
            .collect();
        for (n, o) in results.into_iter().enumerate() {
            self.carry(o);
            segments.push(self.obx(n + 1, o));
        }
    }

    /// OBR from a report (or a request, or an observation standing alone).
    pub(super) fn obr(&self, set_id: usize, r: &Value, request: Option<usize>) -> String {
        let o = self.options;
        let numbers = request.map(|s| self.resource(s)).unwrap_or(r);
        let status = match r["status"].as_str() {
            Some("final") => "F",
            Some("preliminary") => "P",
            Some("corrected") | Some("amended") | Some("appended") => "C",
            Some("cancelled") => "X",
            Some("registered") => "I",
            Some("partial") => "A",
            _ => "",
        };
        let when = r["effectiveDateTime"]
            .as_str()
            .or(r["occurrenceDateTime"].as_str())
            .unwrap_or("");
        let mut f = vec![String::new(); 26];
        f[0] = "OBR".into();
        f[1] = set_id.to_string();
        f[2] = typed_ei(numbers, "PLAC", o);
        f[3] = typed_ei(numbers, "FILL", o);
        f[4] = cwe(&r["code"], o);
        f[7] = dtm(when);
        f[22] = dtm(r["issued"].as_str().unwrap_or(""));
        if r["resourceType"] == "DiagnosticReport" {
            f[25] = status.into();
        }
        trimmed(f)
    }

    pub(super) fn obx(&self, set_id: usize, i: usize) -> String {
        let o = self.options;
        let r = self.resource(i);
        let (value_type, value, units) = if let Some(q) = r.get("valueQuantity") {
            let number = q["value"].to_string();
            let comparator = q["comparator"].as_str().unwrap_or("");
            let units = match (q["code"].as_str(), q["unit"].as_str()) {
                (Some(code), unit) if q["system"] == "http://unitsofmeasure.org" => {
                    format!("{}^{}^UCUM", escape(code), escape(unit.unwrap_or(code)))
                }
                (_, Some(unit)) => escape(unit),
                (Some(code), None) => escape(code),
                _ => String::new(),
            };
            ("NM", format!("{comparator}{number}"), units)
        } else if let Some(s) = r["valueString"].as_str() {
            ("ST", escape(s), String::new())
        } else if r.get("valueCodeableConcept").is_some() {
            ("CWE", cwe(&r["valueCodeableConcept"], o), String::new())
        } else if let Some(t) = r["valueDateTime"].as_str() {
            ("TS", dtm(t), String::new())
        } else {
            ("", String::new(), String::new())
        };
        let status = r["status"]
            .as_str()
            .and_then(|s| {
                reverse(
                    ConceptMap::ObservationResultStatus,
                    &["F", "P", "C", "A", "X", "D", "W"],
                    s,
                )
            })
            .unwrap_or_default();
        let range = r["referenceRange"][0]["text"].as_str().unwrap_or("");
        let interpretation = r["interpretation"][0]["coding"][0]["code"]
            .as_str()
            .unwrap_or("");
        let mut f = vec![String::new(); 15];
        f[0] = "OBX".into();
        f[1] = set_id.to_string();
        f[2] = value_type.into();
        f[3] = cwe(&r["code"], o);
        f[5] = value;
        f[6] = units;
        f[7] = escape(range);
        f[8] = escape(interpretation);
        f[11] = status.into();
        f[14] = dtm(r["effectiveDateTime"].as_str().unwrap_or(""));
        trimmed(f)
    }

    pub(super) fn rxe(&self, m: usize) -> String {
        let o = self.options;
        let r = self.resource(m);
        let dose = &r["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"];
        let dispense = &r["dispenseRequest"];
        let mut f = vec![String::new(); 13];
        f[0] = "RXE".into();
        f[2] = cwe(&r["medicationCodeableConcept"], o);
        f[3] = number(&dose["value"]);
        f[5] = escape(
            dose["code"]
                .as_str()
                .or(dose["unit"].as_str())
                .unwrap_or(""),
        );
        f[10] = number(&dispense["quantity"]["value"]);
        f[11] = escape(
            dispense["quantity"]["code"]
                .as_str()
                .or(dispense["quantity"]["unit"].as_str())
                .unwrap_or(""),
        );
        f[12] = number(&dispense["numberOfRepeatsAllowed"]);
        trimmed(f)
    }

    pub(super) fn rxa(&self, m: usize) -> String {
        let o = self.options;
        let r = self.resource(m);
        let dose = &r["doseQuantity"];
        let status = match r["status"].as_str() {
            Some("completed") => "CP",
            Some("not-done") => "RE",
            Some("entered-in-error") => "",
            _ => "",
        };
        let amount = number(&dose["value"]);
        let mut f = vec![String::new(); 21];
        f[0] = "RXA".into();
        f[1] = "0".into();
        f[2] = "1".into();
        f[3] = dtm(r["occurrenceDateTime"].as_str().unwrap_or(""));
        f[5] = cwe(&r["vaccineCode"], o);
        // RXA-6 is required; 999 is the standard's "amount unknown".
        f[6] = if amount.is_empty() {
            "999".into()
        } else {
            amount
        };
        f[7] = escape(
            dose["code"]
                .as_str()
                .or(dose["unit"].as_str())
                .unwrap_or(""),
        );
        f[15] = escape(r["lotNumber"].as_str().unwrap_or(""));
        f[16] = dtm(r["expirationDate"].as_str().unwrap_or(""));
        f[20] = status.into();
        trimmed(f)
    }

    /// NK1 from a Patient's contact: name (NK1-2), relationship (NK1-3, table
    /// 0063), address (NK1-4), phone (NK1-5), contact role (NK1-7, table 0131),
    /// period (NK1-8, NK1-9), sex (NK1-15).
    pub(super) fn nk1(&self, set_id: usize, contact: &Value) -> String {
        let o = self.options;
        const ROLE: &str = "http://terminology.hl7.org/CodeSystem/v2-0131";
        let is_role = |r: &Value| r["coding"][0]["system"] == ROLE;
        let role = array(&contact["relationship"])
            .find(|r| is_role(r))
            .map(|r| cwe(r, o))
            .unwrap_or_default();
        let relationship = array(&contact["relationship"])
            .filter(|r| !is_role(r))
            .find_map(|r| {
                let coding = &r["coding"][0];
                let code = coding["code"].as_str()?;
                // The v2 code when the coding is one (table 0063), else the one
                // the guide maps to this code.
                let v2 = if coding["system"] == "http://terminology.hl7.org/CodeSystem/v2-0063" {
                    Some(code)
                } else {
                    ConceptMap::Relationship.v2_code_of(code)
                }?;
                Some(format!("{}^^HL70063", escape(v2)))
            })
            .or_else(|| {
                array(&contact["relationship"])
                    .find(|r| !is_role(r))
                    .map(|r| cwe(r, o))
            })
            .unwrap_or_default();
        let phones = join_reps(array(&contact["telecom"]).map(xtn));
        let gender = contact["gender"]
            .as_str()
            .and_then(|g| ConceptMap::AdministrativeSex.v2_code_of(g))
            .unwrap_or_default();
        let mut f = vec![String::new(); 16];
        f[0] = "NK1".into();
        f[1] = set_id.to_string();
        f[2] = xpn(&contact["name"]);
        f[3] = relationship;
        f[4] = if contact["address"].is_object() {
            xad(&contact["address"])
        } else {
            String::new()
        };
        f[5] = phones;
        f[7] = role;
        f[8] = dtm(contact["period"]["start"].as_str().unwrap_or(""));
        f[9] = dtm(contact["period"]["end"].as_str().unwrap_or(""));
        f[15] = gender.to_string();
        trimmed(f)
    }

    /// AL1 from an AllergyIntolerance: type (AL1-2, from its category), allergen
    /// (AL1-3), severity (AL1-4, from its criticality), reactions (AL1-5), onset
    /// (AL1-6).
    pub(super) fn al1(&self, set_id: usize, a: usize) -> String {
        let o = self.options;
        let r = self.resource(a);
        let kind = array(&r["category"])
            .filter_map(Value::as_str)
            .find_map(|c| ConceptMap::AllergenType.v2_code_of(c))
            .unwrap_or("");
        let severity = r["criticality"]
            .as_str()
            .and_then(|c| ConceptMap::AllergySeverityCriticality.v2_code_of(c))
            .unwrap_or("");
        let reactions = join_reps(array(&r["reaction"]).flat_map(|reaction| {
            array(&reaction["manifestation"]).map(|m| {
                if m["coding"].is_array() {
                    cwe(m, o)
                } else {
                    // Text alone, as the v2 side sent it: AL1-5 is free text.
                    escape(m["text"].as_str().unwrap_or(""))
                }
            })
        }));
        let mut f = vec![String::new(); 7];
        f[0] = "AL1".into();
        f[1] = set_id.to_string();
        f[2] = kind.to_string();
        f[3] = cwe(&r["code"], o);
        f[4] = severity.to_string();
        f[5] = reactions;
        f[6] = dtm(r["onsetDateTime"].as_str().unwrap_or(""));
        trimmed(f)
    }

    /// DG1 from a Condition: code (DG1-3), onset (DG1-5), type (DG1-6, from the
    /// encounter's diagnosis use), recorded (DG1-19), identifier (DG1-20).
    pub(super) fn dg1(&self, set_id: usize, c: usize, encounter: Option<usize>) -> String {
        let o = self.options;
        let r = self.resource(c);
        let id = r["id"].as_str().unwrap_or("");
        let kind = encounter
            .map(|e| self.resource(e))
            .and_then(|e| {
                array(&e["diagnosis"]).find(|d| {
                    d["condition"]["reference"]
                        .as_str()
                        .is_some_and(|c| c == format!("Condition/{id}"))
                })
            })
            .and_then(|d| d["use"]["coding"][0]["code"].as_str())
            .and_then(|u| ConceptMap::DiagnosisType.v2_code_of(u))
            .unwrap_or("");
        let identifier = array(&r["identifier"])
            .next()
            .map(|i| {
                let value = escape(i["value"].as_str().unwrap_or(""));
                let namespace = super::datatypes::authority(i["system"].as_str().unwrap_or(""), o);
                if namespace.is_empty() || namespace.starts_with('&') {
                    value
                } else {
                    format!("{value}^{namespace}")
                }
            })
            .unwrap_or_default();
        let mut f = vec![String::new(); 21];
        f[0] = "DG1".into();
        f[1] = set_id.to_string();
        f[3] = cwe(&r["code"], o);
        f[5] = dtm(r["onsetDateTime"].as_str().unwrap_or(""));
        f[6] = kind.to_string();
        f[19] = dtm(r["recordedDate"].as_str().unwrap_or(""));
        f[20] = identifier;
        trimmed(f)
    }

    /// IN1 from a Coverage: plan (IN1-2), insurer (IN1-3, IN1-4 from its payor),
    /// group (IN1-8, IN1-9), period (IN1-12, IN1-13), plan type (IN1-15), policy
    /// number (IN1-36).
    pub(super) fn in1(&self, set_id: usize, c: usize) -> String {
        let r = self.resource(c);
        let class =
            |kind: &str| array(&r["class"]).find(|k| k["type"]["coding"][0]["code"] == kind);
        let plan = class("plan")
            .map(|k| {
                let name = k["name"].as_str().unwrap_or("");
                let mut out = format!(
                    "{}^{}",
                    escape(k["value"].as_str().unwrap_or("")),
                    escape(name)
                );
                while out.ends_with('^') {
                    out.pop();
                }
                out
            })
            .unwrap_or_default();
        let group = class("group");
        let payor = array(&r["payor"])
            .find_map(|p| self.resolve(p))
            .map(|i| self.resource(i));
        let insurer_id = payor
            .and_then(|p| p["identifier"][0]["value"].as_str())
            .unwrap_or("");
        let insurer_name = payor
            .and_then(|p| p["name"].as_str())
            .or_else(|| array(&r["payor"]).find_map(|p| p["display"].as_str()))
            .unwrap_or("");
        let policy = array(&r["identifier"])
            .find(|i| i["type"]["coding"][0]["code"] == "MB")
            .and_then(|i| i["value"].as_str())
            .or(r["subscriberId"].as_str())
            .unwrap_or("");
        let mut f = vec![String::new(); 37];
        f[0] = "IN1".into();
        f[1] = set_id.to_string();
        f[2] = plan;
        f[3] = escape(insurer_id);
        f[4] = escape(insurer_name);
        f[8] = escape(group.and_then(|g| g["value"].as_str()).unwrap_or(""));
        f[9] = escape(group.and_then(|g| g["name"].as_str()).unwrap_or(""));
        f[12] = dtm(r["period"]["start"].as_str().unwrap_or(""));
        f[13] = dtm(r["period"]["end"].as_str().unwrap_or(""));
        f[15] = escape(r["type"]["coding"][0]["code"].as_str().unwrap_or(""));
        f[36] = escape(policy);
        trimmed(f)
    }

    /// TQ1 from a MedicationRequest's timing and priority, when it has either:
    /// repeat pattern (TQ1-3, the timing's code, else made from frequency and
    /// period), duration (TQ1-6), start and end (TQ1-7, TQ1-8), priority (TQ1-9).
    pub(super) fn tq1(&self, m: usize) -> Option<String> {
        let r = self.resource(m);
        let dosage = &r["dosageInstruction"][0];
        let timing = &dosage["timing"];
        let repeat = &timing["repeat"];
        let as_needed = dosage["asNeededBoolean"] == true;
        let pattern = match timing["code"]["coding"][0]["code"].as_str() {
            Some(code) => {
                let display = timing["code"]["coding"][0]["display"]
                    .as_str()
                    .unwrap_or("");
                let mut out = format!("{}&{}&HL70335", escape(code), escape(display));
                if display.is_empty() {
                    out = format!("{}&&HL70335", escape(code));
                }
                out
            }
            None => repeat_code(repeat, as_needed)
                .map(|c| format!("{c}&&HL70335"))
                .unwrap_or_default(),
        };
        let duration = match (
            &repeat["boundsDuration"]["value"],
            repeat["boundsDuration"]["code"]
                .as_str()
                .or(repeat["boundsDuration"]["unit"].as_str()),
        ) {
            (Value::Number(n), unit) => {
                let unit = unit.map(escape).unwrap_or_default();
                if unit.is_empty() {
                    n.to_string()
                } else {
                    format!("{n}^{unit}")
                }
            }
            _ => String::new(),
        };
        let priority = match r["priority"].as_str() {
            Some("stat") => "S",
            Some("asap") => "A",
            Some("routine") => "R",
            Some("urgent") => "T",
            _ => "",
        };
        let mut f = vec![String::new(); 10];
        f[0] = "TQ1".into();
        f[1] = "1".into();
        f[3] = pattern;
        f[6] = duration;
        f[7] = dtm(repeat["boundsPeriod"]["start"].as_str().unwrap_or(""));
        f[8] = dtm(repeat["boundsPeriod"]["end"].as_str().unwrap_or(""));
        f[9] = priority.into();
        (f[2..].iter().any(|v| !v.is_empty())).then(|| trimmed(f))
    }
}

/// A repeat pattern (table 0335) for a Timing.repeat without a code: `BID`,
/// `Q4H`, `ONCE`..., with ` PRN` when as needed.
fn repeat_code(repeat: &Value, as_needed: bool) -> Option<String> {
    let number = |k: &str| repeat[k].as_u64();
    let unit = repeat["periodUnit"].as_str().unwrap_or("");
    let base = match (number("frequency"), number("period"), unit) {
        (None, _, _) if number("count") == Some(1) => Some("ONCE".to_string()),
        (Some(1), Some(1), "d") => Some("QD".to_string()),
        (Some(2), Some(1), "d") => Some("BID".to_string()),
        (Some(3), Some(1), "d") => Some("TID".to_string()),
        (Some(4), Some(1), "d") => Some("QID".to_string()),
        (Some(1), Some(2), "d") => Some("QOD".to_string()),
        (Some(n), Some(1), "d") => Some(format!("{n}ID")),
        (Some(1), Some(p), u) => {
            let letter = match u {
                "s" => "S",
                "min" => "M",
                "h" => "H",
                "d" => "D",
                "wk" => "W",
                "mo" => "L",
                _ => return None,
            };
            Some(format!("Q{p}{letter}"))
        }
        _ => None,
    };
    match (base, as_needed) {
        (Some(b), true) => Some(format!("{b} PRN")),
        (Some(b), false) => Some(b),
        (None, true) => Some("PRN".to_string()),
        (None, false) => None,
    }
}
