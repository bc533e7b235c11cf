//! Profiles: per channel or per sender, rules that tighten or relax the base
//! standard, written in a small TOML form.
//!
//! ```toml
//! name = "Lab results from Acme"
//!
//! [severity]                     # relax (or silence) kinds of finding
//! too_long = "off"
//! required_component_missing = "off"
//!
//! [[rule]]
//! path = "PID-3.4"               # SEG[occurrence]-field[repetition].component.subcomponent
//! required = true
//!
//! [[rule]]
//! path = "OBX-3.3"
//! value_set = "observation_codes"
//! severity = "warning"
//!
//! [[rule]]
//! path = "MSH-4.2"
//! pattern = "[0-9]+(\\.[0-9]+)*"   # the whole value must match
//! message = "MSH-4.2 must be an OID"
//!
//! [[rule]]
//! path = "PID-8"
//! allowed = ["F", "M", "U"]
//!
//! [[rule]]
//! path = "PID-3[2]"              # a value here is an error
//! forbidden = true
//!
//! [[rule]]                       # only for some messages
//! path = "PID-5.1"
//! allowed = ["Redacted"]
//! when = { path = "MSH-8", in = ["D"] }
//!
//! [value_sets]
//! observation_codes = ["LN", "SCT", "99ACME"]
//!
//! [[segment]]                    # a Z-segment, validated and documented like the standard's
//! id = "ZPI"
//! name = "Patient extras"
//! fields = [
//!   { name = "Set ID", type = "SI", optionality = "R" },
//!   { name = "Preferred pharmacy", type = "XON", repeats = true, length = 250 },
//! ]
//! ```
//!
//! A path without an occurrence applies to every occurrence of the segment,
//! and without a repetition to every repetition of the field. A `required`
//! rule whose segment is absent altogether is a finding too.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use regex::Regex;
use serde::Deserialize;

use super::fields::{
    FieldFinding, MessageFields, Overrides, ValidationOptions, validate_message_with,
};
use super::{ErrorCode, FieldPosition, Finding, FindingKind, Severity, StructureMatcher};
use crate::{FieldDef, MessageStructure, Optionality, Repetition, SegmentDef, VersionSpec};

/// A profile that could not be read: what and where, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileError(pub String);

impl fmt::Display for ProfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProfileError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileToml {
    #[serde(default)]
    name: String,
    #[serde(default)]
    severity: BTreeMap<String, String>,
    #[serde(default)]
    rule: Vec<RuleToml>,
    #[serde(default)]
    value_sets: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    segment: Vec<SegmentToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleToml {
    path: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    forbidden: bool,
    allowed: Option<Vec<String>>,
    value_set: Option<String>,
    pattern: Option<String>,
    severity: Option<String>,
    message: Option<String>,
    when: Option<WhenToml>,
}

/// `when = { path = "MSH-8", in = ["D", "P"] }`: the rule applies only to
/// messages whose first value at `path` is one of `in`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WhenToml {
    path: String,
    #[serde(rename = "in")]
    values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentToml {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    fields: Vec<FieldToml>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldToml {
    name: String,
    #[serde(rename = "type", default = "default_type")]
    data_type: String,
    #[serde(default = "default_optionality")]
    optionality: String,
    #[serde(default)]
    repeats: bool,
    length: Option<u32>,
    table: Option<u32>,
}

fn default_type() -> String {
    "ST".to_string()
}

fn default_optionality() -> String {
    "O".to_string()
}

/// `SEG[occurrence]-field[repetition].component.subcomponent`, 1-based;
/// `None` means every occurrence or repetition, 0 the whole field or component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValuePath {
    pub segment: String,
    pub occurrence: Option<usize>,
    pub field: u16,
    pub repetition: Option<usize>,
    pub component: usize,
    pub subcomponent: usize,
}

impl ValuePath {
    /// Parses `PID-3`, `OBX[2]-5`, `PID-3[2].1`, `PID-3.4.2`.
    pub fn parse(text: &str) -> Result<ValuePath, ProfileError> {
        let bad = |why: &str| ProfileError(format!("path {text:?}: {why}"));
        let (seg_part, rest) = text
            .split_once('-')
            .ok_or_else(|| bad("expected SEG-field"))?;
        let (segment, occurrence) = bracketed(seg_part).ok_or_else(|| bad("bad segment"))?;
        if segment.len() != 3 || !segment.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(bad("a segment id has three letters or digits"));
        }
        let mut parts = rest.split('.');
        let (field, repetition) =
            bracketed(parts.next().unwrap_or("")).ok_or_else(|| bad("bad field"))?;
        let field: u16 = field.parse().map_err(|_| bad("field is not a number"))?;
        let mut number = |what: &str| -> Result<usize, ProfileError> {
            match parts.next() {
                None => Ok(0),
                Some(n) => n
                    .parse()
                    .map_err(|_| bad(&format!("{what} is not a number"))),
            }
        };
        let component = number("component")?;
        let subcomponent = number("subcomponent")?;
        if parts.next().is_some() || field == 0 {
            return Err(bad("expected SEG-field[.component[.subcomponent]]"));
        }
        Ok(ValuePath {
            segment: segment.to_string(),
            occurrence,
            field,
            repetition,
            component,
            subcomponent,
        })
    }
}

