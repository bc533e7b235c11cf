//! Loading FHIR `CodeSystem` and `ConceptMap` resources (JSON, R4, with
//! R5's `relationship`, `noMap` and unmapped modes read as well).

use serde_json::Value;

use crate::error::{Error, Result};
use crate::model::{
    CodeSystem, Concept, ConceptMap, Equivalence, Group, MapElement, MapScope, Target, UnmappedRule,
};

/// A JSON value with the file and JSON path it was found at, for errors.
struct At<'a> {
    file: &'a str,
    path: String,
    value: &'a Value,
}

impl<'a> At<'a> {
    fn err(&self, message: impl Into<String>) -> Error {
        Error::at(format!("{} {}", self.file, self.path), message)
    }

    fn key(&self, key: &str) -> Option<At<'a>> {
        let value = self.value.get(key)?;
        (!value.is_null()).then(|| At {
            file: self.file,
            path: format!("{}.{key}", self.path),
            value,
        })
    }

    fn string(&self, key: &str) -> Result<Option<String>> {
        match self.key(key) {
            None => Ok(None),
            Some(at) => match at.value.as_str() {
                Some(s) => Ok(Some(s.to_string())),
                None => Err(at.err("expected a string")),
            },
        }
    }

    fn required(&self, key: &str) -> Result<String> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            _ => Err(Error::at(
                format!("{} {}.{key}", self.file, self.path),
                "is required",
            )),
        }
    }

    fn array(&self, key: &str) -> Result<Vec<At<'a>>> {
        let Some(at) = self.key(key) else {
            return Ok(Vec::new());
        };
        let items = at
            .value
            .as_array()
            .ok_or_else(|| at.err("expected an array"))?;
        Ok(items
            .iter()
            .enumerate()
            .map(|(i, value)| At {
                file: self.file,
                path: format!("{}.{key}[{i}]", self.path),
                value,
            })
            .collect())
    }
}

fn root<'a>(file: &'a str, value: &'a Value, resource_type: &str) -> Result<At<'a>> {
    let at = At {
        file,
        path: "$".to_string(),
        value,
    };
    if !value.is_object() {
        return Err(at.err("expected a JSON object (a FHIR resource)"));
    }
    match at.string("resourceType")? {
        Some(t) if t == resource_type => Ok(at),
        Some(t) => Err(Error::at(
            format!("{file} $.resourceType"),
            format!("is {t:?}, expected {resource_type:?}"),
        )),
        None => Err(Error::at(
            format!("{file} $.resourceType"),
            format!("is missing, expected {resource_type:?}"),
        )),
    }
}

fn parse_json(file: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::at(
            format!("{file} line {} column {}", e.line(), e.column()),
            format!("not JSON: {e}"),
        )
    })
}

/// Reads a FHIR `CodeSystem`. Nested concepts are flattened; `file` names
/// the input in errors.
pub fn code_system_from_json(file: &str, text: &str) -> Result<CodeSystem> {
    let value = parse_json(file, text)?;
    let at = root(file, &value, "CodeSystem")?;
    let mut system = CodeSystem {
        url: at.required("url")?,
        version: at.string("version")?,
        name: at.string("name")?,
        ..CodeSystem::default()
    };
    // An explicit stack: a deep hierarchy in the input never deepens ours.
    let mut pending = at.array("concept")?;
    pending.reverse();
    while let Some(c) = pending.pop() {
        let code = c.required("code")?;
        let concept = Concept {
            code: code.clone(),
            display: c.string("display")?,
            definition: c.string("definition")?,
        };
        if system.concepts.insert(code.clone(), concept).is_some() {
            return Err(c.err(format!("code {code:?} appears twice")));
        }
        let mut children = c.array("concept")?;
        children.reverse();
        pending.extend(children);
    }
    Ok(system)
}

/// Reads a FHIR `ConceptMap`, applying to `scope`.
pub fn concept_map_from_json(file: &str, text: &str, scope: MapScope) -> Result<ConceptMap> {
    let value = parse_json(file, text)?;
    let at = root(file, &value, "ConceptMap")?;
    let mut map = ConceptMap {
        url: at.required("url")?,
        version: at.string("version")?,
        name: at.string("name")?,
        scope,
        groups: Vec::new(),
    };
    for g in at.array("group")? {
        let mut group = Group {
            source: g.required("source")?,
            target: g.required("target")?,
            ..Group::default()
        };
        for e in g.array("element")? {
            let mut element = MapElement {
                code: e.required("code")?,
                display: e.string("display")?,
                targets: Vec::new(),
            };
            for t in e.array("target")? {
                element.targets.push(Target {
                    code: t.string("code")?,
                    display: t.string("display")?,
                    equivalence: equivalence(&t)?,
                    comment: t.string("comment")?,
                });
            }
            if e.key("noMap").and_then(|v| v.value.as_bool()) == Some(true) {
                element.targets.push(Target {
                    code: None,
                    display: None,
                    equivalence: Equivalence::Unmatched,
                    comment: None,
                });
            }
            group.elements.push(element);
        }
        if let Some(u) = g.key("unmapped") {
            group.unmapped = Some(unmapped(&u)?);
        }
        map.groups.push(group);
    }
    Ok(map)
}

/// R4's `equivalence`, or R5's `relationship` read as the nearest R4 value.
fn equivalence(t: &At<'_>) -> Result<Equivalence> {
    if let Some(text) = t.string("equivalence")? {
        let place = t.key("equivalence").map_or_else(String::new, |k| k.path);
        return text
            .parse()
            .map_err(|m: String| Error::at(format!("{} {place}", t.file), m));
    }
    match t.string("relationship")?.as_deref() {
        Some("related-to") => Ok(Equivalence::RelatedTo),
        Some("equivalent") => Ok(Equivalence::Equivalent),
        // The source is narrower than the target: the target is wider.
        Some("source-is-narrower-than-target") => Ok(Equivalence::Wider),
        Some("source-is-broader-than-target") => Ok(Equivalence::Narrower),
        Some("not-related-to") => Ok(Equivalence::Disjoint),
        Some(other) => Err(t.err(format!("relationship {other:?} is not an R5 relationship"))),
        // R4 makes equivalence required, with `equivalent` as its meaning when absent.
        None => Ok(Equivalence::Equivalent),
    }
}

fn unmapped(u: &At<'_>) -> Result<UnmappedRule> {
    match u.required("mode")?.as_str() {
        "provided" | "use-source-code" => Ok(UnmappedRule::Provided),
        "fixed" => Ok(UnmappedRule::Fixed {
            code: u.required("code")?,
            display: u.string("display")?,
        }),
        "other-map" => {
            let url = match u.string("url")? {
                Some(url) => url,
                None => u.required("otherMap")?,
            };
            Ok(UnmappedRule::OtherMap(url))
        }
        other => Err(u.err(format!(
            "mode {other:?} is not one of provided, use-source-code, fixed, other-map"
        ))),
    }
}
