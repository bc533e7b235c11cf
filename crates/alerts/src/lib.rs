//! Alerting: `[[alerts]]` conditions over the engine's counters, queues, certificates
//! and disk, each notifying once when it starts ("firing") and once when it ends
//! ("resolved"), by webhook, e-mail or MLLP. No HTTP framework of its own: the `api`
//! crate serves [`Alerts`], the engine hands [`Alerting::start`] a sampler of its
//! counters.
//!
//! - [`config`]: `[alerting]` (interval, notifiers) and `[[alerts]]`, and [`check`],
//!   which names each problem's key.
//! - `condition`: whether a condition holds in a [`Snapshot`]; rates and quiet times
//!   keep the samples of their window.
//! - `notify`: the notifiers, one kind per variant, on delivery's HTTP client, mailer
//!   and MLLP destination.
//! - [`history`]: the episodes in the store (component `alerts`).
//!
//! # States
//!
//! An alert is `ok`, `pending` (its condition holds, not yet for its `for` time),
//! `firing`, or `resolving` (its condition is gone, not yet for its `clear_for` time).
//! Only the moves `pending -> firing` and `resolving -> ok` notify, so a condition that
//! flickers within those times sends nothing, and a firing alert sends nothing more
//! until it resolves. Each notifier sends in order (a resolved never overtakes its
//! firing), trying a failed notification three times in all. A firing episode is in
//! the store, so a restart takes it up again: no second "firing", and "resolved" once
//! the condition is gone.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use alerts::{Alerting, AlertingConfig, AlertConfig, Known, Snapshot};
//! let dir = tempfile::tempdir().unwrap();
//! let store = store::Store::open(dir.path()).unwrap();
//! let alerting: AlertingConfig = toml::from_str(r#"
//!     [notifiers.log]
//!     type = "webhook"
//!     url = "http://127.0.0.1:9/unused"
//! "#).unwrap();
//! let alert: AlertConfig = toml::from_str(r#"
//!     name = "disk"
//!     when = "disk_space"
//!     below = "1KiB"
//!     notify = ["log"]
//! "#).unwrap();
//! assert!(alerts::check(&alerting, &[alert.clone()], &Known::default(), dir.path()).is_empty());
//! let running = Alerting::start(store, &alerting, &[alert], &Known::default(), dir.path(),
//!     dir.path(), Box::new(|| None)).await.unwrap();
//! assert_eq!(running.alerts().list()[0].state, "ok");
//! running.shutdown().await;
//! # }
//! ```

mod condition;
pub mod config;
pub mod history;
mod notify;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;
use store::{Store, UnixMicros};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use condition::{ActiveHours, ChannelSample, Snapshot, certificate_not_after, free_space};
pub use config::{
    AlertConfig, AlertingConfig, ConditionKind, Known, KnownChannel, NotifierConfig, NotifierKind,
    check,
};
pub use history::AlertEvent;
pub use notify::Notification;

use condition::Watch;
use notify::Notifier;

/// Reads the engine's counters and queues; called on tokio's blocking pool. None (the
/// queues could not be read) skips that evaluation rather than read it as all clear.
pub type Sampler = Box<dyn Fn() -> Option<Snapshot> + Send + Sync>;

/// Tries per notification.
const NOTIFY_TRIES: u32 = 3;
/// The wait after a failed try.
const NOTIFY_BACKOFF: Duration = Duration::from_secs(2);

/// An alert's phase; see the crate's "States".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Ok,
    Pending { since: i64 },
    Firing,
    Resolving { since: i64 },
}

/// A move that notifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Fire,
    Resolve,
}

