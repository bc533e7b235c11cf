//! The borrowed, zero-copy view of a message.

use std::borrow::Cow;

use crate::charset::Charset;
use crate::delimiters::Delimiters;
use crate::error::{Error, ErrorKind, Location, Result};
use crate::escape::{self, Formatting};
use crate::path::Path;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A field's byte range in the message, and the range of `Message::marks`
/// that holds the delimiters inside it.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u32,
    end: u32,
    mark_start: u32,
    mark_end: u32,
}

/// One segment's place in the index: its bytes and its fields' spans.
#[derive(Clone, Copy, Debug)]
struct SegmentIndex {
    start: u32,
    end: u32,
    first_span: u32,
    span_count: u32,
}

/// A parsed message that borrows its bytes.
///
/// Parsing makes one pass over the bytes and finds every delimiter: segment
/// terminators and field separators become the segment and field index, and
/// the positions of the repetition, component and subcomponent separators are
/// kept in one flat list, so that splitting a field reads that list instead
/// of its bytes. Nothing is copied: every value is a slice of the input.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    bytes: &'a [u8],
    ctx: Context,
    segments: Vec<SegmentIndex>,
    spans: Vec<Span>,
    /// The position of every repetition, component and subcomponent
    /// separator, in order (at most one per byte of the message).
    marks: Vec<u32>,
}

/// What a value needs to split and decode itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    pub delimiters: Delimiters,
    pub charset: Charset,
}

/// Removes a UTF-8 byte order mark and leading blank lines.
pub(crate) fn trim_start(bytes: &[u8]) -> &[u8] {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let skip = bytes
        .iter()
        .position(|&b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
        .unwrap_or(bytes.len());
    &bytes[skip..]
}

/// True when `name` is three ASCII letters or digits.
pub(crate) fn is_segment_name(name: &[u8]) -> bool {
    name.len() == 3 && name.iter().all(u8::is_ascii_alphanumeric)
}

/// Segment names in the wild are not always three characters (`ZPID`,
/// `WHOOPS`): the parser takes any run of ASCII letters and digits, up to 16,
/// and leaves judging it to validation. Paths address three-character names.
fn is_lenient_segment_name(name: &[u8]) -> bool {
    (1..=16).contains(&name.len()) && name.iter().all(u8::is_ascii_alphanumeric)
}

/// Where the one pass over a message is: the segment and the field it is in.
#[derive(Default)]
struct Scan {
    segment_start: usize,
    field_start: usize,
    first_span: u32,
    /// The first mark of the segment and of the field.
    first_mark: u32,
    mark_start: u32,
}

/// Bit `i` is set when `chunk[i]` is one of `set`. Written so that the
/// compiler turns the compares into vector instructions: a byte of `hits` is
/// 0x80 for a delimiter, and a multiply gathers the high bits of eight such
/// bytes into one byte of the mask.
#[inline(always)]
fn delimiter_mask(chunk: &[u8; 64], set: &[u8; 6]) -> u64 {
    let mut hits = [0u8; 64];
    for (hit, &b) in hits.iter_mut().zip(chunk) {
        let any = (b == set[0])
            | (b == set[1])
            | (b == set[2])
            | (b == set[3])
            | (b == set[4])
            | (b == set[5]);
        *hit = u8::from(any) << 7;
    }
    let mut mask = 0u64;
    for (j, eight) in hits.chunks_exact(8).enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(eight);
        let high_bits = u64::from_le_bytes(word).wrapping_mul(0x0002_0408_1020_4081) >> 56;
        mask |= high_bits << (8 * j);
    }
    mask
}

/// Reads the delimiters of a header segment (MSH, FHS or BHS) that starts at
/// the beginning of `bytes`.
pub(crate) fn header_delimiters(bytes: &[u8]) -> Result<Delimiters> {
    let field = *bytes
        .get(3)
        .filter(|b| !matches!(b, b'\r' | b'\n'))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::MissingFieldSeparator,
                Location::segment(1, &bytes[..3.min(bytes.len())]).with_field(1),
            )
        })?;
    let rest = &bytes[4..];
    let end = rest
        .iter()
        .position(|&b| b == field || b == b'\r' || b == b'\n')
        .unwrap_or(rest.len());
    Delimiters::from_header(field, &rest[..end])
}

