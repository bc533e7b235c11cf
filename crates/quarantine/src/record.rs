//! What the pipeline writes for a validated message, inside its processing transaction.

use std::collections::BTreeMap;

use hl7v2_spec::validate::{Finding, Severity};
use serde::{Deserialize, Serialize};
use store::rusqlite::{Connection, params};
use store::{MessageId, UnixMicros};

use crate::validator::Header;

/// The id of a quarantine entry (not the journal id of its message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuarantineId(pub i64);

impl std::fmt::Display for QuarantineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A finding as stored (JSON) and answered by the API: the serialized form of
/// [`hl7v2_spec::validate::Finding`] read back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindingRecord {
    /// The kind of problem, e.g. `required_field_missing`.
    pub kind: String,
    /// The HL7 table 0357 code.
    pub code: u16,
    /// `error` or `warning`.
    pub severity: String,
    /// The group path, e.g. `VXU_V04.PID-7`.
    pub path: String,
    /// 0-based position of the segment in the message.
    pub segment_index: Option<usize>,
    /// The segment id concerned.
    pub segment_id: String,
    /// Which occurrence of the segment (1-based).
    pub segment_sequence: Option<usize>,
    /// Field, repetition, component and subcomponent, for field findings.
    pub field: Option<FieldLocation>,
    /// A sentence for people (never holds values from the message).
    pub message: String,
}

/// Where inside a segment a finding is (1-based; 0 for the whole field or component).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldLocation {
    pub field: u16,
    pub repetition: usize,
    pub component: usize,
    pub subcomponent: usize,
}

impl FindingRecord {
    /// True for an error (not a warning).
    pub fn is_error(&self) -> bool {
        self.severity == "error"
    }
}

/// Findings as the JSON stored in the `findings` columns.
pub(crate) fn findings_json(findings: &[Finding]) -> String {
    serde_json::to_string(findings).unwrap_or_else(|_| "[]".to_string())
}

/// Reads a `findings` column back.
pub(crate) fn parse_findings(json: &str) -> Vec<FindingRecord> {
    serde_json::from_str(json).unwrap_or_default()
}

/// A group path without repetition numbers: `OBX[3]-5` and `PID-3[2].4` become `OBX-5` and
/// `PID-3.4`, so counters stay few however long messages get. Paths that are not made of
/// the characters the validator writes (a segment name from the message that is not a
/// name) count as `(other)`.
pub fn normalize_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_brackets = false;
    for ch in path.chars() {
        match ch {
            '[' => in_brackets = true,
            ']' => in_brackets = false,
            _ if in_brackets => {}
            _ => out.push(ch),
        }
    }
    let plain = out
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if out.is_empty() || out.len() > 160 || !plain {
        "(other)".to_string()
    } else {
        out
    }
}

fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

