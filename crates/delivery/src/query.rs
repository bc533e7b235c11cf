//! Queries a database source polls: PostgreSQL (tokio-postgres), MySQL/MariaDB
//! (mysql_async) and SQLite (rusqlite), the drivers and URLs of the database destination.
//!
//! A source's `query` takes one positional parameter, `$1`, the last position it stored
//! (`select id, mrn from orders where id > $1 order by id limit 100`); its optional
//! `mark_processed` statement takes the position of a stored row as `$1`. The position
//! is bound as text (PostgreSQL reads it as the parameter's type; MySQL and SQLite
//! compare it as a number when it is one). Every value of a row is read as text:
//! numbers as written, booleans `1`/`0`, dates `YYYYMMDD` and timestamps
//! `YYYYMMDDHHMMSS` (HL7's format; PostgreSQL `timestamptz` in UTC). A PostgreSQL column
//! of another type (`numeric`, `jsonb`, arrays) is refused naming it: cast it in the
//! query (`amount::text`).
//!
//! The password comes from `password_env` or `password_file`; a URL holding one is
//! refused, and errors name the database by scheme, host and name only.

use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::config::TlsConfig;
use crate::destinations::database::{Dialect, Target, translate};

/// Where a source's query runs and what it runs, as configured.
#[derive(Debug, Clone, Copy)]
pub struct QuerySettings<'a> {
    /// `postgres://user@host:port/db`, `mysql://` (or `mariadb://`) or `sqlite://path`.
    pub url: Option<&'a str>,
    /// The environment variable holding the password.
    pub password_env: Option<&'a str>,
    /// A file whose first line is the password.
    pub password_file: Option<&'a Path>,
    /// TLS towards PostgreSQL or MySQL.
    pub tls: Option<&'a TlsConfig>,
    /// The query, with `$1` for the last position.
    pub query: Option<&'a str>,
    /// The statement run for each stored row, with `$1` for its position.
    pub mark_processed: Option<&'a str>,
}

/// A problem with the settings: the key it is about (`url`, `query`, ...) and what is
/// wrong.
pub type KeyError = (&'static str, String);

/// The checked settings.
#[derive(Debug, Clone)]
struct Plan {
    target: Target,
    /// The query in the database's syntax and how many placeholders it has.
    query: (String, usize),
    mark: Option<(String, usize)>,
}

impl QuerySettings<'_> {
    /// Checks the settings without connecting or reading any file.
    pub fn check(&self) -> Result<(), KeyError> {
        self.plan().map(|_| ())
    }

    fn plan(&self) -> Result<Plan, KeyError> {
        let url = self
            .url
            .ok_or(("url", "a database source needs `url`".to_owned()))?;
        let target = Target::parse(url).map_err(|e| ("url", e))?;
        if matches!(target, Target::SqlServer(_)) {
            return Err((
                "url",
                "a database source reads PostgreSQL, MySQL/MariaDB or SQLite; SQL Server is a destination only so far".to_owned(),
            ));
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            return Err((
                "password_env",
                "give `password_env` or `password_file`, not both".to_owned(),
            ));
        }
        if matches!(target, Target::Sqlite(_))
            && (self.password_env.is_some() || self.password_file.is_some() || self.tls.is_some())
        {
            return Err((
                "url",
                "a `sqlite://` database takes no password or `tls`".to_owned(),
            ));
        }
        let query = self.query.filter(|q| !q.trim().is_empty()).ok_or((
            "query",
            "a database source needs `query`, e.g. \"select id, mrn from orders where id > $1 order by id limit 100\"".to_owned(),
        ))?;
        let query = one_parameter(query, target.dialect(), true).map_err(|e| ("query", e))?;
        let mark = match self.mark_processed {
            None => None,
            Some(mark) if mark.trim().is_empty() => {
                return Err(("mark_processed", "is empty".to_owned()));
            }
            Some(mark) => Some(
                one_parameter(mark, target.dialect(), false).map_err(|e| ("mark_processed", e))?,
            ),
        };
        Ok(Plan {
            target,
            query,
            mark,
        })
    }
}

