//! Corridor's HTTP API (JSON): the message browser's endpoints.
//!
//! - `GET /api/messages?channel=&state=&before=&limit=`: journal entries,
//!   newest first, without their bytes; `next_before` pages on.
//! - `GET /api/messages/{id}`: one message with its states, timestamps and
//!   raw content.
//! - `GET /api/stats?channel=`: message counts by state.
//!
//! The engine serves [`router`] on its HTTP port next to its own health and
//! metrics endpoints. Reads go to SQLite on the blocking pool, never on the
//! async workers.
//!
//! The API shows message content, which is PHI: it listens on loopback by
//! default and must be put behind an authenticating proxy before it is
//! exposed further.
//!
//! ```no_run
//! # async fn demo(store: store::Store) {
//! let app = server::router(server::ApiState { store });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use store::{JournalEntry, JournalFilter, MessageId, MessageState, Store};

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    pub store: Store,
}

/// The API's routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/messages", get(list_messages))
        .route("/api/messages/{id}", get(get_message))
        .route("/api/stats", get(stats))
        .with_state(state)
}

/// An error answered as JSON with a status code.
pub struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> ApiError {
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// Runs a blocking store read off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    channel: Option<String>,
    state: Option<String>,
    before: Option<i64>,
    limit: Option<usize>,
}

const MAX_PAGE: usize = 500;

async fn list_messages(
    State(api): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let state = match q.state.as_deref() {
        Some(s) => Some(s.parse::<MessageState>().map_err(|_| {
            ApiError(
                StatusCode::BAD_REQUEST,
                format!("state: {s:?} is not a message state"),
            )
        })?),
        None => None,
    };
    let filter = JournalFilter {
        channel: q.channel,
        state,
        before_id: q.before.map(MessageId),
        ..JournalFilter::default()
    };
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_PAGE);
    let journal = api.store.journal();
    let entries = blocking(move || Ok(journal.list(&filter, limit)?)).await?;
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.0))
        .flatten();
    Ok(Json(json!({
        "messages": entries.iter().map(entry_json).collect::<Vec<_>>(),
        "next_before": next,
    })))
}

async fn get_message(
    State(api): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let journal = api.store.journal();
    let stored = blocking(move || Ok(journal.get(MessageId(id))?)).await?;
    let Some(stored) = stored else {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("no message {id}")));
    };
    let mut body = entry_json(&stored.entry);
    body["raw"] = Value::String(String::from_utf8_lossy(&stored.raw).into_owned());
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StatsQuery {
    channel: Option<String>,
}

async fn stats(
    State(api): State<ApiState>,
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
    Ok(Json(json!({"channel": q.channel, "messages": by_state})))
}

/// A journal entry as JSON; times are microseconds since the Unix epoch.
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
    })
}
