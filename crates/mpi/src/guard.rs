//! Safety guards: pairs that score as a match but that an identity team would never
//! link without a person looking.
//!
//! Fellegi-Sunter adds up fields as if they were independent evidence. They are not:
//! twins share everything but the given name, a son shares his father's name, address
//! and phone, and a birth date weighs so much that it can outvote a wrong family name
//! on its own. A false link merges two people's records, which is worse than a missed
//! one, so a pair that reaches the link threshold still goes to review when any guard
//! holds. The guard is named in the decision, the event log and the review queue.

use crate::compare::{Features, Field, Levels, MISSING};
use crate::intern::Interner;
use crate::text;
use serde::{Deserialize, Serialize};

/// Birth years at least this far apart are a generation, not a typo.
pub const GENERATION_YEARS: u32 = 15;

/// Identity fields besides the birth date that must agree before a pair links.
pub const CORROBORATING_FIELDS: usize = 2;

/// Why a pair that reached the link threshold was held for review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    /// Both carry identifiers of the same assigning authority and type, with no value
    /// in common: the issuer says they are two people.
    IdentifierDiffers,
    /// Administrative sex differs (both known).
    SexDiffers,
    /// Generational suffixes differ (Jr and Sr, II and III), or one has a suffix the
    /// other lacks and the birth dates do not agree exactly.
    SuffixDiffers,
    /// Birth years [`GENERATION_YEARS`] or more apart: a parent and child of the same
    /// name (Jr/Sr), not a typo.
    BirthDecadesApart,
    /// Given names differ beyond typos and nicknames, with the same birth date and
    /// family name.
    PossibleTwin,
    /// Fewer than [`CORROBORATING_FIELDS`] of given name, family name, street, phone and
    /// SSN agree, or fewer than three counting the birth date: no single field may
    /// carry a link on its own.
    TooFewFieldsAgree,
}

impl Guard {
    /// The name used in logs, the event log and the HTTP API.
    pub fn name(self) -> &'static str {
        match self {
            Guard::IdentifierDiffers => "identifier_differs",
            Guard::SexDiffers => "sex_differs",
            Guard::SuffixDiffers => "suffix_differs",
            Guard::BirthDecadesApart => "birth_decades_apart",
            Guard::PossibleTwin => "possible_twin",
            Guard::TooFewFieldsAgree => "too_few_fields_agree",
        }
    }

    /// What a reviewer is told.
    pub fn describe(self) -> &'static str {
        match self {
            Guard::IdentifierDiffers => {
                "identifiers of the same authority and type differ (possibly two patients)"
            }
            Guard::SexDiffers => "sex differs",
            Guard::SuffixDiffers => "generational suffixes differ (possible Jr/Sr)",
            Guard::BirthDecadesApart => {
                "birth years 15 or more apart (possible parent and child, Jr/Sr)"
            }
            Guard::PossibleTwin => {
                "given names differ beyond typos and nicknames with the same birth date and family name (possible twin)"
            }
            Guard::TooFewFieldsAgree => {
                "fewer than two identity fields besides the birth date agree (no single field may carry a link)"
            }
        }
    }
}

impl std::fmt::Display for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Identifier types that change with every visit or account, so two values from one
/// authority say nothing about two people (HL7 table 0203).
const ENCOUNTER_TYPES: &[&str] = &["AN", "ANC", "AND", "ANON", "ANT", "VN"];

/// Whether an identifier type names the person (a record number, a national id), so
/// that a second value from the same authority means a second person.
pub fn names_the_person(type_code: &str) -> bool {
    let t = type_code.trim();
    !ENCOUNTER_TYPES.iter().any(|e| e.eq_ignore_ascii_case(t))
}

