//! Destinations and their durable FIFO queues: the last hop of a Corridor channel.
//!
//! A processed message is put on one queue per destination of its channel, in the same
//! write transaction that records it as processed ([`enqueue_in`]); one worker per
//! destination then delivers its queue in order, retries with exponential backoff, and
//! records every outcome through the store's group commit. A destination that is down
//! only grows its own queue: the listener and the other destinations go on.
//!
//! - [`DestinationConfig`]: `[[channels.NAME.destinations]]` as written in the
//!   configuration (`type = "mllp" | "http" | "file" | "fhir" | "email"`).
//! - [`Router`]: runs each destination's own filters and transformers on a processed
//!   message, outside any transaction, giving a [`Routed`] message.
//! - [`enqueue_in`]: queues a [`Routed`] message inside the caller's write.
//! - [`Delivery`]: starts the workers, reads statistics, resends.
//! - [`Destination`]: the trait each kind implements (`destinations::{mllp, http, file, fhir,
//!   email}`); [`smtp`] sends mail for the e-mail destination and for alert notifiers.
//!
//! # Guarantees
//!
//! - **Order**: per destination, entries are delivered in queue order within their
//!   ordering key (a channel with no key has one strict FIFO per destination). An entry
//!   waiting for a retry holds back the entries of its key behind it, never those of other
//!   keys. With `pipeline` > 1 (MLLP), a message refused with a NAK and retried arrives
//!   after the messages already sent behind it; `pipeline = 1` keeps strict order even then.
//! - **At-least-once**: an entry is `delivered` only after the receiver answered and that
//!   answer is committed. A destination sees a message twice only when Corridor stops (a
//!   crash, a kill, a failed commit) after the receiver acknowledged it and before the
//!   `delivered` state was committed, or when an answer is lost on the way (a timeout, a
//!   dropped connection) after the receiver took the message: the entry is still
//!   `queued`/`sending` and is sent again. The copy is byte for byte the same, MSH-10
//!   included (Corridor never rewrites the control id on the way out), so a receiver that
//!   ignores a control id it has already accepted from this sender sees every message
//!   exactly once. File destinations whose name template holds `{message_id}` or
//!   `{entry_id}` overwrite the same file, so they never show a duplicate.
//! - **Visible end states**: every entry ends `delivered`, `filtered` (by which filter),
//!   `errored` (refused under `on_nak = "error"`, or a step failed) or `dead_lettered`
//!   (retries spent, with the last error); an operator may discard a dead letter
//!   (`discarded`, with who and why: [`discard_in`]). Once all entries of a message are final, its
//!   journal state becomes `delivered` (or `dead_lettered` if a destination gave up).
//!   Each entry keeps `queued_at`, `sent_at` and `acked_at`, so each hop's latency reads
//!   from the row.
//!
//! # SCHEMA
//!
//! The component `delivery` (see `component_schema`, version 4) keeps three tables in
//! `corridor.db`:
//!
//! `delivery_queue`, one row per message per destination:
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `id` | INTEGER PK | Entry id; grows with enqueue order, never reused. Queue order. |
//! | `message_id` | INTEGER | The journal id of the message. |
//! | `channel` | TEXT | The channel (`[channels.NAME]`). |
//! | `destination` | TEXT | The destination's `name` within the channel. |
//! | `ordering_key` | TEXT | Order is kept per key (e.g. PID-3.1); `''` = one FIFO. |
//! | `state` | TEXT | `queued`, `sending`, `delivered`, `errored`, `dead_lettered`, `filtered`, `discarded`. |
//! | `state_reason` | TEXT NULL | Why: the filter, the step error, the refusal, the dead-letter reason. |
//! | `attempts` | INTEGER | Deliveries tried. |
//! | `next_attempt_at` | INTEGER | When it may be tried (µs); later than now while backing off. |
//! | `last_error` | TEXT NULL | The last failure, in words. |
//! | `answer` | TEXT NULL | The receiver's last answer: ACK message, HTTP status line, file written. |
//! | `queued_at` | INTEGER | When it was queued, in the processing transaction (µs). |
//! | `sent_at` | INTEGER NULL | When it was last handed to the receiver (µs); written with the outcome, or with the `sending` mark when the receiver takes longer than 100 ms to answer. |
//! | `first_sent_at` | INTEGER NULL | When it was first handed to the receiver (µs), since version 4; NULL for entries tried before it (one attempt: `sent_at`). |
//! | `acked_at` | INTEGER NULL | When the receiver's positive answer arrived (µs). |
//! | `state_changed_at` | INTEGER | When `state` last changed (µs). |
//!
//! `delivery_payload`, the bytes to send, written once when the entry is queued (an
//! entry's row is updated at each attempt, and SQLite rewrites a whole row on update, so
//! the bytes live apart):
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `entry_id` | INTEGER PK | The `delivery_queue` entry (deleted with it). |
//! | `payload` | BLOB | The bytes sent, after the destination's transformers. Filtered and errored-by-a-step entries have no row. |
//!
//! `delivery_paused`, the destinations an operator paused ([`Delivery::pause`]) or
//! stopped ([`Delivery::stop`]); their workers deliver nothing until resumed, a stopped
//! one's worker also closes its connection to the receiver, and a restart keeps them so:
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `channel`, `destination` | TEXT PK | The destination. |
//! | `paused_at` | INTEGER | When it was paused (µs). |
//! | `paused_by` | TEXT | Who paused it, as the audit trail names them. |
//! | `stopped` | INTEGER | 1: stopped (no connection kept to the receiver); 0: paused. |
//!
//! Indexes: `delivery_queue_pending (channel, destination, id) WHERE state IN ('queued',
//! 'sending')` (the worker's scan, small however large the history),
//! `delivery_queue_by_state (channel, destination, state)` (statistics, error lists),
//! `delivery_queue_by_message (message_id)` (a message's states across destinations).
//!
//! ```sql
//! -- Latency of each hop for the last 10 deliveries to ehr, in milliseconds.
//! SELECT q.message_id, (q.queued_at - j.received_at) / 1000.0 AS in_to_queued,
//!        (q.sent_at - q.queued_at) / 1000.0 AS queued_to_sent,
//!        (q.acked_at - q.sent_at) / 1000.0 AS sent_to_ack
//!   FROM delivery_queue q JOIN journal j ON j.id = q.message_id
//!  WHERE q.destination = 'ehr' AND q.state = 'delivered' ORDER BY q.id DESC LIMIT 10;
//! ```
//!
//! # Example
//!
//! ```
//! use delivery::{Delivery, DestinationConfig, EntryState, Router};
//! use store::{MessageId, Store};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = tempfile::tempdir()?;
//! let store = Store::open(&dir.path().join("data"))?;
//! let archive: DestinationConfig = toml::from_str(r#"
//!     name = "archive"
//!     type = "file"
//!     path = "archive"
//!     transforms = [ { set = "MSH-5", value = "ARCHIVE" } ]
//! "#)?;
//! let destinations = [archive];
//! let delivery = Delivery::start(store.clone(), [("lab", &destinations[..])], dir.path()).await?;
//! let router = Router::compile("lab", &destinations, dir.path())?;
//!
//! // The engine, once a message is processed: route outside the transaction, queue inside it.
//! let message = hl7v2::OwnedMessage::parse(b"MSH|^~\\&|LAB|H|EHR|H|20260101||ORU^R01|C1|P|2.5.1\r")?;
//! let routed = router.route(&message);
//! let id = MessageId(1); // the journal id of the processed message
//! store.write(move |tx| delivery::enqueue_in(tx, id, None, &routed)).await?;
//! delivery.wake("lab"); // after the commit: the worker looks at its queue now
//!
//! # for _ in 0..500 {
//! #     if delivery.stats()?[0].counts.delivered == 1 { break; }
//! #     tokio::time::sleep(std::time::Duration::from_millis(10)).await;
//! # }
//! let entries = store.read(|c| delivery::entries_of_message(c, id))?;
//! assert_eq!(entries[0].state, EntryState::Delivered);
//! let written = std::fs::read(dir.path().join("archive/lab-1-C1.hl7"))?;
//! assert!(written.starts_with(b"MSH|^~\\&|LAB|H|ARCHIVE|"));
//! delivery.shutdown().await;
//! # Ok(()) }
//! ```