/// `sql` in the database's syntax; it may use `$1` only (and must when `required`).
fn one_parameter(sql: &str, dialect: Dialect, required: bool) -> Result<(String, usize), String> {
    let translated = translate(sql, dialect)?;
    if let Some(n) = translated.order.iter().find(|&&n| n != 1) {
        return Err(format!(
            "uses ${n}; it takes one parameter, $1 (the position)"
        ));
    }
    if required && translated.order.is_empty() {
        return Err("does not use $1, the last position stored (e.g. `where id > $1`)".into());
    }
    Ok((translated.sql, translated.order.len()))
}

/// What a query returned: its columns' names and each row's values (`None` for NULL),
/// in the query's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rows {
    /// The columns' names.
    pub columns: Vec<String>,
    /// The rows, each with one value per column.
    pub rows: Vec<Vec<Option<String>>>,
}

/// A connection (opened when first needed, reopened after a failure) running a source's
/// query and mark statement.
pub struct SourceQuery {
    plan: Plan,
    described: String,
    connection: Connection,
}

enum Connection {
    Postgres(Box<postgres::Postgres>),
    Mysql(mysql::Mysql),
    Sqlite(sqlite::Sqlite),
}

impl SourceQuery {
    /// From checked settings; reads the password and the TLS files now (errors name the
    /// key) and connects on the first fetch. Relative paths start at `base`.
    pub fn new(settings: &QuerySettings<'_>, base: &Path) -> Result<SourceQuery, KeyError> {
        let plan = settings.plan()?;
        let password =
            crate::config::read_password(settings.password_env, settings.password_file, base, "")
                .map_err(|e| {
                let key = if settings.password_env.is_some() {
                    "password_env"
                } else {
                    "password_file"
                };
                (key, e)
            })?;
        let connection = match &plan.target {
            Target::Postgres(url) => {
                let tls = settings
                    .tls
                    .map(|tls| {
                        crate::destinations::tls::client_config(tls, base)
                            .map_err(|e| ("tls", e.to_string()))
                    })
                    .transpose()?;
                Connection::Postgres(Box::new(
                    postgres::Postgres::new(url, password, tls).map_err(|e| ("url", e))?,
                ))
            }
            Target::Mysql(url) => Connection::Mysql(
                mysql::Mysql::new(url, password, settings.tls, base).map_err(|e| ("url", e))?,
            ),
            Target::Sqlite(path) => Connection::Sqlite(sqlite::Sqlite::new(base.join(path))),
            Target::SqlServer(_) => {
                return Err(("url", "a database source cannot read SQL Server".to_owned()));
            }
        };
        Ok(SourceQuery {
            described: plan.target.describe(),
            plan,
            connection,
        })
    }

    /// The database as `scheme://host/name`, with no user or password.
    pub fn describe(&self) -> &str {
        &self.described
    }

    /// Whether a mark statement is configured.
    pub fn marks(&self) -> bool {
        self.plan.mark.is_some()
    }

    /// Runs the query with `position` as `$1`. An error names the database and what
    /// failed, never a value of a row.
    pub async fn fetch(&mut self, position: &str) -> Result<Rows, String> {
        let described = self.described.clone();
        let result = match &mut self.connection {
            Connection::Postgres(db) => db.fetch(&self.plan.query.0, position).await,
            Connection::Mysql(db) => db.fetch(&self.plan.query, position).await,
            Connection::Sqlite(db) => db.fetch(&self.plan.query.0, position).await,
        };
        result.map_err(|e| format!("{described}: `query`: {e}"))
    }

    /// Runs the mark statement (if any) with `position` as `$1`.
    pub async fn mark(&mut self, position: &str) -> Result<(), String> {
        let Some(mark) = self.plan.mark.clone() else {
            return Ok(());
        };
        let described = self.described.clone();
        let result = match &mut self.connection {
            Connection::Postgres(db) => db.execute(&mark.0, position).await,
            Connection::Mysql(db) => db.execute(&mark, position).await,
            Connection::Sqlite(db) => db.execute(&mark.0, position).await,
        };
        result.map_err(|e| format!("{described}: `mark_processed`: {e}"))
    }
}

