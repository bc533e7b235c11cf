//! `GET /api/channels/{name}/profile?limit=N&format=json|html|profile`: the feed profile
//! (see the `profile` crate) of a channel's stored messages, newest first (at most
//! `limit`, default 10,000, at most 100,000). `format=profile` answers the suggested
//! TOML conformance profile. Top values of coded fields come from message content, so
//! the route is read as PHI.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::extract::{Path, Query};
use crate::routes::{Access, Method, Routes};
use crate::{Api, ApiError};

const DEFAULT_LIMIT: usize = 10_000;
const MAX_LIMIT: usize = 100_000;

pub(crate) fn routes() -> Routes {
    Routes::new().add(
        Method::Get,
        "/api/channels/{name}/profile",
        Access::Phi,
        channel_profile,
    )
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileQuery {
    limit: Option<usize>,
    format: Option<String>,
}

async fn channel_profile(
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<ProfileQuery>,
) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "limit {limit}: use 1 to {MAX_LIMIT}"
        )));
    }
    let format = q.format.unwrap_or_else(|| "json".to_owned());
    if !matches!(format.as_str(), "json" | "html" | "profile") {
        return Err(ApiError::bad_request(format!(
            "format {format:?}: use json, html or profile"
        )));
    }
    let terminology = api.terminology.as_ref().map(|t| t.current());
    let channel = name.clone();
    let store = api.store.clone();
    let profiler = tokio::task::spawn_blocking(move || {
        store.read(|conn| {
            let mut profiler = profile::Profiler::new(profile::Options::default(), terminology);
            let mut stmt = conn.prepare(
                "SELECT r.raw FROM journal j JOIN journal_raw r ON r.id = j.id \
                 WHERE j.channel = ?1 ORDER BY j.id DESC LIMIT ?2",
            )?;
            let mut rows = stmt.query(store::rusqlite::params![channel, limit as i64])?;
            while let Some(row) = rows.next()? {
                let raw: Vec<u8> = row.get(0)?;
                profiler.add(&raw);
            }
            Ok(profiler)
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    if profiler.messages() == 0 {
        return Err(ApiError::not_found(format!(
            "channel {name} has no stored message"
        )));
    }
    Ok(match format.as_str() {
        "html" => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            profiler.report().to_html(),
        )
            .into_response(),
        "profile" => (
            [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
            profiler.suggest_profile(&format!("channel {name}")),
        )
            .into_response(),
        _ => axum::Json(profiler.report()).into_response(),
    })
}
