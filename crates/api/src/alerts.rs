//! The alert routes (JSON): the `[[alerts]]` and their states, the history of
//! episodes, and acknowledging a firing alert. Times are RFC 3339 in UTC.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/alerts` | every alert: `state` (`ok`, `pending`, `firing`, `resolving`), detail, episode, who acknowledged it |
//! | `GET /api/alerts/history?alert=&before=&limit=` | episodes newest first (fired, resolved, acknowledged); `next_before` pages on |
//! | `POST /api/alerts/{name}/ack` | acknowledge the alert's firing episode: 404 unknown alert, 409 not firing |
//!
//! Without `[[alerts]]` the list and the history are empty.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::extract::{Path, Query};
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError, Principal};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/api/alerts", Access::Metadata, list)
        .add(
            Method::Get,
            "/api/alerts/history",
            Access::Metadata,
            history,
        )
        .add(
            Method::Post,
            "/api/alerts/{name}/ack",
            Access::Operate,
            acknowledge,
        )
}

async fn list(State(api): State<Api>) -> Json<Value> {
    let alerts: Vec<Value> = api
        .alerts
        .as_ref()
        .map(|a| a.list().iter().map(alerts::AlertStatus::json).collect())
        .unwrap_or_default();
    Json(json!({ "alerts": alerts }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    alert: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

async fn history(
    State(api): State<Api>,
    Query(query): Query<HistoryQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be between 1 and {MAX_PAGE}"
        )));
    }
    let Some(alerts) = api.alerts.clone() else {
        return Ok(Json(json!({ "events": [], "next_before": null })));
    };
    let events = tokio::task::spawn_blocking(move || {
        alerts.history(query.alert.as_deref(), query.before, limit)
    })
    .await??;
    let next = (events.len() == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({
        "events": events.iter().map(alerts::AlertEvent::json).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

async fn acknowledge(
    State(api): State<Api>,
    Path(name): Path<String>,
    principal: Principal,
) -> Result<Json<Value>, ApiError> {
    let who = principal.require()?.to_owned();
    let alerts = api
        .alerts
        .as_ref()
        .ok_or_else(|| ApiError::not_found(format!("no alert is named {name:?}")))?;
    match alerts.acknowledge(&name, &who).await {
        Ok(event) => Ok(Json(event.json())),
        Err(alerts::AckError::Unknown(_)) => {
            Err(ApiError::not_found(format!("no alert is named {name:?}")))
        }
        Err(error @ alerts::AckError::NotFiring(_)) => {
            Err(ApiError::new(StatusCode::CONFLICT, error.to_string()))
        }
        Err(alerts::AckError::Store(error)) => Err(error.into()),
    }
}
