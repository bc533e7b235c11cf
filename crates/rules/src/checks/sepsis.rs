//! The sepsis screen: SIRS criteria with a raised lactate, and qSOFA, from
//! vital signs and laboratory results seen within a window.
//!
//! SIRS (Bone et al., ACCP/SCCM Consensus Conference, Chest
//! 1992;101:1644-1655): temperature > 38 °C or < 36 °C; heart rate > 90/min;
//! respiratory rate > 20/min or PaCO2 < 32 mmHg; white cells > 12 or < 4
//! x10^3/uL (the > 10% immature band form criterion is not read: bands are
//! rarely sent under one code). Lactate at or above 2 mmol/L, as the
//! project's issue specifies; Sepsis-3 (septic shock) and the Surviving
//! Sepsis Campaign's bundle (remeasure) both draw the line at > 2 mmol/L,
//! one step above, and `lactate_at_least` moves it.
//!
//! qSOFA (Singer et al., Sepsis-3, JAMA 2016;315:801-810; Seymour et al.,
//! JAMA 2016;315:762-774): respiratory rate >= 22/min, systolic pressure
//! <= 100 mmHg, altered mentation, read here as a Glasgow coma score below
//! `glasgow_below` (15: any alteration), the only coding of mentation the
//! rules recognise.

use crate::alert::{Alert, AlertKind, Evidence, Severity};
use crate::checks::{Rule, RuleInput};
use crate::checks::{combined, number};
use crate::config::SepsisScreenConfig;
use crate::facts::{Code, Observation, PatientId};
use crate::time::Timestamp;

const TEMPERATURE: &[&str] = &["8310-5", "8331-1", "8332-9", "8333-7", "8328-7"];
const HEART_RATE: &[&str] = &["8867-4"];
const RESPIRATORY_RATE: &[&str] = &["9279-1"];
const PACO2: &[&str] = &["2019-8"];
const WHITE_CELLS: &[&str] = &["6690-2", "26464-8"];
const LACTATE: &[&str] = &["2524-7", "32693-4", "2518-9", "19240-1"];
const SYSTOLIC: &[&str] = &["8480-6"];
const GLASGOW: &[&str] = &["9269-2"];

/// One criterion: its name, the codes it reads and the test a value passes.
struct Criterion {
    name: &'static str,
    codes: &'static [&'static str],
    met: fn(f64, &SepsisScreenConfig) -> bool,
}

const SIRS: &[&[Criterion]] = &[
    &[Criterion {
        name: "temperature",
        codes: TEMPERATURE,
        met: |v, _| !(36.0..=38.0).contains(&v),
    }],
    &[Criterion {
        name: "heart rate",
        codes: HEART_RATE,
        met: |v, _| v > 90.0,
    }],
    &[
        Criterion {
            name: "respiratory rate",
            codes: RESPIRATORY_RATE,
            met: |v, _| v > 20.0,
        },
        Criterion {
            name: "PaCO2",
            codes: PACO2,
            met: |v, _| v < 32.0,
        },
    ],
    &[Criterion {
        name: "white cells",
        codes: WHITE_CELLS,
        met: |v, _| !(4.0..=12.0).contains(&v),
    }],
];

const LACTATE_CRITERION: Criterion = Criterion {
    name: "lactate",
    codes: LACTATE,
    met: |v, c| v >= c.lactate_at_least - 1e-9,
};

const QSOFA: &[&[Criterion]] = &[
    &[Criterion {
        name: "respiratory rate",
        codes: RESPIRATORY_RATE,
        met: |v, _| v >= 22.0,
    }],
    &[Criterion {
        name: "systolic pressure",
        codes: SYSTOLIC,
        met: |v, _| v <= 100.0,
    }],
    &[Criterion {
        name: "Glasgow coma score",
        codes: GLASGOW,
        met: |v, c| v < f64::from(c.glasgow_below),
    }],
];

#[derive(Clone, Debug)]
pub struct SepsisScreen {
    config: SepsisScreenConfig,
}

impl SepsisScreen {
    pub fn new(config: SepsisScreenConfig) -> SepsisScreen {
        SepsisScreen { config }
    }

