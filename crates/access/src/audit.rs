//! The audit trail: one append-only, hash-chained record per PHI read and per change.
//!
//! Each record's hash is the SHA-256 of the previous record's hash followed by the
//! record's canonical content (its JSON, sequence number included), so editing,
//! deleting or reordering rows breaks the chain at the first record touched, and
//! [`Audit::verify`] names it. A record folded from the audit file keeps the hash its
//! line has there (`line` set: the file's chain, over the file's line numbers, whose
//! canonical JSON and SHA-256 the request's thread already computed), so folding
//! hashes nothing again; it links to the record folded before it, and a record
//! committed directly (`line` NULL) links to the row before it. The newest record's sequence number and hash are also
//! kept in `audit_head`, so deleting the newest records is found too. A trigger refuses
//! `UPDATE` of a record; the chain is what catches someone who drops it.
//!
//! Writing is part of serving a request: [`Audit::append`] resolves once the record is
//! committed (written to the WAL, so a crash of the process cannot lose it), and a route
//! whose record cannot be committed refuses the request. It joins the store's group
//! commit, and does not wait for its own fsync: one starts right after the commit, so a
//! power loss can lose only the records answered during the last fsync or two
//! (milliseconds); see `docs/security.md`, "How durable the audit trail is". Records are kept on their
//! own retention ([`DEFAULT_RETENTION`], six years) and never pruned with messages;
//! [`Audit::prune`] drops the oldest and records where the remaining chain starts.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};
use store::rusqlite::types::Value as SqlValue;
use store::rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};
use store::{Migration, Store, UnixMicros};

use crate::access::Pending;
use crate::audit_file::{Appender, block_on, fold_blocking};
pub use crate::audit_file::{FOLD_DELAY, path_of as file_of};
use crate::secret::sha256_of;
use crate::{Error, Principal};

/// The component name in `component_schema`.
pub const COMPONENT: &str = "audit";

/// How long records are kept unless configured otherwise: six years (HIPAA's
/// documentation retention).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(6 * 366 * 86_400);

/// The `audit` component's history, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "hash-chained audit trail",
        sql: r#"
    CREATE TABLE audit_log (
        seq          INTEGER PRIMARY KEY,
        at           INTEGER NOT NULL,
        actor        TEXT    NOT NULL,
        owner        TEXT,
        method       TEXT    NOT NULL,
        address      TEXT,
        tls_identity TEXT,
        action       TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        resource     TEXT,
        patients     TEXT    NOT NULL,
        outcome      TEXT    NOT NULL,
        detail       TEXT,
        prev_hash    BLOB    NOT NULL,
        hash         BLOB    NOT NULL
    );
    CREATE INDEX audit_log_by_time ON audit_log (at);
    CREATE TABLE audit_patients (
        patient TEXT    NOT NULL,
        seq     INTEGER NOT NULL,
        PRIMARY KEY (patient, seq)
    ) WITHOUT ROWID;
    CREATE TABLE audit_head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  INTEGER NOT NULL,
        hash BLOB    NOT NULL
    );
    CREATE TABLE audit_anchor (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        first_seq INTEGER NOT NULL,
        prev_hash BLOB    NOT NULL,
        pruned_at INTEGER NOT NULL
    );
    CREATE TRIGGER audit_log_append_only BEFORE UPDATE ON audit_log
    BEGIN
        SELECT RAISE(ABORT, 'audit records are append-only');
    END;
"#,
    },
    Migration {
        version: 2,
        description: "how far the audit file is folded into audit_log",
        sql: r#"
    CREATE TABLE audit_folded (
        id     INTEGER PRIMARY KEY CHECK (id = 1),
        offset INTEGER NOT NULL,
        line   INTEGER NOT NULL,
        hash   BLOB    NOT NULL
    );
"#,
    },
    Migration {
        version: 3,
        description: "indexes for the audit trail's filters (who, action, outcome, resource)",
        sql: r#"
    CREATE INDEX audit_log_by_actor ON audit_log (actor, seq);
    CREATE INDEX audit_log_by_owner ON audit_log (owner, seq) WHERE owner IS NOT NULL;
    CREATE INDEX audit_log_by_action ON audit_log (action, seq);
    CREATE INDEX audit_log_by_outcome ON audit_log (outcome, seq);
    CREATE INDEX audit_log_by_resource ON audit_log (resource, seq) WHERE resource IS NOT NULL;
"#,
    },
    Migration {
        version: 4,
        description: "records folded from the audit file keep the file's hash and line number",
        sql: r#"
    ALTER TABLE audit_log ADD COLUMN line INTEGER;
    CREATE TABLE audit_line_anchor (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        line INTEGER NOT NULL,
        hash BLOB    NOT NULL
    );
    INSERT INTO audit_line_anchor (id, line, hash)
        SELECT 1, line, hash FROM audit_folded WHERE id = 1;
"#,
    },
];

/// The hash before the first record.
pub(crate) const GENESIS: [u8; 32] = [0; 32];

/// What kind of operation, as FHIR's `AuditEvent.action` codes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ActionKind {
    /// `C`: create.
    Create,
    /// `R`: read or view.
    Read,
    /// `U`: update.
    Update,
    /// `D`: delete.
    Delete,
    /// `E`: execute (search, reprocess, resend, login, export...).
    Execute,
}