mod config;
pub mod destinations;
mod error;
pub mod nats;
mod pause;
pub mod query;
mod queue;
mod router;
pub mod sftp;
pub mod smtp;
mod worker;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use store::{Store, UnixMicros};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use config::{FileMode, HttpBody, OnFailure, OnNak, RetryConfig, TlsConfig};
use destinations::AnyDestination;
pub use destinations::{
    ChannelDestinationConfig, DatabaseDestinationConfig, DestinationConfig, DestinationKind,
    DestinationSettings, EmailDestinationConfig, FhirDestinationConfig, FileDestinationConfig,
    HttpDestinationConfig, MllpDestinationConfig, NatsDestinationConfig, NatsPayload,
    SftpDestinationConfig,
};
pub use destinations::{Delivered, DeliveryMeta, Destination, Outgoing};
pub use error::{ConfigError, DeliveryError, FailureKind, StartError, reason_for_logs};
pub use pause::PausedDestination;
pub use queue::{
    COMPONENT, EntryId, EntryState, MIGRATIONS, QueueCounts, QueueEntry, counts, discard_in,
    enqueue_in, entries_in_state, entries_of_message, entry, payload_of, resend_in,
    retry_dead_lettered_in,
};
pub use router::{RouteOutcome, Routed, RoutedEntry, Router};
pub use worker::{LATENCY_BUCKETS_MICROS, LatencySnapshot};

