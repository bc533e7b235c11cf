//! The destinations' dead letters (JSON).
//!
//! - `GET /api/dead-letters?channel=&destination=&after=&limit=`: dead-lettered queue
//!   entries, oldest first, one shape with a message's destinations
//!   (`messages::queue_entry_json`) plus `channel` and `message_id`; `next_after` pages
//!   on (keyset: `after=ENTRY`). `limit` is at most 500 (50 by default).
//! - `POST /api/dead-letters/{entry}/discard` with `{"reason": "..."}`: the entry
//!   leaves the dead letters for good (state `discarded`, the reason and who in its
//!   `state_reason`), keeping its history; 409 for an entry that is not dead-lettered.
//!
//! The console's quarantine page lists and discards through the same functions.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use delivery::{EntryId, EntryState, QueueEntry};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::extract::{Path, Query};
use crate::messages::{blocking, queue_entry_json};
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError, Principal};

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/api/dead-letters", Access::Phi, list)
        .add(
            Method::Post,
            "/api/dead-letters/{entry}/discard",
            Access::Operate,
            discard,
        )
}

const MAX_PAGE: usize = 500;

/// One page of dead letters, oldest first, after entry `after`, on one channel or
/// destination when given; and the entry to page on from when there may be more.
pub(crate) async fn page(
    api: &Api,
    channel: Option<String>,
    destination: Option<String>,
    after: Option<i64>,
    limit: usize,
) -> Result<(Vec<QueueEntry>, Option<i64>), ApiError> {
    let Some(delivery) = api.delivery.clone() else {
        return Ok((Vec::new(), None));
    };
    let store = api.store.clone();
    let limit = limit.clamp(1, MAX_PAGE);
    let mut entries = blocking(move || {
        let stats = delivery.stats()?;
        Ok(store.read(|conn| {
            // Each destination's own page (its index on channel, destination, state),
            // merged in entry order.
            let mut entries = Vec::new();
            for d in stats.iter().filter(|d| {
                d.counts.dead_lettered > 0
                    && channel.as_ref().is_none_or(|c| *c == d.channel)
                    && destination.as_ref().is_none_or(|n| *n == d.destination)
            }) {
                entries.extend(delivery::entries_in_state(
                    conn,
                    &d.channel,
                    &d.destination,
                    EntryState::DeadLettered,
                    after.map(EntryId),
                    limit,
                )?);
            }
            Ok(entries)
        })?)
    })
    .await?;
    entries.sort_by_key(|e| e.id.0);
    entries.truncate(limit);
    let next = (entries.len() == limit)
        .then(|| entries.last().map(|e| e.id.0))
        .flatten();
    Ok((entries, next))
}

/// Discards dead letter `entry` as `who` because `why`.
pub(crate) async fn discard_entry(
    api: &Api,
    entry: i64,
    who: &str,
    why: &str,
) -> Result<(), ApiError> {
    let why = why.trim();
    if why.is_empty() {
        return Err(ApiError::bad_request(
            "reason: say why the dead letter is discarded",
        ));
    }
    let (who, why) = (who.to_owned(), why.to_owned());
    api.store
        .write(move |conn| delivery::discard_in(conn, EntryId(entry), &who, &why))
        .await
        .map_err(|e| match e {
            store::Error::Refused(reason) if reason.contains("does not exist") => {
                ApiError::not_found(reason)
            }
            store::Error::Refused(reason) => ApiError::conflict(reason),
            other => other.into(),
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    channel: Option<String>,
    destination: Option<String>,
    after: Option<i64>,
    limit: Option<usize>,
}

async fn list(State(api): State<Api>, Query(q): Query<ListQuery>) -> Result<Json<Value>, ApiError> {
    let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let (entries, next) = page(
        &api,
        given(q.channel),
        given(q.destination),
        q.after,
        q.limit.unwrap_or(50),
    )
    .await?;
    Ok(Json(json!({
        "dead_letters": entries
            .iter()
            .map(|e| {
                let mut json = queue_entry_json(e);
                json["channel"] = json!(e.channel);
                json["message_id"] = json!(e.message_id.0);
                json
            })
            .collect::<Vec<_>>(),
        "next_after": next,
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscardBody {
    reason: String,
}

async fn discard(
    State(api): State<Api>,
    principal: Principal,
    Path(entry): Path<i64>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = principal.require()?.to_owned();
    let body: DiscardBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!("the body: {e} (give {{\"reason\": \"...\"}})"))
    })?;
    discard_entry(&api, entry, &who, &body.reason).await?;
    Ok(Json(json!({"entry": entry, "state": "discarded"})))
}
