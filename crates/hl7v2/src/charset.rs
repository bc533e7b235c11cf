//! Character sets named by MSH-18 (HL7 table 0211) and the decoding of text.

use std::borrow::Cow;

use encoding_rs::Encoding;

use crate::error::{Error, ErrorKind, Location};

/// The character set a message's text is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Charset {
    /// MSH-18 is empty, or `ASCII`. The standard's default is 7-bit ASCII, but
    /// senders routinely put UTF-8 (and sometimes Windows-1252) in such
    /// messages: text is read as UTF-8 when it is valid UTF-8 and as
    /// Windows-1252 otherwise, so no byte is ever lost or rejected.
    Ascii,
    /// `8859/1`: each byte is the Unicode code point of the same value.
    Latin1,
    /// `UNICODE UTF-8` (and `UNICODE`, which senders use to mean UTF-8 in
    /// pipe-delimited messages).
    Utf8,
    /// Any other supported set, decoded by `encoding_rs`.
    Other(&'static Encoding),
}

impl Charset {
    /// The character set named by one repetition of MSH-18.
    pub fn from_name(name: &[u8]) -> Result<Charset, Error> {
        let trimmed = name.trim_ascii();
        let upper = String::from_utf8_lossy(trimmed).to_ascii_uppercase();
        let charset = match upper.as_str() {
            "" | "ASCII" | "ISO IR6" => Charset::Ascii,
            "8859/1" | "ISO IR100" => Charset::Latin1,
            "UNICODE UTF-8" | "UTF-8" | "UTF8" | "UNICODE" => Charset::Utf8,
            "8859/2" => Charset::Other(encoding_rs::ISO_8859_2),
            "8859/3" => Charset::Other(encoding_rs::ISO_8859_3),
            "8859/4" => Charset::Other(encoding_rs::ISO_8859_4),
            "8859/5" => Charset::Other(encoding_rs::ISO_8859_5),
            "8859/6" => Charset::Other(encoding_rs::ISO_8859_6),
            "8859/7" => Charset::Other(encoding_rs::ISO_8859_7),
            "8859/8" => Charset::Other(encoding_rs::ISO_8859_8),
            // encoding_rs follows the WHATWG mapping, which reads 8859-9 and
            // 8859-11 as their Windows supersets; they differ only in the C1
            // control range, which never carries text.
            "8859/9" => Charset::Other(encoding_rs::WINDOWS_1254),
            "8859/10" => Charset::Other(encoding_rs::ISO_8859_10),
            "8859/11" => Charset::Other(encoding_rs::WINDOWS_874),
            "8859/13" => Charset::Other(encoding_rs::ISO_8859_13),
            "8859/14" => Charset::Other(encoding_rs::ISO_8859_14),
            "8859/15" => Charset::Other(encoding_rs::ISO_8859_15),
            "ISO IR87" | "ISO IR14" => Charset::Other(encoding_rs::ISO_2022_JP),
            "GB 18030-2000" | "GB18030" => Charset::Other(encoding_rs::GB18030),
            "KS X 1001" => Charset::Other(encoding_rs::EUC_KR),
            "BIG-5" => Charset::Other(encoding_rs::BIG5),
            _ => {
                return Err(Error::new(
                    ErrorKind::UnsupportedCharset(String::from_utf8_lossy(trimmed).into_owned()),
                    Location::segment(1, b"MSH").with_field(18),
                ));
            }
        };
        Ok(charset)
    }

    /// Decodes text in this character set. Invalid bytes become U+FFFD; this
    /// never fails and never panics.
    ///
    /// ISO 2022 designations (the bytes that `\Cxxyy\` and `\Mxxyyzz\` escape
    /// sequences stand for) switch the character set for the text after them.
    pub fn decode<'a>(&self, bytes: &'a [u8]) -> Cow<'a, str> {
        if memchr::memchr(0x1B, bytes).is_some() {
            return Cow::Owned(self.decode_with_switches(bytes));
        }
        self.decode_plain(bytes)
    }

    /// Encodes text into this character set. Characters the set cannot hold
    /// become numeric character references (`&#1234;`), so nothing is lost
    /// silently.
    pub fn encode<'a>(&self, text: &'a str) -> Cow<'a, [u8]> {
        match self {
            Charset::Ascii | Charset::Utf8 => Cow::Borrowed(text.as_bytes()),
            Charset::Latin1 => {
                if text.is_ascii() {
                    return Cow::Borrowed(text.as_bytes());
                }
                let mut out = Vec::with_capacity(text.len());
                for c in text.chars() {
                    match u8::try_from(u32::from(c)) {
                        Ok(b) => out.push(b),
                        Err(_) => out.extend_from_slice(format!("&#{};", u32::from(c)).as_bytes()),
                    }
                }
                Cow::Owned(out)
            }
            Charset::Other(encoding) => encoding.encode(text).0,
        }
    }

    fn decode_plain<'a>(&self, bytes: &'a [u8]) -> Cow<'a, str> {
        match self {
            Charset::Ascii => match std::str::from_utf8(bytes) {
                Ok(s) => Cow::Borrowed(s),
                Err(_) => {
                    encoding_rs::WINDOWS_1252
                        .decode_without_bom_handling(bytes)
                        .0
                }
            },
            Charset::Utf8 => String::from_utf8_lossy(bytes),
            Charset::Latin1 => {
                if bytes.is_ascii() {
                    // ASCII bytes are valid UTF-8.
                    Cow::Borrowed(std::str::from_utf8(bytes).unwrap_or_default())
                } else {
                    Cow::Owned(bytes.iter().map(|&b| b as char).collect())
                }
            }
            Charset::Other(encoding) => encoding.decode_without_bom_handling(bytes).0,
        }
    }

    fn decode_with_switches(&self, bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len());
        let mut current = Switch::Default;
        let mut rest = bytes;
        loop {
            // A JIS run starts with its own escape sequence, which the
            // ISO-2022-JP decoder reads; the run ends at the next one.
            let skip = if matches!(current, Switch::Jis) {
                rest.len().min(3)
            } else {
                0
            };
            let end = memchr::memchr(0x1B, &rest[skip..]).map_or(rest.len(), |p| p + skip);
            let (run, after) = rest.split_at(end);
            current.decode_run(*self, run, &mut out);
            if after.is_empty() {
                break;
            }
            match Switch::designated(after) {
                Some((next, len)) => {
                    current = next;
                    rest = &after[len..];
                }
                None => {
                    // Not a designation: the byte is text, and the set in
                    // force stays in force.
                    out.push('\u{1b}');
                    rest = &after[1..];
                }
            }
        }
        out
    }
}

