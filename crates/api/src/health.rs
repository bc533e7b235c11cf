//! `GET /health` (JSON) and `GET /metrics` (Prometheus text).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::{Value, json};

use crate::Api;
use crate::routes::{Access, Method, Routes};

/// One channel's line in `/health`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ChannelHealth {
    pub name: String,
    /// The source's listening address.
    pub listen: String,
    /// Connections open on the listener now.
    pub open_connections: u64,
    pub received: u64,
    pub rejected: u64,
    pub duplicates: u64,
    pub store_failures: u64,
    pub processed: u64,
    pub filtered: u64,
    pub quarantined: u64,
    pub errored: u64,
}

/// What the running engine tells `/health` and `/metrics`.
pub trait EngineStatus: Send + Sync + 'static {
    /// Seconds since the engine started.
    fn uptime_seconds(&self) -> u64;
    /// Each channel with a listener, and its counters.
    fn channels(&self) -> Vec<ChannelHealth>;
    /// The whole Prometheus text of `/metrics`. Called on the blocking pool: it may
    /// read the store.
    fn prometheus_text(&self) -> String;
}

pub(crate) fn routes() -> Routes {
    Routes::new()
        .add(Method::Get, "/health", Access::Public, health)
        .add(Method::Get, "/metrics", Access::Metrics, metrics)
}

async fn health(State(api): State<Api>) -> Json<Value> {
    let (uptime, channels) = match &api.status {
        Some(status) => (status.uptime_seconds(), status.channels()),
        None => (0, Vec::new()),
    };
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": uptime,
        "channels": channels,
    }))
}

async fn metrics(State(api): State<Api>) -> impl IntoResponse {
    let text = match api.status.clone() {
        Some(status) => tokio::task::spawn_blocking(move || status.prometheus_text())
            .await
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "metrics could not be read");
                String::new()
            }),
        None => String::new(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
