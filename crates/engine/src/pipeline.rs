//! The processing pipeline: from `received` to `processed` (queued for the destinations),
//! `filtered`, `quarantined` or `errored`, one channel at a time.
//!
//! Each channel has one processor task. It wakes when a source committed new messages (or
//! every second, for messages put back by a reprocess), reads the channel's `received`
//! messages oldest first, runs each through the channel's stages ([`Stage`]) and its
//! router, and writes the outcome of the whole batch in ONE store write: each message's
//! new journal state, every stage's [`Commit`], and its destination queue rows
//! ([`delivery::enqueue_in`]). A crash before that write leaves the messages `received`;
//! the next start processes them again from the beginning, so a message is never half
//! processed. Then the destinations' workers are woken, and the channels that this
//! channel's channel destinations (`type = "channel"`) handed messages to in that write.
//!
//! Order: messages are taken in journal order (receive order). Without an ordering key the
//! channel's messages are processed one after another. With one (`ordering_key =
//! "PID-3.1"`), a batch is split into lanes by the key's value and the lanes run in
//! parallel, each in order; the queue rows carry the key, so each patient's messages also
//! reach each destination in order while other patients pass a patient whose delivery is
//! held up.
//!
//! A message whose processing fails (a stage error, a panic in a script) ends `errored`
//! with the reason; it never stops the channel.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use delivery::{Delivery, Routed, Router};
use hl7v2::OwnedMessage;
use rusqlite::params;
use store::{Journal, MessageId, MessageState, Store, UnixMicros};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, warn};

use crate::channel_control::ChannelStates;
use crate::config::{ChannelConfig, Config, ValidationMode};
use crate::metrics::ChannelMetrics;
use crate::sources::Validations;
use crate::stage::{Commit, Stage, StageOutcome, Work};
use crate::start_error::StartError;

/// How many `received` messages one batch takes at most.
const BATCH: usize = 512;
/// How often an idle processor looks for messages nobody told it about.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Runs a channel's filters and transformers (`steps::Chain`) as a stage; a channel
/// without any has no such stage.
pub(crate) struct StepsStage {
    chain: steps::Chain,
}

impl StepsStage {
    pub(crate) fn new(chain: steps::Chain) -> StepsStage {
        StepsStage { chain }
    }
}

impl Stage for StepsStage {
    fn name(&self) -> &str {
        "steps"
    }

    fn run(&self, work: &mut Work) -> StageOutcome {
        let message = std::mem::take(&mut work.message);
        let vars = steps::Vars {
            enterprise_id: work.enterprise_id.clone(),
        };
        match self.chain.run_with(message, &vars) {
            steps::Outcome::Pass(message) => {
                work.message = message;
                StageOutcome::proceed()
            }
            steps::Outcome::Filtered { filter } => StageOutcome::Stop {
                state: MessageState::Filtered,
                reason: format!("filtered by {filter}"),
                commit: None,
            },
            steps::Outcome::Error { step, error } => StageOutcome::Stop {
                state: MessageState::Errored,
                reason: format!("{step}: {error}"),
                commit: None,
            },
        }
    }
}

/// Everything one channel's processor needs.
pub(crate) struct ChannelPipeline {
    pub channel: Arc<str>,
    /// In order: validate, mpi, map, steps, fhir, rules (those the channel has).
    pub stages: Vec<Arc<dyn Stage>>,
    pub router: Router,
    pub ordering_key: Option<hl7v2::Path>,
    pub metrics: Arc<ChannelMetrics>,
    /// The patient index's identifier system (`[mpi]` on): with `Work::enterprise_id`,
    /// the enterprise identifier the Bundles of FHIR destinations give the Patient.
    pub enterprise_system: Option<String>,
    /// Rung after a batch is written: the alerts channel, when the rules stage may have
    /// put alerts in its journal.
    pub after_write: Option<Arc<Notify>>,
    /// The rules stage's decided messages: a batch's are forgotten once it is written.
    pub recent: Option<Arc<crate::stages::rules::Recent>>,
    /// The alerts channel: its `fhir` destinations get the alert as a DetectedIssue.
    pub alert_payloads: Option<Arc<crate::stages::rules::AlertPayloads>>,
    /// Every channel's notifier, to wake the channels this one's channel destinations
    /// hand messages to once a batch is written (`None` under `corridor test`).
    pub hand_over: Option<crate::sources::Wakes>,
}

