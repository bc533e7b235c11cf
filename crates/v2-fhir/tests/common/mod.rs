//! What the conversion tests share: picking resources out of a Bundle.
#![allow(dead_code)]

use serde_json::Value;
use v2_fhir::Bundle;

/// Every resource of `resource_type` in the Bundle, in entry order.
pub fn all(bundle: &Bundle, resource_type: &str) -> Vec<Value> {
    bundle
        .of_type(resource_type)
        .map(|e| e.resource.clone())
        .collect()
}

/// The one resource of `resource_type`; fails the test when there are none or several.
pub fn one(bundle: &Bundle, resource_type: &str) -> Value {
    let found = all(bundle, resource_type);
    assert_eq!(
        found.len(),
        1,
        "expected one {resource_type}, got {found:#?}"
    );
    found.into_iter().next().unwrap()
}

/// A segment from (field number, value) pairs, so tests name the fields
/// they set instead of counting pipes.
pub fn seg(name: &str, fields: &[(usize, &str)]) -> String {
    let last = fields.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut parts = vec![String::new(); last + 1];
    parts[0] = name.to_string();
    for (n, v) in fields {
        parts[*n] = v.to_string();
    }
    parts.join("|")
}

/// `Type/id` of a resource, as references name it.
pub fn reference_of(resource: &Value) -> String {
    format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    )
}
