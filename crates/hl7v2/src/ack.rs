//! Acknowledgements: ACK and NAK messages that follow the standard.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::delimiters::Delimiters;
use crate::escape;
use crate::header::RawHeader;
use crate::message::Message;

/// MSA-1, the acknowledgement code (HL7 table 0008).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// Original mode: application accept.
    AA,
    /// Original mode: application error.
    AE,
    /// Original mode: application reject.
    AR,
    /// Enhanced mode: commit accept.
    CA,
    /// Enhanced mode: commit error.
    CE,
    /// Enhanced mode: commit reject.
    CR,
}

impl AckCode {
    pub fn as_str(&self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    pub fn parse(text: &str) -> Option<AckCode> {
        Some(match text {
            "AA" => AckCode::AA,
            "AE" => AckCode::AE,
            "AR" => AckCode::AR,
            "CA" => AckCode::CA,
            "CE" => AckCode::CE,
            "CR" => AckCode::CR,
            _ => return None,
        })
    }

    /// True for AA and CA.
    pub fn is_positive(&self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }
}

/// The acknowledgement mode a receiver answers in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckMode {
    /// One application acknowledgement (AA, AE, AR) per message.
    Original,
    /// A commit acknowledgement (CA, CE, CR) when the message is stored,
    /// as MSH-15 asks, and an application acknowledgement later, as MSH-16
    /// asks.
    Enhanced,
}

impl AckMode {
    /// The code for "accepted", "error" or "rejected" in this mode.
    pub fn code(&self, outcome: Outcome) -> AckCode {
        match (self, outcome) {
            (AckMode::Original, Outcome::Accept) => AckCode::AA,
            (AckMode::Original, Outcome::Error) => AckCode::AE,
            (AckMode::Original, Outcome::Reject) => AckCode::AR,
            (AckMode::Enhanced, Outcome::Accept) => AckCode::CA,
            (AckMode::Enhanced, Outcome::Error) => AckCode::CE,
            (AckMode::Enhanced, Outcome::Reject) => AckCode::CR,
        }
    }
}

/// The three answers a receiver can give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Accept,
    Error,
    Reject,
}

/// When a sender wants an acknowledgement (MSH-15 and MSH-16, HL7 table 0155).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AckCondition {
    Always,
    Never,
    OnErrorOnly,
    OnSuccessOnly,
}

impl AckCondition {
    /// Reads MSH-15 or MSH-16; an empty value means `default`.
    pub fn parse(text: &str, default: AckCondition) -> AckCondition {
        match text.trim() {
            "AL" => AckCondition::Always,
            "NE" => AckCondition::Never,
            "ER" => AckCondition::OnErrorOnly,
            "SU" => AckCondition::OnSuccessOnly,
            _ => default,
        }
    }

    /// Whether an acknowledgement with this code is wanted.
    pub fn wants(&self, code: AckCode) -> bool {
        match self {
            AckCondition::Always => true,
            AckCondition::Never => false,
            AckCondition::OnErrorOnly => !code.is_positive(),
            AckCondition::OnSuccessOnly => code.is_positive(),
        }
    }
}

/// HL7 table 0357, the message error condition codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    MessageAccepted,
    SegmentSequenceError,
    RequiredFieldMissing,
    DataTypeError,
    TableValueNotFound,
    ValueTooLong,
    UnsupportedMessageType,
    UnsupportedEventCode,
    UnsupportedProcessingId,
    UnsupportedVersionId,
    UnknownKeyIdentifier,
    DuplicateKeyIdentifier,
    ApplicationRecordLocked,
    ApplicationInternalError,
}

impl ErrorCode {
    pub fn code(&self) -> u16 {
        match self {
            ErrorCode::MessageAccepted => 0,
            ErrorCode::SegmentSequenceError => 100,
            ErrorCode::RequiredFieldMissing => 101,
            ErrorCode::DataTypeError => 102,
            ErrorCode::TableValueNotFound => 103,
            ErrorCode::ValueTooLong => 104,
            ErrorCode::UnsupportedMessageType => 200,
            ErrorCode::UnsupportedEventCode => 201,
            ErrorCode::UnsupportedProcessingId => 202,
            ErrorCode::UnsupportedVersionId => 203,
            ErrorCode::UnknownKeyIdentifier => 204,
            ErrorCode::DuplicateKeyIdentifier => 205,
            ErrorCode::ApplicationRecordLocked => 206,
            ErrorCode::ApplicationInternalError => 207,
        }
    }

