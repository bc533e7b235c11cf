//! Database destinations: rows written into PostgreSQL, MySQL/MariaDB, SQL Server or
//! SQLite by one statement whose positional parameters are bound from HL7 paths, never
//! spliced into the SQL.
//!
//! The statement is written once with `$1`, `$2`, ... and translated for the database
//! (`?` for MySQL and SQLite, `@P1` for SQL Server), skipping string literals, quoted
//! names and comments. With `for_each = "OBX"` it runs once per OBX segment (the
//! parameters naming OBX read that segment, the others the message); all rows of a
//! message are written in one transaction; with `batch_size` the rows of up to that many
//! queued messages are (a batch the database refuses is written again one message per
//! transaction, so the error is the faulty message's alone).
//!
//! A message's rows are written once even when its delivery is tried again: the same
//! transaction inserts `(destination, journal_id)` into `corridor_delivered` (created
//! when the destination first connects), and a message whose marker is already there
//! writes nothing and counts as delivered. `destination` is `channel/name`.
//!
//! A statement the database refuses (a constraint, a value of the wrong type, a syntax
//! error) fails the message as refused, with the database's words: `on_nak = "error"`
//! errors it and goes on, `on_nak = "retry"` (default) retries and then follows
//! `on_failure`. A database that cannot be reached fails transiently and is retried
//! like any receiver. The password comes from `password_env` or `password_file`; a URL
//! holding one is refused, so it never reaches a log.
//!
//! One worker delivers a destination's messages in order, so each destination keeps one
//! connection open between deliveries (reopened after a failure) rather than a pool
//! of several.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use store::UnixMicros;

use super::{Delivered, DeliveryMeta, Destination, DestinationConfig, Outgoing};
use crate::config::TlsConfig;
use crate::error::{ConfigError, DeliveryError};

/// `type = "database"`: a database destination's own keys (the keys every destination
/// takes are in [`DestinationConfig`]).
///
/// ```
/// let config: delivery::DestinationConfig = toml::from_str(r#"
///     name = "results"
///     type = "database"
///     url = "postgres://corridor@db.example.org/reporting"
///     password_env = "REPORTING_DB_PASSWORD"
///     statement = "insert into results (mrn, code, value) values ($1, $2, $3)"
///     params = ["PID-3.1", "OBX-3.1", "OBX-5"]
///     for_each = "OBX"
/// "#).unwrap();
/// config.validate().unwrap();
/// ```
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseDestinationConfig {
    /// `postgres://user@host:port/db`, `mysql://user@host:port/db`,
    /// `mssql://user@host:port/db` or `sqlite://path` (relative to the configuration
    /// file; `sqlite:///abs/path`). No password in it.
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file whose first line is the password (relative to the configuration file).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The statement, with positional parameters `$1`, `$2`, ...
    #[serde(default)]
    pub statement: Option<String>,
    /// The HL7 path each parameter is bound from: `params[0]` is `$1`.
    #[serde(default)]
    pub params: Vec<String>,
    /// A segment name: the statement runs once per such segment of the message.
    #[serde(default)]
    pub for_each: Option<String>,
    /// TLS towards the database (PostgreSQL, MySQL, SQL Server): the CA its certificate chains to,
    /// and a client certificate when it asks for one.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// How many queued messages one transaction writes, rows and markers together
    /// (default 1: one transaction per message; at most 512, the most a worker hands
    /// over at once). A batch the database refuses is written again one message per
    /// transaction, so only the message at fault fails.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

fn default_batch_size() -> usize {
    1
}

/// The most messages a worker hands a destination at once.
const MAX_BATCH_SIZE: usize = 512;

impl DatabaseDestinationConfig {
    /// Checks the keys without connecting; an error names its key in backquotes.
    pub(crate) fn check(&self) -> Result<(), String> {
        self.plan().map(|_| ())
    }

    /// What the keys describe: the database, the statement as it will run, the paths.
    fn plan(&self) -> Result<Plan, String> {
        let url = self
            .url
            .as_deref()
            .ok_or("database destinations need `url`")?;
        let target = Target::parse(url)?;
        if self.password_env.is_some() && self.password_file.is_some() {
            return Err("give `password_env` or `password_file`, not both".into());
        }
        if matches!(target, Target::Sqlite(_))
            && (self.password_env.is_some() || self.password_file.is_some() || self.tls.is_some())
        {
            return Err("a `sqlite://` database takes no password or `tls`".into());
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(format!(
                "`batch_size` must be from 1 to {MAX_BATCH_SIZE}, not {}",
                self.batch_size
            ));
        }
        let statement = self
            .statement
            .as_deref()
            .ok_or("database destinations need `statement`")?;
        let dialect = target.dialect();
        let translated = translate(statement, dialect).map_err(|e| format!("`statement`: {e}"))?;
        let highest = translated.order.iter().copied().max().unwrap_or(0);
        if highest > self.params.len() {
            return Err(format!(
                "`statement` uses ${highest} but `params` names {} value(s)",
                self.params.len()
            ));
        }
        for n in 1..=self.params.len() {
            if !translated.order.contains(&n) {
                return Err(format!(
                    "`params[{}]` is not used: the statement has no ${n}",
                    n - 1
                ));
            }
        }
        let for_each = match &self.for_each {
            None => None,
            Some(name) => Some(hl7v2::SegmentName::new(name.as_bytes()).ok_or_else(|| {
                format!("`for_each` {name:?} is not a segment name (three letters or digits)")
            })?),
        };
        let mut paths = Vec::with_capacity(self.params.len());
        for (i, text) in self.params.iter().enumerate() {
            let path: hl7v2::Path = text
                .parse()
                .map_err(|e| format!("`params[{i}]` {text:?} is not an HL7 path: {e}"))?;
            if path.field.is_none() {
                return Err(format!(
                    "`params[{i}]` {text:?} names a segment, not a value"
                ));
            }
            if path.selects_many() {
                return Err(format!(
                    "`params[{i}]` {text:?} selects many values; a parameter takes one (use `for_each` for one row per segment)"
                ));
            }
            paths.push(path);
        }
        Ok(Plan {
            target,
            sql: translated.sql,
            order: translated.order,
            paths,
            for_each,
        })
    }
}

/// The statements that keep `corridor_delivered` in one database: `create` makes the
/// table when a destination first connects; `mark` inserts `(destination, journal_id)`
/// (`$1`, `$2` in the database's syntax) unless it is there, and reports one row
/// affected when it inserted, none when the message was written before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MarkerStatements {
    /// Creates the table if it does not exist.
    pub create: &'static str,
    /// Marks one message written.
    pub mark: &'static str,
}

