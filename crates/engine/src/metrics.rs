//! Counters and the ACK latency histogram, written in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the ACK latency histogram buckets, in microseconds.
const LATENCY_BUCKETS_MICROS: [u64; 14] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// A histogram's name, help text, and where it is in a channel's metrics.
type HistogramOf = (
    &'static str,
    &'static str,
    fn(&ChannelMetrics) -> &Histogram,
);

/// A counter's name, help text, and how to read it from a snapshot.
type Counter = (&'static str, &'static str, fn(&ChannelCounts) -> u64);

/// A latency histogram with the buckets of [`LATENCY_BUCKETS_MICROS`].
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_MICROS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, latency: Duration, count: u64) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if let Some(i) = LATENCY_BUCKETS_MICROS.iter().position(|&b| micros <= b) {
            add(&self.buckets[i], count);
        }
        add(&self.count, count);
        add(&self.sum_micros, micros.saturating_mul(count));
    }

    /// The histogram's lines for one channel, in the exposition format.
    fn write(&self, out: &mut String, name: &str, channel: &str) {
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS_MICROS.iter().zip(&self.buckets) {
            cumulative += bucket.load(Ordering::Relaxed);
            let le = *bound as f64 / 1e6;
            let _ = writeln!(
                out,
                "{name}_bucket{{channel=\"{channel}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "{name}_bucket{{channel=\"{channel}\",le=\"+Inf\"}} {count}\n{name}_sum{{channel=\"{channel}\"}} {sum}\n{name}_count{{channel=\"{channel}\"}} {count}"
        );
    }
}

/// The counters of one channel.
#[derive(Debug, Default)]
pub struct ChannelMetrics {
    received: AtomicU64,
    rejected: AtomicU64,
    duplicates: AtomicU64,
    store_failures: AtomicU64,
    bytes: AtomicU64,
    processed: AtomicU64,
    filtered: AtomicU64,
    quarantined: AtomicU64,
    errored: AtomicU64,
    /// Receipt to ACK ready.
    ack_latency: Histogram,
    /// Receipt to the processing commit (queued for the destinations).
    processing_latency: Histogram,
}

/// A snapshot of [`ChannelMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelCounts {
    /// Messages stored as received (accepted).
    pub received: u64,
    /// Messages stored as rejected (NAK sent).
    pub rejected: u64,
    /// Duplicates acknowledged again and not stored.
    pub duplicates: u64,
    /// Messages that could not be stored (negative ACK, the sender resends).
    pub store_failures: u64,
    /// Bytes of every message stored.
    pub bytes: u64,
    /// Acknowledgements decided (the latency histogram's count).
    pub acks: u64,
    /// Messages processed and queued for their destinations.
    pub processed: u64,
    /// Messages a channel filter dropped.
    pub filtered: u64,
    /// Messages held in the quarantine.
    pub quarantined: u64,
    /// Messages whose processing failed.
    pub errored: u64,
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl ChannelMetrics {
    pub(crate) fn count_received(&self, bytes: usize) {
        add(&self.received, 1);
        add(&self.bytes, bytes as u64);
    }

    pub(crate) fn count_rejected(&self, bytes: usize) {
        add(&self.rejected, 1);
        add(&self.bytes, bytes as u64);
    }

    pub(crate) fn count_duplicate(&self) {
        add(&self.duplicates, 1);
    }

    pub(crate) fn count_store_failures(&self, n: u64) {
        add(&self.store_failures, n);
    }

    /// Records `count` acknowledgements that each took `latency` from receipt.
    pub(crate) fn observe_ack_latency(&self, latency: Duration, count: u64) {
        self.ack_latency.observe(latency, count);
    }

    /// Records a message the pipeline wrote as `state` at `now`.
    pub(crate) fn observe_processed(
        &self,
        state: store::MessageState,
        now: store::UnixMicros,
        received_at: store::UnixMicros,
    ) {
        let counter = match state {
            store::MessageState::Filtered => &self.filtered,
            store::MessageState::Quarantined => &self.quarantined,
            store::MessageState::Errored => &self.errored,
            _ => &self.processed,
        };
        add(counter, 1);
        let micros = u64::try_from(now.0.saturating_sub(received_at.0)).unwrap_or(0);
        self.processing_latency
            .observe(Duration::from_micros(micros), 1);
    }

    /// The counters now.
    pub fn counts(&self) -> ChannelCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ChannelCounts {
            received: get(&self.received),
            rejected: get(&self.rejected),
            duplicates: get(&self.duplicates),
            store_failures: get(&self.store_failures),
            bytes: get(&self.bytes),
            acks: get(&self.ack_latency.count),
            processed: get(&self.processed),
            filtered: get(&self.filtered),
            quarantined: get(&self.quarantined),
            errored: get(&self.errored),
        }
    }
}

/// The metrics of every channel, by name. Clones share the same table, which a reload
/// changes ([`Metrics::keep_channels`]).
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    channels: Arc<std::sync::RwLock<ChannelTable>>,
}

