//! Synthetic patients with the errors real registration desks make (typos, nicknames,
//! transposed dates, moved addresses, missing fields), for benchmarks and tests. No real
//! person's data is involved.

use crate::record::{Identifier, PatientRecord, Sex};
use crate::rng::SplitMix64;
use crate::text::nickname_table;

pub(crate) const GIVEN_F: &[&str] = &[
    "mary",
    "patricia",
    "jennifer",
    "linda",
    "elizabeth",
    "barbara",
    "susan",
    "jessica",
    "sarah",
    "karen",
    "nancy",
    "lisa",
    "margaret",
    "betty",
    "sandra",
    "ashley",
    "kimberly",
    "emily",
    "donna",
    "michelle",
    "carol",
    "amanda",
    "melissa",
    "deborah",
    "stephanie",
    "rebecca",
    "laura",
    "sharon",
    "cynthia",
    "kathleen",
    "amy",
    "shirley",
    "angela",
    "helen",
    "anna",
    "brenda",
    "pamela",
    "nicole",
    "samantha",
    "katherine",
    "christine",
    "emma",
    "olivia",
    "sophia",
    "chloe",
    "grace",
    "zoe",
    "isabella",
    "mia",
    "ruby",
    "abigail",
    "alexandra",
    "catherine",
    "madison",
];
pub(crate) const GIVEN_M: &[&str] = &[
    "james",
    "john",
    "robert",
    "michael",
    "william",
    "david",
    "richard",
    "joseph",
    "thomas",
    "charles",
    "christopher",
    "daniel",
    "matthew",
    "anthony",
    "donald",
    "mark",
    "paul",
    "steven",
    "andrew",
    "kenneth",
    "joshua",
    "kevin",
    "brian",
    "george",
    "edward",
    "ronald",
    "timothy",
    "jason",
    "jeffrey",
    "ryan",
    "jacob",
    "gary",
    "nicholas",
    "eric",
    "stephen",
    "jonathan",
    "larry",
    "justin",
    "scott",
    "brandon",
    "benjamin",
    "samuel",
    "gregory",
    "frank",
    "alexander",
    "patrick",
    "jack",
    "liam",
    "noah",
    "oliver",
    "lachlan",
    "cooper",
    "frederick",
    "harrison",
];
pub(crate) const FAMILY: &[&str] = &[
    "smith",
    "johnson",
    "williams",
    "brown",
    "jones",
    "garcia",
    "miller",
    "davis",
    "rodriguez",
    "martinez",
    "hernandez",
    "lopez",
    "gonzalez",
    "wilson",
    "anderson",
    "thomas",
    "taylor",
    "moore",
    "jackson",
    "martin",
    "lee",
    "perez",
    "thompson",
    "white",
    "harris",
    "sanchez",
    "clark",
    "ramirez",
    "lewis",
    "robinson",
    "walker",
    "young",
    "allen",
    "king",
    "wright",
    "scott",
    "torres",
    "nguyen",
    "hill",
    "flores",
    "green",
    "adams",
    "nelson",
    "baker",
    "hall",
    "rivera",
    "campbell",
    "mitchell",
    "carter",
    "roberts",
    "kelly",
    "murphy",
    "ryan",
    "obrien",
];
const SYLLABLES: &[&str] = &[
    "an", "ber", "cal", "dor", "el", "fen", "gar", "hol", "is", "jan", "kel", "lor", "mar", "nor",
    "ol", "per", "quin", "ros", "sen", "tor", "ul", "van", "wes", "yar", "zel", "ash", "brook",
    "cliff", "dale", "field", "ford", "ham", "ley", "ton", "wood", "worth", "by", "stein", "berg",
    "mann", "ski", "ova", "ez", "son", "sen", "ard", "ett", "ing", "ow", "ay",
];
pub(crate) const STREET_TYPES: &[&str] = &[
    "street", "road", "avenue", "place", "crescent", "court", "drive", "lane",
];

