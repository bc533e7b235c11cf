//! One delivery worker per destination: reads due entries in order, delivers them in
//! batches, records the outcomes through the group commit, retries with backoff.

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use store::{Store, UnixMicros};
use tokio::sync::{Notify, watch};

use crate::config::{OnFailure, OnNak, RetryConfig};
use crate::destinations::{AnyDestination, DeliveryMeta, Destination, Outgoing};
use crate::error::FailureKind;
use crate::queue::{self, Attempted, EntryId, EntryState, Pending};

/// Most entries delivered (and recorded) together.
const BATCH: usize = 512;
/// Entries read per query while looking for due ones.
const PAGE: usize = 512;
/// Pages looked through past entries that must wait (in backoff, or behind such an entry).
const MAX_PAGES: usize = 8;
/// How long an idle worker sleeps when nobody wakes it (a missed wake costs at most this).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// While every due entry is blocked, wake-ups closer together than this are merged.
const BLOCKED_RESCAN: Duration = Duration::from_millis(50);
/// A batch still unanswered after this long is marked `sending`, so a slow receiver
/// shows what it holds; a batch answered sooner is recorded once, with its outcome.
const SENDING_MARK_AFTER: Duration = Duration::from_millis(100);
/// How often a waiting destination repeats its warning.
const ALERT_PERIOD: Duration = Duration::from_secs(60);

/// What the API can read about a running worker.
#[derive(Debug, Default)]
pub(crate) struct Status {
    /// Set while a destination with `on_failure = "wait"` holds its queue on a failing entry.
    pub alert: Mutex<Option<String>>,
    /// The last delivery failure, in words; cleared by the next delivery that goes through.
    pub last_error: Mutex<Option<String>>,
    /// Since when every attempt has failed (µs; 0 while the last attempt went through).
    pub failing_since: AtomicI64,
    /// Entries delivered since the worker started.
    pub delivered: AtomicU64,
    /// Delivery attempts that failed since the worker started.
    pub failures: AtomicU64,
    /// Time from handing an entry to the receiver to its positive answer.
    pub answer_latency: LatencyHistogram,
    /// Time from the message's receipt to its entry's first attempt (the "sent" hop).
    pub sent_latency: LatencyHistogram,
}

/// Upper bounds of the latency histogram buckets, in microseconds: up to a minute, as
/// the store's hops, since the sent hop includes the time an entry waited in its queue.
pub const LATENCY_BUCKETS_MICROS: [u64; 19] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// A latency histogram updated without locks.
#[derive(Debug, Default)]
pub(crate) struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS_MICROS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A histogram read at one moment: per bucket of [`LATENCY_BUCKETS_MICROS`], the
/// number of observations at or under its bound (cumulative), then count and sum.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencySnapshot {
    pub cumulative: Vec<u64>,
    pub count: u64,
    pub sum_micros: u64,
}

