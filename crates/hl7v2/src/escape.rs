//! Escape sequences: `\F\ \S\ \T\ \R\ \E\ \P\`, `\Xhh..\`, `\Zxx\`,
//! `\Cxxyy\`, `\Mxxyyzz\` and the formatting commands of formatted text.

use std::borrow::Cow;

use crate::delimiters::Delimiters;
use crate::error::{Error, ErrorKind};

/// What to do with the formatting commands of formatted text (`\.br\`,
/// `\.sp n\`, `\H\`, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Formatting {
    /// Leave them in the text as written.
    #[default]
    Keep,
    /// Render them as plain text: line breaks for `\.br\`, `\.sp n\` and
    /// `\.ce\`, spaces for `\.sk n\`; the others (highlighting, fill mode,
    /// indentation) are dropped.
    Render,
}

/// The most line breaks or spaces one formatting command may produce, so a
/// hostile `\.sp 999999999\` cannot make us allocate without bound.
const MAX_FORMATTING_REPEAT: usize = 100;

/// Replaces escape sequences in `raw` with what they stand for.
///
/// Sequences that are not recognised, and an escape character without its
/// closing twin, are kept as written (the standard asks receivers to ignore
/// what they do not understand). `\Zxx\` (locally defined) is always kept.
/// `\Cxxyy\` and `\Mxxyyzz\` become the ISO 2022 escape bytes they name,
/// which [`Charset::decode`](crate::Charset::decode) then honours.
pub fn unescape<'a>(raw: &'a [u8], delims: &Delimiters, formatting: Formatting) -> Cow<'a, [u8]> {
    let Some(esc) = delims.escape else {
        return Cow::Borrowed(raw);
    };
    let Some(mut start) = memchr::memchr(esc, raw) else {
        return Cow::Borrowed(raw);
    };
    let mut out = Vec::with_capacity(raw.len());
    let mut copied_to = 0;
    while let Some(close) = memchr::memchr(esc, &raw[start + 1..]).map(|p| start + 1 + p) {
        out.extend_from_slice(&raw[copied_to..start]);
        let body = &raw[start + 1..close];
        if !expand(body, delims, formatting, &mut out) {
            out.extend_from_slice(&raw[start..=close]);
        }
        copied_to = close + 1;
        match memchr::memchr(esc, &raw[copied_to..]) {
            Some(p) => start = copied_to + p,
            None => break,
        }
    }
    out.extend_from_slice(&raw[copied_to..]);
    Cow::Owned(out)
}

/// Appends what the escape sequence `body` (the text between the two escape
/// characters) stands for. Returns false when it is to be kept as written.
fn expand(body: &[u8], d: &Delimiters, formatting: Formatting, out: &mut Vec<u8>) -> bool {
    let single = |c: Option<u8>, out: &mut Vec<u8>| match c {
        Some(c) => {
            out.push(c);
            true
        }
        None => false,
    };
    match body {
        b"F" => single(Some(d.field), out),
        b"S" => single(d.component, out),
        b"T" => single(d.subcomponent, out),
        b"R" => single(d.repetition, out),
        b"E" => single(d.escape, out),
        b"P" => single(d.truncation, out),
        [b'X', hex @ ..] => push_hex(hex, out, None),
        [b'C', hex @ ..] if hex.len() == 4 => push_hex(hex, out, Some(0x1B)),
        [b'M', hex @ ..] if hex.len() == 4 || hex.len() == 6 => push_hex(hex, out, Some(0x1B)),
        _ if formatting == Formatting::Keep => false,
        b"H" | b"N" => true,
        [b'.', command @ ..] => render_command(command, out),
        _ => false,
    }
}

fn push_hex(hex: &[u8], out: &mut Vec<u8>, prefix: Option<u8>) -> bool {
    if hex.is_empty() || hex.len() % 2 != 0 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return false;
    }
    out.extend(prefix);
    out.extend(
        hex.chunks_exact(2)
            .map(|pair| (hex_value(pair[0]) << 4) | hex_value(pair[1])),
    );
    true
}

fn hex_value(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c.wrapping_sub(b'A').wrapping_add(10),
    }
}

fn render_command(command: &[u8], out: &mut Vec<u8>) -> bool {
    let name_len = command.len().min(2);
    let (name, argument) = command.split_at(name_len);
    let count = || -> usize {
        let text = String::from_utf8_lossy(argument);
        let text = text.trim().trim_start_matches('+');
        if text.is_empty() {
            1
        } else {
            text.parse::<usize>()
                .unwrap_or(1)
                .min(MAX_FORMATTING_REPEAT)
        }
    };
    match name {
        b"br" | b"ce" if argument.is_empty() => out.push(b'\n'),
        b"sp" => out.extend(std::iter::repeat_n(b'\n', count())),
        b"sk" => out.extend(std::iter::repeat_n(b' ', count())),
        b"in" | b"ti" => {}
        b"fi" | b"nf" if argument.is_empty() => {}
        _ => return false,
    }
    true
}

