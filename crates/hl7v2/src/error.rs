//! Errors: values with a location and words a person understands.

use std::fmt;

/// Where in a message a problem was found. Every part is optional because some
/// problems (an empty input) have no location at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Location {
    /// 1-based index of the segment within the message.
    pub segment_index: Option<usize>,
    /// The segment's name, as written in the message.
    pub segment: Option<String>,
    /// 1-based field number, numbered as the standard numbers it (MSH-1 is the
    /// field separator).
    pub field: Option<usize>,
    /// Byte offset of the problem from the start of the message.
    pub offset: Option<usize>,
}

impl Location {
    pub(crate) fn at_offset(offset: usize) -> Location {
        Location {
            offset: Some(offset),
            ..Location::default()
        }
    }

    pub(crate) fn segment(index: usize, name: &[u8]) -> Location {
        Location {
            segment_index: Some(index),
            segment: Some(String::from_utf8_lossy(name).into_owned()),
            ..Location::default()
        }
    }

    pub(crate) fn with_field(mut self, field: usize) -> Location {
        self.field = Some(field);
        self
    }

    fn is_empty(&self) -> bool {
        *self == Location::default()
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        match (&self.segment_index, &self.segment) {
            (Some(i), Some(name)) => parts.push(format!("segment {i} ({name})")),
            (Some(i), None) => parts.push(format!("segment {i}")),
            (None, Some(name)) => parts.push(format!("segment {name}")),
            (None, None) => {}
        }
        if let Some(field) = self.field {
            parts.push(format!("field {field}"));
        }
        if let Some(offset) = self.offset {
            parts.push(format!("byte {offset}"));
        }
        f.write_str(&parts.join(", "))
    }
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("the input is empty: there is no message in it")]
    Empty,
    #[error("this is not an HL7 v2 message: it does not start with an MSH segment")]
    NotHl7,
    #[error("the MSH segment has no field separator (MSH-1)")]
    MissingFieldSeparator,
    #[error("the encoding characters in MSH-2 are not usable: {0}")]
    BadEncodingCharacters(String),
    #[error("{0:?} is not a segment name (a segment name is letters and digits, normally three)")]
    BadSegmentName(String),
    #[error("the character set {0:?} in MSH-18 is not supported")]
    UnsupportedCharset(String),
    #[error("the message is {0} bytes long, more than the 4 GiB a message may hold")]
    TooLarge(usize),
    #[error("the input holds more than one message (a second MSH); read it as a stream")]
    MultipleMessages,
    #[error(
        "{0:?} is not a path (expected SEG[occurrence]-field[repetition].component.subcomponent, e.g. PID-3[2].1, or [*] for every one, e.g. OBX[*]-5)"
    )]
    InvalidPath(String),
    #[error("{0}")]
    CannotEdit(String),
    #[error("{0}")]
    Batch(String),
}

/// An error with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub location: Location,
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, location: Location) -> Error {
        Error { kind, location }
    }

    pub(crate) fn bare(kind: ErrorKind) -> Error {
        Error {
            kind,
            location: Location::default(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.location.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.location, self.kind)
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
