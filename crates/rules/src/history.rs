//! The patient's recent record, as the rules need to see it. The engine
//! implements [`PatientHistory`] over the clinical repository (by enterprise
//! patient id, so results from several senders combine); tests use
//! [`InMemoryHistory`].

use std::collections::HashMap;

use crate::facts::{
    Allergy, AllergyStatus, ClinicalFacts, Code, Observation, PatientId, TestOrder,
};
use crate::time::Timestamp;

/// What the rules ask of the record. Facts from the message being
/// processed may or may not already be in it: the rules drop facts read
/// from the same message and segment, so either is right.
pub trait PatientHistory {
    /// Observations of `code` whose effective time is in `since..=until`.
    fn observations(
        &self,
        patient: &PatientId,
        code: &Code,
        since: Timestamp,
        until: Timestamp,
    ) -> Vec<Observation>;

    /// The allergies recorded active.
    fn active_allergies(&self, patient: &PatientId) -> Vec<Allergy>;

    /// Test orders (ordered or resulted) of `code` at or after `since`.
    fn test_orders(&self, patient: &PatientId, code: &Code, since: Timestamp) -> Vec<TestOrder>;

    /// The record as the resources it was read from (FHIR R4 JSON), for custom rules.
    /// A record that was not read from resources has none.
    fn resources(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }
}

/// A record kept in memory: facts are added message by message.
#[derive(Clone, Debug, Default)]
pub struct InMemoryHistory {
    patients: HashMap<PatientId, ClinicalFacts>,
    /// What [`PatientHistory::resources`] hands a custom rule (whatever the patient).
    resources: Vec<serde_json::Value>,
}

impl InMemoryHistory {
    pub fn new() -> InMemoryHistory {
        InMemoryHistory::default()
    }

    /// Adds a resource for custom rules to read (the built-in rules read facts).
    pub fn add_resource(&mut self, resource: serde_json::Value) {
        self.resources.push(resource);
    }

    /// Adds one message's facts to the patient's record. An allergy sent
    /// again replaces the earlier one (an IAM delete makes it inactive).
    pub fn record(&mut self, patient: &PatientId, facts: &ClinicalFacts) {
        let record = self.patients.entry(patient.clone()).or_default();
        record
            .observations
            .extend(facts.observations.iter().cloned());
        for allergy in &facts.allergies {
            let same = |a: &Allergy| {
                a.code.same_concept(&allergy.code)
                    || (a.code.code.is_empty()
                        && allergy.code.code.is_empty()
                        && a.code.text.eq_ignore_ascii_case(&allergy.code.text))
            };
            record.allergies.retain(|a| !same(a));
            record.allergies.push(allergy.clone());
        }
        record
            .medication_orders
            .extend(facts.medication_orders.iter().cloned());
        record.test_orders.extend(facts.test_orders.iter().cloned());
    }
}

impl PatientHistory for InMemoryHistory {
    fn observations(
        &self,
        patient: &PatientId,
        code: &Code,
        since: Timestamp,
        until: Timestamp,
    ) -> Vec<Observation> {
        self.patients
            .get(patient)
            .map(|r| {
                r.observations
                    .iter()
                    .filter(|o| o.code.same_concept(code))
                    .filter(|o| o.effective.is_some_and(|t| since <= t && t <= until))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn active_allergies(&self, patient: &PatientId) -> Vec<Allergy> {
        self.patients
            .get(patient)
            .map(|r| {
                r.allergies
                    .iter()
                    .filter(|a| a.status == AllergyStatus::Active)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn test_orders(&self, patient: &PatientId, code: &Code, since: Timestamp) -> Vec<TestOrder> {
        self.patients
            .get(patient)
            .map(|r| {
                r.test_orders
                    .iter()
                    .filter(|o| o.code.same_concept(code))
                    .filter(|o| o.time.is_some_and(|t| t >= since))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn resources(&self) -> Vec<serde_json::Value> {
        self.resources.clone()
    }
}