impl ActionKind {
    /// The one-letter code (`C`, `R`, `U`, `D`, `E`).
    pub fn code(self) -> &'static str {
        match self {
            ActionKind::Create => "C",
            ActionKind::Read => "R",
            ActionKind::Update => "U",
            ActionKind::Delete => "D",
            ActionKind::Execute => "E",
        }
    }

    /// The kind of a one-letter code, None for another text.
    pub fn parse(code: &str) -> Option<ActionKind> {
        match code {
            "C" => Some(ActionKind::Create),
            "R" => Some(ActionKind::Read),
            "U" => Some(ActionKind::Update),
            "D" => Some(ActionKind::Delete),
            "E" => Some(ActionKind::Execute),
            _ => None,
        }
    }

    pub(crate) fn from_code(code: &str) -> ActionKind {
        match code {
            "C" => ActionKind::Create,
            "R" => ActionKind::Read,
            "U" => ActionKind::Update,
            "D" => ActionKind::Delete,
            _ => ActionKind::Execute,
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused: no credentials, bad credentials, not allowed.
    Denied,
    /// Failed while being done.
    Failed,
}

impl Outcome {
    /// The word stored and exported.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }

    /// The outcome a word names (`success`, `denied`, `failed`), None for another.
    pub fn named(text: &str) -> Option<Outcome> {
        match text {
            "success" => Some(Outcome::Success),
            "denied" => Some(Outcome::Denied),
            "failed" => Some(Outcome::Failed),
            _ => None,
        }
    }

    pub(crate) fn parse(text: &str) -> Outcome {
        match text {
            "success" => Outcome::Success,
            "denied" => Outcome::Denied,
            _ => Outcome::Failed,
        }
    }

    /// FHIR's `AuditEvent.outcome`: 0 success, 4 minor failure, 8 serious failure.
    fn fhir_code(self) -> &'static str {
        match self {
            Outcome::Success => "0",
            Outcome::Denied => "4",
            Outcome::Failed => "8",
        }
    }
}

/// One audit record: when, who, from where, what, and the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// When (microseconds since the Unix epoch).
    pub at: i64,
    /// Who: `user:NAME`, `token:ID`, `oidc:NAME`, `anonymous`, or for a failed login
    /// the name tried (`user:NAME`).
    pub actor: String,
    /// For a token, the user who owns it.
    pub owner: Option<String>,
    /// How the actor authenticated (`session`, `token`, `oidc`, `password`, `cli`,
    /// `none`).
    pub method: String,
    /// The peer address.
    pub address: Option<String>,
    /// The TLS client certificate's identity.
    pub tls_identity: Option<String>,
    /// What was done, e.g. `message.read`, `fhir.search`, `user.add`, `login`.
    pub action: String,
    /// Its kind.
    pub kind: ActionKind,
    /// What it was done to, e.g. `message/42`, `Patient/p1`, `user/alice`.
    pub resource: Option<String>,
    /// The patients concerned (`Patient/ID` references or enterprise ids).
    pub patients: Vec<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it failed or was refused, or other detail. Never PHI beyond the ids above.
    pub detail: Option<String>,
}

impl AuditRecord {
    /// A record of `principal` doing `action` now.
    pub fn by(principal: &Principal, action: &str, kind: ActionKind, outcome: Outcome) -> Self {
        AuditRecord {
            at: UnixMicros::now().0,
            actor: principal.actor.audit_name(),
            owner: principal.actor.owner().map(str::to_owned),
            method: principal.method.as_str().to_owned(),
            address: principal.address.map(|a| a.ip().to_string()),
            tls_identity: principal.tls_identity.clone(),
            action: action.to_owned(),
            kind,
            resource: None,
            patients: Vec::new(),
            outcome,
            detail: None,
        }
    }

    /// A record of something done from the command line by the local operator.
    pub fn cli(action: &str, kind: ActionKind, resource: &str) -> Self {
        AuditRecord::acting_as("cli", action, kind).resource(resource)
    }

    /// A record of something Corridor did by itself (the first start's admin token).
    pub fn system(action: &str, kind: ActionKind) -> Self {
        AuditRecord::acting_as("corridor", action, kind)
    }

    fn acting_as(actor: &str, action: &str, kind: ActionKind) -> Self {
        AuditRecord {
            at: UnixMicros::now().0,
            actor: actor.to_owned(),
            owner: None,
            method: actor.to_owned(),
            address: None,
            tls_identity: None,
            action: action.to_owned(),
            kind,
            resource: None,
            patients: Vec::new(),
            outcome: Outcome::Success,
            detail: None,
        }
    }

    /// Sets the resource.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Adds the patients concerned.
    pub fn patients<I: IntoIterator<Item = S>, S: Into<String>>(mut self, patients: I) -> Self {
        self.patients.extend(patients.into_iter().map(Into::into));
        self
    }

    /// Sets the detail.
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// The bytes the hash covers: the record and its sequence number as JSON, fields
    /// in a fixed order.
    pub(crate) fn canonical(&self, seq: i64) -> Vec<u8> {
        let mut out = Vec::with_capacity(384);
        self.canonical_into(seq, &mut out);
        out
    }