impl fmt::Display for ValuePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.segment)?;
        if let Some(o) = self.occurrence {
            write!(f, "[{o}]")?;
        }
        write!(f, "-{}", self.field)?;
        if let Some(r) = self.repetition {
            write!(f, "[{r}]")?;
        }
        if self.component > 0 {
            write!(f, ".{}", self.component)?;
        }
        if self.subcomponent > 0 {
            write!(f, ".{}", self.subcomponent)?;
        }
        Ok(())
    }
}

/// `"OBX[2]"` -> `("OBX", Some(2))`, `"OBX"` -> `("OBX", None)`.
fn bracketed(text: &str) -> Option<(&str, Option<usize>)> {
    match text.split_once('[') {
        None => Some((text, None)),
        Some((name, rest)) => {
            let n: usize = rest.strip_suffix(']')?.parse().ok()?;
            (n > 0).then_some((name, Some(n)))
        }
    }
}

pub(crate) enum Check {
    Allowed(Vec<String>),
    Pattern(Regex),
}

pub(crate) struct Rule {
    pub(crate) path: ValuePath,
    pub(crate) required: bool,
    /// Usage X: the value must be empty.
    pub(crate) forbidden: bool,
    /// Judge `required` only where the enclosing element has a value: a
    /// component R inside a valued repetition of its field, a subcomponent R
    /// inside a valued component (usage R is relative to its parent).
    pub(crate) only_if_parent_valued: bool,
    /// A `required` rule whose segment is absent is a finding too (TOML
    /// rules); a conformance profile leaves segment presence to its structure.
    pub(crate) absent_segment_counts: bool,
    pub(crate) checks: Vec<Check>,
    pub(crate) severity: Severity,
    pub(crate) message: Option<String>,
    /// Applies only when the first value at this path is one of these.
    pub(crate) when: Option<(ValuePath, Vec<String>)>,
    /// Conditional usage (C) of a component or subcomponent whose predicate
    /// asks whether a sibling is valued: it decides `required`/`forbidden`.
    pub(crate) predicate: Option<SiblingPredicate>,
}

/// `<Valued location="./N"/>`, possibly under `<NOT>`, with the usages that
/// apply when it holds and when it does not, as (required, forbidden).
pub(crate) struct SiblingPredicate {
    pub(crate) sibling: usize,
    pub(crate) negated: bool,
    pub(crate) when_true: (bool, bool),
    pub(crate) when_false: (bool, bool),
}

/// A validation profile: rules on values, severities per kind of finding,
/// and definitions of Z-segments.
pub struct Profile {
    pub name: String,
    pub(crate) rules: Vec<Rule>,
    /// `None` silences the kind.
    pub(crate) overrides: HashMap<FindingKind, Option<Severity>>,
    pub(crate) segments: Vec<SegmentDef>,
    /// From a conformance profile: the message it describes, its structure
    /// (compiled), and segment definitions that replace the standard's.
    pub(crate) conformance: Option<Conformance>,
    /// The rules in runs about one segment id (a conformance profile has
    /// thousands, written segment by segment): each run looks the segment up
    /// once, and a run about a segment the message lacks is skipped whole
    /// unless one of its rules reports absent segments.
    pub(crate) runs: Vec<RuleRun>,
}

