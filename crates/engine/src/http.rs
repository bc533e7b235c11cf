//! The HTTP server: `GET /health` (JSON) and `GET /metrics` (Prometheus text, with the
//! data-quality and quarantine lines of the `quarantine` crate).

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
    /// For the data-quality and quarantine lines of `/metrics`.
    pub store: store::Store,
    /// For the destinations' lines of `/metrics`.
    pub delivery: Arc<delivery::Delivery>,
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
                "processed": counts.processed,
                "filtered": counts.filtered,
                "quarantined": counts.quarantined,
                "errored": counts.errored,
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
    let mut text = state.metrics.prometheus_text();
    text.push_str(&crate::metrics::store_prometheus_text(
        &state.store.writer_stats(),
    ));
    let delivery = state.delivery.clone();
    match tokio::task::spawn_blocking(move || delivery.stats()).await {
        Ok(Ok(stats)) => text.push_str(&crate::metrics::destinations_prometheus_text(&stats)),
        Ok(Err(error)) => tracing::warn!(%error, "destination metrics could not be read"),
        Err(error) => tracing::warn!(%error, "destination metrics could not be read"),
    }
    // Findings by sender, type and path, and quarantine entries: read from the database
    // off the async workers.
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || quarantine::prometheus_text(&store)).await {
        Ok(Ok(quality)) => text.push_str(&quality),
        Ok(Err(error)) => tracing::warn!(%error, "data-quality metrics could not be read"),
        Err(error) => tracing::warn!(%error, "data-quality metrics could not be read"),
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
