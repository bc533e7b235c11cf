//! The owned, editable message.

use crate::charset::Charset;
use crate::delimiters::Delimiters;
use crate::error::{Error, ErrorKind, Result};
use crate::escape;
use crate::message::{Context, Element, Level, Message};
use crate::path::{Path, SegmentName};

/// A message that can be changed: set, insert and delete at any path,
/// creating whatever structure is missing.
///
/// Each segment keeps its fields as the bytes they were written in, so a
/// message that is parsed and written again without changes comes out byte
/// for byte as it came in (with every segment ending in CR).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedMessage {
    ctx: Context,
    segments: Vec<OwnedSegment>,
}

/// A message with no segments and the standard delimiters: what is left
/// behind when a message is moved out of a place that must hold one
/// (`std::mem::take`).
impl Default for OwnedMessage {
    fn default() -> OwnedMessage {
        OwnedMessage {
            ctx: Context {
                delimiters: Delimiters::STANDARD,
                charset: Charset::Ascii,
            },
            segments: Vec::new(),
        }
    }
}

/// A segment's name and fields. For header segments (MSH, FHS, BHS) field 1
/// is implied by the delimiters and `fields[1]` holds the encoding characters.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnedSegment {
    fields: Vec<Vec<u8>>,
}

impl OwnedSegment {
    fn name(&self) -> &[u8] {
        &self.fields[0]
    }

    fn is_header(&self) -> bool {
        matches!(self.name(), b"MSH" | b"FHS" | b"BHS")
    }

    /// Where field `n` (numbered as the standard numbers it) is kept, or
    /// `None` for the fields that are the delimiters themselves.
    fn slot(&self, n: usize) -> Option<usize> {
        if self.is_header() {
            (n >= 3).then(|| n - 1)
        } else {
            (n >= 1).then_some(n)
        }
    }
}

impl From<&Message<'_>> for OwnedMessage {
    fn from(message: &Message<'_>) -> OwnedMessage {
        let segments = message
            .segments()
            .map(|segment| {
                let first = if segment.is_header() { 2 } else { 1 };
                let mut fields = Vec::with_capacity(segment.len() + 1);
                fields.push(segment.name().to_vec());
                fields.extend(
                    (first..=segment.len())
                        .filter_map(|n| segment.field(n))
                        .map(|f| f.raw().to_vec()),
                );
                OwnedSegment { fields }
            })
            .collect();
        OwnedMessage {
            ctx: message.context(),
            segments,
        }
    }
}

impl OwnedMessage {
    /// Parses bytes into an editable message.
    pub fn parse(bytes: &[u8]) -> Result<OwnedMessage> {
        Ok(OwnedMessage::from(&Message::parse(bytes)?))
    }

    /// A message holding only an MSH with the given delimiters.
    pub fn new(delimiters: Delimiters) -> OwnedMessage {
        OwnedMessage {
            ctx: Context {
                delimiters,
                charset: Charset::Ascii,
            },
            segments: vec![OwnedSegment {
                fields: vec![b"MSH".to_vec(), delimiters.encoding_characters()],
            }],
        }
    }

    pub fn delimiters(&self) -> Delimiters {
        self.ctx.delimiters
    }

    pub fn charset(&self) -> Charset {
        self.ctx.charset
    }

    /// The number of segments.
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The segment names, in order.
    pub fn segment_names(&self) -> impl Iterator<Item = &[u8]> {
        self.segments.iter().map(OwnedSegment::name)
    }

