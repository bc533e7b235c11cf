//! What FHIR back to v2 reads: the resources of a body (one resource, a
//! Bundle of any type, or an R4 Subscription notification), each checked
//! against the R4 rules for the elements the translation reads, so invalid
//! R4 is refused naming the element rather than half translated.
//!
//! **Subscription notifications** (the R5 Subscriptions Backport for R4 and
//! R4B): a `Bundle` of type `history` whose first entry is the notification's
//! status, a `Parameters` (R4, profile `backport-subscription-status-r4`) or
//! a `SubscriptionStatus` (R4B). The status entry is read for its `type`
//! (`handshake`, `heartbeat`, `event-notification`, `query-status`,
//! `query-event`) and is not translated; the other entries are the
//! notification's resources (a `full-resource` payload). An entry without a
//! resource (an `id-only` payload) cannot be translated: it is named in the
//! OperationOutcome, as is an `empty` notification's focus.

use serde_json::Value;

use super::ToV2Error;

/// The resources to translate, with each entry's request method.
pub(super) struct Input {
    pub resources: Vec<(Value, Option<String>)>,
    /// The notification's type, when the body is a Subscription notification.
    pub notification: Option<String>,
    /// What the notification referred to without sending it (`id-only` and
    /// `empty` payloads), as (element, reference).
    pub not_sent: Vec<(String, String)>,
}

fn error(element: impl Into<String>, message: impl Into<String>) -> ToV2Error {
    ToV2Error {
        element: element.into(),
        message: message.into(),
    }
}

/// Reads and checks the body.
pub(super) fn read(json: &[u8]) -> Result<Input, ToV2Error> {
    let root: Value =
        serde_json::from_slice(json).map_err(|e| error("", format!("not JSON: {e}")))?;
    let resource_type = root["resourceType"]
        .as_str()
        .ok_or_else(|| error("", "not a FHIR resource: no resourceType"))?;
    if resource_type != "Bundle" {
        check(&root, resource_type)?;
        return Ok(Input {
            resources: vec![(root, Some("POST".into()))],
            notification: None,
            not_sent: Vec::new(),
        });
    }
    let entries = match &root["entry"] {
        Value::Array(entries) => entries.as_slice(),
        Value::Null => &[],
        _ => return Err(error("Bundle.entry", "must be an array")),
    };
    let kind = root["type"].as_str().unwrap_or("");
    let status = entries.first().map(|e| &e["resource"]).filter(|r| {
        kind == "history"
            && (r["resourceType"] == "SubscriptionStatus"
                || (r["resourceType"] == "Parameters" && parameter(r, "subscription").is_some()))
    });
    let notification = status.map(|s| {
        let code = if s["resourceType"] == "SubscriptionStatus" {
            s["type"].as_str()
        } else {
            parameter(s, "type").and_then(|p| p["valueCode"].as_str())
        };
        code.unwrap_or("event-notification").to_string()
    });
    let mut not_sent = Vec::new();
    let mut resources = Vec::new();
    let skip = usize::from(notification.is_some());
    for (n, entry) in entries.iter().enumerate().skip(skip) {
        let at = format!("Bundle.entry[{n}]");
        let resource = &entry["resource"];
        if resource.is_null() && notification.is_some() {
            // An id-only payload: the notification names the resource only.
            let reference = entry["fullUrl"].as_str().unwrap_or("").to_string();
            not_sent.push((at, reference));
            continue;
        }
        let Some(t) = resource["resourceType"].as_str() else {
            return Err(error(
                format!("{at}.resource"),
                "missing, or without resourceType",
            ));
        };
        if let Err(mut e) = check(resource, t) {
            e.element = format!("{at}.resource.{}", e.element);
            return Err(e);
        }
        let method = entry["request"]["method"].as_str().map(str::to_string);
        resources.push((resource.clone(), method));
    }
    const BUNDLE_TYPES: &[&str] = &[
        "document",
        "message",
        "transaction",
        "transaction-response",
        "batch",
        "batch-response",
        "history",
        "searchset",
        "collection",
    ];
    if !BUNDLE_TYPES.contains(&kind) {
        return Err(error(
            "Bundle.type",
            format!("{kind:?} is not a Bundle type (required; one of {BUNDLE_TYPES:?})"),
        ));
    }
    // An empty payload names the resources in its events' focus.
    if let (Some(status), true) = (status, resources.is_empty() && not_sent.is_empty()) {
        for (n, event) in parameters(status, "notification-event").enumerate() {
            for part in array(&event["part"]).filter(|p| p["name"] == "focus") {
                if let Some(reference) = part["valueReference"]["reference"].as_str() {
                    not_sent.push((
                        format!("Bundle.entry[0].resource.parameter[notification-event {n}]"),
                        reference.to_string(),
                    ));
                }
            }
        }
    }
    Ok(Input {
        resources,
        notification,
        not_sent,
    })
}

