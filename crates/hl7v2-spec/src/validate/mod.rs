//! Structural validation: does the order of a message's segments fit its
//! message structure?
//!
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
//! let findings = validate_segments(v25, "ADT", "A01", None, &segments[..]).unwrap();
//! assert_eq!(findings.len(), 1);
//! assert_eq!(findings[0].kind, FindingKind::MissingSegment);
//! assert_eq!(findings[0].path, "ADT_A01.PID");
//! assert_eq!(findings[0].code.code(), 100);
//! ```

mod matcher;

use std::fmt;

pub use matcher::StructureMatcher;

use crate::VersionSpec;

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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 100: segments out of order, missing, or repeated too often.
    SegmentSequenceError,
    /// 101: a required field is missing.
    RequiredFieldMissing,
    /// 102: a value does not fit its data type.
    DataTypeError,
    /// 103: a coded value is not in its table.
    TableValueNotFound,
    /// 200: the message type is not supported.
    UnsupportedMessageType,
    /// 201: the trigger event is not supported.
    UnsupportedEventCode,
    /// 203: the version is not supported.
    UnsupportedVersionId,
}

impl ErrorCode {
    /// The numeric code as ERR-3 carries it.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::SegmentSequenceError => 100,
            ErrorCode::RequiredFieldMissing => 101,
            ErrorCode::DataTypeError => 102,
            ErrorCode::TableValueNotFound => 103,
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
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEventCode => "Unsupported event code",
            ErrorCode::UnsupportedVersionId => "Unsupported version id",
        }
    }
}

/// What kind of structural problem a finding reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
}

/// One problem found in a message, with where it is and its 0357 code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub code: ErrorCode,
    /// Group path of the element, e.g. `ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBSERVATION[3].OBX`.
    /// Repetition numbers are shown only from the second occurrence on; choice
    /// brackets do not appear.
    pub path: String,
    /// 0-based position of the offending segment in the message; for a missing
    /// segment, the position of the segment before which it was expected
    /// (`None` when the message ended first).
    pub segment_index: Option<usize>,
    /// The segment id concerned (the missing one, for a missing segment).
    pub segment_id: String,
    /// A sentence for people, without any field values from the message.
    pub message: String,
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
/// `Err` carries a single [`FindingKind::UnknownStructure`] finding when no
/// structure fits the message type and trigger event.
pub fn validate_segments<M: SegmentSequence + ?Sized>(
    spec: &VersionSpec,
    message_type: &str,
    trigger_event: &str,
    msh_9_3: Option<&str>,
    segments: &M,
) -> Result<Vec<Finding>, Finding> {
    let found = spec
        .structure_for(message_type, trigger_event, msh_9_3)
        .ok_or_else(|| {
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
                path: "MSH-9".to_string(),
                segment_index: Some(0),
                segment_id: "MSH".to_string(),
                message: format!(
                    "HL7 {} defines no message structure for {message_type}^{trigger_event}",
                    spec.version()
                ),
            }
        })?;
    // Every structure of a version has a matcher; compiling one here keeps
    // this function total even if that ever changed.
    let findings = match spec.matcher(found.structure.id) {
        Some(matcher) => matcher.validate(segments, StructureOptions::default()),
        None => {
            StructureMatcher::new(found.structure).validate(segments, StructureOptions::default())
        }
    };
    Ok(findings)
}
