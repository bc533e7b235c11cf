//! Per-field comparison levels: how much two records agree on each field, from exact
//! agreement down to disagreement. The model turns each level into a weight.

use crate::intern::{Interner, Sym};
use crate::record::{Generation, PatientRecord, Sex};
use crate::text;
use serde::{Deserialize, Serialize};

/// A compared field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Field {
    Given,
    Family,
    Middle,
    BirthDate,
    Sex,
    Street,
    Street2,
    City,
    State,
    Postcode,
    Phone,
    Ssn,
}

pub const FIELD_COUNT: usize = 12;

/// Every compared field, in the order of a [`Levels`] vector.
pub const FIELDS: [Field; FIELD_COUNT] = [
    Field::Given,
    Field::Family,
    Field::Middle,
    Field::BirthDate,
    Field::Sex,
    Field::Street,
    Field::Street2,
    Field::City,
    Field::State,
    Field::Postcode,
    Field::Phone,
    Field::Ssn,
];

const NAME_LEVELS: &[&str] = &[
    "exact",
    "jaro-winkler>=0.92 or nickname",
    "phonetic or jaro-winkler>=0.85",
    "different",
];

impl Field {
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Field::Given => "given",
            Field::Family => "family",
            Field::Middle => "middle",
            Field::BirthDate => "birth_date",
            Field::Sex => "sex",
            Field::Street => "street",
            Field::Street2 => "street2",
            Field::City => "city",
            Field::State => "state",
            Field::Postcode => "postcode",
            Field::Phone => "phone",
            Field::Ssn => "ssn",
        }
    }

    /// The comparison levels, best first; the last one is disagreement.
    pub fn levels(self) -> &'static [&'static str] {
        match self {
            Field::Given | Field::Family => NAME_LEVELS,
            Field::Middle => &["exact", "same initial", "different"],
            Field::BirthDate => &[
                "exact",
                "day and month transposed",
                "one digit off or two digits swapped",
                "same year",
                "different",
            ],
            Field::Sex | Field::State => &["exact", "different"],
            Field::Street => &[
                "exact",
                "jaro-winkler>=0.90",
                "jaro-winkler>=0.75",
                "different",
            ],
            Field::Street2 | Field::City => &["exact", "jaro-winkler>=0.88", "different"],
            Field::Postcode | Field::Phone => &["exact", "one edit", "different"],
            Field::Ssn => &["exact", "one edit", "two edits", "different"],
        }
    }

    /// Whether an exact agreement is weighted by how rare the value is.
    pub fn term_frequency_adjusted(self) -> bool {
        matches!(
            self,
            Field::Given | Field::Family | Field::City | Field::Postcode
        )
    }
}

/// The comparison level of each field for one pair; [`MISSING`] when either side lacks it.
pub type Levels = [u8; FIELD_COUNT];
pub const MISSING: u8 = u8::MAX;

/// The normalised, interned values a record is compared and blocked on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub given: Sym,
    pub family: Sym,
    pub middle: Sym,
    pub given_phonetic: Sym,
    pub family_phonetic: Sym,
    /// Digits of the birth date (normally 8).
    pub birth: Sym,
    pub sex: Sex,
    pub generation: Option<Generation>,
    pub street: Sym,
    pub street2: Sym,
    pub city: Sym,
    pub state: Sym,
    pub postcode: Sym,
    pub phone: Sym,
    pub ssn: Sym,
}

