//! Checking `corridor.db` for damage before trusting it.
//!
//! SQLite notices a damaged page only when a query reads it, so a file damaged in the
//! middle opens without a word and fails later, on the reads that reach the damage.
//! [`check_integrity`] reads every page now (`PRAGMA quick_check`, or
//! `integrity_check` and `foreign_key_check` for [`IntegrityCheck::Full`]).

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::database::Store;
use crate::error::{Error, Result};

/// How thoroughly [`check_integrity`] reads the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityCheck {
    /// `PRAGMA quick_check`: every page and record is read and its structure checked,
    /// but indexes are not compared with their tables. Roughly one read of the file.
    Quick,
    /// `PRAGMA integrity_check` (indexes against their tables too) and
    /// `PRAGMA foreign_key_check` (rows referring to rows that are gone).
    Full,
}

/// The problems found in the database of the data directory `dir`, in SQLite's words;
/// empty when it is sound. `Err` only when the file cannot be opened at all (it is
/// missing, or not readable). Safe while Corridor runs: it reads one snapshot.
pub fn check_integrity(dir: &Path, depth: IntegrityCheck) -> Result<Vec<String>> {
    let path = dir.join(Store::DATABASE_FILE);
    let open_error = |source| Error::Open {
        path: path.clone(),
        source,
    };
    // Read-write without CREATE: a missing file is an error, not a new empty database,
    // and a WAL left by a crash can be replayed before the pages are read.
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(open_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(open_error)?;
    let mut problems = Vec::new();
    if let Err(error) = run_checks(&conn, depth, &mut problems) {
        // A page so damaged that the check itself stops (a bad header, a broken schema).
        problems.push(format!("the check could not finish: {error}"));
    }
    Ok(problems)
}

fn run_checks(
    conn: &Connection,
    depth: IntegrityCheck,
    problems: &mut Vec<String>,
) -> rusqlite::Result<()> {
    let pragma = match depth {
        IntegrityCheck::Quick => "PRAGMA quick_check",
        IntegrityCheck::Full => "PRAGMA integrity_check",
    };
    let mut statement = conn.prepare(pragma)?;
    let mut rows = statement.query([])?;
    while let Some(row) = rows.next()? {
        let line: String = row.get(0)?;
        if line != "ok" {
            problems.push(line);
        }
    }
    if depth == IntegrityCheck::Full {
        let mut statement = conn.prepare("PRAGMA foreign_key_check")?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let table: String = row.get(0)?;
            let rowid: Option<i64> = row.get(1)?;
            let parent: String = row.get(2)?;
            let row_name = rowid.map_or("a row".to_owned(), |id| format!("row {id}"));
            problems.push(format!(
                "{table} {row_name} refers to a row of {parent} that does not exist"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_is_sound_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(check_integrity(dir.path(), IntegrityCheck::Full).is_err());
        drop(Store::open(dir.path()).unwrap());
        for depth in [IntegrityCheck::Quick, IntegrityCheck::Full] {
            assert_eq!(
                check_integrity(dir.path(), depth).unwrap(),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn a_row_whose_parent_is_gone_is_named_by_the_full_check() {
        let dir = tempfile::tempdir().unwrap();
        drop(Store::open(dir.path()).unwrap());
        let conn = Connection::open(dir.path().join(Store::DATABASE_FILE)).unwrap();
        // As a sqlite3 shell without foreign keys would let anyone do.
        conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
        conn.execute("INSERT INTO journal_raw (id, raw) VALUES (7, x'00')", [])
            .unwrap();
        drop(conn);
        assert!(
            check_integrity(dir.path(), IntegrityCheck::Quick)
                .unwrap()
                .is_empty()
        );
        let problems = check_integrity(dir.path(), IntegrityCheck::Full).unwrap();
        assert_eq!(
            problems,
            ["journal_raw row 7 refers to a row of journal that does not exist"]
        );
    }
}
