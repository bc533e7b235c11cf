//! Durable storage for Corridor: the message journal on SQLite, with group commit.
//!
//! A message is acknowledged only after it is durably stored. This crate keeps that
//! promise cheap: one SQLite database (`corridor.db` in the data directory, WAL mode),
//! written by one thread that commits the requests of every connection together, and a
//! sync thread beside it whose one fsync of the WAL makes every commit before it durable
//! (see [`Store::write`]).
//!
//! - [`Store`] opens the database, migrates its schema, runs the writer thread and lends out
//!   read-only connections. Any feature can run its own writes through [`Store::write`]
//!   and share the group commit, and keep its own versioned tables with
//!   [`Store::migrate_component`].
//! - [`check_integrity`] reads every page to find damage before it is trusted
//!   (`corridor db check`, and `corridor run` when `[data] check_at_start` asks).
//! - [`Journal`] is the table of every message received, exactly as received, with its
//!   state; [`Journal::append`] detects duplicates (same sender and control id) inside the
//!   writer's transaction.
//!
//! A failed fsync is fatal: the store then refuses every write with
//! [`Error::DiskSyncFailed`], because a later fsync could succeed without the pages the
//! failed one dropped. The process should exit when [`Store::sync_failed`] resolves and
//! be restarted; SQLite recovers from what is on disk. A failed write (an I/O error, a
//! full disk) only fails its own commit.
//!
//! The schema is documented table by table in `SCHEMA.md`, so anyone can open the file with
//! `sqlite3` and read what happened.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use store::{Appended, MessageState, NewMessage, Store, UnixMicros};
//!
//! # fn main() -> Result<(), store::Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path())?;
//! let journal = store.journal();
//! let message = NewMessage {
//!     channel: Arc::from("lab"),
//!     raw: "MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01|42|P|2.5.1\r".into(),
//!     received_at: UnixMicros::now(),
//!     peer: Arc::from("127.0.0.1:50122"),
//!     tls_identity: None,
//!     sending_application: "LAB".into(),
//!     sending_facility: "NORTH".into(),
//!     message_type: "ORU^R01".into(),
//!     control_id: "42".into(),
//!     version: "2.5.1".into(),
//!     state: MessageState::Received,
//!     state_reason: None,
//! };
//! let window = Some(Duration::from_secs(3600));
//! // Outside an async runtime `wait` blocks until the commit is on disk; async code awaits.
//! let first = journal.append(message.clone(), window).wait()?;
//! let again = journal.append(message, window).wait()?;
//! assert_eq!(again, Appended::Duplicate(first.id()));
//!
//! journal.set_state(first.id(), MessageState::Processed, None).wait()?;
//! let stored = journal.get(first.id())?.expect("just stored");
//! assert_eq!(stored.entry.state, MessageState::Processed);
//! assert!(stored.raw.starts_with(b"MSH|"));
//! # Ok(())
//! # }
//! ```

mod counts;
mod database;
mod error;
mod integrity;
mod journal;
pub mod minutes;
pub mod saved_searches;
mod schema;
pub mod search;
mod writer;

pub use counts::{
    CLOCK_LAG_WINDOW_SECONDS, ClockLag, HOP_BUCKETS_MICROS, HopHistogram, HopLatencies, Rates,
};
pub use database::{Store, StoreOptions};
pub use error::{Error, Result};
pub use integrity::{IntegrityCheck, check_integrity};
pub use journal::{
    Appended, Journal, JournalEntry, JournalFilter, MessageId, MessageState, NewMessage,
    StoredMessage, UnixMicros,
};
pub use schema::{Migration, SCHEMA_VERSION};
pub use writer::{WriteFuture, WriterStats, in_savepoint};

/// SQLite access for code that runs inside [`Store::write`] or [`Store::read`].
pub use rusqlite;