/// The next phase, given whether the condition holds at `now` (µs).
fn step(
    phase: Phase,
    holds: bool,
    now: i64,
    hold: Duration,
    clear: Duration,
) -> (Phase, Option<Change>) {
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    match (phase, holds) {
        (Phase::Ok, true) if hold.is_zero() => (Phase::Firing, Some(Change::Fire)),
        (Phase::Ok, true) => (Phase::Pending { since: now }, None),
        (Phase::Ok, false) => (Phase::Ok, None),
        (Phase::Pending { since }, true) if now - since >= micros(hold) => {
            (Phase::Firing, Some(Change::Fire))
        }
        (Phase::Pending { since }, true) => (Phase::Pending { since }, None),
        (Phase::Pending { .. }, false) => (Phase::Ok, None),
        (Phase::Firing, true) => (Phase::Firing, None),
        (Phase::Firing, false) if clear.is_zero() => (Phase::Ok, Some(Change::Resolve)),
        (Phase::Firing, false) => (Phase::Resolving { since: now }, None),
        (Phase::Resolving { .. }, true) => (Phase::Firing, None),
        (Phase::Resolving { since }, false) if now - since >= micros(clear) => {
            (Phase::Ok, Some(Change::Resolve))
        }
        (Phase::Resolving { since }, false) => (Phase::Resolving { since }, None),
    }
}

/// One alert's state.
struct AlertState {
    watch: Watch,
    phase: Phase,
    /// What the condition showed last while it held.
    detail: Option<String>,
    /// The firing episode: id and when it fired (µs).
    episode: Option<(i64, i64)>,
    acked_by: Option<String>,
}

/// What `GET /api/alerts` shows of one alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertStatus {
    pub name: String,
    pub condition: &'static str,
    pub channel: Option<String>,
    pub destination: Option<String>,
    /// `ok`, `pending`, `firing` or `resolving`.
    pub state: &'static str,
    /// What the condition showed last while it held.
    pub detail: Option<String>,
    /// The firing episode, when there is one.
    pub event_id: Option<i64>,
    /// When that episode fired (µs).
    pub fired_at: Option<i64>,
    /// Who acknowledged the episode.
    pub acked_by: Option<String>,
    pub notify: Vec<String>,
}

impl AlertStatus {
    /// As the API shows it: times in RFC 3339.
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "condition": self.condition,
            "channel": self.channel,
            "destination": self.destination,
            "state": self.state,
            "detail": self.detail,
            "event_id": self.event_id,
            "fired_at": self.fired_at.map(datetime::rfc3339::format_micros),
            "acknowledged_by": self.acked_by,
            "notify": self.notify,
        })
    }
}

/// A notifier's queue and its counters.
struct NotifierHandle {
    queue: mpsc::UnboundedSender<Notification>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

struct Inner {
    store: Store,
    states: Mutex<Vec<AlertState>>,
    notifiers: BTreeMap<String, NotifierHandle>,
}

/// The running alerts, shared with the API: list, history, acknowledge, metrics.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts").finish_non_exhaustive()
    }
}

/// Why an acknowledgement was not recorded.
#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error("no alert is named {0:?}")]
    Unknown(String),
    #[error("alert {0:?} is not firing")]
    NotFiring(String),
    #[error(transparent)]
    Store(#[from] store::Error),
}

/// The evaluation task and the notifiers' tasks.
pub struct Alerting {
    alerts: Alerts,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
    senders: Vec<JoinHandle<()>>,
}

