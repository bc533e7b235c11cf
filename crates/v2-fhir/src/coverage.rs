//! What a conversion does with each segment and field of a message:
//! mapped (its value reaches the Bundle), skipped (read by no map, or
//! without effect on this message), or unknown (a site-defined Z-segment).
//!
//! A field counts as mapped when converting the message with that field
//! emptied gives a different Bundle (or none), so the report says what the
//! converter did with this message, not what a table claims it might do.
//! It costs one conversion per field present in a mapped segment: a
//! diagnostic, not the hot path.

use hl7v2::Message;
use serde::Serialize;

use crate::Converter;
use crate::convert::kind_of_message;
use crate::segments::has_map;

/// What became of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentStatus {
    /// At least one of its fields reaches the Bundle.
    Mapped,
    /// A standard segment nothing of which reaches the Bundle.
    Skipped,
    /// A site-defined segment (Z...): no standard says what it holds.
    Unknown,
}

/// One segment of the message, with its fields by what became of them
/// (`PID-3`, ...); MSH-1 and MSH-2 (the delimiters) are left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SegmentCoverage {
    /// 1-based position in the message.
    pub position: usize,
    pub segment: String,
    pub status: SegmentStatus,
    pub mapped: Vec<String>,
    pub skipped: Vec<String>,
}

/// The coverage of one message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Coverage {
    /// MSH-9 as sent.
    pub message_type: String,
    /// False when the message does not convert at all (the error is the
    /// conversion's); every field is then reported as skipped.
    pub converted: bool,
    pub segments: Vec<SegmentCoverage>,
}

impl Coverage {
    /// Fields mapped and skipped, over all segments.
    pub fn field_counts(&self) -> (usize, usize) {
        self.segments.iter().fold((0, 0), |(m, s), seg| {
            (m + seg.mapped.len(), s + seg.skipped.len())
        })
    }
}

/// Where a field's value lies in the message's bytes.
fn span_in(base: &[u8], part: &[u8]) -> Option<(usize, usize)> {
    let start = (part.as_ptr() as usize).checked_sub(base.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    (end <= base.len()).then_some((start, end))
}

impl Converter {
    /// The [`Coverage`] of `message`: which segments and fields this
    /// converter maps, skips, or does not know.
    pub fn coverage(&self, message: &Message<'_>) -> Coverage {
        let kind = kind_of_message(message).unwrap_or(crate::convert::Kind::Other);
        let bytes = message.as_bytes();
        let output = |m: &Message<'_>| self.convert(m).ok().map(|b| b.to_json_string());
        let original = output(message);
        let converted = original.is_some();
        let mut segments = Vec::with_capacity(message.len());
        let mut emptied = Vec::with_capacity(bytes.len());
        let d = message.delimiters();
        let separators = [d.component, d.repetition, d.subcomponent];
        for (index, segment) in message.segments().enumerate() {
            let name = segment.name_str().to_string();
            let first = if segment.is_header() { 3 } else { 1 };
            // A field of separators only (`^^^`) holds nothing.
            let present: Vec<usize> = (first..=segment.len())
                .filter(|&n| {
                    segment
                        .field(n)
                        .is_some_and(|f| f.raw().iter().any(|b| !separators.contains(&Some(*b))))
                })
                .collect();
            let field_name = |n: usize| format!("{name}-{n}");
            let has_map = index == 0 || has_map(segment.name(), kind);
            let mut mapped = Vec::new();
            let mut skipped = Vec::new();
            for &n in &present {
                let span = segment.field(n).and_then(|f| span_in(bytes, f.raw()));
                let reaches = match (has_map && converted, span) {
                    (true, Some((start, end))) => {
                        emptied.clear();
                        emptied.extend_from_slice(&bytes[..start]);
                        emptied.extend_from_slice(&bytes[end..]);
                        let changed = Message::parse(&emptied).map(|m| output(&m)).unwrap_or(None);
                        changed != original
                    }
                    _ => false,
                };
                if reaches {
                    mapped.push(field_name(n));
                } else {
                    skipped.push(field_name(n));
                }
            }
            let status = if segment.name().first() == Some(&b'Z') {
                SegmentStatus::Unknown
            } else if mapped.is_empty() {
                SegmentStatus::Skipped
            } else {
                SegmentStatus::Mapped
            };
            segments.push(SegmentCoverage {
                position: index + 1,
                segment: name,
                status,
                mapped,
                skipped,
            });
        }
        let message_type = message
            .segment(0)
            .field(9)
            .map(|f| crate::datatypes::text(f).into_owned())
            .unwrap_or_default();
        Coverage {
            message_type,
            converted,
            segments,
        }
    }
}
