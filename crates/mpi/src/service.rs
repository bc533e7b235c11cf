//! The index as Corridor runs it: one in-memory [`Mpi`] shared by the engine's
//! pipeline, the HTTP API and the bulk loader, made durable in the store.
//!
//! Every operation runs under one lock and hands back the events it produced; the
//! caller persists them, either in a write of its own ([`MpiService::operate`]) or
//! inside a write already open ([`MpiService::persist_in`], as the engine does in the
//! transaction that records a message processed).
//!
//! **The stored log is always a gap-free prefix of the index's events.** The index
//! changes when a message is decided, but its events reach the store later, in the
//! write of that message's batch; several channels write their batches in any order,
//! and a message whose own write fails is rolled back alone. So the service keeps
//! every event until the store has committed it, and [`MpiService::persist_in`] writes
//! *all* events the store lacks, in sequence order, not only the caller's. A crash
//! therefore never leaves a hole in the log (a hole would stop the index from being
//! rebuilt): at worst the store holds the events of a message not yet recorded
//! processed, which is processed again after the restart and changes nothing (the
//! same PID updates the same source record; a merge already done is skipped).
//!
//! One process at a time owns an index: opening takes an exclusive lock on
//! `<database>.mpi.lock` beside the database, so `corridor mpi load` refuses to run
//! against the data directory of a running engine instead of writing a second history.

use crate::hl7::{MappingError, MessageAction};
use crate::persist;
use crate::{
    Actor, EnterpriseId, EventSink, MatchModel, MatcherConfig, Mpi, MpiError, MpiEvent,
    SurvivorshipRules,
};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use store::Store;
use store::rusqlite::Connection;

/// After this many new events the service asks the store which it has committed and
/// forgets those.
const FORGET_EVERY: usize = 4096;

/// `[mpi]` in the engine's configuration. Missing keys take their defaults; unknown
/// keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MpiConfig {
    /// Run the patient index stage on every channel's messages with a PID.
    pub enabled: bool,
    /// Score (bits of evidence) at or above which a record links.
    pub link_threshold: f64,
    /// Score at or above which (below `link_threshold`) a record waits for review.
    pub review_threshold: f64,
    /// Blocks larger than this are not used for look-ups.
    pub max_block_size: usize,
    /// The FHIR identifier system of enterprise ids (added to the FHIR Patient).
    pub enterprise_system: String,
    /// The base of the identifier systems of authorities that are neither OIDs nor
    /// URIs (`{base}/HOSP`): the systems the index answers with and is asked by,
    /// made as the FHIR conversion makes them ([`crate::identity`]). A channel's
    /// `fhir.identifier_base` must be the same.
    pub identifier_base: String,
    /// Source systems, most trusted first, for golden records.
    pub source_trust: Vec<String>,
}

impl Default for MpiConfig {
    fn default() -> Self {
        let m = MatcherConfig::default();
        MpiConfig {
            enabled: false,
            link_threshold: m.link_threshold,
            review_threshold: m.review_threshold,
            max_block_size: m.max_block_size,
            enterprise_system: "urn:corridor:mpi".to_string(),
            identifier_base: crate::identity::DEFAULT_BASE.to_string(),
            source_trust: Vec::new(),
        }
    }
}

impl MpiConfig {
    /// The matcher settings these keys give (history is read from the store, not kept
    /// in memory).
    pub fn matcher(&self) -> MatcherConfig {
        MatcherConfig {
            link_threshold: self.link_threshold,
            review_threshold: self.review_threshold,
            max_block_size: self.max_block_size,
            keep_history: false,
            ..MatcherConfig::default()
        }
    }

    pub fn check(&self) -> Result<(), MpiError> {
        let base = &self.identifier_base;
        if !base.contains(':') || base.trim() != base || base.ends_with('/') {
            return Err(MpiError::InvalidConfig(format!(
                "identifier_base {base:?} is not an absolute URI without a trailing slash (e.g. \"https://id.example.org\")"
            )));
        }
        self.matcher().check()
    }

    /// The FHIR identifier system of a source or authority name (`HOSP` is
    /// `urn:corridor:id/HOSP`).
    pub fn system_of(&self, name: &str) -> String {
        crate::identity::system_of(name, &self.identifier_base)
    }