impl<'a> Message<'a> {
    /// Parses one message.
    ///
    /// Segments may end in CR, LF or CRLF; a UTF-8 byte order mark and blank
    /// lines are ignored. The character set named in MSH-18 must be one
    /// Corridor can decode.
    ///
    /// ```
    /// let msg = hl7v2::Message::parse(b"MSH|^~\\&|LAB|HOSP|||20240101||ORU^R01|42|P|2.5.1\rPID|||123^^^HOSP^MR||DOE^JANE\r").unwrap();
    /// assert_eq!(msg.get_str("PID-5.2").unwrap().as_deref(), Some("JANE"));
    /// assert_eq!(msg.get_str("MSH-10").unwrap().as_deref(), Some("42"));
    /// ```
    pub fn parse(input: &'a [u8]) -> Result<Message<'a>> {
        let bytes = trim_start(input);
        let lead = input.len() - bytes.len();
        if bytes.is_empty() {
            return Err(Error::bare(ErrorKind::Empty));
        }
        if u32::try_from(bytes.len()).is_err() {
            return Err(Error::bare(ErrorKind::TooLarge(bytes.len())));
        }
        if !bytes.starts_with(b"MSH") {
            return Err(Error::new(ErrorKind::NotHl7, Location::at_offset(lead)));
        }
        let delimiters = header_delimiters(bytes)?;
        let mut message = Message {
            bytes,
            ctx: Context {
                delimiters,
                charset: Charset::Ascii,
            },
            segments: Vec::with_capacity(bytes.len() / 64 + 1),
            spans: Vec::with_capacity(bytes.len() / 6 + 4),
            marks: Vec::with_capacity(bytes.len() / 8 + 4),
        };
        message.index()?;
        let charset = message
            .segment(0)
            .field(18)
            .map(|f| f.repetition(1).raw())
            .unwrap_or_default();
        message.ctx.charset = Charset::from_name(charset)?;
        Ok(message)
    }

    /// Finds every delimiter in one pass: 64 bytes at a time, a bit mask of
    /// the bytes that are any of the six (field, repetition, component and
    /// subcomponent separators, CR, LF), then one step per delimiter.
    fn index(&mut self) -> Result<()> {
        let bytes = self.bytes;
        let d = self.ctx.delimiters;
        let field = d.field;
        // An undeclared separator is replaced by the field separator, so it
        // matches nothing the field separator does not already match.
        let set = [
            field,
            d.repetition.unwrap_or(field),
            d.component.unwrap_or(field),
            d.subcomponent.unwrap_or(field),
            b'\r',
            b'\n',
        ];
        let mut scan = Scan::default();
        let mut chunks = bytes.chunks_exact(64);
        let mut offset = 0usize;
        for chunk in &mut chunks {
            let Ok(chunk) = <&[u8; 64]>::try_from(chunk) else {
                continue; // chunks_exact: never
            };
            let mut mask = delimiter_mask(chunk, &set);
            while mask != 0 {
                let at = offset + mask.trailing_zeros() as usize;
                mask &= mask - 1;
                self.delimiter(at, field, &mut scan)?;
            }
            offset += 64;
        }
        // The last few bytes, padded with zeros (never a delimiter).
        let mut last = [0u8; 64];
        let remainder = chunks.remainder();
        last[..remainder.len()].copy_from_slice(remainder);
        let mut mask = delimiter_mask(&last, &set);
        while mask != 0 {
            let at = offset + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            self.delimiter(at, field, &mut scan)?;
        }
        if bytes.len() > scan.segment_start {
            self.close_segment(bytes.len(), &scan)?;
        }
        Ok(())
    }

    /// Records the delimiter at `at`.
    #[inline(always)]
    fn delimiter(&mut self, at: usize, field: u8, scan: &mut Scan) -> Result<()> {
        let b = self.bytes[at];
        if b == field {
            let mark_end = self.marks.len() as u32;
            self.spans.push(Span {
                start: scan.field_start as u32,
                end: at as u32,
                mark_start: scan.mark_start,
                mark_end,
            });
            scan.field_start = at + 1;
            scan.mark_start = mark_end;
        } else if b == b'\r' || b == b'\n' {
            if at > scan.segment_start {
                self.close_segment(at, scan)?;
            }
            scan.first_span = self.spans.len() as u32;
            scan.segment_start = at + 1;
            scan.field_start = at + 1;
            scan.first_mark = self.marks.len() as u32;
            scan.mark_start = scan.first_mark;
        } else {
            self.marks.push(at as u32);
        }
        Ok(())
    }

    fn close_segment(&mut self, end: usize, scan: &Scan) -> Result<()> {
        let (start, first_span) = (scan.segment_start, scan.first_span);
        self.spans.push(Span {
            start: scan.field_start as u32,
            end: end as u32,
            mark_start: scan.mark_start,
            mark_end: self.marks.len() as u32,
        });
        let name_span = self.spans[first_span as usize];
        let name = &self.bytes[name_span.start as usize..name_span.end as usize];
        if !is_lenient_segment_name(name) {
            if self.bytes[start..end].trim_ascii().is_empty() {
                // A line of blanks, as editors leave at the end of files.
                self.spans.truncate(first_span as usize);
                self.marks.truncate(scan.first_mark as usize);
                return Ok(());
            }
            return Err(Error::new(
                ErrorKind::BadSegmentName(String::from_utf8_lossy(name).into_owned()),
                Location {
                    offset: Some(start),
                    ..Location::segment(self.segments.len() + 1, name)
                },
            ));
        }
        if !self.segments.is_empty() && name == b"MSH" {
            return Err(Error::new(
                ErrorKind::MultipleMessages,
                Location::segment(self.segments.len() + 1, name),
            ));
        }
        self.segments.push(SegmentIndex {
            start: start as u32,
            end: end as u32,
            first_span,
            span_count: self.spans.len() as u32 - first_span,
        });
        Ok(())
    }

    /// The message's bytes, without a byte order mark or leading blank lines.
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn delimiters(&self) -> Delimiters {
        self.ctx.delimiters
    }

    pub fn charset(&self) -> Charset {
        self.ctx.charset
    }

    pub fn context(&self) -> Context {
        self.ctx
    }

    /// The number of segments.
    #[inline]
    pub fn len(&self) -> usize {
        self.segments.len()
    }

    /// A parsed message always has its MSH; this is here for completeness.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The segment at `index` (0-based; 0 is the MSH).
    ///
    /// # Panics
    /// When `index >= self.len()`, like slice indexing.
    #[inline]
    pub fn segment(&self, index: usize) -> Segment<'_> {
        let seg = self.segments[index];
        let spans =
            &self.spans[seg.first_span as usize..(seg.first_span + seg.span_count) as usize];
        // A header segment carries its delimiters in fields 1 and 2, which
        // it can only do when a field separator follows its name.
        let header = spans.len() >= 2
            && matches!(
                &self.bytes[spans[0].start as usize..spans[0].end as usize],
                b"MSH" | b"FHS" | b"BHS"
            );
        Segment {
            bytes: self.bytes,
            index,
            header,
            start: seg.start,
            end: seg.end,
            spans,
            marks: &self.marks,
            ctx: self.ctx,
        }
    }

