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

/// What every rule is given for one message.
#[derive(Clone, Copy)]
pub struct RuleInput<'a> {
    /// The enterprise patient the message is about.
    pub patient: &'a PatientId,
    /// The facts read from the message.
    pub facts: &'a ClinicalFacts,
    /// The patient's recent record.
    pub history: &'a dyn PatientHistory,
    /// Stands in for a fact's time when the message has none.
    pub now: Timestamp,
}

/// A rule kind: one module, one type, this trait.
pub trait Rule: std::fmt::Debug + Send + Sync {
    /// Which rule this is (its name and version go with every alert).
    fn kind(&self) -> AlertKind;

    /// The alerts the message raises, before suppression.
    fn check(&self, input: &RuleInput<'_>) -> Vec<Alert>;
}

/// The rules a configuration turns on, ready to run.
#[derive(Debug)]
pub struct Rules {
    enabled: Vec<Box<dyn Rule>>,
    suppression: Suppression,
}

impl Rules {
    /// Builds the rules from `config` (checked first) and the shipped tables.
    pub fn new(config: &RulesConfig) -> Result<Rules, ConfigError> {
        config.validate()?;
        let mut enabled: Vec<Box<dyn Rule>> = Vec::new();
        if config.enabled {
            if config.critical_values.enabled {
                enabled.push(Box::new(CriticalValues::from_config(
                    &config.critical_values,
                )?));
            }
            if config.delta_check.enabled {
                enabled.push(Box::new(DeltaCheck::from_config(&config.delta_check)?));
            }
            if config.sepsis_screen.enabled {
                enabled.push(Box::new(SepsisScreen::new(config.sepsis_screen.clone())));
            }
            if config.allergy_medication.enabled {
                enabled.push(Box::new(AllergyMedication::from_config(
                    &config.allergy_medication,
                )?));
            }
            if config.duplicate_test.enabled {
                enabled.push(Box::new(DuplicateTest::from_config(
                    &config.duplicate_test,
                )?));
            }
        }
        Ok(Rules {
            enabled,
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

    /// The rules that run.
    pub fn kinds(&self) -> Vec<AlertKind> {
        self.enabled.iter().map(|r| r.kind()).collect()
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
        let input = RuleInput {
            patient,
            facts,
            history,
            now,
        };
        self.enabled
            .iter()
            .flat_map(|rule| rule.check(&input))
            .collect()
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
