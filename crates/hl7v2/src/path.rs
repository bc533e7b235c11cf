//! Paths: `PID-3[2].1`, `OBX[3]-5`, `MSH-9.2`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind};
use crate::message::{Element, Level, Segment};

/// The address of a value in a message:
/// `SEG[occurrence]-field[repetition].component.subcomponent`, all 1-based.
///
/// Occurrence and repetition default to 1. `MSH-1` is the field separator and
/// `MSH-2` the encoding characters, as the standard numbers them. A path
/// without a field (`PID`, `OBX[2]`) names a whole segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    pub segment: SegmentName,
    pub occurrence: usize,
    pub field: Option<usize>,
    /// `None` when the path does not say, which means the first.
    pub repetition: Option<usize>,
    pub component: Option<usize>,
    pub subcomponent: Option<usize>,
}

/// A segment name: three ASCII letters or digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentName([u8; 3]);

impl SegmentName {
    pub fn new(name: &[u8]) -> Option<SegmentName> {
        crate::message::is_segment_name(name).then(|| SegmentName([name[0], name[1], name[2]]))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        // Built only from ASCII letters and digits.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Path {
    /// A path to field `field` of the first segment named `segment`.
    pub fn field(segment: &str, field: usize) -> Option<Path> {
        Some(Path {
            segment: SegmentName::new(segment.as_bytes())?,
            occurrence: 1,
            field: Some(field),
            repetition: None,
            component: None,
            subcomponent: None,
        })
    }

    /// The value this path names within `segment` (whose name and occurrence
    /// the caller has already matched), or `None` where there is nothing.
    pub fn locate_in<'a>(&self, segment: &Segment<'a>) -> Option<Element<'a>> {
        self.locate_below(segment.field(self.field?)?)
    }

    /// The value this path names within `field` (the path's own field).
    pub(crate) fn locate_below<'a>(&self, field: Element<'a>) -> Option<Element<'a>> {
        if field.level() == Level::Literal {
            let deeper = [self.repetition, self.component, self.subcomponent];
            return deeper
                .iter()
                .all(|p| p.is_none_or(|n| n == 1))
                .then_some(field);
        }
        let repetition = nth_child(field, self.repetition.unwrap_or(1))?;
        let Some(component) = self.component else {
            return Some(repetition);
        };
        let component = nth_child(repetition, component)?;
        match self.subcomponent {
            None => Some(component),
            Some(sub) => nth_child(component, sub),
        }
    }
}

fn nth_child(element: Element<'_>, n: usize) -> Option<Element<'_>> {
    element.children().nth(n.checked_sub(1)?)
}

impl FromStr for Path {
    type Err = Error;

    fn from_str(text: &str) -> Result<Path, Error> {
        let invalid = || Error::bare(ErrorKind::InvalidPath(text.to_string()));
        let mut p = Parser {
            rest: text.trim().as_bytes(),
        };
        let name = p.take(3).ok_or_else(invalid)?.to_ascii_uppercase();
        let segment = SegmentName::new(&name).ok_or_else(invalid)?;
        let occurrence = p.bracketed().map_err(|()| invalid())?.unwrap_or(1);
        let mut path = Path {
            segment,
            occurrence,
            field: None,
            repetition: None,
            component: None,
            subcomponent: None,
        };
        if p.eat(b'-') {
            path.field = Some(p.number().ok_or_else(invalid)?);
            path.repetition = p.bracketed().map_err(|()| invalid())?;
            if p.eat(b'.') {
                path.component = Some(p.number().ok_or_else(invalid)?);
                if p.eat(b'.') {
                    path.subcomponent = Some(p.number().ok_or_else(invalid)?);
                }
            }
        }
        if !p.rest.is_empty() {
            return Err(invalid());
        }
        Ok(path)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.segment)?;
        if self.occurrence != 1 {
            write!(f, "[{}]", self.occurrence)?;
        }
        if let Some(field) = self.field {
            write!(f, "-{field}")?;
            if let Some(r) = self.repetition {
                write!(f, "[{r}]")?;
            }
            if let Some(c) = self.component {
                write!(f, ".{c}")?;
                if let Some(s) = self.subcomponent {
                    write!(f, ".{s}")?;
                }
            }
        }
        Ok(())
    }
}

struct Parser<'a> {
    rest: &'a [u8],
}

impl<'a> Parser<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, tail) = (self.rest.get(..n)?, self.rest.get(n..)?);
        self.rest = tail;
        Some(head)
    }

    fn eat(&mut self, c: u8) -> bool {
        match self.rest.split_first() {
            Some((&first, tail)) if first == c => {
                self.rest = tail;
                true
            }
            _ => false,
        }
    }

    /// A positive number, at most 6 digits (no segment has a million fields).
    fn number(&mut self) -> Option<usize> {
        let len = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if len == 0 || len > 6 {
            return None;
        }
        let digits = self.take(len)?;
        let n: usize = std::str::from_utf8(digits).ok()?.parse().ok()?;
        (n >= 1).then_some(n)
    }

    /// `[n]` if present.
    fn bracketed(&mut self) -> Result<Option<usize>, ()> {
        if !self.eat(b'[') {
            return Ok(None);
        }
        let n = self.number().ok_or(())?;
        if !self.eat(b']') {
            return Err(());
        }
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_forms_of_the_design() {
        let path = p("PID-3[2].1");
        assert_eq!(path.segment.as_str(), "PID");
        assert_eq!(
            (path.field, path.repetition, path.component),
            (Some(3), Some(2), Some(1))
        );
        let path = p("OBX[3]-5");
        assert_eq!((path.occurrence, path.field), (3, Some(5)));
        let path = p("MSH-9.2");
        assert_eq!((path.field, path.component), (Some(9), Some(2)));
        let path = p("PID-3.4.2");
        assert_eq!(path.subcomponent, Some(2));
        assert_eq!(p("obx[2]").field, None);
    }

    #[test]
    fn displays_back() {
        for s in ["PID-3[2].1", "OBX[3]-5", "MSH-9.2", "PID-3.4.2", "ZXY"] {
            assert_eq!(p(s).to_string(), s);
        }
    }

    #[test]
    fn rejects_bad_paths() {
        for s in [
            "",
            "PI",
            "PID-",
            "PID-0",
            "PID-3[0]",
            "PID-3.",
            "PID-3x",
            "PID[2",
            "P D-1",
            "PID-9999999",
        ] {
            let e = s.parse::<Path>().unwrap_err();
            assert!(matches!(e.kind, ErrorKind::InvalidPath(_)), "{s}");
        }
    }
}
