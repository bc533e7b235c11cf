//! Applying a change: every change to the index is an event applied here, so replaying
//! the log rebuilds the index exactly.

use super::{
    Enterprise, MergeUndo, Mpi, QualifiedId, RawValues, ReviewItem, StoredRecord, ent_index,
};
use crate::MpiError;
use crate::compare::Features;
use crate::events::{Actor, Change, DecisionReason, EnterpriseId, LinkStatus, MpiEvent, Outcome};
use crate::index::block_keys;
use crate::record::PatientRecord;
use std::time::{SystemTime, UNIX_EPOCH};

impl Mpi {
    pub(super) fn commit(
        &mut self,
        actor: Actor,
        why: String,
        change: Change,
    ) -> Result<MpiEvent, MpiError> {
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
    pub(super) fn apply(&mut self, change: &Change, seq: u64) -> Result<(), MpiError> {
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
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
