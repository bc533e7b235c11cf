//! The data-quality counters: per sender and message type, how many messages were
//! validated and which findings they had where.

use serde::Serialize;
use store::rusqlite::{Connection, params_from_iter};

use crate::filter::DataQualityFilter;

/// One data-quality counter: a finding at a path, for a sender and message type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingCount {
    pub channel: String,
    pub sender: String,
    pub message_type: String,
    /// The group path without repetition numbers.
    pub path: String,
    /// HL7 table 0357.
    pub code: u16,
    pub severity: String,
    pub kind: String,
    /// The validator's sentence for the last occurrence.
    pub description: String,
    /// Occurrences.
    pub count: i64,
    /// Messages with at least one occurrence.
    pub messages: i64,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// How many messages of a sender and type were validated, and how many failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MessageCount {
    pub channel: String,
    pub sender: String,
    pub message_type: String,
    pub validated: i64,
    /// With at least one error.
    pub with_errors: i64,
    /// With warnings and no errors.
    pub with_warnings: i64,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// Reads the data-quality counters on a connection one has.
pub fn data_quality_in(
    conn: &Connection,
    filter: &DataQualityFilter,
) -> store::Result<(Vec<MessageCount>, Vec<FindingCount>)> {
    let (conditions, values) = filter.to_sql();
    let mut messages = Vec::new();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT channel, sender, message_type, validated, with_errors, with_warnings, \
         first_seen, last_seen FROM data_quality_messages{conditions} \
         ORDER BY channel, sender, message_type"
    ))?;
    let mut rows = statement.query(params_from_iter(values.iter()))?;
    while let Some(row) = rows.next()? {
        messages.push(MessageCount {
            channel: row.get(0)?,
            sender: row.get(1)?,
            message_type: row.get(2)?,
            validated: row.get(3)?,
            with_errors: row.get(4)?,
            with_warnings: row.get(5)?,
            first_seen: row.get(6)?,
            last_seen: row.get(7)?,
        });
    }
    let mut findings = Vec::new();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT channel, sender, message_type, path, code, severity, kind, description, count, \
         messages, first_seen, last_seen FROM data_quality{conditions} \
         ORDER BY count DESC, channel, sender, message_type, path"
    ))?;
    let mut rows = statement.query(params_from_iter(values.iter()))?;
    while let Some(row) = rows.next()? {
        findings.push(FindingCount {
            channel: row.get(0)?,
            sender: row.get(1)?,
            message_type: row.get(2)?,
            path: row.get(3)?,
            code: row.get(4)?,
            severity: row.get(5)?,
            kind: row.get(6)?,
            description: row.get(7)?,
            count: row.get(8)?,
            messages: row.get(9)?,
            first_seen: row.get(10)?,
            last_seen: row.get(11)?,
        });
    }
    Ok((messages, findings))
}