/// `corridor_delivered`'s statements for `dialect`. Every database gets the same
/// columns and primary key; SQL Server, which has no `insert ... on conflict` or
/// `insert ignore`, inserts with a `where not exists` check under a key-range lock
/// (`updlock, holdlock`), the same statement the others accept without the hint
/// (a test runs it on them).
pub fn marker_statements(dialect: Dialect) -> MarkerStatements {
    match dialect {
        Dialect::Postgres => MarkerStatements {
            create: "create table if not exists corridor_delivered (\
                     destination text not null, journal_id bigint not null, \
                     delivered_at timestamptz not null default now(), \
                     primary key (destination, journal_id))",
            mark: "insert into corridor_delivered (destination, journal_id) values ($1, $2) \
                   on conflict do nothing",
        },
        Dialect::Mysql => MarkerStatements {
            create: "create table if not exists corridor_delivered (\
                     destination varchar(255) not null, journal_id bigint not null, \
                     delivered_at timestamp not null default current_timestamp, \
                     primary key (destination, journal_id))",
            mark: "insert ignore into corridor_delivered (destination, journal_id) values (?, ?)",
        },
        Dialect::Sqlite => MarkerStatements {
            create: "create table if not exists corridor_delivered (\
                     destination text not null, journal_id integer not null, \
                     delivered_at text not null default current_timestamp, \
                     primary key (destination, journal_id))",
            mark: "insert or ignore into corridor_delivered (destination, journal_id) values (?1, ?2)",
        },
        Dialect::SqlServer => MarkerStatements {
            create: "if object_id(N'corridor_delivered', N'U') is null \
                     create table corridor_delivered (\
                     destination nvarchar(255) not null, journal_id bigint not null, \
                     delivered_at datetime2 not null default sysutcdatetime(), \
                     primary key (destination, journal_id))",
            mark: SQL_SERVER_MARK,
        },
    }
}

/// SQL Server's `mark`, also checked on the other databases (without the lock hint).
const SQL_SERVER_MARK: &str = "insert into corridor_delivered (destination, journal_id) \
     select @P1, @P2 where not exists (select 1 from corridor_delivered with (updlock, holdlock) \
     where destination = @P1 and journal_id = @P2)";

/// SQL Server's `mark` in `$n` form without its lock hint: the statement the tests run
/// on PostgreSQL, MySQL/MariaDB and SQLite (translated like any `statement`) to check
/// it inserts a marker once.
pub fn sql_server_mark_portable() -> String {
    SQL_SERVER_MARK
        .replace(" with (updlock, holdlock)", "")
        .replace("@P1", "$1")
        .replace("@P2", "$2")
}

/// A checked configuration.
#[derive(Debug, Clone)]
struct Plan {
    target: Target,
    /// The statement in the database's syntax.
    sql: String,
    /// For each placeholder of `sql` in order, the 1-based parameter it takes (for
    /// PostgreSQL, whose `$n` stay, the placeholders as written).
    order: Vec<usize>,
    paths: Vec<hl7v2::Path>,
    for_each: Option<hl7v2::SegmentName>,
}

/// Where the rows go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Postgres(String),
    Mysql(String),
    Sqlite(PathBuf),
    SqlServer(String),
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            "`url` must start with postgres://, mysql://, mssql:// or sqlite://".to_owned()
        })?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let user_info = authority.rsplit_once('@').map(|(u, _)| u);
        if user_info.is_some_and(|u| u.contains(':')) {
            return Err(
                "`url` holds a password: give it in `password_env` or `password_file`".into(),
            );
        }
        if url.contains("password=") {
            return Err(
                "`url` holds a password: give it in `password_env` or `password_file`".into(),
            );
        }
        match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Ok(Target::Postgres(url.to_owned())),
            "mysql" | "mariadb" => Ok(Target::Mysql(format!("mysql://{rest}"))),
            "sqlite" if !rest.is_empty() => Ok(Target::Sqlite(PathBuf::from(rest))),
            "sqlite" => Err("`url` sqlite:// needs a file path".into()),
            "mssql" | "sqlserver" => {
                mssql::parse_url(url)?;
                Ok(Target::SqlServer(url.to_owned()))
            }
            other => Err(format!(
                "`url` scheme {other:?} is not a database Corridor writes to (postgres, mysql, sqlite, mssql)"
            )),
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self {
            Target::Postgres(_) => Dialect::Postgres,
            Target::Mysql(_) => Dialect::Mysql,
            Target::Sqlite(_) => Dialect::Sqlite,
            Target::SqlServer(_) => Dialect::SqlServer,
        }
    }

    /// The URL without anything secret, for messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Target::Postgres(url) | Target::Mysql(url) | Target::SqlServer(url) => {
                let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
                let host = rest.split(['/', '?']).next().unwrap_or_default();
                let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
                let db = rest
                    .split_once('/')
                    .map(|(_, d)| d.split('?').next().unwrap_or_default())
                    .unwrap_or_default();
                format!("{scheme}://{host}/{db}")
            }
            Target::Sqlite(path) => format!("sqlite://{}", path.display()),
        }
    }
}

/// The placeholder syntax of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `$1`, `$2`: kept as written.
    Postgres,
    /// `?`, one per use, in order.
    Mysql,
    /// `?1`, `?2`.
    Sqlite,
    /// `@P1`, `@P2` (as SQL Server's drivers bind them).
    SqlServer,
}

/// A statement translated for one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Translated {
    /// The statement's text for the database.
    pub sql: String,
    /// The 1-based parameter of each placeholder, in the order they appear.
    pub order: Vec<usize>,
}

/// Translates `$1`-style placeholders into `dialect`'s. Text inside `'strings'`,
/// `"names"`, `` `names` ``, `[names]` (SQL Server), `-- comments`, `/* comments */`
/// and PostgreSQL's `$tag$ strings $tag$` is copied as it is.
pub fn translate(sql: &str, dialect: Dialect) -> Result<Translated, String> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut order = Vec::new();
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            quote @ (b'\'' | b'"' | b'`') => {
                i = skip_quoted(bytes, i, quote)
                    .ok_or_else(|| format!("a {} is not closed", quote as char))?;
            }
            b'[' if dialect == Dialect::SqlServer => {
                i = skip_quoted_with(bytes, i, b']')
                    .ok_or_else(|| "a [ is not closed".to_owned())?;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..]
                    .find("*/")
                    .map(|p| i + 2 + p + 2)
                    .ok_or_else(|| "a /* comment is not closed".to_owned())?;
            }
            b'$' if bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let n: usize = sql[i + 1..i + 1 + digits]
                    .parse()
                    .map_err(|_| format!("{} is not a parameter", &sql[i..i + 1 + digits]))?;
                if n == 0 {
                    return Err("parameters count from $1".into());
                }
                out.push_str(&sql[copied..i]);
                match dialect {
                    Dialect::Postgres => out.push_str(&format!("${n}")),
                    Dialect::Mysql => out.push('?'),
                    Dialect::Sqlite => out.push_str(&format!("?{n}")),
                    Dialect::SqlServer => out.push_str(&format!("@P{n}")),
                }
                order.push(n);
                i += 1 + digits;
                copied = i;
            }
            b'$' => {
                // `$tag$ ... $tag$` (PostgreSQL's dollar quoting), else a plain `$`.
                let tag_len = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                    .count();
                if bytes.get(i + 1 + tag_len) == Some(&b'$') {
                    let tag = &sql[i..i + 2 + tag_len];
                    let body = i + tag.len();
                    i = sql[body..]
                        .find(tag)
                        .map(|p| body + p + tag.len())
                        .ok_or_else(|| format!("a {tag} string is not closed"))?;
                } else {
                    i += 1;
                }
            }
            b'?' if dialect != Dialect::Postgres => {
                return Err("write parameters as $1, $2, ...; a bare ? is not one".into());
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    Ok(Translated { sql: out, order })
}

