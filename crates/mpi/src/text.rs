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
            b'W' => {
                if is_vowel(w[i - 1]) {
                    w[i] = w[i - 1];
                }
            }
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

/// Jaro-Winkler similarity in 0..=1.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    strsim::jaro_winkler(a, b)
}

/// Optimal string alignment distance (edits and adjacent transpositions), capped work
/// for short identifiers.
pub fn edit_distance(a: &str, b: &str) -> usize {
    strsim::osa_distance(a, b)
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
    fn nicknames_are_symmetric() {
        assert!(is_nickname_pair("bill", "william"));
        assert!(is_nickname_pair("william", "bill"));
        assert!(!is_nickname_pair("bill", "robert"));
    }
}
