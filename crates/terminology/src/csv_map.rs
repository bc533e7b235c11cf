//! The CSV map format: one row per source code, with this header (the
//! order of columns is free, the names are not):
//!
//! ```text
//! source_system,source_code,source_display,target_system,target_code,target_display,equivalence,sender,field,comment
//! ```
//!
//! `sender` (`APP` or `APP@FACILITY`) and `field` (`OBX-3`) scope a row;
//! empty means any. An empty `equivalence` with a target code means
//! `equivalent`. A row with neither target code nor equivalence is not yet
//! filled in and is skipped. The unmapped-code export adds `count`,
//! `first_seen`, `last_seen` and `example_message_id`, which loading
//! ignores, so an analyst fills in the export and loads it back as it is.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::model::{ConceptMap, Equivalence, Group, MapElement, MapScope, Target};

/// The columns of the load format, in the order Corridor writes them.
pub const HEADER: [&str; 10] = [
    "source_system",
    "source_code",
    "source_display",
    "target_system",
    "target_code",
    "target_display",
    "equivalence",
    "sender",
    "field",
    "comment",
];

/// Columns the export adds and loading ignores.
pub const TALLY_COLUMNS: [&str; 4] = ["count", "first_seen", "last_seen", "example_message_id"];

const REQUIRED: [&str; 5] = [
    "source_system",
    "source_code",
    "target_system",
    "target_code",
    "equivalence",
];

/// Reads a CSV map. Rows are gathered into one [`ConceptMap`] per scope
/// (sender and field), each with a group per source and target system,
/// all with `name` as their URL (a step's `maps` names the file).
pub fn concept_maps_from_csv(name: &str, text: &str) -> Result<Vec<ConceptMap>> {
    let mut reader = csvfile::reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| Error::at(format!("{name} line 1"), format!("unreadable header: {e}")))?
        .clone();
    let mut column = BTreeMap::new();
    for (i, h) in header.iter().enumerate() {
        if !HEADER.contains(&h) && !TALLY_COLUMNS.contains(&h) {
            return Err(Error::at(
                format!("{name} line 1, column {}", i + 1),
                format!("unknown column {h:?}; the columns are {}", HEADER.join(",")),
            ));
        }
        if column.insert(h.to_string(), i).is_some() {
            return Err(Error::at(
                format!("{name} line 1"),
                format!("column {h:?} appears twice"),
            ));
        }
    }
    if let Some(missing) = REQUIRED.iter().find(|c| !column.contains_key(**c)) {
        return Err(Error::at(
            format!("{name} line 1"),
            format!("the header lacks column {missing:?}"),
        ));
    }

    // scope -> (source system, target system) -> source code -> element
    type Groups = BTreeMap<(String, String), BTreeMap<String, MapElement>>;
    let mut by_scope: BTreeMap<MapScope, Groups> = BTreeMap::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            Error::at(
                format!("{name} line {line}"),
                format!("unreadable row: {e}"),
            )
        })?;
        let line = record.position().map_or(0, |p| p.line());
        let get = |c: &str| -> &str {
            column
                .get(c)
                .and_then(|&i| record.get(i))
                .unwrap_or_default()
        };
        let place = |c: &str| format!("{name} line {line}, column {c}");
        let (target_code, equivalence) = (get("target_code"), get("equivalence"));
        if target_code.is_empty() && equivalence.is_empty() {
            continue;
        }
        let equivalence = if equivalence.is_empty() {
            Equivalence::Equivalent
        } else {
            equivalence
                .parse()
                .map_err(|m: String| Error::at(place("equivalence"), m))?
        };
        if target_code.is_empty() && equivalence.is_match() {
            return Err(Error::at(
                place("target_code"),
                format!(
                    "is empty, which only an unmatched or disjoint row may be (this one is {equivalence})"
                ),
            ));
        }
        for c in ["source_code", "target_system"] {
            if get(c).is_empty() {
                return Err(Error::at(place(c), "is required"));
            }
        }
        let field = get("field");
        if !field.is_empty() {
            crate::step::FieldPath::parse(field).map_err(|m| Error::at(place("field"), m))?;
        }
        let scope = MapScope {
            sender: non_empty(get("sender")),
            fields: non_empty(field).into_iter().collect(),
        };
        let element = by_scope
            .entry(scope)
            .or_default()
            .entry((
                get("source_system").to_string(),
                get("target_system").to_string(),
            ))
            .or_default()
            .entry(get("source_code").to_string())
            .or_insert_with(|| MapElement {
                code: get("source_code").to_string(),
                display: non_empty(get("source_display")),
                targets: Vec::new(),
            });
        element.targets.push(Target {
            code: non_empty(target_code),
            display: non_empty(get("target_display")),
            equivalence,
            comment: non_empty(get("comment")),
        });
    }

    Ok(by_scope
        .into_iter()
        .map(|(scope, groups)| ConceptMap {
            url: name.to_string(),
            version: None,
            name: Some(name.to_string()),
            scope,
            groups: groups
                .into_iter()
                .map(|((source, target), elements)| Group {
                    source,
                    target,
                    elements: elements.into_values().collect(),
                    unmapped: None,
                })
                .collect(),
        })
        .collect())
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}
