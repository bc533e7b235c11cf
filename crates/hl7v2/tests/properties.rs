//! Properties that hold for every message, not just the ones in the corpus:
//! what is written can be read back value for value, escaping and unescaping
//! undo each other, an edit can be read back, and no input makes the parser
//! or a path lookup panic.

use hl7v2::escape::{self, Formatting};
use hl7v2::{
    AckBuilder, AckCode, Batch, Delimiters, Element, Message, OwnedMessage, Path, SegmentName,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};

/// Every byte the standard allows as a delimiter: printable ASCII that is
/// neither a letter nor a digit.
const DELIMITER_POOL: &[u8] = b"!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

/// A text value: reps -> components -> subcomponents -> text.
type Field = Vec<Vec<Vec<String>>>;

#[derive(Clone, Debug)]
struct GenSegment {
    name: String,
    fields: Vec<Field>,
}

#[derive(Clone, Debug)]
struct GenMessage {
    /// Field separator first, then MSH-2 (component, repetition, escape,
    /// subcomponent and perhaps truncation).
    delimiters: Vec<u8>,
    /// MSH-3 onwards.
    header_fields: Vec<Field>,
    segments: Vec<GenSegment>,
    terminator: &'static str,
}

impl GenMessage {
    fn delimiters(&self) -> Delimiters {
        Delimiters::from_header(self.delimiters[0], &self.delimiters[1..]).unwrap()
    }

    fn write_field(&self, field: &Field, out: &mut Vec<u8>) {
        let d = self.delimiters();
        for (r, rep) in field.iter().enumerate() {
            if r > 0 {
                out.push(d.repetition.unwrap());
            }
            for (c, comp) in rep.iter().enumerate() {
                if c > 0 {
                    out.push(d.component.unwrap());
                }
                for (s, text) in comp.iter().enumerate() {
                    if s > 0 {
                        out.push(d.subcomponent.unwrap());
                    }
                    out.extend_from_slice(&escape::escape(text.as_bytes(), &d).unwrap());
                }
            }
        }
    }

    /// The message as a sender would write it, with `terminator` after each
    /// segment.
    fn to_bytes_with(&self, terminator: &str) -> Vec<u8> {
        let sep = self.delimiters[0];
        let mut out = b"MSH".to_vec();
        out.extend_from_slice(&self.delimiters);
        for field in &self.header_fields {
            out.push(sep);
            self.write_field(field, &mut out);
        }
        out.extend_from_slice(terminator.as_bytes());
        for segment in &self.segments {
            out.extend_from_slice(segment.name.as_bytes());
            for field in &segment.fields {
                out.push(sep);
                self.write_field(field, &mut out);
            }
            out.extend_from_slice(terminator.as_bytes());
        }
        out
    }

    fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with(self.terminator)
    }

    /// (segment name, fields numbered as the standard numbers them) for
    /// every segment, MSH first; MSH-1 and MSH-2 are left out.
    fn numbered_fields(&self) -> Vec<(String, Vec<(usize, &Field)>)> {
        let mut all = vec![(
            "MSH".to_string(),
            self.header_fields
                .iter()
                .enumerate()
                .map(|(i, f)| (i + 3, f))
                .collect(),
        )];
        for segment in &self.segments {
            all.push((
                segment.name.clone(),
                segment
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (i + 1, f))
                    .collect(),
            ));
        }
        all
    }
}

fn delimiter_set() -> impl Strategy<Value = Vec<u8>> {
    subsequence(DELIMITER_POOL.to_vec(), 5..=6).prop_shuffle()
}

/// Text that is mostly ordinary, with delimiters, escape characters, line
/// breaks and characters from all of Unicode mixed in.
fn text() -> impl Strategy<Value = String> {
    let ch = prop_oneof![
        4 => select(b"abcXYZ019 .".to_vec()).prop_map(char::from),
        3 => select(DELIMITER_POOL.to_vec()).prop_map(char::from),
        1 => select(b"\r\n\t\0\"".to_vec()).prop_map(char::from),
        // ESC starts an ISO 2022 designation in HL7 text (what `\Cxxyy\`
        // and `\Mxxyyzz\` stand for), so free text cannot carry one.
        1 => any::<char>().prop_filter("ISO 2022 escape", |&c| c != '\u{1b}'),
    ];
    vec(ch, 0..7).prop_map(String::from_iter)
}