/// Options of [`SyntheticPopulation`].
#[derive(Debug, Clone)]
pub struct SyntheticOptions {
    pub seed: u64,
    /// Distinct towns (each with its own postcode).
    pub towns: usize,
    /// Chance that a variant record has an error in a given field.
    pub error_rate: f64,
    /// Chance that a variant record's patient has moved (new street, town and postcode).
    pub moved_rate: f64,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        SyntheticOptions {
            seed: 42,
            towns: 3000,
            error_rate: 0.08,
            moved_rate: 0.1,
        }
    }
}

/// A deterministic population of synthetic people: `person(n)` is always the same
/// person for the same seed, and `variant` gives a record of them with errors.
pub struct SyntheticPopulation {
    options: SyntheticOptions,
}

pub(crate) fn syllable_name(rng: &mut SplitMix64, parts: usize) -> String {
    (0..parts).map(|_| *rng.pick(SYLLABLES)).collect()
}

impl SyntheticPopulation {
    pub fn new(options: SyntheticOptions) -> Self {
        SyntheticPopulation { options }
    }

    fn town(&self, n: u64) -> (String, String) {
        let mut rng = SplitMix64::new(self.options.seed ^ 0x7077 ^ n.wrapping_mul(0x9e37));
        let name = syllable_name(&mut rng, 2 + (n % 2) as usize);
        (name, format!("{:04}", 1000 + n * 7 % 9000))
    }

    fn address(&self, rng: &mut SplitMix64) -> (String, String, String) {
        let street = format!(
            "{} {} {}",
            1 + rng.below(300),
            syllable_name(rng, 2),
            rng.pick(STREET_TYPES)
        );
        let (city, postcode) = self.town(rng.below(self.options.towns as u64));
        (street, city, postcode)
    }

    /// The clean record of person `n` (source `"truth"`, id `n`).
    pub fn person(&self, n: u64) -> PatientRecord {
        let mut rng = SplitMix64::new(self.options.seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ n);
        let female = rng.chance(0.5);
        let mut r = PatientRecord::new("truth", n.to_string());
        r.sex = Some(if female { Sex::Female } else { Sex::Male });
        r.given = Some(if rng.chance(0.7) {
            rng.pick(if female { GIVEN_F } else { GIVEN_M }).to_string()
        } else {
            syllable_name(&mut rng, 2)
        });
        r.middle = rng
            .chance(0.5)
            .then(|| rng.pick(if female { GIVEN_F } else { GIVEN_M }).to_string());
        r.family = Some(if rng.chance(0.3) {
            rng.pick(FAMILY).to_string()
        } else {
            {
                let parts = 2 + rng.below(2) as usize;
                syllable_name(&mut rng, parts)
            }
        });
        r.birth_date = Some(format!(
            "{}{:02}{:02}",
            1920 + rng.below(100),
            1 + rng.below(12),
            1 + rng.below(28)
        ));
        let (street, city, postcode) = self.address(&mut rng);
        r.street = Some(street);
        r.city = Some(city);
        r.postcode = Some(postcode);
        r.state = Some(["nsw", "vic", "qld", "wa", "sa", "tas"][rng.below(6) as usize].to_string());
        r.phone = rng
            .chance(0.8)
            .then(|| format!("04{:08}", rng.below(100_000_000)));
        r.ssn = rng
            .chance(0.6)
            .then(|| format!("{:09}", rng.below(1_000_000_000)));
        r
    }

