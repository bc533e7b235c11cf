//! The message browser (JSON).
//!
//! - `GET /api/messages`: journal entries, newest first, without their bytes;
//!   `next_before` pages on (keyset: `before=ID`). Every parameter given must hold:
//!   `since`, `until` (RFC 3339 or a date), `channel`, `state`, `type` (`ORU` or
//!   `ORU^R01`), `sender` (MSH-3), `control_id` (MSH-10), `patient_id` (PID-3.1),
//!   `patient_name` (a family or given name, or its beginning), `order` (ORC-2/3,
//!   OBR-2/3, OBR-20), `text` (anywhere in the message), `destination` (messages
//!   with an entry on that destination's queue), `destination_state` (with an entry
//!   in one of these queue states, comma-separated: `queued`, `sending`, `delivered`,
//!   `errored`, `dead_lettered`, `filtered`, `discarded`; on `destination` when given),
//!   `limit` (at most 500).
//!   Patient and order fields come from the search index the pipelines write
//!   (`store::search`). An unknown parameter or a bad value is a 400 naming it.
//! - `GET /api/messages/{id}`: one message with its states, timestamps and
//!   raw content, and one entry per destination with its own state, attempts,
//!   answer, what it was sent (`payload`) and `queued` / `first_sent` / `sent` (the
//!   last attempt) / `acked` times
//!   (RFC 3339; `*_at` in microseconds since the epoch), so each hop's latency
//!   reads from the answer.
//! - `POST /api/messages/{id}/reprocess`: the message goes back to `received`
//!   and through its channel's pipeline again (new destination entries).
//! - `POST /api/messages/{id}/resend?destination=NAME`: the destination's
//!   entry is queued again, at the end of its queue.
//! - `GET /api/stats?channel=`: message counts by state (kept in memory by the store,
//!   exact, no read of the journal), messages stored and processed per second over the
//!   last minute (`per_second`), and per destination: entries by state, queue depth,
//!   oldest queued age, alert and last error.
//!
//! Reads go to SQLite on the blocking pool, never on the async workers.

use axum::Json;
use axum::extract::State;

use crate::extract::{Path, Query};
use axum::http::StatusCode;
use delivery::{EntryId, QueueEntry};
use serde::Deserialize;
use serde_json::{Value, json};
use store::{JournalEntry, MessageId, MessageState};

use crate::routes::{Access, Method, Routes};
use crate::times::iso;
use crate::{Api, ApiError};

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/api/messages", Access::Phi, list_messages)
        .add(Method::Get, "/api/messages/{id}", Access::Phi, get_message)
        .add(
            Method::Post,
            "/api/messages/{id}/reprocess",
            Access::Operate,
            reprocess,
        )
        .add(
            Method::Post,
            "/api/messages/{id}/resend",
            Access::Operate,
            resend,
        )
        .add(Method::Get, "/api/stats", Access::Metadata, stats)
}

/// Runs a blocking store read off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    channel: Option<String>,
    state: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
    since: Option<String>,
    until: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    sender: Option<String>,
    control_id: Option<String>,
    patient_id: Option<String>,
    patient_name: Option<String>,
    order: Option<String>,
    text: Option<String>,
    destination: Option<String>,
    destination_state: Option<String>,
}

/// A query parameter's time: RFC 3339 or a date, as microseconds since the epoch.
fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| {
            datetime::rfc3339::parse_time_or_date(v)
                .map_err(|e| ApiError::bad_request(format!("{name}: {e}")))
        })
        .transpose()
}

/// An empty parameter (a form's blank field) is no condition.
fn given(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

const MAX_PAGE: usize = 500;

/// `destination_state`: queue entry states, comma-separated (`queued,sending` is a
/// destination's depth); an unknown one is a 400 naming it.
fn destination_states(value: Option<&str>) -> Result<Vec<String>, ApiError> {
    let mut states = Vec::new();
    for part in value.unwrap_or("").split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let state = part.parse::<delivery::EntryState>().map_err(|_| {
            ApiError::bad_request(format!(
                "destination_state: {part:?} is not a queue entry state \
                 (queued, sending, delivered, errored, dead_lettered, filtered, discarded)"
            ))
        })?;
        states.push(state.as_str().to_owned());
    }
    Ok(states)
}

async fn list_messages(
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let (entries, next) = search_with(&api, q).await?;
    Ok(Json(json!({
        "messages": entries.iter().map(entry_json).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

/// The search of `GET /api/messages` over query parameters given as pairs (the
/// console's browser): a page of entries and the id to page on from.
pub(crate) async fn search(
    api: &Api,
    pairs: &[(String, String)],
    default_limit: usize,
) -> Result<(Vec<JournalEntry>, Option<i64>), ApiError> {
    let encoded = serde_urlencoded::to_string(pairs)
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))?;
    let mut q: ListQuery = serde_urlencoded::from_str(&encoded)
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))?;
    q.limit = q.limit.or(Some(default_limit));
    search_with(api, q).await
}

/// Whether `GET /api/messages` takes these parameters: the 400 it would answer.
pub(crate) fn check_search(pairs: &[(String, String)]) -> Result<(), ApiError> {
    let encoded = serde_urlencoded::to_string(pairs)
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))?;
    let q: ListQuery = serde_urlencoded::from_str(&encoded)
        .map_err(|e| ApiError::bad_request(format!("query string: {e}")))?;
    query_of(q).map(|_| ())
}

