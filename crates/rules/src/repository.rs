//! The patient's recent record, read from the clinical repository's tables (component
//! `fhir_repo` in the same store, see `fhir_repo`'s SCHEMA) as the rules see it
//! ([`PatientHistory`]). The engine's rules stage and the API's CDS Hooks use it.
//!
//! The patient's repository Patients are those carrying the enterprise identifier
//! (every sender's), or the one Patient without the index, with every Patient merged
//! into one of them. Their current Observations (effective within the look-back),
//! AllergyIntolerances, DiagnosticReports (a resulted test) and ServiceRequests (an
//! ordered or cancelled test) become the rules' facts; a resource written by the
//! message being decided is left out (it is that message's facts, read from the
//! message itself). Each fact's source names the resource (`Observation/abc`) and the
//! journal message that wrote it (`message 17`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use store::rusqlite::{Connection, params};

use crate::facts::{
    AbnormalFlag, Allergy, AllergyStatus, ClinicalFacts, Code, LOINC, Observation,
    ObservationStatus, ObservationValue, OrderState, PatientId, RXNORM, Source, TestOrder,
};
use crate::history::{InMemoryHistory, PatientHistory};
use crate::time::Timestamp;
use crate::units::{Quantity, to_rule_unit};

/// The patient a record and its alerts belong to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum PatientKey {
    /// The patient index's enterprise id, under its identifier system.
    Enterprise { system: String, id: String },
    /// One repository Patient (without the patient index).
    Patient(String),
}

impl PatientKey {
    /// The id the alerts carry.
    pub fn alert_patient(&self) -> PatientId {
        match self {
            PatientKey::Enterprise { id, .. } => PatientId(id.clone()),
            PatientKey::Patient(id) => PatientId(format!("Patient/{id}")),
        }
    }
}

/// One resource laid over the stored ones: type, id, content.
pub type Overlaid<'a> = (&'a str, &'a str, &'a Value);

/// The resources the rules read, by type and id, each with the message that wrote it.
pub struct RepositoryHistory {
    resources: BTreeMap<(String, String), (Option<i64>, Value)>,
    /// Built from `resources` on first use.
    facts: std::sync::OnceLock<InMemoryHistory>,
    patient: PatientId,
}

const TYPES: &str = "'Observation', 'AllergyIntolerance', 'DiagnosticReport', 'ServiceRequest'";
/// The same types, to test a laid-over resource without building a string.
const TYPE_NAMES: [&str; 4] = [
    "Observation",
    "AllergyIntolerance",
    "DiagnosticReport",
    "ServiceRequest",
];

