//! Streams of many messages and FHS/BHS/BTS/FTS batches.

use crate::error::{Error, ErrorKind, Location, Result};

/// One piece of a stream of messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamItem<'a> {
    /// One message: from its MSH up to the next MSH, envelope segment or the
    /// end of the input.
    Message {
        bytes: &'a [u8],
        offset: usize,
        line: usize,
    },
    /// A batch envelope segment: FHS, BHS, BTS or FTS.
    Envelope {
        name: [u8; 3],
        bytes: &'a [u8],
        offset: usize,
        line: usize,
    },
    /// Lines that belong to no message (before the first MSH, or after an
    /// envelope segment): kept so that nothing is dropped unseen.
    Stray {
        bytes: &'a [u8],
        offset: usize,
        line: usize,
    },
}

fn envelope_name(line: &[u8]) -> Option<[u8; 3]> {
    match line.get(..3) {
        Some(b"FHS") | Some(b"BHS") | Some(b"BTS") | Some(b"FTS") => {
            Some([line[0], line[1], line[2]])
        }
        _ => None,
    }
}

/// Splits a stream (a file, a socket's worth of bytes) into messages,
/// envelope segments and stray lines. A message starts at each line that
/// begins with `MSH`; segments may end in CR, LF or CRLF; byte order marks
/// and blank lines are skipped.
pub fn split_stream<'a>(input: &'a [u8]) -> Vec<StreamItem<'a>> {
    let mut spans = Vec::new();
    Scanner::default().scan(input, 0, true, &mut |span| spans.push(span));
    spans.iter().map(|span| span.item(input, 0)).collect()
}

/// Splits a stream that arrives in chunks, as [`split_stream`] splits a
/// whole one: the caller reads (a file, a pipe) and pushes what it read;
/// each item is handed out as soon as the line after it shows it complete.
/// It holds only the items not yet taken, the message being read and the
/// unfinished last line, so memory stays bounded by the largest message
/// whatever the length of the stream. Offsets and line numbers count from
/// the start of the stream.
///
/// ```
/// use hl7v2::{StreamItem, StreamSplitter};
///
/// let mut splitter = StreamSplitter::new();
/// let mut controls = Vec::new();
/// for chunk in [&b"MSH|^~\\&|A\rPID|1\rMS"[..], b"H|^~\\&|B\rPID|2\r"] {
///     splitter.push(chunk);
///     while let Some(item) = splitter.next_item() {
///         if let StreamItem::Message { bytes, .. } = item {
///             controls.push(bytes[9]);
///         }
///     }
/// }
/// splitter.finish();
/// while let Some(item) = splitter.next_item() {
///     if let StreamItem::Message { bytes, line, .. } = item {
///         controls.push(bytes[9]);
///         assert_eq!(line, 3);
///     }
/// }
/// assert_eq!(controls, b"AB");
/// ```
#[derive(Default)]
pub struct StreamSplitter {
    buffer: Vec<u8>,
    /// The stream offset of `buffer[0]`.
    base: usize,
    /// Where the first line not yet read begins, in `buffer`.
    scanned: usize,
    scanner: Scanner,
    ready: std::collections::VecDeque<Span>,
}

impl StreamSplitter {
    pub fn new() -> StreamSplitter {
        StreamSplitter::default()
    }

    /// Adds the next bytes of the stream.
    pub fn push(&mut self, chunk: &[u8]) {
        self.drop_taken();
        self.buffer.extend_from_slice(chunk);
        let ready = &mut self.ready;
        self.scanned = self
            .scanner
            .scan(&self.buffer, self.scanned, false, &mut |span| {
                ready.push_back(span)
            });
    }

    /// Marks the end of the stream: the last line needs no line end, and
    /// the item it belongs to is complete.
    pub fn finish(&mut self) {
        let ready = &mut self.ready;
        self.scanned = self
            .scanner
            .scan(&self.buffer, self.scanned, true, &mut |span| {
                ready.push_back(span)
            });
    }