    /// Writes the message: fields joined by the field separator, each
    /// segment ending in CR.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            self.segments
                .iter()
                .map(|s| s.fields.iter().map(|f| f.len() + 1).sum::<usize>())
                .sum(),
        );
        self.write_to(&mut out);
        out
    }

    /// Appends the message's bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let sep = self.ctx.delimiters.field;
        for segment in &self.segments {
            for (i, field) in segment.fields.iter().enumerate() {
                if i > 0 {
                    out.push(sep);
                }
                out.extend_from_slice(field);
            }
            out.push(b'\r');
        }
    }

    /// The index of the `occurrence`th segment named `name`.
    fn position(&self, name: &SegmentName, occurrence: usize) -> Option<usize> {
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name() == name.as_bytes())
            .nth(occurrence.checked_sub(1)?)
            .map(|(i, _)| i)
    }

    /// The value at `path`, as in [`Message::get`].
    pub fn get(&self, path: &Path) -> Option<Element<'_>> {
        let segment = &self.segments[self.position(&path.segment, path.occurrence)?];
        let n = path.field?;
        let field = match segment.slot(n) {
            Some(slot) => Element::new(segment.fields.get(slot)?, Level::Field, self.ctx),
            None if segment.is_header() && n == 2 => {
                Element::new(segment.fields.get(1)?, Level::Literal, self.ctx)
            }
            None if segment.is_header() && n == 1 => {
                let sep = std::slice::from_ref(&self.ctx.delimiters.field);
                Element::new(sep, Level::Literal, self.ctx)
            }
            None => return None,
        };
        path.locate_below(field)
    }

    /// The text (unescaped, decoded) at `path`.
    pub fn get_text(&self, path: &Path) -> Option<String> {
        self.get(path).map(|e| e.text().into_owned())
    }

    /// Sets the value at `path` to `text`, escaping delimiters in it.
    pub fn set_text(&mut self, path: &Path, text: &str) -> Result<()> {
        let encoded = self.ctx.charset.encode(text);
        let escaped = escape::escape(&encoded, &self.ctx.delimiters)?.into_owned();
        self.set_raw(path, &escaped)
    }

    /// Sets the value at `path` to `raw`, written as is: it may hold
    /// delimiters and escape sequences.
    ///
    /// Missing segments are appended, missing fields, repetitions and
    /// components are created empty. A path without repetition or component
    /// (`PID-3`) replaces the whole field, every repetition of it.
    pub fn set_raw(&mut self, path: &Path, raw: &[u8]) -> Result<()> {
        let Some(n) = path.field else {
            return Err(cannot(
                "a whole segment cannot be set; insert or delete it instead",
            ));
        };
        let index = self.ensure_segment(path)?;
        let d = self.ctx.delimiters;
        let segment = &mut self.segments[index];
        let Some(slot) = segment.slot(n) else {
            return Err(cannot(&format!(
                "{}-{n} holds the delimiters and cannot be set",
                path.segment
            )));
        };
        if segment.fields.len() <= slot {
            segment.fields.resize(slot + 1, Vec::new());
        }
        let mut levels = Vec::with_capacity(3);
        if path.repetition.is_some() || path.component.is_some() {
            levels.push((d.repetition, path.repetition.unwrap_or(1)));
        }
        if let Some(c) = path.component {
            levels.push((d.component, c));
            if let Some(s) = path.subcomponent {
                levels.push((d.subcomponent, s));
            }
        }
        segment.fields[slot] = set_at(&segment.fields[slot], &levels, raw)?;
        Ok(())
    }

    /// The index of the segment `path` names, appending segments of that
    /// name until it exists.
    fn ensure_segment(&mut self, path: &Path) -> Result<usize> {
        if let Some(i) = self.position(&path.segment, path.occurrence) {
            return Ok(i);
        }
        if path.segment.as_bytes() == b"MSH" {
            return Err(cannot("a message has exactly one MSH"));
        }
        let existing = self
            .segments
            .iter()
            .filter(|s| s.name() == path.segment.as_bytes())
            .count();
        for _ in existing..path.occurrence {
            self.segments.push(OwnedSegment {
                fields: vec![path.segment.as_bytes().to_vec()],
            });
        }
        Ok(self.segments.len() - 1)
    }

    /// Deletes what `path` names: a whole segment (`OBX[2]`), one repetition
    /// when the path gives it (`PID-3[2]`), otherwise empties the field,
    /// component or subcomponent.
    pub fn delete(&mut self, path: &Path) -> Result<()> {
        let Some(index) = self.position(&path.segment, path.occurrence) else {
            return Ok(());
        };
        let Some(n) = path.field else {
            if index == 0 {
                return Err(cannot("the MSH segment cannot be deleted"));
            }
            self.segments.remove(index);
            return Ok(());
        };
        if let (Some(r), None) = (path.repetition, path.component) {
            let d = self.ctx.delimiters;
            let segment = &mut self.segments[index];
            if let (Some(slot), Some(sep)) = (segment.slot(n), d.repetition) {
                if let Some(field) = segment.fields.get_mut(slot) {
                    let mut parts = split(field, Some(sep));
                    if r <= parts.len() {
                        parts.remove(r - 1);
                        *field = join(&parts, Some(sep));
                    }
                }
            }
            return Ok(());
        }
        if self.get(path).is_none() {
            return Ok(());
        }
        self.set_raw(path, b"")
    }

    /// Inserts a segment before the segment at `index` (0-based; `len()`
    /// appends). `fields` are the raw values of fields 1, 2, ...
    pub fn insert_segment(&mut self, index: usize, name: &str, fields: &[&[u8]]) -> Result<()> {
        let name = SegmentName::new(name.as_bytes())
            .ok_or_else(|| cannot(&format!("{name:?} is not a segment name")))?;
        if index == 0 || index > self.segments.len() {
            return Err(cannot(&format!(
                "a segment can be inserted at positions 1 to {}",
                self.segments.len()
            )));
        }
        let mut all = vec![name.as_bytes().to_vec()];
        all.extend(fields.iter().map(|f| f.to_vec()));
        self.segments.insert(index, OwnedSegment { fields: all });
        Ok(())
    }

    /// Inserts a repetition at the position `path` gives (`PID-3[2]` makes
    /// the new value the second repetition).
    pub fn insert_repetition(&mut self, path: &Path, raw: &[u8]) -> Result<()> {
        let (Some(n), Some(r)) = (path.field, path.repetition) else {
            return Err(cannot(
                "inserting a repetition needs a path with a field and a repetition, like PID-3[2]",
            ));
        };
        let index = self.ensure_segment(path)?;
        let sep = self.ctx.delimiters.repetition;
        let segment = &mut self.segments[index];
        let Some(slot) = segment.slot(n) else {
            return Err(cannot("the delimiter fields cannot repeat"));
        };
        if segment.fields.len() <= slot {
            segment.fields.resize(slot + 1, Vec::new());
        }
        let field = &mut segment.fields[slot];
        let mut parts = if field.is_empty() {
            Vec::new()
        } else {
            split(field, sep)
        };
        if r > 1 && sep.is_none() {
            return Err(cannot("the message declares no repetition separator"));
        }
        if parts.len() < r - 1 {
            parts.resize(r - 1, Vec::new());
        }
        parts.insert(r - 1, raw.to_vec());
        *field = join(&parts, sep);
        Ok(())
    }

    /// Renames the segment `path` names (its fields stay as they are).
    pub fn rename_segment(&mut self, path: &Path, new_name: &str) -> Result<()> {
        let name = SegmentName::new(new_name.as_bytes())
            .ok_or_else(|| cannot(&format!("{new_name:?} is not a segment name")))?;
        let index = self
            .position(&path.segment, path.occurrence)
            .ok_or_else(|| cannot(&format!("the message has no {path}")))?;
        let segment = &mut self.segments[index];
        if segment.is_header() || matches!(name.as_bytes(), b"MSH" | b"FHS" | b"BHS") {
            return Err(cannot("header segments cannot be renamed"));
        }
        segment.fields[0] = name.as_bytes().to_vec();
        Ok(())
    }
}