    /// All segments, in order.
    pub fn segments(&self) -> impl Iterator<Item = Segment<'_>> + '_ {
        (0..self.len()).map(move |i| self.segment(i))
    }

    /// The name of segment `index` without building its view.
    #[inline]
    pub fn segment_name(&self, index: usize) -> &'a [u8] {
        let name = self.spans[self.segments[index].first_span as usize];
        &self.bytes[name.start as usize..name.end as usize]
    }

    /// The `occurrence`th (1-based) segment named `name`.
    pub fn find_segment(&self, name: &[u8], occurrence: usize) -> Option<Segment<'_>> {
        (0..self.len())
            .filter(|&i| self.segment_name(i) == name)
            .nth(occurrence.checked_sub(1)?)
            .map(|i| self.segment(i))
    }

    /// The value at `path`, or `None` where the message has nothing there.
    pub fn get(&self, path: &Path) -> Option<Element<'_>> {
        let segment = self.find_segment(path.segment.as_bytes(), path.occurrence)?;
        path.locate_in(&segment)
    }

    /// Parses `path` and returns the text (unescaped, decoded) at it.
    pub fn get_str(&self, path: &str) -> Result<Option<Cow<'_, str>>> {
        let path: Path = path.parse()?;
        Ok(self.get(&path).map(|e| e.text()))
    }

    /// MSH-10, the message control id.
    pub fn control_id(&self) -> Cow<'_, str> {
        self.header_text(10)
    }

    /// MSH-12.1, the version id (`2.5.1`).
    pub fn version(&self) -> Cow<'_, str> {
        self.segment(0)
            .field(12)
            .map(|f| f.component(1).text())
            .unwrap_or_default()
    }

    fn header_text(&self, field: usize) -> Cow<'_, str> {
        self.segment(0)
            .field(field)
            .map(|f| f.repetition(1).text())
            .unwrap_or_default()
    }
}

/// One segment: its name and its fields.
#[derive(Clone, Debug)]
pub struct Segment<'a> {
    bytes: &'a [u8],
    index: usize,
    header: bool,
    start: u32,
    end: u32,
    // The spans of the name and the fields; for header segments, span 1 is
    // the encoding characters (field 2).
    spans: &'a [Span],
    /// All the message's marks; each span says which are its own.
    marks: &'a [u32],
    ctx: Context,
}

