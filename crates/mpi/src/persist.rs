//! The index in Corridor's store (the `mpi` component's tables in the SQLite database).
//!
//! The index is durable through its event log: every decision ([`MpiEvent`]: who or
//! what, when, why, with the scores) is one row of `mpi_events`, and at start the
//! in-memory index is rebuilt by replaying them ([`load_index`]), without re-running
//! the matcher. Beside the log:
//!
//! | table | what |
//! | --- | --- |
//! | `mpi_events` | `seq` (primary key, the event's position), `at_ms`, `actor` (`matcher`, `message:<control id>` or `person:<user>`), `kind` (the change's name), `why`, `change` (the change as JSON, with the decision's per-field weights) |
//! | `mpi_event_enterprises` | `(enterprise, seq)`: which events touched which enterprise patient, for its history |
//! | `mpi_model` | one row (`id = 1`): the match model in use, as JSON, so a restart scores as before |
//!
//! Every write has an `*_in(conn, ..)` form that runs inside a write already open
//! (the engine writes a message's events in the transaction that records it processed).

use crate::{Actor, Change, MatchModel, MatcherConfig, Mpi, MpiError, MpiEvent};
use store::Migration;
use store::rusqlite::{Connection, OptionalExtension, params};

/// The component name in `component_schema`.
pub const COMPONENT: &str = "mpi";

/// The `mpi` component's schema history, oldest first.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "patient index event log and model",
    sql: r#"
    CREATE TABLE mpi_events (
        seq     INTEGER PRIMARY KEY,
        at_ms   INTEGER NOT NULL,
        actor   TEXT    NOT NULL,
        kind    TEXT    NOT NULL,
        why     TEXT    NOT NULL,
        change  TEXT    NOT NULL
    );
    CREATE TABLE mpi_event_enterprises (
        enterprise INTEGER NOT NULL,
        seq        INTEGER NOT NULL,
        PRIMARY KEY (enterprise, seq)
    ) WITHOUT ROWID;
    CREATE TABLE mpi_model (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        model  TEXT    NOT NULL
    );
    "#,
}];

fn sql_error(e: impl std::fmt::Display) -> store::Error {
    store::Error::Refused(format!("patient index: {e}"))
}

/// The actor as stored in the `actor` column.
pub fn actor_text(actor: &Actor) -> String {
    match actor {
        Actor::Matcher => "matcher".to_string(),
        Actor::Message { control_id } => format!("message:{control_id}"),
        Actor::Person { user } => format!("person:{user}"),
    }
}

fn actor_from_text(text: &str) -> Actor {
    if let Some(control_id) = text.strip_prefix("message:") {
        Actor::Message {
            control_id: control_id.to_string(),
        }
    } else if let Some(user) = text.strip_prefix("person:") {
        Actor::Person {
            user: user.to_string(),
        }
    } else {
        Actor::Matcher
    }
}

/// The change's name, as stored in the `kind` column.
pub fn change_kind(change: &Change) -> &'static str {
    match change {
        Change::RecordAdded { .. } => "record_added",
        Change::RecordUpdated { .. } => "record_updated",
        Change::EnterprisesMerged { .. } => "merged",
        Change::Unmerged { .. } => "unmerged",
        Change::RecordLinked { .. } => "linked",
        Change::RecordUnlinked { .. } => "unlinked",
        Change::ReviewAccepted { .. } => "review_accepted",
        Change::ReviewRejected { .. } => "review_rejected",
    }
}

/// Appends `events` inside a write already open (e.g. the engine's processing
/// transaction). Events already stored (same `seq`) are refused by the primary key.
pub fn append_events_in(conn: &Connection, events: &[MpiEvent]) -> store::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut insert = conn.prepare_cached(
        "INSERT INTO mpi_events (seq, at_ms, actor, kind, why, change) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut touch = conn.prepare_cached(
        "INSERT OR IGNORE INTO mpi_event_enterprises (enterprise, seq) VALUES (?1, ?2)",
    )?;
    for event in events {
        let change = serde_json::to_string(&compact(&event.change)).map_err(sql_error)?;
        insert.execute(params![
            event.seq as i64,
            event.at_unix_ms as i64,
            actor_text(&event.actor),
            change_kind(&event.change),
            event.why,
            change
        ])?;
        for enterprise in event.enterprises() {
            touch.execute(params![enterprise.0 as i64, event.seq as i64])?;
        }
    }
    Ok(())
}

/// What is stored of a change: a decision that did not open a review keeps the
/// per-field weights of its best candidate only (the others keep their scores), which
/// makes the log about half as large; a review keeps everything its reviewer sees.
fn compact(change: &Change) -> std::borrow::Cow<'_, Change> {
    let trim = |d: &crate::Decision| {
        d.outcome != crate::Outcome::PossibleMatch
            && d.candidates.iter().skip(1).any(|c| !c.fields.is_empty())
    };
    let trimmed = |d: &crate::Decision| {
        let mut d = d.clone();
        for c in d.candidates.iter_mut().skip(1) {
            c.fields.clear();
        }
        d
    };
    match change {
        Change::RecordAdded { record, decision } if trim(decision) => {
            std::borrow::Cow::Owned(Change::RecordAdded {
                record: record.clone(),
                decision: trimmed(decision),
            })
        }
        Change::RecordUpdated {
            record,
            enterprise,
            decision: Some(decision),
        } if trim(decision) => std::borrow::Cow::Owned(Change::RecordUpdated {
            record: record.clone(),
            enterprise: *enterprise,
            decision: Some(trimmed(decision)),
        }),
        other => std::borrow::Cow::Borrowed(other),
    }
}

