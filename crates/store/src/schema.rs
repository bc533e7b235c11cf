//! The database schema and its migrations.
//!
//! The schema version lives in SQLite's `PRAGMA user_version`. [`MIGRATIONS`] is an ordered
//! list of steps; opening a database runs, each in its own transaction, every step whose
//! version is above the file's `user_version`, and sets `user_version` in that same
//! transaction, so a crash mid-migration leaves the file at the last complete version.
//! A file whose version is above the newest step was written by a newer Corridor and is
//! refused rather than guessed at. `SCHEMA.md` beside `Cargo.toml` describes every table.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::{Error, Result};
use crate::journal::UnixMicros;

/// One step of a schema's history. Steps are never edited once released: a change is a
/// new step.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// The `user_version` the database has after this step.
    pub version: u32,
    /// What the step does, for error messages.
    pub description: &'static str,
    /// The SQL run inside the step's transaction.
    pub sql: &'static str,
}

/// The core schema's history, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "message journal",
        sql: r#"
        CREATE TABLE journal (
            id                  INTEGER PRIMARY KEY AUTOINCREMENT,
            channel             TEXT    NOT NULL,
            received_at         INTEGER NOT NULL,
            stored_at           INTEGER NOT NULL,
            peer                TEXT    NOT NULL,
            tls_identity        TEXT,
            sending_application TEXT    NOT NULL,
            sending_facility    TEXT    NOT NULL,
            message_type        TEXT    NOT NULL,
            control_id          TEXT    NOT NULL,
            version             TEXT    NOT NULL,
            state               TEXT    NOT NULL,
            state_reason        TEXT,
            state_changed_at    INTEGER NOT NULL,
            raw                 BLOB    NOT NULL
        );
        CREATE INDEX journal_duplicates
            ON journal (channel, control_id, sending_application, sending_facility, stored_at);
        CREATE INDEX journal_by_channel ON journal (channel);
        CREATE INDEX journal_by_state ON journal (state);
    "#,
    },
    Migration {
        version: 2,
        description: "schema versions of components",
        sql: r#"
        CREATE TABLE component_schema (
            component   TEXT    PRIMARY KEY,
            version     INTEGER NOT NULL,
            migrated_at INTEGER NOT NULL
        );
    "#,
    },
    Migration {
        version: 3,
        description: "message bytes apart from the journal row",
        // A state change rewrites the whole row: with the bytes in it, every update of a
        // 1.5 KB message rewrote 1.5 KB and half a page. The bytes are written once, in
        // their own table; the journal row keeps their length.
        sql: r#"
        CREATE TABLE journal_raw (
            id  INTEGER PRIMARY KEY REFERENCES journal (id),
            raw BLOB    NOT NULL
        );
        INSERT INTO journal_raw (id, raw) SELECT id, raw FROM journal;
        ALTER TABLE journal ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
        UPDATE journal SET size = length(raw);
        ALTER TABLE journal DROP COLUMN raw;
    "#,
    },
];

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: u32 = latest_version(MIGRATIONS);

const fn latest_version(steps: &[Migration]) -> u32 {
    match steps.last() {
        Some(step) => step.version,
        None => 0,
    }
}

