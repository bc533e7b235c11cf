//! The index itself: source records, their enterprise patients, the matcher that places
//! each incoming record, and the person-driven operations (link, unlink, merge, unmerge,
//! review) with their history.
//!
//! One type, [`Mpi`], with its work split by job: `matching.rs` places an incoming
//! record, `stewardship.rs` holds the operations a person or a message decides,
//! `changes.rs` applies every change as an event (the one way the index changes, so a
//! replay of the log rebuilds it), `queries.rs` reads it. `config.rs` is the matcher's
//! settings.

mod changes;
mod config;
mod matching;
mod queries;
mod stewardship;

pub use config::{MatcherConfig, SsnRule};

use crate::MpiError;
use crate::compare::Features;
use crate::events::{EnterpriseId, EventSink, LinkStatus, MatchExplanation, MpiEvent};
use crate::guard::Guard;
use crate::index::{BlockKey, Blocks, PostingMap, TermFrequencies};
use crate::intern::{Interner, Sym};
use crate::model::{
    MatchModel, TrainingOptions, TrainingReport, WeightTable, estimate_from_features,
};
use crate::record::{Sex, SourceKey};
use hashbrown::HashMap;

use std::collections::BTreeMap;

/// Raw values as the source sent them, interned, for golden records and exports.
#[derive(Debug, Clone, Copy, Default)]
struct RawValues {
    family: Sym,
    given: Sym,
    middle: Sym,
    suffix: Sym,
    birth_date: Sym,
    street: Sym,
    street2: Sym,
    city: Sym,
    state: Sym,
    postcode: Sym,
    country: Sym,
    phone: Sym,
    ssn: Sym,
}

type QualifiedId = (Sym, Sym, Sym);

struct StoredRecord {
    source: Sym,
    id: Sym,
    identifiers: Box<[QualifiedId]>,
    raw: RawValues,
    sex: Option<Sex>,
    features: Features,
    enterprise: EnterpriseId,
    status: LinkStatus,
    /// Decided by a person or a message: the matcher never moves it.
    pinned: bool,
    /// False once merged away by an A40: kept for look-ups, never matched against.
    active: bool,
    /// Event sequence of the last change to its data (recency for golden records).
    updated_seq: u64,
}

#[derive(Debug, Clone, Default)]
struct Enterprise {
    records: Vec<u32>,
    merged_into: Option<EnterpriseId>,
}

/// A record the matcher could not decide, waiting for a person.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewItem {
    /// The sequence number of the event that opened it.
    pub id: u64,
    pub record: SourceKey,
    /// The enterprise patient the record was given meanwhile.
    pub provisional: EnterpriseId,
    /// The safety guard that sent it here instead of linking it, if one did.
    pub guard: Option<Guard>,
    pub candidates: Vec<MatchExplanation>,
}

#[derive(Debug, Clone)]
struct MergeUndo {
    survivor: EnterpriseId,
    merged: EnterpriseId,
    moved: Vec<u32>,
    prior_status: Vec<LinkStatus>,
    retired: Option<u32>,
    undone: bool,
}

/// Sizes of the index's parts, for memory reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    pub source_records: usize,
    pub enterprises: usize,
    pub interned_strings: usize,
    pub approx_heap_bytes: usize,
}

/// The master patient index.
pub struct Mpi {
    config: MatcherConfig,
    model: MatchModel,
    weights: WeightTable,
    interner: Interner,
    records: Vec<StoredRecord>,
    by_key: HashMap<(Sym, Sym), u32>,
    identifiers: PostingMap<QualifiedId>,
    blocks: Blocks,
    tf: TermFrequencies,
    enterprises: Vec<Enterprise>,
    reviews: BTreeMap<u64, ReviewItem>,
    /// The open review of a record, so closing one does not scan them all.
    review_of: HashMap<u32, u64>,
    merges: HashMap<u64, MergeUndo>,
    seq: u64,
    history: Vec<MpiEvent>,
    sink: Option<Box<dyn EventSink>>,
    scratch_keys: Vec<BlockKey>,
    scratch_candidates: Vec<u32>,
    /// Features `ingest` already computed for the record it is about to apply, so
    /// they are not computed twice.
    prepared: Option<(SourceKey, Features)>,
    /// Every identifier type code seen, so an identifier given as `system|value`
    /// (without its type) can be looked up.
    identifier_types: Vec<Sym>,
}

impl Mpi {
    pub fn new(config: MatcherConfig, model: MatchModel) -> Result<Mpi, MpiError> {
        config.check()?;
        model.check()?;
        Ok(Mpi {
            weights: model.weight_table(),
            config,
            model,
            interner: Interner::new(),
            records: Vec::new(),
            by_key: HashMap::new(),
            identifiers: PostingMap::default(),
            blocks: Blocks::default(),
            tf: TermFrequencies::default(),
            enterprises: Vec::new(),
            reviews: BTreeMap::new(),
            review_of: HashMap::new(),
            merges: HashMap::new(),
            seq: 0,
            history: Vec::new(),
            sink: None,
            scratch_keys: Vec::new(),
            scratch_candidates: Vec::new(),
            prepared: None,
            identifier_types: Vec::new(),
        })
    }

    /// Sends every future event to `sink` as well (e.g. a store that persists them).
    pub fn set_event_sink(&mut self, sink: Box<dyn EventSink>) {
        self.sink = Some(sink);
    }

    /// Rebuilds an index from its event log, without re-running the matcher. Sequence
    /// numbers must increase; a missing one is skipped.
    pub fn replay(
        config: MatcherConfig,
        model: MatchModel,
        events: impl IntoIterator<Item = MpiEvent>,
    ) -> Result<Mpi, MpiError> {
        let mut mpi = Mpi::new(config, model)?;
        for event in events {
            // Gaps are allowed: a store may hold the events of a later operation
            // while an earlier one's write never committed (the engine then processes
            // that message again, as new events).
            if event.seq <= mpi.seq {
                return Err(MpiError::Replay(format!(
                    "event {} follows event {}: the log is out of order",
                    event.seq, mpi.seq
                )));
            }
            mpi.seq = event.seq;
            mpi.apply(&event.change, event.seq)?;
            if mpi.config.keep_history {
                mpi.history.push(event);
            }
        }
        Ok(mpi)
    }

    pub fn config(&self) -> &MatcherConfig {
        &self.config
    }

    pub fn model(&self) -> &MatchModel {
        &self.model
    }

    /// Replaces the model (e.g. after [`Mpi::estimate_model`]); decisions already made
    /// stay as they are.
    pub fn set_model(&mut self, model: MatchModel) -> Result<(), MpiError> {
        model.check()?;
        self.weights = model.weight_table();
        self.model = model;
        Ok(())
    }

    /// Estimates a model from the records already indexed (unlabelled, EM).
    pub fn estimate_model(&self, options: &TrainingOptions) -> (MatchModel, TrainingReport) {
        let features: Vec<Features> = self
            .records
            .iter()
            .filter(|r| r.active)
            .map(|r| r.features)
            .collect();
        estimate_from_features(&features, &self.interner, options)
    }
}

fn ent_index(id: EnterpriseId) -> usize {
    (id.0 as usize).saturating_sub(1)
}

fn ent_index_checked(id: EnterpriseId) -> Option<usize> {
    (id.0 as usize).checked_sub(1)
}
