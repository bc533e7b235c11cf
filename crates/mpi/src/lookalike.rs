//! Look-alikes: pairs of different people that share most of what a matcher compares
//! (twins, a father and his son, ...), and true duplicates built the same way, to show
//! that the safety guards hold them apart while the duplicates still link.
//!
//! The set is deterministic for a seed and made of invented names and addresses (no real
//! person's data). Each pair is two records from two sources (`CLINIC` first, then
//! `HOSPITAL`), ids `<kind>-<n>-a` and `<kind>-<n>-b`.
//!
//! **Twins' given names** are drawn from the same-sex name list until the second one
//! differs from the first beyond anything the matcher forgives: Jaro-Winkler below
//! 0.85, a different NYSIIS code, neither a nickname of the other (the nickname table
//! of [`crate::text`]) and a different initial. So twins differ only by given name,
//! and a pair the matcher links would be a false link, never a typo it was right to
//! forgive.

use crate::record::{Identifier, PatientRecord, Sex};
use crate::rng::SplitMix64;
use crate::synthetic::{FAMILY, GIVEN_F, GIVEN_M, STREET_TYPES, syllable_name, typo};
use crate::text;

/// What a pair is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LookAlikeKind {
    /// Same family name, birth date, sex, address and phone; given names clearly
    /// different.
    Twins,
    /// Same full name, address and phone; birth dates 24 to 31 years apart; no suffix.
    FatherSon,
    /// As [`LookAlikeKind::FatherSon`], with a generational suffix: `SR`/`JR` in the
    /// suffix field, `JR` on the son only, or `Jr.` written into the son's family name.
    FatherSonWithSuffix,
    /// Same given name, birth date and sex; everything else different. Every other pair
    /// carries nothing but name, birth date and sex (as many messages' PID does), the
    /// others different addresses and phones too.
    GivenBirthSex,
    /// Boy and girl twins whose names differ by a letter or two (Daniel and Danielle):
    /// everything the same but sex.
    DifferentSex,
    /// Same name, birth date, sex and town, each with a national health identifier from
    /// the same authority (`NHI`, type `NI`) of a different value.
    DifferentIdentifier,
    /// One person twice: a typo in the family name and a moved address.
    TrueDuplicate,
}

impl LookAlikeKind {
    pub const ALL: [LookAlikeKind; 7] = [
        LookAlikeKind::Twins,
        LookAlikeKind::FatherSon,
        LookAlikeKind::FatherSonWithSuffix,
        LookAlikeKind::GivenBirthSex,
        LookAlikeKind::DifferentSex,
        LookAlikeKind::DifferentIdentifier,
        LookAlikeKind::TrueDuplicate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LookAlikeKind::Twins => "twins",
            LookAlikeKind::FatherSon => "father-son",
            LookAlikeKind::FatherSonWithSuffix => "father-son-suffix",
            LookAlikeKind::GivenBirthSex => "given-birth-sex",
            LookAlikeKind::DifferentSex => "different-sex",
            LookAlikeKind::DifferentIdentifier => "different-identifier",
            LookAlikeKind::TrueDuplicate => "true-duplicate",
        }
    }

    /// Whether the two records are one person (and should link).
    pub fn same_person(self) -> bool {
        self == LookAlikeKind::TrueDuplicate
    }
}

/// Two records of one kind, `first` registered before `second`.
#[derive(Debug, Clone, PartialEq)]
pub struct LookAlikePair {
    pub kind: LookAlikeKind,
    pub first: PatientRecord,
    pub second: PatientRecord,
}

/// Masculine and feminine forms that differ by a letter or two.
const BOY_GIRL_NAMES: &[(&str, &str)] = &[
    ("daniel", "danielle"),
    ("paul", "paula"),
    ("francis", "frances"),
    ("eric", "erica"),
    ("robert", "roberta"),
    ("louis", "louise"),
    ("carl", "carla"),
    ("michael", "michaela"),
    ("gabriel", "gabrielle"),
    ("julian", "juliana"),
    ("justin", "justine"),
    ("adrian", "adriana"),
    ("christian", "christina"),
    ("marcel", "marcella"),
];

/// The generator of look-alike pairs.
pub struct LookAlikes {
    seed: u64,
}

impl LookAlikes {
    pub fn new(seed: u64) -> LookAlikes {
        LookAlikes { seed }
    }