impl Alerting {
    /// Migrates the history, builds the notifiers (reading TLS files and passwords),
    /// takes up the episodes a previous run left firing, and evaluates every
    /// `alerting.interval` from `sampler`. Relative files start at `base`; disk space is
    /// that of `data_dir`.
    pub async fn start(
        store: Store,
        alerting: &AlertingConfig,
        alerts: &[AlertConfig],
        known: &Known,
        base: &Path,
        data_dir: &Path,
        sampler: Sampler,
    ) -> Result<Alerting, String> {
        store
            .migrate_component(history::COMPONENT, history::MIGRATIONS)
            .await
            .map_err(|e| format!("the alert history could not be prepared: {e}"))?;
        let (stop, stopped) = watch::channel(false);
        let mut notifiers = BTreeMap::new();
        let mut senders = Vec::new();
        for (name, config) in &alerting.notifiers {
            let notifier = Notifier::build(name, config, base)
                .map_err(|e| format!("alerting.notifiers.{name}: {e}"))?;
            let (queue, receiving) = mpsc::unbounded_channel();
            let (sent, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
            senders.push(tokio::spawn(send_in_order(
                Arc::from(name.as_str()),
                notifier,
                receiving,
                sent.clone(),
                failed.clone(),
                stopped.clone(),
            )));
            notifiers.insert(
                name.clone(),
                NotifierHandle {
                    queue,
                    sent,
                    failed,
                },
            );
        }
        let open = store
            .read(history::open_events)
            .map_err(|e| format!("the alert history could not be read: {e}"))?;
        let states = alerts
            .iter()
            .map(|config| {
                let certificate = (config.when == ConditionKind::CertificateExpiry)
                    .then(|| config::certificate_of(config, known, base))
                    .flatten();
                let episode = open.iter().rev().find(|e| e.alert == config.name);
                AlertState {
                    phase: if episode.is_some() {
                        Phase::Firing
                    } else {
                        Phase::Ok
                    },
                    detail: episode.map(|e| e.detail.clone()),
                    episode: episode.map(|e| (e.id, e.fired_at)),
                    acked_by: episode.and_then(|e| e.acked_by.clone()),
                    watch: Watch::new(config.clone(), certificate, data_dir),
                }
            })
            .collect();
        let alerts = Alerts {
            inner: Arc::new(Inner {
                store,
                states: Mutex::new(states),
                notifiers,
            }),
        };
        let mut stopped = stopped;
        let interval = alerting.interval.0;
        let sampler: Arc<Sampler> = Arc::new(sampler);
        let running = alerts.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    _ = stopped.changed() => break,
                }
                let sampler = sampler.clone();
                let Ok(Some(snapshot)) = tokio::task::spawn_blocking(move || sampler()).await
                else {
                    continue;
                };
                running.evaluate(snapshot).await;
            }
        });
        Ok(Alerting {
            alerts,
            stop,
            task,
            senders,
        })
    }

    /// The shared handle, for the API and `/metrics`.
    pub fn alerts(&self) -> Alerts {
        self.alerts.clone()
    }

    /// Stops evaluating; notifications already decided are sent (waiting at most 10 s).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        for sender in self.senders {
            let abort = sender.abort_handle();
            if tokio::time::timeout_at(deadline, sender).await.is_err() {
                abort.abort();
            }
        }
    }
}

/// Sends one notifier's notifications one after the other.
async fn send_in_order(
    name: Arc<str>,
    notifier: Notifier,
    mut queue: mpsc::UnboundedReceiver<Notification>,
    sent: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let note = if *stopped.borrow() {
            // Stopping: what was decided before is still sent, then the task ends.
            match queue.try_recv() {
                Ok(note) => note,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                note = queue.recv() => match note {
                    Some(note) => note,
                    None => break,
                },
                _ = stopped.changed() => continue,
            }
        };
        for attempt in 1..=NOTIFY_TRIES {
            match notifier.send(&name, &note).await {
                Ok(_) => {
                    sent.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(notifier = %name, alert = %note.alert, state = note.state, "alert notification sent");
                    break;
                }
                Err(reason) => {
                    tracing::warn!(notifier = %name, alert = %note.alert, state = note.state, attempt, error = %reason, "alert notification failed");
                    if attempt == NOTIFY_TRIES {
                        failed.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tokio::time::sleep(NOTIFY_BACKOFF * attempt).await;
                    }
                }
            }
        }
    }
}