impl<'a> Segment<'a> {
    /// The segment's name (three characters, unless the sender broke the rules).
    #[inline]
    pub fn name(&self) -> &'a [u8] {
        self.span_bytes(0)
    }

    /// The segment's name as text.
    pub fn name_str(&self) -> &'a str {
        std::str::from_utf8(self.name()).unwrap_or("???")
    }

    /// 0-based index of this segment in its message.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The segment's bytes, without its terminator.
    pub fn as_bytes(&self) -> &'a [u8] {
        &self.bytes[self.start as usize..self.end as usize]
    }

    /// MSH, FHS and BHS carry the delimiters in fields 1 and 2 (when they
    /// have any field at all).
    #[inline]
    pub fn is_header(&self) -> bool {
        self.header
    }

    #[inline]
    fn span_bytes(&self, i: usize) -> &'a [u8] {
        let s = self.spans[i];
        &self.bytes[s.start as usize..s.end as usize]
    }

    /// The number of fields, as the standard numbers them (for MSH this
    /// counts MSH-1, the field separator).
    #[inline]
    pub fn len(&self) -> usize {
        self.spans.len() - 1 + usize::from(self.is_header())
    }

    /// True for a segment with a name and no fields at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Field `n` (1-based, numbered as the standard numbers it).
    #[inline]
    pub fn field(&self, n: usize) -> Option<Element<'a>> {
        if self.is_header() {
            return match n {
                0 => None,
                1 => {
                    let at = self.start as usize + 3;
                    Some(Element::literal(&self.bytes[at..at + 1], self.ctx))
                }
                2 => Some(Element::literal(self.span_bytes(1), self.ctx)),
                _ => self.spans.get(n - 1).map(|s| self.span_field(s)),
            };
        }
        (n >= 1)
            .then(|| self.spans.get(n))
            .flatten()
            .map(|s| self.span_field(s))
    }

    /// The field at `span`, with the marks that split it.
    #[inline]
    fn span_field(&self, span: &Span) -> Element<'a> {
        field_at(self.bytes, self.marks, span, self.ctx)
    }

    /// All fields, from field 1.
    pub fn fields(&self) -> impl Iterator<Item = Element<'a>> + '_ {
        // A header segment's fields 1 and 2 come from `field`; the rest,
        // like every field of any other segment, straight from the spans.
        let (literals, first_span) = if self.header { (2, 2) } else { (0, 1) };
        Fields {
            segment: self,
            literals_done: 0,
            literals,
            rest: self.spans.get(first_span..).unwrap_or_default().iter(),
        }
    }
}

/// The fields of a segment, in order.
struct Fields<'s, 'a> {
    segment: &'s Segment<'a>,
    literals_done: u8,
    literals: u8,
    rest: std::slice::Iter<'a, Span>,
}

impl<'a> Iterator for Fields<'_, 'a> {
    type Item = Element<'a>;

    #[inline]
    fn next(&mut self) -> Option<Element<'a>> {
        if self.literals_done < self.literals {
            self.literals_done += 1;
            return self.segment.field(usize::from(self.literals_done));
        }
        let span = self.rest.next()?;
        Some(self.segment.span_field(span))
    }
}

/// The field at `span` of a message's `bytes`.
#[inline]
fn field_at<'a>(bytes: &'a [u8], marks: &'a [u32], span: &Span, ctx: Context) -> Element<'a> {
    Element {
        raw: &bytes[span.start as usize..span.end as usize],
        marks: Some(&marks[span.mark_start as usize..span.mark_end as usize]),
        base: span.start,
        level: Level::Field,
        ctx,
    }
}

/// The first `needle` in `haystack`. Most values are a few bytes long, where
/// a plain loop beats memchr's set-up; longer ones go to memchr.
#[inline]
fn find_byte(needle: u8, haystack: &[u8]) -> Option<usize> {
    if haystack.len() < 32 {
        haystack.iter().position(|&b| b == needle)
    } else {
        memchr::memchr(needle, haystack)
    }
}

/// The children of an element: split at the marks when it has them, by a
/// scan of its bytes when it has none.
struct Children<'a> {
    /// What is left to split; `None` once the last child is out.
    rest: Option<&'a [u8]>,
    /// The marks inside `rest`.
    marks: Option<&'a [u32]>,
    /// The position of `rest` in the message.
    base: u32,
    /// `None`: the element has one child, itself one level down.
    sep: Option<u8>,
    level: Level,
    ctx: Context,
}

impl<'a> Children<'a> {
    #[inline]
    fn child(&self, raw: &'a [u8], marks: Option<&'a [u32]>, base: u32) -> Element<'a> {
        Element {
            raw,
            marks,
            base,
            level: self.level,
            ctx: self.ctx,
        }
    }
}

impl<'a> Iterator for Children<'a> {
    type Item = Element<'a>;

    #[inline]
    fn next(&mut self) -> Option<Element<'a>> {
        let rest = self.rest?;
        let Some(sep) = self.sep else {
            self.rest = None;
            return Some(self.child(rest, self.marks, self.base));
        };
        match self.marks {
            Some(marks) => {
                let base = self.base;
                // The first mark that is this level's separator; the marks
                // before it are inside the child.
                let found = marks
                    .iter()
                    .position(|&m| rest.get(m.wrapping_sub(base) as usize) == Some(&sep));
                match found {
                    Some(k) => {
                        let at = marks[k].wrapping_sub(base) as usize;
                        let child = self.child(&rest[..at], Some(&marks[..k]), base);
                        self.rest = Some(&rest[at + 1..]);
                        self.marks = Some(&marks[k + 1..]);
                        self.base = marks[k] + 1;
                        Some(child)
                    }
                    None => {
                        self.rest = None;
                        Some(self.child(rest, Some(marks), base))
                    }
                }
            }
            None => match find_byte(sep, rest) {
                Some(p) => {
                    self.rest = Some(&rest[p + 1..]);
                    Some(self.child(&rest[..p], None, 0))
                }
                None => {
                    self.rest = None;
                    Some(self.child(rest, None, 0))
                }
            },
        }
    }
}

