//! Errors of the store, as values with words a person can act on.

use std::path::PathBuf;

use crate::journal::MessageId;

/// The result type of every fallible operation in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while storing or reading.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The data directory could not be created or synced.
    #[error("could not prepare the data directory {path}: {source}")]
    DataDir {
        /// The directory Corridor was asked to use.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// The database file could not be opened or configured.
    #[error("could not open the database {path}: {source}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },

    /// The database was written by a newer Corridor with a schema this build does not know.
    #[error(
        "the database {path} has schema version {found}, newer than version {supported} that \
         this Corridor understands; run a newer Corridor or point it at another data directory"
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The `user_version` found in the file.
        found: u32,
        /// The newest schema version this build can migrate to.
        supported: u32,
    },

    /// A component's tables were written by a newer Corridor than this one.
    #[error(
        "the database {path} holds {component} tables at schema version {found}, newer than \
         version {supported} that this Corridor understands; run a newer Corridor or point it \
         at another data directory"
    )]
    ComponentSchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// The component, e.g. `mpi`.
        component: String,
        /// The version recorded in `component_schema`.
        found: u32,
        /// The newest version the running code knows.
        supported: u32,
    },

    /// A schema migration step failed; the database stays at the previous version.
    #[error("migrating the database schema to version {version} ({description}) failed: {source}")]
    Migration {
        /// The version the failed step would have reached.
        version: u32,
        /// What the step does.
        description: &'static str,
        /// What SQLite said.
        source: rusqlite::Error,
    },

    /// A thread of the store (the writer or the checkpointer) could not be started.
    #[error("could not start the {thread} thread: {source}")]
    Spawn {
        /// Which thread.
        thread: &'static str,
        /// What the operating system said.
        source: std::io::Error,
    },

    /// SQLite reported an error while running a statement.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),

    /// The transaction that carried this write could not be committed, so nothing of it was kept.
    #[error("the write was not committed, nothing of it was stored: {0}")]
    CommitFailed(String),

    /// The write was committed but the fsync that makes it durable failed: it is in the
    /// database, yet may not survive a power loss, so it must not be acknowledged as safe.
    #[error(
        "the write was committed but could not be synced to disk, so it may not survive a \
         power loss: {0}"
    )]
    SyncFailed(String),

    /// An fsync of the database failed earlier, so the store stopped taking writes: on
    /// Linux a failed fsync may drop the pages it could not write while marking them
    /// clean, and a later fsync that succeeds proves nothing about them. Every write
    /// answered before the failure was synced; nothing was answered after it.
    #[error(
        "the store stopped taking writes after an fsync of the database failed ({0}); every \
         write acknowledged before it is on disk; restart once the disk is healthy"
    )]
    DiskSyncFailed(String),

    /// A write request panicked; its changes were rolled back, other requests were unaffected.
    #[error("a write request panicked and was rolled back: {0}")]
    WritePanicked(String),

    /// A read run on the blocking pool panicked or was cancelled.
    #[error("a read of the database failed unexpectedly: {0}")]
    ReadPanicked(String),

    /// The writer thread is gone (the store was shut down or the thread died).
    #[error("the database writer has stopped; the store must be reopened")]
    WriterStopped,

    /// No journal entry has this id.
    #[error("journal entry {0} does not exist")]
    NotFound(MessageId),

    /// The journal holds a state name this build does not know (written by a newer Corridor?).
    #[error("the journal holds an unknown message state {0:?}")]
    UnknownState(String),

    /// A write request refused to proceed for a reason of its own (used by features built on
    /// [`Store::write`](crate::Store::write) whose checks are not SQLite errors).
    #[error("{0}")]
    Refused(String),
}