    /// The source or authority name of a FHIR identifier system; a name given
    /// as it is (`HOSP`) stays itself.
    pub fn name_of(&self, system: &str) -> String {
        crate::identity::name_of(system, &self.identifier_base)
    }
}

/// Collects the events of the operation in progress.
#[derive(Clone, Default)]
struct Pending(Arc<Mutex<Vec<MpiEvent>>>);

impl Pending {
    fn take(&self) -> Vec<MpiEvent> {
        std::mem::take(&mut *lock(&self.0))
    }
}

impl EventSink for Pending {
    fn append(&mut self, event: &MpiEvent) {
        lock(&self.0).push(event.clone());
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What went wrong in a service operation.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error(transparent)]
    Index(#[from] MpiError),
    #[error(transparent)]
    Mapping(#[from] MappingError),
    #[error("patient index storage: {0}")]
    Store(#[from] store::Error),
    #[error(
        "the patient index of {0} is in use by another process (a running `corridor run`?); stop it first"
    )]
    InUse(PathBuf),
    #[error("cannot lock the patient index at {0}: {1}")]
    Lock(PathBuf, String),
}

/// What one message did to the index.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The enterprise patient the message's PID belongs to now, or why the index
    /// refused part of what the message asked (e.g. an A37 for a merge that moved on).
    pub result: Result<EnterpriseId, MpiError>,
    /// The events to persist, in order: also those of the steps done before a refusal.
    pub events: Vec<MpiEvent>,
}

/// Events of the index the store may not hold yet, oldest first.
#[derive(Default)]
struct Unsaved {
    events: VecDeque<MpiEvent>,
    /// Events remembered since the store was last asked what it committed.
    since_forget: usize,
}

struct Shared {
    index: Mutex<Mpi>,
    pending: Pending,
    unsaved: Mutex<Unsaved>,
    /// Holds the exclusive lock on `<database>.mpi.lock` while the service lives.
    _lock: Mutex<Connection>,
    store: Store,
    rules: SurvivorshipRules,
    config: MpiConfig,
}

/// The shared, durable index. Cloning is cheap.
#[derive(Clone)]
pub struct MpiService {
    shared: Arc<Shared>,
}

impl MpiService {
    /// Creates or upgrades the tables and rebuilds the index from the store (blocking;
    /// for async callers see [`MpiService::open`]).
    pub fn open_blocking(store: Store, config: MpiConfig) -> Result<MpiService, ServiceError> {
        config.check()?;
        let lock = lock_file(&store)?;
        store
            .migrate_component(persist::COMPONENT, persist::MIGRATIONS)
            .wait()?;
        let index = store
            .read(|conn| persist::load_index(conn, config.matcher(), MatchModel::default()))?;
        Ok(MpiService::from_index(store, config, index, lock))
    }

    /// [`MpiService::open_blocking`] for async callers (the replay runs on the blocking
    /// pool).
    pub async fn open(store: Store, config: MpiConfig) -> Result<MpiService, ServiceError> {
        config.check()?;
        let lock = lock_file(&store)?;
        store
            .migrate_component(persist::COMPONENT, persist::MIGRATIONS)
            .await?;
        let s = store.clone();
        let c = config.matcher();
        let index = tokio::task::spawn_blocking(move || {
            s.read(|conn| persist::load_index(conn, c, MatchModel::default()))
        })
        .await
        .map_err(|e| store::Error::ReadPanicked(e.to_string()))??;
        Ok(MpiService::from_index(store, config, index, lock))
    }