/// Creates or upgrades the queue tables; [`Delivery::start`] does it too. Run it before
/// the first [`enqueue_in`] if the workers start later.
pub async fn migrate(store: &Store) -> store::Result<u32> {
    store.migrate_component(COMPONENT, MIGRATIONS).await
}

/// The running destination workers of every channel.
///
/// A reload changes one channel's workers at a time ([`Delivery::prepare`], then
/// [`Delivery::replace`]): a destination whose configuration is unchanged keeps its
/// worker; a changed one's worker finishes the batch it is delivering before its
/// successor starts on the same queue, so no entry is sent by both.
#[derive(Debug)]
pub struct Delivery {
    store: Store,
    workers: RwLock<Vec<WorkerHandle>>,
    /// The operator's pauses, read by every worker before each batch.
    paused: Arc<pause::Paused>,
}

#[derive(Debug)]
struct WorkerHandle {
    channel: Arc<str>,
    destination: Arc<str>,
    kind: DestinationKind,
    config: DestinationConfig,
    wake: Arc<Notify>,
    status: Arc<worker::Status>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// What the API shows about one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestinationStats {
    /// The channel.
    pub channel: String,
    /// The destination's name.
    pub destination: String,
    /// Its kind.
    pub kind: DestinationKind,
    /// Entries per state, queue depth and oldest waiting entry, as stored.
    pub counts: QueueCounts,
    /// How long the oldest entry still to deliver has waited.
    pub oldest_queued_age: Option<Duration>,
    /// Set while the destination holds its queue on a failing entry (`on_failure = "wait"`).
    pub alert: Option<String>,
    /// The last delivery failure since start, in words; None once a delivery went
    /// through after it.
    pub last_error: Option<String>,
    /// Since when every attempt has failed; None while the receiver takes messages.
    pub failing_since: Option<UnixMicros>,
    /// Entries delivered since start.
    pub delivered_since_start: u64,
    /// Failed delivery attempts since start.
    pub failures_since_start: u64,
    /// Time from sending to the receiver's positive answer, since start.
    pub answer_latency: LatencySnapshot,
    /// Time from the message's receipt to its entry's first attempt, since start.
    pub sent_latency: LatencySnapshot,
}

/// One channel's destinations, checked and built, ready for [`Delivery::replace`].
pub struct PreparedChannel {
    channel: Arc<str>,
    built: Vec<(DestinationConfig, AnyDestination)>,
}

impl std::fmt::Debug for PreparedChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedChannel")
            .field("channel", &self.channel)
            .field("destinations", &self.built.len())
            .finish()
    }
}

/// Checks one channel's destinations (names unique, steps compile) and builds each.
fn prepare_channel(
    channel: &str,
    configs: &[DestinationConfig],
    base: &Path,
) -> Result<PreparedChannel, StartError> {
    let channel: Arc<str> = Arc::from(channel);
    // Same checks as the router: names unique per channel, steps compile.
    Router::compile(&channel, configs, base)?;
    let mut built = Vec::with_capacity(configs.len());
    for config in configs {
        built.push((config.clone(), destinations::build(config, base)?));
    }
    Ok(PreparedChannel { channel, built })
}