/// Each channel's name and metrics, in configuration order.
type ChannelTable = Vec<(String, Arc<ChannelMetrics>)>;

impl Metrics {
    /// Metrics for these channels, all zero.
    pub fn new<'a>(channels: impl IntoIterator<Item = &'a str>) -> Metrics {
        let metrics = Metrics::default();
        metrics.keep_channels(channels);
        metrics
    }

    /// Makes the table hold exactly these channels: a channel already there keeps its
    /// counters, a new one starts at zero, one not named is dropped.
    pub fn keep_channels<'a>(&self, channels: impl IntoIterator<Item = &'a str>) {
        let mut table = self
            .channels
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Vec::new();
        for name in channels {
            let metrics = table
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
            next.push((name.to_owned(), metrics));
        }
        *table = next;
    }

    /// The metrics of one channel.
    pub fn channel(&self, name: &str) -> Option<Arc<ChannelMetrics>> {
        self.channels
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m.clone())
    }

    /// Every channel's name and metrics.
    pub fn channels(&self) -> Vec<(String, Arc<ChannelMetrics>)> {
        self.channels
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The metrics in the Prometheus text exposition format (version 0.0.4).
    pub fn prometheus_text(&self) -> String {
        let mut out = String::with_capacity(4096);
        let channels = self.channels();
        let counters: [Counter; 9] = [
            (
                "corridor_messages_received_total",
                "Messages stored as received and acknowledged positively.",
                |c| c.received,
            ),
            (
                "corridor_messages_rejected_total",
                "Messages stored as rejected and answered with a NAK.",
                |c| c.rejected,
            ),
            (
                "corridor_messages_duplicate_total",
                "Duplicates acknowledged again without being stored twice.",
                |c| c.duplicates,
            ),
            (
                "corridor_store_failures_total",
                "Messages that could not be stored (negative ACK; the sender resends).",
                |c| c.store_failures,
            ),
            (
                "corridor_received_bytes_total",
                "Bytes of the messages stored.",
                |c| c.bytes,
            ),
            (
                "corridor_messages_processed_total",
                "Messages processed and queued for their destinations.",
                |c| c.processed,
            ),
            (
                "corridor_messages_filtered_total",
                "Messages a channel filter dropped.",
                |c| c.filtered,
            ),
            (
                "corridor_messages_quarantined_total",
                "Messages held in the quarantine for an analyst.",
                |c| c.quarantined,
            ),
            (
                "corridor_messages_errored_total",
                "Messages whose processing failed.",
                |c| c.errored,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            for (channel, metrics) in &channels {
                let _ = writeln!(
                    out,
                    "{name}{{channel=\"{channel}\"}} {}",
                    value(&metrics.counts())
                );
            }
        }
        let histograms: [HistogramOf; 2] = [
            (
                "corridor_ack_latency_seconds",
                "Time from receiving a message to its acknowledgement being ready (after the commit).",
                |m| &m.ack_latency,
            ),
            (
                "corridor_processing_latency_seconds",
                "Time from receiving a message to the commit of its processing (queued for the destinations, or filtered, quarantined, errored).",
                |m| &m.processing_latency,
            ),
        ];
        for (name, help, histogram) in histograms {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
            for (channel, metrics) in &channels {
                histogram(metrics).write(&mut out, name, channel);
            }
        }
        out
    }
}

/// The destinations' lines of `/metrics`: queue depth and age, entries by state,
/// deliveries and failures since start, and the send-to-answer and receipt-to-sent
/// latency histograms.
pub(crate) fn destinations_prometheus_text(stats: &[delivery::DestinationStats]) -> String {
    let mut out = String::with_capacity(1024 + stats.len() * 1024);
    let label = |d: &delivery::DestinationStats| {
        format!(
            "channel=\"{}\",destination=\"{}\"",
            d.channel, d.destination
        )
    };
    type Gauge = (
        &'static str,
        &'static str,
        &'static str,
        fn(&delivery::DestinationStats) -> String,
    );
    let simple: [Gauge; 4] = [
        (
            "corridor_destination_queue_depth",
            "gauge",
            "Entries still to deliver (queued or being sent).",
            |d| d.counts.depth.to_string(),
        ),
        (
            "corridor_destination_oldest_queued_seconds",
            "gauge",
            "How long the oldest entry still to deliver has waited (0 when none waits).",
            |d| {
                d.oldest_queued_age
                    .map_or(0.0, |a| a.as_secs_f64())
                    .to_string()
            },
        ),
        (
            "corridor_destination_delivered_total",
            "counter",
            "Entries delivered since start.",
            |d| d.delivered_since_start.to_string(),
        ),
        (
            "corridor_destination_failures_total",
            "counter",
            "Failed delivery attempts since start.",
            |d| d.failures_since_start.to_string(),
        ),
    ];
    for (name, kind, help, value) in simple {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for d in stats {
            let _ = writeln!(out, "{name}{{{}}} {}", label(d), value(d));
        }
    }
    let name = "corridor_destination_entries";
    let _ = writeln!(
        out,
        "# HELP {name} Queue entries by state, as stored.\n# TYPE {name} gauge"
    );
    for d in stats {
        let c = &d.counts;
        for (state, n) in [
            ("queued", c.queued),
            ("sending", c.sending),
            ("delivered", c.delivered),
            ("filtered", c.filtered),
            ("errored", c.errored),
            ("dead_lettered", c.dead_lettered),
        ] {
            let _ = writeln!(out, "{name}{{{},state=\"{state}\"}} {n}", label(d));
        }
    }
    for (name, help, which) in [
        (
            "corridor_destination_answer_latency_seconds",
            "Time from sending a message to the receiver's positive answer.",
            (|d| &d.answer_latency)
                as fn(&delivery::DestinationStats) -> &delivery::LatencySnapshot,
        ),
        (
            "corridor_destination_sent_latency_seconds",
            "Time from receiving a message to the first attempt of its entry for the destination (the sent hop).",
            |d| &d.sent_latency,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for d in stats {
            let h = which(d);
            for (bound, n) in delivery::LATENCY_BUCKETS_MICROS.iter().zip(&h.cumulative) {
                let le = *bound as f64 / 1e6;
                let _ = writeln!(out, "{name}_bucket{{{},le=\"{le}\"}} {n}", label(d));
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{{l},le=\"+Inf\"}} {c}\n{name}_sum{{{l}}} {s}\n{name}_count{{{l}}} {c}",
                l = label(d),
                c = h.count,
                s = h.sum_micros as f64 / 1e6
            );
        }
    }
    out
}

/// Each channel's time from receipt to stored and to processed, since start, as one
/// histogram with a `hop` label (`stored`, `processed`); observed by the store at each
/// commit.
pub(crate) fn hops_prometheus_text(hops: &[(String, store::HopLatencies)]) -> String {
    let name = "corridor_hop_latency_seconds";
    let mut out = format!(
        "# HELP {name} Time from receiving a message to a hop committed: stored (acknowledged), processed (queued for the destinations, or filtered, quarantined, errored).\n# TYPE {name} histogram\n"
    );
    for (channel, latencies) in hops {
        for (hop, h) in [
            ("stored", &latencies.stored),
            ("processed", &latencies.processed),
        ] {
            let label = format!("channel=\"{channel}\",hop=\"{hop}\"");
            let mut cumulative = 0;
            for (bound, n) in store::HOP_BUCKETS_MICROS.iter().zip(&h.buckets) {
                cumulative += n;
                let le = *bound as f64 / 1e6;
                let _ = writeln!(out, "{name}_bucket{{{label},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{{label},le=\"+Inf\"}} {c}\n{name}_sum{{{label}}} {s}\n{name}_count{{{label}}} {c}",
                c = h.count,
                s = h.sum_micros as f64 / 1e6
            );
        }
    }
    out
}

/// Each channel's sender clock lag over the last five minutes (receipt time less MSH-7,
/// in seconds, negative when the sender's clock is ahead) as gauges: the median and the
/// maximum (absent without a readable MSH-7), and the messages whose MSH-7 was missing
/// or unreadable.
pub(crate) fn clock_lag_prometheus_text(lags: &[(String, store::ClockLag)]) -> String {
    let mut out = String::from(
        "# HELP corridor_sender_clock_lag_seconds The receipt time less MSH-7 over the last five minutes, by quantile (0.5, 1 = the maximum).\n# TYPE corridor_sender_clock_lag_seconds gauge\n",
    );
    for (channel, lag) in lags {
        for (quantile, value) in [("0.5", lag.p50_micros), ("1", lag.max_micros)] {
            if let Some(micros) = value {
                let _ = writeln!(
                    out,
                    "corridor_sender_clock_lag_seconds{{channel=\"{channel}\",quantile=\"{quantile}\"}} {}",
                    micros as f64 / 1e6
                );
            }
        }
    }
    out.push_str("# HELP corridor_sender_clock_unreadable Messages of the last five minutes whose MSH-7 was missing or unreadable.\n# TYPE corridor_sender_clock_unreadable gauge\n");
    for (channel, lag) in lags {
        let _ = writeln!(
            out,
            "corridor_sender_clock_unreadable{{channel=\"{channel}\"}} {}",
            lag.missing
        );
    }
    out
}

/// The patient index in the Prometheus text format: source records, enterprise
/// patients, records linked to another record's patient, the review queue, and the
/// reviews decided since the index was built (counts only, never a name).
pub(crate) fn patient_index_prometheus_text(index: &mpi::MpiService) -> String {
    let (records, patients, reviews, accepted, rejected) = index.read(|m| {
        let (mut accepted, mut rejected) = (0u64, 0u64);
        for event in m.history() {
            match event.change {
                mpi::Change::ReviewAccepted { .. } => accepted += 1,
                mpi::Change::ReviewRejected { .. } => rejected += 1,
                _ => {}
            }
        }
        (
            m.len() as u64,
            m.enterprises().count() as u64,
            m.reviews().count() as u64,
            accepted,
            rejected,
        )
    });
    let mut out = String::with_capacity(1024);
    for (name, kind, help, value) in [
        (
            "corridor_mpi_source_records",
            "gauge",
            "Source patient records in the patient index.",
            records,
        ),
        (
            "corridor_mpi_enterprise_patients",
            "gauge",
            "Enterprise patients (golden records) in the patient index.",
            patients,
        ),
        (
            "corridor_mpi_links",
            "gauge",
            "Source records linked to another record's enterprise patient (records minus patients).",
            records.saturating_sub(patients),
        ),
        (
            "corridor_mpi_review_queue",
            "gauge",
            "Records waiting for a steward's review.",
            reviews,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    }
    let name = "corridor_mpi_review_decisions_total";
    let _ = writeln!(
        out,
        "# HELP {name} Reviews decided by a steward, by decision.\n# TYPE {name} counter\n{name}{{decision=\"accepted\"}} {accepted}\n{name}{{decision=\"rejected\"}} {rejected}"
    );
    out
}

/// The FHIR repository in the Prometheus text format: current resources per type, and
/// writes (versions) per type; nothing when the repository's tables do not exist. One
/// pass over the current resources (not over their versions).
pub(crate) fn repository_prometheus_text(
    conn: &store::rusqlite::Connection,
) -> store::Result<String> {
    let exists = conn
        .prepare_cached(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'fhir_resources'",
        )?
        .exists([])?;
    if !exists {
        return Ok(String::new());
    }
    let mut statement = conn.prepare_cached(
        "SELECT type, count(*), sum(version) FROM fhir_resources GROUP BY type ORDER BY type",
    )?;
    let rows = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?
        .collect::<store::rusqlite::Result<Vec<_>>>()?;
    let mut out = String::from(
        "# HELP corridor_fhir_resources Current resources in the FHIR repository, by type.\n# TYPE corridor_fhir_resources gauge\n",
    );
    for (kind, n, _) in &rows {
        let _ = writeln!(out, "corridor_fhir_resources{{type=\"{kind}\"}} {n}");
    }
    out.push_str("# HELP corridor_fhir_writes_total Writes to the FHIR repository (versions created), by type.\n# TYPE corridor_fhir_writes_total counter\n");
    for (kind, _, versions) in &rows {
        let _ = writeln!(
            out,
            "corridor_fhir_writes_total{{type=\"{kind}\"}} {versions}"
        );
    }
    Ok(out)
}

/// The store writer's counters in the Prometheus text format: how many commits, how many
/// of them held writes that waited for an fsync, how many fsyncs, and how many write
/// requests they carried.
pub(crate) fn store_prometheus_text(stats: &store::WriterStats) -> String {
    let mut out = String::with_capacity(512);
    for (name, help, value) in [
        (
            "corridor_store_commits_total",
            "Transactions the store's writer committed.",
            stats.commits,
        ),
        (
            "corridor_store_synced_commits_total",
            "Commits holding a write answered only once synced to disk.",
            stats.synced_commits,
        ),
        (
            "corridor_store_syncs_total",
            "Fsyncs of the write-ahead log; one covers every commit before it.",
            stats.syncs,
        ),
        (
            "corridor_store_write_requests_total",
            "Write requests carried by those commits (group commit).",
            stats.requests,
        ),
        (
            "corridor_store_failed_commits_total",
            "Batches of writes whose commit failed.",
            stats.failed_commits,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_histograms_are_cumulative_with_a_hop_label() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::Store::open(dir.path()).unwrap();
        let raw = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\r";
        let message = store::NewMessage {
            channel: Arc::from("lab"),
            raw: raw.into(),
            received_at: store::UnixMicros(store::UnixMicros::now().0 - 3_000),
            peer: Arc::from("127.0.0.1:1"),
            tls_identity: None,
            sending_application: "A".into(),
            sending_facility: "B".into(),
            message_type: "ADT^A01".into(),
            control_id: "1".into(),
            version: "2.5".into(),
            state: store::MessageState::Received,
            state_reason: None,
        };
        store.journal().append(message, None).wait().unwrap();
        store.note_clock_lag("lab", Some(2_500_000));
        store.note_clock_lag("lab", None);
        let lags = clock_lag_prometheus_text(&store.clock_lags());
        assert!(
            lags.contains(
                "corridor_sender_clock_lag_seconds{channel=\"lab\",quantile=\"1\"} 2.5\n"
            ),
            "{lags}"
        );
        assert!(lags.contains("corridor_sender_clock_unreadable{channel=\"lab\"} 1\n"));
        let text = hops_prometheus_text(&store.hop_latencies_since_open());
        assert!(
            text.contains(
                "corridor_hop_latency_seconds_bucket{channel=\"lab\",hop=\"stored\",le=\"0.001\"} 0"
            ),
            "{text}"
        );
        assert!(text.contains(
            "corridor_hop_latency_seconds_bucket{channel=\"lab\",hop=\"stored\",le=\"+Inf\"} 1"
        ));
        assert!(
            text.contains(
                "corridor_hop_latency_seconds_count{channel=\"lab\",hop=\"processed\"} 0"
            )
        );
    }

    #[test]
    fn histogram_is_cumulative_and_counts_every_ack() {
        let metrics = Metrics::new(["lab"]);
        let lab = metrics.channel("lab").unwrap();
        lab.observe_ack_latency(Duration::from_micros(80), 3);
        lab.observe_ack_latency(Duration::from_millis(2), 1);
        lab.count_received(100);
        let text = metrics.prometheus_text();
        assert!(
            text.contains("corridor_ack_latency_seconds_bucket{channel=\"lab\",le=\"0.00005\"} 0")
        );
        assert!(
            text.contains("corridor_ack_latency_seconds_bucket{channel=\"lab\",le=\"0.0001\"} 3")
        );
        assert!(
            text.contains("corridor_ack_latency_seconds_bucket{channel=\"lab\",le=\"0.0025\"} 4")
        );
        assert!(text.contains("corridor_ack_latency_seconds_count{channel=\"lab\"} 4"));
        assert!(text.contains("corridor_messages_received_total{channel=\"lab\"} 1"));
    }
}