pub(crate) struct RuleRun {
    segment: String,
    rules: std::ops::Range<usize>,
    reports_absent: bool,
}

/// Groups consecutive rules about the same segment id.
pub(crate) fn rule_runs(rules: &[Rule]) -> Vec<RuleRun> {
    let mut runs: Vec<RuleRun> = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let reports_absent = rule.required && rule.absent_segment_counts;
        match runs.last_mut() {
            Some(run) if run.segment == rule.path.segment => {
                run.rules.end = i + 1;
                run.reports_absent |= reports_absent;
            }
            _ => runs.push(RuleRun {
                segment: rule.path.segment.clone(),
                rules: i..i + 1,
                reports_absent,
            }),
        }
    }
    runs
}

impl fmt::Debug for Profile {
    /// A summary: the rules themselves hold compiled patterns.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Profile")
            .field("name", &self.name)
            .field("rules", &self.rules.len())
            .field("segments", &self.segments.len())
            .field("structure", &self.structure().map(|s| s.id))
            .finish()
    }
}

pub(crate) struct Conformance {
    pub(crate) message_type: String,
    pub(crate) trigger_event: String,
    pub(crate) structure: MessageStructure,
    pub(crate) matcher: StructureMatcher,
}

fn severity_named(text: &str) -> Result<Option<Severity>, ProfileError> {
    match text {
        "error" => Ok(Some(Severity::Error)),
        "warning" => Ok(Some(Severity::Warning)),
        "off" => Ok(None),
        other => Err(ProfileError(format!(
            "severity {other:?}: expected \"error\", \"warning\" or \"off\""
        ))),
    }
}

fn kind_named(text: &str) -> Option<FindingKind> {
    Some(match text {
        "unexpected_segment" => FindingKind::UnexpectedSegment,
        "segment_out_of_order" => FindingKind::SegmentOutOfOrder,
        "missing_segment" => FindingKind::MissingSegment,
        "too_many_repetitions" => FindingKind::TooManyRepetitions,
        "unknown_structure" => FindingKind::UnknownStructure,
        "required_field_missing" => FindingKind::RequiredFieldMissing,
        "required_component_missing" => FindingKind::RequiredComponentMissing,
        "too_many_field_repetitions" => FindingKind::TooManyFieldRepetitions,
        "invalid_format" => FindingKind::InvalidFormat,
        "not_in_table" => FindingKind::NotInTable,
        "too_long" => FindingKind::TooLong,
        "profile_rule" => FindingKind::ProfileRule,
        _ => return None,
    })
}

/// Profile text is configuration, read once; its Z-segment names become
/// `'static` so they fit the same definitions as the standard's.
pub(crate) fn keep(text: String) -> &'static str {
    Box::leak(text.into_boxed_str())
}