/// What every channel's stages share, engine-wide: the patient index, the clinical
/// rules' context and the terminology in force.
#[derive(Clone, Copy)]
pub(crate) struct Services<'a> {
    pub patient_index: Option<&'a mpi::MpiService>,
    pub rules: Option<&'a crate::stages::rules::RulesContext>,
    pub terminology: &'a Arc<terminology::SharedTerminology>,
}

impl ChannelPipeline {
    /// Builds channel `name`'s pipeline from its configuration: its stages in order
    /// (validation after the ACK, the patient index, the code map, its filters and
    /// transformers, FHIR)
    /// and its router. `corridor run` and `corridor test` both build channels here.
    pub(crate) fn build(
        name: &str,
        channel: &ChannelConfig,
        config: &Config,
        validations: &Validations,
        services: Services<'_>,
        metrics: Arc<ChannelMetrics>,
    ) -> Result<ChannelPipeline, StartError> {
        let Services {
            patient_index,
            rules,
            terminology,
        } = services;
        let steps_error = |reason: String| StartError::Steps {
            channel: name.to_owned(),
            reason,
        };
        let chain = channel
            .steps(&config.base_dir)
            .map_err(|e| steps_error(e.to_string()))?;
        let router = Router::compile(name, &channel.destinations, &config.base_dir)
            .map_err(|e| steps_error(e.to_string()))?;
        let ordering_key = match &channel.ordering_key {
            Some(key) => Some(
                key.0
                    .parse()
                    .map_err(|e: hl7v2::Error| steps_error(e.to_string()))?,
            ),
            None => None,
        };
        let mut stages: Vec<Arc<dyn Stage>> = Vec::new();
        if let Some((ValidationMode::AfterAck, validation)) = validations.get(name) {
            stages.push(Arc::new(crate::stages::validate::ValidateStage::new(
                validation.clone(),
            )));
        }
        if let Some(index) = patient_index {
            stages.push(Arc::new(crate::stages::mpi::MpiStage::new(index.clone())));
        }
        if let Some(map) = &channel.map {
            let stage = crate::stages::terminology::MapStage::new(map, terminology.clone())
                .map_err(|e| steps_error(format!("map.{e}")))?;
            stages.push(Arc::new(stage));
        }
        if !chain.is_empty() {
            stages.push(Arc::new(StepsStage::new(chain)));
        }
        let enterprise_system = patient_index.map(|_| config.mpi.enterprise_system.clone());
        if let Some(fhir) = &channel.fhir {
            // With the patient index on, identifier systems are made under its base.
            let mut fhir = fhir.clone();
            if patient_index.is_some() && fhir.identifier_base.is_none() {
                fhir.identifier_base = Some(config.mpi.identifier_base.clone());
            }
            let stage =
                crate::stages::fhir::FhirStage::from_config(&fhir, enterprise_system.clone())
                    .map_err(steps_error)?;
            stages.push(Arc::new(stage));
        }
        let mut after_write = None;
        let mut recent = None;
        if let Some(rules) = rules
            && let Some(stage) = rules
                .stage_for(channel, enterprise_system.clone())
                .map_err(|e| StartError::Steps {
                    channel: name.to_owned(),
                    reason: e.to_string(),
                })?
        {
            after_write = stage.wake();
            recent = Some(stage.recent());
            stages.push(Arc::new(stage));
        }
        Ok(ChannelPipeline {
            channel: Arc::from(name),
            stages,
            router,
            ordering_key,
            metrics,
            enterprise_system,
            after_write,
            recent,
            alert_payloads: None,
            hand_over: None,
        })
    }

    /// True for a channel with nothing to process (no stage, no destination): an
    /// archive, whose messages are stored `processed` on receipt.
    pub(crate) fn is_archive(&self) -> bool {
        self.stages.is_empty() && self.router.is_empty()
    }
}

/// A message read back from the journal to be processed.
struct Pending {
    id: MessageId,
    received_at: UnixMicros,
    raw: Vec<u8>,
}

/// What processing decided about one message, ready to be written.
struct Decided {
    id: MessageId,
    received_at: UnixMicros,
    state: MessageState,
    reason: Option<String>,
    commits: Vec<Commit>,
    routed: Option<Routed>,
    ordering_key: Option<String>,
    /// The message's search keys (`store::search`), read from the bytes as stored.
    search: Vec<(store::search::SearchKind, String)>,
}

