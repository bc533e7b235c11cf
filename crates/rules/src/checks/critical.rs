//! Critical values: a result beyond its panic limit, or flagged critical by
//! the laboratory.

use crate::alert::{Alert, AlertKind, Evidence, Severity};
use crate::checks::{Rule, RuleInput};
use crate::checks::{label, number};
use crate::config::{ConfigError, CriticalLimit, CriticalValuesConfig, ShippedTables, merged};
use crate::facts::{LOINC, Observation, ObservationValue, PatientId};
use crate::time::Timestamp;

#[derive(Clone, Debug)]
pub struct CriticalValues {
    limits: Vec<CriticalLimit>,
    abnormal_flags: bool,
}

impl CriticalValues {
    /// The shipped table, with OBX-8 flags honoured.
    pub fn shipped() -> Result<CriticalValues, ConfigError> {
        CriticalValues::from_config(&CriticalValuesConfig::default())
    }

    pub fn from_config(config: &CriticalValuesConfig) -> Result<CriticalValues, ConfigError> {
        let shipped = ShippedTables::get()?;
        Ok(CriticalValues {
            limits: merged(
                &shipped.critical,
                config.shipped_limits,
                &config.limits,
                |r| r.loinc.as_str(),
            ),
            abnormal_flags: config.abnormal_flags,
        })
    }

    pub fn limits(&self) -> &[CriticalLimit] {
        &self.limits
    }

    /// One alert per critical result in `facts`.
    fn run(&self, input: &RuleInput<'_>) -> Vec<Alert> {
        let RuleInput {
            patient,
            facts,
            now,
            ..
        } = *input;
        facts
            .observations
            .iter()
            .filter(|o| o.status.is_actionable())
            .filter_map(|o| self.check_one(patient, o, now))
            .collect()
    }

    fn check_one(&self, patient: &PatientId, o: &Observation, now: Timestamp) -> Option<Alert> {
        let at = o.effective.unwrap_or(now);
        let limit = (o.code.system == LOINC)
            .then(|| self.limits.iter().find(|l| l.loinc == o.code.code))
            .flatten();
        if let (Some(limit), Some(value)) = (limit, o.actionable_number()) {
            for (threshold, side) in [(limit.low, "low"), (limit.high, "high")] {
                if let Some(threshold) = threshold
                    && threshold.is_met_by(value)
                {
                    let name = if limit.name.is_empty() {
                        label(o)
                    } else {
                        limit.name.clone()
                    };
                    return Some(Alert::new(
                        AlertKind::CriticalValue,
                        Severity::Critical,
                        patient,
                        format!("{}:{side}", limit.loinc),
                        format!(
                            "Critical {side} result: {name} {} {} (critical {threshold} {})",
                            number(value),
                            limit.unit,
                            limit.unit
                        ),
                        vec![Evidence::Observation(o.clone())],
                        at,
                    ));
                }
            }
        }
        if !self.abnormal_flags {
            return None;
        }
        let flag = o.flags.iter().find(|f| f.is_critical())?;
        let shown = match &o.value {
            ObservationValue::Quantity(q) => format!("{} {}", number(q.value), q.unit),
            ObservationValue::Text(t) => t.clone(),
        };
        Some(Alert::new(
            AlertKind::CriticalValue,
            Severity::Critical,
            patient,
            format!("{}:flag-{}", o.code.code, flag.as_hl7()),
            format!(
                "Critical result flagged {} by the laboratory: {} {}",
                flag.as_hl7(),
                label(o),
                shown.trim()
            ),
            vec![Evidence::Observation(o.clone())],
            at,
        ))
    }
}

impl Rule for CriticalValues {
    fn kind(&self) -> AlertKind {
        AlertKind::CriticalValue
    }

    fn check(&self, input: &RuleInput<'_>) -> Vec<Alert> {
        self.run(input)
    }
}
