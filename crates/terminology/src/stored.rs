//! Terminology kept in the store, versioned like configuration, and the
//! unmapped codes channels met.
//!
//! Every load (`corridor terminology load`, `POST /api/terminology`, or a
//! file of `[terminology] files` at start) is one row of
//! `terminology_loads` with its files as they were given, numbered by a
//! version that only grows. A load has a name; the newest load of each name
//! is in force, so loading `lab-map` again replaces the earlier `lab-map`
//! and keeps it in the history. The content in force is the starter map
//! (unless turned off) and the newest load of every name.
//!
//! [`TerminologyService::refresh`] compares the newest version in the store
//! with the one in force and, when they differ, builds the next snapshot
//! and swaps it into the [`SharedTerminology`] every channel reads: a load
//! made by another process (the CLI against the data directory) reaches
//! running channels at the engine's next poll, one made through the API at
//! once.
//!
//! Tables (component `terminology`, see `crates/store/SCHEMA.md`):
//! `terminology_loads`, `terminology_files` and `terminology_unmapped`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use store::rusqlite::{self, Connection, OptionalExtension, params};
use store::{Migration, Store};

use crate::csv_map::{HEADER, TALLY_COLUMNS, concept_maps_from_csv};
use crate::error::Error;
use crate::fhir::{code_system_from_json, concept_map_from_json};
use crate::model::{CodeSystem, Concept, MapScope};
use crate::starter::loinc_starter_map;
use crate::step::UnmappedCode;
use crate::terminology::{Content, SharedTerminology, Terminology};

/// The component name in `component_schema`.
pub const COMPONENT: &str = "terminology";

/// The component's schema history, oldest first. Steps are never edited once released.
pub const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "terminology loads, their files, and unmapped codes",
    sql: r#"
    CREATE TABLE terminology_loads (
        version   INTEGER PRIMARY KEY AUTOINCREMENT,
        name      TEXT    NOT NULL,
        loaded_at INTEGER NOT NULL,
        loaded_by TEXT    NOT NULL,
        sender    TEXT,
        fields    TEXT    NOT NULL,
        summary   TEXT    NOT NULL
    );
    CREATE INDEX terminology_loads_by_name ON terminology_loads (name, version);

    CREATE TABLE terminology_files (
        load_version INTEGER NOT NULL REFERENCES terminology_loads (version),
        position     INTEGER NOT NULL,
        file         TEXT    NOT NULL,
        format       TEXT    NOT NULL,
        content      TEXT    NOT NULL,
        PRIMARY KEY (load_version, position)
    ) WITHOUT ROWID;

    CREATE TABLE terminology_unmapped (
        sender             TEXT    NOT NULL,
        field              TEXT    NOT NULL,
        system             TEXT    NOT NULL,
        code               TEXT    NOT NULL,
        display            TEXT,
        reason             TEXT    NOT NULL,
        channel            TEXT    NOT NULL,
        count              INTEGER NOT NULL,
        first_seen         INTEGER NOT NULL,
        last_seen          INTEGER NOT NULL,
        example_message_id INTEGER NOT NULL,
        PRIMARY KEY (sender, field, system, code)
    ) WITHOUT ROWID;
"#,
}];

/// What went wrong with a load or a read.
#[derive(Debug, thiserror::Error)]
pub enum StoredError {
    /// The content does not load; nothing was stored.
    #[error("{0}")]
    Content(#[from] Error),
    #[error("the store failed: {0}")]
    Store(#[from] store::Error),
}

/// The format of one loaded file, found from its name and first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A FHIR `CodeSystem` or `ConceptMap` (JSON).
    FhirJson,
    /// A CSV map (see [`crate::HEADER`]).
    CsvMap,
    /// The LOINC table as Regenstrief distributes it (`LoincTable/Loinc.csv`):
    /// a code system `http://loinc.org` with each code's long common name.
    LoincTable,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::FhirJson => "fhir-json",
            Format::CsvMap => "csv-map",
            Format::LoincTable => "loinc-table",
        }
    }

    fn parse(text: &str) -> Option<Format> {
        match text {
            "fhir-json" => Some(Format::FhirJson),
            "csv-map" => Some(Format::CsvMap),
            "loinc-table" => Some(Format::LoincTable),
            _ => None,
        }
    }

    /// JSON when it starts with `{`; a LOINC table when its header names
    /// `LOINC_NUM`; otherwise a CSV map.
    pub fn detect(text: &str) -> Format {
        let text = text.trim_start_matches('\u{feff}').trim_start();
        if text.starts_with('{') {
            return Format::FhirJson;
        }
        let header = text.lines().next().unwrap_or_default();
        if header
            .split(',')
            .any(|c| c.trim().trim_matches('"') == "LOINC_NUM")
        {
            Format::LoincTable
        } else {
            Format::CsvMap
        }
    }
}

