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

/// How wide a span of data quality over time is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// An hour (UTC).
    Hour,
    /// A day (UTC).
    Day,
}

impl Bucket {
    /// Its length in microseconds.
    pub fn micros(self) -> i64 {
        match self {
            Bucket::Hour => crate::record::HOUR_MICROS,
            Bucket::Day => 24 * crate::record::HOUR_MICROS,
        }
    }

    /// `hour` or `day`.
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }
}

/// A sender's findings at one field in one span: the span's start, occurrences, and
/// messages with at least one (both severities, every code and message type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldOverTime {
    /// The span's start (microseconds).
    pub start: i64,
    pub sender: String,
    pub path: String,
    pub count: i64,
    pub messages: i64,
}

/// A sender's messages validated in one span, and how many had errors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenderOverTime {
    /// The span's start (microseconds).
    pub start: i64,
    pub sender: String,
    pub validated: i64,
    pub with_errors: i64,
    pub with_warnings: i64,
}

/// Data quality over time from the hourly counters (`data_quality_hourly`,
/// `data_quality_messages_hourly`): per sender and span since `since`, the messages
/// validated, and the findings per field; oldest span first. Reads only the rows of the
/// spans asked for (the tables are keyed by hour first).
pub fn data_quality_over_time_in(
    conn: &Connection,
    filter: &DataQualityFilter,
    since: i64,
    bucket: Bucket,
) -> store::Result<(Vec<SenderOverTime>, Vec<FieldOverTime>)> {
    let (conditions, mut values) = filter.to_sql_values();
    values.push(store::rusqlite::types::Value::Integer(since));
    let hour_condition = format!("hour >= ?{}", values.len());
    let conditions = if conditions.is_empty() {
        format!(" WHERE {hour_condition}")
    } else {
        format!("{conditions} AND {hour_condition}")
    };
    let width = bucket.micros();
    let mut senders = Vec::new();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT (hour / {width}) * {width} AS start, sender, sum(validated), sum(with_errors), \
         sum(with_warnings) FROM data_quality_messages_hourly{conditions} \
         GROUP BY start, sender ORDER BY start, sender"
    ))?;
    let mut rows = statement.query(params_from_iter(values.iter()))?;
    while let Some(row) = rows.next()? {
        senders.push(SenderOverTime {
            start: row.get(0)?,
            sender: row.get(1)?,
            validated: row.get(2)?,
            with_errors: row.get(3)?,
            with_warnings: row.get(4)?,
        });
    }
    let mut fields = Vec::new();
    let mut statement = conn.prepare_cached(&format!(
        "SELECT (hour / {width}) * {width} AS start, sender, path, sum(count), sum(messages) \
         FROM data_quality_hourly{conditions} \
         GROUP BY start, sender, path ORDER BY start, sender, path"
    ))?;
    let mut rows = statement.query(params_from_iter(values.iter()))?;
    while let Some(row) = rows.next()? {
        fields.push(FieldOverTime {
            start: row.get(0)?,
            sender: row.get(1)?,
            path: row.get(2)?,
            count: row.get(3)?,
            messages: row.get(4)?,
        });
    }
    Ok((senders, fields))
}
