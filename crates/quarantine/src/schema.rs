//! The component's tables (documented in the crate docs, `# SCHEMA`).

use store::Migration;

/// The component name in `component_schema`.
pub const COMPONENT: &str = "quarantine";

/// The component's schema history, oldest first. Steps are never edited once released.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "quarantine, edits and data-quality counters",
        sql: r#"
    CREATE TABLE quarantine (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id          INTEGER NOT NULL,
        channel             TEXT    NOT NULL,
        sending_application TEXT    NOT NULL,
        sending_facility    TEXT    NOT NULL,
        sender              TEXT    NOT NULL,
        message_type        TEXT    NOT NULL,
        control_id          TEXT    NOT NULL,
        findings            TEXT    NOT NULL,
        errors              INTEGER NOT NULL,
        warnings            INTEGER NOT NULL,
        quarantined_at      INTEGER NOT NULL,
        reason              TEXT    NOT NULL,
        content             BLOB,
        revision            INTEGER NOT NULL DEFAULT 0,
        validated_at        INTEGER NOT NULL,
        status              TEXT    NOT NULL,
        status_by           TEXT,
        status_reason       TEXT,
        status_changed_at   INTEGER NOT NULL,
        reprocessed_as      INTEGER
    );
    CREATE UNIQUE INDEX quarantine_by_message ON quarantine (message_id);
    CREATE INDEX quarantine_by_status ON quarantine (status, channel, id);
    CREATE INDEX quarantine_by_reprocessed_as ON quarantine (reprocessed_as)
        WHERE reprocessed_as IS NOT NULL;

    CREATE TABLE quarantine_edits (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        quarantine_id INTEGER NOT NULL REFERENCES quarantine (id),
        edited_at     INTEGER NOT NULL,
        edited_by     TEXT    NOT NULL,
        reason        TEXT    NOT NULL,
        previous      BLOB    NOT NULL,
        content       BLOB    NOT NULL,
        findings      TEXT    NOT NULL
    );
    CREATE INDEX quarantine_edits_by_entry ON quarantine_edits (quarantine_id, id);

    CREATE TABLE data_quality (
        channel      TEXT    NOT NULL,
        sender       TEXT    NOT NULL,
        message_type TEXT    NOT NULL,
        path         TEXT    NOT NULL,
        code         INTEGER NOT NULL,
        severity     TEXT    NOT NULL,
        kind         TEXT    NOT NULL,
        description  TEXT    NOT NULL,
        count        INTEGER NOT NULL,
        messages     INTEGER NOT NULL,
        first_seen   INTEGER NOT NULL,
        last_seen    INTEGER NOT NULL,
        PRIMARY KEY (channel, sender, message_type, path, code, severity)
    ) WITHOUT ROWID;

    CREATE TABLE data_quality_messages (
        channel       TEXT    NOT NULL,
        sender        TEXT    NOT NULL,
        message_type  TEXT    NOT NULL,
        validated     INTEGER NOT NULL,
        with_errors   INTEGER NOT NULL,
        with_warnings INTEGER NOT NULL,
        first_seen    INTEGER NOT NULL,
        last_seen     INTEGER NOT NULL,
        PRIMARY KEY (channel, sender, message_type)
    ) WITHOUT ROWID;
"#,
    },
    Migration {
        version: 2,
        description: "data-quality counters per hour, for data quality over time",
        sql: r#"
    CREATE TABLE data_quality_hourly (
        hour         INTEGER NOT NULL,
        sender       TEXT    NOT NULL,
        channel      TEXT    NOT NULL,
        message_type TEXT    NOT NULL,
        path         TEXT    NOT NULL,
        code         INTEGER NOT NULL,
        severity     TEXT    NOT NULL,
        count        INTEGER NOT NULL,
        messages     INTEGER NOT NULL,
        PRIMARY KEY (hour, sender, channel, message_type, path, code, severity)
    ) WITHOUT ROWID;

    CREATE TABLE data_quality_messages_hourly (
        hour          INTEGER NOT NULL,
        sender        TEXT    NOT NULL,
        channel       TEXT    NOT NULL,
        message_type  TEXT    NOT NULL,
        validated     INTEGER NOT NULL,
        with_errors   INTEGER NOT NULL,
        with_warnings INTEGER NOT NULL,
        PRIMARY KEY (hour, sender, channel, message_type)
    ) WITHOUT ROWID;
"#,
    },
];