/// The URL of the code system a LOINC table loads as.
pub const LOINC_SYSTEM: &str = "http://loinc.org";

/// Reads one file of a load into content; errors name the file and place.
pub fn parse_file(file: &str, text: &str, scope: &MapScope) -> Result<(Format, Content), Error> {
    let format = Format::detect(text);
    let content = parse_as(format, file, text, scope)?;
    Ok((format, content))
}

fn parse_as(format: Format, file: &str, text: &str, scope: &MapScope) -> Result<Content, Error> {
    let text = text.trim_start_matches('\u{feff}');
    let mut content = Content::default();
    match format {
        Format::FhirJson => {
            let value: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| Error::at(file, format!("is not JSON: {e}")))?;
            match value.get("resourceType").and_then(|v| v.as_str()) {
                Some("CodeSystem") => content
                    .code_systems
                    .push(code_system_from_json(file, text)?),
                Some("ConceptMap") => {
                    content
                        .concept_maps
                        .push(concept_map_from_json(file, text, scope.clone())?)
                }
                other => {
                    return Err(Error::at(
                        file,
                        format!(
                            "resourceType {:?} is neither CodeSystem nor ConceptMap",
                            other.unwrap_or("(none)")
                        ),
                    ));
                }
            }
        }
        Format::CsvMap => {
            content.concept_maps = concept_maps_from_csv(file, text)?;
            if scope.sender.is_some() || !scope.fields.is_empty() {
                for map in &mut content.concept_maps {
                    if map.scope == MapScope::everywhere() {
                        map.scope = scope.clone();
                    }
                }
            }
        }
        Format::LoincTable => content.code_systems.push(loinc_table(file, text)?),
    }
    Ok(content)
}

/// The LOINC table (`Loinc.csv`): `LOINC_NUM` is the code, `LONG_COMMON_NAME`
/// (else `SHORTNAME`, else `COMPONENT`) the display; rows whose `STATUS` is
/// `DEPRECATED` are kept (a sender may still send them) but say so.
fn loinc_table(file: &str, text: &str) -> Result<CodeSystem, Error> {
    let mut reader = csvfile::reader(text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| Error::at(format!("{file} line 1"), format!("unreadable header: {e}")))?
        .clone();
    let column = |name: &str| header.iter().position(|h| h == name);
    let Some(code_at) = column("LOINC_NUM") else {
        return Err(Error::at(format!("{file} line 1"), "no LOINC_NUM column"));
    };
    let display_at = column("LONG_COMMON_NAME")
        .or_else(|| column("SHORTNAME"))
        .or_else(|| column("COMPONENT"));
    let status_at = column("STATUS");
    let mut system = CodeSystem {
        url: LOINC_SYSTEM.to_owned(),
        version: None,
        name: Some("LOINC".to_owned()),
        concepts: BTreeMap::new(),
    };
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            Error::at(
                format!("{file} line {line}"),
                format!("unreadable row: {e}"),
            )
        })?;
        let Some(code) = record.get(code_at).filter(|c| !c.is_empty()) else {
            let line = record.position().map_or(0, |p| p.line());
            return Err(Error::at(
                format!("{file} line {line}, column LOINC_NUM"),
                "is empty",
            ));
        };
        let display = display_at
            .and_then(|i| record.get(i))
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        let definition = status_at
            .and_then(|i| record.get(i))
            .filter(|s| *s != "ACTIVE" && !s.is_empty())
            .map(|s| format!("status {s}"));
        system.concepts.insert(
            code.to_owned(),
            Concept {
                code: code.to_owned(),
                display,
                definition,
            },
        );
    }
    Ok(system)
}