impl Profile {
    /// Reads a profile from its TOML text. Unknown keys, unknown severities
    /// and finding kinds, bad paths and bad patterns are errors that name them.
    pub fn from_toml(text: &str) -> Result<Profile, ProfileError> {
        let raw: ProfileToml =
            toml::from_str(text).map_err(|e| ProfileError(format!("profile: {e}")))?;
        let mut overrides = HashMap::new();
        for (kind, severity) in &raw.severity {
            let k = kind_named(kind).ok_or_else(|| {
                ProfileError(format!("[severity]: unknown kind of finding {kind:?}"))
            })?;
            overrides.insert(k, severity_named(severity)?);
        }
        let mut rules = Vec::new();
        for (n, r) in raw.rule.into_iter().enumerate() {
            let at =
                |e: ProfileError| ProfileError(format!("rule {} ({}): {}", n + 1, r.path, e.0));
            let path = ValuePath::parse(&r.path).map_err(at)?;
            let mut checks = Vec::new();
            if let Some(values) = r.allowed.clone() {
                checks.push(Check::Allowed(values));
            }
            if let Some(set) = &r.value_set {
                let values = raw
                    .value_sets
                    .get(set)
                    .ok_or_else(|| at(ProfileError(format!("no value set named {set:?}"))))?;
                checks.push(Check::Allowed(values.clone()));
            }
            if let Some(p) = &r.pattern {
                let re = Regex::new(&format!("^(?:{p})$"))
                    .map_err(|e| at(ProfileError(format!("pattern: {e}"))))?;
                checks.push(Check::Pattern(re));
            }
            if checks.is_empty() && !r.required && !r.forbidden {
                return Err(at(ProfileError(
                    "a rule needs required, forbidden, allowed, value_set or pattern".into(),
                )));
            }
            let severity = match r.severity.as_deref() {
                None | Some("error") => Severity::Error,
                Some("warning") => Severity::Warning,
                Some(other) => {
                    return Err(at(ProfileError(format!(
                        "severity {other:?}: a rule is \"error\" or \"warning\" (delete it to turn it off)"
                    ))));
                }
            };
            let when = match &r.when {
                None => None,
                Some(w) => Some((ValuePath::parse(&w.path).map_err(at)?, w.values.clone())),
            };
            rules.push(Rule {
                when,
                predicate: None,
                path,
                required: r.required,
                forbidden: r.forbidden,
                only_if_parent_valued: false,
                absent_segment_counts: true,
                checks,
                severity,
                message: r.message,
            });
        }
        let mut segments = Vec::new();
        for seg in raw.segment {
            if seg.id.len() != 3 {
                return Err(ProfileError(format!(
                    "[[segment]] {:?}: an id has three characters",
                    seg.id
                )));
            }
            let id = keep(seg.id);
            let mut fields = Vec::new();
            for (i, f) in seg.fields.into_iter().enumerate() {
                let optionality = Optionality::from_code(&f.optionality).ok_or_else(|| {
                    ProfileError(format!(
                        "[[segment]] {id} field {}: optionality {:?} is not R, O, C, X, B or W",
                        i + 1,
                        f.optionality
                    ))
                })?;
                fields.push(FieldDef {
                    segment: id,
                    seq: i as u16 + 1,
                    name: keep(f.name),
                    data_type: keep(f.data_type),
                    optionality,
                    repetition: if f.repeats {
                        Repetition::Unbounded
                    } else {
                        Repetition::Single
                    },
                    max_length: f.length,
                    table: f.table,
                });
            }
            segments.push(SegmentDef {
                id,
                name: keep(seg.name),
                fields,
            });
        }
        Ok(Profile {
            name: raw.name,
            runs: rule_runs(&rules),
            rules,
            overrides,
            segments,
            conformance: None,
        })
    }

    /// Reads a profile from its text, TOML or XML: text whose first
    /// non-blank character is `<` is an HL7 v2 XML conformance profile
    /// ([`Profile::from_conformance_xml`]), anything else the TOML form
    /// ([`Profile::from_toml`]).
    pub fn parse(text: &str) -> Result<Profile, ProfileError> {
        let text = text.trim_start_matches('\u{feff}');
        if text.trim_start().starts_with('<') {
            Profile::from_conformance_xml(text)
        } else {
            Profile::from_toml(text)
        }
    }

