//! Validation of HL7 v2 messages against the definitions of their version.
//!
//! [`validate_message`] does everything: it resolves the structure from
//! MSH-9, checks the segment order, and checks every field (required fields,
//! repetitions, components, DT/DTM/TM/NM/SI formats, ID values against their
//! HL7 tables, OBX-5 against the type OBX-2 names, lengths as warnings).
//! [`validate_segments`] checks the segment order alone.
//!
//! ```
//! use hl7v2_spec::Spec;
//! use hl7v2_spec::validate::{FindingKind, SplitMessage, ValidationOptions, validate_message};
//!
//! let text = "MSH|^~\\&|LAB|F|EHR|F|20240315||ORU^R01^ORU_R01|1|P|2.5.1\r\
//!             PID|1||42^^^H^MR||Doe^Jane\r\
//!             OBR|1||F1|1234-5^Test^LN\r\
//!             OBX|1|NM|1234-5^Test^LN||high||||||F";
//! let message = SplitMessage::parse(text).unwrap();
//! let spec = Spec::version("2.5.1").unwrap();
//! let findings = validate_message(spec, &message, &ValidationOptions::default());
//! assert_eq!(findings[0].kind, FindingKind::InvalidFormat);
//! assert_eq!(findings[0].path, "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.OBX-5");
//! assert_eq!(findings[0].code.code(), 102);
//! ```
//!
//! The structural check:
//! Each structure is compiled once into a [`StructureMatcher`] (a flat tree
//! with bitsets of the segments that can start or appear in each node) and
//! then matched greedily, segment by segment, the way HL7 v2 parsers place
//! segments: a segment goes to the nearest position ahead of the current one
//! that can take it without skipping a required element; only when none
//! exists is a required element skipped (and reported missing). Findings carry
//! the group path (`ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBSERVATION[3].OBX`)
//! and the HL7 table 0357 error code.
//!
//! ```
//! use hl7v2_spec::Spec;
//! use hl7v2_spec::validate::{FindingKind, validate_segments};
//!
//! let v25 = Spec::version("2.5").unwrap();
//! let segments = ["MSH", "EVN", "PV1"]; // PID is missing
//! let findings = validate_segments(v25, "ADT", "A01", None, &segments[..]);
//! assert_eq!(findings.len(), 1);
//! assert_eq!(findings[0].kind, FindingKind::MissingSegment);
//! assert_eq!(findings[0].path, "ADT_A01.PID");
//! assert_eq!(findings[0].code.code(), 100);
//! ```

mod conformance;
mod fields;
mod matcher;
mod parsed;
mod profile;
mod text;
pub(crate) mod types;
pub mod value;

use std::fmt;

pub use fields::{
    Deviation, MessageFields, Place, Separators, SplitMessage, ValidationOptions, deviations,
    validate_message,
};
pub use matcher::StructureMatcher;
pub use parsed::spec_for;
pub use profile::{Profile, ProfileError, ValuePath};

use crate::{MessageStructure, VersionSpec};

/// The segments of a message, in order, as the validator sees them.
///
/// Implemented for slices of anything string-like (`["MSH", "PID"]`); a
/// parsed message type implements it by returning each segment's id.
pub trait SegmentSequence {
    fn segment_count(&self) -> usize;
    /// The three-character id of the segment at 0-based `index`.
    fn segment_id(&self, index: usize) -> &str;
}

impl<S: AsRef<str>> SegmentSequence for [S] {
    fn segment_count(&self) -> usize {
        self.len()
    }

    fn segment_id(&self, index: usize) -> &str {
        self[index].as_ref()
    }
}

impl<S: AsRef<str>> SegmentSequence for Vec<S> {
    fn segment_count(&self) -> usize {
        self.len()
    }

    fn segment_id(&self, index: usize) -> &str {
        self[index].as_ref()
    }
}

/// HL7 table 0357 "Message error condition codes" (the code of ERR-3).
/// In JSON it is the number (`101`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(into = "u16")]
pub enum ErrorCode {
    /// 100: segments out of order, missing, or repeated too often.
    SegmentSequenceError,
    /// 101: a required field is missing.
    RequiredFieldMissing,
    /// 102: a value does not fit its data type.
    DataTypeError,
    /// 103: a coded value is not in its table.
    TableValueNotFound,
    /// 104: a value is longer than its maximum length (table 0357 from 2.7 on).
    ValueTooLong,
    /// 200: the message type is not supported.
    UnsupportedMessageType,
    /// 201: the trigger event is not supported.
    UnsupportedEventCode,
    /// 203: the version is not supported.
    UnsupportedVersionId,
}

impl From<ErrorCode> for u16 {
    fn from(code: ErrorCode) -> u16 {
        code.code()
    }
}

