//! The database source against real databases: PostgreSQL and MariaDB on loopback
//! (started by `scripts/database-services` when they do not answer; tables made with
//! `psql` and `mysql`) and SQLite files. Rows inserted while the source runs become
//! messages in order, their values escaped; the position is stored with each message, so
//! a restarted source goes on after the last stored row; `mark_processed` marks every
//! stored row; a template placeholder naming no column rejects that row's message.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use common::wait_for;
use engine::ChannelMetrics;
use engine::sources::database::{DatabaseSource, DatabaseSourceConfig};
use store::Store;

const MINUTE: Duration = Duration::from_secs(60);

/// A name no other test (or run) uses.
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// One database under test: its URL, how to run SQL in it, and a string literal whose
/// value is `DOE|J^X~Y&Z\W`, a carriage return, then `OBX|1`.
struct Database {
    url: String,
    /// Runs SQL; for a `select` of one value, returns it.
    run: Box<dyn Fn(&str) -> String>,
    nasty: &'static str,
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the database client runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn postgres() -> Database {
    test_support::database_services();
    let name = unique("corridor_src");
    let psql = |db: &str, sql: &str| {
        run(Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-tA",
                "-d",
                db,
                "-c",
            ])
            .arg(sql))
    };
    psql("postgres", &format!("create database {name}"));
    let db = name.clone();
    Database {
        url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
        run: Box::new(move |sql| psql(&db, sql)),
        nasty: r"E'DOE|J^X~Y&Z\\W\rOBX|1'",
    }
}

fn mariadb() -> Database {
    test_support::database_services();
    let name = unique("corridor_src");
    let mysql = |db: Option<&str>, sql: &str| {
        let mut command = Command::new("mysql");
        command.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root", "-N", "-B"]);
        if let Some(db) = db {
            command.args(["-D", db]);
        }
        run(command.args(["-e", sql]))
    };
    mysql(None, &format!("create database {name}"));
    let db = name.clone();
    Database {
        url: format!("mysql://root@127.0.0.1:3306/{name}"),
        run: Box::new(move |sql| mysql(Some(&db), sql)),
        nasty: r"'DOE|J^X~Y&Z\\W\rOBX|1'",
    }
}

fn sqlite(dir: &Path) -> Database {
    let path = dir.join("orders.db");
    store::rusqlite::Connection::open(&path).unwrap();
    Database {
        url: format!("sqlite://{}", path.display()),
        run: Box::new(move |sql| {
            let conn = store::rusqlite::Connection::open(&path).unwrap();
            conn.busy_timeout(Duration::from_secs(10)).unwrap();
            if sql.starts_with("select") {
                conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                    .unwrap()
                    .to_string()
            } else {
                conn.execute_batch(sql).unwrap();
                String::new()
            }
        }),
        nasty: r"'DOE|J^X~Y&Z\W' || char(13) || 'OBX|1'",
    }
}

fn config(url: &str, extra: &str) -> DatabaseSourceConfig {
    toml::from_str(&format!(
        r#"url = "{url}"
query = "select id, mrn, name from orders where id > $1 order by id limit 3"
interval = "50ms"
template = """
MSH|^~\\&|DB|NORTH|||||ORM^O01||P|2.5
PID|1||{{mrn}}^^^NORTH^MR||{{name}}
"""
{extra}"#
    ))
    .unwrap()
}

