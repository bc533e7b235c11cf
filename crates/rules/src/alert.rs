//! What a rule hands back, and the helper that keeps the same condition
//! from firing again and again.

use serde::Serialize;

use crate::facts::{Allergy, MedicationOrder, Observation, PatientId, TestOrder};
use crate::time::{Timestamp, Window};

/// Which rule fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum AlertKind {
    CriticalValue,
    DeltaCheck,
    SepsisScreen,
    AllergyMedication,
    DuplicateTest,
    /// A custom rule (`[[custom]]`, a script), by its configured name.
    Custom(&'static str),
}

impl AlertKind {
    /// The rule's name, as stored with the alert.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::CriticalValue => "critical-value",
            AlertKind::DeltaCheck => "delta-check",
            AlertKind::SepsisScreen => "sepsis-screen",
            AlertKind::AllergyMedication => "allergy-medication",
            AlertKind::DuplicateTest => "duplicate-test",
            AlertKind::Custom(name) => name,
        }
    }

    /// A built-in rule's version: raised whenever what makes it fire changes, so a
    /// stored alert says which logic produced it. A custom rule's alerts carry its
    /// script's hash instead (`custom::script_version`); this says 0 for it.
    pub fn version(self) -> u32 {
        match self {
            AlertKind::Custom(_) => 0,
            _ => 1,
        }
    }

    /// Every rule, in a fixed order.
    pub const ALL: [AlertKind; 5] = [
        AlertKind::CriticalValue,
        AlertKind::DeltaCheck,
        AlertKind::SepsisScreen,
        AlertKind::AllergyMedication,
        AlertKind::DuplicateTest,
    ];

    /// The built-in rule named `name` (as [`AlertKind::as_str`] spells it).
    pub fn parse(name: &str) -> Option<AlertKind> {
        AlertKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// The rule named `name` as stored with an alert: a built-in rule, else a custom
    /// rule of that name (stored names come from the configuration).
    pub fn parse_stored(name: &str) -> Option<AlertKind> {
        AlertKind::parse(name).or_else(|| {
            AlertKind::is_rule_name(name).then(|| AlertKind::Custom(crate::custom::intern(name)))
        })
    }

    /// Whether `name` can name a rule: a built-in one, or the form of a custom rule's
    /// name (lower-case letters, digits and `-`).
    pub fn is_rule_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 100
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }
}

/// How urgently the receiving clinician should look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    /// Worth knowing (a duplicate order).
    Info,
    /// Look soon (a delta, a positive screen, a class-level allergy match).
    Warning,
    /// Act now (a critical value, an order for a drug the patient is
    /// recorded as allergic to).
    Critical,
}

impl Severity {
    /// The word stored and sent with an alert.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The severity `word` names (as [`Severity::as_str`] spells it).
    pub fn parse(word: &str) -> Option<Severity> {
        [Severity::Info, Severity::Warning, Severity::Critical]
            .into_iter()
            .find(|s| s.as_str() == word)
    }
}

/// One fact that made a rule fire, with where it was read.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum Evidence {
    Observation(Observation),
    Allergy(Allergy),
    Medication(MedicationOrder),
    TestOrder(TestOrder),
    /// What a custom rule's script gave as evidence, as it gave it.
    Custom(serde_json::Value),
}

/// A rule's finding about one patient.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Alert {
    pub rule: AlertKind,
    pub rule_version: u32,
    pub severity: Severity,
    pub patient: PatientId,
    /// The condition, for suppression: the same rule, patient and key is the
    /// same condition (`2823-3:high`, `sirs-lactate`, `penicillins:723`).
    pub key: String,
    /// What the clinician needs to read: the test, value and threshold, the
    /// drug and allergen. No names or identifiers.
    pub summary: String,
    pub evidence: Vec<Evidence>,
    /// When the condition was seen (the time of the newest evidence).
    pub at: Timestamp,
}

impl Alert {
    pub(crate) fn new(
        rule: AlertKind,
        severity: Severity,
        patient: &PatientId,
        key: String,
        summary: String,
        evidence: Vec<Evidence>,
        at: Timestamp,
    ) -> Alert {
        Alert {
            rule,
            rule_version: rule.version(),
            severity,
            patient: patient.clone(),
            key,
            summary,
            evidence,
            at,
        }
    }

    fn same_condition(&self, other: &Alert) -> bool {
        self.rule == other.rule && self.patient == other.patient && self.key == other.key
    }
}

/// The same condition (rule, patient, key) does not fire again within a
/// window of the last time it fired. Pure: the caller hands over the alerts
/// already fired (the store's recent alerts for the patient).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Suppression {
    windows: Vec<(AlertKind, Window)>,
}

impl Suppression {
    /// One window per rule; a rule without one is never suppressed.
    pub fn new(windows: impl IntoIterator<Item = (AlertKind, Window)>) -> Suppression {
        Suppression {
            windows: windows.into_iter().collect(),
        }
    }

    fn window(&self, kind: AlertKind) -> Option<Window> {
        self.windows
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, w)| *w)
    }

    /// The alerts of `candidates` that should fire, given `previous`: those
    /// whose condition has not fired within its window before it (nor
    /// earlier in `candidates`).
    pub fn filter(&self, candidates: Vec<Alert>, previous: &[Alert]) -> Vec<Alert> {
        let mut fired: Vec<Alert> = Vec::new();
        for alert in candidates {
            let quiet = self.window(alert.rule).is_some_and(|window| {
                // Messages can arrive out of order: an alert fired for a
                // later moment quiets an earlier one within the window too.
                previous.iter().chain(&fired).any(|p| {
                    p.same_condition(&alert)
                        && (window.contains(p.at, alert.at) || window.contains(alert.at, p.at))
                })
            });
            if !quiet {
                fired.push(alert);
            }
        }
        fired
    }
}