fn field() -> impl Strategy<Value = Field> {
    vec(vec(vec(text(), 1..3), 1..4), 1..3)
}

fn segment_name() -> impl Strategy<Value = String> {
    // Header segments carry delimiters, and batch envelope segments end a
    // message in a stream: neither can stand inside a message.
    "[A-Z][A-Z0-9]{2}".prop_filter("header or envelope segment", |n| {
        !matches!(n.as_str(), "MSH" | "FHS" | "BHS" | "BTS" | "FTS")
    })
}

fn message() -> impl Strategy<Value = GenMessage> {
    (
        delimiter_set(),
        vec(field(), 0..8),
        vec(
            (segment_name(), vec(field(), 0..7))
                .prop_map(|(name, fields)| GenSegment { name, fields }),
            0..7,
        ),
        select(vec!["\r", "\n", "\r\n"]),
    )
        .prop_map(
            |(delimiters, header_fields, segments, terminator)| GenMessage {
                delimiters,
                header_fields,
                segments,
                terminator,
            },
        )
}

/// Which occurrence of its name each segment is (1-based), MSH first.
fn occurrences(names: &[String]) -> Vec<usize> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| names[..=i].iter().filter(|n| *n == name).count())
        .collect()
}

fn path(segment: &str, occurrence: usize, field: usize) -> Path {
    Path {
        occurrence,
        ..Path::field(segment, field).unwrap()
    }
}

/// Visits every element of every field and decodes it, as a consumer would.
fn walk(message: &Message<'_>) -> usize {
    let mut seen = 0;
    for segment in message.segments() {
        for field in segment.fields() {
            seen += field.text().len();
            for rep in field.children() {
                for comp in rep.children() {
                    for sub in comp.children() {
                        seen += sub.text_with(Formatting::Render).len() + 1;
                    }
                }
            }
        }
    }
    seen
}

/// The texts of the values a path selects.
fn selected(message: &Message<'_>, path: &Path) -> Vec<String> {
    path.values_in(message)
        .iter()
        .map(|e| e.text().into_owned())
        .collect()
}

