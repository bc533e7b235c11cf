//! The delimiters a message declares in MSH-1 and MSH-2.

use crate::error::{Error, ErrorKind, Location};

/// The separators and the escape character of one message.
///
/// Every message (and every batch header) declares its own: MSH-1 is the field
/// separator and MSH-2 lists, in order, the component separator, the
/// repetition separator, the escape character, the subcomponent separator and,
/// from version 2.7, the truncation character. Older and non-conforming senders
/// declare fewer; the missing ones are `None` and never split anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Delimiters {
    pub field: u8,
    pub component: Option<u8>,
    pub repetition: Option<u8>,
    pub escape: Option<u8>,
    pub subcomponent: Option<u8>,
    pub truncation: Option<u8>,
}

impl Default for Delimiters {
    fn default() -> Delimiters {
        Delimiters::STANDARD
    }
}

impl Delimiters {
    /// `|^~\&`, the delimiters nearly every sender uses.
    pub const STANDARD: Delimiters = Delimiters {
        field: b'|',
        component: Some(b'^'),
        repetition: Some(b'~'),
        escape: Some(b'\\'),
        subcomponent: Some(b'&'),
        truncation: None,
    };

    /// Reads the delimiters from the field separator and the MSH-2 text.
    ///
    pub fn from_header(field: u8, encoding: &[u8]) -> Result<Delimiters, Error> {
        let bad = |why: String| {
            Error::new(
                ErrorKind::BadEncodingCharacters(why),
                Location::segment(1, b"MSH").with_field(2),
            )
        };
        if encoding.len() > 5 {
            return Err(bad(format!(
                "{:?} has {} characters, at most 5 are defined",
                String::from_utf8_lossy(encoding),
                encoding.len()
            )));
        }
        let mut seen = vec![field];
        for &c in encoding {
            if !is_usable_delimiter(c) {
                return Err(bad(format!(
                    "byte 0x{c:02X} cannot be a delimiter (it must be printable ASCII and not a letter or digit)"
                )));
            }
            if seen.contains(&c) {
                return Err(bad(format!(
                    "{:?} is used for two different delimiters",
                    c as char
                )));
            }
            seen.push(c);
        }
        if !is_usable_delimiter(field) {
            return Err(Error::new(
                ErrorKind::MissingFieldSeparator,
                Location::segment(1, b"MSH").with_field(1),
            ));
        }
        let at = |i: usize| encoding.get(i).copied();
        Ok(Delimiters {
            field,
            component: at(0),
            repetition: at(1),
            escape: at(2),
            subcomponent: at(3),
            truncation: at(4),
        })
    }

    /// The MSH-2 text these delimiters are written as.
    pub fn encoding_characters(&self) -> Vec<u8> {
        [
            self.component,
            self.repetition,
            self.escape,
            self.subcomponent,
            self.truncation,
        ]
        .into_iter()
        .map_while(|c| c)
        .collect()
    }

    /// True when `b` is any of the separators or the escape character.
    #[inline]
    pub fn is_delimiter(&self, b: u8) -> bool {
        b == self.field
            || Some(b) == self.component
            || Some(b) == self.repetition
            || Some(b) == self.escape
            || Some(b) == self.subcomponent
    }
}

fn is_usable_delimiter(c: u8) -> bool {
    c.is_ascii_graphic() && !c.is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_standard_delimiters() {
        let d = Delimiters::from_header(b'|', b"^~\\&").unwrap();
        assert_eq!(d, Delimiters::STANDARD);
        assert_eq!(d.encoding_characters(), b"^~\\&");
    }

    #[test]
    fn reads_truncation_character() {
        let d = Delimiters::from_header(b'|', b"^~\\&#").unwrap();
        assert_eq!(d.truncation, Some(b'#'));
    }

    #[test]
    fn short_encoding_leaves_the_rest_undefined() {
        let d = Delimiters::from_header(b'|', b"^~}").unwrap();
        assert_eq!(d.escape, Some(b'}'));
        assert_eq!(d.subcomponent, None);
    }

    #[test]
    fn rejects_repeated_delimiter() {
        let e = Delimiters::from_header(b'|', b"&&&&").unwrap_err();
        assert!(e.to_string().contains("two different delimiters"), "{e}");
        assert_eq!(e.location.field, Some(2));
    }

    #[test]
    fn rejects_letters() {
        assert!(Delimiters::from_header(b'|', b"^~A&").is_err());
    }
}
