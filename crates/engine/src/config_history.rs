//! Every configuration the engine applied, kept in the store (component
//! `engine_config_history`): the file's text, when, who applied it (`start`, `SIGHUP`,
//! or the API caller) and a unified diff against the configuration applied before it.

use store::rusqlite::{OptionalExtension, params};
use store::{Store, UnixMicros};

/// The store component holding the history.
pub const CONFIG_HISTORY_COMPONENT: &str = "engine_config_history";

static MIGRATIONS: &[store::Migration] = &[store::Migration {
    version: 1,
    description: "every configuration applied, with who applied it and its diff",
    sql: "CREATE TABLE config_versions (
              n          INTEGER PRIMARY KEY,  -- 1, 2, ... in the order applied
              applied_at INTEGER NOT NULL,     -- µs since the epoch
              applied_by TEXT NOT NULL,        -- 'start', 'SIGHUP' or the API caller
              config     TEXT NOT NULL,        -- the file's text as applied
              diff       TEXT NOT NULL         -- unified diff against the one before
          );",
}];

/// Creates the history's table if it is missing.
pub async fn migrate(store: &Store) -> store::Result<()> {
    store
        .migrate_component(CONFIG_HISTORY_COMPONENT, MIGRATIONS)
        .await
        .map(|_| ())
}

/// A unified diff of two configuration texts (three lines of context); empty when
/// they are the same.
pub fn unified_diff(before: &str, after: &str) -> String {
    if before == after {
        return String::new();
    }
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header("previous", "applied")
        .to_string()
}

/// Records `text` as applied by `by`, with its diff against the last one recorded, in
/// a synced write. With `only_if_changed` (at start), a text equal to the last one
/// recorded is not recorded again. Returns the new number, if one was recorded.
pub(crate) async fn record(
    store: &Store,
    by: &str,
    text: &str,
    only_if_changed: bool,
) -> store::Result<Option<i64>> {
    let (by, text) = (by.to_owned(), text.to_owned());
    store
        .write(move |conn| {
            let last: Option<String> = conn
                .query_row(
                    "SELECT config FROM config_versions ORDER BY n DESC LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if only_if_changed && last.as_deref() == Some(text.as_str()) {
                return Ok(None);
            }
            let diff = unified_diff(last.as_deref().unwrap_or(""), &text);
            conn.execute(
                "INSERT INTO config_versions (applied_at, applied_by, config, diff) VALUES (?1, ?2, ?3, ?4)",
                params![UnixMicros::now().0, by, text, diff],
            )?;
            Ok(Some(conn.last_insert_rowid()))
        })
        .await
}

fn version_of(row: &store::rusqlite::Row<'_>) -> store::rusqlite::Result<api::ConfigVersion> {
    Ok(api::ConfigVersion {
        n: row.get(0)?,
        applied_at: row.get(1)?,
        applied_by: row.get(2)?,
        config: row.get(3)?,
        diff: row.get(4)?,
    })
}

/// Every configuration applied, oldest first.
pub fn list(store: &Store) -> store::Result<Vec<api::ConfigVersion>> {
    store.read(|conn| {
        let mut stmt = conn.prepare(
            "SELECT n, applied_at, applied_by, config, diff FROM config_versions ORDER BY n",
        )?;
        let rows = stmt.query_map([], version_of)?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
}

/// The configuration applied as number `n`.
pub fn get(store: &Store, n: i64) -> store::Result<Option<api::ConfigVersion>> {
    store.read(|conn| {
        Ok(conn
            .query_row(
                "SELECT n, applied_at, applied_by, config, diff FROM config_versions WHERE n = ?1",
                [n],
                version_of,
            )
            .optional()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_names_the_changed_lines_and_is_empty_for_the_same_text() {
        let before = "[channels.a]\nsource = 1\n[channels.b]\nx = 1\n";
        let after = "[channels.a]\nsource = 1\n[channels.b]\nx = 2\n";
        let diff = unified_diff(before, after);
        assert!(diff.starts_with("--- previous\n+++ applied\n"), "{diff}");
        assert!(diff.contains("-x = 1\n+x = 2\n"), "{diff}");
        assert_eq!(unified_diff(before, before), "");
    }

    #[tokio::test]
    async fn each_recorded_configuration_keeps_its_author_and_its_diff_against_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        migrate(&store).await.unwrap();
        assert_eq!(
            record(&store, "start", "a = 1\n", true).await.unwrap(),
            Some(1)
        );
        // The same file at the next start is not recorded twice.
        assert_eq!(
            record(&store, "start", "a = 1\n", true).await.unwrap(),
            None
        );
        assert_eq!(
            record(&store, "SIGHUP", "a = 2\n", false).await.unwrap(),
            Some(2)
        );
        let all = list(&store).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].applied_by, "start");
        assert_eq!(
            all[0].diff,
            "--- previous\n+++ applied\n@@ -0,0 +1 @@\n+a = 1\n"
        );
        let second = get(&store, 2).unwrap().unwrap();
        assert_eq!(second.applied_by, "SIGHUP");
        assert_eq!(second.config, "a = 2\n");
        assert!(second.diff.contains("-a = 1\n+a = 2\n"), "{}", second.diff);
        assert!(get(&store, 3).unwrap().is_none());
    }
}