    fn from_index(store: Store, config: MpiConfig, mut index: Mpi, lock: Connection) -> MpiService {
        let pending = Pending::default();
        index.set_event_sink(Box::new(pending.clone()));
        let rules = SurvivorshipRules {
            source_trust: config.source_trust.clone(),
            ..SurvivorshipRules::default()
        };
        MpiService {
            shared: Arc::new(Shared {
                index: Mutex::new(index),
                pending,
                unsaved: Mutex::new(Unsaved::default()),
                _lock: Mutex::new(lock),
                store,
                rules,
                config,
            }),
        }
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    pub fn config(&self) -> &MpiConfig {
        &self.shared.config
    }

    /// The FHIR identifier system of a source or authority name ([`MpiConfig::system_of`]).
    pub fn system_of(&self, name: &str) -> String {
        self.shared.config.system_of(name)
    }

    /// The source or authority name of a FHIR identifier system ([`MpiConfig::name_of`]).
    pub fn name_of(&self, system: &str) -> String {
        self.shared.config.name_of(system)
    }

    pub fn rules(&self) -> &SurvivorshipRules {
        &self.shared.rules
    }

    /// Reads the index under its lock.
    pub fn read<T>(&self, f: impl FnOnce(&Mpi) -> T) -> T {
        f(&lock(&self.shared.index))
    }

    /// Runs `f` on the index and returns its result with the events it produced, which
    /// the caller must persist: with [`MpiService::persist_in`] (which writes them and
    /// any earlier ones the store lacks), or, for a single writer such as the bulk
    /// loader, [`crate::persist::append_events_in`].
    pub fn with_index<T>(&self, f: impl FnOnce(&mut Mpi) -> T) -> (T, Vec<MpiEvent>) {
        let mut index = lock(&self.shared.index);
        let out = f(&mut index);
        let events = self.shared.pending.take();
        self.remember(&events);
        (out, events)
    }

    /// Keeps `events` until the store has committed them.
    fn remember(&self, events: &[MpiEvent]) {
        if events.is_empty() {
            return;
        }
        let forget = {
            let mut unsaved = lock(&self.shared.unsaved);
            unsaved.events.extend(events.iter().cloned());
            unsaved.since_forget += events.len();
            unsaved.since_forget >= FORGET_EVERY
        };
        if forget {
            self.forget_saved();
        }
    }

    /// Drops the events the store has committed (asked on a read connection, which
    /// sees committed writes only).
    fn forget_saved(&self) {
        let Ok(saved) = self.shared.store.read(last_seq) else {
            // Asked again after the next events.
            return;
        };
        let mut unsaved = lock(&self.shared.unsaved);
        unsaved.since_forget = 0;
        while unsaved.events.front().is_some_and(|e| e.seq <= saved) {
            unsaved.events.pop_front();
        }
    }

    /// Writes, inside a write already open, every event of the index that the store
    /// does not hold yet, in sequence order: the caller's and any earlier ones whose
    /// own write has not come (another channel's batch) or was rolled back. Events a
    /// later call finds stored are skipped, so each is written once.
    pub fn persist_in(&self, conn: &Connection) -> store::Result<()> {
        let stored = last_seq(conn)?;
        let mut unsaved = lock(&self.shared.unsaved);
        let events = unsaved.events.make_contiguous();
        let start = events.partition_point(|e| e.seq <= stored);
        let todo = &events[start..];
        if let Some(first) = todo.first()
            && first.seq != stored + 1
        {
            return Err(store::Error::Refused(format!(
                "patient index: the store holds events up to {stored} but the next one kept is {}; another process wrote this index",
                first.seq
            )));
        }
        persist::append_events_in(conn, todo)
    }

    /// How many events the service holds that the store may not have committed.
    pub fn unsaved_events(&self) -> usize {
        lock(&self.shared.unsaved).events.len()
    }

    /// Runs `f` on the index and persists its events; resolves once they are durable.
    pub async fn operate<T>(
        &self,
        f: impl FnOnce(&mut Mpi) -> Result<T, MpiError>,
    ) -> Result<T, ServiceError> {
        let (out, write) = self.run_and_queue(f);
        if let Some(write) = write {
            write.await?;
        }
        Ok(out?)
    }

    /// [`MpiService::operate`] for callers outside an async runtime.
    pub fn operate_blocking<T>(
        &self,
        f: impl FnOnce(&mut Mpi) -> Result<T, MpiError>,
    ) -> Result<T, ServiceError> {
        let (out, write) = self.run_and_queue(f);
        if let Some(write) = write {
            write.wait()?;
        }
        Ok(out?)
    }

    /// Runs `f` under the index's lock and queues the write of the events it made (none
    /// if it made none); the caller waits for the write as its context allows.
    fn run_and_queue<T>(
        &self,
        f: impl FnOnce(&mut Mpi) -> Result<T, MpiError>,
    ) -> (Result<T, MpiError>, Option<store::WriteFuture<()>>) {
        let mut index = lock(&self.shared.index);
        let out = f(&mut index);
        let events = self.shared.pending.take();
        self.remember(&events);
        let write = (!events.is_empty()).then(|| {
            let service = self.clone();
            self.shared
                .store
                .write(move |conn| service.persist_in(conn))
        });
        (out, write)
    }

    /// Stores the model in use (e.g. after estimating it on a bulk load) and scores
    /// with it from now on.
    pub fn set_model_blocking(&self, model: MatchModel) -> Result<(), ServiceError> {
        lock(&self.shared.index).set_model(model.clone())?;
        self.shared
            .store
            .write(move |conn| persist::save_model_in(conn, &model))
            .wait()?;
        Ok(())
    }

    /// Whether a model was stored (estimated on this site's data).
    pub fn has_stored_model(&self) -> Result<bool, ServiceError> {
        Ok(self.shared.store.read(persist::load_model)?.is_some())
    }

    /// Applies what one message asks (see [`crate::hl7::action_of`]); `control_id`
    /// and `event` (the trigger, e.g. `A40`) name the message in the history. The events
    /// are returned to persist in the caller's transaction.
    pub fn apply_message(&self, action: MessageAction, control_id: &str, event: &str) -> Applied {
        let (result, events) = self.with_index(|mpi| apply(mpi, action, control_id, event));
        Applied { result, events }
    }
}

fn apply(
    mpi: &mut Mpi,
    action: MessageAction,
    control_id: &str,
    event: &str,
) -> Result<EnterpriseId, MpiError> {
    let actor = || Actor::Message {
        control_id: control_id.to_string(),
    };
    match action {
        MessageAction::Ingest(record) => {
            let d = mpi.ingest(record)?;
            mpi.current_enterprise(d.enterprise)
        }
        MessageAction::Merge { survivor, retired } => {
            let key = survivor.key();
            mpi.ingest(survivor)?;
            for old in retired {
                if old == key || mpi.is_active(&old) != Some(true) {
                    // Never seen, or merged already (a message sent again): nothing to do.
                    continue;
                }
                mpi.merge_source_records(
                    &key,
                    &old,
                    actor(),
                    &format!("ADT^{event}: MRG-1 {old} merged into PID-3 {key}"),
                )?;
            }
            let e = mpi
                .enterprise_of(&key)
                .ok_or(MpiError::UnknownRecord(key))?;
            mpi.current_enterprise(e)
        }
        MessageAction::Unmerge { survivor, retired } => {
            let key = survivor.key();
            mpi.ingest(survivor)?;
            for old in retired {
                if let Some(seq) = mpi
                    .merge_retiring(&old)
                    .or_else(|| mpi.merge_involving(&old))
                {
                    mpi.unmerge(
                        seq,
                        actor(),
                        &format!("ADT^{event}: merge of {old} into {key} undone"),
                    )?;
                } else if mpi.enterprise_of(&old).is_some()
                    && mpi.enterprise_of(&old) == mpi.enterprise_of(&key)
                {
                    mpi.unlink(
                        &old,
                        actor(),
                        &format!("ADT^{event}: {old} unlinked from {key}"),
                    )?;
                }
            }
            let e = mpi
                .enterprise_of(&key)
                .ok_or(MpiError::UnknownRecord(key))?;
            mpi.current_enterprise(e)
        }
    }
}

/// The last event the store holds (0 for none).
fn last_seq(conn: &Connection) -> store::Result<u64> {
    let seq: i64 = conn.query_row("SELECT coalesce(max(seq), 0) FROM mpi_events", [], |r| {
        r.get(0)
    })?;
    Ok(seq as u64)
}

/// Takes the exclusive lock on `<database>.mpi.lock` (an SQLite file kept in an open
/// exclusive transaction, so the lock is SQLite's own, between processes and between
/// connections of one process), held while the service lives.
fn lock_file(store: &Store) -> Result<Connection, ServiceError> {
    let mut name = store.path().as_os_str().to_owned();
    name.push(".mpi.lock");
    let path = PathBuf::from(name);
    let failed = |e: store::rusqlite::Error| ServiceError::Lock(path.clone(), e.to_string());
    let conn = Connection::open(&path).map_err(failed)?;
    conn.busy_timeout(std::time::Duration::ZERO)
        .map_err(failed)?;
    match conn.execute_batch("PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;") {
        Ok(()) => Ok(conn),
        Err(e) if e.sqlite_error_code() == Some(store::rusqlite::ErrorCode::DatabaseBusy) => {
            Err(ServiceError::InUse(path))
        }
        Err(e) => Err(failed(e)),
    }
}