/// (control id, state, raw) of every journal row, oldest first.
fn journal(store: &Store) -> Vec<(String, String, String)> {
    common::rows(
        store,
        "SELECT control_id, state, CAST(raw AS TEXT) FROM journal JOIN journal_raw USING (id) ORDER BY id",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

fn start(store: &Store, config: &DatabaseSourceConfig) -> DatabaseSource {
    let intake = common::intake(
        "orders",
        store,
        Default::default(),
        Arc::new(ChannelMetrics::default()),
    );
    DatabaseSource::start(config, Path::new("/"), intake).unwrap()
}

fn insert(db: &Database, ids: std::ops::RangeInclusive<u32>) {
    for id in ids {
        (db.run)(&format!(
            "insert into orders (id, mrn, name) values ({id}, 'M{id}', 'DOE^PAT{id}')"
        ));
    }
}

/// Rows become messages in order with their values escaped; a restarted source goes on
/// after the last stored row; every stored row is marked.
async fn rows_become_messages_once(db: Database) {
    (db.run)(
        "create table orders (id bigint primary key, mrn varchar(20), name varchar(200), done int not null default 0)",
    );
    (db.run)(&format!(
        "insert into orders (id, mrn, name) values (1, 'M1', {})",
        db.nasty
    ));
    insert(&db, 2..=2);
    let (_data, store) = common::migrated_store().await;
    let config = config(
        &db.url,
        "mark_processed = \"update orders set done = 1 where id = $1\"",
    );
    let source = start(&store, &config);
    wait_for("two rows stored", MINUTE, || journal(&store).len() == 2).await;

    // Rows inserted while the source runs, more than one query's limit.
    insert(&db, 3..=7);
    wait_for("seven rows stored", MINUTE, || journal(&store).len() == 7).await;
    assert_eq!(
        engine::stored_position(&store, "orders")
            .unwrap()
            .as_deref(),
        Some("7")
    );
    source.shutdown().await;

    // Stopped: rows wait in the database; the next start goes on after row 7.
    insert(&db, 8..=9);
    let source = start(&store, &config);
    wait_for("nine rows stored", MINUTE, || journal(&store).len() == 9).await;
    source.shutdown().await;

    let rows = journal(&store);
    let ids: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        ids,
        (1..=9).map(|i| format!("orders-{i}")).collect::<Vec<_>>(),
        "every row once, in order"
    );
    assert!(rows.iter().all(|r| r.1 == "received"), "{rows:?}");
    let first = &rows[0].2;
    assert_eq!(
        first,
        "MSH|^~\\&|DB|NORTH|||||ORM^O01|orders-1|P|2.5\r\
         PID|1||M1^^^NORTH^MR||DOE\\F\\J\\S\\X\\R\\Y\\T\\Z\\E\\W\\X0D\\OBX\\F\\1\r"
    );
    let message = hl7v2::Message::parse(first.as_bytes()).unwrap();
    assert_eq!(message.len(), 2, "no segment was added");
    assert!(rows[1].2.contains("PID|1||M2^^^NORTH^MR||DOE\\S\\PAT2\r"));

    // Every stored row was marked once its message was committed.
    assert_eq!((db.run)("select count(*) from orders where done = 1"), "9");
}

/// A placeholder naming no column rejects that row's message, naming the placeholder;
/// the rows after it are read.
async fn an_unknown_placeholder_rejects_the_row(db: Database) {
    (db.run)("create table orders (id bigint primary key, mrn varchar(20), name varchar(200))");
    insert(&db, 1..=2);
    let (_data, store) = common::migrated_store().await;
    let mut config = config(&db.url, "");
    config.template = Some("MSH|^~\\&|DB|NORTH|||||ORM^O01||P|2.5\rPID|1||{mrn}||{nope}".into());
    let source = start(&store, &config);
    wait_for("two rows stored", MINUTE, || journal(&store).len() == 2).await;
    source.shutdown().await;
    let reasons = common::rows(
        &store,
        "SELECT state, state_reason FROM journal ORDER BY id",
        [],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?)),
    );
    for (state, reason) in reasons {
        assert_eq!(state, "rejected");
        let reason = reason.unwrap();
        assert!(reason.contains("{nope}"), "{reason}");
        assert!(reason.contains("id, mrn, name"), "{reason}");
    }
    assert_eq!(
        engine::stored_position(&store, "orders")
            .unwrap()
            .as_deref(),
        Some("2")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_rows_become_messages_once() {
    let dir = tempfile::tempdir().unwrap();
    rows_become_messages_once(sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_rows_become_messages_once() {
    rows_become_messages_once(postgres()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_rows_become_messages_once() {
    rows_become_messages_once(mariadb()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_unknown_placeholder_rejects_the_row() {
    let dir = tempfile::tempdir().unwrap();
    an_unknown_placeholder_rejects_the_row(sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_unknown_placeholder_rejects_the_row() {
    an_unknown_placeholder_rejects_the_row(postgres()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_is_down_is_retried_without_crashing() {
    // Nothing listens on this port: the source keeps trying, stores nothing, and stops
    // when asked.
    let (_data, store) = common::migrated_store().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let error = DatabaseSource::start(
        &config("postgres://postgres:secret@127.0.0.1/none", ""),
        Path::new("/"),
        common::intake(
            "orders",
            &store,
            Default::default(),
            Arc::new(ChannelMetrics::default()),
        ),
    )
    .err()
    .unwrap();
    assert_eq!(error.0, "url");
    assert!(!error.1.contains("secret"), "{}", error.1);
    let config = config(&format!("postgres://postgres@127.0.0.1:{port}/none"), "");
    let source = start(&store, &config);
    source.shutdown().await;
    assert!(journal(&store).is_empty());
    assert_eq!(engine::stored_position(&store, "orders").unwrap(), None);
}