/// How deep in a field an element is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Field,
    Repetition,
    Component,
    Subcomponent,
    /// MSH-1 and MSH-2: the delimiters themselves, never split or unescaped.
    Literal,
}

/// A field, repetition, component or subcomponent: a slice of the message
/// that knows how to split and decode itself.
///
/// An element taken from a parsed [`Message`] carries the positions of the
/// separators inside it, found when the message was parsed, and splits
/// itself by reading them; one made with [`Element::new`] scans its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Element<'a> {
    raw: &'a [u8],
    /// The positions, in the message, of the repetition, component and
    /// subcomponent separators inside `raw` (`None`: not indexed).
    marks: Option<&'a [u32]>,
    /// The position of `raw` in the message.
    base: u32,
    level: Level,
    ctx: Context,
}

impl<'a> Element<'a> {
    #[inline]
    pub fn new(raw: &'a [u8], level: Level, ctx: Context) -> Element<'a> {
        Element {
            raw,
            marks: None,
            base: 0,
            level,
            ctx,
        }
    }

    #[inline]
    fn literal(raw: &'a [u8], ctx: Context) -> Element<'a> {
        Element::new(raw, Level::Literal, ctx)
    }

    /// The bytes as they are in the message, escape sequences and all.
    #[inline]
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    #[inline]
    pub fn level(&self) -> Level {
        self.level
    }

    /// Nothing was sent.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// `""`: the sender says the value is null (delete it), which is not the
    /// same as sending nothing.
    pub fn is_null(&self) -> bool {
        self.raw == b"\"\""
    }

    /// The level of this element's children, whether or not the message
    /// declares the separator that would split them (without it, the only
    /// child is the whole element, one level down).
    #[inline]
    fn child_level(&self) -> Level {
        match self.level {
            Level::Field => Level::Repetition,
            Level::Repetition => Level::Component,
            Level::Component => Level::Subcomponent,
            Level::Subcomponent | Level::Literal => self.level,
        }
    }

    /// The separator that splits this element into its children, if any.
    #[inline]
    fn child_separator(&self) -> Option<(u8, Level)> {
        let d = &self.ctx.delimiters;
        match self.level {
            Level::Field => d.repetition.map(|c| (c, Level::Repetition)),
            Level::Repetition => d.component.map(|c| (c, Level::Component)),
            Level::Component => d.subcomponent.map(|c| (c, Level::Subcomponent)),
            Level::Subcomponent | Level::Literal => None,
        }
    }

    /// The element one level down: repetitions of a field, components of a
    /// repetition, subcomponents of a component. A subcomponent has itself as
    /// its only child.
    #[inline]
    pub fn children(&self) -> impl Iterator<Item = Element<'a>> + use<'a> {
        let (sep, level) = match self.child_separator() {
            // Indexed, and no separator of any level inside: one child.
            Some((_, level)) if self.marks.is_some_and(<[u32]>::is_empty) => (None, level),
            Some((sep, level)) => (Some(sep), level),
            None => (None, self.child_level()),
        };
        Children {
            rest: Some(self.raw),
            marks: self.marks,
            base: self.base,
            sep,
            level,
            ctx: self.ctx,
        }
    }

    /// The `n`th (1-based) child, or an empty element of the child level when
    /// there is none (the standard treats absent trailing parts as empty).
    #[inline]
    fn child(&self, n: usize) -> Element<'a> {
        let level = self.child_level();
        n.checked_sub(1)
            .and_then(|i| self.children().nth(i))
            .unwrap_or(Element::new(&[], level, self.ctx))
    }

    /// The number of children (1 for a leaf).
    pub fn child_count(&self) -> usize {
        match (self.child_separator(), self.marks) {
            (Some((sep, _)), Some(marks)) => {
                let base = self.base;
                let raw = self.raw;
                marks
                    .iter()
                    .filter(|&&m| raw.get(m.wrapping_sub(base) as usize) == Some(&sep))
                    .count()
                    + 1
            }
            (Some((sep, _)), None) => memchr::memchr_iter(sep, self.raw).count() + 1,
            (None, _) => 1,
        }
    }

    /// Walks down to `level` through first children.
    #[inline]
    fn descend_to(self, level: Level) -> Element<'a> {
        let mut e = self;
        while e.level < level && e.child_separator().is_some() {
            e = e.child(1);
        }
        if e.level < level {
            e.level = level;
        }
        e
    }