/// The index after a quoted run starting at `start` (the quote doubled is kept inside).
fn skip_quoted(bytes: &[u8], start: usize, quote: u8) -> Option<usize> {
    skip_quoted_with(bytes, start, quote)
}

fn skip_quoted_with(bytes: &[u8], start: usize, close: u8) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        if bytes[i] == close {
            if bytes.get(i + 1) == Some(&close) {
                i += 2;
                continue;
            }
            return Some(i + 1);
        }
        // A backslash escape inside a MySQL string: skip the escaped byte.
        if bytes[i] == b'\\' && bytes[start] == b'\'' {
            i += 2;
            continue;
        }
        i += 1;
    }
    None
}

/// One row's values, `None` for SQL NULL, in parameter order.
type Row = Vec<Option<String>>;

/// The rows a message writes: one, or one per `for_each` segment.
fn rows_of(plan: &Plan, payload: &[u8]) -> Result<Vec<Row>, String> {
    let message =
        hl7v2::Message::parse(payload).map_err(|e| format!("the message does not parse: {e}"))?;
    let value = |e: Option<hl7v2::Element<'_>>| -> Option<String> {
        e.filter(|e| !e.is_empty() && !e.is_null())
            .map(|e| e.text().into_owned())
    };
    let Some(each) = plan.for_each else {
        return Ok(vec![
            plan.paths.iter().map(|p| value(message.get(p))).collect(),
        ]);
    };
    let mut rows = Vec::new();
    for index in 0..message.len() {
        if message.segment_name(index) != each.as_bytes() {
            continue;
        }
        let segment = message.segment(index);
        rows.push(
            plan.paths
                .iter()
                .map(|p| {
                    if p.segment == each && p.occurrence == 1 {
                        value(p.locate_in(&segment))
                    } else {
                        value(message.get(p))
                    }
                })
                .collect(),
        );
    }
    Ok(rows)
}

/// Writes messages' rows into a database.
pub struct DatabaseDestination {
    plan: Arc<Plan>,
    timeout: std::time::Duration,
    batch_size: usize,
    connection: Connection,
}

/// One message's share of a transaction: its journal id (the marker) and its rows.
#[derive(Debug, Clone)]
struct Pending {
    journal_id: i64,
    rows: Vec<Row>,
}

/// What one transaction wrote for each of its messages, in order: the rows written, or
/// `None` when the message's marker was there already (written before).
type Written = Vec<Option<usize>>;

enum Connection {
    Postgres(Box<postgres::Postgres>),
    Mysql(mysql::Mysql),
    Sqlite(sqlite::Sqlite),
    SqlServer(Box<mssql::SqlServer>),
}

impl DatabaseDestination {
    /// From a validated `type = "database"` configuration; reads the password and the TLS
    /// files now (errors name the key) and connects on the first delivery.
    pub fn new(
        config: &DestinationConfig,
        database: &DatabaseDestinationConfig,
        base: &Path,
    ) -> Result<DatabaseDestination, ConfigError> {
        let fail = |reason: String| ConfigError::Invalid {
            destination: config.name.clone(),
            reason,
        };
        let plan = Arc::new(database.plan().map_err(fail)?);
        let password = crate::config::read_password(
            database.password_env.as_deref(),
            database.password_file.as_deref(),
            base,
            "",
        )
        .map_err(fail)?;
        let tls = database
            .tls
            .as_ref()
            .map(|tls| {
                super::tls::client_config(tls, base).map_err(|e| fail(format!("`tls`: {e}")))
            })
            .transpose()?;
        let connection = match &plan.target {
            Target::Postgres(url) => Connection::Postgres(Box::new(
                postgres::Postgres::new(url, password, tls).map_err(fail)?,
            )),
            Target::Mysql(url) => Connection::Mysql(
                mysql::Mysql::new(url, password, database.tls.as_ref(), base).map_err(fail)?,
            ),
            Target::Sqlite(path) => Connection::Sqlite(sqlite::Sqlite::new(base.join(path))),
            Target::SqlServer(url) => Connection::SqlServer(Box::new(
                mssql::SqlServer::new(url, password, database.tls.as_ref(), base).map_err(fail)?,
            )),
        };
        Ok(DatabaseDestination {
            plan,
            timeout: config.timeout,
            batch_size: database.batch_size,
            connection,
        })
    }
}

/// How a database's failure counts.
/// PostgreSQL's connection settings from `url`, the password and TLS, for the database
/// destination and source alike. Without TLS configured, `sslmode=prefer` (the
/// default) would try TLS with no roots to check it by, so TLS is turned off, and
/// `sslmode=require` is refused; with TLS it is required.
pub(crate) fn postgres_config(
    url: &str,
    password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
) -> Result<(tokio_postgres::Config, Option<PostgresTls>), String> {
    use tokio_postgres::config::SslMode;
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("`url` is not a PostgreSQL URL: {e}"))?;
    if let Some(password) = password {
        config.password(password);
    }
    if config.get_ssl_mode() != SslMode::Disable && tls.is_none() {
        if url.contains("sslmode=require") {
            return Err("`url` asks for sslmode=require: give `tls.ca`".into());
        }
        config.ssl_mode(SslMode::Disable);
    }
    if tls.is_some() {
        config.ssl_mode(SslMode::Require);
    }
    config.connect_timeout(std::time::Duration::from_secs(10));
    let tls = tls.map(|c| tokio_postgres_rustls::MakeRustlsConnect::new((*c).clone()));
    Ok((config, tls))
}

/// A PostgreSQL error in words: the server's message and SQLSTATE, or the client's
/// error with its causes (`error performing TLS handshake: invalid peer certificate:
/// UnknownIssuer`), which tokio-postgres leaves out of its own text.
pub(crate) fn postgres_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(error) = cause {
        text.push_str(&format!(": {error}"));
        cause = error.source();
    }
    text
}

/// TLS towards PostgreSQL.
pub(crate) type PostgresTls = tokio_postgres_rustls::MakeRustlsConnect;

/// Connects to PostgreSQL and drives the connection on a task of its own.
pub(crate) async fn postgres_connect(
    config: &tokio_postgres::Config,
    tls: Option<&PostgresTls>,
) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    fn drive<S, T>(connection: tokio_postgres::Connection<S, T>)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
        T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection ended");
            }
        });
    }
    Ok(match tls {
        Some(tls) => {
            let (client, connection) = config.connect(tls.clone()).await?;
            drive(connection);
            client
        }
        None => {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            drive(connection);
            client
        }
    })
}