fn array(v: &Value) -> std::slice::Iter<'_, Value> {
    match v {
        Value::Array(items) => items.iter(),
        _ => [].iter(),
    }
}

fn parameters<'a>(p: &'a Value, name: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    array(&p["parameter"]).filter(move |x| x["name"] == name)
}

fn parameter<'a>(p: &'a Value, name: &str) -> Option<&'a Value> {
    array(&p["parameter"]).find(|x| x["name"] == name)
}

/// The elements each type must have in R4 (cardinality 1..), among those
/// translated; `[x]` names a choice.
fn required(resource_type: &str) -> &'static [&'static str] {
    match resource_type {
        "Observation" => &["status", "code"],
        "DiagnosticReport" => &["status", "code"],
        "ServiceRequest" => &["status", "intent", "subject"],
        "MedicationRequest" => &["status", "intent", "subject", "medication[x]"],
        "Immunization" => &["status", "vaccineCode", "patient", "occurrence[x]"],
        "Encounter" => &["status", "class"],
        "AllergyIntolerance" => &["patient"],
        "Condition" => &["subject"],
        "Coverage" => &["status", "beneficiary", "payor"],
        _ => &[],
    }
}

/// Codes an R4 element must take (its required value set).
fn codes(resource_type: &str, element: &str) -> Option<&'static [&'static str]> {
    Some(match (resource_type, element) {
        ("Patient", "gender") | ("RelatedPerson", "gender") | ("Practitioner", "gender") => {
            &["male", "female", "other", "unknown"]
        }
        ("Observation", "status") => &[
            "registered",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "cancelled",
            "entered-in-error",
            "unknown",
        ],
        ("DiagnosticReport", "status") => &[
            "registered",
            "partial",
            "preliminary",
            "final",
            "amended",
            "corrected",
            "appended",
            "cancelled",
            "entered-in-error",
            "unknown",
        ],
        ("ServiceRequest", "status") | ("MedicationRequest", "status") => &[
            "draft",
            "active",
            "on-hold",
            "revoked",
            "completed",
            "entered-in-error",
            "unknown",
            "cancelled",
            "stopped",
        ],
        ("Immunization", "status") => &["completed", "entered-in-error", "not-done"],
        ("Encounter", "status") => &[
            "planned",
            "arrived",
            "triaged",
            "in-progress",
            "onleave",
            "finished",
            "cancelled",
            "entered-in-error",
            "unknown",
        ],
        _ => return None,
    })
}

