//! The search parameters Corridor indexes, per resource type, and how their values are
//! taken from a resource. The CapabilityStatement is built from the same table, so it
//! lists exactly what search accepts.

use serde_json::Value;

use crate::date::{self, Range};

/// The kinds of search parameter Corridor supports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `system|code` against Coding, CodeableConcept, Identifier or code values.
    Token,
    /// Case-insensitive prefix (or `:exact`) against strings and names.
    String,
    /// Ranges with prefixes `eq`, `ge`, `le`, `gt`, `lt`.
    Date,
    /// The patient compartment (`patient`, `subject`): the Patient and those merged into it.
    Patient,
    /// A reference to another resource (`Type/id`).
    Reference,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Token => "token",
            Kind::String => "string",
            Kind::Date => "date",
            Kind::Patient | Kind::Reference => "reference",
        }
    }
}

/// One search parameter of a resource type: its name, kind and the element paths it reads.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub paths: &'static [&'static str],
}

const fn p(name: &'static str, kind: Kind, paths: &'static [&'static str]) -> Param {
    Param { name, kind, paths }
}

use Kind::{Date, Patient as Pat, Reference as Ref, String as Str, Token};

/// Resource types with their own search parameters (besides `_id`). Types not listed
/// are stored and readable but not searchable.
pub static SEARCHABLE: &[(&str, &[Param])] = &[
    (
        "Patient",
        &[
            p("identifier", Token, &["identifier"]),
            p("name", Str, &["name"]),
            p("family", Str, &["name.family"]),
            p("given", Str, &["name.given"]),
            p("birthdate", Date, &["birthDate"]),
            p("gender", Token, &["gender"]),
            p("active", Token, &["active"]),
        ],
    ),
    (
        "Encounter",
        &[
            p("patient", Pat, &[]),
            p("subject", Pat, &[]),
            p("identifier", Token, &["identifier"]),
            p("date", Date, &["period"]),
            p("status", Token, &["status"]),
            p("class", Token, &["class"]),
        ],
    ),
    (
        "Observation",
        &[
            p("patient", Pat, &[]),
            p("subject", Pat, &[]),
            p("identifier", Token, &["identifier"]),
            p("code", Token, &["code"]),
            p(
                "date",
                Date,
                &["effectiveDateTime", "effectivePeriod", "effectiveInstant"],
            ),
            p("category", Token, &["category"]),
            p("status", Token, &["status"]),
            p("encounter", Ref, &["encounter"]),
            p("based-on", Ref, &["basedOn"]),
        ],
    ),
    (
        "DiagnosticReport",
        &[
            p("patient", Pat, &[]),
            p("subject", Pat, &[]),
            p("identifier", Token, &["identifier"]),
            p("code", Token, &["code"]),
            p("date", Date, &["effectiveDateTime", "effectivePeriod"]),
            p("category", Token, &["category"]),
            p("status", Token, &["status"]),
            p("based-on", Ref, &["basedOn"]),
        ],
    ),
    (
        "AllergyIntolerance",
        &[
            p("patient", Pat, &[]),
            p("identifier", Token, &["identifier"]),
            p("code", Token, &["code"]),
            p("clinical-status", Token, &["clinicalStatus"]),
            p("date", Date, &["recordedDate"]),
        ],
    ),
    (
        "MedicationRequest",
        &[
            p("patient", Pat, &[]),
            p("subject", Pat, &[]),
            p("identifier", Token, &["identifier"]),
            p("code", Token, &["medicationCodeableConcept"]),
            p("status", Token, &["status"]),
            p("authoredon", Date, &["authoredOn"]),
        ],
    ),
    (
        "Immunization",
        &[
            p("patient", Pat, &[]),
            p("identifier", Token, &["identifier"]),
            p("vaccine-code", Token, &["vaccineCode"]),
            p("date", Date, &["occurrenceDateTime"]),
            p("status", Token, &["status"]),
        ],
    ),
    (
        "Condition",
        &[
            p("patient", Pat, &[]),
            p("subject", Pat, &[]),
            p("identifier", Token, &["identifier"]),
            p("code", Token, &["code"]),
            p("category", Token, &["category"]),
            p("clinical-status", Token, &["clinicalStatus"]),
            p("onset-date", Date, &["onsetDateTime", "onsetPeriod"]),
        ],
    ),
    (
        "ServiceRequest",
        &[
            p("patient", Pat, &[]),
            p("subject", Pat, &[]),
            p("identifier", Token, &["identifier"]),
            p("code", Token, &["code"]),
            p("status", Token, &["status"]),
            p("authored", Date, &["authoredOn"]),
        ],
    ),
    (
        "DocumentReference",
        &[
            p("patient", Pat, &[]),
            p("subject", Pat, &[]),
            p("identifier", Token, &["identifier"]),
            p("type", Token, &["type"]),
            p("category", Token, &["category"]),
            p("date", Date, &["date"]),
            p("status", Token, &["status"]),
        ],
    ),
];

/// Parameters every searchable type has besides its own: `_lastUpdated` reads
/// `meta.lastUpdated`, which the repository sets on each version it writes.
pub static COMMON: &[Param] = &[p("_lastUpdated", Date, &["meta.lastUpdated"])];

/// The resource type a [`Kind::Reference`] parameter points to, for `_revinclude`.
pub fn reference_target(name: &str) -> Option<&'static str> {
    match name {
        "encounter" => Some("Encounter"),
        "based-on" => Some("ServiceRequest"),
        _ => None,
    }
}