impl Features {
    pub fn from_record(record: &PatientRecord, interner: &mut Interner) -> Features {
        // A suffix written into the name ("Smith Jr") is compared as the suffix it is,
        // not as letters of the name.
        let mut name = |v: &Option<String>| {
            let n = v
                .as_deref()
                .map(|n| text::normalize_name(Generation::split_from_name(n).0))
                .unwrap_or_default();
            let ph = text::nysiis(&n);
            (interner.intern(&n), ph)
        };
        let (given, given_ph) = name(&record.given);
        let (family, family_ph) = name(&record.family);
        let (middle, _) = name(&record.middle);
        let given_phonetic = interner.intern(&given_ph);
        let family_phonetic = interner.intern(&family_ph);
        let mut txt = |v: &Option<String>| {
            let n = v.as_deref().map(text::normalize_text).unwrap_or_default();
            interner.intern(&n)
        };
        let street = txt(&record.street);
        let street2 = txt(&record.street2);
        let city = txt(&record.city);
        let state = txt(&record.state);
        let postcode = txt(&record.postcode);
        let mut dig = |v: &Option<String>| {
            let n = v.as_deref().map(text::digits).unwrap_or_default();
            interner.intern(&n)
        };
        Features {
            given,
            family,
            middle,
            given_phonetic,
            family_phonetic,
            birth: dig(&record.birth_date),
            sex: record.sex.unwrap_or_default(),
            generation: record.generation(),
            street,
            street2,
            city,
            state,
            postcode,
            phone: dig(&record.phone),
            ssn: dig(&record.ssn),
        }
    }

    /// Birth year when the birth date has at least four digits.
    pub fn birth_year(&self, interner: &Interner) -> Option<u32> {
        let b = interner.resolve(self.birth);
        b.get(..4).and_then(|y| y.parse().ok())
    }

    /// The value a field's term frequency is counted on.
    pub fn tf_value(&self, field: Field) -> Sym {
        match field {
            Field::Given => self.given,
            Field::Family => self.family,
            Field::City => self.city,
            Field::Postcode => self.postcode,
            _ => Sym::NONE,
        }
    }
}

fn name_level(a: Sym, b: Sym, pa: Sym, pb: Sym, nicknames: bool, i: &Interner) -> u8 {
    if a.is_none() || b.is_none() {
        return MISSING;
    }
    if a == b {
        return 0;
    }
    let (sa, sb) = (i.resolve(a), i.resolve(b));
    let jw = text::jaro_winkler(sa, sb);
    if jw >= 0.92 || (nicknames && text::is_nickname_pair(sa, sb)) {
        1
    } else if jw >= 0.85 || (pa.is_some() && pa == pb) {
        2
    } else {
        3
    }
}

fn similarity_level(a: Sym, b: Sym, thresholds: &[f64], i: &Interner) -> u8 {
    if a.is_none() || b.is_none() {
        return MISSING;
    }
    if a == b {
        return 0;
    }
    let jw = text::jaro_winkler(i.resolve(a), i.resolve(b));
    for (n, &t) in thresholds.iter().enumerate() {
        if jw >= t {
            return n as u8 + 1;
        }
    }
    thresholds.len() as u8 + 1
}

fn edit_level(a: Sym, b: Sym, max_edits: usize, i: &Interner) -> u8 {
    if a.is_none() || b.is_none() {
        return MISSING;
    }
    if a == b {
        return 0;
    }
    match text::edit_distance_within(i.resolve(a), i.resolve(b), max_edits) {
        Some(d) => d as u8,
        None => max_edits as u8 + 1,
    }
}

fn birth_level(a: Sym, b: Sym, i: &Interner) -> u8 {
    if a.is_none() || b.is_none() {
        return MISSING;
    }
    if a == b {
        return 0;
    }
    let (x, y) = (i.resolve(a).as_bytes(), i.resolve(b).as_bytes());
    if x.len() == 8 && y.len() == 8 && x[..4] == y[..4] && x[4..6] == y[6..8] && x[6..8] == y[4..6]
    {
        return 1;
    }
    if text::edit_distance_within(i.resolve(a), i.resolve(b), 1).is_some() {
        return 2;
    }
    if x.len() >= 4 && y.len() >= 4 && x[..4] == y[..4] {
        return 3;
    }
    4
}

