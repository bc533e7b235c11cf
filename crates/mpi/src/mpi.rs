//! The index itself: source records, their enterprise patients, the matcher that places
//! each incoming record, and the person-driven operations (link, unlink, merge, unmerge,
//! review) with their history.

use crate::MpiError;
use crate::compare::{FIELD_COUNT, FIELDS, Features, Field, Levels, MISSING, compare};
use crate::events::{
    Actor, Change, Decision, DecisionReason, EnterpriseId, EventSink, FieldWeight, LinkStatus,
    MatchExplanation, MpiEvent, Outcome,
};
use crate::guard::{Guard, first_guard, names_the_person, two_people};
use crate::index::{BlockKey, Blocks, PostingMap, TermFrequencies, block_keys};
use crate::intern::{Interner, Sym};
use crate::model::{
    MatchModel, TrainingOptions, TrainingReport, WeightTable, estimate_from_features,
};
use crate::record::{Identifier, PatientRecord, Sex, SourceKey};
use hashbrown::HashMap;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// When an exact SSN match links deterministically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SsnRule {
    /// SSN only weighs in the probabilistic score.
    ScoreOnly,
    /// Same SSN links when birth date or family name also (nearly) agree: guards against
    /// a mistyped SSN that happens to be someone else's.
    Corroborated,
}

/// Matcher settings. Deserialisable (e.g. from a `[mpi]` TOML table); missing keys
/// take their defaults, unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatcherConfig {
    /// Score (bits) at or above which a record links to the best enterprise patient.
    pub link_threshold: f64,
    /// Score at or above which (and below `link_threshold`) a record goes to review.
    pub review_threshold: f64,
    /// Blocks with more records than this are not used for lookups.
    pub max_block_size: usize,
    pub ssn_rule: SsnRule,
    /// Keep every event in memory (for [`Mpi::history`]); off for bulk loads that
    /// persist through an [`EventSink`].
    pub keep_history: bool,
    /// Candidates explained in a decision.
    pub explained_candidates: usize,
    /// Merge enterprise patients that one incoming record links to both (as clustering
    /// by connected links would), unless a person or message decided on either.
    pub merge_bridged: bool,
}

impl Default for MatcherConfig {
    fn default() -> Self {
        MatcherConfig {
            link_threshold: 12.0,
            review_threshold: 4.0,
            max_block_size: 400,
            ssn_rule: SsnRule::Corroborated,
            keep_history: true,
            explained_candidates: 3,
            merge_bridged: true,
        }
    }
}

