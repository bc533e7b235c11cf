//! Configuration: which rules run, their thresholds and windows. Every
//! field has a default from the shipped tables (`crates/rules/data/`), so
//! an empty table turns every built-in rule on with the cited defaults.
//!
//! ```toml
//! [critical_values]
//! suppress_for = "6h"
//! limits = [ { loinc = "2823-3", unit = "mmol/L", low = "<2.8", high = ">6.5", source = "our lab, 2026" } ]
//!
//! [duplicate_test]
//! enabled = false
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde::{Deserialize, Deserializer, Serialize};

use crate::time::Window;
use crate::units::rule_unit;

/// A configuration that cannot be used; the text names the key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("rules configuration: {0}")]
pub struct ConfigError(pub String);

/// Every rule's settings.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// All built-in rules at once. They are on wherever the clinical
    /// repository is on; `false` turns every one off.
    pub enabled: bool,
    /// `[critical_values]`: panic limits and OBX-8 critical flags.
    pub critical_values: CriticalValuesConfig,
    /// `[delta_check]`: changes against the previous result.
    pub delta_check: DeltaCheckConfig,
    /// `[sepsis_screen]`: SIRS with lactate, and qSOFA.
    pub sepsis_screen: SepsisScreenConfig,
    /// `[allergy_medication]`: orders against active allergies.
    pub allergy_medication: AllergyMedicationConfig,
    /// `[duplicate_test]`: orders within a test's retesting interval.
    pub duplicate_test: DuplicateTestConfig,
    /// `[[custom]]`: the hospital's own rules, scripts in the JavaScript sandbox
    /// (see [`crate::custom`]). `enabled = false` turns them off too.
    pub custom: Vec<crate::custom::CustomRuleConfig>,
}

impl Default for RulesConfig {
    fn default() -> RulesConfig {
        RulesConfig {
            enabled: true,
            critical_values: CriticalValuesConfig::default(),
            delta_check: DeltaCheckConfig::default(),
            sepsis_screen: SepsisScreenConfig::default(),
            allergy_medication: AllergyMedicationConfig::default(),
            duplicate_test: DuplicateTestConfig::default(),
            custom: Vec::new(),
        }
    }
}

impl RulesConfig {
    /// Reads and checks a configuration written in TOML.
    pub fn from_toml(text: &str) -> Result<RulesConfig, ConfigError> {
        let config: RulesConfig = toml::from_str(text).map_err(|e| ConfigError(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks values serde cannot: units, bounds, fractions.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (i, limit) in self.critical_values.limits.iter().enumerate() {
            limit.validate(&format!("critical_values.limits[{i}]"))?;
        }
        for (i, delta) in self.delta_check.checks.iter().enumerate() {
            delta.validate(&format!("delta_check.checks[{i}]"))?;
        }
        let sepsis = &self.sepsis_screen;
        if !(sepsis.lactate_at_least.is_finite() && sepsis.lactate_at_least > 0.0) {
            return Err(ConfigError(format!(
                "sepsis_screen.lactate_at_least: {} is not a positive number of mmol/L",
                sepsis.lactate_at_least
            )));
        }
        if !(1..=4).contains(&sepsis.sirs_at_least) {
            return Err(ConfigError(format!(
                "sepsis_screen.sirs_at_least: {} is not between 1 and 4 (SIRS has four criteria)",
                sepsis.sirs_at_least
            )));
        }
        if !(1..=3).contains(&sepsis.qsofa_at_least) {
            return Err(ConfigError(format!(
                "sepsis_screen.qsofa_at_least: {} is not between 1 and 3 (qSOFA has three criteria)",
                sepsis.qsofa_at_least
            )));
        }
        if !(4..=15).contains(&sepsis.glasgow_below) {
            return Err(ConfigError(format!(
                "sepsis_screen.glasgow_below: {} is not a Glasgow coma score between 4 and 15",
                sepsis.glasgow_below
            )));
        }
        for (i, class) in self.allergy_medication.classes.iter().enumerate() {
            if class.id.trim().is_empty()
                || class.members.is_empty() && class.allergen_names.is_empty()
            {
                return Err(ConfigError(format!(
                    "allergy_medication.classes[{i}]: a class needs an id and members or allergen names"
                )));
            }
        }
        for (i, row) in self.duplicate_test.tests.iter().enumerate() {
            if row.loinc.trim().is_empty() {
                return Err(ConfigError(format!(
                    "duplicate_test.tests[{i}].loinc is empty"
                )));
            }
        }
        for (i, rule) in self.custom.iter().enumerate() {
            rule.validate(&format!("custom[{i}]"))?;
            if self.custom[..i].iter().any(|r| r.name == rule.name) {
                return Err(ConfigError(format!(
                    "custom[{i}].name: {:?} names another custom rule too",
                    rule.name
                )));
            }
        }
        Ok(())
    }
}

/// How a threshold compares: `<`, `<=`, `>` or `>=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comparison {
    Below,
    AtOrBelow,
    Above,
    AtOrAbove,
}

/// A comparison and a number, written `<3.0`, `<=7`, `>6.1`, `>=0.30`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Threshold {
    pub comparison: Comparison,
    pub value: f64,
}