/// Stores the model in use, replacing any before it.
pub fn save_model_in(conn: &Connection, model: &MatchModel) -> store::Result<()> {
    let json = serde_json::to_string(model).map_err(sql_error)?;
    conn.execute(
        "INSERT INTO mpi_model (id, model) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET model = excluded.model",
        params![json],
    )?;
    Ok(())
}

/// The stored model, if one was saved.
pub fn load_model(conn: &Connection) -> store::Result<Option<MatchModel>> {
    let json: Option<String> = conn
        .query_row("SELECT model FROM mpi_model WHERE id = 1", [], |r| r.get(0))
        .optional()?;
    json.map(|j| serde_json::from_str(&j).map_err(sql_error))
        .transpose()
}

fn event_from_row(
    seq: i64,
    at_ms: i64,
    actor: &str,
    why: String,
    change: &str,
) -> store::Result<MpiEvent> {
    let change: Change = serde_json::from_str(change)
        .map_err(|e| sql_error(format!("event {seq} does not read back: {e}")))?;
    Ok(MpiEvent {
        seq: seq as u64,
        at_unix_ms: at_ms as u64,
        actor: actor_from_text(actor),
        why,
        change,
    })
}

/// The events that touched `enterprise`, oldest first (its history).
pub fn history_of(conn: &Connection, enterprise: u64) -> store::Result<Vec<MpiEvent>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.seq, e.at_ms, e.actor, e.why, e.change
         FROM mpi_event_enterprises x JOIN mpi_events e ON e.seq = x.seq
         WHERE x.enterprise = ?1 ORDER BY e.seq",
    )?;
    let mut rows = stmt.query(params![enterprise as i64])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        let actor: String = row.get(2)?;
        let change: String = row.get(4)?;
        out.push(event_from_row(
            row.get(0)?,
            row.get(1)?,
            &actor,
            row.get(3)?,
            &change,
        )?);
    }
    Ok(out)
}

/// How many events the log holds.
pub fn event_count(conn: &Connection) -> store::Result<u64> {
    let n: i64 = conn.query_row("SELECT count(*) FROM mpi_events", [], |r| r.get(0))?;
    Ok(n as u64)
}

/// Rebuilds the index as the store holds it at one instant, without taking the index's
/// lock, for a reader beside the process that owns the index (`corridor mpi export`
/// against a running engine). The model and the whole log are read in one read
/// transaction, so a write committed meanwhile is wholly in or wholly out. `None` when
/// the database has no patient index.
pub fn load_snapshot(conn: &Connection, config: MatcherConfig) -> store::Result<Option<Mpi>> {
    let snapshot = conn.unchecked_transaction()?;
    let version: Option<u32> = snapshot
        .query_row(
            "SELECT version FROM component_schema WHERE component = ?1",
            params![COMPONENT],
            |r| r.get(0),
        )
        .optional()?;
    let supported = MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0);
    let index = match version {
        None => None,
        Some(found) if found > supported => {
            return Err(sql_error(format!(
                "the patient index's tables are at version {found}, newer than this corridor knows ({supported}): upgrade corridor"
            )));
        }
        Some(_) => Some(load_index(&snapshot, config, MatchModel::default())?),
    };
    // Read-only: nothing to keep.
    snapshot.rollback()?;
    Ok(index)
}

/// Rebuilds the index from the stored log (events streamed in order, never all in
/// memory at once), with the stored model when there is one, else `model`.
pub fn load_index(
    conn: &Connection,
    config: MatcherConfig,
    model: MatchModel,
) -> store::Result<Mpi> {
    let model = load_model(conn)?.unwrap_or(model);
    let mut stmt =
        conn.prepare("SELECT seq, at_ms, actor, why, change FROM mpi_events ORDER BY seq")?;
    let mut rows = stmt.query([])?;
    let mut failure: Option<store::Error> = None;
    let events = std::iter::from_fn(|| {
        if failure.is_some() {
            return None;
        }
        let next = (|| -> store::Result<Option<MpiEvent>> {
            let Some(row) = rows.next()? else {
                return Ok(None);
            };
            let actor: String = row.get(2)?;
            let change: String = row.get(4)?;
            Ok(Some(event_from_row(
                row.get(0)?,
                row.get(1)?,
                &actor,
                row.get(3)?,
                &change,
            )?))
        })();
        match next {
            Ok(event) => event,
            Err(e) => {
                failure = Some(e);
                None
            }
        }
    });
    let replayed = Mpi::replay(config, model, events);
    if let Some(e) = failure {
        return Err(e);
    }
    replayed.map_err(|e: MpiError| sql_error(e))
}