impl MatcherConfig {
    pub fn check(&self) -> Result<(), MpiError> {
        if self.review_threshold.is_nan()
            || self.link_threshold.is_nan()
            || self.review_threshold > self.link_threshold
        {
            return Err(MpiError::InvalidConfig(format!(
                "review_threshold ({}) must not exceed link_threshold ({})",
                self.review_threshold, self.link_threshold
            )));
        }
        if self.max_block_size == 0 {
            return Err(MpiError::InvalidConfig(
                "max_block_size must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

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

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// One candidate's comparison against the incoming record.
struct Scored {
    record: u32,
    levels: Levels,
    score: f64,
    /// What holds the pair back from an automatic link (asked only of pairs that could
    /// link: by score or by SSN).
    guard: Option<Guard>,
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

    // ----- matching -------------------------------------------------------------

    /// Places one incoming record: a record seen before (same source and id) is
    /// updated, a new one is linked, queued for review or made a new enterprise patient.
    pub fn ingest(&mut self, record: PatientRecord) -> Result<Decision, MpiError> {
        if record.source.trim().is_empty() || record.id.trim().is_empty() {
            return Err(MpiError::MissingKey);
        }
        let key = (
            self.interner.intern(&record.source),
            self.interner.intern(&record.id),
        );
        if let Some(&rid) = self.by_key.get(&key) {
            return self.update(rid, record);
        }
        let features = Features::from_record(&record, &mut self.interner);
        let mut decision = self.decide(&record, &features, None);
        if decision.outcome != Outcome::Link {
            decision.enterprise = EnterpriseId(self.enterprises.len() as u64 + 1);
        }
        let why = describe(&decision);
        self.prepared = Some((decision.record.clone(), features));
        self.commit(
            Actor::Matcher,
            why,
            Change::RecordAdded {
                record,
                decision: decision.clone(),
            },
        )?;
        if self.config.merge_bridged {
            self.merge_bridged(&decision)?;
        }
        Ok(decision)
    }

    /// Scores `record` against the index without changing anything (for `$match`).
    pub fn find_matches(&mut self, record: &PatientRecord) -> Decision {
        let features = Features::from_record(record, &mut self.interner);
        self.decide(record, &features, None)
    }

    /// Merges the enterprise patients an incoming record linked to at once.
    fn merge_bridged(&mut self, decision: &Decision) -> Result<(), MpiError> {
        for &other in &decision.bridged {
            let survivor = self.current_enterprise(decision.enterprise)?;
            let merged = self.current_enterprise(other)?;
            if survivor == merged || self.has_pinned(survivor) || self.has_pinned(merged) {
                continue;
            }
            let moved = self.enterprises[ent_index(merged)]
                .records
                .iter()
                .map(|&r| self.source_key(r))
                .collect();
            let why = format!("{} links to both {survivor} and {merged}", decision.record);
            self.commit(
                Actor::Matcher,
                why,
                Change::EnterprisesMerged {
                    survivor,
                    merged,
                    moved,
                    retired: None,
                    automatic: true,
                },
            )?;
        }
        Ok(())
    }

    fn has_pinned(&self, enterprise: EnterpriseId) -> bool {
        self.enterprises[ent_index(enterprise)]
            .records
            .iter()
            .any(|&r| self.records[r as usize].pinned)
    }

    fn update(&mut self, rid: u32, record: PatientRecord) -> Result<Decision, MpiError> {
        let stored = &self.records[rid as usize];
        let current = stored.enterprise;
        let alone = self.enterprises[ent_index(current)].records.len() == 1;
        let may_move =
            !stored.pinned && stored.active && alone && stored.status != LinkStatus::Review;
        let status = stored.status;
        let features = Features::from_record(&record, &mut self.interner);
        let mut decision = self.decide(&record, &features, Some(rid));
        let rematched = may_move && decision.outcome == Outcome::Link;
        let enterprise = if rematched {
            decision.enterprise
        } else {
            current
        };
        if !rematched {
            decision.enterprise = current;
            decision.outcome = match status {
                LinkStatus::Linked => Outcome::Link,
                LinkStatus::Review => Outcome::PossibleMatch,
                LinkStatus::New => Outcome::New,
            };
        }
        let why = if rematched {
            format!("updated record re-matched: {}", describe(&decision))
        } else {
            "updated record keeps its enterprise patient".to_string()
        };
        self.prepared = Some((decision.record.clone(), features));
        self.commit(
            Actor::Matcher,
            why,
            Change::RecordUpdated {
                record,
                enterprise,
                decision: rematched.then(|| decision.clone()),
            },
        )?;
        Ok(decision)
    }

    fn score(&self, levels: &Levels, incoming: &Features) -> f64 {
        self.field_weights(levels, incoming).iter().sum()
    }

    /// The weight of each field (0 where either side lacks it).
    fn field_weights(&self, levels: &Levels, incoming: &Features) -> [f64; FIELD_COUNT] {
        let mut weights = [0.0; FIELD_COUNT];
        for (f, &level) in levels.iter().enumerate() {
            if level != MISSING {
                weights[f] = self.field_weight(f, level, incoming);
            }
        }
        // A postcode names its town and state: once the postcode agrees, agreeing on
        // them too is no further evidence (counting it twice made neighbours match).
        if levels[Field::Postcode.index()] == 0 {
            for implied in [Field::City, Field::State] {
                weights[implied.index()] = weights[implied.index()].min(0.0);
            }
        }
        weights
    }

    fn field_weight(&self, f: usize, level: u8, incoming: &Features) -> f64 {
        let field = FIELDS[f];
        if level == 0 && field.term_frequency_adjusted() {
            let (count, total) = self.tf.frequency(field, incoming.tf_value(field));
            self.weights
                .exact_weight_with_frequency(f, count + 1, total + 1)
        } else {
            self.weights.level_weight(f, level)
        }
    }

    fn explain(&self, scored: &Scored, incoming: &Features) -> MatchExplanation {
        let stored = &self.records[scored.record as usize];
        let weights = self.field_weights(&scored.levels, incoming);
        let fields = FIELDS
            .iter()
            .enumerate()
            .filter(|(f, _)| scored.levels[*f] != MISSING)
            .map(|(f, field)| FieldWeight {
                field: *field,
                level: Cow::Borrowed(field.levels()[scored.levels[f] as usize]),
                weight: weights[f],
            })
            .collect();
        let prior_odds = self.model.prior / (1.0 - self.model.prior);
        let odds = prior_odds * scored.score.exp2();
        MatchExplanation {
            enterprise: stored.enterprise,
            candidate: self.source_key(scored.record),
            score: scored.score,
            match_probability: if odds.is_infinite() {
                1.0
            } else {
                odds / (1.0 + odds)
            },
            fields,
            guard: scored.guard,
        }
    }

    /// The safety guard that holds for the incoming record and candidate `rid`.
    fn pair_guard(
        &self,
        levels: &Levels,
        incoming: &Features,
        record: &PatientRecord,
        rid: u32,
    ) -> Option<Guard> {
        let stored = &self.records[rid as usize];
        first_guard(levels, incoming, &stored.features, &self.interner, || {
            self.identifiers_differ(record, stored)
        })
    }

    /// A guard saying that the chosen enterprise's best record and another enterprise
    /// that also reached the link threshold are two people.
    fn rival_guard(&self, best: &[&Scored], chosen: EnterpriseId) -> Option<Guard> {
        let enterprise = |s: &Scored| self.records[s.record as usize].enterprise;
        let chosen = best.iter().find(|s| enterprise(s) == chosen)?;
        let a = &self.records[chosen.record as usize];
        best.iter()
            .filter(|s| {
                s.score >= self.config.link_threshold
                    && s.guard.is_none()
                    && enterprise(s) != enterprise(chosen)
            })
            .find_map(|s| {
                let b = &self.records[s.record as usize];
                let levels = compare(&a.features, &b.features, &self.interner);
                two_people(&levels, &a.features, &b.features, &self.interner, || {
                    self.stored_identifiers_differ(a, b)
                })
            })
    }

    /// [`Mpi::identifiers_differ`] for two stored records.
    fn stored_identifiers_differ(&self, a: &StoredRecord, b: &StoredRecord) -> bool {
        let values = |r: &StoredRecord, authority: Sym, type_code: Sym| {
            r.identifiers
                .iter()
                .filter(move |&&(_, x, t)| x == authority && t == type_code)
                .map(|&(v, _, _)| v)
                .collect::<Vec<_>>()
        };
        a.identifiers
            .iter()
            .filter(|&&(_, _, t)| names_the_person(self.interner.resolve(t)))
            .any(|&(_, authority, type_code)| {
                let theirs = values(b, authority, type_code);
                !theirs.is_empty()
                    && !values(a, authority, type_code)
                        .iter()
                        .any(|v| theirs.contains(v))
            })
    }

    /// Both records carry identifiers of one authority and type that names the person,
    /// and no value in common.
    fn identifiers_differ(&self, record: &PatientRecord, stored: &StoredRecord) -> bool {
        let i = &self.interner;
        let ours = |authority: &str, type_code: &str, value: &str| {
            record.identifiers.iter().any(|x| {
                x.authority.trim() == authority
                    && x.type_code.trim() == type_code
                    && x.value.trim() == value
            })
        };
        record
            .identifiers
            .iter()
            .filter(|x| x.is_qualified() && names_the_person(&x.type_code))
            .any(|x| {
                let (authority, type_code) = (x.authority.trim(), x.type_code.trim());
                let mut theirs = stored
                    .identifiers
                    .iter()
                    .filter(|&&(_, a, t)| i.resolve(a) == authority && i.resolve(t) == type_code)
                    .peekable();
                theirs.peek().is_some()
                    && !theirs.any(|&(v, _, _)| ours(authority, type_code, i.resolve(v)))
            })
    }

    fn corroborated(levels: &Levels) -> bool {
        let birth = levels[Field::BirthDate.index()];
        let family = levels[Field::Family.index()];
        (birth != MISSING && birth <= 2) || (family != MISSING && family <= 1)
    }

    /// The matcher: identifiers first, then SSN, then the probabilistic score.
    fn decide(
        &mut self,
        record: &PatientRecord,
        features: &Features,
        exclude: Option<u32>,
    ) -> Decision {
        let key = record.key();
        // Deterministic: qualified identifiers.
        let mut by_identifier: Vec<(EnterpriseId, &Identifier)> = Vec::new();
        for ident in record.identifiers.iter().filter(|i| i.is_qualified()) {
            if let Some(q) = self.lookup_identifier(ident) {
                let mut rids = Vec::new();
                self.identifiers.extend_into(&q, &mut rids);
                {
                    for r in rids {
                        let s = &self.records[r as usize];
                        if Some(r) != exclude
                            && s.active
                            && !by_identifier.iter().any(|(e, _)| *e == s.enterprise)
                        {
                            by_identifier.push((s.enterprise, ident));
                        }
                    }
                }
            }
        }

        // Probabilistic candidates.
        let mut keys = std::mem::take(&mut self.scratch_keys);
        let mut candidates = std::mem::take(&mut self.scratch_candidates);
        keys.clear();
        candidates.clear();
        block_keys(features, &self.interner, &mut keys);
        self.blocks
            .candidates(&keys, self.config.max_block_size, &mut candidates);
        let mut scored: Vec<Scored> = Vec::with_capacity(candidates.len());
        for &c in &candidates {
            if Some(c) == exclude || !self.records[c as usize].active {
                continue;
            }
            let levels = compare(features, &self.records[c as usize].features, &self.interner);
            let score = self.score(&levels, features);
            let could_link = score >= self.config.link_threshold || levels[Field::Ssn.index()] == 0;
            let guard = could_link
                .then(|| self.pair_guard(&levels, features, record, c))
                .flatten();
            scored.push(Scored {
                record: c,
                levels,
                score,
                guard,
            });
        }
        let compared = scored.len();
        self.scratch_keys = keys;
        self.scratch_candidates = candidates;

        // Best record per enterprise patient, best first.
        scored.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
        let mut best: Vec<&Scored> = Vec::new();
        for s in &scored {
            let e = self.records[s.record as usize].enterprise;
            // Candidates are few: a linear scan beats hashing.
            if !best
                .iter()
                .any(|b| self.records[b.record as usize].enterprise == e)
            {
                best.push(s);
            }
        }
        // Any record of an enterprise with the same SSN counts, not only its best one.
        let mut ssn_hits: Vec<EnterpriseId> = Vec::new();
        if self.config.ssn_rule == SsnRule::Corroborated {
            for s in &scored {
                let e = self.records[s.record as usize].enterprise;
                if s.levels[Field::Ssn.index()] == 0
                    && Self::corroborated(&s.levels)
                    && s.guard.is_none()
                    && !ssn_hits.contains(&e)
                {
                    ssn_hits.push(e);
                }
            }
        }
        let explained = self.config.explained_candidates;
        let mut explanations: Vec<MatchExplanation> = best
            .iter()
            .take(explained)
            .map(|s| self.explain(s, features))
            .collect();
        let top_score = best.first().map(|s| s.score);

        let (outcome, enterprise, reason) = if by_identifier.len() == 1 {
            let (e, ident) = by_identifier[0];
            (
                Outcome::Link,
                e,
                DecisionReason::Identifier {
                    identifier: ident.clone(),
                },
            )
        } else if by_identifier.len() > 1 {
            // Make sure every enterprise named by the identifiers is in front of the reviewer.
            for &(e, _) in &by_identifier {
                if !explanations.iter().any(|x| x.enterprise == e) {
                    if let Some(s) = best
                        .iter()
                        .find(|s| self.records[s.record as usize].enterprise == e)
                    {
                        explanations.push(self.explain(s, features));
                    }
                }
            }
            (
                Outcome::PossibleMatch,
                EnterpriseId(0),
                DecisionReason::IdentifierConflict {
                    identifier: by_identifier[0].1.clone(),
                },
            )
        } else if ssn_hits.len() == 1 {
            (Outcome::Link, ssn_hits[0], DecisionReason::Ssn)
        } else if let Some(top) = top_score {
            let reason = DecisionReason::Score {
                best: top,
                link_threshold: self.config.link_threshold,
                review_threshold: self.config.review_threshold,
            };
            let top_enterprise = self.records[best[0].record as usize].enterprise;
            if let (true, Some(guard)) = (top >= self.config.link_threshold, best[0].guard) {
                let reason = DecisionReason::Guarded {
                    guard,
                    best: top,
                    link_threshold: self.config.link_threshold,
                    between_candidates: false,
                };
                (Outcome::PossibleMatch, EnterpriseId(0), reason)
            } else if top >= self.config.link_threshold {
                (Outcome::Link, top_enterprise, reason)
            } else if top >= self.config.review_threshold {
                (Outcome::PossibleMatch, EnterpriseId(0), reason)
            } else {
                (Outcome::New, EnterpriseId(0), reason)
            }
        } else {
            (Outcome::New, EnterpriseId(0), DecisionReason::NoCandidates)
        };
        // A record that reaches the link threshold with two patients the guards keep
        // apart (twins, and a record without a given name) could be either: a person
        // decides, and the two are never merged through it.
        let rival = match (outcome, &reason) {
            (Outcome::Link, DecisionReason::Ssn | DecisionReason::Score { .. }) => {
                self.rival_guard(&best, enterprise)
            }
            _ => None,
        };
        let (outcome, enterprise, reason) = match rival {
            Some(guard) => (
                Outcome::PossibleMatch,
                EnterpriseId(0),
                DecisionReason::Guarded {
                    guard,
                    best: top_score.unwrap_or_default(),
                    link_threshold: self.config.link_threshold,
                    between_candidates: true,
                },
            ),
            None => (outcome, enterprise, reason),
        };
        let bridged = if outcome == Outcome::Link {
            best.iter()
                .filter(|s| s.score >= self.config.link_threshold && s.guard.is_none())
                .map(|s| self.records[s.record as usize].enterprise)
                .filter(|e| *e != enterprise)
                .collect()
        } else {
            Vec::new()
        };
        Decision {
            bridged,
            record: key,
            outcome,
            enterprise,
            reason,
            candidates: explanations,
            compared,
        }
    }

    fn lookup_identifier(&self, ident: &Identifier) -> Option<QualifiedId> {
        Some((
            self.interner.get(ident.value.trim())?,
            self.interner.get(ident.authority.trim())?,
            self.interner.get(ident.type_code.trim())?,
        ))
    }

    // ----- person and message driven operations ---------------------------------

    /// Links a source record to an enterprise patient by a person's decision. The
    /// matcher will never move it again.
    pub fn link(
        &mut self,
        record: &SourceKey,
        to: EnterpriseId,
        actor: Actor,
        why: &str,
    ) -> Result<MpiEvent, MpiError> {
        let rid = self.record_id(record)?;
        let to = self.current_enterprise(to)?;
        let from = self.records[rid as usize].enterprise;
        if from == to {
            return Err(MpiError::AlreadyLinked(record.clone(), to));
        }
        self.commit(
            actor,
            why.to_string(),
            Change::RecordLinked {
                record: record.clone(),
                from,
                to,
            },
        )
    }

    /// Takes a source record out of its enterprise patient into a new one of its own.
    pub fn unlink(
        &mut self,
        record: &SourceKey,
        actor: Actor,
        why: &str,
    ) -> Result<MpiEvent, MpiError> {
        let rid = self.record_id(record)?;
        let from = self.records[rid as usize].enterprise;
        if self.enterprises[ent_index(from)].records.len() < 2 {
            return Err(MpiError::NothingToUnlink(record.clone()));
        }
        let to = EnterpriseId(self.enterprises.len() as u64 + 1);
        self.commit(
            actor,
            why.to_string(),
            Change::RecordUnlinked {
                record: record.clone(),
                from,
                to,
            },
        )
    }

    /// Merges enterprise patient `merged` into `survivor` (all its source records move).
    pub fn merge_enterprises(
        &mut self,
        survivor: EnterpriseId,
        merged: EnterpriseId,
        actor: Actor,
        why: &str,
    ) -> Result<MpiEvent, MpiError> {
        let survivor = self.current_enterprise(survivor)?;
        let merged = self.current_enterprise(merged)?;
        if survivor == merged {
            return Err(MpiError::SameEnterprise(survivor));
        }
        let moved = self.enterprises[ent_index(merged)]
            .records
            .iter()
            .map(|&r| self.source_key(r))
            .collect();
        self.commit(
            actor,
            why.to_string(),
            Change::EnterprisesMerged {
                survivor,
                merged,
                moved,
                retired: None,
                automatic: false,
            },
        )
    }

    /// ADT^A40 (and A34/A39) within one source: source record `retired` is merged into
    /// `survivor`. The retired record stops being matched against; if the two belonged
    /// to different enterprise patients, those are merged too.
    pub fn merge_source_records(
        &mut self,
        survivor: &SourceKey,
        retired: &SourceKey,
        actor: Actor,
        why: &str,
    ) -> Result<MpiEvent, MpiError> {
        let s = self.record_id(survivor)?;
        let r = self.record_id(retired)?;
        if s == r {
            return Err(MpiError::SameRecord(survivor.clone()));
        }
        if !self.records[r as usize].active {
            return Err(MpiError::AlreadyMerged(retired.clone()));
        }
        let survivor_ent = self.records[s as usize].enterprise;
        let merged_ent = self.records[r as usize].enterprise;
        let moved = if survivor_ent == merged_ent {
            Vec::new()
        } else {
            self.enterprises[ent_index(merged_ent)]
                .records
                .iter()
                .map(|&x| self.source_key(x))
                .collect()
        };
        self.commit(
            actor,
            why.to_string(),
            Change::EnterprisesMerged {
                survivor: survivor_ent,
                merged: merged_ent,
                moved,
                retired: Some(retired.clone()),
                automatic: false,
            },
        )
    }

    /// Undoes the merge recorded in event `merge_seq`: the moved source records go back
    /// to the merged enterprise patient and a retired source record is active again.
    pub fn unmerge(
        &mut self,
        merge_seq: u64,
        actor: Actor,
        why: &str,
    ) -> Result<MpiEvent, MpiError> {
        let undo = self
            .merges
            .get(&merge_seq)
            .ok_or(MpiError::UnknownMerge(merge_seq))?;
        if undo.undone {
            return Err(MpiError::AlreadyUndone(merge_seq));
        }
        for &r in &undo.moved {
            if self.records[r as usize].enterprise != undo.survivor {
                return Err(MpiError::UnmergeConflict {
                    merge_seq,
                    record: self.source_key(r),
                });
            }
        }
        let change = Change::Unmerged {
            merge_seq,
            survivor: undo.survivor,
            merged: undo.merged,
            moved: undo.moved.iter().map(|&r| self.source_key(r)).collect(),
            restored: undo.retired.map(|r| self.source_key(r)),
        };
        self.commit(actor, why.to_string(), change)
    }

    /// Records waiting for review, oldest first.
    pub fn reviews(&self) -> impl Iterator<Item = &ReviewItem> {
        self.reviews.values()
    }

    pub fn review(&self, id: u64) -> Option<&ReviewItem> {
        self.reviews.get(&id)
    }

    /// A reviewer confirms the record belongs to `to` (normally one of the candidates).
    pub fn accept_review(
        &mut self,
        id: u64,
        to: EnterpriseId,
        actor: Actor,
        why: &str,
    ) -> Result<MpiEvent, MpiError> {
        let item = self.reviews.get(&id).ok_or(MpiError::UnknownReview(id))?;
        let record = item.record.clone();
        let to = self.current_enterprise(to)?;
        let from = self.records[self.record_id(&record)? as usize].enterprise;
        self.commit(
            actor,
            why.to_string(),
            Change::ReviewAccepted {
                review: id,
                record,
                from,
                to,
            },
        )
    }

    /// A reviewer decides the record is a patient of its own.
    pub fn reject_review(
        &mut self,
        id: u64,
        actor: Actor,
        why: &str,
    ) -> Result<MpiEvent, MpiError> {
        let item = self.reviews.get(&id).ok_or(MpiError::UnknownReview(id))?;
        let record = item.record.clone();
        self.commit(
            actor,
            why.to_string(),
            Change::ReviewRejected { review: id, record },
        )
    }

    // ----- applying changes ------------------------------------------------------

    fn commit(&mut self, actor: Actor, why: String, change: Change) -> Result<MpiEvent, MpiError> {
        let seq = self.seq + 1;
        self.apply(&change, seq)?;
        self.seq = seq;
        let event = MpiEvent {
            seq,
            at_unix_ms: now_ms(),
            actor,
            why,
            change,
        };
        if let Some(sink) = self.sink.as_mut() {
            sink.append(&event);
        }
        if self.config.keep_history {
            self.history.push(event.clone());
        }
        Ok(event)
    }

    /// The only place state changes: live operations and replay both come through here.
    fn apply(&mut self, change: &Change, seq: u64) -> Result<(), MpiError> {
        match change {
            Change::RecordAdded { record, decision } => {
                let status = match decision.outcome {
                    Outcome::Link => LinkStatus::Linked,
                    Outcome::PossibleMatch => LinkStatus::Review,
                    Outcome::New => LinkStatus::New,
                };
                self.ensure_enterprise(decision.enterprise)?;
                let rid = self.insert_record(record, decision.enterprise, status, seq);
                if decision.outcome == Outcome::PossibleMatch {
                    self.review_of.insert(rid, seq);
                    self.reviews.insert(
                        seq,
                        ReviewItem {
                            id: seq,
                            record: self.source_key(rid),
                            provisional: decision.enterprise,
                            guard: match decision.reason {
                                DecisionReason::Guarded { guard, .. } => Some(guard),
                                _ => None,
                            },
                            candidates: decision.candidates.clone(),
                        },
                    );
                }
            }
            Change::RecordUpdated {
                record,
                enterprise,
                decision,
            } => {
                let rid = self.record_id(&record.key())?;
                self.replace_data(rid, record, seq);
                if self.records[rid as usize].enterprise != *enterprise {
                    self.ensure_enterprise(*enterprise)?;
                    self.move_record(rid, *enterprise);
                }
                if decision.is_some() {
                    self.records[rid as usize].status = LinkStatus::Linked;
                }
            }
            Change::EnterprisesMerged {
                survivor,
                merged,
                moved,
                retired,
                automatic,
            } => {
                self.ensure_enterprise(*survivor)?;
                self.ensure_enterprise(*merged)?;
                let mut moved_ids = Vec::with_capacity(moved.len());
                for key in moved {
                    let rid = self.record_id(key)?;
                    self.move_record(rid, *survivor);
                    self.records[rid as usize].pinned |= !automatic;
                    moved_ids.push(rid);
                }
                // Moved records are linked to another patient now; a review still open
                // on one of them has been answered by the merge.
                let mut prior_status = Vec::with_capacity(moved_ids.len());
                for &rid in &moved_ids {
                    prior_status.push(self.records[rid as usize].status);
                    self.records[rid as usize].status = LinkStatus::Linked;
                    self.close_review_of(rid);
                }
                if survivor != merged && self.enterprises[ent_index(*merged)].records.is_empty() {
                    self.enterprises[ent_index(*merged)].merged_into = Some(*survivor);
                }
                let retired_id = match retired {
                    Some(key) => {
                        let rid = self.record_id(key)?;
                        self.set_active(rid, false);
                        Some(rid)
                    }
                    None => None,
                };
                self.merges.insert(
                    seq,
                    MergeUndo {
                        survivor: *survivor,
                        merged: *merged,
                        moved: moved_ids,
                        prior_status,
                        retired: retired_id,
                        undone: false,
                    },
                );
            }
            Change::Unmerged {
                merge_seq,
                merged,
                moved,
                restored,
                ..
            } => {
                self.enterprises[ent_index(*merged)].merged_into = None;
                let prior = self
                    .merges
                    .get(merge_seq)
                    .map(|u| u.prior_status.clone())
                    .unwrap_or_default();
                for (n, key) in moved.iter().enumerate() {
                    let rid = self.record_id(key)?;
                    self.move_record(rid, *merged);
                    if let Some(&status) = prior.get(n) {
                        // The merge closed its review; it does not come back.
                        self.records[rid as usize].status = match status {
                            LinkStatus::Review => LinkStatus::New,
                            other => other,
                        };
                    }
                }
                if let Some(key) = restored {
                    let rid = self.record_id(key)?;
                    self.set_active(rid, true);
                }
                if let Some(undo) = self.merges.get_mut(merge_seq) {
                    undo.undone = true;
                }
            }
            Change::RecordLinked { record, to, .. } => {
                let rid = self.record_id(record)?;
                self.move_record(rid, *to);
                self.settle(rid, LinkStatus::Linked);
            }
            Change::RecordUnlinked { record, to, .. } => {
                let rid = self.record_id(record)?;
                self.ensure_enterprise(*to)?;
                self.move_record(rid, *to);
                self.settle(rid, LinkStatus::New);
            }
            Change::ReviewAccepted {
                review, record, to, ..
            } => {
                let rid = self.record_id(record)?;
                self.move_record(rid, *to);
                self.settle(rid, LinkStatus::Linked);
                debug_assert!(!self.reviews.contains_key(review));
            }
            Change::ReviewRejected { review, record } => {
                let rid = self.record_id(record)?;
                self.settle(rid, LinkStatus::New);
                debug_assert!(!self.reviews.contains_key(review));
            }
        }
        Ok(())
    }

    /// A person decided: pin the record and close any review still open on it.
    fn settle(&mut self, rid: u32, status: LinkStatus) {
        let r = &mut self.records[rid as usize];
        r.pinned = true;
        r.status = status;
        self.close_review_of(rid);
    }

    fn close_review_of(&mut self, rid: u32) {
        if let Some(review) = self.review_of.remove(&rid) {
            self.reviews.remove(&review);
        }
    }

    fn ensure_enterprise(&mut self, id: EnterpriseId) -> Result<(), MpiError> {
        if id.0 == 0 {
            return Err(MpiError::Replay("enterprise id 0 is never assigned".into()));
        }
        while (self.enterprises.len() as u64) < id.0 {
            self.enterprises.push(Enterprise::default());
        }
        Ok(())
    }

    fn insert_record(
        &mut self,
        record: &PatientRecord,
        enterprise: EnterpriseId,
        status: LinkStatus,
        seq: u64,
    ) -> u32 {
        let rid = self.records.len() as u32;
        let source = self.interner.intern(&record.source);
        let id = self.interner.intern(&record.id);
        self.records.push(StoredRecord {
            source,
            id,
            identifiers: Box::new([]),
            raw: RawValues::default(),
            sex: None,
            features: Features::default(),
            enterprise,
            status,
            pinned: false,
            active: false,
            updated_seq: seq,
        });
        self.by_key.insert((source, id), rid);
        self.enterprises[ent_index(enterprise)].records.push(rid);
        self.replace_data(rid, record, seq);
        self.set_active(rid, true);
        rid
    }

    /// Sets a record's data and (re)files it in the blocking, identifier and frequency maps.
    fn replace_data(&mut self, rid: u32, record: &PatientRecord, seq: u64) {
        let was_active = self.records[rid as usize].active;
        if was_active {
            self.unfile(rid);
        }
        let i = &mut self.interner;
        let mut s = |v: &Option<String>| i.intern(v.as_deref().unwrap_or("").trim());
        let raw = RawValues {
            family: s(&record.family),
            given: s(&record.given),
            middle: s(&record.middle),
            suffix: s(&record.suffix),
            birth_date: s(&record.birth_date),
            street: s(&record.street),
            street2: s(&record.street2),
            city: s(&record.city),
            state: s(&record.state),
            postcode: s(&record.postcode),
            country: s(&record.country),
            phone: s(&record.phone),
            ssn: s(&record.ssn),
        };
        let identifiers: Box<[QualifiedId]> = record
            .identifiers
            .iter()
            .filter(|x| x.is_qualified())
            .map(|x| {
                (
                    self.interner.intern(x.value.trim()),
                    self.interner.intern(x.authority.trim()),
                    self.interner.intern(x.type_code.trim()),
                )
            })
            .collect();
        for &(_, _, t) in identifiers.iter() {
            if !self.identifier_types.contains(&t) {
                self.identifier_types.push(t);
            }
        }
        let features = match self.prepared.take() {
            Some((key, f)) if key.source == record.source && key.id == record.id => f,
            _ => Features::from_record(record, &mut self.interner),
        };
        let r = &mut self.records[rid as usize];
        r.raw = raw;
        r.sex = record.sex;
        r.identifiers = identifiers;
        r.features = features;
        r.updated_seq = seq;
        // A retired record stays out of the blocking maps.
        if was_active {
            self.file(rid);
        }
    }

    fn file(&mut self, rid: u32) {
        let r = &self.records[rid as usize];
        let mut keys = std::mem::take(&mut self.scratch_keys);
        keys.clear();
        block_keys(&r.features, &self.interner, &mut keys);
        self.blocks.insert(rid, &keys);
        self.scratch_keys = keys;
        self.tf.add(&r.features);
        for q in r.identifiers.iter() {
            self.identifiers.insert(*q, rid);
        }
    }

    fn unfile(&mut self, rid: u32) {
        let r = &self.records[rid as usize];
        let mut keys = std::mem::take(&mut self.scratch_keys);
        keys.clear();
        block_keys(&r.features, &self.interner, &mut keys);
        self.blocks.remove(rid, &keys);
        self.scratch_keys = keys;
        self.tf.remove(&r.features);
        for q in r.identifiers.iter() {
            self.identifiers.remove(*q, rid);
        }
    }

    fn set_active(&mut self, rid: u32, active: bool) {
        let was = self.records[rid as usize].active;
        if was == active {
            return;
        }
        if active {
            self.records[rid as usize].active = true;
            self.file(rid);
        } else {
            self.unfile(rid);
            self.records[rid as usize].active = false;
        }
    }

    /// Moves a record between enterprise patients, keeping both sides of the link in step.
    fn move_record(&mut self, rid: u32, to: EnterpriseId) {
        let from = self.records[rid as usize].enterprise;
        if from == to {
            return;
        }
        self.enterprises[ent_index(from)]
            .records
            .retain(|&r| r != rid);
        let target = &mut self.enterprises[ent_index(to)];
        target.records.push(rid);
        target.merged_into = None;
        self.records[rid as usize].enterprise = to;
    }

    // ----- queries ---------------------------------------------------------------

    fn record_id(&self, key: &SourceKey) -> Result<u32, MpiError> {
        let source = self.interner.get(&key.source);
        let id = self.interner.get(&key.id);
        match (source, id) {
            (Some(s), Some(i)) => self.by_key.get(&(s, i)).copied(),
            _ => None,
        }
        .ok_or_else(|| MpiError::UnknownRecord(key.clone()))
    }

    fn source_key(&self, rid: u32) -> SourceKey {
        let r = &self.records[rid as usize];
        SourceKey::new(self.interner.resolve(r.source), self.interner.resolve(r.id))
    }

    /// Follows merges to the enterprise patient that now stands for `id`.
    pub fn current_enterprise(&self, id: EnterpriseId) -> Result<EnterpriseId, MpiError> {
        let mut current = id;
        for _ in 0..=self.enterprises.len() {
            let e = self
                .enterprises
                .get(ent_index_checked(current).ok_or(MpiError::UnknownEnterprise(id))?)
                .ok_or(MpiError::UnknownEnterprise(id))?;
            match e.merged_into {
                Some(next) => current = next,
                None => return Ok(current),
            }
        }
        Err(MpiError::UnknownEnterprise(id))
    }

    /// The enterprise patient a source record belongs to.
    pub fn enterprise_of(&self, key: &SourceKey) -> Option<EnterpriseId> {
        self.record_id(key)
            .ok()
            .map(|r| self.records[r as usize].enterprise)
    }

    pub fn status_of(&self, key: &SourceKey) -> Option<LinkStatus> {
        self.record_id(key)
            .ok()
            .map(|r| self.records[r as usize].status)
    }

    /// False for a source record merged away by an A40.
    pub fn is_active(&self, key: &SourceKey) -> Option<bool> {
        self.record_id(key)
            .ok()
            .map(|r| self.records[r as usize].active)
    }

    /// The source records of an enterprise patient (retired ones included), in link order.
    pub fn members(&self, enterprise: EnterpriseId) -> Vec<SourceKey> {
        ent_index_checked(enterprise)
            .and_then(|i| self.enterprises.get(i))
            .map(|e| e.records.iter().map(|&r| self.source_key(r)).collect())
            .unwrap_or_default()
    }

    /// Enterprise patients that have at least one source record.
    pub fn enterprises(&self) -> impl Iterator<Item = EnterpriseId> + '_ {
        self.enterprises
            .iter()
            .enumerate()
            .filter(|(_, e)| !e.records.is_empty())
            .map(|(i, _)| EnterpriseId(i as u64 + 1))
    }

    /// Every source record with its enterprise patient and status, in arrival order.
    pub fn source_records(
        &self,
    ) -> impl Iterator<Item = (SourceKey, EnterpriseId, LinkStatus)> + '_ {
        (0..self.records.len() as u32).map(|r| {
            let s = &self.records[r as usize];
            (self.source_key(r), s.enterprise, s.status)
        })
    }

    /// All other identifiers of the same patient, given one (PIX cross-reference).
    pub fn cross_reference(&self, identifier: &Identifier) -> Vec<Identifier> {
        let Some(q) = self.lookup_identifier(identifier) else {
            return Vec::new();
        };
        let mut rids = Vec::new();
        self.identifiers.extend_into(&q, &mut rids);
        let mut out: Vec<Identifier> = Vec::new();
        for r in rids {
            for &m in &self.enterprises[ent_index(self.records[r as usize].enterprise)].records {
                for &(v, a, t) in self.records[m as usize].identifiers.iter() {
                    let id = Identifier::new(
                        self.interner.resolve(v),
                        self.interner.resolve(a),
                        self.interner.resolve(t),
                    );
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
            }
        }
        out
    }

    /// Source records that carry `value` issued by `authority` (of any identifier
    /// type), or whose own key is `authority`/`value`: how a `system|value` search or
    /// PIX query finds a patient. Retired records are found by their key only.
    pub fn records_with_identifier(&self, authority: &str, value: &str) -> Vec<SourceKey> {
        let mut out = Vec::new();
        let key = SourceKey::new(authority.trim(), value.trim());
        if self.record_id(&key).is_ok() {
            out.push(key);
        }
        let (Some(v), Some(a)) = (
            self.interner.get(value.trim()),
            self.interner.get(authority.trim()),
        ) else {
            return out;
        };
        let mut rids = Vec::new();
        for &t in &self.identifier_types {
            self.identifiers.extend_into(&(v, a, t), &mut rids);
        }
        for r in rids {
            let k = self.source_key(r);
            if !out.contains(&k) {
                out.push(k);
            }
        }
        out
    }

    /// The merge event (its sequence number) that retired `record` and is not undone.
    pub fn merge_retiring(&self, record: &SourceKey) -> Option<u64> {
        let rid = self.record_id(record).ok()?;
        self.merges
            .iter()
            .filter(|(_, u)| !u.undone && u.retired == Some(rid))
            .map(|(&seq, _)| seq)
            .max()
    }

    /// The latest merge not undone that moved `record` or retired it.
    pub fn merge_involving(&self, record: &SourceKey) -> Option<u64> {
        let rid = self.record_id(record).ok()?;
        self.merges
            .iter()
            .filter(|(_, u)| !u.undone && (u.retired == Some(rid) || u.moved.contains(&rid)))
            .map(|(&seq, _)| seq)
            .max()
    }

    /// Whether a person or message has decided where this record belongs.
    pub fn is_pinned(&self, key: &SourceKey) -> Option<bool> {
        self.record_id(key)
            .ok()
            .map(|r| self.records[r as usize].pinned)
    }

    /// The source record as last received.
    pub fn record(&self, key: &SourceKey) -> Option<PatientRecord> {
        self.record_id(key).ok().map(|r| self.rebuild(r))
    }

    fn rebuild(&self, rid: u32) -> PatientRecord {
        let s = &self.records[rid as usize];
        let i = &self.interner;
        let opt = |sym: Sym| i.resolve_opt(sym).map(str::to_string);
        PatientRecord {
            source: i.resolve(s.source).to_string(),
            id: i.resolve(s.id).to_string(),
            identifiers: s
                .identifiers
                .iter()
                .map(|&(v, a, t)| Identifier::new(i.resolve(v), i.resolve(a), i.resolve(t)))
                .collect(),
            family: opt(s.raw.family),
            given: opt(s.raw.given),
            middle: opt(s.raw.middle),
            suffix: opt(s.raw.suffix),
            birth_date: opt(s.raw.birth_date),
            sex: s.sex,
            street: opt(s.raw.street),
            street2: opt(s.raw.street2),
            city: opt(s.raw.city),
            state: opt(s.raw.state),
            postcode: opt(s.raw.postcode),
            country: opt(s.raw.country),
            phone: opt(s.raw.phone),
            ssn: opt(s.raw.ssn),
        }
    }

    /// Active source records of an enterprise patient with the sequence of their last
    /// update, for golden records.
    pub(crate) fn active_members(&self, enterprise: EnterpriseId) -> Vec<(PatientRecord, u64)> {
        ent_index_checked(enterprise)
            .and_then(|i| self.enterprises.get(i))
            .map(|e| {
                e.records
                    .iter()
                    .filter(|&&r| self.records[r as usize].active)
                    .map(|&r| (self.rebuild(r), self.records[r as usize].updated_seq))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every event so far (when `keep_history` is on), oldest first.
    pub fn history(&self) -> &[MpiEvent] {
        &self.history
    }

    /// The events that touched an enterprise patient.
    pub fn history_of(&self, enterprise: EnterpriseId) -> Vec<&MpiEvent> {
        self.history
            .iter()
            .filter(|e| e.enterprises().contains(&enterprise))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn stats(&self) -> IndexStats {
        let records = self.records.capacity() * std::mem::size_of::<StoredRecord>()
            + self
                .records
                .iter()
                .map(|r| r.identifiers.len() * 12)
                .sum::<usize>();
        let enterprises = self.enterprises.capacity() * std::mem::size_of::<Enterprise>()
            + self
                .enterprises
                .iter()
                .map(|e| e.records.capacity() * 4)
                .sum::<usize>();
        let maps = self.by_key.capacity() * 13 + self.identifiers.heap_bytes();
        IndexStats {
            source_records: self.records.len(),
            enterprises: self.enterprises().count(),
            interned_strings: self.interner.len(),
            approx_heap_bytes: records
                + enterprises
                + maps
                + self.interner.heap_bytes()
                + self.blocks.heap_bytes()
                + self.tf.heap_bytes(),
        }
    }

    /// Checks the link invariants: every source record is in exactly one enterprise
    /// patient, and that enterprise lists it exactly once. Used by the property tests.
    pub fn check_consistency(&self) -> Result<(), String> {
        let mut owner: Vec<Option<usize>> = vec![None; self.records.len()];
        for (e, ent) in self.enterprises.iter().enumerate() {
            for &r in &ent.records {
                if let Some(prev) = owner[r as usize] {
                    return Err(format!(
                        "{} listed by E{} and E{}",
                        self.source_key(r),
                        prev + 1,
                        e + 1
                    ));
                }
                owner[r as usize] = Some(e);
            }
            if !ent.records.is_empty() && ent.merged_into.is_some() {
                return Err(format!("E{} has records but is marked merged", e + 1));
            }
        }
        for item in self.reviews.values() {
            let rid = self.record_id(&item.record).map_err(|e| e.to_string())?;
            if self.records[rid as usize].status != LinkStatus::Review {
                return Err(format!(
                    "review {} is open but {} is not in review",
                    item.id, item.record
                ));
            }
        }
        let in_review = self
            .records
            .iter()
            .filter(|r| r.status == LinkStatus::Review)
            .count();
        if in_review != self.reviews.len() {
            return Err(format!(
                "{in_review} records in review but {} open reviews",
                self.reviews.len()
            ));
        }
        for (r, rec) in self.records.iter().enumerate() {
            match owner[r] {
                Some(e) if EnterpriseId(e as u64 + 1) == rec.enterprise => {}
                other => {
                    return Err(format!(
                        "{} says {} but is listed by {:?}",
                        self.source_key(r as u32),
                        rec.enterprise,
                        other.map(|e| e + 1)
                    ));
                }
            }
        }
        Ok(())
    }
}

fn ent_index(id: EnterpriseId) -> usize {
    (id.0 as usize).saturating_sub(1)
}

fn ent_index_checked(id: EnterpriseId) -> Option<usize> {
    (id.0 as usize).checked_sub(1)
}

fn describe(d: &Decision) -> String {
    match (&d.outcome, &d.reason) {
        (_, DecisionReason::Identifier { identifier }) => format!(
            "same {} identifier from {}",
            identifier.type_code, identifier.authority
        ),
        (_, DecisionReason::IdentifierConflict { .. }) => {
            "identifiers point at more than one enterprise patient".into()
        }
        (_, DecisionReason::Ssn) => "same SSN, corroborated by birth date or family name".into(),
        (
            Outcome::Link,
            DecisionReason::Score {
                best,
                link_threshold,
                ..
            },
        ) => {
            format!("score {best:.1} reaches the link threshold {link_threshold}")
        }
        (
            Outcome::PossibleMatch,
            DecisionReason::Score {
                best,
                review_threshold,
                link_threshold,
            },
        ) => {
            format!(
                "score {best:.1} between review threshold {review_threshold} and link threshold {link_threshold}"
            )
        }
        (
            _,
            DecisionReason::Score {
                best,
                review_threshold,
                ..
            },
        ) => {
            format!("best score {best:.1} below the review threshold {review_threshold}")
        }
        (
            _,
            DecisionReason::Guarded {
                guard,
                best,
                link_threshold,
                between_candidates,
            },
        ) => {
            let between = if *between_candidates {
                " between two candidates that both reach it"
            } else {
                ""
            };
            format!(
                "score {best:.1} reaches the link threshold {link_threshold}, held for review by guard {guard}{between}: {}",
                guard.describe()
            )
        }
        (_, DecisionReason::NoCandidates) => "no candidate shares a blocking key".into(),
    }
}

#[allow(dead_code)]
const _: usize = FIELD_COUNT;
