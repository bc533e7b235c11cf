//! What the engine hands the `api` crate: the parts its routes work on, and
//! [`EngineStatus`] (health and the `/metrics` text) over the engine's counters.

use std::sync::Arc;
use std::time::Instant;

use api::{ChannelHealth, EngineStatus};

use crate::metrics::Metrics;

/// The engine's side of `/health` and `/metrics`.
pub(crate) struct Status {
    pub metrics: Metrics,
    /// The running sources' listeners and counters, as the last reload left them.
    pub control: Arc<crate::reload::Control>,
    pub started: Instant,
    /// For the writer's, the data-quality and the quarantine lines of `/metrics`.
    pub store: store::Store,
    /// For the destinations' lines of `/metrics`.
    pub delivery: Arc<delivery::Delivery>,
    /// The alerts' lines of `/metrics`, when alerts are configured.
    pub alerts: Option<alerts::Alerts>,
    /// The patient index's lines of `/metrics`, when it is enabled.
    pub patient_index: Option<mpi::MpiService>,
}

impl EngineStatus for Status {
    fn uptime_seconds(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    fn channels(&self) -> Vec<ChannelHealth> {
        let stats = self.control.listeners.mllp_stats();
        self.control
            .listeners
            .mllp()
            .into_iter()
            .map(|listener| {
                let (name, addr) = (listener.channel, listener.addr);
                let counts = self
                    .metrics
                    .channel(&name)
                    .map(|m| m.counts())
                    .unwrap_or_default();
                let open_connections = stats
                    .iter()
                    .find(|(channel, _)| *channel == name)
                    .map_or(0, |(_, s)| s.read().connections_open);
                ChannelHealth {
                    name,
                    listen: addr.to_string(),
                    open_connections,
                    received: counts.received,
                    rejected: counts.rejected,
                    duplicates: counts.duplicates,
                    store_failures: counts.store_failures,
                    processed: counts.processed,
                    filtered: counts.filtered,
                    quarantined: counts.quarantined,
                    errored: counts.errored,
                }
            })
            .collect()
    }

    fn prometheus_text(&self) -> String {
        let mut text = self.metrics.prometheus_text();
        text.push_str(&crate::metrics::store_prometheus_text(
            &self.store.writer_stats(),
        ));
        text.push_str(&crate::metrics::hops_prometheus_text(
            &self.store.hop_latencies_since_open(),
        ));
        text.push_str(&crate::metrics::clock_lag_prometheus_text(
            &self.store.clock_lags(),
        ));
        match self.delivery.stats() {
            Ok(stats) => text.push_str(&crate::metrics::destinations_prometheus_text(&stats)),
            Err(error) => tracing::warn!(%error, "destination metrics could not be read"),
        }
        text.push_str(&mllp_prometheus_text(&self.control.listeners.mllp_stats()));
        if let Some(alerts) = &self.alerts {
            text.push_str(&alerts.prometheus_text());
        }
        if let Some(index) = &self.patient_index {
            text.push_str(&crate::metrics::patient_index_prometheus_text(index));
        }
        match self.store.read(crate::metrics::repository_prometheus_text) {
            Ok(repository) => text.push_str(&repository),
            Err(error) => tracing::warn!(%error, "repository metrics could not be read"),
        }
        // Findings by sender, type and path, and quarantine entries.
        match quarantine::prometheus_text(&self.store) {
            Ok(quality) => text.push_str(&quality),
            Err(error) => tracing::warn!(%error, "data-quality metrics could not be read"),
        }
        text
    }
}

/// `corridor_mllp_connections_not_allowed_total`, per MLLP channel.
fn mllp_prometheus_text(listeners: &[(String, mllp::StatsReader)]) -> String {
    use std::fmt::Write as _;
    let mut text = String::from(
        "# HELP corridor_mllp_connections_not_allowed_total MLLP connections closed unread: address not in allow_from or certificate subject not in allow_subjects.\n\
         # TYPE corridor_mllp_connections_not_allowed_total counter\n",
    );
    for (channel, stats) in listeners {
        let _ = writeln!(
            text,
            "corridor_mllp_connections_not_allowed_total{{channel=\"{channel}\"}} {}",
            stats.read().connections_not_allowed
        );
    }
    text
}
