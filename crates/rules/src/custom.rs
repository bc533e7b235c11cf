//! Custom rules: a hospital's own rules, written in JavaScript and run in the sandbox
//! of the channel scripts (`steps::Script`: a fresh QuickJS context per run, no file,
//! network or process access, a time and a memory limit, errors that name the
//! script's line).
//!
//! A rule's script is the body of a function. It sees:
//!
//! - `msg`: the message, through the channel scripts' path API (`msg.get("OBX-5")`,
//!   `msg.count("OBX")`, `msg.segments()`), read-only: `set`, `setRaw` and `delete`
//!   throw;
//! - `record`: the patient's recent record, the one the built-in rules read, as plain
//!   JSON that the script cannot change: `record.patient` (the id alerts carry: the
//!   enterprise id, or `Patient/{id}` without the patient index) and
//!   `record.resources` (the FHIR R4 Observations, AllergyIntolerances,
//!   DiagnosticReports and ServiceRequests of the patient's repository Patients, not
//!   those of this message).
//!
//! It returns nothing, one alert or an array of alerts, each an object:
//!
//! | field | | |
//! | --- | --- | --- |
//! | `key` | required | the condition, for de-duplication: the same rule, patient and key does not fire again within `suppress_for` |
//! | `severity` | required | `info`, `warning` or `critical` |
//! | `text` | required | what the clinician reads (no names or identifiers) |
//! | `evidence` | optional | an array of JSON values (the values and resources that made it fire), stored with the alert |
//! | `rule` | optional | the rule's name; when given it must be the configured `name` |
//!
//! The alert's rule is the configured `name`, its version the script's hash
//! ([`script_version`]), its time the message's (MSH-7).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alert::{Alert, AlertKind, Evidence, Severity};
use crate::config::ConfigError;
use crate::facts::PatientId;
use crate::time::{Timestamp, Window};

/// `[[custom]]`: one custom rule.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomRuleConfig {
    /// The rule's name, stored with its alerts: lower-case letters, digits and `-`,
    /// not a built-in rule's name.
    pub name: String,
    /// The script, relative to the configuration file.
    pub script_file: PathBuf,
    /// The same condition does not fire again within this window (24 hours by default).
    #[serde(default = "one_day")]
    pub suppress_for: Window,
    /// The script's time limit per message, in milliseconds (the channel scripts'
    /// default, 100, when absent).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// The script's memory limit, in MiB (the channel scripts' default, 32; the record
    /// counts).
    #[serde(default)]
    pub memory_mb: Option<usize>,
}

fn one_day() -> Window {
    Window::hours(24)
}

/// The most alerts one run of a custom rule may return.
pub const MAX_ALERTS: usize = 100;
/// The longest `key` and `text` of a custom rule's alert, in characters.
const MAX_KEY: usize = 200;
const MAX_TEXT: usize = 2000;

impl CustomRuleConfig {
    /// Checks what can be checked without reading the script; `at` is the rule's key
    /// (`custom[0]`).
    pub fn validate(&self, at: &str) -> Result<(), ConfigError> {
        let name = &self.name;
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ConfigError(format!(
                "{at}.name: {name:?} is not a rule name (lower-case letters, digits and -)"
            )));
        }
        if AlertKind::ALL.iter().any(|k| k.as_str() == name) {
            return Err(ConfigError(format!(
                "{at}.name: {name:?} is a built-in rule's name; choose another"
            )));
        }
        if self.script_file.as_os_str().is_empty() {
            return Err(ConfigError(format!("{at}.script_file is empty")));
        }
        steps::Limits::from_config(self.timeout_ms, self.memory_mb)
            .map_err(|e| ConfigError(format!("{at}.{}", step_words(&e))))?;
        Ok(())
    }
}

/// A step error's words without the "configuration:"/"script:" prefix `steps` puts on.
fn step_words(error: &steps::StepError) -> String {
    match error {
        steps::StepError::Config(words) | steps::StepError::Script(words) => words.clone(),
        other => other.to_string(),
    }
}

/// The version a custom rule's alerts carry: the 32-bit FNV-1a hash of its script's
/// bytes, so a stored alert says which text of the script produced it.
pub fn script_version(script: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for &b in script {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

/// A custom rule's name, kept for the life of the process so alerts can carry it as
/// `&'static str` like the built-in rules' names. The names are the configuration's,
/// a handful, kept once each however often the configuration is read.
pub(crate) fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name) {
        return known;
    }
    let kept: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(kept);
    kept
}

/// A custom rule that failed on a message: the rule and what went wrong (for a script
/// error, with the script's line).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("custom rule {rule}: {problem}")]
pub struct RuleError {
    pub rule: String,
    pub problem: String,
}

/// A custom rule, its script checked and ready to run.
#[derive(Debug)]
pub struct CustomRule {
    name: &'static str,
    version: u32,
    script: steps::Script,
    suppress_for: Window,
}

