//! `GET /fhir/AuditEvent?patient=...&date=...`: who looked at a patient, from the audit
//! trail, as FHIR R4 `AuditEvent` resources in a searchset Bundle.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::fhir_json;
use crate::fhir::{Caller, decode_pairs, scope_check, scopes_of};
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError};

/// Most events one answer holds when the client does not say (`_count`), and at most.
const DEFAULT_COUNT: usize = 100;
const MAX_COUNT: usize = 1000;

pub(crate) fn routes() -> Routes {
    Routes::new().add(
        Method::Get,
        "/fhir/AuditEvent",
        Access::Phi,
        search_audit_events,
    )
}

fn invalid(diagnostics: &str) -> Response {
    ApiError::outcome(StatusCode::BAD_REQUEST, "invalid", diagnostics).into_response()
}

/// The bounds of one `date` parameter (`2026-01-31`, `ge2026-01-01`, `lt2026-02`) in
/// microseconds: (since, until), inclusive.
fn date_bounds(value: &str) -> Option<(Option<i64>, Option<i64>)> {
    let (prefix, text) = match value.get(..2) {
        Some(p @ ("eq" | "ge" | "gt" | "le" | "lt")) => (p, &value[2..]),
        _ => ("eq", value),
    };
    let range = fhir_repo::date::parse(text)?;
    let lo = range.lo.checked_mul(1_000_000)?;
    let hi = range.hi.checked_mul(1_000_000)?.checked_add(999_999)?;
    Some(match prefix {
        "ge" => (Some(lo), None),
        "gt" => (Some(hi + 1), None),
        "le" => (None, Some(hi)),
        "lt" => (None, Some(lo - 1)),
        _ => (Some(lo), Some(hi)),
    })
}

/// The audit trail's records naming `patient=` within `date=`, newest last.
async fn search_audit_events(
    State(app): State<Api>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(audit) = app.auth.audit().cloned() else {
        return ApiError::outcome(
            StatusCode::NOT_FOUND,
            "not-supported",
            "no audit trail is kept",
        )
        .into_response();
    };
    let Some(pairs) = decode_pairs(raw.as_deref().unwrap_or_default()) else {
        return invalid("the query string is not valid percent-encoded UTF-8");
    };
    let mut patient: Option<String> = None;
    let (mut since, mut until): (Option<i64>, Option<i64>) = (None, None);
    let mut count = DEFAULT_COUNT;
    for (name, value) in pairs {
        match name.as_str() {
            "patient" | "entity" => {
                let id = value.trim().trim_start_matches("Patient/");
                if id.is_empty() || id.contains('/') {
                    return invalid("patient must name a Patient (Patient/id or id)");
                }
                patient = Some(id.to_owned());
            }
            "date" => {
                let Some((lo, hi)) = date_bounds(&value) else {
                    return invalid(&format!(
                        "date {value:?} is not a FHIR date with an optional prefix (eq, ge, gt, le, lt)"
                    ));
                };
                since = since.max(lo);
                until = match (until, hi) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            "_count" => match value.parse::<usize>() {
                Ok(n) => count = n.min(MAX_COUNT),
                Err(_) => return invalid(&format!("_count {value:?} is not a whole number")),
            },
            "_format" | "_pretty" => {}
            other => {
                return invalid(&format!(
                    "search parameter {other:?} is not supported on AuditEvent (patient, date, _count)"
                ));
            }
        }
    }
    let Some(patient) = patient else {
        return invalid("AuditEvent is searched by patient: give patient=Patient/id");
    };
    // Scopes: AuditEvent must be allowed, and `patient/` scopes reach their own
    // patient only.
    match scope_check(scopes_of(&caller), "AuditEvent") {
        Ok(Some(own)) if own != patient => {
            return ApiError::outcome(
                StatusCode::FORBIDDEN,
                "forbidden",
                "the token's scopes are limited to another patient",
            )
            .into_response();
        }
        Ok(_) => {}
        Err(refused) => {
            return ApiError::outcome(StatusCode::FORBIDDEN, "forbidden", refused).into_response();
        }
    }
    // FHIR reads record `Patient/ID`; the patient index's routes, the enterprise id.
    let found = tokio::task::spawn_blocking(move || {
        let mut records = audit.for_patient(&format!("Patient/{patient}"), since, until)?;
        records.extend(audit.for_patient(&patient, since, until)?);
        Ok::<_, access::Error>(records)
    })
    .await;
    let mut records = match found {
        Ok(Ok(records)) => records,
        Ok(Err(error)) => {
            tracing::error!(%error, "reading the audit trail failed");
            return ApiError::outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "the audit trail could not be read",
            )
            .into_response();
        }
        Err(error) => {
            tracing::error!(%error, "reading the audit trail stopped");
            return ApiError::outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "the audit trail could not be read",
            )
            .into_response();
        }
    };
    records.sort_by_key(|r| r.seq);
    records.dedup_by_key(|r| r.seq);
    let total = records.len();
    let base = app
        .fhir_base
        .as_deref()
        .map(|b| b.trim_end_matches('/').to_owned());
    // The newest `count` events: those of the latest reads matter most.
    let entries: Vec<Value> = records
        .iter()
        .skip(total.saturating_sub(count))
        .map(|stored| {
            let event = access::audit::to_audit_event(stored);
            let url = match &base {
                Some(base) => format!("{base}/AuditEvent/{}", stored.seq),
                None => format!("AuditEvent/{}", stored.seq),
            };
            json!({"fullUrl": url, "resource": event, "search": {"mode": "match"}})
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
    });
    if !entries.is_empty() {
        bundle["entry"] = Value::Array(entries);
    }
    fhir_json(StatusCode::OK, &bundle)
}

#[cfg(test)]
mod tests {
    use super::date_bounds;

    #[test]
    fn date_prefixes_bound_the_search() {
        let day = 86_400_000_000;
        assert_eq!(
            date_bounds("1970-01-02"),
            Some((Some(day), Some(2 * day - 1)))
        );
        assert_eq!(date_bounds("ge1970-01-02"), Some((Some(day), None)));
        assert_eq!(date_bounds("lt1970-01-02"), Some((None, Some(day - 1))));
        assert_eq!(date_bounds("gt1970-01-01"), Some((Some(day), None)));
        assert_eq!(date_bounds("le1970-01-01"), Some((None, Some(day - 1))));
        assert_eq!(date_bounds("yesterday"), None);
    }
}
