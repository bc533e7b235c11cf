//! What a person or a message decides: link, unlink, merge, unmerge, and the review queue.

use super::{Mpi, ReviewItem, ent_index};
use crate::MpiError;
use crate::events::{Actor, Change, EnterpriseId, MpiEvent};
use crate::record::SourceKey;

impl Mpi {
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
}
