//! Delta checks: a result that moved too far from the patient's previous
//! result of the same test within a window.

use crate::alert::{Alert, AlertKind, Evidence, Severity};
use crate::checks::{Rule, RuleInput};
use crate::checks::{label, number};
use crate::config::{ConfigError, DeltaCheckConfig, DeltaLimit, Direction, ShippedTables, merged};
use crate::facts::{LOINC, Observation, PatientId};
use crate::time::Timestamp;

// Differences of converted values carry rounding noise (1.3 - 1.0 is not
// 0.3 in binary); a change exactly at the limit is at it.
const TOLERANCE: f64 = 1e-9;

#[derive(Clone, Debug)]
pub struct DeltaCheck {
    checks: Vec<DeltaLimit>,
}

impl DeltaCheck {
    pub fn shipped() -> Result<DeltaCheck, ConfigError> {
        DeltaCheck::from_config(&DeltaCheckConfig::default())
    }

    pub fn from_config(config: &DeltaCheckConfig) -> Result<DeltaCheck, ConfigError> {
        let shipped = ShippedTables::get()?;
        Ok(DeltaCheck {
            checks: merged(&shipped.delta, config.shipped_checks, &config.checks, |r| {
                r.loinc.as_str()
            }),
        })
    }

    fn run(&self, input: &RuleInput<'_>) -> Vec<Alert> {
        let RuleInput {
            patient,
            facts,
            history,
            now,
        } = *input;
        let mut alerts = Vec::new();
        for current in &facts.observations {
            let Some(value) = current.actionable_number() else {
                continue;
            };
            if current.code.system != LOINC {
                continue;
            }
            let Some(limit) = self.checks.iter().find(|c| c.loinc == current.code.code) else {
                continue;
            };
            let at = current.effective.unwrap_or(now);
            // The latest earlier actionable result, from the record or from
            // earlier in this message.
            let earlier_here = facts
                .observations
                .iter()
                .take_while(|o| o.source != current.source)
                .filter(|o| o.code.same_concept(&current.code))
                .cloned();
            let previous = history
                .observations(patient, &current.code, at.minus(limit.window), at)
                .into_iter()
                .filter(|o| o.source.control_id != current.source.control_id)
                .chain(earlier_here)
                .filter(|o| {
                    o.effective
                        .is_some_and(|t| limit.window.contains(t, at) && t < at)
                })
                .filter(|o| o.actionable_number().is_some())
                .max_by_key(|o| o.effective);
            let Some(previous) = previous else {
                continue;
            };
            let Some(before) = previous.actionable_number() else {
                continue;
            };
            if let Some(direction) = exceeded(limit, before, value) {
                alerts.push(alert(
                    patient, limit, &previous, current, before, value, direction, at,
                ));
            }
        }
        alerts
    }
}

/// The direction of a change that reaches the limit, if it does.
fn exceeded(limit: &DeltaLimit, before: f64, after: f64) -> Option<&'static str> {
    let change = after - before;
    let reaches = |amount: f64| {
        let slack = TOLERANCE * amount.abs().max(1.0);
        limit.absolute.is_some_and(|a| amount >= a - slack)
            || limit
                .relative
                .is_some_and(|r| before != 0.0 && amount / before.abs() >= r - TOLERANCE)
    };
    let rise = matches!(limit.direction, Direction::Rise | Direction::Either)
        && change > 0.0
        && reaches(change);
    let fall = matches!(limit.direction, Direction::Fall | Direction::Either)
        && change < 0.0
        && reaches(-change);
    if rise {
        Some("rise")
    } else if fall {
        Some("fall")
    } else {
        None
    }
}

#[allow(clippy::too_many_arguments)]
fn alert(
    patient: &PatientId,
    limit: &DeltaLimit,
    previous: &Observation,
    current: &Observation,
    before: f64,
    after: f64,
    direction: &str,
    at: Timestamp,
) -> Alert {
    let name = if limit.name.is_empty() {
        label(current)
    } else {
        limit.name.clone()
    };
    let hours = previous
        .effective
        .map(|t| (at.unix_seconds() - t.unix_seconds()) as f64 / 3600.0)
        .unwrap_or_default();
    Alert::new(
        AlertKind::DeltaCheck,
        Severity::Warning,
        patient,
        format!("{}:{direction}", limit.loinc),
        format!(
            "{name} {direction} from {} to {} {} in {} h (delta limit {}{} within {})",
            number(before),
            number(after),
            limit.unit,
            number(hours),
            limit
                .absolute
                .map(|a| format!("{} {}", number(a), limit.unit))
                .unwrap_or_default(),
            limit
                .relative
                .map(|r| format!(
                    "{}{}%",
                    if limit.absolute.is_some() { " or " } else { "" },
                    number(r * 100.0)
                ))
                .unwrap_or_default(),
            limit.window
        ),
        vec![
            Evidence::Observation(previous.clone()),
            Evidence::Observation(current.clone()),
        ],
        at,
    )
}

impl Rule for DeltaCheck {
    fn kind(&self) -> AlertKind {
        AlertKind::DeltaCheck
    }

    fn check(&self, input: &RuleInput<'_>) -> Vec<Alert> {
        self.run(input)
    }
}
