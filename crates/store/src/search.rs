//! The message search index (component `search`): a few fields of each message,
//! extracted once when its channel processes it (an archive channel's, when it is
//! stored), so the message browser finds a
//! message by patient, name or order number without reading message bodies.
//!
//! One row per (kind, value, message): `patient_id` (PID-3.1 of each repetition),
//! `patient_name` (PID-5.1 family and PID-5.2 given name, upper case), `order`
//! (ORC-2.1, ORC-3.1, OBR-2.1, OBR-3.1, OBR-20), `enterprise` (the golden record the
//! patient index linked the message to, when the channel runs it). Values are matched whole (names as a
//! prefix). Rows reference the journal, so retention deletes them with their message.
//!
//! [`search`] combines the journal's own columns (time range, channel, state, message
//! type, sender, control id), the index, a destination's queue entries (the
//! `delivery_queue` table: messages with an entry on a destination, or in given
//! states), and text inside the message (a scan of the
//! bytes of the rows the other conditions leave), newest first, paging by id.

use rusqlite::{Connection, OptionalExtension, ToSql, params_from_iter};

use crate::journal::{JournalEntry, entry_columns_sql, entry_from_row};
use crate::{Migration, Result};

/// The component name in `component_schema`.
pub const COMPONENT: &str = "search";

/// The component's schema history.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "message search index",
    sql: r#"
        CREATE TABLE IF NOT EXISTS message_search (
            kind       TEXT    NOT NULL,
            value      TEXT    NOT NULL,
            message_id INTEGER NOT NULL REFERENCES journal (id),
            PRIMARY KEY (kind, value, message_id)
        ) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS message_search_by_message ON message_search (message_id);
    "#,
}];

/// What a search key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// A patient identifier (PID-3.1).
    PatientId,
    /// A patient's family or given name, upper case.
    PatientName,
    /// A placer, filler or accession number (ORC-2/3, OBR-2/3, OBR-20).
    Order,
    /// The patient index's golden record the channel linked the message to (`E12`).
    Enterprise,
}

impl SearchKind {
    fn as_str(self) -> &'static str {
        match self {
            SearchKind::PatientId => "patient_id",
            SearchKind::PatientName => "patient_name",
            SearchKind::Order => "order",
            SearchKind::Enterprise => "enterprise",
        }
    }
}

/// The longest value indexed, in bytes (longer ones are cut at a character boundary).
const MAX_VALUE: usize = 128;

/// Records `keys` for message `id`, inside the caller's write. A key recorded before
/// (a message processed again) is kept once.
pub fn index_in(conn: &Connection, id: i64, keys: &[(SearchKind, String)]) -> Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT OR IGNORE INTO message_search (kind, value, message_id) VALUES (?1, ?2, ?3)",
    )?;
    for (kind, value) in keys {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let mut end = value.len().min(MAX_VALUE);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        let value = match kind {
            SearchKind::PatientName => value[..end].to_uppercase(),
            _ => value[..end].to_owned(),
        };
        insert.execute(rusqlite::params![kind.as_str(), value, id])?;
    }
    Ok(())
}

/// Whether the index's table exists (the engine creates it at start).
pub fn exists(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'message_search'",
        )?
        .query_row([], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Whether the delivery queue's table exists (the engine creates it at start).
fn queue_exists(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'delivery_queue'",
        )?
        .query_row([], |_| Ok(()))
        .optional()?
        .is_some())
}

/// A message search; every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// Received at or after (microseconds since the epoch).
    pub since: Option<i64>,
    /// Received before.
    pub until: Option<i64>,
    pub channel: Option<String>,
    pub state: Option<String>,
    /// `ORU`, or `ORU^R01` (the message type as stored, trigger included).
    pub message_type: Option<String>,
    /// MSH-3, the sending application.
    pub sender: Option<String>,
    /// MSH-10.
    pub control_id: Option<String>,
    pub patient_id: Option<String>,
    /// A family or given name, or its beginning (case does not matter).
    pub patient_name: Option<String>,
    /// An order or accession number.
    pub order: Option<String>,
    /// Text anywhere in the message bytes.
    pub text: Option<String>,
    /// Only messages with an entry on this destination's queue (a destination's name
    /// within the channel; with `destination_states`, an entry in one of them).
    pub destination: Option<String>,
    /// Only messages with a destination entry (of `destination`, when given) in one of
    /// these queue states (`queued`, `sending`, `delivered`, `errored`,
    /// `dead_lettered`, `filtered`). Empty: no condition.
    pub destination_states: Vec<String>,
    /// Only ids below this one: the next page.
    pub before_id: Option<i64>,
}