    /// The table's own words for the code.
    pub fn text(&self) -> &'static str {
        match self {
            ErrorCode::MessageAccepted => "Message accepted",
            ErrorCode::SegmentSequenceError => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataTypeError => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::ValueTooLong => "Value too long",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEventCode => "Unsupported event code",
            ErrorCode::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCode::UnsupportedVersionId => "Unsupported version id",
            ErrorCode::UnknownKeyIdentifier => "Unknown key identifier",
            ErrorCode::DuplicateKeyIdentifier => "Duplicate key identifier",
            ErrorCode::ApplicationRecordLocked => "Application record locked",
            ErrorCode::ApplicationInternalError => "Application internal error",
        }
    }
}

/// ERR-4, the severity (HL7 table 0516).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    Error,
    Warning,
    Information,
    Fatal,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Error => "E",
            Severity::Warning => "W",
            Severity::Information => "I",
            Severity::Fatal => "F",
        }
    }
}

/// One ERR segment's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckError {
    /// Segment name, its 1-based occurrence, and the field, repetition,
    /// component and subcomponent where the problem is (0 where unknown).
    pub segment: Option<String>,
    pub occurrence: usize,
    pub field: usize,
    pub repetition: usize,
    pub component: usize,
    pub subcomponent: usize,
    pub code: ErrorCode,
    pub severity: Severity,
    /// Words a person understands.
    pub message: String,
}

impl AckError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> AckError {
        AckError {
            segment: None,
            occurrence: 0,
            field: 0,
            repetition: 0,
            component: 0,
            subcomponent: 0,
            code,
            severity: Severity::Error,
            message: message.into(),
        }
    }

    /// Places the error at a segment (name and 1-based occurrence) and field.
    pub fn at(mut self, segment: &str, occurrence: usize, field: usize) -> AckError {
        self.segment = Some(segment.to_string());
        self.occurrence = occurrence;
        self.field = field;
        self
    }

    pub fn severity(mut self, severity: Severity) -> AckError {
        self.severity = severity;
        self
    }
}

/// The parts of the original header an acknowledgement copies.
#[derive(Clone, Debug, Default)]
struct Header {
    delimiters: Delimiters,
    fields: Vec<Vec<u8>>,
}

impl Header {
    /// Field `n` of the original MSH, raw.
    fn field(&self, n: usize) -> &[u8] {
        match n {
            0..=2 => &[],
            n => self.fields.get(n - 2).map_or(&[][..], Vec::as_slice),
        }
    }

    /// Reads as much of an MSH as can be read from bytes that may not parse.
    fn scan(bytes: &[u8]) -> Header {
        let Some(raw) = RawHeader::scan(bytes) else {
            return Header::default();
        };
        let Ok(delimiters) = raw.delimiters() else {
            return Header::default();
        };
        let fields = raw.fields_from_msh2().map(<[u8]>::to_vec).collect();
        Header { delimiters, fields }
    }

    fn component(&self, n: usize, c: usize) -> &[u8] {
        let field = self.field(n);
        let first_rep = match self.delimiters.repetition {
            Some(r) => field.split(|&b| b == r).next().unwrap_or_default(),
            None => field,
        };
        match self.delimiters.component {
            Some(sep) => first_rep
                .split(|&b| b == sep)
                .nth(c - 1)
                .unwrap_or_default(),
            None if c == 1 => first_rep,
            None => &[],
        }
    }
}