/// Checks one resource's translated elements; the error's element is
/// `Type.element`.
fn check(resource: &Value, resource_type: &str) -> Result<(), ToV2Error> {
    let at = |element: &str| format!("{resource_type}.{element}");
    let Value::Object(fields) = resource else {
        return Err(error(resource_type, "must be a JSON object"));
    };
    if let Some(id) = fields.get("id") {
        let ok = id.as_str().is_some_and(|s| {
            (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        });
        if !ok {
            return Err(error(
                at("id"),
                "must be 1 to 64 of A-Z, a-z, 0-9, '-', '.'",
            ));
        }
    }
    for element in required(resource_type) {
        let present = match element.strip_suffix("[x]") {
            Some(prefix) => fields.keys().any(|k| {
                k.strip_prefix(prefix)
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
            }),
            None => fields.get(*element).is_some_and(|v| !v.is_null()),
        };
        if !present {
            return Err(error(at(element), "is required (min 1) in R4"));
        }
    }
    for (name, value) in fields {
        if let Some(allowed) = codes(resource_type, name) {
            if !value.as_str().is_some_and(|v| allowed.contains(&v)) {
                return Err(error(
                    at(name),
                    format!("{value} is not one of the R4 codes {allowed:?}"),
                ));
            }
        }
        if name == "birthDate" || name == "expirationDate" {
            if !value.as_str().is_some_and(is_date) {
                return Err(error(at(name), format!("{value} is not an R4 date")));
            }
        } else if name.ends_with("DateTime") || matches!(name.as_str(), "issued" | "authoredOn") {
            if !value.as_str().is_some_and(is_date_time) {
                return Err(error(at(name), format!("{value} is not an R4 dateTime")));
            }
        } else if name == "period" {
            for end in ["start", "end"] {
                if let Some(v) = value.get(end)
                    && !v.as_str().is_some_and(is_date_time)
                {
                    return Err(error(
                        at(&format!("period.{end}")),
                        format!("{v} is not an R4 dateTime"),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// `YYYY`, `YYYY-MM` or `YYYY-MM-DD`.
fn is_date(s: &str) -> bool {
    if !s.is_ascii() {
        return false;
    }
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    let number = |r: std::ops::Range<usize>| s[r].parse::<u8>().unwrap_or(0);
    match b.len() {
        4 => digits(0..4),
        7 => digits(0..4) && b[4] == b'-' && digits(5..7) && (1..=12).contains(&number(5..7)),
        10 => {
            is_date(&s[..7]) && b[7] == b'-' && digits(8..10) && (1..=31).contains(&number(8..10))
        }
        _ => false,
    }
}

/// A date, or a date with `Thh:mm:ss[.fff]` and a zone (`Z`, `+hh:mm`).
fn is_date_time(s: &str) -> bool {
    if !s.is_ascii() {
        return false;
    }
    let Some((date, time)) = s.split_once('T') else {
        return is_date(s);
    };
    if date.len() != 10 || !is_date(date) {
        return false;
    }
    let zone_at = time.find(['Z', '+', '-']);
    let Some(zone_at) = zone_at else {
        return false;
    };
    let (clock, zone) = time.split_at(zone_at);
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, "0"));
    let hms_ok = hms.len() == 8
        && hms.as_bytes()[2] == b':'
        && hms.as_bytes()[5] == b':'
        && hms
            .bytes()
            .enumerate()
            .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit());
    let zone_ok = zone == "Z"
        || (zone.len() == 6
            && zone.as_bytes()[3] == b':'
            && zone[1..3].bytes().all(|c| c.is_ascii_digit())
            && zone[4..].bytes().all(|c| c.is_ascii_digit()));
    hms_ok && zone_ok && !fraction.is_empty() && fraction.bytes().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_times_are_read_as_r4_writes_them() {
        for ok in ["2024", "2024-03", "2024-03-01"] {
            assert!(is_date(ok), "{ok}");
        }
        for bad in ["20240301", "2024-13", "2024-03-32", "24-03-01", "2024-0é-1"] {
            assert!(!is_date(bad), "{bad}");
        }
        for ok in [
            "2024-03-01T08:00:00Z",
            "2024-03-01T08:00:00.123-05:00",
            "2024-03-01",
        ] {
            assert!(is_date_time(ok), "{ok}");
        }
        for bad in [
            "2024-03-01T08:00:00",
            "2024-03-01T08:00Z",
            "2024-03-01 08:00:00Z",
        ] {
            assert!(!is_date_time(bad), "{bad}");
        }
    }
}