/// Up to `limit` journal entries matching `query`, newest first. Without the index's
/// table, a query naming an indexed field finds nothing.
pub fn search(conn: &Connection, query: &SearchQuery, limit: usize) -> Result<Vec<JournalEntry>> {
    let mut conditions: Vec<String> = Vec::new();
    let mut values: Vec<Box<dyn ToSql>> = Vec::new();
    // Binds a value; its placeholder.
    fn bind(values: &mut Vec<Box<dyn ToSql>>, value: Box<dyn ToSql>) -> String {
        values.push(value);
        format!("?{}", values.len())
    }
    if let Some(v) = query.since {
        let p = bind(&mut values, Box::new(v));
        conditions.push(format!("j.received_at >= {p}"));
    }
    if let Some(v) = query.until {
        let p = bind(&mut values, Box::new(v));
        conditions.push(format!("j.received_at < {p}"));
    }
    for (column, value) in [
        ("channel", &query.channel),
        ("state", &query.state),
        ("sending_application", &query.sender),
        ("control_id", &query.control_id),
    ] {
        if let Some(v) = value {
            let p = bind(&mut values, Box::new(v.clone()));
            conditions.push(format!("j.{column} = {p}"));
        }
    }
    if let Some(v) = &query.message_type {
        // `ORU` matches every ORU; `ORU^R01` matches it and `ORU^R01^ORU_R01`.
        let exact = bind(&mut values, Box::new(v.clone()));
        let prefix = bind(&mut values, Box::new(format!("{}^%", like_escape(v))));
        conditions.push(format!(
            "(j.message_type = {exact} OR j.message_type LIKE {prefix} ESCAPE '\\')"
        ));
    }
    if let Some(before) = query.before_id {
        let p = bind(&mut values, Box::new(before));
        conditions.push(format!("j.id < {p}"));
    }
    let indexed = [
        (SearchKind::PatientId, &query.patient_id, false),
        (SearchKind::PatientName, &query.patient_name, true),
        (SearchKind::Order, &query.order, false),
    ];
    if indexed.iter().any(|(_, v, _)| v.is_some()) && !exists(conn)? {
        return Ok(Vec::new());
    }
    for (kind, value, prefix) in indexed {
        let Some(value) = value else { continue };
        let kind_at = bind(&mut values, Box::new(kind.as_str()));
        if prefix {
            let value_at = bind(
                &mut values,
                Box::new(format!("{}%", like_escape(&value.trim().to_uppercase()))),
            );
            conditions.push(format!(
                "j.id IN (SELECT message_id FROM message_search WHERE kind = {kind_at} \
                 AND value LIKE {value_at} ESCAPE '\\')"
            ));
        } else {
            let value_at = bind(&mut values, Box::new(value.trim().to_owned()));
            conditions.push(format!(
                "j.id IN (SELECT message_id FROM message_search WHERE kind = {kind_at} \
                 AND value = {value_at})"
            ));
        }
    }
    if query.destination.is_some() || !query.destination_states.is_empty() {
        if !queue_exists(conn)? {
            return Ok(Vec::new());
        }
        let mut inner: Vec<String> = Vec::new();
        if let Some(channel) = &query.channel {
            let p = bind(&mut values, Box::new(channel.clone()));
            inner.push(format!("q.channel = {p}"));
        }
        if let Some(destination) = &query.destination {
            let p = bind(&mut values, Box::new(destination.clone()));
            inner.push(format!("q.destination = {p}"));
        }
        if !query.destination_states.is_empty() {
            let placeholders: Vec<String> = query
                .destination_states
                .iter()
                .map(|s| bind(&mut values, Box::new(s.clone())))
                .collect();
            inner.push(format!("q.state IN ({})", placeholders.join(", ")));
        }
        conditions.push(format!(
            "j.id IN (SELECT q.message_id FROM delivery_queue q WHERE {})",
            inner.join(" AND ")
        ));
    }
    let mut join = String::new();
    if let Some(text) = &query.text {
        join = " JOIN journal_raw r ON r.id = j.id".to_owned();
        let p = bind(&mut values, Box::new(text.clone()));
        conditions.push(format!("instr(r.raw, CAST({p} AS BLOB)) > 0"));
    }
    let wher = if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    };
    let sql = format!(
        "SELECT {} FROM journal j{join}{wher} ORDER BY j.id DESC LIMIT {}",
        entry_columns_sql("j."),
        i64::try_from(limit).unwrap_or(i64::MAX)
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let mut rows = statement.query(params_from_iter(values.iter()))?;
    let mut entries = Vec::new();
    while let Some(row) = rows.next()? {
        entries.push(entry_from_row(row)?);
    }
    Ok(entries)
}

fn like_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
