//! Placing an incoming record: blocking, scoring, the guards and the decision.

use super::{Mpi, QualifiedId, SsnRule, StoredRecord, ent_index};
use crate::MpiError;
use crate::compare::{FIELD_COUNT, FIELDS, Features, Field, Levels, MISSING, compare};
use crate::events::{
    Actor, Change, Decision, DecisionReason, EnterpriseId, FieldWeight, LinkStatus,
    MatchExplanation, Outcome,
};
use crate::guard::{Guard, first_guard, names_the_person, two_people};
use crate::index::block_keys;
use crate::intern::Sym;
use crate::record::{Identifier, PatientRecord};
use std::borrow::Cow;

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

    pub(super) fn lookup_identifier(&self, ident: &Identifier) -> Option<QualifiedId> {
        Some((
            self.interner.get(ident.value.trim())?,
            self.interner.get(ident.authority.trim())?,
            self.interner.get(ident.type_code.trim())?,
        ))
    }
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
