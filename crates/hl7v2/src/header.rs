//! The lenient header reader: MSH fields read from bytes that may not parse.
//!
//! A receiver must store and answer input it cannot parse (a NAK names the
//! control id, the journal keeps the sender and type), so the header is read
//! here without the rest of the message: one line, split at MSH-1.

use crate::delimiters::Delimiters;
use crate::error::Result;
use crate::message::{header_delimiters, trim_start};

/// The first line of something that starts like an MSH, split at its field
/// separator. Fields are numbered as the standard numbers them: MSH-1 is the
/// separator, MSH-2 the encoding characters.
///
/// ```
/// let raw = b"\xEF\xBB\xBFMSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101||ORU^R01|42|P|2.5.1\rPID|\x00garbage";
/// let header = hl7v2::RawHeader::scan(raw).unwrap();
/// assert_eq!(header.field(3), b"LAB");
/// assert_eq!(header.text(10), "42");
/// assert_eq!(header.field(2), b"^~\\&");
/// assert_eq!(header.field(30), b"");
/// assert!(hl7v2::RawHeader::scan(b"PID|1").is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader<'a> {
    /// The header line from `MSH` up to its first CR or LF.
    line: &'a [u8],
    separator: u8,
}

impl<'a> RawHeader<'a> {
    /// The header at the start of `bytes` (after a byte order mark and blank
    /// lines), or `None` when they do not start with `MSH` and a separator.
    pub fn scan(bytes: &'a [u8]) -> Option<RawHeader<'a>> {
        let bytes = trim_start(bytes);
        let separator = *bytes.get(3).filter(|b| !matches!(b, b'\r' | b'\n'))?;
        if !bytes.starts_with(b"MSH") {
            return None;
        }
        let end = memchr::memchr2(b'\r', b'\n', bytes).unwrap_or(bytes.len());
        Some(RawHeader {
            line: &bytes[..end],
            separator,
        })
    }

    /// Field `n` (1-based) as written, escapes and all; empty when absent.
    pub fn field(&self, n: usize) -> &'a [u8] {
        match n {
            0 => &[],
            1 => &self.line[3..4],
            // After "MSH" the line starts with the separator: part 0 is empty,
            // part k is MSH-(k+1).
            n => self.line[3..]
                .split(|&b| b == self.separator)
                .nth(n - 1)
                .unwrap_or_default(),
        }
    }

    /// Field `n` as text (invalid UTF-8 replaced), blanks trimmed.
    pub fn text(&self, n: usize) -> String {
        String::from_utf8_lossy(self.field(n)).trim().to_owned()
    }

    /// Every field from MSH-2 on, in order.
    pub fn fields_from_msh2(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let separator = self.separator;
        self.line[3..].split(move |&b| b == separator).skip(1)
    }

    /// The delimiters MSH-1 and MSH-2 declare, when they are valid.
    pub fn delimiters(&self) -> Result<Delimiters> {
        header_delimiters(self.line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_of_unparseable_input_is_read_field_by_field() {
        let header = RawHeader::scan(b"\r\n  MSH#^~\\&#A#B##\n\x01\x02").unwrap();
        assert_eq!(header.field(1), b"#");
        assert_eq!(header.field(3), b"A");
        assert_eq!(header.field(4), b"B");
        assert_eq!(header.field(5), b"");
        assert_eq!(header.field(9), b"");
        assert_eq!(header.fields_from_msh2().count(), 5);
        assert!(header.delimiters().is_ok());
    }

    #[test]
    fn header_with_bad_encoding_characters_still_gives_its_fields() {
        let header = RawHeader::scan(b"MSH|^^^^|SEND|FAC|||||ORU^R01|7").unwrap();
        assert!(header.delimiters().is_err());
        assert_eq!(header.text(10), "7");
        assert_eq!(header.text(9), "ORU^R01");
    }

    #[test]
    fn input_that_is_not_a_header_has_none() {
        assert_eq!(RawHeader::scan(b""), None);
        assert_eq!(RawHeader::scan(b"MSH"), None);
        assert_eq!(RawHeader::scan(b"MSH\r|"), None);
        assert_eq!(RawHeader::scan(b"PID|1|"), None);
        assert_eq!(RawHeader::scan(b"\xEF\xBB\xBF\n"), None);
    }
}