    /// `count` pairs of every kind, kind after kind.
    pub fn all(&self, count: usize) -> Vec<LookAlikePair> {
        LookAlikeKind::ALL
            .iter()
            .flat_map(|&kind| self.pairs(kind, count))
            .collect()
    }

    /// `count` pairs of one kind; the same seed gives the same pairs.
    pub fn pairs(&self, kind: LookAlikeKind, count: usize) -> Vec<LookAlikePair> {
        (0..count).map(|n| self.pair(kind, n)).collect()
    }

    fn pair(&self, kind: LookAlikeKind, n: usize) -> LookAlikePair {
        let salt = LookAlikeKind::ALL
            .iter()
            .position(|&k| k == kind)
            .unwrap_or(0) as u64;
        let mut rng = SplitMix64::new(
            self.seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(salt << 32 | n as u64),
        );
        let id = |side: &str| format!("{}-{n}-{side}", kind.name());
        let male = match kind {
            LookAlikeKind::FatherSon | LookAlikeKind::FatherSonWithSuffix => true,
            LookAlikeKind::DifferentSex => true,
            _ => rng.chance(0.5),
        };
        let mut first = person(&mut rng, "CLINIC", &id("a"), male);
        let mut second = first.clone();
        second.source = "HOSPITAL".to_string();
        second.id = id("b");
        match kind {
            LookAlikeKind::Twins => {
                let given = first.given.clone().unwrap_or_default();
                second.given = Some(different_given(&mut rng, &given, male));
            }
            LookAlikeKind::FatherSon | LookAlikeKind::FatherSonWithSuffix => {
                let father_year = 1935 + rng.below(40);
                first.birth_date = Some(birth_date(&mut rng, father_year));
                let son_year = father_year + 24 + rng.below(8);
                second.birth_date = Some(birth_date(&mut rng, son_year));
                if kind == LookAlikeKind::FatherSonWithSuffix {
                    match n % 3 {
                        0 => {
                            first.suffix = Some("SR".into());
                            second.suffix = Some("JR".into());
                        }
                        1 => second.suffix = Some("JR".into()),
                        _ => {
                            let family = second.family.clone().unwrap_or_default();
                            second.family = Some(format!("{family} Jr."));
                        }
                    }
                }
            }
            LookAlikeKind::GivenBirthSex => {
                let other = person(&mut rng, "HOSPITAL", &id("b"), male);
                let family = first.family.clone().unwrap_or_default();
                second = PatientRecord {
                    given: first.given.clone(),
                    birth_date: first.birth_date.clone(),
                    sex: first.sex,
                    family: Some(different_family(&mut rng, &family)),
                    ..other
                };
                if n % 2 == 0 {
                    for r in [&mut first, &mut second] {
                        *r = PatientRecord {
                            family: r.family.take(),
                            given: r.given.take(),
                            birth_date: r.birth_date.take(),
                            sex: r.sex,
                            ..PatientRecord::new(r.source.clone(), r.id.clone())
                        };
                    }
                }
            }
            LookAlikeKind::DifferentSex => {
                let (boy, girl) = *rng.pick(BOY_GIRL_NAMES);
                first.given = Some(boy.to_string());
                second.given = Some(girl.to_string());
                second.sex = Some(Sex::Female);
            }
            LookAlikeKind::DifferentIdentifier => {
                let (street, _, _, _) = address(&mut rng);
                second.street = Some(street);
                second.phone = Some(phone(&mut rng));
                first
                    .identifiers
                    .push(Identifier::new(health_number(&mut rng), "NHI", "NI"));
                second
                    .identifiers
                    .push(Identifier::new(health_number(&mut rng), "NHI", "NI"));
            }
            LookAlikeKind::TrueDuplicate => {
                let family = first.family.clone().unwrap_or_default();
                second.family = Some(family_typo(&mut rng, &family));
                let (street, city, postcode, state) = address(&mut rng);
                second.street = Some(street);
                second.city = Some(city);
                second.postcode = Some(postcode);
                second.state = Some(state);
            }
        }
        LookAlikePair {
            kind,
            first,
            second,
        }
    }
}

