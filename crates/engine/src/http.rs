//! The HTTP server: `GET /health` (JSON) and `GET /metrics` (Prometheus text).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::metrics::Metrics;

/// What the HTTP handlers read.
pub(crate) struct HttpState {
    pub metrics: Metrics,
    pub listeners: Vec<(String, SocketAddr)>,
    pub started: Instant,
}

pub(crate) fn router(state: Arc<HttpState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    let channels: Vec<_> = state
        .listeners
        .iter()
        .map(|(name, addr)| {
            let counts = state
                .metrics
                .channel(name)
                .map(|m| m.counts())
                .unwrap_or_default();
            json!({
                "name": name,
                "listen": addr.to_string(),
                "received": counts.received,
                "rejected": counts.rejected,
                "duplicates": counts.duplicates,
                "store_failures": counts.store_failures,
            })
        })
        .collect();
    axum::Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "channels": channels,
    }))
}

async fn metrics(State(state): State<Arc<HttpState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.prometheus_text(),
    )
}
