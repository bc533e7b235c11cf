//! The database source: `source = { type = "database", url = "postgres://corridor@db/orders",
//! query = "select id, mrn, name from orders where id > $1 order by id limit 100",
//! template = "MSH|^~\\&|...", interval = "5s" }`.
//!
//! Every `interval` the query runs with the last stored position as `$1` (at first
//! `initial_position`, default `0`). Each row it returns, in the query's order, becomes one
//! HL7 v2 message through `template`: the template's `{column}` placeholders take the
//! row's values, escaped with the HL7 escape rules for the template's own delimiters
//! (`|` `\F\`, `^` `\S\`, `~` `\R\`, `&` `\T\`, `\` `\E\`, a line break `\X0D\` or `\X0A\`),
//! so no value can add a field, a component or a segment. NULL is empty. When the
//! template's MSH-10 is empty it is filled with `CHANNEL-POSITION`, the same for the same
//! row, so a row read twice is recognisable (and, in the duplicate window, stored once).
//!
//! The row's position (`position_column`, default `id`) is written to `source_positions`
//! in the SAME transaction that appends its message to the journal (see
//! [`Intake::receive_positioned`]): a crash neither loses nor repeats a row. A
//! placeholder naming no column of the query is an error of that row's message: it is
//! stored as `rejected`, its reason naming the placeholder, and the source goes on.
//!
//! After the commit the optional `mark_processed` statement runs once per stored row with
//! its position as `$1`. A failure is logged and the statement is run again at the next
//! poll; a row may therefore be marked twice, and a crash between the commit and the mark
//! leaves that row unmarked (the position, not the mark, decides what is read).
//!
//! A database that cannot be reached, or a query that fails, is tried again after 1 s,
//! then 2 s, 4 s, ... up to a minute, logged with the database's scheme, host and name
//! and the database's error, never a row's value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use conf::ConfigDuration;
use delivery::query::{QuerySettings, SourceQuery};
use serde::Deserialize;
use serde::de::{self, Deserializer};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use super::{Listener, RunningSource};
use crate::intake::{Intake, IntakeStatus, Origin, Positioned};

/// Most rows handed to the intake in one write.
const ROWS_PER_WRITE: usize = 100;

/// The longest wait between tries while the database fails.
const MOST_BACKOFF: Duration = Duration::from_secs(60);

/// How long one query or mark statement may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(60);

/// `source = { type = "database", ... }`: a database source's own keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSourceConfig {
    /// `postgres://user@host:port/db`, `mysql://` or `mariadb://user@host:port/db`, or
    /// `sqlite://path` (relative to the configuration file; `sqlite:///abs/path`). No
    /// password in it.
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file whose first line is the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// TLS towards PostgreSQL or MySQL: `{ ca = "...", cert = "...", key = "..." }`.
    #[serde(default)]
    pub tls: Option<delivery::TlsConfig>,
    /// The query, with `$1` for the last stored position; it should order its rows by
    /// the position and may limit them.
    #[serde(default)]
    pub query: Option<String>,
    /// The column holding each row's position (default `id`).
    #[serde(default = "default_position_column")]
    pub position_column: String,
    /// How often the query runs when the last run found nothing new (default `"5s"`).
    #[serde(default = "default_interval")]
    pub interval: ConfigDuration,
    /// The position before the first row (default `0`), used while none is stored.
    #[serde(default)]
    pub initial_position: InitialPosition,
    /// The HL7 v2 message each row becomes, with `{column}` placeholders.
    #[serde(default)]
    pub template: Option<String>,
    /// A statement run for each stored row, with its position as `$1`.
    #[serde(default)]
    pub mark_processed: Option<String>,
}

fn default_position_column() -> String {
    "id".to_owned()
}
fn default_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}

/// `initial_position`: a number or a string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialPosition(pub String);

impl Default for InitialPosition {
    fn default() -> Self {
        InitialPosition("0".to_owned())
    }
}