fn person(rng: &mut SplitMix64, source: &str, id: &str, male: bool) -> PatientRecord {
    let mut r = PatientRecord::new(source, id);
    r.sex = Some(if male { Sex::Male } else { Sex::Female });
    r.given = Some(rng.pick(if male { GIVEN_M } else { GIVEN_F }).to_string());
    r.family = Some(if rng.chance(0.3) {
        rng.pick(FAMILY).to_string()
    } else {
        let parts = 2 + rng.below(2) as usize;
        syllable_name(rng, parts)
    });
    let year = 1940 + rng.below(65);
    r.birth_date = Some(birth_date(rng, year));
    let (street, city, postcode, state) = address(rng);
    r.street = Some(street);
    r.city = Some(city);
    r.postcode = Some(postcode);
    r.state = Some(state);
    r.phone = Some(phone(rng));
    r
}

fn birth_date(rng: &mut SplitMix64, year: u64) -> String {
    format!("{year}{:02}{:02}", 1 + rng.below(12), 1 + rng.below(28))
}

fn address(rng: &mut SplitMix64) -> (String, String, String, String) {
    let street = format!(
        "{} {} {}",
        1 + rng.below(300),
        syllable_name(rng, 2),
        rng.pick(STREET_TYPES)
    );
    let city = syllable_name(rng, 2);
    let postcode = format!("{:04}", 1000 + rng.below(9000));
    let state = rng
        .pick(&["nsw", "vic", "qld", "wa", "sa", "tas"])
        .to_string();
    (street, city, postcode, state)
}

fn phone(rng: &mut SplitMix64) -> String {
    format!("04{:08}", rng.below(100_000_000))
}

fn health_number(rng: &mut SplitMix64) -> String {
    format!("{:010}", rng.below(10_000_000_000))
}

/// Names the matcher would never take for each other (see the module's documentation).
fn clearly_different(a: &str, b: &str) -> bool {
    let (x, y) = (text::normalize_name(a), text::normalize_name(b));
    text::jaro_winkler(&x, &y) < 0.85
        && text::nysiis(&x) != text::nysiis(&y)
        && !text::is_nickname_pair(&x, &y)
        && x.chars().next() != y.chars().next()
}

fn different_given(rng: &mut SplitMix64, given: &str, male: bool) -> String {
    let names = if male { GIVEN_M } else { GIVEN_F };
    loop {
        let candidate = *rng.pick(names);
        if clearly_different(given, candidate) {
            return candidate.to_string();
        }
    }
}

fn different_family(rng: &mut SplitMix64, family: &str) -> String {
    loop {
        let parts = 2 + rng.below(2) as usize;
        let candidate = syllable_name(rng, parts);
        if clearly_different(family, &candidate) {
            return candidate;
        }
    }
}

/// One keyboard slip that the matcher still counts as the same name.
fn family_typo(rng: &mut SplitMix64, family: &str) -> String {
    loop {
        let candidate = typo(rng, family);
        if candidate != family && text::jaro_winkler(&candidate, family) >= 0.85 {
            return candidate;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_pairs() {
        let a = LookAlikes::new(19).all(5);
        assert_eq!(a, LookAlikes::new(19).all(5));
        assert_ne!(a, LookAlikes::new(20).all(5));
        assert_eq!(a.len(), 5 * LookAlikeKind::ALL.len());
    }

    #[test]
    fn each_kind_differs_where_it_says() {
        let set = LookAlikes::new(19);
        for p in set.pairs(LookAlikeKind::Twins, 40) {
            let (a, b) = (p.first.given.unwrap(), p.second.given.unwrap());
            assert!(clearly_different(&a, &b), "{a} / {b}");
            assert_eq!(p.first.birth_date, p.second.birth_date);
            assert_eq!(p.first.phone, p.second.phone);
        }
        for p in set.pairs(LookAlikeKind::FatherSon, 40) {
            let year = |r: &PatientRecord| r.birth_date.as_ref().unwrap()[..4].parse::<u32>();
            let gap = year(&p.second).unwrap() - year(&p.first).unwrap();
            assert!((24..=31).contains(&gap), "{gap}");
            assert_eq!(p.first.given, p.second.given);
        }
        for p in set.pairs(LookAlikeKind::FatherSonWithSuffix, 3) {
            assert_eq!(p.second.generation(), Some(crate::Generation::Junior));
        }
        for p in set.pairs(LookAlikeKind::DifferentIdentifier, 40) {
            assert_eq!(p.first.identifiers[0].authority, "NHI");
            assert_ne!(p.first.identifiers, p.second.identifiers);
        }
        for p in set.pairs(LookAlikeKind::TrueDuplicate, 40) {
            assert_ne!(p.first.family, p.second.family);
            assert_ne!(p.first.street, p.second.street);
        }
    }
}