// Values converted between units (°F to °C, mg/dL to mmol/L) carry rounding
// noise far below any reported digit; comparisons allow for it, so a value
// exactly at a threshold is at it whatever unit it came in.
const TOLERANCE: f64 = 1e-9;

impl Threshold {
    /// True when `value` meets the threshold.
    pub fn is_met_by(&self, value: f64) -> bool {
        let slack = TOLERANCE * self.value.abs().max(1.0);
        match self.comparison {
            Comparison::Below => value < self.value - slack,
            Comparison::AtOrBelow => value <= self.value + slack,
            Comparison::Above => value > self.value + slack,
            Comparison::AtOrAbove => value >= self.value - slack,
        }
    }

    fn is_low(&self) -> bool {
        matches!(self.comparison, Comparison::Below | Comparison::AtOrBelow)
    }
}

impl FromStr for Threshold {
    type Err = String;

    fn from_str(text: &str) -> Result<Threshold, String> {
        let t = text.trim();
        let (comparison, rest) = if let Some(r) = t.strip_prefix("<=") {
            (Comparison::AtOrBelow, r)
        } else if let Some(r) = t.strip_prefix(">=") {
            (Comparison::AtOrAbove, r)
        } else if let Some(r) = t.strip_prefix('<') {
            (Comparison::Below, r)
        } else if let Some(r) = t.strip_prefix('>') {
            (Comparison::Above, r)
        } else {
            return Err(format!(
                "`{t}` is not a threshold: write <, <=, > or >= and a number, such as `>6.1`"
            ));
        };
        let value: f64 = rest
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| v.is_finite())
            .ok_or_else(|| format!("`{t}`: `{}` is not a number", rest.trim()))?;
        Ok(Threshold { comparison, value })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.comparison {
            Comparison::Below => "<",
            Comparison::AtOrBelow => "<=",
            Comparison::Above => ">",
            Comparison::AtOrAbove => ">=",
        };
        write!(f, "{op}{}", self.value)
    }
}

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Threshold, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Threshold {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

fn check_unit(key: &str, loinc: &str, unit: &str) -> Result<(), ConfigError> {
    match rule_unit(loinc) {
        Some(expected) if expected != unit => Err(ConfigError(format!(
            "{key}.unit: LOINC {loinc} is compared in `{expected}`, not `{unit}`"
        ))),
        _ => Ok(()),
    }
}

/// `critical_values`: results beyond a laboratory's panic limits, and
/// results the laboratory itself flagged critical (OBX-8).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CriticalValuesConfig {
    /// Run this rule (when `enabled` at the top is on too).
    pub enabled: bool,
    /// Alert on OBX-8 `LL`, `HH`, `AA`, `<` and `>` whatever the value.
    pub abnormal_flags: bool,
    /// Start from the shipped table (`data/critical_values.toml`); `false`
    /// uses only `limits`.
    pub shipped_limits: bool,
    /// Limits added to the shipped table; a row for a code the table has
    /// replaces it.
    pub limits: Vec<CriticalLimit>,
    /// The same critical result (code and direction) does not alert again
    /// for the same patient within this window. Default `6h`.
    pub suppress_for: Window,
}