fn kind_name(finding: &Finding) -> String {
    serde_json::to_value(finding.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// One data-quality counter a message adds to.
#[derive(Debug, Clone)]
struct Count {
    path: String,
    code: u16,
    severity: &'static str,
    kind: String,
    description: String,
    count: i64,
}

/// The outcome of validating one message, prepared outside the writer so the write itself
/// only runs statements: the findings as JSON, the counters it adds to, its header.
///
/// ```
/// use hl7v2_spec::validate::SplitMessage;
/// use quarantine::{ChannelValidation, Header, Validated};
///
/// let text = "MSH|^~\\&|LAB|F|EHR|F|20240315||ORU^R01^ORU_R01|1|P|2.5.1\r\
///             PID|1||42^^^H^MR||Doe^Jane\r\
///             OBR|1||F1|1234-5^Test^LN\r\
///             OBX|1|NM|1234-5^Test^LN||high||||||F";
/// let message = SplitMessage::parse(text).unwrap();
/// let findings = ChannelValidation::default().validate(&message);
/// let validated = Validated::new("lab", Header::of(&message), &findings);
/// assert!(validated.has_errors()); // OBX-5 is not a number
/// assert_eq!(validated.sender(), "LAB");
/// assert_eq!(validated.header().message_type, "ORU^R01");
/// assert!(validated.reason().contains("ORDER_OBSERVATION.OBSERVATION.OBX-5"));
/// ```
#[derive(Debug, Clone)]
pub struct Validated {
    channel: String,
    header: Header,
    sender: String,
    findings_json: String,
    errors: usize,
    warnings: usize,
    first_error: Option<String>,
    counts: Vec<Count>,
}

impl Validated {
    /// Prepares the findings of a message received on `channel`.
    pub fn new(channel: &str, header: Header, findings: &[Finding]) -> Validated {
        let mut counts: BTreeMap<(String, u16, &'static str), Count> = BTreeMap::new();
        for finding in findings {
            let path = normalize_path(&finding.path);
            let severity = severity_name(finding.severity);
            let code = finding.code.code();
            counts
                .entry((path.clone(), code, severity))
                .and_modify(|c| c.count += 1)
                .or_insert_with(|| Count {
                    path,
                    code,
                    severity,
                    kind: kind_name(finding),
                    description: finding.message.clone(),
                    count: 1,
                });
        }
        let errors = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count();
        Validated {
            channel: channel.to_string(),
            sender: header.sender(),
            header,
            findings_json: findings_json(findings),
            errors,
            warnings: findings.len() - errors,
            first_error: findings
                .iter()
                .find(|f| f.severity == Severity::Error)
                .map(|f| f.to_string()),
            counts: counts.into_values().collect(),
        }
    }

    /// True when any finding is an error: the message belongs in quarantine.
    pub fn has_errors(&self) -> bool {
        self.errors > 0
    }

    /// How many findings are errors.
    pub fn errors(&self) -> usize {
        self.errors
    }

    /// How many findings are warnings.
    pub fn warnings(&self) -> usize {
        self.warnings
    }

    /// The header values it was validated with.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The sender it counts under (first component of MSH-3).
    pub fn sender(&self) -> &str {
        &self.sender
    }

    /// The channel.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Words for the journal's state reason: how many errors, and the first one (its path
    /// and the validator's sentence, never a value from the message).
    pub fn reason(&self) -> String {
        let plural = if self.errors == 1 { "" } else { "s" };
        match &self.first_error {
            Some(first) => format!(
                "validation: {} error{plural}; the first: {first}",
                self.errors
            ),
            None => format!("validation: {} warning(s), no errors", self.warnings),
        }
    }
}

const UPSERT_COUNT: &str = "INSERT INTO data_quality (channel, sender, message_type, path, code, \
     severity, kind, description, count, messages, first_seen, last_seen) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 1, ?10, ?10) \
     ON CONFLICT (channel, sender, message_type, path, code, severity) DO UPDATE SET \
     count = count + excluded.count, messages = messages + 1, kind = excluded.kind, \
     description = excluded.description, last_seen = max(last_seen, excluded.last_seen)";

const UPSERT_MESSAGES: &str = "INSERT INTO data_quality_messages (channel, sender, message_type, \
     validated, with_errors, with_warnings, first_seen, last_seen) \
     VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6, ?6) \
     ON CONFLICT (channel, sender, message_type) DO UPDATE SET \
     validated = validated + 1, with_errors = with_errors + excluded.with_errors, \
     with_warnings = with_warnings + excluded.with_warnings, \
     last_seen = max(last_seen, excluded.last_seen)";

const UPSERT_HOURLY: &str = "INSERT INTO data_quality_hourly (hour, sender, channel, \
     message_type, path, code, severity, count, messages) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1) \
     ON CONFLICT (hour, sender, channel, message_type, path, code, severity) DO UPDATE SET \
     count = count + excluded.count, messages = messages + 1";

const UPSERT_MESSAGES_HOURLY: &str = "INSERT INTO data_quality_messages_hourly (hour, sender, \
     channel, message_type, validated, with_errors, with_warnings) \
     VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6) \
     ON CONFLICT (hour, sender, channel, message_type) DO UPDATE SET \
     validated = validated + 1, with_errors = with_errors + excluded.with_errors, \
     with_warnings = with_warnings + excluded.with_warnings";

/// Microseconds in an hour: the hourly counters' bucket.
pub(crate) const HOUR_MICROS: i64 = 3_600_000_000;

/// Adds a validated message to the data-quality counters, inside the caller's write (the
/// transaction that processes or rejects the message). Every validated message counts,
/// with or without findings.
pub fn count_findings_in(
    conn: &Connection,
    validated: &Validated,
    at: UnixMicros,
) -> store::Result<()> {
    let v = validated;
    conn.prepare_cached(UPSERT_MESSAGES)?.execute(params![
        v.channel,
        v.sender,
        v.header.message_type,
        i64::from(v.errors > 0),
        i64::from(v.errors == 0 && v.warnings > 0),
        at.0,
    ])?;
    // The same counts per hour (UTC), kept beside the totals so data quality over
    // time is read from a few rows per hour instead of scanning messages; written in
    // the same transaction, and never pruned with the quarantine.
    let hour = at.0 - at.0.rem_euclid(HOUR_MICROS);
    conn.prepare_cached(UPSERT_MESSAGES_HOURLY)?
        .execute(params![
            hour,
            v.sender,
            v.channel,
            v.header.message_type,
            i64::from(v.errors > 0),
            i64::from(v.errors == 0 && v.warnings > 0),
        ])?;
    let mut hourly = conn.prepare_cached(UPSERT_HOURLY)?;
    for c in &v.counts {
        hourly.execute(params![
            hour,
            v.sender,
            v.channel,
            v.header.message_type,
            c.path,
            c.code,
            c.severity,
            c.count,
        ])?;
    }
    let mut upsert = conn.prepare_cached(UPSERT_COUNT)?;
    for c in &v.counts {
        upsert.execute(params![
            v.channel,
            v.sender,
            v.header.message_type,
            c.path,
            c.code,
            c.severity,
            c.kind,
            c.description,
            c.count,
            at.0,
        ])?;
    }
    Ok(())
}

const INSERT_QUARANTINE: &str = "INSERT INTO quarantine (message_id, channel, \
     sending_application, sending_facility, sender, message_type, control_id, findings, \
     errors, warnings, quarantined_at, reason, validated_at, status, status_changed_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?11, 'open', ?11) \
     ON CONFLICT (message_id) DO UPDATE SET findings = excluded.findings, \
     errors = excluded.errors, warnings = excluded.warnings, reason = excluded.reason, \
     validated_at = excluded.validated_at \
     RETURNING id";

/// Puts the journal message `message_id` in quarantine with its findings, inside the
/// caller's write. The journal row is not touched (the pipeline sets its state to
/// `quarantined` in the same transaction). Quarantining a message twice updates its
/// findings and keeps its entry, status and edits.
pub fn quarantine_in(
    conn: &Connection,
    message_id: MessageId,
    validated: &Validated,
    at: UnixMicros,
) -> store::Result<QuarantineId> {
    let v = validated;
    let id = conn.prepare_cached(INSERT_QUARANTINE)?.query_row(
        params![
            message_id.0,
            v.channel,
            v.header.sending_application,
            v.header.sending_facility,
            v.sender,
            v.header.message_type,
            v.header.control_id,
            v.findings_json,
            v.errors as i64,
            v.warnings as i64,
            at.0,
            v.reason(),
        ],
        |row| row.get(0),
    )?;
    Ok(QuarantineId(id))
}

/// Both at once: what the pipeline (after the ACK) and a source (before it) write for a
/// message that failed validation.
pub fn record_failure_in(
    conn: &Connection,
    message_id: MessageId,
    validated: &Validated,
    at: UnixMicros,
) -> store::Result<QuarantineId> {
    count_findings_in(conn, validated, at)?;
    quarantine_in(conn, message_id, validated, at)
}

#[cfg(test)]
mod tests {
    use super::normalize_path;

    #[test]
    fn paths_lose_their_repetition_numbers() {
        assert_eq!(
            normalize_path("ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION[2].OBSERVATION[3].OBX-5"),
            "ORU_R01.PATIENT_RESULT.ORDER_OBSERVATION.OBSERVATION.OBX-5"
        );
        assert_eq!(normalize_path("ADT_A01.PID-3[2].4.1"), "ADT_A01.PID-3.4.1");
        assert_eq!(normalize_path("VXU_V04.PID-7"), "VXU_V04.PID-7");
    }

    #[test]
    fn paths_that_hold_odd_characters_count_as_other() {
        assert_eq!(normalize_path("ORU_R01.Z\"}{"), "(other)");
        assert_eq!(normalize_path("ADT_A01.P D"), "(other)");
        assert_eq!(normalize_path(&"A".repeat(200)), "(other)");
        assert_eq!(normalize_path(""), "(other)");
    }
}