fn middle_level(a: Sym, b: Sym, i: &Interner) -> u8 {
    if a.is_none() || b.is_none() {
        return MISSING;
    }
    if a == b {
        return 0;
    }
    let (x, y) = (i.resolve(a), i.resolve(b));
    let initial_only = x.chars().count() == 1 || y.chars().count() == 1;
    if initial_only && x.chars().next() == y.chars().next() {
        1
    } else {
        2
    }
}

/// Compares two records field by field.
pub fn compare(a: &Features, b: &Features, i: &Interner) -> Levels {
    let mut given = name_level(
        a.given,
        b.given,
        a.given_phonetic,
        b.given_phonetic,
        true,
        i,
    );
    let mut family = name_level(
        a.family,
        b.family,
        a.family_phonetic,
        b.family_phonetic,
        false,
        i,
    );
    // Given and family names entered in each other's place: count them as close, not exact.
    if given != MISSING && family != MISSING && given >= 2 && family >= 2 {
        let g = name_level(
            a.given,
            b.family,
            a.given_phonetic,
            b.family_phonetic,
            false,
            i,
        );
        let f = name_level(
            a.family,
            b.given,
            a.family_phonetic,
            b.given_phonetic,
            false,
            i,
        );
        if g <= 1 && f <= 1 {
            given = 1;
            family = 1;
        }
    }
    let sex = match (a.sex, b.sex) {
        (Sex::Unknown, _) | (_, Sex::Unknown) => MISSING,
        (x, y) => u8::from(x != y),
    };
    let state = if a.state.is_none() || b.state.is_none() {
        MISSING
    } else {
        u8::from(a.state != b.state)
    };
    [
        given,
        family,
        middle_level(a.middle, b.middle, i),
        birth_level(a.birth, b.birth, i),
        sex,
        similarity_level(a.street, b.street, &[0.90, 0.75], i),
        similarity_level(a.street2, b.street2, &[0.88], i),
        similarity_level(a.city, b.city, &[0.88], i),
        state,
        edit_level(a.postcode, b.postcode, 1, i),
        edit_level(a.phone, b.phone, 1, i),
        edit_level(a.ssn, b.ssn, 2, i),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(i: &mut Interner, given: &str, family: &str, dob: &str) -> Features {
        let mut r = PatientRecord::new("s", "1");
        r.given = Some(given.into());
        r.family = Some(family.into());
        r.birth_date = Some(dob.into());
        Features::from_record(&r, i)
    }

    #[test]
    fn birth_dates_grade_transpositions_and_typos() {
        let mut i = Interner::new();
        let a = features(&mut i, "ann", "lee", "19800312");
        let swapped = features(&mut i, "ann", "lee", "19801203");
        let typo = features(&mut i, "ann", "lee", "19800313");
        let year = features(&mut i, "ann", "lee", "19800701");
        let other = features(&mut i, "ann", "lee", "19750701");
        let level = |x: &Features| compare(&a, x, &i)[Field::BirthDate.index()];
        assert_eq!(level(&a), 0);
        assert_eq!(level(&swapped), 1);
        assert_eq!(level(&typo), 2);
        assert_eq!(level(&year), 3);
        assert_eq!(level(&other), 4);
    }

    #[test]
    fn names_grade_typos_nicknames_and_swaps() {
        let mut i = Interner::new();
        let a = features(&mut i, "william", "thompson", "1");
        let nick = features(&mut i, "bill", "thomson", "1");
        let swapped = features(&mut i, "thompson", "william", "1");
        let l = compare(&a, &nick, &i);
        assert_eq!(l[Field::Given.index()], 1);
        assert!(l[Field::Family.index()] <= 1);
        let s = compare(&a, &swapped, &i);
        assert_eq!((s[0], s[1]), (1, 1));
        let missing = features(&mut i, "", "thompson", "");
        assert_eq!(compare(&a, &missing, &i)[Field::Given.index()], MISSING);
    }
}