async fn search_with(
    api: &Api,
    q: ListQuery,
) -> Result<(Vec<JournalEntry>, Option<i64>), ApiError> {
    let (query, limit) = query_of(q)?;
    let store = api.store.clone();
    let entries =
        blocking(move || Ok(store.read(|conn| store::search::search(conn, &query, limit))?))
            .await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.0))
        .flatten();
    Ok((entries, next))
}

/// The store's search of the parameters, and the page's size.
fn query_of(q: ListQuery) -> Result<(store::search::SearchQuery, usize), ApiError> {
    let state = match q.state.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => Some(s.parse::<MessageState>().map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("state: {s:?} is not a message state"),
            )
        })?),
        None => None,
    };
    let query = store::search::SearchQuery {
        since: time_param("since", q.since.as_deref())?,
        until: time_param("until", q.until.as_deref())?,
        channel: given(q.channel),
        state: state.map(|s| s.as_str().to_owned()),
        message_type: given(q.message_type),
        sender: given(q.sender),
        control_id: given(q.control_id),
        patient_id: given(q.patient_id),
        patient_name: given(q.patient_name),
        order: given(q.order),
        text: given(q.text),
        destination: given(q.destination),
        destination_states: destination_states(q.destination_state.as_deref())?,
        before_id: q.before,
    };
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    Ok((query, limit))
}

async fn get_message(State(api): State<Api>, Path(id): Path<i64>) -> Result<Json<Value>, ApiError> {
    let store = api.store.clone();
    let (stored, entries) = blocking(move || {
        let stored = store.journal().get(MessageId(id))?;
        // Before the first processing there is no queue table yet in a bare store.
        let entries = store
            .read(|conn| {
                let entries = delivery::entries_of_message(conn, MessageId(id))?;
                entries
                    .into_iter()
                    .map(|e| {
                        let payload = delivery::payload_of(conn, e.id)?;
                        Ok((e, payload))
                    })
                    .collect::<store::Result<Vec<_>>>()
            })
            .unwrap_or_default();
        Ok((stored, entries))
    })
    .await?;
    let Some(stored) = stored else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no message {id}"),
        ));
    };
    let mut body = entry_json(&stored.entry);
    body["raw"] = Value::String(String::from_utf8_lossy(&stored.raw).into_owned());
    body["destinations"] = entries
        .iter()
        .map(|(entry, payload)| {
            let mut json = queue_entry_json(entry);
            // What the destination was sent (after its own steps); none for an entry
            // it filtered or failed on before queueing.
            json["payload"] = payload.as_ref().map_or(Value::Null, |p| {
                Value::String(String::from_utf8_lossy(p).into_owned())
            });
            json
        })
        .collect();
    Ok(Json(body))
}

/// A destination's entry for a message: times as RFC 3339 (`queued`, `first_sent`,
/// `sent` (the last attempt), `acked`,
/// `state_changed`) and as microseconds since the epoch (`*_at`), what it was sent
/// (`payload`, when the queue kept it) and the answer received.
pub(crate) fn queue_entry_json(e: &QueueEntry) -> Value {
    json!({
        "entry": e.id.0,
        "destination": e.destination,
        "state": e.state.as_str(),
        "state_reason": e.state_reason,
        "attempts": e.attempts,
        "last_error": e.last_error,
        "answer": e.answer,
        "ordering_key": e.ordering_key,
        "queued_at": e.queued_at.0,
        "sent_at": e.sent_at.map(|t| t.0),
        "first_sent_at": e.first_sent_at.map(|t| t.0),
        "acked_at": e.acked_at.map(|t| t.0),
        "state_changed_at": e.state_changed_at.0,
        "queued": iso(e.queued_at.0),
        "sent": e.sent_at.map(|t| iso(t.0)),
        "first_sent": e.first_sent_at.map(|t| iso(t.0)),
        "acked": e.acked_at.map(|t| iso(t.0)),
        "state_changed": iso(e.state_changed_at.0),
    })
}

/// Puts a message back to `received` so its channel processes it again.
async fn reprocess(
    State(api): State<Api>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let previous = reprocess_message(&api, id).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "state": "received", "was": previous.as_str()})),
    ))
}

/// Puts message `id` back to `received` and wakes its channel; the state it was in.
pub(crate) async fn reprocess_message(api: &Api, id: i64) -> Result<MessageState, ApiError> {
    let journal = api.store.journal();
    let stored = blocking(move || Ok(journal.get(MessageId(id))?)).await?;
    let Some(stored) = stored else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no message {id}"),
        ));
    };
    match stored.entry.state {
        MessageState::Received => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("message {id} is waiting to be processed already"),
            ));
        }
        MessageState::Rejected => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("message {id} was rejected on arrival; it cannot be processed as it is"),
            ));
        }
        _ => {}
    }
    let previous = stored.entry.state;
    api.store
        .write(move |conn| {
            store::Journal::set_state_in(
                conn,
                MessageId(id),
                MessageState::Received,
                Some(&format!("reprocess requested (was {previous})")),
            )
        })
        .await?;
    (api.wake_channel)(&stored.entry.channel);
    Ok(previous)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResendQuery {
    destination: String,
}

