//! String normalisation, phonetic codes and similarity measures used by comparisons and
//! blocking. Everything here is pure and allocation-light: it runs for every candidate.

/// Lower-cases, keeps letters, digits and single spaces; accents are not folded
/// (non-ASCII letters are kept as they are, lower-cased).
pub fn normalize_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut pending_space = false;
    for c in raw.chars() {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.extend(c.to_lowercase());
        } else {
            // Punctuation and hyphens separate words ("smith-jones" -> "smith jones").
            pending_space = true;
        }
    }
    out
}

/// A name reduced to its letters, lower-cased: "O'Brien" and "obrien" compare equal.
pub fn normalize_name(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Only the digits of a value (phone numbers, SSNs, postcodes, dates).
pub fn digits(raw: &str) -> String {
    raw.chars().filter(char::is_ascii_digit).collect()
}

/// The NYSIIS phonetic code of a name (New York State Identification and Intelligence
/// System, 1970), untruncated. Non-ASCII letters are dropped.
pub fn nysiis(name: &str) -> String {
    let mut w: Vec<u8> = name
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if w.is_empty() {
        return String::new();
    }
    // Prefixes.
    if w.starts_with(b"MAC") {
        w[1] = b'C';
    } else if w.starts_with(b"KN") {
        w[0] = b'N';
    } else if w[0] == b'K' {
        w[0] = b'C';
    } else if w.starts_with(b"PH") || w.starts_with(b"PF") {
        w[0] = b'F';
        w[1] = b'F';
    } else if w.starts_with(b"SCH") {
        w[1] = b'S';
        w[2] = b'S';
    }
    // Suffixes.
    let n = w.len();
    if n >= 2 {
        let tail = [w[n - 2], w[n - 1]];
        match &tail {
            b"EE" | b"IE" => {
                w.truncate(n - 2);
                w.push(b'Y');
            }
            b"DT" | b"RT" | b"RD" | b"NT" | b"ND" => {
                w.truncate(n - 2);
                w.push(b'D');
            }
            _ => {}
        }
    }
    let is_vowel = |b: u8| matches!(b, b'A' | b'E' | b'I' | b'O' | b'U');
    let mut key = vec![w[0]];
    let mut i = 1;
    while i < w.len() {
        let c = w[i];
        let next = w.get(i + 1).copied();
        match c {
            b'E' if next == Some(b'V') => {
                w[i] = b'A';
                w[i + 1] = b'F';
            }
            b'A' | b'E' | b'I' | b'O' | b'U' => w[i] = b'A',
            b'Q' => w[i] = b'G',
            b'Z' => w[i] = b'S',
            b'M' => w[i] = b'N',
            b'K' => {
                if next == Some(b'N') {
                    w[i] = b'N';
                } else {
                    w[i] = b'C';
                }
            }
            b'S' if next == Some(b'C') && w.get(i + 2) == Some(&b'H') => {
                w[i + 1] = b'S';
                w[i + 2] = b'S';
            }
            b'P' if next == Some(b'H') => {
                w[i] = b'F';
                w[i + 1] = b'F';
            }
            b'H' => {
                let prev = w[i - 1];
                if !is_vowel(prev) || next.is_some_and(|n| !is_vowel(n)) {
                    w[i] = prev;
                }
            }
            b'W' if is_vowel(w[i - 1]) => w[i] = w[i - 1],
            _ => {}
        }
        if key.last() != Some(&w[i]) {
            key.push(w[i]);
        }
        i += 1;
    }
    if key.len() > 1 && key.last() == Some(&b'S') {
        key.pop();
    }
    if key.len() > 2 && key.ends_with(b"AY") {
        key.truncate(key.len() - 2);
        key.push(b'Y');
    }
    if key.len() > 1 && key.last() == Some(&b'A') {
        key.pop();
    }
    String::from_utf8(key).unwrap_or_default()
}

/// The American Soundex code (letter + three digits).
pub fn soundex(name: &str) -> String {
    let code = |b: u8| match b {
        b'B' | b'F' | b'P' | b'V' => b'1',
        b'C' | b'G' | b'J' | b'K' | b'Q' | b'S' | b'X' | b'Z' => b'2',
        b'D' | b'T' => b'3',
        b'L' => b'4',
        b'M' | b'N' => b'5',
        b'R' => b'6',
        _ => b'0',
    };
    let mut letters = name
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|b| b.to_ascii_uppercase());
    let Some(first) = letters.next() else {
        return String::new();
    };
    let mut out = vec![first];
    let mut last = code(first);
    for b in letters {
        let c = code(b);
        if c != b'0' && c != last {
            out.push(c);
            if out.len() == 4 {
                break;
            }
        }
        // H and W do not separate equal codes; vowels do.
        if b != b'H' && b != b'W' {
            last = c;
        }
    }
    while out.len() < 4 {
        out.push(b'0');
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Jaro-Winkler similarity in 0..=1 (prefix scale 0.1, up to 4 characters, applied
/// when Jaro exceeds 0.7), equal to `strsim::jaro_winkler`. ASCII strings of up to 64
/// bytes, which is nearly every name and address line, take an allocation-free path.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if a.is_ascii() && b.is_ascii() && x.len() <= 64 && y.len() <= 64 {
        let sim = jaro_ascii(x, y);
        if sim > 0.7 {
            let prefix = x.iter().zip(y).take(4).take_while(|(p, q)| p == q).count();
            sim + 0.1 * prefix as f64 * (1.0 - sim)
        } else {
            sim
        }
    } else {
        strsim::jaro_winkler(a, b)
    }
}

/// Jaro similarity of two ASCII strings of at most 64 bytes, matched characters kept
/// in bit masks.
fn jaro_ascii(a: &[u8], b: &[u8]) -> f64 {
    if a.is_empty() && b.is_empty() {
        return 1.0;
    }
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let (mut a_flags, mut b_flags) = (0u64, 0u64);
    let mut matches = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        for (j, &cb) in b.iter().enumerate().take(hi).skip(lo) {
            if b_flags & (1 << j) == 0 && ca == cb {
                a_flags |= 1 << i;
                b_flags |= 1 << j;
                matches += 1;
                break;
            }
        }
    }
    if matches == 0 {
        return 0.0;
    }
    let mut transpositions = 0usize;
    let mut bf = b_flags;
    let mut af = a_flags;
    while af != 0 {
        let i = af.trailing_zeros() as usize;
        let j = bf.trailing_zeros() as usize;
        if a[i] != b[j] {
            transpositions += 1;
        }
        af &= af - 1;
        bf &= bf - 1;
    }
    let m = matches as f64;
    let t = (transpositions / 2) as f64;
    (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0
}

/// Optimal string alignment distance (edits and adjacent transpositions).
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
}

