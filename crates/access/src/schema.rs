//! The `access` component's tables (documented in `crates/store/SCHEMA.md`).

use store::Migration;

/// The component name in `component_schema`.
pub const COMPONENT: &str = "access";

/// The `access` component's history, oldest first.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "users and API tokens",
        sql: r#"
    CREATE TABLE access_users (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        name                TEXT    NOT NULL UNIQUE,
        role                TEXT    NOT NULL,
        password_hash       TEXT,
        created_at          INTEGER NOT NULL,
        password_changed_at INTEGER,
        disabled_at         INTEGER
    );
    CREATE TABLE access_tokens (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id      INTEGER NOT NULL REFERENCES access_users (id),
        hint         TEXT    NOT NULL,
        hash         BLOB    NOT NULL UNIQUE,
        role         TEXT,
        created_at   INTEGER NOT NULL,
        expires_at   INTEGER,
        revoked_at   INTEGER
    );
    CREATE INDEX access_tokens_by_user ON access_tokens (user_id);
"#,
    },
    Migration {
        version: 2,
        description: "SMART scopes on API tokens",
        sql: r#"
    ALTER TABLE access_tokens ADD COLUMN scopes TEXT;
"#,
    },
];