/// A MySQL/MariaDB pool of at most one connection for `url`, the password and TLS
/// (files relative to `base`), for the database destination and source alike.
pub(crate) fn mysql_pool(
    url: &str,
    password: Option<String>,
    tls: Option<&TlsConfig>,
    base: &Path,
) -> Result<mysql_async::Pool, String> {
    use mysql_async::{Opts, OptsBuilder, PoolConstraints, PoolOpts};
    let opts = Opts::from_url(url).map_err(|e| format!("`url` is not a MySQL URL: {e}"))?;
    let constraints = PoolConstraints::new(0, 1).ok_or("pool constraints")?;
    let mut builder =
        OptsBuilder::from_opts(opts).pool_opts(PoolOpts::default().with_constraints(constraints));
    if let Some(password) = password {
        builder = builder.pass(Some(password));
    }
    if let Some(tls) = tls {
        super::tls::ring_as_process_default();
        let mut ssl = mysql_async::SslOpts::default()
            .with_root_certs(vec![base.join(&tls.ca).into()])
            .with_disable_built_in_roots(true);
        match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => {
                ssl = ssl.with_client_identity(Some(mysql_async::ClientIdentity::new(
                    base.join(cert).into(),
                    base.join(key).into(),
                )));
            }
            (None, None) => {}
            _ => return Err("`tls.cert` and `tls.key` go together".into()),
        }
        if let Some(name) = &tls.server_name {
            ssl = ssl.with_danger_tls_hostname_override(Some(name.clone()));
        }
        builder = builder.ssl_opts(ssl);
    }
    Ok(mysql_async::Pool::new(builder))
}

fn failure(transient: bool, what: String) -> DeliveryError {
    if transient {
        DeliveryError::transient(what)
    } else {
        let answer = what.clone();
        DeliveryError::refused(what, answer)
    }
}

impl DatabaseDestination {
    /// Writes `messages` in one transaction, within the destination's `timeout`.
    async fn write(
        &mut self,
        key: &str,
        messages: Arc<[Pending]>,
    ) -> Result<Written, DeliveryError> {
        let plan = Arc::clone(&self.plan);
        let connection = &mut self.connection;
        let writing = async {
            match &mut *connection {
                Connection::Postgres(db) => db.write(&plan, key, &messages).await,
                Connection::Mysql(db) => db.write(&plan, key, &messages).await,
                Connection::Sqlite(db) => db.write(&plan, key, Arc::clone(&messages)).await,
                Connection::SqlServer(db) => db.write(&plan, key, &messages).await,
            }
        };
        match tokio::time::timeout(self.timeout, writing).await {
            Ok(result) => result,
            Err(_) => {
                match &mut self.connection {
                    Connection::Postgres(db) => db.forget(),
                    Connection::SqlServer(db) => db.forget(),
                    Connection::Mysql(_) | Connection::Sqlite(_) => {}
                }
                Err(DeliveryError::transient(format!(
                    "{}: no answer within {:?}",
                    self.plan.target.describe(),
                    self.timeout
                )))
            }
        }
    }

    /// Writes `group` (messages whose rows were read) and pushes one result per message
    /// tried; true when it stopped at a failure. Several messages go in one transaction;
    /// when the database refuses it, each is written again in a transaction of its own,
    /// in order, up to the first that fails, so that message alone carries the error.
    /// A transient failure (the connection, a deadlock) is the first message's: the
    /// others wait untried.
    async fn write_group(
        &mut self,
        key: &str,
        group: Vec<Pending>,
        results: &mut Vec<Result<Delivered, DeliveryError>>,
    ) -> bool {
        if group.len() > 1 {
            let group: Arc<[Pending]> = group.into();
            match self.write(key, Arc::clone(&group)).await {
                Ok(written) => {
                    results.extend(written.into_iter().map(|w| Ok(delivered(w))));
                    return false;
                }
                Err(e) if e.kind == crate::error::FailureKind::Transient => {
                    results.push(Err(e));
                    return true;
                }
                Err(_) => {}
            }
            for message in group.iter() {
                let one: Arc<[Pending]> = Arc::from(vec![message.clone()]);
                let result = self.write(key, one).await;
                let failed = result.is_err();
                results.push(result.map(|w| delivered(w.first().copied().flatten())));
                if failed {
                    return true;
                }
            }
            return false;
        }
        let result = self.write(key, group.into()).await;
        let failed = result.is_err();
        results.push(result.map(|w| delivered(w.first().copied().flatten())));
        failed
    }
}

/// Names a row in an error: `row 2`, or in a transaction of several messages
/// `journal id 41, row 2`.
fn which_row(messages: &[Pending], message: &Pending, n: usize) -> String {
    if messages.len() == 1 {
        format!("row {}", n + 1)
    } else {
        format!("journal id {}, row {}", message.journal_id, n + 1)
    }
}

/// The answer recorded for a message.
fn delivered(written: Option<usize>) -> Delivered {
    let answer = match written {
        Some(count) => format!("{count} row(s) written"),
        None => "written before (journal id already in corridor_delivered)".to_owned(),
    };
    Delivered {
        answer,
        answered_at: UnixMicros::now(),
    }
}

impl Destination for DatabaseDestination {
    async fn deliver(
        &mut self,
        message: &Outgoing,
        meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        self.deliver_batch(std::slice::from_ref(message), meta)
            .await
            .pop()
            .unwrap_or_else(|| Err(DeliveryError::transient("nothing was written")))
    }

    /// Up to `batch_size` messages per transaction, in order; stops at the first failure
    /// (the messages after it are tried again later, so a key's order holds).
    async fn deliver_batch(
        &mut self,
        batch: &[Outgoing],
        meta: &DeliveryMeta,
    ) -> Vec<Result<Delivered, DeliveryError>> {
        let key = format!("{}/{}", meta.channel, meta.destination);
        let mut results = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(self.batch_size) {
            let mut group = Vec::with_capacity(chunk.len());
            let mut unreadable = None;
            for message in chunk {
                match rows_of(&self.plan, &message.payload) {
                    Ok(rows) => group.push(Pending {
                        journal_id: message.message_id.0,
                        rows,
                    }),
                    Err(e) => {
                        unreadable = Some(DeliveryError::refused(e.clone(), e));
                        break;
                    }
                }
            }
            if !group.is_empty() && self.write_group(&key, group, &mut results).await {
                break;
            }
            if let Some(error) = unreadable {
                results.push(Err(error));
                break;
            }
        }
        results
    }
}

/// PostgreSQL through tokio-postgres; every parameter is sent as text and the server
/// reads it as its column's type.
mod postgres {
    use std::sync::Arc;

    use tokio_postgres::types::{Format, IsNull, ToSql, Type};
    use tokio_postgres::{Client, Statement};

    use super::{Pending, Plan, Written, failure, which_row};
    use crate::error::DeliveryError;

    pub(super) struct Postgres {
        config: tokio_postgres::Config,
        tls: Option<super::PostgresTls>,
        described: String,
        open: Option<(Client, Statement)>,
    }