/// Queues a message again for one destination.
async fn resend(
    State(api): State<Api>,
    Path(id): Path<i64>,
    Query(q): Query<ResendQuery>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let new = resend_to(&api, id, &q.destination).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"id": id, "destination": q.destination, "entry": new})),
    ))
}

/// Queues message `id` again for `destination` (a copy of its latest entry there, at
/// the end of the queue); the new entry's id. The console's per-destination resend
/// button does the same.
pub(crate) async fn resend_to(api: &Api, id: i64, destination: &str) -> Result<i64, ApiError> {
    let Some(delivery) = api.delivery.clone() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no destinations are running".to_owned(),
        ));
    };
    let store = api.store.clone();
    let entries =
        blocking(move || Ok(store.read(|conn| delivery::entries_of_message(conn, MessageId(id)))?))
            .await?;
    let Some(entry) = entries
        .iter()
        .filter(|e| e.destination == destination)
        .max_by_key(|e| e.id.0)
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("message {id} has no entry for destination {destination:?}"),
        ));
    };
    if !matches!(
        entry.state,
        delivery::EntryState::Delivered
            | delivery::EntryState::Errored
            | delivery::EntryState::DeadLettered
    ) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "the entry for {destination:?} is {}: only delivered, errored or dead-lettered entries are sent again",
                entry.state.as_str()
            ),
        ));
    }
    // A refusal (a channel destination's hand-over, say) is the caller's to fix.
    let EntryId(new) = delivery.resend(entry.id).await.map_err(|e| match e {
        store::Error::Refused(reason) => ApiError::new(StatusCode::CONFLICT, reason),
        other => other.into(),
    })?;
    Ok(new)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    channel: Option<String>,
}

async fn stats(
    State(api): State<Api>,
    Query(q): Query<StatsQuery>,
) -> Result<Json<Value>, ApiError> {
    let journal = api.store.journal();
    let channel = q.channel.clone();
    let counts = blocking(move || Ok(journal.count_by_state(channel.as_deref())?)).await?;
    let by_state: serde_json::Map<String, Value> = MessageState::ALL
        .iter()
        .map(|s| {
            let n = counts.iter().find(|(c, _)| c == s).map_or(0, |(_, n)| *n);
            (s.as_str().to_string(), json!(n))
        })
        .collect();
    let destinations = match api.delivery.clone() {
        Some(delivery) => blocking(move || Ok(delivery.stats()?)).await?,
        None => Vec::new(),
    };
    let destinations: Vec<Value> = destinations
        .iter()
        .filter(|d| q.channel.as_ref().is_none_or(|c| *c == d.channel))
        .map(|d| {
            json!({
                "channel": d.channel,
                "destination": d.destination,
                "type": d.kind.as_str(),
                "queued": d.counts.queued,
                "sending": d.counts.sending,
                "delivered": d.counts.delivered,
                "filtered": d.counts.filtered,
                "errored": d.counts.errored,
                "dead_lettered": d.counts.dead_lettered,
                "depth": d.counts.depth,
                "oldest_queued_age_ms": d.oldest_queued_age.map(|a| a.as_millis() as u64),
                "alert": d.alert,
                "last_error": d.last_error,
                "delivered_since_start": d.delivered_since_start,
                "failures_since_start": d.failures_since_start,
            })
        })
        .collect();
    let (mut stored, mut processed) = (0.0, 0.0);
    for (channel, rates) in api.store.message_rates() {
        if q.channel.as_ref().is_none_or(|c| *c == channel) {
            stored += rates.stored_per_second;
            processed += rates.processed_per_second;
        }
    }
    Ok(Json(json!({
        "channel": q.channel,
        "messages": by_state,
        "per_second": {"stored": stored, "processed": processed},
        "destinations": destinations,
    })))
}

/// A journal entry as JSON, the one shape of a journal entry in every answer (the
/// message list, one message, a quarantine entry's `original`): header fields as
/// received, state and reason, size in bytes; times as RFC 3339 in UTC (`received`,
/// `stored`, `state_changed`) and as microseconds since the Unix epoch (`*_at`).
pub fn entry_json(e: &JournalEntry) -> Value {
    json!({
        "id": e.id.0,
        "channel": e.channel,
        "received_at": e.received_at.0,
        "stored_at": e.stored_at.0,
        "state_changed_at": e.state_changed_at.0,
        "peer": e.peer,
        "tls_identity": e.tls_identity,
        "sending_application": e.sending_application,
        "sending_facility": e.sending_facility,
        "message_type": e.message_type,
        "control_id": e.control_id,
        "version": e.version,
        "state": e.state.as_str(),
        "state_reason": e.state_reason,
        "size": e.size,
        "received": iso(e.received_at.0),
        "stored": iso(e.stored_at.0),
        "state_changed": iso(e.state_changed_at.0),
    })
}