impl<'de> Deserialize<'de> for InitialPosition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = InitialPosition;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number or a string")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(InitialPosition(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(InitialPosition(v.to_string()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(InitialPosition(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl DatabaseSourceConfig {
    fn query_settings(&self) -> QuerySettings<'_> {
        QuerySettings {
            url: self.url.as_deref(),
            password_env: self.password_env.as_deref(),
            password_file: self.password_file.as_deref(),
            tls: self.tls.as_ref(),
            query: self.query.as_deref(),
            mark_processed: self.mark_processed.as_deref(),
        }
    }

    /// Problems with these keys, as (key, message); `at` is `channels.NAME`.
    pub(crate) fn check(&self, at: &str) -> Vec<(String, String)> {
        let mut errors = Vec::new();
        if let Err((key, message)) = self.query_settings().check() {
            errors.push((format!("{at}.source.{key}"), message));
        }
        match self.template.as_deref() {
            None => errors.push((
                format!("{at}.source.template"),
                "a database source needs template = \"MSH|^~\\\\&|...\" with {column} placeholders"
                    .to_owned(),
            )),
            Some(text) => {
                if let Err(message) = Template::parse(text) {
                    errors.push((format!("{at}.source.template"), message));
                }
            }
        }
        if self.position_column.trim().is_empty() {
            errors.push((
                format!("{at}.source.position_column"),
                "is empty; name the column holding each row's position".to_owned(),
            ));
        }
        if self.interval.0.is_zero() {
            errors.push((
                format!("{at}.source.interval"),
                "must be longer than 0".to_owned(),
            ));
        }
        errors
    }
}

/// A message template: HL7 v2 text with `{column}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    /// Field separator, then component, repetition, escape and subcomponent characters,
    /// and truncation when MSH-2 has it.
    field: char,
    component: char,
    repetition: char,
    escape: char,
    subcomponent: char,
    truncation: Option<char>,
    /// MSH-10 is empty: the row's control id is filled in.
    fill_control_id: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Column(String),
}

