//! Paths: `PID-3[2].1`, `OBX[3]-5`, `MSH-9.2`, and `OBX[*]-5`, `PID-3[*].1`
//! for every occurrence or repetition.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, ErrorKind};
use crate::message::{Element, Level, Message, Segment};

/// The address of a value in a message:
/// `SEG[occurrence]-field[repetition].component.subcomponent`, all 1-based.
///
/// Occurrence and repetition default to 1. `MSH-1` is the field separator and
/// `MSH-2` the encoding characters, as the standard numbers them. A path
/// without a field (`PID`, `OBX[2]`) names a whole segment.
///
/// `[*]` in place of a number selects every occurrence (`OBX[*]-5`) or every
/// repetition (`PID-3[*].1`): [`Path::values_in`] and [`Path::segments_in`]
/// give each match; [`Message::get`] and [`Path::locate_in`] give the first.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Path {
    pub segment: SegmentName,
    pub occurrence: usize,
    pub field: Option<usize>,
    /// `None` when the path does not say, which means the first.
    pub repetition: Option<usize>,
    pub component: Option<usize>,
    pub subcomponent: Option<usize>,
    /// `SEG[*]`: every occurrence (`occurrence` is then 1, the first).
    pub every_occurrence: bool,
    /// `-f[*]`: every repetition (`repetition` is then `None`, the first).
    pub every_repetition: bool,
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
            every_occurrence: false,
            every_repetition: false,
        })
    }

    /// Whether the path has a `[*]`, so it may select more than one value.
    pub fn selects_many(&self) -> bool {
        self.every_occurrence || self.every_repetition
    }

    /// The segments the path names in `message`, in order: the one at its
    /// occurrence, or with `SEG[*]` every segment of that name.
    pub fn segments_in<'m>(
        &self,
        message: &'m Message<'_>,
    ) -> impl Iterator<Item = Segment<'m>> + use<'m> {
        let name = self.segment;
        let wanted = if self.every_occurrence { usize::MAX } else { 1 };
        (0..message.len())
            .filter(move |&i| message.segment_name(i) == name.as_bytes())
            .skip(self.occurrence.saturating_sub(1))
            .take(wanted)
            .map(move |i| message.segment(i))
    }

    /// Every value the path selects in `message`, in message order: at most
    /// one without `[*]` (the value [`Message::get`] gives). A path without
    /// a field selects no value (its segments are [`Path::segments_in`]).
    pub fn values_in<'m>(&self, message: &'m Message<'_>) -> Vec<Element<'m>> {
        let mut values = Vec::new();
        for segment in self.segments_in(message) {
            let Some(field) = self.field.and_then(|n| segment.field(n)) else {
                continue;
            };
            if self.every_repetition && field.level() != Level::Literal {
                values.extend(
                    field
                        .children()
                        .filter_map(|repetition| self.locate_in_repetition(repetition)),
                );
            } else {
                values.extend(self.locate_below(field));
            }
        }
        values
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
        self.locate_in_repetition(nth_child(field, self.repetition.unwrap_or(1))?)
    }

    /// The value this path names within one repetition of its field.
    fn locate_in_repetition<'a>(&self, repetition: Element<'a>) -> Option<Element<'a>> {
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
        let occurrence = p.index().map_err(|()| invalid())?;
        let mut path = Path {
            segment,
            occurrence: occurrence.number().unwrap_or(1),
            field: None,
            repetition: None,
            component: None,
            subcomponent: None,
            every_occurrence: occurrence == Index::Every,
            every_repetition: false,
        };
        if p.eat(b'-') {
            path.field = Some(p.number().ok_or_else(invalid)?);
            let repetition = p.index().map_err(|()| invalid())?;
            path.repetition = repetition.number();
            path.every_repetition = repetition == Index::Every;
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
        if self.every_occurrence {
            f.write_str("[*]")?;
        } else if self.occurrence != 1 {
            write!(f, "[{}]", self.occurrence)?;
        }
        if let Some(field) = self.field {
            write!(f, "-{field}")?;
            if self.every_repetition {
                f.write_str("[*]")?;
            } else if let Some(r) = self.repetition {
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

    /// `[n]` or `[*]` if present.
    fn index(&mut self) -> Result<Index, ()> {
        if !self.eat(b'[') {
            return Ok(Index::Unsaid);
        }
        let index = if self.eat(b'*') {
            Index::Every
        } else {
            Index::Number(self.number().ok_or(())?)
        };
        if !self.eat(b']') {
            return Err(());
        }
        Ok(index)
    }
}

/// What a path says in brackets.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Index {
    Unsaid,
    Number(usize),
    Every,
}

impl Index {
    fn number(self) -> Option<usize> {
        match self {
            Index::Number(n) => Some(n),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Path {
        s.parse().unwrap()
    }

    #[test]
    fn parses_the_forms_the_readme_documents() {
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
        let every = p("OBX[*]-5[*].1");
        assert!(every.every_occurrence && every.every_repetition && every.selects_many());
        assert_eq!((every.occurrence, every.repetition), (1, None));
        assert!(!p("OBX[2]-5[3]").selects_many());
    }

    const ORU: &[u8] = b"MSH|^~\\&|LAB|H\rPID|1||A^^^X~B^^^Y~C^^^Z\rOBX|1|NM|WBC||7.5\rNTE|1||n\rOBX|2|ST|NOTE||x~y\rOBX|3|ST|EMPTY\r";

    fn texts(path: &str) -> Vec<String> {
        let message = Message::parse(ORU).unwrap();
        p(path)
            .values_in(&message)
            .iter()
            .map(|e| e.text().into_owned())
            .collect()
    }

    #[test]
    fn every_occurrence_selects_each_segment_in_order() {
        // The third OBX has no OBX-5: nothing, rather than an empty value.
        assert_eq!(texts("OBX[*]-5"), ["7.5", "x"]);
        assert_eq!(texts("OBX[*]-1"), ["1", "2", "3"]);
        assert_eq!(texts("OBX[*]-3.1"), ["WBC", "NOTE", "EMPTY"]);
        let message = Message::parse(ORU).unwrap();
        assert_eq!(p("OBX[*]").segments_in(&message).count(), 3);
        assert_eq!(p("ZZZ[*]-1").values_in(&message).len(), 0);
    }

    #[test]
    fn every_repetition_selects_each_repetition() {
        assert_eq!(texts("PID-3[*].1"), ["A", "B", "C"]);
        assert_eq!(texts("PID-3[*].4"), ["X", "Y", "Z"]);
        assert_eq!(texts("OBX[*]-5[*]"), ["7.5", "x", "y"]);
        assert_eq!(texts("MSH-2[*]"), ["^~\\&"]);
    }

    #[test]
    fn plain_paths_select_what_get_gives() {
        let message = Message::parse(ORU).unwrap();
        for path in [
            "PID-3.1",
            "PID-3[2].1",
            "OBX[2]-5",
            "OBX[4]-5",
            "MSH-2",
            "PID-9",
        ] {
            let got: Vec<_> = message
                .get(&p(path))
                .map(|e| e.text())
                .into_iter()
                .collect();
            let selected: Vec<_> = p(path)
                .values_in(&message)
                .iter()
                .map(|e| e.text())
                .collect();
            assert_eq!(selected, got, "{path}");
        }
        assert_eq!(
            message.get(&p("OBX[*]-5")).map(|e| e.text()),
            Some("7.5".into())
        );
    }

    #[test]
    fn displays_back() {
        for s in [
            "PID-3[2].1",
            "OBX[3]-5",
            "MSH-9.2",
            "PID-3.4.2",
            "ZXY",
            "OBX[*]-5",
            "PID-3[*].1",
            "OBX[*]-5[*].2.1",
            "NTE[*]",
        ] {
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
            "PID-3[**]",
            "PID-3[*",
            "PID-3[]",
            "PID-3.[*]",
        ] {
            let e = s.parse::<Path>().unwrap_err();
            assert!(matches!(e.kind, ErrorKind::InvalidPath(_)), "{s}");
        }
    }
}