impl LatencyHistogram {
    fn observe(&self, micros: u64) {
        if let Some(i) = LATENCY_BUCKETS_MICROS.iter().position(|&b| micros <= b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LatencySnapshot {
        let mut total = 0;
        LatencySnapshot {
            cumulative: self
                .buckets
                .iter()
                .map(|b| {
                    total += b.load(Ordering::Relaxed);
                    total
                })
                .collect(),
            count: self.count.load(Ordering::Relaxed),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

/// Everything a worker needs, moved into its task.
pub(crate) struct Worker {
    pub store: Store,
    pub meta: DeliveryMeta,
    pub retry: RetryConfig,
    pub on_failure: OnFailure,
    pub on_nak: OnNak,
    pub destination: AnyDestination,
    pub status: Arc<Status>,
    pub wake: Arc<Notify>,
    pub stop: watch::Receiver<bool>,
    /// The operator's pauses and stops: a held destination delivers nothing until
    /// started, and a stopped one closes its connection.
    pub paused: Arc<crate::pause::Paused>,
}

impl Worker {
    pub(crate) async fn run(mut self) {
        let (channel, name) = (self.meta.channel.clone(), self.meta.destination.clone());
        // Entries a previous run handed to the receiver without recording the answer are
        // sent again: at-least-once.
        let requeue = {
            let (channel, name) = (channel.clone(), name.clone());
            self.store
                .write(move |conn| queue::requeue_interrupted(conn, &channel, &name))
                .await
        };
        match requeue {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(%channel, destination = %name, entries = n, "sending again entries interrupted by a stop")
            }
            Err(err) => {
                tracing::error!(%channel, destination = %name, error = %err, "could not requeue interrupted entries")
            }
        }
        let mut waiting_on: Option<EntryId> = None;
        let mut last_alert_log: Option<Instant> = None;
        loop {
            if *self.stop.borrow() {
                break;
            }
            if let Some(stopped) = self.paused.held(&channel, &name) {
                if stopped {
                    // Stopped: the receiver sees its connection closed, and none is
                    // opened until started.
                    self.destination.disconnect().await;
                }
                // Resuming wakes the worker; the queue keeps its order meanwhile.
                if self.pause(Some(IDLE_POLL), Duration::ZERO).await {
                    break;
                }
                continue;
            }
            let (due, received, wake_at) = match self.choose_due() {
                Ok(found) => found,
                Err(err) => {
                    tracing::error!(%channel, destination = %name, error = %err, "reading the queue failed");
                    if self
                        .pause(Some(Duration::from_secs(1)), Duration::ZERO)
                        .await
                    {
                        break;
                    }
                    continue;
                }
            };
            if due.is_empty() {
                let sleep = wake_at.map(|at| micros_until(at).min(IDLE_POLL));
                let debounce = if wake_at.is_some() {
                    BLOCKED_RESCAN
                } else {
                    Duration::ZERO
                };
                if self.pause(sleep.or(Some(IDLE_POLL)), debounce).await {
                    break;
                }
                continue;
            }

            let sent_at = UnixMicros::now();
            let results = {
                let delivering = self.destination.deliver_batch(&due, &self.meta);
                tokio::pin!(delivering);
                tokio::select! {
                    results = &mut delivering => results,
                    () = tokio::time::sleep(SENDING_MARK_AFTER) => {
                        // Not awaited: the mark only makes `sending` visible; the outcome
                        // write below is queued after it. Both are unsynced: a power loss
                        // that takes them leaves the entries queued, and they are sent
                        // again (at-least-once).
                        let ids: Vec<EntryId> = due.iter().map(|o| o.entry).collect();
                        drop(self.store.write_unsynced(move |conn| {
                            queue::mark_sending(conn, &ids, sent_at)
                        }));
                        delivering.await
                    }
                }
            };
            let attempted = self.judge(&due, results, sent_at, &mut waiting_on);
            // The "sent" hop: receipt to the first attempt of each entry tried now.
            for ((message, outcome), received) in due.iter().zip(&attempted).zip(&received) {
                if let Some(received) = received
                    && message.attempts == 0
                    && outcome.tried > 0
                {
                    self.status
                        .sent_latency
                        .observe(u64::try_from(sent_at.0 - received).unwrap_or(0));
                }
            }
            self.note_reachability(&attempted);

            self.update_alert(&due, &attempted, &mut waiting_on, &mut last_alert_log);
            let channel_for_write = channel.clone();
            let recorded = self
                .store
                .write_unsynced(move |conn| {
                    queue::record_attempts(conn, &channel_for_write, sent_at, &attempted)
                })
                .await;
            if let Err(err) = recorded {
                // The entries stay `sending` and are picked up again: at-least-once.
                tracing::error!(%channel, destination = %name, error = %err, "recording delivery outcomes failed");
                if self
                    .pause(Some(Duration::from_secs(1)), Duration::ZERO)
                    .await
                {
                    break;
                }
            }
        }
        tracing::debug!(%channel, destination = %name, "delivery worker stopped");
    }

    /// Waits for a wake-up, `sleep` or the stop signal; true when told to stop.
    async fn pause(&mut self, sleep: Option<Duration>, debounce: Duration) -> bool {
        let started = Instant::now();
        let sleep = sleep.unwrap_or(IDLE_POLL);
        tokio::select! {
            _ = self.wake.notified() => {
                let waited = started.elapsed();
                if waited < debounce {
                    tokio::select! {
                        _ = tokio::time::sleep((debounce - waited).min(sleep)) => {}
                        _ = self.stop.changed() => return true,
                    }
                }
            }
            _ = tokio::time::sleep(sleep) => {}
            _ = self.stop.changed() => return true,
        }
        *self.stop.borrow()
    }

    /// The due entries to deliver now, in order, and when the earliest waiting one is due.
    ///
    /// An entry is due when its next attempt time has come and no earlier pending entry of
    /// its ordering key is waiting: a key's order is never broken, other keys go on.
    /// With each due entry, its message's receipt time when it was never tried.
    #[allow(clippy::type_complexity)]
    fn choose_due(&self) -> store::Result<(Vec<Outgoing>, Vec<Option<i64>>, Option<i64>)> {
        let now = UnixMicros::now().0;
        let (channel, name) = (&*self.meta.channel, &*self.meta.destination);
        self.store.read(|conn| {
            let mut blocked: HashSet<Arc<str>> = HashSet::new();
            let mut chosen: Vec<Pending> = Vec::new();
            let mut wake_at: Option<i64> = None;
            let mut after = 0;
            'pages: for _ in 0..MAX_PAGES {
                let page = queue::pending_page(conn, channel, name, after, PAGE)?;
                let full = page.len() == PAGE;
                for pending in page {
                    after = pending.entry.0;
                    if blocked.contains(&pending.ordering_key) {
                        continue;
                    }
                    if pending.next_attempt_at > now {
                        wake_at =
                            Some(wake_at.map_or(pending.next_attempt_at, |w| {
                                w.min(pending.next_attempt_at)
                            }));
                        blocked.insert(pending.ordering_key.clone());
                        continue;
                    }
                    chosen.push(pending);
                    if chosen.len() == BATCH {
                        break 'pages;
                    }
                }
                // Keep looking past waiting entries only while nothing is due yet.
                if !full || !chosen.is_empty() || (blocked.len() == 1 && blocked.contains("")) {
                    break;
                }
            }
            let received = chosen.iter().map(|p| p.received_at).collect();
            Ok((queue::load_outgoing(conn, chosen)?, received, wake_at))
        })
    }

    /// Turns the destination's answers into queue states, key by key.
    fn judge(
        &self,
        due: &[Outgoing],
        results: Vec<Result<crate::Delivered, crate::DeliveryError>>,
        sent_at: UnixMicros,
        waiting_on: &mut Option<EntryId>,
    ) -> Vec<Attempted> {
        let now = UnixMicros::now();
        let mut failed_keys: HashSet<Arc<str>> = HashSet::new();
        let mut results = results.into_iter();
        let mut attempted = Vec::with_capacity(due.len());
        for message in due {
            let result = results.next();
            let base = Attempted {
                entry: message.entry,
                message_id: message.message_id,
                state: EntryState::Queued,
                state_reason: None,
                tried: 0,
                next_attempt_at: now.0,
                last_error: None,
                answer: None,
                acked_at: None,
            };
            let entry = match result {
                // Not tried: back in the queue, untouched.
                None => base,
                Some(Ok(delivered)) => {
                    self.status.delivered.fetch_add(1, Ordering::Relaxed);
                    self.status
                        .answer_latency
                        .observe(u64::try_from(delivered.answered_at.0 - sent_at.0).unwrap_or(0));
                    Attempted {
                        state: EntryState::Delivered,
                        tried: 1,
                        answer: Some(delivered.answer),
                        acked_at: Some(delivered.answered_at),
                        ..base
                    }
                }
                // Behind a failed entry of its key: it waits for that one, untried.
                Some(Err(_)) if failed_keys.contains(&message.ordering_key) => base,
                Some(Err(error)) => {
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut last) = self.status.last_error.lock() {
                        *last = Some(error.reason.clone());
                    }
                    let attempts = message.attempts + 1;
                    if error.kind == FailureKind::Refused && self.on_nak == OnNak::Error {
                        Attempted {
                            state: EntryState::Errored,
                            state_reason: Some(error.reason.clone()),
                            tried: 1,
                            last_error: Some(error.reason),
                            answer: error.answer,
                            ..base
                        }
                    } else if attempts >= self.retry.max_attempts
                        && self.on_failure == OnFailure::DeadLetter
                    {
                        Attempted {
                            state: EntryState::DeadLettered,
                            state_reason: Some(format!(
                                "gave up after {attempts} attempts: {}",
                                error.reason
                            )),
                            tried: 1,
                            last_error: Some(error.reason),
                            answer: error.answer,
                            ..base
                        }
                    } else {
                        failed_keys.insert(message.ordering_key.clone());
                        let wait = if attempts >= self.retry.max_attempts {
                            // Strict order: the head stays, tried again at the longest backoff.
                            *waiting_on = Some(message.entry);
                            self.retry.max_backoff
                        } else {
                            self.retry.backoff(attempts)
                        };
                        Attempted {
                            tried: 1,
                            next_attempt_at: now.0.saturating_add(
                                i64::try_from(wait.as_micros()).unwrap_or(i64::MAX),
                            ),
                            last_error: Some(error.reason),
                            answer: error.answer,
                            ..base
                        }
                    }
                }
            };
            attempted.push(entry);
        }
        attempted
    }

    /// Tracks whether the receiver takes messages: the first failure after a success is
    /// logged at `warn` (the reason names the receiver, never the message) and starts
    /// `failing_since`; the first success after failures is logged and clears both it and
    /// the last error.
    fn note_reachability(&self, attempted: &[Attempted]) {
        let delivered = attempted.iter().any(|a| a.state == EntryState::Delivered);
        let failure = attempted
            .iter()
            .filter(|a| a.tried > 0 && a.state != EntryState::Delivered)
            .find_map(|a| a.last_error.as_deref());
        let since = self.status.failing_since.load(Ordering::Relaxed);
        let (channel, destination) = (&self.meta.channel, &self.meta.destination);
        if delivered && failure.is_none() {
            if since != 0 {
                self.status.failing_since.store(0, Ordering::Relaxed);
                if let Ok(mut last) = self.status.last_error.lock() {
                    *last = None;
                }
                let failed_for =
                    Duration::from_micros(u64::try_from(UnixMicros::now().0 - since).unwrap_or(0));
                tracing::info!(%channel, %destination, failed_for = ?failed_for, "destination delivers again");
            }
        } else if let Some(reason) = failure
            && since == 0
        {
            self.status
                .failing_since
                .store(UnixMicros::now().0.max(1), Ordering::Relaxed);
            let reason = crate::error::reason_for_logs(reason);
            tracing::warn!(%channel, %destination, error = %reason, "destination failing: messages wait in its queue and are retried");
        }
    }

    /// Raises, repeats or clears the alert of a destination holding its queue.
    fn update_alert(
        &self,
        due: &[Outgoing],
        attempted: &[Attempted],
        waiting_on: &mut Option<EntryId>,
        last_log: &mut Option<Instant>,
    ) {
        let Some(entry) = *waiting_on else { return };
        let Some(outcome) = attempted.iter().find(|a| a.entry == entry) else {
            return;
        };
        if outcome.state.is_final() {
            *waiting_on = None;
            *last_log = None;
            if let Ok(mut alert) = self.status.alert.lock() {
                *alert = None;
            }
            tracing::info!(channel = %self.meta.channel, destination = %self.meta.destination, entry = %entry, "destination delivers again; alert cleared");
            return;
        }
        if outcome.tried == 0 {
            return;
        }
        let attempts = due
            .iter()
            .find(|o| o.entry == entry)
            .map_or(0, |o| o.attempts + 1);
        let reason = outcome.last_error.clone().unwrap_or_default();
        let words =
            format!("queue held at entry {entry} after {attempts} failed attempts: {reason}");
        if last_log.is_none_or(|at| at.elapsed() >= ALERT_PERIOD) {
            tracing::warn!(channel = %self.meta.channel, destination = %self.meta.destination, entry = %entry, attempts, error = %reason, "destination is failing and keeps strict order: its queue waits");
            *last_log = Some(Instant::now());
        }
        if let Ok(mut alert) = self.status.alert.lock() {
            *alert = Some(words);
        }
    }
}

fn micros_until(at: i64) -> Duration {
    Duration::from_micros(u64::try_from(at - UnixMicros::now().0).unwrap_or(0))
}