impl Alerts {
    /// Evaluates every alert on `snapshot`: records and notifies what fired or resolved.
    /// The engine's timer calls it; tests may too.
    pub async fn evaluate(&self, snapshot: Snapshot) {
        let now = snapshot.at.0;
        // Decide under the lock (no await); write and notify after.
        let changes: Vec<(usize, Change, String)> = {
            let mut states = self
                .inner
                .states
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let mut changes = Vec::new();
            for (i, state) in states.iter_mut().enumerate() {
                let seen = state.watch.holds(&snapshot);
                let config = state.watch.config();
                let (phase, change) = step(
                    state.phase,
                    seen.is_some(),
                    now,
                    config.hold(),
                    config.clear(),
                );
                state.phase = phase;
                if let Some(detail) = seen {
                    state.detail = Some(detail);
                }
                if let Some(change) = change {
                    changes.push((i, change, state.detail.clone().unwrap_or_default()));
                }
            }
            changes
        };
        for (i, change, detail) in changes {
            let (name, condition, channel, destination, notify, episode) = {
                let states = self
                    .inner
                    .states
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let c = states[i].watch.config();
                (
                    c.name.clone(),
                    c.when.as_str(),
                    c.channel.clone(),
                    c.destination.clone(),
                    c.notify.clone(),
                    states[i].episode,
                )
            };
            let at = UnixMicros(now);
            let recorded = match change {
                Change::Fire => {
                    let (n, d) = (name.clone(), detail.clone());
                    self.inner
                        .store
                        .write(move |conn| history::record_fired(conn, &n, condition, &d, at))
                        .await
                        .map(|id| (id, now))
                }
                Change::Resolve => {
                    let (id, fired_at) = episode.unwrap_or((0, now));
                    self.inner
                        .store
                        .write(move |conn| history::record_resolved(conn, id, at))
                        .await
                        .map(|()| (id, fired_at))
                }
            };
            let (event_id, fired_at) = match recorded {
                Ok(done) => done,
                Err(error) => {
                    tracing::error!(alert = %name, %error, "recording an alert change failed");
                    (episode.map_or(0, |e| e.0), episode.map_or(now, |e| e.1))
                }
            };
            {
                let mut states = self
                    .inner
                    .states
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let state = &mut states[i];
                match change {
                    Change::Fire => {
                        state.episode = Some((event_id, fired_at));
                        state.acked_by = None;
                    }
                    Change::Resolve => {
                        state.episode = None;
                        state.acked_by = None;
                    }
                }
            }
            let state = if change == Change::Fire {
                "firing"
            } else {
                "resolved"
            };
            match change {
                Change::Fire => tracing::warn!(alert = %name, condition, %detail, "alert firing"),
                Change::Resolve => tracing::info!(alert = %name, condition, "alert resolved"),
            }
            let note = Notification {
                alert: name,
                state,
                condition,
                channel,
                destination,
                detail,
                event_id,
                fired_at: datetime::rfc3339::format_micros(fired_at),
                at: datetime::rfc3339::format_micros(now),
            };
            for notifier in &notify {
                if let Some(handle) = self.inner.notifiers.get(notifier) {
                    let _ = handle.queue.send(note.clone());
                }
            }
        }
    }

    /// Every alert and its state, in configuration order.
    pub fn list(&self) -> Vec<AlertStatus> {
        let states = self
            .inner
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        states
            .iter()
            .map(|s| {
                let c = s.watch.config();
                AlertStatus {
                    name: c.name.clone(),
                    condition: c.when.as_str(),
                    channel: c.channel.clone(),
                    destination: c.destination.clone(),
                    state: match s.phase {
                        Phase::Ok => "ok",
                        Phase::Pending { .. } => "pending",
                        Phase::Firing => "firing",
                        Phase::Resolving { .. } => "resolving",
                    },
                    detail: s.detail.clone().filter(|_| s.phase != Phase::Ok),
                    event_id: s.episode.map(|e| e.0),
                    fired_at: s.episode.map(|e| e.1),
                    acked_by: s.acked_by.clone(),
                    notify: c.notify.clone(),
                }
            })
            .collect()
    }

