//! The clinical alerts routes (JSON): alerts name patients, so listing them is a PHI
//! read; resolving one is a change.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/rules/alerts?patient=&rule=&open=true&before=&limit=` | alerts, newest first, with rule and version, evidence, patient, delivery and resolution; `next_before` pages on |
//! | `POST /api/rules/alerts/{id}/resolve` | mark it resolved by the caller, with `{"note": ".."}` optional; 404 unknown, 409 resolved before |

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use rules::stored::{AlertFilter, Resolved};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::extract::{Path, Query};
use crate::messages::blocking;
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError, Principal};

const MAX_PAGE: usize = 500;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/api/rules/alerts", Access::Phi, list)
        .add(
            Method::Post,
            "/api/rules/alerts/{id}/resolve",
            Access::Operate,
            resolve,
        )
}

/// Whether the alerts' table exists: it does once the engine ran with the rules on.
fn has_alerts(conn: &store::rusqlite::Connection) -> store::Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rules_alerts'",
        )?
        .exists([])?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    patient: Option<String>,
    rule: Option<String>,
    open: Option<bool>,
    before: Option<i64>,
    limit: Option<usize>,
}

async fn list(State(api): State<Api>, Query(q): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    if let Some(rule) = &q.rule
        && !rules::AlertKind::is_rule_name(rule)
    {
        return Err(ApiError::bad_request(format!(
            "{rule:?} is not a rule name (critical-value, delta-check, sepsis-screen, allergy-medication, duplicate-test, or a custom rule's name: lower-case letters, digits and -)"
        )));
    }
    let filter = AlertFilter {
        patient: q.patient,
        rule: q.rule,
        open: q.open.unwrap_or(false),
        before: q.before,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let store = api.store.clone();
    let alerts = blocking(move || {
        Ok(store.read(|conn| {
            if has_alerts(conn)? {
                rules::stored::list_in(conn, &filter, limit)
            } else {
                Ok(Vec::new())
            }
        })?)
    })
    .await?;
    let next = (alerts.len() == limit)
        .then(|| alerts.last().map(|a| a.id))
        .flatten();
    Ok(Json(json!({ "alerts": alerts, "next_before": next })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    note: Option<String>,
}

async fn resolve(
    State(api): State<Api>,
    Path(id): Path<String>,
    principal: Principal,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad_request(format!("{id:?} is not an alert id")))?;
    let who = principal.require()?.to_owned();
    let body: ResolveBody = if body.iter().all(u8::is_ascii_whitespace) {
        ResolveBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body must be {{\"note\": \"..\"}} or empty: {e}"
            ))
        })?
    };
    let store = api.store.clone();
    let outcome = store
        .write(move |conn| {
            if !has_alerts(conn)? {
                return Ok(Resolved::NotFound);
            }
            rules::stored::resolve_in(conn, id, &who, body.note.as_deref())
        })
        .await?;
    match outcome {
        Resolved::Resolved => Ok(Json(json!({ "id": id, "status": "resolved" }))),
        Resolved::Already => Err(ApiError::conflict(format!(
            "alert {id} was resolved before"
        ))),
        Resolved::NotFound => Err(ApiError::not_found(format!("there is no alert {id}"))),
    }
}