proptest! {
    /// `SEG[*]-f.c` selects what `SEG[1]-f.c`, `SEG[2]-f.c`, ... each give,
    /// and `SEG[o]-f[*].c` what `SEG[o]-f[1].c`, `SEG[o]-f[2].c`, ... give.
    #[test]
    fn every_occurrence_and_repetition_is_each_one_in_turn(
        generated in message(),
        field in 1usize..6,
        component in proptest::option::of(1usize..3),
    ) {
        let bytes = generated.to_bytes();
        let message = Message::parse(&bytes).unwrap();
        for segment in message.segments() {
            let name = segment.name_str();
            let count = message.segments().filter(|s| s.name_str() == name).count();
            let one = |occurrence: usize, repetition: Option<usize>| Path {
                repetition,
                component,
                ..path(name, occurrence, field)
            };
            let text = |p: &Path| message.get(p).map(|e| e.text().into_owned());
            let every_occurrence = Path { every_occurrence: true, ..one(1, None) };
            let each: Vec<String> = (1..=count).filter_map(|o| text(&one(o, None))).collect();
            prop_assert_eq!(selected(&message, &every_occurrence), each);
            let occurrence = (1..=count)
                .find(|&o| message.find_segment(name.as_bytes(), o).map(|s| s.index()) == Some(segment.index()))
                .unwrap();
            let repetitions = segment.field(field).map_or(0, |f| f.children().count());
            let every_repetition = Path { every_repetition: true, ..one(occurrence, None) };
            let each: Vec<String> = if segment.field(field).is_some_and(|f| f.level() == hl7v2::Level::Literal) {
                text(&one(occurrence, None)).into_iter().collect()
            } else {
                (1..=repetitions).filter_map(|r| text(&one(occurrence, Some(r)))).collect()
            };
            prop_assert_eq!(selected(&message, &every_repetition), each);
            let again: Path = every_repetition.to_string().parse().unwrap();
            prop_assert_eq!(again, every_repetition);
        }
    }

    /// Serialize a random tree, parse it, and find every value where it was
    /// put, both by walking the tree and by path.
    #[test]
    fn serialize_then_parse_gives_back_every_value(generated in message()) {
        let bytes = generated.to_bytes();
        let message = Message::parse(&bytes).unwrap();
        assert_index_agrees_with_scanning(&message);
        let d = generated.delimiters();
        prop_assert_eq!(message.delimiters(), d);
        prop_assert_eq!(message.len(), 1 + generated.segments.len());
        let sep = [generated.delimiters[0]];
        let msh1 = message.get_str("MSH-1").unwrap();
        prop_assert_eq!(msh1.as_deref(), std::str::from_utf8(&sep).ok());
        prop_assert_eq!(
            message.segment(0).field(2).unwrap().raw(),
            &generated.delimiters[1..]
        );

        let numbered = generated.numbered_fields();
        let names: Vec<String> = numbered.iter().map(|(n, _)| n.clone()).collect();
        let occurrence = occurrences(&names);
        for (i, (name, fields)) in numbered.iter().enumerate() {
            let segment = message.segment(i);
            prop_assert_eq!(segment.name(), name.as_bytes());
            let expected_len = if i == 0 { fields.len() + 2 } else { fields.len() };
            prop_assert_eq!(segment.len(), expected_len);
            prop_assert!(segment.field(expected_len + 1).is_none());
            for &(n, field) in fields {
                let parsed = segment.field(n).unwrap();
                prop_assert_eq!(parsed.children().count(), field.len());
                let by_path = message.get(&path(name, occurrence[i], n)).unwrap();
                prop_assert_eq!(by_path.raw(), parsed.repetition(1).raw());
                for (r, rep) in field.iter().enumerate() {
                    let parsed_rep = parsed.repetition(r + 1);
                    prop_assert_eq!(parsed_rep.children().count(), rep.len());
                    for (c, comp) in rep.iter().enumerate() {
                        let parsed_comp = parsed_rep.component(c + 1);
                        prop_assert_eq!(parsed_comp.children().count(), comp.len());
                        for (s, value) in comp.iter().enumerate() {
                            prop_assert_eq!(&parsed_comp.subcomponent(s + 1).text(), value);
                            let p = Path {
                                repetition: Some(r + 1),
                                component: Some(c + 1),
                                subcomponent: Some(s + 1),
                                ..path(name, occurrence[i], n)
                            };
                            let text = message.get(&p).map(|e| e.text().into_owned());
                            prop_assert_eq!(text.as_ref(), Some(value), "{}", p);
                            // The same path as text, parsed.
                            let again: Path = p.to_string().parse().unwrap();
                            prop_assert_eq!(&again, &p);
                        }
                    }
                }
            }
        }

        // Written again without changes: the same bytes, every segment ending in CR.
        let owned = OwnedMessage::from(&message);
        prop_assert_eq!(owned.to_bytes(), generated.to_bytes_with("\r"));
        prop_assert_eq!(OwnedMessage::parse(&owned.to_bytes()).unwrap(), owned);
    }

    /// Leading byte order marks and blank lines, and trailing blank lines,
    /// change nothing.
    #[test]
    fn framing_noise_is_ignored(
        generated in message(),
        bom in any::<bool>(),
        leading in select(vec!["", "\r", "\n\n", "\r\n \r\n"]),
        trailing in select(vec!["", "\r", "\n\n", "\r\n\t\r\n", "  "]),
    ) {
        let plain = generated.to_bytes();
        let mut noisy = Vec::new();
        if bom {
            noisy.extend_from_slice(b"\xEF\xBB\xBF");
        }
        noisy.extend_from_slice(leading.as_bytes());
        noisy.extend_from_slice(&plain);
        noisy.extend_from_slice(trailing.as_bytes());
        let a = OwnedMessage::parse(&plain).unwrap();
        let b = OwnedMessage::parse(&noisy).unwrap();
        prop_assert_eq!(a.to_bytes(), b.to_bytes());
    }

    /// Many messages in one stream come apart into the same messages.
    #[test]
    fn streams_split_into_their_messages(messages in vec(message(), 1..4)) {
        let stream: Vec<u8> = messages.iter().flat_map(GenMessage::to_bytes).collect();
        let batch = Batch::parse(&stream).unwrap();
        prop_assert_eq!(batch.messages.len(), messages.len());
        for ((raw, _, _), generated) in batch.messages.iter().zip(&messages) {
            let parsed = OwnedMessage::parse(raw).unwrap();
            prop_assert_eq!(parsed.to_bytes(), generated.to_bytes_with("\r"));
        }
    }

    /// Escaping any bytes and unescaping the result gives the bytes back,
    /// and the escaped form holds no delimiter and no line break.
    #[test]
    fn escape_then_unescape_gives_back_any_bytes(
        delimiters in subsequence(DELIMITER_POOL.to_vec(), 4..=6).prop_shuffle(),
        bytes in vec(prop_oneof![
            3 => any::<u8>(),
            2 => select(DELIMITER_POOL.to_vec()),
            1 => select(b"\r\nXCMHZ.\\".to_vec()),
        ], 0..40),
    ) {
        let d = Delimiters::from_header(delimiters[0], &delimiters[1..]).unwrap();
        let escaped = escape::escape(&bytes, &d).unwrap();
        for &b in escaped.iter() {
            let allowed = Some(b) == d.escape
                || !(d.is_delimiter(b) || Some(b) == d.truncation || b == b'\r' || b == b'\n');
            prop_assert!(allowed, "{:?} holds {:?}", escaped, b as char);
        }
        let kept = escape::unescape(&escaped, &d, Formatting::Keep);
        prop_assert_eq!(kept.as_ref(), &bytes[..]);
        let rendered = escape::unescape(&escaped, &d, Formatting::Render);
        prop_assert_eq!(rendered.as_ref(), &bytes[..]);
    }

    /// Without an escape character, only text that needs none can be escaped.
    #[test]
    fn escape_without_escape_character_fails_only_when_it_must(
        delimiters in subsequence(DELIMITER_POOL.to_vec(), 1..=3).prop_shuffle(),
        bytes in vec(prop_oneof![any::<u8>(), select(DELIMITER_POOL.to_vec())], 0..20),
    ) {
        let d = Delimiters::from_header(delimiters[0], &delimiters[1..]).unwrap();
        prop_assert_eq!(d.escape, None);
        let needs = bytes.iter().any(|&b| d.is_delimiter(b) || b == b'\r' || b == b'\n');
        match escape::escape(&bytes, &d) {
            Ok(escaped) => {
                prop_assert!(!needs);
                prop_assert_eq!(escaped.as_ref(), &bytes[..]);
            }
            Err(e) => {
                prop_assert!(needs);
                prop_assert!(e.to_string().contains("escape character"), "{}", e);
            }
        }
    }

    /// Unescaping never panics on any bytes, and without escape characters
    /// it changes nothing.
    #[test]
    fn unescape_takes_any_bytes(
        delimiters in delimiter_set(),
        raw in vec(prop_oneof![any::<u8>(), select(b"\\XCM.HNZ0123456789abcdefsp brk+-".to_vec())], 0..60),
    ) {
        let d = Delimiters::from_header(delimiters[0], &delimiters[1..]).unwrap();
        let kept = escape::unescape(&raw, &d, Formatting::Keep);
        let rendered = escape::unescape(&raw, &d, Formatting::Render);
        let esc = d.escape.unwrap();
        if !raw.contains(&esc) {
            prop_assert_eq!(kept.as_ref(), &raw[..]);
            prop_assert_eq!(rendered.as_ref(), &raw[..]);
        }
        // Each sequence stands for fewer bytes than it takes, except `\.sp n\`
        // and `\.sk n\`, which are capped.
        prop_assert!(kept.len() <= raw.len());
        prop_assert!(rendered.len() <= raw.len() * 100 + 1);
    }

    /// What is set at a path is what a get at that path returns, before and
    /// after the message is written and read again, and nothing outside the
    /// field changes.
    #[test]
    fn owned_set_then_get(
        generated in message(),
        segment in prop_oneof![Just("MSH".to_string()), Just("PID".to_string()), Just("OBX".to_string()), segment_name()],
        pick_existing in any::<prop::sample::Index>(),
        use_existing in any::<bool>(),
        occurrence in 1usize..4,
        field in 1usize..14,
        repetition in proptest::option::of(1usize..4),
        component in proptest::option::of(1usize..5),
        subcomponent in proptest::option::of(1usize..4),
        value in text(),
    ) {
        let bytes = generated.to_bytes();
        let mut owned = OwnedMessage::parse(&bytes).unwrap();
        let names: Vec<String> = std::iter::once("MSH".to_string())
            .chain(generated.segments.iter().map(|s| s.name.clone()))
            .collect();
        let segment = if use_existing { pick_existing.get(&names).clone() } else { segment };
        let target = Path {
            segment: SegmentName::new(segment.as_bytes()).unwrap(),
            occurrence,
            field: Some(field),
            repetition,
            component,
            subcomponent: component.and(subcomponent),
            every_occurrence: false,
            every_repetition: false,
        };
        let result = owned.set_text(&target, &value);
        let is_msh = segment == "MSH";
        if is_msh && (field <= 2 || occurrence > 1) {
            prop_assert!(result.is_err(), "{} was set", target);
            return Ok(());
        }
        result.unwrap();
        let got = owned.get_text(&target);
        prop_assert_eq!(got.as_ref(), Some(&value), "{}", target);

        let written = owned.to_bytes();
        let reread = Message::parse(&written).unwrap();
        let got = reread.get(&target).map(|e| e.text().into_owned());
        prop_assert_eq!(got.as_ref(), Some(&value));

        // Every other field of the original segments is as it was.
        let original = Message::parse(&bytes).unwrap();
        let occurrence_of = occurrences(&names);
        for i in 0..original.len() {
            let before = original.segment(i);
            let after = reread.segment(i);
            prop_assert_eq!(before.name(), after.name());
            let touched = names[i] == segment && occurrence_of[i] == occurrence;
            for n in 1..=before.len() {
                if touched && n == field {
                    continue;
                }
                prop_assert_eq!(before.field(n).map(|f| f.raw()), after.field(n).map(|f| f.raw()));
            }
        }
        // Segments are appended only up to the occurrence asked for.
        let existing = names.iter().filter(|n| **n == segment).count();
        prop_assert_eq!(reread.len(), names.len() + occurrence.saturating_sub(existing));
    }

    /// No bytes make the parser, a path lookup, the editable copy, the
    /// batch reader or the ACK builder panic.
    #[test]
    fn arbitrary_bytes_never_panic(
        prefix in select(vec![&b""[..], b"MSH|^~\\&|", b"MSH|^~\\&|A\rBHS", b"MSH", b"\xEF\xBB\xBFMSH|^~\\&#|", b"FHS|^~\\&\rBHS|^~\\&\r"]),
        body in vec(prop_oneof![
            2 => any::<u8>(),
            2 => select(b"|^~\\&#\r\nMSHPIDOBX\"".to_vec()),
        ], 0..200),
        paths in vec(path_strategy(), 1..6),
    ) {
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(&body);
        exercise(&bytes, &paths);
    }

    /// Corrupting a well-formed message anywhere never makes anything panic.
    #[test]
    fn corrupted_messages_never_panic(
        generated in message(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        paths in vec(path_strategy(), 1..6),
    ) {
        let mut bytes = generated.to_bytes();
        for (at, byte, op) in edits {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => { bytes.remove(i); }
                _ => bytes.insert(i, byte),
            }
        }
        exercise(&bytes, &paths);
    }
}