    /// Episodes newest first (of `alert` when given, ids below `before` when given).
    pub fn history(
        &self,
        alert: Option<&str>,
        before: Option<i64>,
        limit: usize,
    ) -> store::Result<Vec<AlertEvent>> {
        self.inner
            .store
            .read(|conn| history::list(conn, alert, before, limit))
    }

    /// Acknowledges the firing episode of `alert` as `by`.
    pub async fn acknowledge(&self, alert: &str, by: &str) -> Result<AlertEvent, AckError> {
        let index = self
            .list()
            .iter()
            .position(|s| s.name == alert)
            .ok_or_else(|| AckError::Unknown(alert.to_owned()))?;
        let (a, b) = (alert.to_owned(), by.to_owned());
        let event = self
            .inner
            .store
            .write(move |conn| history::acknowledge(conn, &a, &b, UnixMicros::now()))
            .await?
            .ok_or_else(|| AckError::NotFiring(alert.to_owned()))?;
        let mut states = self
            .inner
            .states
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if states[index].episode.map(|e| e.0) == Some(event.id) {
            states[index].acked_by = event.acked_by.clone();
        }
        Ok(event)
    }

    /// `corridor_alert_firing`, `corridor_alert_acknowledged` and
    /// `corridor_alert_notifications_total`, in the Prometheus text format.
    pub fn prometheus_text(&self) -> String {
        let mut text = String::from(
            "# HELP corridor_alert_firing 1 while the alert fires (or is resolving), else 0.\n\
             # TYPE corridor_alert_firing gauge\n",
        );
        let list = self.list();
        for s in &list {
            let firing = u8::from(matches!(s.state, "firing" | "resolving"));
            let _ = writeln!(
                text,
                "corridor_alert_firing{{alert=\"{}\",condition=\"{}\"}} {firing}",
                s.name, s.condition
            );
        }
        text.push_str(
            "# HELP corridor_alert_acknowledged 1 while the firing episode is acknowledged.\n\
             # TYPE corridor_alert_acknowledged gauge\n",
        );
        for s in &list {
            let _ = writeln!(
                text,
                "corridor_alert_acknowledged{{alert=\"{}\"}} {}",
                s.name,
                u8::from(s.acked_by.is_some())
            );
        }
        text.push_str(
            "# HELP corridor_alert_notifications_total Alert notifications by notifier and outcome (failed: every try failed).\n\
             # TYPE corridor_alert_notifications_total counter\n",
        );
        for (name, handle) in &self.inner.notifiers {
            for (outcome, count) in [("sent", &handle.sent), ("failed", &handle.failed)] {
                let _ = writeln!(
                    text,
                    "corridor_alert_notifications_total{{notifier=\"{name}\",outcome=\"{outcome}\"}} {}",
                    count.load(Ordering::Relaxed)
                );
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    #[test]
    fn an_alert_fires_once_after_its_hold_and_resolves_once_after_its_clear_time() {
        let (hold, clear) = (Duration::from_secs(2), Duration::from_secs(2));
        let mut phase = Phase::Ok;
        let mut changes = Vec::new();
        // Holds from 0 s to 10 s with a flicker at 5 s, then clear with a flicker at 12 s.
        let holds = |t: i64| (t < 10 && t != 5) || t == 12;
        for t in 0..20 {
            let (next, change) = step(phase, holds(t), t * S, hold, clear);
            phase = next;
            if let Some(change) = change {
                changes.push((t, change));
            }
        }
        assert_eq!(changes, vec![(2, Change::Fire), (15, Change::Resolve)]);
    }

    #[test]
    fn a_condition_shorter_than_its_hold_sends_nothing() {
        let hold = Duration::from_secs(3);
        let mut phase = Phase::Ok;
        for t in 0..10 {
            let (next, change) = step(phase, t % 3 != 2, t * S, hold, hold);
            phase = next;
            assert_eq!(change, None, "at {t}");
        }
    }
}