/// Starts the worker of one destination of `channel`.
fn spawn_worker(
    store: &Store,
    paused: &Arc<pause::Paused>,
    channel: Arc<str>,
    config: DestinationConfig,
    destination: AnyDestination,
) -> WorkerHandle {
    let name: Arc<str> = Arc::from(config.name.as_str());
    let wake = Arc::new(Notify::new());
    let status = Arc::new(worker::Status::default());
    let (stop, stopped) = watch::channel(false);
    let worker = worker::Worker {
        store: store.clone(),
        meta: DeliveryMeta {
            channel: channel.clone(),
            destination: name.clone(),
        },
        retry: config.retry,
        on_failure: config.on_failure,
        on_nak: config.on_nak,
        destination,
        status: status.clone(),
        wake: wake.clone(),
        stop: stopped,
        paused: paused.clone(),
    };
    let task = tokio::spawn(worker.run());
    WorkerHandle {
        channel,
        destination: name,
        kind: config.kind(),
        config,
        wake,
        status,
        stop,
        task,
    }
}

/// Asks each worker to stop after its batch and waits for them until `deadline`;
/// those still busy then are cancelled. True if all stopped in time.
async fn stop_workers(workers: Vec<WorkerHandle>, deadline: tokio::time::Instant) -> bool {
    for worker in &workers {
        let _ = worker.stop.send(true);
    }
    let mut in_time = true;
    for worker in workers {
        let abort = worker.task.abort_handle();
        if tokio::time::timeout_at(deadline, worker.task)
            .await
            .is_err()
        {
            abort.abort();
            in_time = false;
        }
    }
    in_time
}

/// How long [`Delivery::replace`] waits for a replaced worker's batch.
const REPLACE_GRACE: Duration = Duration::from_secs(30);

