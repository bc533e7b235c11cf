//! Which quarantine entries and data-quality counters a query reads, as SQL conditions.

use crate::entry::Status;
use crate::record::QuarantineId;

/// Which entries [`Quarantine::list`](crate::Quarantine::list) shows; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuarantineFilter {
    /// Only this channel.
    pub channel: Option<String>,
    /// Only this sender (MSH-3, whole or its first component).
    pub sender: Option<String>,
    /// Only this message type: `ORU` or `ORU^R01`.
    pub message_type: Option<String>,
    /// Only entries with this status.
    pub status: Option<Status>,
    /// Only ids below this one (the next page of a newest-first listing).
    pub before: Option<QuarantineId>,
}

impl QuarantineFilter {
    pub(crate) fn to_sql(&self) -> (String, Vec<store::rusqlite::types::Value>) {
        use store::rusqlite::types::Value;
        let mut conditions = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        let mut push = |condition: &str, value: Value, values: &mut Vec<Value>| {
            values.push(value);
            conditions.push(condition.replace('?', &format!("?{}", values.len())));
        };
        if let Some(channel) = &self.channel {
            push("channel = ?", Value::Text(channel.clone()), &mut values);
        }
        if let Some(sender) = &self.sender {
            push(
                "(sender = ? OR sending_application = ?)",
                Value::Text(sender.clone()),
                &mut values,
            );
        }
        if let Some(kind) = &self.message_type {
            push(
                "(message_type = ? OR substr(message_type, 1, length(?) + 1) = ? || '^')",
                Value::Text(kind.clone()),
                &mut values,
            );
        }
        if let Some(status) = self.status {
            push(
                "status = ?",
                Value::Text(status.as_str().into()),
                &mut values,
            );
        }
        if let Some(before) = self.before {
            push("id < ?", Value::Integer(before.0), &mut values);
        }
        (where_clause(&conditions), values)
    }
}

/// ` WHERE a AND b ...` of `conditions`, or nothing when there are none.
fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

/// Which counters [`Quarantine::data_quality`](crate::Quarantine::data_quality) reads; empty means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataQualityFilter {
    pub channel: Option<String>,
    pub sender: Option<String>,
    pub message_type: Option<String>,
}

impl DataQualityFilter {
    /// [`DataQualityFilter::to_sql`] with values that more conditions can follow.
    pub(crate) fn to_sql_values(&self) -> (String, Vec<store::rusqlite::types::Value>) {
        let (conditions, values) = self.to_sql();
        (
            conditions,
            values
                .into_iter()
                .map(store::rusqlite::types::Value::Text)
                .collect(),
        )
    }

    pub(crate) fn to_sql(&self) -> (String, Vec<String>) {
        let mut conditions = Vec::new();
        let mut values = Vec::new();
        for (column, value) in [
            ("channel", &self.channel),
            ("sender", &self.sender),
            ("message_type", &self.message_type),
        ] {
            if let Some(v) = value {
                values.push(v.clone());
                conditions.push(format!("{column} = ?{}", values.len()));
            }
        }
        (where_clause(&conditions), values)
    }
}
