//! The alert history in the store: one row per episode (fired, then resolved), with
//! who acknowledged it. Component `alerts`, its own migrations.
//!
//! `alert_event`:
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `id` | INTEGER PK | The episode. |
//! | `alert` | TEXT | The alert's `name`. |
//! | `condition` | TEXT | Its `when`. |
//! | `detail` | TEXT | What was seen when it fired, in words (no patient data). |
//! | `fired_at` | INTEGER | When it fired (µs). |
//! | `resolved_at` | INTEGER NULL | When it resolved (µs); NULL while it fires. |
//! | `acked_at` | INTEGER NULL | When someone acknowledged it (µs). |
//! | `acked_by` | TEXT NULL | Who. |
//!
//! Index `alert_event_open (alert) WHERE resolved_at IS NULL`: the firing episodes,
//! read at start so a restart neither fires again nor forgets to resolve.

use serde::Serialize;
use store::rusqlite::{self, Connection, OptionalExtension, params};
use store::{Migration, UnixMicros};

/// The component name of the alert tables.
pub const COMPONENT: &str = "alerts";

/// The alert tables' migrations.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "alert episodes: fired, resolved, acknowledged",
    sql: r#"
    CREATE TABLE alert_event (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        alert       TEXT NOT NULL,
        condition   TEXT NOT NULL,
        detail      TEXT NOT NULL,
        fired_at    INTEGER NOT NULL,
        resolved_at INTEGER,
        acked_at    INTEGER,
        acked_by    TEXT
    );
    CREATE INDEX alert_event_open ON alert_event (alert) WHERE resolved_at IS NULL;
    "#,
}];

/// One episode of an alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertEvent {
    pub id: i64,
    pub alert: String,
    pub condition: String,
    pub detail: String,
    pub fired_at: i64,
    pub resolved_at: Option<i64>,
    pub acked_at: Option<i64>,
    pub acked_by: Option<String>,
}

impl AlertEvent {
    /// As the API shows it: times in RFC 3339.
    pub fn json(&self) -> serde_json::Value {
        let time = |t: Option<i64>| t.map(datetime::rfc3339::format_micros);
        serde_json::json!({
            "id": self.id,
            "alert": self.alert,
            "condition": self.condition,
            "detail": self.detail,
            "fired_at": datetime::rfc3339::format_micros(self.fired_at),
            "resolved_at": time(self.resolved_at),
            "acknowledged_at": time(self.acked_at),
            "acknowledged_by": self.acked_by,
        })
    }
}

fn event(row: &rusqlite::Row<'_>) -> rusqlite::Result<AlertEvent> {
    Ok(AlertEvent {
        id: row.get(0)?,
        alert: row.get(1)?,
        condition: row.get(2)?,
        detail: row.get(3)?,
        fired_at: row.get(4)?,
        resolved_at: row.get(5)?,
        acked_at: row.get(6)?,
        acked_by: row.get(7)?,
    })
}

const COLUMNS: &str = "id, alert, condition, detail, fired_at, resolved_at, acked_at, acked_by";

/// Records that `alert` fired; returns the episode's id.
pub fn record_fired(
    conn: &Connection,
    alert: &str,
    condition: &str,
    detail: &str,
    at: UnixMicros,
) -> store::Result<i64> {
    conn.execute(
        "INSERT INTO alert_event (alert, condition, detail, fired_at) VALUES (?1, ?2, ?3, ?4)",
        params![alert, condition, detail, at.0],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Records that episode `id` resolved.
pub fn record_resolved(conn: &Connection, id: i64, at: UnixMicros) -> store::Result<()> {
    conn.execute(
        "UPDATE alert_event SET resolved_at = ?2 WHERE id = ?1 AND resolved_at IS NULL",
        params![id, at.0],
    )?;
    Ok(())
}

/// The episodes still firing, by alert.
pub fn open_events(conn: &Connection) -> store::Result<Vec<AlertEvent>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM alert_event WHERE resolved_at IS NULL ORDER BY id"
    ))?;
    let rows = statement.query_map([], event)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Episodes newest first, `limit` of them, with ids below `before` when given, of
/// `alert` when given.
pub fn list(
    conn: &Connection,
    alert: Option<&str>,
    before: Option<i64>,
    limit: usize,
) -> store::Result<Vec<AlertEvent>> {
    let mut statement = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM alert_event
          WHERE (?1 IS NULL OR alert = ?1) AND (?2 IS NULL OR id < ?2)
          ORDER BY id DESC LIMIT ?3"
    ))?;
    let rows = statement.query_map(
        params![alert, before, i64::try_from(limit).unwrap_or(i64::MAX)],
        event,
    )?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Marks the firing episode of `alert` acknowledged by `by`; returns it, or None when
/// the alert is not firing. An episode acknowledged before keeps its first
/// acknowledgement.
pub fn acknowledge(
    conn: &Connection,
    alert: &str,
    by: &str,
    at: UnixMicros,
) -> store::Result<Option<AlertEvent>> {
    conn.execute(
        "UPDATE alert_event SET acked_at = ?3, acked_by = ?2
          WHERE alert = ?1 AND resolved_at IS NULL AND acked_at IS NULL",
        params![alert, by, at.0],
    )?;
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM alert_event WHERE alert = ?1 AND resolved_at IS NULL
                  ORDER BY id DESC LIMIT 1"
            ),
            params![alert],
            event,
        )
        .optional()?)
}