/// The character set an ISO 2022 escape sequence switches to.
#[derive(Clone, Copy)]
enum Switch {
    Default,
    Jis,
    Single(&'static Encoding),
    Unsupported,
}

impl Switch {
    /// Reads the escape sequence at the start of `bytes` (which starts with
    /// ESC) and returns the set it designates and the sequence's length, or
    /// `None` when the ESC starts no designation.
    fn designated(bytes: &[u8]) -> Option<(Switch, usize)> {
        let designation = match bytes.get(1..3) {
            Some(b"(B") | Some(b"(J") => (Switch::Default, 3),
            Some(b"(I") | Some(b"$B") | Some(b"$@") => (Switch::Jis, 0),
            Some(b"$(") => (Switch::Unsupported, bytes.len().min(4)),
            Some([b'-', set]) => {
                let encoding = match set {
                    b'A' => Some(encoding_rs::WINDOWS_1252),
                    b'B' => Some(encoding_rs::ISO_8859_2),
                    b'C' => Some(encoding_rs::ISO_8859_3),
                    b'D' => Some(encoding_rs::ISO_8859_4),
                    b'L' => Some(encoding_rs::ISO_8859_5),
                    b'G' => Some(encoding_rs::ISO_8859_6),
                    b'F' => Some(encoding_rs::ISO_8859_7),
                    b'H' => Some(encoding_rs::ISO_8859_8),
                    b'M' => Some(encoding_rs::WINDOWS_1254),
                    _ => None,
                };
                (encoding.map_or(Switch::Unsupported, Switch::Single), 3)
            }
            _ => return None,
        };
        Some(designation)
    }

    fn decode_run(self, charset: Charset, run: &[u8], out: &mut String) {
        match self {
            Switch::Default => out.push_str(&charset.decode_plain(run)),
            // The ISO-2022-JP decoder reads its own escape sequences, which
            // are left at the start of the run for it.
            Switch::Jis => {
                out.push_str(&encoding_rs::ISO_2022_JP.decode_without_bom_handling(run).0)
            }
            Switch::Single(encoding) => out.push_str(&encoding.decode_without_bom_handling(run).0),
            Switch::Unsupported => out.extend(run.iter().map(|&b| {
                if b.is_ascii() {
                    b as char
                } else {
                    char::REPLACEMENT_CHARACTER
                }
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_table_0211() {
        assert_eq!(Charset::from_name(b"").unwrap(), Charset::Ascii);
        assert_eq!(Charset::from_name(b"8859/1").unwrap(), Charset::Latin1);
        assert_eq!(Charset::from_name(b"UNICODE UTF-8").unwrap(), Charset::Utf8);
        assert_eq!(
            Charset::from_name(b"8859/2").unwrap(),
            Charset::Other(encoding_rs::ISO_8859_2)
        );
    }

    #[test]
    fn unknown_charset_is_named_in_the_error() {
        let e = Charset::from_name(b"EBCDIC").unwrap_err();
        assert!(e.to_string().contains("EBCDIC"), "{e}");
        assert_eq!(e.location.field, Some(18));
    }

    #[test]
    fn latin1_maps_bytes_to_code_points() {
        assert_eq!(Charset::Latin1.decode(b"Jos\xe9"), "José");
    }

    #[test]
    fn ascii_reads_utf8_and_falls_back_to_windows_1252() {
        assert_eq!(Charset::Ascii.decode("José".as_bytes()), "José");
        assert_eq!(Charset::Ascii.decode(b"Jos\xe9"), "José");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(Charset::Utf8.decode(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn iso_2022_switch_to_latin2_and_back() {
        // ESC - B designates 8859-2; 0xB3 there is "ł".
        assert_eq!(Charset::Ascii.decode(b"a\x1b-B\xb3\x1b(Bz"), "ałz");
    }

    #[test]
    fn escape_byte_that_designates_nothing_is_kept_as_text() {
        assert_eq!(Charset::Ascii.decode(b"a\x1bZ\xc3\xa9"), "a\u{1b}Zé");
        assert_eq!(Charset::Utf8.decode(b"\x1b"), "\u{1b}");
        assert_eq!(Charset::Latin1.decode(b"\x1b-B\xb3\x1b\xe9"), "ł\u{1b}é");
    }

    #[test]
    fn iso_2022_jis_run() {
        // ESC $ B then JIS X 0208 0x3441 ("漢"), then back to ASCII.
        assert_eq!(Charset::Ascii.decode(b"\x1b$B4A\x1b(B!"), "漢!");
    }
}
