//! Saved message searches (component `saved_searches`): a user's named searches of the
//! message browser, kept as the query string the browser was given, one set per user.
//! A user sees, replaces and deletes only their own.

use rusqlite::{Connection, OptionalExtension, params};

use crate::{Migration, Result};

/// The component name in `component_schema`.
pub const COMPONENT: &str = "saved_searches";

/// The component's schema history.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "saved message searches",
    sql: r#"
        CREATE TABLE IF NOT EXISTS saved_search (
            user     TEXT    NOT NULL,
            name     TEXT    NOT NULL,
            query    TEXT    NOT NULL,
            saved_at INTEGER NOT NULL,
            PRIMARY KEY (user, name)
        ) WITHOUT ROWID;
    "#,
}];

/// One saved search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedSearch {
    pub name: String,
    /// The message browser's query string (`channel=lab&state=errored`).
    pub query: String,
    /// When it was saved (microseconds since the epoch).
    pub saved_at: i64,
}

fn exists(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'saved_search'",
        )?
        .query_row([], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Saves `query` as `user`'s search `name`, replacing one of that name; true when it
/// replaced one.
pub fn save_in(conn: &Connection, user: &str, name: &str, query: &str, at: i64) -> Result<bool> {
    let replaced = conn
        .prepare_cached("SELECT 1 FROM saved_search WHERE user = ?1 AND name = ?2")?
        .query_row(params![user, name], |_| Ok(()))
        .optional()?
        .is_some();
    conn.prepare_cached(
        "INSERT OR REPLACE INTO saved_search (user, name, query, saved_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![user, name, query, at])?;
    Ok(replaced)
}

/// `user`'s saved searches by name (none before the table exists).
pub fn list(conn: &Connection, user: &str) -> Result<Vec<SavedSearch>> {
    if !exists(conn)? {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare_cached(
        "SELECT name, query, saved_at FROM saved_search WHERE user = ?1 ORDER BY name",
    )?;
    let rows = statement
        .query_map([user], |r| {
            Ok(SavedSearch {
                name: r.get(0)?,
                query: r.get(1)?,
                saved_at: r.get(2)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Deletes `user`'s search `name`; false when they had none of that name.
pub fn delete_in(conn: &Connection, user: &str, name: &str) -> Result<bool> {
    if !exists(conn)? {
        return Ok(false);
    }
    Ok(conn
        .prepare_cached("DELETE FROM saved_search WHERE user = ?1 AND name = ?2")?
        .execute(params![user, name])?
        > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].sql).unwrap();
        conn
    }

    #[test]
    fn each_user_sees_and_deletes_only_their_own() {
        let conn = open();
        assert!(!save_in(&conn, "ana", "errors", "state=errored", 1).unwrap());
        assert!(!save_in(&conn, "ana", "doe", "patient_name=doe", 2).unwrap());
        assert!(!save_in(&conn, "bob", "errors", "channel=adt&state=errored", 3).unwrap());
        let ana = list(&conn, "ana").unwrap();
        assert_eq!(
            ana.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["doe", "errors"]
        );
        assert_eq!(ana[1].query, "state=errored");
        // The same name again replaces it.
        assert!(save_in(&conn, "ana", "errors", "state=dead_lettered", 4).unwrap());
        assert_eq!(list(&conn, "ana").unwrap()[1].query, "state=dead_lettered");
        // Bob's search of the same name is his.
        assert!(delete_in(&conn, "ana", "errors").unwrap());
        assert!(!delete_in(&conn, "ana", "errors").unwrap());
        assert_eq!(
            list(&conn, "bob").unwrap()[0].query,
            "channel=adt&state=errored"
        );
        assert_eq!(list(&conn, "ana").unwrap().len(), 1);
    }

    #[test]
    fn before_the_table_exists_there_is_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        assert!(list(&conn, "ana").unwrap().is_empty());
        assert!(!delete_in(&conn, "ana", "x").unwrap());
    }
}
