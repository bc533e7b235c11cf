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
