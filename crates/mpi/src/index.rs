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
/// patient may still agree when other fields carry errors, and each is specific enough
/// that a block stays small in an index of millions (a single common value such as a
/// birth year or a frequent surname would not be).
pub(crate) fn block_keys(f: &Features, interner: &Interner, out: &mut Vec<BlockKey>) {
    let mut push = |kind: u8, a: u32, b: u32| out.push(BlockKey { kind, a, b });
    let sym = |s: Sym| s.index() as u32;
    let given_initial = initial(interner, f.given);
    let family_initial = initial(interner, f.family);
    if f.given_phonetic.is_some() && f.family_phonetic.is_some() {
        // Name sounds, order-free so swapped given and family names still meet, with
        // the birth year (day or month wrong) or the postcode (birth date wrong). A
        // name pair alone is not enough: "James Smith" is thousands of people.
        let (x, y) = (sym(f.given_phonetic), sym(f.family_phonetic));
        let pair = (x.min(y) as u64) << 32 | x.max(y) as u64;
        let mix = |v: u64| (pair.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ v) as u32;
        if let Some(year) = f.birth_year(interner) {
            push(1, mix(u64::from(year)), x.min(y));
        }
        if f.postcode.is_some() {
            push(17, mix(u64::from(sym(f.postcode)) << 20), x.max(y));
        }
    }
    if f.birth.is_some() {
        if f.family_phonetic.is_some() {
            push(2, sym(f.family_phonetic), sym(f.birth));
        }
        if f.given_phonetic.is_some() {
            push(3, sym(f.given_phonetic), sym(f.birth));
        }
        if f.postcode.is_some() {
            push(4, sym(f.postcode), sym(f.birth));
        }
        // Birth date and one initial: catches a replaced or badly mistyped name.
        if let Some(gi) = given_initial {
            push(11, sym(f.birth), gi);
        }
        if let Some(fi) = family_initial {
            push(12, sym(f.birth), fi);
        }
        // Birth date and region: catches both names replaced (a married name, a
        // different given name used).
        if f.state.is_some() {
            push(15, sym(f.birth), sym(f.state));
        }
        if let Some(ci) = initial(interner, f.city) {
            push(16, sym(f.birth), ci);
        }
    }
    if let (Some(year), Some(gi)) = (f.birth_year(interner), given_initial) {
        // Surname sound and birth year: catches day and month errors.
        if f.family_phonetic.is_some() {
            push(5, sym(f.family_phonetic), year << 8 ^ gi);
        }
    }
    if f.ssn.is_some() {
        push(6, sym(f.ssn), 0);
        // Each half of the SSN (a typo rarely touches both), narrowed by postcode or
        // birth year: a half alone is shared by too many people in a large index.
        let ssn = interner.resolve(f.ssn);
        if ssn.len() >= 6 {
            let mid = ssn.len() / 2;
            let halves = [digits_key(&ssn[..mid + 1]), digits_key(&ssn[mid..])];
            for (n, half) in halves.into_iter().enumerate() {
                if f.postcode.is_some() {
                    push(13 + n as u8, half, sym(f.postcode));
                }
                if let Some(year) = f.birth_year(interner) {
                    push(18 + n as u8, half, year);
                }
            }
        }
    }
    if f.phone.is_some() {
        push(7, sym(f.phone), 0);
    }
    if let (true, Some(gi), Some(fi)) = (f.postcode.is_some(), given_initial, family_initial) {
        // Initials within a postcode: catches a wrong birth date plus name typos.
        push(8, sym(f.postcode), gi << 16 ^ fi);
    }
    if f.street.is_some() && f.family_phonetic.is_some() {
        push(9, sym(f.street), sym(f.family_phonetic));
    }
    if f.postcode.is_some() {
        // Street name's first letters within the postcode: finds a record whose names
        // and birth date were all mistyped or left out.
        if let Some(prefix) = street_name_prefix(interner.resolve(f.street)) {
            push(10, sym(f.postcode), prefix);
        }
    }
}

/// A short digit string as a number (decimal value with a leading 1, so "012" and "12"
/// differ).
fn digits_key(digits: &str) -> u32 {
    digits.bytes().fold(1u32, |acc, b| {
        acc.wrapping_mul(10)
            .wrapping_add(u32::from(b.wrapping_sub(b'0')))
    })
}

