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
    let mut items = Vec::new();
    // The item being built: (kind, start offset, line, end offset).
    let mut open: Option<(bool, usize, usize, usize)> = None;
    let close = |open: &mut Option<(bool, usize, usize, usize)>,
                 items: &mut Vec<StreamItem<'a>>| {
        if let Some((is_message, start, line, end)) = open.take() {
            let bytes = &input[start..end];
            items.push(if is_message {
                StreamItem::Message {
                    bytes,
                    offset: start,
                    line,
                }
            } else {
                StreamItem::Stray {
                    bytes,
                    offset: start,
                    line,
                }
            });
        }
    };
    let mut line_no = 0;
    let mut pos = 0;
    while pos < input.len() {
        let end = memchr::memchr2(b'\r', b'\n', &input[pos..]).map_or(input.len(), |p| pos + p);
        let mut start = pos;
        pos = end + 1;
        if input.get(end) == Some(&b'\r') && input.get(end + 1) == Some(&b'\n') {
            pos += 1;
        }
        line_no += 1;
        if input[start..end].starts_with(b"\xEF\xBB\xBF") {
            start += 3;
        }
        let line = &input[start..end];
        if line.trim_ascii().is_empty() {
            continue;
        }
        if let Some(name) = envelope_name(line) {
            close(&mut open, &mut items);
            items.push(StreamItem::Envelope {
                name,
                bytes: line,
                offset: start,
                line: line_no,
            });
            continue;
        }
        let is_msh = line.starts_with(b"MSH");
        match &mut open {
            Some((is_message, _, _, open_end)) if !is_msh || !*is_message => {
                if is_msh {
                    close(&mut open, &mut items);
                    open = Some((true, start, line_no, end));
                } else {
                    *open_end = end;
                }
            }
            _ => {
                close(&mut open, &mut items);
                open = Some((is_msh, start, line_no, end));
            }
        }
    }
    close(&mut open, &mut items);
    items
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
