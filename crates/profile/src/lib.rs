//! Feed profiling for onboarding a sender: what its messages really contain.
//!
//! A [`Profiler`] is fed messages one at a time ([`Profiler::add`]) and keeps counts
//! only: message types and trigger events, versions, delimiters and character sets;
//! per segment and field how often it is populated, its distinct values (bounded), the
//! top values of coded fields, lengths and formats (dates, numbers, text); Z-segments
//! with their fields; codes of mapped fields that no loaded map translates; and the
//! deviations from the standard the validator (`hl7v2-spec`) reports, by kind and path.
//! [`Profiler::report`] gives it all as a [`Report`] (JSON through serde,
//! [`Report::to_html`] for a page); [`Profiler::suggest_profile`] writes a TOML
//! conformance profile the validator accepts: fields always present are required,
//! fields never seen are forbidden (so a message with a field never seen before is
//! flagged), coded fields with few values get their value set, and kinds of deviation
//! the feed already shows are relaxed to warnings.
//!
//! No I/O: the caller reads files or the journal.

mod report;
mod suggest;

// The unit tests share the bench's corpus loader, which names this crate
// `profile` (its `profile_all` is the bench's, unused here).
#[cfg(test)]
extern crate self as profile;
#[cfg(test)]
#[allow(dead_code)]
#[path = "../benches/corpus/mod.rs"]
mod corpus;

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use hl7v2::Message;
use hl7v2_spec::validate::{self, Place, Severity, ValidationOptions};
use terminology::{Scope, Terminology};

pub use report::{FieldReport, Report, SegmentReport};

/// The fields whose codes are checked against the terminology by default.
pub const CODED_FIELDS: [&str; 6] = ["OBX-3", "OBR-4", "OBX-6", "AL1-3", "RXE-2", "DG1-3"];

/// How much a profile keeps.
#[derive(Clone, Debug)]
pub struct Options {
    /// Distinct values kept per field; past it only counts grow.
    pub max_distinct: usize,
    /// Top values listed per coded field.
    pub top: usize,
    /// Run the validator on each message (deviations from the standard).
    pub validate: bool,
    /// Check these fields' codes against the terminology, when one is given.
    pub coded_fields: Vec<String>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_distinct: 200,
            top: 10,
            validate: true,
            coded_fields: CODED_FIELDS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// The shape of values seen in a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Format {
    Date,
    Number,
    Text,
}

impl Format {
    /// Every format, in `FieldStats::formats` order.
    pub(crate) const ALL: [Format; 3] = [Format::Date, Format::Number, Format::Text];