    /// [`AuditRecord::canonical`] appended to `out` (the audit file's line buffer).
    pub(crate) fn canonical_into(&self, seq: i64, out: &mut Vec<u8>) {
        #[derive(Serialize)]
        struct Canonical<'a> {
            seq: i64,
            at: i64,
            actor: &'a str,
            owner: Option<&'a str>,
            method: &'a str,
            address: Option<&'a str>,
            tls_identity: Option<&'a str>,
            action: &'a str,
            kind: &'a str,
            resource: Option<&'a str>,
            patients: &'a [String],
            outcome: &'a str,
            detail: Option<&'a str>,
        }
        let written = serde_json::to_writer(
            &mut *out,
            &Canonical {
                seq,
                at: self.at,
                actor: &self.actor,
                owner: self.owner.as_deref(),
                method: &self.method,
                address: self.address.as_deref(),
                tls_identity: self.tls_identity.as_deref(),
                action: &self.action,
                kind: self.kind.code(),
                resource: self.resource.as_deref(),
                patients: &self.patients,
                outcome: self.outcome.as_str(),
                detail: self.detail.as_deref(),
            },
        );
        // Serializing these types into a `Vec` cannot fail (no maps with non-string
        // keys, no I/O); should it, the hash covers what was written and will not match.
        debug_assert!(written.is_ok());
    }
}

pub(crate) fn chain_hash(prev: &[u8], record: &AuditRecord, seq: i64) -> [u8; 32] {
    chain_hash_of(prev, &record.canonical(seq))
}

/// [`chain_hash`] of a record whose canonical bytes are at hand (hashed in place, not
/// copied after `prev` first).
pub(crate) fn chain_hash_of(prev: &[u8], canonical: &[u8]) -> [u8; 32] {
    sha256_of(&[prev, canonical])
}

/// A record as stored, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its sequence number (1, 2, ...).
    pub seq: i64,
    /// The record.
    pub record: AuditRecord,
    /// The previous record's hash.
    pub prev_hash: Vec<u8>,
    /// This record's hash.
    pub hash: Vec<u8>,
}

fn stored_from_row(row: &Row<'_>) -> store::rusqlite::Result<StoredRecord> {
    let patients: String = row.get("patients")?;
    let kind: String = row.get("kind")?;
    let outcome: String = row.get("outcome")?;
    Ok(StoredRecord {
        seq: row.get("seq")?,
        record: AuditRecord {
            at: row.get("at")?,
            actor: row.get("actor")?,
            owner: row.get("owner")?,
            method: row.get("method")?,
            address: row.get("address")?,
            tls_identity: row.get("tls_identity")?,
            action: row.get("action")?,
            kind: ActionKind::from_code(&kind),
            resource: row.get("resource")?,
            // A damaged list reads as a marker the hash will not match.
            patients: serde_json::from_str(&patients).unwrap_or_else(|_| vec![patients]),
            outcome: Outcome::parse(&outcome),
            detail: row.get("detail")?,
        },
        prev_hash: row.get("prev_hash")?,
        hash: row.get("hash")?,
    })
}

/// Appends `record` inside the caller's write (for changes audited in their own
/// transaction, and records committed to the database directly); returns its sequence
/// number. Its hash covers the chain's head and its canonical JSON with that number.
pub fn append_in(conn: &Connection, record: &AuditRecord) -> store::Result<i64> {
    let (seq, prev) = read_head(conn)?;
    let seq = seq + 1;
    let hash = chain_hash(&prev, record, seq);
    Rows::new(conn)?.insert(seq, record, &prev, &hash, None)?;
    write_head(conn, seq, &hash)?;
    Ok(seq)
}

/// A line of the audit file to fold into `audit_log`: its number in the file, the hash
/// of the line before it, its own hash (the file's chain), and its record.
pub(crate) struct FileLine<'a> {
    pub(crate) line: i64,
    pub(crate) prev: &'a [u8],
    pub(crate) hash: &'a [u8],
    pub(crate) record: &'a AuditRecord,
}

/// Appends the audit file's `lines` in order inside the caller's write, each keeping
/// the link and hash it has in the file (the file's chain, over its line numbers):
/// nothing is serialized or hashed again, the fold only inserts. Reads and moves the
/// chain's head once for all of them; returns the last one's sequence number (the
/// head's when there are none). [`Audit::verify`] checks these rows against the
/// file's chain (consecutive line numbers, each linked to the line before) and the
/// others against the row before them.
pub(crate) fn append_lines_in<'a>(
    conn: &Connection,
    lines: impl IntoIterator<Item = FileLine<'a>>,
) -> store::Result<i64> {
    let (mut seq, _) = read_head(conn)?;
    let mut rows = Rows::new(conn)?;
    let mut last: Option<&[u8]> = None;
    for line in lines {
        seq += 1;
        rows.insert(seq, line.record, line.prev, line.hash, Some(line.line))?;
        last = Some(line.hash);
    }
    if let Some(hash) = last {
        write_head(conn, seq, hash)?;
    }
    Ok(seq)
}

/// The newest record's sequence number and hash (0 and [`GENESIS`] before the first).
fn read_head(conn: &Connection) -> store::Result<(i64, Vec<u8>)> {
    let head: Option<(i64, Vec<u8>)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_head WHERE id = 1")?
        .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    Ok(head.unwrap_or((0, GENESIS.to_vec())))
}