impl ChannelPipeline {
    /// Runs one message through the stages and the router. Never panics: a panic in a
    /// stage becomes an `errored` message.
    fn decide(&self, pending: Pending) -> Decided {
        let Pending {
            id,
            received_at,
            raw,
        } = pending;
        let errored = |reason: String| Decided {
            id,
            received_at,
            state: MessageState::Errored,
            reason: Some(reason),
            commits: Vec::new(),
            routed: None,
            ordering_key: None,
            search: Vec::new(),
        };
        let message = match OwnedMessage::parse(&raw) {
            Ok(message) => message,
            Err(err) => return errored(format!("the stored message does not parse: {err}")),
        };
        let search = crate::search_keys::search_keys(&raw);
        let mut work = Work::new(id, self.channel.clone(), received_at, message);
        let outcome = catch_unwind(AssertUnwindSafe(|| self.run_stages(&mut work)));
        match outcome {
            Ok(decided) => {
                // The golden record the patient index linked the message to: the
                // console's link from a message to its patient reads it by message id.
                let mut search = search;
                if let Some(enterprise) = work.enterprise_id.take() {
                    search.push((store::search::SearchKind::Enterprise, enterprise));
                }
                Decided { search, ..decided }
            }
            Err(panic) => {
                let words = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic without a message".to_owned());
                errored(format!("processing failed unexpectedly: {words}"))
            }
        }
    }

    fn run_stages(&self, work: &mut Work) -> Decided {
        let mut commits = Vec::new();
        for stage in &self.stages {
            match stage.run(work) {
                StageOutcome::Continue { commit } => commits.extend(commit),
                StageOutcome::Stop {
                    state,
                    reason,
                    commit,
                } => {
                    commits.extend(commit);
                    return Decided {
                        id: work.id,
                        received_at: work.received_at,
                        state,
                        reason: Some(reason),
                        commits,
                        routed: None,
                        ordering_key: None,
                        search: Vec::new(),
                    };
                }
            }
        }
        let ordering_key = self
            .ordering_key
            .as_ref()
            .map(|path| work.message.get_text(path).unwrap_or_default());
        Decided {
            id: work.id,
            received_at: work.received_at,
            state: MessageState::Processed,
            reason: None,
            commits,
            routed: Some(self.route(work)),
            ordering_key,
            search: Vec::new(),
        }
    }

    /// Routes a processed message, passing its enterprise id to the destinations.
    fn route(&self, work: &Work) -> Routed {
        let enterprise = work.enterprise_identifier(self.enterprise_system.as_deref());
        let mut routed = self
            .router
            .route_with_enterprise_id(&work.message, enterprise.as_ref());
        if let Some(payloads) = &self.alert_payloads {
            payloads.reshape(work.id, &mut routed);
        }
        routed
    }

