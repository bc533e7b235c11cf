//! One function per v2 segment made from a resource: PID, PV1, ORC, OBR,
//! OBX, RXE, RXA.

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
}
