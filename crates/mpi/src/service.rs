//! The index as Corridor runs it: one in-memory [`Mpi`] shared by the engine's
//! pipeline, the HTTP API and the bulk loader, made durable in the store.
//!
//! Every operation runs under one lock and hands back the events it produced; the
//! caller persists them, either in a write of its own ([`MpiService::operate`]) or
//! inside a write already open ([`crate::persist::append_events_in`], as the engine
//! does in the transaction that records a message processed).

use crate::hl7::{MappingError, MessageAction};
use crate::persist;
use crate::{
    Actor, EnterpriseId, EventSink, MatchModel, MatcherConfig, Mpi, MpiError, MpiEvent,
    SurvivorshipRules,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, MutexGuard};
use store::Store;

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
        self.matcher().check()
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

struct Shared {
    index: Mutex<Mpi>,
    pending: Pending,
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
        store
            .migrate_component(persist::COMPONENT, persist::MIGRATIONS)
            .wait()?;
        let index = store
            .read(|conn| persist::load_index(conn, config.matcher(), MatchModel::default()))?;
        Ok(MpiService::from_index(store, config, index))
    }

    /// [`MpiService::open_blocking`] for async callers (the replay runs on the blocking
    /// pool).
    pub async fn open(store: Store, config: MpiConfig) -> Result<MpiService, ServiceError> {
        config.check()?;
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
        Ok(MpiService::from_index(store, config, index))
    }

    fn from_index(store: Store, config: MpiConfig, mut index: Mpi) -> MpiService {
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

    pub fn rules(&self) -> &SurvivorshipRules {
        &self.shared.rules
    }

    /// Reads the index under its lock.
    pub fn read<T>(&self, f: impl FnOnce(&Mpi) -> T) -> T {
        f(&lock(&self.shared.index))
    }

    /// Runs `f` on the index and returns its result with the events it produced, which
    /// the caller must persist (e.g. with [`crate::persist::append_events_in`]).
    pub fn with_index<T>(&self, f: impl FnOnce(&mut Mpi) -> T) -> (T, Vec<MpiEvent>) {
        let mut index = lock(&self.shared.index);
        let out = f(&mut index);
        (out, self.shared.pending.take())
    }

    /// Runs `f` on the index and persists its events; resolves once they are durable.
    pub async fn operate<T>(
        &self,
        f: impl FnOnce(&mut Mpi) -> Result<T, MpiError>,
    ) -> Result<T, ServiceError> {
        let (out, write) = {
            let mut index = lock(&self.shared.index);
            let out = f(&mut index);
            let events = self.shared.pending.take();
            // Queued under the lock, so writes reach the store in event order.
            let write = (!events.is_empty()).then(|| {
                self.shared
                    .store
                    .write(move |conn| persist::append_events_in(conn, &events))
            });
            (out, write)
        };
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
        let (out, write) = {
            let mut index = lock(&self.shared.index);
            let out = f(&mut index);
            let events = self.shared.pending.take();
            let write = (!events.is_empty()).then(|| {
                self.shared
                    .store
                    .write(move |conn| persist::append_events_in(conn, &events))
            });
            (out, write)
        };
        if let Some(write) = write {
            write.wait()?;
        }
        Ok(out?)
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
