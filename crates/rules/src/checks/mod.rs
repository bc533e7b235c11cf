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

use std::path::Path;

use crate::alert::{Alert, AlertKind, Suppression};
use crate::config::{ConfigError, RulesConfig};
use crate::custom::{CustomRule, RuleError, record_json};
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
    /// The custom rules (scripts), run by [`Rules::evaluate_message`] only.
    custom: Vec<CustomRule>,
    suppression: Suppression,
}

impl Rules {
    /// Builds the rules from `config` (checked first) and the shipped tables; custom
    /// rules' script files are read relative to the working directory.
    pub fn new(config: &RulesConfig) -> Result<Rules, ConfigError> {
        Rules::load(config, Path::new("."))
    }

    /// Builds the rules from `config` (checked first) and the shipped tables, reading
    /// and compiling the custom rules' scripts (`script_file` relative to `base`: the
    /// configuration file's directory). A script that cannot be read or does not
    /// compile is an error naming its key (`custom[0].script_file`) and line.
    pub fn load(config: &RulesConfig, base: &Path) -> Result<Rules, ConfigError> {
        config.validate()?;
        let mut enabled: Vec<Box<dyn Rule>> = Vec::new();
        let mut custom = Vec::new();
        if config.enabled {
            for (i, rule) in config.custom.iter().enumerate() {
                custom.push(CustomRule::load(rule, base, &format!("custom[{i}]"))?);
            }
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
        let custom_windows: Vec<(AlertKind, crate::time::Window)> = custom
            .iter()
            .map(|c| (c.kind(), c.suppress_for()))
            .collect();
        Ok(Rules {
            enabled,
            custom,
            suppression: Suppression::new(
                [
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
                ]
                .into_iter()
                .chain(custom_windows),
            ),
        })
    }

    /// The rules that run (built-in, then custom).
    pub fn kinds(&self) -> Vec<AlertKind> {
        self.enabled
            .iter()
            .map(|r| r.kind())
            .chain(self.custom.iter().map(CustomRule::kind))
            .collect()
    }

    /// Whether any custom rule runs.
    pub fn has_custom(&self) -> bool {
        !self.custom.is_empty()
    }

    /// Every rule on one message, the built-in ones on its `facts` and the custom ones
    /// on the message itself with the record's resources, then suppression against
    /// `previous`. A custom rule that fails (its script throws, runs past its limits,
    /// returns what is not an alert) fails the message's rule evaluation: the error
    /// names the rule and, for a script error, the script's line.
    pub fn evaluate_message(
        &self,
        patient: &PatientId,
        facts: &ClinicalFacts,
        message: &hl7v2::OwnedMessage,
        history: &dyn PatientHistory,
        now: Timestamp,
        previous: &[Alert],
    ) -> Result<Vec<Alert>, RuleError> {
        let mut alerts = self.evaluate(patient, facts, history, now);
        if !self.custom.is_empty() {
            let record = record_json(patient, history.resources());
            for rule in &self.custom {
                alerts.extend(rule.run(patient, message, &record, now)?);
            }
        }
        Ok(self.suppression.filter(alerts, previous))
    }

    /// Every alert the built-in rules raise on the message's `facts` for
    /// `patient`, before suppression. `now` stands in for a fact's time when the
    /// message has none. Custom rules need the message: [`Rules::evaluate_message`].
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

    /// [`Rules::evaluate`] (the built-in rules), then the alerts `previous` (the
    /// patient's recent alerts) do not suppress.
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