/// Escapes every delimiter, the escape character, the truncation character
/// and line breaks in `text` so it can stand as one value in a message.
///
/// Fails only when `text` needs escaping and the message declares no escape
/// character.
pub fn escape<'a>(text: &'a [u8], delims: &Delimiters) -> Result<Cow<'a, [u8]>, Error> {
    let needs =
        |b: u8| delims.is_delimiter(b) || Some(b) == delims.truncation || b == b'\r' || b == b'\n';
    let Some(first) = text.iter().position(|&b| needs(b)) else {
        return Ok(Cow::Borrowed(text));
    };
    let Some(esc) = delims.escape else {
        return Err(Error::bare(ErrorKind::CannotEdit(
            "the value holds a delimiter and the message declares no escape character (MSH-2)"
                .to_string(),
        )));
    };
    let mut out = Vec::with_capacity(text.len() + 8);
    out.extend_from_slice(&text[..first]);
    for &b in &text[first..] {
        let code: &[u8] = if b == delims.field {
            b"F"
        } else if Some(b) == delims.component {
            b"S"
        } else if Some(b) == delims.subcomponent {
            b"T"
        } else if Some(b) == delims.repetition {
            b"R"
        } else if b == esc {
            b"E"
        } else if Some(b) == delims.truncation {
            b"P"
        } else if b == b'\r' {
            b"X0D"
        } else if b == b'\n' {
            b"X0A"
        } else {
            out.push(b);
            continue;
        };
        out.push(esc);
        out.extend_from_slice(code);
        out.push(esc);
    }
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn un(raw: &str) -> String {
        String::from_utf8(
            unescape(raw.as_bytes(), &Delimiters::STANDARD, Formatting::Keep).into_owned(),
        )
        .unwrap()
    }

    fn render(raw: &str) -> String {
        String::from_utf8(
            unescape(raw.as_bytes(), &Delimiters::STANDARD, Formatting::Render).into_owned(),
        )
        .unwrap()
    }

    #[test]
    fn delimiter_escapes() {
        assert_eq!(un(r"a\F\b\S\c\T\d\R\e\E\f"), r"a|b^c&d~e\f");
    }

    #[test]
    fn truncation_escape_needs_a_truncation_character() {
        assert_eq!(un(r"a\P\b"), r"a\P\b");
        let d = Delimiters::from_header(b'|', b"^~\\&#").unwrap();
        assert_eq!(unescape(br"a\P\b", &d, Formatting::Keep).as_ref(), b"a#b");
    }

    #[test]
    fn hex_escape_gives_bytes() {
        assert_eq!(un(r"\X41420D\"), "AB\r");
        assert_eq!(un(r"\Xzz\"), r"\Xzz\");
    }

    #[test]
    fn local_escape_is_kept() {
        assert_eq!(un(r"a\Zcustom\b"), r"a\Zcustom\b");
    }

    #[test]
    fn charset_escapes_become_iso_2022_bytes() {
        let out = unescape(br"\C2D42\x", &Delimiters::STANDARD, Formatting::Keep);
        assert_eq!(out.as_ref(), b"\x1b-Bx");
        let out = unescape(br"\M2442\", &Delimiters::STANDARD, Formatting::Keep);
        assert_eq!(out.as_ref(), b"\x1b$B");
    }

    #[test]
    fn formatting_kept_or_rendered() {
        assert_eq!(un(r"line1\.br\line2"), r"line1\.br\line2");
        assert_eq!(render(r"line1\.br\line2"), "line1\nline2");
        assert_eq!(
            render(r"a\.sp 2\b\H\c\N\\.sk 3\d\.in 4\\.fi\"),
            "a\n\nbc   d"
        );
    }

    #[test]
    fn hostile_repeat_is_capped() {
        assert_eq!(render(r"\.sp 99999999999\").len(), MAX_FORMATTING_REPEAT);
    }

    #[test]
    fn unclosed_escape_is_literal() {
        assert_eq!(un(r"C:\temp"), r"C:\temp");
        assert_eq!(un(r"C:\path\to\file"), r"C:\path\to\file");
    }

    #[test]
    fn escape_then_unescape() {
        let text = b"a|b^c&d~e\\f\r\ng";
        let escaped = escape(text, &Delimiters::STANDARD).unwrap();
        assert_eq!(escaped.as_ref(), br"a\F\b\S\c\T\d\R\e\E\f\X0D\\X0A\g");
        assert_eq!(
            unescape(&escaped, &Delimiters::STANDARD, Formatting::Keep).as_ref(),
            text
        );
    }

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(
            escape(b"plain", &Delimiters::STANDARD).unwrap(),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            unescape(b"plain", &Delimiters::STANDARD, Formatting::Keep),
            Cow::Borrowed(_)
        ));
    }
}