/// One stored load, as `corridor terminology list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LoadRecord {
    pub version: i64,
    pub name: String,
    /// Unix microseconds.
    pub loaded_at: i64,
    pub loaded_by: String,
    pub sender: Option<String>,
    pub fields: Vec<String>,
    /// Counts, e.g. `1 concept map (34 codes)`.
    pub summary: String,
    pub files: Vec<String>,
    /// Whether it is the newest of its name, hence in force.
    pub in_force: bool,
}

/// A file to load: its name (for errors and the history) and its text.
#[derive(Clone, Debug)]
pub struct LoadFile {
    pub name: String,
    pub text: String,
}

fn summary(content: &Content) -> String {
    let codes: usize = content
        .concept_maps
        .iter()
        .flat_map(|m| &m.groups)
        .map(|g| g.elements.len())
        .sum();
    let concepts: usize = content.code_systems.iter().map(|s| s.concepts.len()).sum();
    format!(
        "{} concept map(s) with {codes} source code(s), {} code system(s) with {concepts} concept(s)",
        content.concept_maps.len(),
        content.code_systems.len()
    )
}

fn merge(into: &mut Content, more: Content) {
    into.code_systems.extend(more.code_systems);
    into.concept_maps.extend(more.concept_maps);
}

/// A code met without a mapping, as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct UnmappedRow {
    pub sender: String,
    pub field: String,
    pub system: String,
    pub code: String,
    pub display: Option<String>,
    /// `no-mapping`, `unknown-unit` or `no-room-for-original`.
    pub reason: String,
    pub channel: String,
    pub count: i64,
    /// Unix microseconds.
    pub first_seen: i64,
    pub last_seen: i64,
    pub example_message_id: i64,
}

fn reason_text(reason: crate::step::UnmappedReason) -> &'static str {
    match reason {
        crate::step::UnmappedReason::NoMapping => "no-mapping",
        crate::step::UnmappedReason::UnknownUnit => "unknown-unit",
        crate::step::UnmappedReason::NoRoomForOriginal => "no-room-for-original",
    }
}

/// Records `codes`, met in message `message_id` of `channel` at `at` (Unix
/// microseconds), inside the caller's transaction (the one that records the
/// message processed).
pub fn record_unmapped_in(
    conn: &Connection,
    channel: &str,
    message_id: i64,
    at: i64,
    codes: &[UnmappedCode],
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(
        "INSERT INTO terminology_unmapped (sender, field, system, code, display, reason, channel, \
         count, first_seen, last_seen, example_message_id) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 1, ?8, ?8, ?9) \
         ON CONFLICT (sender, field, system, code) DO UPDATE SET \
         count = count + 1, \
         display = coalesce(display, excluded.display), \
         first_seen = min(first_seen, excluded.first_seen), \
         example_message_id = CASE WHEN excluded.last_seen >= last_seen \
             THEN excluded.example_message_id ELSE example_message_id END, \
         last_seen = max(last_seen, excluded.last_seen)",
    )?;
    for code in codes {
        insert.execute(params![
            code.sender,
            code.field,
            code.system,
            code.code,
            code.display,
            reason_text(code.reason),
            channel,
            at,
            message_id
        ])?;
    }
    Ok(())
}

/// Every stored unmapped code, most frequent first.
pub fn unmapped_in(conn: &Connection) -> rusqlite::Result<Vec<UnmappedRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT sender, field, system, code, display, reason, channel, count, first_seen, \
         last_seen, example_message_id FROM terminology_unmapped \
         ORDER BY count DESC, sender, field, system, code",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(UnmappedRow {
            sender: r.get(0)?,
            field: r.get(1)?,
            system: r.get(2)?,
            code: r.get(3)?,
            display: r.get(4)?,
            reason: r.get(5)?,
            channel: r.get(6)?,
            count: r.get(7)?,
            first_seen: r.get(8)?,
            last_seen: r.get(9)?,
            example_message_id: r.get(10)?,
        })
    })?;
    rows.collect()
}