impl ErrorCode {
    /// The numeric code as ERR-3 carries it.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::SegmentSequenceError => 100,
            ErrorCode::RequiredFieldMissing => 101,
            ErrorCode::DataTypeError => 102,
            ErrorCode::TableValueNotFound => 103,
            ErrorCode::ValueTooLong => 104,
            ErrorCode::UnsupportedMessageType => 200,
            ErrorCode::UnsupportedEventCode => 201,
            ErrorCode::UnsupportedVersionId => 203,
        }
    }

    /// The table's text for the code.
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::SegmentSequenceError => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataTypeError => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::ValueTooLong => "Value too long",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEventCode => "Unsupported event code",
            ErrorCode::UnsupportedVersionId => "Unsupported version id",
        }
    }
}

/// What kind of problem a finding reports (`missing_segment` in JSON and in
/// a profile's `[severity]` table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A segment the structure does not contain at all.
    UnexpectedSegment,
    /// A segment the structure contains, but not at this point.
    SegmentOutOfOrder,
    /// A required segment (or a required group's first segment) is absent.
    MissingSegment,
    /// A segment or group occurs more often than its maximum.
    TooManyRepetitions,
    /// No structure is known for the message type and trigger event.
    UnknownStructure,
    /// A field the segment definition marks R is empty or absent.
    RequiredFieldMissing,
    /// A required component of a valued field is empty.
    RequiredComponentMissing,
    /// A field repeats more often than its definition allows.
    TooManyFieldRepetitions,
    /// A value does not fit its data type (DT, DTM, TM, NM, SI).
    InvalidFormat,
    /// A coded (ID) value is not in its HL7 table.
    NotInTable,
    /// A value is longer than the definition's maximum length.
    TooLong,
    /// A rule of a [`Profile`] is broken.
    ProfileRule,
}

/// How serious a finding is (`error`, `warning` in JSON).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; does not make the message invalid.
    Warning,
    /// The message does not conform.
    Error,
}

/// One problem found in a message, with where it is and its 0357 code.
/// Serializes to JSON with the field names below.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub code: ErrorCode,
    pub severity: Severity,
    /// Group path of the element, e.g. `ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBSERVATION[3].OBX`,
    /// followed for field findings by `-field[repetition].component.subcomponent`
    /// (`...OBX-5`, `...PID-3[2].4.1`). Repetition numbers are shown only from
    /// the second occurrence on; choice brackets do not appear.
    pub path: String,
    /// 0-based position of the offending segment in the message; for a missing
    /// segment, the position of the segment before which it was expected
    /// (`None` when the message ended first).
    pub segment_index: Option<usize>,
    /// The segment id concerned (the missing one, for a missing segment).
    pub segment_id: String,
    /// Which occurrence of `segment_id` in the message (1-based), as ERR-2.2
    /// wants it; `None` for a missing segment.
    pub segment_sequence: Option<usize>,
    /// Where inside the segment, for field findings.
    pub field: Option<FieldPosition>,
    /// A sentence for people, without any field values from the message.
    pub message: String,
}

/// A position inside a segment: field, repetition, component, subcomponent
/// (1-based; 0 when the finding concerns the whole field or component).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct FieldPosition {
    pub field: u16,
    pub repetition: usize,
    pub component: usize,
    pub subcomponent: usize,
}

impl FieldPosition {
    /// `-5`, `-3[2].4.1`: the path suffix (repetition shown from the second on).
    pub fn suffix(self) -> String {
        let mut s = String::with_capacity(12);
        self.push_suffix(&mut s);
        s
    }

    /// Appends [`FieldPosition::suffix`] to `out`.
    pub(crate) fn push_suffix(self, out: &mut String) {
        out.push('-');
        text::push_num(out, self.field as usize);
        if self.repetition > 1 {
            text::push_index(out, self.repetition);
        }
        if self.component > 0 {
            out.push('.');
            text::push_num(out, self.component);
        }
        if self.subcomponent > 0 {
            out.push('.');
            text::push_num(out, self.subcomponent);
        }
    }
}

impl Severity {
    /// The ERR-4 code (table 0516): `E` or `W`.
    pub fn code(self) -> char {
        match self {
            Severity::Error => 'E',
            Severity::Warning => 'W',
        }
    }
}

