//! The rules, each a plain type with a `check`, and [`Rules`], which runs
//! the ones a configuration turns on.

mod allergy;
mod critical;
mod delta;
mod duplicate;
mod sepsis;

pub use allergy::AllergyMedication;
pub use critical::CriticalValues;
pub use delta::DeltaCheck;
pub use duplicate::DuplicateTest;
pub use sepsis::SepsisScreen;

use crate::alert::{Alert, AlertKind, Suppression};
use crate::config::{ConfigError, RulesConfig};
use crate::facts::{ClinicalFacts, Observation, PatientId};
use crate::history::PatientHistory;
use crate::time::Timestamp;

/// The rules a configuration turns on, ready to run.
#[derive(Clone, Debug)]
pub struct Rules {
    critical: Option<CriticalValues>,
    delta: Option<DeltaCheck>,
    sepsis: Option<SepsisScreen>,
    allergy: Option<AllergyMedication>,
    duplicate: Option<DuplicateTest>,
    suppression: Suppression,
}

impl Rules {
    /// Builds the rules from `config` (checked first) and the shipped tables.
    pub fn new(config: &RulesConfig) -> Result<Rules, ConfigError> {
        config.validate()?;
        let on = |enabled: bool| config.enabled && enabled;
        Ok(Rules {
            critical: on(config.critical_values.enabled)
                .then(|| CriticalValues::from_config(&config.critical_values))
                .transpose()?,
            delta: on(config.delta_check.enabled)
                .then(|| DeltaCheck::from_config(&config.delta_check))
                .transpose()?,
            sepsis: on(config.sepsis_screen.enabled)
                .then(|| SepsisScreen::new(config.sepsis_screen.clone())),
            allergy: on(config.allergy_medication.enabled)
                .then(|| AllergyMedication::from_config(&config.allergy_medication))
                .transpose()?,
            duplicate: on(config.duplicate_test.enabled)
                .then(|| DuplicateTest::from_config(&config.duplicate_test))
                .transpose()?,
            suppression: Suppression::new([
                (
                    AlertKind::CriticalValue,
                    config.critical_values.suppress_for,
                ),
                (AlertKind::DeltaCheck, config.delta_check.suppress_for),
                (AlertKind::SepsisScreen, config.sepsis_screen.suppress_for),
                (
                    AlertKind::AllergyMedication,
                    config.allergy_medication.suppress_for,
                ),
                (AlertKind::DuplicateTest, config.duplicate_test.suppress_for),
            ]),
        })
    }

    /// Every alert the message's `facts` raise for `patient`, before
    /// suppression. `now` stands in for a fact's time when the message has
    /// none.
    pub fn evaluate(
        &self,
        patient: &PatientId,
        facts: &ClinicalFacts,
        history: &dyn PatientHistory,
        now: Timestamp,
    ) -> Vec<Alert> {
        let mut alerts = Vec::new();
        if let Some(rule) = &self.critical {
            alerts.extend(rule.check(patient, facts, now));
        }
        if let Some(rule) = &self.delta {
            alerts.extend(rule.check(patient, facts, history, now));
        }
        if let Some(rule) = &self.sepsis {
            alerts.extend(rule.check(patient, facts, history, now));
        }
        if let Some(rule) = &self.allergy {
            alerts.extend(rule.check(patient, facts, history, now));
        }
        if let Some(rule) = &self.duplicate {
            alerts.extend(rule.check(patient, facts, history, now));
        }
        alerts
    }

    /// [`Rules::evaluate`], then the alerts `previous` (the patient's
    /// recent alerts) do not suppress.
    pub fn evaluate_and_suppress(
        &self,
        patient: &PatientId,
        facts: &ClinicalFacts,
        history: &dyn PatientHistory,
        now: Timestamp,
        previous: &[Alert],
    ) -> Vec<Alert> {
        self.suppression
            .filter(self.evaluate(patient, facts, history, now), previous)
    }

    pub fn suppression(&self) -> &Suppression {
        &self.suppression
    }
}

/// The observations of the record and of the message, each once (the
/// record may already hold the message's own).
pub(crate) fn combined(
    from_history: Vec<Observation>,
    current: &[&Observation],
) -> Vec<Observation> {
    let mut all: Vec<Observation> = from_history
        .into_iter()
        .filter(|h| !current.iter().any(|c| c.source == h.source))
        .collect();
    all.extend(current.iter().map(|&c| c.clone()));
    all
}

/// A number for a summary: no more digits than it needs.
pub(crate) fn number(value: f64) -> String {
    let rounded = (value * 100.0).round() / 100.0;
    format!("{rounded}")
}

/// The test's name for a summary: the sender's text, else the code.
pub(crate) fn label(o: &Observation) -> String {
    if o.code.text.is_empty() {
        format!("LOINC {}", o.code.code)
    } else {
        o.code.text.clone()
    }
}