    /// Reads a profile file, TOML or XML by its content (see
    /// [`Profile::parse`]); errors name the file.
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Profile, ProfileError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ProfileError(format!("{}: {e}", path.display())))?;
        Profile::parse(&text).map_err(|e| ProfileError(format!("{}: {}", path.display(), e.0)))
    }

    /// The Z-segments this profile defines (for documentation and the CLI).
    pub fn segments(&self) -> &[SegmentDef] {
        &self.segments
    }

    /// Validates a message against the base standard of `spec` tightened or
    /// relaxed by this profile. Findings are ordered by segment.
    pub fn validate<'a, M: MessageFields + ?Sized>(
        &'a self,
        spec: &'a VersionSpec,
        message: &M,
        options: &ValidationOptions,
    ) -> Vec<Finding> {
        let mut absent = Vec::new();
        if let Some(c) = &self.conformance {
            if let Some(mismatch) = c.mismatch(message) {
                return vec![mismatch];
            }
        }
        let overrides = Overrides {
            segments: &self.segments,
            segments_replace_base: self.conformance.is_some(),
            matcher: self.conformance.as_ref().map(|c| &c.matcher),
        };
        // Where each segment id occurs, found once: a conformance profile has
        // thousands of rules, each about one segment id.
        let mut positions: HashMap<&str, Vec<usize>> = HashMap::new();
        for index in 0..message.segment_count() {
            positions
                .entry(message.segment_id(index))
                .or_default()
                .push(index);
        }
        let mut findings = validate_message_with(spec, message, options, &overrides, |out| {
            for run in &self.runs {
                let at = positions
                    .get(run.segment.as_str())
                    .map_or(&[][..], Vec::as_slice);
                if at.is_empty() && !run.reports_absent {
                    continue;
                }
                for rule in &self.rules[run.rules.clone()] {
                    self.check_rule(rule, message, at, out, &mut absent);
                }
            }
        });
        findings.extend(absent);
        findings.retain_mut(|f| match self.overrides.get(&f.kind) {
            None => true,
            Some(None) => false,
            Some(Some(severity)) => {
                f.severity = *severity;
                true
            }
        });
        findings
    }

    fn check_rule<M: MessageFields + ?Sized>(
        &self,
        rule: &Rule,
        message: &M,
        positions: &[usize],
        out: &mut Vec<FieldFinding>,
        absent: &mut Vec<Finding>,
    ) {
        let seps = message.separators();
        if positions.is_empty() && !(rule.required && rule.absent_segment_counts) {
            return;
        }
        if let Some((path, values)) = &rule.when {
            let value = first_value(message, path).unwrap_or("");
            if !values.iter().any(|v| v == value) {
                return;
            }
        }
        let p = &rule.path;
        let mut occurrence = 0;
        for &index in positions {
            occurrence += 1;
            if p.occurrence.is_some_and(|o| o != occurrence) {
                continue;
            }
            let raw = message.field(index, p.field as usize).unwrap_or("");
            if raw.is_empty() && rule.only_if_parent_valued {
                // Nothing inside an empty field is required.
                continue;
            }
            let header = matches!(p.segment.as_str(), "MSH" | "BHS" | "FHS") && p.field <= 2;
            // The header fields hold the separators themselves: one value.
            let repetition = if header { '\r' } else { seps.repetition };
            let mut valued = false;
            for (r, rep) in raw.split(repetition).enumerate() {
                if p.repetition.is_some_and(|want| want != r + 1) {
                    continue;
                }
                let mut value = rep;
                if p.component > 0 {
                    value = value
                        .split(seps.component)
                        .nth(p.component - 1)
                        .unwrap_or("");
                }
                let parent = if p.subcomponent > 0 { value } else { rep };
                if p.subcomponent > 0 {
                    value = value
                        .split(seps.subcomponent)
                        .nth(p.subcomponent - 1)
                        .unwrap_or("");
                }
                let (required, forbidden) = match &rule.predicate {
                    None => (rule.required, rule.forbidden),
                    Some(pred) => {
                        let separator = if p.subcomponent > 0 {
                            seps.subcomponent
                        } else {
                            seps.component
                        };
                        let sibling_valued = parent
                            .split(separator)
                            .nth(pred.sibling - 1)
                            .is_some_and(|v| !v.is_empty());
                        if sibling_valued != pred.negated {
                            pred.when_true
                        } else {
                            pred.when_false
                        }
                    }
                };
                if value.is_empty() {
                    if required && rule.only_if_parent_valued && !parent.is_empty() {
                        out.push(rule.missing(index, p, r + 1));
                    }
                    continue;
                }
                valued = true;
                let at = FieldPosition {
                    field: p.field,
                    repetition: r + 1,
                    component: p.component,
                    subcomponent: p.subcomponent,
                };
                if forbidden {
                    out.push(FieldFinding {
                        segment: index,
                        kind: FindingKind::ProfileRule,
                        code: ErrorCode::DataTypeError,
                        severity: rule.severity,
                        at,
                        message: rule.message.clone().unwrap_or_else(|| {
                            format!(
                                "{p} is not supported by the profile (usage X) and must be empty"
                            )
                        }),
                    });
                }
                for check in &rule.checks {
                    let (ok, code, what) = match check {
                        Check::Allowed(values) => (
                            values.iter().any(|v| v == value),
                            ErrorCode::TableValueNotFound,
                            "is not one of the values the profile allows",
                        ),
                        Check::Pattern(re) => (
                            re.is_match(value),
                            ErrorCode::DataTypeError,
                            "does not match the profile's pattern",
                        ),
                    };
                    if !ok {
                        out.push(FieldFinding {
                            segment: index,
                            kind: FindingKind::ProfileRule,
                            code,
                            severity: rule.severity,
                            at,
                            message: rule
                                .message
                                .clone()
                                .unwrap_or_else(|| format!("{p}: value {what}")),
                        });
                    }
                }
            }
            if rule.required && !valued && !rule.only_if_parent_valued {
                out.push(rule.missing(index, p, p.repetition.unwrap_or(1)));
            }
        }
        let wanted = p.occurrence.unwrap_or(1);
        if rule.required && rule.absent_segment_counts && occurrence < wanted {
            absent.push(Finding {
                kind: FindingKind::ProfileRule,
                code: ErrorCode::RequiredFieldMissing,
                severity: rule.severity,
                path: p.to_string(),
                segment_index: None,
                segment_id: p.segment.clone(),
                segment_sequence: Some(wanted),
                field: Some(FieldPosition {
                    field: p.field,
                    repetition: p.repetition.unwrap_or(1),
                    component: p.component,
                    subcomponent: p.subcomponent,
                }),
                message: rule.message.clone().unwrap_or_else(|| {
                    format!(
                        "{p} is required by the profile, and the message has no such {} segment",
                        p.segment
                    )
                }),
            });
        }
    }
}