    impl Postgres {
        pub(super) fn new(
            url: &str,
            password: Option<String>,
            tls: Option<Arc<rustls::ClientConfig>>,
        ) -> Result<Postgres, String> {
            let (config, tls) = super::postgres_config(url, password, tls)?;
            Ok(Postgres {
                config,
                tls,
                described: super::Target::Postgres(url.to_owned()).describe(),
                open: None,
            })
        }

        pub(super) fn forget(&mut self) {
            self.open = None;
        }

        async fn connect(&mut self, plan: &Plan) -> Result<(), DeliveryError> {
            if self.open.as_ref().is_some_and(|(c, _)| !c.is_closed()) {
                return Ok(());
            }
            let client = super::postgres_connect(&self.config, self.tls.as_ref())
                .await
                .map_err(|e| {
                    DeliveryError::transient(format!(
                        "{}: {}",
                        self.described,
                        super::postgres_error(&e)
                    ))
                })?;
            client
                .batch_execute(super::marker_statements(super::Dialect::Postgres).create)
                .await
                .map_err(|e| classify(&self.described, "creating corridor_delivered", &e))?;
            let statement = client
                .prepare(&plan.sql)
                .await
                .map_err(|e| classify(&self.described, "preparing `statement`", &e))?;
            self.open = Some((client, statement));
            Ok(())
        }

        pub(super) async fn write(
            &mut self,
            plan: &Plan,
            key: &str,
            messages: &[Pending],
        ) -> Result<Written, DeliveryError> {
            self.connect(plan).await?;
            let result = self.transaction(key, messages).await;
            if let Err(e) = &result
                && e.kind == crate::error::FailureKind::Transient
            {
                self.open = None;
            }
            result
        }

        async fn transaction(
            &mut self,
            key: &str,
            messages: &[Pending],
        ) -> Result<Written, DeliveryError> {
            let described = self.described.clone();
            let Some((client, statement)) = &mut self.open else {
                return Err(DeliveryError::transient(format!(
                    "{described}: not connected"
                )));
            };
            let fail = |what: &str, e: tokio_postgres::Error| classify(&described, what, &e);
            let transaction = client
                .transaction()
                .await
                .map_err(|e| fail("beginning", e))?;
            let mut written = Vec::with_capacity(messages.len());
            for message in messages {
                let marked = transaction
                    .execute(
                        super::marker_statements(super::Dialect::Postgres).mark,
                        &[&key, &message.journal_id],
                    )
                    .await
                    .map_err(|e| fail("marking the message written", e))?;
                if marked == 0 {
                    written.push(None);
                    continue;
                }
                for (n, row) in message.rows.iter().enumerate() {
                    let values: Vec<Text<'_>> = row.iter().map(|v| Text(v.as_deref())).collect();
                    let params: Vec<&(dyn ToSql + Sync)> =
                        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect();
                    transaction
                        .execute(statement, &params)
                        .await
                        .map_err(|e| fail(&which_row(messages, message, n), e))?;
                }
                written.push(Some(message.rows.len()));
            }
            if written.iter().all(Option::is_none) {
                transaction
                    .rollback()
                    .await
                    .map_err(|e| fail("rolling back", e))?;
            } else {
                transaction
                    .commit()
                    .await
                    .map_err(|e| fail("committing", e))?;
            }
            Ok(written)
        }
    }

    /// A refusal when the server answered with an error about the statement or its
    /// values; a transient failure when the connection or the server's state is at fault.
    fn classify(described: &str, what: &str, e: &tokio_postgres::Error) -> DeliveryError {
        match e.as_db_error() {
            Some(db) => {
                let code = db.code().code();
                // 08 connection, 40 rollback (deadlock, serialization), 53 resources,
                // 57 operator intervention (shutdown), 58 system error.
                let transient = matches!(&code[..2], "08" | "40" | "53" | "57" | "58");
                failure(
                    transient,
                    format!("{described}: {what}: {} (SQLSTATE {code})", db.message()),
                )
            }
            None => DeliveryError::transient(format!(
                "{described}: {what}: {}",
                super::postgres_error(e)
            )),
        }
    }

    /// A value sent in text format, which the server parses as the parameter's type.
    #[derive(Debug)]
    struct Text<'a>(Option<&'a str>);

    impl ToSql for Text<'_> {
        fn to_sql(
            &self,
            _ty: &Type,
            out: &mut bytes::BytesMut,
        ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
            match self.0 {
                Some(text) => {
                    out.extend_from_slice(text.as_bytes());
                    Ok(IsNull::No)
                }
                None => Ok(IsNull::Yes),
            }
        }

        fn accepts(_ty: &Type) -> bool {
            true
        }

        fn encode_format(&self, _ty: &Type) -> Format {
            Format::Text
        }

        tokio_postgres::types::to_sql_checked!();
    }
}

/// MySQL and MariaDB through mysql_async; values are sent as strings, which the server
/// converts to its columns' types.
mod mysql {
    use std::path::Path;

    use mysql_async::prelude::Queryable;
    use mysql_async::{Params, Pool, Value};

    use super::{Pending, Plan, Written, failure, which_row};
    use crate::config::TlsConfig;
    use crate::error::DeliveryError;

    pub(super) struct Mysql {
        pool: Pool,
        described: String,
    }

    impl Mysql {
        pub(super) fn new(
            url: &str,
            password: Option<String>,
            tls: Option<&TlsConfig>,
            base: &Path,
        ) -> Result<Mysql, String> {
            Ok(Mysql {
                pool: super::mysql_pool(url, password, tls, base)?,
                described: super::Target::Mysql(url.to_owned()).describe(),
            })
        }

        pub(super) async fn write(
            &mut self,
            plan: &Plan,
            key: &str,
            messages: &[Pending],
        ) -> Result<Written, DeliveryError> {
            let described = &self.described;
            let fail = |what: &str, e: mysql_async::Error| classify(described, what, e);
            let mut conn = self
                .pool
                .get_conn()
                .await
                .map_err(|e| fail("connecting", e))?;
            let markers = super::marker_statements(super::Dialect::Mysql);
            conn.query_drop(markers.create)
                .await
                .map_err(|e| fail("creating corridor_delivered", e))?;
            let mut transaction = conn
                .start_transaction(mysql_async::TxOpts::default())
                .await
                .map_err(|e| fail("beginning", e))?;
            let mut written = Vec::with_capacity(messages.len());
            for message in messages {
                transaction
                    .exec_drop(markers.mark, (key, message.journal_id))
                    .await
                    .map_err(|e| fail("marking the message written", e))?;
                if transaction.affected_rows() == 0 {
                    written.push(None);
                    continue;
                }
                for (n, row) in message.rows.iter().enumerate() {
                    let values: Vec<Value> = plan
                        .order
                        .iter()
                        .map(|&p| match row.get(p - 1).and_then(Option::as_deref) {
                            Some(text) => Value::Bytes(text.as_bytes().to_vec()),
                            None => Value::NULL,
                        })
                        .collect();
                    transaction
                        .exec_drop(plan.sql.as_str(), Params::Positional(values))
                        .await
                        .map_err(|e| fail(&which_row(messages, message, n), e))?;
                }
                written.push(Some(message.rows.len()));
            }
            if written.iter().all(Option::is_none) {
                transaction
                    .rollback()
                    .await
                    .map_err(|e| fail("rolling back", e))?;
            } else {
                transaction
                    .commit()
                    .await
                    .map_err(|e| fail("committing", e))?;
            }
            Ok(written)
        }
    }