    /// The next complete item, in stream order.
    pub fn next_item(&mut self) -> Option<StreamItem<'_>> {
        let span = self.ready.pop_front()?;
        Some(span.item(&self.buffer, self.base))
    }

    /// How many bytes the splitter holds that are not yet handed out: the
    /// items ready, the message being read and the unfinished last line.
    pub fn buffered(&self) -> usize {
        self.buffer.len() - self.first_needed()
    }

    /// Where the bytes still needed begin, in `buffer`.
    fn first_needed(&self) -> usize {
        self.ready
            .front()
            .or(self.scanner.open.as_ref())
            .map_or(self.scanned, |span| span.start)
    }

    /// The line the item being read starts on (the next line when none has
    /// started): where to point at a message that never ends.
    pub fn pending_line(&self) -> usize {
        self.scanner
            .open
            .map_or(self.scanner.lines + 1, |span| span.line)
    }

    /// Forgets the bytes before the first item still needed.
    fn drop_taken(&mut self) {
        let keep_from = self.first_needed();
        if keep_from == 0 {
            return;
        }
        self.buffer.drain(..keep_from);
        self.base += keep_from;
        self.scanned -= keep_from;
        for span in self.ready.iter_mut().chain(self.scanner.open.as_mut()) {
            span.start -= keep_from;
            span.end -= keep_from;
        }
    }
}

/// What an item of a stream is, before it is lent out as a [`StreamItem`].
#[derive(Clone, Copy, Debug)]
enum SpanKind {
    Message,
    Stray,
    Envelope([u8; 3]),
}

/// An item of a stream as a range of the bytes being split.
#[derive(Clone, Copy, Debug)]
struct Span {
    kind: SpanKind,
    start: usize,
    end: usize,
    line: usize,
}

impl Span {
    /// The item, given the bytes `start` and `end` index and the stream
    /// offset of their first byte.
    fn item<'a>(&self, bytes: &'a [u8], base: usize) -> StreamItem<'a> {
        let (offset, line) = (base + self.start, self.line);
        let bytes = &bytes[self.start..self.end];
        match self.kind {
            SpanKind::Message => StreamItem::Message {
                bytes,
                offset,
                line,
            },
            SpanKind::Stray => StreamItem::Stray {
                bytes,
                offset,
                line,
            },
            SpanKind::Envelope(name) => StreamItem::Envelope {
                name,
                bytes,
                offset,
                line,
            },
        }
    }
}

/// The line-by-line reading shared by [`split_stream`] and
/// [`StreamSplitter`].
#[derive(Default)]
struct Scanner {
    lines: usize,
    /// The last line read ended in a CR at the end of the bytes: an LF
    /// first in the next bytes belongs to it.
    cr_at_end: bool,
    /// The message or stray lines being read.
    open: Option<Span>,
}

impl Scanner {
    /// Reads the complete lines of `bytes[pos..]` (and at the end of the
    /// stream the last one, unterminated), handing each finished item to
    /// `emit`. Returns where the unread rest begins.
    fn scan(
        &mut self,
        bytes: &[u8],
        mut pos: usize,
        at_end: bool,
        emit: &mut impl FnMut(Span),
    ) -> usize {
        if self.cr_at_end && pos < bytes.len() {
            self.cr_at_end = false;
            if bytes[pos] == b'\n' {
                pos += 1;
            }
        }
        while pos < bytes.len() {
            let (end, next) = match memchr::memchr2(b'\r', b'\n', &bytes[pos..]) {
                Some(found) => {
                    let end = pos + found;
                    match (bytes[end], bytes.get(end + 1)) {
                        (b'\r', Some(b'\n')) => (end, end + 2),
                        (b'\r', None) => {
                            self.cr_at_end = true;
                            (end, end + 1)
                        }
                        _ => (end, end + 1),
                    }
                }
                None if at_end => (bytes.len(), bytes.len()),
                None => break,
            };
            self.line(bytes, pos, end, emit);
            pos = next;
        }
        if at_end {
            if let Some(open) = self.open.take() {
                emit(open);
            }
        }
        pos
    }