fn write_head(conn: &Connection, seq: i64, hash: &[u8]) -> store::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_head (id, seq, hash) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
    )?
    .execute(params![seq, hash])?;
    Ok(())
}

/// The two inserts of a record (its row and its patients), prepared once per batch.
struct Rows<'c> {
    log: store::rusqlite::CachedStatement<'c>,
    patients: store::rusqlite::CachedStatement<'c>,
    /// The patients' JSON, reused from row to row.
    list: String,
}

impl<'c> Rows<'c> {
    fn new(conn: &'c Connection) -> store::Result<Rows<'c>> {
        Ok(Rows {
            log: conn.prepare_cached(
                "INSERT INTO audit_log (seq, at, actor, owner, method, address, tls_identity,
                                        action, kind, resource, patients, outcome, detail,
                                        prev_hash, hash, line)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            )?,
            patients: conn.prepare_cached(
                "INSERT OR IGNORE INTO audit_patients (patient, seq) VALUES (?1, ?2)",
            )?,
            list: String::new(),
        })
    }

    fn insert(
        &mut self,
        seq: i64,
        record: &AuditRecord,
        prev: &[u8],
        hash: &[u8],
        line: Option<i64>,
    ) -> store::Result<()> {
        self.list.clear();
        patients_json(&record.patients, &mut self.list);
        self.log.execute(params![
            seq,
            record.at,
            record.actor,
            record.owner,
            record.method,
            record.address,
            record.tls_identity,
            record.action,
            record.kind.code(),
            record.resource,
            self.list,
            record.outcome.as_str(),
            record.detail,
            prev,
            hash,
            line,
        ])?;
        for patient in &record.patients {
            self.patients.execute(params![patient, seq])?;
        }
        Ok(())
    }
}

/// `patients` as a JSON array of strings (what `serde_json` writes for them, without
/// its allocation per record).
fn patients_json(patients: &[String], out: &mut String) {
    out.push('[');
    for (i, patient) in patients.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        if patient
            .bytes()
            .all(|b| b >= 0x20 && b != b'"' && b != b'\\')
        {
            out.push('"');
            out.push_str(patient);
            out.push('"');
        } else {
            out.push_str(&serde_json::to_string(patient).unwrap_or_else(|_| "\"\"".into()));
        }
    }
    out.push(']');
}

/// The first record found wrong by [`Audit::verify`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit record {seq}: {problem}")]
pub struct BrokenChain {
    /// The record's sequence number.
    pub seq: i64,
    /// What is wrong with it.
    pub problem: String,
}

/// What [`Audit::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Records read.
    pub records: u64,
    /// The first bad record, if any.
    pub broken: Option<BrokenChain>,
}

/// Which records [`Audit::page`], [`Audit::for_each`] and [`Audit::export_filtered`]
/// read; every field set must match (an empty filter matches every record). Each
/// condition is answered from an index (`audit_log_by_*`, `audit_patients`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// At or after (microseconds).
    pub from: Option<i64>,
    /// Before (microseconds, exclusive).
    pub to: Option<i64>,
    /// Who: an actor as recorded (`user:alice`, `token:7`, `anonymous`), or a bare
    /// name, which matches that user's own records (`user:`, `oidc:`) and those of
    /// the tokens they own.
    pub who: Option<String>,
    /// The action exactly, e.g. `GET /api/messages/{id}` or `user.add`.
    pub action: Option<String>,
    /// The action's kind.
    pub kind: Option<ActionKind>,
    /// How it ended.
    pub outcome: Option<Outcome>,
    /// A patient concerned, as recorded (`Patient/ID` or an enterprise id).
    pub patient: Option<String>,
    /// The resource exactly, e.g. `/api/messages/42` or `user/alice`.
    pub resource: Option<String>,
    /// Only records older than this sequence number (keyset paging).
    pub before: Option<i64>,
}

impl AuditFilter {
    /// Every record at or after `since`.
    pub fn since(since: i64) -> AuditFilter {
        AuditFilter {
            from: Some(since),
            ..AuditFilter::default()
        }
    }

    /// ` WHERE ...` and its values, or nothing for an empty filter.
    fn to_sql(&self) -> (String, Vec<SqlValue>) {
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<SqlValue> = Vec::new();
        let push = |values: &mut Vec<SqlValue>, value: SqlValue| {
            values.push(value);
            format!("?{}", values.len())
        };
        if let Some(from) = self.from {
            let p = push(&mut values, SqlValue::Integer(from));
            conditions.push(format!("at >= {p}"));
        }
        if let Some(to) = self.to {
            let p = push(&mut values, SqlValue::Integer(to));
            conditions.push(format!("at < {p}"));
        }
        if let Some(who) = &self.who {
            if who.contains(':') || who == "anonymous" || who == "corridor" || who == "cli" {
                let p = push(&mut values, SqlValue::Text(who.clone()));
                conditions.push(format!("actor = {p}"));
            } else {
                let user = push(&mut values, SqlValue::Text(format!("user:{who}")));
                let oidc = push(&mut values, SqlValue::Text(format!("oidc:{who}")));
                let owner = push(&mut values, SqlValue::Text(who.clone()));
                conditions.push(format!("(actor IN ({user}, {oidc}) OR owner = {owner})"));
            }
        }
        if let Some(action) = &self.action {
            let p = push(&mut values, SqlValue::Text(action.clone()));
            conditions.push(format!("action = {p}"));
        }
        if let Some(kind) = self.kind {
            let p = push(&mut values, SqlValue::Text(kind.code().to_owned()));
            conditions.push(format!("kind = {p}"));
        }
        if let Some(outcome) = self.outcome {
            let p = push(&mut values, SqlValue::Text(outcome.as_str().to_owned()));
            conditions.push(format!("outcome = {p}"));
        }
        if let Some(patient) = &self.patient {
            let p = push(&mut values, SqlValue::Text(patient.clone()));
            conditions.push(format!(
                "seq IN (SELECT seq FROM audit_patients WHERE patient = {p})"
            ));
        }
        if let Some(resource) = &self.resource {
            let p = push(&mut values, SqlValue::Text(resource.clone()));
            conditions.push(format!("resource = {p}"));
        }
        if let Some(before) = self.before {
            let p = push(&mut values, SqlValue::Integer(before));
            conditions.push(format!("seq < {p}"));
        }
        if conditions.is_empty() {
            (String::new(), values)
        } else {
            (format!(" WHERE {}", conditions.join(" AND ")), values)
        }
    }
}