impl Rule {
    /// The finding for a required value that is empty.
    fn missing(&self, segment: usize, p: &ValuePath, repetition: usize) -> FieldFinding {
        FieldFinding {
            segment,
            kind: FindingKind::ProfileRule,
            code: ErrorCode::RequiredFieldMissing,
            severity: self.severity,
            at: FieldPosition {
                field: p.field,
                repetition,
                component: p.component,
                subcomponent: p.subcomponent,
            },
            message: self
                .message
                .clone()
                .unwrap_or_else(|| format!("{p} is required by the profile and is empty")),
        }
    }
}

impl Conformance {
    /// A finding when the message is not the type and event the profile describes.
    fn mismatch<M: MessageFields + ?Sized>(&self, message: &M) -> Option<Finding> {
        let component = message.separators().component;
        let msh9 = message.field(0, 9).unwrap_or("");
        let mut parts = msh9.split(component);
        let (t, e) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if t == self.message_type && (self.trigger_event.is_empty() || e == self.trigger_event) {
            return None;
        }
        let is_type = t == self.message_type;
        Some(Finding {
            kind: FindingKind::UnknownStructure,
            code: if is_type {
                ErrorCode::UnsupportedEventCode
            } else {
                ErrorCode::UnsupportedMessageType
            },
            severity: Severity::Error,
            path: "MSH-9".to_string(),
            segment_index: (message.segment_count() > 0).then_some(0),
            segment_id: "MSH".to_string(),
            segment_sequence: Some(1),
            field: Some(FieldPosition {
                field: 9,
                repetition: 1,
                component: 0,
                subcomponent: 0,
            }),
            message: format!(
                "the profile describes {}^{} ({}); the message is {t}^{e}",
                self.message_type, self.trigger_event, self.structure.id
            ),
        })
    }
}

/// The first value at `path` (first occurrence and repetition unless the
/// path names them).
fn first_value<'m, M: MessageFields + ?Sized>(message: &'m M, path: &ValuePath) -> Option<&'m str> {
    let seps = message.separators();
    let wanted = path.occurrence.unwrap_or(1);
    let index = (0..message.segment_count())
        .filter(|&i| message.segment_id(i) == path.segment)
        .nth(wanted - 1)?;
    let raw = message.field(index, path.field as usize)?;
    let header = matches!(path.segment.as_str(), "MSH" | "BHS" | "FHS") && path.field <= 2;
    let mut value = if header {
        raw
    } else {
        raw.split(seps.repetition)
            .nth(path.repetition.unwrap_or(1) - 1)?
    };
    if path.component > 0 {
        value = value.split(seps.component).nth(path.component - 1)?;
    }
    if path.subcomponent > 0 {
        value = value.split(seps.subcomponent).nth(path.subcomponent - 1)?;
    }
    Some(value)
}