impl Finding {
    /// The ERR segment an AE/AR acknowledgement carries for this finding,
    /// in the layout of HL7 `version`: from 2.5, ERR-2 (location), ERR-3
    /// (0357 code), ERR-4 (severity) and ERR-8 (the message); before 2.5,
    /// ERR-1 (segment, sequence, field and code).
    pub fn to_err_segment(&self, version: &str, seps: fields::Separators) -> String {
        let (f, c, s) = (seps.field, seps.component, seps.subcomponent);
        let seq = self.segment_sequence.unwrap_or(1);
        let pos = self.field.unwrap_or(FieldPosition {
            field: 0,
            repetition: 0,
            component: 0,
            subcomponent: 0,
        });
        let text = escape(&self.message, seps);
        let code = self.code.code();
        let code_text = self.code.text();
        let modern = crate::Spec::nearest(version)
            .map(|m| !matches!(m.spec.version(), "2.1" | "2.2" | "2.3" | "2.3.1" | "2.4"))
            .unwrap_or(true);
        if modern {
            let mut parts = vec![self.segment_id.clone(), seq.to_string()];
            if self.field.is_some() {
                for n in [
                    pos.field as usize,
                    pos.repetition,
                    pos.component,
                    pos.subcomponent,
                ] {
                    parts.push(if n == 0 { String::new() } else { n.to_string() });
                }
            }
            while parts.last().is_some_and(String::is_empty) {
                parts.pop();
            }
            let location = parts.join(&c.to_string());
            format!(
                "ERR{f}{f}{location}{f}{code}{c}{code_text}{c}HL70357{f}{}{f}{f}{f}{f}{text}",
                self.severity.code()
            )
        } else {
            let field = if self.field.is_some() {
                pos.field.to_string()
            } else {
                String::new()
            };
            format!(
                "ERR{f}{}{c}{seq}{c}{field}{c}{code}{s}{code_text}{s}HL70357",
                self.segment_id
            )
        }
    }
}

/// Escapes the message's delimiters in free text (`\F\`, `\S\`, ...).
fn escape(text: &str, seps: fields::Separators) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        let e = seps.escape;
        match ch {
            _ if ch == seps.escape => out.push_str(&format!("{e}E{e}")),
            _ if ch == seps.field => out.push_str(&format!("{e}F{e}")),
            _ if ch == seps.component => out.push_str(&format!("{e}S{e}")),
            _ if ch == seps.subcomponent => out.push_str(&format!("{e}T{e}")),
            _ if ch == seps.repetition => out.push_str(&format!("{e}R{e}")),
            '\r' | '\n' => out.push(' '),
            _ => out.push(ch),
        }
    }
    out
}

/// Which occurrence of its id the segment at `index` is (1-based).
pub(crate) fn occurrence<M: SegmentSequence + ?Sized>(message: &M, index: usize) -> usize {
    let id = message.segment_id(index);
    (0..=index).filter(|&i| message.segment_id(i) == id).count()
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} ({} {})",
            self.path,
            self.message,
            self.code.code(),
            self.code.text()
        )
    }
}

/// Options for structural validation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StructureOptions {
    /// Accept Z-segments (locally defined, `Z..`) anywhere without a finding.
    /// The standard lets trading partners place them where they agree to.
    pub allow_z_segments: bool,
}

impl Default for StructureOptions {
    fn default() -> Self {
        StructureOptions {
            allow_z_segments: true,
        }
    }
}

/// Resolves the structure (MSH-9.3, else the event map) and validates the
/// segment order against it with default options.
///
/// When no structure fits the message type and trigger event, the only
/// finding is a [`FindingKind::UnknownStructure`] (code 200 or 201).
pub fn validate_segments<M: SegmentSequence + ?Sized>(
    spec: &VersionSpec,
    message_type: &str,
    trigger_event: &str,
    msh_9_3: Option<&str>,
    segments: &M,
) -> Vec<Finding> {
    match spec.structure_for(message_type, trigger_event, msh_9_3) {
        Some(found) => with_matcher(spec, found.structure, |m| {
            m.validate(segments, StructureOptions::default())
        }),
        None => vec![unknown_structure(spec, message_type, trigger_event)],
    }
}

/// The finding that says no structure fits MSH-9.
pub(crate) fn unknown_structure(
    spec: &VersionSpec,
    message_type: &str,
    trigger_event: &str,
) -> Finding {
    let known_type = spec
        .structures()
        .any(|s| s.id.split('_').next() == Some(message_type));
    Finding {
        kind: FindingKind::UnknownStructure,
        code: if known_type {
            ErrorCode::UnsupportedEventCode
        } else {
            ErrorCode::UnsupportedMessageType
        },
        severity: Severity::Error,
        path: "MSH-9".to_string(),
        segment_index: Some(0),
        segment_id: "MSH".to_string(),
        segment_sequence: Some(1),
        field: Some(FieldPosition {
            field: 9,
            repetition: 1,
            component: 0,
            subcomponent: 0,
        }),
        message: format!(
            "HL7 {} defines no message structure for {message_type}^{trigger_event}",
            spec.version()
        ),
    }
}

/// Runs `f` with the version's compiled matcher for `structure`.
pub(crate) fn with_matcher<T>(
    spec: &VersionSpec,
    structure: &MessageStructure,
    f: impl FnOnce(&StructureMatcher) -> T,
) -> T {
    // Every structure of a version has a matcher; compiling one here keeps
    // this total even if that ever changed.
    match spec.matcher(structure.id) {
        Some(m) => f(m),
        None => f(&StructureMatcher::new(structure)),
    }
}