    fn line(&mut self, bytes: &[u8], mut start: usize, end: usize, emit: &mut impl FnMut(Span)) {
        self.lines += 1;
        if bytes[start..end].starts_with(b"\xEF\xBB\xBF") {
            start += 3;
        }
        let text = &bytes[start..end];
        if text.trim_ascii().is_empty() {
            return;
        }
        let is_msh = text.starts_with(b"MSH");
        let kind = match envelope_name(text) {
            Some(name) => SpanKind::Envelope(name),
            None if is_msh => SpanKind::Message,
            None => SpanKind::Stray,
        };
        if let (Some(open), SpanKind::Stray) = (&mut self.open, kind) {
            // A segment of the message being read (or one more stray line).
            open.end = end;
            return;
        }
        if let Some(open) = self.open.take() {
            emit(open);
        }
        let span = Span {
            kind,
            start,
            end,
            line: self.lines,
        };
        match kind {
            SpanKind::Envelope(_) => emit(span),
            _ => self.open = Some(span),
        }
    }
}

/// A batch of messages, checked against the envelope rules: an optional FHS
/// first and FTS last, BHS/BTS groups that do not nest, no segment outside a
/// message, and BTS-1 / FTS-1 counts (when present) that match.
///
/// Missing headers and trailers are tolerated, as senders leave them out:
/// messages outside any BHS form an implicit batch, and a BTS or FTS without
/// its header closes what came before it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch<'a> {
    pub file_header: Option<&'a [u8]>,
    pub file_trailer: Option<&'a [u8]>,
    pub batch_headers: Vec<&'a [u8]>,
    pub batch_trailers: Vec<&'a [u8]>,
    /// Every message, in order, with its byte offset and line in the input.
    pub messages: Vec<(&'a [u8], usize, usize)>,
}

/// Whether a batch is open, and how it was opened.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Explicit,
    Implicit,
}