impl Template {
    /// Reads a template: segments separated by line breaks (`\r`, `\n` or `\r\n`),
    /// starting with MSH. A `{` not followed by a name and `}` is kept as it is.
    pub fn parse(text: &str) -> Result<Template, String> {
        let text = text.replace("\r\n", "\r").replace('\n', "\r");
        let text = text.trim_start().trim_end_matches(['\r', ' ', '\t']);
        let chars: Vec<char> = text.chars().collect();
        if chars.len() < 8 || !text.starts_with("MSH") {
            return Err("must be an HL7 v2 message starting with MSH and its encoding characters (MSH|^~\\&|...)".into());
        }
        let field = chars[3];
        let encoding: Vec<char> = chars[4..]
            .iter()
            .take_while(|&&c| c != field)
            .copied()
            .collect();
        if encoding.len() < 4 || encoding.contains(&'{') || encoding.contains(&'\r') {
            return Err(format!(
                "MSH-2 {:?} must hold four encoding characters (^~\\&)",
                encoding.iter().collect::<String>()
            ));
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] == '{' {
                let name: String = chars[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .collect();
                let end = i + 1 + name.chars().count();
                if !name.is_empty() && chars.get(end) == Some(&'}') {
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Column(name));
                    i = end + 1;
                    continue;
                }
            }
            literal.push(chars[i]);
            i += 1;
        }
        literal.push('\r');
        parts.push(Part::Text(literal));
        let header = text.split('\r').next().unwrap_or_default();
        let msh10 = header.split(field).nth(9).unwrap_or_default();
        Ok(Template {
            parts,
            field,
            component: encoding[0],
            repetition: encoding[1],
            escape: encoding[2],
            subcomponent: encoding[3],
            truncation: encoding.get(4).copied(),
            fill_control_id: msh10.is_empty(),
        })
    }

    /// The columns the placeholders name, in order.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Column(name) => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// `value` with every delimiter and line break escaped.
    pub fn escape(&self, value: &str) -> String {
        let e = self.escape;
        let mut out = String::with_capacity(value.len());
        for c in value.chars() {
            let code = match c {
                _ if c == e => "E",
                _ if c == self.field => "F",
                _ if c == self.component => "S",
                _ if c == self.subcomponent => "T",
                _ if c == self.repetition => "R",
                _ if Some(c) == self.truncation => "P",
                '\r' => "X0D",
                '\n' => "X0A",
                _ => {
                    out.push(c);
                    continue;
                }
            };
            out.push(e);
            out.push_str(code);
            out.push(e);
        }
        out
    }

    /// The message of one row: `columns` are the query's column names, `row` their
    /// values. A placeholder naming no column is left empty and reported (the message
    /// is then stored as rejected with that reason).
    pub fn render(
        &self,
        columns: &[String],
        row: &[Option<String>],
        control_id: &str,
    ) -> (String, Option<String>) {
        let mut out = String::new();
        let mut problem = None;
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Column(name) => match column_index(columns, name) {
                    Some(i) => {
                        if let Some(Some(value)) = row.get(i) {
                            out.push_str(&self.escape(value));
                        }
                    }
                    None => {
                        problem.get_or_insert_with(|| {
                            format!(
                                "the template's placeholder {{{name}}} names no column the query returns ({})",
                                columns.join(", ")
                            )
                        });
                    }
                },
            }
        }
        if self.fill_control_id {
            let end = out.find('\r').unwrap_or(out.len());
            let mut fields: Vec<String> = out[..end].split(self.field).map(str::to_owned).collect();
            if fields.len() < 10 {
                fields.resize(10, String::new());
            }
            fields[9] = self.escape(control_id);
            let header = fields.join(&self.field.to_string());
            out.replace_range(..end, &header);
        }
        (out, problem)
    }
}

/// The index of `name` among `columns`: the same name, else the same ignoring case.
fn column_index(columns: &[String], name: &str) -> Option<usize> {
    columns
        .iter()
        .position(|c| c == name)
        .or_else(|| columns.iter().position(|c| c.eq_ignore_ascii_case(name)))
}

/// A running database source.
pub struct DatabaseSource {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Why a database source did not start: the key (`url`, `password_env`, ...) and what
/// is wrong.
pub type StartProblem = (String, String);

impl DatabaseSource {
    /// Starts polling for `intake`'s channel: reads the password and TLS files (relative
    /// to `base_dir`) and the stored position now, and connects at the first poll.
    pub fn start(
        config: &DatabaseSourceConfig,
        base_dir: &Path,
        intake: Intake,
    ) -> Result<DatabaseSource, StartProblem> {
        let query = SourceQuery::new(&config.query_settings(), base_dir)
            .map_err(|(key, message)| (key.to_owned(), message))?;
        let template = Template::parse(config.template.as_deref().unwrap_or_default())
            .map_err(|message| ("template".to_owned(), message))?;
        if config.interval.0.is_zero() {
            return Err(("interval".to_owned(), "must be longer than 0".to_owned()));
        }
        let position = crate::intake::stored_position(intake.store(), intake.channel())
            .map_err(|e| {
                (
                    "url".to_owned(),
                    format!("cannot read the source's stored position: {e}"),
                )
            })?
            .unwrap_or_else(|| config.initial_position.0.clone());
        let poller = Poller {
            origin: Origin::new(query.describe().to_owned()),
            query,
            template,
            position_column: config.position_column.clone(),
            interval: config.interval.0,
            position,
            unmarked: Vec::new(),
            intake,
        };
        info!(channel = %poller.intake.channel(), database = %poller.query.describe(), "database source polling");
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(poller.run(stopped));
        Ok(DatabaseSource { stop, task })
    }

    /// Stops after the rows being stored (if any) are stored.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl RunningSource for DatabaseSource {
    fn listener(&self) -> Option<Listener> {
        None
    }

