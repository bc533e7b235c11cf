//! Reading the index: where a record stands, an enterprise patient's members, cross
//! references, history, sizes and a consistency check.

use super::{Enterprise, IndexStats, Mpi, StoredRecord, ent_index, ent_index_checked};
use crate::MpiError;
use crate::events::{EnterpriseId, LinkStatus, MpiEvent};
use crate::intern::Sym;
use crate::record::{Identifier, PatientRecord, SourceKey};

impl Mpi {
    pub(super) fn record_id(&self, key: &SourceKey) -> Result<u32, MpiError> {
        let source = self.interner.get(&key.source);
        let id = self.interner.get(&key.id);
        match (source, id) {
            (Some(s), Some(i)) => self.by_key.get(&(s, i)).copied(),
            _ => None,
        }
        .ok_or_else(|| MpiError::UnknownRecord(key.clone()))
    }

    pub(super) fn source_key(&self, rid: u32) -> SourceKey {
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