/// Builds the acknowledgement for a message.
///
/// The ACK swaps sender and receiver (MSH-3/4 with MSH-5/6), gets a new
/// MSH-10, answers in MSA-2 with the original MSH-10, and carries each error
/// in an ERR segment: ERR-2 location, ERR-3 code from table 0357 and ERR-4
/// severity from version 2.5 on, and the older ERR-1 layout before it.
#[derive(Clone, Debug)]
pub struct AckBuilder {
    header: Header,
    code: AckCode,
    text: Option<String>,
    errors: Vec<AckError>,
    control_id: Option<String>,
    timestamp: Option<String>,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

impl AckBuilder {
    /// An acknowledgement of a parsed message.
    pub fn new(original: &Message<'_>, code: AckCode) -> AckBuilder {
        AckBuilder::for_bytes(original.as_bytes(), code)
    }

    /// An acknowledgement of bytes that may not parse at all: whatever of
    /// the MSH can be read is used, the rest is left empty.
    pub fn for_bytes(original: &[u8], code: AckCode) -> AckBuilder {
        AckBuilder {
            header: Header::scan(original),
            code,
            text: None,
            errors: Vec::new(),
            control_id: None,
            timestamp: None,
        }
    }

    /// MSA-3, a text message.
    pub fn text(mut self, text: impl Into<String>) -> AckBuilder {
        self.text = Some(text.into());
        self
    }

    /// Adds an ERR segment.
    pub fn error(mut self, error: AckError) -> AckBuilder {
        self.errors.push(error);
        self
    }

    /// The acknowledgement's own MSH-10. Without one, a unique id is made up.
    pub fn control_id(mut self, id: impl Into<String>) -> AckBuilder {
        self.control_id = Some(id.into());
        self
    }

    /// MSH-7, as HL7 DTM text. Without one, the current time in UTC.
    pub fn timestamp(mut self, ts: impl Into<String>) -> AckBuilder {
        self.timestamp = Some(ts.into());
        self
    }

    /// The original message's version, as numbers (`2.5.1` is `[2, 5, 1]`);
    /// 2.5, the version an acknowledgement of unreadable input is written
    /// in, when it has none.
    fn version(&self) -> Vec<u32> {
        let version: Vec<u32> = String::from_utf8_lossy(self.header.component(12, 1))
            .split('.')
            .map_while(|p| p.trim().parse().ok())
            .collect();
        if version.is_empty() {
            vec![2, 5]
        } else {
            version
        }
    }