    fn classify(described: &str, what: &str, e: mysql_async::Error) -> DeliveryError {
        match e {
            mysql_async::Error::Server(server) => {
                // 08 connection, 40 rollback; 1205 lock wait timeout, 1213 deadlock.
                let transient = server.state.starts_with("08")
                    || server.state.starts_with("40")
                    || matches!(server.code, 1205 | 1213);
                failure(
                    transient,
                    format!(
                        "{described}: {what}: {} (error {}, SQLSTATE {})",
                        server.message, server.code, server.state
                    ),
                )
            }
            other => DeliveryError::transient(format!("{described}: {what}: {other}")),
        }
    }
}

/// SQLite through rusqlite, on the blocking pool; one connection kept open.
mod sqlite {
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    use rusqlite::{Connection, ErrorCode, params_from_iter};

    use super::{Pending, Plan, Written, failure, which_row};
    use crate::error::DeliveryError;

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

        pub(super) async fn write(
            &mut self,
            plan: &Arc<Plan>,
            key: &str,
            messages: Arc<[Pending]>,
        ) -> Result<Written, DeliveryError> {
            let path = self.path.clone();
            let open = Arc::clone(&self.open);
            let plan = Arc::clone(plan);
            let key = key.to_owned();
            tokio::task::spawn_blocking(move || {
                let described = format!("sqlite://{}", path.display());
                let mut guard = open
                    .lock()
                    .map_err(|_| DeliveryError::transient("the SQLite connection was poisoned"))?;
                if guard.is_none() {
                    let conn = Connection::open(&path)
                        .and_then(|conn| {
                            conn.busy_timeout(std::time::Duration::from_secs(5))?;
                            conn.execute_batch(
                                super::marker_statements(super::Dialect::Sqlite).create,
                            )?;
                            Ok(conn)
                        })
                        .map_err(|e| classify(&described, "opening", &e))?;
                    *guard = Some(conn);
                }
                let Some(conn) = guard.as_mut() else {
                    return Err(DeliveryError::transient(
                        "the SQLite connection is not open",
                    ));
                };
                let result = write_rows(conn, &plan, &key, &messages, &described);
                if result
                    .as_ref()
                    .is_err_and(|e| e.kind == crate::error::FailureKind::Transient)
                {
                    *guard = None;
                }
                result
            })
            .await
            .map_err(|e| DeliveryError::transient(format!("the SQLite writer failed: {e}")))?
        }
    }

    fn write_rows(
        conn: &mut Connection,
        plan: &Plan,
        key: &str,
        messages: &[Pending],
        described: &str,
    ) -> Result<Written, DeliveryError> {
        let fail = |what: &str, e: rusqlite::Error| classify(described, what, &e);
        let transaction = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| fail("beginning", e))?;
        let mut written = Vec::with_capacity(messages.len());
        {
            let mut mark = transaction
                .prepare_cached(super::marker_statements(super::Dialect::Sqlite).mark)
                .map_err(|e| fail("marking the message written", e))?;
            let mut statement = transaction
                .prepare_cached(&plan.sql)
                .map_err(|e| fail("preparing `statement`", e))?;
            for message in messages {
                let marked = mark
                    .execute((key, message.journal_id))
                    .map_err(|e| fail("marking the message written", e))?;
                if marked == 0 {
                    written.push(None);
                    continue;
                }
                for (n, row) in message.rows.iter().enumerate() {
                    statement
                        .execute(params_from_iter(row.iter()))
                        .map_err(|e| fail(&which_row(messages, message, n), e))?;
                }
                written.push(Some(message.rows.len()));
            }
        }
        if written.iter().any(Option::is_some) {
            transaction.commit().map_err(|e| fail("committing", e))?;
        }
        Ok(written)
    }

    fn classify(described: &str, what: &str, e: &rusqlite::Error) -> DeliveryError {
        let transient = match e {
            rusqlite::Error::SqliteFailure(error, _) => matches!(
                error.code,
                ErrorCode::DatabaseBusy
                    | ErrorCode::DatabaseLocked
                    | ErrorCode::CannotOpen
                    | ErrorCode::SystemIoFailure
                    | ErrorCode::DiskFull
                    | ErrorCode::OutOfMemory
                    | ErrorCode::ReadOnly
            ),
            _ => false,
        };
        failure(transient, format!("{described}: {what}: {e}"))
    }
}

/// Microsoft SQL Server through tiberius (TDS, pure Rust, rustls). Values are sent as
/// `nvarchar` text, which the server converts to its columns' types; the statement's
/// `@P1`, `@P2` are the parameters in order.
mod mssql {
    use std::path::Path;

    use tiberius::{AuthMethod, Client, Config, EncryptionLevel};
    use tokio::net::TcpStream;
    use tokio_util::compat::{Compat, TokioAsyncWriteCompatExt};

    use super::{Pending, Plan, Written, failure, which_row};
    use crate::config::TlsConfig;
    use crate::error::DeliveryError;

    /// What `mssql://user@host:port/database` names (port 1433 when not given).
    #[derive(Debug, PartialEq, Eq)]
    pub(crate) struct Url {
        pub user: String,
        pub host: String,
        pub port: u16,
        pub database: String,
    }