/// Brings the database to the newest version in `steps`; returns the version it ended at.
pub(crate) fn migrate(conn: &mut Connection, path: &Path, steps: &[Migration]) -> Result<u32> {
    let supported = latest_version(steps);
    let found = user_version(conn)?;
    if found > supported {
        return Err(Error::SchemaTooNew {
            path: path.to_owned(),
            found,
            supported,
        });
    }
    for step in steps.iter().filter(|step| step.version > found) {
        let fail = |source| Error::Migration {
            version: step.version,
            description: step.description,
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        // Another process may have migrated while we waited for the write lock.
        if user_version(&tx)? >= step.version {
            continue;
        }
        tx.execute_batch(step.sql).map_err(fail)?;
        tx.pragma_update(None, "user_version", step.version)
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
        tracing::info!(
            version = step.version,
            step = step.description,
            "migrated database schema"
        );
    }
    user_version(conn)
}

/// Brings a component's tables to the newest version in `steps`, inside the caller's
/// transaction; returns the version it ended at.
pub(crate) fn migrate_component(
    conn: &Connection,
    path: &Path,
    component: &str,
    steps: &[Migration],
) -> Result<u32> {
    let supported = latest_version(steps);
    let found: u32 = conn
        .prepare_cached("SELECT version FROM component_schema WHERE component = ?1")?
        .query_row([component], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    if found > supported {
        return Err(Error::ComponentSchemaTooNew {
            path: path.to_owned(),
            component: component.to_owned(),
            found,
            supported,
        });
    }
    for step in steps.iter().filter(|step| step.version > found) {
        conn.execute_batch(step.sql)
            .map_err(|source| Error::Migration {
                version: step.version,
                description: step.description,
                source,
            })?;
    }
    if supported > found {
        conn.prepare_cached(
            "INSERT INTO component_schema (component, version, migrated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (component) DO UPDATE SET version = ?2, migrated_at = ?3",
        )?
        .execute(params![component, supported, UnixMicros::now().0])?;
        tracing::info!(component, version = supported, "migrated component schema");
    }
    Ok(supported.max(found))
}

/// The schema version recorded in the file (0 for a new, empty database).
pub(crate) fn user_version(conn: &Connection) -> Result<u32> {
    Ok(conn.pragma_query_value(None, "user_version", |row| row.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HISTORY: &[Migration] = &[
        Migration {
            version: 1,
            description: "notes",
            sql: "CREATE TABLE note (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
        },
        Migration {
            version: 2,
            description: "note author",
            sql: "ALTER TABLE note ADD COLUMN author TEXT NOT NULL DEFAULT 'unknown';",
        },
    ];

    fn open(dir: &tempfile::TempDir) -> Connection {
        Connection::open(dir.path().join("db")).unwrap()
    }

    #[test]
    fn older_database_is_migrated_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut conn = open(&dir);
        assert_eq!(migrate(&mut conn, &path, &HISTORY[..1]).unwrap(), 1);
        conn.execute("INSERT INTO note (body) VALUES ('kept')", [])
            .unwrap();
        drop(conn);

        let mut conn = open(&dir);
        assert_eq!(migrate(&mut conn, &path, HISTORY).unwrap(), 2);
        let (body, author): (String, String) = conn
            .query_row("SELECT body, author FROM note", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((body.as_str(), author.as_str()), ("kept", "unknown"));
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut conn = open(&dir);
        migrate(&mut conn, &path, HISTORY).unwrap();
        assert_eq!(migrate(&mut conn, &path, HISTORY).unwrap(), 2);
    }

    #[test]
    fn newer_database_is_refused_with_both_versions_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut conn = open(&dir);
        conn.pragma_update(None, "user_version", 7).unwrap();
        let err = migrate(&mut conn, &path, HISTORY).unwrap_err();
        assert!(matches!(
            err,
            Error::SchemaTooNew {
                found: 7,
                supported: 2,
                ..
            }
        ));
        let words = err.to_string();
        assert!(
            words.contains("version 7") && words.contains("version 2"),
            "{words}"
        );
    }

    #[test]
    fn failing_step_leaves_database_at_previous_version() {
        let broken: &[Migration] = &[
            HISTORY[0],
            Migration {
                version: 2,
                description: "broken step",
                sql: "ALTER TABLE note ADD COLUMN x TEXT; ALTER TABLE nowhere ADD COLUMN y TEXT;",
            },
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut conn = open(&dir);
        let err = migrate(&mut conn, &path, broken).unwrap_err();
        assert!(matches!(err, Error::Migration { version: 2, .. }), "{err}");
        assert_eq!(user_version(&conn).unwrap(), 1);
        // The half-applied step was rolled back: column x does not exist.
        assert!(conn.prepare("SELECT x FROM note").is_err());
    }

    #[test]
    fn version_one_store_is_migrated_on_open_and_keeps_its_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(crate::Store::DATABASE_FILE);
        {
            let mut conn = Connection::open(&path).unwrap();
            assert_eq!(migrate(&mut conn, &path, &MIGRATIONS[..1]).unwrap(), 1);
            conn.execute(
                "INSERT INTO journal (channel, received_at, stored_at, peer, \
                 sending_application, sending_facility, message_type, control_id, version, \
                 state, state_changed_at, raw) \
                 VALUES ('lab', 1, 2, 'p', 'LAB', 'N', 'ORU^R01', 'OLD1', '2.5', 'received', 2, \
                 x'4d5348')",
                [],
            )
            .unwrap();
        }

        let store = crate::Store::open(dir.path()).unwrap();
        let version = store.read(user_version).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let old = store.journal().get(crate::MessageId(1)).unwrap().unwrap();
        assert_eq!(old.entry.control_id, "OLD1");
        assert_eq!(old.raw, b"MSH");
        assert_eq!(old.entry.size, 3);
        let components: i64 = store
            .read(|conn| {
                Ok(conn.query_row("SELECT count(*) FROM component_schema", [], |r| r.get(0))?)
            })
            .unwrap();
        assert_eq!(components, 0);
    }

    #[test]
    fn release_history_is_strictly_increasing() {
        let versions: Vec<u32> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
        assert_eq!(versions.first(), Some(&1));
        assert_eq!(SCHEMA_VERSION, *versions.last().unwrap());
    }
}