impl CustomRule {
    /// Reads and compiles the rule's script (`script_file` relative to `base`); `at` is
    /// the rule's key in the configuration (`custom[0]`), which errors name.
    pub fn load(
        config: &CustomRuleConfig,
        base: &Path,
        at: &str,
    ) -> Result<CustomRule, ConfigError> {
        config.validate(at)?;
        let path = base.join(&config.script_file);
        let source = std::fs::read(&path).map_err(|e| {
            ConfigError(format!(
                "{at}.script_file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        let text = String::from_utf8(source.clone()).map_err(|_| {
            ConfigError(format!(
                "{at}.script_file: {} is not UTF-8 text",
                path.display()
            ))
        })?;
        let limits = steps::Limits::from_config(config.timeout_ms, config.memory_mb)
            .map_err(|e| ConfigError(format!("{at}.{}", step_words(&e))))?;
        let script = steps::Script::new(&text, limits).map_err(|e| {
            ConfigError(format!(
                "{at}.script_file: {} (rule {}): {}",
                path.display(),
                config.name,
                step_words(&e)
            ))
        })?;
        Ok(CustomRule {
            name: intern(&config.name),
            version: script_version(&source),
            script,
            suppress_for: config.suppress_for,
        })
    }

    pub fn kind(&self) -> AlertKind {
        AlertKind::Custom(self.name)
    }

    pub fn version(&self) -> u32 {
        self.version
    }

    pub fn suppress_for(&self) -> Window {
        self.suppress_for
    }

    /// Runs the rule on `message` with the patient's `record` (the JSON text of
    /// [`record_json`]); its alerts are at `now`.
    pub fn run(
        &self,
        patient: &PatientId,
        message: &hl7v2::OwnedMessage,
        record: &str,
        now: Timestamp,
    ) -> Result<Vec<Alert>, RuleError> {
        let fail = |problem: String| RuleError {
            rule: self.name.to_owned(),
            problem,
        };
        let returned = self
            .script
            .evaluate(message, vec![("record".to_owned(), record.to_owned())])
            .map_err(|e| fail(step_words(&e)))?;
        let Some(returned) = returned else {
            return Ok(Vec::new());
        };
        let value: Value = serde_json::from_str(&returned)
            .map_err(|e| fail(format!("what the script returned is not JSON: {e}")))?;
        let items = match value {
            Value::Array(items) => items,
            Value::Object(_) => vec![value],
            Value::Bool(false) => Vec::new(),
            other => {
                return Err(fail(format!(
                    "the script returned {}; return nothing, an alert object or an array of them",
                    kind_of(&other)
                )));
            }
        };
        if items.len() > MAX_ALERTS {
            return Err(fail(format!(
                "the script returned {} alerts; at most {MAX_ALERTS}",
                items.len()
            )));
        }
        items
            .into_iter()
            .enumerate()
            .map(|(i, item)| self.alert(patient, i, item, now).map_err(&fail))
            .collect()
    }

    fn alert(
        &self,
        patient: &PatientId,
        i: usize,
        item: Value,
        now: Timestamp,
    ) -> Result<Alert, String> {
        let Value::Object(mut fields) = item else {
            return Err(format!(
                "alert {i} is {}, not an object with key, severity and text",
                kind_of(&item)
            ));
        };
        let text_field = |fields: &serde_json::Map<String, Value>, name: &str, max: usize| {
            match fields.get(name) {
                Some(Value::String(s)) if !s.trim().is_empty() => {
                    if s.chars().count() > max {
                        Err(format!("alert {i}: {name} is longer than {max} characters"))
                    } else {
                        Ok(s.clone())
                    }
                }
                Some(Value::Number(n)) if name == "key" => Ok(n.to_string()),
                Some(_) => Err(format!("alert {i}: {name} must be a non-empty string")),
                None => Err(format!("alert {i}: {name} is missing")),
            }
        };
        if let Some(rule) = fields.get("rule")
            && rule.as_str() != Some(self.name)
        {
            return Err(format!(
                "alert {i}: rule is {rule}, but this script is rule {:?}",
                self.name
            ));
        }
        let key = text_field(&fields, "key", MAX_KEY)?;
        let text = text_field(&fields, "text", MAX_TEXT)?;
        let severity = match fields.get("severity").and_then(Value::as_str) {
            Some(word) => Severity::parse(word).ok_or_else(|| {
                format!("alert {i}: severity {word:?} is not info, warning or critical")
            })?,
            None => {
                return Err(format!(
                    "alert {i}: severity is missing (info, warning or critical)"
                ));
            }
        };
        let evidence = match fields.remove("evidence") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items.into_iter().map(Evidence::Custom).collect(),
            Some(other) => vec![Evidence::Custom(other)],
        };
        Ok(Alert {
            rule: self.kind(),
            rule_version: self.version,
            severity,
            patient: patient.clone(),
            key,
            summary: text,
            evidence,
            at: now,
        })
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The record a custom rule sees, as JSON text: `{"patient": ..., "resources": [...]}`.
pub fn record_json(patient: &PatientId, resources: Vec<Value>) -> String {
    serde_json::json!({ "patient": patient.0, "resources": resources }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_script_s_hash() {
        assert_eq!(script_version(b""), 0x811c_9dc5);
        assert_eq!(script_version(b"a"), 0xe40c_292c);
        assert_ne!(script_version(b"return 1"), script_version(b"return 2"));
    }

    #[test]
    fn names_are_checked_and_kept_once() {
        let config = |name: &str| CustomRuleConfig {
            name: name.to_owned(),
            script_file: "r.js".into(),
            suppress_for: one_day(),
            timeout_ms: None,
            memory_mb: None,
        };
        assert!(config("k-low-on-digoxin").validate("custom[0]").is_ok());
        for bad in ["", "Upper", "with space", "critical-value"] {
            let e = config(bad).validate("custom[1]").unwrap_err();
            assert!(e.0.starts_with("custom[1].name: "), "{e}");
        }
        let mut slow = config("slow");
        slow.timeout_ms = Some(0);
        let e = slow.validate("custom[2]").unwrap_err();
        assert!(e.0.starts_with("custom[2].timeout_ms: "), "{e}");
        assert!(std::ptr::eq(intern("same-name"), intern("same-name")));
    }
}