    /// The acknowledgement, as bytes (segments end in CR).
    pub fn build(&self) -> Vec<u8> {
        let h = &self.header;
        let d = h.delimiters;
        let esc = |text: &str| -> Vec<u8> {
            escape::escape(text.as_bytes(), &d)
                .map(|c| c.into_owned())
                .unwrap_or_else(|_| text.bytes().filter(|&b| !d.is_delimiter(b)).collect())
        };
        let version = self.version();
        let at_least = |v: &[u32]| version.as_slice() >= v;
        let comp = d.component.unwrap_or(b'^');
        let sub = d.subcomponent.unwrap_or(b'&');

        let mut out = Vec::with_capacity(256);
        let sep = |out: &mut Vec<u8>| out.push(d.field);
        out.extend_from_slice(b"MSH");
        out.push(d.field);
        out.extend_from_slice(&d.encoding_characters());
        for n in [5, 6, 3, 4] {
            sep(&mut out);
            out.extend_from_slice(h.field(n));
        }
        sep(&mut out);
        out.extend_from_slice(&esc(&self.timestamp.clone().unwrap_or_else(now_dtm)));
        sep(&mut out);
        sep(&mut out);
        out.extend_from_slice(b"ACK");
        let trigger = h.component(9, 2);
        if !trigger.is_empty() {
            out.push(comp);
            out.extend_from_slice(trigger);
            if at_least(&[2, 3, 1]) {
                out.push(comp);
                out.extend_from_slice(b"ACK");
            }
        }
        sep(&mut out);
        let control_id = self.control_id.clone().unwrap_or_else(new_control_id);
        out.extend_from_slice(&esc(&control_id));
        sep(&mut out);
        let processing = h.field(11);
        out.extend_from_slice(if processing.is_empty() {
            b"P"
        } else {
            processing
        });
        sep(&mut out);
        let version_field = h.field(12);
        out.extend_from_slice(if version_field.is_empty() {
            b"2.5"
        } else {
            version_field
        });
        let charset = h.field(18);
        if !charset.is_empty() {
            for _ in 13..=18 {
                sep(&mut out);
            }
            out.extend_from_slice(charset);
        }
        out.push(b'\r');

        out.extend_from_slice(b"MSA");
        sep(&mut out);
        out.extend_from_slice(self.code.as_str().as_bytes());
        sep(&mut out);
        out.extend_from_slice(h.field(10));
        if let Some(text) = &self.text {
            sep(&mut out);
            out.extend_from_slice(&esc(text));
        }
        out.push(b'\r');

        if at_least(&[2, 5]) {
            for e in &self.errors {
                out.extend_from_slice(b"ERR");
                sep(&mut out);
                sep(&mut out);
                if let Some(segment) = &e.segment {
                    out.extend_from_slice(&esc(segment));
                    for n in [
                        e.occurrence,
                        e.field,
                        e.repetition,
                        e.component,
                        e.subcomponent,
                    ] {
                        out.push(comp);
                        if n > 0 {
                            out.extend_from_slice(n.to_string().as_bytes());
                        }
                    }
                    trim_trailing(&mut out, comp);
                }
                sep(&mut out);
                out.extend_from_slice(e.code.code().to_string().as_bytes());
                out.push(comp);
                out.extend_from_slice(&esc(e.code.text()));
                out.push(comp);
                out.extend_from_slice(b"HL70357");
                sep(&mut out);
                out.extend_from_slice(e.severity.as_str().as_bytes());
                for _ in 5..=8 {
                    sep(&mut out);
                }
                // ERR-8, the user message.
                out.extend_from_slice(&esc(&e.message));
                out.push(b'\r');
            }
        } else if !self.errors.is_empty() {
            out.extend_from_slice(b"ERR");
            sep(&mut out);
            let rep = d.repetition.unwrap_or(b'~');
            for (i, e) in self.errors.iter().enumerate() {
                if i > 0 {
                    out.push(rep);
                }
                out.extend_from_slice(&esc(e.segment.as_deref().unwrap_or("")));
                for n in [e.occurrence, e.field] {
                    out.push(comp);
                    if n > 0 {
                        out.extend_from_slice(n.to_string().as_bytes());
                    }
                }
                out.push(comp);
                out.extend_from_slice(e.code.code().to_string().as_bytes());
                out.push(sub);
                out.extend_from_slice(&esc(&e.message));
                out.push(sub);
                out.extend_from_slice(b"HL70357");
            }
            out.push(b'\r');
        }
        out
    }
}

fn trim_trailing(out: &mut Vec<u8>, c: u8) {
    while out.last() == Some(&c) {
        out.pop();
    }
}

/// A control id unique within this process and across restarts: the time in
/// microseconds and a sequence number.
fn new_control_id() -> String {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) % 1000;
    format!("{micros}{seq:03}")
}