    /// Reads `mssql://user@host[:port]/database` (`sqlserver://` too); no query string.
    pub(crate) fn parse_url(url: &str) -> Result<Url, String> {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        if rest.contains('?') {
            return Err("`url`: a SQL Server URL takes no options (`?...`)".into());
        }
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let Some((user, host_port)) = authority.rsplit_once('@') else {
            return Err("`url` needs a user: mssql://user@host:port/database".into());
        };
        if user.is_empty() {
            return Err("`url` needs a user: mssql://user@host:port/database".into());
        }
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse()
                    .map_err(|_| format!("`url`: port {port:?} is not a number"))?,
            ),
            None => (host_port, 1433),
        };
        if host.is_empty() {
            return Err("`url` needs a host: mssql://user@host:port/database".into());
        }
        if database.is_empty() || database.contains('/') {
            return Err("`url` needs a database: mssql://user@host:port/database".into());
        }
        Ok(Url {
            user: user.to_owned(),
            host: host.to_owned(),
            port,
            database: database.to_owned(),
        })
    }

    pub(super) struct SqlServer {
        config: Config,
        address: String,
        described: String,
        open: Option<Client<Compat<TcpStream>>>,
    }

    impl SqlServer {
        pub(super) fn new(
            url: &str,
            password: Option<String>,
            tls: Option<&TlsConfig>,
            base: &Path,
        ) -> Result<SqlServer, String> {
            let parsed = parse_url(url)?;
            let mut config = Config::new();
            config.host(&parsed.host);
            config.port(parsed.port);
            config.database(&parsed.database);
            config.application_name("corridor");
            config.authentication(AuthMethod::sql_server(
                &parsed.user,
                password.unwrap_or_default(),
            ));
            match tls {
                Some(tls) => {
                    config.encryption(EncryptionLevel::Required);
                    config.trust_cert_ca(base.join(&tls.ca).display());
                    if let Some(name) = &tls.server_name {
                        config.hostname_in_certificate(name);
                    }
                    match (&tls.cert, &tls.key) {
                        (Some(cert), Some(key)) => {
                            config.client_certificate(base.join(cert), base.join(key));
                        }
                        (None, None) => {}
                        _ => return Err("`tls.cert` and `tls.key` go together".into()),
                    }
                }
                None => config.encryption(EncryptionLevel::NotSupported),
            }
            Ok(SqlServer {
                config,
                address: format!("{}:{}", parsed.host, parsed.port),
                described: super::Target::SqlServer(url.to_owned()).describe(),
                open: None,
            })
        }

        pub(super) fn forget(&mut self) {
            self.open = None;
        }

        async fn connect(&mut self) -> Result<(), DeliveryError> {
            if self.open.is_some() {
                return Ok(());
            }
            // tiberius takes the process's rustls provider, else its own (aws-lc-rs).
            crate::destinations::tls::ring_as_process_default();
            let described = &self.described;
            let tcp = TcpStream::connect(&self.address)
                .await
                .map_err(|e| DeliveryError::transient(format!("{described}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let mut client = Client::connect(self.config.clone(), tcp.compat_write())
                .await
                .map_err(|e| classify(described, "connecting", e))?;
            client
                .execute(
                    super::marker_statements(super::Dialect::SqlServer).create,
                    &[],
                )
                .await
                .map_err(|e| classify(described, "creating corridor_delivered", e))?;
            self.open = Some(client);
            Ok(())
        }

        pub(super) async fn write(
            &mut self,
            plan: &Plan,
            key: &str,
            messages: &[Pending],
        ) -> Result<Written, DeliveryError> {
            self.connect().await?;
            let result = self.transaction(plan, key, messages).await;
            if result.is_err()
                && let Some(client) = self.open.as_mut()
            {
                // A failed statement leaves SQL Server's transaction open
                // (XACT_ABORT is off): roll it back, or start afresh.
                if client.rollback_transaction().await.is_err() {
                    self.open = None;
                }
            }
            if let Err(e) = &result
                && e.kind == crate::error::FailureKind::Transient
            {
                self.open = None;
            }
            result
        }

        async fn transaction(
            &mut self,
            plan: &Plan,
            key: &str,
            messages: &[Pending],
        ) -> Result<Written, DeliveryError> {
            let described = self.described.clone();
            let Some(client) = self.open.as_mut() else {
                return Err(DeliveryError::transient(format!(
                    "{described}: not connected"
                )));
            };
            let fail = |what: &str, e: tiberius::error::Error| classify(&described, what, e);
            client
                .begin_transaction()
                .await
                .map_err(|e| fail("beginning", e))?;
            let mark = super::marker_statements(super::Dialect::SqlServer).mark;
            let mut written = Vec::with_capacity(messages.len());
            for message in messages {
                let marked = client
                    .execute(mark, &[&key, &message.journal_id])
                    .await
                    .map_err(|e| fail("marking the message written", e))?
                    .total();
                if marked == 0 {
                    written.push(None);
                    continue;
                }
                for (n, row) in message.rows.iter().enumerate() {
                    let values: Vec<Option<&str>> = row.iter().map(|v| v.as_deref()).collect();
                    let params: Vec<&dyn tiberius::ToSql> =
                        values.iter().map(|v| v as &dyn tiberius::ToSql).collect();
                    client
                        .execute(plan.sql.as_str(), &params)
                        .await
                        .map_err(|e| fail(&which_row(messages, message, n), e))?;
                }
                written.push(Some(message.rows.len()));
            }
            if written.iter().all(Option::is_none) {
                client
                    .rollback_transaction()
                    .await
                    .map_err(|e| fail("rolling back", e))?;
            } else {
                client
                    .commit_transaction()
                    .await
                    .map_err(|e| fail("committing", e))?;
            }
            Ok(written)
        }
    }

    /// A refusal when the server refused the statement or a value; a transient failure
    /// for the connection, TLS, a deadlock or a lock timeout.
    fn classify(described: &str, what: &str, e: tiberius::error::Error) -> DeliveryError {
        match e {
            tiberius::error::Error::Server(token) => {
                // 1205 deadlock victim, 1222 lock timeout, 4060 database unavailable,
                // 18456 login failed, 40197/40501/40613/49918-49920 Azure's retry codes.
                let transient = matches!(
                    token.code(),
                    1205 | 1222 | 4060 | 18456 | 40197 | 40501 | 40613 | 49918..=49920
                );
                failure(
                    transient,
                    format!(
                        "{described}: {what}: {} (error {})",
                        token.message(),
                        token.code()
                    ),
                )
            }
            tiberius::error::Error::Conversion(_) | tiberius::error::Error::Utf16 => {
                failure(false, format!("{described}: {what}: {e}"))
            }
            other => DeliveryError::transient(format!("{described}: {what}: {other}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_translated_outside_strings_and_comments() {
        let sql = "insert into t (a, b, c) values ($1, '$2 stays', $2) -- $3 stays\n/* $3 */";
        let pg = translate(sql, Dialect::Postgres).unwrap();
        assert_eq!(pg.sql, sql);
        assert_eq!(pg.order, vec![1, 2]);
        let my = translate(sql, Dialect::Mysql).unwrap();
        assert_eq!(
            my.sql,
            "insert into t (a, b, c) values (?, '$2 stays', ?) -- $3 stays\n/* $3 */"
        );
        let lite = translate("values ($2, $1, $2)", Dialect::Sqlite).unwrap();
        assert_eq!(lite.sql, "values (?2, ?1, ?2)");
        assert_eq!(lite.order, vec![2, 1, 2]);
        let my = translate("values ($2, $1, $2)", Dialect::Mysql).unwrap();
        assert_eq!(my.sql, "values (?, ?, ?)");
        assert_eq!(my.order, vec![2, 1, 2]);
    }

    #[test]
    fn sql_server_statements_take_at_p_parameters_and_keep_bracketed_names() {
        let sql = "insert into [my $1 table] (mrn, value) values ($1, N'it''s $2') ; select $2";
        let ms = translate(sql, Dialect::SqlServer).unwrap();
        assert_eq!(
            ms.sql,
            "insert into [my $1 table] (mrn, value) values (@P1, N'it''s $2') ; select @P2"
        );
        assert_eq!(ms.order, vec![1, 2]);
    }

    #[test]
    fn dollar_quoted_strings_and_bare_question_marks() {
        let pg = translate("select $tag$ $1 $tag$, $$ $2 $$, $1", Dialect::Postgres).unwrap();
        assert_eq!(pg.order, vec![1]);
        assert!(translate("values (?)", Dialect::Mysql).is_err());
        assert!(translate("values ('open", Dialect::Mysql).is_err());
        assert!(translate("values ($0)", Dialect::Sqlite).is_err());
    }

    fn config(text: &str) -> Result<(), String> {
        let config: DestinationConfig =
            toml::from_str(&format!("name = \"d\"\ntype = \"database\"\n{text}"))
                .map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())
    }

    #[test]
    fn checks_name_their_key() {
        let base = "url = \"postgres://corridor@127.0.0.1/db\"\n";
        config(&format!(
            "{base}statement = \"insert into t values ($1, $2)\"\nparams = [\"PID-3.1\", \"OBX-5\"]\nfor_each = \"OBX\""
        ))
        .unwrap();
        let error = config(&format!(
            "{base}statement = \"insert into t values ($1, $2)\"\nparams = [\"PID-3.1\", \"OBX5\"]"
        ))
        .unwrap_err();
        assert!(error.contains("`params[1]` \"OBX5\""), "{error}");
        let error = config(&format!(
            "{base}statement = \"insert into t values ($1, $3)\"\nparams = [\"PID-3.1\", \"OBX-5\"]"
        ))
        .unwrap_err();
        assert!(error.contains("$3"), "{error}");
        let error = config(&format!(
            "{base}statement = \"insert into t values ($1)\"\nparams = [\"PID-3.1\", \"OBX-5\"]"
        ))
        .unwrap_err();
        assert!(error.contains("`params[1]` is not used"), "{error}");
        let error =
            config("url = \"postgres://corridor:secret@127.0.0.1/db\"\nstatement = \"select 1\"")
                .unwrap_err();
        assert!(error.contains("`url` holds a password"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        let error = config(&format!(
            "{base}statement = \"insert into t values ($1)\"\nparams = [\"OBX[*]-5\"]"
        ))
        .unwrap_err();
        assert!(error.contains("`params[0]`"), "{error}");
        let error = config(&format!(
            "{base}statement = \"insert into t values ($1)\"\nparams = [\"OBX-5\"]\nfor_each = \"OBXX\""
        ))
        .unwrap_err();
        assert!(error.contains("`for_each`"), "{error}");
        let error = config("statement = \"select 1\"").unwrap_err();
        assert!(error.contains("`url`"), "{error}");
    }

    #[test]
    fn one_row_per_for_each_segment() {
        let config: DatabaseDestinationConfig = toml::from_str(
            "url = \"sqlite://x.db\"\nstatement = \"insert into t values ($1, $2, $3)\"\nparams = [\"PID-3.1\", \"OBX-3.1\", \"OBX-5\"]\nfor_each = \"OBX\"",
        )
        .unwrap();
        let plan = config.plan().unwrap();
        let message = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5\rPID|1||MRN1^^^H||DOE^JANE\rOBR|1\rOBX|1|NM|GLU^Glucose||5.5\rOBX|2|NM|NA^Sodium||\"\"\r";
        let rows = rows_of(&plan, message).unwrap();
        assert_eq!(
            rows,
            vec![
                vec![Some("MRN1".into()), Some("GLU".into()), Some("5.5".into())],
                vec![Some("MRN1".into()), Some("NA".into()), None],
            ]
        );
    }
    #[test]
    fn sql_server_urls_and_statements() {
        let config: DatabaseDestinationConfig = toml::from_str(
            "url = \"mssql://corridor@db.example.org/reporting\"\npassword_env = \"P\"\n\
             statement = \"insert into [results] (mrn, code, value) values ($1, $2, $3)\"\n\
             params = [\"PID-3.1\", \"OBX-3.1\", \"OBX-5\"]\nfor_each = \"OBX\"",
        )
        .unwrap();
        let plan = config.plan().unwrap();
        assert_eq!(
            plan.sql,
            "insert into [results] (mrn, code, value) values (@P1, @P2, @P3)"
        );
        // The same statement as PostgreSQL runs it, with @Pn for $n.
        let postgres = translate(config.statement.as_deref().unwrap(), Dialect::Postgres).unwrap();
        assert_eq!(
            plan.sql.replace("@P", "$"),
            postgres.sql,
            "SQL Server's text differs from PostgreSQL's beyond the placeholders"
        );
        assert_eq!(plan.order, postgres.order);
        assert_eq!(
            mssql::parse_url("sqlserver://sa@127.0.0.1:14330/lab").unwrap(),
            mssql::Url {
                user: "sa".into(),
                host: "127.0.0.1".into(),
                port: 14330,
                database: "lab".into()
            }
        );
        assert_eq!(mssql::parse_url("mssql://sa@db/lab").unwrap().port, 1433);
        for (url, says) in [
            ("mssql://db.example.org/lab", "needs a user"),
            ("mssql://sa@db.example.org", "needs a database"),
            ("mssql://sa@db:port/lab", "not a number"),
            ("mssql://sa@db/lab?encrypt=true", "no options"),
            ("mssql://sa:secret@db/lab", "holds a password"),
        ] {
            let error = Target::parse(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
            assert!(!error.contains("secret"), "{error}");
        }
    }

    #[test]
    fn every_database_keeps_the_same_marker_table() {
        let dialects = [
            Dialect::Postgres,
            Dialect::Mysql,
            Dialect::Sqlite,
            Dialect::SqlServer,
        ];
        for dialect in dialects {
            let markers = marker_statements(dialect);
            for part in [
                "create table",
                "corridor_delivered (",
                "destination ",
                "journal_id bigint not null",
                "delivered_at ",
                "primary key (destination, journal_id)",
            ] {
                // SQLite's integer is its 64-bit integer.
                let part = if dialect == Dialect::Sqlite {
                    part.replace("bigint", "integer")
                } else {
                    part.to_owned()
                };
                assert!(markers.create.contains(&part), "{dialect:?}: {part}");
            }
            assert!(
                markers
                    .mark
                    .starts_with("insert into corridor_delivered (destination, journal_id)")
                    || markers.mark.starts_with(
                        "insert ignore into corridor_delivered (destination, journal_id)"
                    )
                    || markers.mark.starts_with(
                        "insert or ignore into corridor_delivered (destination, journal_id)"
                    ),
                "{dialect:?}"
            );
        }
        // SQL Server's check-then-insert, without its lock hint, marks once on SQLite
        // (the tests in tests/database.rs run it on PostgreSQL and MariaDB too).
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(marker_statements(Dialect::Sqlite).create)
            .unwrap();
        let mark = translate(&sql_server_mark_portable(), Dialect::Sqlite).unwrap();
        assert_eq!(mark.order, vec![1, 2, 1, 2]);
        let first = conn.execute(&mark.sql, ("lab/reporting", 7_i64)).unwrap();
        let again = conn.execute(&mark.sql, ("lab/reporting", 7_i64)).unwrap();
        let other = conn.execute(&mark.sql, ("lab/reporting", 8_i64)).unwrap();
        assert_eq!((first, again, other), (1, 0, 1));
    }
}
