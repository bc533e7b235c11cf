//! The quarantine and data-quality routes (JSON).
//!
//! Mutating requests name the analyst through [`crate::Principal`]; reasons come in
//! `X-Corridor-Reason`, `?reason=` (edits) or a JSON body `{"reason": ".."}`. Errors
//! are 400 for a malformed request (no user, empty body, bad id or filter), 404 for an
//! unknown entry, 409 for an entry that is no longer open, was edited meanwhile or
//! still fails validation (without force), 422 for a correction that is not an HL7 v2
//! message.
//!
//! | route | what |
//! | --- | --- |
//! | `GET /api/quarantine?channel=&sender=&type=&status=&before=&limit=` | entries, newest first, with counts and first errors; `next_before` pages on |
//! | `GET /api/quarantine/{id}` | one entry: findings with locations, original (a journal entry, [`crate::entry_json`], with `raw`) and current content, edit history |
//! | `PUT /api/quarantine/{id}` | edit: the body is the whole corrected message |
//! | `POST /api/quarantine/{id}/revalidate` | validate the current content again |
//! | `POST /api/quarantine/{id}/reprocess` | send it back through its channel (`{"force": true}` even with errors) |
//! | `POST /api/quarantine/reprocess` | many: `{"ids": [..]}` or `{"channel", "sender", "type", "limit"}` (open entries, oldest first), `"force"` |
//! | `POST /api/quarantine/{id}/discard` | set it aside: `{"reason": ".."}` |
//! | `GET /api/data-quality?channel=&sender=&type=&since=&bucket=day\|hour` | messages validated and findings by sender, type, path, code; `over_time`: per sender and day (or hour) since `since` (default 30 days), messages validated and findings per field |

use axum::Json;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use quarantine::{DataQualityFilter, QuarantineFilter, QuarantineId, Reprocessed, Status};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::extract::{Path, Query};
use crate::routes::{Access, Method, Routes};
use crate::times::add_iso;
use crate::{Api, ApiError, Principal, entry_json};

/// Header carrying the reason of an edit, a reprocess or a discard (or `?reason=`).
pub const REASON_HEADER: &str = "x-corridor-reason";

const MAX_PAGE: usize = 500;
/// Largest corrected message accepted, as large as a source accepts by default.
const MAX_BODY: usize = 16 << 20;
const DEFAULT_BULK: usize = 1000;
const MAX_BULK: usize = 10_000;

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/api/quarantine", Access::Phi, list)
        .add(
            Method::Post,
            "/api/quarantine/reprocess",
            Access::Operate,
            reprocess_many,
        )
        .add(Method::Get, "/api/quarantine/{id}", Access::Phi, detail)
        .add(Method::Put, "/api/quarantine/{id}", Access::Operate, edit)
        .add(
            Method::Post,
            "/api/quarantine/{id}/revalidate",
            Access::Operate,
            revalidate,
        )
        .add(
            Method::Post,
            "/api/quarantine/{id}/reprocess",
            Access::Operate,
            reprocess_one,
        )
        .add(
            Method::Post,
            "/api/quarantine/{id}/discard",
            Access::Operate,
            discard,
        )
        .add(
            Method::Get,
            "/api/data-quality",
            Access::Metadata,
            data_quality,
        )
        .map_router(|r| r.layer(DefaultBodyLimit::max(MAX_BODY)))
}

fn bad_request(text: impl Into<String>) -> ApiError {
    ApiError::bad_request(text)
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

async fn list(State(api): State<Api>, Query(q): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    let status = q.status.as_deref().map(str::parse::<Status>).transpose()?;
    let filter = QuarantineFilter {
        channel: q.channel,
        sender: q.sender,
        message_type: q.message_type,
        status,
        before: q.before.map(QuarantineId),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let total = api.quarantine()?.count(filter.clone()).await?;
    let entries = api.quarantine()?.list(filter, limit).await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.0))
        .flatten();
    let entries = entries
        .iter()
        .map(summary_json)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(json!({
        "entries": entries,
        "total": total,
        "next_before": next,
    })))
}

async fn detail(State(api): State<Api>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id = entry_id(&id)?;
    let d = api.quarantine()?.get(id).await?;
    let mut body = summary_json(&d.summary)?;
    let mut original = entry_json(&d.original.entry);
    original["raw"] = json!(String::from_utf8_lossy(&d.original.raw));
    body["findings"] = json!(d.findings);
    body["validated_at"] = json!(d.validated_at);
    add_iso(&mut body, &["validated_at"]);
    body["original"] = original;
    body["content"] = json!(String::from_utf8_lossy(&d.content));
    body["edited"] = json!(!d.history.is_empty());
    body["revision"] = json!(d.revision);
    let mut history = json!(d.history);
    if let Value::Array(edits) = &mut history {
        edits.iter_mut().for_each(|e| add_iso(e, &["edited_at"]));
    }
    body["history"] = history;
    body["reprocessed_from"] = json!(d.reprocessed_from);
    Ok(Json(body))
}