/// The first three letters of the first word of a street line that is not a number,
/// packed into a u32.
fn street_name_prefix(street: &str) -> Option<u32> {
    let word = street
        .split(' ')
        .find(|w| w.chars().next().is_some_and(char::is_alphabetic))?;
    let mut packed = 0u32;
    for c in word.chars().take(3) {
        packed = packed.wrapping_mul(0x1_0001).wrapping_add(u32::from(c));
    }
    Some(packed)
}

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Posting {
    record: u32,
    next: u32,
}

/// Record ids filed under keys, as linked posting lists in one arena: most keys hold a
/// single record, and a `Vec` per key would cost several times the 8 bytes a posting
/// takes here.
pub(crate) struct PostingMap<K> {
    lists: HashMap<K, List>,
    postings: Vec<Posting>,
    free: u32,
}

impl<K> Default for PostingMap<K> {
    fn default() -> Self {
        PostingMap {
            lists: HashMap::default(),
            postings: Vec::new(),
            free: NIL,
        }
    }
}

impl<K: std::hash::Hash + Eq + Copy> PostingMap<K> {
    pub fn insert(&mut self, key: K, record: u32) {
        let list = self.lists.entry(key).or_insert(List { head: NIL, len: 0 });
        let posting = Posting {
            record,
            next: list.head,
        };
        let index = if self.free != NIL {
            let index = self.free;
            self.free = self.postings[index as usize].next;
            self.postings[index as usize] = posting;
            index
        } else {
            self.postings.push(posting);
            (self.postings.len() - 1) as u32
        };
        list.head = index;
        list.len += 1;
    }

    pub fn remove(&mut self, key: K, record: u32) {
        let Some(list) = self.lists.get_mut(&key) else {
            return;
        };
        let (mut prev, mut at) = (NIL, list.head);
        while at != NIL {
            let next = self.postings[at as usize].next;
            if self.postings[at as usize].record == record {
                if prev == NIL {
                    list.head = next;
                } else {
                    self.postings[prev as usize].next = next;
                }
                self.postings[at as usize].next = self.free;
                self.free = at;
                list.len -= 1;
                break;
            }
            prev = at;
            at = next;
        }
        if list.len == 0 {
            self.lists.remove(&key);
        }
    }

    pub fn len_of(&self, key: &K) -> usize {
        self.lists.get(key).map_or(0, |l| l.len as usize)
    }

    /// Appends the records filed under `key`, newest first.
    pub fn extend_into(&self, key: &K, out: &mut Vec<u32>) {
        let mut at = self.lists.get(key).map_or(NIL, |l| l.head);
        while at != NIL {
            let p = self.postings[at as usize];
            out.push(p.record);
            at = p.next;
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.lists.capacity() * (std::mem::size_of::<(K, List)>() + 1)
            + self.postings.capacity() * std::mem::size_of::<Posting>()
    }
}

/// Record ids filed under each blocking key.
#[derive(Default)]
pub(crate) struct Blocks {
    map: PostingMap<BlockKey>,
}

impl Blocks {
    pub fn insert(&mut self, record: u32, keys: &[BlockKey]) {
        for key in keys {
            self.map.insert(*key, record);
        }
    }

    pub fn remove(&mut self, record: u32, keys: &[BlockKey]) {
        for key in keys {
            self.map.remove(*key, record);
        }
    }

    /// Appends the distinct records sharing a key with `keys`, skipping keys whose block
    /// has grown past `max_block_size` (a value too common to tell patients apart).
    pub fn candidates(&self, keys: &[BlockKey], max_block_size: usize, out: &mut Vec<u32>) {
        for key in keys {
            if self.map.len_of(key) <= max_block_size {
                self.map.extend_into(key, out);
            }
        }
        out.sort_unstable();
        out.dedup();
    }

    pub fn heap_bytes(&self) -> usize {
        self.map.heap_bytes()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posting_lists_keep_records_per_key_through_removals() {
        let mut map: PostingMap<u32> = PostingMap::default();
        for r in 0..10 {
            map.insert(r % 3, r);
        }
        map.remove(0, 3);
        map.remove(0, 42);
        map.insert(0, 10);
        let mut out = Vec::new();
        map.extend_into(&0, &mut out);
        out.sort_unstable();
        assert_eq!(out, vec![0, 6, 9, 10]);
        assert_eq!(map.len_of(&0), 4);
        for r in [0, 6, 9, 10] {
            map.remove(0, r);
        }
        assert_eq!(map.len_of(&0), 0);
        out.clear();
        map.extend_into(&1, &mut out);
        assert_eq!(out, vec![7, 4, 1]);
        // Freed postings are reused, not leaked.
        assert_eq!(map.postings.len(), 10);
    }
}