fn cannot(why: &str) -> Error {
    Error::bare(ErrorKind::CannotEdit(why.to_string()))
}

fn split(bytes: &[u8], sep: Option<u8>) -> Vec<Vec<u8>> {
    match sep {
        Some(sep) => bytes.split(|&b| b == sep).map(<[u8]>::to_vec).collect(),
        None => vec![bytes.to_vec()],
    }
}

fn join(parts: &[Vec<u8>], sep: Option<u8>) -> Vec<u8> {
    match sep {
        Some(sep) => parts.join(&sep),
        None => parts.concat(),
    }
}

/// `buf` with the part that `levels` names replaced by `value`, creating
/// empty parts on the way.
fn set_at(buf: &[u8], levels: &[(Option<u8>, usize)], value: &[u8]) -> Result<Vec<u8>> {
    let Some(&(sep, n)) = levels.first() else {
        return Ok(value.to_vec());
    };
    let mut parts = split(buf, sep);
    if n > parts.len() {
        if sep.is_none() {
            return Err(cannot(
                "the message does not declare the separator this path needs (MSH-2)",
            ));
        }
        parts.resize(n, Vec::new());
    }
    parts[n - 1] = set_at(&parts[n - 1], &levels[1..], value)?;
    Ok(join(&parts, sep))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADT: &[u8] = b"MSH|^~\\&|REG|HOSP|ADT|HOSP|20240101||ADT^A01|1|P|2.5\rEVN|A01|20240101\rPID|1||123^^^HOSP^MR||DOE^JOHN\rPV1|1|I|W1^1^1\r";

    fn path(s: &str) -> Path {
        s.parse().unwrap()
    }

    #[test]
    fn unmodified_message_round_trips_exactly() {
        let m = OwnedMessage::parse(ADT).unwrap();
        assert_eq!(m.to_bytes(), ADT);
    }

    #[test]
    fn set_creates_missing_structure() {
        let mut m = OwnedMessage::parse(ADT).unwrap();
        m.set_raw(&path("PID-3[3].4.2"), b"X").unwrap();
        assert_eq!(m.get_text(&path("PID-3")).as_deref(), Some("123^^^HOSP^MR"));
        assert_eq!(m.get(&path("PID-3[3]")).unwrap().raw(), b"^^^&X");
        m.set_text(&path("PID-30"), "Y").unwrap();
        assert_eq!(m.get_text(&path("PID-30")).as_deref(), Some("Y"));
        m.set_text(&path("ZPI-2.2"), "a^b").unwrap();
        assert_eq!(m.get(&path("ZPI-2")).unwrap().raw(), b"^a\\S\\b");
        assert!(m.to_bytes().ends_with(b"ZPI||^a\\S\\b\r"));
    }

    #[test]
    fn set_msh_fields_keeps_delimiters() {
        let mut m = OwnedMessage::parse(ADT).unwrap();
        m.set_text(&path("MSH-5"), "EHR").unwrap();
        assert!(m.to_bytes().starts_with(b"MSH|^~\\&|REG|HOSP|EHR|HOSP|"));
        assert!(m.set_text(&path("MSH-2"), "x").is_err());
        assert_eq!(m.get_text(&path("MSH-2")).as_deref(), Some("^~\\&"));
        assert_eq!(m.get_text(&path("MSH-1")).as_deref(), Some("|"));
    }

    #[test]
    fn delete_segment_repetition_and_component() {
        let mut m = OwnedMessage::parse(ADT).unwrap();
        m.set_raw(&path("PID-3[2]"), b"456^^^SSA^SS").unwrap();
        m.delete(&path("PID-3[1]")).unwrap();
        assert_eq!(m.get_text(&path("PID-3.1")).as_deref(), Some("456"));
        m.delete(&path("PID-5.2")).unwrap();
        assert_eq!(m.get(&path("PID-5")).unwrap().raw(), b"DOE^");
        m.delete(&path("EVN")).unwrap();
        assert_eq!(
            m.segment_names().collect::<Vec<_>>(),
            vec![&b"MSH"[..], b"PID", b"PV1"]
        );
        assert!(m.delete(&path("MSH")).is_err());
    }

    #[test]
    fn insert_segment_and_repetition() {
        let mut m = OwnedMessage::parse(ADT).unwrap();
        m.insert_segment(3, "NK1", &[b"1", b"DOE^JANE"]).unwrap();
        assert_eq!(m.get_text(&path("NK1-2.2")).as_deref(), Some("JANE"));
        m.insert_repetition(&path("PID-3[1]"), b"999").unwrap();
        assert_eq!(m.get(&path("PID-3")).unwrap().raw(), b"999");
        assert_eq!(m.get(&path("PID-3[2]")).unwrap().raw(), b"123^^^HOSP^MR");
    }

    #[test]
    fn rename_z_segment() {
        let mut m = OwnedMessage::parse(b"MSH|^~\\&|A\rZAB|1|2\r").unwrap();
        m.rename_segment(&path("ZAB"), "ZCD").unwrap();
        assert_eq!(m.to_bytes(), b"MSH|^~\\&|A\rZCD|1|2\r");
    }
}