/// `Some(distance)` when `a` and `b` are within `limit` edits (OSA), `None` otherwise.
/// Callers only need to know whether values are a few edits apart, so the work stops
/// early, and short ASCII values are computed on the stack.
pub fn edit_distance_within(a: &str, b: &str, limit: usize) -> Option<usize> {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    if x.len().abs_diff(y.len()) > limit {
        return None;
    }
    if !(a.is_ascii() && b.is_ascii() && x.len() < 32 && y.len() < 32) {
        let d = strsim::osa_distance(a, b);
        return (d <= limit).then_some(d);
    }
    // Three rolling rows of the OSA table.
    let mut prev2 = [0usize; 33];
    let mut prev: [usize; 33] = std::array::from_fn(|j| j);
    let mut cur = [0usize; 33];
    for i in 1..=x.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=y.len() {
            let cost = usize::from(x[i - 1] != y[j - 1]);
            let mut v = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && x[i - 1] == y[j - 2] && x[i - 2] == y[j - 1] {
                v = v.min(prev2[j - 2] + 1);
            }
            cur[j] = v;
            row_min = row_min.min(v);
        }
        if row_min > limit {
            return None;
        }
        prev2 = prev;
        prev = cur;
    }
    let d = prev[y.len()];
    (d <= limit).then_some(d)
}