/// The current UTC time as HL7 DTM (`YYYYMMDDHHMMSS+0000`).
pub(crate) fn now_dtm() -> String {
    datetime::hl7::now_dtm_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORU_251: &[u8] = b"MSH|^~\\&|LAB|HOSP|EHR|CLINIC|20240102||ORU^R01^ORU_R01|CTRL42|P|2.5.1|||AL|NE||UNICODE UTF-8\rPID|1\r";
    const ADT_23: &[u8] = b"MSH|^~\\&|REG|HOSP|EHR|CLINIC|20240102||ADT^A01|X9|P|2.3\rPID|1\r";

    fn text(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn ack_swaps_sender_and_receiver_and_answers_control_id() {
        let msg = Message::parse(ORU_251).unwrap();
        let ack = AckBuilder::new(&msg, AckCode::AA)
            .control_id("A1")
            .timestamp("20240102030405")
            .build();
        assert_eq!(
            text(ack),
            "MSH|^~\\&|EHR|CLINIC|LAB|HOSP|20240102030405||ACK^R01^ACK|A1|P|2.5.1||||||UNICODE UTF-8\rMSA|AA|CTRL42\r"
        );
    }

    #[test]
    fn err_segment_in_the_2_5_layout() {
        let msg = Message::parse(ORU_251).unwrap();
        let ack = AckBuilder::new(&msg, AckCode::AE)
            .control_id("A2")
            .timestamp("20240102")
            .error(
                AckError::new(ErrorCode::RequiredFieldMissing, "PID-3 is required").at("PID", 1, 3),
            )
            .build();
        let ack = text(ack);
        assert!(
            ack.ends_with("MSA|AE|CTRL42\rERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 is required\r"),
            "{ack}"
        );
        // The acknowledgement itself parses, and MSA-2 reads back.
        let parsed = Message::parse(ack.as_bytes()).unwrap();
        assert_eq!(parsed.get_str("MSA-2").unwrap().as_deref(), Some("CTRL42"));
        assert_eq!(parsed.get_str("ERR-3.1").unwrap().as_deref(), Some("101"));
    }

    #[test]
    fn err_segment_in_the_older_layout() {
        let msg = Message::parse(ADT_23).unwrap();
        let ack = AckBuilder::new(&msg, AckCode::AR)
            .control_id("A3")
            .timestamp("20240102")
            .error(AckError::new(ErrorCode::SegmentSequenceError, "EVN is missing").at("EVN", 1, 0))
            .build();
        let ack = text(ack);
        assert!(ack.contains("|ACK^A01|A3|P|2.3\r"), "{ack}");
        assert!(
            ack.ends_with("ERR|EVN^1^^100&EVN is missing&HL70357\r"),
            "{ack}"
        );
    }

    #[test]
    fn nak_for_input_without_msh() {
        let ack = AckBuilder::for_bytes(b"garbage", AckCode::AR)
            .control_id("A4")
            .timestamp("20240102")
            .error(AckError::new(
                ErrorCode::SegmentSequenceError,
                "no MSH segment",
            ))
            .build();
        let parsed = Message::parse(&ack).unwrap();
        assert_eq!(parsed.get_str("MSA-1").unwrap().as_deref(), Some("AR"));
        assert_eq!(parsed.get_str("MSA-2").unwrap().as_deref(), Some(""));
        assert_eq!(parsed.get_str("ERR-3.1").unwrap().as_deref(), Some("100"));
    }

    #[test]
    fn nak_for_broken_message_keeps_what_it_can_read() {
        let ack = AckBuilder::for_bytes(
            b"MSH|^~\\&|LAB|H|||2024||ORU^R01|C7|P|2.5\rPID|\x00bad\rXXXX\r",
            AckCode::AR,
        )
        .timestamp("2024")
        .build();
        let parsed = Message::parse(&ack).unwrap();
        assert_eq!(parsed.get_str("MSA-2").unwrap().as_deref(), Some("C7"));
        assert_eq!(parsed.get_str("MSH-5").unwrap().as_deref(), Some("LAB"));
    }

    #[test]
    fn text_with_delimiters_is_escaped() {
        let msg = Message::parse(ORU_251).unwrap();
        let ack = AckBuilder::new(&msg, AckCode::AE)
            .text("bad | value ^")
            .build();
        let parsed = Message::parse(&ack).unwrap();
        assert_eq!(
            parsed.get_str("MSA-3").unwrap().as_deref(),
            Some("bad | value ^")
        );
    }

    #[test]
    fn control_ids_are_unique() {
        let a = new_control_id();
        let b = new_control_id();
        assert_ne!(a, b);
    }

    #[test]
    fn enhanced_mode_conditions() {
        assert!(AckCondition::parse("AL", AckCondition::Never).wants(AckCode::CA));
        assert!(!AckCondition::parse("ER", AckCondition::Never).wants(AckCode::CA));
        assert!(AckCondition::parse("ER", AckCondition::Never).wants(AckCode::CE));
        assert!(!AckCondition::parse("", AckCondition::Never).wants(AckCode::CA));
        assert_eq!(AckMode::Enhanced.code(Outcome::Reject), AckCode::CR);
    }
}