impl Default for CriticalValuesConfig {
    fn default() -> CriticalValuesConfig {
        CriticalValuesConfig {
            enabled: true,
            abnormal_flags: true,
            shipped_limits: true,
            limits: Vec::new(),
            suppress_for: Window::hours(6),
        }
    }
}

/// One row of the critical values table.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CriticalLimit {
    /// The LOINC code of the result.
    pub loinc: String,
    /// The test's name, for the alert's summary.
    #[serde(default)]
    pub name: String,
    /// The unit `low` and `high` are in: the unit the rules compare this
    /// code in (`units.rs`), so the row says what its numbers mean.
    pub unit: String,
    /// The low limit: `<` or `<=` and a number (`<3.0`).
    pub low: Option<Threshold>,
    /// The high limit: `>` or `>=` and a number (`>6.1`).
    pub high: Option<Threshold>,
    /// Where the numbers come from.
    pub source: String,
}

impl CriticalLimit {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.loinc.trim().is_empty() {
            return Err(ConfigError(format!("{key}.loinc is empty")));
        }
        check_unit(key, &self.loinc, &self.unit)?;
        if self.low.is_none() && self.high.is_none() {
            return Err(ConfigError(format!("{key}: needs `low`, `high` or both")));
        }
        if let Some(low) = self.low
            && !low.is_low()
        {
            return Err(ConfigError(format!(
                "{key}.low: `{low}` must be `<` or `<=`"
            )));
        }
        if let Some(high) = self.high
            && high.is_low()
        {
            return Err(ConfigError(format!(
                "{key}.high: `{high}` must be `>` or `>=`"
            )));
        }
        if let (Some(low), Some(high)) = (self.low, self.high)
            && low.value >= high.value
        {
            return Err(ConfigError(format!(
                "{key}: low {low} is not below high {high}"
            )));
        }
        if self.source.trim().is_empty() {
            return Err(ConfigError(format!(
                "{key}.source is empty: say where the limits come from"
            )));
        }
        Ok(())
    }
}

/// `delta_check`: a change against the patient's previous result.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DeltaCheckConfig {
    /// Run this rule (when `enabled` at the top is on too).
    pub enabled: bool,
    /// Start from the shipped table (`data/delta_checks.toml`).
    pub shipped_checks: bool,
    /// Checks added to the shipped table; a row for a code the table has
    /// replaces it.
    pub checks: Vec<DeltaLimit>,
    /// The same change (code and direction) does not alert again for the
    /// same patient within this window. Default `24h`.
    pub suppress_for: Window,
}

impl Default for DeltaCheckConfig {
    fn default() -> DeltaCheckConfig {
        DeltaCheckConfig {
            enabled: true,
            shipped_checks: true,
            checks: Vec::new(),
            suppress_for: Window::hours(24),
        }
    }
}

/// Which way a change must go.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Rise,
    Fall,
    Either,
}

/// One row of the delta check table.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeltaLimit {
    /// The LOINC code of the result.
    pub loinc: String,
    /// The test's name, for the alert's summary.
    #[serde(default)]
    pub name: String,
    /// The unit `absolute` is in (the code's rule unit).
    pub unit: String,
    /// `rise`, `fall` or `either`.
    pub direction: Direction,
    /// A change of at least this much, in `unit`.
    pub absolute: Option<f64>,
    /// A change of at least this fraction of the previous value (0.5: 50%).
    pub relative: Option<f64>,
    /// How far back the previous result may be.
    pub window: Window,
    /// Where the limits come from.
    pub source: String,
}

