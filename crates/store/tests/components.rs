//! Components (MPI, queues, FHIR repository) keep their own tables, versioned apart.

use store::{Error, Migration, Store};

const NOTES_V1: &[Migration] = &[Migration {
    version: 1,
    description: "notes",
    sql: "CREATE TABLE mpi_note (id INTEGER PRIMARY KEY, body TEXT NOT NULL);",
}];

const NOTES_V2: &[Migration] = &[
    NOTES_V1[0],
    Migration {
        version: 2,
        description: "note author",
        sql: "ALTER TABLE mpi_note ADD COLUMN author TEXT NOT NULL DEFAULT 'unknown';",
    },
];

fn recorded_version(store: &Store, component: &str) -> Option<u32> {
    let component = component.to_owned();
    store
        .read(move |conn| {
            let mut statement =
                conn.prepare("SELECT version FROM component_schema WHERE component = ?1")?;
            let mut rows = statement.query([component])?;
            Ok(match rows.next()? {
                Some(row) => Some(row.get(0)?),
                None => None,
            })
        })
        .unwrap()
}

#[test]
fn component_tables_are_created_once_and_upgraded_later() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.migrate_component("mpi", NOTES_V1).wait().unwrap(), 1);
    assert_eq!(store.migrate_component("mpi", NOTES_V1).wait().unwrap(), 1);
    store
        .write_blocking(|conn| Ok(conn.execute("INSERT INTO mpi_note (body) VALUES ('kept')", [])?))
        .unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.migrate_component("mpi", NOTES_V2).wait().unwrap(), 2);
    assert_eq!(recorded_version(&store, "mpi"), Some(2));
    let author: String = store
        .read(|conn| Ok(conn.query_row("SELECT author FROM mpi_note", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(author, "unknown");
    assert_eq!(recorded_version(&store, "queues"), None);
}

#[test]
fn a_newer_component_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store.migrate_component("mpi", NOTES_V2).wait().unwrap();
    let err = store.migrate_component("mpi", NOTES_V1).wait().unwrap_err();
    assert!(
        matches!(&err, Error::ComponentSchemaTooNew { component, found: 2, supported: 1, .. }
            if component == "mpi"),
        "{err}"
    );
    assert!(
        err.to_string().contains("mpi tables at schema version 2"),
        "{err}"
    );
}

#[test]
fn a_failing_step_applies_none_of_the_pending_steps() {
    const BROKEN: &[Migration] = &[
        NOTES_V1[0],
        Migration {
            version: 2,
            description: "broken step",
            sql: "ALTER TABLE nowhere ADD COLUMN x TEXT;",
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let err = store.migrate_component("mpi", BROKEN).wait().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Migration {
                version: 2,
                description: "broken step",
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(recorded_version(&store, "mpi"), None);
    let tables: i64 = store
        .read(|conn| {
            Ok(conn.query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'mpi_note'",
                [],
                |r| r.get(0),
            )?)
        })
        .unwrap();
    assert_eq!(
        tables, 0,
        "step 1 must be rolled back with the failed step 2"
    );
}