fn path_strategy() -> impl Strategy<Value = Path> {
    (
        prop_oneof![
            Just("MSH"),
            Just("PID"),
            Just("OBX"),
            Just("ZZZ"),
            Just("BHS")
        ],
        prop_oneof![1usize..4, Just(999_999)],
        proptest::option::of(prop_oneof![1usize..20, Just(999_999)]),
        proptest::option::of(prop_oneof![1usize..5, Just(999_999)]),
        proptest::option::of(prop_oneof![1usize..5, Just(999_999)]),
        proptest::option::of(prop_oneof![1usize..4, Just(999_999)]),
    )
        .prop_map(
            |(segment, occurrence, field, repetition, component, subcomponent)| Path {
                segment: SegmentName::new(segment.as_bytes()).unwrap(),
                occurrence,
                field,
                repetition,
                component,
                subcomponent: component.and(subcomponent),
                every_occurrence: false,
                every_repetition: false,
            },
        )
}

/// Every element of a parsed message splits, through the separator
/// positions the parse recorded, exactly as the same bytes split by a scan
/// (an element made with `Element::new` has no index and scans).
fn assert_index_agrees_with_scanning(message: &Message<'_>) {
    fn tree(e: Element<'_>, depth: usize, out: &mut Vec<(usize, Vec<u8>, usize)>) {
        out.push((depth, e.raw().to_vec(), e.child_count()));
        if depth < 3 {
            for child in e.children() {
                tree(child, depth + 1, out);
            }
        }
    }
    for segment in message.segments() {
        for field in segment.fields() {
            let plain = Element::new(field.raw(), field.level(), field.context());
            let (mut indexed, mut scanned) = (vec![], vec![]);
            tree(field, 0, &mut indexed);
            tree(plain, 0, &mut scanned);
            assert_eq!(indexed, scanned);
            for n in 1..4 {
                assert_eq!(field.repetition(n).raw(), plain.repetition(n).raw());
                assert_eq!(field.component(n).raw(), plain.component(n).raw());
                assert_eq!(field.subcomponent(n).raw(), plain.subcomponent(n).raw());
            }
        }
    }
}