/// The first guard that holds for a pair, in the order of [`Guard`]'s variants.
/// `identifiers_differ` is asked only when it matters.
pub(crate) fn first_guard(
    levels: &Levels,
    incoming: &Features,
    candidate: &Features,
    interner: &Interner,
    identifiers_differ: impl FnOnce() -> bool,
) -> Option<Guard> {
    two_people(levels, incoming, candidate, interner, identifiers_differ)
        .or_else(|| too_few_fields_agree(levels).then_some(Guard::TooFewFieldsAgree))
}

/// The guards that say a pair are two people (all but [`Guard::TooFewFieldsAgree`],
/// which says only that the evidence is thin).
pub(crate) fn two_people(
    levels: &Levels,
    incoming: &Features,
    candidate: &Features,
    interner: &Interner,
    identifiers_differ: impl FnOnce() -> bool,
) -> Option<Guard> {
    let level = |f: Field| levels[f.index()];
    let agrees = |f: Field, worst: u8| level(f) != MISSING && level(f) <= worst;
    if identifiers_differ() {
        return Some(Guard::IdentifierDiffers);
    }
    if level(Field::Sex) == 1 {
        return Some(Guard::SexDiffers);
    }
    let suffixes_differ = match (incoming.generation, candidate.generation) {
        (Some(a), Some(b)) => a != b,
        (None, None) => false,
        // A suffix one record lacks: only the same birth date says it was dropped.
        _ => level(Field::BirthDate) != 0,
    };
    if suffixes_differ {
        return Some(Guard::SuffixDiffers);
    }
    // Twins, a father and his son share name, address and phone, never the SSN.
    let ssn_vouches = ssn_vouches(levels, incoming, candidate, interner);
    if let (Some(a), Some(b), false) = (
        incoming.birth_year(interner),
        candidate.birth_year(interner),
        ssn_vouches,
    ) && a.abs_diff(b) >= GENERATION_YEARS
    {
        return Some(Guard::BirthDecadesApart);
    }
    let given_differs = level(Field::Given) == 3 && !one_slip_apart(incoming, candidate, interner);
    if given_differs && agrees(Field::Family, 2) && agrees(Field::BirthDate, 2) && !ssn_vouches {
        return Some(Guard::PossibleTwin);
    }
    None
}

/// Fewer than [`CORROBORATING_FIELDS`] identity fields besides the birth date agree,
/// and the SSN rule's pair does not either.
fn too_few_fields_agree(levels: &Levels) -> bool {
    let level = |f: Field| levels[f.index()];
    let agrees = |f: Field, worst: u8| level(f) != MISSING && level(f) <= worst;
    // The SSN rule's pair: the same SSN with the birth date or family name.
    let ssn_corroborated =
        level(Field::Ssn) == 0 && (agrees(Field::BirthDate, 2) || agrees(Field::Family, 1));
    let corroborating = [
        agrees(Field::Given, 2),
        agrees(Field::Family, 2),
        agrees(Field::Street, 1),
        agrees(Field::Phone, 1),
        agrees(Field::Ssn, 1),
    ]
    .iter()
    .filter(|a| **a)
    .count();
    corroborating < CORROBORATING_FIELDS && !ssn_corroborated
}

/// The same SSN, or one keyed with a slip that does not make it a neighbouring number:
/// twins are often issued consecutive numbers.
fn ssn_vouches(levels: &Levels, a: &Features, b: &Features, interner: &Interner) -> bool {
    match levels[Field::Ssn.index()] {
        0 => true,
        1 => {
            let number = |f: &Features| interner.resolve(f.ssn).parse::<u64>().ok();
            matches!((number(a), number(b)), (Some(x), Some(y)) if x.abs_diff(y) >= 10)
        }
        _ => false,
    }
}