    /// Runs when the message carries a vital sign or result the screen
    /// reads; looks back `window` from the newest of them.
    fn run(&self, input: &RuleInput<'_>) -> Vec<Alert> {
        let RuleInput {
            patient,
            facts,
            history,
            now,
        } = *input;
        let relevant: Vec<&Observation> = facts
            .observations
            .iter()
            .filter(|o| o.status.is_actionable() && is_screened(o))
            .collect();
        let Some(at) = relevant.iter().map(|o| o.effective.unwrap_or(now)).max() else {
            return Vec::new();
        };
        let since = at.minus(self.config.window);
        let seen = |criterion: &Criterion| -> Option<Observation> {
            let mut found: Vec<Observation> = Vec::new();
            for code in criterion.codes {
                let here: Vec<&Observation> = relevant
                    .iter()
                    .copied()
                    .filter(|o| o.code.is_loinc(code))
                    .collect();
                found.extend(combined(
                    history.observations(patient, &Code::loinc(code), since, at),
                    &here,
                ));
            }
            found
                .into_iter()
                .filter(|o| o.effective.unwrap_or(now) >= since && o.effective.unwrap_or(now) <= at)
                .filter(|o| {
                    o.actionable_number()
                        .is_some_and(|v| (criterion.met)(v, &self.config))
                })
                .max_by_key(|o| o.effective)
        };
        let met = |criteria: &[&[Criterion]]| -> Vec<(&'static str, Observation)> {
            criteria
                .iter()
                .filter_map(|alternatives| {
                    alternatives
                        .iter()
                        .find_map(|c| seen(c).map(|o| (c.name, o)))
                })
                .collect()
        };
        let mut alerts = Vec::new();
        let sirs = met(SIRS);
        if sirs.len() >= usize::from(self.config.sirs_at_least)
            && let Some(lactate) = seen(&LACTATE_CRITERION)
        {
            let mut evidence = sirs.clone();
            evidence.push(("lactate", lactate));
            alerts.push(self.alert(
                patient,
                "sirs-lactate",
                format!(
                    "Sepsis screen positive: SIRS {} of 4 with lactate",
                    sirs.len()
                ),
                evidence,
                at,
            ));
        }
        if self.config.qsofa {
            let qsofa = met(QSOFA);
            if qsofa.len() >= usize::from(self.config.qsofa_at_least) {
                alerts.push(self.alert(
                    patient,
                    "qsofa",
                    format!("qSOFA {} of 3", qsofa.len()),
                    qsofa,
                    at,
                ));
            }
        }
        alerts
    }

    fn alert(
        &self,
        patient: &PatientId,
        key: &str,
        headline: String,
        evidence: Vec<(&'static str, Observation)>,
        at: Timestamp,
    ) -> Alert {
        let listed: Vec<String> = evidence
            .iter()
            .map(|(name, o)| {
                let (value, unit) = o
                    .normalised
                    .as_ref()
                    .map(|q| (number(q.value), q.unit.clone()))
                    .unwrap_or_default();
                format!("{name} {value} {unit}").trim_end().to_owned()
            })
            .collect();
        Alert::new(
            AlertKind::SepsisScreen,
            Severity::Warning,
            patient,
            key.to_owned(),
            format!(
                "{headline} within {}: {}",
                self.config.window,
                listed.join(", ")
            ),
            evidence
                .into_iter()
                .map(|(_, o)| Evidence::Observation(o))
                .collect(),
            at,
        )
    }
}

fn is_screened(o: &Observation) -> bool {
    [
        TEMPERATURE,
        HEART_RATE,
        RESPIRATORY_RATE,
        PACO2,
        WHITE_CELLS,
        LACTATE,
        SYSTOLIC,
        GLASGOW,
    ]
    .iter()
    .any(|codes| codes.iter().any(|c| o.code.is_loinc(c)))
}

impl Rule for SepsisScreen {
    fn kind(&self) -> AlertKind {
        AlertKind::SepsisScreen
    }

    fn check(&self, input: &RuleInput<'_>) -> Vec<Alert> {
        self.run(input)
    }
}
