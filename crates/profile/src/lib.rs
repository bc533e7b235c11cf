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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hl7v2::Message;
use hl7v2_spec::validate::{self, Severity, ValidationOptions};
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
    pub(crate) values: HashMap<String, u64>,
    /// Values not kept because `values` was full.
    pub(crate) overflow: u64,
    pub(crate) min_length: usize,
    pub(crate) max_length: usize,
    pub(crate) formats: BTreeMap<Format, u64>,
    pub(crate) repeated: u64,
}

#[derive(Clone, Debug, Default)]
pub(crate) struct SegmentStats {
    pub(crate) occurrences: u64,
    pub(crate) messages: u64,
    pub(crate) fields: BTreeMap<usize, FieldStats>,
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
    /// path seen before is counted without building a key.
    pub(crate) deviations: BTreeMap<(&'static str, &'static str), BTreeMap<String, u64>>,
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
            deviations: BTreeMap::new(),
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
            for n in 1..=segment.len() {
                let Some(field) = segment.field(n) else {
                    continue;
                };
                let raw = field.raw();
                if raw.is_empty() {
                    continue;
                }
                let f = stats.fields.entry(n).or_default();
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
                *f.formats.entry(Format::of(key.raw())).or_default() += 1;
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
            let findings = validate::validate_message(spec, message, &ValidationOptions::default());
            let mut short = String::new();
            for finding in findings {
                let severity = match finding.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                };
                short.clear();
                short_path(&finding.path, &mut short);
                let paths = self
                    .deviations
                    .entry((suggest::kind_name(finding.kind), severity))
                    .or_default();
                match paths.get_mut(short.as_str()) {
                    Some(count) => *count += 1,
                    None => {
                        paths.insert(short.clone(), 1);
                    }
                }
            }
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
    use super::short_path;

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
