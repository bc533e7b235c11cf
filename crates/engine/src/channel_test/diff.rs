//! Path-level differences between two HL7 v2 messages, and between a FHIR resource and
//! the subset of it a fixture expects.
//!
//! Segments are paired by name and occurrence (the third OBX with the third OBX), so a
//! missing or extra segment is named as such instead of shifting every segment after
//! it. Within a pair, each difference is reported at the deepest level either side
//! splits: `PID-5.1` when the family name differs, `PID-8` for a field without
//! components, `PID-3[2].1` for a later repetition.

use std::collections::HashMap;

use hl7v2::{Element, Message};
use serde_json::Value;

/// Every difference between `expected` and `actual`, as `PATH: expected "X", got "Y"`
/// lines, leaving out paths under one of `ignore` (written as the lines write them:
/// `MSH-7`, `PID-5.1`).
pub fn message_differences(
    expected: &Message<'_>,
    actual: &Message<'_>,
    ignore: &[String],
) -> Vec<String> {
    let expected_segments = by_occurrence(expected);
    let actual_segments = by_occurrence(actual);
    let mut out = Vec::new();
    for (label, segment) in &expected_segments {
        match actual_segments.iter().find(|(l, _)| l == label) {
            None => out.push(format!("segment {label} missing")),
            Some((_, other)) => {
                let fields = segment.len().max(other.len());
                for n in 1..=fields {
                    let (e, a) = (segment.field(n), other.field(n));
                    let (Some(e), Some(a)) = (e.or(a), a.or(e)) else {
                        continue;
                    };
                    // A field one side lacks compares as empty.
                    let e = segment
                        .field(n)
                        .unwrap_or(Element::new(&[], e.level(), e.context()));
                    let a = other
                        .field(n)
                        .unwrap_or(Element::new(&[], a.level(), a.context()));
                    field_differences(&format!("{label}-{n}"), e, a, &mut out);
                }
            }
        }
    }
    for (label, _) in &actual_segments {
        if !expected_segments.iter().any(|(l, _)| l == label) {
            out.push(format!("extra segment {label}"));
        }
    }
    out.retain(|line| !ignored(line, ignore));
    out
}

/// A message's segments labelled by name and occurrence (`OBX`, `OBX[2]`), in order.
fn by_occurrence<'m>(message: &'m Message<'_>) -> Vec<(String, hl7v2::Segment<'m>)> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    message
        .segments()
        .map(|segment| {
            let name = segment.name_str();
            let occurrence = seen.entry(name).or_default();
            *occurrence += 1;
            let label = if *occurrence == 1 {
                name.to_owned()
            } else {
                format!("{name}[{occurrence}]")
            };
            (label, segment)
        })
        .collect()
}

fn field_differences(
    label: &str,
    expected: Element<'_>,
    actual: Element<'_>,
    out: &mut Vec<String>,
) {
    if expected.raw() == actual.raw() {
        return;
    }
    if expected.level() == hl7v2::Level::Literal || actual.level() == hl7v2::Level::Literal {
        return out.push(difference(label, expected, actual));
    }
    let repetitions = expected.child_count().max(actual.child_count());
    for r in 1..=repetitions {
        let label = if repetitions > 1 {
            format!("{label}[{r}]")
        } else {
            label.to_owned()
        };
        split_differences(&label, expected.repetition(r), actual.repetition(r), out);
    }
}

/// Differences within a repetition (by component) or a component (by subcomponent).
fn split_differences(
    label: &str,
    expected: Element<'_>,
    actual: Element<'_>,
    out: &mut Vec<String>,
) {
    if expected.raw() == actual.raw() {
        return;
    }
    let parts = expected.child_count().max(actual.child_count());
    let leaf = expected.level() == hl7v2::Level::Subcomponent;
    if leaf || parts == 1 && !splits_below(expected, actual) {
        return out.push(difference(label, expected, actual));
    }
    for n in 1..=parts {
        let (e, a) = match expected.level() {
            hl7v2::Level::Repetition => (expected.component(n), actual.component(n)),
            _ => (expected.subcomponent(n), actual.subcomponent(n)),
        };
        split_differences(&format!("{label}.{n}"), e, a, out);
    }
}

/// True when a repetition's only component has subcomponents on either side.
fn splits_below(expected: Element<'_>, actual: Element<'_>) -> bool {
    expected.level() == hl7v2::Level::Repetition
        && (expected.component(1).child_count() > 1 || actual.component(1).child_count() > 1)
}

fn difference(label: &str, expected: Element<'_>, actual: Element<'_>) -> String {
    format!(
        "{label}: expected {:?}, got {:?}",
        expected.text(),
        actual.text()
    )
}