/// Given names one keystroke apart ("Roy" and "Rxy", too short for Jaro-Winkler to
/// forgive), or one the other's initial ("J" and "John"): not two names.
fn one_slip_apart(a: &Features, b: &Features, interner: &Interner) -> bool {
    let (x, y) = (interner.resolve(a.given), interner.resolve(b.given));
    let is_initial = |i: &str, name: &str| i.chars().count() == 1 && name.starts_with(i);
    is_initial(x, y) || is_initial(y, x) || text::edit_distance_within(x, y, 1).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::compare;
    use crate::record::{PatientRecord, Sex};

    fn person(given: &str, family: &str, birth: &str) -> PatientRecord {
        let mut r = PatientRecord::new("s", given);
        r.given = Some(given.into());
        r.family = Some(family.into());
        r.birth_date = Some(birth.into());
        r.street = Some("12 Forbes Street".into());
        r.phone = Some("0298765432".into());
        r.sex = Some(Sex::Male);
        r
    }

    fn guard(a: &PatientRecord, b: &PatientRecord) -> Option<Guard> {
        let mut i = Interner::new();
        let (fa, fb) = (
            Features::from_record(a, &mut i),
            Features::from_record(b, &mut i),
        );
        first_guard(&compare(&fa, &fb, &i), &fa, &fb, &i, || false)
    }

    #[test]
    fn the_same_person_with_typos_and_nicknames_passes() {
        let a = person("William", "Thompson", "19800312");
        let b = person("Bill", "Thomson", "19801203");
        assert_eq!(guard(&a, &b), None);
    }

    #[test]
    fn twins_fathers_and_sons_are_held() {
        // (An SSN both share lifts the twin and generation guards: see `ssn_vouches`.)
        let a = person("William", "Thompson", "19800312");
        assert_eq!(
            guard(&a, &person("Gregory", "Thompson", "19800312")),
            Some(Guard::PossibleTwin)
        );
        assert_eq!(
            guard(&a, &person("W", "Thompson", "19800312")),
            None,
            "an initial is not another name"
        );
        assert_eq!(
            guard(&a, &person("William", "Thompson", "19520907")),
            Some(Guard::BirthDecadesApart)
        );
        // A one-digit error in the decade still leaves 30 years between them.
        assert_eq!(
            guard(&a, &person("William", "Thompson", "19500312")),
            Some(Guard::BirthDecadesApart)
        );
        let mut senior = person("William", "Thompson Sr.", "19800312");
        assert_eq!(
            guard(&a, &senior),
            None,
            "the same birth date: a dropped suffix"
        );
        senior.birth_date = Some("19800313".into());
        assert_eq!(guard(&a, &senior), Some(Guard::SuffixDiffers));
        let mut junior = person("William", "Thompson", "19800312");
        junior.suffix = Some("JR".into());
        assert_eq!(guard(&senior, &junior), Some(Guard::SuffixDiffers));
    }

    #[test]
    fn a_birth_date_and_one_name_do_not_link() {
        let mut a = person("Marion", "Singleton", "19661109");
        let mut b = person("Marion", "Other", "19661109");
        for r in [&mut a, &mut b] {
            r.street = None;
            r.phone = None;
        }
        assert_eq!(guard(&a, &b), Some(Guard::TooFewFieldsAgree));
        b.family = Some("Singelton".into());
        assert_eq!(guard(&a, &b), None, "given, family and birth date agree");
        b.family = Some("Other".into());
        b.ssn = Some("123456789".into());
        a.ssn = b.ssn.clone();
        assert_eq!(
            guard(&a, &b),
            None,
            "the SSN rule's pair: same SSN and birth date"
        );
    }

    #[test]
    fn a_different_sex_is_held() {
        let a = person("Francis", "Lee", "19800312");
        let mut b = person("Frances", "Lee", "19800312");
        b.sex = Some(Sex::Female);
        assert_eq!(guard(&a, &b), Some(Guard::SexDiffers));
    }

    #[test]
    fn visit_and_account_numbers_do_not_name_a_person() {
        assert!(names_the_person("MR"));
        assert!(names_the_person("SS"));
        assert!(!names_the_person("vn"));
        assert!(!names_the_person(" AN "));
    }
}