impl DeltaLimit {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if self.loinc.trim().is_empty() {
            return Err(ConfigError(format!("{key}.loinc is empty")));
        }
        check_unit(key, &self.loinc, &self.unit)?;
        if self.absolute.is_none() && self.relative.is_none() {
            return Err(ConfigError(format!(
                "{key}: needs `absolute`, `relative` or both"
            )));
        }
        if let Some(a) = self.absolute
            && !(a.is_finite() && a > 0.0)
        {
            return Err(ConfigError(format!(
                "{key}.absolute: {a} is not a positive change"
            )));
        }
        if let Some(r) = self.relative
            && !(r.is_finite() && r > 0.0 && r <= 10.0)
        {
            return Err(ConfigError(format!(
                "{key}.relative: {r} is not a fraction of the previous value (0.5 is 50%)"
            )));
        }
        if self.source.trim().is_empty() {
            return Err(ConfigError(format!(
                "{key}.source is empty: say where the change comes from"
            )));
        }
        Ok(())
    }
}

/// `sepsis_screen`: SIRS with lactate, and qSOFA.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SepsisScreenConfig {
    /// Run this rule (when `enabled` at the top is on too).
    pub enabled: bool,
    /// How close together the criteria must be seen.
    pub window: Window,
    /// SIRS criteria needed (of temperature, heart rate, respiration, white
    /// cells). The 1992 consensus: two or more.
    pub sirs_at_least: u8,
    /// Lactate, mmol/L, that makes a SIRS-positive patient screen positive.
    pub lactate_at_least: f64,
    /// Run the qSOFA screen as well.
    pub qsofa: bool,
    /// qSOFA criteria needed. Sepsis-3: two or more.
    pub qsofa_at_least: u8,
    /// Altered mentation for qSOFA: a Glasgow coma score total below this.
    /// 15 (any alteration) by default.
    pub glasgow_below: u8,
    /// A positive screen (`sirs-lactate` or `qsofa`) does not alert again
    /// for the same patient within this window. Default `24h`.
    pub suppress_for: Window,
}

impl Default for SepsisScreenConfig {
    fn default() -> SepsisScreenConfig {
        SepsisScreenConfig {
            enabled: true,
            window: Window::hours(6),
            sirs_at_least: 2,
            lactate_at_least: 2.0,
            qsofa: true,
            qsofa_at_least: 2,
            glasgow_below: 15,
            suppress_for: Window::hours(24),
        }
    }
}

/// `allergy_medication`: an order for a drug the patient is allergic to.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AllergyMedicationConfig {
    /// Run this rule (when `enabled` at the top is on too).
    pub enabled: bool,
    /// Start from the shipped classes (`data/drug_classes.toml`).
    pub shipped_classes: bool,
    /// Classes added; one with the id of a shipped class replaces it.
    pub classes: Vec<DrugClass>,
    /// The same match (code, ingredient or class) does not alert again for
    /// the same patient within this window. Default `24h`.
    pub suppress_for: Window,
}

impl Default for AllergyMedicationConfig {
    fn default() -> AllergyMedicationConfig {
        AllergyMedicationConfig {
            enabled: true,
            shipped_classes: true,
            classes: Vec::new(),
            suppress_for: Window::hours(24),
        }
    }
}

/// A drug class and its member ingredients.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DrugClass {
    /// A short name, used in the alert key (`class:penicillins`).
    pub id: String,
    /// The class's name, for the alert's summary.
    pub name: String,
    /// The ATC group the membership follows.
    #[serde(default)]
    pub atc: String,
    /// Words an allergy to the whole class is recorded under (`penicillin`).
    #[serde(default)]
    pub allergen_names: Vec<String>,
    /// The ingredients in the class.
    #[serde(default)]
    pub members: Vec<Ingredient>,
    /// Where the membership comes from.
    pub source: String,
}