/// A quarantine entry as listed, its times also as RFC 3339 (`quarantined`,
/// `status_changed`).
fn summary_json(summary: &quarantine::Summary) -> Result<Value, ApiError> {
    let mut json = serde_json::to_value(summary)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    add_iso(&mut json, &["quarantined_at", "status_changed_at"]);
    Ok(json)
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
    State(api): State<Api>,
    Path(id): Path<String>,
    principal: Principal,
    headers: HeaderMap,
    Query(q): Query<ReasonQuery>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = entry_id(&id)?;
    let who = principal.require()?.to_owned();
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
    let edited = api.quarantine()?.edit(id, &body, &who, &why).await?;
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
    State(api): State<Api>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = entry_id(&id)?;
    let findings = api.quarantine()?.revalidate(id).await?;
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

fn reprocess_json(results: Vec<Reprocessed>) -> Value {
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
    State(api): State<Api>,
    Path(id): Path<String>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = entry_id(&id)?;
    let who = principal.require()?.to_owned();
    let body: ReasonBody = json_body(&body)?;
    let why = reason(&headers, None, body.reason)?;
    let mut results = api
        .quarantine()?
        .reprocess(
            &[id],
            &who,
            Some(&why),
            body.force,
            api.wake_channel.as_ref(),
        )
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
        None => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no result",
        )),
    }
}

async fn reprocess_many(
    State(api): State<Api>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = principal.require()?.to_owned();
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
            api.quarantine()?.open_ids(filter, limit).await?
        }
        (None, false) => {
            return Err(bad_request(
                "say which entries: {\"ids\": [..]} or a filter {\"channel\", \"sender\", \"type\"}",
            ));
        }
    };
    let why = reason(&headers, None, body.reason)?;
    let results = api
        .quarantine()?
        .reprocess(
            &ids,
            &who,
            Some(&why),
            body.force,
            api.wake_channel.as_ref(),
        )
        .await?;
    Ok(Json(reprocess_json(results)))
}

async fn discard(
    State(api): State<Api>,
    Path(id): Path<String>,
    principal: Principal,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let id = entry_id(&id)?;
    let who = principal.require()?.to_owned();
    let body: ReasonBody = json_body(&body)?;
    let why = reason(&headers, None, body.reason)?;
    if why.trim().is_empty() {
        return Err(bad_request(
            "say why the message is discarded: {\"reason\": \"..\"} or X-Corridor-Reason",
        ));
    }
    api.quarantine()?.discard(id, &who, &why).await?;
    Ok(Json(json!({"id": id, "status": "discarded"})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QualityQuery {
    channel: Option<String>,
    sender: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    since: Option<String>,
    bucket: Option<String>,
}

/// How far back data quality over time goes unless `since` says.
const OVER_TIME_DAYS: i64 = 30;

/// The span and bucket of data quality over time: `since` (default the last 30 days)
/// and `bucket` (`day` or `hour`; by default hours for two days or less, else days).
pub(crate) fn over_time_range(
    since: Option<&str>,
    bucket: Option<&str>,
) -> Result<(i64, quarantine::Bucket), ApiError> {
    let now = store::UnixMicros::now().0;
    let since = match since.map(str::trim).filter(|s| !s.is_empty()) {
        None => now - OVER_TIME_DAYS * 86_400_000_000,
        Some(text) => datetime::rfc3339::parse_time_or_date(text)
            .map_err(|e| bad_request(format!("since: {e}")))?,
    };
    let bucket = match bucket.map(str::trim).filter(|s| !s.is_empty()) {
        Some("day") => quarantine::Bucket::Day,
        Some("hour") => quarantine::Bucket::Hour,
        Some(other) => {
            return Err(bad_request(format!("bucket: {other:?} is not day or hour")));
        }
        None if now - since <= 2 * 86_400_000_000 => quarantine::Bucket::Hour,
        None => quarantine::Bucket::Day,
    };
    if bucket == quarantine::Bucket::Hour && now - since > 31 * 86_400_000_000 {
        return Err(bad_request(
            "bucket: hours go back 31 days at most; ask for days",
        ));
    }
    Ok((since, bucket))
}

async fn data_quality(
    State(api): State<Api>,
    Query(q): Query<QualityQuery>,
) -> Result<Json<Value>, ApiError> {
    let (since, bucket) = over_time_range(q.since.as_deref(), q.bucket.as_deref())?;
    let filter = DataQualityFilter {
        channel: q.channel,
        sender: q.sender,
        message_type: q.message_type,
    };
    let quarantine = api.quarantine()?;
    let (messages, findings) = quarantine.data_quality(filter.clone()).await?;
    let (senders, fields) = quarantine
        .data_quality_over_time(filter, since, bucket)
        .await?;
    let at = |start: i64| datetime::rfc3339::format_micros(start);
    let senders: Vec<Value> = senders
        .iter()
        .map(|s| {
            json!({"start": at(s.start), "sender": s.sender, "validated": s.validated,
                   "with_errors": s.with_errors, "with_warnings": s.with_warnings})
        })
        .collect();
    let fields: Vec<Value> = fields
        .iter()
        .map(|f| {
            json!({"start": at(f.start), "sender": f.sender, "path": f.path,
                   "count": f.count, "messages": f.messages})
        })
        .collect();
    Ok(Json(json!({
        "messages": messages,
        "findings": findings,
        "over_time": {
            "since": at(since),
            "bucket": bucket.as_str(),
            "senders": senders,
            "fields": fields,
        },
    })))
}
