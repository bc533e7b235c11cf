//! Blocking: each record is filed under a few keys (phonetic surname and birth year,
//! birth date, postcode and initial, SSN, phone, ...), and a lookup compares the incoming
//! record only with the records that share at least one key with it.

use crate::compare::{Features, Field};
use crate::intern::{Interner, Sym};
use hashbrown::HashMap;

/// One blocking key: its kind and up to two values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct BlockKey {
    kind: u8,
    a: u32,
    b: u32,
}

fn initial(interner: &Interner, sym: Sym) -> Option<u32> {
    interner
        .resolve_opt(sym)
        .and_then(|s| s.chars().next())
        .map(u32::from)
}

/// The blocking keys of a record. Each covers a different way two records of one
/// patient may still agree when other fields carry errors.
pub(crate) fn block_keys(f: &Features, interner: &Interner, out: &mut Vec<BlockKey>) {
    let mut push = |kind: u8, a: u32, b: u32| out.push(BlockKey { kind, a, b });
    let year = f.birth_year(interner);
    let sym = |s: Sym| s.index() as u32;
    if let Some(year) = year {
        if f.family_phonetic.is_some() {
            push(1, sym(f.family_phonetic), year);
        }
        if f.given_phonetic.is_some() {
            push(2, sym(f.given_phonetic), year);
        }
    }
    if f.birth.is_some() {
        push(3, sym(f.birth), 0);
    }
    if f.ssn.is_some() {
        push(4, sym(f.ssn), 0);
    }
    if f.phone.is_some() {
        push(5, sym(f.phone), 0);
    }
    if f.postcode.is_some() {
        if let Some(i) = initial(interner, f.given) {
            push(6, sym(f.postcode), i);
        }
        if let Some(i) = initial(interner, f.family) {
            push(7, sym(f.postcode), i);
        }
    }
    if f.given_phonetic.is_some() && f.family_phonetic.is_some() {
        // Order-free, so swapped given and family names still meet.
        let (x, y) = (sym(f.given_phonetic), sym(f.family_phonetic));
        push(8, x.min(y), x.max(y));
    }
    if f.street.is_some() && f.family_phonetic.is_some() {
        push(9, sym(f.street), sym(f.family_phonetic));
    }
}

/// Record ids filed under each blocking key.
#[derive(Default)]
pub(crate) struct Blocks {
    map: HashMap<BlockKey, Vec<u32>>,
}

impl Blocks {
    pub fn insert(&mut self, record: u32, keys: &[BlockKey]) {
        for key in keys {
            self.map.entry(*key).or_default().push(record);
        }
    }

    pub fn remove(&mut self, record: u32, keys: &[BlockKey]) {
        for key in keys {
            if let Some(ids) = self.map.get_mut(key) {
                ids.retain(|&r| r != record);
                if ids.is_empty() {
                    self.map.remove(key);
                }
            }
        }
    }

    /// Appends the distinct records sharing a key with `keys`, skipping keys whose block
    /// has grown past `max_block_size` (a value too common to tell patients apart).
    pub fn candidates(&self, keys: &[BlockKey], max_block_size: usize, out: &mut Vec<u32>) {
        for key in keys {
            if let Some(ids) = self.map.get(key) {
                if ids.len() <= max_block_size {
                    out.extend_from_slice(ids);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    pub fn heap_bytes(&self) -> usize {
        self.map.capacity() * (std::mem::size_of::<(BlockKey, Vec<u32>)>() + 1)
            + self.map.values().map(|v| v.capacity() * 4).sum::<usize>()
    }
}

/// How often each value occurs, per term-frequency-adjusted field.
#[derive(Default)]
pub(crate) struct TermFrequencies {
    counts: [HashMap<Sym, u32>; 4],
    totals: [u64; 4],
}

fn tf_slot(field: Field) -> Option<usize> {
    match field {
        Field::Given => Some(0),
        Field::Family => Some(1),
        Field::City => Some(2),
        Field::Postcode => Some(3),
        _ => None,
    }
}

const TF_FIELDS: [Field; 4] = [Field::Given, Field::Family, Field::City, Field::Postcode];

impl TermFrequencies {
    pub fn add(&mut self, f: &Features) {
        for field in TF_FIELDS {
            let v = f.tf_value(field);
            if let (Some(slot), true) = (tf_slot(field), v.is_some()) {
                *self.counts[slot].entry(v).or_default() += 1;
                self.totals[slot] += 1;
            }
        }
    }

    pub fn remove(&mut self, f: &Features) {
        for field in TF_FIELDS {
            let v = f.tf_value(field);
            if let (Some(slot), true) = (tf_slot(field), v.is_some()) {
                if let Some(c) = self.counts[slot].get_mut(&v) {
                    *c -= 1;
                    if *c == 0 {
                        self.counts[slot].remove(&v);
                    }
                }
                self.totals[slot] = self.totals[slot].saturating_sub(1);
            }
        }
    }

    /// (occurrences of `value`, occurrences of any value) in `field`.
    pub fn frequency(&self, field: Field, value: Sym) -> (u32, u64) {
        match tf_slot(field) {
            Some(slot) => (
                self.counts[slot].get(&value).copied().unwrap_or(0),
                self.totals[slot],
            ),
            None => (0, 0),
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.counts.iter().map(|c| c.capacity() * 9).sum()
    }
}
