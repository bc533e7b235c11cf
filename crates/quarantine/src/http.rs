//! The quarantine and data-quality HTTP API (JSON).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use store::JournalEntry;

use crate::record::QuarantineId;
use crate::{DataQualityFilter, Error, Quarantine, QuarantineFilter, Status};

/// Called with a channel's name after messages were put back in its journal as `received`,
/// so its pipeline looks now instead of at its next poll.
pub type Notifier = Arc<dyn Fn(&str) + Send + Sync>;

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    pub quarantine: Quarantine,
    pub notify: Notifier,
}

/// Header naming the analyst who edits, reprocesses or discards.
pub const USER_HEADER: &str = "x-corridor-user";
/// Header carrying the reason of an edit, a reprocess or a discard (or `?reason=`).
pub const REASON_HEADER: &str = "x-corridor-reason";

const MAX_PAGE: usize = 500;
/// Largest corrected message accepted, as large as a source accepts by default.
const MAX_BODY: usize = 16 << 20;
const DEFAULT_BULK: usize = 1000;
const MAX_BULK: usize = 10_000;

/// The quarantine and data-quality routes (see the crate docs); the engine merges them into
/// its HTTP server.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/quarantine", get(list))
        .route("/api/quarantine/reprocess", post(reprocess_many))
        .route("/api/quarantine/{id}", get(detail).put(edit))
        .route("/api/quarantine/{id}/revalidate", post(revalidate))
        .route("/api/quarantine/{id}/reprocess", post(reprocess_one))
        .route("/api/quarantine/{id}/discard", post(discard))
        .route("/api/data-quality", get(data_quality))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// An error answered as JSON `{"error": "..."}` with a status code.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let status = match &e {
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::NotOpen { .. } | Error::EditedMeanwhile(_) | Error::StillInvalid { .. } => {
                StatusCode::CONFLICT
            }
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::NotHl7(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %e, "quarantine API request failed");
        }
        ApiError(status, e.to_string())
    }
}

fn bad_request(text: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, text.into())
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(q)| q)
        .map_err(|e| bad_request(format!("query string: {}", e.body_text())))
}

fn entry_id(text: &str) -> Result<QuarantineId, ApiError> {
    text.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(QuarantineId)
        .ok_or_else(|| bad_request(format!("{text:?} is not a quarantine entry id")))
}

fn header(headers: &HeaderMap, name: &str) -> Result<Option<String>, ApiError> {
    match headers.get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .map(|s| Some(s.trim().to_string()))
            .map_err(|_| bad_request(format!("header {name} must be visible ASCII text"))),
    }
}

fn user(headers: &HeaderMap) -> Result<String, ApiError> {
    header(headers, USER_HEADER)?
        .filter(|u| !u.is_empty())
        .ok_or_else(|| bad_request("the X-Corridor-User header must name who makes the change"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    channel: Option<String>,
    sender: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    status: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

async fn list(
    State(api): State<ApiState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let status = q.status.as_deref().map(str::parse::<Status>).transpose()?;
    let filter = QuarantineFilter {
        channel: q.channel,
        sender: q.sender,
        message_type: q.message_type,
        status,
        before: q.before.map(QuarantineId),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let total = api.quarantine.count(filter.clone()).await?;
    let entries = api.quarantine.list(filter, limit).await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.0))
        .flatten();
    Ok(Json(json!({
        "entries": entries,
        "total": total,
        "next_before": next,
    })))
}

fn entry_json(e: &JournalEntry) -> Value {
    json!({
        "id": e.id.0,
        "channel": e.channel,
        "received_at": e.received_at.0,
        "peer": e.peer,
        "sending_application": e.sending_application,
        "sending_facility": e.sending_facility,
        "message_type": e.message_type,
        "control_id": e.control_id,
        "version": e.version,
        "state": e.state.as_str(),
        "state_reason": e.state_reason,
    })
}

async fn detail(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = entry_id(&id)?;
    let d = api.quarantine.get(id).await?;
    let mut body = serde_json::to_value(&d.summary)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let mut original = entry_json(&d.original.entry);
    original["raw"] = json!(String::from_utf8_lossy(&d.original.raw));
    body["findings"] = json!(d.findings);
    body["validated_at"] = json!(d.validated_at);
    body["original"] = original;
    body["content"] = json!(String::from_utf8_lossy(&d.content));
    body["edited"] = json!(!d.history.is_empty());
    body["revision"] = json!(d.revision);
    body["history"] = json!(d.history);
    body["reprocessed_from"] = json!(d.reprocessed_from);
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonQuery {
    reason: Option<String>,
}

/// The reason from `X-Corridor-Reason`, `?reason=` or a JSON body's `reason`.
fn reason(
    headers: &HeaderMap,
    q: Option<String>,
    body: Option<String>,
) -> Result<String, ApiError> {
    Ok(header(headers, REASON_HEADER)?
        .filter(|r| !r.is_empty())
        .or(q)
        .or(body)
        .unwrap_or_default())
}

async fn edit(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<ReasonQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = entry_id(&id)?;
    let q = query(q)?;
    let who = user(&headers)?;
    let why = reason(&headers, q.reason, None)?;
    if why.trim().is_empty() {
        return Err(bad_request(
            "say why the message is edited: X-Corridor-Reason header or ?reason=",
        ));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request(
            "the body is empty: send the whole corrected message",
        ));
    }
    let edited = api.quarantine.edit(id, &body, &who, &why).await?;
    let errors = edited.findings.iter().filter(|f| f.is_error()).count();
    Ok(Json(json!({
        "id": edited.id,
        "edit_id": edited.edit_id,
        "revision": edited.revision,
        "valid": errors == 0,
        "errors": errors,
        "findings": edited.findings,
    })))
}

async fn revalidate(
    State(api): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = entry_id(&id)?;
    let findings = api.quarantine.revalidate(id).await?;
    let errors = findings.iter().filter(|f| f.is_error()).count();
    Ok(Json(json!({
        "id": id,
        "valid": errors == 0,
        "errors": errors,
        "findings": findings,
    })))
}

/// A JSON body that may be absent.
fn json_body<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| bad_request(format!("request body: {e}")))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    reason: Option<String>,
    /// Reprocess even with error findings.
    #[serde(default)]
    force: bool,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct BulkBody {
    /// Entry ids to reprocess.
    ids: Option<Vec<i64>>,
    /// Or every open entry matching these.
    channel: Option<String>,
    sender: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    /// At most this many (by filter; default 1000).
    limit: Option<usize>,
    reason: Option<String>,
    /// Reprocess even entries with error findings.
    #[serde(default)]
    force: bool,
}

fn reprocess_json(results: Vec<crate::Reprocessed>) -> Value {
    let mut done = 0;
    let items: Vec<Value> = results
        .into_iter()
        .map(|r| match r.result {
            Ok(message_id) => {
                done += 1;
                json!({"id": r.id, "reprocessed": true, "message_id": message_id.0})
            }
            Err(e) => json!({"id": r.id, "reprocessed": false, "error": e.to_string()}),
        })
        .collect();
    json!({"reprocessed": done, "results": items})
}

async fn reprocess_one(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = entry_id(&id)?;
    let who = user(&headers)?;
    let body: ReasonBody = json_body(&body)?;
    let why = reason(&headers, None, body.reason)?;
    let mut results = api
        .quarantine
        .reprocess(&[id], &who, Some(&why), body.force, api.notify.as_ref())
        .await?;
    match results.pop() {
        Some(r) => {
            let message_id = r.result?;
            Ok(Json(json!({
                "id": id,
                "reprocessed": true,
                "message_id": message_id.0,
            })))
        }
        None => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no result".into(),
        )),
    }
}

