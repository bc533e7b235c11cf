//! Each channel's volume and latency per minute (component `minutes`), for the
//! dashboard's charts over hours and days.
//!
//! One small row per channel per minute that had messages: how many were stored and
//! processed, and the p50 and p99 (bucket bounds, microseconds) of receipt to stored
//! and to processed. The engine's background task writes the minute just ended from
//! the store's in-memory observations ([`crate::Store::last_minute`]) once a minute,
//! never per message, and drops rows older than [`KEEP_MINUTES`].

use rusqlite::{Connection, params};

use crate::counts::HopLatencies;
use crate::{Migration, Result, Store};

/// The component name in `component_schema`.
pub const COMPONENT: &str = "minutes";

/// How long rows are kept: 35 days of minutes.
pub const KEEP_MINUTES: u64 = 35 * 24 * 60;

/// The component's schema history.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "volume and latency per channel per minute",
    sql: r#"
        CREATE TABLE IF NOT EXISTS channel_minutes (
            channel          TEXT    NOT NULL,
            minute           INTEGER NOT NULL,
            stored           INTEGER NOT NULL,
            processed        INTEGER NOT NULL,
            stored_p50_us    INTEGER,
            stored_p99_us    INTEGER,
            processed_p50_us INTEGER,
            processed_p99_us INTEGER,
            PRIMARY KEY (minute, channel)
        ) WITHOUT ROWID;
    "#,
}];

/// A bucket's bound as stored: `u64::MAX` (above the last bound) as the largest i64.
fn bound(micros: Option<u64>) -> Option<i64> {
    micros.map(|us| i64::try_from(us).unwrap_or(i64::MAX))
}

/// Writes `minute`'s rows (minutes since the Unix epoch), replacing any written
/// before for that minute, and drops rows older than [`KEEP_MINUTES`].
pub fn write_in(conn: &Connection, minute: u64, rows: &[(String, HopLatencies)]) -> Result<()> {
    let at = i64::try_from(minute).unwrap_or(i64::MAX);
    let mut insert = conn.prepare_cached(
        "INSERT OR REPLACE INTO channel_minutes (channel, minute, stored, processed, \
         stored_p50_us, stored_p99_us, processed_p50_us, processed_p99_us) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for (channel, h) in rows {
        insert.execute(params![
            channel,
            at,
            i64::try_from(h.stored.count).unwrap_or(i64::MAX),
            i64::try_from(h.processed.count).unwrap_or(i64::MAX),
            bound(h.stored.quantile_micros(0.5)),
            bound(h.stored.quantile_micros(0.99)),
            bound(h.processed.quantile_micros(0.5)),
            bound(h.processed.quantile_micros(0.99)),
        ])?;
    }
    conn.prepare_cached("DELETE FROM channel_minutes WHERE minute < ?1")?
        .execute([at.saturating_sub(KEEP_MINUTES as i64)])?;
    Ok(())
}

/// One point of a chart: a span of `step` minutes from `start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Point {
    /// Minutes since the Unix epoch at the span's start.
    pub start: u64,
    pub stored: u64,
    pub processed: u64,
    /// The highest minute's p99 of receipt to processed in the span, microseconds.
    pub processed_p99_us: Option<u64>,
}

/// `channel`'s points from minute `from` (minutes since the Unix epoch) in spans of
/// `step` minutes, oldest first: every span up to `to`, zeros where nothing was written
/// (also when the history was never written: the component's table is missing).
pub fn read(store: &Store, channel: &str, from: u64, to: u64, step: u64) -> Result<Vec<Point>> {
    let step = step.max(1);
    let spans = to.saturating_sub(from) / step;
    let mut points: Vec<Point> = (0..spans)
        .map(|i| Point {
            start: from + i * step,
            ..Point::default()
        })
        .collect();
    let exists = store.read(|conn| {
        Ok(conn
            .prepare_cached(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'channel_minutes'",
            )?
            .exists([])?)
    })?;
    if !exists {
        return Ok(points);
    }
    let rows: Vec<(i64, i64, i64, Option<i64>)> = store.read(|conn| {
        let mut statement = conn.prepare_cached(
            "SELECT (minute - ?2) / ?4, sum(stored), sum(processed), max(processed_p99_us) \
             FROM channel_minutes WHERE channel = ?1 AND minute >= ?2 AND minute < ?3 \
             GROUP BY (minute - ?2) / ?4",
        )?;
        let rows = statement
            .query_map(
                params![
                    channel,
                    i64::try_from(from).unwrap_or(i64::MAX),
                    i64::try_from(from + spans * step).unwrap_or(i64::MAX),
                    i64::try_from(step).unwrap_or(i64::MAX),
                ],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    })?;
    for (span, stored, processed, p99) in rows {
        if let Some(point) = usize::try_from(span).ok().and_then(|i| points.get_mut(i)) {
            point.stored = u64::try_from(stored).unwrap_or(0);
            point.processed = u64::try_from(processed).unwrap_or(0);
            point.processed_p99_us = p99.map(|v| match v {
                i64::MAX => u64::MAX,
                v => u64::try_from(v).unwrap_or(0),
            });
        }
    }
    Ok(points)
}