/// True when `line` is about a path at or under one of `ignore`.
fn ignored(line: &str, ignore: &[String]) -> bool {
    let path = line.split(':').next().unwrap_or(line);
    ignore.iter().any(|i| {
        path.strip_prefix(i.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
    })
}

/// The first place where `actual` lacks what `expected` holds: every key of an expected
/// object must be in the actual one with a matching value, every element of an expected
/// array must match some element of the actual array, and other values must be equal.
/// `None` when `actual` holds all of `expected`.
pub fn json_subset_difference(expected: &Value, actual: &Value, at: &str) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => e.iter().find_map(|(key, value)| {
            let path = if at.is_empty() {
                key.clone()
            } else {
                format!("{at}.{key}")
            };
            match a.get(key) {
                None => Some(format!("{path}: expected {value}, missing")),
                Some(got) => json_subset_difference(value, got, &path),
            }
        }),
        (Value::Array(e), Value::Array(a)) => e.iter().enumerate().find_map(|(i, value)| {
            let path = format!("{at}[{i}]");
            if a.iter()
                .any(|got| json_subset_difference(value, got, &path).is_none())
            {
                return None;
            }
            // Name the closest miss: the same position, when there is one.
            Some(match a.get(i) {
                Some(got) => json_subset_difference(value, got, &path)
                    .unwrap_or_else(|| format!("{path}: no element matches {value}")),
                None => format!("{path}: expected {value}, missing"),
            })
        }),
        _ if expected == actual => None,
        _ => Some(format!("{at}: expected {expected}, got {actual}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(expected: &str, actual: &str, ignore: &[&str]) -> Vec<String> {
        let e = Message::parse(expected.as_bytes()).unwrap();
        let a = Message::parse(actual.as_bytes()).unwrap();
        let ignore: Vec<String> = ignore.iter().map(|s| s.to_string()).collect();
        message_differences(&e, &a, &ignore)
    }

    const MSH: &str = "MSH|^~\\&|LAB|H|EHR|H|20260101||ADT^A01|1|P|2.5\r";

    #[test]
    fn same_message_has_no_differences() {
        let m = format!("{MSH}PID|1||123^^^H||DOE^JOHN\r");
        assert!(diff(&m, &m, &[]).is_empty());
    }

    #[test]
    fn component_difference_is_named_by_its_path() {
        let e = format!("{MSH}PID|1||123^^^H||DOE^JOHN\r");
        let a = format!("{MSH}PID|1||123^^^H||Doe^JOHN\r");
        assert_eq!(diff(&e, &a, &[]), [r#"PID-5.1: expected "DOE", got "Doe""#]);
    }

    #[test]
    fn field_without_components_is_named_by_the_field() {
        let e = format!("{MSH}PID|1|||||||F\r");
        let a = format!("{MSH}PID|1|||||||M\r");
        assert_eq!(diff(&e, &a, &[]), [r#"PID-8: expected "F", got "M""#]);
    }

    #[test]
    fn later_repetition_and_segment_occurrence_are_named() {
        let e = format!("{MSH}OBX|1|NM|A\rOBX|2|NM|B||5\rPID|1||1~2^^^X\r");
        let a = format!("{MSH}OBX|1|NM|A\rOBX|2|NM|B||6\rPID|1||1~3^^^X\r");
        assert_eq!(
            diff(&e, &a, &[]),
            [
                r#"OBX[2]-5: expected "5", got "6""#,
                r#"PID-3[2].1: expected "2", got "3""#
            ]
        );
    }

    #[test]
    fn missing_and_extra_segments_are_named_as_such() {
        let e = format!("{MSH}PID|1\rPV1|1\r");
        let a = format!("{MSH}PID|1\rZPI|1\r");
        assert_eq!(
            diff(&e, &a, &[]),
            ["segment PV1 missing", "extra segment ZPI"]
        );
    }

    #[test]
    fn ignored_paths_are_left_out() {
        let e = format!("{MSH}PID|1||||||F\r");
        let a = MSH.replace("20260101", "20270202") + "PID|1||||||F\r";
        assert_eq!(
            diff(&e, &a, &[]),
            [r#"MSH-7: expected "20260101", got "20270202""#]
        );
        assert!(diff(&e, &a, &["MSH-7"]).is_empty());
        assert_eq!(diff(&e, &a, &["MSH-70"]).len(), 1);
    }

    #[test]
    fn json_subset_names_the_first_miss() {
        let actual = serde_json::json!({"resourceType": "Patient", "name": [{"family": "Doe", "given": ["John"]}]});
        let fits = serde_json::json!({"name": [{"given": ["John"]}]});
        assert_eq!(json_subset_difference(&fits, &actual, ""), None);
        let wrong = serde_json::json!({"name": [{"family": "DOE"}]});
        assert_eq!(
            json_subset_difference(&wrong, &actual, "").as_deref(),
            Some(r#"name[0].family: expected "DOE", got "Doe""#)
        );
        let absent = serde_json::json!({"birthDate": "2000-01-01"});
        assert_eq!(
            json_subset_difference(&absent, &actual, "").as_deref(),
            Some(r#"birthDate: expected "2000-01-01", missing"#)
        );
    }
}