    fn of(value: &[u8]) -> Format {
        let digits = value.iter().all(u8::is_ascii_digit);
        if digits
            && matches!(value.len(), 8 | 12 | 14)
            && value.starts_with(b"1") | value.starts_with(b"2")
        {
            return Format::Date;
        }
        if value.len() > 14
            && value[..14].iter().all(u8::is_ascii_digit)
            && matches!(value[14], b'.' | b'+' | b'-')
        {
            return Format::Date;
        }
        let number = !value.is_empty()
            && value.iter().enumerate().all(|(i, b)| {
                b.is_ascii_digit() || *b == b'.' || (i == 0 && matches!(b, b'-' | b'+'))
            })
            && value.iter().any(u8::is_ascii_digit)
            && value.iter().filter(|b| **b == b'.').count() <= 1;
        if number { Format::Number } else { Format::Text }
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct FieldStats {
    pub(crate) populated: u64,
    pub(crate) values: ValueCounts,
    /// Values not kept because `values` was full.
    pub(crate) overflow: u64,
    pub(crate) min_length: usize,
    pub(crate) max_length: usize,
    /// How many values had each format, by `Format as usize`.
    pub(crate) formats: [u64; 3],
    pub(crate) repeated: u64,
}

/// A segment's field statistics by position, field n at index n - 1 (`None`
/// until the field is first seen valued): a tree keyed by position cost a
/// search per field of every segment.
#[derive(Clone, Debug, Default)]
pub(crate) struct FieldTable(Vec<Option<FieldStats>>);

impl FieldTable {
    /// Field `n`'s statistics (1-based), added empty when first seen.
    fn entry(&mut self, n: usize) -> &mut FieldStats {
        let i = n.saturating_sub(1);
        if self.0.len() <= i {
            self.0.resize_with(i + 1, || None);
        }
        self.0[i].get_or_insert_with(FieldStats::default)
    }

    /// Field `n`'s statistics, when it was ever valued.
    pub(crate) fn get(&self, n: &usize) -> Option<&FieldStats> {
        n.checked_sub(1)
            .and_then(|i| self.0.get(i))
            .and_then(Option::as_ref)
    }

    /// Every field ever valued, by position, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &FieldStats)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (i + 1, f)))
    }

    /// The highest position ever valued (0 when none was).
    pub(crate) fn last(&self) -> usize {
        self.iter().last().map_or(0, |(n, _)| n)
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct SegmentStats {
    pub(crate) occurrences: u64,
    pub(crate) messages: u64,
    pub(crate) fields: FieldTable,
    /// The data types of its fields (from the standard, when it defines the segment).
    pub(crate) types: BTreeMap<usize, &'static str>,
}

/// Counts over many messages of one feed.
pub struct Profiler {
    options: Options,
    terminology: Option<Arc<Terminology>>,
    coded: Vec<(String, usize)>,
    pub(crate) messages: u64,
    pub(crate) unparsed: u64,
    pub(crate) types: BTreeMap<String, u64>,
    pub(crate) versions: BTreeMap<String, u64>,
    pub(crate) delimiters: BTreeMap<String, u64>,
    pub(crate) charsets: BTreeMap<String, u64>,
    pub(crate) segments: BTreeMap<String, SegmentStats>,
    /// (kind, severity) -> path without occurrences -> count: a finding of a kind and
    /// path seen before is counted without building a key. Hashed: the report sorts.
    pub(crate) deviations: HashMap<(&'static str, &'static str), ValueCounts, ValueHash>,
    /// (sender, field, system, code) -> count.
    pub(crate) unmapped: BTreeMap<(String, String, String, String), u64>,
}

impl Profiler {
    /// A profiler; with `terminology`, codes of `options.coded_fields` that no map
    /// translates are counted.
    pub fn new(options: Options, terminology: Option<Arc<Terminology>>) -> Profiler {
        let coded = options
            .coded_fields
            .iter()
            .filter_map(|f| {
                let (seg, n) = f.split_once('-')?;
                Some((seg.to_owned(), n.parse().ok()?))
            })
            .collect();
        Profiler {
            options,
            terminology,
            coded,
            messages: 0,
            unparsed: 0,
            types: BTreeMap::new(),
            versions: BTreeMap::new(),
            delimiters: BTreeMap::new(),
            charsets: BTreeMap::new(),
            segments: BTreeMap::new(),
            deviations: HashMap::default(),
            unmapped: BTreeMap::new(),
        }
    }

    /// Counts one message; bytes that do not parse are counted as such.
    pub fn add(&mut self, bytes: &[u8]) {
        let Ok(message) = Message::parse(bytes) else {
            self.unparsed += 1;
            return;
        };
        self.add_message(&message);
    }

    /// Counts one parsed message.
    pub fn add_message(&mut self, message: &Message<'_>) {
        self.messages += 1;
        let msh = message.segment(0);
        let text = |n: usize, c: usize| -> String {
            msh.field(n)
                .map(|f| f.repetition(1).component(c).text().into_owned())
                .unwrap_or_default()
        };
        let kind = format!("{}^{}", text(9, 1), text(9, 2));
        *self.types.entry(kind).or_default() += 1;
        let version = text(12, 1);
        let spec = validate::spec_for(message, None).spec;
        *self
            .versions
            .entry(if version.is_empty() {
                "(none)".to_owned()
            } else {
                version
            })
            .or_default() += 1;
        let delimiters = format!(
            "{}{}",
            String::from_utf8_lossy(msh.field(1).map_or(&b""[..], |f| f.raw())),
            String::from_utf8_lossy(msh.field(2).map_or(&b""[..], |f| f.raw()))
        );
        *self.delimiters.entry(delimiters).or_default() += 1;
        let charset = msh
            .field(18)
            .map(|f| String::from_utf8_lossy(f.raw()).into_owned())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "(none)".to_owned());
        *self.charsets.entry(charset).or_default() += 1;

        let mut seen_here: Vec<&[u8]> = Vec::new();
        for segment in message.segments() {
            let name = segment.name_str();
            let stats = match self.segments.get_mut(name) {
                Some(s) => s,
                None => {
                    let mut s = SegmentStats::default();
                    if let Some(def) = spec.segment(name) {
                        for f in &def.fields {
                            s.types.insert(usize::from(f.seq), f.data_type);
                        }
                    }
                    self.segments.entry(name.to_owned()).or_insert(s)
                }
            };
            stats.occurrences += 1;
            if !seen_here.contains(&segment.name()) {
                seen_here.push(segment.name());
                stats.messages += 1;
            }
            // One pass over the fields: `segment.field(n)` would find each again.
            for (i, field) in segment.fields().enumerate() {
                let n = i + 1;
                let raw = field.raw();
                if raw.is_empty() {
                    continue;
                }
                let f = stats.fields.entry(n);
                f.populated += 1;
                if f.populated == 1 || raw.len() < f.min_length {
                    f.min_length = raw.len();
                }
                f.max_length = f.max_length.max(raw.len());
                let first = if n > 2 || !segment.is_header() {
                    field.repetition(1)
                } else {
                    field
                };
                if n > 2 && first.raw().len() != raw.len() {
                    f.repeated += 1;
                }
                // The value that identifies: component 1 of the first repetition.
                let key = if n > 2 || !segment.is_header() {
                    first.component(1)
                } else {
                    first
                };
                f.formats[Format::of(key.raw()) as usize] += 1;
                // UTF-8 (nearly every value) is read without the lossy conversion's
                // chunking.
                let value = match std::str::from_utf8(key.raw()) {
                    Ok(text) => std::borrow::Cow::Borrowed(text),
                    Err(_) => String::from_utf8_lossy(key.raw()),
                };
                if let Some(count) = f.values.get_mut(value.as_ref()) {
                    *count += 1;
                } else if f.values.len() < self.options.max_distinct {
                    f.values.insert(value.into_owned(), 1);
                } else {
                    f.overflow += 1;
                }
            }
        }

        if let Some(t) = &self.terminology {
            let app = text(3, 1);
            let facility = text(4, 1);
            let sender = if facility.is_empty() {
                app.clone()
            } else {
                format!("{app}@{facility}")
            };
            for (seg, n) in &self.coded {
                let label = format!("{seg}-{n}");
                for segment in message.segments().filter(|s| s.name_str() == seg) {
                    let Some(field) = segment.field(*n) else {
                        continue;
                    };
                    let first = field.repetition(1);
                    let code = first.component(1).text();
                    let system = first.component(3).text();
                    if code.is_empty()
                        || system.is_empty()
                        || t.is_target_system(terminology::canonical_system(&system), None)
                    {
                        continue;
                    }
                    let scope = Scope {
                        application: Some(&app),
                        facility: Some(&facility),
                        field: Some(&label),
                    };
                    if t.first_match_in(&system, &code, &scope, None).is_none() {
                        *self
                            .unmapped
                            .entry((
                                sender.clone(),
                                label.clone(),
                                system.into_owned(),
                                code.into_owned(),
                            ))
                            .or_default() += 1;
                    }
                }
            }
        }

        if self.options.validate {
            let deviations = &mut self.deviations;
            let mut short = String::new();
            validate::deviations(spec, message, &ValidationOptions::default(), |d| {
                let severity = match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                short.clear();
                short_place(d.place, &mut short);
                let paths = deviations
                    .entry((suggest::kind_name(d.kind), severity))
                    .or_default();
                match paths.get_mut(short.as_str()) {
                    Some(count) => *count += 1,
                    None => {
                        paths.insert(short.clone(), 1);
                    }
                }
            });
        }
    }

    /// How many messages were counted.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Everything counted, as a report.
    pub fn report(&self) -> Report {
        report::build(self, self.options.top)
    }

    /// A TOML conformance profile describing the feed (see the crate docs).
    pub fn suggest_profile(&self, name: &str) -> String {
        suggest::profile(self, name)
    }
}

/// Counts by value (distinct values of a field, deviations by place).
pub(crate) type ValueCounts = HashMap<String, u64, ValueHash>;
pub(crate) type ValueHash = BuildHasherDefault<ValueHasher>;

/// The hash of a field's distinct values and of deviations' places: a word at a
/// time (the values are short; the default SipHash spent more on them than the
/// rest of the field's counting). Not keyed: a sender could make values collide,
/// but a field keeps at most `Options::max_distinct` of them and places are the
/// standard's segments and fields, so colliding keys cost a bounded scan.
#[derive(Default)]
pub(crate) struct ValueHasher(u64);

impl ValueHasher {
    const K: u64 = 0xf135_7aea_2e62_a9c5;

    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0 ^ word).wrapping_mul(Self::K).rotate_left(26);
    }
}

