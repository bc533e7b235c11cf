//! The validator over the `hl7v2` crate's parsed messages, and choosing the
//! definitions for a message.

use super::SegmentSequence;
use super::fields::{MessageFields, Separators, pieces};
use crate::{Spec, VersionMatch};

/// Segment ids of a parsed message; a name that is not UTF-8 reads `???`.
impl SegmentSequence for hl7v2::Message<'_> {
    fn segment_count(&self) -> usize {
        self.len()
    }

    fn segment_id(&self, index: usize) -> &str {
        std::str::from_utf8(self.segment_name(index)).unwrap_or("???")
    }
}

impl MessageFields for hl7v2::Message<'_> {
    fn separators(&self) -> Separators {
        let d = self.delimiters();
        // An undefined delimiter never occurs in the text: NUL stands for it.
        let char_of = |b: Option<u8>| b.map(char::from).unwrap_or('\0');
        Separators {
            field: char::from(d.field),
            component: char_of(d.component),
            repetition: char_of(d.repetition),
            escape: char_of(d.escape),
            subcomponent: char_of(d.subcomponent),
        }
    }

    /// The raw text of the field. Bytes that are not UTF-8 (a Latin-1 sender)
    /// end the text there; a field with no UTF-8 prefix at all reads as the
    /// replacement character, so it still counts as valued.
    fn field(&self, segment: usize, field: usize) -> Option<&str> {
        if segment >= self.len() {
            return None;
        }
        Some(text_of(self.segment(segment).field(field)?.raw()))
    }

    /// One pass over the segment: it is found once, not once per field.
    fn segment_fields<'s>(&'s self, segment: usize, out: &mut Vec<&'s str>) {
        if segment >= self.len() {
            return;
        }
        let segment = self.segment(segment);
        out.reserve(segment.len());
        // The segment checked as UTF-8 once (nearly always it is): each field
        // is then a slice of that text, not checked again.
        let bytes = segment.as_bytes();
        let Ok(text) = std::str::from_utf8(bytes) else {
            out.extend(segment.fields().map(|element| text_of(element.raw())));
            return;
        };
        // The parser splits a segment's bytes at every field separator: its
        // fields are the same pieces of the text, taken without building an
        // element for each. A header's field 1 is the separator itself.
        let separator = self.delimiters().field;
        let name_and_fields = (separator.is_ascii() && bytes.len() > 3).then(|| {
            let mut parts = pieces(text, char::from(separator));
            parts.next(); // the name
            parts
        });
        match (name_and_fields, segment.is_header(), text.get(3..4)) {
            (Some(parts), false, _) => out.extend(parts),
            (Some(parts), true, Some(itself)) => {
                out.push(itself);
                out.extend(parts);
            }
            _ => out.extend(segment.fields().map(|element| text_of(element.raw()))),
        }
    }
}

/// A field's raw bytes as text: bytes that are not UTF-8 (a Latin-1 sender)
/// end the text there; a field with no UTF-8 prefix at all reads as the
/// replacement character, so it still counts as valued.
fn text_of(raw: &[u8]) -> &str {
    if raw.is_empty() {
        return ""; // most fields of most segments
    }
    match std::str::from_utf8(raw) {
        Ok(text) => text,
        Err(e) if e.valid_up_to() > 0 => {
            // Sound: `valid_up_to` bytes were just checked to be UTF-8.
            std::str::from_utf8(&raw[..e.valid_up_to()]).unwrap_or("\u{fffd}")
        }
        Err(_) => "\u{fffd}",
    }
}

/// The definitions to validate a message with: `requested` (a command-line
/// `--version`) or else MSH-12, matched to the nearest known version; 2.5.1
/// when neither names a version. [`VersionMatch::note`] says when the
/// version was substituted.
pub fn spec_for<M: MessageFields + ?Sized>(message: &M, requested: Option<&str>) -> VersionMatch {
    let component = message.separators().component;
    let stated = message
        .field(0, 12)
        .map(|v| v.split(component).next().unwrap_or(""))
        .filter(|v| !v.trim().is_empty());
    requested
        .or(stated)
        .and_then(Spec::nearest)
        .or_else(|| Spec::nearest("2.5.1"))
        .unwrap_or_else(|| unreachable!("2.5.1 is a known version"))
}