    /// Repetition `n` (1-based) of a field.
    #[inline]
    pub fn repetition(&self, n: usize) -> Element<'a> {
        match self.level {
            Level::Field => self.child(n),
            _ => self.empty_unless_first(n),
        }
    }

    /// Component `n` (1-based); on a field, of its first repetition.
    #[inline]
    pub fn component(&self, n: usize) -> Element<'a> {
        match self.level {
            Level::Field => self.descend_to(Level::Repetition).child(n),
            Level::Repetition => self.child(n),
            _ => self.empty_unless_first(n),
        }
    }

    /// Subcomponent `n` (1-based); on a field or repetition, of its first
    /// component.
    #[inline]
    pub fn subcomponent(&self, n: usize) -> Element<'a> {
        match self.level {
            Level::Field | Level::Repetition => self.descend_to(Level::Component).child(n),
            Level::Component => self.child(n),
            _ => self.empty_unless_first(n),
        }
    }

    /// A leaf asked for child 1 is itself; for any other, nothing.
    #[inline]
    fn empty_unless_first(&self, n: usize) -> Element<'a> {
        if n == 1 {
            *self
        } else {
            Element::new(&[], self.level, self.ctx)
        }
    }

    /// The value as text: escape sequences replaced, formatting commands
    /// kept, decoded from the message's character set. On an element with
    /// children the separators between them stay in the text.
    pub fn text(&self) -> Cow<'a, str> {
        self.text_with(Formatting::Keep)
    }

    /// Like [`Element::text`], choosing what to do with formatting commands.
    pub fn text_with(&self, formatting: Formatting) -> Cow<'a, str> {
        if self.level == Level::Literal {
            return self.ctx.charset.decode(self.raw);
        }
        match escape::unescape(self.raw, &self.ctx.delimiters, formatting) {
            Cow::Borrowed(b) => self.ctx.charset.decode(b),
            Cow::Owned(b) => Cow::Owned(self.ctx.charset.decode(&b).into_owned()),
        }
    }

    #[inline]
    pub fn context(&self) -> Context {
        self.ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORU: &[u8] =
        b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102030405||ORU^R01^ORU_R01|MSG0001|P|2.5.1\r\
PID|1||123^^^HOSP^MR~456^^^SSA^SS||DOE^JANE^Q||19800101|F\r\
OBR|1|||CBC^Complete blood count^LN\r\
OBX|1|NM|WBC^White cells^LN||7.5|10*3/uL|4.0-11.0|N|||F\r\
OBX|2|ST|NOTE^Note^L||a\\F\\b\\S\\c||||||F\r";

    #[test]
    fn find_byte_agrees_with_a_plain_search() {
        let hay: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37) ^ 0x5A).collect();
        for len in 0..hay.len() {
            for needle in [
                0u8,
                0x5A,
                0x80,
                0xFF,
                hay[len / 2],
                hay[len.saturating_sub(1)],
            ] {
                let slice = &hay[..len];
                let plain = slice.iter().position(|&b| b == needle);
                assert_eq!(find_byte(needle, slice), plain, "{needle} in {len} bytes");
            }
        }
        assert_eq!(find_byte(b'^', b"\x80\x81^\xFF\x00"), Some(2));
        assert_eq!(
            find_byte(0x01, b"\x00\x00\x00\x00\x00\x00\x01\x01\x01"),
            Some(6)
        );
    }

    #[test]
    fn delimiter_mask_agrees_with_a_plain_search() {
        let set = *b"|~^&\r\n";
        let mut chunk = [0u8; 64];
        for (i, b) in chunk.iter_mut().enumerate() {
            *b = b"ab|c~^&\r\n\\\x80\xFF"[(i * 7 + i / 5) % 12];
        }
        for shift in 0..64 {
            chunk.rotate_left(1);
            let plain = chunk
                .iter()
                .enumerate()
                .filter(|(_, b)| set.contains(b))
                .fold(0u64, |m, (i, _)| m | 1 << i);
            assert_eq!(delimiter_mask(&chunk, &set), plain, "rotation {shift}");
        }
        assert_eq!(delimiter_mask(&[b'|'; 64], &set), u64::MAX);
        assert_eq!(delimiter_mask(&[0; 64], &set), 0);
    }

    /// Every element walked through the index, and the same element split
    /// by scanning its bytes, give the same values at every level.
    fn assert_index_agrees_with_scanning(input: &[u8]) {
        fn tree(e: Element<'_>, depth: usize, out: &mut Vec<(usize, Vec<u8>, usize)>) {
            out.push((depth, e.raw().to_vec(), e.child_count()));
            if depth < 3 {
                for child in e.children() {
                    tree(child, depth + 1, out);
                }
            }
        }
        let m = Message::parse(input).unwrap();
        for segment in m.segments() {
            for field in segment.fields() {
                let (mut indexed, mut scanned) = (vec![], vec![]);
                tree(field, 0, &mut indexed);
                tree(
                    Element::new(field.raw(), field.level(), field.context()),
                    0,
                    &mut scanned,
                );
                assert_eq!(
                    indexed,
                    scanned,
                    "{:?}",
                    String::from_utf8_lossy(field.raw())
                );
                for n in 1..4 {
                    let plain = Element::new(field.raw(), field.level(), field.context());
                    assert_eq!(field.repetition(n).raw(), plain.repetition(n).raw());
                    assert_eq!(field.component(n).raw(), plain.component(n).raw());
                    assert_eq!(field.subcomponent(n).raw(), plain.subcomponent(n).raw());
                }
            }
        }
    }

    #[test]
    fn the_index_splits_as_scanning_does() {
        assert_index_agrees_with_scanning(ORU);
        assert_index_agrees_with_scanning(include_bytes!("../tests/data/oru_r01_1500.hl7"));
        // Undeclared separators, unusual ones, LF and CRLF, blank lines.
        assert_index_agrees_with_scanning(b"MSH',''A\rPID'1'a,b~c&d,e\r");
        assert_index_agrees_with_scanning(b"MSH|^\rPID|a^b~c&d|x~y\n\nOBX|1^2&3\r\n");
        assert_index_agrees_with_scanning(b"MSH$%~\\&$A$B\rPID$1$$X%Y~Z&W%%\r  \r");
        // Delimiters at every position around the 64-byte blocks.
        for len in 50..200 {
            let mut text = b"MSH|^~\\&|A\rPID|".to_vec();
            while text.len() < len {
                let b = b"a^b&c~d|"[text.len() % 8];
                text.push(b);
            }
            text.extend_from_slice(b"\rOBX|1^2~3&4|5");
            assert_index_agrees_with_scanning(&text);
        }
    }

    #[test]
    fn header_named_segment_without_fields_is_an_ordinary_segment() {
        // These panicked: a header segment was assumed to have fields 1 and 2.
        for input in [&b"MSH|^~\\&|A\rBHS"[..], b"MSH|^~\\&|A\rFHS\rPID|1"] {
            let m = Message::parse(input).unwrap();
            let seg = m.segment(1);
            assert!(!seg.is_header());
            assert_eq!(seg.len(), 0);
            assert_eq!(seg.fields().count(), 0);
            for path in ["BHS-1", "BHS-2", "FHS-1", "FHS-2", "FHS-3"] {
                assert_eq!(m.get_str(path).unwrap(), None, "{path}");
            }
            let owned = crate::OwnedMessage::from(&m);
            assert_eq!(owned.to_bytes(), [input.trim_ascii_end(), b"\r"].concat());
        }
        let m = Message::parse(b"MSH|^~\\&|A\rBHS|^~\\&|B\r").unwrap();
        assert!(m.segment(1).is_header());
        assert_eq!(m.get_str("BHS-2").unwrap().as_deref(), Some("^~\\&"));
        assert_eq!(m.get_str("BHS-3").unwrap().as_deref(), Some("B"));
    }

    #[test]
    fn paths_reach_components_when_no_repetition_separator_is_declared() {
        // Found by the fuzzer: MSH-2 is "," (components only), and PID-3.2
        // was looked for by splitting the field at the repetition level.
        let m = Message::parse(b"MSH',''A\rPID'1'a,b\r").unwrap();
        assert_eq!(m.get_str("PID-2.2").unwrap().as_deref(), Some("b"));
        assert_eq!(m.get_str("PID-2.1.1").unwrap().as_deref(), Some("a"));
        let mut owned = crate::OwnedMessage::from(&m);
        let path = "MSH-9.2".parse().unwrap();
        owned.set_text(&path, "v|^").unwrap();
        assert_eq!(owned.get_text(&path).as_deref(), Some("v|^"));
    }

    #[test]
    fn fields_are_the_fields_one_by_one() {
        let m = Message::parse(ORU).unwrap();
        for segment in m.segments() {
            let one_by_one: Vec<_> = (1..=segment.len())
                .map(|n| segment.field(n).unwrap().raw())
                .collect();
            let all: Vec<_> = segment.fields().map(|f| f.raw()).collect();
            assert_eq!(all, one_by_one);
        }
    }

    #[test]
    fn finds_segments_and_fields() {
        let m = Message::parse(ORU).unwrap();
        assert_eq!(m.len(), 5);
        let pid = m.segment(1);
        assert_eq!(pid.name(), b"PID");
        assert_eq!(pid.field(5).unwrap().raw(), b"DOE^JANE^Q");
        assert_eq!(pid.len(), 8);
        assert!(pid.field(9).is_none());
    }

    #[test]
    fn msh_fields_are_numbered_as_the_standard_numbers_them() {
        let m = Message::parse(ORU).unwrap();
        let msh = m.segment(0);
        assert_eq!(msh.field(1).unwrap().raw(), b"|");
        assert_eq!(msh.field(2).unwrap().raw(), b"^~\\&");
        assert_eq!(msh.field(3).unwrap().raw(), b"LAB");
        assert_eq!(msh.field(9).unwrap().component(2).raw(), b"R01");
        assert_eq!(msh.field(10).unwrap().raw(), b"MSG0001");
        assert_eq!(m.control_id(), "MSG0001");
        assert_eq!(m.version(), "2.5.1");
    }

    #[test]
    fn encoding_characters_are_not_unescaped() {
        let m = Message::parse(ORU).unwrap();
        assert_eq!(m.get_str("MSH-2").unwrap().as_deref(), Some("^~\\&"));
        assert_eq!(m.get_str("MSH-1").unwrap().as_deref(), Some("|"));
    }

    #[test]
    fn repetitions_components_subcomponents() {
        let m = Message::parse(ORU).unwrap();
        let pid3 = m.segment(1).field(3).unwrap();
        assert_eq!(pid3.child_count(), 2);
        assert_eq!(pid3.repetition(2).component(4).raw(), b"SSA");
        assert_eq!(pid3.component(1).raw(), b"123");
        assert_eq!(pid3.repetition(3).raw(), b"");
        assert_eq!(pid3.component(1).subcomponent(1).raw(), b"123");
        assert_eq!(pid3.component(1).subcomponent(2).raw(), b"");
    }

    #[test]
    fn text_is_unescaped() {
        let m = Message::parse(ORU).unwrap();
        assert_eq!(m.get_str("OBX[2]-5").unwrap().as_deref(), Some("a|b^c"));
    }

    #[test]
    fn line_endings_cr_lf_crlf_and_blank_lines() {
        for sep in ["\r", "\n", "\r\n", "\n\n"] {
            let text = format!(
                "\u{feff}\n{}{sep}PID|1||X{sep}{sep}",
                "MSH|^~\\&|A|B|||||ADT^A01|1|P|2.3"
            );
            let m = Message::parse(text.as_bytes()).unwrap();
            assert_eq!(m.len(), 2, "{sep:?}");
            assert_eq!(m.get_str("PID-3").unwrap().as_deref(), Some("X"));
        }
    }

    #[test]
    fn explicit_null_differs_from_empty() {
        let m = Message::parse(b"MSH|^~\\&|A\rPID|1|\"\"||\r").unwrap();
        let pid = m.segment(1);
        assert!(pid.field(2).unwrap().is_null());
        assert!(!pid.field(3).unwrap().is_null());
        assert!(pid.field(3).unwrap().is_empty());
    }

    #[test]
    fn not_hl7_is_reported() {
        let e = Message::parse(b"hello world").unwrap_err();
        assert_eq!(e.kind, ErrorKind::NotHl7);
        assert_eq!(Message::parse(b"\r\n").unwrap_err().kind, ErrorKind::Empty);
    }

    #[test]
    fn bad_segment_name_has_a_location() {
        let e = Message::parse(b"MSH|^~\\&|A\rPID|1\rX-X|2\r").unwrap_err();
        assert_eq!(e.location.segment_index, Some(3));
        assert!(e.to_string().contains("segment 3"), "{e}");
    }

    #[test]
    fn second_msh_is_an_error() {
        let e = Message::parse(b"MSH|^~\\&|A\rMSH|^~\\&|B\r").unwrap_err();
        assert_eq!(e.kind, ErrorKind::MultipleMessages);
    }

    #[test]
    fn unusual_delimiters() {
        let m = Message::parse(b"MSH$%~\\&$A$B\rPID$1$$X%Y\r").unwrap();
        assert_eq!(m.get_str("PID-3.2").unwrap().as_deref(), Some("Y"));
        assert_eq!(m.get_str("MSH-3").unwrap().as_deref(), Some("A"));
    }

    #[test]
    fn segment_without_fields() {
        let m = Message::parse(b"MSH|^~\\&|A\rZZZ\rPID|1\r").unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(m.segment(1).len(), 0);
        assert!(m.segment(1).field(1).is_none());
    }

    #[test]
    fn charset_from_msh_18() {
        let m = Message::parse(b"MSH|^~\\&|A|||||||||||||||8859/1\rPID|1||||Jos\xe9\r").unwrap();
        assert_eq!(m.charset(), Charset::Latin1);
        assert_eq!(m.get_str("PID-5").unwrap().as_deref(), Some("José"));
        let e = Message::parse(b"MSH|^~\\&|A|||||||||||||||EBCDIC\r").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::UnsupportedCharset(_)));
    }
}