    /// A record of person `n` as source `source` might have registered it: errors in
    /// some fields, maybe a nickname, a moved address, missing values. `variant_seed`
    /// picks which errors.
    pub fn variant(&self, n: u64, source: &str, id: &str, variant_seed: u64) -> PatientRecord {
        let mut r = self.person(n);
        r.source = source.to_string();
        r.id = id.to_string();
        r.identifiers = vec![Identifier::new(id, source, "MR")];
        let mut rng = SplitMix64::new(variant_seed ^ n.rotate_left(17) ^ self.options.seed);
        let e = self.options.error_rate;
        if rng.chance(e) {
            if let Some(g) = r.given.as_mut() {
                let nick = nickname_table()
                    .iter()
                    .find(|(_, formal)| formal == g)
                    .map(|(n, _)| n);
                *g = match nick {
                    Some(n) if rng.chance(0.6) => n.to_string(),
                    _ => typo(&mut rng, g),
                };
            }
        }
        if rng.chance(e) {
            r.family = r.family.as_deref().map(|f| typo(&mut rng, f));
        }
        if rng.chance(e / 2.0) {
            r.middle = None;
        }
        if rng.chance(e) {
            r.birth_date = r.birth_date.as_deref().map(|d| date_error(&mut rng, d));
        }
        if rng.chance(self.options.moved_rate) {
            let (street, city, postcode) = self.address(&mut rng);
            r.street = Some(street);
            r.city = Some(city);
            r.postcode = Some(postcode);
        } else if rng.chance(e) {
            r.street = r.street.as_deref().map(|s| typo(&mut rng, s));
        }
        if rng.chance(e) {
            r.phone = if rng.chance(0.5) {
                None
            } else {
                Some(format!("04{:08}", rng.below(100_000_000)))
            };
        }
        if rng.chance(e) {
            r.ssn = if rng.chance(0.5) {
                None
            } else {
                r.ssn.as_deref().map(|s| typo_digit(&mut rng, s))
            };
        }
        if rng.chance(e / 2.0) {
            r.sex = None;
        }
        r
    }
}

/// One keyboard-style error: substitution, deletion, insertion or adjacent swap.
pub(crate) fn typo(rng: &mut SplitMix64, s: &str) -> String {
    let mut c: Vec<char> = s.chars().collect();
    if c.len() < 2 {
        return s.to_string();
    }
    let i = rng.below(c.len() as u64 - 1) as usize;
    let letter = (b'a' + rng.below(26) as u8) as char;
    match rng.below(4) {
        0 => c[i] = letter,
        1 => {
            c.remove(i);
        }
        2 => c.insert(i, letter),
        _ => c.swap(i, i + 1),
    }
    c.into_iter().collect()
}

fn typo_digit(rng: &mut SplitMix64, s: &str) -> String {
    let mut b: Vec<u8> = s.bytes().collect();
    if b.is_empty() {
        return s.to_string();
    }
    let i = rng.below(b.len() as u64) as usize;
    b[i] = b'0' + rng.below(10) as u8;
    String::from_utf8(b).unwrap_or_default()
}

/// Day and month swapped, one digit off, or a neighbouring day.
fn date_error(rng: &mut SplitMix64, d: &str) -> String {
    if d.len() != 8 {
        return d.to_string();
    }
    match rng.below(3) {
        0 if d[6..8].parse::<u32>().is_ok_and(|day| day <= 12) => {
            format!("{}{}{}", &d[..4], &d[6..8], &d[4..6])
        }
        1 => {
            let day: u32 = d[6..8].parse().unwrap_or(1);
            format!("{}{:02}", &d[..6], if day > 1 { day - 1 } else { day + 1 })
        }
        _ => {
            let mut b: Vec<u8> = d.bytes().collect();
            let i = 4 + rng.below(4) as usize;
            b[i] = b'0' + rng.below(10) as u8;
            String::from_utf8(b).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_people() {
        let a = SyntheticPopulation::new(SyntheticOptions::default());
        let b = SyntheticPopulation::new(SyntheticOptions::default());
        assert_eq!(a.person(7), b.person(7));
        assert_ne!(a.person(7), a.person(8));
        assert_eq!(a.variant(7, "lab", "L7", 1), b.variant(7, "lab", "L7", 1));
    }
}