/// How [`Audit::export`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// A JSON array, one record per line.
    Json,
    /// CSV with a header row; patients separated by spaces.
    Csv,
}

/// The audit trail in the data directory's database, and the audit file beside it
/// (`corridor.db.audit`) where records are written first.
#[derive(Debug, Clone)]
pub struct Audit {
    store: Store,
    /// This process's writer of the audit file; None when another process holds it.
    appender: Option<Arc<Appender>>,
    /// The last [`Audit::verify`] in this process, shared by the clones.
    last_check: Arc<std::sync::Mutex<Option<ChainCheck>>>,
}

/// A chain check done, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainCheck {
    /// When it ended (microseconds).
    pub at: i64,
    /// What it found.
    pub verification: Verification,
}

impl Audit {
    /// Creates or upgrades the tables, folds into them what the audit file holds beyond
    /// what was folded already (records written before a crash), and opens the file.
    pub async fn open(store: Store) -> Result<Audit, Error> {
        store.migrate_component(COMPONENT, MIGRATIONS).await?;
        let appender = Appender::open(&store, FOLD_DELAY)?;
        Ok(Audit {
            store,
            appender,
            last_check: Arc::default(),
        })
    }

    /// [`Audit::open`] outside an async runtime.
    pub fn open_blocking(store: Store) -> Result<Audit, Error> {
        Audit::open_with_fold_delay(store, FOLD_DELAY)
    }

    /// [`Audit::open_blocking`] with the background thread waiting `fold_delay` after a
    /// new record before it fsyncs the file and considers folding (tests use an hour to
    /// see records not yet folded).
    /// Callable inside an async runtime too.
    pub fn open_with_fold_delay(store: Store, fold_delay: Duration) -> Result<Audit, Error> {
        block_on(store.migrate_component(COMPONENT, MIGRATIONS))?;
        let appender = Appender::open(&store, fold_delay)?;
        Ok(Audit {
            store,
            appender,
            last_check: Arc::default(),
        })
    }

    /// Appends a record and answers once it is kept: written to the audit file with one
    /// `write` on the caller's thread (in the operating system's hands, so a crash of
    /// the process cannot lose it), fsynced a moment later ([`FOLD_DELAY`]) and folded
    /// into `audit_log` in batches by a background thread (see [`crate::audit_file`]).
    /// Returns the record's line number in the
    /// audit file. When another process writes the file, or the file failed, the record
    /// is committed to the store directly instead ([`Store::write_committed`]) and its
    /// sequence number is returned. An error means the record is not kept: a route
    /// refuses the request it was for.
    pub fn append(&self, record: AuditRecord) -> Pending<i64> {
        let record = match &self.appender {
            Some(appender) => match appender.append(record) {
                Ok(line) => return Pending::ready(Ok(line)),
                Err(record) => *record,
            },
            None => record,
        };
        Pending::write(
            self.store
                .write_committed(move |conn| Ok(Ok(append_in(conn, &record)?))),
        )
    }

    /// The lines this process wrote and has not folded yet, for the fold.
    fn memory(&self) -> Option<&Arc<crate::audit_file::Shared>> {
        self.appender.as_ref().map(|a| a.shared())
    }

    /// Folds the records written to the audit file and not yet in `audit_log` into it
    /// now; returns how many. Every search, export and verification does this first, so
    /// it sees every record written before it. Blocks (briefly, on the store's writer);
    /// callable from any thread.
    pub fn fold(&self) -> Result<u64, Error> {
        Ok(fold_blocking(&self.store, self.memory())?.lines)
    }

    /// Walks the whole chain in order and names the first record whose content, link
    /// or place is wrong. It folds from the file, not from memory, so a line edited,
    /// deleted or reordered in the file before it was folded is named.
    pub fn verify(&self) -> Result<Verification, Error> {
        let folded = fold_blocking(&self.store, None)?;
        let mut verification = self.verify_folded()?;
        if verification.broken.is_none() {
            verification.broken = folded.broken;
        }
        if let Ok(mut last) = self.last_check.lock() {
            *last = Some(ChainCheck {
                at: UnixMicros::now().0,
                verification: verification.clone(),
            });
        }
        Ok(verification)
    }