impl RepositoryHistory {
    /// Reads the patient's record from the repository, without what message `current`
    /// wrote. `own_patient` is the message's own Patient id (it may not be stored yet).
    pub fn load(
        conn: &Connection,
        key: &PatientKey,
        own_patient: Option<&str>,
        current: i64,
        since: Timestamp,
    ) -> store::Result<RepositoryHistory> {
        let mut patients: BTreeSet<String> = BTreeSet::new();
        match key {
            PatientKey::Enterprise { system, id } => {
                let mut stmt = conn.prepare_cached(
                    "SELECT id FROM fhir_token WHERE type = 'Patient' AND param = 'identifier' \
                     AND code = ?2 AND system = ?1",
                )?;
                for row in stmt.query_map(params![system, id], |r| r.get::<_, String>(0))? {
                    patients.insert(row?);
                }
            }
            PatientKey::Patient(id) => {
                patients.insert(id.clone());
            }
        }
        if let Some(id) = own_patient {
            patients.insert(id.to_owned());
        }
        // Patients merged into these, through chains of merges.
        let mut frontier: Vec<String> = patients.iter().cloned().collect();
        while let Some(survivor) = frontier.pop() {
            let mut stmt =
                conn.prepare_cached("SELECT merged FROM fhir_merges WHERE survivor = ?1")?;
            for row in stmt.query_map([&survivor], |r| r.get::<_, String>(0))? {
                let merged = row?;
                if patients.insert(merged.clone()) {
                    frontier.push(merged);
                }
            }
        }
        let mut resources = BTreeMap::new();
        let sql = format!(
            "SELECT r.type, r.id, v.message_id, v.content FROM fhir_resources r \
             JOIN fhir_versions v ON v.type = r.type AND v.id = r.id AND v.version = r.version \
             WHERE r.patient = ?1 AND r.type IN ({TYPES}) \
             AND (r.type NOT IN ('Observation', 'DiagnosticReport') OR EXISTS ( \
                 SELECT 1 FROM fhir_date d WHERE d.type = r.type AND d.id = r.id \
                 AND d.param = 'date' AND d.hi >= ?2))"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        for patient in &patients {
            let rows = stmt.query_map(params![patient, since.unix_seconds()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?;
            for row in rows {
                let (kind, id, message, content) = row?;
                if message == Some(current) {
                    continue;
                }
                // A stored resource that is not JSON is the repository's problem, not
                // this message's: it is left out of the record.
                if let Ok(value) = serde_json::from_str::<Value>(&content) {
                    resources.insert((kind, id), (message, value));
                }
            }
        }
        Ok(RepositoryHistory {
            resources,
            facts: std::sync::OnceLock::new(),
            patient: key.alert_patient(),
        })
    }

    /// Whether the record holds resources of type `kind` (the others are not laid over).
    pub fn reads(kind: &str) -> bool {
        TYPE_NAMES.contains(&kind)
    }

    /// Lays the resources of a decided but unwritten message over the stored ones: a
    /// resource a later message wrote replaces the stored version.
    pub fn overlay<'a>(&mut self, message: i64, resources: impl IntoIterator<Item = Overlaid<'a>>) {
        for (kind, id, resource) in resources {
            if RepositoryHistory::reads(kind) {
                self.resources.insert(
                    (kind.to_owned(), id.to_owned()),
                    (Some(message), resource.clone()),
                );
            }
        }
        self.facts = std::sync::OnceLock::new();
    }

    fn history(&self) -> &InMemoryHistory {
        self.facts.get_or_init(|| {
            let mut facts = ClinicalFacts::default();
            for ((kind, id), (message, resource)) in &self.resources {
                let source = Source {
                    control_id: message.map_or_else(String::new, |m| format!("message {m}")),
                    segment: format!("{kind}/{id}"),
                    field: String::new(),
                };
                match kind.as_str() {
                    "Observation" => facts.observations.extend(observation(resource, source)),
                    "AllergyIntolerance" => facts.allergies.extend(allergy(resource, source)),
                    "DiagnosticReport" => facts.test_orders.extend(report(resource, source)),
                    "ServiceRequest" => facts.test_orders.extend(request(resource, source)),
                    _ => {}
                }
            }
            let mut history = InMemoryHistory::new();
            history.record(&self.patient, &facts);
            history
        })
    }

    /// The facts read from the record (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

impl PatientHistory for RepositoryHistory {
    fn observations(
        &self,
        _patient: &PatientId,
        code: &Code,
        since: Timestamp,
        until: Timestamp,
    ) -> Vec<Observation> {
        self.history()
            .observations(&self.patient, code, since, until)
    }

    fn active_allergies(&self, _patient: &PatientId) -> Vec<Allergy> {
        self.history().active_allergies(&self.patient)
    }

    fn test_orders(&self, _patient: &PatientId, code: &Code, since: Timestamp) -> Vec<TestOrder> {
        self.history().test_orders(&self.patient, code, since)
    }

    fn resources(&self) -> Vec<Value> {
        self.resources.values().map(|(_, r)| r.clone()).collect()
    }
}

/// A CodeableConcept as the rules' code: its LOINC or RxNorm coding when it has one,
/// else its first coding, else its text.
pub fn code_of(concept: &Value) -> Code {
    let text = concept["text"].as_str().unwrap_or_default();
    let codings = concept["coding"].as_array().cloned().unwrap_or_default();
    let code = |c: &Value| {
        Code::new(
            c["system"].as_str().unwrap_or_default(),
            c["code"].as_str().unwrap_or_default(),
            c["display"].as_str().unwrap_or(text),
        )
    };
    codings
        .iter()
        .map(code)
        .find(|c| c.system == LOINC || c.system == RXNORM)
        .or_else(|| codings.first().map(code))
        .unwrap_or_else(|| Code::new("", "", text))
}

fn time_of(value: &Value) -> Option<Timestamp> {
    let text = value.as_str()?;
    datetime::fhir::parse(text).map(|r| Timestamp::from_unix_seconds(r.lo))
}

fn observation(resource: &Value, source: Source) -> Option<Observation> {
    let code = code_of(&resource["code"]);
    let value = if let Some(q) = resource.get("valueQuantity") {
        let unit = q["code"]
            .as_str()
            .or_else(|| q["unit"].as_str())
            .unwrap_or_default();
        ObservationValue::Quantity(Quantity {
            value: q["value"].as_f64()?,
            unit: unit.to_owned(),
        })
    } else {
        ObservationValue::Text(resource["valueString"].as_str()?.to_owned())
    };
    let normalised = match &value {
        ObservationValue::Quantity(q) if code.system == LOINC => {
            to_rule_unit(&code.code, q.value, &q.unit).ok().flatten()
        }
        _ => None,
    };
    let flags = resource["interpretation"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|i| i["coding"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["code"].as_str().map(AbnormalFlag::from_hl7))
        .collect();
    let status = match resource["status"].as_str().unwrap_or_default() {
        "final" => ObservationStatus::Final,
        "preliminary" => ObservationStatus::Preliminary,
        "amended" | "corrected" => ObservationStatus::Corrected,
        "cancelled" => ObservationStatus::Cancelled,
        "entered-in-error" => ObservationStatus::Deleted,
        other => ObservationStatus::Other(other.to_owned()),
    };
    let effective = time_of(&resource["effectiveDateTime"])
        .or_else(|| time_of(&resource["effectiveInstant"]))
        .or_else(|| time_of(&resource["effectivePeriod"]["start"]));
    Some(Observation {
        code,
        value,
        normalised,
        flags,
        effective,
        status,
        order_code: None,
        source,
    })
}

fn allergy(resource: &Value, source: Source) -> Option<Allergy> {
    let code = code_of(&resource["code"]);
    if code.code.is_empty() && code.text.is_empty() {
        return None;
    }
    let clinical = resource["clinicalStatus"]["coding"][0]["code"]
        .as_str()
        .unwrap_or("active");
    let verification = resource["verificationStatus"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default();
    let status = if clinical == "active" && !matches!(verification, "refuted" | "entered-in-error")
    {
        AllergyStatus::Active
    } else {
        AllergyStatus::Inactive
    };
    let allergy_type = match resource["category"][0].as_str() {
        Some("medication") => "DA",
        Some("food") => "FA",
        Some("environment") => "EA",
        _ => "",
    };
    Some(Allergy {
        code,
        group: None,
        allergy_type: allergy_type.to_owned(),
        status,
        source,
    })
}

fn placer(resource: &Value) -> Option<String> {
    resource["identifier"]
        .as_array()?
        .iter()
        .find(|i| {
            i["type"]["coding"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["code"] == "PLAC"))
        })
        .and_then(|i| i["value"].as_str())
        .map(str::to_owned)
}

/// A DiagnosticReport: a resulted test (OBR-4 at OBR-7).
fn report(resource: &Value, source: Source) -> Option<TestOrder> {
    let code = code_of(&resource["code"]);
    if code.code.is_empty() {
        return None;
    }
    let state = match resource["status"].as_str().unwrap_or_default() {
        "cancelled" | "entered-in-error" => OrderState::Cancelled,
        _ => OrderState::Resulted,
    };
    Some(TestOrder {
        code,
        time: time_of(&resource["effectiveDateTime"])
            .or_else(|| time_of(&resource["effectivePeriod"]["start"]))
            .or_else(|| time_of(&resource["issued"])),
        placer_order_number: placer(resource),
        state,
        source,
    })
}

/// A ServiceRequest: an ordered or cancelled test. A completed one is left to its
/// DiagnosticReport, and one whose state is unknown (the OBR of a result without an
/// ORC) too.
fn request(resource: &Value, source: Source) -> Option<TestOrder> {
    let code = code_of(&resource["code"]);
    if code.code.is_empty() {
        return None;
    }
    let state = match resource["status"].as_str().unwrap_or_default() {
        "active" | "draft" | "on-hold" => OrderState::Ordered,
        "revoked" | "entered-in-error" => OrderState::Cancelled,
        _ => return None,
    };
    Some(TestOrder {
        code,
        time: time_of(&resource["authoredOn"])
            .or_else(|| time_of(&resource["occurrenceDateTime"]))
            .or_else(|| time_of(&resource["meta"]["lastUpdated"])),
        placer_order_number: placer(resource),
        state,
        source,
    })
}