/// `YYYYMMDD` of a day counted from 1970-01-01.
fn civil_date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}")
}

/// `YYYYMMDDHHMMSS` of microseconds counted from 1970-01-01 00:00.
fn civil_timestamp(micros: i64) -> String {
    let seconds = micros.div_euclid(1_000_000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    format!(
        "{}{:02}{:02}{:02}",
        civil_date(days),
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// PostgreSQL; the position is sent in text format, which the server reads as the
/// parameter's type.
mod postgres {
    use std::sync::Arc;

    use tokio_postgres::types::{FromSql, ToSql, Type};
    use tokio_postgres::{Client, Statement};

    /// Days from 1970-01-01 to PostgreSQL's epoch, 2000-01-01.
    const EPOCH_DAYS: i64 = 10_957;

    pub(super) struct Postgres {
        config: tokio_postgres::Config,
        tls: Option<crate::destinations::database::PostgresTls>,
        open: Option<(Client, Option<(String, Statement)>)>,
    }

    impl Postgres {
        pub(super) fn new(
            url: &str,
            password: Option<String>,
            tls: Option<Arc<rustls::ClientConfig>>,
        ) -> Result<Postgres, String> {
            let (config, tls) = crate::destinations::database::postgres_config(url, password, tls)?;
            Ok(Postgres {
                config,
                tls,
                open: None,
            })
        }

        async fn client(&mut self) -> Result<&mut (Client, Option<(String, Statement)>), String> {
            if self.open.as_ref().is_some_and(|(c, _)| c.is_closed()) {
                self.open = None;
            }
            if self.open.is_none() {
                let client = crate::destinations::database::postgres_connect(
                    &self.config,
                    self.tls.as_ref(),
                )
                .await
                .map_err(|e| format!("connecting: {}", describe(&e)))?;
                self.open = Some((client, None));
            }
            self.open.as_mut().ok_or_else(|| "not connected".to_owned())
        }

        async fn statement(&mut self, sql: &str) -> Result<(&Client, Statement), String> {
            let (client, prepared) = self.client().await?;
            let statement = match prepared {
                Some((text, statement)) if text == sql => statement.clone(),
                _ => {
                    let statement = client.prepare(sql).await.map_err(|e| describe(&e))?;
                    *prepared = Some((sql.to_owned(), statement.clone()));
                    statement
                }
            };
            Ok((&*client, statement))
        }

        pub(super) async fn fetch(
            &mut self,
            sql: &str,
            position: &str,
        ) -> Result<super::Rows, String> {
            let result = self.fetch_once(sql, position).await;
            if result.is_err() {
                self.open = None;
            }
            result
        }

        async fn fetch_once(&mut self, sql: &str, position: &str) -> Result<super::Rows, String> {
            let (client, statement) = self.statement(sql).await?;
            let text = Text(position.to_owned());
            let params: Vec<&(dyn ToSql + Sync)> = (0..statement.params().len())
                .map(|_| &text as &(dyn ToSql + Sync))
                .collect();
            let rows = client
                .query(&statement, &params)
                .await
                .map_err(|e| describe(&e))?;
            let columns: Vec<String> = statement
                .columns()
                .iter()
                .map(|c| c.name().to_owned())
                .collect();
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let mut values = Vec::with_capacity(columns.len());
                for (i, column) in statement.columns().iter().enumerate() {
                    let value: Option<AnyText> = row.try_get(i).map_err(|_| {
                        format!(
                            "column {:?} has type {}, which a database source does not read; cast it in the query ({}::text)",
                            column.name(),
                            column.type_(),
                            column.name()
                        )
                    })?;
                    values.push(value.map(|v| v.0));
                }
                out.push(values);
            }
            Ok(super::Rows { columns, rows: out })
        }

        pub(super) async fn execute(&mut self, sql: &str, position: &str) -> Result<(), String> {
            let result = self.execute_once(sql, position).await;
            if result.is_err() {
                self.open = None;
            }
            result
        }

        async fn execute_once(&mut self, sql: &str, position: &str) -> Result<(), String> {
            let (client, statement) = self.statement(sql).await?;
            let text = Text(position.to_owned());
            let params: Vec<&(dyn ToSql + Sync)> = (0..statement.params().len())
                .map(|_| &text as &(dyn ToSql + Sync))
                .collect();
            client
                .execute(&statement, &params)
                .await
                .map(|_| ())
                .map_err(|e| describe(&e))
        }
    }

    fn describe(e: &tokio_postgres::Error) -> String {
        crate::destinations::database::postgres_error(e)
    }

    /// A parameter sent in text format, which the server parses as its type.
    #[derive(Debug)]
    struct Text(String);

    impl ToSql for Text {
        fn to_sql(
            &self,
            _ty: &Type,
            out: &mut bytes::BytesMut,
        ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
        {
            out.extend_from_slice(self.0.as_bytes());
            Ok(tokio_postgres::types::IsNull::No)
        }

        fn accepts(_ty: &Type) -> bool {
            true
        }

        fn encode_format(&self, _ty: &Type) -> tokio_postgres::types::Format {
            tokio_postgres::types::Format::Text
        }

        tokio_postgres::types::to_sql_checked!();
    }

    /// A value of a common type, as text.
    struct AnyText(String);

    fn array<const N: usize>(
        raw: &[u8],
    ) -> Result<[u8; N], Box<dyn std::error::Error + Sync + Send>> {
        raw.try_into()
            .map_err(|_| "a value of the wrong length".into())
    }

    impl<'a> FromSql<'a> for AnyText {
        fn from_sql(
            ty: &Type,
            raw: &'a [u8],
        ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
            let text = match *ty {
                Type::BOOL => if raw.first() == Some(&1) { "1" } else { "0" }.to_owned(),
                Type::INT2 => i16::from_be_bytes(array(raw)?).to_string(),
                Type::INT4 => i32::from_be_bytes(array(raw)?).to_string(),
                Type::INT8 => i64::from_be_bytes(array(raw)?).to_string(),
                Type::OID => u32::from_be_bytes(array(raw)?).to_string(),
                Type::FLOAT4 => f32::from_be_bytes(array(raw)?).to_string(),
                Type::FLOAT8 => f64::from_be_bytes(array(raw)?).to_string(),
                Type::DATE => {
                    super::civil_date(EPOCH_DAYS + i64::from(i32::from_be_bytes(array(raw)?)))
                }
                Type::TIMESTAMP | Type::TIMESTAMPTZ => super::civil_timestamp(
                    EPOCH_DAYS * 86_400_000_000 + i64::from_be_bytes(array(raw)?),
                ),
                Type::UUID => raw.iter().enumerate().fold(String::new(), |mut s, (i, b)| {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        s.push('-');
                    }
                    s.push_str(&format!("{b:02x}"));
                    s
                }),
                _ => std::str::from_utf8(raw)?.to_owned(),
            };
            Ok(AnyText(text))
        }

        fn accepts(ty: &Type) -> bool {
            matches!(
                *ty,
                Type::BOOL
                    | Type::INT2
                    | Type::INT4
                    | Type::INT8
                    | Type::OID
                    | Type::FLOAT4
                    | Type::FLOAT8
                    | Type::DATE
                    | Type::TIMESTAMP
                    | Type::TIMESTAMPTZ
                    | Type::UUID
                    | Type::TEXT
                    | Type::VARCHAR
                    | Type::BPCHAR
                    | Type::NAME
                    | Type::UNKNOWN
                    | Type::JSON
                    | Type::XML
            )
        }
    }
}

/// MySQL and MariaDB; the position is sent as a string.
mod mysql {
    use std::path::Path;

    use mysql_async::prelude::Queryable;
    use mysql_async::{Params, Pool, Value};

    use crate::config::TlsConfig;

    pub(super) struct Mysql {
        pool: Pool,
    }

    impl Mysql {
        pub(super) fn new(
            url: &str,
            password: Option<String>,
            tls: Option<&TlsConfig>,
            base: &Path,
        ) -> Result<Mysql, String> {
            Ok(Mysql {
                pool: crate::destinations::database::mysql_pool(url, password, tls, base)?,
            })
        }

        fn params(count: usize, position: &str) -> Params {
            if count == 0 {
                return Params::Empty;
            }
            let value = match position.parse::<i64>() {
                Ok(n) => Value::Int(n),
                Err(_) => Value::Bytes(position.as_bytes().to_vec()),
            };
            Params::Positional(vec![value; count])
        }

        pub(super) async fn fetch(
            &mut self,
            (sql, count): &(String, usize),
            position: &str,
        ) -> Result<super::Rows, String> {
            let mut conn = self.pool.get_conn().await.map_err(|e| describe(&e))?;
            let rows: Vec<mysql_async::Row> = conn
                .exec(sql.as_str(), Self::params(*count, position))
                .await
                .map_err(|e| describe(&e))?;
            let columns: Vec<String> = rows
                .first()
                .map(|row| {
                    row.columns_ref()
                        .iter()
                        .map(|c| c.name_str().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            let rows = rows
                .iter()
                .map(|row| {
                    (0..columns.len())
                        .map(|i| row.as_ref(i).and_then(text))
                        .collect()
                })
                .collect();
            Ok(super::Rows { columns, rows })
        }

        pub(super) async fn execute(
            &mut self,
            (sql, count): &(String, usize),
            position: &str,
        ) -> Result<(), String> {
            let mut conn = self.pool.get_conn().await.map_err(|e| describe(&e))?;
            conn.exec_drop(sql.as_str(), Self::params(*count, position))
                .await
                .map_err(|e| describe(&e))
        }
    }

    fn text(value: &Value) -> Option<String> {
        Some(match value {
            Value::NULL => return None,
            Value::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Value::Int(n) => n.to_string(),
            Value::UInt(n) => n.to_string(),
            Value::Float(n) => n.to_string(),
            Value::Double(n) => n.to_string(),
            Value::Date(y, mo, d, h, mi, s, _) => {
                if (*h, *mi, *s) == (0, 0, 0) {
                    format!("{y:04}{mo:02}{d:02}")
                } else {
                    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
                }
            }
            Value::Time(negative, days, h, mi, s, _) => {
                let hours = u32::from(*h) + days * 24;
                format!(
                    "{}{hours:02}{mi:02}{s:02}",
                    if *negative { "-" } else { "" }
                )
            }
        })
    }

    fn describe(e: &mysql_async::Error) -> String {
        match e {
            mysql_async::Error::Server(server) => format!(
                "{} (error {}, SQLSTATE {})",
                server.message, server.code, server.state
            ),
            other => other.to_string(),
        }
    }
}

/// SQLite, on the blocking pool; one connection kept open. The file must exist.
mod sqlite {
    use std::path::PathBuf;

    use super::{Arc, Mutex};
    use rusqlite::types::{Value, ValueRef};
    use rusqlite::{Connection, OpenFlags};

    pub(super) struct Sqlite {
        path: PathBuf,
        open: Arc<Mutex<Option<Connection>>>,
    }

    impl Sqlite {
        pub(super) fn new(path: PathBuf) -> Sqlite {
            Sqlite {
                path,
                open: Arc::new(Mutex::new(None)),
            }
        }

        async fn with<T: Send + 'static>(
            &self,
            work: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
        ) -> Result<T, String> {
            let path = self.path.clone();
            let open = Arc::clone(&self.open);
            tokio::task::spawn_blocking(move || {
                let mut guard = open
                    .lock()
                    .map_err(|_| "the SQLite connection was poisoned".to_owned())?;
                if guard.is_none() {
                    let conn = Connection::open_with_flags(
                        &path,
                        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )
                    .and_then(|conn| {
                        conn.busy_timeout(std::time::Duration::from_secs(5))?;
                        Ok(conn)
                    })
                    .map_err(|e| format!("opening: {e}"))?;
                    *guard = Some(conn);
                }
                let conn = guard.as_ref().ok_or("the SQLite connection is not open")?;
                let result = work(conn).map_err(|e| e.to_string());
                if result.is_err() {
                    *guard = None;
                }
                result
            })
            .await
            .map_err(|e| format!("the SQLite reader failed: {e}"))?
        }

        fn position(position: &str) -> Value {
            match position.parse::<i64>() {
                Ok(n) => Value::Integer(n),
                Err(_) => Value::Text(position.to_owned()),
            }
        }

        pub(super) async fn fetch(
            &mut self,
            sql: &str,
            position: &str,
        ) -> Result<super::Rows, String> {
            let sql = sql.to_owned();
            let position = Self::position(position);
            self.with(move |conn| {
                let mut statement = conn.prepare_cached(&sql)?;
                let columns: Vec<String> = statement
                    .column_names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                let count = columns.len();
                let params: Vec<&dyn rusqlite::ToSql> = (0..statement.parameter_count())
                    .map(|_| &position as &dyn rusqlite::ToSql)
                    .collect();
                let rows = statement
                    .query_map(params.as_slice(), |row| {
                        (0..count)
                            .map(|i| {
                                Ok(match row.get_ref(i)? {
                                    ValueRef::Null => None,
                                    ValueRef::Integer(n) => Some(n.to_string()),
                                    ValueRef::Real(n) => Some(n.to_string()),
                                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                                        Some(String::from_utf8_lossy(t).into_owned())
                                    }
                                })
                            })
                            .collect::<rusqlite::Result<Vec<_>>>()
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(super::Rows { columns, rows })
            })
            .await
        }

        pub(super) async fn execute(&mut self, sql: &str, position: &str) -> Result<(), String> {
            let sql = sql.to_owned();
            let position = Self::position(position);
            self.with(move |conn| {
                let mut statement = conn.prepare_cached(&sql)?;
                let params: Vec<&dyn rusqlite::ToSql> = (0..statement.parameter_count())
                    .map(|_| &position as &dyn rusqlite::ToSql)
                    .collect();
                statement.execute(params.as_slice()).map(|_| ())
            })
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(url: &'a str, query: &'a str, mark: Option<&'a str>) -> QuerySettings<'a> {
        QuerySettings {
            url: Some(url),
            password_env: None,
            password_file: None,
            tls: None,
            query: Some(query),
            mark_processed: mark,
        }
    }

    #[test]
    fn checks_name_their_key() {
        let ok = "select id from t where id > $1 order by id";
        settings(
            "postgres://corridor@db/x",
            ok,
            Some("update t set done = 1 where id = $1"),
        )
        .check()
        .unwrap();
        let (key, message) = settings("postgres://corridor@db/x", "select id from t", None)
            .check()
            .unwrap_err();
        assert_eq!(key, "query");
        assert!(message.contains("$1"), "{message}");
        let (key, _) = settings(
            "sqlite://x.db",
            "select * from t where id > $1 and $2",
            None,
        )
        .check()
        .unwrap_err();
        assert_eq!(key, "query");
        let (key, _) = settings("mysql://root@db/x", ok, Some("update t set a = $2"))
            .check()
            .unwrap_err();
        assert_eq!(key, "mark_processed");
        let (key, message) = settings("postgres://corridor:secret@db/x", ok, None)
            .check()
            .unwrap_err();
        assert_eq!(key, "url");
        assert!(!message.contains("secret"), "{message}");
        let (key, _) = settings("oracle://db/x", ok, None).check().unwrap_err();
        assert_eq!(key, "url");
    }

    #[test]
    fn dates_and_timestamps_are_written_as_hl7_dates() {
        assert_eq!(civil_date(0), "19700101");
        assert_eq!(civil_date(10_957), "20000101");
        assert_eq!(civil_date(20_516), "20260304");
        assert_eq!(
            civil_timestamp(1_772_625_600_000_000 + 3_723_000_000),
            "20260304130203"
        );
    }
}