    async fn shutdown(self, _grace: Duration) -> bool {
        DatabaseSource::shutdown(self).await;
        true
    }
}

struct Poller {
    query: SourceQuery,
    template: Template,
    position_column: String,
    interval: Duration,
    /// The last stored position.
    position: String,
    /// Positions of stored rows whose mark statement has not run yet.
    unmarked: Vec<String>,
    intake: Intake,
    origin: Origin,
}

/// What one poll came to.
enum Polled {
    /// Rows were stored; poll again now.
    More,
    /// Nothing new; wait `interval`.
    Idle,
    /// The database or the store failed; wait and back off.
    Failed,
}

impl Poller {
    async fn run(mut self, mut stopped: watch::Receiver<bool>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if *stopped.borrow() {
                return;
            }
            let wait = match self.poll().await {
                Polled::More => {
                    backoff = Duration::from_secs(1);
                    Duration::ZERO
                }
                Polled::Idle => {
                    backoff = Duration::from_secs(1);
                    self.interval
                }
                Polled::Failed => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(MOST_BACKOFF);
                    wait.max(self.interval.min(MOST_BACKOFF))
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    async fn poll(&mut self) -> Polled {
        let channel = self.intake.channel().clone();
        self.mark_pending().await;
        let fetched = tokio::time::timeout(QUERY_TIMEOUT, self.query.fetch(&self.position)).await;
        let rows = match fetched {
            Ok(Ok(rows)) => rows,
            Ok(Err(err)) => {
                warn!(channel = %channel, error = %err, "the database source's query failed; trying again");
                return Polled::Failed;
            }
            Err(_) => {
                warn!(channel = %channel, database = %self.query.describe(), "the database source's query did not answer in time; trying again");
                return Polled::Failed;
            }
        };
        if rows.rows.is_empty() {
            return Polled::Idle;
        }
        let Some(at) = column_index(&rows.columns, &self.position_column) else {
            error!(channel = %channel, column = %self.position_column, columns = %rows.columns.join(", "), "the query returns no such position column (channels.{channel}.source.position_column); nothing is read until it does");
            return Polled::Failed;
        };
        let total = rows.rows.len();
        let before = self.position.clone();
        let mut stored_rows = 0;
        for chunk in rows.rows.chunks(ROWS_PER_WRITE) {
            let mut batch = Vec::with_capacity(chunk.len());
            for row in chunk {
                let Some(Some(position)) = row.get(at) else {
                    error!(channel = %channel, column = %self.position_column, "a row's position column is NULL; nothing after it is read until it is not");
                    break;
                };
                let control_id = format!("{channel}-{position}");
                let (text, problem) = self.template.render(&rows.columns, row, &control_id);
                batch.push(Positioned {
                    raw: Bytes::from(text),
                    problem,
                    position: position.clone(),
                });
            }
            let offered = batch.len();
            let positions: Vec<String> = batch.iter().map(|p| p.position.clone()).collect();
            let answers = self.intake.receive_positioned(batch, &self.origin).await;
            let stored = answers
                .iter()
                .take_while(|a| !matches!(a.status, IntakeStatus::Failed))
                .count();
            for (answer, position) in answers.iter().zip(&positions).take(stored) {
                if let IntakeStatus::Rejected { id, reason } = &answer.status {
                    warn!(channel = %channel, id = %id, reason = %reason, "a row's message was stored as rejected");
                }
                self.position.clone_from(position);
                self.unmarked.push(position.clone());
            }
            stored_rows += stored;
            if stored < offered || offered < chunk.len() {
                self.mark_pending().await;
                if stored < offered {
                    warn!(channel = %channel, "the store could not take a row's message; reading it again");
                }
                return Polled::Failed;
            }
        }
        self.mark_pending().await;
        debug!(channel = %channel, rows = stored_rows, "rows stored");
        if stored_rows == total && self.position == before {
            // Only rows at the stored position (a query with `>=`): wait, not spin.
            warn!(channel = %channel, "the query returned no row past the stored position; its condition should be `> $1`");
            Polled::Idle
        } else if stored_rows == total {
            Polled::More
        } else {
            Polled::Failed
        }
    }

    /// Runs the mark statement for every stored row not marked yet; one that fails
    /// stays (with those after it) for the next poll.
    async fn mark_pending(&mut self) {
        if !self.query.marks() {
            self.unmarked.clear();
            return;
        }
        let mut done = 0;
        for position in &self.unmarked {
            match tokio::time::timeout(QUERY_TIMEOUT, self.query.mark(position)).await {
                Ok(Ok(())) => done += 1,
                Ok(Err(err)) => {
                    warn!(channel = %self.intake.channel(), error = %err, "the database source's mark_processed failed; it runs again at the next poll");
                    break;
                }
                Err(_) => {
                    warn!(channel = %self.intake.channel(), "the database source's mark_processed did not answer in time; it runs again at the next poll");
                    break;
                }
            }
        }
        self.unmarked.drain(..done);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_add_fields_components_or_segments() {
        let template =
            Template::parse("MSH|^~\\&|DB|H|||||ORM^O01||P|2.5\nPID|1||{mrn}||{name}\n").unwrap();
        assert_eq!(template.columns().collect::<Vec<_>>(), ["mrn", "name"]);
        let columns = vec!["id".to_owned(), "mrn".to_owned(), "name".to_owned()];
        let row = vec![
            Some("7".to_owned()),
            Some("M|1^2~3&4\\5".to_owned()),
            Some("DOE\rOBX|1".to_owned()),
        ];
        let (text, problem) = template.render(&columns, &row, "orders-7");
        assert_eq!(problem, None);
        assert_eq!(
            text,
            "MSH|^~\\&|DB|H|||||ORM^O01|orders-7|P|2.5\rPID|1||M\\F\\1\\S\\2\\R\\3\\T\\4\\E\\5||DOE\\X0D\\OBX\\F\\1\r"
        );
        let message = hl7v2::Message::parse(text.as_bytes()).unwrap();
        assert_eq!(message.len(), 2);
    }

    #[test]
    fn an_unknown_placeholder_is_reported_and_msh10_kept_when_given() {
        let template =
            Template::parse("MSH|^~\\&|DB|H|||||ORM^O01|{id}|P|2.5\rPID|1||{mrn}").unwrap();
        let columns = vec!["id".to_owned()];
        let (text, problem) = template.render(&columns, &[Some("9".to_owned())], "x-9");
        assert!(
            text.starts_with("MSH|^~\\&|DB|H|||||ORM^O01|9|P|2.5\rPID|1||\r"),
            "{text}"
        );
        assert!(problem.unwrap().contains("{mrn}"));
        assert!(Template::parse("PID|1").is_err());
        assert!(Template::parse("MSH|^~|A").is_err());
    }

    #[test]
    fn initial_position_takes_a_number_or_a_string() {
        let config: DatabaseSourceConfig = toml::from_str(
            "url = \"sqlite://x.db\"\nquery = \"select id from t where id > $1\"\ntemplate = \"MSH|^~\\\\&|A\"\ninitial_position = 42",
        )
        .unwrap();
        assert_eq!(config.initial_position.0, "42");
        assert!(config.check("channels.x").is_empty());
        let config: DatabaseSourceConfig = toml::from_str(
            "url = \"sqlite://x.db\"\nquery = \"select id from t\"\ninterval = \"0s\"\ninitial_position = \"2026\"",
        )
        .unwrap();
        assert_eq!(config.initial_position.0, "2026");
        let keys: Vec<String> = config
            .check("channels.x")
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(
            keys,
            [
                "channels.x.source.query",
                "channels.x.source.template",
                "channels.x.source.interval"
            ]
        );
    }
}