async fn reprocess_many(
    State(api): State<ApiState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = user(&headers)?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request(
            "the body must be JSON: {\"ids\": [..]} or a filter {\"channel\", \"sender\", \"type\"}",
        ));
    }
    let body: BulkBody = json_body(&body)?;
    let by_filter = body.channel.is_some() || body.sender.is_some() || body.message_type.is_some();
    let ids: Vec<QuarantineId> = match (body.ids, by_filter) {
        (Some(_), true) => {
            return Err(bad_request("give either ids or a filter, not both"));
        }
        (Some(ids), false) => {
            if ids.is_empty() {
                return Err(bad_request("ids is empty"));
            }
            if ids.len() > MAX_BULK {
                return Err(bad_request(format!(
                    "at most {MAX_BULK} ids at once, got {}",
                    ids.len()
                )));
            }
            ids.into_iter().map(QuarantineId).collect()
        }
        (None, true) => {
            let filter = QuarantineFilter {
                channel: body.channel,
                sender: body.sender,
                message_type: body.message_type,
                ..QuarantineFilter::default()
            };
            let limit = body.limit.unwrap_or(DEFAULT_BULK).clamp(1, MAX_BULK);
            api.quarantine.open_ids(filter, limit).await?
        }
        (None, false) => {
            return Err(bad_request(
                "say which entries: {\"ids\": [..]} or a filter {\"channel\", \"sender\", \"type\"}",
            ));
        }
    };
    let why = reason(&headers, None, body.reason)?;
    let results = api
        .quarantine
        .reprocess(&ids, &who, Some(&why), body.force, api.notify.as_ref())
        .await?;
    Ok(Json(reprocess_json(results)))
}

async fn discard(
    State(api): State<ApiState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = entry_id(&id)?;
    let who = user(&headers)?;
    let body: ReasonBody = json_body(&body)?;
    let why = reason(&headers, None, body.reason)?;
    if why.trim().is_empty() {
        return Err(bad_request(
            "say why the message is discarded: {\"reason\": \"..\"} or X-Corridor-Reason",
        ));
    }
    api.quarantine.discard(id, &who, &why).await?;
    Ok(Json(json!({"id": id, "status": "discarded"})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QualityQuery {
    channel: Option<String>,
    sender: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
}

async fn data_quality(
    State(api): State<ApiState>,
    q: Result<Query<QualityQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let q = query(q)?;
    let filter = DataQualityFilter {
        channel: q.channel,
        sender: q.sender,
        message_type: q.message_type,
    };
    let (messages, findings) = api.quarantine.data_quality(filter).await?;
    Ok(Json(json!({"messages": messages, "findings": findings})))
}