    /// The last [`Audit::verify`] this process made (by any clone), if any.
    pub fn last_check(&self) -> Option<ChainCheck> {
        self.last_check.lock().ok().and_then(|last| last.clone())
    }

    /// [`Audit::verify`] of what `audit_log` holds.
    fn verify_folded(&self) -> Result<Verification, Error> {
        Ok(self.store.read(|conn| {
            let anchor: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT first_seq, prev_hash FROM audit_anchor WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let head: Option<(i64, Vec<u8>)> = conn
                .query_row("SELECT seq, hash FROM audit_head WHERE id = 1", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            // Where the audit file's chain stands before the first row folded from it
            // (rows folded before this scheme, or pruned, are behind it).
            let line_anchor: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT line, hash FROM audit_line_anchor WHERE id = 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let (mut expected_seq, mut expected_prev) = anchor.unwrap_or((1, GENESIS.to_vec()));
            let (mut expected_line, mut expected_line_prev) = line_anchor
                .map(|(line, hash)| (line + 1, hash))
                .unwrap_or((1, GENESIS.to_vec()));
            let mut records = 0u64;
            let mut statement = conn.prepare("SELECT * FROM audit_log ORDER BY seq")?;
            let mut rows = statement.query([])?;
            let broken = |seq, problem: &str| BrokenChain {
                seq,
                problem: problem.to_owned(),
            };
            while let Some(row) = rows.next()? {
                let stored = stored_from_row(row)?;
                let line: Option<i64> = row.get("line")?;
                records += 1;
                let found = if stored.seq != expected_seq {
                    Some(broken(
                        expected_seq,
                        &format!(
                            "missing: the next record is {} (records were deleted)",
                            stored.seq
                        ),
                    ))
                } else if let Some(line) = line {
                    // Folded from the audit file: it keeps the file's link and hash, so
                    // it chains to the line before it in the file (the record folded
                    // before it), with its line number in its canonical JSON.
                    if line != expected_line {
                        Some(broken(
                            stored.seq,
                            &format!(
                                "it is out of place: it is line {line} of the audit file where \
                                 line {expected_line} was expected (records were deleted or \
                                 reordered)"
                            ),
                        ))
                    } else if stored.prev_hash != expected_line_prev {
                        Some(broken(
                            stored.seq,
                            "its link to the record before does not match (a record before it \
                             was edited, deleted or reordered)",
                        ))
                    } else if chain_hash(&stored.prev_hash, &stored.record, line).as_slice()
                        != stored.hash.as_slice()
                    {
                        Some(broken(
                            stored.seq,
                            "its content does not match its hash (edited)",
                        ))
                    } else {
                        expected_line = line + 1;
                        expected_line_prev.clone_from(&stored.hash);
                        None
                    }
                } else if stored.prev_hash != expected_prev {
                    Some(broken(
                        stored.seq,
                        "its link to the record before does not match (a record before it \
                         was edited, deleted or reordered)",
                    ))
                } else if chain_hash(&stored.prev_hash, &stored.record, stored.seq).as_slice()
                    != stored.hash.as_slice()
                {
                    Some(broken(
                        stored.seq,
                        "its content does not match its hash (edited)",
                    ))
                } else {
                    None
                };
                if found.is_some() {
                    return Ok(Verification {
                        records,
                        broken: found,
                    });
                }
                expected_seq = stored.seq + 1;
                expected_prev = stored.hash;
            }
            let last = expected_seq - 1;
            let broken = match head {
                Some((seq, hash)) if seq != last || hash != expected_prev => Some(broken(
                    seq,
                    &format!("the newest record is missing (the chain ends at {last})"),
                )),
                None if records > 0 => Some(broken(last, "the chain's head is missing")),
                _ => None,
            };
            Ok(Verification { records, broken })
        })?)
    }

    /// Calls `each` for every record at or after `since` (microseconds), oldest first.
    pub fn for_each_since(
        &self,
        since: i64,
        each: impl FnMut(StoredRecord) -> std::io::Result<()>,
    ) -> Result<(), ExportError> {
        self.for_each(&AuditFilter::since(since), each)
    }

    /// Calls `each` for every record `filter` matches, oldest first, reading them one
    /// at a time (an export of years is never held in memory).
    pub fn for_each(
        &self,
        filter: &AuditFilter,
        mut each: impl FnMut(StoredRecord) -> std::io::Result<()>,
    ) -> Result<(), ExportError> {
        self.fold().map_err(ExportError::Store)?;
        let (conditions, values) = filter.to_sql();
        self.store
            .read(|conn| {
                let mut statement =
                    conn.prepare(&format!("SELECT * FROM audit_log{conditions} ORDER BY seq"))?;
                let mut rows = statement.query(params_from_iter(values.iter()))?;
                while let Some(row) = rows.next()? {
                    if let Err(error) = each(stored_from_row(row)?) {
                        return Ok(Err(error));
                    }
                }
                Ok(Ok(()))
            })
            .map_err(|e| ExportError::Store(e.into()))?
            .map_err(ExportError::Write)
    }

    /// One page of the records `filter` matches, newest first: at most `limit`, all
    /// older than the record `before` (a sequence number; None for the newest). The
    /// second value is the `before` of the next page, None on the last. Keyset paging:
    /// each page reads only its own rows, however long the trail.
    pub fn page(
        &self,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: usize,
    ) -> Result<(Vec<StoredRecord>, Option<i64>), Error> {
        self.fold()?;
        let mut filter = filter.clone();
        filter.before = before;
        let (conditions, values) = filter.to_sql();
        let limit = limit.clamp(1, 10_000);
        Ok(self.store.read(|conn| {
            let mut statement = conn.prepare(&format!(
                "SELECT * FROM audit_log{conditions} ORDER BY seq DESC LIMIT {}",
                limit + 1
            ))?;
            let mut records = statement
                .query_map(params_from_iter(values.iter()), stored_from_row)?
                .collect::<Result<Vec<_>, _>>()?;
            let next = if records.len() > limit {
                records.truncate(limit);
                records.last().map(|r| r.seq)
            } else {
                None
            };
            Ok((records, next))
        })?)
    }

    /// SQLite's plan for a [`Audit::page`] of `filter`, one line per step (`SEARCH
    /// audit_log USING INDEX ...`): how the indexes answer each filter.
    pub fn page_plan(&self, filter: &AuditFilter) -> Result<Vec<String>, Error> {
        let (conditions, values) = filter.to_sql();
        Ok(self.store.read(|conn| {
            let mut statement = conn.prepare(&format!(
                "EXPLAIN QUERY PLAN SELECT * FROM audit_log{conditions} ORDER BY seq DESC LIMIT 51"
            ))?;
            let lines = statement
                .query_map(params_from_iter(values.iter()), |row| {
                    row.get::<_, String>(3)
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(lines)
        })?)
    }

    /// Writes every record at or after `since` to `out`; returns how many.
    pub fn export(
        &self,
        since: i64,
        format: ExportFormat,
        out: &mut dyn Write,
    ) -> Result<u64, ExportError> {
        self.export_filtered(&AuditFilter::since(since), format, out)
    }

    /// Writes every record `filter` matches to `out`, oldest first; returns how many.
    pub fn export_filtered(
        &self,
        filter: &AuditFilter,
        format: ExportFormat,
        out: &mut dyn Write,
    ) -> Result<u64, ExportError> {
        let mut count = 0u64;
        match format {
            ExportFormat::Json => {
                out.write_all(b"[").map_err(ExportError::Write)?;
                self.for_each(filter, |stored| {
                    let separator: &[u8] = if count == 0 { b"\n" } else { b",\n" };
                    out.write_all(separator)?;
                    serde_json::to_writer(&mut *out, &record_json(&stored))?;
                    count += 1;
                    Ok(())
                })?;
                out.write_all(b"\n]\n").map_err(ExportError::Write)?;
            }
            ExportFormat::Csv => {
                let mut csv = csvfile::writer(&mut *out);
                csv.write_record(EXPORT_COLUMNS)
                    .map_err(|e| ExportError::Write(e.into()))?;
                self.for_each(filter, |stored| {
                    let r = &stored.record;
                    csv.write_record([
                        stored.seq.to_string(),
                        rfc3339(r.at),
                        r.actor.clone(),
                        r.owner.clone().unwrap_or_default(),
                        r.method.clone(),
                        r.address.clone().unwrap_or_default(),
                        r.tls_identity.clone().unwrap_or_default(),
                        r.action.clone(),
                        r.kind.code().to_owned(),
                        r.resource.clone().unwrap_or_default(),
                        r.patients.join(" "),
                        r.outcome.as_str().to_owned(),
                        r.detail.clone().unwrap_or_default(),
                        hex(&stored.hash),
                    ])?;
                    count += 1;
                    Ok(())
                })?;
                csv.flush().map_err(ExportError::Write)?;
            }
        }
        Ok(count)
    }

    /// The records concerning `patient` between `since` and `until` (microseconds,
    /// inclusive), oldest first: who looked at this patient, and what they did.
    pub fn for_patient(
        &self,
        patient: &str,
        since: Option<i64>,
        until: Option<i64>,
    ) -> Result<Vec<StoredRecord>, Error> {
        self.fold()?;
        Ok(self.store.read(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT l.* FROM audit_patients p JOIN audit_log l ON l.seq = p.seq
                 WHERE p.patient = ?1 AND l.at >= ?2 AND l.at <= ?3 ORDER BY l.seq",
            )?;
            let records = statement
                .query_map(
                    params![
                        patient,
                        since.unwrap_or(i64::MIN),
                        until.unwrap_or(i64::MAX)
                    ],
                    stored_from_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(records)
        })?)
    }

    /// Drops the records older than `retention`, keeping the chain verifiable: the
    /// first kept record's link is written to `audit_anchor` in the same transaction.
    /// Returns how many were dropped.
    pub fn prune(&self, retention: Duration) -> Pending<u64> {
        // Old records still in the file (a clock set back, a long stop) are pruned too.
        if let Err(e) = self.fold() {
            return Pending::ready(Err(e));
        }
        let retention = i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
        let cutoff = UnixMicros::now().0.saturating_sub(retention);
        Pending::write(self.store.write(move |conn| {
            // Records are chained in seq order, so what is dropped is a prefix: up to the
            // newest record older than the cutoff (one written under a clock set back
            // goes with it).
            let last_old: Option<i64> = conn.query_row(
                "SELECT max(seq) FROM audit_log WHERE at < ?1",
                [cutoff],
                |row| row.get(0),
            )?;
            let Some(last_old) = last_old else {
                return Ok(Ok(0));
            };
            let next: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT seq, prev_hash FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT 1",
                    [last_old],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            let (first_seq, prev_hash) = match next {
                Some(next) => next,
                // Everything is old: the chain continues from the head.
                None => conn.query_row("SELECT seq + 1, hash FROM audit_head", [], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })?,
            };
            // The newest line of the audit file among them: the file's chain goes on
            // from it in the records kept.
            let last_line: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT line, hash FROM audit_log WHERE seq <= ?1 AND line IS NOT NULL
                     ORDER BY seq DESC LIMIT 1",
                    [last_old],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            if let Some((line, hash)) = last_line {
                conn.execute(
                    "INSERT INTO audit_line_anchor (id, line, hash) VALUES (1, ?1, ?2)
                     ON CONFLICT (id) DO UPDATE SET line = excluded.line, hash = excluded.hash",
                    params![line, hash],
                )?;
            }
            conn.execute("DELETE FROM audit_patients WHERE seq <= ?1", [last_old])?;
            let dropped = conn.execute("DELETE FROM audit_log WHERE seq <= ?1", [last_old])?;
            conn.execute(
                "INSERT INTO audit_anchor (id, first_seq, prev_hash, pruned_at)
                 VALUES (1, ?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET first_seq = excluded.first_seq,
                     prev_hash = excluded.prev_hash, pruned_at = excluded.pruned_at",
                params![first_seq, prev_hash, UnixMicros::now().0],
            )?;
            Ok(Ok(dropped as u64))
        }))
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// Reading the records failed.
    #[error(transparent)]
    Store(Error),
    /// Writing the output failed.
    #[error("cannot write the export: {0}")]
    Write(std::io::Error),
}

/// The CSV export's columns, which are also the JSON export's keys.
pub const EXPORT_COLUMNS: [&str; 14] = [
    "seq",
    "at",
    "actor",
    "owner",
    "method",
    "address",
    "tls_identity",
    "action",
    "kind",
    "resource",
    "patients",
    "outcome",
    "detail",
    "hash",
];

/// A record as the JSON export and `GET /api/audit?format=page` write it (the keys of
/// [`EXPORT_COLUMNS`]).
pub fn record_json(stored: &StoredRecord) -> Value {
    let r = &stored.record;
    json!({
        "seq": stored.seq,
        "at": rfc3339(r.at),
        "actor": r.actor,
        "owner": r.owner,
        "method": r.method,
        "address": r.address,
        "tls_identity": r.tls_identity,
        "action": r.action,
        "kind": r.kind.code(),
        "resource": r.resource,
        "patients": r.patients,
        "outcome": r.outcome.as_str(),
        "detail": r.detail,
        "hash": hex(&stored.hash),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub use datetime::rfc3339::{format_micros as rfc3339, parse_time_or_date as parse_since};

/// The FHIR R4 `AuditEvent` of a record (`/fhir/AuditEvent`).
pub fn to_audit_event(stored: &StoredRecord) -> Value {
    let r = &stored.record;
    let login = r.action.starts_with("login") || r.action == "logout";
    let event_type = if login {
        json!({"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110114",
               "display": "User Authentication"})
    } else {
        json!({"system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
               "code": "rest", "display": "RESTful Operation"})
    };
    let mut requestor = json!({
        "who": {"identifier": {"system": "urn:corridor:actor", "value": r.actor}},
        "requestor": true,
    });
    if let Some(address) = &r.address {
        requestor["network"] = json!({"address": address, "type": "2"});
    }
    if let Some(identity) = &r.tls_identity {
        requestor["altId"] = json!(identity);
    }
    let mut agents = vec![requestor];
    if let Some(owner) = &r.owner {
        agents.push(json!({
            "who": {"identifier": {"system": "urn:corridor:user", "value": owner}},
            "requestor": false,
            "role": [{"text": "token owner"}],
        }));
    }
    let mut entities: Vec<Value> = r
        .patients
        .iter()
        .map(|patient| {
            let what = if patient.contains('/') {
                json!({"reference": patient})
            } else {
                json!({"identifier": {"system": "urn:corridor:enterprise-id", "value": patient}})
            };
            json!({
                "what": what,
                "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                         "code": "1", "display": "Person"},
                "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role",
                         "code": "1", "display": "Patient"},
            })
        })
        .collect();
    if let Some(resource) = &r.resource {
        entities.push(json!({
            "what": {"display": resource},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                     "code": "2", "display": "System Object"},
        }));
    }
    let mut event = json!({
        "resourceType": "AuditEvent",
        "id": stored.seq.to_string(),
        "type": event_type,
        "subtype": [{"system": "urn:corridor:audit-action", "code": r.action}],
        "action": r.kind.code(),
        "recorded": rfc3339(r.at),
        "outcome": r.outcome.fhir_code(),
        "agent": agents,
        "source": {
            "observer": {"display": "Corridor"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                      "code": "4", "display": "Application Server"}],
        },
    });
    if let Some(detail) = &r.detail {
        event["outcomeDesc"] = json!(detail);
    }
    if !entities.is_empty() {
        event["entity"] = Value::Array(entities);
    }
    event
}