/// The parameter `name` of `resource_type`: its own or a [`COMMON`] one.
pub fn param_of(resource_type: &str, name: &str) -> Option<&'static Param> {
    params_of(resource_type)?
        .iter()
        .chain(COMMON)
        .find(|p| p.name == name)
}

/// The parameters of `resource_type`, when it is searchable.
pub fn params_of(resource_type: &str) -> Option<&'static [Param]> {
    SEARCHABLE
        .iter()
        .find(|(t, _)| *t == resource_type)
        .map(|(_, params)| *params)
}

/// The rows a resource adds to the index tables.
#[derive(Debug, Default)]
pub struct Extracted {
    pub tokens: Vec<(&'static str, String, String)>,
    pub strings: Vec<(&'static str, String)>,
    pub dates: Vec<(&'static str, Range)>,
    pub references: Vec<(&'static str, String)>,
}

/// Everything `resource`'s search parameters find in it.
pub fn extract(resource_type: &str, resource: &Value) -> Extracted {
    let mut out = Extracted::default();
    let Some(params) = params_of(resource_type) else {
        return out;
    };
    for param in COMMON.iter().chain(params) {
        for path in param.paths {
            let mut nodes = Vec::new();
            walk(resource, path, &mut nodes);
            for node in nodes {
                match param.kind {
                    Kind::Token => tokens(node, param.name, &mut out.tokens),
                    Kind::String => strings(node, param.name, &mut out.strings),
                    Kind::Date => {
                        if let Some(range) = date_range(node) {
                            out.dates.push((param.name, range));
                        }
                    }
                    Kind::Reference => {
                        if let Some(r) = node.get("reference").and_then(Value::as_str) {
                            out.references.push((param.name, r.to_owned()));
                        }
                    }
                    Kind::Patient => {}
                }
            }
        }
    }
    out
}

/// The nodes at a dotted path, arrays flattened at every step.
fn walk<'a>(node: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    let (head, rest) = match path.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (path, None),
    };
    let Some(child) = node.get(head) else {
        return;
    };
    let items: Vec<&Value> = match child {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    for item in items {
        match rest {
            Some(rest) => walk(item, rest, out),
            None => out.push(item),
        }
    }
}

fn tokens(node: &Value, param: &'static str, out: &mut Vec<(&'static str, String, String)>) {
    match node {
        Value::String(s) => out.push((param, String::new(), s.clone())),
        Value::Bool(b) => out.push((param, String::new(), b.to_string())),
        Value::Object(map) => {
            if let Some(codings) = map.get("coding").and_then(Value::as_array) {
                for coding in codings {
                    tokens(coding, param, out);
                }
                return;
            }
            let system = map
                .get("system")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            if let Some(code) = map
                .get("code")
                .or_else(|| map.get("value"))
                .and_then(Value::as_str)
            {
                out.push((param, system, code.to_owned()));
            }
        }
        _ => {}
    }
}

/// Strings are indexed lower-cased, so search is case-insensitive.
pub fn normalize(text: &str) -> String {
    text.trim().to_lowercase()
}

fn strings(node: &Value, param: &'static str, out: &mut Vec<(&'static str, String)>) {
    match node {
        Value::String(s) => out.push((param, normalize(s))),
        Value::Object(map) => {
            for key in ["text", "family", "given", "prefix", "suffix"] {
                match map.get(key) {
                    Some(Value::String(s)) => out.push((param, normalize(s))),
                    Some(Value::Array(items)) => {
                        for s in items.iter().filter_map(Value::as_str) {
                            out.push((param, normalize(s)));
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn date_range(node: &Value) -> Option<Range> {
    match node {
        Value::String(s) => date::parse(s),
        Value::Object(map) => {
            let start = map
                .get("start")
                .and_then(Value::as_str)
                .and_then(date::parse);
            let end = map.get("end").and_then(Value::as_str).and_then(date::parse);
            match (start, end) {
                (None, None) => None,
                // A period without an end is still going on.
                (Some(s), None) => Some(Range {
                    lo: s.lo,
                    hi: i64::MAX,
                }),
                (None, Some(e)) => Some(Range {
                    lo: i64::MIN,
                    hi: e.hi,
                }),
                (Some(s), Some(e)) => Some(Range { lo: s.lo, hi: e.hi }),
            }
        }
        _ => None,
    }
}