/// The unmapped codes as the CSV map an analyst fills in (target system, code,
/// display, equivalence) and loads back: each row is scoped to the sender and
/// field it was met in; `count`, `first_seen`, `last_seen` (Unix microseconds)
/// and `example_message_id` are ignored by loading. Unknown units are left
/// out: they are fixed at the sender, not by a map.
pub fn unmapped_csv(rows: &[UnmappedRow]) -> String {
    let mut w = csvfile::writer(Vec::new());
    let header: Vec<&str> = HEADER.iter().chain(TALLY_COLUMNS.iter()).copied().collect();
    // Writing to a Vec fails only on allocation failure.
    let _ = w.write_record(&header);
    for row in rows.iter().filter(|r| r.reason != "unknown-unit") {
        let numbers = [
            row.count.to_string(),
            row.first_seen.to_string(),
            row.last_seen.to_string(),
            row.example_message_id.to_string(),
        ];
        let record = [
            row.system.as_str(),
            &row.code,
            row.display.as_deref().unwrap_or_default(),
            "",
            "",
            "",
            "",
            &row.sender,
            &row.field,
            "",
            &numbers[0],
            &numbers[1],
            &numbers[2],
            &numbers[3],
        ];
        let _ = w.write_record(record);
    }
    let bytes = w.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

fn now_micros() -> i64 {
    store::UnixMicros::now().0
}

/// What the service has put in force.
struct InForce {
    /// The newest load version the snapshot holds (0: none).
    version: i64,
    /// Parsed content by load version, so a refresh parses only new loads.
    parsed: HashMap<i64, Content>,
}

/// The terminology of one data directory: its stored loads, and the snapshot
/// in force that channels and the API read.
#[derive(Clone)]
pub struct TerminologyService {
    store: Store,
    shared: Arc<SharedTerminology>,
    starter: bool,
    in_force: Arc<Mutex<Option<InForce>>>,
}

impl std::fmt::Debug for TerminologyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TerminologyService")
            .field("starter", &self.starter)
            .field("version", &self.shared.current().version())
            .finish_non_exhaustive()
    }
}

impl TerminologyService {
    /// Creates or upgrades the component's tables.
    pub async fn migrate(store: &Store) -> Result<(), StoredError> {
        store.migrate_component(COMPONENT, MIGRATIONS).await?;
        Ok(())
    }

    /// [`TerminologyService::migrate`] outside an async runtime.
    pub fn migrate_blocking(store: &Store) -> Result<(), StoredError> {
        store.migrate_component(COMPONENT, MIGRATIONS).wait()?;
        Ok(())
    }

    /// The service over `store` (migrated), with the starter map in force when
    /// `starter`. Call [`TerminologyService::refresh`] to put the stored loads
    /// in force.
    pub fn new(store: Store, starter: bool) -> TerminologyService {
        TerminologyService {
            store,
            shared: Arc::new(SharedTerminology::new()),
            starter,
            in_force: Arc::new(Mutex::new(None)),
        }
    }

    /// The snapshot every reader shares.
    pub fn shared(&self) -> &Arc<SharedTerminology> {
        &self.shared
    }

    /// The snapshot in force now.
    pub fn current(&self) -> Arc<Terminology> {
        self.shared.current()
    }

    /// The store the loads live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Parses `files` (each as [`Format::detect`] finds it) and stores them as
    /// one load named `name`, scoped to `scope`; returns its record. Content
    /// that does not load is refused whole, naming the file and place, and
    /// nothing is stored. Does not put the load in force: call
    /// [`TerminologyService::refresh`] (the engine polls).
    pub async fn load(
        &self,
        name: &str,
        files: Vec<LoadFile>,
        scope: MapScope,
        loaded_by: &str,
    ) -> Result<LoadRecord, StoredError> {
        let (rows, summary) = prepare(name, &files, &scope)?;
        let name = name.to_owned();
        let loaded_by = loaded_by.to_owned();
        let record = self
            .store
            .write(move |conn| insert_load(conn, &name, &loaded_by, &scope, &summary, &rows))
            .await?;
        Ok(record)
    }

    /// [`TerminologyService::load`] for callers outside an async runtime.
    pub fn load_blocking(
        &self,
        name: &str,
        files: Vec<LoadFile>,
        scope: MapScope,
        loaded_by: &str,
    ) -> Result<LoadRecord, StoredError> {
        let (rows, summary) = prepare(name, &files, &scope)?;
        let name = name.to_owned();
        let loaded_by = loaded_by.to_owned();
        Ok(self.store.write_blocking(move |conn| {
            insert_load(conn, &name, &loaded_by, &scope, &summary, &rows)
        })?)
    }