/// Common English given-name diminutives, as (nickname, formal name) pairs.
const NICKNAMES: &[(&str, &str)] = &[
    ("abby", "abigail"),
    ("alex", "alexander"),
    ("alex", "alexandra"),
    ("andy", "andrew"),
    ("ben", "benjamin"),
    ("beth", "elizabeth"),
    ("bill", "william"),
    ("billy", "william"),
    ("bob", "robert"),
    ("bobby", "robert"),
    ("cathy", "catherine"),
    ("chris", "christopher"),
    ("chris", "christine"),
    ("dan", "daniel"),
    ("danny", "daniel"),
    ("dave", "david"),
    ("dick", "richard"),
    ("ed", "edward"),
    ("eddie", "edward"),
    ("fred", "frederick"),
    ("greg", "gregory"),
    ("jack", "john"),
    ("jake", "jacob"),
    ("jim", "james"),
    ("jimmy", "james"),
    ("joe", "joseph"),
    ("jon", "jonathan"),
    ("kate", "katherine"),
    ("katie", "katherine"),
    ("liz", "elizabeth"),
    ("maggie", "margaret"),
    ("matt", "matthew"),
    ("mike", "michael"),
    ("nick", "nicholas"),
    ("pat", "patricia"),
    ("pat", "patrick"),
    ("peggy", "margaret"),
    ("rick", "richard"),
    ("rob", "robert"),
    ("sam", "samuel"),
    ("sam", "samantha"),
    ("steve", "stephen"),
    ("steve", "steven"),
    ("sue", "susan"),
    ("tom", "thomas"),
    ("tony", "anthony"),
    ("will", "william"),
];

/// True when one given name is a known diminutive of the other ("bill" / "william").
pub fn is_nickname_pair(a: &str, b: &str) -> bool {
    NICKNAMES
        .iter()
        .any(|&(n, f)| (n == a && f == b) || (n == b && f == a))
}

/// The nickname table, for the synthetic generator.
pub(crate) fn nickname_table() -> &'static [(&'static str, &'static str)] {
    NICKNAMES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nysiis_matches_published_examples() {
        assert_eq!(nysiis("MACINTOSH"), "MCANT");
        assert_eq!(nysiis("KNUTH"), "NAT");
        assert_eq!(nysiis("PHILLIPSON"), "FALAPSAN");
        assert_eq!(nysiis("SCHOENHOEFT"), "SANAFT");
        assert_eq!(nysiis("johnson"), nysiis("jonson"));
        assert_eq!(nysiis(""), "");
    }

    #[test]
    fn soundex_matches_published_examples() {
        assert_eq!(soundex("Robert"), "R163");
        assert_eq!(soundex("Rupert"), "R163");
        assert_eq!(soundex("Tymczak"), "T522");
        assert_eq!(soundex("Ashcraft"), "A261");
        assert_eq!(soundex("Pfister"), "P236");
    }

    #[test]
    fn normalisation_drops_punctuation_and_case() {
        assert_eq!(normalize_name("O'Brien"), "obrien");
        assert_eq!(normalize_text("  12  Forbes-St. "), "12 forbes st");
        assert_eq!(digits("(02) 9876-5432"), "0298765432");
    }

    #[test]
    fn fast_jaro_winkler_agrees_with_strsim() {
        let words = [
            "",
            "a",
            "martha",
            "marhta",
            "dwayne",
            "duane",
            "dixon",
            "dicksonx",
            "jones",
            "johnson",
            "william",
            "williams",
            "crate",
            "trace",
            "abcdefghijklmnopqrstuvwxyz",
            "12 forbes street",
            "21 forbes st",
            "müller",
            "muller",
        ];
        for a in words {
            for b in words {
                let fast = jaro_winkler(a, b);
                let reference = strsim::jaro_winkler(a, b);
                assert!(
                    (fast - reference).abs() < 1e-12,
                    "{a:?} {b:?}: {fast} vs {reference}"
                );
            }
        }
    }

    #[test]
    fn bounded_edit_distance_agrees_with_strsim() {
        let words = [
            "",
            "1",
            "19800312",
            "19801203",
            "19800313",
            "19083012",
            "2000",
            "2001",
            "0212",
            "1020",
            "123456789",
            "123465789",
            "923456781",
        ];
        for a in words {
            for b in words {
                let d = strsim::osa_distance(a, b);
                for limit in 0..4 {
                    assert_eq!(
                        edit_distance_within(a, b, limit),
                        (d <= limit).then_some(d),
                        "{a:?} {b:?} {limit}"
                    );
                }
            }
        }
    }

    #[test]
    fn nicknames_are_symmetric() {
        assert!(is_nickname_pair("bill", "william"));
        assert!(is_nickname_pair("william", "bill"));
        assert!(!is_nickname_pair("bill", "robert"));
    }
}