/// An ingredient: its RxNorm code and its name.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Ingredient {
    /// The RxNorm ingredient concept (RXCUI).
    pub rxnorm: String,
    /// The ingredient's name, matched against whole words of a drug's text.
    pub name: String,
}

/// `duplicate_test`: an order for a test done or ordered recently.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DuplicateTestConfig {
    /// Run this rule (when `enabled` at the top is on too).
    pub enabled: bool,
    /// Start from the shipped windows (`data/duplicate_tests.toml`).
    pub shipped_tests: bool,
    /// Windows added; a row for a code the table has replaces it.
    pub tests: Vec<RetestInterval>,
    /// The same test does not alert again as a duplicate for the same
    /// patient within this window. Default `24h`.
    pub suppress_for: Window,
}

impl Default for DuplicateTestConfig {
    fn default() -> DuplicateTestConfig {
        DuplicateTestConfig {
            enabled: true,
            shipped_tests: true,
            tests: Vec::new(),
            suppress_for: Window::hours(24),
        }
    }
}

/// A test's minimum retesting interval.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RetestInterval {
    /// The LOINC code of the ordered test (OBR-4).
    pub loinc: String,
    /// The test's name, for the alert's summary.
    #[serde(default)]
    pub name: String,
    /// An order within this long of an earlier order or result of the
    /// same test is a duplicate.
    pub window: Window,
    /// Where the interval comes from.
    pub source: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CriticalTable {
    critical: Vec<CriticalLimit>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeltaTable {
    delta: Vec<DeltaLimit>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassTable {
    class: Vec<DrugClass>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DuplicateTable {
    duplicate: Vec<RetestInterval>,
}

/// The tables shipped in the crate, parsed once. A table that does not
/// parse is a build of this crate that its own tests reject; here it reads
/// as an error, never a panic.
pub struct ShippedTables {
    /// `data/critical_values.toml`.
    pub critical: Vec<CriticalLimit>,
    /// `data/delta_checks.toml`.
    pub delta: Vec<DeltaLimit>,
    /// `data/drug_classes.toml`.
    pub classes: Vec<DrugClass>,
    /// `data/duplicate_tests.toml`.
    pub duplicate: Vec<RetestInterval>,
}

const CRITICAL_TOML: &str = include_str!("../data/critical_values.toml");
const DELTA_TOML: &str = include_str!("../data/delta_checks.toml");
const CLASSES_TOML: &str = include_str!("../data/drug_classes.toml");
const DUPLICATE_TOML: &str = include_str!("../data/duplicate_tests.toml");

impl ShippedTables {
    pub fn get() -> Result<&'static ShippedTables, ConfigError> {
        static TABLES: OnceLock<Result<ShippedTables, ConfigError>> = OnceLock::new();
        TABLES
            .get_or_init(ShippedTables::parse)
            .as_ref()
            .map_err(Clone::clone)
    }

    fn parse() -> Result<ShippedTables, ConfigError> {
        fn read<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, ConfigError> {
            toml::from_str(text).map_err(|e| ConfigError(format!("shipped table {file}: {e}")))
        }
        let critical: CriticalTable = read("critical_values.toml", CRITICAL_TOML)?;
        let delta: DeltaTable = read("delta_checks.toml", DELTA_TOML)?;
        let classes: ClassTable = read("drug_classes.toml", CLASSES_TOML)?;
        let duplicate: DuplicateTable = read("duplicate_tests.toml", DUPLICATE_TOML)?;
        for (i, row) in critical.critical.iter().enumerate() {
            row.validate(&format!("critical_values.toml critical[{i}]"))?;
        }
        for (i, row) in delta.delta.iter().enumerate() {
            row.validate(&format!("delta_checks.toml delta[{i}]"))?;
        }
        Ok(ShippedTables {
            critical: critical.critical,
            delta: delta.delta,
            classes: classes.class,
            duplicate: duplicate.duplicate,
        })
    }
}

impl Clone for ConfigError {
    fn clone(&self) -> ConfigError {
        ConfigError(self.0.clone())
    }
}

/// `shipped` with `overrides` laid over it by key.
pub(crate) fn merged<T: Clone>(
    shipped: &[T],
    use_shipped: bool,
    overrides: &[T],
    key: impl Fn(&T) -> &str,
) -> Vec<T> {
    let mut rows: Vec<T> = if use_shipped {
        shipped
            .iter()
            .filter(|s| !overrides.iter().any(|o| key(o) == key(s)))
            .cloned()
            .collect()
    } else {
        Vec::new()
    };
    rows.extend(overrides.iter().cloned());
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_row_parses_and_cites_a_source() {
        let tables = ShippedTables::get().unwrap();
        assert!(tables.critical.len() >= 8);
        assert!(tables.critical.iter().all(|r| !r.source.trim().is_empty()));
        assert!(tables.delta.iter().all(|r| !r.source.trim().is_empty()));
        assert!(
            tables
                .classes
                .iter()
                .all(|c| !c.source.trim().is_empty() && !c.members.is_empty())
        );
        assert!(tables.duplicate.iter().all(|r| !r.source.trim().is_empty()));
        for row in &tables.critical {
            assert_eq!(
                rule_unit(&row.loinc),
                Some(row.unit.as_str()),
                "{}",
                row.loinc
            );
        }
    }

    #[test]
    fn an_empty_configuration_turns_every_rule_on_with_the_shipped_defaults() {
        let config = RulesConfig::from_toml("").unwrap();
        assert_eq!(config, RulesConfig::default());
        assert!(config.enabled && config.critical_values.enabled && config.sepsis_screen.enabled);
        assert_eq!(config.sepsis_screen.lactate_at_least, 2.0);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let err = RulesConfig::from_toml("[sepsis_screen]\nlactate = 2.5\n").unwrap_err();
        assert!(err.0.contains("lactate"), "{err}");
        let err = RulesConfig::from_toml("critical_value = {}\n").unwrap_err();
        assert!(err.0.contains("critical_value"), "{err}");
    }

    #[test]
    fn invalid_values_are_errors_naming_the_key() {
        let cases = [
            (
                "[critical_values]\nlimits = [{ loinc = \"2823-3\", unit = \"mEq/L\", high = \">6\", source = \"x\" }]",
                "critical_values.limits[0].unit",
            ),
            (
                "[critical_values]\nlimits = [{ loinc = \"2823-3\", unit = \"mmol/L\", low = \">6\", source = \"x\" }]",
                "critical_values.limits[0].low",
            ),
            (
                "[sepsis_screen]\nlactate_at_least = -1.0",
                "sepsis_screen.lactate_at_least",
            ),
            (
                "[sepsis_screen]\nsirs_at_least = 5",
                "sepsis_screen.sirs_at_least",
            ),
            (
                "[delta_check]\nchecks = [{ loinc = \"718-7\", unit = \"g/dL\", direction = \"fall\", relative = -0.5, window = \"1d\", source = \"x\" }]",
                "delta_check.checks[0].relative",
            ),
        ];
        for (text, key) in cases {
            let err = RulesConfig::from_toml(text).unwrap_err();
            assert!(err.0.contains(key), "{text}: {err}");
        }
        let err = RulesConfig::from_toml("[sepsis_screen]\nwindow = \"six hours\"").unwrap_err();
        assert!(
            err.0.contains("window") && err.0.contains("six hours"),
            "{err}"
        );
    }

    #[test]
    fn thresholds_read_their_comparison() {
        let t: Threshold = ">=0.30".parse().unwrap();
        assert!(t.is_met_by(0.30) && !t.is_met_by(0.29));
        let t: Threshold = "<3.0".parse().unwrap();
        assert!(!t.is_met_by(3.0) && t.is_met_by(2.9));
        assert!("6.1".parse::<Threshold>().is_err());
        assert!(">six".parse::<Threshold>().is_err());
    }
}