    /// Every stored load, newest first.
    pub fn list(&self) -> Result<Vec<LoadRecord>, StoredError> {
        Ok(self.store.read(|conn| Ok(list_in(conn)?))?)
    }

    /// The newest load of `name`, if any, with its files' texts.
    pub fn newest_of(
        &self,
        name: &str,
    ) -> Result<Option<(LoadRecord, Vec<LoadFile>)>, StoredError> {
        let loads = self.list()?;
        let Some(record) = loads.into_iter().find(|l| l.name == name) else {
            return Ok(None);
        };
        let version = record.version;
        let files = self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT file, content FROM terminology_files WHERE load_version = ?1 ORDER BY position",
            )?;
            let rows = stmt.query_map([version], |r| {
                Ok(LoadFile {
                    name: r.get(0)?,
                    text: r.get(1)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        Ok(Some((record, files)))
    }

    /// Puts the newest stored loads in force if they are not already; returns
    /// the store version now in force when it changed. The first call always
    /// builds a snapshot (the starter map alone on an empty store).
    pub fn refresh(&self) -> Result<Option<i64>, StoredError> {
        let newest: i64 = self.store.read(|conn| {
            Ok(conn.query_row(
                "SELECT coalesce(max(version), 0) FROM terminology_loads",
                [],
                |r| r.get(0),
            )?)
        })?;
        let mut guard = self.in_force.lock().unwrap_or_else(PoisonError::into_inner);
        if guard.as_ref().is_some_and(|f| f.version == newest) {
            return Ok(None);
        }
        // The newest load of each name, with its files.
        let files: Vec<StoredFile> =
            self.store.read(|conn| {
                let mut stmt = conn.prepare(
                    "SELECT l.version, l.name, l.sender, l.fields, f.file, f.format, f.content \
                     FROM terminology_loads l JOIN terminology_files f ON f.load_version = l.version \
                     WHERE l.version = (SELECT max(version) FROM terminology_loads m WHERE m.name = l.name) \
                     AND l.version <= ?1 ORDER BY l.version, f.position",
                )?;
                let rows = stmt.query_map([newest], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
                })?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            })?;
        let mut parsed = guard.take().map(|f| f.parsed).unwrap_or_default();
        let mut by_version: BTreeMap<i64, Content> = BTreeMap::new();
        for (version, name, sender, fields, file, format, text) in files {
            if let Some(done) = parsed.remove(&version) {
                by_version.insert(version, done);
                continue;
            }
            let scope = MapScope {
                sender,
                fields: fields_of(&fields),
            };
            let format = Format::parse(&format).unwrap_or_else(|| Format::detect(&text));
            // Stored content was checked when it was loaded; a file that no longer
            // loads (a newer Corridor reads it differently) is left out, loudly.
            match parse_as(format, &file, &text, &scope) {
                Ok(content) => merge(by_version.entry(version).or_default(), content),
                Err(error) => {
                    tracing::warn!(load = %name, version, %error, "a stored terminology file no longer loads; left out");
                }
            }
        }
        let mut content = Content::default();
        if self.starter {
            content.concept_maps = loinc_starter_map();
        }
        for part in by_version.values() {
            merge(&mut content, part.clone());
        }
        let snapshot = self.shared.load(content);
        tracing::info!(store_version = newest, snapshot, "terminology in force");
        *guard = Some(InForce {
            version: newest,
            parsed: by_version.into_iter().collect(),
        });
        Ok(Some(newest))
    }

    /// The stored load version in force (0: none, the starter map alone).
    pub fn version_in_force(&self) -> i64 {
        self.in_force
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, |f| f.version)
    }

    /// Every stored unmapped code, most frequent first.
    pub fn unmapped(&self) -> Result<Vec<UnmappedRow>, StoredError> {
        Ok(self.store.read(|conn| Ok(unmapped_in(conn)?))?)
    }
}

/// (load version, load name, sender, fields, file, format, content).
type StoredFile = (i64, String, Option<String>, String, String, String, String);

fn fields_of(text: &str) -> Vec<String> {
    text.split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

type Prepared = Vec<(String, Format, String)>;

fn prepare(name: &str, files: &[LoadFile], scope: &MapScope) -> Result<(Prepared, String), Error> {
    if name.trim().is_empty() || name.trim() != name {
        return Err(Error::at("name", format!("{name:?} is not a load name")));
    }
    if files.is_empty() {
        return Err(Error::at("files", "names no file to load"));
    }
    if let Some(sender) = &scope.sender
        && sender.trim().is_empty()
    {
        return Err(Error::at("sender", "is empty"));
    }
    for (i, field) in scope.fields.iter().enumerate() {
        crate::step::FieldPath::parse(field).map_err(|m| Error::at(format!("fields[{i}]"), m))?;
    }
    let mut all = Content::default();
    let mut rows = Vec::new();
    for file in files {
        let (format, content) = parse_file(&file.name, &file.text, scope)?;
        merge(&mut all, content);
        rows.push((file.name.clone(), format, file.text.clone()));
    }
    Ok((rows, summary(&all)))
}

fn insert_load(
    conn: &Connection,
    name: &str,
    loaded_by: &str,
    scope: &MapScope,
    summary: &str,
    rows: &Prepared,
) -> store::Result<LoadRecord> {
    let at = now_micros();
    let fields = scope.fields.join(",");
    conn.prepare_cached(
        "INSERT INTO terminology_loads (name, loaded_at, loaded_by, sender, fields, summary) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![name, at, loaded_by, scope.sender, fields, summary])?;
    let version = conn.last_insert_rowid();
    let mut insert = conn.prepare_cached(
        "INSERT INTO terminology_files (load_version, position, file, format, content) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (position, (file, format, text)) in rows.iter().enumerate() {
        insert.execute(params![
            version,
            position as i64,
            file,
            format.as_str(),
            text
        ])?;
    }
    Ok(LoadRecord {
        version,
        name: name.to_owned(),
        loaded_at: at,
        loaded_by: loaded_by.to_owned(),
        sender: scope.sender.clone(),
        fields: scope.fields.clone(),
        summary: summary.to_owned(),
        files: rows.iter().map(|(f, _, _)| f.clone()).collect(),
        in_force: true,
    })
}

fn list_in(conn: &Connection) -> rusqlite::Result<Vec<LoadRecord>> {
    let mut stmt = conn.prepare_cached(
        "SELECT version, name, loaded_at, loaded_by, sender, fields, summary, \
         (SELECT group_concat(file, char(10)) FROM terminology_files f WHERE f.load_version = l.version), \
         version = (SELECT max(version) FROM terminology_loads m WHERE m.name = l.name) \
         FROM terminology_loads l ORDER BY version DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        let fields: String = r.get(5)?;
        let files: Option<String> = r.get(7)?;
        Ok(LoadRecord {
            version: r.get(0)?,
            name: r.get(1)?,
            loaded_at: r.get(2)?,
            loaded_by: r.get(3)?,
            sender: r.get(4)?,
            fields: fields_of(&fields),
            summary: r.get(6)?,
            files: files
                .map(|f| f.split('\n').map(str::to_owned).collect())
                .unwrap_or_default(),
            in_force: r.get(8)?,
        })
    })?;
    rows.collect()
}

/// Whether a load named `name` whose newest version holds exactly `files` is
/// stored already (so a start does not store the same configured file twice).
pub fn same_as_newest(conn: &Connection, name: &str, files: &[LoadFile]) -> rusqlite::Result<bool> {
    let newest: Option<i64> = conn
        .query_row(
            "SELECT max(version) FROM terminology_loads WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    let Some(version) = newest else {
        return Ok(false);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT file, content FROM terminology_files WHERE load_version = ?1 ORDER BY position",
    )?;
    let stored = stmt
        .query_map([version], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(stored.len() == files.len()
        && stored
            .iter()
            .zip(files)
            .all(|((n, t), f)| *n == f.name && *t == f.text))
}

impl TerminologyService {
    /// Stores `files` as load `name` unless its newest load holds exactly
    /// them (a configured file loaded at every start is stored once per change).
    pub async fn ensure_loaded(
        &self,
        name: &str,
        files: Vec<LoadFile>,
        loaded_by: &str,
    ) -> Result<Option<LoadRecord>, StoredError> {
        let same = {
            let name = name.to_owned();
            let files = files.clone();
            self.store
                .read(move |conn| Ok(same_as_newest(conn, &name, &files)?))?
        };
        if same {
            return Ok(None);
        }
        Ok(Some(
            self.load(name, files, MapScope::everywhere(), loaded_by)
                .await?,
        ))
    }
}
