//! Loaded content written back as FHIR R4 JSON, for the `/fhir` terminology routes:
//! `CodeSystem` and `ConceptMap` resources, with an id made from the URL.

use serde_json::{Map, Value, json};

use crate::model::{CodeSystem, ConceptMap, UnmappedRule};
use crate::terminology::Terminology;

/// A FHIR id (`[A-Za-z0-9\-\.]{1,64}`) for a canonical URL: its last path segment
/// when that is an id already, else every other character as `-`.
pub fn id_for_url(url: &str) -> String {
    let last = url.trim_end_matches('/').rsplit('/').next().unwrap_or(url);
    let valid = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if valid(last) {
        return last.to_owned();
    }
    let mut id: String = url
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    id.truncate(64);
    let id = id.trim_matches('-').to_owned();
    if id.is_empty() { "map".to_owned() } else { id }
}

/// Every concept map of `t` with its id: a second map of the same id (a CSV map
/// split by scope) gets `-2`, `-3`...
pub fn concept_maps_with_ids(t: &Terminology) -> Vec<(String, &ConceptMap)> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    t.concept_maps()
        .iter()
        .map(|m| {
            let base = id_for_url(&m.url);
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            let id = if *n == 1 { base } else { format!("{base}-{n}") };
            (id, m)
        })
        .collect()
}

/// Every code system of `t` with its id, by URL.
pub fn code_systems_with_ids(t: &Terminology) -> Vec<(String, &CodeSystem)> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    t.code_systems()
        .into_iter()
        .map(|s| {
            let base = id_for_url(&s.url);
            let n = seen.entry(base.clone()).or_insert(0);
            *n += 1;
            let id = if *n == 1 { base } else { format!("{base}-{n}") };
            (id, s)
        })
        .collect()
}

fn put(object: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value {
        object.insert(key.to_owned(), Value::String(v.clone()));
    }
}

/// A `CodeSystem` resource (`content` complete, concepts flat).
pub fn code_system_json(id: &str, system: &CodeSystem) -> Value {
    let mut o = Map::new();
    o.insert("resourceType".into(), json!("CodeSystem"));
    o.insert("id".into(), json!(id));
    o.insert("url".into(), json!(system.url));
    put(&mut o, "version", system.version.as_ref());
    put(&mut o, "name", system.name.as_ref());
    o.insert("status".into(), json!("active"));
    o.insert("content".into(), json!("complete"));
    o.insert("count".into(), json!(system.concepts.len()));
    let concepts: Vec<Value> = system
        .concepts
        .values()
        .map(|c| {
            let mut m = Map::new();
            m.insert("code".into(), json!(c.code));
            put(&mut m, "display", c.display.as_ref());
            put(&mut m, "definition", c.definition.as_ref());
            Value::Object(m)
        })
        .collect();
    if !concepts.is_empty() {
        o.insert("concept".into(), Value::Array(concepts));
    }
    Value::Object(o)
}

/// A `ConceptMap` resource (R4). A scoped map says its scope in `useContext`-free
/// words: an extension would need a definition, so it goes in `description`.
pub fn concept_map_json(id: &str, map: &ConceptMap) -> Value {
    let mut o = Map::new();
    o.insert("resourceType".into(), json!("ConceptMap"));
    o.insert("id".into(), json!(id));
    o.insert("url".into(), json!(map.url));
    put(&mut o, "version", map.version.as_ref());
    put(&mut o, "name", map.name.as_ref());
    o.insert("status".into(), json!("active"));
    if map.scope.sender.is_some() || !map.scope.fields.is_empty() {
        o.insert(
            "description".into(),
            json!(format!(
                "Applies to sender {} in fields {}",
                map.scope.sender.as_deref().unwrap_or("(any)"),
                if map.scope.fields.is_empty() {
                    "(any)".to_owned()
                } else {
                    map.scope.fields.join(", ")
                }
            )),
        );
    }
    let groups: Vec<Value> = map
        .groups
        .iter()
        .map(|g| {
            let elements: Vec<Value> = g
                .elements
                .iter()
                .map(|e| {
                    let mut em = Map::new();
                    em.insert("code".into(), json!(e.code));
                    put(&mut em, "display", e.display.as_ref());
                    let targets: Vec<Value> = e
                        .targets
                        .iter()
                        .map(|t| {
                            let mut tm = Map::new();
                            put(&mut tm, "code", t.code.as_ref());
                            put(&mut tm, "display", t.display.as_ref());
                            tm.insert("equivalence".into(), json!(t.equivalence.as_str()));
                            put(&mut tm, "comment", t.comment.as_ref());
                            Value::Object(tm)
                        })
                        .collect();
                    em.insert("target".into(), Value::Array(targets));
                    Value::Object(em)
                })
                .collect();
            let mut gm = Map::new();
            gm.insert("source".into(), json!(g.source));
            gm.insert("target".into(), json!(g.target));
            gm.insert("element".into(), Value::Array(elements));
            if let Some(rule) = &g.unmapped {
                gm.insert(
                    "unmapped".into(),
                    match rule {
                        UnmappedRule::Provided => json!({"mode": "provided"}),
                        UnmappedRule::Fixed { code, display } => {
                            let mut u = Map::new();
                            u.insert("mode".into(), json!("fixed"));
                            u.insert("code".into(), json!(code));
                            put(&mut u, "display", display.as_ref());
                            Value::Object(u)
                        }
                        UnmappedRule::OtherMap(url) => json!({"mode": "other-map", "url": url}),
                    },
                );
            }
            Value::Object(gm)
        })
        .collect();
    o.insert("group".into(), Value::Array(groups));
    Value::Object(o)
}