fn exercise(bytes: &[u8], paths: &[Path]) {
    if let Ok(message) = Message::parse(bytes) {
        walk(&message);
        assert_index_agrees_with_scanning(&message);
        for p in paths {
            if let Some(e) = message.get(p) {
                let _ = e.text();
                let _ = e.text_with(Formatting::Render);
            }
            let _ = message.get_str(&p.to_string());
        }
        let mut owned = OwnedMessage::from(&message);
        let _ = owned.to_bytes();
        let _ = AckBuilder::new(&message, AckCode::AE).build();
        for p in paths {
            // Setting at a six-digit position builds that many empty parts:
            // bounded, but too slow to do hundreds of times here.
            let numbers = [
                p.occurrence,
                p.field.unwrap_or(1),
                p.repetition.unwrap_or(1),
                p.component.unwrap_or(1),
                p.subcomponent.unwrap_or(1),
            ];
            if numbers.iter().all(|&n| n < 1000) {
                let _ = owned.set_text(p, "x|y");
                let _ = owned.get_text(p);
                let _ = owned.delete(p);
            }
        }
    }
    let _ = Batch::parse(bytes);
    for item in hl7v2::split_stream(bytes) {
        if let hl7v2::StreamItem::Message { bytes, .. } = item {
            if let Ok(m) = Message::parse(bytes) {
                walk(&m);
            }
        }
    }
    let _ = AckBuilder::for_bytes(bytes, AckCode::AR).build();
}