impl Hasher for ValueHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, b: u8) {
        self.add(u64::from(b));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// A deviation's place as [`short_path`] gives it for the finding's path:
/// `OBX-5`, `PID`.
fn short_place(place: Place<'_>, out: &mut String) {
    match place {
        Place::Field { segment, field } => {
            out.push_str(segment);
            out.push('-');
            // The field's number in decimal, without the formatting machinery
            // (a message can have dozens of deviations).
            let mut digits = [0u8; 5];
            let mut at = digits.len();
            let mut n = field;
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            out.extend(digits[at..].iter().map(|&d| char::from(d)));
        }
        Place::Path(path) => short_path(path, out),
    }
}

/// `ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBX-5` -> `OBX-5`: the segment and
/// field, without the group path and occurrences, written to `out`.
fn short_path(path: &str, out: &mut String) {
    match path.split_once('-') {
        Some((head, field)) => {
            // The segment is the last dotted part before the first '-'.
            let segment = head.rsplit('.').next().unwrap_or(head);
            let segment = segment.split('[').next().unwrap_or(segment);
            let field = field.split(['[', '.']).next().unwrap_or(field);
            out.push_str(segment);
            out.push('-');
            out.push_str(field);
        }
        None => {
            let last = path.rsplit('.').next().unwrap_or(path);
            out.push_str(last.split('[').next().unwrap_or(last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::suggest::kind_name;
    use super::{short_path, short_place};
    use crate::corpus;

    /// Counting deviations by place with `validate::deviations` counts what
    /// `validate_message`'s findings give, over the whole public corpus.
    #[test]
    fn deviations_are_the_findings_by_short_path() {
        use hl7v2_spec::validate::{self, ValidationOptions};
        let options = ValidationOptions::default();
        let mut compared = 0;
        for bytes in corpus::corpus() {
            let Ok(message) = hl7v2::Message::parse(&bytes) else {
                continue;
            };
            let spec = validate::spec_for(&message, None).spec;
            let mut expected: Vec<_> = validate::validate_message(spec, &message, &options)
                .into_iter()
                .map(|f| {
                    let mut short = String::new();
                    short_path(&f.path, &mut short);
                    (kind_name(f.kind), f.severity, short)
                })
                .collect();
            let mut got = Vec::new();
            validate::deviations(spec, &message, &options, |d| {
                let mut short = String::new();
                short_place(d.place, &mut short);
                got.push((kind_name(d.kind), d.severity, short));
            });
            expected.sort();
            got.sort();
            assert_eq!(got, expected);
            compared += expected.len();
        }
        // The corpus has thousands of findings: the comparison is not vacuous.
        assert!(compared > 1000, "{compared} findings compared");
    }

    #[test]
    fn short_paths_drop_groups_and_occurrences() {
        for (path, short) in [
            ("ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBX-5", "OBX-5"),
            (
                "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBX[3]-5[2].1",
                "OBX-5",
            ),
            ("PID-3", "PID-3"),
            ("ORU_R01.PATIENT_RESULT[1].PATIENT.PID", "PID"),
            ("MSH", "MSH"),
        ] {
            let mut out = String::from("left over");
            out.clear();
            short_path(path, &mut out);
            assert_eq!(out, short, "{path}");
        }
    }
}