    /// Decides a batch, in lanes by ordering key when the channel has one. Once
    /// `stopping` is set no further message is started: those left stay `received`
    /// (each lane stops after a prefix of its messages, so order holds) and shutdown
    /// waits for one message per lane, not for the batch's scripts.
    fn decide_batch(&self, batch: Vec<Pending>, stopping: &AtomicBool) -> Vec<Decided> {
        let go_on = || !stopping.load(Ordering::Relaxed);
        let Some((path, lanes)) = self
            .ordering_key
            .as_ref()
            .filter(|_| batch.len() > 8)
            .map(|path| (path, lanes()))
            .filter(|&(_, lanes)| lanes > 1)
        else {
            return batch
                .into_iter()
                .take_while(|_| go_on())
                .map(|p| self.decide(p))
                .collect();
        };
        // The key is read from the message as received: a transformer may change it,
        // but the lane only decides which messages may run side by side.
        let mut by_lane: Vec<Vec<(usize, Pending)>> = (0..lanes).map(|_| Vec::new()).collect();
        for (i, pending) in batch.into_iter().enumerate() {
            let key = hl7v2::Message::parse(&pending.raw)
                .ok()
                .and_then(|m| m.get(path).map(|e| e.raw().to_vec()))
                .unwrap_or_default();
            let mut hasher = DefaultHasher::new();
            key.hash(&mut hasher);
            by_lane[(hasher.finish() % lanes as u64) as usize].push((i, pending));
        }
        let mut decided: Vec<(usize, Decided)> = std::thread::scope(|scope| {
            let handles: Vec<_> = by_lane
                .into_iter()
                .filter(|lane| !lane.is_empty())
                .map(|lane| {
                    scope.spawn(move || {
                        lane.into_iter()
                            .take_while(|_| go_on())
                            .map(|(i, p)| (i, self.decide(p)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                // `decide` catches panics, so a lane thread cannot panic.
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        });
        decided.sort_by_key(|(i, _)| *i);
        decided.into_iter().map(|(_, d)| d).collect()
    }
}

/// How many lanes a keyed batch is split into: the cores the process may use, asked
/// once (the answer reads cgroup files).
fn lanes() -> usize {
    static LANES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *LANES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Writes a decided batch: states, stage commits and queue rows, in one transaction.
/// A message whose own writes fail (a stage's commit, say) is recorded `errored` instead,
/// without its commits, and the rest of the batch stands.
fn write_batch(conn: &rusqlite::Connection, batch: Vec<Decided>) -> store::Result<Vec<Written>> {
    let mut written = Vec::with_capacity(batch.len());
    for decided in batch {
        let Decided {
            id,
            received_at,
            state,
            reason,
            commits,
            routed,
            ordering_key,
            search,
        } = decided;
        let result = store::in_savepoint(conn, |conn| -> store::Result<()> {
            Journal::set_state_in(conn, id, state, reason.as_deref())?;
            store::search::index_in(conn, id.0, &search)?;
            for commit in commits {
                commit(conn)?;
            }
            if let Some(routed) = &routed {
                delivery::enqueue_in(conn, id, ordering_key.as_deref(), routed)?;
            }
            Ok(())
        })?;
        match result {
            Ok(()) => written.push(Written { received_at, state }),
            Err(err) => {
                let reason = format!("recording the processing failed: {err}");
                Journal::set_state_in(conn, id, MessageState::Errored, Some(&reason))?;
                written.push(Written {
                    received_at,
                    state: MessageState::Errored,
                });
            }
        }
    }
    Ok(written)
}

/// What the batch write recorded for one message, for the metrics.
struct Written {
    received_at: UnixMicros,
    state: MessageState,
}

/// Reads up to [`BATCH`] of the channel's `received` messages, oldest first.
fn read_pending(conn: &rusqlite::Connection, channel: &str) -> store::Result<Vec<Pending>> {
    let mut stmt = conn.prepare_cached(
        "SELECT j.id, j.received_at, r.raw FROM journal j JOIN journal_raw r ON r.id = j.id \
         WHERE j.state = 'received' AND j.channel = ?1 ORDER BY j.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![channel, BATCH as i64], |r| {
        Ok(Pending {
            id: MessageId(r.get(0)?),
            received_at: UnixMicros(r.get(1)?),
            raw: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One channel's running processor, stopped on its own when a reload changes or removes
/// the channel.
pub(crate) struct Processor {
    stop: watch::Sender<bool>,
    /// Set with `stop`, for a batch already running on the blocking pool.
    stopping: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Processor {
    /// Starts `pipeline`'s processor; `wake` is the notifier its sources ring after a
    /// commit.
    pub(crate) fn start(
        store: Store,
        delivery: Arc<Delivery>,
        pipeline: ChannelPipeline,
        wake: Arc<Notify>,
        states: Arc<ChannelStates>,
    ) -> Processor {
        let (stop, stopped) = watch::channel(false);
        let stopping = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(
            Arc::new(pipeline),
            store,
            delivery,
            wake,
            stopped,
            stopping.clone(),
            states,
        ));
        Processor {
            stop,
            stopping,
            task,
        }
    }

    fn ask_to_stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        let _ = self.stop.send(true);
    }

    /// Finishes the message each lane is on, records what its batch decided, then
    /// stops. The messages it did not take stay `received` for its successor.
    pub(crate) async fn stop(self) {
        self.ask_to_stop();
        if let Err(err) = self.task.await {
            error!(error = %err, "a channel processor failed");
        }
    }
}

/// The running processors, one per channel, by channel name.
#[derive(Default)]
pub(crate) struct Processors {
    channels: std::collections::BTreeMap<String, Processor>,
}

impl Processors {
    /// Starts one processor per channel. `wake` pairs each channel with the notifier its
    /// sources ring after a commit.
    pub(crate) fn start(
        store: Store,
        delivery: Arc<Delivery>,
        channels: Vec<(ChannelPipeline, Arc<Notify>)>,
        states: &Arc<ChannelStates>,
    ) -> Processors {
        let mut processors = Processors::default();
        for (pipeline, wake) in channels {
            let name = pipeline.channel.to_string();
            let processor = Processor::start(
                store.clone(),
                delivery.clone(),
                pipeline,
                wake,
                states.clone(),
            );
            processors.channels.insert(name, processor);
        }
        processors
    }

    /// Adds (or replaces the entry of) a channel's processor.
    pub(crate) fn insert(&mut self, channel: &str, processor: Processor) {
        self.channels.insert(channel.to_owned(), processor);
    }

    /// Takes a channel's processor out, to stop it.
    pub(crate) fn remove(&mut self, channel: &str) -> Option<Processor> {
        self.channels.remove(channel)
    }

    /// Finishes the message each processor (each lane) is on, records what its batch
    /// decided, then stops them.
    pub(crate) async fn shutdown(self) {
        for processor in self.channels.values() {
            processor.ask_to_stop();
        }
        for (_, processor) in self.channels {
            processor.stop().await;
        }
    }
}

async fn run(
    pipeline: Arc<ChannelPipeline>,
    store: Store,
    delivery: Arc<Delivery>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    stopping: Arc<AtomicBool>,
    states: Arc<ChannelStates>,
) {
    let channel = pipeline.channel.clone();
    loop {
        if *stop.borrow() {
            break;
        }
        if states.holds(&channel) {
            // Paused or stopped by an operator: messages wait `received`, in order;
            // starting the channel wakes this task.
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = stop.changed() => {}
            }
            continue;
        }
        // One trip to the blocking pool per batch: read, decide and write there.
        let (worker, store, stopping) = (pipeline.clone(), store.clone(), stopping.clone());
        let round =
            match tokio::task::spawn_blocking(move || process_batch(&worker, &store, &stopping))
                .await
            {
                Ok(round) => round,
                Err(err) => {
                    // `decide` catches panics; this is the runtime shutting down.
                    warn!(%channel, error = %err, "processing stopped");
                    break;
                }
            };
        let pause = match round {
            Round::Processed(count) => {
                debug!(%channel, messages = count, "processed");
                delivery.wake(&channel);
                if let Some(alerts) = &pipeline.after_write {
                    alerts.notify_one();
                }
                // Handed-over messages are in the receiving channels' journals now. A
                // receiving channel that is paused or stopped leaves them `received`.
                if let Some(wakes) = &pipeline.hand_over {
                    for to in pipeline.router.hands_to() {
                        wakes.wake(to);
                    }
                }
                continue;
            }
            Round::Idle => wake.notified(),
            Round::ReadFailed(err) => {
                error!(%channel, error = %err, "reading messages to process failed");
                continue_after_error(&mut stop).await;
                continue;
            }
            Round::WriteFailed(count, err) => {
                // Nothing of the batch was written: its messages are still `received`
                // and are taken again.
                error!(%channel, messages = count, error = %err, "recording processed messages failed; retrying");
                continue_after_error(&mut stop).await;
                continue;
            }
        };
        tokio::select! {
            _ = pause => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn continue_after_error(stop: &mut watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(IDLE_POLL) => {}
        _ = stop.changed() => {}
    }
}

/// What one batch of a processor came to.
pub(crate) enum Round {
    /// Nothing was waiting.
    Idle,
    /// This many messages were processed and their outcomes committed.
    Processed(usize),
    /// Reading the waiting messages failed.
    ReadFailed(store::Error),
    /// The batch of this many messages could not be written.
    WriteFailed(usize, store::Error),
}

/// Reads a batch of `received` messages, decides them and writes the outcome; runs on
/// the blocking pool (it waits for the writer).
pub(crate) fn process_batch(
    pipeline: &ChannelPipeline,
    store: &Store,
    stopping: &AtomicBool,
) -> Round {
    let pending = match store.read(|conn| read_pending(conn, &pipeline.channel)) {
        Ok(pending) => pending,
        Err(err) => return Round::ReadFailed(err),
    };
    if pending.is_empty() {
        return Round::Idle;
    }
    let decided = pipeline.decide_batch(pending, stopping);
    let count = decided.len();
    let ids: Vec<i64> = match pipeline.recent {
        Some(_) => decided.iter().map(|d| d.id.0).collect(),
        None => Vec::new(),
    };
    // Unsynced: the messages were synced when they were received. A power loss that
    // takes this write leaves them `received`, and they are processed again.
    match store
        .write_unsynced(move |conn| write_batch(conn, decided))
        .wait()
    {
        Ok(written) => {
            // Committed: what the batch wrote is in the store for the messages after it.
            if let Some(recent) = &pipeline.recent {
                recent.forget(&ids);
            }
            let now = UnixMicros::now();
            for w in &written {
                pipeline
                    .metrics
                    .observe_processed(w.state, now, w.received_at);
            }
            Round::Processed(count)
        }
        Err(err) => Round::WriteFailed(count, err),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use store::{Journal, MessageState, NewMessage, Store, UnixMicros};

    use super::{ChannelPipeline, Round, Services, process_batch};
    use crate::config::Config;

    fn result(n: usize) -> String {
        format!(
            "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20261207100000||ORU^R01^ORU_R01|C{n}|P|2.5.1\r\
             PID|1||MRN1^^^HOSP^MR||DOE^JANE\r\
             OBR|1||F1|2823-3^Potassium^LN|||20261207100000\r\
             OBX|1|NM|2823-3^Potassium^LN||4.2|mmol/L|3.5-5.1|N|||F|||20261207100000\r"
        )
    }

    fn received(n: usize) -> NewMessage {
        NewMessage {
            channel: Arc::from("lab"),
            raw: bytes::Bytes::from(result(n)),
            received_at: UnixMicros::now(),
            peer: Arc::from("test"),
            tls_identity: None,
            sending_application: "LAB".to_owned(),
            sending_facility: "HOSP".to_owned(),
            message_type: "ORU^R01^ORU_R01".to_owned(),
            control_id: format!("C{n}"),
            version: "2.5.1".to_owned(),
            state: MessageState::Received,
            state_reason: None,
        }
    }

    /// A patient with a steady stream of results: once a batch is written, the rules
    /// stage keeps nothing of it, so a later message reads the record from the store
    /// instead of laying every earlier message's resources over it again (before, each
    /// patient's newest 64 messages were kept and laid over every message after them).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn written_batches_leave_nothing_for_the_rules_to_lay_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        crate::intake::migrate(&store).await.unwrap();
        delivery::migrate(&store).await.unwrap();
        fhir_repo::migrate(&store).await.unwrap();
        rules::stored::migrate(&store).await.unwrap();
        let config = Config::from_toml(
            "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\nfhir = { repository = true }\n",
        )
        .unwrap();
        let recent = crate::stages::rules::Recent::new();
        let rules = crate::stages::rules::RulesContext {
            section: config.rules.clone(),
            base_dir: config.base_dir.clone(),
            store: store.clone(),
            recent: recent.clone(),
            output: None,
        };
        let terminology = crate::terminology_service::open(&config, &store)
            .await
            .unwrap();
        let pipeline = ChannelPipeline::build(
            "lab",
            &config.channels["lab"],
            &config,
            &Default::default(),
            Services {
                patient_index: None,
                rules: Some(&rules),
                terminology: terminology.shared(),
            },
            Default::default(),
        )
        .unwrap();
        let pipeline = Arc::new(pipeline);
        let mut sent = 0;
        for batch in 0..12 {
            for _ in 0..8 {
                let message = received(sent);
                sent += 1;
                store
                    .write(move |conn| Journal::append_in(conn, &message, None).map(drop))
                    .await
                    .unwrap();
            }
            let (worker, worker_store) = (pipeline.clone(), store.clone());
            let round = tokio::task::spawn_blocking(move || {
                process_batch(&worker, &worker_store, &AtomicBool::new(false))
            })
            .await
            .unwrap();
            assert!(matches!(round, Round::Processed(8)), "batch {batch}");
            assert_eq!(recent.kept(), 0, "kept after batch {batch}");
        }
        let processed: i64 = store
            .read(|conn| {
                Ok(conn.query_row(
                    "SELECT count(*) FROM journal WHERE state = 'processed'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(processed, sent as i64);
        drop(terminology);
        tokio::task::spawn_blocking(move || drop(store))
            .await
            .unwrap();
    }
}
