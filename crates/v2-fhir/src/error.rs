//! Conversion errors: what is wrong and where.

use std::fmt;

/// Why a message could not be converted.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvertErrorKind {
    #[error("the message has no {0} segment, which this message type needs")]
    MissingSegment(&'static str),
    #[error("{0}")]
    Invalid(String),
    /// Two v2 records would become one resource: reported, never merged.
    #[error(
        "this segment and segment {first_segment} would both be {resource_type} with one id \
         (the same order number and key twice); nothing was converted rather than merge them"
    )]
    DuplicateRecord {
        resource_type: &'static str,
        first_segment: usize,
    },
}

/// A conversion error with the segment it concerns, when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvertError {
    pub kind: ConvertErrorKind,
    /// 1-based segment index and name in the message.
    pub segment: Option<(usize, String)>,
}

impl ConvertError {
    pub(crate) fn new(kind: ConvertErrorKind) -> ConvertError {
        ConvertError {
            kind,
            segment: None,
        }
    }
}

impl fmt::Display for ConvertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.segment {
            Some((index, name)) => write!(f, "segment {index} ({name}): {}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl std::error::Error for ConvertError {}