impl<'a> Batch<'a> {
    /// Reads a batch file or a plain stream of messages.
    pub fn parse(input: &'a [u8]) -> Result<Batch<'a>> {
        let items = split_stream(input);
        let mut batch = Batch::default();
        let mut open = Open::None;
        let mut batches = 0usize;
        let mut in_batch_count = 0usize;
        let err = |line: usize, offset: usize, why: String| {
            Error::new(
                ErrorKind::Batch(format!("line {line}: {why}")),
                Location {
                    segment_index: Some(line),
                    offset: Some(offset),
                    ..Location::default()
                },
            )
        };
        let last = items.len().saturating_sub(1);
        for (i, item) in items.iter().enumerate() {
            match *item {
                StreamItem::Message {
                    bytes,
                    offset,
                    line,
                } => {
                    if batch.file_trailer.is_some() {
                        return Err(err(
                            line,
                            offset,
                            "a message after the FTS file trailer".into(),
                        ));
                    }
                    if open == Open::None {
                        open = Open::Implicit;
                        batches += 1;
                        in_batch_count = 0;
                    }
                    batch.messages.push((bytes, offset, line));
                    in_batch_count += 1;
                }
                StreamItem::Stray {
                    bytes,
                    offset,
                    line,
                } => {
                    let name = String::from_utf8_lossy(&bytes[..bytes.len().min(3)]).into_owned();
                    return Err(err(
                        line,
                        offset,
                        format!("segment {name:?} is outside any message (no MSH before it)"),
                    ));
                }
                StreamItem::Envelope {
                    name,
                    bytes,
                    offset,
                    line,
                } => match &name {
                    b"FHS" => {
                        if i != 0 {
                            return Err(err(
                                line,
                                offset,
                                "FHS is not the first segment of the file".into(),
                            ));
                        }
                        batch.file_header = Some(bytes);
                    }
                    b"BHS" => {
                        if open == Open::Explicit {
                            return Err(err(
                                line,
                                offset,
                                "BHS inside a batch that has no BTS yet".into(),
                            ));
                        }
                        open = Open::Explicit;
                        batches += 1;
                        in_batch_count = 0;
                        batch.batch_headers.push(bytes);
                    }
                    b"BTS" => {
                        if open == Open::None {
                            batches += 1;
                            in_batch_count = 0;
                        }
                        check_count(bytes, in_batch_count, "BTS-1 batch message count")
                            .map_err(|why| err(line, offset, why))?;
                        open = Open::None;
                        batch.batch_trailers.push(bytes);
                    }
                    _ => {
                        if i != last {
                            return Err(err(
                                line,
                                offset,
                                "FTS is not the last segment of the file".into(),
                            ));
                        }
                        check_count(bytes, batches, "FTS-1 file batch count")
                            .map_err(|why| err(line, offset, why))?;
                        batch.file_trailer = Some(bytes);
                    }
                },
            }
        }
        Ok(batch)
    }
}

/// Checks a trailer's count field (field 1) against what was read.
fn check_count(trailer: &[u8], actual: usize, what: &str) -> std::result::Result<(), String> {
    let Some(&sep) = trailer.get(3) else {
        return Ok(());
    };
    let count = trailer[4..].split(|&b| b == sep).next().unwrap_or_default();
    let text = String::from_utf8_lossy(count);
    let text = text.trim();
    if text.is_empty() {
        return Ok(());
    }
    match text.parse::<usize>() {
        Ok(n) if n == actual => Ok(()),
        Ok(n) => Err(format!("{what} says {n}, but {actual} were read")),
        Err(_) => Err(format!("{what} {text:?} is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_a_plain_stream() {
        let input = b"\xEF\xBB\xBFMSH|^~\\&|A\nPID|1\n\nMSH|^~\\&|B\r\nPID|2\r\n";
        let items = split_stream(input);
        assert_eq!(items.len(), 2);
        let StreamItem::Message { bytes, line, .. } = items[1] else {
            panic!()
        };
        assert_eq!(bytes, b"MSH|^~\\&|B\r\nPID|2");
        assert_eq!(line, 4);
    }

    #[test]
    fn pending_line_is_where_the_open_message_starts() {
        let mut splitter = StreamSplitter::new();
        splitter.push(b"MSH|1\rPID|1\r\rMSH|2\rPID|2\rOBX|1|");
        assert_eq!(splitter.pending_line(), 4);
        splitter.push(b"x\r");
        assert_eq!(splitter.pending_line(), 4);
        let mut fresh = StreamSplitter::new();
        fresh.push(b"\n\nMSH|without a line end yet");
        assert_eq!(fresh.pending_line(), 3);
    }

    #[test]
    fn reads_a_batch_file() {
        let input = b"FHS|^~\\&|A\rBHS|^~\\&|A\rMSH|^~\\&|1\rPID|1\rMSH|^~\\&|2\rBTS|2\rFTS|1\r";
        let batch = Batch::parse(input).unwrap();
        assert_eq!(batch.messages.len(), 2);
        assert_eq!(batch.messages[1].0, b"MSH|^~\\&|2");
        assert!(batch.file_header.is_some() && batch.file_trailer.is_some());
    }

    #[test]
    fn rejects_segments_outside_messages() {
        let e = Batch::parse(b"BHS|^~\\&|A\rEVN|A04\rPID|1\rBTS|1\r").unwrap_err();
        assert!(e.to_string().contains("outside any message"), "{e}");
    }

    #[test]
    fn rejects_nested_batches_and_inner_fhs() {
        let e = Batch::parse(b"BHS|^~\\&\rMSH|^~\\&|1\rBHS|^~\\&\rBTS|1\r").unwrap_err();
        assert!(e.to_string().contains("BHS inside a batch"), "{e}");
        let e = Batch::parse(b"FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|1\rFHS|^~\\&\rBTS|1\rFTS|1\r")
            .unwrap_err();
        assert!(e.to_string().contains("FHS is not the first"), "{e}");
    }

    #[test]
    fn count_mismatch_is_reported() {
        let e = Batch::parse(b"BHS|^~\\&\rMSH|^~\\&|1\rBTS|3\r").unwrap_err();
        assert!(e.to_string().contains("says 3, but 1"), "{e}");
        let e = Batch::parse(b"FHS|^~\\&\rMSH|^~\\&|1\rBTS|1\rFTS|2\r").unwrap_err();
        assert!(e.to_string().contains("says 2, but 1"), "{e}");
    }

    #[test]
    fn missing_headers_and_trailers_are_tolerated() {
        for input in [
            &b"MSH|^~\\&|1\rBTS|1\r"[..],
            b"BHS|^~\\&\rMSH|^~\\&|1\r",
            b"FHS|^~\\&\rMSH|^~\\&|1\rMSH|^~\\&|2\rFTS|1\r",
            b"BHS|^~\\&\rMSH|^~\\&|1\rBTS|1\rFTS|1\r",
        ] {
            let batch = Batch::parse(input).unwrap();
            assert!(!batch.messages.is_empty());
        }
    }
}