impl Delivery {
    /// Migrates the queue tables and starts one worker per destination of every channel.
    ///
    /// `channels` pairs each channel's name with its destinations; relative paths (TLS
    /// files, file destinations' directories) start at `base`, the configuration file's
    /// directory. Must be called inside a tokio runtime. Every configuration is checked
    /// before any worker starts.
    pub async fn start<'a, C, I>(
        store: Store,
        channels: I,
        base: &Path,
    ) -> Result<Delivery, StartError>
    where
        C: AsRef<str>,
        I: IntoIterator<Item = (C, &'a [DestinationConfig])>,
    {
        let mut prepared = Vec::new();
        for (channel, configs) in channels {
            prepared.push(prepare_channel(channel.as_ref(), configs, base)?);
        }
        migrate(&store).await?;
        // Paused before any worker looks at its queue.
        let paused = Arc::new(store.read(pause::Paused::load)?);
        let mut workers = Vec::new();
        for channel in prepared {
            for (config, destination) in channel.built {
                workers.push(spawn_worker(
                    &store,
                    &paused,
                    channel.channel.clone(),
                    config,
                    destination,
                ));
            }
        }
        Ok(Delivery {
            store,
            workers: RwLock::new(workers),
            paused,
        })
    }

    /// Checks and builds `channel`'s destinations as `configs` describe them, without
    /// touching the running workers: a reload prepares every channel before it changes
    /// any. An empty `configs` prepares the channel's removal.
    pub fn prepare(
        &self,
        channel: &str,
        configs: &[DestinationConfig],
        base: &Path,
    ) -> Result<PreparedChannel, StartError> {
        prepare_channel(channel, configs, base)
    }

    /// Gives a channel the destinations `prepared` holds: a destination whose
    /// configuration is unchanged keeps its running worker (and its counters); every
    /// other worker of the channel finishes the batch it is delivering and stops (an
    /// entry it could not finish within 30 s stays `sending` and is sent again), then
    /// the new workers start on the queues. Entries queued for a destination that is
    /// gone stay queued until a destination of that name returns.
    pub async fn replace(&self, prepared: PreparedChannel) {
        let PreparedChannel { channel, built } = prepared;
        let mut stopping = Vec::new();
        let mut to_start = Vec::new();
        {
            let mut workers = self.workers.write().unwrap_or_else(PoisonError::into_inner);
            let mut kept = Vec::with_capacity(workers.len());
            for worker in workers.drain(..) {
                let stays = *worker.channel == *channel
                    && built.iter().any(|(config, _)| *config == worker.config);
                if *worker.channel != *channel || stays {
                    kept.push(worker);
                } else {
                    stopping.push(worker);
                }
            }
            for (config, destination) in built {
                let running = kept
                    .iter()
                    .any(|w| *w.channel == *channel && w.config == config);
                if !running {
                    to_start.push((config, destination));
                }
            }
            *workers = kept;
        }
        if !stopping.is_empty()
            && !stop_workers(stopping, tokio::time::Instant::now() + REPLACE_GRACE).await
        {
            tracing::warn!(%channel, "a replaced destination was cut off in a delivery; its entries are sent again");
        }
        let started: Vec<_> = to_start
            .into_iter()
            .map(|(config, destination)| {
                spawn_worker(
                    &self.store,
                    &self.paused,
                    channel.clone(),
                    config,
                    destination,
                )
            })
            .collect();
        let mut workers = self.workers.write().unwrap_or_else(PoisonError::into_inner);
        workers.extend(started);
    }

    /// Tells the workers of `channel` to look at their queues now. Call it after the write
    /// that ran [`enqueue_in`] resolved (workers also look every second by themselves).
    pub fn wake(&self, channel: &str) {
        let workers = self.workers.read().unwrap_or_else(PoisonError::into_inner);
        for worker in workers.iter().filter(|w| &*w.channel == channel) {
            worker.wake.notify_one();
        }
    }

    /// Wakes every worker.
    pub fn wake_all(&self) {
        let workers = self.workers.read().unwrap_or_else(PoisonError::into_inner);
        for worker in workers.iter() {
            worker.wake.notify_one();
        }
    }

    /// Statistics of every destination, in start order. Reads the database (one indexed
    /// count per destination); for `tokio::task::spawn_blocking` if called very often.
    pub fn stats(&self) -> store::Result<Vec<DestinationStats>> {
        let now = UnixMicros::now();
        let workers = self.workers.read().unwrap_or_else(PoisonError::into_inner);
        workers
            .iter()
            .map(|w| {
                let counts = self
                    .store
                    .read(|conn| counts(conn, &w.channel, &w.destination))?;
                Ok(DestinationStats {
                    channel: w.channel.to_string(),
                    destination: w.destination.to_string(),
                    kind: w.kind,
                    oldest_queued_age: counts.oldest_queued_age(now),
                    counts,
                    alert: w
                        .status
                        .alert
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone(),
                    last_error: w
                        .status
                        .last_error
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .clone(),
                    failing_since: match w.status.failing_since.load(Ordering::Relaxed) {
                        0 => None,
                        at => Some(UnixMicros(at)),
                    },
                    delivered_since_start: w.status.delivered.load(Ordering::Relaxed),
                    failures_since_start: w.status.failures.load(Ordering::Relaxed),
                    answer_latency: w.status.answer_latency.snapshot(),
                    sent_latency: w.status.sent_latency.snapshot(),
                })
            })
            .collect()
    }

    /// Puts a copy of a delivered, errored or dead-lettered entry at the end of its queue
    /// and wakes its worker; returns the new entry.
    pub async fn resend(&self, entry: EntryId) -> store::Result<EntryId> {
        let new = self.store.write(move |conn| resend_in(conn, entry)).await?;
        self.wake_all();
        Ok(new)
    }

    /// Gives every dead-lettered entry of a destination a new round of attempts now;
    /// returns how many.
    pub async fn retry_dead_lettered(
        &self,
        channel: &str,
        destination: &str,
    ) -> store::Result<usize> {
        let (c, d) = (channel.to_owned(), destination.to_owned());
        let n = self
            .store
            .write(move |conn| retry_dead_lettered_in(conn, &c, &d))
            .await?;
        self.wake(channel);
        Ok(n)
    }

    /// Pauses a destination of the running configuration: its worker delivers nothing
    /// after the batch it is on, while routing goes on queuing for it in order; its
    /// connection to the receiver stays open. Kept in the store, so the pause outlasts a
    /// restart and a reload. True when it changed (a pause again keeps the first one's
    /// time and author; a pause of a stopped destination makes it paused).
    pub async fn pause(
        &self,
        channel: &str,
        destination: &str,
        by: &str,
    ) -> Result<bool, ControlError> {
        self.hold(channel, destination, by, false).await
    }

    /// Stops a destination of the running configuration: paused, and its worker closes
    /// its connection to the receiver (an MLLP socket, an SFTP session) and opens none
    /// until [`Delivery::resume`] starts it. Kept in the
    /// store like a pause. True when it changed.
    pub async fn stop(
        &self,
        channel: &str,
        destination: &str,
        by: &str,
    ) -> Result<bool, ControlError> {
        self.hold(channel, destination, by, true).await
    }

    async fn hold(
        &self,
        channel: &str,
        destination: &str,
        by: &str,
        stopped: bool,
    ) -> Result<bool, ControlError> {
        self.known(channel, destination)?;
        let held = PausedDestination {
            channel: channel.to_owned(),
            destination: destination.to_owned(),
            paused_at: UnixMicros::now(),
            paused_by: by.to_owned(),
            stopped,
        };
        let row = held.clone();
        let changed = self
            .store
            .write(move |conn| pause::hold_in(conn, &row))
            .await?;
        if changed {
            self.paused.insert(held);
            // A stopped worker closes its connection now, not at its next poll.
            self.wake(channel);
        }
        Ok(changed)
    }

    /// Starts (resumes) a paused or stopped destination: its worker delivers its queue
    /// from the oldest entry, connecting again if it was stopped. True when it was held.
    pub async fn resume(&self, channel: &str, destination: &str) -> Result<bool, ControlError> {
        let (c, d) = (channel.to_owned(), destination.to_owned());
        let was = self
            .store
            .write(move |conn| pause::resume_in(conn, &c, &d))
            .await?;
        self.paused.remove(channel, destination);
        self.wake(channel);
        Ok(was)
    }

    /// The pause or stop of a destination, if it is held.
    pub fn paused(&self, channel: &str, destination: &str) -> Option<PausedDestination> {
        self.paused.get(channel, destination)
    }

    /// Every paused destination, by channel and name, including those of channels the
    /// running configuration no longer has (they stay paused should they return).
    pub fn paused_destinations(&self) -> Vec<PausedDestination> {
        self.paused.all()
    }

    /// The destinations of a channel that run now, in start order.
    pub fn destinations_of(&self, channel: &str) -> Vec<String> {
        let workers = self.workers.read().unwrap_or_else(PoisonError::into_inner);
        workers
            .iter()
            .filter(|w| &*w.channel == channel)
            .map(|w| w.destination.to_string())
            .collect()
    }

    fn known(&self, channel: &str, destination: &str) -> Result<(), ControlError> {
        let workers = self.workers.read().unwrap_or_else(PoisonError::into_inner);
        if workers
            .iter()
            .any(|w| &*w.channel == channel && &*w.destination == destination)
        {
            Ok(())
        } else {
            Err(ControlError::Unknown {
                channel: channel.to_owned(),
                destination: destination.to_owned(),
            })
        }
    }

    /// Stops the workers after the batches they are delivering, waiting at most 10 s.
    pub async fn shutdown(self) {
        self.shutdown_within(Duration::from_secs(10)).await;
    }

    /// Stops the workers; those still busy after `grace` are cancelled (their entries stay
    /// `sending` and are sent again by the next start). True if all stopped in time.
    pub async fn shutdown_within(self, grace: Duration) -> bool {
        self.stop_within(grace).await
    }

    /// Like [`Delivery::shutdown_within`], for a `Delivery` still shared: every worker
    /// is taken out and stopped; none is left running.
    pub async fn stop_within(&self, grace: Duration) -> bool {
        let workers =
            std::mem::take(&mut *self.workers.write().unwrap_or_else(PoisonError::into_inner));
        stop_workers(workers, tokio::time::Instant::now() + grace).await
    }
}

/// Why a destination could not be paused or resumed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No destination of that name runs on that channel.
    #[error("channel {channel:?} has no destination {destination:?}")]
    Unknown {
        channel: String,
        destination: String,
    },
    /// The store refused the change.
    #[error(transparent)]
    Store(#[from] store::Error),
}
